//! What earlier exports of a managed folder say about this one (spec §14.4, §14.7, §14.8):
//! `--since auto` timestamps, new and merged patients, and resources that are gone. Reads
//! workdirs written by either tool; the only thing it writes is `deleted/` files.
//!
//! Deliberately stricter than the Python tool, because a hospital's ETL deletes whatever
//! `deleted/` names: a baseline must have exactly the current filters (a broader old export
//! would make everything outside the current filter look deleted), only *searched* files of
//! the baseline count (a hydrated Observation that is no longer referenced is not gone), and
//! anything present anywhere in the current workdir is never reported.

use super::metadata::{ExportContext, OutputMetadata};
use super::{FolderError, discovery, workdir};
use crate::ndjson::{self, SafeWriter};
use crate::resources::ResourceType;
use crate::timestamp::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Spec §14.4: per type, the newest matching done time over every workdir. Empty when
/// nothing matched at all (the caller reports that).
pub fn since_auto(managed_dir: &Path, ctx: &ExportContext) -> BTreeMap<ResourceType, Timestamp> {
    let mut out: BTreeMap<ResourceType, Timestamp> = BTreeMap::new();
    for w in workdir::list(managed_dir) {
        let Ok(meta) = OutputMetadata::load(&w.path) else {
            continue;
        };
        for (t, ts) in meta.matching_timestamps(ctx) {
            let newer = out.get(&t).is_none_or(|old| ts > *old);
            if newer {
                out.insert(t, ts);
            }
        }
    }
    out
}

/// Patient id → ids it replaces (`link[type=replaces]`), for every Patient in `dir`.
pub fn patient_map(dir: &Path) -> HashMap<String, HashSet<String>> {
    let mut map: HashMap<String, HashSet<String>> = HashMap::new();
    for file in discovery::files_of_type(dir, "Patient") {
        for p in ndjson::read_values(&file) {
            let Some(id) = p.get("id").and_then(Value::as_str) else {
                continue;
            };
            map.entry(id.to_string())
                .or_default()
                .extend(replaced_ids(&p));
        }
    }
    map
}

/// Ids a Patient's `link[type=replaces]` names (the records it absorbed in a merge).
pub fn replaced_ids(patient: &Value) -> HashSet<String> {
    patient
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| l.get("type").and_then(Value::as_str) == Some("replaces"))
        .filter_map(|l| l.get("other")?.get("reference")?.as_str())
        .filter_map(|r| r.strip_prefix("Patient/"))
        .map(str::to_string)
        .collect()
}

/// The newest other workdir that fetched Patients the same way: Patient done there, with
/// the same Patient filter (none counts as unfiltered, as for ID lookups when Patient is
/// not a selected type). Spec §14.7 uses the matching rule of §14.5 instead, which misses
/// ID-lookup exports when Patient is not selected.
pub fn previous_patient_export(
    managed_dir: &Path,
    current: &Path,
    patient_filter: Option<&BTreeSet<String>>,
) -> Option<PathBuf> {
    let wanted = patient_filter.cloned().unwrap_or_default();
    workdir::list(managed_dir)
        .into_iter()
        .filter(|w| !same_dir(&w.path, current))
        .find(|w| {
            OutputMetadata::load(&w.path).is_ok_and(|m| {
                m.is_done(ResourceType::Patient)
                    && m.filter_of(ResourceType::Patient).unwrap_or_default() == wanted
            })
        })
        .map(|w| w.path)
}

/// Spec §14.7: patients new since `previous` (or whose record absorbed another one in a
/// merge), and patients gone.
pub fn new_and_deleted_patients(
    previous: &HashMap<String, HashSet<String>>,
    current: &HashMap<String, HashSet<String>>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut new = BTreeSet::new();
    for (id, replaces) in current {
        match previous.get(id) {
            None => {
                new.insert(id.clone());
            }
            Some(before) if !replaces.is_subset(before) => {
                new.insert(id.clone());
            }
            Some(_) => {}
        }
    }
    let deleted = previous
        .keys()
        .filter(|id| !current.contains_key(*id))
        .cloned()
        .collect();
    (new, deleted)
}

