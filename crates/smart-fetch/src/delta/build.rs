//! The two passes of a delta: the earlier export read into an [`Index`], then the quarter's
//! export read once more and written out as a delta leaf folder: every NDJSON file under
//! its own name holding the lines the index does not hold as they are (an empty file when
//! none), `deleted/` and `log.ndjson` copied byte for byte. Each export is read once; the
//! lines kept are copied as written, never re-serialized (resources pass through unchanged).
//!
//! Why a file for every file, even empty: Cumulus ETL runs a type's task only when its
//! input folder has a file of that type, and the task is also what applies the type's
//! `deleted/` entries and records its completion. A delta without a file for an unchanged
//! type would silently skip both (see the README).

use super::DeltaError;
use super::index::Index;
use super::scan::{self, Line};
use crate::folder::contents::DELETED_DIR;
use crate::folder::discovery;
use crate::report::Reporter;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What the second pass wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// Lines of the full export's NDJSON files, by the files' type.
    pub resources: BTreeMap<String, u64>,
    /// Lines kept, by the files' type.
    pub kept: BTreeMap<String, u64>,
    /// Files written (NDJSON, `deleted/`, the log).
    pub files: u64,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> DeltaError {
    DeltaError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn write_err(path: &Path, e: io::Error) -> DeltaError {
    DeltaError::Write {
        path: path.display().to_string(),
        source: e,
    }
}

/// The typed NDJSON files directly in an export's leaf folder, and its untyped ones (the
/// log). A file discovery cannot read stops the delta: its lines could be anything.
fn files_of(leaf: &Path) -> Result<Vec<(PathBuf, Option<String>)>, DeltaError> {
    let (files, problems) = discovery::list_quietly(leaf);
    if let Some(problem) = problems.into_iter().next() {
        return Err(DeltaError::Damaged(problem));
    }
    Ok(files)
}

/// First pass: every resource of the earlier export, as key and digest. Lines that cannot
/// be read are left out with a warning (a resource of the quarter's export under that id
/// then counts as new and is kept).
pub fn index_of(leaf: &Path, capacity: u64, reporter: &Reporter) -> Result<Index, DeltaError> {
    let mut index = Index::with_capacity(usize::try_from(capacity).unwrap_or(0));
    for (path, t) in files_of(leaf)? {
        if t.is_none() {
            continue;
        }
        let scanned = scan::scan(&path, |line: Line<'_>| {
            match (line.identity, &line.unreadable) {
                (Some((key, digest)), _) => index.insert(key, digest),
                (None, Some(why)) => reporter.warn(format!(
                    "Could not decode '{}:{}' of the earlier export ({why}); resources of that id count as new.",
                    path.display(),
                    line.number
                )),
                (None, None) => {}
            }
            Ok(())
        })
        .map_err(|e| read_err(&path, e))?;
        for n in scanned.too_long {
            reporter.warn(format!(
                "Skipped '{}:{n}' of the earlier export: the line is longer than {} MiB.",
                path.display(),
                crate::ndjson::MAX_LINE / (1024 * 1024)
            ));
        }
    }
    Ok(index)
}

/// A file of the delta: created fresh, gzip when its name says so (an empty gzip file is a
/// valid gzip stream, which every reader opens).
struct Out {
    sink: Sink,
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

impl Out {
    fn create(path: PathBuf) -> io::Result<Out> {
        let file = crate::safe_file::create_fresh(&path)?;
        let buffered = BufWriter::with_capacity(64 * 1024, file);
        let sink = if crate::ndjson::is_compressed_name(&path) {
            Sink::Gzip(Box::new(GzEncoder::new(buffered, Compression::default())))
        } else {
            Sink::Plain(buffered)
        };
        Ok(Out { sink })
    }

    fn line(&mut self, bytes: &[u8]) -> io::Result<()> {
        let w: &mut dyn Write = match &mut self.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.as_mut(),
        };
        w.write_all(bytes)?;
        w.write_all(b"\n")
    }

