//! Folders written by the Python SMART Fetch 1.0.3, continued by ours (issue 5). The fixture is
//! laid out by a small writer (`support/python.rs`), exactly as the Python tool writes a managed
//! crawl export (docs/folders.md, docs/log.md#the-crawl-log, docs/crawl.md, docs/export.md): both
//! kinds of `.metadata` with Python's key order and JSON spelling, `001.<nick>/<Type>.ndjson.gz`
//! with Python's re-spelled floats, the fake `log.ndjson`, and the symlinks. The writer was checked
//! once by hand against the real tool run on the same fake EHR (see
//! `write_fixture_for_comparison`); the tests need no Python.
//!
//! Then the fake EHR moves to quarter 2 (deleted, new and merged patients, churned and
//! changed records) and our tool continues the folder with `--since auto`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::data;
use fake_ehr::{Config, Flavor};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::python::*;
use support::*;

const SEED: u64 = 1;
const N: usize = 20;
const TYPES: [&str; 4] = ["Patient", "Encounter", "Condition", "Procedure"];
/// Quarter 1 of the fake EHR as the Python tool exports `TYPES` for MRNs `0..N+2`
/// (the last two are unknown until quarter 2).
fn quarter_one_export<'a>(fhir_url: &'a str, subfolder: &'a str) -> PythonCrawl<'a> {
    let resources = TYPES
        .iter()
        .map(|&ty| {
            let of_type: Vec<Value> = (0..N)
                .flat_map(|i| data::patient_resources_in_quarter(SEED, N, i, 1))
                .filter(|r| r["resourceType"] == ty)
                .collect();
            (ty, of_type)
        })
        .collect();
    PythonCrawl {
        fhir_url,
        subfolder,
        group_name: "mrns",
        resources,
    }
}

/// Writes the fixture for a running fake EHR (`fake-ehr --flavor epic --patients 20`), to
/// compare with the real Python tool's folder by hand:
/// `PY_FIXTURE_URL=<url> PY_FIXTURE_OUT=<dir> cargo test --test python_folders -- --ignored`
/// next to `smart-fetch export --fhir-url <url> --id-file mrns.txt --id-system <MRN system>
/// --type Patient,Encounter,Condition,Procedure --hydration-tasks none --nickname py-q1 <dir2>`.
#[test]
#[ignore = "writes the fixture for a by-hand comparison with the Python tool"]
fn write_fixture_for_comparison() {
    let url = std::env::var("PY_FIXTURE_URL").expect("PY_FIXTURE_URL");
    let out = PathBuf::from(std::env::var("PY_FIXTURE_OUT").expect("PY_FIXTURE_OUT"));
    write_python_export(&out, &quarter_one_export(&url, "001.py-q1"));
}

// ---------------------------------------------------------------------------------------

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn deleted_ids(workdir: &Path, ty: &str) -> BTreeSet<String> {
    let path = workdir
        .join("deleted")
        .join(format!("Bundle.{ty}.ndjson.gz"));
    if !path.exists() {
        return BTreeSet::new();
    }
    read_lines(&path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            let url = v["entry"][0]["request"]["url"].as_str().expect("url");
            url.strip_prefix(&format!("{ty}/"))
                .expect("type")
                .to_string()
        })
        .collect()
}

fn ids_in(path: &Path) -> BTreeSet<String> {
    read_lines(path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            v["id"].as_str().expect("id").to_string()
        })
        .collect()
}

