//! Acceptance of `delta` (issue 16): quarter 1 then quarter 2 of the fake EHR exported
//! into one managed folder by `smart-fetch export` (Epic crawl), then the delta.
//!
//! What it must hold is worked out without smart-fetch: fake-ehr's own change list
//! (`GET /__admin/changes`: new patients, new and back-filled resources, modified,
//! re-identified and moved ones) narrowed to what an Epic crawl searches, and, for every
//! file including hydrated ones, a plain comparison of the two full exports' lines parsed
//! with serde_json. Refusals (an incomplete export, different filters or hydration, a
//! destination inside the export folder) are one line, exit 1, and leave nothing behind.
//! Cumulus ETL's own loader reads the delta (when `CI` or `SMART_FETCH_ETL_CHECK` is set).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::data::{self, ChangeList};
use fake_ehr::{Config, Flavor, Server, TruncateSearch};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::*;

const SEED: u64 = 1;
/// Quarter-1 patients; quarter 2 adds two (20 and 21), deletes 3 and 13, merges 7 into 6
/// and 17 into 16.
const N: usize = 20;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn epic_server() -> Server {
    server_with(Config {
        flavor: Flavor::Epic,
        patients: N,
        seed: SEED,
        ..Config::default()
    })
}

/// One managed folder with a quarter-1 and a quarter-2 export (`001.q1`, `002.q2`).
struct Quarters {
    _ehr: Server,
    dir: TestDir,
    managed: PathBuf,
    list: ChangeList,
}

impl Quarters {
    fn q1(&self) -> PathBuf {
        self.managed.join("001.q1")
    }
    fn q2(&self) -> PathBuf {
        self.managed.join("002.q2")
    }
}

/// `smart-fetch export` of the MRNs in `mrns` into `managed`, run by `runner`.
fn export_with(
    runner: fn(&[&str]) -> std::process::Output,
    ehr: &Server,
    mrns: &Path,
    managed: &Path,
    nickname: &str,
    extra: &[&str],
) -> std::process::Output {
    let url = ehr.base_url();
    let mut args = vec![
        "export",
        "--fhir-url",
        &url,
        "--id-system",
        data::MRN_SYSTEM,
        "--id-file",
        p(mrns),
        "--nickname",
        nickname,
    ];
    args.extend_from_slice(extra);
    args.push(p(managed));
    runner(&args)
}

fn export(ehr: &Server, mrns: &Path, managed: &Path, nickname: &str, extra: &[&str]) {
    assert_success(&export_with(run, ehr, mrns, managed, nickname, extra));
}

/// The change list as fake-ehr serves it, over HTTP (a plain HTTP/1.0 GET: the answer
/// then comes whole, without chunks, and the connection closes after it).
fn served_change_list(ehr: &Server) -> Value {
    use std::io::{Read, Write};
    let authority = host_port(ehr);
    let mut stream = std::net::TcpStream::connect(&authority).expect("connect");
    write!(
        stream,
        "GET /__admin/changes HTTP/1.0\r\nHost: {authority}\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    serde_json::from_str(body).expect("change list JSON")
}

fn quarters(name: &str, extra: &[&str]) -> Quarters {
    let ehr = epic_server();
    let dir = temp_dir(name);
    let mrns = mrn_file(&dir, "MRN-000", data::patients_in_quarter(N, 2));
    let managed = dir.join("out").join("MRN-000");
    export(&ehr, &mrns, &managed, "q1", extra);
    ehr.set_quarter(2).expect("quarter 2");
    export(&ehr, &mrns, &managed, "q2", extra);
    let list = data::quarter2_change_list(SEED, N);
    // The endpoint serves the same list.
    let served = served_change_list(&ehr);
    assert_eq!(served["changedCount"], list.changed().len());
    assert_eq!(served["newPatients"].as_array().map(Vec::len), Some(2));
    Quarters {
        _ehr: ehr,
        dir,
        managed,
        list,
    }
}

fn delta(args: &[&str]) -> std::process::Output {
    let mut all = vec!["delta"];
    all.extend_from_slice(args);
    run(&all)
}

/// What an Epic crawl searches: no EpisodeOfCare or Specimen searches, Observations of the
/// default categories only.
fn epic_searches(ty: &str, id: &str) -> bool {
    match ty {
        "EpisodeOfCare" | "Specimen" => false,
        "Observation" => {
            let Some(obs) = data::resource_in_quarter(SEED, N, ty, id, 2) else {
                return false;
            };
            obs["category"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["coding"].as_array().into_iter().flatten())
                .filter_map(|c| c["code"].as_str())
                .any(|code| EPIC_CATEGORIES.contains(&code))
        }
        _ => true,
    }
}

/// fake-ehr's changed resources that the crawl's search files hold: type → ids.
fn expected_searched(list: &ChangeList) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ty, ids) in list.changed_by_type() {
        let kept: BTreeSet<String> = ids
            .into_iter()
            .filter(|id| epic_searches(&ty, id))
            .collect();
        if !kept.is_empty() {
            out.insert(ty, kept);
        }
    }
    out
}

