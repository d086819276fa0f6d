//! `groups split`: cut a site's full MRN list into group files (`MRN-000`, `MRN-001`, …)
//! that each feed one managed export through `--id-file`, and keep them stable from one
//! quarter's list to the next. A managed folder compares each export with the last one, so
//! an MRN that moved to another group would look deleted in one folder and new in another;
//! hence existing MRNs never move, new ones only fill new groups, and MRNs gone from the
//! source leave their group (its next export then records them as deleted).
//!
//! Everything is read and checked first ([`plan_split`]), and only a finished [`Plan`] is
//! written ([`Plan::apply`]), so bad input writes nothing and `--dry-run` is the plan
//! alone. Printing is the CLI's business (`cli/groups.rs`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Widest group number we pad to; anything wider is surely a typo for the size.
pub const MAX_WIDTH: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error(
        "--size must be at least 1: give the most MRNs one group file may hold, e.g. --size 10000."
    )]
    ZeroSize,
    #[error(
        "--width {0} is out of range: give the number of digits in group file names, from 1 to {MAX_WIDTH} (e.g. --width 3)."
    )]
    BadWidth(usize),
    #[error(
        "--prefix {0:?} cannot start a file name: give a non-empty prefix without '/' or '\\', e.g. --prefix MRN-."
    )]
    BadPrefix(String),
    #[error("Could not read the MRN file {path}: {source}. Check the --mrns path.")]
    ReadSource { path: String, source: io::Error },
    #[error("The MRN file {0} is not UTF-8 text: save it as UTF-8 (or plain ASCII) and run again.")]
    SourceNotUtf8(String),
    #[error(
        "The MRN file {path} is not valid CSV: {message}. Fix the file, or give a text file with one MRN a line."
    )]
    BadCsv { path: String, message: String },
    #[error(
        "The CSV file {path} has no 'mrn' column (its header: {header}): name the MRN column 'mrn' in the first line."
    )]
    NoMrnColumn { path: String, header: String },
    #[error("The CSV file {0} has more than one 'mrn' column: keep one, or rename the others.")]
    TwoMrnColumns(String),
    #[error(
        "The MRN on {place} of {path} contains a line break, which a group file cannot hold: fix that value and run again."
    )]
    LineBreakInMrn { path: String, place: String },
    #[error(
        "The MRN file {0} holds no MRNs: give the full list (one MRN a line, or a .csv file with an 'mrn' column)."
    )]
    EmptySource(String),
    #[error(
        "{0} is a file, not a folder: GROUPS_DIR must be a folder for the group files (a new or existing one)."
    )]
    DirIsFile(String),
    #[error("Could not read the groups folder {path}: {source}.")]
    ReadDir { path: String, source: io::Error },
    #[error("Could not read the group file {path}: {source}.")]
    ReadGroup { path: String, source: io::Error },
    #[error("The group file {0} is not UTF-8 text: fix or remove it and run again.")]
    GroupNotUtf8(String),
    #[error(
        "{path} has a group file's name but is {what}: move it out of the groups folder and run again."
    )]
    GroupNotFile { path: String, what: &'static str },
    #[error(
        "MRN {mrn} is in two group files, {first} and {second}: remove it from one of them and run again."
    )]
    InTwoGroups {
        mrn: String,
        first: String,
        second: String,
    },
    #[error("Could not write {path}: {source}.")]
    Write { path: String, source: io::Error },
}

impl GroupsError {
    /// A bad option value is a usage error (exit 2), like clap's own.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            GroupsError::ZeroSize | GroupsError::BadWidth(_) | GroupsError::BadPrefix(_)
        )
    }
}

/// What `groups split` was asked to do.
#[derive(Debug, Clone)]
pub struct SplitRequest<'a> {
    /// The full MRN list: text (one MRN a line) or `.csv` with an `mrn` column.
    pub mrns: &'a Path,
    pub dir: &'a Path,
    pub size: usize,
    pub prefix: &'a str,
    pub width: usize,
    /// Names this run's list of removed MRNs, `removed-<stamp>.csv` (the CLI passes the
    /// UTC time); a parameter so the library stays deterministic.
    pub stamp: &'a str,
}

