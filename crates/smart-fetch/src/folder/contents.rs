//! What a workdir holds, counted from its files: lines of its NDJSON files per resource
//! type, `deleted/` entries per type, and the record of hydration reads that still failed
//! at the end of the last hydration (`.resume/hydration-failures.json`, ours). `status`
//! counts folders that carry no completion summary (the Python tool's, unfinished ones) this
//! way, and `export` counts once, at its end, for the summary it records in `.metadata`.
//! Reads only (the failed-read record aside, which the hydrator writes through here) and
//! never prints: what cannot be read is returned as a problem, so one damaged file does not
//! hide the rest of a report.

use super::FolderError;
use super::discovery;
use crate::json;
use crate::ndjson;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::STATE_DIR;

/// Failed hydration reads by what they fetch (`{"Observation": 2, "Binary": 1}`).
const FAILED_READS: &str = "hydration-failures.json";
/// Where a workdir keeps what names deleted resources (docs/export.md#deleted-resources).
pub const DELETED_DIR: &str = "deleted";

/// Counts of one workdir, by resource type name as the files say it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// Lines of every NDJSON file directly in the workdir, by the file's type (name first,
    /// else its first line, as discovery decides); files without a type (`log.ndjson`) and
    /// unfinished `.tmp` files do not count. Lines, not distinct ids: hydration may write
    /// one resource into two files of a type.
    pub resources: BTreeMap<String, u64>,
    /// Entries of the Bundles in `deleted/`, by the type in their `request.url`.
    pub deleted: BTreeMap<String, u64>,
    /// Files or lines that could not be read, one line each; the counts leave them out.
    pub problems: Vec<String>,
}

impl Contents {
    pub fn patients(&self) -> u64 {
        self.resources.get("Patient").copied().unwrap_or(0)
    }
}

/// Count what `workdir` holds. Streams every file once (gzip decompressed on the fly).
pub fn count(workdir: &Path) -> Contents {
    let mut contents = Contents::default();
    let (files, problems) = discovery::list_quietly(workdir);
    contents.problems.extend(problems);
    for (path, t) in files {
        let Some(t) = t else { continue };
        match ndjson::line_count(&path) {
            Ok(n) => *contents.resources.entry(t).or_default() += n,
            Err(e) => contents
                .problems
                .push(format!("Could not read from '{}': {e}", path.display())),
        }
    }
    count_deleted(&workdir.join(DELETED_DIR), &mut contents);
    contents
}

/// `deleted/` holds Bundles of `DELETE` entries: ours write one entry per line, a bulk
/// server's deleted files may hold many, so entries are counted, not lines.
fn count_deleted(dir: &Path, contents: &mut Contents) {
    let (files, problems) = discovery::list_quietly(dir);
    contents.problems.extend(problems);
    for (path, _) in files {
        if let Err(e) = count_deleted_file(&path, &mut contents.deleted) {
            contents
                .problems
                .push(format!("Could not read from '{}': {e}", path.display()));
        }
    }
}

fn count_deleted_file(path: &Path, deleted: &mut BTreeMap<String, u64>) -> io::Result<()> {
    let mut reader = ndjson::open_decompressed(path)?;
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        match ndjson::read_line_capped(&mut reader, &mut line, ndjson::MAX_LINE)? {
            ndjson::Line::End => return Ok(()),
            ndjson::Line::TooLong => {
                return Err(io::Error::other(format!(
                    "line {} is too long",
                    line_no + 1
                )));
            }
            ndjson::Line::Read => {}
        }
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bundle: Value = serde_json::from_slice(&line)
            .map_err(|e| io::Error::other(format!("line {line_no}: {e}")))?;
        let entries = bundle.get("entry").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let url = entry
                .get("request")
                .and_then(|r| r.get("url"))
                .and_then(Value::as_str);
            // `Type/id`, relative or absolute.
            let t = url.and_then(|u| u.trim_end_matches('/').rsplit('/').nth(1));
            if let Some(t) = t {
                *deleted.entry(t.to_string()).or_default() += 1;
            }
        }
    }
}

fn failed_reads_path(workdir: &Path) -> PathBuf {
    workdir.join(STATE_DIR).join(FAILED_READS)
}

/// The hydration reads the last hydration of `workdir` could not get (empty when none or
/// no record). A record that cannot be read counts as a problem, returned as the error.
pub fn failed_reads(workdir: &Path) -> Result<BTreeMap<String, u64>, String> {
    let path = failed_reads_path(workdir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("Could not read from '{}': {e}", path.display())),
    };
    match serde_json::from_slice::<BTreeMap<String, u64>>(&bytes) {
        Ok(map) => Ok(map),
        Err(e) => Err(format!("Could not read from '{}': {e}", path.display())),
    }
}

