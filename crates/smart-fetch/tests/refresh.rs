//! Acceptance of quarterly refreshes (issue 5): a managed export of quarter 1 of the fake
//! EHR, then the same server (same URL) switched to quarter 2 — deleted, new and merged
//! patients, ID churn, modified and back-filled records (`fake_ehr::data::quarter_changes`)
//! — and a second export. Checked on the files a user's ETL reads: the searched NDJSON
//! files, `deleted/Bundle.<Type>.ndjson.gz` and `.metadata`.

mod support;

use fake_ehr::data::{self, Fate};
use fake_ehr::{Config, Flavor, Server};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::*;

const SEED: u64 = 1;
/// Quarter-1 patients; quarter 2 adds two (20 and 21), deletes 3 and 13, and merges 7
/// into 6 and 17 into 16.
const N: usize = 20;

type Snapshot = BTreeMap<String, BTreeMap<String, String>>;

fn quarter_server(flavor: Flavor) -> Server {
    server_with(Config {
        flavor,
        patients: N,
        seed: SEED,
        ..Config::default()
    })
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn export(args: &[&str]) -> String {
    let out = run(args);
    assert_success(&out);
    text(&out.stdout)
}

/// The only subfolder of `out` whose name starts with `<number>.`.
fn workdir(out: &Path, number: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("list managed folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p.is_symlink()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{number}.")))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {number}.* workdir in {}",
        out.display()
    );
    found[0].clone()
}

/// No search failed (failures only show in `error/`, spec §13.7).
fn assert_no_errors(workdir: &Path) {
    let error = workdir.join("error");
    assert!(
        !error.exists(),
        "searches failed: {:?}",
        error.exists().then(|| file_names(&error))
    );
}

/// Resources of the files a search or bulk export wrote (`<T>.ndjson.gz`,
/// `<T>.NNN.ndjson.gz`), not hydration outputs (`Observation.results…`).
fn searched(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    for name in file_names(dir) {
        let Some((ty, rest)) = name.split_once('.') else {
            continue;
        };
        let searched_file = rest == "ndjson.gz"
            || rest
                .strip_suffix(".ndjson.gz")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !searched_file || ty == "log" {
            continue;
        }
        for line in read_lines(&dir.join(&name)) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            assert_eq!(v["resourceType"], ty, "{name}");
            let id = v["id"].as_str().expect("id").to_string();
            let before = out.entry(ty.to_string()).or_default().insert(id, line);
            assert!(before.is_none(), "{ty} written twice in {name}");
        }
    }
    out
}

/// Type → ids named by `deleted/Bundle.<Type>.ndjson.gz`, each line checked to be the
/// exact Bundle the spec gives (§14.8).
fn deleted(workdir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let dir = workdir.join("deleted");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for name in file_names(&dir) {
        let ty = name
            .strip_prefix("Bundle.")
            .and_then(|n| n.strip_suffix(".ndjson.gz"))
            .unwrap_or_else(|| panic!("unexpected file deleted/{name}"))
            .to_string();
        for line in read_lines(&dir.join(&name)) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            let url = v["entry"][0]["request"]["url"].as_str().expect("url");
            let (t, id) = url.split_once('/').expect("Type/id");
            assert_eq!(t, ty, "{name}: {line}");
            let exact = format!(
                r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"request":{{"method":"DELETE","url":"{url}"}}}}]}}"#
            );
            assert_eq!(line, exact);
            assert!(out.entry(ty.clone()).or_default().insert(id.to_string()));
        }
    }
    out
}

/// Group `Type/id` references by type.
fn by_type<'a>(refs: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in refs {
        let (t, id) = r.split_once('/').expect("Type/id");
        out.entry(t.to_string()).or_default().insert(id.to_string());
    }
    out
}

fn changes() -> Vec<(usize, data::Changes)> {
    (0..data::patients_in_quarter(N, 2))
        .map(|i| (i, data::quarter_changes(SEED, N, i).expect("changes")))
        .collect()
}

