//! `status` over an output root as a quarterly multi-group export leaves it, built with the
//! real binary against the fake EHR: groups exported whole twice (`001.q1`, `002.q2`), one
//! with a failed search accepted (and run again: that type still names nothing deleted),
//! one whose search failed (exit 3), one whose hydration read
//! failed (exit 3), one exported only in q1, one written like the Python tool writes, an
//! empty group folder and a folder that is no group. Every expectation is computed here
//! from the folders themselves (lines of the gz files counted by this test, folders listed
//! by it), never by the code under test; and status must leave the tree byte for byte as it
//! was.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{Config, Flavor, TruncateSearch, data};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::python::{PythonCrawl, WRITTEN_AT, write_python_export};
use support::*;

const SEED: u64 = 1;
const N: usize = 20;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn mrns(dir: &Path, name: &str, indices: std::ops::Range<usize>) -> PathBuf {
    let path = dir.join(name);
    let text: String = indices.map(|i| data::mrn(i) + "\n").collect();
    std::fs::write(&path, text).expect("write MRN file");
    path
}

fn export(url: &str, mrn_file: &Path, nickname: &str, group: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        "--fhir-url",
        url,
        "--id-system",
        data::MRN_SYSTEM,
        "--id-file",
        p(mrn_file),
        "--nickname",
        nickname,
    ];
    args.extend_from_slice(extra);
    args.push(p(group));
    run_quick_retries(&args)
}

fn status(args: &[&str]) -> Output {
    let mut argv = vec!["status"];
    argv.extend_from_slice(args);
    run(&argv)
}

/// The first patient among `indices` with Conditions in quarter 2.
fn with_conditions(indices: std::ops::Range<usize>) -> String {
    indices
        .into_iter()
        .find(|&i| {
            data::patient_resources_in_quarter(SEED, N, i, 2)
                .iter()
                .any(|r| r["resourceType"] == "Condition")
        })
        .map(data::patient_id)
        .expect("a patient with Conditions")
}

/// Type → lines, over the NDJSON files directly in a leaf folder (the type is the file
/// name up to its first dot, as both tools name their files), and over `deleted/` (the
/// type is the second part of `Bundle.<Type>.ndjson.gz`; one entry per line).
fn count_leaf(leaf: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut resources = BTreeMap::new();
    for name in file_names(leaf) {
        let path = leaf.join(&name);
        let ndjson = name.ends_with(".ndjson.gz") || name.ends_with(".ndjson");
        if !path.is_file() || !ndjson || name == "log.ndjson" {
            continue;
        }
        let t = name.split('.').next().unwrap_or_default().to_string();
        *resources.entry(t).or_default() += read_lines(&path).len() as u64;
    }
    let mut deleted = BTreeMap::new();
    let dir = leaf.join("deleted");
    if dir.is_dir() {
        for name in file_names(&dir) {
            let t = name.split('.').nth(1).unwrap_or_default().to_string();
            *deleted.entry(t).or_default() += read_lines(&dir.join(&name)).len() as u64;
        }
    }
    (resources, deleted)
}

fn counts(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object of counts: {value}"))
        .iter()
        .map(|(t, n)| (t.clone(), n.as_u64().expect("a count")))
        .collect()
}

/// Every entry under `dir` (links not followed): a file's SHA-256 and modification time,
/// a link's target, a folder's modification time (a file made and removed again changes
/// it).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).expect("stat");
        let rel = d.strip_prefix(dir).expect("under").display().to_string();
        out.insert(format!("{rel}/"), format!("dir {:?}", meta.modified().ok()));
        for entry in std::fs::read_dir(&d).expect("list").filter_map(Result::ok) {
            let path = entry.path();
            let rel = path.strip_prefix(dir).expect("under").display().to_string();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("read link");
                out.insert(rel, format!("link {}", target.display()));
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                let hash: String = Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(rel, format!("file {hash} {:?}", meta.modified().ok()));
            }
        }
    }
    out
}

fn parse_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", text(&out.stdout)))
}

fn group<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {report}"))
}

/// A complete leaf folder as this test counts it: the JSON's leaf holds the same counts.
fn assert_counts(leaf_json: &Value, leaf: &Path) {
    let (resources, deleted) = count_leaf(leaf);
    assert_eq!(
        counts(&leaf_json["resources"]),
        resources,
        "{}",
        leaf.display()
    );
    assert_eq!(counts(&leaf_json["deleted"]), deleted, "{}", leaf.display());
    assert_eq!(
        leaf_json["patients"].as_u64(),
        Some(resources.get("Patient").copied().unwrap_or(0))
    );
    assert_eq!(
        leaf_json["resourcesTotal"].as_u64(),
        Some(resources.values().sum())
    );
}

