//! `single` (docs/commands.md#single), `reset-symlinks` (docs/folders.md#symlinks) and the
//! uncompressed layout of a managed `export --no-compression`
//! (docs/folders.md#compression-and-file-names, docs/folders.md#rebuilding-the-links), through the
//! real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Flavor};
use serde_json::Value;
use std::path::Path;
use support::*;

#[test]
fn single_prints_pretty_or_compact_json_and_fails_with_the_server_detail() {
    let ehr = server(Flavor::Generic, 5, AuthMode::Open);
    let url = ehr.base_url();
    let expected = fake_ehr::data::patient_resource(1, 3);

    let pretty = run(&["single", "Patient/pat-000003", "--fhir-url", &url]);
    assert_success(&pretty);
    let stdout = text(&pretty.stdout);
    let parsed: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(parsed, expected);
    // 2-space indentation, key order as sent, non-ASCII as-is, one trailing newline.
    assert_eq!(
        stdout,
        format!("{}\n", serde_json::to_string_pretty(&expected).unwrap())
    );
    assert!(stdout.starts_with("{\n  \"resourceType\": \"Patient\",\n  \"id\": \"pat-000003\""));
    assert_eq!(text(&pretty.stderr), "");

    let compact = run(&[
        "single",
        "Patient/pat-000003",
        "--fhir-url",
        &url,
        "--compact",
    ]);
    assert_success(&compact);
    let stdout = text(&compact.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.ends_with("}\n"));
    assert!(stdout.is_ascii(), "compact output is ASCII-escaped");
    assert!(!stdout.contains(": ") && !stdout.contains(", "), "{stdout}");
    let parsed: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(parsed, expected);

    let missing = run(&["single", "Patient/nope", "--fhir-url", &url]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(text(&missing.stdout), "");
    let stderr = text(&missing.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "An error occurred when connecting to \"{url}/Patient/nope\": [404] Patient/nope is not known"
        )
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

fn export(url: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "export",
        "--fhir-url",
        url,
        "--id-list",
        "pat-000001,pat-000002",
        "--type",
        "Patient,Condition",
        "--nickname",
        "x",
        // A generic server would get a bulk export by default.
        "--export-mode",
        "crawl",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn reset_symlinks_restores_the_links() {
    let dir = temp_dir("reset-links");
    let ehr = server(Flavor::Generic, 4, AuthMode::Open);
    let out = dir.join("managed");
    assert_success(&export(&ehr.base_url(), &out, &[]));
    let links = symlinks(&out);
    assert_eq!(
        links.get("Condition.001.ndjson.gz").map(|p| p.as_path()),
        Some(Path::new("001.x/Condition.ndjson.gz")),
        "{links:?}"
    );

    // A lost link comes back, a stale one goes, a regular file is left alone.
    std::fs::remove_file(out.join("Condition.001.ndjson.gz")).unwrap();
    std::os::unix::fs::symlink("001.x/Gone.ndjson.gz", out.join("Condition.002.ndjson.gz"))
        .unwrap();
    std::fs::write(out.join("Condition.notes.txt"), "mine").unwrap();
    let reset = run(&["reset-symlinks", out.to_str().unwrap()]);
    assert_success(&reset);
    assert_eq!(text(&reset.stdout), "", "silent");
    assert_eq!(text(&reset.stderr), "");
    assert_eq!(symlinks(&out), links);
    assert_eq!(
        std::fs::read_to_string(out.join("Condition.notes.txt")).unwrap(),
        "mine"
    );
    let via_link = read_lines(&out.join("Condition.001.ndjson.gz"));
    assert_eq!(
        via_link.len(),
        expected_resources_of(1, &[1, 2], &["Condition"], false)["Condition"].len()
    );

    // A folder with an empty .metadata is not a managed folder.
    let plain = dir.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join(".metadata"), "").unwrap();
    let o = run(&["reset-symlinks", plain.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "Folder '{}' does not look like a SMART Fetch managed export folder.\n",
            plain.display()
        )
    );
    assert_eq!(file_names(&plain), [".metadata"]);

    // A workdir is an output folder, not a managed one.
    let workdir = out.join("001.x");
    let o = run(&["reset-symlinks", workdir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "Folder {} is not a managed folder, but an output folder\n",
            workdir.display()
        )
    );
}

#[test]
fn export_without_compression_writes_and_links_plain_ndjson() {
    let dir = temp_dir("no-compression");
    let ehr = server(Flavor::Generic, 4, AuthMode::Open);
    let out = dir.join("managed");
    assert_success(&export(&ehr.base_url(), &out, &["--no-compression"]));

    let workdir = out.join("001.x");
    let names = file_names(&workdir);
    for name in [
        "Condition.ndjson",
        "Patient.ndjson",
        "log.ndjson",
        ".metadata",
    ] {
        assert!(names.contains(&name.to_string()), "{name} not in {names:?}");
    }
    // Every NDJSON file (hydration outputs included) is plain text, one resource a line.
    for name in names.iter().filter(|n| n.ends_with(".ndjson")) {
        let bytes = std::fs::read(workdir.join(name)).unwrap();
        assert!(!bytes.starts_with(&[0x1f, 0x8b]), "{name} is gzipped");
        let plain = String::from_utf8(bytes).expect("plain UTF-8");
        assert!(plain.ends_with('\n'), "{name}");
        for line in plain.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    assert!(
        names.iter().all(|n| !n.ends_with(".gz")),
        "compressed files: {names:?}"
    );
    let plain = std::fs::read_to_string(workdir.join("Condition.ndjson")).unwrap();
    let written = folder_resources_of(&workdir, &["Patient", "Condition"]);
    let expected = expected_resources_of(1, &[1, 2], &["Patient", "Condition"], false);
    assert_same_resources(&written, &expected);

    let links = symlinks(&out);
    assert_eq!(
        links.get("Condition.001.ndjson").map(|p| p.as_path()),
        Some(Path::new("001.x/Condition.ndjson")),
        "{links:?}"
    );
    assert_eq!(
        links.get("Patient.001.ndjson").map(|p| p.as_path()),
        Some(Path::new("001.x/Patient.ndjson")),
        "{links:?}"
    );
    assert!(links.keys().all(|name| !name.ends_with(".gz")), "{links:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("Condition.001.ndjson")).unwrap(),
        plain
    );
}

#[test]
fn single_binary_verbose_errors_and_searches() {
    use base64::Engine;
    let ehr = server(Flavor::Generic, 3, AuthMode::Open);
    let url = ehr.base_url();

    // An attachment's Binary, printed as its raw bytes without a trailing newline.
    let binary_id = fake_ehr::data::patient_resources(1, 1)
        .iter()
        .filter(|r| r["resourceType"] == "DocumentReference")
        .find_map(|r| {
            r["content"][0]["attachment"]["url"]
                .as_str()
                .map(str::to_string)
        })
        .and_then(|u| u.strip_prefix("Binary/").map(str::to_string))
        .expect("a DocumentReference with a Binary attachment");
    let binary = fake_ehr::data::binary(1, &binary_id).expect("the Binary exists");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(binary["data"].as_str().unwrap())
        .unwrap();
    assert!(!raw.is_empty());
    let path = format!("Binary/{binary_id}");
    let o = run(&["single", &path, "--fhir-url", &url, "--binary"]);
    assert_success(&o);
    assert_eq!(o.stdout, raw);
    // Without --binary the Binary is JSON like anything else.
    let o = run(&["single", &path, "--fhir-url", &url]);
    assert_success(&o);
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), binary);

    // --verbose shows the raw error body instead of the one-line summary.
    let o = run(&["single", "Patient/nope", "--fhir-url", &url, "--verbose"]);
    assert_eq!(o.status.code(), Some(1));
    let body: Value = serde_json::from_str(text(&o.stderr).trim()).expect("the server's body");
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["diagnostics"], "Patient/nope is not known");

    // A search path prints the searchset Bundle.
    let o = run(&["single", "Patient?_id=pat-000002", "--fhir-url", &url]);
    assert_success(&o);
    let bundle: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(
        bundle["entry"][0]["resource"],
        fake_ehr::data::patient_resource(1, 2)
    );
}

