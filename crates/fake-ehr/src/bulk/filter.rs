//! `_typeFilter` for bulk kickoffs: each filter is `Type?query` and a resource of that type
//! is exported when any of its type's filters matches (all parameters of one filter must
//! match). Understood parameters: `category`, `code` (tokens, `,` = OR, `system|code` or
//! `code`), `_id`, `_lastUpdated` and the type's created-date parameter (with `gt`/`ge`/…
//! prefixes). Anything else is refused, as a strict server would.

use crate::catalog::{self, TypeInfo};
use crate::instant::{self, DateFilter};
use crate::query;
use serde_json::Value;

#[derive(Debug)]
enum Test {
    Token(&'static str, Vec<(Option<String>, String)>),
    Id(Vec<String>),
    Date(&'static str, DateFilter),
}

/// One `Type?query` filter.
#[derive(Debug)]
pub struct TypeFilter {
    pub type_name: &'static str,
    tests: Vec<Test>,
}

impl TypeFilter {
    /// Parses one already-split `_typeFilter` item; `Err` is the message of a 400.
    pub fn parse(item: &str) -> Result<Self, String> {
        let Some((ty, raw_query)) = item.split_once('?') else {
            return Err(format!("_typeFilter {item:?} must look like Type?params"));
        };
        let info: &TypeInfo =
            catalog::lookup(ty).ok_or_else(|| format!("_typeFilter names unknown type {ty:?}"))?;
        let mut tests = Vec::new();
        for (key, value) in query::parse(raw_query)? {
            let tokens = || {
                value
                    .split(',')
                    .map(|v| match v.split_once('|') {
                        Some((s, c)) => (Some(s.to_string()), c.to_string()),
                        None => (None, v.to_string()),
                    })
                    .collect()
            };
            let test = match key.as_str() {
                "category" if info.category => Test::Token("category", tokens()),
                "code" if info.code => Test::Token("code", tokens()),
                "_id" => Test::Id(value.split(',').map(str::to_string).collect()),
                "_lastUpdated" => Test::Date("lastUpdated", DateFilter::parse(&value)?),
                other => match info.created {
                    Some((param, field)) if param == other => {
                        Test::Date(field, DateFilter::parse(&value)?)
                    }
                    _ => {
                        return Err(format!(
                            "_typeFilter parameter {other:?} is not supported for {ty}"
                        ));
                    }
                },
            };
            tests.push(test);
        }
        Ok(Self {
            type_name: info.name,
            tests,
        })
    }

    pub fn matches(&self, resource: &Value) -> bool {
        self.tests.iter().all(|t| test(resource, t))
    }
}

fn test(resource: &Value, t: &Test) -> bool {
    match t {
        Test::Id(ids) => ids.iter().any(|id| resource["id"] == id.as_str()),
        Test::Token(field, wanted) => {
            let codings = codings(&resource[*field]);
            wanted.iter().any(|(system, code)| {
                codings.iter().any(|(s, c)| {
                    c == code
                        && match system.as_deref() {
                            None => true,
                            Some("") => s.is_none(),
                            Some(w) => s.as_deref() == Some(w),
                        }
                })
            })
        }
        Test::Date(field, filter) => {
            let value = if *field == "lastUpdated" {
                &resource["meta"]["lastUpdated"]
            } else {
                &resource[*field]
            };
            value
                .as_str()
                .and_then(instant::parse_millis)
                .is_some_and(|m| filter.matches(m))
        }
    }
}

/// `(system, code)` of a code, a Coding, a CodeableConcept or an array of them.
fn codings(value: &Value) -> Vec<(Option<String>, String)> {
    match value {
        Value::String(code) => vec![(None, code.clone())],
        Value::Array(items) => items.iter().flat_map(codings).collect(),
        Value::Object(map) => {
            if let Some(list) = map.get("coding") {
                return codings(list);
            }
            match map.get("code").and_then(Value::as_str) {
                Some(code) => vec![(
                    map.get("system")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    code.to_string(),
                )],
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_dates_and_refusals() {
        let obs = json!({
            "resourceType": "Observation", "id": "o1",
            "meta": {"lastUpdated": "2024-05-01T00:00:00Z"},
            "issued": "2023-01-01T00:00:00Z",
            "category": [{"coding": [{"system": "http://x", "code": "laboratory"}]}]
        });
        let f = TypeFilter::parse("Observation?category=vital-signs,laboratory");
        assert!(f.is_ok_and(|f| f.matches(&obs)));
        let f = TypeFilter::parse("Observation?category=http://y|laboratory");
        assert!(f.is_ok_and(|f| !f.matches(&obs)));
        let f = TypeFilter::parse("Observation?category=laboratory&issued=gt2023-06-01");
        assert!(f.is_ok_and(|f| !f.matches(&obs)));
        let f = TypeFilter::parse("Observation?_lastUpdated=gt2024-01-01");
        assert!(f.is_ok_and(|f| f.matches(&obs)));
        assert!(TypeFilter::parse("Observation?status=final").is_err());
        assert!(TypeFilter::parse("Nope?x=1").is_err());
        assert!(TypeFilter::parse("Observation").is_err());
    }
}
