//! A crawl never ends "Done" with lost or foreign data, against the fake EHR's switched-on
//! misbehaviours: one patient's Condition search answered with cut-off JSON on every try
//! (exit 3, the folder left incomplete; once the server is fixed the same command fetches
//! only that search and the folder equals an export that never failed), and a server that
//! ignores `patient=` for Condition (nothing of another patient is written, the other
//! types are complete).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{Config, Flavor, TruncateSearch};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::*;

const SEED: u64 = 1;

fn export_args<'a>(url: &'a str, mrns: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "export",
        "--fhir-url",
        url,
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns,
        "--nickname",
        "q1",
        "--hydration-tasks",
        "none",
        out,
    ]
}

/// The first patient (by index) with at least one Condition, from the generator itself.
fn patient_with_conditions(n: usize) -> usize {
    (0..n)
        .find(|&i| {
            fake_ehr::data::patient_resources(SEED, i)
                .iter()
                .any(|r| r["resourceType"] == "Condition")
        })
        .expect("some patient has Conditions")
}

/// Every file under `dir` (not following symlinks), path relative to `dir` → its lines
/// (decompressed, sorted: the order of a concurrent crawl is not fixed); of the files whose
/// content depends on the clock, `log.ndjson` by its events and `.metadata` by name.
fn folder_contents(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list").filter_map(Result::ok) {
            let path = entry.path();
            let name = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_symlink() {
                let target = std::fs::read_link(&path).expect("read link");
                out.insert(name, vec![format!("-> {}", target.display())]);
            } else if path.is_dir() {
                stack.push(path);
            } else if name.ends_with("log.ndjson") {
                let events = log_events(&path);
                out.insert(
                    name,
                    events.iter().map(|e| e["eventId"].to_string()).collect(),
                );
            } else if name.ends_with(".metadata") {
                out.insert(name, Vec::new());
            } else {
                let mut lines = read_lines_any(&path);
                lines.sort();
                out.insert(name, lines);
            }
        }
    }
    out
}

