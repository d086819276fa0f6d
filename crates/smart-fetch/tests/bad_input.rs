//! Bad input fails fast with one clear line on stderr, no panic text, and nothing created
//! in the output folder when the problem was found before any request. Secrets never show.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Config, Flavor};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn assert_clean_failure(args: &[&str], out: &Path, needle: &str) {
    let start = Instant::now();
    let output = run(args);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    assert!(!output.status.success(), "{args:?} should fail");
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "panic text: {stderr}");
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!out.exists(), "{} was created", out.display());
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = temp_dir("bad-input");
    let ehr = server(Flavor::Epic, 3, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("out");
    let o = out.to_str().unwrap();

    let missing = dir.join("no-such-MRN-file");
    assert_clean_failure(
        &[
            "export",
            "--fhir-url",
            &url,
            "--id-file",
            missing.to_str().unwrap(),
            o,
        ],
        &out,
        "no-such-MRN-file",
    );

    let csv = dir.join("cohort.csv");
    std::fs::write(&csv, "name,dob\nann,2001-01-01\n").unwrap();
    assert_clean_failure(
        &[
            "export",
            "--fhir-url",
            &url,
            "--id-file",
            csv.to_str().unwrap(),
            o,
        ],
        &out,
        "has no 'id' or 'mrn' header",
    );

    let ids = dir.join("ids.txt");
    std::fs::write(&ids, "1\n").unwrap();
    let ids = ids.to_str().unwrap();
    let start = Instant::now();
    let unknown = run(&[
        "export",
        "--fhir-url",
        &url,
        "--id-file",
        ids,
        "--type",
        "Bogus",
        o,
    ]);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stdout).contains("These resource types are supported:"));
    assert_eq!(
        text(&unknown.stderr).trim(),
        "Unknown resource type provided: Bogus"
    );
    assert!(!out.exists());

    let no_key = dir.join("missing.jwks");
    assert_clean_failure(
        &[
            "export",
            "--fhir-url",
            &url,
            "--id-file",
            ids,
            "--smart-client-id",
            "x",
            "--smart-key",
            no_key.to_str().unwrap(),
            o,
        ],
        &out,
        "missing.jwks",
    );

    let bad_key = dir.join("broken.jwks");
    std::fs::write(&bad_key, "{\"keys\": [").unwrap();
    assert_clean_failure(
        &[
            "export",
            "--fhir-url",
            &url,
            "--id-file",
            ids,
            "--smart-client-id",
            "x",
            "--smart-key",
            bad_key.to_str().unwrap(),
            o,
        ],
        &out,
        "broken.jwks",
    );

    let odd_key = dir.join("key.txt");
    std::fs::write(&odd_key, "hello").unwrap();
    assert_clean_failure(
        &[
            "export",
            "--fhir-url",
            &url,
            "--id-file",
            ids,
            "--smart-client-id",
            "x",
            "--smart-key",
            odd_key.to_str().unwrap(),
            o,
        ],
        &out,
        "Unrecognized private key file",
    );

    // Nothing listens on this port.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/fhir", refused.local_addr().unwrap());
    drop(refused);
    assert_clean_failure(
        &["export", "--fhir-url", &dead_url, "--id-file", ids, o],
        &out,
        &dead_url,
    );
}

#[test]
fn secrets_never_appear_in_output_or_files() {
    let dir = temp_dir("secrets");
    let password = "pa55-Zebra-Quartz-91";
    let token = "bearer-Violet-Kestrel-7734";
    let mrns = mrn_file(&dir, "MRN-9", 5);
    let mrns = mrns.to_str().unwrap();
    let pass_file = dir.join("pass");
    std::fs::write(&pass_file, password).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();

    let flaky = |auth: AuthMode| Config {
        flavor: Flavor::Epic,
        patients: 5,
        auth,
        fault_rate: 0.2,
        ..Config::default()
    };

    let basic = server_with(flaky(AuthMode::Basic {
        user: "bob".into(),
        password: password.into(),
    }));
    let url = basic.base_url();
    let out = dir.join("basic");
    let o = run(&[
        "export",
        "--fhir-url",
        &url,
        "--basic-user",
        "bob",
        "--basic-passwd",
        pass_file.to_str().unwrap(),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns,
        "--verbose",
        "--hydration-tasks",
        "none",
        out.to_str().unwrap(),
    ]);
    assert_success(&o);
    let basic64 = base64_of(&format!("bob:{password}"));
    for hay in [text(&o.stdout), text(&o.stderr), all_text_under(&out)] {
        assert!(
            !hay.contains(password) && !hay.contains(&basic64),
            "password leaked"
        );
    }
    assert!(
        text(&o.stderr).contains("Retrying"),
        "verbose shows retries"
    );

    let bearer = server_with(flaky(AuthMode::Bearer {
        token: token.into(),
    }));
    let url = bearer.base_url();
    let out = dir.join("bearer");
    let o = run(&[
        "export",
        "--fhir-url",
        &url,
        "--bearer-token",
        token_file.to_str().unwrap(),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns,
        "--verbose",
        "--hydration-tasks",
        "none",
        out.to_str().unwrap(),
    ]);
    assert_success(&o);
    for hay in [text(&o.stdout), text(&o.stderr), all_text_under(&out)] {
        assert!(!hay.contains(token), "token leaked");
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