/// Spec §14.7 "new patients for resource type T": patients recorded as new in this workdir
/// or in any newer workdir than the last one that exported `t` with matching filters.
pub fn new_patients_for_type(
    managed_dir: &Path,
    current: &Path,
    t: ResourceType,
    ctx: &ExportContext,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(meta) = OutputMetadata::load(current)
        && let Some(ids) = meta.new_patients()
    {
        out.extend(ids);
    }
    for w in workdir::list(managed_dir) {
        if same_dir(&w.path, current) {
            continue;
        }
        let Ok(meta) = OutputMetadata::load(&w.path) else {
            continue;
        };
        if meta.matching_timestamps(ctx).contains_key(&t) {
            break;
        }
        out.extend(meta.new_patients().unwrap_or_default());
    }
    out
}

/// Spec §14.8 with the stricter rules above: ids of `t` that the last full export with the
/// same filters (and any since exports after it) had, and that the current workdir lacks.
pub fn deleted_ids(
    managed_dir: &Path,
    current: &Path,
    t: ResourceType,
    ctx: &ExportContext,
) -> BTreeSet<String> {
    let Some(current_filter) = ctx.filters.get(&t) else {
        return BTreeSet::new();
    };
    let mut past = HashSet::new();
    let mut found_full = false;
    for w in workdir::list(managed_dir) {
        if same_dir(&w.path, current) {
            continue;
        }
        let Ok(meta) = OutputMetadata::load(&w.path) else {
            continue;
        };
        if meta.filter_of(t).as_ref() != Some(current_filter) || !meta.is_done(t) {
            continue;
        }
        past.extend(searched_ids(&w.path, t));
        if !meta.since_resources().contains(t.as_str()) {
            found_full = true;
            break;
        }
    }
    if !found_full {
        // Only since exports so far: nothing to compare a full list with.
        return BTreeSet::new();
    }
    let now = discovery::ids_of_type(current, t.as_str());
    past.into_iter().filter(|id| !now.contains(id)).collect()
}

/// Ids from the files a search or bulk export wrote (`<T>.ndjson*`, `<T>.NNN.ndjson*`),
/// not from hydration outputs such as `Observation.results.ndjson.gz`.
fn searched_ids(dir: &Path, t: ResourceType) -> HashSet<String> {
    let mut ids = HashSet::new();
    for file in discovery::files_of_type(dir, t.as_str()) {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        let rest = name.strip_prefix(t.as_str()).unwrap_or("");
        let searched = rest.starts_with(".ndjson")
            || rest
                .strip_prefix('.')
                .and_then(|r| r.split('.').next())
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !searched {
            continue;
        }
        for r in ndjson::read_fields(&file, &["resourceType", "id"]) {
            if r.get("resourceType").and_then(Value::as_str) == Some(t.as_str())
                && let Some(id) = r.get("id").and_then(Value::as_str)
            {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

/// Write `<workdir>/deleted/Bundle.<T>.ndjson[.gz]` (spec §14.8 format), replacing any
/// earlier one. Nothing is written for an empty set.
pub fn write_deleted(
    workdir: &Path,
    t: ResourceType,
    ids: &BTreeSet<String>,
    compress: bool,
) -> Result<(), FolderError> {
    if ids.is_empty() {
        return Ok(());
    }
    let dir = workdir.join("deleted");
    let io = |source| FolderError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let target = dir.join(ndjson::file_name(&format!("Bundle.{t}"), compress));
    let mut writer = SafeWriter::new(target, false);
    for id in ids {
        let entry = json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": format!("{t}/{id}")}}],
        });
        writer.write(&entry).map_err(io)?;
    }
    writer.commit().map_err(io)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[&str])]) -> HashMap<String, HashSet<String>> {
        entries
            .iter()
            .map(|(id, r)| (id.to_string(), r.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn merges_make_the_survivor_new_and_the_absorbed_deleted() {
        // Spec §14.7 scenario: {pat1,pat2,pat3} then pat2 replaces pat1, pat4 arrives.
        let before = map(&[("pat1", &[]), ("pat2", &[]), ("pat3", &[])]);
        let after = map(&[("pat2", &["pat1"]), ("pat3", &[]), ("pat4", &[])]);
        let (new, deleted) = new_and_deleted_patients(&before, &after);
        assert_eq!(new.into_iter().collect::<Vec<_>>(), ["pat2", "pat4"]);
        assert_eq!(deleted.into_iter().collect::<Vec<_>>(), ["pat1"]);
    }
}
