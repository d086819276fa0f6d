//! A crawl against a server that answers searches wrongly, byte for byte under the test's
//! control (`support::hostile`): a 200 OperationOutcome instead of a Bundle, a page that
//! breaks off on every try, `next` links
//! that point back at the same page or go round between two, entries of another type or
//! another patient, a lookup answering with an extra Patient. Each is either a failed
//! search (exit 3, the folder not complete) or left out of the files; `--strict-search`
//! asks the server not to ignore parameters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use support::hostile::{Answer, Hostile, Seen, bundle, capability_statement, json_answer};
use support::*;

const TYPES: [&str; 3] = ["Patient", "Condition", "Encounter"];

fn patient(id: &str, mrn: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": id});
    if let Some(mrn) = mrn {
        p["identifier"] = json!([{"system": "urn:mrn", "value": mrn}]);
    }
    p
}

fn of(t: &str, id: &str, field: &str, patient: &str) -> Value {
    json!({"resourceType": t, "id": id, field: {"reference": format!("Patient/{patient}")}})
}

/// The query value of `key` in a request, decoded enough for ids (`%7C` is `|`).
fn param(seen: &Seen, key: &str) -> Option<String> {
    let query = seen.target.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.replace("%7C", "|").replace("%3A", ":"))
}

/// A server answering metadata, and searches through `search` (`None`: an empty Bundle).
fn server(search: impl Fn(&Seen, &str) -> Option<Answer> + Send + Sync + 'static) -> Hostile {
    Hostile::start("127.0.0.1", move |seen, base| {
        if seen.path() == "/metadata" {
            return json_answer(&capability_statement(&TYPES));
        }
        search(seen, base).unwrap_or_else(|| json_answer(&bundle(&[], None)))
    })
}

fn crawl(h: &Hostile, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["crawl", "--fhir-url", &h.url, out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn done_types(out: &Path) -> BTreeSet<String> {
    read_json(&out.join(".metadata"))["done"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn searches_of(h: &Hostile, path: &str) -> usize {
    h.seen().iter().filter(|s| s.path() == path).count()
}

#[test]
fn a_200_operation_outcome_is_a_failed_search() {
    let outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "Search failed"}]
    });
    let answer = outcome.clone();
    let h = server(move |seen, _| match seen.path() {
        "/Patient" => Some(json_answer(&bundle(&[patient("p1", None)], None))),
        "/Condition" => Some(json_answer(&answer)),
        _ => None,
    });
    let dir = temp_dir("hostile-oo");
    let out = dir.join("out");
    let output = crawl(
        &h,
        &out,
        &["--id-list", "p1", "--type", "Condition,Encounter"],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "1 search failed because the server answered with something other than a search \
             Bundle: Condition for 1 patient"
        ),
        "{stderr}"
    );
    // The server's own words are in error/; Condition is not done, Encounter is.
    let errors = read_lines(&out.join("error/OperationOutcome.ndjson.gz"));
    assert_eq!(errors.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&errors[0]).unwrap(), outcome);
    assert_eq!(
        done_types(&out),
        BTreeSet::from(["Encounter".to_string(), "Patient".to_string()])
    );
    assert_ne!(read_json(&out.join(".metadata"))["complete"], true);
}

