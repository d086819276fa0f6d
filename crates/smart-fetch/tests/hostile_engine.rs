//! The request engine against hostile and broken servers (the trust boundary): credentials
//! never leave the FHIR server's origin, every answer is bounded in size and time, absurd
//! numbers are no panic, server text cannot drive the terminal. Each case runs the real
//! binary against `support::hostile` servers on 127.0.0.1 ("the EHR") and 127.0.0.2
//! ("another origin"), whose listeners record every request's headers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::hostile::*;
use support::*;

const TOKEN: &str = "s3cret-bearer-token-value";

fn token_file(dir: &std::path::Path) -> String {
    let path = dir.join("token.txt");
    std::fs::write(&path, TOKEN).expect("write token");
    path.to_string_lossy().into_owned()
}

fn condition(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Condition", "id": id, "subject": {"reference": format!("Patient/{patient}")}})
}

fn patient(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id})
}

/// An EHR for patient `p1` with one Condition whose search page is `condition_page(base)`.
fn ehr_server(condition_page: impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static) -> Hostile {
    Hostile::start("127.0.0.1", move |seen, base| match seen.path() {
        "/metadata" => json_answer(&capability_statement(&["Patient", "Condition"])),
        "/Patient" => json_answer(&bundle(&[patient("p1")], None)),
        "/Condition" => condition_page(seen, base),
        _ => status_answer(404, &[], "not found"),
    })
}

fn crawl(ehr: &Hostile, dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    crawl_with_env(ehr, dir, extra, &[])
}

fn crawl_with_env(
    ehr: &Hostile,
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let token = token_file(dir);
    let out = dir.join("out");
    let mut args = vec![
        "crawl",
        "--fhir-url",
        &ehr.url,
        "--bearer-token",
        &token,
        "--id-list",
        "p1",
        "--type",
        "Patient,Condition",
    ];
    args.extend_from_slice(extra);
    let out = out.to_string_lossy().into_owned();
    args.push(&out);
    run_with_env(&args, env)
}

/// Everything the crawl wrote, decompressed, as one text (resources and error lines).
fn written(dir: &std::path::Path) -> String {
    all_text_under(&dir.join("out"))
}

#[test]
fn next_links_and_attachments_on_another_origin_get_no_credentials() {
    let dir = temp_dir("foreign-next");
    let other = Hostile::start("127.0.0.2", |_, _| {
        json_answer(&bundle(&[condition("c-foreign", "p1")], None))
    });
    let foreign = format!("{}Condition?page=2", other.url);
    let ehr =
        ehr_server(move |_, _| json_answer(&bundle(&[condition("c1", "p1")], Some(&foreign))));
    let out = crawl(&ehr, &dir, &[]);
    assert_eq!(other.with_authorization().len(), 0, "{:?}", other.seen());
    assert!(
        other.seen().is_empty(),
        "a foreign next link is refused, not followed"
    );
    let written = written(&dir);
    assert!(!written.contains("c-foreign"), "{written}");
    assert!(
        written.contains("not on the FHIR server's origin"),
        "{written}"
    );
    // The EHR itself did get the token: the rule is about where, not whether.
    assert!(!ehr.with_authorization().is_empty());
    assert_ne!(out.status.code(), Some(101), "no panic");

    // A note whose attachment lives on another origin: not fetched with the token, and
    // nothing from that host is written into the export.
    let notes = temp_dir("foreign-attachment");
    let folder = notes.join("out");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let doc = json!({
        "resourceType": "DocumentReference", "id": "d1",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "text/plain", "url": format!("{}Binary/b1", other.url)}}],
    });
    std::fs::write(folder.join("DocumentReference.ndjson"), format!("{doc}\n")).expect("write");
    let token = token_file(&notes);
    let hydrated = run(&[
        "hydrate",
        "--tasks",
        "doc-inline",
        "--fhir-url",
        &ehr.url,
        "--bearer-token",
        &token,
        folder.to_str().unwrap_or_default(),
    ]);
    assert_ne!(hydrated.status.code(), Some(101));
    assert_eq!(other.with_authorization().len(), 0, "{:?}", other.seen());
    let lines = read_lines(&folder.join("DocumentReference.ndjson"));
    assert_eq!(lines.len(), 1);
    let kept: Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(kept, doc, "the attachment is left as it was");
}

