//! New and newly merged patients of a managed bulk export
//! (docs/export.md#new-deleted-and-merged-patients, "find new patients";
//! docs/bulk.md#running-a-bulk-export step 6): compared with the newest earlier export of Patient
//! that covers the same filters, the patients that appeared, and those that absorbed another record
//! (a `link[type=replaces]` they did not have before), whose history must be fetched in full.
//! Deleted patients are not computed: a bulk export's server reports them itself.

use crate::folder::{ExportContext, OutputMetadata, discovery, workdir};
use crate::ndjson;
use crate::report::Reporter;
use crate::resources::ResourceType;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Patient id → ids it replaces, for every Patient in `dir`.
fn patient_map(dir: &Path, reporter: &Reporter) -> HashMap<String, BTreeSet<String>> {
    let mut map: HashMap<String, BTreeSet<String>> = HashMap::new();
    for path in discovery::files_of_type(dir, "Patient", reporter) {
        for patient in ndjson::read_values(&path, reporter) {
            let Some(id) = patient.get("id").and_then(Value::as_str) else {
                continue;
            };
            let replaces = map.entry(id.to_string()).or_default();
            for link in patient
                .get("link")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if link.get("type").and_then(Value::as_str) != Some("replaces") {
                    continue;
                }
                let reference = link.pointer("/other/reference").and_then(Value::as_str);
                if let Some(other) = reference.and_then(|r| r.strip_prefix("Patient/")) {
                    replaces.insert(other.to_string());
                }
            }
        }
    }
    map
}

/// The new patients of `current` (a workdir of `managed_dir`), or `None` when no earlier
/// export of Patient matches the current filters (a first export has no "new" patients).
pub fn new_patients(
    managed_dir: &Path,
    current: &Path,
    ctx: &ExportContext,
    reporter: &Reporter,
) -> Option<BTreeSet<String>> {
    let previous = workdir::list(managed_dir).into_iter().find(|w| {
        !same_dir(&w.path, current)
            && OutputMetadata::load(&w.path).is_ok_and(|m| {
                m.matching_timestamps(ctx)
                    .contains_key(&ResourceType::Patient)
            })
    })?;
    let before = patient_map(&previous.path, reporter);
    let now = patient_map(current, reporter);
    let mut new = BTreeSet::new();
    for (id, replaces) in &now {
        match before.get(id) {
            None => {
                new.insert(id.clone());
            }
            Some(old) if !replaces.is_subset(old) => {
                new.insert(id.clone());
            }
            Some(_) => {}
        }
    }
    Some(new)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Filters;
    use crate::folder::discovery::tests::temp_dir;
    use crate::timestamp;

    fn write_patients(dir: &Path, lines: &[&str]) {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join("Patient.001.ndjson"), lines.join("\n") + "\n");
    }

    #[test]
    fn new_and_merged_patients() {
        let managed = temp_dir("bulk-new-patients");
        let ctx = ExportContext {
            filters: Filters::from([(ResourceType::Patient, BTreeSet::new())]),
            ..ExportContext::default()
        };
        let first = managed.join("001.a");
        write_patients(
            &first,
            &[
                r#"{"resourceType":"Patient","id":"pat1"}"#,
                r#"{"resourceType":"Patient","id":"pat3"}"#,
            ],
        );
        let current = managed.join("002.b");
        write_patients(
            &current,
            &[
                r#"{"resourceType":"Patient","id":"pat1"}"#,
                r#"{"resourceType":"Patient","id":"pat2","link":[{"type":"replaces","other":{"reference":"Patient/pat9"}}]}"#,
                r#"{"resourceType":"Patient","id":"pat3","link":[{"type":"replaces","other":{"reference":"Patient/pat4"}}]}"#,
            ],
        );
        // No earlier export of Patient yet.
        assert_eq!(
            new_patients(&managed, &current, &ctx, &Reporter::silent()),
            None
        );
        let mut meta = OutputMetadata::load(&first).unwrap_or_else(|e| panic!("{e}"));
        assert!(meta.note_context(&ctx).is_ok());
        assert!(
            meta.mark_done(ResourceType::Patient, &timestamp::now())
                .is_ok()
        );
        let new = new_patients(&managed, &current, &ctx, &Reporter::silent());
        let want: BTreeSet<String> = ["pat2", "pat3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(new, Some(want));
        let _ = std::fs::remove_dir_all(&managed);
    }
}