/// The source list after cleaning, in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub mrns: Vec<String>,
    /// Blank lines (or CSV rows with an empty `mrn`) skipped.
    pub blank: usize,
    /// Repeats of an MRN already seen; the first stays.
    pub duplicates: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Rewritten,
    New,
}

/// One group file as it will be after the run.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub number: u64,
    pub change: Change,
    /// Its MRNs after the run, in file order.
    pub mrns: Vec<String>,
    /// MRNs it held that the source no longer has.
    pub removed: Vec<String>,
    /// Lines that repeated an MRN already in the same file (hand edits); dropped.
    pub repeated_lines: usize,
}

/// A file in the groups folder that starts like a group file but is not one; left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub name: String,
}

/// Everything a run would do, computed without writing.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dir: PathBuf,
    /// GROUPS_DIR does not exist yet.
    pub create_dir: bool,
    pub source_blank: usize,
    pub source_duplicates: usize,
    /// Existing groups in number order, then the new ones.
    pub groups: Vec<Group>,
    pub ignored: Vec<Ignored>,
    /// Where the removed MRNs are listed (`group,mrn` CSV), when any are removed.
    pub removed_list: Option<PathBuf>,
}

impl Plan {
    pub fn count(&self, change: Change) -> usize {
        self.groups.iter().filter(|g| g.change == change).count()
    }

    pub fn total_mrns(&self) -> usize {
        self.groups.iter().map(|g| g.mrns.len()).sum()
    }

    pub fn total_removed(&self) -> usize {
        self.groups.iter().map(|g| g.removed.len()).sum()
    }

    pub fn total_new(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.change == Change::New)
            .map(|g| g.mrns.len())
            .sum()
    }

    /// Write the plan: the folder if missing, the removed list, then each changed group
    /// file atomically. Unchanged files are not touched (their mtime stays). The removed
    /// list goes first so that a run cut short never loses it; a rerun then finds the
    /// same MRNs to remove and lists them again.
    pub fn apply(&self) -> Result<(), GroupsError> {
        let write_error = |path: &Path, source: io::Error| GroupsError::Write {
            path: path.display().to_string(),
            source,
        };
        if self.create_dir {
            fs::create_dir_all(&self.dir).map_err(|e| write_error(&self.dir, e))?;
        }
        if let Some(path) = &self.removed_list {
            let bytes = self.removed_csv().map_err(|e| write_error(path, e))?;
            crate::ndjson::write_atomic(path, &bytes).map_err(|e| write_error(path, e))?;
        }
        for group in self.groups.iter().filter(|g| g.change != Change::Unchanged) {
            let path = self.dir.join(&group.name);
            crate::ndjson::write_atomic(&path, group_file_text(&group.mrns).as_bytes())
                .map_err(|e| write_error(&path, e))?;
        }
        Ok(())
    }

    /// `group,mrn` rows; being a CSV with an `mrn` column, it also works as `--id-file`.
    fn removed_csv(&self) -> io::Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["group", "mrn"])?;
        for group in &self.groups {
            for mrn in &group.removed {
                writer.write_record([group.name.as_str(), mrn.as_str()])?;
            }
        }
        writer.into_inner().map_err(|e| e.into_error())
    }
}

/// A group file's bytes: one MRN a line, each line ended, as `export --id-file` reads it.
pub fn group_file_text(mrns: &[String]) -> String {
    let mut text = String::with_capacity(mrns.iter().map(|m| m.len() + 1).sum());
    for mrn in mrns {
        text.push_str(mrn);
        text.push('\n');
    }
    text
}

/// `MRN-` and 7 at width 3 → `MRN-007`; a number wider than the width keeps all its
/// digits (`MRN-1000`), so a site that outgrows its width gets longer names, not an error.
pub fn group_name(prefix: &str, width: usize, number: u64) -> String {
    format!("{prefix}{number:0width$}")
}

