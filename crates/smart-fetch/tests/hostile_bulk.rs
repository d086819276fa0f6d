//! A hostile or broken bulk export server (issue "Hostile or broken servers"): the real
//! binary against hand-controlled HTTP servers on 127.0.0.1 (the FHIR server) and
//! 127.0.0.2 (another origin, which records every request and its headers), and against
//! fake-ehr for planted links and server messages. Checked as a user sees it: exit status,
//! stderr/stdout lines, files, and what reached each server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{BulkConfig, Config};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::hostile::{Answer, Hostile, Seen, capability_statement, json_answer, status_answer};
use support::*;

const TOKEN: &str = "secret-token";
const TYPES: [&str; 3] = ["Patient", "Condition", "Observation"];

/// The FHIR server on 127.0.0.1: metadata, a kickoff naming `<base>fhir/status`, DELETE of
/// it; `route` answers the GETs it wants to (None: the defaults, else 404).
fn fhir_server(route: impl Fn(&Seen, &str) -> Option<Answer> + Send + Sync + 'static) -> Hostile {
    Hostile::start("127.0.0.1", move |seen, base| {
        if seen.method == "GET"
            && let Some(answer) = route(seen, base)
        {
            return answer;
        }
        match (seen.method.as_str(), seen.path()) {
            ("GET", "/fhir/metadata") => json_answer(&capability_statement(&TYPES)),
            ("GET", "/fhir/$export") => status_answer(
                202,
                &[("Content-Location", &format!("{base}fhir/status"))],
                "",
            ),
            ("DELETE", "/fhir/status") => status_answer(202, &[], ""),
            _ => status_answer(404, &[], "{}"),
        }
    })
}

fn fhir_url(server: &Hostile) -> String {
    format!("{}fhir", server.url)
}

fn manifest(requires_token: bool, files: &[(&str, &str)]) -> Value {
    let output: Vec<Value> = files
        .iter()
        .map(|(t, url)| json!({"type": t, "url": url}))
        .collect();
    json!({
        "transactionTime": "2026-01-02T03:04:05Z",
        "request": "x",
        "requiresAccessToken": requires_token,
        "output": output,
        "error": [],
    })
}

fn ndjson_answer(lines: &[String]) -> Answer {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    status_answer(200, &[("Content-Type", "application/fhir+ndjson")], &body)
}

