//! Finding NDJSON files of a type in a folder (spec §9.5): direct children, symlinks
//! resolved, type from the file name or else the first line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// `(absolute path, type)` of every NDJSON file directly in `dir`, sorted by path.
pub fn list(dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    let _ = dir;
    todo!()
}

/// Files whose type is `resource_type`.
pub fn files_of_type(dir: &Path, resource_type: &str) -> Vec<PathBuf> {
    let _ = (dir, resource_type);
    todo!()
}

/// Ids of every resource of `resource_type` found in `dir`.
pub fn ids_of_type(dir: &Path, resource_type: &str) -> HashSet<String> {
    let _ = (dir, resource_type);
    todo!()
}
