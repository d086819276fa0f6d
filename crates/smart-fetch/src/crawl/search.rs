//! One search chain: every URL of one (patient, type) pair, each followed through its `next`
//! links (spec §13.5). Failed searches become OperationOutcome lines instead of stopping the
//! crawl; only fatal errors (auth) end it. Does not write files.

use super::sink::{ChainResult, Record};
use crate::fhir::{FhirClient, FhirError};
use crate::json;
use crate::resources::ResourceType;
use crate::timestamp::{self, Timestamp};
use serde_json::{Value, json};
use std::collections::HashSet;

pub async fn fetch_chain(
    client: &FhirClient,
    resource_type: ResourceType,
    key: String,
    urls: &[String],
    now: Timestamp,
) -> Result<ChainResult, FhirError> {
    let mut result = ChainResult {
        resource_type,
        key,
        records: Vec::new(),
        errors: Vec::new(),
        max_date: None,
    };
    // Several ORed filters may return the same resource for one patient.
    let mut seen = (urls.len() > 1).then(HashSet::new);
    for url in urls {
        // Spec §13.5: a `+` in the URLs we build (e.g. the offset of a since timestamp,
        // `_lastUpdated=gt2025-01-01T00:00:00+00:00`) is data, not an encoded space. Links
        // from the server are used as given.
        let mut next = Some(url.replace('+', "%2B"));
        while let Some(url) = next.take() {
            let page = match client.get_json(&url).await {
                Ok(page) => page,
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => {
                    let outcome = err.operation_outcome().unwrap_or_else(|| {
                        json!({
                            "resourceType": "OperationOutcome",
                            "issue": [{
                                "severity": "error",
                                "code": "exception",
                                "diagnostics": err.to_string(),
                            }]
                        })
                    });
                    result.errors.push(line_of(&outcome));
                    break;
                }
            };
            if page.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                break;
            }
            for entry in page
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(resource) = entry.get("resource").filter(|r| is_non_empty(r)) else {
                    continue;
                };
                if resource.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome")
                {
                    result.errors.push(line_of(resource));
                    continue;
                }
                let id = resource
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let (Some(seen), Some(id)) = (seen.as_mut(), id.as_ref())
                    && !seen.insert(id.clone())
                {
                    continue;
                }
                if let Some(d) = latest_date(resource, resource_type, &now) {
                    result.max_date = Some(result.max_date.map_or(d, |m| m.max(d)));
                }
                result.records.push(Record {
                    id,
                    line: line_of(resource),
                });
            }
            next = next_link(&page);
        }
    }
    Ok(result)
}

fn line_of(value: &Value) -> String {
    let mut line = json::to_ndjson_line(value);
    line.push('\n');
    line
}

fn is_non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        _ => true,
    }
}

fn next_link(page: &Value) -> Option<String> {
    page.get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

/// Transaction-time candidates (spec §13.6): `meta.lastUpdated` and the type's created
/// field; dates in the future are typos and ignored.
fn latest_date(resource: &Value, t: ResourceType, now: &Timestamp) -> Option<Timestamp> {
    let updated = resource
        .get("meta")
        .and_then(|m| m.get("lastUpdated"))
        .and_then(Value::as_str);
    let created = t
        .created_field()
        .and_then(|f| resource.get(f))
        .and_then(Value::as_str);
    [updated, created]
        .into_iter()
        .flatten()
        .filter_map(timestamp::parse_fhir)
        .filter(|d| d <= now)
        .max()
}

/// Percent-encode a value for a query string (ids, MRNs and identifier systems may hold
/// `|`, `:`, `+` or spaces).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_identifier_values() {
        assert_eq!(
            encode_query_value("urn:oid:1.2|A B+c"),
            "urn%3Aoid%3A1.2%7CA%20B%2Bc"
        );
    }
}