#[test]
fn python_folder_continued_with_since_auto() {
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: N,
        seed: SEED,
        ..Config::default()
    });
    let url = ehr.base_url();
    let dir = temp_dir("python-folder");
    let out = dir.join("out");
    let fixture = quarter_one_export(&url, "001.py-q1");
    write_python_export(&out, &fixture);
    let mrns = mrn_file(&dir, "mrns.txt", data::patients_in_quarter(N, 2));

    ehr.set_quarter(2).expect("quarter 2");
    let args = [
        "export",
        "--fhir-url",
        &url,
        "--id-file",
        p(&mrns),
        "--id-system",
        data::MRN_SYSTEM,
        "--type",
        "Patient,Encounter,Condition,Procedure",
        "--since",
        "auto",
        "--nickname",
        "ours-q2",
        p(&out),
    ];
    let run = run(&args);
    assert_success(&run);
    let stdout = text(&run.stdout);

    // Since values: the Python export's done times, per type, as it spelled them.
    let py_meta = read_json(&out.join("001.py-q1/.metadata"));
    for ty in TYPES {
        let since = py_meta["done"][ty].as_str().expect("done");
        let line = format!("Using since value of '{since}' for {ty}.");
        assert!(stdout.contains(&line), "{line}\n{stdout}");
    }
    assert!(
        stdout.contains("defaulting to 'created' instead."),
        "{stdout}"
    );
    assert!(stdout.contains("Count of new patients: 4."), "{stdout}");
    assert!(stdout.contains("Count of deleted patients: 4."), "{stdout}");

    let ours = out.join("002.ours-q2");
    let meta = read_json(&ours.join(".metadata"));
    assert_eq!(meta["since"], "auto");
    assert_eq!(meta["sinceMode"], "created");
    assert_eq!(meta["sinceResources"], json!(["Condition"]));
    assert_eq!(
        meta["newPatients"],
        json!(["pat-000006", "pat-000016", "pat-000020", "pat-000021"])
    );
    assert!(!ours.join("error").exists(), "no search failed");

    // Deleted patients and resources, against the Python baseline.
    assert_eq!(
        deleted_ids(&ours, "Patient"),
        ["pat-000003", "pat-000007", "pat-000013", "pat-000017"]
            .map(String::from)
            .into()
    );
    let removed = data::removed_in_quarter2(SEED, N);
    for ty in ["Encounter", "Procedure"] {
        let was: BTreeSet<String> = fixture
            .resources
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, rs)| {
                rs.iter()
                    .filter_map(|r| r["id"].as_str())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = removed
            .iter()
            .filter_map(|r| r.strip_prefix(&format!("{ty}/")))
            .filter(|id| was.contains(*id))
            .map(String::from)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(deleted_ids(&ours, ty), want, "deleted {ty}");
    }
    assert!(
        !ours.join("deleted/Bundle.Condition.ndjson.gz").exists(),
        "a created-mode since type is never compared"
    );

    // New and surviving patients have their whole history, Conditions included.
    let conditions = ids_in(&ours.join("Condition.ndjson.gz"));
    for i in [6, 16, 20, 21] {
        for r in data::patient_resources_in_quarter(SEED, N, i, 2) {
            if r["resourceType"] == "Condition" {
                let id = r["id"].as_str().expect("id");
                assert!(conditions.contains(id), "Condition/{id} of patient {i}");
            }
        }
    }

    // Symlinks over both tools' subfolders (docs/folders.md#symlinks): the since Condition export
    // adds to Python's; full exports of the other types replace Python's.
    let links = symlinks(&out);
    let of = |ty: &str| -> BTreeMap<String, PathBuf> {
        links
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{ty}.")))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    };
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, PathBuf> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), PathBuf::from(t)))
            .collect()
    };
    assert_eq!(
        of("Condition"),
        want(&[
            ("Condition.001.ndjson.gz", "001.py-q1/Condition.ndjson.gz"),
            ("Condition.002.ndjson.gz", "002.ours-q2/Condition.ndjson.gz"),
        ])
    );
    for ty in ["Patient", "Encounter", "Procedure"] {
        assert_eq!(
            of(ty),
            want(&[(
                &format!("{ty}.001.ndjson.gz"),
                &format!("002.ours-q2/{ty}.ndjson.gz")
            )]),
            "{ty} links"
        );
    }
    for (name, target) in &links {
        assert!(out.join(target).is_file(), "{name} -> {}", target.display());
    }
    // Python's files stay as they were.
    for ty in TYPES {
        assert!(out.join(format!("001.py-q1/{ty}.ndjson.gz")).is_file());
    }
}

#[test]
fn fixture_spellings_are_pythons() {
    // Python's json.dumps of what the server sent: floats re-spelled, ASCII escapes.
    let v: Value =
        serde_json::from_str(r#"{"a":1.50,"b":120.0,"c":7,"d":"café 😀","e":[]}"#).expect("json");
    assert_eq!(
        py_record(&v),
        r#"{"a":1.5,"b":120.0,"c":7,"d":"caf\u00e9 \ud83d\ude00","e":[]}"#
    );
    assert_eq!(
        py_metadata(&json!({"f": {"P": [], "O": ["x"]}, "s": null})),
        "{\n  \"f\": {\n    \"P\": [],\n    \"O\": [\n      \"x\"\n    ]\n  },\n  \"s\": null\n}"
    );
    let t = parse_fhir_date("2025-01-04T19:55:07.065Z").expect("date");
    assert_eq!(py_isoformat(&t), "2025-01-04T19:55:07.065000+00:00");
    let t = parse_fhir_date("2020").expect("date");
    assert_eq!(py_isoformat(&t), "2020-01-01T00:00:00+14:00");
}
