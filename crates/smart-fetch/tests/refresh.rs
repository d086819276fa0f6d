//! Acceptance of quarterly refreshes (issue 5): a managed export of quarter 1 of the fake
//! EHR, then the same server (same URL) switched to quarter 2 — deleted, new and merged
//! patients, ID churn, modified and back-filled records (`fake_ehr::data::quarter_changes`)
//! — and a second export. Checked on the files a user's ETL reads: the searched NDJSON
//! files, `deleted/Bundle.<Type>.ndjson.gz` and `.metadata`.
//!
//! `deleted/` is held to fake-ehr's ground truth, worked out without smart-fetch:
//! `data::unreachable_in_quarter2` (what a client following references held in quarter 1
//! and can no longer reach: searchable resources gone, hidden Observations, Specimens and
//! EpisodesOfCare deleted or orphaned) limited to what the first export held, and, where
//! an export cannot compare lists (a since export), the references its hydration reads
//! that answer 404, simulated from the registry of `hydration_support`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod hydration_support;
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

/// No search failed (failures only show in `error/`, docs/crawl.md#failed-searches).
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
/// exact Bundle (docs/export.md#deleted-resources).
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
            (id, support::python::ndjson_line(&r))
        })
        .collect()
}

/// What a search of `ty` finds for patient `i` in `quarter`, as resources.
fn server_resources(i: usize, quarter: u8, ty: &str, epic: bool) -> Vec<Value> {
    server_lines(i, quarter, ty, epic)
        .into_values()
        .map(|l| serde_json::from_str(&l).expect("JSON line"))
        .collect()
}

/// Type → ids of every resource in every NDJSON file of `dir` (searched and hydrated).
fn all_ids(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    hydration_support::where_is(dir)
        .into_iter()
        .map(|(ty, keys)| {
            let ids = keys
                .into_keys()
                .map(|k| k.split_once('/').expect("Type/id").1.to_string())
                .collect();
            (ty, ids)
        })
        .collect()
}

/// Types Epic cannot search by patient: a client reaches them through references only.
fn reference_only(epic: bool) -> &'static [&'static str] {
    if epic {
        &["EpisodeOfCare", "Specimen"]
    } else {
        &[]
    }
}

/// fake-ehr's ground truth: what a client could reach in quarter 1 and cannot in quarter
/// 2, limited to what `held` (an earlier export's files) holds.
fn unreachable_and_held(
    epic: bool,
    held: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = by_type(&data::unreachable_in_quarter2(
        SEED,
        N,
        reference_only(epic),
    ));
    for (ty, gone) in out.iter_mut() {
        gone.retain(|id| held.get(ty).is_some_and(|h| h.contains(id)));
    }
    out.retain(|_, gone| !gone.is_empty());
    out
}

/// References (`Type/id`) that hydration with the tasks of `groups` (all when `None`)
/// reads in quarter 2 when an export's searches returned `start`, and that answer 404:
/// the reference tasks of the registry followed from `start` and from everything they
/// bring in, each reference read once, references to resources already held not read, and
/// `refused` ones read but not followed (the server refuses them).
fn answered_404(
    start: &[Value],
    groups: Option<&[&str]>,
    refused: &BTreeSet<String>,
) -> BTreeSet<String> {
    let tasks: Vec<hydration_support::Task> = hydration_support::registry()
        .into_iter()
        .filter(|t| !t.is_inline() && t.slug != "searched")
        .filter(|t| groups.is_none_or(|g| g.contains(&t.group.as_str())))
        .collect();
    let mut seen: BTreeSet<String> = start.iter().map(hydration_support::key_of).collect();
    let mut queue: Vec<Value> = start.to_vec();
    let mut gone = BTreeSet::new();
    while let Some(r) = queue.pop() {
        for task in tasks
            .iter()
            .filter(|t| r["resourceType"] == t.input.as_str())
        {
            let prefix = format!("{}/", task.output);
            for path in &task.paths {
                for reference in hydration_support::refs_at(&r, path) {
                    if !reference.starts_with(&prefix) || reference.len() == prefix.len() {
                        continue;
                    }
                    if !seen.insert(reference.to_string()) || refused.contains(reference) {
                        continue;
                    }
                    let (ty, id) = reference.split_once('/').expect("Type/id");
                    match data::resource_in_quarter(SEED, N, ty, id, 2) {
                        Some(found) => queue.push(found),
                        None => {
                            gone.insert(reference.to_string());
                        }
                    }
                }
            }
        }
    }
    gone
}

