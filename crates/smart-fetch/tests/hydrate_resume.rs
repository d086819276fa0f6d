//! Acceptance of interrupted note inlining (issue 3 "Do better than the Python tool"):
//! SIGINT or SIGKILL while `hydrate --tasks inline` (or an `export`'s hydration) is
//! rewriting `DocumentReference.ndjson.gz` / `DiagnosticReport.ndjson.gz`, then the same
//! command again. Whatever the moment of the kill, each file is either untouched or complete,
//! and the rerun leaves every resource of an uninterrupted run, all inlined, in the original
//! order. The kill is aimed by watching the server's Binary reads (20 ms per request).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod hydration_support;
mod support;

use fake_ehr::{AuthMode, Config, Flavor, Server};
use hydration_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use support::*;

const SEED: u64 = 1;
const NOTES: [&str; 2] = ["DocumentReference.ndjson.gz", "DiagnosticReport.ndjson.gz"];

fn slow_server(patients: usize) -> Server {
    server_with(Config {
        patients,
        latency: Duration::from_millis(20),
        ..Config::default()
    })
}

fn export_args(url: &str, mrns: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "export",
        "--fhir-url",
        url,
        "--export-mode",
        "crawl",
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap(),
        "--nickname",
        "h",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Copies a managed folder (files, folders, relative symlinks as symlinks).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Binary reads the server has answered whose id contains `part` (`-doc-`, `-dr-`).
fn binary_reads(ehr: &Server, part: &str) -> u64 {
    ehr.stats()
        .reads_by_path
        .iter()
        .filter(|(k, _)| k.starts_with("Binary/") && k.contains(part))
        .map(|(_, n)| n)
        .sum()
}

/// Waits until the server has served `count` Binary reads matching `part`, then sends
/// `signal` (`INT` or `KILL`) to the still-running child; returns its output.
fn interrupt_when(
    child: Child,
    ehr: &Server,
    part: &str,
    count: u64,
    signal: &str,
) -> std::process::Output {
    let mut child = child;
    let start = Instant::now();
    while binary_reads(ehr, part) < count {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before {count} {part} Binary reads"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no {part} reads");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running when interrupted"
    );
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = wait(child, Duration::from_secs(30));
    assert!(!out.status.success(), "interrupted run succeeded");
    assert!(!text(&out.stdout).contains("✨ Done ✨"));
    out
}

fn ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| key_of(&serde_json::from_str::<Value>(l).unwrap()))
        .collect()
}

/// What inlining must make of a note file's lines (docs/hydration.md#inlining-attachments), line
/// for line.
fn inlined(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            for a in attachments_mut(&mut r) {
                *a = inline_attachment(SEED, a).1;
            }
            support::python::ndjson_line(&r)
        })
        .collect()
}

/// After an interruption: each note file is untouched or completely rewritten, never in
/// between. Returns whether each one was rewritten.
fn untouched_or_complete(work: &Path, original: &[Vec<String>]) -> Vec<bool> {
    NOTES
        .iter()
        .zip(original)
        .map(|(file, before)| {
            let now = read_lines(&work.join(file));
            if &now == before {
                false
            } else {
                assert_eq!(
                    now,
                    inlined(before),
                    "{file} is neither original nor complete"
                );
                true
            }
        })
        .collect()
}

fn no_temp_files(work: &Path) {
    let names = file_names(work);
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "temp files left: {names:?}"
    );
}

/// An export without hydration (fast server), copied into `victim` and `clean`; the clean
/// copy is inlined without interruption. Returns (victim workdir, clean workdir, notes
/// before inlining).
fn prepared(dir: &Path, fast: &Server, n: usize) -> (PathBuf, PathBuf, Vec<Vec<String>>) {
    let url = fast.base_url();
    let mrns = mrn_file(dir, "MRN", n);
    let out = dir.join("exported");
    let args = export_args(&url, &mrns, &out, &["--hydration-tasks", "none"]);
    assert_success(&run(&strs(&args)));
    copy_tree(&out, &dir.join("victim"));
    copy_tree(&out, &dir.join("clean"));
    let victim = dir.join("victim/001.h");
    let clean = dir.join("clean/001.h");
    let original: Vec<Vec<String>> = NOTES.iter().map(|f| read_lines(&victim.join(f))).collect();
    let c = run(&[
        "hydrate",
        clean.to_str().unwrap(),
        "--tasks",
        "inline",
        "--fhir-url",
        &url,
    ]);
    assert_success(&c);
    for (file, before) in NOTES.iter().zip(&original) {
        // The uninterrupted run: every note inlined, in the original order.
        assert_eq!(read_lines(&clean.join(file)), inlined(before), "{file}");
    }
    (victim, clean, original)
}

