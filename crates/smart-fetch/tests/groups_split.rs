//! `groups split` end to end: the real binary on temp folders. Expected group files are
//! built by hand from the MRN lists here, never from the tool's own code; the checks are
//! what a site sees: the files, their bytes and mtimes, the exit status and the messages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};
use support::{assert_success, run, temp_dir, text};

fn split(args: &[&str]) -> Output {
    let mut argv = vec!["groups", "split"];
    argv.extend_from_slice(args);
    run(&argv)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap_or_else(|| panic!("{path:?}"))
}

/// `P001`, `P002`, … : the MRNs of the quarter's list.
fn mrns(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("P{i:03}")).collect()
}

fn lines(mrns: &[String]) -> String {
    mrns.iter().map(|m| format!("{m}\n")).collect()
}

fn write(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every file in a folder: name → (content, mtime).
fn snapshot(dir: &Path) -> BTreeMap<String, (String, SystemTime)> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let path = entry.path();
        let mtime = fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{e}"));
        files.insert(
            entry.file_name().to_string_lossy().into_owned(),
            (read(&path), mtime),
        );
    }
    files
}

fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Date a file back to 2001, so a rewrite (or its absence) shows in the mtime.
fn age(path: &Path) -> SystemTime {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .unwrap_or_else(|e| panic!("{e}"));
    old
}

fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

/// The removed list of a run: the one `removed-*.csv` file in the folder.
fn removed_lists(dir: &Path) -> Vec<PathBuf> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("removed-") && n.ends_with(".csv"))
        .map(|n| dir.join(n))
        .collect()
}

#[test]
fn first_run_splits_in_source_order() {
    let dir = temp_dir("groups-first");
    let all = mrns(1..=25);
    let source = dir.join("all-mrns.txt");
    write(&source, &lines(&all));
    let groups = dir.join("groups");

    let out = split(&["--mrns", s(&source), "--size", "10", s(&groups)]);
    assert_success(&out);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(names(&groups), ["MRN-000", "MRN-001", "MRN-002"]);
    assert_eq!(read(&groups.join("MRN-000")), lines(&all[0..10]));
    assert_eq!(read(&groups.join("MRN-001")), lines(&all[10..20]));
    assert_eq!(read(&groups.join("MRN-002")), lines(&all[20..25]));
    let said = stdout(&out);
    assert!(said.contains("Read 25 MRNs from"), "{said}");
    assert!(
        said.contains("New groups MRN-000 to MRN-002: 25 MRNs"),
        "{said}"
    );
    assert!(said.contains("0 unchanged, 0 rewritten, 3 new"), "{said}");
    assert!(said.lines().count() <= 6, "{said}");
}

