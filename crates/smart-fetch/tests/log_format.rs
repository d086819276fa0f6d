//! `--log-format`: the same managed export (Epic crawl, default hydration, one search that
//! fails on every try and is accepted with `--allow-incomplete`, so there are info lines,
//! warnings and, with `--verbose`, retry lines) run in each format against the fake EHR
//! over real HTTP. JSON and plain runs must say exactly what the text run says, line for
//! line and in order, with a parseable UTC timestamp on every line and nothing else
//! printed; verbose lines appear only with `--verbose`; an unknown format is a usage error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{Config, Flavor, Server, TruncateSearch};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};
use support::*;

const SEED: u64 = 1;
const PATIENTS: usize = 6;
const LEVELS: [&str; 4] = ["info", "warning", "verbose", "error"];

struct Ehr {
    server: Server,
    dir: TestDir,
    mrns: PathBuf,
}

/// An Epic EHR where one patient's Condition search is always cut off (retried, then
/// reported as a failed search): deterministic warnings and verbose retry lines.
fn ehr(name: &str) -> Ehr {
    let dir = temp_dir(name);
    let mrns = mrn_file(&dir, "MRNS", PATIENTS);
    let broken = (0..PATIENTS)
        .find(|&i| {
            fake_ehr::data::patient_resources(SEED, i)
                .iter()
                .any(|r| r["resourceType"] == "Condition")
        })
        .expect("some patient has Conditions");
    let server = server_with(Config {
        flavor: Flavor::Epic,
        patients: PATIENTS,
        truncate: Some(TruncateSearch {
            resource_type: "Condition".into(),
            patient: fake_ehr::data::patient_id(broken),
        }),
        ..Config::default()
    });
    Ehr { server, dir, mrns }
}

/// One export into `<dir>/<run>/MRNS` with `extra` options; returns its output and folder.
fn export(ehr: &Ehr, run: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = ehr.dir.join(run).join("MRNS");
    let url = ehr.server.base_url();
    let mut argv = vec![
        "export",
        "--fhir-url",
        &url,
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        ehr.mrns.to_str().expect("utf-8 path"),
        "--nickname",
        "q1",
        "--allow-incomplete",
        out.to_str().expect("utf-8 path"),
    ];
    argv.extend_from_slice(extra);
    let output = run_quick_retries(&argv);
    assert_success(&output);
    (output, out)
}

/// Lines of a stream, the run's own folder written as `<OUT>` (runs differ only there).
fn lines(bytes: &[u8], out: &Path) -> Vec<String> {
    let out = out.to_string_lossy();
    text(bytes)
        .lines()
        .map(|l| l.replace(out.as_ref(), "<OUT>"))
        .collect()
}

fn is_rule(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| c == '─')
}

/// The text run's (stdout, stderr) lines, rule lines left out.
fn text_lines(output: &Output, out: &Path) -> (Vec<String>, Vec<String>) {
    let keep = |v: Vec<String>| v.into_iter().filter(|l| !is_rule(l)).collect();
    (
        keep(lines(&output.stdout, out)),
        keep(lines(&output.stderr, out)),
    )
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, parsed here by hand
/// (not with the crate that wrote it); `None` unless the text has exactly that shape.
fn parse_utc(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let fraction = match &text[19..text.len() - 1] {
        "" => 0.0,
        f => {
            let f = f.strip_prefix('.')?;
            format!("0.{}", f)
                .parse::<f64>()
                .ok()
                .filter(|_| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))?
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) as f64 + fraction)
}

