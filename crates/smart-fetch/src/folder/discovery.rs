//! Finding NDJSON files of a type in a folder (docs/folders.md#finding-files-by-type): direct
//! children only, symlinks resolved to their targets, type from the file name or else the first
//! line. Reads at most one line per file to learn its type (plus whole files in `ids_of_type`);
//! never writes.

use crate::ndjson;
use crate::report::Reporter;
use crate::resources::R4_RESOURCE_TYPES;
use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Multi-line JSON endings we accept, compared lower-cased.
const ENDINGS: [&str; 4] = [".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz"];

/// Symlink hops before a chain is treated as a loop (same bound as Linux's ELOOP).
const MAX_LINK_HOPS: usize = 40;

/// `(absolute path, type)` of every NDJSON file directly in `dir`, sorted by path.
/// Files whose first line is an object without `resourceType` (like `log.ndjson`) come back
/// with type `None`; files that are empty, unreadable or not objects are left out (those
/// that cannot be read or parsed with a warning to `reporter`).
pub fn list(dir: &Path, reporter: &Reporter) -> Vec<(PathBuf, Option<String>)> {
    let (found, problems) = list_quietly(dir);
    for problem in problems {
        reporter.warn_on_stdout(problem);
    }
    found
}

/// [`list`] without printing: the files, and the lines `list` would print about files it
/// left out (for `status`, which must keep stdout to its own report).
pub fn list_quietly(dir: &Path) -> (Vec<(PathBuf, Option<String>)>, Vec<String>) {
    let mut problems = Vec::new();
    let mut found: Vec<(PathBuf, Option<String>)> = candidate_files(dir)
        .into_iter()
        .filter(|p| has_ndjson_ending(p))
        .filter_map(|p| match sniff_type(&p) {
            Ok(Sniffed::Typed(t)) => Some((p, Some(t))),
            Ok(Sniffed::Untyped) => Some((p, None)),
            Ok(Sniffed::Ignored) => None,
            Err(problem) => {
                problems.push(problem);
                None
            }
        })
        .collect();
    // Byte order of the path string, as Python sorts `str` paths.
    found.sort_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
    });
    (found, problems)
}

/// Files whose type is `resource_type`.
pub fn files_of_type(dir: &Path, resource_type: &str, reporter: &Reporter) -> Vec<PathBuf> {
    list(dir, reporter)
        .into_iter()
        .filter(|(_, t)| t.as_deref() == Some(resource_type))
        .map(|(p, _)| p)
        .collect()
}

/// Ids of every resource of `resource_type` found in `dir`. Records without a string `id`
/// (or of another type, if they say so) are skipped instead of aborting the scan.
pub fn ids_of_type(dir: &Path, resource_type: &str, reporter: &Reporter) -> HashSet<String> {
    let mut ids = HashSet::new();
    for path in files_of_type(dir, resource_type, reporter) {
        for value in ndjson::read_fields(&path, &["resourceType", "id"], reporter) {
            let other_type = value
                .get("resourceType")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t != resource_type);
            if other_type {
                continue;
            }
            if let Some(id) = value.get("id").and_then(|i| i.as_str()) {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

/// The type named by a file name: split on runs of non-letters; exactly one piece must be
/// an R4 resource type name (`Bundle.Patient.ndjson` names two, so it is undecided).
pub fn type_from_name(name: &str) -> Option<&'static str> {
    let mut hits = name
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|piece| !piece.is_empty())
        .filter_map(|piece| R4_RESOURCE_TYPES.iter().copied().find(|t| *t == piece));
    let first = hits.next()?;
    match hits.next() {
        None => Some(first),
        Some(_) => None,
    }
}

fn has_ndjson_ending(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_lowercase()) else {
        return false;
    };
    // A bare `.ndjson` is a hidden file with no suffix at all (as pathlib sees it).
    ENDINGS
        .iter()
        .any(|end| name.len() > end.len() && name.ends_with(end))
}

enum Sniffed {
    Typed(String),
    Untyped,
    Ignored,
}

