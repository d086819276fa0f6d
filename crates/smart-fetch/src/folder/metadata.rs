//! `.metadata` files (docs/folders.md#writing-metadata): output (workdir) and managed kinds, key
//! order preserved, written atomically as pretty ASCII JSON. Owns the context checks
//! (docs/folders.md#workdir-context-check, docs/folders.md#managed-folder-metadata), the "same
//! context" rule (docs/export.md#choosing-the-workdir) and "matching timestamps"
//! (docs/since.md#matching-earlier-exports). Keeps unknown keys as found; never decides what to
//! export and never prints.

use super::FolderError;
use crate::filters::{Filters, SinceMode};
use crate::json;
use crate::ndjson;
use crate::resources::ResourceType;
use crate::timestamp::{self, Timestamp};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// File name inside every workdir and managed folder.
pub const FILE_NAME: &str = ".metadata";

const KIND_OUTPUT: &str = "output";
const KIND_MANAGED: &str = "managed";
/// Ours, not the Python tool's: the hydration tasks whose run in this workdir finished with every
/// reference answered (docs/export.md#deleted-resources compares hydrated files only between
/// exports that ran the same ones). Absent = unknown, so hydrated files are not comparable.
const HYDRATION_TASKS: &str = "hydrationTasks";
/// Ours: the whole managed export (searches, hydration, `deleted/`, symlinks) finished, with
/// a summary of what the workdir holds, so `status` need not read gigabytes. Valid only
/// while its `finished` equals the file's `timestamp`: every later write of `.metadata` (the
/// Python tool's too, which keeps keys it does not know) refreshes `timestamp`, so a marker
/// that no longer describes the files is recognisably stale. Our own writes also drop it.
const EXPORT_COMPLETE: &str = "exportComplete";
/// Ours: per type, the failed searches a crawl accepted with `--allow-incomplete` when it
/// marked the type done. The journal that listed them is gone once the type is done, and a
/// resumed export must still know those types are not whole.
const ACCEPTED_FAILED_SEARCHES: &str = "acceptedFailedSearches";
/// Who wrote the marker: this tool, not the Python one whose version `.metadata` carries.
pub const TOOL: &str = concat!("smart-fetch (Rust) ", env!("CARGO_PKG_VERSION"));

/// The summary recorded when a whole managed export finished (`exportComplete`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportCompletion {
    /// When it finished (isoformat, the `.metadata` timestamp of that write).
    pub finished: String,
    /// `smart-fetch (Rust) <version>`.
    pub tool: String,
    /// Lines of the workdir's Patient files.
    pub patients: u64,
    /// Lines of the workdir's NDJSON files by type (`folder::contents`).
    pub resources: BTreeMap<String, u64>,
    /// Entries in `deleted/` by type.
    pub deleted: BTreeMap<String, u64>,
    /// Failed searches accepted with `--allow-incomplete`, by type (Patient = ID lookups).
    pub accepted_failed_searches: BTreeMap<String, u64>,
    /// Hydration reads still failing, accepted with `--allow-incomplete`, by what they fetch.
    pub accepted_failed_reads: BTreeMap<String, u64>,
}

/// What a crawl or bulk run is exporting, compared against a workdir's stored context.
#[derive(Clone, Debug, Default)]
pub struct ExportContext {
    /// Base filters, without since parameters.
    pub filters: Filters,
    /// `--since` as given (`"auto"` stored literally).
    pub since: Option<String>,
    pub since_mode: Option<SinceMode>,
    pub since_resources: BTreeSet<ResourceType>,
}

/// Read `<dir>/.metadata`; missing (or blank) = empty. A different `kind` is an error.
fn load_map(dir: &Path, expected_kind: &'static str) -> Result<Map<String, Value>, FolderError> {
    let path = dir.join(FILE_NAME);
    let corrupt = |message: String| FolderError::Corrupt {
        path: path.display().to_string(),
        message,
    };
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(corrupt(e.to_string())),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let data = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(corrupt("not a JSON object".to_string())),
        Err(e) => return Err(corrupt(e.to_string())),
    };
    if let Some(kind) = data.get("kind")
        && kind.as_str() != Some(expected_kind)
    {
        return Err(FolderError::WrongKind {
            folder: dir.display().to_string(),
            expected: expected_kind,
            found: py_str(kind),
        });
    }
    Ok(data)
}

/// Refresh `kind`/`timestamp`/`version` and replace `<dir>/.metadata` atomically.
fn write_map(dir: &Path, data: &mut Map<String, Value>, kind: &str) -> Result<(), FolderError> {
    write_map_at(dir, data, kind, timestamp::isoformat(&timestamp::now()))
}

