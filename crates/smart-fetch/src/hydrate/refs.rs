//! Walking the REFS paths of docs/hydration.md#task-registry (`context.encounter*`,
//! `participant*.individual`) over a resource, and classifying the reference strings found
//! (docs/hydration.md#fetching-a-reference). Pure functions over JSON values: no requests, no
//! files.

use crate::resources::ResourceType;
use serde_json::Value;

/// The values a dot-separated path reaches. A segment ending in `*` names an array whose
/// items are each followed; any other segment names a single value. Missing, `null` or
/// wrongly shaped steps reach nothing.
pub fn walk<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for segment in path.split('.') {
        let (name, many) = match segment.strip_suffix('*') {
            Some(name) => (name, true),
            None => (segment, false),
        };
        let mut next = Vec::new();
        for v in current {
            match v.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) if many => {
                    next.extend(items.iter().filter(|i| !i.is_null()))
                }
                Some(_) if many => {}
                Some(found) => next.push(found),
            }
        }
        current = next;
    }
    current
}

/// One entry per Reference reached by any of `paths`, in path order: its `reference` string,
/// or `None` when the value reached has none (still an examined item,
/// docs/hydration.md#statistics-table).
pub fn references<'a>(resource: &'a Value, paths: &[&str]) -> Vec<Option<&'a str>> {
    paths
        .iter()
        .flat_map(|path| walk(resource, path))
        .map(|v| v.get("reference").and_then(Value::as_str))
        .collect()
}

/// A reference worth requesting for a task whose output is `output`
/// (docs/hydration.md#fetching-a-reference): it must start with `<Output>/` (case-sensitive) and
/// name an id. Contained (`#x`), empty, absolute and other-type references are ignored.
pub fn wanted(reference: Option<&str>, output: ResourceType) -> Option<&str> {
    let r = reference?;
    let rest = r.strip_prefix(output.as_str())?.strip_prefix('/')?;
    (!rest.is_empty()).then_some(r)
}

/// `<resourceType>/<id>` of a resource, the key of the "already have" pool.
pub fn key_of(resource: &Value) -> Option<String> {
    let t = resource.get("resourceType")?.as_str()?;
    let id = resource.get("id")?.as_str()?;
    Some(format!("{t}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_objects_and_arrays() {
        let enc = json!({
            "participant": [
                {"individual": {"reference": "Practitioner/1"}},
                {"type": []},
                {"individual": {"reference": "PractitionerRole/2"}},
                null
            ],
            "hospitalization": {"origin": {"reference": "Location/o"}},
            "location": [{"location": {"reference": "Location/a"}}, {"location": {"display": "x"}}],
            "serviceProvider": null,
            "episodeOfCare": {"reference": "EpisodeOfCare/not-an-array"}
        });
        let refs = references(&enc, &["participant*.individual"]);
        assert_eq!(refs, [Some("Practitioner/1"), Some("PractitionerRole/2")]);
        let refs = references(
            &enc,
            &[
                "hospitalization.origin",
                "hospitalization.destination",
                "location*.location",
            ],
        );
        assert_eq!(refs, [Some("Location/o"), Some("Location/a"), None]);
        assert!(references(&enc, &["serviceProvider"]).is_empty());
        // `*` wants an array; a single object there reaches nothing.
        assert!(references(&enc, &["episodeOfCare*"]).is_empty());
        // A single-value segment over an array reaches the array, which is no Reference.
        assert_eq!(references(&enc, &["participant"]), [None]);
        assert!(walk(&json!("text"), "a.b*").is_empty());
    }

    #[test]
    fn nested_arrays() {
        let imm = json!({
            "protocolApplied": [
                {"authority": {"reference": "Organization/1"}},
                {"authority": {"reference": "Organization/2"}}
            ],
            "performer": [{"actor": {"reference": "Organization/3"}}],
            "manufacturer": {"reference": "Organization/4"}
        });
        let refs = references(
            &imm,
            &[
                "manufacturer",
                "performer*.actor",
                "protocolApplied*.authority",
            ],
        );
        assert_eq!(
            refs,
            [
                Some("Organization/4"),
                Some("Organization/3"),
                Some("Organization/1"),
                Some("Organization/2")
            ]
        );
        let dxr =
            json!({"result": [{"reference": "Observation/a"}, {"reference": "Observation/b"}]});
        assert_eq!(
            references(&dxr, &["result*"]),
            [Some("Observation/a"), Some("Observation/b")]
        );
    }

    #[test]
    fn wanted_references() {
        let med = ResourceType::Medication;
        assert_eq!(wanted(Some("Medication/1"), med), Some("Medication/1"));
        assert_eq!(wanted(None, med), None);
        assert_eq!(wanted(Some(""), med), None);
        assert_eq!(wanted(Some("#contained"), med), None);
        assert_eq!(wanted(Some("medication/1"), med), None);
        assert_eq!(wanted(Some("Medication/"), med), None);
        assert_eq!(wanted(Some("MedicationRequest/1"), med), None);
        assert_eq!(wanted(Some("Binary/1"), med), None);
        assert_eq!(wanted(Some("http://x/Medication/1"), med), None);
        assert_eq!(
            key_of(&json!({"resourceType": "Medication", "id": "1"})),
            Some("Medication/1".to_string())
        );
        assert_eq!(key_of(&json!({"resourceType": "Medication"})), None);
    }
}
