//! SMART Backend Services as a user configures it: the `--smart-jku` header, an inline JWKS
//! from the config file, and no access token or private key material in any output, even
//! with `--verbose` against a flaky server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::keys::{self, KeyAlg, KeyPair};
use fake_ehr::{AuthMode, Config, Flavor};
use std::time::Duration;
use support::*;

fn smart(pair: &KeyPair, lifetime: Duration) -> AuthMode {
    AuthMode::Smart {
        client_id: CLIENT_ID.into(),
        public_jwks: pair.public_jwks.clone(),
        token_lifetime: lifetime,
    }
}

#[test]
fn smart_jku_is_sent_in_the_client_assertion() {
    let dir = temp_dir("jku");
    let pair = keys::generate(KeyAlg::Es384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    let ehr = server(Flavor::Generic, 4, smart(&pair, Duration::from_secs(300)));
    let url = ehr.base_url();
    let single = |extra: &[&str]| {
        let mut args = vec![
            "single",
            "Patient/pat-000002",
            "--fhir-url",
            &url,
            "--smart-client-id",
            CLIENT_ID,
            "--smart-key",
            key.to_str().unwrap(),
            "--compact",
        ];
        args.extend_from_slice(extra);
        let output = run(&args);
        assert_success(&output);
        let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(got, fake_ehr::data::patient_resource(1, 2));
    };

    single(&["--smart-jku", "https://example.org/jwks.json"]);
    assert_eq!(
        ehr.stats().last_assertion_jku.as_deref(),
        Some("https://example.org/jwks.json")
    );
    single(&[]);
    assert_eq!(ehr.stats().last_assertion_jku, None, "no jku unless asked");
    assert_eq!(ehr.stats().issued_tokens.len(), 2);
}

#[test]
fn config_file_with_an_inline_smart_key() {
    let dir = temp_dir("config-inline-key");
    let pair = keys::generate(KeyAlg::Rs384);
    let ehr = server(Flavor::Epic, 4, smart(&pair, Duration::from_secs(300)));
    let url = ehr.base_url();
    let jwks = pair.private_jwks.to_string();
    assert!(!jwks.contains('\'') && !jwks.contains('\n'));
    let config = dir.join("cfg.toml");
    std::fs::write(
        &config,
        format!("fhir-url = \"{url}\"\nsmart-client-id = \"{CLIENT_ID}\"\nsmart-key = '{jwks}'\n"),
    )
    .unwrap();
    let out = dir.join("out");
    let output = run(&[
        "export",
        "-c",
        config.to_str().unwrap(),
        "--id-list",
        "pat-000001,pat-000003",
        "--type",
        "Patient,Condition",
        "--nickname",
        "cfg",
        out.to_str().unwrap(),
    ]);
    assert_success(&output);
    // Hydration may add referenced resources; the exported types are exactly the server's.
    let written = folder_resources_of(&out.join("001.cfg"), &["Patient", "Condition"]);
    assert_same_resources(
        &written,
        &expected_resources_of(1, &[1, 3], &["Patient", "Condition"], true),
    );
    let stats = ehr.stats();
    assert!(!stats.issued_tokens.is_empty(), "authenticated with SMART");
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(read_json(&out.join(".metadata"))["fhir-url"], url);
}

const PATIENTS: usize = 4;

const TYPES: [&str; 3] = ["Patient", "Condition", "DocumentReference"];

#[test]
fn no_token_or_private_key_in_output_or_files() {
    let dir = temp_dir("smart-secrets");
    let pair = keys::generate(KeyAlg::Rs384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    let mrns = mrn_file(&dir, "MRN-8", PATIENTS);
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: PATIENTS,
        // Short-lived tokens, so several are issued during the run.
        auth: smart(&pair, Duration::from_secs(5)),
        fault_rate: 0.2,
        latency: Duration::from_millis(5),
        ..Config::default()
    });
    let url = ehr.base_url();
    let out = dir.join("out");
    let output = run(&[
        "export",
        "--fhir-url",
        &url,
        "--smart-client-id",
        CLIENT_ID,
        "--smart-key",
        key.to_str().unwrap(),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap(),
        "--type",
        &TYPES.join(","),
        // Inlining writes downloaded content into the files; the other tasks only add time.
        "--hydration-tasks",
        "inline",
        "--verbose",
        out.to_str().unwrap(),
    ]);
    assert_success(&output);
    let stats = ehr.stats();
    assert!(stats.faults > 0, "faults were injected");
    assert!(!stats.issued_tokens.is_empty());
    // The run did its job (DocumentReference is left out: hydration inlines attachments).
    let workdir = file_names(&out)
        .into_iter()
        .find(|n| n.starts_with("001."))
        .expect("workdir");
    let compared = ["Patient", "Condition"];
    let mut written = folder_resources(&out.join(workdir));
    assert!(
        written["DocumentReference"]
            .values()
            .any(|line| line.contains("\"data\":")),
        "attachments were inlined"
    );
    written.retain(|t, _| compared.contains(&t.as_str()));
    assert_same_resources(&written, &expected_resources(1, PATIENTS, &compared, true));

    let private = &pair.private_jwks["keys"][0];
    let mut secrets: Vec<(String, String)> = stats
        .issued_tokens
        .iter()
        .map(|t| ("access token".to_string(), t.clone()))
        .collect();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        let value = private[member].as_str().expect("private RSA member");
        secrets.push((format!("private key member {member}"), value.to_string()));
    }
    let places = [
        ("stdout", text(&output.stdout)),
        ("stderr", text(&output.stderr)),
        ("the output folder", all_text_under(&out)),
    ];
    for (place, hay) in &places {
        for (what, secret) in &secrets {
            assert!(!hay.contains(secret.as_str()), "{what} leaked into {place}");
        }
    }
}