/// [`write_map`] with the `timestamp` to write (the completion marker repeats it).
fn write_map_at(
    dir: &Path,
    data: &mut Map<String, Value>,
    kind: &str,
    stamp: String,
) -> Result<(), FolderError> {
    data.insert("kind".into(), Value::String(kind.into()));
    data.insert("timestamp".into(), Value::String(stamp));
    data.insert(
        "version".into(),
        Value::String(crate::COMPAT_VERSION.into()),
    );
    let path = dir.join(FILE_NAME);
    let io_err = |source| FolderError::Io {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(dir).map_err(io_err)?;
    let value = Value::Object(std::mem::take(data));
    let text = json::to_pretty_ascii(&value);
    if let Value::Object(map) = value {
        *data = map;
    }
    ndjson::write_atomic(&path, text.as_bytes()).map_err(io_err)
}

/// How Python's `str()` / f-strings print a JSON value: `None`, bare strings.
fn py_str(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => json::to_log_line(other),
    }
}

fn opt_str_value(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(s.into()))
}

/// Filters as stored: type → sorted array of params, types in canonical order.
pub fn filters_to_json(filters: &Filters) -> Value {
    let map = filters
        .iter()
        .map(|(t, params)| {
            let list = params.iter().cloned().map(Value::String).collect();
            (t.as_str().to_string(), Value::Array(list))
        })
        .collect();
    Value::Object(map)
}

/// The docs/folders.md#workdir-context-check listing: sorted by type, `  T?params` per filter
/// or `  T (no filter)`.
fn pretty_filters(filters: &Value) -> String {
    let Some(map) = filters.as_object() else {
        return format!("  {}", py_str(filters));
    };
    let mut types: Vec<&String> = map.keys().collect();
    types.sort();
    let mut lines = Vec::new();
    for t in types {
        match map.get(t) {
            Some(Value::Array(params)) if !params.is_empty() => {
                lines.extend(params.iter().map(|p| format!("  {t}?{}", py_str(p))));
            }
            _ => lines.push(format!("  {t} (no filter)")),
        }
    }
    lines.join("\n")
}

fn string_set(value: Option<&Value>) -> BTreeSet<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Insert `key = value` unless already equal; report whether anything changed.
fn set_key(data: &mut Map<String, Value>, key: &str, value: Value) -> bool {
    if data.get(key) == Some(&value) {
        return false;
    }
    data.insert(key.to_string(), value);
    true
}

pub struct OutputMetadata {
    dir: PathBuf,
    data: serde_json::Map<String, serde_json::Value>,
}