fn ids(snapshot: &Snapshot, ty: &str) -> BTreeSet<String> {
    snapshot
        .get(ty)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Patients whose full history a since export must hold: new MRNs and merge survivors.
fn new_patients() -> BTreeSet<usize> {
    changes()
        .into_iter()
        .filter(|(_, c)| matches!(c.fate, Fate::New | Fate::Absorbs(_)))
        .map(|(i, _)| i)
        .collect()
}

fn in_categories(obs: &Value, epic: bool) -> bool {
    let extra = ["procedure", "therapy", "activity"];
    obs["category"][0]["coding"][0]["code"]
        .as_str()
        .is_some_and(|c| EPIC_CATEGORIES.contains(&c) || (!epic && extra.contains(&c)))
}

/// What a search of `ty` finds for patient `i` in `quarter`, as written lines.
fn server_lines(i: usize, quarter: u8, ty: &str, epic: bool) -> BTreeMap<String, String> {
    data::patient_resources_in_quarter(SEED, N, i, quarter)
        .into_iter()
        .filter(|r| r["resourceType"] == ty)
        .filter(|r| ty != "Observation" || in_categories(r, epic))
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            (id, smart_fetch::json::to_ndjson_line(&r))
        })
        .collect()
}

/// A written line as the server's resource: hydration inlines attachments of reports and
/// notes in place (data, size, hash, charset), so those are left out of the comparison.
fn as_sent(line: &str) -> Value {
    let mut v: Value = serde_json::from_str(line).expect("JSON line");
    if let Some(map) = v.as_object_mut() {
        map.remove("presentedForm");
        map.remove("content");
    }
    v
}

fn assert_holds(snapshot: &Snapshot, ty: &str, expected: &BTreeMap<String, String>, what: &str) {
    let have = snapshot.get(ty).cloned().unwrap_or_default();
    for (id, line) in expected {
        let got = have
            .get(id)
            .unwrap_or_else(|| panic!("{what}: {ty}/{id} missing"));
        assert_eq!(
            as_sent(got),
            as_sent(line),
            "{what}: {ty}/{id} is not the quarter-2 version"
        );
    }
}

/// `actual` holds exactly the resources of `expected` (see [`as_sent`]).
fn assert_exactly(actual: &Snapshot, expected: &Snapshot) {
    let types: BTreeSet<&String> = actual.keys().chain(expected.keys()).collect();
    for ty in types {
        let a: BTreeSet<&String> = actual.get(ty).into_iter().flat_map(|m| m.keys()).collect();
        let e: BTreeSet<&String> = expected
            .get(ty)
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        let missing: Vec<_> = e.difference(&a).take(5).collect();
        let extra: Vec<_> = a.difference(&e).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{ty}: {} expected, {} written; missing {missing:?}, unexpected {extra:?}",
            e.len(),
            a.len()
        );
        if let Some(lines) = expected.get(ty) {
            assert_holds(actual, ty, lines, "export");
        }
    }
}

/// Run a full export of quarter 1, switch the server, run a second full export, and check
/// that `deleted/` names exactly what is gone: deleted resources, the old ids of churned
/// ones, and deleted or merged-away patients (with everything of a deleted patient).
fn full_refresh(flavor: Flavor, extra: &[&str]) {
    let epic = flavor == Flavor::Epic;
    let ehr = quarter_server(flavor);
    let url = ehr.base_url();
    let dir = temp_dir("full-refresh");
    let out = dir.join("out");
    let mrns = mrn_file(&dir, "cohort.txt", data::patients_in_quarter(N, 2));
    let mut args = vec!["export", "--fhir-url", &url];
    if epic {
        args.extend(["--id-file", p(&mrns), "--id-system", data::MRN_SYSTEM]);
    }
    args.extend_from_slice(extra);
    let first: Vec<&str> = args.iter().copied().chain([p(&out)]).collect();
    export(&first);
    assert_no_errors(&workdir(&out, "001"));
    let q1 = searched(&workdir(&out, "001"));
    assert_eq!(ids(&q1, "Patient").len(), N);

    ehr.set_quarter(2).expect("quarter 2");
    let second: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--nickname", "q2", p(&out)])
        .collect();
    let stdout = export(&second);
    let w2 = out.join("002.q2");
    assert_no_errors(&w2);
    let q2 = searched(&w2);

    // What the server no longer has, limited to what the first export held.
    let removed = data::removed_in_quarter2(SEED, N);
    let mut expected = by_type(&removed);
    for (ty, gone) in expected.iter_mut() {
        gone.retain(|id| ids(&q1, ty).contains(id));
    }
    if epic {
        // Never searched on Epic (hydrated instead), so never compared.
        expected.remove("EpisodeOfCare");
        expected.remove("Specimen");
    }
    expected.retain(|_, gone| !gone.is_empty());
    let written = deleted(&w2);
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "deleted/ files"
    );
    for (ty, gone) in &expected {
        assert_eq!(&written[ty], gone, "deleted/Bundle.{ty}.ndjson.gz");
        // And every one of them really was there and is gone now.
        for id in gone {
            assert!(!ids(&q2, ty).contains(id), "{ty}/{id} still exported");
        }
    }
    assert_eq!(
        written["Patient"],
        ["pat-000003", "pat-000007", "pat-000013", "pat-000017"]
            .map(String::from)
            .into()
    );
    // Every kind of change is in there: deletions and churn of several types.
    let churned: BTreeSet<String> = changes()
        .into_iter()
        .flat_map(|(_, c)| c.churned.into_iter().map(|(old, _)| old))
        .collect();
    assert!(churned.iter().any(|r| {
        let (t, id) = r.split_once('/').unwrap_or_default();
        written.get(t).is_some_and(|ids| ids.contains(id))
    }));
    assert!(
        written.len() >= 8,
        "deletions of many types: {:?}",
        written.keys()
    );

    // The second export holds quarter 2 in full, new patients included.
    let patients: BTreeSet<String> = (0..data::patients_in_quarter(N, 2))
        .filter(|&i| data::exists_in_quarter(N, i, 2))
        .map(data::patient_id)
        .collect();
    assert_eq!(ids(&q2, "Patient"), patients);
    if epic {
        assert!(stdout.contains("Count of deleted patients: 4."), "{stdout}");
    }
}