/// `<Type>.ndjson.gz` files (what the searches wrote): type → id → line.
fn searched_lines(leaf: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for name in file_names(leaf) {
        let Some(ty) = name.strip_suffix(".ndjson.gz") else {
            continue;
        };
        if ty.contains('.') || ty == "log" {
            continue;
        }
        for line in read_lines(&leaf.join(&name)) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            let id = v["id"].as_str().expect("id").to_string();
            out.entry(ty.to_string()).or_default().insert(id, line);
        }
    }
    out
}

/// NDJSON file names of a leaf folder (not the log).
fn ndjson_files(leaf: &Path) -> BTreeSet<String> {
    file_names(leaf)
        .into_iter()
        .filter(|n| n.ends_with(".ndjson.gz") || n.ends_with(".ndjson"))
        .filter(|n| n != "log.ndjson")
        .collect()
}

/// Every file under `dir` (relative path → bytes), recursively.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        for name in file_names(&d) {
            let path = d.join(&name);
            if path.is_dir() {
                stack.push((path, format!("{rel}{name}/")));
            } else {
                out.insert(format!("{rel}{name}"), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

/// The export group (from the kickoff's export URL) and export time of a `log.ndjson`, as
/// Cumulus ETL reads them.
fn group_and_time(leaf: &Path) -> (String, String) {
    let events = log_events(&leaf.join("log.ndjson"));
    let kickoff = events
        .iter()
        .rev()
        .find(|e| e["eventId"] == "kickoff")
        .expect("a kickoff event");
    let url = kickoff["eventDetail"]["exportUrl"].as_str().expect("URL");
    let group = url
        .trim_end_matches("/$export")
        .rsplit('/')
        .next()
        .expect("group")
        .to_string();
    let time = events
        .iter()
        .find(|e| e["eventId"] == "status_complete")
        .and_then(|e| e["eventDetail"]["transactionTime"].as_str())
        .expect("transaction time")
        .to_string();
    (group, time)
}

/// The delta folder a user gets: the full export's deleted/ and log as they are, and a
/// manifest naming both exports.
fn assert_carries_over(q: &Quarters, delta_leaf: &Path) {
    let full = tree(&q.q2().join("deleted"));
    assert!(!full.is_empty(), "quarter 2 deletes resources");
    assert_eq!(tree(&delta_leaf.join("deleted")), full, "deleted/");
    assert_eq!(
        std::fs::read(delta_leaf.join("log.ndjson")).expect("log"),
        std::fs::read(q.q2().join("log.ndjson")).expect("log")
    );
    let (group, time) = group_and_time(delta_leaf);
    assert_eq!(
        (group.as_str(), time),
        ("MRN-000", group_and_time(&q.q2()).1)
    );
    let manifest = read_json(&delta_leaf.join("delta.json"));
    assert_eq!(manifest["current"]["name"], "002.q2");
    assert_eq!(manifest["previous"]["name"], "001.q1");
    assert_eq!(manifest["group"], "MRN-000");
    // Nothing else: no .metadata (a delta is no export), no error/ or state folders.
    let mut expected: BTreeSet<String> = ndjson_files(&q.q2());
    expected.extend(["log.ndjson", "delta.json", "deleted"].map(String::from));
    let names: BTreeSet<String> = file_names(delta_leaf).into_iter().collect();
    assert_eq!(names, expected);
}

#[test]
fn delta_holds_exactly_the_quarters_changes() {
    let q = quarters("delta-exact", &["--hydration-tasks", "none"]);
    let to = q.dir.join("deltas").join("MRN-000");
    let out = delta(&[p(&q.managed), "--nickname", "q2", "--to", p(&to)]);
    assert_success(&out);
    let leaf = to.join("002.q2");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("Wrote '{}'", leaf.display())) && stdout.contains("001.q1"),
        "{stdout}"
    );

    // Exactly fake-ehr's changes, type by type, each line as the full export wrote it.
    let expected = expected_searched(&q.list);
    let got = searched_lines(&leaf);
    let full = searched_lines(&q.q2());
    let got_ids: BTreeMap<String, BTreeSet<String>> = got
        .iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(t, lines)| (t.clone(), lines.keys().cloned().collect()))
        .collect();
    assert_eq!(got_ids, expected);
    for (ty, lines) in &got {
        for (id, line) in lines {
            assert_eq!(line, &full[ty][id], "{ty}/{id} as the full export has it");
        }
    }
    // Every kind of change is in there.
    let kept: BTreeSet<String> = got_ids
        .iter()
        .flat_map(|(t, ids)| ids.iter().map(move |id| format!("{t}/{id}")))
        .collect();
    for (kind, refs) in [
        ("new", &q.list.new),
        ("backfilled", &q.list.backfilled),
        ("modified", &q.list.modified),
        ("moved", &q.list.moved),
    ] {
        assert!(refs.iter().any(|r| kept.contains(r)), "{kind}");
    }
    assert!(
        q.list
            .reidentified
            .iter()
            .any(|(old, new)| kept.contains(new) && !kept.contains(old))
    );
    assert!(kept.contains("Patient/pat-000020") && kept.contains("Patient/pat-000006"));
    // A file for every file of the full export, the unchanged ones too.
    assert_carries_over(&q, &leaf);
    let total: usize = full.values().map(BTreeMap::len).sum();
    eprintln!(
        "delta keeps {} of {total} searched resources ({:.1} %)",
        kept.len(),
        kept.len() as f64 * 100.0 / total as f64
    );
    assert!(kept.len() < total / 2);

    // Again: nothing to do, nothing rewritten.
    let before = tree(&leaf);
    let again = delta(&[p(&q.managed), "--nickname", "q2", "--to", p(&to)]);
    assert_success(&again);
    assert!(text(&again.stdout).contains("Up to date"));
    assert_eq!(tree(&leaf), before);
    let _ = std::fs::remove_dir_all(&q.dir);
}