/// The file's type, or the line to print about a file that is left out because its first
/// line cannot be read.
fn sniff_type(path: &Path) -> Result<Sniffed, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(t) = type_from_name(&name) {
        return Ok(Sniffed::Typed(t.to_string()));
    }
    let mut line = Vec::new();
    let read = ndjson::open_decompressed(path)
        .and_then(|mut r| ndjson::read_line_capped(&mut r, &mut line, ndjson::MAX_LINE));
    match read {
        Err(e) => return Err(format!("Could not read from '{}': {e}", path.display())),
        Ok(ndjson::Line::TooLong) => {
            return Err(format!(
                "Could not read from '{}': its first line is too long",
                path.display()
            ));
        }
        Ok(_) => {}
    }
    while line.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        line.pop();
    }
    if line.is_empty() {
        return Ok(Sniffed::Ignored);
    }
    match serde_json::from_slice::<serde_json::Value>(&line) {
        Ok(serde_json::Value::Object(map)) => match map.get("resourceType") {
            Some(serde_json::Value::String(t)) => Ok(Sniffed::Typed(t.clone())),
            _ => Ok(Sniffed::Untyped),
        },
        Ok(_) => Ok(Sniffed::Ignored),
        Err(e) => Err(format!("Could not read from '{}': {e}", path.display())),
    }
}

/// Lexical normalization (`.` dropped, `..` pops), like Python's `os.path.normpath`: link
/// targets are joined to the link's folder and normalized without consulting the disk.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Absolute, normalized form of `dir` (no symlinks resolved), or `None` if unavailable.
pub(crate) fn absolute_dir(dir: &Path) -> Option<PathBuf> {
    std::path::absolute(dir).ok().map(|p| normalize(&p))
}

/// Regular files directly in `dir`, with symlinks replaced by the files they finally point
/// to (links to folders, dangling links and loops contribute nothing). Each path once.
fn candidate_files(dir: &Path) -> Vec<PathBuf> {
    let Some(abs) = absolute_dir(dir) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(&abs) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = abs.join(entry.file_name());
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let resolved = if file_type.is_symlink() {
            match resolve_link(&path) {
                Some(p) => p,
                None => continue,
            }
        } else if file_type.is_file() {
            path
        } else {
            continue;
        };
        if seen.insert(resolved.clone()) {
            files.push(resolved);
        }
    }
    files
}

