//! Reading many referenced resources of one type in one search: `<Type>?_id=a,b,c&_count=N`,
//! or `<Type>?patient=P&_id=a,b,c&_count=N` on servers that search only within one
//! patient's chart. Builds the URL (at most `MAX_IDS` ids and `MAX_URL_BYTES` of URL) and
//! reads every page of the answer (with `crawl::search`'s page reader and loop guard),
//! keeping each resource exactly as a read of it would give it. Every resource must be one
//! that was asked for: anything else means the server dropped the parameter, and the whole
//! answer is thrown away. Decides nothing about what to do next (`reference` does, with
//! `fhir::batching`); writes nothing.

use crate::crawl::search::{PageGuard, RawPage, is_error_outcome};
use crate::fhir::batching::Verdict;
use crate::fhir::{FhirClient, FhirError, Request};
use crate::resources::ResourceType;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Ids in one search. Requests fall as 1/N and a list of 50 is already a small part of an
/// export's requests (a 2,000-patient Epic export reads about 10 such resources per patient:
/// 0.2 requests per patient at 50, 0.1 at 100), while every id makes the answer page and
/// the server's work for one request bigger. Long ids meet `MAX_URL_BYTES` first.
pub const MAX_IDS: usize = 50;

/// Longest URL of a list search, base URL included. Epic, proxies and load balancers limit
/// request lines to a few kilobytes (2 KB is the oldest common limit); a list is cut
/// short before it passes this, so Epic's 60-character ids still go about 25 at a time.
pub const MAX_URL_BYTES: usize = 2_000;

/// A FHIR id (`[A-Za-z0-9\-\.]{1,64}`): only such ids go into a list, since anything else
/// (a comma, a `|`) would change what the list means. Other references are read one by one.
pub fn is_plain_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The id of a `<Type>/<id>` reference that can go into a list.
pub fn list_id(reference: &str, t: ResourceType) -> Option<&str> {
    let id = reference.strip_prefix(t.as_str())?.strip_prefix('/')?;
    is_plain_id(id).then_some(id)
}

/// The search for `ids` (relative to the base URL), with the patient named when given.
pub fn url(t: ResourceType, ids: &[&str], patient: Option<&str>) -> String {
    // The patient as the crawl's searches name it.
    let patient = patient
        .map(|p| format!("patient={}&", crate::url_encoding::quote(p)))
        .unwrap_or_default();
    // Ids are plain (`is_plain_id`), so they need no encoding; the commas stay literal, as
    // FHIR's OR lists are written.
    format!("{t}?{patient}_id={}&_count={}", ids.join(","), ids.len())
}

/// Whether one more id of `id_len` bytes still fits a list whose URL is `current` bytes
/// long now (with `base` bytes of base URL before it).
pub fn fits(base: usize, current: usize, id_len: usize) -> bool {
    // One comma, and `_count` may grow by a digit.
    base + current + id_len + 2 <= MAX_URL_BYTES
}

/// What one list search brought.
pub struct Answer {
    pub verdict: Verdict,
    /// Resources found, by id, as a read of each would give them.
    pub found: HashMap<String, Value>,
    /// Why the server's answer was not used, for the verbose line.
    pub detail: String,
}

impl Answer {
    fn not_used(verdict: Verdict, detail: String) -> Self {
        Answer {
            verdict,
            found: HashMap::new(),
            detail,
        }
    }
}

/// Read every page of the list search for `ids` of type `t`. Only errors that end the run
/// come back as `Err`; anything else the server does is a verdict.
pub async fn fetch(
    client: &FhirClient,
    t: ResourceType,
    ids: &[&str],
    patient: Option<&str>,
) -> Result<Answer, FhirError> {
    let asked: HashSet<&str> = ids.iter().copied().collect();
    let mut found: HashMap<String, Value> = HashMap::new();
    let mut next = Some(url(t, ids, patient));
    // A list of k ids fits in k pages even one resource a page; more, or a page read
    // before, means the server is not answering the list.
    let mut pages = PageGuard::with_limit(ids.len());
    while let Some(url) = next.take() {
        if pages.admit(client, &url).is_err() {
            return Ok(Answer::not_used(
                Verdict::Ignored,
                "its pages did not end".to_string(),
            ));
        }
        let response = match client.request(Request::get(&url, FHIR_JSON)).await {
            Ok(response) => response,
            Err(err) if err.is_fatal() => return Err(err),
            Err(err) => {
                let verdict = match err.status() {
                    Some(400..=499) => Verdict::Refused,
                    _ => Verdict::Failed,
                };
                return Ok(Answer::not_used(verdict, err.to_string()));
            }
        };
        let Ok(page) = serde_json::from_slice::<RawPage>(&response.body) else {
            return Ok(Answer::not_used(
                Verdict::Refused,
                "the answer is not a search Bundle".to_string(),
            ));
        };
        if page.resource_type.as_deref() != Some("Bundle") {
            return Ok(Answer::not_used(
                Verdict::Refused,
                "the answer is not a search Bundle".to_string(),
            ));
        }
        // More matches than ids asked for: the list was dropped, even when this page
        // happens to hold only resources asked for (a small pool's first page).
        if let Some(total) = page.total().filter(|t| *t > ids.len() as u64) {
            return Ok(Answer::not_used(
                Verdict::Ignored,
                format!("it matched {total} resources"),
            ));
        }
        for entry in page.entry.iter().flatten() {
            let Some(raw) = entry.resource else {
                continue;
            };
            match take(raw, t, &asked, &mut found) {
                Taken::Kept | Taken::Note => {}
                Taken::Error => {
                    return Ok(Answer::not_used(
                        Verdict::Refused,
                        "the answer reports an error".to_string(),
                    ));
                }
                Taken::Stranger(who) => {
                    return Ok(Answer::not_used(
                        Verdict::Ignored,
                        format!("it returned {who}, which was not asked for"),
                    ));
                }
            }
        }
        next = page.next_page();
    }
    let verdict = if found.is_empty() {
        Verdict::Empty
    } else {
        Verdict::Confirmed
    };
    Ok(Answer {
        verdict,
        found,
        detail: String::new(),
    })
}

