//! The export manifest (docs/bulk.md#downloads): its `output`, `error` and `deleted` entries become
//! the files to download, named `<type>.<NNN>.ndjson[.gz]` (numbered per type within each array)
//! under the workdir, `error/` or `deleted/`. A type name from the server becomes part of a file
//! name, so only plain resource-type names are accepted.

use super::BulkError;
use super::events::ItemType;
use crate::ndjson;
use serde_json::Value;
use std::collections::HashMap;

/// One file to download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub item: ItemType,
    pub resource_type: String,
    pub url: String,
    /// Path relative to the workdir, `/`-separated, e.g. `error/OperationOutcome.001.ndjson.gz`.
    pub rel_path: String,
}

#[derive(Debug)]
pub struct Manifest {
    /// `transactionTime` as the server spelled it (or null).
    pub transaction_time: Value,
    pub requires_access_token: bool,
    pub files: Vec<FileEntry>,
    /// Lengths of the `output`, `deleted` and `error` arrays (for the log).
    pub outputs: usize,
    pub deleted: usize,
    pub errors: usize,
}

fn valid_type(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
}

pub fn parse(body: &Value, compress: bool) -> Result<Manifest, BulkError> {
    if !body.is_object() {
        return Err(BulkError::Message(
            "The bulk FHIR export server sent a manifest that is not a JSON object.".into(),
        ));
    }
    let array = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], |a| a.as_slice())
    };
    let mut files = Vec::new();
    for (item, key, folder) in [
        (ItemType::Output, "output", ""),
        (ItemType::Error, "error", "error/"),
        (ItemType::Deleted, "deleted", "deleted/"),
    ] {
        let mut numbers: HashMap<String, usize> = HashMap::new();
        for entry in array(key) {
            let resource_type = entry.get("type").and_then(Value::as_str).unwrap_or("None");
            if !valid_type(resource_type) {
                return Err(BulkError::Message(format!(
                    "The bulk FHIR export manifest names an invalid resource type '{}'.",
                    crate::text::printable(resource_type)
                )));
            }
            let Some(url) = entry
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            else {
                return Err(BulkError::Message(format!(
                    "The bulk FHIR export manifest has a '{key}' entry without a URL."
                )));
            };
            let n = numbers.entry(resource_type.to_string()).or_default();
            *n += 1;
            let base = format!("{resource_type}.{:03}", *n);
            files.push(FileEntry {
                item,
                resource_type: resource_type.to_string(),
                url: url.to_string(),
                rel_path: format!("{folder}{}", ndjson::file_name(&base, compress)),
            });
        }
    }
    Ok(Manifest {
        transaction_time: body.get("transactionTime").cloned().unwrap_or(Value::Null),
        requires_access_token: body
            .get("requiresAccessToken")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        files,
        outputs: array("output").len(),
        deleted: array("deleted").len(),
        errors: array("error").len(),
    })
}

#[cfg(test)]
mod tests {
    mod properties {
        //! Whatever a status answer holds, reading it as a manifest never panics, and every
        //! file it names gets a plain file name inside the folder.
        use super::super::*;
        use proptest::prelude::*;

        fn manifests() -> impl Strategy<Value = String> {
            let name = prop_oneof![
                Just("Condition".to_string()),
                Just("../../etc/passwd".to_string()),
                Just("Patient/../x".to_string()),
                "\\PC{0,10}",
            ];
            let url = prop_oneof![
                Just("https://ehr/files/1".to_string()),
                Just("file:///etc/passwd".to_string()),
                "\\PC{0,20}",
            ];
            let item = (name, url, any::<i64>()).prop_map(|(t, u, n)| {
                serde_json::json!({"type": t, "url": u, "count": n}).to_string()
            });
            prop_oneof![
                "\\PC{0,200}",
                (proptest::collection::vec(item.clone(), 0..4), proptest::collection::vec(item, 0..3), any::<bool>())
                    .prop_map(|(out, err, token)| format!(
                        r#"{{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":{token},"output":[{}],"error":[{}]}}"#,
                        out.join(","),
                        err.join(",")
                    )),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn manifests_never_panic(text in manifests()) {
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if let Ok(manifest) = parse(&value, true) {
                    for file in &manifest.files {
                        let plain = file
                            .rel_path
                            .split('/')
                            .all(|part| !part.is_empty() && part != ".." && part != ".");
                        prop_assert!(plain, "{}", file.rel_path);
                    }
                }
            }
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn names_files_per_type_and_array() {
        let body = json!({
            "transactionTime": "2024-10-16T12:00:00-05:00",
            "requiresAccessToken": true,
            "output": [
                {"type": "Patient", "url": "http://x/1"},
                {"type": "Condition", "url": "http://x/2"},
                {"type": "Patient", "url": "http://x/3"}
            ],
            "error": [{"type": "OperationOutcome", "url": "http://x/4"}],
            "deleted": [{"type": "Bundle", "url": "http://x/5"}]
        });
        let m = parse(&body, true).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = m.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(
            names,
            [
                "Patient.001.ndjson.gz",
                "Condition.001.ndjson.gz",
                "Patient.002.ndjson.gz",
                "error/OperationOutcome.001.ndjson.gz",
                "deleted/Bundle.001.ndjson.gz"
            ]
        );
        assert!(m.requires_access_token);
        assert_eq!((m.outputs, m.deleted, m.errors), (3, 1, 1));
        let plain = parse(&json!({"output": [{"type": "Patient", "url": "u"}]}), false);
        assert_eq!(
            plain.map(|m| m.files[0].rel_path.clone()).ok().as_deref(),
            Some("Patient.001.ndjson")
        );
    }

    #[test]
    fn refuses_path_tricks() {
        let body = json!({"output": [{"type": "../../etc/passwd", "url": "http://x/1"}]});
        assert!(parse(&body, true).is_err());
        assert!(parse(&json!({"output": [{"type": "Patient"}]}), true).is_err());
        assert!(parse(&json!([]), true).is_err());
    }
}
