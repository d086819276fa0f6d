//! The standalone `crawl` subcommand (docs/crawl.md, docs/log.md#the-crawl-log) against a generic
//! or Epic fake EHR: cohorts from `--id-list`, an `--id-file` CSV of MRNs, or an earlier crawl's
//! Patients; custom type filters; and search failures that are written down, leave the folder
//! incomplete (exit 3) and are retried, unless accepted with `--allow-incomplete`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Flavor};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::*;

const SEED: u64 = 1;

fn crawl(url: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["crawl", "--fhir-url", url, out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn ids(indices: &[usize]) -> String {
    indices
        .iter()
        .map(|&i| fake_ehr::data::patient_id(i))
        .collect::<Vec<_>>()
        .join(",")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn instant(text: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A FHIR date, dateTime or instant as an instant (docs/since.md#reading-fhir-dates): partial dates
/// are filled in, `:60` becomes `:59`, and values without a zone get +14:00.
fn fhir_instant(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let text = text.replace(":60", ":59");
    let plus14 = chrono::FixedOffset::east_opt(14 * 3600)?;
    let date = match text.len() {
        4 => Some(format!("{text}-01-01")),
        7 => Some(format!("{text}-01")),
        10 => Some(text.clone()),
        _ => None,
    };
    if let Some(date) = date {
        let day = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok()?;
        return day
            .and_hms_opt(0, 0, 0)?
            .and_local_timezone(plus14)
            .single();
    }
    chrono::DateTime::parse_from_rfc3339(&text)
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?
                .and_local_timezone(plus14)
                .single()
        })
}

/// The newest `meta.lastUpdated` or created-field value (docs/since.md#created-date-fields) among
/// `lines`, ignoring values after `now`.
fn newest_date<'a>(
    resource_type: &str,
    lines: impl Iterator<Item = &'a String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let created = match resource_type {
        "AllergyIntolerance" | "Condition" => Some("recordedDate"),
        "DiagnosticReport" | "Observation" => Some("issued"),
        "DocumentReference" => Some("date"),
        "Immunization" => Some("recorded"),
        "MedicationRequest" | "ServiceRequest" => Some("authoredOn"),
        _ => None,
    };
    lines
        .flat_map(|line| {
            let r: Value = serde_json::from_str(line).unwrap();
            let mut dates = vec![r["meta"]["lastUpdated"].as_str().and_then(fhir_instant)];
            if let Some(field) = created {
                dates.push(r[field].as_str().and_then(fhir_instant));
            }
            dates
        })
        .flatten()
        .filter(|d| *d <= now)
        .max()
}

/// The five fake-log events of one crawl run (docs/log.md#the-crawl-log), checked; returns the
/// export URL.
fn check_fake_log(events: &[Value], metadata: &Value) -> String {
    let ids: Vec<_> = events
        .iter()
        .map(|e| e["eventId"].as_str().unwrap_or_default())
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
    let kickoff = &events[0]["eventDetail"];
    assert_eq!(kickoff["requestParameters"], serde_json::json!({}));
    assert_eq!(kickoff["responseHeaders"], serde_json::json!({}));
    // The transaction time is the earliest `done` time of the workdir.
    let earliest = metadata["done"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| instant(v.as_str().unwrap()))
        .min()
        .expect("a done entry");
    for e in &events[1..4] {
        assert_eq!(
            instant(e["eventDetail"]["transactionTime"].as_str().unwrap()),
            earliest,
            "{e}"
        );
    }
    assert_eq!(events[4]["eventDetail"]["resources"], 0);
    kickoff["exportUrl"].as_str().unwrap().to_string()
}

#[test]
fn id_list_crawl_of_every_type_then_a_rerun_with_a_group_nickname() {
    let dir = temp_dir("crawl-id-list");
    let ehr = server(Flavor::Generic, 6, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("cohort-a");

    let before = chrono::Utc::now();
    let output = crawl(&url, &out, &["--id-list", "pat-000001,pat-000002"]);
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Fetching Patients for the provided IDs."),
        "{stdout}"
    );
    assert!(stdout.contains("✨ Done ✨"), "{stdout}");

    let expected = expected_resources_of(SEED, &[1, 2], &ALL_TYPES, false);
    assert_eq!(expected.len(), 15, "both patients have every type");
    assert_same_resources(&folder_resources(&out), &expected);
    let mut names: Vec<String> = ALL_TYPES.iter().map(|t| format!("{t}.ndjson.gz")).collect();
    names.extend([".metadata".to_string(), "log.ndjson".to_string()]);
    names.sort();
    assert_eq!(file_names(&out), names, "no error/, no leftovers, no links");

    let meta = read_json(&out.join(".metadata"));
    assert_eq!(meta["kind"], "output");
    assert_eq!(meta["complete"], true);
    assert_eq!(meta["since"], Value::Null);
    assert_eq!(keys(&meta["done"]), set(&ALL_TYPES));
    assert_eq!(keys(&meta["filters"]), set(&ALL_TYPES));
    assert_eq!(
        meta["filters"]["Observation"],
        serde_json::json!([
            "category=social-history,vital-signs,imaging,laboratory,survey,exam,procedure,therapy,activity"
        ])
    );

    let events = log_events(&out.join("log.ndjson"));
    assert_eq!(events.len(), 5);
    assert_eq!(
        check_fake_log(&events, &meta),
        format!("{url}/Group/cohort-a/$export")
    );
    // Each type's done time is the newest date seen in what was crawled
    // (docs/crawl.md#writing-resources-and-finishing-a-type).
    for (t, resources) in &expected {
        assert_eq!(
            Some(instant(meta["done"][t].as_str().unwrap())),
            newest_date(t, resources.values(), before),
            "done time of {t}"
        );
    }

    // No --id-system: the ids are FHIR ids, looked up in one `_id` list (the server takes
    // lists); nothing else is asked about Patients (no export of all of them).
    let stats = ehr.stats();
    let searches = per_patient_searches(&decoded_searches(&stats));
    let patient_searches: BTreeSet<&str> = searches
        .iter()
        .filter(|s| s.starts_with("Patient"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        patient_searches,
        BTreeSet::from(["Patient?_id=pat-000001,pat-000002&_count=2"]),
        "{searches:?}"
    );
    assert!(
        stats
            .search_urls
            .iter()
            .any(|u| u.ends_with("/Patient?_id=pat-000001,pat-000002&_count=2"))
    );
    for t in &ALL_TYPES[1..] {
        for p in ["pat-000001", "pat-000002"] {
            assert!(
                searches
                    .iter()
                    .any(|s| s.starts_with(&format!("{t}?patient={p}"))),
                "no {t} search for {p}: {searches:?}"
            );
        }
    }

    // The same crawl again, now with a group nickname: everything is done, so nothing is
    // fetched, but another fake log naming the nickname is appended.
    let again = crawl(
        &url,
        &out,
        &[
            "--id-list",
            "pat-000001,pat-000002",
            "--group-nickname",
            "blarg",
        ],
    );
    assert_success(&again);
    let stdout = text(&again.stdout);
    assert!(
        stdout.contains("Skipping Patient, already done."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Skipping Condition, already done."),
        "{stdout}"
    );
    assert_eq!(ehr.stats().searches, stats.searches, "nothing re-fetched");
    assert_same_resources(&folder_resources(&out), &expected);
    let events = log_events(&out.join("log.ndjson"));
    assert_eq!(events.len(), 10, "a second fake log is appended");
    assert_eq!(
        check_fake_log(&events[5..], &read_json(&out.join(".metadata"))),
        format!("{url}/Group/blarg/$export")
    );
}

#[test]
fn source_dir_cohort_needs_no_patient_lookups() {
    let dir = temp_dir("crawl-source-dir");
    let cohort = dir.join("my-cohort");
    {
        let ehr = server(Flavor::Generic, 6, AuthMode::Open);
        let output = crawl(
            &ehr.base_url(),
            &cohort,
            &["--id-list", &ids(&[1, 3]), "--type", "Patient"],
        );
        assert_success(&output);
        assert_eq!(
            file_names(&cohort),
            [".metadata", "Patient.ndjson.gz", "log.ndjson"]
        );
    }

    // A fresh server, so its counters only see the second crawl.
    let ehr = server(Flavor::Generic, 6, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("conditions");
    let output = crawl(
        &url,
        &out,
        &[
            "--source-dir",
            cohort.to_str().unwrap(),
            "--type",
            "Condition",
        ],
    );
    assert_success(&output);
    assert!(!text(&output.stdout).contains("Fetching Patients"));
    let expected = expected_resources_of(SEED, &[1, 3], &["Condition"], false);
    assert!(!expected["Condition"].is_empty());
    assert_same_resources(&folder_resources(&out), &expected);
    assert_eq!(
        file_names(&out),
        [".metadata", "Condition.ndjson.gz", "log.ndjson"]
    );

    let searches = per_patient_searches(&decoded_searches(&ehr.stats()));
    assert!(
        searches.iter().all(|s| !s.starts_with("Patient")),
        "Patients were looked up: {searches:?}"
    );
    let patients: BTreeSet<&str> = searches
        .iter()
        .filter_map(|s| s.strip_prefix("Condition?patient="))
        .map(|rest| rest.split('&').next().unwrap_or_default())
        .collect();
    assert_eq!(patients, BTreeSet::from(["pat-000001", "pat-000003"]));

    let meta = read_json(&out.join(".metadata"));
    assert_eq!(keys(&meta["done"]), set(&["Condition"]));
    assert_eq!(meta["complete"], true);
    // The group name comes from the source folder.
    let events = log_events(&out.join("log.ndjson"));
    assert_eq!(
        check_fake_log(&events, &meta),
        format!("{url}/Group/my-cohort/$export")
    );
}

#[test]
fn mrn_csv_with_id_system() {
    let dir = temp_dir("crawl-csv");
    let ehr = server(Flavor::Generic, 8, AuthMode::Open);
    let url = ehr.base_url();
    let csv = dir.join("ids.csv");
    let (m3, m5) = (fake_ehr::data::mrn(3), fake_ehr::data::mrn(5));
    std::fs::write(&csv, format!("name,MRN\nann,{m3}\nbob,{m5}\ncarl,\n")).unwrap();
    let out = dir.join("out");
    let output = crawl(
        &url,
        &out,
        &[
            "--id-file",
            csv.to_str().unwrap(),
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--type",
            "Condition",
        ],
    );
    assert_success(&output);
    // Patients are fetched for the IDs even though only Conditions were asked for.
    let expected = expected_resources_of(SEED, &[3, 5], &["Patient", "Condition"], false);
    assert_same_resources(&folder_resources(&out), &expected);
    assert_eq!(
        file_names(&out),
        [
            ".metadata",
            "Condition.ndjson.gz",
            "Patient.ndjson.gz",
            "log.ndjson"
        ]
    );

    let searches = per_patient_searches(&decoded_searches(&ehr.stats()));
    let system = fake_ehr::data::MRN_SYSTEM;
    let lookups: BTreeSet<&str> = searches
        .iter()
        .filter(|s| s.starts_with("Patient"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        lookups,
        BTreeSet::from([
            format!("Patient?identifier={system}|{m3},{system}|{m5}&_count=2").as_str(),
        ]),
        "the empty cell is dropped; both MRNs in one list"
    );
    assert!(searches.contains(&"Condition?patient=pat-000003".to_string()));

    let meta = read_json(&out.join(".metadata"));
    assert_eq!(keys(&meta["filters"]), set(&["Condition"]));
    assert_eq!(keys(&meta["done"]), set(&["Condition", "Patient"]));
    let events = log_events(&out.join("log.ndjson"));
    assert_eq!(
        check_fake_log(&events, &meta),
        format!("{url}/Group/ids/$export"),
        "group name from the id file's name"
    );
}

const CODES: [&str; 3] = ["44054006", "38341003", "195967001"];

fn has_code(condition: &Value, field: &str, codes: &[&str]) -> bool {
    condition[field]
        .as_array()
        .map(|a| a.iter().collect::<Vec<_>>())
        .unwrap_or_else(|| vec![&condition[field]])
        .into_iter()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str())
        .any(|code| codes.contains(&code))
}

#[test]
fn two_type_filters_search_twice_and_keep_each_resource_once() {
    let dir = temp_dir("crawl-filters");
    let ehr = server(Flavor::Generic, 12, AuthMode::Open);
    let url = ehr.base_url();
    let cohort: Vec<usize> = (0..10).collect();

    // What each filter matches, from the data itself.
    let (mut by_code, mut by_category, mut neither) = (0, 0, 0);
    let mut expected: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut both = 0;
    for (id, line) in &expected_resources_of(SEED, &cohort, &["Condition"], false)["Condition"] {
        let c: Value = serde_json::from_str(line).unwrap();
        let code = has_code(&c, "code", &CODES);
        let category = has_code(&c, "category", &["problem-list-item"]);
        by_code += usize::from(code);
        by_category += usize::from(category);
        both += usize::from(code && category);
        neither += usize::from(!code && !category);
        if code || category {
            expected
                .entry("Condition".into())
                .or_default()
                .insert(id.clone(), line.clone());
        }
    }
    assert!(
        both > 0 && by_code > both && by_category > both && neither > 0,
        "the data must exercise overlap: code {by_code}, category {by_category}, both {both}, neither {neither}"
    );
    let patients = expected_resources_of(SEED, &cohort, &["Patient"], false);
    expected.extend(patients);

    let code_filter = format!("Condition?code={}", CODES.join(","));
    let out = dir.join("out");
    let output = crawl(
        &url,
        &out,
        &[
            "--id-list",
            &ids(&cohort),
            "--type",
            "Patient,Condition",
            "--type-filter",
            &code_filter,
            "--type-filter",
            "Condition?category=problem-list-item",
        ],
    );
    assert_success(&output);
    // folder_resources also fails on a Condition written twice.
    assert_same_resources(&folder_resources(&out), &expected);

    let searches = per_patient_searches(&decoded_searches(&ehr.stats()));
    for p in &cohort {
        let p = fake_ehr::data::patient_id(*p);
        let firsts: BTreeSet<&str> = searches
            .iter()
            .filter(|s| s.starts_with(&format!("Condition?patient={p}&")) && !s.contains("_offset"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            firsts,
            BTreeSet::from([
                format!("Condition?patient={p}&code={}", CODES.join(",")).as_str(),
                format!("Condition?patient={p}&category=problem-list-item").as_str(),
            ]),
            "{searches:?}"
        );
    }
    assert!(
        !searches.iter().any(|s| s == "Condition?patient=pat-000000"),
        "no unfiltered search"
    );

    let meta = read_json(&out.join(".metadata"));
    assert_eq!(
        meta["filters"]["Condition"],
        serde_json::json!([
            "category=problem-list-item",
            format!("code={}", CODES.join(","))
        ]),
        "as given, sorted"
    );
    assert_eq!(meta["filters"]["Patient"], serde_json::json!([]));
}

#[test]
fn rejected_searches_leave_the_crawl_incomplete_unless_accepted() {
    let dir = temp_dir("crawl-errors");
    let ehr = server(Flavor::Generic, 6, AuthMode::Open);
    let url = ehr.base_url();
    let out = dir.join("out");
    let argv = [
        "--id-list",
        "pat-000001,pat-000002",
        "--type",
        "Condition,Device",
        "--type-filter",
        "Condition?bogus=1",
    ];
    let output = crawl(&url, &out, &argv);
    // The server answers 400 for each patient's Condition search: two failed searches.
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).contains("Done"));
    assert_eq!(
        text(&output.stderr),
        "2 searches failed because the server answered HTTP 400: Condition for 2 patients\n\
         2 searches failed (Condition for 2 patients); rerun the same command to retry them\n"
    );

    // Each OperationOutcome is kept in error/, the rest is complete, Condition is not.
    let check_errors = || {
        let errors = read_lines(&out.join("error/OperationOutcome.ndjson.gz"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        for line in &errors {
            let outcome: Value = serde_json::from_str(line).unwrap();
            assert_eq!(outcome["resourceType"], "OperationOutcome");
            assert_eq!(
                outcome["issue"][0]["diagnostics"],
                "Unknown search parameter \"bogus\" for Condition"
            );
        }
        assert_eq!(
            file_names(&out.join("error")),
            ["OperationOutcome.ndjson.gz"]
        );
    };
    check_errors();
    let expected = expected_resources_of(SEED, &[1, 2], &["Patient", "Device"], false);
    assert_same_resources(&folder_resources(&out), &expected);
    assert!(!out.join("Condition.ndjson.gz").exists());
    let meta = read_json(&out.join(".metadata"));
    assert_eq!(keys(&meta["done"]), set(&["Device", "Patient"]));
    assert_ne!(meta["complete"], true);

    // Accepted: the two searches are tried once more, then Condition is done without them
    // and error/ lists them once.
    let mut accepting = argv.to_vec();
    accepting.push("--allow-incomplete");
    let before = ehr.stats().searches;
    let output = crawl(&url, &out, &accepting);
    assert_success(&output);
    assert!(text(&output.stdout).contains("✨ Done ✨"));
    assert!(
        text(&output.stderr).ends_with(
            "2 searches failed (Condition for 2 patients); accepted with --allow-incomplete: \
             their types are marked done without them\n"
        ),
        "{}",
        text(&output.stderr)
    );
    let searches = per_patient_searches(&decoded_searches(&ehr.stats())[before as usize..]);
    assert_eq!(
        searches.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            &"Condition?patient=pat-000001&bogus=1".to_string(),
            &"Condition?patient=pat-000002&bogus=1".to_string(),
        ]),
        "only the failed searches again"
    );
    check_errors();
    assert_same_resources(&folder_resources(&out), &expected);
    let meta = read_json(&out.join(".metadata"));
    assert_eq!(
        keys(&meta["done"]),
        set(&["Condition", "Device", "Patient"])
    );
    assert_eq!(meta["complete"], true);
    assert_eq!(meta["filters"]["Condition"], serde_json::json!(["bogus=1"]));
    assert!(!out.join(".resume").exists());
}

#[test]
fn specimen_is_crawled_from_a_generic_server_and_skipped_on_epic() {
    let dir = temp_dir("crawl-specimen");
    let generic = server(Flavor::Generic, 5, AuthMode::Open);
    let out = dir.join("generic");
    let output = crawl(
        &generic.base_url(),
        &out,
        &["--id-list", "pat-000001,pat-000002", "--type", "Specimen"],
    );
    assert_success(&output);
    let expected = expected_resources_of(SEED, &[1, 2], &["Patient", "Specimen"], false);
    assert!(!expected["Specimen"].is_empty());
    assert_same_resources(&folder_resources(&out), &expected);
    assert!(!out.join("error").exists());

    let epic = server(Flavor::Epic, 5, AuthMode::Open);
    let out = dir.join("epic");
    let output = crawl(
        &epic.base_url(),
        &out,
        &["--id-list", "pat-000001,pat-000002", "--type", "Specimen"],
    );
    assert_success(&output);
    assert!(
        text(&output.stdout).contains(
            "Skipping Specimen, Epic does not support searching by patient, so they will have to be hydrated instead."
        ),
        "{}",
        text(&output.stdout)
    );
    let searches = decoded_searches(&epic.stats());
    assert!(
        searches.iter().all(|s| !s.starts_with("Specimen")),
        "{searches:?}"
    );
    assert!(!out.join("Specimen.ndjson.gz").exists());
    assert!(!out.join("error").exists());
    let meta = read_json(&out.join(".metadata"));
    assert_eq!(keys(&meta["done"]), set(&["Patient", "Specimen"]));
}

fn export_url(out: &Path) -> String {
    let events = log_events(&out.join("log.ndjson"));
    events.last().expect("a fake log");
    let kickoff = &events[events.len() - 5];
    assert_eq!(kickoff["eventId"], "kickoff");
    kickoff["eventDetail"]["exportUrl"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn fake_log_group_name_precedence() {
    let dir = temp_dir("crawl-group-name");
    let ehr = server(Flavor::Generic, 3, AuthMode::Open);
    let url = ehr.base_url();
    let base = ["--id-list", "pat-000001", "--type", "Patient"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args
    }

    let out = dir.join("by-group");
    assert_success(&crawl(&url, &out, &with(&base, &["--group", "blarg"])));
    assert_eq!(export_url(&out), format!("{url}/Group/blarg/$export"));

    let out = dir.join("both");
    assert_success(&crawl(
        &url,
        &out,
        &with(&base, &["--group", "g1", "--group-nickname", "nick"]),
    ));
    assert_eq!(export_url(&out), format!("{url}/Group/nick/$export"));

    // A folder argument ending in "/" has no base name: a system-level URL.
    let out = dir.join("slash");
    let slash = format!("{}/", out.display());
    let mut args = vec!["crawl", "--fhir-url", &url, &slash];
    args.extend_from_slice(&base);
    assert_success(&run(&args));
    assert_eq!(export_url(&out), format!("{url}/$export"));
}

#[test]
fn crawl_without_compression() {
    let dir = temp_dir("crawl-plain");
    let ehr = server(Flavor::Generic, 4, AuthMode::Open);
    let out = dir.join("out");
    let output = crawl(
        &ehr.base_url(),
        &out,
        &[
            "--id-list",
            "pat-000001,pat-000002",
            "--type",
            "Condition,Encounter",
            "--type-filter",
            "Condition?bogus=1",
            "--no-compression",
            "--allow-incomplete",
        ],
    );
    assert_success(&output);
    assert_eq!(
        file_names(&out),
        [
            ".metadata",
            "Encounter.ndjson",
            "Patient.ndjson",
            "error",
            "log.ndjson"
        ]
    );
    assert_eq!(file_names(&out.join("error")), ["OperationOutcome.ndjson"]);
    for path in [
        out.join("Encounter.ndjson"),
        out.join("Patient.ndjson"),
        out.join("error/OperationOutcome.ndjson"),
    ] {
        let plain = std::fs::read_to_string(&path).expect("plain UTF-8 text");
        for line in plain.lines() {
            serde_json::from_str::<Value>(line).expect("one JSON resource a line");
        }
    }
    assert_eq!(
        read_lines(&out.join("error/OperationOutcome.ndjson")).len(),
        2
    );
    assert_same_resources(
        &folder_resources(&out),
        &expected_resources_of(SEED, &[1, 2], &["Patient", "Encounter"], false),
    );
}

#[test]
fn cohort_and_filter_mistakes_fail_with_one_clear_line() {
    let dir = temp_dir("crawl-mistakes");
    let ehr = server(Flavor::Generic, 3, AuthMode::Open);
    let url = ehr.base_url();
    let fails = |out: &Path, extra: &[&str], message: &str| {
        let output = crawl(&url, out, extra);
        assert_eq!(output.status.code(), Some(1), "{extra:?}");
        assert_eq!(text(&output.stderr), format!("{message}\n"), "{extra:?}");
    };

    // No Patients anywhere and none asked for.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &empty,
        &["--type", "Condition"],
        &format!(
            "No cohort patients found in {}.\nYou must either provide a cohort from a previous \
             export with --source-dir, --id-list, or --id-file, or export patients in this crawl \
             too.",
            empty.display()
        ),
    );
    assert!(
        decoded_searches(&ehr.stats())
            .iter()
            .all(|s| !s.starts_with("Condition")),
        "no searches without a cohort"
    );

    let out = dir.join("out");
    fails(
        &out,
        &["--id-list", "pat-000001", "--type-filter", "bogus"],
        "Type filter arguments must be in the format 'Resource?params'.",
    );
    fails(
        &out,
        &[
            "--id-list",
            "pat-000001",
            "--type",
            "Condition",
            "--type-filter",
            "Procedure?code=1",
        ],
        "Type filter for Procedure but that type is not included in --type.",
    );
    assert!(!out.join("Patient.ndjson.gz").exists());
}