/// Read everything, check it, and work out what a run would write.
pub fn plan_split(req: &SplitRequest<'_>) -> Result<Plan, GroupsError> {
    if req.size == 0 {
        return Err(GroupsError::ZeroSize);
    }
    if req.width == 0 || req.width > MAX_WIDTH {
        return Err(GroupsError::BadWidth(req.width));
    }
    if req.prefix.is_empty() || req.prefix.contains(['/', '\\', '\0']) {
        return Err(GroupsError::BadPrefix(req.prefix.to_string()));
    }
    let create_dir = match fs::metadata(req.dir) {
        Ok(meta) if meta.is_dir() => false,
        Ok(_) => return Err(GroupsError::DirIsFile(req.dir.display().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(GroupsError::ReadDir {
                path: req.dir.display().to_string(),
                source,
            });
        }
    };
    let source = read_source(req.mrns)?;
    if source.mrns.is_empty() {
        return Err(GroupsError::EmptySource(req.mrns.display().to_string()));
    }
    let (existing, ignored) = if create_dir {
        (Vec::new(), Vec::new())
    } else {
        scan_dir(req.dir, req.prefix)?
    };

    // Which source MRNs are new, and which existing ones the source still has: flags, so
    // that the lookup tables (which borrow the lists) are gone before the lists are taken
    // apart, and only one table lives at a time (1.4 million MRNs are a lot of memory).
    let is_new: Vec<bool> = {
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (i, group) in existing.iter().enumerate() {
            for mrn in &group.mrns {
                if let Some(&first) = owner.get(mrn.as_str()) {
                    return Err(GroupsError::InTwoGroups {
                        mrn: mrn.clone(),
                        first: req.dir.join(&existing[first].name).display().to_string(),
                        second: req.dir.join(&group.name).display().to_string(),
                    });
                }
                owner.insert(mrn, i);
            }
        }
        source
            .mrns
            .iter()
            .map(|m| !owner.contains_key(m.as_str()))
            .collect()
    };
    let keep: Vec<Vec<bool>> = {
        let in_source: HashSet<&str> = source.mrns.iter().map(String::as_str).collect();
        existing
            .iter()
            .map(|g| {
                g.mrns
                    .iter()
                    .map(|m| in_source.contains(m.as_str()))
                    .collect()
            })
            .collect()
    };

    let mut next = existing.iter().map(|g| g.number + 1).max().unwrap_or(0);
    let mut groups = Vec::with_capacity(existing.len());
    for (group, keep) in existing.into_iter().zip(keep) {
        let mut mrns = Vec::with_capacity(group.mrns.len());
        let mut removed = Vec::new();
        for (mrn, keep) in group.mrns.into_iter().zip(keep) {
            if keep {
                mrns.push(mrn);
            } else {
                removed.push(mrn);
            }
        }
        let change = if removed.is_empty() && group.repeated_lines == 0 {
            Change::Unchanged
        } else {
            Change::Rewritten
        };
        groups.push(Group {
            name: group.name,
            number: group.number,
            change,
            mrns,
            removed,
            repeated_lines: group.repeated_lines,
        });
    }
    let mut fresh = source
        .mrns
        .into_iter()
        .zip(is_new)
        .filter_map(|(mrn, new)| new.then_some(mrn))
        .peekable();
    while fresh.peek().is_some() {
        let mrns: Vec<String> = fresh.by_ref().take(req.size).collect();
        groups.push(Group {
            name: group_name(req.prefix, req.width, next),
            number: next,
            change: Change::New,
            mrns,
            removed: Vec::new(),
            repeated_lines: 0,
        });
        next += 1;
    }

    let removed_list = groups
        .iter()
        .any(|g| !g.removed.is_empty())
        .then(|| free_name(req.dir, req.stamp));
    Ok(Plan {
        dir: req.dir.to_path_buf(),
        create_dir,
        source_blank: source.blank,
        source_duplicates: source.duplicates,
        groups,
        ignored,
        removed_list,
    })
}

/// `removed-<stamp>.csv`, or `removed-<stamp>-2.csv` … when a run in the same second
/// already wrote one: an earlier list is never overwritten.
fn free_name(dir: &Path, stamp: &str) -> PathBuf {
    let mut path = dir.join(format!("removed-{stamp}.csv"));
    let mut n = 2;
    while fs::symlink_metadata(&path).is_ok() {
        path = dir.join(format!("removed-{stamp}-{n}.csv"));
        n += 1;
    }
    path
}

/// Read the source list: `.csv` (any case) by its `mrn` column, anything else as text with
/// one MRN a line. Values are trimmed; blanks and repeats are dropped and counted.
pub fn read_source(path: &Path) -> Result<Source, GroupsError> {
    let shown = || path.display().to_string();
    let bytes = fs::read(path).map_err(|source| GroupsError::ReadSource {
        path: shown(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| GroupsError::SourceNotUtf8(shown()))?;
    // Spreadsheet exports often start with a byte order mark, which `trim` keeps.
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let is_csv = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
    let mut values = Values::default();
    if is_csv {
        read_csv(path, body, &mut values)?;
    } else {
        for line in body.lines() {
            values.push(line);
        }
    }
    drop(text);
    Ok(values.dedupe())
}

/// The trimmed, non-empty values in source order, and how many were blank.
#[derive(Default)]
struct Values {
    all: Vec<String>,
    blank: usize,
}

impl Values {
    fn push(&mut self, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            self.blank += 1;
        } else {
            self.all.push(value.to_string());
        }
    }

    /// Keep each MRN's first occurrence. The set borrows the values, so each MRN is held
    /// once, not once more for the set.
    fn dedupe(self) -> Source {
        let first: Vec<bool> = {
            let mut seen = HashSet::with_capacity(self.all.len());
            self.all.iter().map(|v| seen.insert(v.as_str())).collect()
        };
        let duplicates = first.iter().filter(|&&f| !f).count();
        let mrns = self
            .all
            .into_iter()
            .zip(first)
            .filter_map(|(v, f)| f.then_some(v))
            .collect();
        Source {
            mrns,
            blank: self.blank,
            duplicates,
        }
    }
}

fn read_csv(path: &Path, text: &str, values: &mut Values) -> Result<(), GroupsError> {
    let bad_csv = |err: csv::Error| GroupsError::BadCsv {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(bad_csv)?.clone();
    let mut columns = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.trim().eq_ignore_ascii_case("mrn"))
        .map(|(i, _)| i);
    let column = columns.next().ok_or_else(|| GroupsError::NoMrnColumn {
        path: path.display().to_string(),
        header: header.iter().collect::<Vec<_>>().join(","),
    })?;
    if columns.next().is_some() {
        return Err(GroupsError::TwoMrnColumns(path.display().to_string()));
    }
    for record in reader.records() {
        let record = record.map_err(bad_csv)?;
        // A short row has no value in the column: a blank, like an empty cell.
        let value = record.get(column).unwrap_or("");
        if value.trim().contains(['\n', '\r']) {
            let place = match record.position() {
                Some(p) => format!("line {}", p.line()),
                None => "a row".to_string(),
            };
            return Err(GroupsError::LineBreakInMrn {
                path: path.display().to_string(),
                place,
            });
        }
        values.push(value);
    }
    Ok(())
}

/// A group file found in the folder.
struct Existing {
    name: String,
    number: u64,
    mrns: Vec<String>,
    repeated_lines: usize,
}

/// The group files in `dir` (prefix then digits), sorted by number, and the names that
/// start like one (prefix in any case) but are not. Our own leftovers are skipped quietly:
/// a temp file of a write cut short (`MRN-003.tmp`, replaced by the next write) and the
/// removed lists.
fn scan_dir(dir: &Path, prefix: &str) -> Result<(Vec<Existing>, Vec<Ignored>), GroupsError> {
    let read_dir_error = |source| GroupsError::ReadDir {
        path: dir.display().to_string(),
        source,
    };
    let mut groups = Vec::new();
    let mut ignored = Vec::new();
    let lower_prefix = prefix.to_lowercase();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            if os_name
                .to_string_lossy()
                .to_lowercase()
                .starts_with(&lower_prefix)
            {
                ignored.push(Ignored {
                    name: os_name.to_string_lossy().into_owned(),
                });
            }
            continue;
        };
        let number = name.strip_prefix(prefix).and_then(parse_digits);
        let Some(number) = number else {
            let ours = name.strip_suffix(".tmp").is_some_and(|stem| {
                stem.strip_prefix(prefix)
                    .is_some_and(|d| parse_digits(d).is_some())
            }) || is_removed_list(name);
            if !ours && name.to_lowercase().starts_with(&lower_prefix) {
                ignored.push(Ignored {
                    name: name.to_string(),
                });
            }
            continue;
        };
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| GroupsError::ReadGroup {
            path: path.display().to_string(),
            source,
        })?;
        if !kind.is_file() {
            let what = if kind.is_dir() {
                "a folder"
            } else if kind.is_symlink() {
                "a symbolic link (a rewrite would replace the link, not its target)"
            } else {
                "not a regular file"
            };
            return Err(GroupsError::GroupNotFile {
                path: path.display().to_string(),
                what,
            });
        }
        let number = number.map_err(|()| GroupsError::GroupNotFile {
            path: path.display().to_string(),
            what: "numbered beyond any group this tool writes",
        })?;
        let (mrns, repeated_lines) = read_group(&path)?;
        groups.push(Existing {
            name: name.to_string(),
            number,
            mrns,
            repeated_lines,
        });
    }
    groups.sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
    ignored.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((groups, ignored))
}

