//! `status`: the state of every group's export under an output root, read from the folders
//! alone. A hospital exporting 144 groups a quarter must see at a glance which leaf
//! folders are whole (and hand exactly those to Cumulus ETL or the archive), which failed
//! and which never started, without a FHIR server and without re-reading gigabytes where
//! an export recorded its summary (`exportComplete` in the workdir's `.metadata`).
//!
//! The folders are the truth: nothing else (no batch file, no log) is consulted, and
//! nothing is ever written — no symlink repair, no `.metadata` rewrite, no state cleanup —
//! so status can run beside a running export or on a read-only archive. Folders the
//! Python tool wrote carry no summary; their `complete: true` (which the Python tool writes
//! only at the very end of a command) is taken as complete, and their files are counted.
//!
//! Returns values; never prints (the CLI chooses the table, JSON or path list).

use crate::crawl::sink;
use crate::folder::contents::{self, Contents};
use crate::folder::workdir::{self, Workdir};
use crate::folder::{ExportCompletion, FolderError, ManagedMetadata, OutputMetadata};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "Output root '{0}' does not exist. Give the folder that holds the group folders, or one group's managed export folder."
    )]
    Missing(String),
    #[error(
        "Output root '{0}' is not a folder. Give the folder that holds the group folders, or one group's managed export folder."
    )]
    NotAFolder(String),
    #[error(
        "'{path}' is one export's leaf folder, not an output root. Give its managed folder '{parent}', or the folder that holds the group folders."
    )]
    LeafFolder { path: String, parent: String },
    #[error("Could not read '{path}': {message}. Check that it exists and that you may read it.")]
    Unreadable { path: String, message: String },
}

/// A group's state for its chosen leaf folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// The whole export finished (with failures accepted, if any were).
    Complete,
    /// Failed searches or hydration reads are recorded and the export is not complete: the
    /// same command retries them.
    Failed,
    /// Started, not complete, nothing recorded as failed: running, or stopped (killed,
    /// interrupted, a fatal error) before it could record anything.
    InProgress,
    /// No leaf folder (of the nickname asked for).
    NotStarted,
    /// The leaf folder's `.metadata` cannot be read.
    Unknown,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Complete,
        State::Failed,
        State::InProgress,
        State::NotStarted,
        State::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Complete => "complete",
            State::Failed => "failed",
            State::InProgress => "in-progress",
            State::NotStarted => "not-started",
            State::Unknown => "unknown",
        }
    }
}

/// Everything status found under one output root.
#[derive(Clone, Debug)]
pub struct Report {
    /// As given.
    pub root: PathBuf,
    /// The root is itself one group's managed folder.
    pub single_group: bool,
    pub nickname: Option<String>,
    /// Sorted by name.
    pub groups: Vec<Group>,
    /// Folders directly under the root that are not group folders, with why.
    pub other_folders: Vec<OtherFolder>,
}

#[derive(Clone, Debug)]
pub struct Group {
    /// The folder's name (the root's own name for a single group).
    pub name: String,
    pub path: PathBuf,
    /// Its `.metadata` says `managed` (false: a folder of leaf folders without one, or an
    /// empty folder, which nothing has exported into yet).
    pub managed_metadata: bool,
    /// Names of all its leaf folders, oldest first.
    pub leaf_folders: Vec<String>,
    /// The leaf folder of the nickname asked for (else the newest); `None`: not started.
    pub leaf: Option<Leaf>,
}

