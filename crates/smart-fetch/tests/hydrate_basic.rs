//! Hydration against the synthetic EHR over real HTTP: what `export` hydrates, that
//! `hydrate` on a folder exported without hydration ends the same with one request per
//! distinct reference, that a rerun asks for nothing, that Ctrl-C during inlining leaves
//! every file as it was, and the per-reference edge cases (404 once, contained, other types).

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_ehr::{AuthMode, Config, Flavor};
use serde_json::Value;
use sha1::{Digest, Sha1};
use smart_fetch::hydrate::refs;
use smart_fetch::hydrate::tasks::{Action, TASKS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const SEED: u64 = 1;

fn export_args(url: &str, mrns: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "export",
        "--fhir-url",
        url,
        "--export-mode",
        "crawl",
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap(),
        "--nickname",
        "h",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_strings(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

/// File name → its lines (as a set) for every NDJSON file directly in `dir`.
fn files_and_lines(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    file_names(dir)
        .into_iter()
        .filter(|n| (n.ends_with(".ndjson") || n.ends_with(".ndjson.gz")) && n != "log.ndjson")
        .map(|n| {
            let lines = read_lines(&dir.join(&n)).into_iter().collect();
            (n, lines)
        })
        .collect()
}

/// Every resource in the NDJSON files of `dir` (hydrated files included).
fn all_resources(dir: &Path) -> Vec<Value> {
    files_and_lines(dir)
        .values()
        .flatten()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Ids per type, failing on any resource present twice (searched roles aside, which the
/// spec keeps apart on purpose).
fn unique_keys(dir: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (name, lines) in files_and_lines(dir) {
        if name.starts_with("PractitionerRole.searched.") {
            continue;
        }
        for line in lines {
            let v: Value = serde_json::from_str(&line).unwrap();
            let key = refs::key_of(&v).unwrap();
            assert!(keys.insert(key.clone()), "{key} written twice ({name})");
        }
    }
    keys
}

/// Every attachment of the DocumentReferences and DiagnosticReports holds its Binary's
/// content, size and SHA-1, with the charset added. Returns how many there are.
fn check_inlined(dir: &Path) -> usize {
    let mut count = 0;
    for r in all_resources(dir) {
        let attachments: Vec<&Value> = match r["resourceType"].as_str() {
            Some("DocumentReference") => r["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["attachment"])
                .collect(),
            Some("DiagnosticReport") => r["presentedForm"].as_array().unwrap().iter().collect(),
            _ => continue,
        };
        for a in attachments {
            let url = a["url"].as_str().unwrap();
            let id = url.strip_prefix("Binary/").unwrap();
            let binary = fake_ehr::data::binary(SEED, id).unwrap();
            let bytes = STANDARD.decode(binary["data"].as_str().unwrap()).unwrap();
            assert_eq!(a["data"], binary["data"], "{url}");
            assert_eq!(a["size"], bytes.len() as u64, "{url}");
            assert_eq!(a["hash"], STANDARD.encode(Sha1::digest(&bytes)), "{url}");
            let mime = binary["contentType"].as_str().unwrap();
            assert_eq!(a["contentType"], format!("{mime}; charset=utf-8"), "{url}");
            count += 1;
        }
    }
    assert!(count > 0);
    count
}

/// Every reference that some task follows, of the task's output type, is in the folder.
fn check_references_present(dir: &Path) {
    let resources = all_resources(dir);
    let keys = unique_keys(dir);
    let mut followed = 0;
    for task in TASKS {
        let Action::Reference { paths, .. } = task.action else {
            continue;
        };
        for r in resources
            .iter()
            .filter(|r| r["resourceType"] == task.input.as_str())
        {
            for reference in refs::references(r, paths) {
                if let Some(wanted) = refs::wanted(reference, task.output) {
                    assert!(keys.contains(wanted), "{} missing ({})", wanted, task.name);
                    followed += 1;
                }
            }
        }
    }
    assert!(followed > 0);
}

/// Lines in the files hydration appends to (the requests it needed, one per line).
fn hydrated_lines(dir: &Path) -> usize {
    files_and_lines(dir)
        .iter()
        .filter(|(n, _)| {
            [".referenced.", ".results.", ".members."]
                .iter()
                .any(|s| n.contains(s))
        })
        .map(|(_, lines)| lines.len())
        .sum()
}

#[test]
fn export_hydrates_and_hydrate_matches_it() {
    let dir = temp_dir("hydrate-basic");
    let ehr = server(Flavor::Generic, 30, AuthMode::Open);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-30", 30);

    // Hydration during export.
    let out_a = dir.join("with");
    let a = run_strings(&export_args(&url, &mrns, &out_a, &[]));
    assert_success(&a);
    let stdout = text(&a.stdout);
    assert!(
        stdout.contains("Downloading referenced Medications from MedicationRequests.\n"),
        "{stdout}"
    );
    assert!(stdout.contains(" Newly inlined "), "{stdout}");
    let work_a = out_a.join("001.h");
    let attachments = check_inlined(&work_a);
    check_references_present(&work_a);
    for t in ["Medication", "Practitioner", "Location", "Organization"] {
        assert!(
            work_a.join(format!("{t}.referenced.ndjson.gz")).is_file(),
            "{t}"
        );
        // Hydrated types are linked like exported ones.
        assert!(out_a.join(format!("{t}.001.ndjson.gz")).is_symlink(), "{t}");
    }
    assert!(read_json(&work_a.join(".metadata"))["complete"] == true);
    assert!(file_names(&work_a).iter().all(|n| !n.ends_with(".tmp")));

    // Export without hydration, then `hydrate`: the same folder, one read per line written
    // and per attachment inlined.
    let out_b = dir.join("later");
    let b = run_strings(&export_args(
        &url,
        &mrns,
        &out_b,
        &["--hydration-tasks", "none"],
    ));
    assert_success(&b);
    let work_b = out_b.join("001.h");
    assert!(!text(&b.stdout).contains("Downloading referenced"));
    let reads = ehr.stats().reads;
    let h = run(&["hydrate", work_b.to_str().unwrap(), "--fhir-url", &url]);
    assert_success(&h);
    assert!(text(&h.stdout).ends_with("✨ Done ✨\n"));
    let reads_used = ehr.stats().reads - reads;
    assert_eq!(
        reads_used as usize,
        hydrated_lines(&work_b) + attachments,
        "one request per distinct reference and per attachment"
    );
    assert_eq!(files_and_lines(&work_a), files_and_lines(&work_b));

    // Again: everything is there already, nothing is read.
    let reads = ehr.stats().reads;
    let again = run(&["hydrate", work_b.to_str().unwrap(), "--fhir-url", &url]);
    assert_success(&again);
    assert_eq!(ehr.stats().reads, reads, "a second hydrate reads nothing");
    assert!(text(&again.stdout).contains(" Already inlined "));
    assert_eq!(files_and_lines(&work_a), files_and_lines(&work_b));
}

fn ids_in_order(path: &Path) -> Vec<String> {
    read_lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn interrupted_inlining_keeps_every_note() {
    let dir = temp_dir("hydrate-sigint");
    let ehr = server_with(Config {
        patients: 40,
        latency: Duration::from_millis(25),
        ..Config::default()
    });
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-40", 40);
    let out = dir.join("out");
    assert_success(&run_strings(&export_args(
        &url,
        &mrns,
        &out,
        &["--hydration-tasks", "none"],
    )));
    let work = out.join("001.h");
    let files: Vec<PathBuf> = ["DocumentReference", "DiagnosticReport"]
        .iter()
        .map(|t| work.join(format!("{t}.ndjson.gz")))
        .collect();
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let order: Vec<Vec<String>> = files.iter().map(|f| ids_in_order(f)).collect();

    // Ctrl-C once some notes were fetched.
    let reads = ehr.stats().reads;
    let child = spawn(&[
        "hydrate",
        work.to_str().unwrap(),
        "--fhir-url",
        &url,
        "--tasks",
        "inline",
    ]);
    let start = Instant::now();
    while ehr.stats().reads < reads + 20 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = wait(child, Duration::from_secs(30));
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        text(&stopped.stdout)
    );
    assert!(!text(&stopped.stdout).contains("Done"));
    for (file, bytes) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(file).unwrap(), bytes, "{}", file.display());
    }
    assert!(file_names(&work).iter().all(|n| !n.ends_with(".tmp")));

    // The same command finishes the job, in the original order.
    let done = run(&[
        "hydrate",
        work.to_str().unwrap(),
        "--fhir-url",
        &url,
        "--tasks",
        "inline",
    ]);
    assert_success(&done);
    check_inlined(&work);
    for (file, ids) in files.iter().zip(&order) {
        assert_eq!(&ids_in_order(file), ids, "{}", file.display());
    }
}

#[test]
fn references_are_requested_once_each() {
    let dir = temp_dir("hydrate-edges");
    let ehr = server(Flavor::Generic, 2, AuthMode::Open);
    let url = ehr.base_url();
    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    let request = |id: &str, medication: &str| {
        format!(
            "{{\"resourceType\":\"MedicationRequest\",\"id\":\"{id}\",\"medicationReference\":{{\"reference\":\"{medication}\"}}}}\n"
        )
    };
    let mut text_in = String::new();
    for (i, m) in [
        "Medication/med-01",
        "Medication/missing",
        "Medication/med-01",
        "Medication/missing",
        "Medication/missing",
        "#contained",
        "Binary/bin-1",
        "Medication/med-02",
    ]
    .iter()
    .enumerate()
    {
        text_in.push_str(&request(&format!("mr{i}"), m));
    }
    // Already present: not fetched again.
    std::fs::write(folder.join("MedicationRequest.ndjson"), text_in).unwrap();
    std::fs::write(
        folder.join("Medication.ndjson"),
        "{\"resourceType\":\"Medication\",\"id\":\"med-02\"}\n",
    )
    .unwrap();
    let reads = ehr.stats().reads;
    let out = run(&[
        "hydrate",
        folder.to_str().unwrap(),
        "--fhir-url",
        &url,
        "--tasks",
        "MEDICATION",
        "--no-compression",
        "-v",
    ]);
    assert_success(&out);
    assert_eq!(
        ehr.stats().reads - reads,
        2,
        "med-01 and missing, once each"
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("[404]").count(), 1, "{stdout}");
    assert!(
        stdout.contains("Skipping meddisp-med, no MedicationDispense resources found.\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "                     MedicationRequests  Medications\n \
             Total examined                       8            8\n \
             Already downloaded                   4            4\n \
             Newly downloaded                     1            1\n \
             Fatal errors                         1            1\n"
        ),
        "{stdout}"
    );
    let written = ids_in_order(&folder.join("Medication.referenced.ndjson"));
    assert_eq!(written, ["med-01"]);
    assert!(!folder.join("Medication.referenced.ndjson.gz").exists());
}
