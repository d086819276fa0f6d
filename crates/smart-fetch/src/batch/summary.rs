//! What a batch says at its end and leaves behind: one row per group (folder, state,
//! patients, resources, failed searches, wall time, what went wrong), printed as a table and
//! written to `OUTPUT_ROOT/batch-<nickname>.json`. The file is rewritten (atomically) each
//! time a group ends, so a batch killed by its scheduler still tells how far it got.

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupState {
    /// Exported completely (this run or an earlier one).
    Complete,
    /// The export ended without finishing (errors it could not get past); a rerun resumes.
    Failed,
    /// Stopped by Ctrl-C/SIGTERM; a rerun resumes.
    Interrupted,
    /// Not reached (the batch was stopped first).
    NotStarted,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Complete => "complete",
            GroupState::Failed => "failed",
            GroupState::Interrupted => "interrupted",
            GroupState::NotStarted => "not started",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupRow {
    pub group: String,
    /// The group's leaf folder for this nickname, once it exists.
    pub folder: Option<PathBuf>,
    pub state: GroupState,
    /// This run found the group complete already and did nothing.
    pub skipped: bool,
    pub patients: Option<u64>,
    pub resources: Option<u64>,
    pub failed_searches: Option<u64>,
    pub wall_seconds: f64,
    /// Why the group is not complete (the error's one line, first line only).
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub nickname: String,
    /// `I/N` when this process ran one shard of the groups.
    pub shard: Option<String>,
    pub groups: Vec<GroupRow>,
}

impl Summary {
    pub fn count(&self, state: GroupState) -> usize {
        self.groups.iter().filter(|g| g.state == state).count()
    }

    pub fn all_complete(&self) -> bool {
        self.groups.iter().all(|g| g.state == GroupState::Complete)
    }

    /// Where the summary of a batch lives: one file per nickname (and shard, so the shards
    /// of an array job do not overwrite each other's).
    pub fn path(root: &Path, nickname: &str, shard: Option<&str>) -> PathBuf {
        match shard {
            Some(s) => root.join(format!(
                "batch-{nickname}.shard-{}.json",
                s.replace('/', "-of-")
            )),
            None => root.join(format!("batch-{nickname}.json")),
        }
    }

    /// Write the JSON file atomically (a temporary file renamed over the old one).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// The table printed at the end: a header, one row per group, then the totals.
    pub fn table(&self) -> Vec<String> {
        let num = |n: Option<u64>| n.map_or_else(|| "-".to_string(), crate::console::thousands);
        let width = self
            .groups
            .iter()
            .map(|g| g.group.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut lines = vec![format!(
            "{:<width$}  {:<11}  {:>9}  {:>12}  {:>6}  {:>7}  folder",
            "group", "state", "patients", "resources", "failed", "time"
        )];
        for g in &self.groups {
            let folder = g
                .folder
                .as_ref()
                .and_then(|f| f.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "-".into());
            let state = if g.skipped {
                "complete*"
            } else {
                g.state.as_str()
            };
            lines.push(format!(
                "{:<width$}  {:<11}  {:>9}  {:>12}  {:>6}  {:>7}  {folder}",
                g.group,
                state,
                num(g.patients),
                num(g.resources),
                num(g.failed_searches),
                crate::console::human_duration(g.wall_seconds as u64),
            ));
        }
        let total = |f: fn(&GroupRow) -> Option<u64>| self.groups.iter().filter_map(f).sum::<u64>();
        lines.push(format!(
            "{} groups: {} complete, {} failed, {} interrupted, {} not started; {} patients, {} resources{}",
            self.groups.len(),
            self.count(GroupState::Complete),
            self.count(GroupState::Failed),
            self.count(GroupState::Interrupted),
            self.count(GroupState::NotStarted),
            crate::console::thousands(total(|g| g.patients)),
            crate::console::thousands(total(|g| g.resources)),
            if self.groups.iter().any(|g| g.skipped) {
                " (* complete before this run)"
            } else {
                ""
            }
        ));
        for g in self.groups.iter().filter(|g| g.error.is_some()) {
            lines.push(format!(
                "{}: {}",
                g.group,
                g.error.as_deref().unwrap_or_default()
            ));
        }
        lines
    }
}