#[test]
fn full_refresh_names_exactly_what_is_gone_bulk() {
    full_refresh(Flavor::Generic, &[]);
}

#[test]
fn full_refresh_names_exactly_what_is_gone_epic_crawl() {
    full_refresh(Flavor::Epic, &["--hydration-tasks", "none"]);
}

/// Every `Type/id` the files of `workdir/deleted/` name, whatever their names (a bulk
/// export's are the server's own, `Bundle.NNN.ndjson.gz`).
fn deleted_anywhere(workdir: &Path) -> BTreeSet<String> {
    let dir = workdir.join("deleted");
    let mut out = BTreeSet::new();
    if !dir.exists() {
        return out;
    }
    for name in file_names(&dir) {
        for line in read_lines(&dir.join(&name)) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            for entry in v["entry"].as_array().expect("entries") {
                assert_eq!(entry["request"]["method"], "DELETE", "{name}: {line}");
                let url = entry["request"]["url"].as_str().expect("url");
                assert!(out.insert(url.to_string()), "{url} named twice");
            }
        }
    }
    out
}

/// `--since auto` on a bulk server: the export holds what changed in quarter 2, and
/// `deleted/` holds the server's own report of what is gone (the manifest's `deleted`
/// files: quarter 2's deletions, churned-away ids, deleted and merged-away patients).
#[test]
fn since_auto_bulk_keeps_the_servers_deletion_report() {
    // The server's export clock is its data's: quarter 1 ends before quarter 2's changes
    // (a real server's transaction time would be the wall clock, and its changes later).
    let ehr = server_with(Config {
        flavor: Flavor::Generic,
        patients: N,
        seed: SEED,
        bulk: fake_ehr::BulkConfig {
            transaction_time: Some("2025-12-31T00:00:00.000+00:00".into()),
            ..fake_ehr::BulkConfig::default()
        },
        ..Config::default()
    });
    let url = ehr.base_url();
    let out = temp_dir("since-bulk").join("out");
    let base = ["export", "--fhir-url", &url, "--hydration-tasks", "none"];
    let first: Vec<&str> = base.iter().copied().chain([p(&out)]).collect();
    export(&first);
    let q1 = searched(&workdir(&out, "001"));

    ehr.set_quarter(2).expect("quarter 2");
    let second: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--nickname", "q2", "--since", "auto", p(&out)])
        .collect();
    export(&second);
    let w2 = out.join("002.q2");
    assert_no_errors(&w2);
    let q2 = searched(&w2);

    let exported: BTreeSet<&str> = q1.keys().map(String::as_str).collect();
    let expected: BTreeSet<String> = data::removed_in_quarter2(SEED, N)
        .into_iter()
        .filter(|r| r.split('/').next().is_some_and(|t| exported.contains(t)))
        .collect();
    assert!(expected.contains("Patient/pat-000003"));
    assert_eq!(deleted_anywhere(&w2), expected);

    // What changed is there: modified and back-filled records, the new ids of churned ones.
    // (New patients' records carry old dates in fake-ehr, so `_since` does not return them;
    // finding those is what crawls do, see `since_auto_updated_crawl_holds_every_change`.)
    for (_, c) in changes() {
        let changed = c
            .modified
            .iter()
            .chain(c.churned.iter().map(|(_, new)| new))
            .chain(&c.backfilled);
        for r in changed {
            let (t, id) = r.split_once('/').expect("Type/id");
            if exported.contains(t) {
                assert!(ids(&q2, t).contains(id), "{r} is not in the since export");
            }
        }
    }
}

