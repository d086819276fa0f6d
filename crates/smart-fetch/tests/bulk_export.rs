//! Acceptance of bulk export (issue 4): `export` and `bulk` against the fake EHR's
//! `$export` over real HTTP, checked the way a user (and Cumulus ETL) sees the folder:
//! files, `.metadata`, symlinks, `log.ndjson`, messages and exit status.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, BulkConfig, Config, Flavor, RetryAfter, Server};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const SEED: u64 = 1;

/// Type → id → resource, for every NDJSON file directly in `dir` (parsed, so the server's
/// spelling and ours compare equal). Panics on a resource written twice.
fn folder_values(dir: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (t, ids) in folder_resources(dir) {
        for (id, line) in ids {
            let value: Value = serde_json::from_str(&line).expect("JSON line");
            out.entry(t.clone()).or_default().insert(id, value);
        }
    }
    out
}

/// Every patient of `indices` searched for Condition exactly once, and the number of search
/// requests that took: one list of them all when the data of two patients confirms it,
/// else that list and then one search per patient (`patient_lists`).
fn assert_conditions_searched_once(stats: &fake_ehr::Stats, indices: &[usize]) {
    let searches = decoded_searches(stats);
    let expanded = per_patient_searches(&searches);
    let mut wanted: Vec<String> = indices
        .iter()
        .map(|&i| format!("Condition?patient={}", fake_ehr::data::patient_id(i)))
        .collect();
    wanted.sort();
    let with_data = expected_resources_of(SEED, indices, &["Condition"], false)
        .get("Condition")
        .map(|ids| {
            ids.values()
                .map(|line| {
                    line.split("\"subject\":")
                        .nth(1)
                        .unwrap_or_default()
                        .to_string()
                })
                .map(|rest| rest.split('"').nth(3).unwrap_or_default().to_string())
                .collect::<BTreeSet<String>>()
                .len()
        })
        .unwrap_or(0);
    let mut got = expanded.clone();
    got.sort();
    if with_data >= 2 {
        assert_eq!(got, wanted, "{searches:?}");
        assert_eq!(searches.len(), 1, "one list: {searches:?}");
    } else {
        got.dedup();
        assert_eq!(got, wanted, "{searches:?}");
        assert_eq!(searches.len(), 1 + indices.len(), "{searches:?}");
    }
}

fn expected_values(
    indices: &[usize],
    types: &[&str],
    keep: impl Fn(&Value) -> bool,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (t, ids) in expected_resources_of(SEED, indices, types, false) {
        for (id, line) in ids {
            let value: Value = serde_json::from_str(&line).expect("JSON line");
            if keep(&value) {
                out.entry(t.clone()).or_default().insert(id, value);
            }
        }
    }
    out
}

fn assert_same_values(
    actual: &BTreeMap<String, BTreeMap<String, Value>>,
    expected: &BTreeMap<String, BTreeMap<String, Value>>,
) {
    let types: BTreeSet<&String> = actual.keys().chain(expected.keys()).collect();
    for t in types {
        let a = actual.get(t).cloned().unwrap_or_default();
        let e = expected.get(t).cloned().unwrap_or_default();
        let missing: Vec<_> = e.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
        let extra: Vec<_> = a.keys().filter(|k| !e.contains_key(*k)).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{t}: {} expected, {} written; missing {missing:?}, unexpected {extra:?}",
            e.len(),
            a.len()
        );
        for (id, value) in &e {
            assert_eq!(&a[id], value, "{t}/{id} differs from what the server holds");
        }
    }
}

fn bulk_server(patients: usize, bulk: BulkConfig) -> Server {
    server_with(Config {
        seed: SEED,
        patients,
        bulk,
        ..Config::default()
    })
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// NDJSON files directly in `dir` (final names only).
fn ndjson_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".ndjson.gz") || n.ends_with(".ndjson"))
        .filter(|n| n != "log.ndjson")
        .collect()
}

/// `Type.NNN.ndjson.gz`, numbered from 001 without gaps per type.
fn assert_bulk_names(names: &[String]) {
    let mut per_type: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for name in names {
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(parts.len(), 4, "{name}");
        assert_eq!(&parts[2..], ["ndjson", "gz"], "{name}");
        assert_eq!(parts[1].len(), 3, "{name}");
        per_type
            .entry(parts[0])
            .or_default()
            .push(parts[1].parse().expect("number"));
    }
    for (t, mut numbers) in per_type {
        numbers.sort_unstable();
        let want: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, want, "{t} files");
    }
}

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["eventId"] == name).collect()
}

