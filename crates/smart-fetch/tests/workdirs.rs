//! Numbered subfolders across exports (docs/export.md#choosing-the-workdir): a new nickname makes
//! `002.<nickname>`, the same arguments without a nickname resume the newest folder, an old
//! nickname fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Flavor};
use support::*;

#[test]
fn second_export_reuse_and_old_nickname() {
    let dir = temp_dir("workdirs");
    let ehr = server(Flavor::Epic, 8, AuthMode::Open);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-002", 6);
    let out = dir.join("out");
    let base = |extra: &[&str]| {
        let mut a = vec![
            "export",
            "--fhir-url",
            url.as_str(),
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--id-file",
            mrns.to_str().unwrap(),
            "--type",
            "Patient,Condition,Observation",
            // Workdir choice only; hydration has its own tests.
            "--hydration-tasks",
            "none",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run_with = |extra: &[&str]| {
        let args = base(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    };

    let first = run_with(&["--nickname", "initial"]);
    assert_success(&first);
    let second = run_with(&["--nickname", "2026-03"]);
    assert_success(&second);
    assert!(text(&second.stdout).contains("Creating new subfolder '002.2026-03'."));
    let expected = expected_resources(1, 6, &["Patient", "Condition", "Observation"], true);
    assert_same_resources(&folder_resources(&out.join("002.2026-03")), &expected);
    // A full unfiltered export obsoletes the older one's links (docs/folders.md#active-files).
    assert_eq!(
        std::fs::read_link(out.join("Condition.001.ndjson.gz")).unwrap(),
        std::path::Path::new("002.2026-03/Condition.ndjson.gz")
    );
    assert!(!out.join("Condition.002.ndjson.gz").exists());

    // Same arguments, no nickname: resume the newest folder, fetch nothing again.
    let before = ehr.stats().searches;
    let third = run_with(&[]);
    assert_success(&third);
    let stdout = text(&third.stdout);
    assert!(
        stdout.contains("Re-using existing subfolder '002.2026-03' with similar arguments."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Skipping Condition, already done."),
        "{stdout}"
    );
    assert_eq!(
        ehr.stats().searches,
        before,
        "a finished export searches nothing"
    );
    assert!(!out.join("003.initial").exists());

    // A nickname that is not the newest folder cannot be resumed.
    let old = run_with(&["--nickname", "initial"]);
    assert_eq!(old.status.code(), Some(1));
    assert_eq!(
        text(&old.stderr).trim(),
        "Existing subfolder '001.initial' with the same nickname is too old to resume. Choose a new nickname."
    );
}