#[test]
fn credentials_never_land_in_files_or_messages() {
    let dir = temp_dir("userinfo");
    let ehr = ehr_server(|_, _| json_answer(&bundle(&[], None)));
    let with_user = ehr.url.replacen("http://", "http://alice:pa55word@", 1);
    let out_dir = dir.join("out");
    let out = run(&[
        "export",
        "--fhir-url",
        &with_user,
        "--id-list",
        "p1",
        "--type",
        "Condition",
        out_dir.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--basic-user"),
        "the fix is named: {stderr}"
    );
    assert!(!stderr.contains("pa55word") && !text(&out.stdout).contains("pa55word"));
    assert!(ehr.seen().is_empty(), "nothing was sent");
    assert!(!all_text_under(&dir).contains("pa55word"));

    // A config file that gives the token as a list: the error names the key, not the token.
    let config = dir.join("config.toml");
    std::fs::write(&config, format!("bearer-token = [\"{TOKEN}\"]\n")).expect("write config");
    let out = run(&[
        "single",
        "Patient/p1",
        "--fhir-url",
        &ehr.url,
        "-c",
        config.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bearer-token"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");

    // A token file that is not there is a mistake to report, not a token to send.
    let missing = dir.join("no-such-token.txt");
    let out = run(&[
        "single",
        "Patient/p1",
        "--fhir-url",
        &ehr.url,
        "--bearer-token",
        missing.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no such file"), "{stderr}");
    assert!(ehr.with_authorization().is_empty(), "{:?}", ehr.seen());
}

/// 4 GiB of zeros in a gzip stream of a few MB (a decompression bomb).
fn gzip_bomb() -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let block = vec![b' '; 1024 * 1024];
    encoder
        .write_all(b"{\"resourceType\":\"Bundle\",\"entry\":[")
        .expect("gzip");
    for _ in 0..1024 {
        encoder.write_all(&block).expect("gzip");
    }
    encoder.finish().expect("gzip")
}

type MakeAnswer = Box<dyn Fn() -> Answer + Send + Sync>;

#[test]
fn huge_line_gzip_bomb_and_endless_page_are_refused_in_bounded_memory() {
    let bomb = std::sync::Arc::new(gzip_bomb());
    assert!(
        bomb.len() < 8 * 1024 * 1024,
        "a small download: {}",
        bomb.len()
    );
    let cases: Vec<(&str, MakeAnswer)> = vec![
        (
            "huge line",
            Box::new(|| {
                let prefix = br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Condition","id":"c1","note":[{"text":""#;
                Answer::Sized(vec![], prefix.to_vec(), b'a', 2 * 1024 * 1024 * 1024)
            }),
        ),
        (
            "gzip bomb",
            Box::new(move || {
                Answer::Full(
                    200,
                    vec![("Content-Encoding".into(), "gzip".into())],
                    bomb.to_vec(),
                )
            }),
        ),
        (
            "endless page",
            Box::new(|| Answer::Endless(vec![], vec![b' '; 64 * 1024])),
        ),
    ];
    for (name, answer) in cases {
        let dir = temp_dir("bounded");
        let ehr = ehr_server(move |_, _| answer());
        let token = token_file(&dir);
        let out_dir = dir.join("out");
        let started = Instant::now();
        let (out, peak) = run_measured(
            &[
                "crawl",
                "--fhir-url",
                &ehr.url,
                "--bearer-token",
                &token,
                "--id-list",
                "p1",
                "--type",
                "Patient,Condition",
                out_dir.to_str().unwrap_or_default(),
            ],
            Duration::from_secs(120),
        );
        let took = started.elapsed();
        eprintln!(
            "{name}: refused after {took:?}, peak RSS {} MiB",
            peak / (1024 * 1024)
        );
        assert!(took < Duration::from_secs(60), "{name}: took {took:?}");
        assert_ne!(out.status.code(), Some(101), "{name}: no panic");
        assert!(out.status.code().is_some(), "{name}: ended by itself");
        assert!(
            peak > 0 && peak <= 256 * 1024 * 1024,
            "{name}: peak RSS {peak}"
        );
        let written = written(&dir);
        assert!(written.contains("larger than 128 MiB"), "{name}: {written}");
        assert!(
            written.contains("--max-body-size"),
            "{name}: the fix is named"
        );
    }
}

#[test]
fn servers_that_never_answer_fail_within_the_documented_timeouts() {
    // Startup: each try of the metadata request is given 10 s, three tries.
    let dir = temp_dir("silent-startup");
    let silent = Hostile::start("127.0.0.1", |_, _| Answer::Silent(Duration::from_secs(300)));
    let started = Instant::now();
    let out = run(&["single", "Patient/p1", "--fhir-url", &silent.url]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(45), "startup took {took:?}");
    assert!(
        took >= Duration::from_secs(25),
        "three tries of 10 s: {took:?}"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Timed out"), "{stderr}");
    assert_eq!(silent.seen().len(), 3, "three tries");

    // A search: no byte for --request-timeout seconds is dead; three tries at most.
    let ehr = ehr_server(|_, _| Answer::Silent(Duration::from_secs(300)));
    let started = Instant::now();
    let out = crawl(&ehr, &dir, &["--request-timeout", "2"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "search took {took:?}");
    assert_ne!(out.status.code(), Some(101));
    let tries = ehr
        .seen()
        .iter()
        .filter(|s| s.path() == "/Condition")
        .count();
    assert_eq!(tries, 3, "a timed-out search is tried three times");
    assert!(
        written(&dir).contains("Timed out"),
        "the failure is recorded"
    );

    // A body that stops moving is as dead as a silent server.
    let stalled = temp_dir("stall");
    let ehr = ehr_server(|_, _| Answer::Stall(vec![], Duration::from_secs(300)));
    let started = Instant::now();
    let out = crawl(&ehr, &stalled, &["--request-timeout", "2"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(out.status.code(), Some(101));
}

#[test]
fn absurd_numbers_from_the_server_are_no_panic() {
    // Retry-After far beyond any wait, and in a form that is no integer at all.
    for retry_after in ["99999999999999999999", "1e300", "-1", "NaN"] {
        let dir = temp_dir("retry-after");
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let ehr = ehr_server(move |_, _| {
            if asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                status_answer(429, &[("Retry-After", retry_after)], "slow down")
            } else {
                json_answer(&bundle(&[condition("c1", "p1")], None))
            }
        });
        let started = Instant::now();
        // The huge ones are honoured up to the cap (two minutes), which the test knob
        // brings down to one second.
        let out = crawl_with_env(&ehr, &dir, &[], &[("SMART_FETCH_RETRY_BASE_MS", "5")]);
        assert_success(&out);
        assert!(started.elapsed() < Duration::from_secs(30), "{retry_after}");
        assert!(written(&dir).contains("\"c1\""), "{retry_after}");
    }

    // A SMART token answer whose expires_in is 1e300.
    let dir = temp_dir("expires-in");
    let pair = fake_ehr::keys::generate(fake_ehr::keys::KeyAlg::Es384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).expect("write key");
    let ehr = Hostile::start("127.0.0.1", |seen, base| match seen.path() {
        "/metadata" => json_answer(&capability_statement(&["Patient"])),
        "/.well-known/smart-configuration" => json_answer(&json!({
            "token_endpoint": format!("{base}token"),
            "capabilities": ["client-confidential-asymmetric"],
        })),
        "/token" => Answer::Full(
            200,
            vec![("Content-Type".into(), "application/json".into())],
            br#"{"access_token":"tok","token_type":"bearer","expires_in":1e300}"#.to_vec(),
        ),
        "/Patient/p1" => json_answer(&patient("p1")),
        _ => status_answer(404, &[], ""),
    });
    let out = run(&[
        "single",
        "Patient/p1",
        "--fhir-url",
        &ehr.url,
        "--smart-client-id",
        "client",
        "--smart-key",
        key.to_str().unwrap_or_default(),
        "--compact",
    ]);
    assert_success(&out);
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"resourceType":"Patient","id":"p1"}"#
    );
}

#[test]
fn broken_json_is_retried_and_unsupported_urls_fail_at_once() {
    // Cut-off JSON twice, then the real answer: the user gets the resource.
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let ehr = Hostile::start("127.0.0.1", move |seen, _| match seen.path() {
        "/metadata" => json_answer(&capability_statement(&["Patient"])),
        "/Patient/p1" if asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 => {
            Answer::Full(200, vec![], br#"{"resourceType":"Patient","id":"#.to_vec())
        }
        "/Patient/p1" => json_answer(&patient("p1")),
        _ => status_answer(404, &[], ""),
    });
    let out = run(&["single", "Patient/p1", "--fhir-url", &ehr.url, "--compact"]);
    assert_success(&out);
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"resourceType":"Patient","id":"p1"}"#
    );
    assert_eq!(
        ehr.seen()
            .iter()
            .filter(|s| s.path() == "/Patient/p1")
            .count(),
        3
    );

    // A next link to a file on this machine: refused at once, not retried for minutes.
    let dir = temp_dir("file-next");
    let ehr = ehr_with_next("file:///etc/passwd");
    let started = Instant::now();
    let out = crawl(&ehr, &dir, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(out.status.code(), Some(101));
    let written = written(&dir);
    assert!(!written.contains("root:"), "{written}");
    assert!(written.contains("only http and https"), "{written}");
}

fn ehr_with_next(next: &'static str) -> Hostile {
    ehr_server(move |_, _| json_answer(&bundle(&[condition("c1", "p1")], Some(next))))
}

#[test]
fn server_text_cannot_drive_the_terminal() {
    let ehr = Hostile::start("127.0.0.1", |seen, _| match seen.path() {
        "/metadata" => json_answer(&capability_statement(&["Patient"])),
        _ => status_answer(
            400,
            &[("Content-Type", "application/fhir+json")],
            &json!({"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "invalid",
                "diagnostics": "\u{1b}[2J\u{1b}]0;pwned\u{7}bad request",
            }]})
            .to_string(),
        ),
    });
    let out = run(&["single", "Patient/p1", "--fhir-url", &ehr.url]);
    assert_eq!(out.status.code(), Some(1));
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.contains(&0x1b) && !stream.contains(&0x07),
            "{}",
            text(stream)
        );
    }
    let stderr = text(&out.stderr);
    assert!(stderr.contains(r"\u{1b}[2J"), "shown, escaped: {stderr}");
    assert!(stderr.contains("bad request"), "{stderr}");
}