/// Adds `extra` (`Type/id`, limited to what `held` holds) to `expected`.
fn add_held(
    expected: &mut BTreeMap<String, BTreeSet<String>>,
    extra: &BTreeSet<String>,
    held: &BTreeMap<String, BTreeSet<String>>,
) {
    for (ty, ids) in by_type(extra) {
        for id in ids {
            if held.get(&ty).is_some_and(|h| h.contains(&id)) {
                expected.entry(ty.clone()).or_default().insert(id);
            }
        }
    }
}

/// Nothing `written` names is anywhere in `workdir` (no live resource is named), and no
/// shared resource is named (fake-ehr never deletes one).
fn assert_none_live(written: &BTreeMap<String, BTreeSet<String>>, workdir: &Path) {
    let now = all_ids(workdir);
    for (ty, ids) in written {
        assert!(
            !data::SHARED_POOLS.iter().any(|(t, _, _)| t == ty),
            "shared {ty} named: {ids:?}"
        );
        for id in ids {
            assert!(
                !now.get(ty).is_some_and(|n| n.contains(id)),
                "{ty}/{id} is named but exported"
            );
        }
    }
}

/// The workdir's `.metadata` `hydrationTasks`.
fn recorded_tasks(workdir: &Path) -> Vec<String> {
    let meta = read_json(&workdir.join(".metadata"));
    meta["hydrationTasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no hydrationTasks in {}", workdir.display()))
        .iter()
        .map(|v| v.as_str().expect("task name").to_string())
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

/// What a quarter-1 then quarter-2 refresh left.
struct Refresh {
    /// Type → ids the quarter-1 export held (every file).
    held: BTreeMap<String, BTreeSet<String>>,
    /// Type → ids the quarter-2 export names in `deleted/`.
    written: BTreeMap<String, BTreeSet<String>>,
    w2: PathBuf,
    /// The test folder `w2` is in (removed when the `Refresh` is dropped).
    _dir: TestDir,
}

/// Run a full export of quarter 1, switch the server, run a second full export, and check
/// that `deleted/` names exactly what is gone: deleted resources, the old ids of churned
/// ones, deleted or merged-away patients (with everything of a deleted patient), and
/// hidden resources deleted or no longer referenced, as far as the first export held them.
fn full_refresh(flavor: Flavor, extra: &[&str]) -> Refresh {
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
    let w1 = workdir(&out, "001");
    assert_no_errors(&w1);
    let q1 = searched(&w1);
    assert_eq!(ids(&q1, "Patient").len(), N);
    let held = all_ids(&w1);

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

    // What the server no longer has or leads to, limited to what the first export held.
    let expected = unreachable_and_held(epic, &held);
    let written = deleted(&w2);
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "deleted/ files"
    );
    for (ty, gone) in &expected {
        assert_eq!(&written[ty], gone, "deleted/Bundle.{ty}.ndjson.gz");
    }
    assert_none_live(&written, &w2);
    // The figures, for `--nocapture`: per type, ids named (of them hidden, `h…` ids).
    let figures: Vec<String> = written
        .iter()
        .map(|(ty, ids)| {
            let hidden = ids.iter().filter(|id| id.starts_with('h')).count();
            format!("{ty} {} ({hidden} hidden)", ids.len())
        })
        .collect();
    eprintln!(
        "{flavor:?} {extra:?}: deleted/ names {}",
        figures.join(", ")
    );
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
    Refresh {
        held,
        written,
        w2,
        _dir: dir,
    }
}

/// The default hydration: hidden resources of every hydrated type are named, both those
/// whose read now answers 404 and orphans that are still readable, and the workdir records
/// every task as complete.
fn assert_hydrated_types_named(r: &Refresh) {
    let named = |ty: &str, prefix: &str| -> Vec<String> {
        r.written
            .get(ty)
            .into_iter()
            .flatten()
            .filter(|id| id.starts_with(prefix))
            .cloned()
            .collect()
    };
    for (ty, prefix) in [
        ("Observation", "hobs-"),
        ("Specimen", "hspec-"),
        ("EpisodeOfCare", "heoc-"),
    ] {
        assert!(!named(ty, prefix).is_empty(), "no hidden {ty} named");
    }
    let readable = |id: &String| data::resource_in_quarter(SEED, N, "Observation", id, 2).is_some();
    let hidden = named("Observation", "hobs-");
    assert!(hidden.iter().any(readable), "an orphan: {hidden:?}");
    assert!(!hidden.iter().all(readable), "a 404: {hidden:?}");
    // Every reference task finished (a 404 is an answer); a note that could not be inlined
    // leaves its inline task out, which no comparison looks at.
    let tasks = recorded_tasks(&r.w2);
    for t in hydration_support::registry() {
        assert!(
            t.is_inline() || tasks.contains(&t.name),
            "{} {tasks:?}",
            t.name
        );
    }
}

