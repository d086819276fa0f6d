//! `bundle DIR` and `crawl --bundle` (spec §17): one Bundle holding every resource, the
//! inputs gone, and (unlike the Python tool) no symlink target ever deleted.

mod support;

use fake_ehr::{AuthMode, Flavor};
use std::collections::BTreeMap;
use std::path::Path;
use support::*;

/// Type → id → compact line, from a Bundle file.
fn bundle_resources(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = read_lines(path).join("\n");
    let bundle: serde_json::Value = serde_json::from_str(&text).expect("Bundle JSON");
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in bundle["entry"].as_array().expect("entries") {
        let r = &entry["resource"];
        let line = smart_fetch::json::to_ndjson_line(r);
        let t = r["resourceType"].as_str().unwrap().to_string();
        let id = r["id"].as_str().unwrap().to_string();
        assert!(
            out.entry(t).or_default().insert(id, line).is_none(),
            "twice"
        );
    }
    out
}

fn crawl_args<'a>(url: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "crawl",
        "--fhir-url",
        url,
        "--id-list",
        "pat-000001,pat-000002",
        "--type",
        "Patient,Condition,Observation",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn crawl_with_bundle_leaves_one_bundle() {
    let dir = temp_dir("crawl-bundle");
    let ehr = server(Flavor::Generic, 4, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("out");
    assert_success(&run(&crawl_args(
        &url,
        out.to_str().unwrap(),
        &["--bundle"],
    )));
    let mut names = file_names(&out);
    names.sort();
    assert_eq!(names, [".metadata", "Bundle.json.gz", "log.ndjson"]);
    let expected =
        expected_resources_of(1, &[1, 2], &["Patient", "Condition", "Observation"], false);
    assert_same_resources(&bundle_resources(&out.join("Bundle.json.gz")), &expected);
}

#[test]
fn bundle_command_errors_and_happy_path() {
    let dir = temp_dir("bundle-cmd");
    let ehr = server(Flavor::Generic, 4, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    assert_success(&run(&crawl_args(&url, o, &["--no-compression"])));

    let bundled = run(&["bundle", o, "--no-compression"]);
    assert_success(&bundled);
    assert!(text(&bundled.stdout).contains(&format!("Bundle file '{o}/Bundle.json' created.")));
    let expected =
        expected_resources_of(1, &[1, 2], &["Patient", "Condition", "Observation"], false);
    assert_same_resources(&bundle_resources(&out.join("Bundle.json")), &expected);
    assert!(!out.join("Condition.ndjson").exists(), "inputs are removed");
    assert!(out.join("log.ndjson").exists(), "the log is not FHIR data");

    let again = run(&["bundle", o, "--no-compression"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr).trim(),
        format!("Bundle file '{o}/Bundle.json' already exists.")
    );

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = run(&["bundle", empty.to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        text(&none.stderr).trim(),
        format!("No FHIR files found in '{}'.", empty.display())
    );
}

#[test]
fn bundling_a_managed_folder_keeps_the_workdir_files() {
    let dir = temp_dir("bundle-links");
    let ehr = server(Flavor::Epic, 4, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    assert_success(&run(&[
        "export",
        "--fhir-url",
        &url,
        "--id-list",
        "pat-000001,pat-000002",
        "--type",
        "Patient,Condition",
        "--hydration-tasks",
        "none",
        "--nickname",
        "q1",
        o,
    ]));
    let workdir_before = folder_resources(&out.join("001.q1"));
    assert_success(&run(&["bundle", o]));
    assert_same_resources(
        &bundle_resources(&out.join("Bundle.json.gz")),
        &workdir_before,
    );
    assert!(
        !out.join("Condition.001.ndjson.gz").exists(),
        "the link is gone"
    );
    assert_same_resources(&folder_resources(&out.join("001.q1")), &workdir_before);
}