fn resources(t: &str, ids: &[&str]) -> Vec<String> {
    ids.iter()
        .map(|id| format!(r#"{{"resourceType":"{t}","id":"{id}"}}"#))
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// `bulk OUT` against `url` with the bearer token, the environment given, killed after
/// `limit`.
fn bulk(out: &Path, url: &str, extra: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut args = vec![
        "bulk",
        p(out),
        "--fhir-url",
        url,
        "--bearer-token",
        TOKEN,
        "--type",
        "Patient,Condition,Observation",
    ];
    args.extend_from_slice(extra);
    let child = Command::new(bin())
        .args(&args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smart-fetch");
    wait(child, limit)
}

fn requests_to(server: &Hostile, path: &str) -> Vec<Seen> {
    server
        .seen()
        .into_iter()
        .filter(|s| s.path() == path)
        .collect()
}

fn metadata(out: &Path) -> Value {
    read_json(&out.join(".metadata"))
}

/// Neither ESC nor the 8-bit CSI reached the terminal.
fn assert_no_raw_escapes(bytes: &[u8], what: &str) {
    assert!(!bytes.contains(&0x1b), "raw ESC in {what}: {}", text(bytes));
    assert!(
        !bytes.windows(2).any(|w| w == [0xc2, 0x9b]),
        "raw CSI in {what}: {}",
        text(bytes)
    );
}

fn assert_not_a_panic(o: &Output) {
    assert_ne!(o.status.code(), Some(101), "panicked: {}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
}

#[test]
fn a_status_url_on_another_origin_is_never_followed() {
    let other = Arc::new(Hostile::start("127.0.0.2", |_, _| {
        status_answer(202, &[("Retry-After", "1")], "")
    }));
    let foreign_status = format!("{}status", other.url);
    let ehr = {
        let foreign_status = foreign_status.clone();
        fhir_server(move |seen, _| {
            (seen.path() == "/fhir/$export")
                .then(|| status_answer(202, &[("Content-Location", foreign_status.as_str())], ""))
        })
    };
    let dir = temp_dir("hostile-content-location");
    let out = dir.join("out");
    let o = bulk(&out, &fhir_url(&ehr), &[], &[], Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "Refusing to follow the bulk export at '{foreign_status}': it is on \
             http://127.0.0.2:{}, not the FHIR server (http://127.0.0.1:{}), and our \
             credentials go only to the FHIR server. Nothing was saved.",
            other.addr.port(),
            ehr.addr.port()
        )
    );
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    assert!(metadata(&out).get("bulk-status").is_none(), "not saved");
    let events = log_events(&out.join("log.ndjson"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["eventId"], "kickoff");
    assert!(
        events[0]["eventDetail"]["errorBody"]
            .as_str()
            .is_some_and(|b| b.starts_with("Refusing to follow"))
    );

    // A status URL saved by an earlier run (another tool, an older version) is checked
    // again before it is polled: first save one of our own, then make it foreign.
    let dir2 = temp_dir("hostile-saved-status");
    let out = dir2.join("out");
    let ours = fhir_server(|seen, _| {
        (seen.path() == "/fhir/status").then(|| status_answer(202, &[("Retry-After", "1")], ""))
    });
    let o = bulk(
        &out,
        &fhir_url(&ours),
        &["--bulk-timeout", "1s"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let mut meta = metadata(&out);
    assert_eq!(meta["bulk-status"], format!("{}fhir/status", ours.url));
    meta["bulk-status"] = Value::String(foreign_status.clone());
    std::fs::write(out.join(".metadata"), meta.to_string()).expect("edit .metadata");
    let o = bulk(&out, &fhir_url(&ours), &[], &[], Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "Not resuming the bulk export saved in {}: its status URL '{foreign_status}' is on \
             http://127.0.0.2:{}, not on the FHIR server (http://127.0.0.1:{}), and our \
             credentials go only to the FHIR server. Run the same command with --cancel to \
             forget it.",
            out.display(),
            other.addr.port(),
            ours.addr.port()
        )
    );
    // --cancel forgets it without sending the DELETE (with our token) there.
    let o = bulk(
        &out,
        &fhir_url(&ours),
        &["--cancel"],
        &[],
        Duration::from_secs(60),
    );
    assert_success(&o);
    assert!(
        text(&o.stdout).contains(&format!(
            "Not asking http://127.0.0.2:{} to delete the export at '{foreign_status}'",
            other.addr.port()
        )),
        "{}",
        text(&o.stdout)
    );
    assert!(metadata(&out).get("bulk-status").is_none());
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    assert!(
        requests_to(&ours, "/fhir/status")
            .iter()
            .all(|s| s.method == "GET")
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn foreign_files_wanting_the_token_and_file_urls_are_refused_at_once() {
    let other = Arc::new(Hostile::start("127.0.0.2", |_, _| {
        ndjson_answer(&resources("Condition", &["c1"]))
    }));
    let foreign_file = format!("{}files/c1", other.url);
    let ehr = {
        let foreign_file = foreign_file.clone();
        fhir_server(move |seen, base| match seen.path() {
            "/fhir/status" => Some(json_answer(&manifest(
                true,
                &[
                    ("Patient", &format!("{base}files/p1")),
                    ("Condition", &foreign_file),
                    ("Observation", "file:///etc/passwd"),
                ],
            ))),
            "/files/p1" => Some(ndjson_answer(&resources("Patient", &["p1", "p2"]))),
            _ => None,
        })
    };
    let dir = temp_dir("hostile-refused-files");
    let out = dir.join("out");
    let started = Instant::now();
    let o = bulk(&out, &fhir_url(&ehr), &[], &[], Duration::from_secs(120));
    let took = started.elapsed();
    eprintln!("refused file:// and foreign files: the run ended after {took:?}");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    // Refusals are not retried: the engine's retries of one file alone take two minutes.
    assert!(took < Duration::from_secs(15), "{took:?}");
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{stderr}");
    let foreign_line = format!(
        "Not downloading '{foreign_file}': it is on http://127.0.0.2:{}, not on the FHIR \
         server, and the manifest says it needs the access token, which is only ever sent to \
         the FHIR server.",
        other.addr.port()
    );
    let file_line = "Not downloading 'file:///etc/passwd': only http and https URLs are \
                     downloaded, not 'file:'.";
    // The per-file lines come in the order the downloads end.
    let mut per_file = lines[..2].to_vec();
    per_file.sort_unstable();
    let mut want = vec![foreign_line.as_str(), file_line];
    want.sort_unstable();
    assert_eq!(per_file, want, "{stderr}");
    assert_eq!(
        lines[2..],
        [
            "1 file refused: not an http(s) URL",
            "1 file refused: on another origin than the FHIR server, and the manifest wants \
             the access token sent there",
            "2 files of 3 in the bulk export manifest not downloaded; the export is not \
             finished. Run the same command again to retry only the missing files.",
        ],
        "{stderr}"
    );
    assert!(other.seen().is_empty(), "nothing at all went to 127.0.0.2");
    assert_eq!(
        read_lines(&out.join("Patient.001.ndjson.gz")),
        resources("Patient", &["p1", "p2"])
    );
    assert!(!out.join("Condition.001.ndjson.gz").exists());
    assert!(!out.join("Observation.001.ndjson.gz").exists());
    let meta = metadata(&out);
    assert!(meta.get("bulk-status").is_some(), "kept for a rerun");
    assert!(meta.get("done").is_none(), "no type is done");
    assert!(
        ehr.seen().iter().all(|s| s.method != "DELETE"),
        "the job stays"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_file_leaves_the_export_unfinished_and_a_rerun_fetches_only_it() {
    let other = Arc::new(Hostile::start("127.0.0.2", |_, _| {
        ndjson_answer(&resources("Condition", &["c1"]))
    }));
    let foreign_file = format!("{}files/c1", other.url);
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    let ehr = {
        let (foreign_file, flaky_calls) = (foreign_file.clone(), flaky_calls.clone());
        fhir_server(move |seen, base| match seen.path() {
            // Signed URLs elsewhere need no token: the manifest says so.
            "/fhir/status" => Some(json_answer(&manifest(
                false,
                &[
                    ("Patient", &format!("{base}files/p1")),
                    ("Condition", &foreign_file),
                    ("Observation", &format!("{base}files/flaky")),
                ],
            ))),
            "/files/p1" => Some(ndjson_answer(&resources("Patient", &["p1"]))),
            // Not found at first (not retried by the engine), there on the next run.
            "/files/flaky" if flaky_calls.fetch_add(1, Ordering::SeqCst) == 0 => Some(
                status_answer(404, &[], r#"{"resourceType":"OperationOutcome"}"#),
            ),
            "/files/flaky" => Some(ndjson_answer(&resources("Observation", &["o1", "o2"]))),
            _ => None,
        })
    };
    let dir = temp_dir("hostile-rerun");
    let out = dir.join("out");
    let o = bulk(&out, &fhir_url(&ehr), &[], &[], Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "Error downloading '{}files/flaky': An error occurred when connecting to",
            ehr.url
        )) && lines[0].contains("[404]"),
        "{stderr}"
    );
    assert_eq!(lines[1], "1 file failed after retries (server or network)");
    assert!(lines[2].starts_with("1 file of 3 in the bulk export manifest not downloaded"));
    // Credentials went to the FHIR server's own file, not to the other origin.
    let own = requests_to(&ehr, "/files/p1");
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].header("authorization"), Some("Bearer secret-token"));
    assert_eq!(other.seen().len(), 1);
    assert!(other.with_authorization().is_empty());
    assert_eq!(
        read_lines(&out.join("Condition.001.ndjson.gz")),
        resources("Condition", &["c1"])
    );
    let meta = metadata(&out);
    assert!(meta.get("bulk-status").is_some());
    assert!(meta.get("done").is_none());
    assert!(ehr.seen().iter().all(|s| s.method != "DELETE"));
    let events = log_events(&out.join("log.ndjson"));
    assert!(events.iter().all(|e| e["eventId"] != "export_complete"));

    let o = bulk(&out, &fhir_url(&ehr), &[], &[], Duration::from_secs(120));
    assert_success(&o);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("Resuming bulk FHIR export…"), "{stdout}");
    assert!(
        stdout.contains("  Skipping 2 already downloaded files."),
        "{stdout}"
    );
    assert!(
        stdout.contains("  Downloaded Observation.001.ndjson.gz"),
        "{stdout}"
    );
    assert_eq!(requests_to(&ehr, "/files/p1").len(), 1, "not fetched again");
    assert_eq!(other.seen().len(), 1, "not fetched again");
    assert_eq!(requests_to(&ehr, "/files/flaky").len(), 2);
    assert_eq!(
        requests_to(&ehr, "/fhir/$export").len(),
        1,
        "no new kickoff"
    );
    assert_eq!(
        read_lines(&out.join("Observation.001.ndjson.gz")),
        resources("Observation", &["o1", "o2"])
    );
    let meta = metadata(&out);
    assert!(meta.get("bulk-status").is_none());
    let done: Vec<&String> = meta["done"].as_object().expect("done").keys().collect();
    assert_eq!(done, ["Patient", "Condition", "Observation"]);
    let deletes = ehr.seen().iter().filter(|s| s.method == "DELETE").count();
    assert_eq!(deletes, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_manifest_from_another_origin_gives_no_file_credentials() {
    for requires_token in [false, true] {
        let ehr_files = Arc::new(std::sync::Mutex::new(String::new()));
        let other = {
            let ehr_files = ehr_files.clone();
            Hostile::start("127.0.0.2", move |seen, base| match seen.path() {
                "/manifest" => {
                    let ours = ehr_files.lock().map(|s| s.clone()).unwrap_or_default();
                    json_answer(&manifest(
                        requires_token,
                        &[
                            ("Patient", &format!("{ours}files/p1")),
                            ("Condition", &format!("{base}files/c1")),
                        ],
                    ))
                }
                _ => ndjson_answer(&resources("Condition", &["c1"])),
            })
        };
        let manifest_url = format!("{}manifest", other.url);
        let ehr = {
            let manifest_url = manifest_url.clone();
            fhir_server(move |seen, _| match seen.path() {
                "/fhir/status" => Some(status_answer(302, &[("Location", &manifest_url)], "")),
                "/files/p1" => Some(ndjson_answer(&resources("Patient", &["p1"]))),
                _ => None,
            })
        };
        if let Ok(mut files) = ehr_files.lock() {
            *files = ehr.url.clone();
        }
        let dir = temp_dir("hostile-untrusted-manifest");
        let out = dir.join("out");
        let o = bulk(&out, &fhir_url(&ehr), &[], &[], Duration::from_secs(120));
        let stderr = text(&o.stderr);
        assert!(
            stderr.starts_with(&format!(
                "The bulk export manifest came from '{manifest_url}', not from the FHIR server; none of its files get our credentials.\n"
            )),
            "{stderr}"
        );
        // The status poll was redirected there; the HTTP client dropped the token.
        assert_eq!(requests_to(&other, "/manifest").len(), 1);
        assert!(other.with_authorization().is_empty(), "{:?}", other.seen());
        let own_file = requests_to(&ehr, "/files/p1");
        assert!(own_file.iter().all(|s| s.header("authorization").is_none()));
        if requires_token {
            assert_eq!(o.status.code(), Some(3), "{stderr}");
            assert!(own_file.is_empty() && requests_to(&other, "/files/c1").is_empty());
            assert!(stderr.contains(
                "2 files refused: the manifest came from another origin than the FHIR server and wants the access token\n"
            ), "{stderr}");
        } else {
            assert_success(&o);
            assert_eq!(own_file.len(), 1);
            assert_eq!(
                read_lines(&out.join("Patient.001.ndjson.gz")),
                resources("Patient", &["p1"])
            );
            assert_eq!(
                read_lines(&out.join("Condition.001.ndjson.gz")),
                resources("Condition", &["c1"])
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn absurd_retry_after_values_neither_panic_nor_stall() {
    for value in ["99999999999999999999", "1e300"] {
        let ehr = fhir_server(move |seen, _| {
            (seen.path() == "/fhir/status")
                .then(|| status_answer(202, &[("Retry-After", value)], ""))
        });
        let dir = temp_dir("hostile-retry-after");
        let out = dir.join("out");
        // Taken as the longest pause (5 minutes), which passes a 2-second limit at once.
        for run in ["first", "rerun"] {
            let started = Instant::now();
            let o = bulk(
                &out,
                &fhir_url(&ehr),
                &["--bulk-timeout", "2s"],
                &[],
                Duration::from_secs(60),
            );
            assert_not_a_panic(&o);
            assert_eq!(o.status.code(), Some(1), "{value} {run}");
            assert_eq!(
                text(&o.stderr).trim_end(),
                "Timed out waiting for the bulk FHIR export to finish.",
                "{value} {run}"
            );
            assert!(started.elapsed() < Duration::from_secs(20));
            assert!(metadata(&out).get("bulk-status").is_some(), "{value} {run}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Below zero: the shortest pause, and the export goes on; X-Progress with an 8-bit
    // escape sequence (CSI, "clear screen") is shown escaped.
    let polls = Arc::new(AtomicUsize::new(0));
    let ehr = {
        let polls = polls.clone();
        fhir_server(move |seen, base| match seen.path() {
            "/fhir/status" if polls.fetch_add(1, Ordering::SeqCst) < 3 => Some(status_answer(
                202,
                &[
                    ("Retry-After", "-1e300"),
                    ("X-Progress", "50%\u{9b}2J done"),
                ],
                "",
            )),
            "/fhir/status" => Some(json_answer(&manifest(
                true,
                &[("Patient", &format!("{base}files/p1"))],
            ))),
            "/files/p1" => Some(ndjson_answer(&resources("Patient", &["p1"]))),
            _ => None,
        })
    };
    let dir = temp_dir("hostile-retry-after-negative");
    let out = dir.join("out");
    let started = Instant::now();
    let o = bulk(&out, &fhir_url(&ehr), &[], &[], Duration::from_secs(60));
    assert_success(&o);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(polls.load(Ordering::SeqCst), 4);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("50%\\u{9b}2J done ("), "{stdout}");
    assert_no_raw_escapes(&o.stdout, "stdout");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stalled_downloads_fail_within_the_stall_limit_and_slow_ones_finish() {
    let trickle: Vec<Vec<u8>> = resources("Observation", &["o1", "o2", "o3", "o4", "o5", "o6"])
        .into_iter()
        .map(|l| format!("{l}\n").into_bytes())
        .collect();
    let ehr = fhir_server(move |seen, base| match seen.path() {
        "/fhir/status" => Some(json_answer(&manifest(
            true,
            &[
                ("Patient", &format!("{base}files/silent")),
                ("Condition", &format!("{base}files/stall")),
                ("Observation", &format!("{base}files/trickle")),
            ],
        ))),
        "/files/silent" => Some(Answer::Silent(Duration::from_secs(30))),
        "/files/stall" => Some(Answer::Stall(vec![], Duration::from_secs(30))),
        // 6 pieces 0.3 s apart: longer in all than the stall limit, never silent that long.
        "/files/trickle" => Some(Answer::Trickle(
            vec![],
            trickle.clone(),
            Duration::from_millis(300),
        )),
        _ => None,
    });
    let dir = temp_dir("hostile-stalls");
    let out = dir.join("out");
    let started = Instant::now();
    let o = bulk(
        &out,
        &fhir_url(&ehr),
        &["--request-timeout", "1"],
        &[],
        Duration::from_secs(120),
    );
    let took = started.elapsed();
    eprintln!("never-answering and stalled downloads (--request-timeout 1): failed after {took:?}");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    // 5 tries of 1 s, 4 pauses of 1 s: 9 s, plus start-up and scheduling.
    assert!(took >= Duration::from_secs(9), "{took:?}");
    assert!(took < Duration::from_secs(40), "{took:?}");
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    let mut per_file = lines[..2].to_vec();
    per_file.sort_unstable();
    for (line, file) in per_file.iter().zip(["files/silent", "files/stall"]) {
        assert!(
            line.starts_with(&format!("Error downloading '{}{file}': ", ehr.url))
                && line.contains("Timed out waiting for the server"),
            "{line}"
        );
    }
    assert_eq!(lines[2], "2 files failed after retries (server or network)");
    assert!(lines[3].starts_with("2 files of 3 in the bulk export manifest not downloaded"));
    // The engine gives up on a silent answer after 3 tries; a stall seen first by the
    // download's own clock allows 5 (and each may hold one engine retry).
    for file in ["/files/silent", "/files/stall"] {
        let tries = requests_to(&ehr, file).len();
        assert!((2..=15).contains(&tries), "{file}: {tries} tries");
    }
    assert_eq!(requests_to(&ehr, "/files/trickle").len(), 1);
    assert_eq!(
        read_lines(&out.join("Observation.001.ndjson.gz")),
        resources("Observation", &["o1", "o2", "o3", "o4", "o5", "o6"])
    );
    assert!(
        !out.join("Patient.001.ndjson.gz.tmp").exists(),
        "temp files removed"
    );
    let events = log_events(&out.join("log.ndjson"));
    let errors = events
        .iter()
        .filter(|e| e["eventId"] == "download_error")
        .count();
    let tries = requests_to(&ehr, "/files/silent").len() + requests_to(&ehr, "/files/stall").len();
    assert_eq!(errors, tries, "one download_error per failed try");

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_messages_reach_the_terminal_escaped() {
    let ehr = server_with(Config {
        patients: 2,
        bulk: BulkConfig {
            error_messages: vec![
                ("warning".into(), "look\u{1b}[2Jhere".into()),
                ("error".into(), "bad\u{1b}]0;pwned\u{7}".into()),
            ],
            ..BulkConfig::default()
        },
        ..Config::default()
    });
    let dir = temp_dir("hostile-messages");
    let out = dir.join("out");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &ehr.base_url(),
        "--type",
        "Patient",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("Messages from server:\n - look\\u{1b}[2Jhere\n"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(
        text(&o.stderr).trim_end(),
        "Errors occurred during export:\n - bad\\u{1b}]0;pwned\\u{7}"
    );
    assert_no_raw_escapes(&o.stdout, "stdout");
    assert_no_raw_escapes(&o.stderr, "stderr");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn planted_links_never_redirect_our_writes() {
    use std::os::unix::fs::symlink;
    let ehr = server_with(Config {
        patients: 3,
        ..Config::default()
    });
    let dir = temp_dir("hostile-links");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out");
    let victims = ["victim-download", "victim-metadata", "victim-log"].map(|n| dir.join(n));
    for v in &victims {
        std::fs::write(v, "precious\n").expect("victim");
    }
    symlink(&victims[0], out.join("Patient.001.ndjson.gz.tmp")).expect("link");
    symlink(&victims[1], out.join(".metadata.tmp")).expect("link");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &ehr.base_url(),
        "--type",
        "Patient",
    ]);
    assert_success(&o);
    for v in &victims[..2] {
        assert_eq!(
            std::fs::read_to_string(v).ok().as_deref(),
            Some("precious\n")
        );
    }
    let patients = out.join("Patient.001.ndjson.gz");
    assert!(std::fs::symlink_metadata(&patients).is_ok_and(|m| m.is_file()));
    assert_eq!(read_lines(&patients).len(), 3);
    assert!(std::fs::symlink_metadata(out.join(".metadata")).is_ok_and(|m| m.is_file()));
    assert!(!out.join("Patient.001.ndjson.gz.tmp").exists());
    assert!(!out.join(".metadata.tmp").exists());

    // log.ndjson holds history: a link there is an error, and no export is started.
    let out = dir.join("out-log");
    std::fs::create_dir_all(&out).expect("out");
    symlink(&victims[2], out.join("log.ndjson")).expect("link");
    let o = run(&[
        "bulk",
        p(&out),
        "--fhir-url",
        &ehr.base_url(),
        "--type",
        "Patient",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim_end(),
        format!(
            "Could not write {}: it is a symbolic link; refusing to write through it (remove it and run again)",
            out.join("log.ndjson").display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&victims[2]).ok().as_deref(),
        Some("precious\n")
    );
    assert_eq!(
        ehr.stats().bulk.kickoffs,
        1,
        "only the first export was started"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