#[test]
fn full_refresh_names_exactly_what_is_gone_bulk() {
    // The default hydration runs here: hidden resources are part of the ground truth.
    let r = full_refresh(Flavor::Generic, &[]);
    assert_hydrated_types_named(&r);
}

#[test]
fn full_refresh_names_exactly_what_is_gone_epic_crawl() {
    let r = full_refresh(Flavor::Epic, &["--hydration-tasks", "none"]);
    // Without hydration nothing hidden was exported, so nothing hydrated is named.
    for ty in ["EpisodeOfCare", "Specimen"] {
        assert!(!r.written.contains_key(ty), "{ty}");
    }
    let obs = r.written.get("Observation").cloned().unwrap_or_default();
    assert!(obs.iter().all(|id| id.starts_with("obs-")), "{obs:?}");
    assert!(recorded_tasks(&r.w2).is_empty());
}

/// Epic with the default hydration: EpisodeOfCare and Specimen are only hydrated there,
/// and Observations are also reached through reports and panels.
#[test]
fn full_refresh_names_hydrated_resources_epic_crawl() {
    let r = full_refresh(Flavor::Epic, &[]);
    assert_hydrated_types_named(&r);
    // A searchable Specimen or EpisodeOfCare no report or encounter points at any more is
    // out of an Epic export's reach: named like an orphan.
    let reach_only: BTreeSet<String> =
        data::unreachable_in_quarter2(SEED, N, &["Specimen", "EpisodeOfCare"])
            .difference(&data::unreachable_in_quarter2(SEED, N, &[]))
            .cloned()
            .collect();
    for k in &reach_only {
        let (ty, id) = k.split_once('/').expect("Type/id");
        if r.held.get(ty).is_some_and(|h| h.contains(id)) {
            assert!(r.written[ty].contains(id), "{k}");
        }
    }
}

/// A generic server crawled: Specimen and EpisodeOfCare are searched and hydrated.
#[test]
fn full_refresh_names_hydrated_resources_generic_crawl() {
    let r = full_refresh(Flavor::Generic, &["--export-mode", "crawl"]);
    assert_hydrated_types_named(&r);
}

/// Hydrated files are only compared between exports that ran the same tasks for the type:
/// after a full hydration, a refresh without hydration names only what its searches lost
/// (and nothing hydrated), and a later one with the observation tasks only compares its
/// Observations with the first export (the one in between ran other tasks), and hydrates
/// no Specimen or EpisodeOfCare to compare.
#[test]
fn narrower_hydration_is_never_compared() {
    let ehr = quarter_server(Flavor::Epic);
    let url = ehr.base_url();
    let dir = temp_dir("narrower");
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
    let run_export = |extra: &[&str], nickname: &str| -> PathBuf {
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .chain(["--nickname", nickname, p(&out)])
            .collect();
        export(&args);
        let w = workdir(
            &out,
            match nickname {
                "q1" => "001",
                "none" => "002",
                _ => "003",
            },
        );
        assert_no_errors(&w);
        w
    };
    let w1 = run_export(&[], "q1");
    let held = all_ids(&w1);
    let q1 = searched(&w1);
    ehr.set_quarter(2).expect("quarter 2");

    // No hydration: what the searches lost, nothing else.
    let w2 = run_export(&["--hydration-tasks", "none"], "none");
    let mut searched_held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ty in q1.keys() {
        searched_held.insert(ty.clone(), ids(&q1, ty));
    }
    let mut expected = unreachable_and_held(true, &searched_held);
    expected.remove("Patient");
    let mut written = deleted(&w2);
    assert_none_live(&written, &w2);
    assert!(written.remove("Patient").is_some());
    assert_eq!(written, expected);
    assert!(
        expected["Observation"]
            .iter()
            .all(|id| id.starts_with("obs-"))
    );

    // The observation tasks only: Observations compared with the first export, and every
    // Observation read that answers 404 named if an earlier export held it.
    let w3 = run_export(&["--hydration-tasks", "observation"], "obs");
    let mut start = Vec::new();
    for i in 0..data::patients_in_quarter(N, 2) {
        for ty in ALL_TYPES {
            if !matches!(ty, "EpisodeOfCare" | "Specimen") {
                start.extend(server_resources(i, 2, ty, true));
            }
        }
    }
    let gone_404 = answered_404(&start, Some(&["observation"]), &BTreeSet::new());
    let mut w1_hydrated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ty, ids) in &held {
        let searched_ids = searched_held.get(ty).cloned().unwrap_or_default();
        w1_hydrated.insert(ty.clone(), ids.difference(&searched_ids).cloned().collect());
    }
    let mut expected: BTreeMap<String, BTreeSet<String>> = unreachable_and_held(true, &w1_hydrated)
        .into_iter()
        .filter(|(ty, _)| ty == "Observation")
        .collect();
    add_held(&mut expected, &gone_404, &held);
    let written = deleted(&w3);
    assert_none_live(&written, &w3);
    assert_eq!(written, expected);
    assert!(
        written["Observation"]
            .iter()
            .any(|id| id.starts_with("hobs-")),
        "hidden Observations compared"
    );
    assert!(
        written["Observation"]
            .iter()
            .any(|id| id.starts_with("obs-")),
        "a searched Observation a report still points at, read: 404"
    );
    assert_eq!(
        recorded_tasks(&w3),
        ["dxr-results", "obs-members"].map(String::from)
    );
}

