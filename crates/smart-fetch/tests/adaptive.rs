//! Adaptive concurrency below `--max-connections`, end to end: an EHR that answers in
//! 20 ms gets all five connections; when it slows to half a second per answer mid-crawl,
//! the crawl gives connections back until it sends one request at a time; when the EHR is
//! fast again the crawl climbs back to five. `--verbose` says so, and the output is complete.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Config, Flavor};
use std::time::{Duration, Instant};
use support::*;

const PATIENTS: usize = 200;
const FAST: Duration = Duration::from_millis(20);
const SLOW: Duration = Duration::from_millis(500);

/// An Epic-like EHR answering in `FAST`, or in the given times for some resource types.
fn epic_server(patients: usize, type_latency: Vec<(String, Duration)>) -> fake_ehr::Server {
    server_with(Config {
        flavor: Flavor::Epic,
        patients,
        auth: AuthMode::Open,
        latency: FAST,
        type_latency,
        ..Config::default()
    })
}

/// `crawl --verbose` of the first `patients` MRNs into `out` (its folder must exist), one
/// patient per search (`--no-search-lists`): these tests need a crawl of many requests to
/// watch the connections of, and lists would make it a few hundred.
fn spawn_verbose_crawl(
    ehr: &fake_ehr::Server,
    patients: usize,
    out: &std::path::Path,
) -> std::process::Child {
    let dir = out.parent().expect("out has a parent");
    let mrns = mrn_file(dir, "mrns.txt", patients);
    spawn(&[
        "crawl",
        "--verbose",
        "--fhir-url",
        &ehr.base_url(),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().expect("utf-8 path"),
        out.to_str().expect("utf-8 path"),
        "--no-search-lists",
    ])
}

/// Polls until `done` holds, failing the test after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The most requests the server had in flight at once during the next `window`.
fn most_in_flight_during(ehr: &fake_ehr::Server, window: Duration) -> u64 {
    ehr.reset_max_in_flight();
    std::thread::sleep(window);
    ehr.stats().max_in_flight
}

/// The most requests in flight seen in half-second windows, stopping at the first window
/// that reaches `wanted` or after `limit` (a loaded machine may need a few windows).
fn most_in_flight_reaching(ehr: &fake_ehr::Server, wanted: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    let mut most = 0;
    while most < wanted && start.elapsed() < limit {
        most = most.max(most_in_flight_during(ehr, Duration::from_millis(500)));
    }
    most
}

#[test]
fn backs_off_while_the_server_is_slow_and_climbs_back() {
    let ehr = epic_server(PATIENTS, Vec::new());
    let dir = temp_dir("adaptive");
    let out = dir.join("out");
    let child = spawn_verbose_crawl(&ehr, PATIENTS, &out);
    let started = Instant::now();

    wait_until("the crawl to get going", Duration::from_secs(30), || {
        ehr.requests() >= 200
    });
    let healthy = most_in_flight_reaching(&ehr, 5, Duration::from_secs(5));
    assert_eq!(healthy, 5, "a healthy server gets every connection");

    ehr.set_latency(SLOW);
    // Each cut waits for a round of slow answers: about four seconds from five to one.
    std::thread::sleep(Duration::from_secs(7));
    let requests_before = ehr.requests();
    let slowed = most_in_flight_during(&ehr, Duration::from_secs(3));
    let slow_requests = ehr.requests() - requests_before;
    assert!(
        slowed <= 2,
        "{slowed} requests in flight at once while every answer takes {SLOW:?}"
    );
    assert!(
        slow_requests > 0,
        "the crawl stopped instead of slowing down"
    );

    ehr.set_latency(FAST);
    std::thread::sleep(Duration::from_secs(1));
    let recovered = most_in_flight_reaching(&ehr, 5, Duration::from_secs(5));
    assert_eq!(
        recovered, 5,
        "back to every connection once the server is fast"
    );

    let output = wait(child, Duration::from_secs(120));
    assert!(started.elapsed() > Duration::from_secs(10));
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Connections: 1 of 5"),
        "--verbose reports the cut down to one connection:\n{stderr}"
    );
    assert!(
        stderr.contains("Connections: 5 of 5"),
        "--verbose reports the climb back to five:\n{stderr}"
    );
    // The crawl lasted more than 10 s, so --verbose printed its status line at least once.
    assert!(
        stderr.contains("/5 connections") && stderr.contains("requests/s"),
        "--verbose prints the concurrency and request rate every 10 s:\n{stderr}"
    );
    assert_same_resources(
        &folder_resources(&out),
        &expected_resources(1, PATIENTS, &ALL_TYPES, true),
    );
}

/// An EHR whose Observation searches take 400 ms and everything else 20 ms is not slowing
/// down, it is just like that: the crawl keeps all five connections the whole time.
#[test]
fn costly_requests_of_one_kind_are_not_a_slowdown() {
    const PATIENTS: usize = 60;
    let ehr = epic_server(
        PATIENTS,
        vec![("Observation".to_string(), Duration::from_millis(400))],
    );
    let dir = temp_dir("adaptive-mix");
    let out = dir.join("out");
    let output = wait(
        spawn_verbose_crawl(&ehr, PATIENTS, &out),
        Duration::from_secs(120),
    );
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("Connections: "),
        "the number of connections never changed:\n{stderr}"
    );
    assert_eq!(ehr.stats().max_in_flight, 5);
    assert_same_resources(
        &folder_resources(&out),
        &expected_resources(1, PATIENTS, &ALL_TYPES, true),
    );
}
