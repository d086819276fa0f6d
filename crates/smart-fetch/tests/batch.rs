//! `batch` end to end against fake-ehr over real HTTP: many groups in one process under one
//! connection budget, folders equal to separate `export`s, failures contained to their
//! group, resumption after SIGKILL, and shards that cover every group exactly once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Config, Flavor, TruncateSearch};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const NICK: &str = "q1";

/// Group files `MRN-000`… of `per_group` MRNs each, patients numbered from 0.
fn write_groups(dir: &Path, groups: usize, per_group: usize) -> PathBuf {
    let groups_dir = dir.join("groups");
    std::fs::create_dir_all(&groups_dir).expect("groups dir");
    for g in 0..groups {
        let text: String = (g * per_group..(g + 1) * per_group)
            .map(|i| fake_ehr::data::mrn(i) + "\n")
            .collect();
        std::fs::write(groups_dir.join(format!("MRN-{g:03}")), text).expect("group file");
    }
    groups_dir
}

fn batch_args<'a>(url: &'a str, groups: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "batch",
        "--fhir-url",
        url,
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--groups",
        groups,
        "--nickname",
        NICK,
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// Every file under a leaf folder (relative path → its lines, sorted: lines are written
/// in the order answers arrive), except `log.ndjson` and `.metadata`, which hold times.
fn leaf_contents(leaf: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![leaf.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("list leaf").flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(leaf)
                .expect("under leaf")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if rel != "log.ndjson" && rel != ".metadata" && rel.contains(".ndjson") {
                let mut lines = read_lines(&path);
                lines.sort();
                out.insert(rel, lines);
            } else if rel != "log.ndjson" && rel != ".metadata" {
                out.insert(rel, Vec::new());
            }
        }
    }
    out
}

