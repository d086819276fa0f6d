//! The per-leaf-folder manifest: the one record of archive state, kept in the destination
//! only (`<prefix>/<group>/<leaf>/.smart-fetch-archive.json`), never in the export tree, so
//! neither Cumulus ETL nor the Python tool can misread it (the ETL reads `*.ndjson[.gz]` and
//! `*.jsonl` files and `log.ndjson`; a `.json` file is none of those, which the ETL check in
//! the tests confirms). It is written after every file of the folder is in place and removed
//! before any of them changes, so its presence means "this folder is archived, whole".
//!
//! It lists every file with its size and sha256 (what `sha256sum` prints), so a restored
//! folder can be checked by anyone, and the local modification time, which lets a rerun
//! skip rereading files that did not change (the quick check of `rsync` and `aws s3 sync`).

use serde::{Deserialize, Serialize};

pub const MANIFEST_NAME: &str = ".smart-fetch-archive.json";
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    /// `smart-fetch <version>` that wrote it.
    pub tool: String,
    pub group: String,
    /// The leaf folder's name, `NNN.nickname`.
    pub leaf: String,
    /// The local folder it was archived from.
    pub source: String,
    /// Whether the export in the folder was complete when archived (false only with
    /// `--include-incomplete`).
    pub export_complete: bool,
    /// When the manifest was written (UTC, RFC 3339).
    pub archived: String,
    /// Every file, by path inside the leaf folder (`/`-separated), in name order.
    pub files: Vec<ManifestFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// The local file's modification time, in nanoseconds since 1970.
    pub mtime_ns: i64,
}

impl Manifest {
    pub fn file(&self, path: &str) -> Option<&ManifestFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .and_then(|i| self.files.get(i))
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// A manifest we cannot read (another format, a cut-off or foreign file) counts as
    /// none: the folder is then checked file by file and the manifest written again.
    pub fn parse(bytes: &[u8]) -> Option<Manifest> {
        let mut manifest: Manifest = serde_json::from_slice(bytes).ok()?;
        if manifest.format != FORMAT {
            return None;
        }
        manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
        Some(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let m = Manifest {
            format: FORMAT,
            tool: "smart-fetch 0.1.0".into(),
            group: "MRN-000".into(),
            leaf: "001.q1".into(),
            source: "/out/MRN-000/001.q1".into(),
            export_complete: true,
            archived: "2026-12-06T00:00:00Z".into(),
            files: vec![
                ManifestFile {
                    path: ".metadata".into(),
                    size: 3,
                    sha256: "a".into(),
                    mtime_ns: 1,
                },
                ManifestFile {
                    path: "error/OperationOutcome.ndjson.gz".into(),
                    size: 5,
                    sha256: "b".into(),
                    mtime_ns: 2,
                },
            ],
        };
        let text = String::from_utf8(m.to_json()).unwrap_or_default();
        assert!(text.contains("\"exportComplete\": true"), "{text}");
        assert!(text.contains("\"mtimeNs\": 2"), "{text}");
        let back = Manifest::parse(text.as_bytes());
        assert_eq!(back.as_ref(), Some(&m));
        assert_eq!(
            back.and_then(|b| b.file("error/OperationOutcome.ndjson.gz").map(|f| f.size)),
            Some(5)
        );
        assert_eq!(m.total_bytes(), 8);
        assert!(Manifest::parse(b"{\"format\": 2}").is_none());
        assert!(Manifest::parse(b"{\"format\": 1, \"files\": [").is_none());
    }
}