#[test]
fn later_run_keeps_groups_removes_and_adds_new_groups() {
    let dir = temp_dir("groups-later");
    let first = mrns(1..=25);
    let source = dir.join("all-mrns.txt");
    write(&source, &lines(&first));
    let groups = dir.join("groups");
    assert_success(&split(&["--mrns", s(&source), "--size", "10", s(&groups)]));
    let old = ["MRN-000", "MRN-001", "MRN-002"].map(|n| age(&groups.join(n)));

    // Next quarter: P003, P007 (group 0) and P023 (group 2) are gone; twelve new MRNs come
    // mixed in between the old ones, and the old ones come in another order.
    let gone = ["P003", "P007", "P023"];
    let new = mrns(101..=112);
    let mut second: Vec<String> = first
        .iter()
        .rev()
        .filter(|m| !gone.contains(&m.as_str()))
        .cloned()
        .collect();
    for (i, m) in new.iter().enumerate() {
        second.insert(i * 2, m.clone());
    }
    write(&source, &lines(&second));

    let out = split(&[
        "--mrns",
        s(&source),
        "--size",
        "10",
        "--show-removed",
        s(&groups),
    ]);
    assert_success(&out);
    let keep = |range: std::ops::Range<usize>| -> Vec<String> {
        first[range]
            .iter()
            .filter(|m| !gone.contains(&m.as_str()))
            .cloned()
            .collect()
    };
    let lists = removed_lists(&groups);
    assert_eq!(lists.len(), 1, "{:?}", names(&groups));
    let mut expected_names = vec!["MRN-000", "MRN-001", "MRN-002", "MRN-003", "MRN-004"];
    let list_name = lists[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    expected_names.push(&list_name);
    expected_names.sort();
    assert_eq!(names(&groups), expected_names);
    assert_eq!(read(&groups.join("MRN-000")), lines(&keep(0..10)));
    assert_eq!(read(&groups.join("MRN-001")), lines(&first[10..20]));
    assert_eq!(read(&groups.join("MRN-002")), lines(&keep(20..25)));
    assert_eq!(read(&groups.join("MRN-003")), lines(&new[0..10]));
    assert_eq!(read(&groups.join("MRN-004")), lines(&new[10..12]));
    assert_eq!(
        mtime(&groups.join("MRN-001")),
        old[1],
        "unchanged file rewritten"
    );
    assert_ne!(mtime(&groups.join("MRN-000")), old[0]);
    assert_ne!(mtime(&groups.join("MRN-002")), old[2]);
    assert_eq!(
        read(&lists[0]),
        "group,mrn\nMRN-000,P003\nMRN-000,P007\nMRN-002,P023\n"
    );

    let said = stdout(&out);
    assert!(said.contains("MRN-000: 2 MRNs removed, 8 kept."), "{said}");
    assert!(said.contains("MRN-002: 1 MRN removed, 4 kept."), "{said}");
    assert!(!said.contains("MRN-001:"), "{said}");
    assert!(
        said.contains("New groups MRN-003 to MRN-004: 12 MRNs, 10 a group (MRN-004 has 2)."),
        "{said}"
    );
    assert!(
        said.contains(
            "Groups: 1 unchanged, 2 rewritten, 2 new; 34 MRNs in 5 groups (3 removed, 12 new)."
        ),
        "{said}"
    );
    assert!(
        said.contains(&format!("listed in {}", s(&lists[0]))),
        "{said}"
    );
    for (group, mrn) in [
        ("MRN-000", "P003"),
        ("MRN-000", "P007"),
        ("MRN-002", "P023"),
    ] {
        assert!(said.contains(&format!("{group}\t{mrn}\n")), "{said}");
    }

    // The same list again changes nothing: every file keeps its mtime, no new list.
    let before = snapshot(&groups);
    let out = split(&["--mrns", s(&source), "--size", "10", s(&groups)]);
    assert_success(&out);
    assert_eq!(snapshot(&groups), before);
    let said = stdout(&out);
    assert!(said.contains("5 unchanged, 0 rewritten, 0 new"), "{said}");
    assert!(!said.contains("removed MRNs"), "{said}");
}

#[test]
fn without_show_removed_thousands_of_removals_stay_off_the_terminal() {
    let dir = temp_dir("groups-many-removed");
    let first = mrns(1..=600);
    let source = dir.join("all.txt");
    write(&source, &lines(&first));
    let groups = dir.join("groups");
    assert_success(&split(&["--mrns", s(&source), "--size", "100", s(&groups)]));
    write(&source, &lines(&first[..50]));
    let out = split(&["--mrns", s(&source), "--size", "100", s(&groups)]);
    assert_success(&out);
    let said = stdout(&out);
    assert!(said.lines().count() <= 10, "{said}");
    assert!(said.contains("550 removed"), "{said}");
    assert!(
        said.contains("MRN-005: 100 MRNs removed, none left"),
        "{said}"
    );
    let lists = removed_lists(&groups);
    assert_eq!(lists.len(), 1);
    assert_eq!(read(&lists[0]).lines().count(), 551);
    // Emptied groups stay as empty files, so their numbers are not handed out again.
    assert_eq!(read(&groups.join("MRN-005")), "");
}

#[test]
fn csv_and_text_sources_are_cleaned_and_the_drops_reported() {
    let dir = temp_dir("groups-csv");
    let csv = dir.join("cohort.CSV");
    write(
        &csv,
        "\u{feff}name, Mrn ,dob\nann, A1 ,2001\nbob,,2002\ncy,A2,2003\ndee,A1,2004\neve,\" A3\",2005\nfay\n",
    );
    let groups = dir.join("g1");
    let out = split(&["--mrns", s(&csv), "--size", "2", s(&groups)]);
    assert_success(&out);
    assert_eq!(names(&groups), ["MRN-000", "MRN-001"]);
    assert_eq!(read(&groups.join("MRN-000")), "A1\nA2\n");
    assert_eq!(read(&groups.join("MRN-001")), "A3\n");
    let said = stdout(&out);
    assert!(
        said.contains("Read 3 MRNs from")
            && said.contains("(dropped 2 blank lines and 1 duplicate)"),
        "{said}"
    );

    let txt = dir.join("mrns.txt");
    write(&txt, "  x1\r\n\n x2 \n\t\nx1\nx3\nx2\nx2\n");
    let groups = dir.join("g2");
    let out = split(&["--mrns", s(&txt), "--size", "5", s(&groups)]);
    assert_success(&out);
    assert_eq!(names(&groups), ["MRN-000"]);
    assert_eq!(read(&groups.join("MRN-000")), "x1\nx2\nx3\n");
    let said = stdout(&out);
    assert!(
        said.contains("(dropped 2 blank lines and 3 duplicates)"),
        "{said}"
    );
}

#[test]
fn prefix_and_width_and_numbers_past_the_width() {
    let dir = temp_dir("groups-width");
    let all = mrns(1..=25);
    let source = dir.join("all.txt");
    write(&source, &lines(&all));
    let groups = dir.join("groups");
    let out = split(&[
        "--mrns",
        s(&source),
        "--size",
        "2",
        "--prefix",
        "G",
        "--width",
        "1",
        s(&groups),
    ]);
    assert_success(&out);
    let expected: Vec<String> = (0..13).map(|n| format!("G{n}")).collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(names(&groups), sorted);
    for (n, name) in expected.iter().enumerate() {
        let end = (n * 2 + 2).min(25);
        assert_eq!(read(&groups.join(name)), lines(&all[n * 2..end]), "{name}");
    }
}

#[test]
fn files_that_only_look_like_groups_are_left_alone_and_named() {
    let dir = temp_dir("groups-lookalike");
    let groups = dir.join("groups");
    fs::create_dir_all(&groups).unwrap_or_else(|e| panic!("{e}"));
    write(&groups.join("MRN-000"), "a\nb\n");
    write(&groups.join("MRN-000.bak"), "a\nzzz\n");
    write(&groups.join("README.txt"), "our groups\n");
    let source = dir.join("all.txt");
    write(&source, "a\nb\nc\n");
    let out = split(&["--mrns", s(&source), "--size", "10", s(&groups)]);
    assert_success(&out);
    let warned = text(&out.stderr);
    assert!(warned.contains("\"MRN-000.bak\""), "{warned}");
    assert!(!warned.contains("README"), "{warned}");
    assert_eq!(read(&groups.join("MRN-000.bak")), "a\nzzz\n");
    assert_eq!(read(&groups.join("MRN-001")), "c\n");
}

#[test]
fn dry_run_writes_nothing() {
    let dir = temp_dir("groups-dry");
    let first = mrns(1..=25);
    let source = dir.join("all.txt");
    write(&source, &lines(&first));
    let groups = dir.join("groups");

    let out = split(&[
        "--mrns",
        s(&source),
        "--size",
        "10",
        "--dry-run",
        s(&groups),
    ]);
    assert_success(&out);
    assert!(!groups.exists(), "--dry-run made the folder");
    let said = stdout(&out);
    assert!(said.starts_with("Dry run: nothing was written."), "{said}");
    assert!(said.contains("New groups MRN-000 to MRN-002"), "{said}");

    assert_success(&split(&["--mrns", s(&source), "--size", "10", s(&groups)]));
    for name in ["MRN-000", "MRN-001", "MRN-002"] {
        age(&groups.join(name));
    }
    let before = snapshot(&groups);
    let mut second = first[1..].to_vec();
    second.extend(mrns(200..=204));
    write(&source, &lines(&second));
    let out = split(&[
        "--mrns",
        s(&source),
        "--size",
        "10",
        "--dry-run",
        "--show-removed",
        s(&groups),
    ]);
    assert_success(&out);
    assert_eq!(snapshot(&groups), before);
    let said = stdout(&out);
    assert!(said.contains("MRN-000: 1 MRN removed, 9 kept."), "{said}");
    assert!(said.contains("New group MRN-003: 5 MRNs."), "{said}");
    assert!(said.contains("would be listed in"), "{said}");
    assert!(said.contains("MRN-000\tP001\n"), "{said}");
}

/// `--log-format json`: the summary and the warnings are messages like any command's, one
/// JSON object a line on stderr; stdout stays empty.
#[test]
fn json_log_format_puts_every_line_on_stderr() {
    let dir = temp_dir("groups-json");
    let groups = dir.join("groups");
    fs::create_dir_all(&groups).unwrap_or_else(|e| panic!("{e}"));
    write(&groups.join("MRN-000.bak"), "a\n");
    let source = dir.join("all.txt");
    write(&source, &lines(&mrns(1..=15)));
    let out = split(&[
        "--mrns",
        s(&source),
        "--size",
        "10",
        "--log-format",
        "json",
        s(&groups),
    ]);
    assert_success(&out);
    assert_eq!(stdout(&out), "", "messages are not data");
    let messages: Vec<(String, String)> = text(&out.stderr)
        .lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            let field = |k: &str| value[k].as_str().unwrap_or_default().to_string();
            (field("level"), field("message"))
        })
        .collect();
    let said = |level: &str, start: &str| {
        messages
            .iter()
            .any(|(l, m)| l == level && m.starts_with(start))
    };
    assert!(said("warning", "Ignored \"MRN-000.bak\""), "{messages:?}");
    assert!(said("info", "Read 15 MRNs from"), "{messages:?}");
    assert!(
        said("info", "New groups MRN-000 to MRN-001: 15 MRNs"),
        "{messages:?}"
    );
    assert_eq!(read(&groups.join("MRN-001")), lines(&mrns(11..=15)));
}