/// Type/id → parsed resource of every NDJSON file of a leaf folder; a resource held twice
/// with different content maps to `None` (no earlier content to compare with).
fn parsed_resources(leaf: &Path) -> BTreeMap<(String, String), Option<Value>> {
    let mut out: BTreeMap<(String, String), Option<Value>> = BTreeMap::new();
    for name in ndjson_files(leaf) {
        for line in read_lines(&leaf.join(&name)) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            let k = (
                v["resourceType"].as_str().expect("type").to_string(),
                v["id"].as_str().expect("id").to_string(),
            );
            match out.get(&k) {
                Some(Some(old)) if *old != v => {
                    out.insert(k, None);
                }
                Some(_) => {}
                None => {
                    out.insert(k, Some(v));
                }
            }
        }
    }
    out
}

#[test]
fn delta_of_hydrated_exports_keeps_every_new_or_changed_line() {
    // The default hydration: hydrated files and inlined notes are compared too.
    let q = quarters("delta-hydrated", &[]);
    let to = q.dir.join("deltas").join("MRN-000");
    assert_success(&delta(&[p(&q.managed), "--nickname", "q2", "--to", p(&to)]));
    let leaf = to.join("002.q2");

    // Every file: the full export's lines whose resource the earlier export did not hold
    // with the same parsed content (serde_json equality: keys in any order), in order.
    let before = parsed_resources(&q.q1());
    let mut empty_files = Vec::new();
    let mut hydrated_kept = 0;
    for name in ndjson_files(&q.q2()) {
        let full = read_lines(&q.q2().join(&name));
        let want: Vec<String> = full
            .into_iter()
            .filter(|line| {
                let v: Value = serde_json::from_str(line).expect("JSON line");
                let k = (
                    v["resourceType"].as_str().unwrap_or_default().to_string(),
                    v["id"].as_str().unwrap_or_default().to_string(),
                );
                !matches!(before.get(&k), Some(Some(old)) if *old == v)
            })
            .collect();
        let got = read_lines(&leaf.join(&name));
        assert_eq!(got, want, "{name}");
        if got.is_empty() {
            empty_files.push(name.clone());
        } else if name.matches('.').count() > 2 {
            hydrated_kept += got.len();
        }
    }
    assert!(!empty_files.is_empty(), "some types did not change");
    assert!(hydrated_kept > 0, "hydrated resources changed too");
    // The searched files still hold exactly fake-ehr's changes.
    let got: BTreeMap<String, BTreeSet<String>> = searched_lines(&leaf)
        .into_iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(t, lines)| (t, lines.into_keys().collect()))
        .collect();
    assert_eq!(got, expected_searched(&q.list));
    // Hydrated resources of a merged-away patient now name the survivor: changed.
    let held_q2 = parsed_resources(&q.q2());
    let kept_all = parsed_resources(&leaf);
    let mut moved_held = 0;
    for r in &q.list.hidden_moved {
        let (ty, id) = r.split_once('/').expect("reference");
        let k = (ty.to_string(), id.to_string());
        if held_q2.contains_key(&k) {
            moved_held += 1;
            assert!(kept_all.contains_key(&k), "{r}");
        }
    }
    assert!(moved_held > 0);
    assert_carries_over(&q, &leaf);
    eprintln!("unchanged files, empty in the delta: {empty_files:?}");

    etl_check(&q, &leaf);
    let _ = std::fs::remove_dir_all(&q.dir);
}