    /// Finish the stream and fsync: the folder is renamed into place only after this.
    fn finish(self) -> io::Result<()> {
        let buffered = match self.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
        };
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// Copy a file byte for byte, fsynced.
fn copy_file(from: &Path, to: &Path) -> Result<(), DeltaError> {
    let mut source = File::open(from).map_err(|e| read_err(from, e))?;
    let mut target = crate::safe_file::create_fresh(to).map_err(|e| write_err(to, e))?;
    io::copy(&mut source, &mut target).map_err(|e| write_err(to, e))?;
    target.sync_all().map_err(|e| write_err(to, e))
}

/// Second pass: write the delta of `current` against `index` into the (new, empty)
/// folder `out`.
pub fn write_delta(
    current: &Path,
    index: &Index,
    out: &Path,
    reporter: &Reporter,
) -> Result<Written, DeltaError> {
    let mut written = Written::default();
    // Types that have a file the ETL will see as theirs (see `name_every_type`).
    let mut seen_by_etl: BTreeSet<String> = BTreeSet::new();
    for (path, t) in files_of(current)? {
        let Some(name) = path.file_name() else {
            continue;
        };
        let target = out.join(name);
        let Some(t) = t else {
            // Untyped NDJSON: the export log, which gives the ETL the export's group and
            // time; copied as it is so the delta reads as the same export.
            copy_file(&path, &target)?;
            written.files += 1;
            continue;
        };
        let mut file = Out::create(target.clone()).map_err(|e| write_err(&target, e))?;
        let (mut lines, mut kept) = (0u64, 0u64);
        let mut failed_write: Option<io::Error> = None;
        let scanned = scan::scan(&path, |line: Line<'_>| {
            lines += 1;
            let same = line
                .identity
                .is_some_and(|(key, digest)| index.holds(key, &digest));
            if let Some(why) = &line.unreadable {
                // Kept as it is: the ETL gets the same line a full run would give it.
                reporter.warn(format!(
                    "Could not decode '{}:{}' ({why}); kept in the delta as it is.",
                    path.display(),
                    line.number
                ));
            }
            if same {
                return Ok(());
            }
            kept += 1;
            file.line(line.bytes).map_err(|e| {
                failed_write = Some(e);
                io::Error::other("the delta file could not be written")
            })
        });
        if let Some(e) = failed_write {
            return Err(write_err(&target, e));
        }
        let scanned = scanned.map_err(|e| read_err(&path, e))?;
        if let Some(n) = scanned.too_long.first() {
            // The line cannot be held to be copied, and leaving it out would drop a
            // resource the full export has.
            return Err(DeltaError::Damaged(format!(
                "Could not read '{}:{n}': the line is longer than {} MiB",
                path.display(),
                crate::ndjson::MAX_LINE / (1024 * 1024)
            )));
        }
        file.finish().map_err(|e| write_err(&target, e))?;
        let name = name.to_string_lossy();
        if kept > 0 || discovery::type_from_name(&name) == Some(t.as_str()) {
            seen_by_etl.insert(t.clone());
        }
        *written.resources.entry(t.clone()).or_default() += lines;
        *written.kept.entry(t).or_default() += kept;
        written.files += 1;
    }
    for t in written.resources.keys() {
        if !seen_by_etl.contains(t) {
            written.files += name_type(out, t)?;
        }
    }
    written.files += copy_deleted(current, out)?;
    Ok(written)
}

/// Cumulus ETL types a file by its name when the name holds exactly one resource type,
/// else by its first line, which an empty file does not have. Every type of the full
/// export must therefore have a file in the delta that is typed by name or not empty;
/// where none is, an empty `<Type>.ndjson.gz` is added. (Only for files named otherwise
/// than ours: our names, bulk servers' as we save them and the Python tool's all name
/// their type.)
fn name_type(out: &Path, t: &str) -> Result<u64, DeltaError> {
    let path = out.join(crate::ndjson::file_name(t, true));
    if path.exists() {
        return Ok(0);
    }
    Out::create(path.clone())
        .and_then(Out::finish)
        .map_err(|e| write_err(&path, e))?;
    Ok(1)
}