/// Condition links of a managed folder, as targets in link order.
fn condition_links(out: &Path) -> Vec<String> {
    symlinks(out)
        .into_iter()
        .filter(|(name, _)| name.starts_with("Condition."))
        .map(|(_, target)| target.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn links_follow_filters_and_supersession() {
    // docs/folders.md#active-files "filters_are_independent".
    let dir = temp_dir("link-filters");
    let ehr = server(Flavor::Generic, 10, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("managed");
    let cohort = (0..10)
        .map(fake_ehr::data::patient_id)
        .collect::<Vec<_>>()
        .join(",");
    let step = |nickname: &str, extra: &[&str]| {
        let mut args = vec![
            "export",
            "--fhir-url",
            &url,
            "--export-mode",
            "crawl",
            "--hydration-tasks",
            "none",
            "--id-list",
            &cohort,
            "--type",
            "Condition",
            "--nickname",
            nickname,
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        assert_success(&run(&args));
        condition_links(&out)
    };
    let code = ["--type-filter", "Condition?code=44054006"];
    let category = ["--type-filter", "Condition?category=problem-list-item"];

    assert_eq!(step("a", &code), ["001.a/Condition.ndjson.gz"]);
    assert_eq!(
        step("b", &category),
        ["001.a/Condition.ndjson.gz", "002.b/Condition.ndjson.gz"]
    );
    let since = [
        "--since",
        "2000-01-01",
        "--type-filter",
        "Condition?code=44054006",
    ];
    assert_eq!(
        step("c", &since),
        [
            "001.a/Condition.ndjson.gz",
            "002.b/Condition.ndjson.gz",
            "003.c/Condition.ndjson.gz"
        ]
    );
    // A newer full export with the same filter supersedes 002, but not the since one.
    assert_eq!(
        step("d", &category),
        [
            "001.a/Condition.ndjson.gz",
            "003.c/Condition.ndjson.gz",
            "004.d/Condition.ndjson.gz"
        ]
    );
    // A full unfiltered export makes every older one obsolete.
    assert_eq!(step("e", &[]), ["005.e/Condition.ndjson.gz"]);
    let link_names: Vec<String> = symlinks(&out)
        .into_keys()
        .filter(|n| n.starts_with("Condition."))
        .collect();
    assert_eq!(link_names, ["Condition.001.ndjson.gz"]);
}

#[test]
fn links_find_renamed_files_by_content() {
    let dir = temp_dir("link-renamed");
    let ehr = server(Flavor::Generic, 4, AuthMode::Open);
    let out = dir.join("managed");
    assert_success(&export(
        &ehr.base_url(),
        &out,
        &["--hydration-tasks", "none"],
    ));
    let workdir = out.join("001.x");
    std::fs::rename(
        workdir.join("Patient.ndjson.gz"),
        workdir.join("test.ndjson.gz"),
    )
    .unwrap();
    let patient = fake_ehr::data::patient_resource(1, 3);
    std::fs::write(workdir.join("test.ndjson"), format!("{patient}\n")).unwrap();
    std::fs::write(workdir.join("random.ndjson"), "{\"hello\": \"world\"}\n").unwrap();
    std::fs::create_dir_all(workdir.join("error")).unwrap();
    std::fs::write(workdir.join("error/Patient.ndjson"), format!("{patient}\n")).unwrap();

    assert_success(&run(&["reset-symlinks", out.to_str().unwrap()]));
    let patient_links: Vec<(String, String)> = symlinks(&out)
        .into_iter()
        .filter(|(name, _)| name.starts_with("Patient."))
        .map(|(name, target)| (name, target.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        patient_links,
        [
            (
                "Patient.001.ndjson".to_string(),
                "001.x/test.ndjson".to_string()
            ),
            (
                "Patient.002.ndjson.gz".to_string(),
                "001.x/test.ndjson.gz".to_string()
            ),
        ]
    );
    assert_eq!(
        condition_links(&out),
        ["001.x/Condition.ndjson.gz"],
        "other links untouched"
    );
}