/// A timestamp of this run: parseable, and within a few minutes of now (a local time
/// mislabelled as UTC, or a constant, would not be).
fn assert_now(time: &str, line: &str) {
    let Some(seconds) = parse_utc(time) else {
        panic!("not an RFC 3339 UTC timestamp: {time:?} in {line:?}");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    assert!(
        (now - seconds).abs() < 600.0,
        "timestamp {time} is {} s from now",
        now - seconds
    );
}

/// The JSON run's messages as (level, message), checking the shape of every line of both
/// streams: an object with `time`, `level` and `message` only (no `group` when unscoped).
fn json_messages(output: &Output, out: &Path) -> Vec<(String, String)> {
    assert_eq!(
        text(&output.stdout),
        "",
        "JSON lines go to stderr; stdout stays empty"
    );
    let mut messages = Vec::new();
    for line in lines(&output.stderr, out) {
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["level", "message", "time"], "{line}");
        let time = object["time"].as_str().expect("time is a string");
        assert_now(time, &line);
        let level = object["level"].as_str().expect("level is a string");
        assert!(LEVELS.contains(&level), "{line}");
        let message = object["message"].as_str().expect("message is a string");
        messages.push((level.to_string(), message.to_string()));
    }
    messages
}

/// The plain run's lines as (level, text), checking every line of both streams: a UTC
/// timestamp, a level, the text; no escape bytes, no rule lines.
fn plain_lines(output: &Output, out: &Path) -> Vec<(String, String)> {
    assert_eq!(text(&output.stdout), "", "plain lines go to stderr");
    assert!(
        !output.stderr.contains(&0x1b),
        "escape byte in plain output:\n{}",
        text(&output.stderr)
    );
    let mut result = Vec::new();
    for line in lines(&output.stderr, out) {
        let (time, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("no timestamp: {line:?}"));
        assert_now(time, &line);
        let level = rest.split(' ').next().unwrap_or_default();
        assert!(LEVELS.contains(&level), "{line:?}");
        // The level is padded to 7 characters, then one space, then the text (if any).
        let message = rest.get(8..).unwrap_or("");
        assert!(!is_rule(message), "rule line in plain output: {line:?}");
        result.push((level.to_string(), message.to_string()));
    }
    result
}

/// Messages split into their lines, of the levels that the text format prints on stderr
/// (`to_stderr`) or on stdout (the rest). This export has no warning that the text format
/// prints on stdout (such as an undecodable line of a local file).
fn by_stream(messages: &[(String, String)], to_stderr: bool) -> Vec<String> {
    messages
        .iter()
        .filter(|(level, _)| matches!(level.as_str(), "warning" | "error") == to_stderr)
        .filter(|(level, _)| level != "verbose")
        .flat_map(|(_, m)| m.split('\n').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// A line with its numbers and the width of its columns left out: hydration's tables
/// count per input resource, and which of two concurrent reads of one reference comes
/// first differs from run to run (in any format), so their figures can differ by one.
fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        let c = if c.is_ascii_digit() { '#' } else { c };
        let repeat = matches!(c, '#' | ' ') && out.ends_with(c);
        if !repeat {
            out.push(c);
        }
    }
    out
}

/// The same lines in the same order (numbers aside, see `shape`); on failure, the first
/// difference rather than two long lists.
fn assert_same_lines(got: &[String], want: &[String], what: &str) {
    let got: Vec<String> = got.iter().map(|l| shape(l)).collect();
    let want: Vec<String> = want.iter().map(|l| shape(l)).collect();
    if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
        panic!(
            "{what}: line {i} differs:\n  got:  {:?}\n  want: {:?}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
}

#[test]
fn json_and_plain_say_what_text_says_and_nothing_else() {
    let ehr = ehr("formats");
    let (text_run, text_out) = export(&ehr, "text", &[]);
    let (json_run, json_out) = export(&ehr, "json", &["--log-format", "json"]);
    let (plain_run, plain_out) = export(&ehr, "plain", &["--log-format=plain"]);

    let (stdout, stderr) = text_lines(&text_run, &text_out);
    // The export did what this test needs: info, a rule, warnings, the end.
    assert!(
        stdout
            .iter()
            .any(|l| l == "Creating new subfolder '001.q1'."),
        "{stdout:?}"
    );
    assert_eq!(stdout.last().map(String::as_str), Some("✨ Done ✨"));
    assert!(
        text(&text_run.stdout).lines().any(is_rule),
        "the text format draws rule lines"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("1 search failed because the answer could not be used")),
        "{stderr:?}"
    );
    assert!(
        !text(&text_run.stderr).contains("Retrying"),
        "no verbose line without --verbose"
    );

    let json = json_messages(&json_run, &json_out);
    assert!(json.iter().all(|(level, _)| level != "verbose"), "{json:?}");
    assert_same_lines(&by_stream(&json, false), &stdout, "JSON info = text stdout");
    assert_same_lines(
        &by_stream(&json, true),
        &stderr,
        "JSON warnings = text stderr",
    );
    assert!(
        json.iter()
            .any(|(level, m)| level == "info" && m.contains('\n')),
        "a multi-line message (hydration's table) is one JSON line"
    );

    let plain = plain_lines(&plain_run, &plain_out);
    assert!(
        plain.iter().all(|(level, _)| level != "verbose"),
        "{plain:?}"
    );
    assert_same_lines(
        &by_stream(&plain, false),
        &stdout,
        "plain info = text stdout",
    );
    assert_same_lines(
        &by_stream(&plain, true),
        &stderr,
        "plain warnings = text stderr",
    );
    // The numbers left out of the comparison are there.
    assert!(
        plain.iter().any(|(_, m)| m.starts_with(" Total examined")),
        "{plain:?}"
    );
}