/// `deleted/` of the full export, file for file (Cumulus ETL deletes what it names).
fn copy_deleted(current: &Path, out: &Path) -> Result<u64, DeltaError> {
    let from = current.join(DELETED_DIR);
    let entries = match fs::read_dir(&from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(read_err(&from, e)),
    };
    let to = out.join(DELETED_DIR);
    fs::create_dir_all(&to).map_err(|e| write_err(&to, e))?;
    let mut copied = 0;
    for entry in entries {
        let entry = entry.map_err(|e| read_err(&from, e))?;
        // Regular files only: never follow a link out of the export.
        let is_file = fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_file());
        if !is_file {
            continue;
        }
        copy_file(&entry.path(), &to.join(entry.file_name()))?;
        copied += 1;
    }
    crate::ndjson::sync_dir(&to);
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::{temp_dir, write};

    fn lines(path: &Path) -> Vec<String> {
        let mut text = String::new();
        let read = crate::ndjson::open_decompressed(path)
            .and_then(|mut r| io::Read::read_to_string(&mut r, &mut text));
        if let Err(e) = read {
            panic!("{}: {e}", path.display());
        }
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn keeps_what_changed_as_written_and_names_every_type() {
        let dir = temp_dir("delta-build");
        let (before, now, out) = (dir.join("001.a"), dir.join("002.b"), dir.join("out"));
        write(
            &before.join("Condition.ndjson.gz"),
            "{\"resourceType\":\"Condition\",\"id\":\"same\",\"code\":{\"text\":\"x\"}}\n\
             {\"resourceType\":\"Condition\",\"id\":\"changed\",\"code\":{\"text\":\"x\"}}\n\
             {\"resourceType\":\"Condition\",\"id\":\"gone\"}\n",
        );
        // Typed by its first line only.
        write(
            &before.join("extra.ndjson"),
            "{\"resourceType\":\"Encounter\",\"id\":\"e1\"}\n",
        );
        write(
            &now.join("Condition.ndjson.gz"),
            // Same content in another key order and spelling; changed; new; no id; damaged.
            "{\"code\":{\"text\":\"\\u0078\"},\"id\":\"same\",\"resourceType\":\"Condition\"}\n\
             \n\
             {\"resourceType\":\"Condition\",\"id\":\"changed\",\"code\":{\"text\":\"y\"}}\n\
             {\"resourceType\":\"Condition\",\"id\":\"new\"}\n\
             {\"resourceType\":\"Condition\"}\n\
             {\"resourceType\":\"Condition\",\"id\":\n",
        );
        write(
            &now.join("extra.ndjson"),
            "{\"resourceType\":\"Encounter\",\"id\":\"e1\"}\n",
        );
        write(&now.join("log.ndjson"), "{\"eventId\":\"kickoff\"}\n");
        write(
            &now.join("deleted/Bundle.Condition.ndjson.gz"),
            "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"DELETE\",\"url\":\"Condition/gone\"}}]}\n",
        );
        let reporter = Reporter::silent();
        let index = match index_of(&before, 4, &reporter) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(index.len(), 4);
        if let Err(e) = fs::create_dir_all(&out) {
            panic!("{e}");
        }
        let written = match write_delta(&now, &index, &out, &reporter) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            lines(&out.join("Condition.ndjson.gz")),
            [
                "{\"resourceType\":\"Condition\",\"id\":\"changed\",\"code\":{\"text\":\"y\"}}",
                "{\"resourceType\":\"Condition\",\"id\":\"new\"}",
                "{\"resourceType\":\"Condition\"}",
                "{\"resourceType\":\"Condition\",\"id\":",
            ]
        );
        // The unchanged file is there, empty, and since its name says no type, a file that
        // does is added for the ETL.
        assert!(lines(&out.join("extra.ndjson")).is_empty());
        assert!(lines(&out.join("Encounter.ndjson.gz")).is_empty());
        assert_eq!(
            fs::read(out.join("log.ndjson")).ok(),
            fs::read(now.join("log.ndjson")).ok()
        );
        assert_eq!(
            fs::read(out.join("deleted/Bundle.Condition.ndjson.gz")).ok(),
            fs::read(now.join("deleted/Bundle.Condition.ndjson.gz")).ok()
        );
        let named = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
        };
        assert_eq!(
            written.resources,
            named(&[("Condition", 5), ("Encounter", 1)])
        );
        assert_eq!(written.kept, named(&[("Condition", 4), ("Encounter", 0)]));
        let _ = fs::remove_dir_all(&dir);
    }
}