#[test]
fn a_page_that_breaks_off_on_every_try_is_a_failed_search() {
    let h = server(|seen, _| {
        match seen.path() {
        "/Patient" => Some(json_answer(&bundle(&[patient("p1", None)], None))),
        // Promises 1,000 bytes, sends a few and closes the connection.
        "/Condition" => Some(Answer::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{\"resourceType\":\"Bundle\",\"entry\":[".to_vec(),
        )),
        _ => None,
    }
    });
    let dir = temp_dir("hostile-broken");
    let out = dir.join("out");
    // Every try fails: retry a few milliseconds apart, not over two minutes.
    let output = run_quick_retries(&[
        "crawl",
        "--fhir-url",
        &h.url,
        out.to_str().unwrap(),
        "--id-list",
        "p1",
        "--type",
        "Condition,Encounter",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.ends_with(
            "1 search failed (Condition for 1 patient); rerun the same command to retry them\n"
        ),
        "{stderr}"
    );
    eprintln!(
        "page that breaks off: {} tries\n{stderr}",
        searches_of(&h, "/Condition")
    );
    assert!(searches_of(&h, "/Condition") >= 1);
    assert!(!out.join("Condition.ndjson.gz").exists());
    assert_eq!(
        done_types(&out),
        BTreeSet::from(["Encounter".to_string(), "Patient".to_string()])
    );
    assert_eq!(
        read_lines(&out.join("error/OperationOutcome.ndjson.gz")).len(),
        1
    );
}

#[test]
fn next_links_that_loop_end_the_search_as_failed_within_seconds() {
    // p1's Condition page links to itself; p2's two pages link to each other.
    let h = server(|seen, base| {
        let condition = |id: &str, p: &str| of("Condition", id, "subject", p);
        match (seen.path(), param(seen, "patient").as_deref()) {
            ("/Patient", _) => Some(json_answer(&bundle(
                &[patient("p1", None), patient("p2", None)]
                    .into_iter()
                    .filter(|p| {
                        Some(p["id"].as_str().unwrap_or_default().to_string()) == param(seen, "_id")
                    })
                    .collect::<Vec<_>>(),
                None,
            ))),
            ("/Condition", Some("p1")) => Some(json_answer(&bundle(
                &[condition("c1", "p1")],
                Some(&format!("{base}Condition?patient=p1")),
            ))),
            ("/Condition", Some("p2")) => {
                let second = seen.target.contains("page=2");
                let (id, next) = if second {
                    ("c2b", format!("{base}Condition?patient=p2"))
                } else {
                    ("c2a", format!("{base}Condition?patient=p2&page=2"))
                };
                Some(json_answer(&bundle(&[condition(id, "p2")], Some(&next))))
            }
            _ => None,
        }
    });
    let dir = temp_dir("hostile-loops");
    let out = dir.join("out");
    let began = Instant::now();
    let output = crawl(&h, &out, &["--id-list", "p1,p2", "--type", "Condition"]);
    let took = began.elapsed();
    let stderr = text(&output.stderr);
    eprintln!(
        "looping next links: {took:?}, {} Condition requests",
        searches_of(&h, "/Condition")
    );
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        stderr.contains(
            "2 searches failed because the server's next links went round in a circle: \
             Condition for 2 patients"
        ),
        "{stderr}"
    );
    // p1: one page (its link is itself); p2: two pages, then the link back is refused.
    let condition_requests: Vec<String> = h
        .seen()
        .iter()
        .filter(|s| s.path() == "/Condition")
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(condition_requests.len(), 3, "{condition_requests:?}");
    // Nothing of the looping searches is written; both are listed in error/.
    assert!(!out.join("Condition.ndjson.gz").exists());
    assert!(!done_types(&out).contains("Condition"));
    let errors = read_lines(&out.join("error/OperationOutcome.ndjson.gz"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("leads back to a page")),
        "{errors:?}"
    );
}