/// Cumulus ETL's own loader reads the delta: the export group, export time and deleted ids
/// of the full export; every type of the full export (unchanged ones with no rows); and
/// exactly the changed rows, each as the ETL reads it from the full export.
fn etl_check(q: &Quarters, leaf: &Path) {
    if std::env::var_os("CI").is_none() && std::env::var_os("SMART_FETCH_ETL_CHECK").is_none() {
        eprintln!("skipped: set SMART_FETCH_ETL_CHECK=1 (CI sets CI) to run the Cumulus ETL check");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etl-check.sh");
    let check = std::process::Command::new(&script)
        .arg("--rows")
        .arg(q.q2())
        .arg(leaf)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/etl-check.sh");
    // Exit 1 is expected: the two folders hold different rows.
    let stdout = text(&check.stdout);
    let found: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("etl-check output ({e}):\n{stdout}\n{}", text(&check.stderr)));
    let (full, delta) = (&found[0], &found[1]);
    for field in ["group", "exportTime", "exportUrl", "deleted"] {
        assert_eq!(delta[field], full[field], "{field}");
    }
    assert_eq!(delta["group"], "MRN-000");
    assert!(delta["deleted"].as_object().is_some_and(|d| {
        d.values()
            .any(|ids| ids.as_array().is_some_and(|a| !a.is_empty()))
    }));
    let full_types: BTreeSet<&String> = full["resources"]
        .as_object()
        .expect("types")
        .keys()
        .collect();
    let delta_types: BTreeSet<&String> = delta["resources"]
        .as_object()
        .expect("types")
        .keys()
        .collect();
    assert_eq!(
        delta_types, full_types,
        "every type has a file the ETL reads"
    );
    // The rows: the changed ones (as the test's own comparison found them), each as the
    // ETL reads it in the full export.
    let before = parsed_resources(&q.q1());
    let now = parsed_resources(&q.q2());
    let mut unchanged_types = 0;
    for ty in full_types {
        let want: BTreeSet<&String> = now
            .iter()
            .filter(|((t, _), _)| t == ty)
            .filter(|(k, v)| !matches!(before.get(*k), Some(Some(old)) if Some(old) == v.as_ref()))
            .map(|((_, id), _)| id)
            .collect();
        let rows = delta["resources"][ty]["rows"].as_object().expect("rows");
        let got: BTreeSet<&String> = rows.keys().collect();
        if ty != "Bundle" {
            assert_eq!(got, want, "{ty}");
        }
        for (id, digest) in rows {
            assert_eq!(digest, &full["resources"][ty]["rows"][id], "{ty}/{id}");
        }
        if rows.is_empty() {
            unchanged_types += 1;
        }
    }
    assert!(unchanged_types > 0);
}