#[test]
fn token_asks_only_for_the_types_the_run_reads_and_the_server_holds() {
    // Like the SMART reference bulk-data server: a token whose scope names a type the
    // server does not hold is refused outright.
    let dir = temp_dir("scopes");
    let pair = keys::generate(KeyAlg::Es384);
    let key = dir.join("key.jwks");
    std::fs::write(&key, pair.private_jwks.to_string()).unwrap();
    let ehr = server_with(Config {
        flavor: Flavor::Generic,
        patients: 3,
        auth: smart(&pair, Duration::from_secs(300)),
        absent_types: vec!["EpisodeOfCare".into(), "Specimen".into()],
        ..Config::default()
    });
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-3", 3);
    let auth = [
        "--fhir-url",
        &url,
        "--smart-client-id",
        CLIENT_ID,
        "--smart-key",
        key.to_str().unwrap(),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap(),
    ];

    // A crawl of two types asks for exactly those two.
    let out = dir.join("crawl");
    let mut args = vec!["crawl", "--type", "Condition,Patient"];
    args.extend_from_slice(&auth);
    args.push(out.to_str().unwrap());
    assert_success(&run(&args));
    assert_eq!(
        ehr.stats().last_scope.as_deref(),
        Some("system/Patient.read system/Condition.read")
    );

    // An export of every type with all hydration: everything but what the server lacks.
    let out = dir.join("export");
    let mut args = vec!["export", "--export-mode", "crawl"];
    args.extend_from_slice(&auth);
    args.push(out.to_str().unwrap());
    let exported = run(&args);
    assert_success(&exported);
    let scope = ehr.stats().last_scope.unwrap_or_default();
    let asked: Vec<&str> = scope.split(' ').collect();
    // The scope types of docs/cli.md#scope-types in their order, less the two this server
    // does not list.
    let expected: Vec<String> = [
        "Patient",
        "Encounter",
        "AllergyIntolerance",
        "Condition",
        "Device",
        "DiagnosticReport",
        "DocumentReference",
        "Immunization",
        "MedicationDispense",
        "MedicationRequest",
        "Observation",
        "Procedure",
        "ServiceRequest",
        "Binary",
        "Location",
        "Medication",
        "Organization",
        "Practitioner",
        "PractitionerRole",
    ]
    .iter()
    .map(|t| format!("system/{t}.read"))
    .collect();
    assert_eq!(asked, expected);
}
