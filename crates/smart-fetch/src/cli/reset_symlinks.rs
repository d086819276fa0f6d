//! `reset-symlinks OUTPUT_DIR` (docs/commands.md#reset-symlinks): check that the folder is a
//! managed export folder, then rebuild its `Type.NNN.ndjson[.gz]` links silently. No server, no
//! config file.

use super::args::ResetSymlinksArgs;
use crate::error::AppError;
use crate::folder::symlinks;
use crate::folder::{FolderError, ManagedMetadata};
use crate::report::Reporter;
use std::path::Path;

pub async fn run(args: ResetSymlinksArgs, reporter: &Reporter) -> Result<(), AppError> {
    let dir = Path::new(&args.output_dir);
    // An output (workdir) `.metadata` is a kind error from `load`; a missing or empty one
    // means this is not a managed folder at all.
    let metadata = ManagedMetadata::load(dir)?;
    if metadata.is_empty() {
        return Err(FolderError::NotManaged(args.output_dir.clone()).into());
    }
    symlinks::rebuild(dir, reporter)?;
    Ok(())
}