impl Group {
    pub fn state(&self) -> State {
        match &self.leaf {
            None => State::NotStarted,
            Some(leaf) => leaf.state.state(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Leaf {
    /// `NNN.nickname`.
    pub name: String,
    pub path: PathBuf,
    pub state: LeafState,
    pub counts: Counts,
    /// What could not be read (files, records); the counts leave it out.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum LeafState {
    Complete(Completion),
    Failed(Failures),
    InProgress,
    /// Why its `.metadata` could not be read.
    Unknown(String),
}

impl LeafState {
    pub fn state(&self) -> State {
        match self {
            LeafState::Complete(_) => State::Complete,
            LeafState::Failed(_) => State::Failed,
            LeafState::InProgress => State::InProgress,
            LeafState::Unknown(_) => State::Unknown,
        }
    }
}

/// How a complete leaf folder is known to be complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Our completion marker, still describing the folder.
    Recorded(ExportCompletion),
    /// A delta leaf folder (`smart-fetch delta`): whole once it exists, described by its
    /// manifest.
    Delta(Box<crate::delta::manifest::Manifest>),
    /// Only `complete: true`: the Python tool, an older version of ours, a `crawl`/`bulk`
    /// run into the folder, or a marker made stale by a later write. `metadata_written`
    /// is the `.metadata` timestamp, which the Python tool last sets when it marks the
    /// export complete; `accepted_failed_searches` is ours, when recorded.
    Flagged {
        metadata_written: Option<String>,
        accepted_failed_searches: BTreeMap<String, u64>,
    },
}

impl Completion {
    /// When it finished, as far as the folder tells.
    pub fn finished(&self) -> Option<&str> {
        match self {
            Completion::Recorded(c) => Some(&c.finished),
            Completion::Delta(m) => Some(&m.made),
            Completion::Flagged {
                metadata_written, ..
            } => metadata_written.as_deref(),
        }
    }

    pub fn accepted_failed_searches(&self) -> &BTreeMap<String, u64> {
        static NONE: BTreeMap<String, u64> = BTreeMap::new();
        match self {
            Completion::Recorded(c) => &c.accepted_failed_searches,
            Completion::Delta(_) => &NONE,
            Completion::Flagged {
                accepted_failed_searches,
                ..
            } => accepted_failed_searches,
        }
    }

    /// Empty unless recorded: nothing else on disk keeps accepted read failures.
    pub fn accepted_failed_reads(&self) -> BTreeMap<String, u64> {
        match self {
            Completion::Recorded(c) => c.accepted_failed_reads.clone(),
            Completion::Flagged { .. } | Completion::Delta(_) => BTreeMap::new(),
        }
    }

    pub fn tool(&self) -> Option<&str> {
        match self {
            Completion::Recorded(c) => Some(&c.tool),
            Completion::Delta(m) => Some(&m.tool),
            Completion::Flagged { .. } => None,
        }
    }
}

/// What a failed leaf folder records as still to do. Never both empty (see `Failures::of`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failures {
    /// Failed searches by type, from the crawl journals (Patient: ID lookups).
    searches: BTreeMap<String, u64>,
    /// Failed hydration reads by what they fetch.
    reads: BTreeMap<String, u64>,
}

impl Failures {
    /// `None` when nothing failed: that leaf is in progress, not failed.
    pub fn of(searches: BTreeMap<String, u64>, reads: BTreeMap<String, u64>) -> Option<Self> {
        let searches: BTreeMap<String, u64> =
            searches.into_iter().filter(|(_, n)| *n > 0).collect();
        let reads: BTreeMap<String, u64> = reads.into_iter().filter(|(_, n)| *n > 0).collect();
        (!searches.is_empty() || !reads.is_empty()).then_some(Failures { searches, reads })
    }

    pub fn searches(&self) -> &BTreeMap<String, u64> {
        &self.searches
    }

    pub fn reads(&self) -> &BTreeMap<String, u64> {
        &self.reads
    }
}

/// What a leaf folder holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub patients: u64,
    /// Lines of its NDJSON files by type.
    pub resources: BTreeMap<String, u64>,
    /// `deleted/` entries by type.
    pub deleted: BTreeMap<String, u64>,
    /// Read from the completion marker (true) or counted from the files now (false).
    pub from_marker: bool,
}

impl Counts {
    pub fn resources_total(&self) -> u64 {
        self.resources.values().sum()
    }

    pub fn deleted_total(&self) -> u64 {
        self.deleted.values().sum()
    }