const FHIR_JSON: &str = "application/fhir+json";

enum Taken {
    Kept,
    /// An OperationOutcome of warnings or notes, as servers put beside results.
    Note,
    /// An OperationOutcome reporting an error: the answer may lack what it is about.
    Error,
    /// A resource not asked for (`Type/id`, for the message).
    Stranger(String),
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

fn take(
    raw: &RawValue,
    t: ResourceType,
    asked: &HashSet<&str>,
    found: &mut HashMap<String, Value>,
) -> Taken {
    let head = serde_json::from_str::<Head>(raw.get()).ok();
    let resource_type = head.as_ref().and_then(|h| h.resource_type.as_deref());
    let id = head.as_ref().and_then(|h| h.id.as_deref());
    if resource_type == Some("OperationOutcome") {
        let outcome: Value = serde_json::from_str(raw.get()).unwrap_or_default();
        return match is_error_outcome(&outcome) {
            true => Taken::Error,
            false => Taken::Note,
        };
    }
    match (resource_type, id) {
        (Some(rt), Some(id)) if rt == t.as_str() && asked.contains(id) => {
            if !found.contains_key(id) {
                // Parsed from the entry's own text exactly as a read's body is parsed, so
                // the line written is the one a read of it writes (keys in the server's
                // order, numbers as it spelled them).
                match serde_json::from_str::<Value>(raw.get()) {
                    Ok(value) => {
                        found.insert(id.to_string(), value);
                    }
                    Err(_) => return Taken::Error,
                }
            }
            Taken::Kept
        }
        _ => {
            let name = |s: Option<&str>, none: &str| {
                crate::text::printable(&s.unwrap_or(none).chars().take(80).collect::<String>())
                    .into_owned()
            };
            Taken::Stranger(format!(
                "{}/{}",
                name(resource_type, "(no type)"),
                name(id, "(no id)")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_go_into_lists() {
        assert_eq!(
            list_id("Observation/hobs-000001-2", ResourceType::Observation),
            Some("hobs-000001-2")
        );
        assert_eq!(
            list_id("Observation/a.b-C9", ResourceType::Observation),
            Some("a.b-C9")
        );
        for reference in [
            "Observation/1/_history/2",
            "Observation/a,b",
            "Observation/",
            "Specimen/1",
            "Observationx/1",
            "Observation/a|b",
        ] {
            assert_eq!(list_id(reference, ResourceType::Observation), None);
        }
        assert!(!is_plain_id(&"a".repeat(65)));
        assert!(is_plain_id(&"a".repeat(64)));
    }

    #[test]
    fn urls_name_the_ids_and_the_patient() {
        assert_eq!(
            url(ResourceType::Observation, &["a", "b"], None),
            "Observation?_id=a,b&_count=2"
        );
        assert_eq!(
            url(ResourceType::Specimen, &["s1"], Some("p-1")),
            "Specimen?patient=p-1&_id=s1&_count=1"
        );
        assert!(fits(40, 100, 60));
        assert!(!fits(40, MAX_URL_BYTES - 60, 60));
    }

    fn taken(raw: &str, found: &mut HashMap<String, Value>) -> Taken {
        let raw: Box<RawValue> = serde_json::from_str(raw).expect("JSON");
        let asked = HashSet::from(["o1", "o2"]);
        take(&raw, ResourceType::Observation, &asked, found)
    }

    #[test]
    fn every_resource_must_be_asked_for() {
        let mut found = HashMap::new();
        let o1 = r#"{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50}}"#;
        assert!(matches!(taken(o1, &mut found), Taken::Kept));
        assert_eq!(
            crate::json::to_ndjson_line(&found["o1"]),
            o1,
            "kept as sent"
        );
        assert!(matches!(taken(o1, &mut found), Taken::Kept), "twice: once");
        assert_eq!(found.len(), 1);
        let note = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning"}]}"#;
        assert!(matches!(taken(note, &mut found), Taken::Note));
        let error = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error"}]}"#;
        assert!(matches!(taken(error, &mut found), Taken::Error));
        for stranger in [
            r#"{"resourceType":"Observation","id":"o3"}"#,
            r#"{"resourceType":"Specimen","id":"o2"}"#,
            r#"{"resourceType":"Observation"}"#,
            r#"{"id":"o1"}"#,
            r#"[1]"#,
        ] {
            assert!(
                matches!(taken(stranger, &mut found), Taken::Stranger(_)),
                "{stranger}"
            );
        }
    }
}