/// docs/log.md for one uninterrupted export into `workdir`: the event sequence, every field,
/// one exportId (the status URL), and the sums of `export_complete`.
fn check_log(workdir: &Path, kickoff_path: &str, files: usize) {
    let events = log_events(&workdir.join("log.ndjson"));
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["eventId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        &names[..4],
        [
            "kickoff",
            "status_complete",
            "status_page_complete",
            "manifest_complete"
        ]
    );
    assert_eq!(names.last(), Some(&"export_complete"));
    let export_id = events[0]["exportId"].as_str().unwrap_or_default();
    assert!(export_id.contains("/bulk-status/job-"), "{export_id}");
    for e in &events {
        assert_eq!(e["exportId"], export_id);
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        let head = ["exportId", "timestamp", "eventId", "eventDetail"];
        assert_eq!(&keys[..4], head, "{e}");
    }
    let kickoff = &events[0];
    assert_eq!(kickoff["_client"], "smart-fetch");
    assert_eq!(kickoff["_clientVersion"], "1.0.3");
    let detail = &kickoff["eventDetail"];
    let url = detail["exportUrl"].as_str().unwrap_or_default();
    assert!(url.contains(kickoff_path), "{url}");
    assert_eq!(detail["softwareName"], "fake-ehr");
    assert_eq!(detail["fhirVersion"], "4.0.1");
    assert_eq!(detail["softwareReleaseDate"], Value::Null);
    assert_eq!(detail["errorCode"], Value::Null);
    assert_eq!(detail["errorBody"], Value::Null);
    assert_eq!(detail["responseHeaders"]["content-location"], export_id);
    assert!(detail["requestParameters"]["_type"].is_string());

    let tt = events[1]["eventDetail"]["transactionTime"].clone();
    assert!(tt.is_string());
    assert_eq!(
        events[2]["eventDetail"],
        serde_json::json!({"transactionTime": tt, "outputFileCount": files,
                           "deletedFileCount": 0, "errorFileCount": 0})
    );
    assert_eq!(events[3]["eventDetail"]["totalManifests"], 1);

    let requests = events_named(&events, "download_request");
    let completes = events_named(&events, "download_complete");
    assert_eq!(requests.len(), files);
    assert_eq!(completes.len(), files);
    for r in &requests {
        assert_eq!(r["eventDetail"]["itemType"], "output");
    }
    let resources: u64 = completes
        .iter()
        .map(|c| c["eventDetail"]["resourceCount"].as_u64().unwrap_or(0))
        .sum();
    let bytes: u64 = completes
        .iter()
        .map(|c| c["eventDetail"]["fileSize"].as_u64().unwrap_or(0))
        .sum();
    let done = &events.last().unwrap()["eventDetail"];
    assert_eq!(done["files"], files);
    assert_eq!(done["resources"], resources);
    assert_eq!(done["bytes"], bytes);
    assert_eq!(done["attachments"], Value::Null);
    assert!(done["duration"].is_u64());
}