/// A refusal: exit 1, one line on stderr, nothing on stdout, `to` not made.
fn assert_refused(out: &std::process::Output, to: &Path, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(!to.exists(), "{} was made", to.display());
}

#[test]
fn unlike_or_unfinished_exports_are_refused() {
    let ehr = epic_server();
    let dir = temp_dir("delta-refused");
    let mrns = mrn_file(&dir, "MRN-000", 6);
    let to = dir.join("deltas").join("MRN-000");

    // Different filters (types): refused.
    let filters = dir.join("filters");
    export(
        &ehr,
        &mrns,
        &filters,
        "q1",
        &["--type", "Patient,Condition", "--hydration-tasks", "none"],
    );
    export(
        &ehr,
        &mrns,
        &filters,
        "q2",
        &[
            "--type",
            "Patient,Condition,Encounter",
            "--hydration-tasks",
            "none",
        ],
    );
    let out = delta(&[p(&filters), "--nickname", "q2", "--to", p(&to)]);
    assert_refused(
        &out,
        &to,
        "different filters (not exported then, Encounter now)",
    );

    // Different hydration: refused.
    let hydration = dir.join("hydration");
    export(
        &ehr,
        &mrns,
        &hydration,
        "q1",
        &[
            "--type",
            "Patient,DiagnosticReport",
            "--hydration-tasks",
            "none",
        ],
    );
    export(
        &ehr,
        &mrns,
        &hydration,
        "q2",
        &[
            "--type",
            "Patient,DiagnosticReport",
            "--hydration-tasks",
            "observation",
        ],
    );
    let out = delta(&[p(&hydration), "--nickname", "q2", "--to", p(&to)]);
    assert_refused(
        &out,
        &to,
        "different hydration tasks (only the later ran dxr-results, obs-members)",
    );

    // An incomplete export (a search answered with cut-off JSON until fixed): refused.
    let failed = dir.join("failed");
    let like = ["--type", "Patient,Condition", "--hydration-tasks", "none"];
    export(&ehr, &mrns, &failed, "q1", &like);
    ehr.set_truncate(Some(TruncateSearch {
        resource_type: "Condition".into(),
        patient: data::patient_id(2),
    }));
    let out = export_with(run_quick_retries, &ehr, &mrns, &failed, "q2", &like);
    assert_eq!(out.status.code(), Some(3));
    let out = delta(&[p(&failed), "--nickname", "q2", "--to", p(&to)]);
    assert_refused(&out, &to, "002.q2' is not complete (failed)");
    // The earlier one incomplete (the quarter's is whole now): refused too.
    ehr.set_truncate(None);
    export(&ehr, &mrns, &failed, "q3", &like);
    let out = delta(&[p(&failed), "--nickname", "q3", "--to", p(&to)]);
    assert_refused(&out, &to, "The export before it");
    let q3_against_q1 = |to: &Path| {
        delta(&[
            p(&failed),
            "--nickname",
            "q3",
            "--previous",
            "q1",
            "--to",
            p(to),
        ])
    };
    assert_success(&q3_against_q1(&to));
    assert!(to.join("003.q3").join("delta.json").is_file());
    // A delta is not an export to take a delta of.
    let again = dir.join("again");
    let out = delta(&[p(&to), "--nickname", "q3", "--to", p(&again)]);
    assert_refused(&out, &again, "003.q3' is itself a delta, not an export.");
    std::fs::remove_dir_all(dir.join("deltas")).expect("clean up");

    // No export of that nickname; a destination inside the export folder.
    let out = delta(&[p(&failed), "--nickname", "q9", "--to", p(&to)]);
    assert_refused(&out, &to, "holds no export named 'q9'");
    let inside = failed.join("deltas");
    assert_refused(&q3_against_q1(&inside), &inside, "is inside");
    let other_group = filters.join("x");
    assert_refused(&q3_against_q1(&other_group), &other_group, "is inside");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_whole_output_root_status_and_archive() {
    let ehr = epic_server();
    let dir = temp_dir("delta-root");
    let root = dir.join("out");
    let like = [
        "--type",
        "Patient,Condition,Encounter",
        "--hydration-tasks",
        "none",
    ];
    // Two groups exported in both quarters, a third only in quarter 2 (a new group), a
    // fourth whose quarter-2 export failed.
    let groups: Vec<(String, PathBuf)> = (0..4)
        .map(|g| {
            let name = format!("MRN-00{g}");
            let path = dir.join(&name);
            let mrns: String = (g * 5..g * 5 + 5).map(|i| data::mrn(i) + "\n").collect();
            std::fs::write(&path, mrns).expect("write group file");
            (name, path)
        })
        .collect();
    for (name, file) in &groups[..2] {
        export(&ehr, file, &root.join(name), "q1", &like);
    }
    export(&ehr, &groups[3].1, &root.join(&groups[3].0), "q1", &like);
    ehr.set_quarter(2).expect("quarter 2");
    for (name, file) in &groups[..3] {
        export(&ehr, file, &root.join(name), "q2", &like);
    }
    ehr.set_truncate(Some(TruncateSearch {
        resource_type: "Condition".into(),
        patient: data::patient_id(15),
    }));
    let (name, file) = &groups[3];
    let out = export_with(run_quick_retries, &ehr, file, &root.join(name), "q2", &like);
    assert_eq!(out.status.code(), Some(3));

    let deltas = dir.join("deltas");
    let out = delta(&[p(&root), "--nickname", "q2", "--to", p(&deltas)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1 of 4 groups have no delta") && stderr.contains("MRN-003"),
        "{stderr}"
    );
    for (group, leaf) in [
        ("MRN-000", "002.q2"),
        ("MRN-001", "002.q2"),
        ("MRN-002", "001.q2"),
    ] {
        let delta_leaf = deltas.join(group).join(leaf);
        assert!(delta_leaf.join("delta.json").is_file(), "{group}");
        let full = root.join(group).join(leaf);
        // The new group's delta is its whole export.
        if group == "MRN-002" {
            assert_eq!(searched_lines(&delta_leaf), searched_lines(&full));
        }
    }
    assert!(!deltas.join("MRN-003").exists());

    // status reads the delta root; archive uploads it like an output root.
    let status = run(&["status", p(&deltas), "--nickname", "q2", "--json"]);
    assert_success(&status);
    let report: Value = serde_json::from_str(&text(&status.stdout)).expect("status JSON");
    let groups_seen: Vec<(&str, &str)> = report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap_or(""),
                g["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        groups_seen,
        [
            ("MRN-000", "complete"),
            ("MRN-001", "complete"),
            ("MRN-002", "complete")
        ]
    );
    assert_eq!(report["groups"][0]["leaf"]["delta"]["previous"], "001.q1");
    assert_eq!(
        report["groups"][2]["leaf"]["delta"]["previous"],
        Value::Null
    );
    let table = run(&["status", p(&deltas.join("MRN-000"))]);
    assert_success(&table);
    assert!(
        text(&table.stdout).contains("delta of 002.q2 against 001.q1"),
        "{}",
        text(&table.stdout)
    );

    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket folder");
    let archived = run(&[
        "archive",
        p(&deltas),
        "--nickname",
        "q2",
        "--to",
        p(&bucket),
    ]);
    assert_success(&archived);
    for (group, leaf) in [
        ("MRN-000", "002.q2"),
        ("MRN-001", "002.q2"),
        ("MRN-002", "001.q2"),
    ] {
        let local = tree(&deltas.join(group).join(leaf));
        let mut copied = tree(&bucket.join(group).join(leaf));
        copied.retain(|k, _| !k.starts_with(".smart-fetch-archive"));
        assert_eq!(copied, local, "{group}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