/// Group numbers from here up are refused: a next number must always exist (no overflow,
/// no name that wraps onto an existing group), and no site has a quintillion groups.
const MAX_GROUP_NUMBER: u64 = 1_000_000_000_000_000_000;

/// `Some(Ok(n))` for all-ASCII digits, `Some(Err(()))` for a number too large for a group,
/// `None` for anything else (not a group name).
fn parse_digits(text: &str) -> Option<Result<u64, ()>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse()
            .ok()
            .filter(|&n| n < MAX_GROUP_NUMBER)
            .ok_or(()),
    )
}

/// A group file's MRNs as `export --id-file` reads them (trimmed, blank lines skipped),
/// and how many lines repeated an earlier one.
fn read_group(path: &Path) -> Result<(Vec<String>, usize), GroupsError> {
    let bytes = fs::read(path).map_err(|source| GroupsError::ReadGroup {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| GroupsError::GroupNotUtf8(path.display().to_string()))?;
    let mut seen = HashSet::new();
    let mut mrns = Vec::new();
    let mut repeated = 0;
    for mrn in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if seen.insert(mrn) {
            mrns.push(mrn.to_string());
        } else {
            repeated += 1;
        }
    }
    Ok((mrns, repeated))
}

/// Is this file name one of the lists of removed MRNs that `split` leaves in the groups
/// folder? (`batch` must not take them for groups.)
pub fn is_removed_list(name: &str) -> bool {
    name.starts_with("removed-") && name.ends_with(".csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(
        PathBuf,
        #[allow(dead_code, reason = "held so the folder is removed when the test ends")]
        crate::folder::discovery::tests::TestDir,
    );

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = crate::folder::discovery::tests::temp_dir(&format!("groups-{name}"));
            TempDir(dir.to_path_buf(), dir)
        }
    }

    fn write(path: &Path, text: &str) {
        fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn request<'a>(mrns: &'a Path, dir: &'a Path, size: usize) -> SplitRequest<'a> {
        SplitRequest {
            mrns,
            dir,
            size,
            prefix: "MRN-",
            width: 3,
            stamp: "20260301T000000Z",
        }
    }

    #[test]
    fn names_pad_then_widen() {
        assert_eq!(group_name("MRN-", 3, 0), "MRN-000");
        assert_eq!(group_name("MRN-", 3, 143), "MRN-143");
        assert_eq!(group_name("MRN-", 3, 1000), "MRN-1000");
        assert_eq!(group_name("g", 1, 7), "g7");
    }

    #[test]
    fn groups_source_is_cleaned_in_order() {
        let tmp = TempDir::new("clean");
        let path = tmp.0.join("all.txt");
        write(&path, "\u{feff}b\r\n a \n\n  \nb\nc\na\n");
        let source = read_source(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source.mrns, ["b", "a", "c"]);
        assert_eq!((source.blank, source.duplicates), (2, 2));
    }

    #[test]
    fn groups_csv_needs_one_mrn_column() {
        let tmp = TempDir::new("csv");
        let path = tmp.0.join("all.CSV");
        write(&path, "name, MRN ,dob\nann, 7 ,x\nbob,,y\ncy\ndee,7,z\n");
        let source = read_source(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source.mrns, ["7"]);
        assert_eq!((source.blank, source.duplicates), (2, 1));

        write(&path, "mrn,MRN\n1,2\n");
        let err = read_source(&path).map(|_| ()).unwrap_err();
        assert!(matches!(err, GroupsError::TwoMrnColumns(_)), "{err}");

        write(&path, "mrn\n\"a\nb\"\n");
        let err = read_source(&path).map(|_| ()).unwrap_err();
        assert!(matches!(err, GroupsError::LineBreakInMrn { .. }), "{err}");
    }

    /// The file a group is written to is read back by `export --id-file` as the same
    /// MRNs (export's reader sorts them; order within a group does not matter to it).
    #[test]
    fn groups_files_read_back_through_id_file_reader() {
        let tmp = TempDir::new("readback");
        let source = tmp.0.join("all.csv");
        write(&source, "MRN\n z9 \n\n10\n1\n10\n0042\nabc-1\n");
        let dir = tmp.0.join("groups");
        let plan = plan_split(&request(&source, &dir, 3)).unwrap_or_else(|e| panic!("{e}"));
        plan.apply().unwrap_or_else(|e| panic!("{e}"));
        let mut all = Vec::new();
        for group in &plan.groups {
            let path = dir.join(&group.name);
            let ids =
                crate::crawl::cohort::read_ids(None, Some(&path)).unwrap_or_else(|e| panic!("{e}"));
            let mut expected = group.mrns.clone();
            expected.sort();
            assert_eq!(ids, expected, "{}", group.name);
            all.extend(group.mrns.clone());
        }
        assert_eq!(all, ["z9", "10", "1", "0042", "abc-1"]);
        let names: Vec<_> = plan.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["MRN-000", "MRN-001"]);
    }

    #[test]
    fn groups_existing_files_are_scanned_by_name() {
        let tmp = TempDir::new("scan");
        let dir = &tmp.0;
        write(&dir.join("MRN-007"), "a\nb\na\n");
        write(&dir.join("MRN-1000"), "c\n");
        write(&dir.join("MRN-0999"), "");
        write(&dir.join("MRN-007.bak"), "zzz\n");
        write(&dir.join("mrn-x"), "zzz\n");
        write(&dir.join("MRN-008.tmp"), "zzz\n");
        write(&dir.join("removed-20250101T000000Z.csv"), "group,mrn\n");
        write(&dir.join("notes.txt"), "zzz\n");
        let source = dir.join("all.txt");
        write(&source, "a\nc\nd\n");
        let plan = plan_split(&request(&source, dir, 10)).unwrap_or_else(|e| panic!("{e}"));
        let view: Vec<_> = plan
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.change, g.mrns.clone(), g.removed.clone()))
            .collect();
        let s = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            view,
            [
                ("MRN-007", Change::Rewritten, s(&["a"]), s(&["b"])),
                ("MRN-0999", Change::Unchanged, s(&[]), s(&[])),
                ("MRN-1000", Change::Unchanged, s(&["c"]), s(&[])),
                ("MRN-1001", Change::New, s(&["d"]), s(&[])),
            ]
        );
        assert_eq!(plan.groups[0].repeated_lines, 1);
        let ignored: Vec<_> = plan.ignored.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(ignored, ["MRN-007.bak", "mrn-x"]);
        assert_eq!(
            plan.removed_list.as_deref(),
            Some(dir.join("removed-20260301T000000Z.csv").as_path())
        );
    }

    #[test]
    fn groups_numbers_too_large_are_refused() {
        let tmp = TempDir::new("huge");
        write(&tmp.0.join("MRN-18446744073709551615"), "a\n");
        let source = tmp.0.join("all.txt");
        write(&source, "a\nb\n");
        let err = plan_split(&request(&source, &tmp.0, 10))
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, GroupsError::GroupNotFile { .. }), "{err}");
    }

    #[test]
    fn groups_an_mrn_in_two_files_names_both() {
        let tmp = TempDir::new("two");
        let dir = &tmp.0;
        write(&dir.join("MRN-000"), "a\nb\n");
        write(&dir.join("MRN-001"), "c\nb\n");
        let source = dir.join("all.txt");
        write(&source, "a\nb\nc\n");
        let err = plan_split(&request(&source, dir, 10))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("MRN b "), "{err}");
        assert!(err.contains("MRN-000 and "), "{err}");
        assert!(err.contains("MRN-001:"), "{err}");
    }
}