#[test]
fn system_and_group_exports_of_200_patients() {
    let ehr = bulk_server(
        200,
        BulkConfig {
            resources_per_file: 700,
            ..BulkConfig::default()
        },
    );
    let url = ehr.base_url();
    let dir = temp_dir("bulk-system");

    // System level, through `export` (auto mode on a generic server = bulk).
    let out = dir.join("system");
    let o = run(&[
        "export",
        p(&out),
        "--fhir-url",
        &url,
        "--nickname",
        "first",
        "--hydration-tasks",
        "none",
    ]);
    assert_success(&o);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("Starting bulk FHIR export…"), "{stdout}");
    assert!(
        stdout.contains("Bulk FHIR export finished, now downloading resources…"),
        "{stdout}"
    );
    let workdir = out.join("001.first");
    let all: Vec<usize> = (0..200).collect();
    assert_same_values(
        &folder_values(&workdir),
        &expected_values(&all, &ALL_TYPES, |_| true),
    );
    let names = ndjson_files(&workdir);
    assert_bulk_names(&names);
    assert!(
        names.contains(&"Observation.002.ndjson.gz".to_string()),
        "{names:?}"
    );
    for name in &names {
        assert!(stdout.contains(&format!("  Downloaded {name} (")), "{name}");
    }
    assert!(
        !workdir.join(".resume").exists(),
        "resume state left behind"
    );

    // Symlinks: one per file, numbered per type, pointing into the workdir.
    let links = symlinks(&out);
    assert_eq!(links.len(), names.len(), "{links:?}");
    for name in &names {
        assert_eq!(links[name], Path::new("001.first").join(name), "{name}");
    }

    // .metadata of the workdir and of the managed folder.
    let meta = read_json(&workdir.join(".metadata"));
    assert_eq!(meta["kind"], "output");
    assert_eq!(meta["since"], Value::Null);
    assert_eq!(meta["complete"], true);
    assert!(meta.get("bulk-status").is_none());
    let events = log_events(&workdir.join("log.ndjson"));
    let tt = events[1]["eventDetail"]["transactionTime"]
        .as_str()
        .expect("transactionTime")
        .to_string();
    let done = meta["done"].as_object().expect("done");
    assert_eq!(done.len(), 15);
    let tt_parsed = support::python::parse_fhir_date(&tt).expect("tt parses");
    for (t, when) in done {
        let when = support::python::parse_fhir_date(when.as_str().unwrap()).unwrap();
        assert_eq!(when, tt_parsed, "{t}");
    }
    let managed = read_json(&out.join(".metadata"));
    assert_eq!(managed["kind"], "managed");
    assert_eq!(managed["fhir-url"], url.as_str());
    assert_eq!(managed["group"], Value::Null);
    check_log(&workdir, "/fhir/$export?_type=", names.len());

    // Group level: only the members' resources.
    let out = dir.join("group");
    let o = run(&[
        "export",
        p(&out),
        "--fhir-url",
        &url,
        "--group",
        "even",
        "--nickname",
        "even",
        "--hydration-tasks",
        "none",
        "--type",
        "Patient,Condition,Observation",
    ]);
    assert_success(&o);
    let workdir = out.join("001.even");
    let even: Vec<usize> = (0..200).step_by(2).collect();
    assert_same_values(
        &folder_values(&workdir),
        &expected_values(&even, &["Patient", "Condition", "Observation"], |_| true),
    );
    let names = ndjson_files(&workdir);
    assert_bulk_names(&names);
    check_log(&workdir, "/fhir/Group/even/$export?_type=", names.len());
    assert_eq!(read_json(&out.join(".metadata"))["group"], "even");

    let stats = ehr.stats();
    assert_eq!(stats.bulk.kickoffs, 2);
    assert_eq!(stats.searches, 0, "bulk mode searches nothing");
    assert_eq!(stats.bulk.deletes, 2, "each finished job is deleted");
    assert!(stats.bulk.downloads.values().all(|n| *n == 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn since_exports_changes_and_deleted_resources() {
    let deleted = vec![
        "Condition/cond-000001-01".to_string(),
        "Encounter/enc-000002-01".to_string(),
        "Condition/cond-000003-02".to_string(),
    ];
    let ehr = bulk_server(
        30,
        BulkConfig {
            deleted: deleted.clone(),
            ..BulkConfig::default()
        },
    );
    let url = ehr.base_url();
    let dir = temp_dir("bulk-since");
    let out = dir.join("out");
    let since = "2024-01-01T00:00:00+00:00";
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &url,
        "--since",
        since,
        "--type",
        "Condition,Encounter",
    ]);
    assert_success(&o);
    assert!(text(&o.stdout).contains(&format!("Using since value of '{since}'.")));

    let since_ts = support::python::parse_fhir_date(since).unwrap();
    let all: Vec<usize> = (0..30).collect();
    let expected = expected_values(&all, &["Condition", "Encounter"], |r| {
        let reference = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let updated =
            support::python::parse_fhir_date(r["meta"]["lastUpdated"].as_str().unwrap()).unwrap();
        updated > since_ts && !deleted.contains(&reference)
    });
    assert!(!expected.is_empty());
    assert_same_values(&folder_values(&out), &expected);

    // The deleted ones, as the server reported them.
    let bundles = read_lines(&out.join("deleted/Bundle.001.ndjson.gz"));
    let mut urls: Vec<String> = bundles
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["resourceType"], "Bundle");
            assert_eq!(v["entry"][0]["request"]["method"], "DELETE");
            v["entry"][0]["request"]["url"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    urls.sort();
    let mut want = deleted.clone();
    want.sort();
    assert_eq!(urls, want);

    let kickoff = &ehr.stats().bulk.kickoff_urls[0];
    assert!(
        kickoff.contains("_since=2024-01-01T00%3A00%3A00%2B00%3A00"),
        "{kickoff}"
    );
    let meta = read_json(&out.join(".metadata"));
    assert_eq!(meta["since"], since);
    assert_eq!(meta["sinceMode"], "updated");
    assert_eq!(
        meta["sinceResources"],
        serde_json::json!(["Condition", "Encounter"])
    );
    let events = log_events(&out.join("log.ndjson"));
    let deleted_requests: Vec<_> = events_named(&events, "download_request")
        .into_iter()
        .filter(|e| e["eventDetail"]["itemType"] == "deleted")
        .collect();
    assert_eq!(deleted_requests.len(), 1);
    assert_eq!(deleted_requests[0]["eventDetail"]["resourceType"], "Bundle");
    assert_eq!(
        events_named(&events, "status_page_complete")[0]["eventDetail"]["deletedFileCount"],
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Poll `cond` every 20 ms until it holds, or fail after `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_bulk_status(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(".metadata")).is_ok_and(|t| t.contains("\"bulk-status\""))
}

#[test]
fn killed_twice_resumes_without_new_kickoff_or_repeated_files() {
    let config = BulkConfig {
        job_duration: Duration::from_secs(2),
        retry_after: RetryAfter::Seconds(1),
        resources_per_file: 40,
        chunk_delay: Duration::from_millis(300),
        ..BulkConfig::default()
    };
    let ehr = bulk_server(30, config);
    let url = ehr.base_url();
    let dir = temp_dir("bulk-kill");
    let out = dir.join("out");
    let args = [
        "bulk",
        p(&out),
        "--fhir-url",
        &url,
        "--type",
        "Patient,Condition,Observation,Encounter",
    ];

    // 1. Killed while the server is still working on the export.
    let mut child = spawn(&args);
    wait_until(Duration::from_secs(20), "the saved status URL", || {
        has_bulk_status(&out)
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(ehr.stats().bulk.kickoffs, 1);
    assert!(ehr.stats().bulk.downloads.is_empty());

    // 2. Killed in the middle of the downloads.
    let mut child = spawn(&args);
    wait_until(Duration::from_secs(30), "a few finished files", || {
        ndjson_files(&out).len() >= 4
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let finished_before: Vec<String> = ndjson_files(&out);
    let stats = ehr.stats();
    assert_eq!(stats.bulk.kickoffs, 1, "resumed without a new kickoff");
    let total_files = read_json_manifest_count(&ehr);
    assert!(
        finished_before.len() < total_files,
        "the kill came too late: {} of {total_files} files done",
        finished_before.len()
    );

    // 3. Runs to the end.
    let o = wait(spawn(&args), Duration::from_secs(120));
    assert_success(&o);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("Resuming bulk FHIR export…"), "{stdout}");
    assert!(stdout.contains("already downloaded file"), "{stdout}");
    let stats = ehr.stats();
    assert_eq!(stats.bulk.kickoffs, 1, "no second kickoff");
    assert_eq!(stats.bulk.deletes, 1);
    // Files finished before the kill were not fetched again; at most the ones in flight
    // when it came (one per connection) were fetched twice.
    let repeated: Vec<_> = stats
        .bulk
        .downloads
        .iter()
        .filter(|(_, n)| **n > 1)
        .collect();
    assert!(repeated.len() <= 5, "{repeated:?}");
    assert_eq!(stats.bulk.downloads.len(), total_files);
    let events = log_events(&out.join("log.ndjson"));
    let mut completed_urls: Vec<&str> = events_named(&events, "download_complete")
        .iter()
        .map(|e| e["eventDetail"]["fileUrl"].as_str().unwrap())
        .collect();
    let before = completed_urls.len();
    completed_urls.sort_unstable();
    completed_urls.dedup();
    assert_eq!(
        before,
        completed_urls.len(),
        "a finished file was downloaded twice"
    );
    assert_eq!(completed_urls.len(), total_files);
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["exportId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one exportId across restarts: {ids:?}");
    assert!(!out.join(".resume").exists());
    assert!(!has_bulk_status(&out));
    let leftovers: Vec<String> = file_names(&out)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Same folder as one uninterrupted export of the same server.
    let clean = dir.join("clean");
    let o = run(&[
        "bulk",
        p(&clean),
        "--fhir-url",
        &url,
        "--type",
        "Patient,Condition,Observation,Encounter",
    ]);
    assert_success(&o);
    assert_eq!(ndjson_files(&out), ndjson_files(&clean));
    for name in ndjson_files(&clean) {
        assert_eq!(
            read_lines(&out.join(&name)),
            read_lines(&clean.join(&name)),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// How many files the (one) finished job's manifest listed, from the server's counters.
fn read_json_manifest_count(ehr: &Server) -> usize {
    // Every file of the manifest is requested at least once by the end; before that, ask
    // the status URL directly.
    let status = ehr.base_url() + "/bulk-status/job-1";
    let body = http_get(&status);
    let manifest: Value = serde_json::from_str(&body).expect("manifest JSON");
    manifest["output"].as_array().map_or(0, Vec::len)
}

/// A plain blocking GET over loopback (no auth), for peeking at the fake EHR.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP answer");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Decode chunked encoding.
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        return out;
    }
    body.to_string()
}

#[test]
fn cancel_and_forgotten_exports_are_cleared() {
    let ehr = bulk_server(
        5,
        BulkConfig {
            job_duration: Duration::from_secs(600),
            ..BulkConfig::default()
        },
    );
    let url = ehr.base_url();
    let dir = temp_dir("bulk-cancel");
    let out = dir.join("out");
    let args = ["bulk", p(&out), "--fhir-url", &url, "--type", "Patient"];

    // Nothing to cancel yet.
    let o = run(&["bulk", p(&out), "--fhir-url", &url, "--cancel"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim_end(),
        format!(
            "You provided --cancel but no in-progress bulk export was found in {}.",
            p(&out)
        )
    );

    let mut child = spawn(&args);
    wait_until(Duration::from_secs(20), "the saved status URL", || {
        has_bulk_status(&out)
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let o = run(&["bulk", p(&out), "--fhir-url", &url, "--cancel"]);
    assert_success(&o);
    assert!(!text(&o.stdout).contains("Done"));
    assert_eq!(ehr.stats().bulk.deletes, 1, "--cancel sends DELETE");
    assert!(!has_bulk_status(&out), "--cancel clears the saved status");

    // The next run starts a new export; the server then forgets it.
    let mut child = spawn(&args);
    wait_until(Duration::from_secs(20), "the saved status URL", || {
        has_bulk_status(&out)
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(ehr.stats().bulk.kickoffs, 2);
    ehr.expire_bulk_jobs();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("The server no longer knows the bulk export at "),
        "{err}"
    );
    assert!(err.contains("/bulk-status/job-2 ([404] "), "{err}");
    assert!(
        err.contains("run the same command again to start a new export."),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!has_bulk_status(&out), "a forgotten export is cleared");
    assert_eq!(ehr.stats().bulk.kickoffs, 2, "no kickoff in the same run");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn injected_faults_on_status_and_files_change_nothing() {
    let config = BulkConfig {
        job_duration: Duration::from_secs(3),
        retry_after: RetryAfter::Seconds(1),
        resources_per_file: 25,
        fault_rate: 0.05,
        ..BulkConfig::default()
    };
    let ehr = bulk_server(25, config);
    let url = ehr.base_url();
    let dir = temp_dir("bulk-faults");
    let out = dir.join("out");
    let types = [
        "Patient",
        "Condition",
        "Observation",
        "Encounter",
        "Procedure",
    ];
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &url,
        "--type",
        &types.join(","),
    ]);
    assert_success(&o);
    let all: Vec<usize> = (0..25).collect();
    assert_same_values(
        &folder_values(&out),
        &expected_values(&all, &types, |_| true),
    );
    let stats = ehr.stats();
    assert!(stats.bulk.faults > 0, "no fault was injected: {stats:?}");
    assert_eq!(stats.bulk.kickoffs, 1);
    let events = log_events(&out.join("log.ndjson"));
    let errors =
        events_named(&events, "status_error").len() + events_named(&events, "download_error").len();
    assert!(errors > 0, "the faults are in the log");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_mode_auto_crawls_epic_and_bulk_exports_generic() {
    let dir = temp_dir("bulk-auto");
    for flavor in [Flavor::Epic, Flavor::Generic] {
        let ehr = server_with(Config {
            seed: SEED,
            patients: 10,
            flavor,
            ..Config::default()
        });
        let out = dir.join(format!("{flavor:?}"));
        let o = run(&[
            "export",
            p(&out),
            "--fhir-url",
            &ehr.base_url(),
            "--type",
            "Patient,Condition",
            "--nickname",
            "x",
            "--hydration-tasks",
            "none",
        ]);
        assert_success(&o);
        let stats = ehr.stats();
        let workdir = out.join("001.x");
        // Patients come from a bulk export either way (no ID list: the whole system).
        assert_eq!(stats.bulk.kickoffs, 1, "{flavor:?}");
        assert!(workdir.join("Patient.001.ndjson.gz").is_file());
        let all: Vec<usize> = (0..10).collect();
        assert_same_values(
            &folder_values(&workdir),
            &expected_values(&all, &["Patient", "Condition"], |_| true),
        );
        if flavor == Flavor::Epic {
            assert!(text(&o.stdout).contains("Epic server detected."));
            assert_conditions_searched_once(&stats, &(0..10).collect::<Vec<_>>());
            assert!(workdir.join("Condition.ndjson.gz").is_file(), "crawled");
        } else {
            assert_eq!(stats.searches, 0);
            assert!(
                workdir.join("Condition.001.ndjson.gz").is_file(),
                "bulk-exported"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crawl_of_a_group_gets_its_patients_by_bulk_export() {
    let ehr = bulk_server(12, BulkConfig::default());
    let url = ehr.base_url();
    let dir = temp_dir("bulk-crawl-group");
    let out = dir.join("out");
    let o = run(&[
        "crawl",
        p(&out),
        "--fhir-url",
        &url,
        "--group",
        "even",
        "--type",
        "Patient,Condition",
    ]);
    assert_success(&o);
    let even: Vec<usize> = (0..12).step_by(2).collect();
    assert_same_values(
        &folder_values(&out),
        &expected_values(&even, &["Patient", "Condition"], |_| true),
    );
    assert!(out.join("Patient.001.ndjson.gz").is_file());
    assert!(out.join("Condition.ndjson.gz").is_file());
    let stats = ehr.stats();
    assert_eq!(stats.bulk.kickoffs, 1);
    assert!(stats.bulk.kickoff_urls[0].starts_with("/fhir/Group/even/$export?_type=Patient"));
    assert_conditions_searched_once(&stats, &even);
    // The real export's events, then the crawl's fake log.
    let events = log_events(&out.join("log.ndjson"));
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["exportId"].as_str().unwrap())
        .collect();
    assert!(ids[0].contains("/bulk-status/"));
    assert_eq!(ids[ids.len() - 5..], ["fake-log"; 5]);
    let meta = read_json(&out.join(".metadata"));
    let done = meta["done"].as_object().unwrap();
    let keys: Vec<&String> = done.keys().collect();
    assert_eq!(keys, ["Patient", "Condition"]);
    let tt = events[1]["eventDetail"]["transactionTime"]
        .as_str()
        .unwrap();
    let done_at = support::python::parse_fhir_date(done["Patient"].as_str().unwrap());
    let tt_at = support::python::parse_fhir_date(tt);
    assert!(done_at.is_some(), "{done:?}");
    assert_eq!(
        done_at, tt_at,
        "Patient is done as of the export's transaction time"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_token_goes_only_where_it_belongs() {
    let dir = temp_dir("bulk-token");
    let cases = [
        // Signed URLs on another host: no token there.
        ("signed", false, Some("localhost"), false),
        // A storage redirect from the FHIR host: the token stays behind.
        ("redirect", true, Some("localhost"), true),
        // The manifest demands the token for files on another host: refused, never sent
        // (the Python tool sent it).
        ("required", true, Some("localhost"), false),
        // Files on the FHIR server itself, token required.
        ("own", true, None, false),
    ];
    for (name, requires, host, redirect) in cases {
        let ehr = server_with(Config {
            seed: SEED,
            patients: 4,
            auth: AuthMode::Bearer {
                token: "secret-token".into(),
            },
            bulk: BulkConfig {
                requires_access_token: requires,
                file_host: host.map(str::to_string),
                redirect_files: redirect,
                ..BulkConfig::default()
            },
            ..Config::default()
        });
        let out = dir.join(name);
        let o = run(&[
            "bulk",
            p(&out),
            "--fhir-url",
            &ehr.base_url(),
            "--bearer-token",
            "secret-token",
            "--type",
            "Patient,Condition",
        ]);
        let stats = ehr.stats();
        assert_eq!(
            stats.bulk.foreign_authorizations, 0,
            "{name}: token leaked to another host"
        );
        if name == "required" {
            assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
            assert!(stats.bulk.downloads.is_empty(), "{stats:?}");
            let stderr = text(&o.stderr);
            assert!(
                stderr.contains(
                    "2 files refused: on another origin than the FHIR server, and the manifest wants the access token sent there\n"
                ),
                "{stderr}"
            );
            assert!(ndjson_files(&out).is_empty());
            continue;
        }
        assert_success(&o);
        let all: Vec<usize> = (0..4).collect();
        assert_same_values(
            &folder_values(&out),
            &expected_values(&all, &["Patient", "Condition"], |_| true),
        );
        assert_eq!(stats.bulk.unauthorized_downloads, 0, "{name}");
        if redirect {
            // Each file: once at the FHIR host (redirected), once at the storage host.
            assert!(stats.bulk.downloads.values().all(|n| *n == 2), "{stats:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn progress_retry_after_forms_and_timeout() {
    let dir = temp_dir("bulk-progress");
    for (name, retry_after) in [
        ("date", RetryAfter::HttpDate(1)),
        ("epoch", RetryAfter::Epoch(1)),
    ] {
        let ehr = bulk_server(
            3,
            BulkConfig {
                job_duration: Duration::from_millis(2500),
                retry_after,
                ..BulkConfig::default()
            },
        );
        let out = dir.join(name);
        let started = Instant::now();
        let o = run(&[
            "bulk",
            p(&out),
            "--fhir-url",
            &ehr.base_url(),
            "--type",
            "Patient",
        ]);
        assert_success(&o);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name}: waited too long"
        );
        let stdout = text(&o.stdout);
        assert!(
            stdout.contains("% complete ("),
            "{name}: progress shown\n{stdout}"
        );
        assert!(
            stdout.contains("  Waited for a total of "),
            "{name}\n{stdout}"
        );
        assert!(ehr.stats().bulk.status_polls >= 2);
    }

    // A job that outlasts --bulk-timeout.
    let ehr = bulk_server(
        3,
        BulkConfig {
            job_duration: Duration::from_secs(600),
            ..BulkConfig::default()
        },
    );
    let out = dir.join("timeout");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &ehr.base_url(),
        "--type",
        "Patient",
        "--bulk-timeout",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim_end(),
        "Timed out waiting for the bulk FHIR export to finish."
    );
    let events = log_events(&out.join("log.ndjson"));
    let last = events.last().unwrap();
    assert_eq!(last["eventId"], "status_error");
    assert_eq!(
        last["eventDetail"]["message"],
        "Timed out waiting for the bulk FHIR export to finish."
    );
    assert!(
        has_bulk_status(&out),
        "a timed-out export can be resumed later"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_messages_and_errors() {
    let dir = temp_dir("bulk-messages");
    let warn = bulk_server(
        3,
        BulkConfig {
            error_messages: vec![
                ("warning".into(), "warning1".into()),
                ("information".into(), "note0".into()),
            ],
            ..BulkConfig::default()
        },
    );
    let out = dir.join("warn");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &warn.base_url(),
        "--type",
        "Patient",
    ]);
    assert_success(&o);
    assert!(
        text(&o.stdout).contains("Messages from server:\n - note0\n - warning1\n"),
        "{}",
        text(&o.stdout)
    );
    assert!(out.join("error/OperationOutcome.001.ndjson.gz").is_file());

    let fail = bulk_server(
        3,
        BulkConfig {
            error_messages: vec![("error".into(), "error1".into())],
            ..BulkConfig::default()
        },
    );
    let out = dir.join("fail");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &fail.base_url(),
        "--type",
        "Patient",
        "--no-compression",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim_end(),
        "Errors occurred during export:\n - error1"
    );
    assert!(out.join("error/OperationOutcome.001.ndjson").is_file());
    assert!(out.join("Patient.001.ndjson").is_file());
    // Not done: a rerun starts afresh.
    assert!(read_json(&out.join(".metadata")).get("done").is_none());
    assert_eq!(fail.stats().bulk.deletes, 1, "the job is still cleaned up");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Peak resident memory (kB) of a process, from `/proc/<pid>/status`.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// Peak memory does not grow with the size of the files (measured: 1.0 GB in 3.5 s with a
/// peak RSS of 26 MiB in a debug build; a 20-patient export peaks at 15 MiB).
#[test]
fn a_gigabyte_export_downloads_in_flat_memory() {
    // ~2,900 resources of ~400 KiB each: about 1.1 GB of NDJSON, made while it streams.
    let ehr = bulk_server(
        60,
        BulkConfig {
            pad_bytes: 400 * 1024,
            resources_per_file: 400,
            ..BulkConfig::default()
        },
    );
    let dir = temp_dir("bulk-1gb");
    let out = dir.join("out");
    let started = Instant::now();
    let mut child = spawn(&["bulk", p(&out), "--fhir-url", &ehr.base_url()]);
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = peak_rss_kb(pid) {
            peak = peak.max(kb);
        }
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let output = child.wait_with_output().expect("output");
    assert!(status.success(), "{}", text(&output.stderr));
    let events = log_events(&out.join("log.ndjson"));
    let bytes = events.last().unwrap()["eventDetail"]["bytes"]
        .as_u64()
        .unwrap();
    eprintln!(
        "downloaded {:.2} GiB in {:.1}s, peak RSS {:.1} MiB",
        bytes as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64(),
        peak as f64 / 1024.0
    );
    assert!(bytes > 1_000_000_000, "only {bytes} bytes");
    assert!(peak > 0, "could not read the peak RSS");
    assert!(peak < 64 * 1024, "peak RSS {peak} kB");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bundle_flag_leaves_one_bundle_file() {
    let ehr = bulk_server(4, BulkConfig::default());
    let dir = temp_dir("bulk-bundle");
    for (name, extra, bundle) in [
        ("gz", None, "Bundle.json.gz"),
        ("plain", Some("--no-compression"), "Bundle.json"),
    ] {
        let out = dir.join(name);
        let url = ehr.base_url();
        let mut args = vec![
            "bulk",
            p(&out),
            "--fhir-url",
            &url,
            "--type",
            "Patient,Condition",
            "--bundle",
        ];
        args.extend(extra);
        assert_success(&run(&args));
        assert_eq!(file_names(&out), [".metadata", bundle, "log.ndjson"]);
        // The Bundle's fixed layout, then one entry per resource in the NDJSON spelling
        // (built here without smart-fetch's serializer), then the closing lines.
        let lines = read_lines(&out.join(bundle));
        assert!(lines.len() >= 10, "{lines:?}");
        let head = [
            "{",
            "  \"resourceType\": \"Bundle\",",
            "  \"meta\": {",
            "    \"profile\": [\"http://hl7.org/fhir/R4/StructureDefinition/Bundle\"]",
            "  },",
            "  \"type\": \"collection\",",
        ];
        assert_eq!(&lines[..6], head);
        let stamp = lines[6]
            .strip_prefix("  \"timestamp\": \"")
            .and_then(|rest| rest.strip_suffix("\","))
            .unwrap_or_else(|| panic!("timestamp line: {}", lines[6]));
        assert!(support::python::parse_fhir_date(stamp).is_some(), "{stamp}");
        assert_eq!(lines[7], "  \"entry\": [");
        assert_eq!(&lines[lines.len() - 2..], ["  ]", "}"]);
        let entries = &lines[8..lines.len() - 2];
        let mut written: Vec<String> = entries
            .iter()
            .map(|l| l.strip_suffix(',').unwrap_or(l).to_string())
            .collect();
        assert!(!entries[entries.len() - 1].ends_with(','));
        assert!(
            entries[..entries.len() - 1]
                .iter()
                .all(|l| l.ends_with(','))
        );
        let mut expected: Vec<String> =
            expected_values(&[0, 1, 2, 3], &["Patient", "Condition"], |_| true)
                .values()
                .flat_map(|ids| ids.values())
                .map(|r| format!("    {{\"resource\": {}}}", support::python::ndjson_line(r)))
                .collect();
        assert_eq!(
            expected.len(),
            4 + expected_values(&[0, 1, 2, 3], &["Condition"], |_| true)["Condition"].len()
        );
        written.sort();
        expected.sort();
        assert_eq!(written, expected);
        assert_eq!(read_json(&out.join(".metadata"))["complete"], true);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kickoff_errors_are_logged_and_delete_errors_only_warn() {
    let ehr = bulk_server(
        3,
        BulkConfig {
            refuse_deletes: true,
            transaction_time: Some("blarg".into()),
            ..BulkConfig::default()
        },
    );
    let url = ehr.base_url();
    let dir = temp_dir("bulk-kickoff-error");

    let out = dir.join("nope");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &url,
        "--group",
        "nope",
        "--type",
        "Patient",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!("An error occurred when connecting to \"{url}/Group/nope/$export?_type=Patient\": [404] ")),
        "{err}"
    );
    let events = log_events(&out.join("log.ndjson"));
    assert_eq!(events.len(), 1);
    let kickoff = &events[0];
    assert_eq!(kickoff["eventId"], "kickoff");
    assert!(
        uuid_like(kickoff["exportId"].as_str().unwrap()),
        "{kickoff}"
    );
    let detail = &kickoff["eventDetail"];
    assert_eq!(detail["errorCode"], 404);
    assert_eq!(detail["errorBody"]["resourceType"], "OperationOutcome");
    assert_eq!(
        detail["responseHeaders"]["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    assert!(
        read_json(&out.join(".metadata"))
            .get("bulk-status")
            .is_none()
    );

    // A DELETE the server refuses is only a warning; an unparsable transactionTime is
    // reported and replaced by the current time.
    let out = dir.join("ok");
    let before = chrono::Utc::now().fixed_offset();
    let o = run(&["bulk", p(&out), "--fhir-url", &url, "--type", "Patient"]);
    assert_success(&o);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("Could not parse transactionTime: blarg\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Failed to clean up export job on the server side: An error occurred when connecting to"
        ),
        "{stdout}"
    );
    let meta = read_json(&out.join(".metadata"));
    let done = support::python::parse_fhir_date(meta["done"]["Patient"].as_str().unwrap()).unwrap();
    assert!(done >= before - chrono_seconds(1));
    assert!(done <= chrono::Utc::now().fixed_offset() + chrono_seconds(1));
    assert!(meta.get("bulk-status").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

fn uuid_like(text: &str) -> bool {
    let parts: Vec<usize> = text.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn chrono_seconds(n: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(n)
}

#[test]
fn an_interrupted_managed_export_resumes_in_the_same_subfolder() {
    let ehr = bulk_server(
        10,
        BulkConfig {
            resources_per_file: 10,
            chunk_delay: Duration::from_millis(300),
            ..BulkConfig::default()
        },
    );
    let url = ehr.base_url();
    let dir = temp_dir("bulk-export-resume");
    let out = dir.join("out");
    let args = [
        "export",
        p(&out),
        "--fhir-url",
        &url,
        "--type",
        "Patient,Condition,Encounter",
        "--hydration-tasks",
        "none",
    ];
    let mut child = spawn(&args);
    let workdir = || workdir_of(&out);
    wait_until(Duration::from_secs(30), "a few finished files", || {
        workdir().is_some_and(|w| ndjson_files(&w).len() >= 2)
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let o = run(&args);
    assert_success(&o);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("Re-using existing subfolder"), "{stdout}");
    assert!(stdout.contains("Resuming bulk FHIR export…"), "{stdout}");
    assert!(stdout.contains("already downloaded file"), "{stdout}");
    let stats = ehr.stats();
    assert_eq!(stats.bulk.kickoffs, 1);
    let w = workdir().expect("workdir");
    let all: Vec<usize> = (0..10).collect();
    assert_same_values(
        &folder_values(&w),
        &expected_values(&all, &["Patient", "Condition", "Encounter"], |_| true),
    );
    assert_eq!(symlinks(&out).len(), ndjson_files(&w).len());
    assert_eq!(read_json(&w.join(".metadata"))["complete"], true);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The one workdir of a managed folder, once it exists.
fn workdir_of(out: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(out)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
}
