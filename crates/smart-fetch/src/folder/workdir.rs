//! Numbered workdirs `NNN.nickname` inside a managed folder and the rules for reusing or
//! creating one (spec §14.3).

use super::{ExportContext, FolderError};
use crate::resources::ResourceType;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Workdir {
    pub number: u64,
    pub nickname: String,
    /// Folder name as found, e.g. `001.initial`.
    pub name: String,
    pub path: PathBuf,
}

/// Workdirs of a managed folder, newest (highest number) first.
pub fn list(output_dir: &Path) -> Vec<Workdir> {
    let _ = output_dir;
    todo!()
}

#[derive(Debug)]
pub struct Choice {
    pub path: PathBuf,
    pub name: String,
    /// The line to print (`Creating new subfolder …` / `Re-using existing subfolder …`).
    pub message: String,
}

/// Pick the workdir for this run. `today` is the default nickname (`YYYY-MM-DD`).
pub fn choose(
    output_dir: &Path,
    nickname: Option<&str>,
    ctx: &ExportContext,
    selected: &[ResourceType],
    today: &str,
) -> Result<Choice, FolderError> {
    let _ = (output_dir, nickname, ctx, selected, today);
    todo!()
}