/// A hydration read that fails for another reason than 404/410 (here a 403) means the
/// task did not export its output in full, nor did the tasks that output feeds: a live
/// hidden Observation the server refuses is not named, Observations and Specimens are
/// not compared (only their 404s are named), EpisodesOfCare still are, and the workdir
/// records the tasks concerned as incomplete.
#[test]
fn a_refused_read_keeps_what_it_feeds_out_of_the_comparison() {
    let ehr = quarter_server(Flavor::Epic);
    let url = ehr.base_url();
    let dir = temp_dir("refused");
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
    let w1 = workdir(&out, "001");
    let held = all_ids(&w1);
    let q1 = searched(&w1);

    ehr.set_quarter(2).expect("quarter 2");
    let reach = data::reachable_in_quarter(SEED, N, 2, reference_only(true));
    let refused: String = reach
        .iter()
        .find(|k| {
            k.strip_prefix("Observation/")
                .is_some_and(|id| id.starts_with("hobs-") && held["Observation"].contains(id))
        })
        .expect("a live hidden Observation the first export held")
        .clone();
    ehr.set_refused_reads([refused.clone()]);
    let second: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--nickname", "q2", p(&out)])
        .collect();
    export(&second);
    let w2 = out.join("002.q2");
    assert_no_errors(&w2);

    let mut searched_held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ty in q1.keys() {
        searched_held.insert(ty.clone(), ids(&q1, ty));
    }
    let mut expected = unreachable_and_held(true, &searched_held);
    if let Some(episodes) = unreachable_and_held(true, &held).remove("EpisodeOfCare") {
        expected.insert("EpisodeOfCare".into(), episodes);
    }
    let mut start = Vec::new();
    for i in 0..data::patients_in_quarter(N, 2) {
        for ty in ALL_TYPES {
            if !matches!(ty, "EpisodeOfCare" | "Specimen") {
                start.extend(server_resources(i, 2, ty, true));
            }
        }
    }
    let refused_set: BTreeSet<String> = [refused.clone()].into();
    add_held(
        &mut expected,
        &answered_404(&start, None, &refused_set),
        &held,
    );
    let written = deleted(&w2);
    assert_none_live(&written, &w2);
    assert_eq!(written, expected);
    let (_, refused_id) = refused.split_once('/').expect("Type/id");
    assert!(!written["Observation"].contains(refused_id));
    // Orphans the first export held are out of reach now, yet not named: not compared.
    let orphans = unreachable_and_held(true, &held);
    let unnamed: Vec<&String> = orphans["Observation"]
        .iter()
        .filter(|id| data::resource_in_quarter(SEED, N, "Observation", id, 2).is_some())
        .filter(|id| !written["Observation"].contains(*id))
        .collect();
    assert!(!unnamed.is_empty(), "an orphan left unnamed");
    let tasks = recorded_tasks(&w2);
    for t in ["obs-members", "obs-spec", "obs-pract"] {
        assert!(!tasks.contains(&t.to_string()), "{t} is incomplete");
    }
    for t in ["enc-epofcare", "dxr-spec", "servreq-spec"] {
        assert!(tasks.contains(&t.to_string()), "{t} is complete");
    }
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
    let dir = temp_dir("since-bulk");
    let out = dir.join("out");
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
    let dir = temp_dir("since-updated");
    let out = dir.join("out");
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
                let line = support::python::ndjson_line(&r);
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

    // A since export compares no lists but its patients, which are looked up in full:
    // what it names besides them is what its hydration read and found gone (404), as far
    // as the first export held it.
    let w1_held = all_ids(&w1);
    let start: Vec<Value> = expected
        .values()
        .flat_map(|m| m.values())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let mut want = BTreeMap::new();
    add_held(
        &mut want,
        &answered_404(&start, None, &BTreeSet::new()),
        &w1_held,
    );
    let mut written = deleted(&w2);
    assert_none_live(&written, &w2);
    let patients = written.remove("Patient").expect("deleted patients");
    for id in &patients {
        let i = data::patient_index_from_id(id).expect("patient id");
        assert!(!data::exists_in_quarter(N, i, 2), "{id} still exists");
    }
    assert_eq!(patients.len(), 4);
    assert_eq!(written, want);
    assert!(
        want.get("Observation")
            .is_some_and(|o| o.iter().any(|id| id.starts_with("hobs-"))),
        "{want:?}"
    );

    // A full export after it compares with the last full export and every since export
    // since (like with like, hydrated files included): everything gone since quarter 1,
    // except the patients the since export already named.
    let third: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--nickname", "full", p(&out)])
        .collect();
    export(&third);
    let w3 = out.join("003.full");
    assert_no_errors(&w3);
    let mut expected = unreachable_and_held(false, &w1_held);
    expected.remove("Patient");
    let written = deleted(&w3);
    assert_none_live(&written, &w3);
    assert_eq!(written, expected);
}