    fn of_contents(contents: &Contents) -> Self {
        Counts {
            patients: contents.patients(),
            resources: contents.resources.clone(),
            deleted: contents.deleted.clone(),
            from_marker: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct OtherFolder {
    pub name: String,
    pub path: PathBuf,
    pub reason: String,
}

/// Totals over a report: groups per state, and what the complete leaf folders hold (what
/// `--leaf-folders` hands on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub groups: usize,
    pub by_state: BTreeMap<State, usize>,
    pub patients: u64,
    pub resources: BTreeMap<String, u64>,
    pub deleted: BTreeMap<String, u64>,
}

impl Report {
    pub fn totals(&self) -> Totals {
        let mut totals = Totals {
            groups: self.groups.len(),
            ..Totals::default()
        };
        for state in State::ALL {
            totals.by_state.insert(state, 0);
        }
        for group in &self.groups {
            *totals.by_state.entry(group.state()).or_default() += 1;
            let Some(leaf) = &group.leaf else { continue };
            if leaf.state.state() != State::Complete {
                continue;
            }
            totals.patients += leaf.counts.patients;
            for (t, n) in &leaf.counts.resources {
                *totals.resources.entry(t.clone()).or_default() += n;
            }
            for (t, n) in &leaf.counts.deleted {
                *totals.deleted.entry(t.clone()).or_default() += n;
            }
        }
        totals
    }

    /// Every complete leaf folder, in group order.
    pub fn complete_leaf_folders(&self) -> Vec<&Path> {
        self.groups
            .iter()
            .filter_map(|g| g.leaf.as_ref())
            .filter(|leaf| leaf.state.state() == State::Complete)
            .map(|leaf| leaf.path.as_path())
            .collect()
    }

    pub fn all_complete(&self) -> bool {
        !self.groups.is_empty() && self.groups.iter().all(|g| g.state() == State::Complete)
    }
}

/// What a folder's `.metadata` says it is.
enum Kind {
    Managed,
    /// An export's leaf (workdir) folder.
    Output,
    /// No `.metadata` (or a blank one).
    Plain,
    Unreadable(String),
}

fn kind_of(dir: &Path) -> Kind {
    match ManagedMetadata::load(dir) {
        Ok(m) if m.is_empty() => Kind::Plain,
        Ok(_) => Kind::Managed,
        Err(FolderError::WrongKind { .. }) => Kind::Output,
        Err(e) => Kind::Unreadable(e.to_string()),
    }
}

/// Read the state of every group under `root` (or of `root` itself when it is one managed
/// folder), for the leaf folders of `nickname`, else each group's newest.
pub fn read(root: &Path, nickname: Option<&str>) -> Result<Report, StatusError> {
    let shown = root.display().to_string();
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(StatusError::NotAFolder(shown)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StatusError::Missing(shown)),
        Err(e) => {
            return Err(StatusError::Unreadable {
                path: shown,
                message: e.to_string(),
            });
        }
    }
    let mut report = Report {
        root: root.to_path_buf(),
        single_group: false,
        nickname: nickname.map(str::to_string),
        groups: Vec::new(),
        other_folders: Vec::new(),
    };
    match kind_of(root) {
        Kind::Managed => {
            report.single_group = true;
            report
                .groups
                .push(read_group(&group_name(root), root, true, nickname));
            return Ok(report);
        }
        Kind::Output => {
            let parent = root
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            return Err(StatusError::LeafFolder {
                path: shown,
                parent: parent.display().to_string(),
            });
        }
        Kind::Unreadable(message) => {
            return Err(StatusError::Unreadable {
                path: root
                    .join(crate::folder::metadata::FILE_NAME)
                    .display()
                    .to_string(),
                message,
            });
        }
        // One group's folder of deltas (`delta --to DELTA_ROOT/MRN-123`).
        Kind::Plain if is_delta_group(root) => {
            report.single_group = true;
            report
                .groups
                .push(read_group(&group_name(root), root, false, nickname));
            return Ok(report);
        }
        // A root without `.metadata` is a folder of groups; leaf folders directly in it are
        // listed as other folders, which says what they are.
        Kind::Plain => {}
    }

    let entries = fs::read_dir(root).map_err(|e| StatusError::Unreadable {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StatusError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        // Hidden entries are tools' own state, never groups.
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        let path = root.join(&name);
        // Followed: a group folder may be a link to another disk.
        if !fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let other = |reason: &str| OtherFolder {
            name: name.clone(),
            path: path.clone(),
            reason: reason.to_string(),
        };
        match kind_of(&path) {
            Kind::Managed => report.groups.push(read_group(&name, &path, true, nickname)),
            Kind::Output => report.other_folders.push(other(
                "an export's leaf folder (its .metadata says output), not a group folder",
            )),
            Kind::Unreadable(message) => report
                .other_folders
                .push(other(&format!("its .metadata cannot be read: {message}"))),
            Kind::Plain if is_empty_dir(&path) || !workdir::list(&path).is_empty() => {
                report
                    .groups
                    .push(read_group(&name, &path, false, nickname));
            }
            Kind::Plain => report.other_folders.push(other(
                "no managed .metadata and no NNN.nickname leaf folders: not an export folder",
            )),
        }
    }
    Ok(report)
}

/// A folder whose leaf folders are deltas (`smart-fetch delta`), not a folder of groups.
fn is_delta_group(path: &Path) -> bool {
    workdir::list(path)
        .iter()
        .any(|w| crate::delta::manifest::present(&w.path))
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// The folder's own name, also for `.` or a trailing slash.
fn group_name(path: &Path) -> String {
    std::path::absolute(path)
        .ok()
        .and_then(|p| {
            crate::folder::discovery::normalize(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| path.display().to_string())
}

fn read_group(name: &str, path: &Path, managed_metadata: bool, nickname: Option<&str>) -> Group {
    let leaves = workdir::list(path);
    let chosen: Option<&Workdir> = match nickname {
        Some(nick) => leaves.iter().find(|w| w.nickname == nick),
        None => leaves.first(),
    };
    Group {
        name: name.to_string(),
        path: path.to_path_buf(),
        managed_metadata,
        leaf_folders: leaves.iter().rev().map(|w| w.name.clone()).collect(),
        leaf: chosen.map(|w| read_leaf(&w.name, &path.join(&w.name))),
    }
}

/// One leaf folder as `status` reads it (for `batch` and `archive`, which must agree with
/// `status` on what "complete" means).
pub fn read_leaf(name: &str, path: &Path) -> Leaf {
    let leaf = |state, counts, problems| Leaf {
        name: name.to_string(),
        path: path.to_path_buf(),
        state,
        counts,
        problems,
    };
    // A delta leaf folder (no `.metadata`: it is no export) is known by its manifest.
    match crate::delta::manifest::load(path) {
        Ok(None) => {}
        Ok(Some(m)) => {
            let counts = Counts {
                patients: m.kept.get("Patient").copied().unwrap_or(0),
                // As an export's record lists them: types with lines only.
                resources: m
                    .kept
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(t, n)| (t.clone(), *n))
                    .collect(),
                deleted: m.deleted.clone(),
                from_marker: true,
            };
            return leaf(
                LeafState::Complete(Completion::Delta(Box::new(m))),
                counts,
                Vec::new(),
            );
        }
        Err(why) => return leaf(LeafState::Unknown(why), Counts::default(), Vec::new()),
    }
    let metadata = match OutputMetadata::load(path) {
        Ok(m) => m,
        Err(e) => {
            let contents = contents::count(path);
            return leaf(
                LeafState::Unknown(e.to_string()),
                Counts::of_contents(&contents),
                contents.problems,
            );
        }
    };
    if let Some(recorded) = metadata.export_completion() {
        let counts = Counts {
            patients: recorded.patients,
            resources: recorded.resources.clone(),
            deleted: recorded.deleted.clone(),
            from_marker: true,
        };
        return leaf(
            LeafState::Complete(Completion::Recorded(recorded)),
            counts,
            Vec::new(),
        );
    }
    let contents = contents::count(path);
    let mut problems = contents.problems.clone();
    let counts = Counts::of_contents(&contents);
    if metadata.is_complete() {
        let written = metadata
            .raw()
            .get("timestamp")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let completion = Completion::Flagged {
            metadata_written: written,
            accepted_failed_searches: metadata.accepted_failed_searches(),
        };
        return leaf(LeafState::Complete(completion), counts, problems);
    }
    let searches: BTreeMap<String, u64> = sink::journaled_failures(path)
        .into_iter()
        .map(|(t, n)| (t.as_str().to_string(), n))
        .collect();
    let reads = contents::failed_reads(path).unwrap_or_else(|problem| {
        problems.push(problem);
        BTreeMap::new()
    });
    let state = match Failures::of(searches, reads) {
        Some(failures) => LeafState::Failed(failures),
        None => LeafState::InProgress,
    };
    leaf(state, counts, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::{temp_dir, write};

    fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    const MANAGED: &str = r#"{"fhir-url": "http://x/R4", "group": null, "kind": "managed"}"#;

    #[test]
    fn groups_states_and_other_folders() {
        let root = temp_dir("status-root");
        // a: complete the Python way (no marker), two leaf folders.
        write(&root.join("a/.metadata"), MANAGED);
        write(
            &root.join("a/001.q1/.metadata"),
            r#"{"kind": "output", "complete": true}"#,
        );
        write(
            &root.join("a/002.q2/.metadata"),
            r#"{"kind": "output", "timestamp": "2026-03-01T00:00:00+00:00", "done": {}, "complete": true}"#,
        );
        write(
            &root.join("a/002.q2/Patient.ndjson.gz"),
            "{\"resourceType\":\"Patient\",\"id\":\"1\"}\n{\"resourceType\":\"Patient\",\"id\":\"2\"}\n",
        );
        // b: a hydration read failed.
        write(&root.join("b/.metadata"), MANAGED);
        write(&root.join("b/001.q2/.metadata"), r#"{"kind": "output"}"#);
        write(
            &root.join("b/001.q2/.resume/hydration-failures.json"),
            r#"{"Observation": 2}"#,
        );
        // c: started, nothing recorded; d: only q1; e: empty; f: unreadable leaf metadata.
        write(&root.join("c/.metadata"), MANAGED);
        write(&root.join("c/001.q2/.metadata"), r#"{"kind": "output"}"#);
        write(&root.join("d/.metadata"), MANAGED);
        write(&root.join("d/001.q1/.metadata"), r#"{"kind": "output"}"#);
        ok(fs::create_dir_all(root.join("e")));
        write(&root.join("f/.metadata"), MANAGED);
        write(&root.join("f/001.q2/.metadata"), "{nope");
        // Not groups.
        write(&root.join("notes/readme.txt"), "x");
        write(&root.join("001.stray/.metadata"), r#"{"kind": "output"}"#);
        write(&root.join("bad/.metadata"), "[]");
        write(&root.join("batch-q2.json"), "{}");
        ok(fs::create_dir_all(root.join(".hidden")));

        let report = ok(read(&root, Some("q2")));
        assert!(!report.single_group);
        let states: Vec<(String, State)> = report
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.state()))
            .collect();
        let expected: Vec<(String, State)> = [
            ("a", State::Complete),
            ("b", State::Failed),
            ("c", State::InProgress),
            ("d", State::NotStarted),
            ("e", State::NotStarted),
            ("f", State::Unknown),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        assert_eq!(states, expected);
        let others: Vec<&str> = report
            .other_folders
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(others, ["001.stray", "bad", "notes"]);
        let a = &report.groups[0];
        assert_eq!(a.leaf_folders, ["001.q1", "002.q2"]);
        let Some(leaf) = &a.leaf else {
            panic!("a has a leaf")
        };
        assert_eq!(leaf.counts.patients, 2);
        assert!(!leaf.counts.from_marker);
        let LeafState::Complete(completion) = &leaf.state else {
            panic!("complete")
        };
        assert_eq!(completion.finished(), Some("2026-03-01T00:00:00+00:00"));
        let Some(LeafState::Failed(failures)) = report.groups[1].leaf.as_ref().map(|l| &l.state)
        else {
            panic!("b failed")
        };
        assert_eq!(failures.reads().get("Observation"), Some(&2));
        assert!(failures.searches().is_empty());
        assert_eq!(report.complete_leaf_folders(), [root.join("a/002.q2")]);
        assert!(!report.all_complete());
        let totals = report.totals();
        assert_eq!(totals.groups, 6);
        assert_eq!(totals.by_state.get(&State::NotStarted), Some(&2));
        assert_eq!(totals.patients, 2);

        // Without a nickname: the newest leaf folder of each group.
        let latest = ok(read(&root, None));
        assert_eq!(latest.groups[3].state(), State::InProgress);

        // One managed folder as the root; a leaf folder as the root is refused.
        let single = ok(read(&root.join("a"), Some("q1")));
        assert!(single.single_group);
        assert_eq!(single.groups.len(), 1);
        assert_eq!(single.groups[0].name, "a");
        assert_eq!(single.groups[0].state(), State::Complete);
        assert!(matches!(
            read(&root.join("a/001.q1"), None),
            Err(StatusError::LeafFolder { .. })
        ));
        assert!(matches!(
            read(&root.join("missing"), None),
            Err(StatusError::Missing(_))
        ));
        assert!(matches!(
            read(&root.join("batch-q2.json"), None),
            Err(StatusError::NotAFolder(_))
        ));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_recorded_completion_is_read_without_counting() {
        let root = temp_dir("status-marker");
        write(&root.join(".metadata"), MANAGED);
        let leaf = root.join("001.q1");
        write(
            &leaf.join("Patient.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"1\"}\n",
        );
        let mut meta = ok(OutputMetadata::load(&leaf));
        ok(meta.mark_complete());
        ok(meta.mark_export_complete(&BTreeMap::new()));
        // A file added later is not counted: the recorded summary is used as it is.
        write(
            &leaf.join("Condition.ndjson"),
            "{\"resourceType\":\"Condition\",\"id\":\"1\"}\n",
        );
        let report = ok(read(&root, None));
        let Some(l) = &report.groups[0].leaf else {
            panic!("leaf")
        };
        assert!(l.counts.from_marker);
        assert_eq!(l.counts.patients, 1);
        assert_eq!(l.counts.resources.get("Condition"), None);
        let LeafState::Complete(Completion::Recorded(c)) = &l.state else {
            panic!("recorded")
        };
        assert_eq!(c.tool, crate::folder::metadata::TOOL);
        let _ = fs::remove_dir_all(&root);
    }
}
