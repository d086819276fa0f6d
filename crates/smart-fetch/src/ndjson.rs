//! NDJSON files on disk: names and compression (decided by name only, spec §9.1), reading
//! plain or multi-member gzip line by line (§9.4), line counting (§9.6), and the crash-safe
//! writer (§9.2: `<target>.tmp`, fsync, rename; commit only on success).
//! Must not know about workdirs or metadata.

use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};

/// `<base>.ndjson` or `<base>.ndjson.gz`.
pub fn file_name(base: &str, compress: bool) -> String {
    if compress {
        format!("{base}.ndjson.gz")
    } else {
        format!("{base}.ndjson")
    }
}

/// True when the lower-cased name, minus a trailing `.tmp`, ends with `.gz`.
pub fn is_compressed_name(path: &Path) -> bool {
    let _ = path;
    todo!()
}

/// Every JSON value of a file, skipping blank lines; undecodable lines and unreadable files
/// print the spec's warning and are skipped.
pub fn read_values(path: &Path) -> impl Iterator<Item = Value> {
    let _ = path;
    std::iter::empty()
}

/// Lines in the decompressed content (spec §9.6).
pub fn line_count(path: &Path) -> io::Result<u64> {
    let _ = path;
    todo!()
}

/// Writes records to `<target>.tmp` and renames over `target` on `commit`. Dropping without
/// `commit` leaves the target untouched. Creates nothing until the first record.
pub struct SafeWriter {
    target: PathBuf,
}

impl SafeWriter {
    pub fn new(target: PathBuf, append: bool) -> Self {
        let _ = append;
        Self { target }
    }

    pub fn write(&mut self, value: &Value) -> io::Result<()> {
        let _ = value;
        todo!()
    }

    /// Flush, fsync, rename. A writer that wrote nothing commits nothing.
    pub fn commit(self) -> io::Result<()> {
        let _ = self.target;
        todo!()
    }
}