/// Lines of any file, gzip (one or more members) when its name says `.gz` anywhere (the
/// crawl's in-progress `<Type>.ndjson.gz.tmp` too).
fn read_lines_any(path: &Path) -> Vec<String> {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let text = if path.to_string_lossy().contains(".gz") {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("gunzip {}: {e}", path.display()));
        s
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    text.lines().map(str::to_string).collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list").filter_map(Result::ok) {
            let path = entry.path();
            if path.is_symlink() {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn done_types(workdir: &Path) -> BTreeSet<String> {
    let meta = read_json(&workdir.join(".metadata"));
    meta["done"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn a_cut_off_condition_page_fails_until_the_server_is_fixed_then_only_it_is_fetched() {
    const N: usize = 8;
    let dir = temp_dir("incomplete-truncated");
    let mrns = mrn_file(&dir, "MRNS", N);
    let broken = patient_with_conditions(N);
    let broken_id = fake_ehr::data::patient_id(broken);
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: N,
        truncate: Some(TruncateSearch {
            resource_type: "Condition".into(),
            patient: broken_id.clone(),
        }),
        ..Config::default()
    });
    let url = ehr.base_url();
    let out = dir.join("out");
    let argv = export_args(&url, mrns.to_str().unwrap(), out.to_str().unwrap());

    let first = run_quick_retries(&argv);
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{stderr}");
    assert!(
        !text(&first.stdout).contains("Done"),
        "{}",
        text(&first.stdout)
    );
    assert!(
        stderr.contains("1 search failed because the answer could not be used"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "1 search failed (Condition for 1 patient); rerun the same command to retry them\n"
        ),
        "{stderr}"
    );
    assert!(ehr.stats().truncated >= 1);

    // Not complete, Condition not done and not under its final name; everything else is.
    let workdir = first_workdir(&out);
    let meta = read_json(&workdir.join(".metadata"));
    assert_ne!(meta["complete"], true);
    let done = done_types(&workdir);
    assert!(!done.contains("Condition"), "{done:?}");
    assert!(
        done.contains("Encounter") && done.contains("Patient"),
        "{done:?}"
    );
    assert!(!workdir.join("Condition.ndjson.gz").exists());
    // No symlink or hydration happened for an unfinished export.
    assert!(symlinks(&out).is_empty(), "{:?}", symlinks(&out));
    // error/ says which search failed.
    let errors = read_lines(&workdir.join("error/OperationOutcome.ndjson.gz"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!("Condition?patient={broken_id}")),
        "{}",
        errors[0]
    );

    // The server is fixed; the same command fetches that one search, nothing else.
    ehr.set_truncate(None);
    let before = ehr.stats().search_urls.len();
    let requests_before = ehr.requests();
    let second = run_quick_retries(&argv);
    assert_success(&second);
    assert!(text(&second.stdout).contains("✨ Done ✨"));
    assert_eq!(text(&second.stderr), "", "nothing failed or was left out");
    let rerun: Vec<String> = decoded_searches(&ehr.stats())[before..].to_vec();
    let firsts: Vec<&String> = rerun.iter().filter(|s| !s.contains("_offset")).collect();
    assert_eq!(
        firsts,
        [&format!("Condition?patient={broken_id}")],
        "{rerun:?}"
    );
    assert!(
        rerun
            .iter()
            .all(|s| s.starts_with(&format!("Condition?patient={broken_id}"))),
        "{rerun:?}"
    );
    eprintln!(
        "rerun after the fix: {} searches, {} requests in all",
        rerun.len(),
        ehr.requests() - requests_before
    );

    // The folder is what the server holds (computed from the generator) ...
    assert_same_resources(
        &folder_resources(&workdir),
        &expected_resources(SEED, N, &ALL_TYPES, true),
    );
    let meta = read_json(&workdir.join(".metadata"));
    assert_eq!(meta["complete"], true);
    assert!(done_types(&workdir).contains("Condition"));
    assert!(!workdir.join(".resume").exists(), "no state left");
    assert!(!workdir.join("error").exists(), "the failure was fixed");

    // ... and equal, file for file, to an export that never failed.
    let clean_out = dir.join("clean");
    let clean = run_quick_retries(&export_args(
        &url,
        mrns.to_str().unwrap(),
        clean_out.to_str().unwrap(),
    ));
    assert_success(&clean);
    assert_eq!(folder_contents(&out), folder_contents(&clean_out));
    let clean_workdir = first_workdir(&clean_out);
    assert_eq!(done_types(&workdir), done_types(&clean_workdir));
    let filters = |w: &Path| read_json(&w.join(".metadata"))["filters"].clone();
    assert_eq!(filters(&workdir), filters(&clean_workdir));
}

#[test]
fn a_server_ignoring_patient_for_condition_gets_no_condition_written() {
    const N: usize = 6;
    let dir = temp_dir("incomplete-foreign");
    let ehr = server_with(Config {
        flavor: Flavor::Generic,
        patients: N,
        ignore_patient_param: vec!["Condition".into()],
        ..Config::default()
    });
    let url = ehr.base_url();
    let out = dir.join("out");
    let cohort = [1, 2];
    let output = run(&[
        "crawl",
        "--fhir-url",
        &url,
        out.to_str().unwrap(),
        "--id-list",
        "pat-000001,pat-000002",
        "--type",
        "Condition,Encounter,Procedure",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "The server ignored `patient=` for Condition: it returned other patients' data"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(!text(&output.stdout).contains("Done"));

    // No resource of a patient outside the cohort in any file, finished or not.
    let outsiders: Vec<String> = (0..N)
        .filter(|i| !cohort.contains(i))
        .map(|i| format!("Patient/{}", fake_ehr::data::patient_id(i)))
        .collect();
    for path in files_under(&out) {
        for line in read_lines_any(&path) {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            for field in ["subject", "patient"] {
                if let Some(r) = value[field]["reference"].as_str() {
                    assert!(
                        !outsiders.iter().any(|o| o == r),
                        "{} holds {r}: {line}",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(!out.join("Condition.ndjson.gz").exists());

    // The other types are complete and correct.
    assert_same_resources(
        &folder_resources(&out),
        &expected_resources_of(SEED, &cohort, &["Patient", "Encounter", "Procedure"], false),
    );
    let meta = read_json(&out.join(".metadata"));
    assert_eq!(
        done_types(&out),
        BTreeSet::from(["Encounter", "Patient", "Procedure"].map(String::from))
    );
    assert_ne!(meta["complete"], true);

    // Accepting failures does not accept another patient's data.
    let again = run(&[
        "crawl",
        "--fhir-url",
        &url,
        out.to_str().unwrap(),
        "--id-list",
        "pat-000001,pat-000002",
        "--type",
        "Condition,Encounter,Procedure",
        "--allow-incomplete",
    ]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(!done_types(&out).contains("Condition"));
    assert!(!out.join("Condition.ndjson.gz").exists());
}