/// Record the reads a hydration could not get, or forget the record when there are none.
/// Only in a workdir (a folder with an output `.metadata`): `hydrate` may also be pointed
/// at any folder of NDJSON, which should not gain state files of ours.
pub fn record_failed_reads(
    workdir: &Path,
    failed: &BTreeMap<String, u64>,
) -> Result<(), FolderError> {
    if failed.values().all(|n| *n == 0) {
        return forget_failed_reads(workdir);
    }
    if !workdir.join(super::metadata::FILE_NAME).is_file() {
        return Ok(());
    }
    let path = failed_reads_path(workdir);
    let io_err = |source| FolderError::Io {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(workdir.join(STATE_DIR)).map_err(io_err)?;
    let value = Value::Object(
        failed
            .iter()
            .map(|(t, n)| (t.clone(), Value::from(*n)))
            .collect(),
    );
    ndjson::write_atomic(&path, json::to_log_line(&value).as_bytes()).map_err(io_err)
}

/// Remove the record (when hydration starts again, or ends with every read answered).
pub fn forget_failed_reads(workdir: &Path) -> Result<(), FolderError> {
    let path = failed_reads_path(workdir);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(FolderError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    }
    // Only when nothing else is in there (the crawl's journals).
    let _ = fs::remove_dir(workdir.join(STATE_DIR));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::{temp_dir, write};

    #[test]
    fn counts_lines_by_type_and_deleted_entries() {
        let dir = temp_dir("contents");
        write(
            &dir.join("Patient.ndjson.gz"),
            "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n",
        );
        write(
            &dir.join("Observation.ndjson.gz"),
            "{\"resourceType\":\"Observation\",\"id\":\"o1\"}\n",
        );
        write(
            &dir.join("Observation.results.ndjson.gz"),
            "{\"resourceType\":\"Observation\",\"id\":\"o2\"}\n{\"resourceType\":\"Observation\",\"id\":\"o3\"}",
        );
        // Typed by the first line, not the name.
        write(
            &dir.join("extra.ndjson"),
            "{\"resourceType\":\"Condition\",\"id\":\"c\"}\n",
        );
        write(&dir.join("log.ndjson"), "{\"exportId\":\"fake-log\"}\n");
        write(&dir.join("Condition.ndjson.gz.tmp"), "{}\n{}\n");
        write(&dir.join("error/OperationOutcome.ndjson.gz"), "{}\n");
        write(
            &dir.join("deleted/Bundle.Condition.ndjson.gz"),
            "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"DELETE\",\"url\":\"Condition/x\"}}]}\n\
             {\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"DELETE\",\"url\":\"Condition/y\"}}]}\n",
        );
        write(
            &dir.join("deleted/Bundle.001.ndjson"),
            "{\"resourceType\":\"Bundle\",\"entry\":[{\"request\":{\"url\":\"https://ehr/R4/Device/d1\"}},{\"request\":{\"url\":\"Patient/p\"}}]}\n",
        );
        let c = count(&dir);
        let expected: BTreeMap<String, u64> =
            [("Condition", 1), ("Observation", 3), ("Patient", 2)]
                .into_iter()
                .map(|(t, n)| (t.to_string(), n))
                .collect();
        assert_eq!(c.resources, expected);
        assert_eq!(c.patients(), 2);
        let deleted: BTreeMap<String, u64> = [("Condition", 2), ("Device", 1), ("Patient", 1)]
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect();
        assert_eq!(c.deleted, deleted);
        assert!(c.problems.is_empty(), "{:?}", c.problems);

        // A damaged file is a problem, the rest still counts.
        write(&dir.join("deleted/Bundle.Device.ndjson"), "{oops\n");
        std::fs::write(dir.join("Device.ndjson.gz"), b"not gzip").unwrap_or_default();
        let c = count(&dir);
        assert_eq!(c.resources.get("Patient"), Some(&2));
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn failed_reads_record_only_in_workdirs() {
        let dir = temp_dir("contents-failed");
        let failed: BTreeMap<String, u64> = [("Observation".to_string(), 2)].into();
        // Not a workdir: nothing written.
        assert!(record_failed_reads(&dir, &failed).is_ok());
        assert!(!dir.join(STATE_DIR).exists());
        write(&dir.join(".metadata"), "{\"kind\": \"output\"}");
        assert!(record_failed_reads(&dir, &failed).is_ok());
        assert_eq!(failed_reads(&dir), Ok(failed));
        // None failed: forgotten, and the state folder with it when empty.
        assert!(record_failed_reads(&dir, &BTreeMap::new()).is_ok());
        assert_eq!(failed_reads(&dir), Ok(BTreeMap::new()));
        assert!(!dir.join(STATE_DIR).exists());
        write(&failed_reads_path(&dir), "[1]");
        assert!(failed_reads(&dir).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
