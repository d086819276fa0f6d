//! Servers that answer `GET Binary/id` with the FHIR `Binary` resource (JSON, base64 `data`)
//! whatever the `Accept` header asks for: the inlined notes are the decoded content, exactly
//! as from a server that sends the raw bytes, never the JSON envelope.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Config, Flavor};
use serde_json::Value;
use std::collections::BTreeMap;
use support::*;

fn export(
    binary_as_resource: bool,
    name: &str,
) -> (BTreeMap<String, Vec<String>>, fake_ehr::Server) {
    let dir = temp_dir(name);
    let ehr = server_with(Config {
        flavor: Flavor::Generic,
        patients: 12,
        auth: AuthMode::Open,
        binary_as_resource,
        ..Config::default()
    });
    let mrns = mrn_file(&dir, "MRN-000", 12);
    let out = dir.join("out");
    let output = run(&[
        "export",
        "--fhir-url",
        &ehr.base_url(),
        "--export-mode",
        "crawl",
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap_or_default(),
        "--type",
        "Patient,DocumentReference,DiagnosticReport",
        "--hydration-tasks",
        "inline",
        "--nickname",
        "q",
        out.to_str().unwrap_or_default(),
    ]);
    assert_success(&output);
    let work = first_workdir(&out);
    let mut lines = BTreeMap::new();
    for t in ["DocumentReference", "DiagnosticReport"] {
        let mut l = read_lines(&work.join(format!("{t}.ndjson.gz")));
        l.sort();
        lines.insert(t.to_string(), l);
    }
    (lines, ehr)
}

#[test]
fn binary_answered_as_a_resource_inlines_the_same_notes() {
    let (raw, raw_ehr) = export(false, "binary-raw");
    let (wrapped, wrapped_ehr) = export(true, "binary-resource");
    // Something was inlined at all (otherwise the comparison proves nothing).
    let inlined: usize = raw["DocumentReference"]
        .iter()
        .chain(&raw["DiagnosticReport"])
        .map(|l| l.matches("\"data\":").count())
        .sum();
    assert!(inlined >= 5, "only {inlined} attachments inlined");
    assert_eq!(raw, wrapped);
    // The two servers really answered differently.
    let binary_reads = |ehr: &fake_ehr::Server| {
        ehr.stats()
            .reads_by_path
            .keys()
            .filter(|p| p.contains("Binary/"))
            .count()
    };
    assert!(binary_reads(&raw_ehr) > 0 && binary_reads(&wrapped_ehr) > 0);
    // No JSON envelope anywhere in the notes.
    for line in wrapped.values().flatten() {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        assert!(!line.contains("\"resourceType\":\"Binary\""), "{v}");
    }
}