fn resolve_link(link: &Path) -> Option<PathBuf> {
    let mut current = link.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        let meta = fs::symlink_metadata(&current).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(current);
        }
        let target = fs::read_link(&current).ok()?;
        let base = current.parent().map(Path::to_path_buf).unwrap_or_default();
        current = normalize(&base.join(target));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A fresh folder for one unit test, removed with its contents when the test ends.
    pub(crate) fn temp_dir(tag: &str) -> TestDir {
        match tempfile::Builder::new()
            .prefix(&format!("sf-unit-{tag}-"))
            .tempdir()
        {
            Ok(dir) => TestDir(dir),
            Err(e) => panic!("temp dir: {e}"),
        }
    }

    /// See [`temp_dir`]; derefs to its `Path`.
    pub(crate) struct TestDir(tempfile::TempDir);

    impl std::ops::Deref for TestDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            self.0.path()
        }
    }

    impl AsRef<Path> for TestDir {
        fn as_ref(&self) -> &Path {
            self.0.path()
        }
    }

    pub(crate) fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let result = if ndjson::is_compressed_name(path) {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = enc.write_all(text.as_bytes());
            enc.finish().and_then(|bytes| fs::write(path, bytes))
        } else {
            fs::write(path, text)
        };
        if let Err(e) = result {
            panic!("write {}: {e}", path.display());
        }
    }

    fn names(found: &[(PathBuf, Option<String>)]) -> Vec<(String, Option<String>)> {
        found
            .iter()
            .map(|(p, t)| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, t.clone())
            })
            .collect()
    }

    #[test]
    fn name_sniffing() {
        assert_eq!(
            type_from_name("Observation.results.ndjson.gz"),
            Some("Observation")
        );
        assert_eq!(
            type_from_name("PractitionerRole.searched.ndjson.gz"),
            Some("PractitionerRole")
        );
        assert_eq!(
            type_from_name("Condition20240614-112115.ndjson"),
            Some("Condition")
        );
        assert_eq!(type_from_name("1.Condition.ndjson"), Some("Condition"));
        assert_eq!(type_from_name("log.ndjson"), None);
        assert_eq!(type_from_name("Bundle.Patient.ndjson.gz"), None);
        assert_eq!(type_from_name("test.ndjson.gz"), None);
        assert_eq!(type_from_name("patient.ndjson"), None);
    }

    #[test]
    fn lists_direct_children_with_types() {
        let dir = temp_dir("disc");
        write(&dir.join("Observation.results.ndjson.gz"), "not even json");
        write(&dir.join("log.ndjson"), "{\"exportId\":\"x\"}\n");
        write(
            &dir.join("Bundle.Patient.ndjson.gz"),
            "{\"resourceType\":\"Bundle\"}\n",
        );
        write(
            &dir.join("test.ndjson.gz"),
            "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n",
        );
        write(
            &dir.join("UPPER.JSONL"),
            "{\"resourceType\":\"Condition\"}\n",
        );
        write(
            &dir.join("empty.ndjson"),
            "\n{\"resourceType\":\"Condition\"}\n",
        );
        write(&dir.join("array.ndjson"), "[1]\n");
        write(&dir.join("broken.ndjson"), "{oops\n");
        write(&dir.join("Patient.001.ndjson.gz.tmp"), "{}\n");
        write(&dir.join("Patient.json"), "{}\n");
        write(&dir.join("sub/Patient.ndjson"), "{}\n");
        let found = list(&dir, &Reporter::silent());
        assert_eq!(
            names(&found),
            vec![
                ("Bundle.Patient.ndjson.gz".into(), Some("Bundle".into())),
                (
                    "Observation.results.ndjson.gz".into(),
                    Some("Observation".into())
                ),
                ("UPPER.JSONL".into(), Some("Condition".into())),
                ("log.ndjson".into(), None),
                ("test.ndjson.gz".into(), Some("Patient".into())),
            ]
        );
        assert!(found.iter().all(|(p, _)| p.is_absolute()));
        assert_eq!(
            files_of_type(&dir, "Patient", &Reporter::silent()),
            vec![dir.join("test.ndjson.gz")]
        );
        let ids = ids_of_type(&dir, "Patient", &Reporter::silent());
        assert_eq!(ids.len(), 1);
        assert!(ids.contains("p1"));
        assert!(list(&dir.join("missing"), &Reporter::silent()).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_resolve_to_targets() {
        use std::os::unix::fs::symlink;
        let dir = temp_dir("links");
        let work = dir.join("001.x");
        write(&work.join("Condition.001.ndjson.gz"), "{}\n");
        write(&dir.join("other/Device.ndjson"), "{}\n");
        let ok = |r: std::io::Result<()>| {
            if let Err(e) = r {
                panic!("symlink: {e}")
            }
        };
        ok(symlink(
            "001.x/Condition.001.ndjson.gz",
            dir.join("Condition.001.ndjson.gz"),
        ));
        // Chain: link -> link -> file.
        ok(symlink("other/Device.ndjson", dir.join("hop.ndjson")));
        ok(symlink("hop.ndjson", dir.join("Device.001.ndjson")));
        ok(symlink("001.x", dir.join("dirlink.ndjson")));
        ok(symlink("nowhere.ndjson", dir.join("dangling.ndjson")));
        let found = list(&dir, &Reporter::silent());
        let paths: Vec<PathBuf> = found.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            paths,
            vec![
                work.join("Condition.001.ndjson.gz"),
                dir.join("other/Device.ndjson"),
            ]
        );
        assert_eq!(found[0].1.as_deref(), Some("Condition"));
        let _ = fs::remove_dir_all(&dir);
    }
}