fn metadata_keys(leaf: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let meta = read_json(&leaf.join(".metadata"));
    let keys = meta
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let done = meta["done"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    (keys, done)
}

/// The leaf folders (`NNN.nick`) of a managed folder, by name.
fn leaves(managed: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(managed)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir() && !e.path().is_symlink())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn summary(out: &Path) -> Value {
    read_json(&out.join(format!("batch-{NICK}.json")))
}

fn group_states(summary: &Value) -> BTreeMap<String, String> {
    summary["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| {
                    (
                        g["group"].as_str().unwrap_or_default().to_string(),
                        g["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn groups_share_one_budget_and_match_separate_exports() {
    const GROUPS: usize = 20;
    const PER_GROUP: usize = 50;
    let dir = temp_dir("batch-budget");
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: GROUPS * PER_GROUP,
        // Answers take a moment, so requests overlap and the budget is what limits them.
        latency: Duration::from_millis(3),
        ..Config::default()
    });
    let url = ehr.base_url();
    let groups = write_groups(&dir, GROUPS, PER_GROUP);
    let out = dir.join("out");
    let (groups_s, out_s) = (groups.to_string_lossy(), out.to_string_lossy());
    let started = Instant::now();
    let result = run_with_env(
        &batch_args(
            &url,
            &groups_s,
            &out_s,
            &["--parallel-groups", "6", "--max-connections", "8"],
        ),
        &[("SMART_FETCH_PROGRESS_SECS", "1")],
    );
    assert_success(&result);
    // Progress lines while it runs: groups done of the total, connections of the budget.
    let stdout = text(&result.stdout);
    let progress: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Groups: "))
        .collect();
    assert!(!progress.is_empty(), "{stdout}");
    assert!(
        progress.iter().all(|l| l.contains(" of 20 done")
            && l.contains("connections ")
            && l.contains(" of 8")),
        "{progress:?}"
    );
    // The run-wide figures move: patients queued (never more than the batch's) and
    // resources written, each never going back.
    let figure = |line: &str, unit: &str| -> u64 {
        let before = line
            .split_once(&format!(" {unit}"))
            .unwrap_or_else(|| panic!("no {unit:?} in {line:?}"))
            .0;
        let number = before.rsplit(' ').next().unwrap_or_default();
        number
            .replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("{unit} figure {number:?} in {line:?}"))
    };
    let patients: Vec<u64> = progress.iter().map(|l| figure(l, "patients,")).collect();
    let resources: Vec<u64> = progress.iter().map(|l| figure(l, "resources (")).collect();
    for figures in [&patients, &resources] {
        assert!(figures.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    }
    assert!(
        patients.iter().all(|&p| p <= (GROUPS * PER_GROUP) as u64),
        "{progress:?}"
    );
    assert!(
        patients.last() > Some(&0) && resources.last() > Some(&0),
        "{progress:?}"
    );
    let batch_secs = started.elapsed().as_secs_f64();
    let stats = ehr.stats();
    assert_eq!(
        stats.max_in_flight, 8,
        "--max-connections 8 is the total of the batch, and all 8 should be used"
    );
    // One discovery and one token for the whole batch, not one per group.
    assert_eq!(stats.metadata, 1, "CapabilityStatement reads");

    let states = group_states(&summary(&out));
    assert_eq!(states.len(), GROUPS);
    assert!(states.values().all(|s| s == "complete"), "{states:?}");

    // The same groups exported one by one, each with the plain `export` command.
    let separate = dir.join("separate");
    for g in 0..GROUPS {
        let name = format!("MRN-{g:03}");
        let file = groups.join(&name);
        let folder = separate.join(&name);
        let result = run(&[
            "export",
            "--fhir-url",
            &url,
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--id-file",
            &file.to_string_lossy(),
            "--nickname",
            NICK,
            &folder.to_string_lossy(),
        ]);
        assert_success(&result);
        let batch_group = out.join(&name);
        assert_eq!(leaves(&batch_group), vec![format!("001.{NICK}")], "{name}");
        assert_eq!(
            symlinks(&batch_group).keys().collect::<Vec<_>>(),
            symlinks(&folder).keys().collect::<Vec<_>>(),
            "{name} symlinks"
        );
        let (ours, theirs) = (
            batch_group.join(format!("001.{NICK}")),
            folder.join(format!("001.{NICK}")),
        );
        let contents = leaf_contents(&ours);
        assert!(
            contents.keys().any(|k| k.starts_with("Condition.")),
            "{name}: {contents:?}"
        );
        assert_eq!(contents, leaf_contents(&theirs), "{name} files");
        assert_eq!(
            metadata_keys(&ours),
            metadata_keys(&theirs),
            "{name} .metadata"
        );
        let group_of = |leaf: &Path| {
            log_events(&leaf.join("log.ndjson"))
                .first()
                .map(|e| e["eventDetail"]["exportUrl"].clone())
        };
        assert_eq!(
            group_of(&ours),
            group_of(&theirs),
            "{name} log.ndjson group"
        );
    }
    eprintln!("batch of {GROUPS}×{PER_GROUP} patients: {batch_secs:.1} s");
}

#[test]
fn a_failing_group_does_not_stop_the_others() {
    const GROUPS: usize = 5;
    const PER_GROUP: usize = 4;
    let dir = temp_dir("batch-failures");
    // Patient 9 (group MRN-002) has a Condition search that always comes back cut off.
    let broken = fake_ehr::data::patient_id(9);
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: GROUPS * PER_GROUP,
        truncate: Some(TruncateSearch {
            resource_type: "Condition".into(),
            patient: broken,
        }),
        ..Config::default()
    });
    let url = ehr.base_url();
    let groups = write_groups(&dir, GROUPS, PER_GROUP);
    // MRN-004 cannot be read as text.
    std::fs::write(groups.join("MRN-004"), [0xff, 0xfe, 0x00, 0x80]).expect("bad group");
    let out = dir.join("out");
    let (groups_s, out_s) = (groups.to_string_lossy(), out.to_string_lossy());
    let result = run_quick_retries(&batch_args(&url, &groups_s, &out_s, &[]));
    assert_eq!(result.status.code(), Some(3), "{}", text(&result.stderr));
    let states = group_states(&summary(&out));
    let expected: BTreeMap<String, String> = [
        ("MRN-000", "complete"),
        ("MRN-001", "complete"),
        ("MRN-002", "failed"),
        ("MRN-003", "complete"),
        ("MRN-004", "failed"),
    ]
    .into_iter()
    .map(|(g, s)| (g.to_string(), s.to_string()))
    .collect();
    assert_eq!(states, expected);
    let stderr = text(&result.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("MRN-002") && last.contains("MRN-004") && last.contains("2 of 5"),
        "{stderr}"
    );
    let stdout = text(&result.stdout);
    for g in ["MRN-002", "MRN-004"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(g) && l.contains("failed")),
            "{stdout}"
        );
    }
    let rows = summary(&out)["groups"].clone();
    let error_of = |g: &str| {
        rows.as_array()
            .and_then(|a| a.iter().find(|r| r["group"] == g))
            .map(|r| r["error"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(error_of("MRN-004").contains("MRN-004"), "{rows}");
    // Said in the batch's terms: a group file, not an `--id-file` the user never gave.
    assert!(
        error_of("MRN-004").starts_with("Could not read the group file")
            && !error_of("MRN-004").contains("--id-file"),
        "{rows}"
    );
    let figure = |g: &str, key: &str| {
        rows.as_array()
            .and_then(|a| a.iter().find(|r| r["group"] == g))
            .map(|r| r[key].clone())
            .unwrap_or_default()
    };
    // Four MRNs a group, each one patient; the failed group names its one failed search.
    assert_eq!(figure("MRN-000", "patients"), 4);
    assert_eq!(figure("MRN-002", "failed_searches"), 1);
    assert_eq!(figure("MRN-004", "folder"), Value::Null);
    // `status` sees the same: the group whose file could not be read has not started.
    let report = run(&["status", &out_s, "--nickname", NICK, "--json"]);
    assert_success(&report);
    let report: Value = serde_json::from_slice(&report.stdout).expect("status JSON");
    let state_of = |g: &str| {
        report["groups"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == g))
            .map(|r| r["state"].clone())
            .unwrap_or_default()
    };
    assert_eq!(state_of("MRN-004"), "not-started", "{report}");
    assert_eq!(state_of("MRN-002"), "failed", "{report}");
    assert!(error_of("MRN-002").contains("Condition"), "{rows}");
    for g in ["MRN-000", "MRN-001", "MRN-003"] {
        let leaf = out.join(g).join(format!("001.{NICK}"));
        assert_eq!(read_json(&leaf.join(".metadata"))["complete"], true, "{g}");
    }

    // The rerun skips what is complete and retries the rest.
    let before = ehr.stats().metadata;
    let rerun = run_quick_retries(&batch_args(&url, &groups_s, &out_s, &[]));
    assert_eq!(rerun.status.code(), Some(3));
    assert_eq!(ehr.stats().metadata, before + 1);
    let rows = summary(&out)["groups"].clone();
    let skipped: Vec<&str> = rows
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["skipped"] == true)
                .filter_map(|r| r["group"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(skipped, ["MRN-000", "MRN-001", "MRN-003"]);
}

#[test]
fn rerun_after_kills_ends_like_an_uninterrupted_batch() {
    const GROUPS: usize = 8;
    const PER_GROUP: usize = 25;
    let dir = temp_dir("batch-kill");
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: GROUPS * PER_GROUP,
        latency: Duration::from_millis(2),
        ..Config::default()
    });
    let url = ehr.base_url();
    let groups = write_groups(&dir, GROUPS, PER_GROUP);
    let groups_s = groups.to_string_lossy().into_owned();
    let extra = ["--parallel-groups", "3", "--max-connections", "6"];

    let whole = dir.join("whole");
    let whole_s = whole.to_string_lossy().into_owned();
    let before = ehr.requests();
    let started = Instant::now();
    assert_success(&run(&batch_args(&url, &groups_s, &whole_s, &extra)));
    let whole_secs = started.elapsed().as_secs_f64();
    let whole_requests = ehr.requests() - before;

    let killed = dir.join("killed");
    let killed_s = killed.to_string_lossy().into_owned();
    let before = ehr.requests();
    // Three kills at points spread over the run, chosen afresh each time the test runs.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.subsec_nanos());
    let mut kills = Vec::new();
    for k in 0..3u32 {
        let fraction = (f64::from(k) + f64::from((seed >> (k * 8)) % 100) / 100.0) / 3.5;
        let after = Duration::from_secs_f64(whole_secs * fraction.clamp(0.05, 0.9));
        let mut child = spawn(&batch_args(&url, &groups_s, &killed_s, &extra));
        std::thread::sleep(after);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        kills.push(after);
    }
    let last = run(&batch_args(&url, &groups_s, &killed_s, &extra));
    assert_success(&last);
    let killed_requests = ehr.requests() - before;

    for g in 0..GROUPS {
        let name = format!("MRN-{g:03}");
        assert_eq!(
            leaves(&killed.join(&name)),
            vec![format!("001.{NICK}")],
            "{name}"
        );
        let (a, b) = (
            killed.join(&name).join(format!("001.{NICK}")),
            whole.join(&name).join(format!("001.{NICK}")),
        );
        assert_eq!(
            leaf_contents(&a),
            leaf_contents(&b),
            "{name} after {kills:?}"
        );
        assert_eq!(metadata_keys(&a), metadata_keys(&b), "{name}");
    }
    eprintln!(
        "{killed_requests} requests with kills at {kills:?} vs {whole_requests} uninterrupted"
    );
    // A kill during note inlining loses that task's Binary reads (a rewrite is kept only
    // whole, by design) in each group in flight; with `_id` lists those reads are a third
    // of a run's requests instead of a quarter, so the same loss is a larger share.
    // Measured: from +0.7 % to just over +5 % over runs with kills at random points.
    assert!(
        killed_requests as f64 <= whole_requests as f64 * 1.08,
        "{killed_requests} requests with kills at {kills:?} vs {whole_requests} uninterrupted"
    );
}

