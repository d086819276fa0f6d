//! A flaky EHR and a killed process change nothing in the result: injected 429/5xx faults
//! with short-lived tokens, and SIGKILL mid-crawl followed by the same command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::keys::{self, KeyAlg};
use fake_ehr::{AuthMode, Config, Flavor};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn smart_config(public_jwks: serde_json::Value, lifetime: Duration) -> AuthMode {
    AuthMode::Smart {
        client_id: CLIENT_ID.into(),
        public_jwks,
        token_lifetime: lifetime,
    }
}

fn args<'a>(url: &'a str, key: &'a str, mrns: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "export",
        "--fhir-url",
        url,
        "--smart-client-id",
        CLIENT_ID,
        "--smart-key",
        key,
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
    ]
}

#[test]
fn faults_and_expiring_tokens_change_nothing() {
    let dir = temp_dir("faults");
    let pair = keys::generate(KeyAlg::Rs384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    let mrns = mrn_file(&dir, "MRN-5", 40);

    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: 40,
        auth: smart_config(pair.public_jwks.clone(), Duration::from_secs(5)),
        latency: Duration::from_millis(30),
        fault_rate: 0.05,
        ..Config::default()
    });
    let url = ehr.base_url();
    let out = dir.join("flaky");
    // One patient per search: the faults and the token's expiry need a crawl of many
    // requests over several seconds; with lists 40 patients take a few dozen requests
    // (faults under lists: tests/faults.rs).
    let mut argv = args(
        &url,
        key.to_str().unwrap(),
        mrns.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    argv.push("--no-search-lists");
    let output = run(&argv);
    assert_success(&output);
    let stats = ehr.stats();
    assert!(stats.faults > 10, "faults were injected: {}", stats.faults);
    assert!(
        stats.token > 1,
        "the token was renewed: {} token requests",
        stats.token
    );

    let expected = expected_resources(1, 40, &ALL_TYPES, true);
    assert_same_resources(&folder_resources(&out.join("001.initial")), &expected);
    assert!(!out.join("001.initial/error").exists(), "no search gave up");
}

/// Run until the server has seen `threshold` requests in total, then SIGKILL.
fn run_and_kill(argv: &[&str], ehr: &fake_ehr::Server, threshold: u64) {
    let mut child = spawn(argv);
    let start = Instant::now();
    loop {
        if ehr.requests() >= threshold {
            child.kill().expect("SIGKILL smart-fetch");
            let _ = child.wait();
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("finished ({status:?}) before {threshold} requests");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sigkill_at_30_and_70_percent_then_resume() {
    let dir = temp_dir("sigkill");
    let pair = keys::generate(KeyAlg::Es384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    // Enough patients that what a kill costs is small next to the crawl, as in production:
    // patient lists make 50 patients about 50 requests, and each run has its own lists in
    // flight to redo, new token and metadata, and a short last list per type (measured:
    // +38 requests over two kills, 4.8 % of 785 at 1,000 patients).
    const PATIENTS: usize = 2_000;
    let mrns = mrn_file(&dir, "MRN-7", PATIENTS);
    let config = || Config {
        flavor: Flavor::Epic,
        patients: PATIENTS,
        auth: smart_config(pair.public_jwks.clone(), Duration::from_secs(300)),
        latency: Duration::from_millis(5),
        ..Config::default()
    };
    let key = key.to_str().unwrap();
    let mrns = mrns.to_str().unwrap();

    // The uninterrupted run, for its output and its request count.
    let clean_ehr = server_with(config());
    let clean_out = dir.join("clean");
    let clean_url = clean_ehr.base_url();
    assert_success(&run(&args(
        &clean_url,
        key,
        mrns,
        clean_out.to_str().unwrap(),
    )));
    let clean_requests = clean_ehr.requests();

    let ehr = server_with(config());
    let url = ehr.base_url();
    let out = dir.join("killed");
    let argv = args(&url, key, mrns, out.to_str().unwrap());
    run_and_kill(&argv, &ehr, clean_requests * 30 / 100);
    run_and_kill(&argv, &ehr, clean_requests * 70 / 100);
    let last = run(&argv);
    assert_success(&last);

    let resumed = folder_resources(&out.join("001.initial"));
    assert_same_resources(&resumed, &folder_resources(&clean_out.join("001.initial")));
    assert_same_resources(&resumed, &expected_resources(1, PATIENTS, &ALL_TYPES, true));
    let total = ehr.requests();
    eprintln!("resume: {total} requests over three runs, {clean_requests} uninterrupted");
    assert!(
        total * 100 <= clean_requests * 105,
        "{total} requests over three runs vs {clean_requests} uninterrupted"
    );
    assert!(!Path::new(&out.join("001.initial/.resume")).exists());
}