/// `--since auto` in updated mode (generic flavor, crawl): the export holds every modified,
/// churned and back-filled resource and the full history of new and merge-survivor
/// patients, nothing else of the kept patients, and its `deleted/` names only the patients
/// that are gone.
#[test]
fn since_auto_updated_crawl_holds_every_change() {
    let ehr = quarter_server(Flavor::Generic);
    let url = ehr.base_url();
    let out = temp_dir("since-updated").join("out");
    let base = ["export", "--fhir-url", &url, "--export-mode", "crawl"];
    let first: Vec<&str> = base.iter().copied().chain([p(&out)]).collect();
    export(&first);
    let w1 = workdir(&out, "001");
    let done = read_json(&w1.join(".metadata"))["done"].clone();

    ehr.set_quarter(2).expect("quarter 2");
    let second: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--since", "auto", p(&out)])
        .collect();
    let stdout = export(&second);
    for t in ALL_TYPES {
        let since = done[t].as_str().unwrap_or_else(|| panic!("{t} done"));
        assert!(
            stdout.contains(&format!("Using since value of '{since}' for {t}.")),
            "{t}: {stdout}"
        );
    }
    let w2 = workdir(&out, "002");
    assert_no_errors(&w1);
    assert_no_errors(&w2);
    let meta = read_json(&w2.join(".metadata"));
    assert_eq!(meta["since"], "auto");
    assert_eq!(meta["sinceMode"], "updated");
    let got = searched(&w2);

    // Kept patients: exactly their changes. New and surviving patients: everything.
    let fresh = new_patients();
    let mut expected = Snapshot::new();
    for (i, c) in changes() {
        if fresh.contains(&i) {
            for t in ALL_TYPES {
                expected
                    .entry(t.to_string())
                    .or_default()
                    .extend(server_lines(i, 2, t, false));
            }
            continue;
        }
        if !data::exists_in_quarter(N, i, 2) {
            continue;
        }
        let q2 = data::patient_resources_in_quarter(SEED, N, i, 2);
        let changed: BTreeSet<&String> = c
            .modified
            .iter()
            .chain(&c.backfilled)
            .chain(c.churned.iter().map(|(_, new)| new))
            .collect();
        for r in q2 {
            let t = r["resourceType"].as_str().unwrap_or_default().to_string();
            let id = r["id"].as_str().unwrap_or_default().to_string();
            // Patients are always looked up in full (never since-filtered).
            if changed.contains(&format!("{t}/{id}")) || t == "Patient" {
                let line = smart_fetch::json::to_ndjson_line(&r);
                expected.entry(t).or_default().insert(id, line);
            }
        }
    }
    expected.retain(|_, m| !m.is_empty());
    assert_exactly(&got, &expected);

    let mut want_new: Vec<String> = fresh.iter().map(|&i| data::patient_id(i)).collect();
    want_new.sort();
    assert_eq!(meta["newPatients"], serde_json::json!(want_new));
    assert!(
        stdout.contains(&format!("Count of new patients: {}.", want_new.len())),
        "{stdout}"
    );

    // Only patients are compared in a since export, and only the ones really gone.
    let written = deleted(&w2);
    assert_eq!(written.keys().collect::<Vec<_>>(), ["Patient"]);
    for id in &written["Patient"] {
        let i = data::patient_index_from_id(id).expect("patient id");
        assert!(!data::exists_in_quarter(N, i, 2), "{id} still exists");
    }
    assert_eq!(written["Patient"].len(), 4);

    // A full export after it compares with the last full export and every since export
    // since (like with like): everything gone since quarter 1, except the patients the
    // since export already named.
    let q1 = searched(&w1);
    let third: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--nickname", "full", p(&out)])
        .collect();
    export(&third);
    let w3 = out.join("003.full");
    assert_no_errors(&w3);
    let mut expected = by_type(&data::removed_in_quarter2(SEED, N));
    expected.remove("Patient");
    for (ty, gone) in expected.iter_mut() {
        gone.retain(|id| ids(&q1, ty).contains(id));
    }
    expected.retain(|_, gone| !gone.is_empty());
    assert_eq!(deleted(&w3), expected);
}

