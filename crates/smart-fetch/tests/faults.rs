//! Faults do not stall the export (issue 14), end to end against fake-ehr over real HTTP:
//! 5 % of faults of every kind change no line of the output; 429s arriving together on
//! several connections make one pause of their `Retry-After`, not the sum; 500s and 502s
//! cost only their own request a retry, never the others a connection, unless the server
//! is sick; bulk downloads that are slow to start are not a slow server; every request
//! names us in its `User-Agent`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, BulkConfig, Config, Fault, Flavor, Server};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn epic(patients: usize, latency: Duration) -> Config {
    Config {
        flavor: Flavor::Epic,
        patients,
        auth: AuthMode::Open,
        latency,
        ..Config::default()
    }
}

/// `export` of the first `patients` MRNs into `out`, with `extra` arguments.
fn export_args(ehr: &Server, mrns: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "export",
        "--fhir-url",
        &ehr.base_url(),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().expect("utf-8 path"),
        "--nickname",
        "q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(out.to_str().expect("utf-8 path").to_string());
    args
}

fn run_owned(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

fn spawn_owned(args: &[String]) -> std::process::Child {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(&args)
}

/// File name → its lines, sorted (searches finish in their own order), for every
/// `*.ndjson[.gz]` file of `dir` and its subfolders but `log.ndjson`.
fn files_and_lines(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("list folder").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if !(name.ends_with(".ndjson") || name.ends_with(".ndjson.gz")) || name == "log.ndjson"
            {
                continue;
            }
            let relative = path
                .strip_prefix(dir)
                .expect("inside dir")
                .to_string_lossy()
                .into_owned();
            let mut lines = read_lines(&path);
            lines.sort();
            out.insert(relative, lines);
        }
    }
    out
}

fn assert_same_files(faulty: &Path, clean: &Path) {
    let faulty = files_and_lines(faulty);
    let clean = files_and_lines(clean);
    assert_eq!(
        faulty.keys().collect::<Vec<_>>(),
        clean.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, lines) in &clean {
        let got = &faulty[name];
        assert_eq!(got.len(), lines.len(), "{name}: number of lines");
        for (a, b) in got.iter().zip(lines) {
            assert_eq!(a, b, "{name}: a line differs");
        }
    }
}

// The tests below watch the connections of a crawl while it runs, so they need one of many
// requests: `--no-search-lists` keeps one patient per search (lists would make these crawls
// a few hundred requests). Lists under faults are covered by the first test.