#[test]
fn shards_cover_every_group_exactly_once() {
    const GROUPS: usize = 7;
    let dir = temp_dir("batch-shards");
    let ehr = server(Flavor::Epic, GROUPS * 2, AuthMode::Open);
    let url = ehr.base_url();
    let groups = write_groups(&dir, GROUPS, 2);
    let groups_s = groups.to_string_lossy().into_owned();
    let outs: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("out-{i}"))).collect();
    let children: Vec<_> = (1..=3)
        .map(|i| {
            let shard = format!("{i}/3");
            let out = outs[i - 1].to_string_lossy().into_owned();
            spawn(&batch_args(
                &url,
                &groups_s,
                &out,
                &["--shard", &shard, "--hydration-tasks", "none"],
            ))
        })
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, child) in children.into_iter().enumerate() {
        let result = wait(child, HANG_LIMIT);
        assert_success(&result);
        for name in file_names(&outs[i]) {
            if name.starts_with("MRN-") {
                *seen.entry(name).or_default() += 1;
            }
        }
        let shard_summary =
            read_json(&outs[i].join(format!("batch-{NICK}.shard-{}-of-3.json", i + 1)));
        assert_eq!(shard_summary["shard"], format!("{}/3", i + 1));
    }
    let expected: BTreeMap<String, usize> =
        (0..GROUPS).map(|g| (format!("MRN-{g:03}"), 1)).collect();
    assert_eq!(seen, expected);
}

