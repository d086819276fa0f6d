//! The kickoff URL (docs/bulk.md#kickoff-url): system, Group or Patient level, `_type`,
//! `_typeFilter` (with the commas inside one filter sent as a literal `%2C`, so servers that split
//! the list on commas still see whole filters) and `_since`, form-encoded like Python's
//! `urlencode` (`url_encoding`). Also the decoded `requestParameters` of the kickoff log event.

use crate::filters::Filters;
use crate::resources::ResourceType;
use crate::url_encoding::{quote_plus, unquote_plus};
use serde_json::{Map, Value};

/// Where an export is kicked off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Level {
    /// `<fhir-url>/$export`: everything on the server.
    System,
    /// `<fhir-url>/Group/<id>/$export`: the members of one Group.
    Group(String),
    /// `<fhir-url>/Patient/$export`: every patient, for servers without system-level export.
    Patient,
}

/// `<base>/<segment>` without a doubled slash (a plain path join, as the Python tool does).
fn join(base: &str, segment: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{segment}")
    } else {
        format!("{base}/{segment}")
    }
}

/// The full kickoff URL. `filters` are the effective (bulk) filters of the exported types;
/// `types` need not be sorted.
pub fn kickoff_url(
    fhir_url: &str,
    level: &Level,
    types: &[ResourceType],
    filters: &Filters,
    since: Option<&str>,
) -> String {
    // A query already in the FHIR URL stays, ahead of ours.
    let (base, existing_query) = match fhir_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (fhir_url, None),
    };
    let mut path = match level {
        Level::System => base.to_string(),
        Level::Group(group) => join(base, &format!("Group/{group}")),
        Level::Patient => join(base, "Patient"),
    };
    if !path.ends_with("/$export") {
        path = join(&path, "$export");
    }

    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut params: Vec<(&str, String)> = vec![("_type", names.join(","))];
    let mut type_filters = Vec::new();
    for name in &names {
        let Some(list) = types
            .iter()
            .find(|t| t.as_str() == *name)
            .and_then(|t| filters.get(t))
        else {
            continue;
        };
        // BTreeSet order is Python's `sorted()` order for these ASCII strings.
        for filter in list {
            type_filters.push(format!("{name}?{}", filter.replace(',', "%2C")));
        }
    }
    if !type_filters.is_empty() {
        params.push(("_typeFilter", type_filters.join(",")));
    }
    if let Some(since) = since {
        params.push(("_since", since.to_string()));
    }

    let ours = params
        .iter()
        .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
        .collect::<Vec<_>>()
        .join("&");
    match existing_query.filter(|q| !q.is_empty()) {
        Some(query) => format!("{path}?{query}&{ours}"),
        None => format!("{path}?{ours}"),
    }
}

/// `requestParameters` of the kickoff event (docs/log.md#kickoff): the URL's query decoded once,
/// repeated names comma-joined, `patient` left out.
pub fn request_parameters(url: &str) -> Value {
    let mut map = Map::new();
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = unquote_plus(key);
        let value = unquote_plus(value);
        if key == "patient" {
            continue;
        }
        match map.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                map.insert(key, Value::String(value));
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceType as T;
    use std::collections::BTreeSet;

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spec_example() {
        let mut filters = Filters::new();
        filters.insert(T::Condition, set(&["clinical-status=active", "code=a,b"]));
        filters.insert(
            T::Observation,
            set(&["category=social-history,vital-signs,imaging,laboratory,survey,exam,procedure,therapy,activity"]),
        );
        let url = kickoff_url(
            "http://example.invalid/R4",
            &Level::System,
            &[T::Observation, T::Condition],
            &filters,
            Some("2020-01-01T00:00:00+02:00"),
        );
        assert_eq!(
            url,
            "http://example.invalid/R4/$export?_type=Condition%2CObservation&_typeFilter=Condition%3Fclinical-status%3Dactive%2CCondition%3Fcode%3Da%252Cb%2CObservation%3Fcategory%3Dsocial-history%252Cvital-signs%252Cimaging%252Claboratory%252Csurvey%252Cexam%252Cprocedure%252Ctherapy%252Cactivity&_since=2020-01-01T00%3A00%3A00%2B02%3A00"
        );
        let params = request_parameters(&url);
        assert_eq!(params["_type"], "Condition,Observation");
        assert_eq!(
            params["_typeFilter"].as_str().map(|s| s.starts_with(
                "Condition?clinical-status=active,Condition?code=a%2Cb,Observation?category=social-history%2Cvital-signs"
            )),
            Some(true)
        );
        assert_eq!(params["_since"], "2020-01-01T00:00:00+02:00");
    }

    #[test]
    fn levels_and_existing_queries() {
        let none = Filters::new();
        assert_eq!(
            kickoff_url(
                "http://x/R4/",
                &Level::Group("g 1".into()),
                &[T::Patient],
                &none,
                None
            ),
            "http://x/R4/Group/g 1/$export?_type=Patient"
        );
        assert_eq!(
            kickoff_url(
                "http://x/R4",
                &Level::Patient,
                &[T::Device],
                &none,
                Some("2022-03-23")
            ),
            "http://x/R4/Patient/$export?_type=Device&_since=2022-03-23"
        );
        assert_eq!(
            kickoff_url(
                "http://x/R4/$export?a=1",
                &Level::System,
                &[T::Device],
                &none,
                None
            ),
            "http://x/R4/$export?a=1&_type=Device"
        );
        let params = request_parameters("http://x/$export?_type=A&patient=p1&_type=B");
        assert_eq!(params, serde_json::json!({"_type": "A,B"}));
    }
}
