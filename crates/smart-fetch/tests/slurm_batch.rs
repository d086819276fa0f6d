//! `batch` as a real Slurm job array. `scripts/slurm-up.sh` starts a single-node cluster on
//! this machine (Debian's slurm-wlm and munge, installed by it on first use); the test's own
//! `smart-fetch` runs as a 3-task array against fake-ehr on 127.0.0.1, each task taking its
//! shard from the variables Slurm sets. Every group must be exported exactly once.
//!
//! Skipped only when `SMART_FETCH_SKIP_SLURM=1`; otherwise a cluster that does not come up
//! fails the test. The cluster is left running afterwards (another run or another person may
//! be using it, and the next `slurm-up.sh` finds it up in a fraction of a second);
//! `scripts/slurm-down.sh` stops it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{Config, Flavor};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

const NICK: &str = "q1";
/// Patients per group file `MRN-000` … `MRN-006`.
const GROUP_SIZES: [usize; 7] = [3, 2, 3, 2, 3, 2, 3];
const TASKS: usize = 3;
/// smart-fetch's default `--max-connections`, the total the tasks share.
const DEFAULT_CONNECTIONS: usize = 5;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Run `scripts/slurm-up.sh`, its output going to a file: the daemons it starts outlive it,
/// and must not hold a pipe this test would read to its end.
fn slurm_up(dir: &Path) -> String {
    let log_path = dir.join("slurm-up.log");
    let log = std::fs::File::create(&log_path).expect("slurm-up log");
    let mut child = Command::new("bash")
        .arg(repo_root().join("scripts/slurm-up.sh"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start scripts/slurm-up.sh");
    // Installing the packages takes a minute or two; the script bounds its own waits.
    let limit = Duration::from_secs(20 * 60);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for slurm-up.sh") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "scripts/slurm-up.sh could not start a Slurm cluster ({status:?}; set \
         SMART_FETCH_SKIP_SLURM=1 to skip this test on a machine without one):\n{output}"
    );
    output
}

fn slurm(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Single-quoted for sh (the temp paths and URL hold no quotes).
fn quoted(arg: &str) -> String {
    assert!(!arg.contains('\''), "{arg}");
    format!("'{arg}'")
}

/// The states of the array's tasks (`<job>_<task>` → state) while Slurm still lists them
/// (finished jobs stay listed for MinJobAge, 300 s by default; accounting is off).
fn task_states(job: &str) -> BTreeMap<String, String> {
    let out = slurm(
        "squeue",
        &[
            "--noheader",
            "--states=all",
            "--jobs",
            job,
            "--format=%i %T",
        ],
    );
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.to_string(), state.trim().to_string()))
        .collect()
}

/// What a failure should show: the queue, each task's output, slurmd's last lines.
fn diagnostics(job: &str, dir: &Path) -> String {
    let mut out = format!("squeue: {:?}\n", task_states(job));
    for task in 0..TASKS {
        let path = dir.join(format!("task-{task}.out"));
        let content = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})"));
        out += &format!("--- {}\n{content}\n", path.display());
    }
    let log = std::fs::read_to_string("/var/log/slurm/slurmd.log").unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    out += "--- last lines of /var/log/slurm/slurmd.log\n";
    for line in tail.into_iter().rev() {
        out += line;
        out.push('\n');
    }
    out
}