impl OutputMetadata {
    /// Missing file = empty metadata; a managed `.metadata` is a kind error.
    pub fn load(dir: &Path) -> Result<Self, FolderError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            data: load_map(dir, KIND_OUTPUT)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn raw(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.data
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every write but the marker's own drops the completion marker: whatever changes
    /// `.metadata` after an export finished may change the files too.
    fn write(&mut self) -> Result<(), FolderError> {
        self.data.shift_remove(EXPORT_COMPLETE);
        write_map(&self.dir, &mut self.data, KIND_OUTPUT)
    }

    /// Stored base filters, if any. Types this tool does not know are left out.
    pub fn filters(&self) -> Option<Filters> {
        let map = self.data.get("filters")?.as_object()?;
        let mut filters = Filters::new();
        for (name, params) in map {
            if let Ok(t) = name.parse::<ResourceType>() {
                filters.insert(t, string_set(Some(params)));
            }
        }
        Some(filters)
    }

    /// Stored filter params of one type (`None` when the type is not part of this export).
    pub fn filter_of(&self, t: ResourceType) -> Option<BTreeSet<String>> {
        let params = self.data.get("filters")?.as_object()?.get(t.as_str())?;
        Some(string_set(Some(params)))
    }

    /// Stored `--since` (`None` for a full export or when never noted).
    pub fn since(&self) -> Option<&str> {
        self.data.get("since").and_then(Value::as_str)
    }

    /// Stored since mode (`"updated"` / `"created"`).
    pub fn since_mode(&self) -> Option<&str> {
        self.data.get("sinceMode").and_then(Value::as_str)
    }

    /// Types that had a since restriction in this export (empty = full export of all).
    pub fn since_resources(&self) -> BTreeSet<String> {
        string_set(self.data.get("sinceResources"))
    }

    /// docs/folders.md#workdir-context-check: check then record the context (writes only when
    /// something changed).
    pub fn note_context(&mut self, ctx: &ExportContext) -> Result<(), FolderError> {
        let folder = self.dir.display().to_string();
        let filters = filters_to_json(&ctx.filters);
        if let Some(stored) = self.data.get("filters")
            && *stored != filters
        {
            return Err(FolderError::Mismatch(format!(
                "Folder {folder} is for a different set of types and/or filters. Expected:\n{}\n\nbut found:\n{}",
                pretty_filters(&filters),
                pretty_filters(stored)
            )));
        }
        let since = opt_str_value(ctx.since.as_deref());
        if let Some(stored) = self.data.get("since")
            && *stored != since
        {
            return Err(FolderError::Mismatch(format!(
                "Folder {folder} is for a different --since time. Expected {} but found {}.",
                py_str(&since),
                py_str(stored)
            )));
        }
        let mode = opt_str_value(ctx.since_mode.map(SinceMode::as_str));
        if let Some(stored) = self.data.get("sinceMode")
            && *stored != mode
        {
            return Err(FolderError::Mismatch(format!(
                "Folder {folder} is for a different --since-mode. Expected '{}' but found '{}'.",
                py_str(&mode),
                py_str(stored)
            )));
        }

        let mut changed = set_key(&mut self.data, "filters", filters);
        changed |= set_key(&mut self.data, "since", since);
        if ctx.since.is_some() {
            changed |= set_key(&mut self.data, "sinceMode", mode);
            // Types already finished keep the restriction they were exported with; the
            // rest take this run's.
            let done: BTreeSet<String> = self.done_types();
            let stored = self.since_resources();
            let mut merged: BTreeSet<String> = stored.intersection(&done).cloned().collect();
            merged.extend(
                ctx.since_resources
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .filter(|t| !done.contains(t)),
            );
            let list = merged.into_iter().map(Value::String).collect();
            changed |= set_key(&mut self.data, "sinceResources", Value::Array(list));
        }
        if changed {
            self.write()?;
        }
        Ok(())
    }

    /// docs/export.md#choosing-the-workdir "same context" (the auto-since rule needs the selected
    /// types).
    pub fn has_same_context(&self, ctx: &ExportContext, selected: &[ResourceType]) -> bool {
        if self.data.get("filters") != Some(&filters_to_json(&ctx.filters)) {
            return false;
        }
        let stored_since = self.data.get("since").cloned().unwrap_or(Value::Null);
        if stored_since != opt_str_value(ctx.since.as_deref()) {
            return false;
        }
        if ctx.since.as_deref() == Some("auto") {
            // An auto export is only resumed while unfinished; otherwise start a new one.
            let done = self.done_types();
            if selected.iter().all(|t| done.contains(t.as_str())) {
                return false;
            }
        }
        if ctx.since.is_some() && self.since_mode() != ctx.since_mode.map(SinceMode::as_str) {
            return false;
        }
        true
    }

    /// docs/since.md#matching-earlier-exports: per type, this workdir's done time if its export
    /// covers the current filters (both unfiltered, or the current filters are a non-empty subset
    /// of its own).
    pub fn matching_timestamps(&self, ctx: &ExportContext) -> BTreeMap<ResourceType, Timestamp> {
        let mut out = BTreeMap::new();
        if let (Some(stored), Some(current)) = (self.since_mode(), ctx.since_mode)
            && stored != current.as_str()
        {
            return out;
        }
        let Some(stored) = self.filters() else {
            return out;
        };
        let done = self.done();
        for (t, m) in stored {
            let Some(c) = ctx.filters.get(&t) else {
                continue;
            };
            let matches = (c.is_empty() && m.is_empty()) || (!c.is_empty() && c.is_subset(&m));
            if matches && let Some(ts) = done.get(t.as_str()) {
                out.insert(t, *ts);
            }
        }
        out
    }

    fn done_types(&self) -> BTreeSet<String> {
        self.data
            .get("done")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `done` entries whose timestamp parses.
    pub fn done(&self) -> BTreeMap<String, Timestamp> {
        let Some(map) = self.data.get("done").and_then(Value::as_object) else {
            return BTreeMap::new();
        };
        map.iter()
            .filter_map(|(t, v)| Some((t.clone(), timestamp::parse_fhir(v.as_str()?)?)))
            .collect()
    }

    pub fn is_done(&self, t: ResourceType) -> bool {
        self.done_types().contains(t.as_str())
    }

    pub fn mark_done(&mut self, t: ResourceType, ts: &Timestamp) -> Result<(), FolderError> {
        let entry = self
            .data
            .entry("done")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(done) = entry {
            done.insert(
                t.as_str().to_string(),
                Value::String(timestamp::isoformat(ts)),
            );
        }
        self.write()
    }

    pub fn earliest_done(&self) -> Option<Timestamp> {
        self.done().into_values().min()
    }

    pub fn set_new_patients(&mut self, ids: &BTreeSet<String>) -> Result<(), FolderError> {
        let list = ids.iter().cloned().map(Value::String).collect();
        self.data.insert("newPatients".into(), Value::Array(list));
        self.write()
    }

    /// Stored `newPatients`, if this export recorded any.
    pub fn new_patients(&self) -> Option<BTreeSet<String>> {
        self.data.get("newPatients").map(|v| string_set(Some(v)))
    }

    pub fn mark_complete(&mut self) -> Result<(), FolderError> {
        self.data.insert("complete".into(), Value::Bool(true));
        self.write()
    }

    pub fn is_complete(&self) -> bool {
        self.data.get("complete") == Some(&Value::Bool(true))
    }

    /// Record that the whole managed export finished (`complete` too), with a summary of
    /// what the workdir holds now, counted from its files. `accepted_failed_reads`: the
    /// hydration reads this run could not get and `--allow-incomplete` accepted (hydration
    /// runs in full on every export, so this run's failures are the workdir's). A file that
    /// cannot be read is an error: the summary would be wrong.
    pub fn mark_export_complete(
        &mut self,
        accepted_failed_reads: &BTreeMap<String, u64>,
    ) -> Result<(), FolderError> {
        let contents = super::contents::count(&self.dir);
        if let Some(problem) = contents.problems.first() {
            return Err(FolderError::Corrupt {
                path: self.dir.display().to_string(),
                message: problem.clone(),
            });
        }
        let finished = timestamp::isoformat(&timestamp::now());
        let counts = |map: &BTreeMap<String, u64>| {
            Value::Object(
                map.iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(t, n)| (t.clone(), Value::from(*n)))
                    .collect(),
            )
        };
        let mut marker = Map::new();
        marker.insert("finished".into(), Value::String(finished.clone()));
        marker.insert("tool".into(), Value::String(TOOL.into()));
        marker.insert("patients".into(), Value::from(contents.patients()));
        marker.insert("resources".into(), counts(&contents.resources));
        marker.insert("deleted".into(), counts(&contents.deleted));
        marker.insert(
            "acceptedFailedSearches".into(),
            counts(&self.accepted_failed_searches()),
        );
        marker.insert("acceptedFailedReads".into(), counts(accepted_failed_reads));
        self.data.insert("complete".into(), Value::Bool(true));
        self.data.shift_remove(EXPORT_COMPLETE);
        self.data
            .insert(EXPORT_COMPLETE.into(), Value::Object(marker));
        write_map_at(&self.dir, &mut self.data, KIND_OUTPUT, finished)
    }

    /// The completion summary, when there is one that still describes the folder: written
    /// by `mark_export_complete` and no write of `.metadata` since (see `EXPORT_COMPLETE`).
    /// `None` for the Python tool's folders, older versions', unfinished or changed ones.
    pub fn export_completion(&self) -> Option<ExportCompletion> {
        if !self.is_complete() {
            return None;
        }
        let marker = self.data.get(EXPORT_COMPLETE)?.as_object()?;
        let finished = marker.get("finished")?.as_str()?;
        if self.data.get("timestamp").and_then(Value::as_str) != Some(finished) {
            return None;
        }
        let counts = |key: &str| -> Option<BTreeMap<String, u64>> {
            marker
                .get(key)?
                .as_object()?
                .iter()
                .map(|(t, n)| Some((t.clone(), n.as_u64()?)))
                .collect()
        };
        Some(ExportCompletion {
            finished: finished.to_string(),
            tool: marker.get("tool")?.as_str()?.to_string(),
            patients: marker.get("patients")?.as_u64()?,
            resources: counts("resources")?,
            deleted: counts("deleted")?,
            accepted_failed_searches: counts("acceptedFailedSearches")?,
            accepted_failed_reads: counts("acceptedFailedReads")?,
        })
    }

    /// Failed searches accepted with `--allow-incomplete` in this workdir so far, by type.
    pub fn accepted_failed_searches(&self) -> BTreeMap<String, u64> {
        let Some(map) = self
            .data
            .get(ACCEPTED_FAILED_SEARCHES)
            .and_then(Value::as_object)
        else {
            return BTreeMap::new();
        };
        map.iter()
            .filter_map(|(t, n)| Some((t.clone(), n.as_u64()?)))
            .collect()
    }

    /// Add a crawl's accepted failures (types it marks done with failed searches). A type
    /// is done once, so its count is set, not added to.
    pub fn note_accepted_failed_searches(
        &mut self,
        failed: &BTreeMap<ResourceType, u64>,
    ) -> Result<(), FolderError> {
        if failed.is_empty() {
            return Ok(());
        }
        let entry = self
            .data
            .entry(ACCEPTED_FAILED_SEARCHES)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(map) = entry {
            for (t, n) in failed {
                map.insert(t.as_str().to_string(), Value::from(*n));
            }
        }
        self.write()
    }

    /// Status URL of an in-progress bulk export (docs/folders.md#workdir-metadata `bulk-status`).
    pub fn bulk_status(&self) -> Option<&str> {
        self.data.get("bulk-status").and_then(Value::as_str)
    }

    pub fn set_bulk_status(&mut self, url: &str) -> Result<(), FolderError> {
        self.data
            .insert("bulk-status".into(), Value::String(url.to_string()));
        self.write()
    }

    /// Remove `bulk-status`, keeping the other keys in place.
    pub fn clear_bulk_status(&mut self) -> Result<(), FolderError> {
        self.data.shift_remove("bulk-status");
        self.write()
    }

    /// Names of the hydration tasks recorded as complete in this workdir; `None` when the
    /// record is missing (the Python tool, older versions, a run still hydrating) or is
    /// not a list of names, and nothing may be concluded from hydrated files.
    pub fn hydration_tasks(&self) -> Option<BTreeSet<String>> {
        let list = self.data.get(HYDRATION_TASKS)?.as_array()?;
        list.iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// Record the hydration tasks that finished with every reference answered.
    pub fn set_hydration_tasks(&mut self, names: &[&str]) -> Result<(), FolderError> {
        let list = names.iter().map(|n| Value::String(n.to_string())).collect();
        self.data.insert(HYDRATION_TASKS.into(), Value::Array(list));
        self.write()
    }
}

/// Remove the hydration record from `<dir>/.metadata` when there is one, before hydration
/// writes to `dir`: a run that stops halfway (or a `hydrate` into a workdir) must not leave
/// a record that no longer describes the files. Folders without an output `.metadata`, or
/// whose `.metadata` cannot be read (then no record can be read either), are left alone.
/// The completion marker goes too: the files it counted are about to change.
pub fn forget_hydration_tasks(dir: &Path) -> Result<(), FolderError> {
    let Ok(mut data) = load_map(dir, KIND_OUTPUT) else {
        return Ok(());
    };
    let tasks = data.shift_remove(HYDRATION_TASKS);
    let marker = data.shift_remove(EXPORT_COMPLETE);
    if tasks.is_none() && marker.is_none() {
        return Ok(());
    }
    let path = dir.join(FILE_NAME);
    let value = Value::Object(data);
    ndjson::write_atomic(&path, json::to_pretty_ascii(&value).as_bytes()).map_err(|source| {
        FolderError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

pub struct ManagedMetadata {
    dir: PathBuf,
    data: serde_json::Map<String, serde_json::Value>,
}

impl ManagedMetadata {
    pub fn load(dir: &Path) -> Result<Self, FolderError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            data: load_map(dir, KIND_MANAGED)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn raw(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.data
    }

    pub fn fhir_url(&self) -> Option<&str> {
        self.data.get("fhir-url").and_then(Value::as_str)
    }

    pub fn group(&self) -> Option<&str> {
        self.data.get("group").and_then(Value::as_str)
    }

    /// docs/folders.md#managed-folder-metadata: write on first use, compare FHIR URL and group
    /// afterwards.
    pub fn note_context(&mut self, fhir_url: &str, group: Option<&str>) -> Result<(), FolderError> {
        if self.data.is_empty() {
            self.data
                .insert("fhir-url".into(), Value::String(fhir_url.to_string()));
            self.data.insert("group".into(), opt_str_value(group));
            return write_map(&self.dir, &mut self.data, KIND_MANAGED);
        }
        let stored_url = self.data.get("fhir-url").cloned().unwrap_or(Value::Null);
        let trim = |s: &str| s.strip_suffix('/').unwrap_or(s).to_string();
        if stored_url.as_str().map(trim) != Some(trim(fhir_url)) {
            return Err(FolderError::Mismatch(format!(
                "Target folder .metadata is for a different FHIR URL.\nExpected {fhir_url}\nBut found {}",
                py_str(&stored_url)
            )));
        }
        let stored_group = self.data.get("group").cloned().unwrap_or(Value::Null);
        let current_group = opt_str_value(group);
        if stored_group != current_group {
            return Err(FolderError::Mismatch(format!(
                "Target folder .metadata is for a different Group.\nExpected {}, but found {}.",
                py_str(&current_group),
                py_str(&stored_group)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::{temp_dir, write};

    fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    fn filters(entries: &[(ResourceType, &[&str])]) -> Filters {
        entries
            .iter()
            .map(|(t, p)| (*t, p.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn ts(text: &str) -> Timestamp {
        match timestamp::parse_fhir(text) {
            Some(t) => t,
            None => panic!("bad timestamp {text}"),
        }
    }

    fn err_text(r: Result<(), FolderError>) -> String {
        match r {
            Ok(()) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn writes_pretty_ascii_in_insertion_order() {
        let dir = temp_dir("meta-write");
        let work = dir.join("001.x");
        let mut m = ok(OutputMetadata::load(&work));
        assert!(m.is_empty());
        assert_eq!(m.earliest_done(), None);
        let ctx = ExportContext {
            filters: filters(&[(ResourceType::Patient, &[])]),
            ..Default::default()
        };
        ok(m.note_context(&ctx));
        ok(m.mark_done(ResourceType::Patient, &ts("2024-10-16T12:00:00-05:00")));
        ok(m.mark_complete());
        let text = ok(fs::read_to_string(work.join(FILE_NAME)));
        let stamp = m
            .raw()
            .get("timestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            text,
            format!(
                "{{\n  \"filters\": {{\n    \"Patient\": []\n  }},\n  \"since\": null,\n  \"kind\": \"output\",\n  \"timestamp\": \"{stamp}\",\n  \"version\": \"1.0.3\",\n  \"done\": {{\n    \"Patient\": \"2024-10-16T12:00:00-05:00\"\n  }},\n  \"complete\": true\n}}"
            )
        );
        assert!(!work.join(".metadata.tmp").exists());

        let again = ok(OutputMetadata::load(&work));
        assert!(again.is_done(ResourceType::Patient));
        assert!(!again.is_done(ResourceType::Condition));
        assert!(again.is_complete());
        assert_eq!(again.earliest_done(), Some(ts("2024-10-16T17:00:00Z")));

        // bulk-status comes and goes without reordering the rest.
        let mut m = again;
        ok(m.set_bulk_status("http://example.invalid/poll"));
        assert_eq!(m.bulk_status(), Some("http://example.invalid/poll"));
        ok(m.clear_bulk_status());
        let keys: Vec<&str> = m.raw().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "filters",
                "since",
                "kind",
                "timestamp",
                "version",
                "done",
                "complete"
            ]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn hydration_record_comes_and_goes() {
        let dir = temp_dir("meta-hydration");
        let work = dir.join("001.x");
        let mut m = ok(OutputMetadata::load(&work));
        ok(m.mark_done(ResourceType::Patient, &ts("2024-10-16T12:00:00Z")));
        assert_eq!(m.hydration_tasks(), None);
        ok(m.set_hydration_tasks(&["dxr-results", "obs-members"]));
        let again = ok(OutputMetadata::load(&work));
        let names: Vec<String> = again
            .hydration_tasks()
            .unwrap_or_default()
            .into_iter()
            .collect();
        assert_eq!(names, ["dxr-results", "obs-members"]);
        ok(forget_hydration_tasks(&work));
        let forgot = ok(OutputMetadata::load(&work));
        assert_eq!(forgot.hydration_tasks(), None);
        assert!(forgot.is_done(ResourceType::Patient));
        // Nothing to forget, or not an output folder: untouched.
        let before = ok(fs::read(work.join(FILE_NAME)));
        ok(forget_hydration_tasks(&work));
        assert_eq!(ok(fs::read(work.join(FILE_NAME))), before);
        ok(ok(ManagedMetadata::load(&dir)).note_context("http://example.invalid/R4", None));
        ok(forget_hydration_tasks(&dir));
        ok(forget_hydration_tasks(&dir.join("missing")));
        // A record that is not a list of names is no record.
        write(
            &work.join(FILE_NAME),
            r#"{"kind": "output", "hydrationTasks": [1]}"#,
        );
        assert_eq!(ok(OutputMetadata::load(&work)).hydration_tasks(), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn completion_marker_holds_only_until_the_next_write() {
        let dir = temp_dir("meta-marker");
        let work = dir.join("001.x");
        write(
            &work.join("Patient.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"1\"}\n",
        );
        let mut m = ok(OutputMetadata::load(&work));
        ok(m.note_accepted_failed_searches(&[(ResourceType::Condition, 2)].into()));
        assert_eq!(m.export_completion(), None);
        ok(m.mark_export_complete(&[("Observation".to_string(), 1)].into()));
        let again = ok(OutputMetadata::load(&work));
        assert!(again.is_complete());
        let Some(c) = again.export_completion() else {
            panic!("a marker")
        };
        let named = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
        };
        assert_eq!(c.patients, 1);
        assert_eq!(c.resources, named(&[("Patient", 1)]));
        assert!(c.deleted.is_empty());
        assert_eq!(c.accepted_failed_searches, named(&[("Condition", 2)]));
        assert_eq!(c.accepted_failed_reads, named(&[("Observation", 1)]));
        assert_eq!(c.tool, TOOL);
        assert_eq!(
            again.raw().get("timestamp").and_then(Value::as_str),
            Some(c.finished.as_str())
        );

        // Any later write of ours drops it, on disk too.
        let mut m = again;
        ok(m.mark_done(ResourceType::Patient, &ts("2024-10-16T12:00:00Z")));
        assert_eq!(m.export_completion(), None);
        assert!(
            !ok(OutputMetadata::load(&work))
                .raw()
                .contains_key(EXPORT_COMPLETE)
        );

        // Another tool's write keeps the key but refreshes `timestamp`: stale.
        ok(m.mark_export_complete(&BTreeMap::new()));
        let text = ok(fs::read_to_string(work.join(FILE_NAME)));
        let mut value: Value = ok(serde_json::from_str(&text));
        value["timestamp"] = Value::String("2099-01-01T00:00:00+00:00".into());
        write(&work.join(FILE_NAME), &value.to_string());
        let rewritten = ok(OutputMetadata::load(&work));
        assert!(rewritten.is_complete());
        assert!(rewritten.raw().contains_key(EXPORT_COMPLETE));
        assert_eq!(rewritten.export_completion(), None);

        // Hydration starting again removes it.
        let mut m = rewritten;
        ok(m.mark_export_complete(&BTreeMap::new()));
        assert!(
            ok(OutputMetadata::load(&work))
                .export_completion()
                .is_some()
        );
        ok(forget_hydration_tasks(&work));
        let forgot = ok(OutputMetadata::load(&work));
        assert!(!forgot.raw().contains_key(EXPORT_COMPLETE));
        assert!(forgot.is_complete());

        // A file that cannot be read makes no summary.
        ok(fs::write(work.join("Condition.ndjson.gz"), b"not gzip"));
        let mut m = forgot;
        assert!(m.mark_export_complete(&BTreeMap::new()).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn kind_checks() {
        let dir = temp_dir("meta-kind");
        let mut managed = ok(ManagedMetadata::load(&dir));
        ok(managed.note_context("http://example.invalid/R4", Some("group1")));
        let e = OutputMetadata::load(&dir).err().map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!(
                "Folder {} is not an output folder, but a managed folder",
                dir.display()
            ))
        );
        let work = dir.join("001.x");
        ok(ok(OutputMetadata::load(&work)).mark_complete());
        let e = ManagedMetadata::load(&work).err().map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!(
                "Folder {} is not a managed folder, but an output folder",
                work.display()
            ))
        );
        write(&dir.join("bad/.metadata"), "{nope");
        assert!(matches!(
            OutputMetadata::load(&dir.join("bad")),
            Err(FolderError::Corrupt { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_metadata_context_messages() {
        let dir = temp_dir("meta-ctx");
        let folder = dir.display().to_string();
        let mut m = ok(OutputMetadata::load(&dir));
        let base = ExportContext {
            filters: filters(&[(ResourceType::Condition, &["code=1234"])]),
            ..Default::default()
        };
        ok(m.note_context(&base));

        let mut other = base.clone();
        other.filters = filters(&[
            (ResourceType::Condition, &["code=1234"]),
            (ResourceType::Device, &[]),
        ]);
        assert_eq!(
            err_text(m.note_context(&other)),
            format!(
                "Folder {folder} is for a different set of types and/or filters. Expected:\n  Condition?code=1234\n  Device (no filter)\n\nbut found:\n  Condition?code=1234"
            )
        );
        other.filters = filters(&[(ResourceType::Condition, &["code=1234", "code=5678"])]);
        assert_eq!(
            err_text(m.note_context(&other)),
            format!(
                "Folder {folder} is for a different set of types and/or filters. Expected:\n  Condition?code=1234\n  Condition?code=5678\n\nbut found:\n  Condition?code=1234"
            )
        );

        let mut since = base.clone();
        since.since = Some("2022-01-05".into());
        since.since_mode = Some(SinceMode::Updated);
        assert_eq!(
            err_text(m.note_context(&since)),
            format!(
                "Folder {folder} is for a different --since time. Expected 2022-01-05 but found None."
            )
        );

        // A since export, then a different mode.
        let dir2 = dir.join("since");
        let mut m2 = ok(OutputMetadata::load(&dir2));
        ok(m2.note_context(&since));
        let mut created = since.clone();
        created.since_mode = Some(SinceMode::Created);
        assert_eq!(
            err_text(m2.note_context(&created)),
            format!(
                "Folder {} is for a different --since-mode. Expected 'created' but found 'updated'.",
                dir2.display()
            )
        );
        assert_eq!(
            err_text(m2.note_context(&base)),
            format!(
                "Folder {} is for a different --since time. Expected None but found 2022-01-05.",
                dir2.display()
            )
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn note_context_writes_only_on_change_and_merges_since_resources() {
        let dir = temp_dir("meta-merge");
        let mut m = ok(OutputMetadata::load(&dir));
        let ctx = ExportContext {
            filters: filters(&[(ResourceType::Condition, &[]), (ResourceType::Device, &[])]),
            since: Some("2022-01-05".into()),
            since_mode: Some(SinceMode::Created),
            since_resources: [ResourceType::Condition].into_iter().collect(),
        };
        ok(m.note_context(&ctx));
        assert_eq!(
            m.since_resources(),
            ["Condition".to_string()].into_iter().collect()
        );
        ok(m.mark_done(ResourceType::Condition, &ts("2022-02-02")));
        let before = ok(fs::read_to_string(dir.join(FILE_NAME)));
        // Same context again: nothing changes, nothing written.
        std::thread::sleep(std::time::Duration::from_millis(2));
        ok(m.note_context(&ctx));
        assert_eq!(ok(fs::read_to_string(dir.join(FILE_NAME))), before);

        // Resume where the server now supports Device's created field but not Condition's:
        // Condition is done, so it keeps its stored restriction; Device takes the new one.
        let resumed = ExportContext {
            since_resources: [ResourceType::Device].into_iter().collect(),
            ..ctx.clone()
        };
        ok(m.note_context(&resumed));
        let expected: BTreeSet<String> = ["Condition".to_string(), "Device".to_string()]
            .into_iter()
            .collect();
        assert_eq!(ok(OutputMetadata::load(&dir)).since_resources(), expected);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn same_context_and_matching_timestamps() {
        let dir = temp_dir("meta-same");
        let mut m = ok(OutputMetadata::load(&dir));
        let ctx = ExportContext {
            filters: filters(&[(ResourceType::Condition, &["code=1234", "code=5678"])]),
            since: Some("auto".into()),
            since_mode: Some(SinceMode::Updated),
            since_resources: [ResourceType::Condition].into_iter().collect(),
        };
        ok(m.note_context(&ctx));
        let sel = [ResourceType::Condition];
        assert!(m.has_same_context(&ctx, &sel));
        ok(m.mark_done(ResourceType::Condition, &ts("2003-03-03T00:00:00Z")));
        // Finished auto export is not resumed.
        assert!(!m.has_same_context(&ctx, &sel));
        let mut literal = ctx.clone();
        literal.since = Some("2020".into());
        assert!(!m.has_same_context(&literal, &sel));

        // Matching: a subset of the stored OR filters matches; unfiltered does not.
        let sub = ExportContext {
            filters: filters(&[(ResourceType::Condition, &["code=1234"])]),
            since_mode: Some(SinceMode::Updated),
            ..Default::default()
        };
        let got = m.matching_timestamps(&sub);
        assert_eq!(
            got.get(&ResourceType::Condition),
            Some(&ts("2003-03-03T00:00:00Z"))
        );
        let full = ExportContext {
            filters: filters(&[(ResourceType::Condition, &[])]),
            ..Default::default()
        };
        assert!(m.matching_timestamps(&full).is_empty());
        let created = ExportContext {
            since_mode: Some(SinceMode::Created),
            ..sub.clone()
        };
        assert!(m.matching_timestamps(&created).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn managed_context() {
        let dir = temp_dir("meta-managed");
        let mut m = ok(ManagedMetadata::load(&dir));
        assert!(m.is_empty());
        ok(m.note_context("http://example.invalid/R4", Some("group1")));
        let text = ok(fs::read_to_string(dir.join(FILE_NAME)));
        assert!(text.starts_with(
            "{\n  \"fhir-url\": \"http://example.invalid/R4\",\n  \"group\": \"group1\",\n  \"kind\": \"managed\",\n  \"timestamp\": \""
        ));
        assert!(text.ends_with("\",\n  \"version\": \"1.0.3\"\n}"));

        let mut m = ok(ManagedMetadata::load(&dir));
        ok(m.note_context("http://example.invalid/R4/", Some("group1")));
        assert_eq!(
            err_text(m.note_context("http://other.invalid/R4", Some("group1"))),
            "Target folder .metadata is for a different FHIR URL.\nExpected http://other.invalid/R4\nBut found http://example.invalid/R4"
        );
        assert_eq!(
            err_text(m.note_context("http://example.invalid/R4", None)),
            "Target folder .metadata is for a different Group.\nExpected None, but found group1."
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
