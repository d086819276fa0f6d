//! The connection budget against a slow Epic-like server: by default all five connections
//! are in use at once (the scheduler does not throttle below the budget), and
//! `--max-connections 2` is a ceiling the server never sees exceeded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Config, Flavor};
use std::time::Duration;
use support::*;

const PATIENTS: usize = 30;

fn slow_epic() -> fake_ehr::Server {
    server_with(Config {
        flavor: Flavor::Epic,
        patients: PATIENTS,
        auth: AuthMode::Open,
        latency: Duration::from_millis(20),
        ..Config::default()
    })
}

/// Crawl into a new test folder; returns the folder (removed when dropped) and the output.
fn crawl(ehr: &fake_ehr::Server, name: &str, extra: &[&str]) -> (TestDir, std::path::PathBuf) {
    let dir = temp_dir(name);
    let mrns = mrn_file(&dir, "mrns.txt", PATIENTS);
    let out = dir.join("out");
    let url = ehr.base_url();
    let mut args = vec![
        "crawl",
        "--fhir-url",
        &url,
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    assert_success(&run(&args));
    (dir, out)
}

#[test]
fn default_budget_keeps_five_requests_in_flight() {
    let ehr = slow_epic();
    let (_dir, out) = crawl(&ehr, "budget-5", &[]);
    let stats = ehr.stats();
    assert_eq!(
        stats.max_in_flight, 5,
        "the default --max-connections is 5 and all of them should be used at once \
         ({} searches)",
        stats.searches
    );
    assert_same_resources(
        &folder_resources(&out),
        &expected_resources(1, PATIENTS, &ALL_TYPES, true),
    );
}

#[test]
fn max_connections_two_is_a_ceiling() {
    let ehr = slow_epic();
    let types = ["Patient", "Condition", "Observation"];
    let (_dir, out) = crawl(
        &ehr,
        "budget-2",
        &["--max-connections", "2", "--type", &types.join(",")],
    );
    let stats = ehr.stats();
    assert!(
        stats.max_in_flight <= 2,
        "{} requests in flight with --max-connections 2",
        stats.max_in_flight
    );
    assert_eq!(stats.max_in_flight, 2, "both connections are used");
    assert_same_resources(
        &folder_resources(&out),
        &expected_resources(1, PATIENTS, &types, true),
    );
}