#[test]
fn a_slurm_array_job_exports_every_group_exactly_once() {
    if std::env::var("SMART_FETCH_SKIP_SLURM").is_ok_and(|v| v == "1") {
        // Straight to stderr, past the test harness's capture, so the skip is seen.
        #[allow(clippy::disallowed_methods)]
        let _ = writeln!(
            std::io::stderr(),
            "slurm_batch: skipped, SMART_FETCH_SKIP_SLURM=1 (no Slurm cluster started)"
        );
        return;
    }
    let dir = temp_dir("slurm");
    let started = Instant::now();
    let up = slurm_up(&dir);
    let up_secs = started.elapsed().as_secs_f64();

    // The array script the README shows is accepted by a real Slurm as it is.
    let check = slurm(
        "sbatch",
        &[
            "--test-only",
            &format!("--chdir={}", dir.display()),
            &repo_root()
                .join("scripts/batch-array.sbatch")
                .to_string_lossy(),
        ],
    );
    assert!(
        check.status.success(),
        "sbatch --test-only scripts/batch-array.sbatch: {}",
        text(&check.stderr)
    );

    let patients: usize = GROUP_SIZES.iter().sum();
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients,
        ..Config::default()
    });
    // Group `MRN-00g` holds the next GROUP_SIZES[g] patients, numbered from 0.
    let groups = dir.join("groups");
    std::fs::create_dir_all(&groups).expect("groups dir");
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut next = 0;
    for (g, size) in GROUP_SIZES.iter().enumerate() {
        let name = format!("MRN-{g:03}");
        let text: String = (next..next + size)
            .map(|i| fake_ehr::data::mrn(i) + "\n")
            .collect();
        std::fs::write(groups.join(&name), text).expect("group file");
        members.insert(
            name,
            (next..next + size)
                .map(fake_ehr::data::patient_id)
                .collect(),
        );
        next += size;
    }

    let out = dir.join("out");
    let (url, groups_s, out_s) = (
        ehr.base_url(),
        groups.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    );
    let command = [
        bin(),
        "batch",
        "--fhir-url",
        &url,
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--groups",
        &groups_s,
        "--nickname",
        NICK,
        "--hydration-tasks",
        "none",
        &out_s,
    ]
    .map(quoted)
    .join(" ");
    let script = dir.join("job.sh");
    std::fs::write(&script, format!("#!/bin/sh\nexec {command}\n")).expect("job script");

    let submitted = Instant::now();
    let sbatch = slurm(
        "sbatch",
        &[
            "--parsable",
            &format!("--array=0-{}", TASKS - 1),
            "--job-name=smart-fetch-slurm-test",
            &format!("--chdir={}", dir.display()),
            &format!("--output={}/task-%a.out", dir.display()),
            "--time=10",
            &script.to_string_lossy(),
        ],
    );
    assert!(sbatch.status.success(), "sbatch: {}", text(&sbatch.stderr));
    let job = text(&sbatch.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        !job.is_empty() && job.bytes().all(|b| b.is_ascii_digit()),
        "sbatch --parsable printed {:?}",
        text(&sbatch.stdout)
    );

    // Until every task has ended (no accounting here: squeue is where the states are).
    let task_ids: BTreeSet<String> = (0..TASKS).map(|t| format!("{job}_{t}")).collect();
    let ended = |s: &str| !matches!(s, "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING");
    let limit = Duration::from_secs(300);
    let states = loop {
        let states = task_states(&job);
        if states.keys().cloned().collect::<BTreeSet<_>>() == task_ids
            && states.values().all(|s| ended(s))
        {
            break states;
        }
        if submitted.elapsed() > limit {
            let report = diagnostics(&job, &dir);
            let _ = slurm("scancel", &[&job]);
            panic!("job {job} not done after {limit:?}:\n{report}");
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let job_secs = submitted.elapsed().as_secs_f64();
    assert!(
        states.values().all(|s| s == "COMPLETED"),
        "{states:?}\n{}",
        diagnostics(&job, &dir)
    );

    // Each task ran as a different shard and said so; the shards' connections add up to the
    // default total.
    let mut connections = 0;
    for task in 0..TASKS {
        let log =
            std::fs::read_to_string(dir.join(format!("task-{task}.out"))).expect("task output");
        let shard_lines: Vec<&str> = log.lines().filter(|l| l.starts_with("Shard ")).collect();
        let expected_groups = (0..GROUP_SIZES.len()).filter(|g| g % TASKS == task).count();
        let prefix = format!("Shard {}/{TASKS}: {expected_groups} groups, ", task + 1);
        assert!(
            shard_lines.len() == 1 && shard_lines[0].starts_with(&prefix),
            "task {task}: expected one line starting {prefix:?}:\n{log}"
        );
        let of_total = format!(" of {DEFAULT_CONNECTIONS} connections.");
        let share = shard_lines[0]
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&of_total))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("task {task}: {:?}", shard_lines[0]));
        connections += share;
    }
    assert_eq!(connections, DEFAULT_CONNECTIONS);

    // The output root: one folder per group and one summary per shard, nothing else (no
    // `batch-q1.json`: no task ran the whole batch).
    let mut expected_names: Vec<String> = members.keys().cloned().collect();
    expected_names.extend((1..=TASKS).map(|i| format!("batch-{NICK}.shard-{i}-of-{TASKS}.json")));
    expected_names.sort();
    assert_eq!(file_names(&out), expected_names);

    // Every group exactly once, complete, with its own patients.
    for (group, ids) in &members {
        let folder = out.join(group);
        let leaves: Vec<String> = file_names(&folder)
            .into_iter()
            .filter(|n| folder.join(n).is_dir() && !folder.join(n).is_symlink())
            .collect();
        assert_eq!(leaves, [format!("001.{NICK}")], "{group}");
        let leaf = folder.join(format!("001.{NICK}"));
        assert_eq!(
            read_json(&leaf.join(".metadata"))["complete"],
            true,
            "{group}"
        );
        let exported: BTreeSet<String> = folder_resources(&leaf)
            .get("Patient")
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(&exported, ids, "{group} Patients");
    }

    // The shards' summaries: disjoint, together every group, each the round-robin share of
    // its task (groups dealt in name order), every row complete.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for task in 0..TASKS {
        let i = task + 1;
        let summary = read_json(&out.join(format!("batch-{NICK}.shard-{i}-of-{TASKS}.json")));
        assert_eq!(summary["shard"], format!("{i}/{TASKS}"));
        let rows = summary["groups"].as_array().cloned().unwrap_or_default();
        let listed: Vec<String> = rows
            .iter()
            .map(|r| r["group"].as_str().unwrap_or_default().to_string())
            .collect();
        let expected: Vec<String> = (0..GROUP_SIZES.len())
            .filter(|g| g % TASKS == task)
            .map(|g| format!("MRN-{g:03}"))
            .collect();
        assert_eq!(listed, expected, "shard {i}/{TASKS}");
        assert!(
            rows.iter().all(|r| r["state"] == "complete"),
            "shard {i}: {rows:?}"
        );
        for g in listed {
            *count.entry(g).or_default() += 1;
        }
    }
    let once: BTreeMap<String, usize> = members.keys().map(|g| (g.clone(), 1)).collect();
    assert_eq!(count, once);

    eprintln!(
        "slurm-up.sh {up_secs:.1} s, array job {job} {job_secs:.1} s\n{}",
        up.trim_end()
    );
}

/// The README's "Running a batch as a Slurm job array" shows the shipped script as it is.
#[test]
fn readme_shows_the_shipped_array_script() {
    let root = repo_root();
    let script = std::fs::read_to_string(root.join("scripts/batch-array.sbatch"))
        .expect("scripts/batch-array.sbatch");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let indented: String = script
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        readme.contains(&indented),
        "README.md does not show scripts/batch-array.sbatch as it is (indented by 4 spaces)"
    );
}
