//! The NDJSON spelling, checked against an encoder that shares no code with smart-fetch
//! (`support::python::ndjson_line`, Python's `json.dumps` with numbers as spelled):
//!
//! - any JSON value our serializer writes is that encoder's line, and parses back equal;
//! - end to end, a crawl writes the same line for a resource whether the server spelled it
//!   the way we write (copied as it came: the fast path) or any other way (parsed and
//!   written again: the general path), and that line is the encoder's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::hostile::{Answer, Hostile, bundle, capability_statement, json_answer};
use support::python::ndjson_line;
use support::*;

/// Numbers as servers spell them: integers of any size, decimals with trailing zeros,
/// exponents of every form.
fn number() -> impl Strategy<Value = Value> {
    let spelled = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<i32>(), "[0-9]{1,6}").prop_map(|(i, f)| format!("{i}.{f}")),
        (
            any::<i16>(),
            "[0-9]{0,3}",
            prop_oneof![Just("e"), Just("E")],
            prop_oneof![Just(""), Just("+"), Just("-")],
            0u8..40
        )
            .prop_map(|(i, f, e, sign, x)| {
                let frac = if f.is_empty() {
                    String::new()
                } else {
                    format!(".{f}")
                };
                format!("{i}{frac}{e}{sign}{x}")
            }),
        Just("-0".to_string()),
        Just("1.50".to_string()),
        Just("0.000".to_string()),
        "[1-9][0-9]{20,40}",
    ];
    spelled.prop_map(|text| {
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    })
}

/// Text with everything a JSON encoder must get right: quotes, backslashes, `/`, control
/// characters, DEL, non-ASCII and characters outside the Basic Multilingual Plane.
fn json_text() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        Just('"'),
        Just('\\'),
        Just('/'),
        Just('\u{7f}'),
        Just('é'),
        Just('\u{2028}'),
        Just('😀'),
        Just('\u{10ffff}'),
        (0u8..0x20).prop_map(char::from),
        proptest::char::range(' ', '~'),
        any::<char>(),
    ];
    prop_oneof![
        proptest::collection::vec(tricky, 0..12).prop_map(|cs| cs.into_iter().collect()),
        any::<String>(),
        "[a-zA-Z0-9 ]{0,16}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        json_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((json_text(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn our_line_is_the_independent_encoders_and_parses_back_equal(value in json_value()) {
        let ours = smart_fetch::json::to_ndjson_line(&value);
        prop_assert_eq!(&ours, &ndjson_line(&value));
        let back: Value = serde_json::from_str(&ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, value);
    }
}

/// A search page whose entries are the given resource texts, byte for byte.
fn page_of(raw: &[String]) -> Vec<u8> {
    let entries: Vec<String> = raw
        .iter()
        .map(|r| format!("{{\"resource\":{r}}}"))
        .collect();
    format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[{}]}}",
        entries.join(",")
    )
    .into_bytes()
}

fn condition(id: &str, patient: &str, extra: &Value) -> Value {
    json!({
        "resourceType": "Condition",
        "id": id,
        "subject": {"reference": format!("Patient/{patient}")},
        "x": extra,
    })
}

/// One crawl of two patients against a server that spells `pa`'s Conditions exactly as we
/// write them and `pb`'s pretty-printed (spaces, raw non-ASCII): every line written must be
/// the independent encoder's line of that resource.
fn crawl_both_spellings(extras: &[Value]) -> Result<(), TestCaseError> {
    let of = |p: &str| -> Vec<Value> {
        extras
            .iter()
            .enumerate()
            .map(|(k, x)| condition(&format!("{p}-{k}"), p, x))
            .collect()
    };
    let (a, b) = (of("pa"), of("pb"));
    let fast: Vec<String> = a.iter().map(ndjson_line).collect();
    let general: Vec<String> = b
        .iter()
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default())
        .collect();
    let pages = Arc::new((page_of(&fast), page_of(&general)));
    let h = Hostile::start("127.0.0.1", move |seen, _| {
        let fhir_json = || {
            vec![(
                "Content-Type".to_string(),
                "application/fhir+json".to_string(),
            )]
        };
        match (seen.path(), seen.target.split_once('?').map(|(_, q)| q)) {
            ("/metadata", _) => json_answer(&capability_statement(&["Patient", "Condition"])),
            ("/Patient", Some(q)) => {
                let id = q.trim_start_matches("_id=");
                json_answer(&bundle(
                    &[json!({"resourceType": "Patient", "id": id})],
                    None,
                ))
            }
            ("/Condition", Some("patient=pa")) => Answer::Full(200, fhir_json(), pages.0.clone()),
            ("/Condition", Some("patient=pb")) => Answer::Full(200, fhir_json(), pages.1.clone()),
            _ => json_answer(&bundle(&[], None)),
        }
    });
    let dir = temp_dir("spelling");
    let out = dir.join("out");
    let output = run(&[
        "crawl",
        "--fhir-url",
        &h.url,
        "--id-list",
        "pa,pb",
        "--type",
        "Condition",
        out.to_str().unwrap_or_default(),
    ]);
    prop_assert!(output.status.success(), "{}", text_of(&output.stderr));
    let written: BTreeMap<String, String> = folder_resources(&out)
        .remove("Condition")
        .unwrap_or_default();
    let expected: BTreeMap<String, String> = a
        .iter()
        .chain(&b)
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_string(),
                ndjson_line(r),
            )
        })
        .collect();
    prop_assert_eq!(written, expected);
    Ok(())
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn fast_and_general_paths_write_the_same_line() {
    // Each case is one crawl (a process and a server), so a few cases of many resources.
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    let extras = proptest::collection::vec(json_value(), 1..16);
    if let Err(e) = runner.run(&extras, |extras| crawl_both_spellings(&extras)) {
        panic!("{e}");
    }
}
