//! The `Type.NNN.ndjson[.gz]` symlinks that pool a managed folder's active files
//! (spec §18), including hydrated types reached through chains.

use super::FolderError;
use std::path::Path;

/// Delete and recreate every type's symlinks in a managed folder.
pub fn rebuild(managed_dir: &Path) -> Result<(), FolderError> {
    let _ = managed_dir;
    todo!()
}
