//! What earlier exports of a managed folder say about this one (docs/since.md#since-auto,
//! docs/export.md#new-deleted-and-merged-patients, docs/export.md#deleted-resources): `--since
//! auto` timestamps, new and merged patients, and resources that are gone. Reads workdirs written
//! by either tool; the only thing it writes is `deleted/` files.
//!
//! Deliberately stricter than the Python tool, because a hospital's ETL deletes whatever
//! `deleted/` names: like is compared with like. A baseline's *searched* files count when
//! it has exactly the current filters for the type (a broader old export would make
//! everything outside the current filter look deleted); its *hydrated* files count only
//! when it ran the same hydration for the type, recorded in `.metadata`, from inputs
//! exported in full with the same filters (a hydrated Observation is in the export because
//! a report pointed at it: with other reports, or other tasks, its absence means nothing).
//! A reference the server answered 404/410 for during hydration is gone whatever the
//! baseline, provided we exported it before. Shared resources (practitioners, locations,
//! organizations, medications) are named only on such an answer: many patients and groups
//! point at them, so one group no longer doing so does not make them gone. Anything present
//! anywhere in the current workdir is never reported.

use super::metadata::{ExportContext, OutputMetadata};
use super::{FolderError, discovery, workdir};
use crate::hydrate::evidence::HydrationReport;
use crate::hydrate::tasks::{self, Action, Task};
use crate::ndjson::{self, SafeWriter};
use crate::report::Reporter;
use crate::resources::ResourceType;
use crate::timestamp::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// docs/since.md#since-auto: per type, the newest matching done time over every workdir. Empty when
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
pub fn patient_map(dir: &Path, reporter: &Reporter) -> HashMap<String, HashSet<String>> {
    let mut map: HashMap<String, HashSet<String>> = HashMap::new();
    for file in discovery::files_of_type(dir, "Patient", reporter) {
        for p in ndjson::read_values(&file, reporter) {
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

/// The newest other workdir that fetched Patients the same way: Patient done there, with the same
/// Patient filter (none counts as unfiltered, as for ID lookups when Patient is not a selected
/// type). docs/export.md#new-deleted-and-merged-patients uses the matching rule of
/// docs/since.md#matching-earlier-exports instead, which misses ID-lookup exports when Patient is
/// not selected.
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

/// docs/export.md#new-deleted-and-merged-patients: patients new since `previous` (or whose record
/// absorbed another one in a merge), and patients gone.
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

/// docs/export.md#new-deleted-and-merged-patients "new patients for resource type T": patients
/// recorded as new in this workdir or in any newer workdir than the last one that exported `t` with
/// matching filters.
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

/// docs/export.md#deleted-resources with the stricter rules above, searched files only: ids of `t`
/// that the last full export with the same filters (and any since exports after it) had, and that
/// the current workdir lacks.
pub fn deleted_ids(
    managed_dir: &Path,
    current: &Path,
    t: ResourceType,
    ctx: &ExportContext,
    reporter: &Reporter,
) -> BTreeSet<String> {
    let others = other_workdirs(managed_dir, current);
    let Some(past) = searched_past(&others, t, ctx, reporter) else {
        return BTreeSet::new();
    };
    let now = discovery::ids_of_type(current, t.as_str(), reporter);
    past.into_iter().filter(|id| !now.contains(id)).collect()
}

/// The export whose `deleted/` files are being decided.
pub struct CurrentExport<'a> {
    pub managed_dir: &'a Path,
    pub workdir: &'a Path,
    pub context: &'a ExportContext,
    /// Selected types this run searched (or bulk-exported) itself; since-restricted ones
    /// among them are left out here.
    pub searched: &'a [ResourceType],
    /// The hydration tasks the run was asked to run.
    pub tasks: &'a [&'static Task],
    pub hydration: &'a HydrationReport,
    /// Types whose failed searches the user accepted (`--allow-incomplete`): they lack some
    /// patients' resources, so neither they nor what they feed are compared.
    pub accepted: &'a [ResourceType],
    /// Hears about files that cannot be read.
    pub reporter: &'a Reporter,
}

/// docs/export.md#deleted-resources for every type the export holds, by the rules of this module:
/// type → ids to name in `deleted/` (types with nothing to name are left out).
pub fn deleted_resources(cur: &CurrentExport) -> BTreeMap<ResourceType, BTreeSet<String>> {
    let others = other_workdirs(cur.managed_dir, cur.workdir);
    let mut types: BTreeSet<ResourceType> = cur.searched.iter().copied().collect();
    types.extend(
        cur.tasks
            .iter()
            .filter(|t| !matches!(t.action, Action::Inline))
            .map(|t| t.output)
            .filter(|t| t.is_patient_type()),
    );
    types.extend(cur.hydration.gone.keys().copied());
    let mut out = BTreeMap::new();
    for t in types {
        if cur.accepted.contains(&t) {
            continue;
        }
        let mut past: HashSet<String> = HashSet::new();
        if cur.searched.contains(&t) && !cur.context.since_resources.contains(&t) {
            past.extend(searched_past(&others, t, cur.context, cur.reporter).unwrap_or_default());
        }
        if t.is_patient_type() {
            past.extend(hydrated_past(&others, cur, t).unwrap_or_default());
        }
        if let Some(gone) = cur.hydration.gone.get(&t) {
            past.extend(exported_before(&others, t, gone, cur.reporter));
        }
        if past.is_empty() {
            continue;
        }
        let now = discovery::ids_of_type(cur.workdir, t.as_str(), cur.reporter);
        let ids: BTreeSet<String> = past.into_iter().filter(|id| !now.contains(id)).collect();
        if !ids.is_empty() {
            out.insert(t, ids);
        }
    }
    out
}

/// Every workdir of the managed folder but `current`, newest first, with its `.metadata`
/// (those whose `.metadata` cannot be read are left out: nothing can be said about them).
fn other_workdirs(managed_dir: &Path, current: &Path) -> Vec<(PathBuf, OutputMetadata)> {
    workdir::list(managed_dir)
        .into_iter()
        .filter(|w| !same_dir(&w.path, current))
        .filter_map(|w| Some((w.path.clone(), OutputMetadata::load(&w.path).ok()?)))
        .collect()
}

/// Searched ids of `t` in the newest earlier full export with the current filters for `t`
/// and in any since exports after it; `None` when there is no such full export.
fn searched_past(
    others: &[(PathBuf, OutputMetadata)],
    t: ResourceType,
    ctx: &ExportContext,
    reporter: &Reporter,
) -> Option<HashSet<String>> {
    let current_filter = ctx.filters.get(&t)?;
    let mut past = HashSet::new();
    for (dir, meta) in others {
        if meta.filter_of(t).as_ref() != Some(current_filter) || !meta.is_done(t) {
            continue;
        }
        past.extend(searched_ids(dir, t, reporter));
        if !meta.since_resources().contains(t.as_str()) {
            return Some(past);
        }
    }
    // Only since exports so far: nothing to compare a full list with.
    None
}

/// What feeds type `t` through hydration: the tasks that write `t`, the tasks that write
/// their input types, and so on (Specimen ← obs-spec ← Observation ← dxr-results), and the
/// input types of all of those.
struct Feed {
    tasks: BTreeSet<&'static str>,
    /// `t` and every type a feeding task writes.
    outputs: BTreeSet<ResourceType>,
    inputs: BTreeSet<ResourceType>,
}

fn feed(t: ResourceType, selected: &[&'static Task]) -> Feed {
    let mut feed = Feed {
        tasks: BTreeSet::new(),
        outputs: [t].into_iter().collect(),
        inputs: BTreeSet::new(),
    };
    let mut todo = vec![t];
    while let Some(u) = todo.pop() {
        let writers = selected
            .iter()
            .filter(|task| task.output == u && !matches!(task.action, Action::Inline));
        for task in writers {
            feed.tasks.insert(task.name);
            feed.inputs.insert(task.input);
            if feed.outputs.insert(task.input) {
                todo.push(task.input);
            }
        }
    }
    feed
}

/// Ids of `t` in the hydrated files of the newest earlier export that ran the same
/// hydration for `t` from inputs exported in full with the current filters, and of the
/// since exports after it that ran the same hydration; `None` when the current export is
/// not such a full one, or no earlier one is.
fn hydrated_past(
    others: &[(PathBuf, OutputMetadata)],
    cur: &CurrentExport,
    t: ResourceType,
) -> Option<HashSet<String>> {
    let feed = feed(t, cur.tasks);
    if feed.tasks.is_empty() {
        return None;
    }
    // The current export must hold all of it: every feeding task complete, every input
    // exported without a since restriction.
    let completed: BTreeSet<&str> = cur.hydration.completed.iter().copied().collect();
    if !feed.tasks.iter().all(|n| completed.contains(n))
        || feed
            .inputs
            .iter()
            .any(|i| cur.context.since_resources.contains(i) || cur.accepted.contains(i))
    {
        return None;
    }
    let mut past = HashSet::new();
    for (dir, meta) in others {
        if !same_hydration(meta, &feed, cur.context) {
            continue;
        }
        past.extend(hydrated_ids(dir, t, &feed, cur.reporter));
        let since = meta.since_resources();
        if !feed.inputs.iter().any(|i| since.contains(i.as_str())) {
            return Some(past);
        }
    }
    None
}

/// Whether a workdir recorded exactly the feeding tasks as complete among the tasks that
/// write the feed's types, and exported each input type (done) with the current filters.
fn same_hydration(meta: &OutputMetadata, feed: &Feed, ctx: &ExportContext) -> bool {
    let Some(recorded) = meta.hydration_tasks() else {
        return false;
    };
    // A task this version does not know might write anything: not comparable.
    if recorded
        .iter()
        .any(|n| !tasks::TASKS.iter().any(|t| t.name == n))
    {
        return false;
    }
    let same_tasks = tasks::TASKS
        .iter()
        .filter(|t| feed.outputs.contains(&t.output) && !matches!(t.action, Action::Inline))
        .all(|t| recorded.contains(t.name) == feed.tasks.contains(t.name));
    same_tasks
        && feed.inputs.iter().all(|i| {
            let filter = meta.filter_of(*i);
            filter.as_ref() == ctx.filters.get(i) && (filter.is_none() || meta.is_done(*i))
        })
}

/// Ids of `t` in the files the feeding tasks that write `t` append to.
fn hydrated_ids(dir: &Path, t: ResourceType, feed: &Feed, reporter: &Reporter) -> HashSet<String> {
    let mut ids = HashSet::new();
    let bases: BTreeSet<String> = tasks::TASKS
        .iter()
        .filter(|task| task.output == t && feed.tasks.contains(task.name))
        .filter_map(|task| task.output_base())
        .collect();
    for base in bases {
        for compress in [false, true] {
            let file = dir.join(ndjson::file_name(&base, compress));
            if file.is_file() {
                ids.extend(ids_in(&file, t, reporter));
            }
        }
    }
    ids
}

/// Those of `ids` that an earlier workdir holds in any file of type `t`.
fn exported_before(
    others: &[(PathBuf, OutputMetadata)],
    t: ResourceType,
    ids: &BTreeSet<String>,
    reporter: &Reporter,
) -> Vec<String> {
    let mut held: HashSet<String> = HashSet::new();
    for (dir, _) in others {
        held.extend(
            discovery::ids_of_type(dir, t.as_str(), reporter)
                .into_iter()
                .filter(|id| ids.contains(id)),
        );
        if held.len() == ids.len() {
            break;
        }
    }
    held.into_iter().collect()
}

/// Ids from the files a search or bulk export wrote (`<T>.ndjson*`, `<T>.NNN.ndjson*`),
/// not from hydration outputs such as `Observation.results.ndjson.gz`.
fn searched_ids(dir: &Path, t: ResourceType, reporter: &Reporter) -> HashSet<String> {
    let mut ids = HashSet::new();
    for file in discovery::files_of_type(dir, t.as_str(), reporter) {
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
        ids.extend(ids_in(&file, t, reporter));
    }
    ids
}

/// Ids of the resources of type `t` in one file.
fn ids_in(file: &Path, t: ResourceType, reporter: &Reporter) -> impl Iterator<Item = String> {
    ndjson::read_fields(file, &["resourceType", "id"], reporter).filter_map(move |r| {
        if r.get("resourceType").and_then(Value::as_str) != Some(t.as_str()) {
            return None;
        }
        Some(r.get("id")?.as_str()?.to_string())
    })
}

/// Write `<workdir>/deleted/Bundle.<T>.ndjson[.gz]` (docs/export.md#deleted-resources format),
/// replacing any earlier one. Nothing is written for an empty set.
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
    use crate::folder::discovery::tests::{temp_dir, write};
    use crate::resources::ResourceType::{DiagnosticReport, Observation, Practitioner};

    fn map(entries: &[(&str, &[&str])]) -> HashMap<String, HashSet<String>> {
        entries
            .iter()
            .map(|(id, r)| (id.to_string(), r.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn merges_make_the_survivor_new_and_the_absorbed_deleted() {
        // docs/export.md#new-deleted-and-merged-patients scenario: {pat1,pat2,pat3} then pat2
        // replaces pat1, pat4 arrives.
        let before = map(&[("pat1", &[]), ("pat2", &[]), ("pat3", &[])]);
        let after = map(&[("pat2", &["pat1"]), ("pat3", &[]), ("pat4", &[])]);
        let (new, deleted) = new_and_deleted_patients(&before, &after);
        assert_eq!(new.into_iter().collect::<Vec<_>>(), ["pat2", "pat4"]);
        assert_eq!(deleted.into_iter().collect::<Vec<_>>(), ["pat1"]);
    }

    fn tasks_named(names: &[&str]) -> Vec<&'static Task> {
        names
            .iter()
            .map(|n| match tasks::TASKS.iter().find(|t| t.name == *n) {
                Some(t) => t,
                None => panic!("no task {n}"),
            })
            .collect()
    }

    fn lines(ty: &str, ids: &[&str]) -> String {
        ids.iter()
            .map(|id| format!("{{\"resourceType\":\"{ty}\",\"id\":\"{id}\"}}\n"))
            .collect()
    }

    /// A workdir whose `.metadata` is `meta` (JSON text) and whose files are `files`.
    fn workdir_with(dir: &Path, meta: &str, files: &[(&str, String)]) {
        write(&dir.join(".metadata"), meta);
        for (name, text) in files {
            write(&dir.join(name), text);
        }
    }

    fn meta(dxr_filter: &str, since: &str, tasks: Option<&str>) -> String {
        let tasks = tasks.map_or(String::new(), |t| format!(r#", "hydrationTasks": [{t}]"#));
        format!(
            r#"{{"kind": "output", "filters": {{"DiagnosticReport": [{dxr_filter}], "Observation": ["category=laboratory"]}}, "sinceResources": [{since}], "done": {{"DiagnosticReport": "2026-01-01T00:00:00Z", "Observation": "2026-01-01T00:00:00Z"}}{tasks}}}"#
        )
    }

    const OBS_TASKS: &str = r#""dxr-results", "obs-members""#;

    fn context() -> ExportContext {
        ExportContext {
            filters: [
                (DiagnosticReport, BTreeSet::new()),
                (Observation, ["category=laboratory".to_string()].into()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    /// Managed folder: `001.a` as `baseline` says, current `002.b` holding s1 (searched)
    /// and h1 (hydrated); the baseline held s1, h1 and h2.
    fn deleted_with(
        baseline: &str,
        completed: &[&'static str],
        gone: &[(ResourceType, &str)],
    ) -> BTreeMap<ResourceType, BTreeSet<String>> {
        let managed = temp_dir("history-hydrated");
        workdir_with(
            &managed.join("001.a"),
            baseline,
            &[
                ("Observation.ndjson", lines("Observation", &["s1"])),
                (
                    "Observation.results.ndjson.gz",
                    lines("Observation", &["h1", "h2"]),
                ),
                (
                    "Practitioner.referenced.ndjson",
                    lines("Practitioner", &["p1", "p2"]),
                ),
            ],
        );
        let current = managed.join("002.b");
        workdir_with(
            &current,
            &meta("", "", None),
            &[
                ("Observation.ndjson", lines("Observation", &["s1"])),
                (
                    "Observation.results.ndjson.gz",
                    lines("Observation", &["h1"]),
                ),
            ],
        );
        let selected = tasks_named(&["dxr-results", "obs-members", "dxr-pract", "obs-pract"]);
        let mut report = HydrationReport {
            completed: completed.to_vec(),
            gone: BTreeMap::new(),
        };
        for (t, id) in gone {
            report.gone.entry(*t).or_default().insert(id.to_string());
        }
        let ctx = context();
        let out = deleted_resources(&CurrentExport {
            managed_dir: &managed,
            workdir: &current,
            context: &ctx,
            searched: &[DiagnosticReport, Observation],
            tasks: &selected,
            hydration: &report,
            accepted: &[],
            reporter: &Reporter::silent(),
        });
        let _ = std::fs::remove_dir_all(&managed);
        out
    }

    fn named(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    const ALL: [&str; 4] = ["dxr-results", "obs-members", "dxr-pract", "obs-pract"];

    #[test]
    fn hydrated_files_count_only_between_the_same_hydrations() {
        let same = meta("", "", Some(OBS_TASKS));
        let got = deleted_with(&same, &ALL, &[]);
        assert_eq!(got.get(&Observation), Some(&named(&["h2"])));
        // Shared resources no longer referenced are not gone.
        assert!(!got.contains_key(&Practitioner));
        // Tasks writing other types do not matter; an unknown task might write anything.
        let more = meta("", "", Some(r#""dxr-results", "obs-members", "obs-spec""#));
        assert_eq!(deleted_with(&more, &ALL, &[]).len(), 1);
        let unknown = meta("", "", Some(r#""dxr-results", "obs-members", "x-y""#));
        assert!(deleted_with(&unknown, &ALL, &[]).is_empty());
        // No record (the Python tool), other tasks, other input filters, an incomplete
        // task now, a since export now: searched files only (nothing gone there).
        assert!(deleted_with(&meta("", "", None), &ALL, &[]).is_empty());
        let fewer = meta("", "", Some(r#""dxr-results""#));
        assert!(deleted_with(&fewer, &ALL, &[]).is_empty());
        let filtered = meta(r#""code=x""#, "", Some(OBS_TASKS));
        assert!(deleted_with(&filtered, &ALL, &[]).is_empty());
        assert!(deleted_with(&same, &["dxr-results", "dxr-pract"], &[]).is_empty());
        // A since baseline alone is no full list.
        let since = meta("", r#""DiagnosticReport""#, Some(OBS_TASKS));
        assert!(deleted_with(&since, &ALL, &[]).is_empty());
    }

    #[test]
    fn gone_on_read_is_named_when_exported_before() {
        // Whatever the baseline, shared types included; never what was never exported.
        let python = meta("", "", None);
        let gone = [
            (Observation, "h2"),
            (Observation, "never"),
            (Practitioner, "p1"),
            (Practitioner, "p9"),
        ];
        let got = deleted_with(&python, &[], &gone);
        assert_eq!(got.get(&Observation), Some(&named(&["h2"])));
        assert_eq!(got.get(&Practitioner), Some(&named(&["p1"])));
        // Present in the current workdir after all: never named.
        let got = deleted_with(&python, &[], &[(Observation, "h1")]);
        assert!(got.is_empty());
    }

    #[test]
    fn since_exports_after_the_baseline_add_their_hydrated_ids() {
        let managed = temp_dir("history-since");
        let hydrated = |ids: &[&str]| -> Vec<(&'static str, String)> {
            vec![("Observation.results.ndjson", lines("Observation", ids))]
        };
        workdir_with(
            &managed.join("001.full"),
            &meta("", "", Some(OBS_TASKS)),
            &hydrated(&["h1", "h2"]),
        );
        let since = meta("", r#""DiagnosticReport", "Observation""#, Some(OBS_TASKS));
        workdir_with(&managed.join("002.since"), &since, &hydrated(&["h3"]));
        // A full export with other tasks in between is skipped, not a stop.
        let other = meta("", "", Some(r#""dxr-results""#));
        workdir_with(&managed.join("003.other"), &other, &hydrated(&["h4"]));
        let current = managed.join("004.now");
        workdir_with(&current, &meta("", "", None), &hydrated(&["h1"]));
        let selected = tasks_named(&["dxr-results", "obs-members"]);
        let report = HydrationReport {
            completed: vec!["dxr-results", "obs-members"],
            gone: BTreeMap::new(),
        };
        let ctx = context();
        let got = deleted_resources(&CurrentExport {
            managed_dir: &managed,
            workdir: &current,
            context: &ctx,
            searched: &[],
            tasks: &selected,
            hydration: &report,
            accepted: &[],
            reporter: &Reporter::silent(),
        });
        assert_eq!(got.get(&Observation), Some(&named(&["h2", "h3"])));
        let _ = std::fs::remove_dir_all(&managed);
    }
}