/// One line on stderr, a non-zero exit, no panic text.
fn assert_refused(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "should fail: {}", stdout(out));
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let dir = temp_dir("groups-bad");
    let groups = dir.join("groups");
    let g = s(&groups);
    let good = dir.join("all.txt");
    write(&good, &lines(&mrns(1..=5)));

    let missing = dir.join("no-such-list.txt");
    let out = split(&["--mrns", s(&missing), "--size", "10", g]);
    assert_refused(&out, &["no-such-list.txt", "--mrns"]);
    assert!(!groups.exists());

    let csv = dir.join("cohort.csv");
    write(&csv, "name,id\nann,1\n");
    let out = split(&["--mrns", s(&csv), "--size", "10", g]);
    assert_refused(&out, &["cohort.csv", "no 'mrn' column", "name,id"]);
    assert!(!groups.exists());

    let out = split(&["--mrns", s(&good), "--size", "0", g]);
    assert_refused(&out, &["--size must be at least 1", "--size 10000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!groups.exists());

    let blank = dir.join("blank.txt");
    write(&blank, "\n  \n\n");
    let out = split(&["--mrns", s(&blank), "--size", "10", g]);
    assert_refused(&out, &["blank.txt", "holds no MRNs"]);
    assert!(!groups.exists());

    let file = dir.join("a-file");
    write(&file, "not a folder\n");
    let out = split(&["--mrns", s(&good), "--size", "10", s(&file)]);
    assert_refused(&out, &["a-file", "is a file, not a folder"]);
    assert_eq!(read(&file), "not a folder\n");

    // An MRN already in two group files: both are named, nothing changes.
    fs::create_dir_all(&groups).unwrap_or_else(|e| panic!("{e}"));
    write(&groups.join("MRN-000"), "P001\nP002\n");
    write(&groups.join("MRN-001"), "P003\nP002\n");
    let before = snapshot(&groups);
    let out = split(&["--mrns", s(&good), "--size", "10", g]);
    assert_refused(&out, &["P002", "MRN-000", "MRN-001"]);
    assert_eq!(snapshot(&groups), before);
}