#[test]
fn verbose_lines_only_with_verbose_in_every_format() {
    let ehr = ehr("verbose");
    let retry = "Retrying GET ";

    let (quiet, _) = export(&ehr, "text-quiet", &[]);
    let (loud, _) = export(&ehr, "text-loud", &["--verbose"]);
    assert!(!text(&quiet.stderr).contains(retry));
    assert!(
        text(&loud.stderr).lines().any(|l| l.starts_with(retry)),
        "{}",
        text(&loud.stderr)
    );

    let (quiet, out) = export(&ehr, "json-quiet", &["--log-format", "json"]);
    let quiet = json_messages(&quiet, &out);
    let (loud, out) = export(&ehr, "json-loud", &["-v", "--log-format", "json"]);
    let loud = json_messages(&loud, &out);
    assert!(
        quiet.iter().all(|(level, _)| level != "verbose"),
        "{quiet:?}"
    );
    assert!(
        loud.iter()
            .any(|(level, m)| level == "verbose" && m.starts_with(retry)),
        "{loud:?}"
    );
    assert!(
        loud.iter()
            .filter(|(_, m)| m.starts_with(retry))
            .all(|(level, _)| level == "verbose"),
        "{loud:?}"
    );

    let (quiet, out) = export(&ehr, "plain-quiet", &["--log-format", "plain"]);
    let quiet = plain_lines(&quiet, &out);
    let (loud, out) = export(&ehr, "plain-loud", &["--log-format", "plain", "--verbose"]);
    let loud = plain_lines(&loud, &out);
    assert!(
        quiet.iter().all(|(level, _)| level != "verbose"),
        "{quiet:?}"
    );
    assert!(
        loud.iter()
            .any(|(level, m)| level == "verbose" && m.starts_with(retry)),
        "{loud:?}"
    );
}

#[test]
fn a_failed_run_ends_with_its_error_in_the_format_asked_for() {
    let dir = temp_dir("log-format-error");
    // No server at this port: the run fails at startup (exit 1).
    let out = dir.join("out");
    let output = run(&[
        "export",
        "--fhir-url",
        "http://127.0.0.1:9/R4",
        "--id-list",
        "a",
        "--log-format",
        "json",
        out.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let messages = json_messages(&output, &out);
    let last = messages.last().expect("an error line");
    assert_eq!(last.0, "error", "{messages:?}");
    assert!(last.1.contains("127.0.0.1:9"), "{messages:?}");
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let dir = temp_dir("log-format-usage");
    let out = dir.join("out");
    for argv in [
        vec![
            "export",
            "--log-format",
            "x",
            out.to_str().expect("utf-8 path"),
        ],
        vec![
            "--log-format",
            "yaml",
            "bundle",
            out.to_str().expect("utf-8 path"),
        ],
    ] {
        let output = run(&argv);
        assert_eq!(output.status.code(), Some(2), "{argv:?}");
        assert!(
            text(&output.stderr).contains("--log-format"),
            "{}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), "");
    }
    assert!(!out.exists(), "nothing was written");
}