#[test]
fn entries_of_another_type_or_patient_are_never_written() {
    // p1 was merged with p0 (its link says so): p0's Condition is p1's too. The Condition
    // search also returns a Patient entry; the Encounter search someone else's Encounter.
    let h = server(|seen, _| match seen.path() {
        "/Patient" => {
            let mut p1 = patient("p1", None);
            p1["link"] = json!([{"type": "replaces", "other": {"reference": "Patient/p0"}}]);
            Some(json_answer(&bundle(&[p1], None)))
        }
        "/Condition" => Some(json_answer(&bundle(
            &[
                of("Condition", "c1", "subject", "p1"),
                patient("p1", None),
                of("Condition", "c0", "subject", "p0"),
            ],
            None,
        ))),
        "/Encounter" => Some(json_answer(&bundle(
            &[
                of("Encounter", "e1", "subject", "p1"),
                of("Encounter", "e9", "subject", "p9"),
            ],
            None,
        ))),
        _ => None,
    });
    let dir = temp_dir("hostile-entries");
    let out = dir.join("out");
    let output = crawl(
        &h,
        &out,
        &["--id-list", "p1", "--type", "Condition,Encounter"],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr,
        "Left out 1 entry of a type the search did not ask for (Patient in Condition searches: 1).\n\
         The server ignored `patient=` for Encounter: it returned other patients' data \
         (Encounter/e9 names Patient/p9, searched Patient/p1). Nothing of theirs was written; \
         Encounter is not marked done.\n"
    );
    let files = folder_resources(&out);
    let ids = |t: &str| -> BTreeSet<String> {
        files
            .get(t)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("Condition"), BTreeSet::from(["c0".into(), "c1".into()]));
    assert_eq!(ids("Patient"), BTreeSet::from(["p1".into()]));
    assert!(ids("Encounter").is_empty());
    assert!(
        !all_text_under(&out).contains("p9"),
        "no trace of the other patient"
    );
    assert_eq!(
        done_types(&out),
        BTreeSet::from(["Condition".to_string(), "Patient".to_string()])
    );
}

#[test]
fn an_extra_patient_from_a_lookup_is_not_crawled_and_strict_search_asks_for_strictness() {
    let h = server(|seen, _| match seen.path() {
        // The server ignores the identifier: it answers with its whole list.
        "/Patient" => Some(json_answer(&bundle(
            &[
                patient("p1", Some("111")),
                patient("p9", Some("999")),
                patient("p8", None),
            ],
            None,
        ))),
        "/Condition" => {
            let p = param(seen, "patient").unwrap_or_default();
            Some(json_answer(&bundle(
                &[of("Condition", &format!("c-{p}"), "subject", &p)],
                None,
            )))
        }
        _ => None,
    });
    let dir = temp_dir("hostile-lookup");
    let out = dir.join("out");
    let argv = [
        "--id-system",
        "urn:mrn",
        "--id-list",
        "111",
        "--type",
        "Condition",
    ];
    let output = crawl(&h, &out, &argv);
    assert_success(&output);
    assert_eq!(
        text(&output.stderr),
        "Left out 2 Patients that a lookup returned without the ID it asked for (not crawled).\n"
    );
    let seen = h.seen();
    let lookups: Vec<Option<String>> = seen
        .iter()
        .filter(|s| s.path() == "/Patient")
        .map(|s| param(s, "identifier"))
        .collect();
    assert_eq!(lookups, [Some("urn:mrn|111".to_string())]);
    let crawled: BTreeSet<String> = seen
        .iter()
        .filter(|s| s.path() == "/Condition")
        .filter_map(|s| param(s, "patient"))
        .collect();
    assert_eq!(crawled, BTreeSet::from(["p1".to_string()]));
    let files = folder_resources(&out);
    assert_eq!(files["Patient"].keys().collect::<Vec<_>>(), ["p1"]);
    assert_eq!(files["Condition"].keys().collect::<Vec<_>>(), ["c-p1"]);
    // Not asked for: no Prefer header.
    assert!(seen.iter().all(|s| s.header("prefer").is_none()));

    let strict_out = dir.join("strict");
    let mut strict = argv.to_vec();
    strict.push("--strict-search");
    let output = crawl(&h, &strict_out, &strict);
    assert_success(&output);
    let searches: Vec<Seen> = h.seen()[seen.len()..]
        .iter()
        .filter(|s| s.path() != "/metadata")
        .cloned()
        .collect();
    assert_eq!(searches.len(), 2, "a lookup and a search");
    for s in &searches {
        assert_eq!(s.header("prefer"), Some("handling=strict"), "{}", s.target);
    }
}
