//! Which leaf folders an archive run looks at, whether each export is complete, and which
//! files of a leaf folder go up. Reads the export tree only; never writes to it.
//!
//! Groups, their chosen leaf folders and whether each export is complete are exactly what
//! `status::read` reports (so `archive` and `status` can never disagree): OUTPUT_ROOT is
//! one group's folder, or a folder of group folders; a leaf folder given as the root is
//! refused with the folder to give instead.

use super::ArchiveError;
use crate::status::{self, State};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One group and the leaf folder chosen in it (none: no leaf folder of the nickname).
#[derive(Clone, Debug)]
pub struct Choice {
    pub group: String,
    pub leaf: Option<LeafFolder>,
}

#[derive(Clone, Debug)]
pub struct LeafFolder {
    pub group: String,
    /// `NNN.nickname`
    pub name: String,
    pub path: PathBuf,
    pub complete: bool,
}

/// Every group under `root` (or `root` itself), with the leaf folder of `nickname`, else
/// each group's newest, in name order.
pub fn groups(root: &Path, nickname: Option<&str>) -> Result<Vec<Choice>, ArchiveError> {
    let report = status::read(root, nickname)?;
    Ok(report
        .groups
        .into_iter()
        // An empty folder is a not-started group to `status`; nothing was ever exported
        // into it, so the archive passes over it without a word.
        .filter(|g| g.managed_metadata || !g.leaf_folders.is_empty())
        .map(|g| Choice {
            leaf: g.leaf.map(|leaf| LeafFolder {
                group: g.name.clone(),
                complete: leaf.state.state() == State::Complete,
                name: leaf.name,
                path: leaf.path,
            }),
            group: g.name,
        })
        .collect())
}

/// A regular file of a leaf folder.
#[derive(Clone, Debug)]
pub struct LocalFile {
    /// Path inside the leaf folder, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// What a leaf folder holds, as the archive sees it.
#[derive(Debug, Default)]
pub struct Listing {
    /// In name order.
    pub files: Vec<LocalFile>,
    /// Symbolic links, never uploaded nor followed (object storage has none, and a link
    /// may point anywhere on the machine).
    pub links: Vec<String>,
    /// Entries that cannot be objects: sockets and the like, names that are not UTF-8, and
    /// a local file under the manifest's own name.
    pub skipped: Vec<String>,
}

impl Listing {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Every regular file under `leaf`, recursively, without following any link.
pub fn list_files(leaf: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    let mut stack = vec![(leaf.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let shown = |n: &str| format!("{rel_dir}{n}");
            let Some(name) = name.to_str() else {
                listing
                    .skipped
                    .push(shown(&entry.file_name().to_string_lossy()));
                continue;
            };
            let rel = shown(name);
            // `symlink_metadata`: the entry itself, never what a link points at.
            let meta = fs::symlink_metadata(entry.path())?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                listing.links.push(rel);
            } else if kind.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else if !kind.is_file() || rel == super::manifest::MANIFEST_NAME {
                listing.skipped.push(rel);
            } else {
                listing.files.push(LocalFile {
                    rel,
                    path: entry.path(),
                    size: meta.len(),
                    mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                });
            }
        }
    }
    listing.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    listing.links.sort();
    listing.skipped.sort();
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> crate::folder::discovery::tests::TestDir {
        crate::folder::discovery::tests::temp_dir(&format!("archive-select-{name}"))
    }

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn groups_leaves_and_completeness() {
        let root = temp("groups");
        let managed = r#"{"kind": "managed", "fhir-url": "http://x/R4"}"#;
        write(&root.join("MRN-000/.metadata"), managed);
        write(
            &root.join("MRN-000/001.q1/.metadata"),
            r#"{"kind": "output", "complete": true}"#,
        );
        write(
            &root.join("MRN-000/002.q2/.metadata"),
            r#"{"kind": "output", "done": {}}"#,
        );
        // A plain folder with leaf folders is a group; one without is not.
        write(
            &root.join("MRN-001/001.q1/.metadata"),
            r#"{"kind": "output"}"#,
        );
        // Empty: a not-started group to `status`, nothing to the archive.
        fs::create_dir_all(root.join("notes")).unwrap_or_else(|e| panic!("{e}"));
        write(&root.join("batch-q1.json"), "{}");
        let q1 = groups(&root, Some("q1")).unwrap_or_else(|e| panic!("{e}"));
        let seen: Vec<(String, Option<(String, bool)>)> = q1
            .iter()
            .map(|c| {
                (
                    c.group.clone(),
                    c.leaf.as_ref().map(|l| (l.name.clone(), l.complete)),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("MRN-000".to_string(), Some(("001.q1".to_string(), true))),
                ("MRN-001".to_string(), Some(("001.q1".to_string(), false))),
            ]
        );
        let newest = groups(&root, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            newest[0].leaf.as_ref().map(|l| l.name.as_str()),
            Some("002.q2")
        );
        let none = groups(&root, Some("q3")).unwrap_or_else(|e| panic!("{e}"));
        assert!(none.iter().all(|c| c.leaf.is_none()));
        // One managed folder as the root; a leaf folder as the root is refused.
        let one = groups(&root.join("MRN-000"), Some("q1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].group, "MRN-000");
        let leaf = groups(&root.join("MRN-000/001.q1"), None)
            .err()
            .map(|e| e.to_string());
        assert!(leaf.is_some_and(|e| e.contains("leaf folder")));
        assert!(matches!(
            groups(&root.join("missing"), None),
            Err(ArchiveError::Root(status::StatusError::Missing(_)))
        ));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn links_are_listed_not_followed() {
        let root = temp("links");
        let leaf = root.join("001.q1");
        write(&leaf.join("Patient.ndjson.gz"), "p");
        write(&leaf.join("error/OperationOutcome.ndjson.gz"), "oo");
        write(&root.join("outside/secret.txt"), "s");
        std::os::unix::fs::symlink(root.join("outside/secret.txt"), leaf.join("link.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(root.join("outside"), leaf.join("linked-dir"))
            .unwrap_or_else(|e| panic!("{e}"));
        write(&leaf.join(super::super::manifest::MANIFEST_NAME), "{}");
        let listing = list_files(&leaf).unwrap_or_else(|e| panic!("{e}"));
        let rels: Vec<&str> = listing.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rels,
            ["Patient.ndjson.gz", "error/OperationOutcome.ndjson.gz"]
        );
        assert_eq!(listing.links, ["link.txt", "linked-dir"]);
        assert_eq!(listing.skipped, [super::super::manifest::MANIFEST_NAME]);
        assert_eq!(listing.bytes(), 3);
        let _ = fs::remove_dir_all(&root);
    }
}