#[test]
fn status_reports_every_group_and_changes_nothing() {
    let dir = temp_dir("status");
    let root = dir.join("out");
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: N,
        seed: SEED,
        ..Config::default()
    });
    let url = ehr.base_url();
    let g = |name: &str| root.join(name);

    // Quarter 1: three groups exported whole.
    let a = mrns(&dir, "MRN-000", 0..5);
    let b = mrns(&dir, "MRN-001", 5..10);
    let d = mrns(&dir, "MRN-003", 14..17);
    for (file, name) in [(&a, "MRN-000"), (&b, "MRN-001"), (&d, "MRN-003")] {
        assert_success(&export(&url, file, "q1", &g(name), &[]));
    }

    // Quarter 2.
    ehr.set_quarter(2).expect("quarter 2");
    assert_success(&export(&url, &a, "q2", &g("MRN-000"), &[]));
    // A failed search accepted: complete, and the summary says what was accepted.
    ehr.set_truncate(Some(TruncateSearch {
        resource_type: "Condition".into(),
        patient: with_conditions(5..10),
    }));
    let accepted = export(&url, &b, "q2", &g("MRN-001"), &["--allow-incomplete"]);
    assert_success(&accepted);
    assert!(!g("MRN-001/002.q2/deleted/Bundle.Condition.ndjson.gz").exists());
    // The same command again, the server fixed: the done type is not searched again, and
    // it still is not whole, so nothing of it may be named deleted.
    ehr.set_truncate(None);
    assert_success(&export(&url, &b, "q2", &g("MRN-001"), &[]));
    assert!(!g("MRN-001/002.q2/deleted/Bundle.Condition.ndjson.gz").exists());
    // A failed search not accepted: exit 3, the folder incomplete.
    let c = mrns(&dir, "MRN-002", 10..13);
    ehr.set_truncate(Some(TruncateSearch {
        resource_type: "Condition".into(),
        patient: with_conditions(10..13),
    }));
    let failed = export(&url, &c, "q2", &g("MRN-002"), &[]);
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed.stderr));
    ehr.set_truncate(None);
    // A hydration read that fails (a hydrated Observation of MRN-000's patients): exit 3.
    let hydrated = file_names(&g("MRN-000/002.q2"))
        .into_iter()
        .filter(|n| n.starts_with("Observation.") && n != "Observation.ndjson.gz")
        .flat_map(|n| read_lines(&g("MRN-000/002.q2").join(n)))
        .next()
        .expect("a hydrated Observation");
    let victim: Value = serde_json::from_str(&hydrated).expect("JSON");
    let victim = format!("Observation/{}", victim["id"].as_str().expect("id"));
    ehr.set_failing_reads([victim]);
    let read_failed = export(&url, &a, "q2", &g("MRN-005"), &[]);
    assert_eq!(
        read_failed.status.code(),
        Some(3),
        "{}",
        text(&read_failed.stderr)
    );
    ehr.set_failing_reads(Vec::<String>::new());

    // Written like the Python tool writes it, for quarter 2.
    let python_types = ["Patient", "Encounter", "Condition", "Procedure"];
    let resources = python_types
        .iter()
        .map(|&t| {
            let of_type: Vec<Value> = (17..20)
                .flat_map(|i| data::patient_resources_in_quarter(SEED, N, i, 2))
                .filter(|r| r["resourceType"] == t)
                .collect();
            (t, of_type)
        })
        .collect();
    write_python_export(
        &g("MRN-004"),
        &PythonCrawl {
            fhir_url: &url,
            subfolder: "001.q2",
            group_name: "MRN-004",
            resources,
        },
    );
    // An empty group folder, a folder that is no group, a batch file.
    std::fs::create_dir_all(g("MRN-006")).expect("mkdir");
    std::fs::create_dir_all(g("notes")).expect("mkdir");
    std::fs::write(g("notes/readme.txt"), "not an export").expect("write");
    std::fs::write(g("batch-q2.json"), "{}").expect("write");

    // The completion marker: present after a whole export, absent after a failed one.
    for leaf in ["MRN-000/001.q1", "MRN-000/002.q2", "MRN-001/002.q2"] {
        let meta = read_json(&g(leaf).join(".metadata"));
        let marker = &meta["exportComplete"];
        assert_eq!(meta["complete"], true, "{leaf}");
        assert_eq!(marker["finished"], meta["timestamp"], "{leaf}: {meta}");
        let (resources, deleted) = count_leaf(&g(leaf));
        assert_eq!(counts(&marker["resources"]), resources, "{leaf}");
        assert_eq!(counts(&marker["deleted"]), deleted, "{leaf}");
        assert!(
            marker["tool"]
                .as_str()
                .is_some_and(|t| t.starts_with("smart-fetch (Rust) ")),
            "{marker}"
        );
    }
    let b_marker = &read_json(&g("MRN-001/002.q2/.metadata"))["exportComplete"];
    assert_eq!(
        counts(&b_marker["acceptedFailedSearches"]),
        BTreeMap::from([("Condition".to_string(), 1)])
    );
    for leaf in ["MRN-002/001.q2", "MRN-005/001.q2"] {
        let meta = read_json(&g(leaf).join(".metadata"));
        assert!(meta.get("exportComplete").is_none(), "{leaf}: {meta}");
        assert_ne!(meta["complete"], true, "{leaf}");
    }
    // Quarter 2 deleted something, so `deleted/` counts are exercised.
    assert!(!count_leaf(&g("MRN-000/002.q2")).1.is_empty());

    let before = snapshot(&root);

    // --json for the q2 export.
    let out = status(&[p(&root), "--nickname", "q2", "--json"]);
    assert_success(&out);
    assert_eq!(text(&out.stderr), "");
    let report = parse_json(&out);
    let names: Vec<&str> = report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "MRN-000", "MRN-001", "MRN-002", "MRN-003", "MRN-004", "MRN-005", "MRN-006"
        ]
    );
    let states: Vec<&str> = report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["state"].as_str().expect("state"))
        .collect();
    assert_eq!(
        states,
        [
            "complete",
            "complete",
            "failed",
            "not-started",
            "complete",
            "failed",
            "not-started"
        ]
    );
    for name in ["MRN-000", "MRN-001"] {
        let leaf = &group(&report, name)["leaf"];
        assert_eq!(leaf["name"], "002.q2");
        assert_eq!(leaf["countedFrom"], "summary");
        assert_counts(leaf, &g(name).join("002.q2"));
        let meta = read_json(&g(name).join("002.q2/.metadata"));
        assert_eq!(leaf["finished"], meta["timestamp"]);
        assert_eq!(
            group(&report, name)["leafFolders"],
            serde_json::json!(["001.q1", "002.q2"])
        );
    }
    assert_eq!(
        counts(&group(&report, "MRN-001")["leaf"]["acceptedFailedSearches"]),
        BTreeMap::from([("Condition".to_string(), 1)])
    );
    // The failed ones, counted from what they hold so far.
    let c_leaf = &group(&report, "MRN-002")["leaf"];
    assert_eq!(c_leaf["name"], "001.q2");
    assert_eq!(c_leaf["countedFrom"], "files");
    assert_counts(c_leaf, &g("MRN-002/001.q2"));
    assert_eq!(
        counts(&c_leaf["failedSearches"]),
        BTreeMap::from([("Condition".to_string(), 1)])
    );
    assert_eq!(counts(&c_leaf["failedReads"]), BTreeMap::new());
    let g_leaf = &group(&report, "MRN-005")["leaf"];
    assert_eq!(
        counts(&g_leaf["failedReads"]),
        BTreeMap::from([("Observation".to_string(), 1)])
    );
    assert_eq!(counts(&g_leaf["failedSearches"]), BTreeMap::new());
    assert_counts(g_leaf, &g("MRN-005/001.q2"));
    // Not started: a q1 folder only; an empty folder.
    assert_eq!(group(&report, "MRN-003")["leaf"], Value::Null);
    assert_eq!(
        group(&report, "MRN-003")["leafFolders"],
        serde_json::json!(["001.q1"])
    );
    assert_eq!(group(&report, "MRN-006")["leaf"], Value::Null);
    assert_eq!(
        group(&report, "MRN-006")["leafFolders"],
        serde_json::json!([])
    );
    // The Python tool's folder: complete by its flag, counted from its files, finished when
    // it last wrote `.metadata`.
    let e_leaf = &group(&report, "MRN-004")["leaf"];
    assert_eq!(e_leaf["countedFrom"], "files");
    assert_eq!(e_leaf["finished"], WRITTEN_AT);
    assert_eq!(e_leaf["tool"], Value::Null);
    assert_counts(e_leaf, &g("MRN-004/001.q2"));
    // The folder that is no group.
    let others = report["otherFolders"].as_array().expect("otherFolders");
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0]["name"], "notes");
    // Totals: groups per state, and what the complete leaf folders hold.
    let totals = &report["totals"];
    assert_eq!(totals["groups"], 7);
    assert_eq!(
        counts(&totals["states"]),
        [
            ("complete", 3),
            ("failed", 2),
            ("in-progress", 0),
            ("not-started", 2),
            ("unknown", 0)
        ]
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect()
    );
    let complete = [
        g("MRN-000/002.q2"),
        g("MRN-001/002.q2"),
        g("MRN-004/001.q2"),
    ];
    let mut resources: BTreeMap<String, u64> = BTreeMap::new();
    for leaf in &complete {
        for (t, n) in count_leaf(leaf).0 {
            *resources.entry(t).or_default() += n;
        }
    }
    assert_eq!(counts(&totals["complete"]["resources"]), resources);
    assert_eq!(
        totals["complete"]["patients"].as_u64(),
        resources.get("Patient").copied()
    );

    // --leaf-folders: exactly the complete leaf folders, nothing else.
    let out = status(&[p(&root), "--nickname", "q2", "--leaf-folders"]);
    assert_success(&out);
    let expected: String = complete
        .iter()
        .map(|l| format!("{}\n", l.display()))
        .collect();
    assert_eq!(text(&out.stdout), expected);
    assert_eq!(text(&out.stderr), "");

    // The table for a person, and the newest leaf folders without --nickname.
    let out = status(&[p(&root)]);
    assert_success(&out);
    let table = text(&out.stdout);
    eprintln!("{table}");
    for line in [
        "GROUP",
        "MRN-003  complete     001.q1",
        "7 groups: 4 complete, 2 failed, 0 in progress, 1 not started.",
        "Complete leaf folders hold ",
        "failed: 1 search (Condition 1); rerun the same export to retry",
        "failed: 1 read (Observation 1)",
        "accepted with --allow-incomplete: 1 failed search (Condition 1)",
        "no summary recorded: counted from the files",
        "no leaf folders",
        "notes: no managed .metadata",
    ] {
        assert!(table.contains(line), "{line:?} in\n{table}");
    }

    // --check: a gate for scripts.
    let out = status(&[p(&root), "--nickname", "q2", "--check", "--leaf-folders"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), expected);
    assert_eq!(
        text(&out.stderr),
        "Not every group is complete: 4 of 7 groups (2 failed, 2 not started).\n"
    );
    let out = status(&[p(&g("MRN-000")), "--nickname", "q2", "--check", "--json"]);
    assert_success(&out);
    let single = parse_json(&out);
    assert_eq!(single["singleGroup"], true);
    assert_eq!(single["groups"][0]["name"], "MRN-000");

    // Nothing changed: every file, link and folder as it was.
    assert_eq!(snapshot(&root), before);

    // The marker is only ours: our own commands still work on a folder that has it, and a
    // rewrite of `.metadata` by another tool (which keeps the key but refreshes the
    // timestamp) turns it stale: the folder is then counted from its files.
    let out = run(&["reset-symlinks", p(&g("MRN-000"))]);
    assert_success(&out);
    let again = export(&url, &a, "q2", &g("MRN-000"), &[]);
    assert_success(&again);
    let meta = read_json(&g("MRN-000/002.q2/.metadata"));
    assert_eq!(meta["exportComplete"]["finished"], meta["timestamp"]);
    let mut rewritten = meta.clone();
    rewritten["timestamp"] = Value::String("2099-01-01T00:00:00+00:00".into());
    std::fs::write(
        g("MRN-000/002.q2/.metadata"),
        serde_json::to_string_pretty(&rewritten).expect("JSON"),
    )
    .expect("write");
    let out = status(&[p(&g("MRN-000")), "--json"]);
    assert_success(&out);
    let leaf = &parse_json(&out)["groups"][0]["leaf"];
    assert_eq!(parse_json(&out)["groups"][0]["state"], "complete");
    assert_eq!(leaf["countedFrom"], "files");
    assert_counts(leaf, &g("MRN-000/002.q2"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_output_roots_are_one_clear_line() {
    let dir = temp_dir("status-bad");
    let missing = dir.join("nope");
    let out = status(&[p(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "Output root '{}' does not exist. Give the folder that holds the group folders, or one group's managed export folder.\n",
            missing.display()
        )
    );
    let file = dir.join("file");
    std::fs::write(&file, "x").expect("write");
    let out = status(&[p(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a folder"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr).lines().count(), 1);

    // An empty root is read fine (nothing there yet), and --check fails on it.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert_success(&status(&[p(&empty)]));
    let out = status(&[p(&empty), "--check"]);
    assert_eq!(out.status.code(), Some(3));
    let out = status(&[p(&empty), "--json", "--leaf-folders"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the two outputs exclude each other"
    );
}