#[test]
fn bad_batch_arguments_say_what_to_fix() {
    let dir = temp_dir("batch-bad");
    let groups = write_groups(&dir, 1, 1);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    let out = dir.join("out");
    let (g, e, o) = (
        groups.to_string_lossy().into_owned(),
        empty.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    );
    let url = "http://127.0.0.1:9/";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["batch", "--fhir-url", url, "--groups", &g, &o],
            "--nickname",
        ),
        (
            vec!["batch", "--fhir-url", url, "--nickname", "x", &o],
            "--groups",
        ),
        (
            vec![
                "batch",
                "--fhir-url",
                url,
                "--nickname",
                "x",
                "--groups",
                &e,
                &o,
            ],
            "holds no group files",
        ),
        (
            vec![
                "batch",
                "--fhir-url",
                url,
                "--nickname",
                "x",
                "--groups",
                &g,
                "--shard",
                "4/3",
                &o,
            ],
            "--shard",
        ),
    ];
    for (args, needle) in cases {
        let result = run(&args);
        assert_eq!(result.status.code(), Some(1), "{args:?}");
        let stderr = text(&result.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
}

/// The quarterly cycle: split, batch, then next quarter split again (old MRNs stay in their
/// groups, new ones get new groups), batch again, and `status --leaf-folders` names exactly
/// the quarter's folders: `002.q2` for old groups, `001.q2` for the new one.
#[test]
fn second_quarter_adds_groups_and_status_lists_its_folders() {
    const N: usize = 40;
    let dir = temp_dir("batch-quarters");
    let ehr = server(Flavor::Epic, N, AuthMode::Open);
    let url = ehr.base_url();
    let groups = dir.join("groups");
    let out = dir.join("out");
    let (groups_s, out_s) = (
        groups.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    );
    let split = |mrns: &[String], name: &str| {
        let source = dir.join(name);
        std::fs::write(&source, mrns.join("\n") + "\n").expect("source list");
        let result = run(&[
            "groups",
            "split",
            "--mrns",
            &source.to_string_lossy(),
            "--size",
            "15",
            &groups_s,
        ]);
        assert_success(&result);
    };
    let batch = |nick: &str| {
        let result = run(&[
            "batch",
            "--fhir-url",
            &url,
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--groups",
            &groups_s,
            "--nickname",
            nick,
            "--hydration-tasks",
            "none",
            &out_s,
        ]);
        assert_success(&result);
    };

    let q1: Vec<String> = (0..N).map(fake_ehr::data::mrn).collect();
    split(&q1, "q1.txt");
    batch("q1");
    let old_groups = ["MRN-000", "MRN-001", "MRN-002"];
    assert_eq!(
        file_names(&groups)
            .into_iter()
            .filter(|n| n.starts_with("MRN-"))
            .collect::<Vec<_>>(),
        old_groups
    );
    let members = |g: &str| -> BTreeSet<String> {
        std::fs::read_to_string(groups.join(g))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let before: BTreeMap<&str, BTreeSet<String>> =
        old_groups.iter().map(|g| (*g, members(g))).collect();

    // Quarter 2: patients whose index ends in 3 are gone from the hospital's list; the
    // newcomers follow the old patients.
    ehr.set_quarter(2).expect("quarter 2");
    let new_count = fake_ehr::data::new_patient_count(N);
    let q2: Vec<String> = (0..N + new_count)
        .filter(|i| *i >= N || i % 10 != 3)
        .map(fake_ehr::data::mrn)
        .collect();
    split(&q2, "q2.txt");
    for g in old_groups {
        let expected: BTreeSet<String> = before[g]
            .iter()
            .filter(|m| q2.contains(m))
            .cloned()
            .collect();
        assert_eq!(members(g), expected, "{g} keeps its MRNs still in the list");
    }
    assert_eq!(
        members("MRN-003"),
        (N..N + new_count).map(fake_ehr::data::mrn).collect(),
        "the new MRNs form a new group"
    );
    batch("q2");

    let mut expected: Vec<String> = old_groups
        .iter()
        .map(|g| out.join(g).join("002.q2").to_string_lossy().into_owned())
        .collect();
    expected.push(
        out.join("MRN-003")
            .join("001.q2")
            .to_string_lossy()
            .into_owned(),
    );
    let listed = run(&["status", &out_s, "--nickname", "q2", "--leaf-folders"]);
    assert_success(&listed);
    let mut lines: Vec<String> = text(&listed.stdout).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, expected);
    // The old groups' quarter-2 folders name the patients that left in deleted/.
    for g in old_groups {
        let deleted = out.join(g).join("002.q2").join("deleted");
        assert!(deleted.is_dir(), "{}", deleted.display());
    }
}

/// Two exports into one managed folder at once (two submissions of one array, a batch and a
/// hand-run export) would pick the same workdir and mix their files: the second is refused
/// in one line while the first runs, and the first finishes untouched.
#[test]
fn a_second_export_into_a_busy_folder_is_refused() {
    let dir = temp_dir("batch-lock");
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: 6,
        latency: Duration::from_millis(40),
        ..Config::default()
    });
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-000", 6);
    let out = dir.join("out");
    let args = |out: &Path| -> Vec<String> {
        [
            "export",
            "--fhir-url",
            &url,
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--id-file",
            &mrns.to_string_lossy(),
            "--nickname",
            NICK,
            "--hydration-tasks",
            "none",
            &out.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let first_args = args(&out);
    let first = spawn(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    let lock = out.join(".smart-fetch.lock");
    let started = Instant::now();
    while !out.join(format!("001.{NICK}")).exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lock.exists(), "the first export holds {}", lock.display());
    let second_args = args(&out);
    let second = run(&second_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("Another smart-fetch is exporting into"),
        "{stderr}"
    );
    let first = wait(first, HANG_LIMIT);
    assert_success(&first);
    assert_eq!(leaves(&out), vec![format!("001.{NICK}")]);
    // Once the first has ended the folder is free again (a killed export frees it too).
    let third = run(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert_success(&third);
}
