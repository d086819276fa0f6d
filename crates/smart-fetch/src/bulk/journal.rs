//! Our record of finished downloads, `<workdir>/.resume/bulk.journal` (the Python tool
//! ignores the folder): one JSON line per file that reached its final name, tagged with the
//! export's status URL. A resumed export skips those files. Lines are appended only after the
//! file is renamed into place, so a crash never records a file that is not whole; a torn last
//! line is ignored. Removed when the export is finished, cancelled or forgotten.

use serde_json::{Value, json};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::folder::STATE_DIR;

const FILE_NAME: &str = "bulk.journal";

fn path(workdir: &Path) -> PathBuf {
    workdir.join(STATE_DIR).join(FILE_NAME)
}

/// Recorded `(url, file)` pairs of one export.
fn entries(workdir: &Path, export_id: &str) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(path(workdir)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["exportId"] == export_id)
        .filter_map(|v| {
            Some((
                v["url"].as_str()?.to_string(),
                v["file"].as_str()?.to_string(),
            ))
        })
        .collect()
}

pub struct Journal {
    workdir: PathBuf,
    export_id: String,
    done: HashSet<(String, String)>,
}

impl Journal {
    /// The files of export `export_id` already downloaded into `workdir`.
    pub fn open(workdir: &Path, export_id: &str) -> Self {
        Journal {
            workdir: workdir.to_path_buf(),
            export_id: export_id.to_string(),
            done: entries(workdir, export_id).into_iter().collect(),
        }
    }

    /// Whether `url` was downloaded to `rel_path` (and the file is still there).
    pub fn is_done(&self, url: &str, rel_path: &str) -> bool {
        self.done.contains(&(url.to_string(), rel_path.to_string()))
            && self.workdir.join(rel_path).is_file()
    }

    pub fn record(&mut self, url: &str, rel_path: &str) -> io::Result<()> {
        let file = path(&self.workdir);
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir)?;
        }
        let line = json!({"exportId": self.export_id, "url": url, "file": rel_path});
        let mut bytes = crate::json::to_ndjson_line(&line).into_bytes();
        bytes.push(b'\n');
        let mut out = crate::safe_file::append_regular(&file)?;
        // One write per line, so a crash leaves at worst a torn last line.
        out.write_all(&bytes)?;
        self.done.insert((url.to_string(), rel_path.to_string()));
        Ok(())
    }
}

/// Forget the journal (and the state folder when nothing else uses it).
pub fn remove(workdir: &Path) {
    let file = path(workdir);
    let _ = fs::remove_file(&file);
    if let Some(dir) = file.parent() {
        let _ = fs::remove_dir(dir);
    }
}

/// Delete what an abandoned export left in `workdir`: its finished files and any partial
/// download, so a new export into the folder does not mix with it. Returns how many files
/// were removed.
pub fn discard_export(workdir: &Path, export_id: &str) -> usize {
    let mut removed = 0;
    for (_, rel) in entries(workdir, export_id) {
        if fs::remove_file(workdir.join(&rel)).is_ok() {
            removed += 1;
        }
    }
    for dir in [
        workdir.to_path_buf(),
        workdir.join("error"),
        workdir.join("deleted"),
    ] {
        let Ok(list) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in list.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let partial = name.ends_with(".ndjson.tmp") || name.ends_with(".ndjson.gz.tmp");
            if partial && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    remove(workdir);
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::temp_dir;
    use std::fs::OpenOptions;

    #[test]
    fn records_and_forgets() {
        let dir = temp_dir("journal");
        let mut j = Journal::open(&dir, "status-1");
        assert!(!j.is_done("u1", "Patient.001.ndjson.gz"));
        let _ = fs::write(dir.join("Patient.001.ndjson.gz"), b"x");
        assert!(j.record("u1", "Patient.001.ndjson.gz").is_ok());
        // A torn line and another export's line are ignored.
        let _ = OpenOptions::new()
            .append(true)
            .open(path(&dir))
            .and_then(|mut f| f.write_all(b"{\"exportId\":\"status-2\",\"url\":\"u2\",\"file\":\"A.001.ndjson.gz\"}\n{\"exportId\":\"sta"));
        let j = Journal::open(&dir, "status-1");
        assert!(j.is_done("u1", "Patient.001.ndjson.gz"));
        assert!(!j.is_done("u2", "A.001.ndjson.gz"));
        let _ = fs::write(dir.join("Condition.001.ndjson.gz.tmp"), b"x");
        assert_eq!(discard_export(&dir, "status-1"), 2);
        assert!(!dir.join("Patient.001.ndjson.gz").exists());
        assert!(!dir.join(STATE_DIR).exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