/// The rerun finishes the job: the victim's files equal the clean run's, notes line for line.
fn rerun_matches_clean(victim: &Path, clean: &Path, url: &str) {
    let again = run(&[
        "hydrate",
        victim.to_str().unwrap(),
        "--tasks",
        "inline",
        "--fhir-url",
        url,
    ]);
    assert_success(&again);
    for file in NOTES {
        let (v, c) = (
            read_lines(&victim.join(file)),
            read_lines(&clean.join(file)),
        );
        assert_eq!(ids(&v), ids(&c), "{file}: same resources, same order");
        assert_eq!(v, c, "{file}: all inlined");
    }
    assert_eq!(sorted_file_lines(victim), sorted_file_lines(clean));
    no_temp_files(victim);
}

#[cfg(unix)]
#[test]
fn sigint_while_inlining_notes_then_rerun() {
    let dir = temp_dir("resume-sigint");
    let n = 100;
    let fast = server(Flavor::Generic, n, AuthMode::Open);
    let slow = slow_server(n);
    let (victim, clean, original) = prepared(&dir, &fast, n);

    let child = spawn(&[
        "hydrate",
        victim.to_str().unwrap(),
        "--tasks",
        "inline",
        "--fhir-url",
        &slow.base_url(),
    ]);
    interrupt_when(child, &slow, "-doc-", 20, "INT");
    // Ctrl-C in the middle of the DocumentReferences: nothing rewritten, no temp file.
    assert_eq!(untouched_or_complete(&victim, &original), [false, false]);
    no_temp_files(&victim);

    rerun_matches_clean(&victim, &clean, &fast.base_url());
}

#[cfg(unix)]
#[test]
fn sigkill_while_inlining_reports_then_rerun() {
    let dir = temp_dir("resume-sigkill");
    let n = 100;
    let fast = server(Flavor::Generic, n, AuthMode::Open);
    let slow = slow_server(n);
    let (victim, clean, original) = prepared(&dir, &fast, n);

    let child = spawn(&[
        "hydrate",
        victim.to_str().unwrap(),
        "--tasks",
        "inline",
        "--fhir-url",
        &slow.base_url(),
    ]);
    interrupt_when(child, &slow, "-dr-", 20, "KILL");
    // Killed during the DiagnosticReports: the notes are done, the reports untouched (a
    // stale temp file may remain after SIGKILL).
    assert_eq!(untouched_or_complete(&victim, &original), [true, false]);

    rerun_matches_clean(&victim, &clean, &fast.base_url());
}

#[cfg(unix)]
#[test]
fn export_killed_while_inlining_resumes_and_completes() {
    let dir = temp_dir("resume-export");
    let n = 40;
    let fast = server(Flavor::Generic, n, AuthMode::Open);
    let slow = slow_server(n);
    let mrns = mrn_file(&dir, "MRN", n);

    // The uninterrupted export, for comparison.
    let clean_out = dir.join("clean");
    let args = export_args(&fast.base_url(), &mrns, &clean_out, &[]);
    assert_success(&run(&strs(&args)));
    let clean = clean_out.join("001.h");

    // The same export killed once its hydration has fetched some notes.
    let out = dir.join("victim");
    let args = export_args(&slow.base_url(), &mrns, &out, &[]);
    let child = spawn(&strs(&args));
    interrupt_when(child, &slow, "-doc-", 10, "KILL");
    let work = out.join("001.h");
    let meta = read_json(&work.join(".metadata"));
    assert_ne!(meta["complete"], true, "not complete after the kill");
    // The crawl was done: every note of the server is there, not inlined yet (inlining them
    // gives exactly the uninterrupted export's file).
    let before: Vec<Vec<String>> = NOTES.iter().map(|f| read_lines(&work.join(f))).collect();
    for (lines, file) in before.iter().zip(NOTES) {
        assert!(!lines.is_empty(), "{file}");
        assert_ne!(&inlined(lines), lines, "{file} not inlined yet");
        let mut done = inlined(lines);
        let mut clean_lines = read_lines(&clean.join(file));
        done.sort();
        clean_lines.sort();
        assert_eq!(done, clean_lines, "{file}: the crawl wrote every note");
    }

    // The same command again resumes the workdir and finishes hydration.
    let again = run(&strs(&args));
    assert_success(&again);
    assert!(
        file_names(&out).iter().all(|n| !n.starts_with("002")),
        "resumed the same workdir"
    );
    assert_eq!(read_json(&work.join(".metadata"))["complete"], true);
    for (file, lines) in NOTES.iter().zip(&before) {
        assert_eq!(
            read_lines(&work.join(file)),
            inlined(lines),
            "{file}: every resource, inlined, in the original order"
        );
    }
    // Everything else as the uninterrupted export left it.
    assert_eq!(sorted_file_lines(&work), sorted_file_lines(&clean));
    no_temp_files(&work);
}