/// Whether Epic searches `t` by a created date in created mode (the others are exported in
/// full).
fn created_field(t: &str) -> bool {
    !matches!(
        t,
        "Patient" | "Encounter" | "Device" | "Immunization" | "MedicationDispense" | "Procedure"
    )
}

/// `--since auto` on Epic becomes created mode: types without a created-date field are
/// exported in full and compared, the others are not, EpisodeOfCare and Specimen are never
/// searched, hydrated resources are named only when their read answers 404 — and nothing
/// that still exists is named in `deleted/`. New and surviving
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
        let want: BTreeSet<String> = (0..data::patients_in_quarter(N, 2))
            .filter(|i| !created_field(t) || fresh.contains(i))
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
    // Types searched in full are compared, and nothing gone is missed. Of the others,
    // only what hydration read and found gone (404) is named, as far as the first export
    // held it; a 404 we never exported (a report's missing result, a gone practitioner)
    // is not.
    let removed = by_type(&data::removed_in_quarter2(SEED, N));
    let full = [
        "Patient",
        "Encounter",
        "Device",
        "Immunization",
        "MedicationDispense",
        "Procedure",
    ];
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ty in full {
        let mut gone = removed.get(ty).cloned().unwrap_or_default();
        gone.retain(|id| ids(&q1, ty).contains(id));
        if !gone.is_empty() {
            want.insert(ty.to_string(), gone);
        }
    }
    let mut start = Vec::new();
    for t in ALL_TYPES {
        if matches!(t, "EpisodeOfCare" | "Specimen") {
            continue;
        }
        for i in 0..data::patients_in_quarter(N, 2) {
            if !created_field(t) || fresh.contains(&i) {
                start.extend(server_resources(i, 2, t, true));
            }
        }
    }
    let gone_404 = answered_404(&start, None, &BTreeSet::new());
    let held = all_ids(&workdir(&out, "001"));
    add_held(&mut want, &gone_404, &held);
    assert_eq!(written, want);
    assert_none_live(&written, &w2);
    for hydrated in ["EpisodeOfCare", "Observation"] {
        let named = written.get(hydrated).cloned().unwrap_or_default();
        assert!(!named.is_empty(), "{hydrated}: hydration's 404s");
    }
    for never in ["Practitioner/prac-gone-1", "Observation/hobs-000020-99"] {
        assert!(gone_404.contains(never), "{never} was read");
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
