//! The outcome of an archive run: one row per group (its leaf folder, what happened to it,
//! files and bytes uploaded or found already there), totals, and the same as JSON for
//! scripts (`--json`). Values only; the CLI prints them.

use crate::console::{human_file_size, thousands};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderState {
    /// Uploaded (or completed) in this run; its manifest is in place.
    Archived,
    /// Everything was already there with its manifest: nothing sent.
    AlreadyArchived,
    /// The export in it is not complete, and `--include-incomplete` was not given.
    Refused,
    /// A local file could not be read (or changed while read); no manifest was written.
    Failed,
    /// The group has no leaf folder of the nickname.
    NoFolder,
    /// Not reached: the run stopped first (interrupted, or the store failed).
    NotDone,
}

impl FolderState {
    pub fn as_str(self) -> &'static str {
        match self {
            FolderState::Archived => "archived",
            FolderState::AlreadyArchived => "already archived",
            FolderState::Refused => "refused",
            FolderState::Failed => "failed",
            FolderState::NoFolder => "no folder",
            FolderState::NotDone => "not done",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderRow {
    pub group: String,
    /// `NNN.nickname`
    pub leaf: Option<String>,
    pub path: Option<PathBuf>,
    /// Where it is archived (or would be).
    pub url: Option<String>,
    pub state: FolderState,
    pub export_complete: Option<bool>,
    pub files: u64,
    pub bytes: u64,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub files_already_archived: u64,
    /// Objects under the leaf folder's prefix that the folder no longer has.
    pub objects_removed: u64,
    pub links_skipped: Vec<String>,
    pub other_skipped: Vec<String>,
    pub seconds: f64,
    pub error: Option<String>,
}

impl FolderRow {
    pub fn new(group: &str, state: FolderState) -> Self {
        FolderRow {
            group: group.to_string(),
            leaf: None,
            path: None,
            url: None,
            state,
            export_complete: None,
            files: 0,
            bytes: 0,
            files_uploaded: 0,
            bytes_uploaded: 0,
            files_already_archived: 0,
            objects_removed: 0,
            links_skipped: Vec::new(),
            other_skipped: Vec::new(),
            seconds: 0.0,
            error: None,
        }
    }

    /// `MRN-000/001.q1`, or the group alone.
    pub fn name(&self) -> String {
        match &self.leaf {
            Some(leaf) => format!("{}/{leaf}", self.group),
            None => self.group.clone(),
        }
    }

    /// What happened, for the per-folder line and the table.
    pub fn describe(&self) -> String {
        match self.state {
            FolderState::Archived | FolderState::AlreadyArchived => {
                let mut text = format!(
                    "{} files ({}): {} uploaded ({}), {} already there",
                    thousands(self.files),
                    human_file_size(self.bytes),
                    thousands(self.files_uploaded),
                    human_file_size(self.bytes_uploaded),
                    thousands(self.files_already_archived)
                );
                if self.objects_removed > 0 {
                    text.push_str(&format!(", {} stale objects removed", self.objects_removed));
                }
                if !self.links_skipped.is_empty() {
                    text.push_str(&format!(
                        ", {} symbolic links skipped",
                        self.links_skipped.len()
                    ));
                }
                if self.export_complete == Some(false) {
                    text.push_str(" (export not complete)");
                }
                text
            }
            FolderState::Refused => {
                "export not complete (--include-incomplete archives it anyway)".into()
            }
            FolderState::NoFolder => "no leaf folder of this nickname".into(),
            FolderState::Failed | FolderState::NotDone => self.error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub folders: u64,
    pub archived: u64,
    pub already_archived: u64,
    pub refused: u64,
    pub failed: u64,
    pub no_folder: u64,
    pub not_done: u64,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub files_already_archived: u64,
    pub objects_removed: u64,
    pub links_skipped: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub destination: String,
    pub nickname: Option<String>,
    pub folders: Vec<FolderRow>,
    pub totals: Totals,
    pub seconds: f64,
}

impl Summary {
    pub fn new(
        destination: &str,
        nickname: Option<&str>,
        folders: Vec<FolderRow>,
        seconds: f64,
    ) -> Self {
        let mut totals = Totals::default();
        for row in &folders {
            totals.folders += 1;
            match row.state {
                FolderState::Archived => totals.archived += 1,
                FolderState::AlreadyArchived => totals.already_archived += 1,
                FolderState::Refused => totals.refused += 1,
                FolderState::Failed => totals.failed += 1,
                FolderState::NoFolder => totals.no_folder += 1,
                FolderState::NotDone => totals.not_done += 1,
            }
            totals.files_uploaded += row.files_uploaded;
            totals.bytes_uploaded += row.bytes_uploaded;
            totals.files_already_archived += row.files_already_archived;
            totals.objects_removed += row.objects_removed;
            totals.links_skipped += row.links_skipped.len() as u64;
        }
        Summary {
            destination: destination.to_string(),
            nickname: nickname.map(str::to_string),
            folders,
            totals,
            seconds,
        }
    }

    /// Leaf folders that were selected and are not archived now (refused, failed, not done).
    pub fn not_archived(&self) -> Vec<&FolderRow> {
        self.folders
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    FolderState::Refused | FolderState::Failed | FolderState::NotDone
                )
            })
            .collect()
    }

    /// One line per folder, then the totals.
    pub fn table(&self) -> Vec<String> {
        let width = self
            .folders
            .iter()
            .map(|r| r.name().len())
            .max()
            .unwrap_or(0);
        let mut lines: Vec<String> = self
            .folders
            .iter()
            .map(|r| {
                format!(
                    "{:width$}  {:16}  {}",
                    r.name(),
                    r.state.as_str(),
                    r.describe()
                )
            })
            .collect();
        lines.push(self.totals_line());
        lines
    }

    pub fn totals_line(&self) -> String {
        let t = &self.totals;
        let rate = if self.seconds > 0.0 {
            format!(
                ", {}/s",
                human_file_size((t.bytes_uploaded as f64 / self.seconds) as u64)
            )
        } else {
            String::new()
        };
        format!(
            "Archived {} of {} leaf folders to {} ({} already archived): {} files uploaded ({} in {:.1}s{rate}), {} already there.",
            t.archived + t.already_archived,
            t.folders - t.no_folder,
            self.destination,
            t.already_archived,
            thousands(t.files_uploaded),
            human_file_size(t.bytes_uploaded),
            self.seconds,
            thousands(t.files_already_archived),
        )
    }
}