/// Polls until `done` holds, failing the test after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Under 5 % of injected faults of every kind (429 and 503 with `Retry-After: 1`, 500, 502,
/// a connection dropped mid-body, a 2 s answer) an export with the default hydration
/// writes exactly the files of a run against a server without faults, line for line.
#[test]
fn five_percent_faults_of_every_kind_change_no_line() {
    const PATIENTS: usize = 30;
    let dir = temp_dir("faults-every-kind");
    let mrns = mrn_file(&dir, "mrns.txt", PATIENTS);

    let clean_ehr = server_with(epic(PATIENTS, Duration::from_millis(5)));
    let clean = dir.join("clean");
    assert_success(&run_owned(&export_args(&clean_ehr, &mrns, &clean, &[])));
    assert_eq!(clean_ehr.stats().faults, 0);

    let faulty_ehr = server_with(Config {
        fault_rate: 0.05,
        ..epic(PATIENTS, Duration::from_millis(5))
    });
    let faulty = dir.join("faulty");
    assert_success(&run_owned(&export_args(&faulty_ehr, &mrns, &faulty, &[])));
    let stats = faulty_ehr.stats();
    for kind in Fault::ALL {
        assert!(
            stats.fault_kinds.get(kind.name()).is_some_and(|n| *n > 0),
            "no {} fault was injected: {:?}",
            kind.name(),
            stats.fault_kinds
        );
    }
    assert!(
        stats.requests > clean_ehr.stats().requests,
        "failed requests were tried again"
    );
    assert!(!faulty.join("001.q/error").exists(), "no search gave up");
    assert_same_files(&faulty.join("001.q"), &clean.join("001.q"));
    // And the clean run holds what the server has (some crawled types; hydration has its
    // own tests).
    let some = ["Condition", "Encounter", "Patient"];
    assert_same_resources(
        &folder_resources_of(&clean.join("001.q"), &some),
        &expected_resources(1, PATIENTS, &some, true),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An EHR that answers 429 with `Retry-After: 2` to every request for a moment, so several
/// connections get one at once: the server then sees no request from us for two seconds
/// (one pause, from the first 429's arrival, not one per 429), and the crawl resumes and
/// completes.
#[test]
fn simultaneous_429s_make_one_pause_of_their_retry_after() {
    const PATIENTS: usize = 60;
    const LATENCY: Duration = Duration::from_millis(40);
    let dir = temp_dir("faults-429-together");
    let mrns = mrn_file(&dir, "mrns.txt", PATIENTS);
    let ehr = server_with(epic(PATIENTS, LATENCY));
    let out = dir.join("out");
    let child = spawn_owned(&export_args(
        &ehr,
        &mrns,
        &out,
        &["--hydration-tasks", "none", "--no-search-lists"],
    ));
    wait_until("the crawl to get going", Duration::from_secs(60), || {
        ehr.requests() >= 150
    });
    // Every request arriving in the next 300 ms is answered 429 (the first after LATENCY).
    ehr.throttle(Duration::from_millis(300), 2);
    let output = wait(child, Duration::from_secs(120));
    assert_success(&output);

    let stats = ehr.stats();
    let throttled = &stats.throttled_arrivals_ms;
    assert!(
        throttled.len() >= 3,
        "several connections got a 429 at once: {throttled:?}"
    );
    let first = throttled[0];
    // The first 429 reached us LATENCY after its request arrived. Requests sent before
    // that may still arrive a little later (a loaded machine); none after, for 2 s.
    let told = first + LATENCY.as_millis() as u64;
    let arrivals = &stats.data_arrivals_ms;
    let quiet: Vec<u64> = arrivals
        .iter()
        .copied()
        .filter(|&t| t > told + 300 && t < told + 1900)
        .collect();
    assert!(
        quiet.is_empty(),
        "requests during the pause (ms after the first 429 was sent): {:?}",
        quiet.iter().map(|t| t - told).collect::<Vec<_>>()
    );
    // The longest silence: one pause of about 2 s, not one per 429 (which would be
    // 2 s × the number of 429s, at least 6 s).
    let resumed = arrivals
        .iter()
        .copied()
        .find(|&t| t >= told + 1900)
        .expect("the crawl resumed after the pause");
    let before = arrivals
        .iter()
        .copied()
        .filter(|&t| t < resumed)
        .max()
        .unwrap_or(0);
    let gap = resumed - before;
    assert!(
        (1500..4000).contains(&gap),
        "one pause of about 2 s, not {} × 2 s: {gap} ms without a request",
        throttled.len()
    );
    assert!(
        resumed - told < 4000,
        "resumed {} ms after the first 429",
        resumed - told
    );
    assert_same_resources(
        &folder_resources(&out.join("001.q")),
        &expected_resources(1, PATIENTS, &ALL_TYPES, true),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The most requests in flight seen in each of `windows` half-second windows.
fn in_flight_per_window(ehr: &Server, windows: usize) -> Vec<u64> {
    (0..windows)
        .map(|_| {
            ehr.reset_max_in_flight();
            std::thread::sleep(Duration::from_millis(500));
            ehr.stats().max_in_flight
        })
        .collect()
}

/// 5 % of 500 and 502 answers are single requests' bad luck: each is retried on its own,
/// and the server keeps seeing all five connections busy from start to end; the budget is
/// never cut for them (`--verbose` would say "Connections: 4 of 5 (many requests fail)").
#[test]
fn five_percent_500_and_502_keep_every_connection_busy() {
    const PATIENTS: usize = 150;
    let dir = temp_dir("faults-5xx");
    let mrns = mrn_file(&dir, "mrns.txt", PATIENTS);
    let ehr = server_with(Config {
        fault_rate: 0.05,
        fault_kinds: vec![Fault::Internal, Fault::BadGateway],
        ..epic(PATIENTS, Duration::from_millis(20))
    });
    let out = dir.join("out");
    let child = spawn_owned(&export_args(
        &ehr,
        &mrns,
        &out,
        &[
            "--hydration-tasks",
            "none",
            "--verbose",
            "--no-search-lists",
        ],
    ));
    wait_until("the crawl to get going", Duration::from_secs(60), || {
        ehr.requests() >= 300
    });
    let windows = in_flight_per_window(&ehr, 8);
    let faults_meanwhile = ehr.stats().faults;
    let output = wait(child, Duration::from_secs(120));
    assert_success(&output);
    assert!(faults_meanwhile >= 10, "{faults_meanwhile} faults");
    assert!(
        windows.iter().all(|&n| n == 5),
        "five requests in flight in every half second: {windows:?}"
    );
    // Cut for failures, never. (A loaded machine can make answers slow for a moment, and a
    // cut for slowness, "(answers take N ms)", is the controller doing its job.)
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("(many requests fail)"),
        "the budget was never cut for failures:\n{stderr}"
    );
    assert!(
        stderr.contains("[500]") && stderr.contains("[502]"),
        "{stderr}"
    );
    assert_same_resources(
        &folder_resources(&out.join("001.q")),
        &expected_resources(1, PATIENTS, &ALL_TYPES, true),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sick server (half of all requests fail with a 500) loses connections, and gets them
/// all back as soon as it answers again; nothing is lost.
#[test]
fn a_sick_server_loses_connections_and_gets_them_back() {
    const PATIENTS: usize = 150;
    let dir = temp_dir("faults-sick");
    let mrns = mrn_file(&dir, "mrns.txt", PATIENTS);
    let ehr = server_with(epic(PATIENTS, Duration::from_millis(20)));
    let out = dir.join("out");
    let child = spawn_owned(&export_args(
        &ehr,
        &mrns,
        &out,
        &[
            "--hydration-tasks",
            "none",
            "--verbose",
            "--no-search-lists",
        ],
    ));
    wait_until("the crawl to get going", Duration::from_secs(60), || {
        ehr.requests() >= 200
    });
    ehr.set_faults(Some(0.5), Some(&[Fault::Internal]), None);
    std::thread::sleep(Duration::from_secs(4));
    let sick = in_flight_per_window(&ehr, 2);
    ehr.set_faults(Some(0.0), None, None);
    std::thread::sleep(Duration::from_secs(1));
    let healthy = in_flight_per_window(&ehr, 6);
    let output = wait(child, Duration::from_secs(120));
    assert_success(&output);
    assert!(
        sick.iter().all(|&n| n <= 2),
        "at most two requests in flight while half of them fail: {sick:?}"
    );
    assert!(
        healthy.contains(&5),
        "every connection back once the server is well: {healthy:?}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Connections: 1 of 5 (many requests fail)"),
        "{stderr}"
    );
    assert!(stderr.contains("Connections: 5 of 5"), "{stderr}");
    assert_same_resources(
        &folder_resources(&out.join("001.q")),
        &expected_resources(1, PATIENTS, &ALL_TYPES, true),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bulk files that take 300 ms to start (a server writing them on demand) while status
/// polls answer at once are not a slow server: every connection keeps downloading to the
/// end of the download phase.
#[test]
fn downloads_slow_to_start_keep_every_connection() {
    let ehr = server_with(Config {
        flavor: Flavor::Generic,
        patients: 30,
        auth: AuthMode::Open,
        bulk: BulkConfig {
            resources_per_file: 20,
            file_latency: Some(Duration::from_millis(300)),
            ..BulkConfig::default()
        },
        ..Config::default()
    });
    let dir = temp_dir("faults-downloads");
    let out = dir.join("out");
    let child = spawn(&[
        "bulk",
        out.to_str().expect("utf-8 path"),
        "--fhir-url",
        &ehr.base_url(),
        "--verbose",
    ]);
    // Half way through the files, start counting afresh.
    wait_until("half of the downloads", Duration::from_secs(60), || {
        ehr.stats().bulk.completed_downloads.len() >= 30
    });
    ehr.reset_max_in_flight();
    let output = wait(child, Duration::from_secs(120));
    assert_success(&output);
    let stats = ehr.stats();
    let files = stats.bulk.completed_downloads.len();
    assert!(files >= 60, "{files} files");
    assert_eq!(
        stats.bulk.max_downloads_in_flight, 5,
        "five downloads at once in the second half"
    );
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("Connections: "), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every request names the tool and its version, the token request included.
#[test]
fn every_request_says_who_we_are() {
    let dir = temp_dir("faults-user-agent");
    let pair = fake_ehr::keys::generate(fake_ehr::keys::KeyAlg::Es384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).expect("write key");
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: 3,
        auth: AuthMode::Smart {
            client_id: CLIENT_ID.into(),
            public_jwks: pair.public_jwks.clone(),
            token_lifetime: Duration::from_secs(300),
        },
        ..Config::default()
    });
    let mrns = mrn_file(&dir, "mrns.txt", 3);
    let out = dir.join("out");
    let args = export_args(
        &ehr,
        &mrns,
        &out,
        &[
            "--smart-client-id",
            CLIENT_ID,
            "--smart-key",
            key.to_str().expect("utf-8 path"),
        ],
    );
    assert_success(&run_owned(&args));
    let stats = ehr.stats();
    assert!(stats.token >= 1 && stats.metadata >= 1 && stats.searches > 10);
    assert_eq!(stats.requests_without_user_agent, 0);
    let expected = format!("smart-fetch/{} ", env!("CARGO_PKG_VERSION"));
    let seen = stats.last_user_agent.unwrap_or_default();
    assert!(seen.starts_with(&expected), "{seen:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
