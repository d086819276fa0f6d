//! Who to crawl: the IDs or MRNs a user names with `--id-list` and `--id-file` (text, or CSV with
//! an `id`/`mrn` column, docs/crawl.md#patient-lookup-by-id), or the Patients of a folder. Read
//! before any request so a bad file costs nothing. Does not talk to the server.

use super::CrawlError;
use super::membership::linked_patients;
use crate::folder::discovery;
use crate::report::Reporter;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The Patients of a folder: their ids (sorted) and, for the few with a `link`, the records
/// it names (their searches accept those records' data too).
pub struct FolderCohort {
    pub ids: Vec<String>,
    pub links: HashMap<String, Vec<String>>,
}

/// Reads only `resourceType`, `id` and `link` of each Patient line.
pub fn folder_patients(dir: &Path, reporter: &Reporter) -> FolderCohort {
    let mut ids = HashSet::new();
    let mut links: HashMap<String, Vec<String>> = HashMap::new();
    for path in discovery::files_of_type(dir, "Patient", reporter) {
        for value in crate::ndjson::read_fields(&path, &["resourceType", "id", "link"], reporter) {
            let other_type = value
                .get("resourceType")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t != "Patient");
            let Some(id) = value.get("id").and_then(|i| i.as_str()) else {
                continue;
            };
            if other_type {
                continue;
            }
            let linked = linked_patients(&value);
            if !linked.is_empty() {
                links.entry(id.to_string()).or_default().extend(linked);
            }
            ids.insert(id.to_string());
        }
    }
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    FolderCohort { ids, links }
}

/// IDs from both sources, de-duplicated, in a stable order; empty values dropped.
pub fn read_ids(id_list: Option<&str>, id_file: Option<&Path>) -> Result<Vec<String>, CrawlError> {
    // Sorted and without repeats, as a set would give them, but half the memory of a
    // `BTreeSet` for a cohort of 100,000 MRNs.
    let mut ids = Vec::new();
    if let Some(list) = id_list {
        ids.extend(
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    if let Some(path) = id_file {
        let text = std::fs::read_to_string(path).map_err(|err| {
            CrawlError::Message(format!(
                "Could not read ID file {}: {err}. Check the --id-file path.",
                path.display()
            ))
        })?;
        let is_csv = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
        if is_csv {
            ids.extend(read_csv_ids(path, &text)?);
        } else {
            ids.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn read_csv_ids(path: &Path, text: &str) -> Result<Vec<String>, CrawlError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad_csv = |err: csv::Error| {
        CrawlError::Message(format!(
            "ID file {} is not valid CSV: {err}",
            path.display()
        ))
    };
    let headers = reader.headers().map_err(bad_csv)?.clone();
    let find = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let column = find("id").or_else(|| find("mrn")).ok_or_else(|| {
        CrawlError::Message(format!(
            "ID file {} has no 'id' or 'mrn' header",
            path.display()
        ))
    })?;
    let mut ids = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad_csv)?;
        if let Some(value) = record.get(column).filter(|v| !v.is_empty()) {
            ids.push(value.to_string());
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sf-cohort-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn text_file_trims_and_drops_blank_lines() {
        let path = temp_file("ids.txt", " abc \n\ndef\n");
        let ids = read_ids(Some("x,,y"), Some(&path)).unwrap();
        assert_eq!(ids, vec!["abc", "def", "x", "y"]);
    }

    #[test]
    fn csv_prefers_id_then_mrn_case_insensitively() {
        let path = temp_file("a.csv", "name,MRN\nbob,123\nann,\n");
        assert_eq!(read_ids(None, Some(&path)).unwrap(), vec!["123"]);
        let path = temp_file("b.CSV", "mrn,Id\n1,p1\n2,p2\n");
        assert_eq!(read_ids(None, Some(&path)).unwrap(), vec!["p1", "p2"]);
    }

    #[test]
    fn csv_without_id_column_is_an_error() {
        let path = temp_file("c.csv", "name,dob\nbob,2000\n");
        let err = read_ids(None, Some(&path)).unwrap_err().to_string();
        assert!(err.ends_with("has no 'id' or 'mrn' header"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_ids(None, Some(Path::new("/nonexistent/MRN-123")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/MRN-123"), "{err}");
    }
}
