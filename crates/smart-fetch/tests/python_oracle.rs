//! Python itself as the oracle for the spellings we copy from it: `urllib.parse.quote`,
//! `quote_plus` and `unquote_plus` (IDs in search URLs, the bulk kickoff query, the kickoff
//! log's `requestParameters`) and `json.dumps` of strings (every NDJSON line). One `python3`
//! process answers for a few thousand strings: every single character up to U+00FF, some
//! beyond, and seeded random mixes. The tests need `python3` on the PATH (the CI machine has
//! it); without it they fail, saying so, rather than pass without checking anything.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

const PYTHON: &str = r#"
import json, sys
from urllib.parse import quote, quote_plus, unquote_plus
out = []
for s in json.load(sys.stdin):
    out.append({
        "quote": quote(s, safe=""),
        "quote_plus": quote_plus(s, safe=""),
        "unquote_plus": unquote_plus(s),
        "dumps": json.dumps(s),
    })
json.dump(out, sys.stdout)
"#;

/// The strings to check: every character up to U+00FF alone, some others, and random mixes
/// from a fixed seed (a small xorshift, so the same strings every run).
fn samples() -> Vec<String> {
    let mut out: Vec<String> = (0u32..=0xff)
        .filter_map(char::from_u32)
        .map(String::from)
        .collect();
    for s in [
        "",
        "urn:oid:1.2.840|MRN 12+3",
        "a%2Cb",
        "%zz%4",
        "%FF%FE",
        "é ü 😀 \u{2028}",
    ] {
        out.push(s.to_string());
    }
    let pool: Vec<char> = (0u32..0x80)
        .filter_map(char::from_u32)
        .chain(['é', 'ß', '中', '😀', '\u{10ffff}', '\u{2028}'])
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 24) as usize;
        let s: String = (0..len)
            .map(|_| pool[(next() % pool.len() as u64) as usize])
            .collect();
        out.push(s);
    }
    out
}

fn python_answers(samples: &[String]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("these tests need python3 on the PATH: {e}"));
    let input = serde_json::to_vec(samples).expect("samples as JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write to python3");
    let output = child.wait_with_output().expect("python3 ran");
    assert!(output.status.success(), "python3 failed");
    serde_json::from_slice(&output.stdout).expect("python3's answer is JSON")
}

#[test]
fn quoting_and_string_escapes_are_pythons() {
    let samples = samples();
    let answers = python_answers(&samples);
    assert_eq!(answers.len(), samples.len());
    let mut checked = 0;
    for (s, want) in samples.iter().zip(&answers) {
        assert_eq!(
            smart_fetch::url_encoding::quote(s),
            want["quote"],
            "quote({s:?})"
        );
        assert_eq!(
            smart_fetch::url_encoding::quote_plus(s),
            want["quote_plus"],
            "quote_plus({s:?})"
        );
        assert_eq!(
            smart_fetch::url_encoding::unquote_plus(s),
            want["unquote_plus"],
            "unquote_plus({s:?})"
        );
        // Our NDJSON spelling of a string, and the tests' own encoder, are Python's.
        let ours = smart_fetch::json::to_ndjson_line(&json!(s));
        assert_eq!(ours, want["dumps"], "json.dumps({s:?})");
        assert_eq!(
            support::python::py_string(s),
            want["dumps"],
            "py_string({s:?})"
        );
        checked += 1;
    }
    assert!(checked > 2000, "{checked}");
}
