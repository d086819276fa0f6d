//! Acceptance of the crawl foundation: a managed `export` of patients named by MRN against
//! the synthetic EHR over real HTTP, with each way of authenticating, checked file by file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::keys::{self, KeyAlg};
use fake_ehr::{AuthMode, Flavor};
use std::path::Path;
use std::time::Duration;
use support::*;

const SEED: u64 = 1;

fn smart(public_jwks: serde_json::Value) -> AuthMode {
    AuthMode::Smart {
        client_id: CLIENT_ID.into(),
        public_jwks,
        token_lifetime: Duration::from_secs(300),
    }
}

/// Everything about a finished first export that docs/ pins down (docs/log.md#the-crawl-log,
/// docs/folders.md#writing-metadata, docs/export.md#worked-example).
fn check_first_export(out: &Path, url: &str, n: usize, epic: bool, group: &str) {
    let workdir = out.join("001.initial");
    let expected = expected_resources(SEED, n, &ALL_TYPES, epic);
    assert_same_resources(&folder_resources(&workdir), &expected);

    // One gzip NDJSON per type that had resources, nothing left in progress.
    for t in expected.keys() {
        assert!(workdir.join(format!("{t}.ndjson.gz")).is_file(), "{t} file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&workdir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n == ".resume")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(!workdir.join("error").exists(), "no search failed");

    // Symlinks pool the active files.
    for t in expected.keys() {
        let link = out.join(format!("{t}.001.ndjson.gz"));
        let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{t} link: {e}"));
        assert_eq!(
            target,
            Path::new("001.initial").join(format!("{t}.ndjson.gz"))
        );
    }

    // Workdir .metadata.
    let meta = read_json(&workdir.join(".metadata"));
    let keys: Vec<_> = meta.as_object().unwrap().keys().cloned().collect();
    for k in [
        "filters",
        "since",
        "kind",
        "timestamp",
        "version",
        "done",
        "complete",
    ] {
        assert!(
            keys.contains(&k.to_string()),
            "workdir .metadata lacks {k}: {keys:?}"
        );
    }
    assert_eq!(meta["kind"], "output");
    assert_eq!(meta["version"], "1.0.3");
    assert_eq!(meta["since"], serde_json::Value::Null);
    assert_eq!(meta["complete"], true);
    let filters = meta["filters"].as_object().unwrap();
    assert_eq!(filters.len(), 15);
    let obs_filter = if epic {
        "category=social-history,vital-signs,imaging,laboratory,survey,exam"
    } else {
        "category=social-history,vital-signs,imaging,laboratory,survey,exam,procedure,therapy,activity"
    };
    assert_eq!(filters["Observation"], serde_json::json!([obs_filter]));
    assert_eq!(filters["Condition"], serde_json::json!([]));
    let done = meta["done"].as_object().unwrap();
    assert_eq!(done.len(), 15, "every type done: {done:?}");

    // Managed .metadata.
    let managed = read_json(&out.join(".metadata"));
    assert_eq!(managed["fhir-url"], url);
    assert_eq!(managed["group"], serde_json::Value::Null);
    assert_eq!(managed["kind"], "managed");

    // The crawl's fake Bulk Data log (docs/log.md#the-crawl-log).
    let log = std::fs::read_to_string(workdir.join("log.ndjson")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<_> = events
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "kickoff",
            "status_complete",
            "status_page_complete",
            "manifest_complete",
            "export_complete"
        ]
    );
    assert!(events.iter().all(|e| e["exportId"] == "fake-log"));
    assert_eq!(
        events[0]["eventDetail"]["exportUrl"],
        format!("{url}/Group/{group}/$export")
    );
    assert_eq!(events[0]["_clientVersion"], "1.0.3");
    assert!(
        log.lines()
            .next()
            .unwrap()
            .starts_with("{\"exportId\": \"fake-log\", \"timestamp\": ")
    );
}

fn export_args<'a>(url: &'a str, mrns: &'a str, out: &'a str, auth: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "export",
        "--fhir-url",
        url,
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns,
        "--nickname",
        "initial",
        // These check the crawl's output line for line; hydration has its own tests.
        "--hydration-tasks",
        "none",
        out,
    ];
    args.extend_from_slice(auth);
    args
}

#[test]
fn epic_crawl_of_50_patients_with_rs384_jwks() {
    let dir = temp_dir("rs384");
    let pair = keys::generate(KeyAlg::Rs384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    let ehr = server(Flavor::Epic, 60, smart(pair.public_jwks.clone()));
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-123", 50);
    let out = dir.join("out/MRN-123");

    let auth = [
        "--smart-client-id",
        CLIENT_ID,
        "--smart-key",
        key.to_str().unwrap(),
    ];
    let output = run(&export_args(
        &url,
        mrns.to_str().unwrap(),
        out.to_str().unwrap(),
        &auth,
    ));
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Epic server detected."), "{stdout}");
    assert!(
        stdout.contains("Creating new subfolder '001.initial'."),
        "{stdout}"
    );
    assert!(stdout.contains("Skipping EpisodeOfCare, Epic does not support searching by patient"));
    check_first_export(&out, &url, 50, true, "MRN-123");
    assert!(
        ehr.stats().epic_client_id_headers > 0,
        "Epic-Client-ID header sent"
    );
}

fn small_export_with(auth_mode: AuthMode, auth: &[&str], name: &str) {
    let dir = temp_dir(name);
    let ehr = server(Flavor::Epic, 12, auth_mode);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-001", 10);
    let out = dir.join("out/MRN-001");
    let output = run(&export_args(
        &url,
        mrns.to_str().unwrap(),
        out.to_str().unwrap(),
        auth,
    ));
    assert_success(&output);
    check_first_export(&out, &url, 10, true, "MRN-001");
}

#[test]
fn es384_jwks_key() {
    let pair = keys::generate(KeyAlg::Es384);
    let dir = temp_dir("es384-key");
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    small_export_with(
        smart(pair.public_jwks.clone()),
        &[
            "--smart-client-id",
            CLIENT_ID,
            "--smart-key",
            key.to_str().unwrap(),
        ],
        "es384",
    );
}

#[test]
fn pem_keys_rsa_and_ec() {
    for alg in [KeyAlg::Rs384, KeyAlg::Es384] {
        let pair = keys::generate(alg);
        let dir = temp_dir("pem-key");
        let key = dir.join("key.pem");
        std::fs::write(&key, &pair.private_pem).unwrap();
        small_export_with(
            smart(pair.public_jwks.clone()),
            &[
                "--smart-client-id",
                CLIENT_ID,
                "--smart-key",
                key.to_str().unwrap(),
            ],
            "pem",
        );
    }
}

#[test]
fn basic_auth_with_password_file() {
    let dir = temp_dir("basic-pass");
    let pass = dir.join("passwd.txt");
    std::fs::write(&pass, "s3cret-Pa55\n").unwrap();
    small_export_with(
        AuthMode::Basic {
            user: "alice".into(),
            password: "s3cret-Pa55".into(),
        },
        &[
            "--basic-user",
            "alice",
            "--basic-passwd",
            pass.to_str().unwrap(),
        ],
        "basic",
    );
}

#[test]
fn bearer_token_file() {
    let dir = temp_dir("bearer-file");
    let token = dir.join("token.txt");
    std::fs::write(&token, "tok-0123456789abcdef\n").unwrap();
    small_export_with(
        AuthMode::Bearer {
            token: "tok-0123456789abcdef".into(),
        },
        &["--bearer-token", token.to_str().unwrap()],
        "bearer",
    );
}
