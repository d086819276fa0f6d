//! `bundle DIR` and `crawl --bundle` (docs/commands.md#bundle): one Bundle holding every resource,
//! the inputs gone, and (unlike the Python tool) no symlink target ever deleted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

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
        let line = support::python::ndjson_line(r);
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

/// Name → bytes of every entry directly in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    file_names(dir)
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).expect("read input");
            (n, bytes)
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn bundle_loses_nothing_it_cannot_read() {
    let dir = temp_dir("bundle-bad-lines");
    let folder = dir.join("in");
    std::fs::create_dir_all(&folder).unwrap();
    let f = folder.to_str().unwrap();
    let patient = |id: &str| format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#);
    let condition = |id: &str| format!(r#"{{"resourceType":"Condition","id":"{id}"}}"#);
    // Line 2 is not JSON; line 3 after it is fine.
    std::fs::write(
        folder.join("Patient.ndjson"),
        format!(
            "{}\n{{\"resourceType\": \"Pat\n{}\n",
            patient("p1"),
            patient("p2")
        ),
    )
    .unwrap();
    // Line 2 holds a byte that is not UTF-8; the Python tool lost it and everything after.
    let mut gz_text = format!("{}\n", condition("c1")).into_bytes();
    gz_text.extend_from_slice(b"{\"resourceType\":\"Condition\",\"id\":\"c\xff2\"}\n");
    gz_text.extend_from_slice(format!("{}\n\n{}\n", condition("c3"), condition("c4")).as_bytes());
    std::fs::write(folder.join("Condition.ndjson.gz"), gzip(&gz_text)).unwrap();
    std::fs::write(
        folder.join("Observation.ndjson"),
        r#"{"resourceType":"Observation","id":"o1"}"#.to_string() + "\n",
    )
    .unwrap();
    let before = snapshot(&folder);

    let o = run(&["bundle", f]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(
        lines[0],
        format!(
            "Not bundling '{f}': 2 lines or files could not be read, and bundling would lose them. Nothing was written and no file was removed."
        )
    );
    assert!(
        lines[1].starts_with("  Condition.ndjson.gz:2: not UTF-8 text ("),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("  Patient.ndjson:2: not valid JSON ("),
        "{stderr}"
    );
    assert_eq!(lines[3], "Fix or remove them, then bundle again.");
    assert_eq!(
        snapshot(&folder),
        before,
        "every input kept as it was, nothing added"
    );

    // Many bad lines: the first 20 listed, the rest counted.
    let many = dir.join("many");
    std::fs::create_dir_all(&many).unwrap();
    std::fs::write(many.join("Patient.ndjson"), "nope\n".repeat(25)).unwrap();
    let o = run(&["bundle", many.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 23, "{stderr}");
    assert!(
        lines[0].contains(": 25 lines or files could not be read,"),
        "{stderr}"
    );
    assert!(
        lines[20].starts_with("  Patient.ndjson:20: not valid JSON"),
        "{stderr}"
    );
    assert_eq!(lines[21], "  … and 5 more");

    // Once fixed, every resource is carried over and the inputs go.
    std::fs::write(
        folder.join("Patient.ndjson"),
        format!("{}\n{}\n", patient("p1"), patient("p2")),
    )
    .unwrap();
    let fixed = format!(
        "{}\n{}\n\n{}\n",
        condition("c1"),
        condition("c3"),
        condition("c4")
    );
    std::fs::write(folder.join("Condition.ndjson.gz"), gzip(fixed.as_bytes())).unwrap();
    assert_success(&run(&["bundle", f]));
    let bundled = bundle_resources(&folder.join("Bundle.json.gz"));
    let ids: Vec<(String, Vec<String>)> = bundled
        .into_iter()
        .map(|(t, ids)| (t, ids.into_keys().collect()))
        .collect();
    let owned =
        |t: &str, ids: &[&str]| (t.to_string(), ids.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        ids,
        [
            owned("Condition", &["c1", "c3", "c4"]),
            owned("Observation", &["o1"]),
            owned("Patient", &["p1", "p2"]),
        ]
    );
    assert_eq!(file_names(&folder), ["Bundle.json.gz"]);
    let _ = std::fs::remove_dir_all(&dir);
}