/// `--since auto` on Epic becomes created mode: types without a created-date field are
/// exported in full and compared, the others are not, EpisodeOfCare and Specimen are never
/// searched — and nothing that still exists is named in `deleted/`. New and surviving
/// patients get their full history.
#[test]
fn since_auto_created_on_epic_reports_no_false_deletions() {
    let ehr = quarter_server(Flavor::Epic);
    let url = ehr.base_url();
    let dir = temp_dir("since-created");
    let out = dir.join("out");
    let mrns = mrn_file(&dir, "cohort.txt", data::patients_in_quarter(N, 2));
    let base = [
        "export",
        "--fhir-url",
        &url,
        "--id-file",
        p(&mrns),
        "--id-system",
        data::MRN_SYSTEM,
    ];
    let first: Vec<&str> = base.iter().copied().chain([p(&out)]).collect();
    export(&first);
    let q1 = searched(&workdir(&out, "001"));

    ehr.set_quarter(2).expect("quarter 2");
    let second: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--since", "auto", p(&out)])
        .collect();
    let stdout = export(&second);
    assert!(
        stdout.contains(
            "Server doesn't support 'updated' since mode, defaulting to 'created' instead."
        ),
        "{stdout}"
    );
    let w2 = workdir(&out, "002");
    assert_no_errors(&workdir(&out, "001"));
    assert_no_errors(&w2);
    let meta = read_json(&w2.join(".metadata"));
    assert_eq!(meta["sinceMode"], "created");
    let got = searched(&w2);

    // Types without a created-date field hold all of quarter 2; the others only what new
    // and surviving patients have (every other created date is older than quarter 1's
    // done time, back-filled records included: created mode cannot see those).
    let fresh = new_patients();
    for t in ALL_TYPES {
        if matches!(t, "EpisodeOfCare" | "Specimen") {
            assert!(!got.contains_key(t), "{t} is not searched on Epic");
            continue;
        }
        let created_field = !matches!(
            t,
            "Patient"
                | "Encounter"
                | "Device"
                | "Immunization"
                | "MedicationDispense"
                | "Procedure"
        );
        let want: BTreeSet<String> = (0..data::patients_in_quarter(N, 2))
            .filter(|i| !created_field || fresh.contains(i))
            .flat_map(|i| server_lines(i, 2, t, true).into_keys())
            .collect();
        assert_eq!(ids(&got, t), want, "{t}");
    }

    // Nothing named in deleted/ still exists on the server.
    let written = deleted(&w2);
    for (ty, gone) in &written {
        for id in gone {
            assert!(
                data::resource_in_quarter(SEED, N, ty, id, 2).is_none(),
                "false deletion: {ty}/{id}"
            );
        }
    }
    // Types searched in full are compared, and nothing gone is missed.
    let removed = by_type(&data::removed_in_quarter2(SEED, N));
    let full = [
        "Patient",
        "Encounter",
        "Device",
        "Immunization",
        "MedicationDispense",
        "Procedure",
    ];
    for ty in written.keys() {
        assert!(full.contains(&ty.as_str()), "{ty} was not exported in full");
    }
    for ty in full {
        let mut want = removed.get(ty).cloned().unwrap_or_default();
        want.retain(|id| ids(&q1, ty).contains(id));
        assert_eq!(
            written.get(ty).cloned().unwrap_or_default(),
            want,
            "deleted/Bundle.{ty}.ndjson.gz"
        );
    }

    // Full history for new MRNs and merge survivors, in the created-date types too.
    for i in new_patients() {
        for t in ALL_TYPES {
            if matches!(t, "EpisodeOfCare" | "Specimen") {
                continue;
            }
            let what = format!("patient {i}");
            assert_holds(&got, t, &server_lines(i, 2, t, true), &what);
        }
    }
    assert!(stdout.contains("Count of new patients: 4."), "{stdout}");
    assert!(stdout.contains("Count of deleted patients: 4."), "{stdout}");
}