#[test]
fn links_planted_in_a_crawl_folder_never_redirect_its_writes() {
    let dir = temp_dir("crawl-links");
    let out = dir.join("out");
    std::fs::create_dir_all(out.join(".resume")).expect("mkdir");
    let precious = dir.join("precious.txt");
    std::fs::write(&precious, "keep me").expect("write");
    for name in ["Condition.ndjson.gz.tmp", ".resume/Condition.journal"] {
        std::os::unix::fs::symlink(&precious, out.join(name)).expect("plant link");
    }
    let ehr = ehr_server(|_, _| json_answer(&bundle(&[condition("c1", "p1")], None)));
    let done = crawl(&ehr, &dir, &[]);
    assert_success(&done);
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap_or_default(),
        "keep me"
    );
    assert!(written(&dir).contains("\"c1\""));
}

#[test]
fn a_refused_scope_is_named_in_one_line() {
    let dir = temp_dir("scope-refused");
    let pair = fake_ehr::keys::generate(fake_ehr::keys::KeyAlg::Es384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).expect("write key");
    let ehr = Hostile::start("127.0.0.1", |seen, base| match seen.path() {
        "/metadata" => json_answer(&capability_statement(&["Patient", "Condition"])),
        "/.well-known/smart-configuration" => json_answer(&json!({
            "token_endpoint": format!("{base}token"),
        })),
        "/token" => status_answer(
            400,
            &[("Content-Type", "application/json")],
            r#"{"error":"invalid_scope","error_description":"Condition is not allowed for this client"}"#,
        ),
        _ => status_answer(404, &[], ""),
    });
    let out = dir.join("out");
    let o = run(&[
        "crawl",
        "--fhir-url",
        &ehr.url,
        "--smart-client-id",
        "client",
        "--smart-key",
        key.to_str().unwrap_or_default(),
        "--id-list",
        "p1",
        "--type",
        "Patient,Condition",
        out.to_str().unwrap_or_default(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("refused the scope (Condition is not allowed for this client)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Asked for: system/Patient.read system/Condition.read."),
        "{stderr}"
    );
    // The token request itself carried the scope of the run's types only.
    let token = ehr
        .seen()
        .into_iter()
        .find(|s| s.path() == "/token")
        .expect("token request");
    assert!(
        token
            .body
            .contains("scope=system%2FPatient.read+system%2FCondition.read"),
        "{}",
        token.body
    );
}

#[test]
fn a_server_that_goes_down_mid_crawl_ends_the_run_instead_of_every_search_retrying() {
    let dir = temp_dir("server-down");
    // Up for its first 20 data requests, then down for maintenance.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let ehr = Hostile::start("127.0.0.1", move |seen, _| {
        if seen.path() == "/metadata" {
            return json_answer(&capability_statement(&["Patient", "Condition"]));
        }
        if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 20 {
            return status_answer(503, &[], "maintenance");
        }
        match seen.path() {
            "/Patient" => {
                let id = seen
                    .target
                    .rsplit('=')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                json_answer(&bundle(&[patient(&id)], None))
            }
            _ => json_answer(&bundle(&[], None)),
        }
    });
    let ids: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let ids = ids.join(",");
    let out = dir.join("out");
    let started = Instant::now();
    let o = run_quick_retries(&[
        "crawl",
        "--fhir-url",
        &ehr.url,
        "--id-list",
        &ids,
        "--type",
        "Patient,Condition",
        out.to_str().unwrap_or_default(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    assert!(stderr.contains("stopped answering"), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let requests = ehr.seen().len();
    // 12 requests in a row with their 8 tries each (a few more in flight), not 400 × 8.
    assert!(requests < 300, "{requests} requests");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
