//! `delta.json`, the manifest of a delta leaf folder: which two exports it was computed
//! from (by leaf folder name and the time each finished), with which filters and hydration,
//! and what it holds (lines kept of the full export's, by type; `deleted/` entries). It is
//! written last, into a folder that only then takes its final name, so a delta leaf folder
//! that exists is whole; `status` and `archive` recognise delta folders by it. Cumulus ETL
//! reads only `*.ndjson` files, so it never mistakes the manifest for data.

use crate::json;
use crate::ndjson;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

pub const FILE_NAME: &str = "delta.json";
const KIND: &str = "delta";

/// One of the two exports, as the delta saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRef {
    /// `NNN.nickname`.
    pub name: String,
    /// When its export finished (its completion record, else its `.metadata` timestamp).
    pub finished: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always `delta`.
    pub kind: String,
    /// When the delta was made.
    pub made: String,
    pub tool: String,
    /// The group (the managed folder's name).
    pub group: String,
    /// The managed folder both exports are in, as an absolute path.
    pub source: String,
    /// The quarter's full export: every line of the delta is one of its lines.
    pub current: ExportRef,
    /// The export compared with; `None` for a group's first export (every line is new).
    pub previous: Option<ExportRef>,
    /// Both exports' `filters` (the same, or there is no delta).
    pub filters: Value,
    /// Both exports' finished hydration tasks.
    pub hydration_tasks: Vec<String>,
    /// Lines of the full export's NDJSON files, by type.
    pub resources: BTreeMap<String, u64>,
    /// Lines of the full export kept in the delta (new or changed), by type.
    pub kept: BTreeMap<String, u64>,
    /// `deleted/` entries by type (copied from the full export).
    pub deleted: BTreeMap<String, u64>,
}

impl Manifest {
    pub fn kind() -> String {
        KIND.to_string()
    }

    pub fn kept_total(&self) -> u64 {
        self.kept.values().sum()
    }

    pub fn resources_total(&self) -> u64 {
        self.resources.values().sum()
    }

    /// Whether this delta was made from these two exports as they are now.
    pub fn is_of(&self, current: &ExportRef, previous: Option<&ExportRef>) -> bool {
        self.current == *current && self.previous.as_ref() == previous
    }

    /// Write into `dir` (atomically; the folder must exist).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let value = serde_json::to_value(self).map_err(io::Error::other)?;
        let mut text = json::to_pretty_ascii(&value);
        text.push('\n');
        ndjson::write_atomic(&dir.join(FILE_NAME), text.as_bytes())
    }
}

/// The manifest of `dir`: `Ok(None)` when it has none (not a delta folder), `Err` with the
/// reason when it has one that cannot be read.
pub fn load(dir: &Path) -> Result<Option<Manifest>, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("Could not read '{}': {e}", path.display())),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("Could not read '{}': {e}", path.display()))?;
    if manifest.kind != KIND {
        return Err(format!(
            "Could not read '{}': its kind is '{}', not '{KIND}'",
            path.display(),
            manifest.kind
        ));
    }
    Ok(Some(manifest))
}

/// Whether `dir` holds a delta manifest (readable or not).
pub fn present(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(FILE_NAME)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::{temp_dir, write};

    #[test]
    fn round_trip_and_damage() {
        let dir = temp_dir("delta-manifest");
        assert_eq!(load(&dir), Ok(None));
        assert!(!present(&dir));
        let manifest = Manifest {
            kind: Manifest::kind(),
            made: "2026-03-20T10:00:00+00:00".into(),
            tool: "smart-fetch (Rust) test".into(),
            group: "MRN-001".into(),
            source: "/data/out/MRN-001".into(),
            current: ExportRef {
                name: "002.q2".into(),
                finished: "2026-03-19T10:00:00+00:00".into(),
            },
            previous: Some(ExportRef {
                name: "001.q1".into(),
                finished: "2025-12-19T10:00:00+00:00".into(),
            }),
            filters: serde_json::json!({"Condition": []}),
            hydration_tasks: vec!["dxr-results".into()],
            resources: [("Condition".to_string(), 10)].into(),
            kept: [("Condition".to_string(), 2)].into(),
            deleted: BTreeMap::new(),
        };
        if let Err(e) = manifest.write(&dir) {
            panic!("{e}");
        }
        assert!(present(&dir));
        assert_eq!(load(&dir), Ok(Some(manifest.clone())));
        assert_eq!(manifest.kept_total(), 2);
        assert!(manifest.is_of(&manifest.current, manifest.previous.as_ref()));
        assert!(!manifest.is_of(&manifest.current, None));
        write(&dir.join(FILE_NAME), "{\"kind\": \"archive\"}");
        assert!(load(&dir).is_err());
        write(
            &dir.join(FILE_NAME),
            &serde_json::to_string(&manifest)
                .unwrap_or_default()
                .replace("\"delta\"", "\"other\""),
        );
        assert!(load(&dir).is_err_and(|e| e.contains("not 'delta'")));
        let _ = fs::remove_dir_all(&dir);
    }
}
