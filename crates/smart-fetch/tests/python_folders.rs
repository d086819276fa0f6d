//! Folders written by the Python SMART Fetch 1.0.3, continued by ours (issue 5). The
//! fixture is laid out by a small writer here, exactly as the Python tool writes a managed
//! crawl export (spec §10, §12.8, §13, §14.9): both kinds of `.metadata` with Python's key
//! order and JSON spelling, `001.<nick>/<Type>.ndjson.gz` with Python's re-spelled floats,
//! the fake `log.ndjson`, and the symlinks. The writer was checked once by hand against the
//! real tool run on the same fake EHR (see `write_fixture_for_comparison`); the tests need
//! no Python.
//!
//! Then the fake EHR moves to quarter 2 (deleted, new and merged patients, churned and
//! changed records) and our tool continues the folder with `--since auto`.

mod support;

use fake_ehr::data;
use fake_ehr::{Config, Flavor};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use support::*;

const SEED: u64 = 1;
const N: usize = 20;
const TYPES: [&str; 4] = ["Patient", "Encounter", "Condition", "Procedure"];
/// `.metadata` and `log.ndjson` write times of the fixture (never compared).
const WRITTEN_AT: &str = "2025-12-31T09:00:00.123456+00:00";

// ---------------------------------------------------------------------------------------
// Python's JSON spellings (json.dumps with ensure_ascii), written independently of ours.

fn py_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A number as Python prints it after `json.loads`: integers as sent, floats in their
/// shortest form with at least one decimal (`1.50` → `1.5`, `120.0` stays).
fn py_number(n: &serde_json::Number) -> String {
    let spelled = n.to_string();
    if !spelled.contains(['.', 'e', 'E']) {
        return spelled;
    }
    let f: f64 = spelled.parse().expect("float");
    let short = format!("{f}");
    if short.contains(['.', 'e', 'E', 'i', 'N']) {
        short
    } else {
        format!("{short}.0")
    }
}

/// `json.dumps(value, separators=(item, key))`, or with `indent` when given.
fn py_dumps(value: &Value, item: &str, key: &str, indent: Option<usize>, depth: usize) -> String {
    let (open_pad, close_pad, sep) = match indent {
        Some(n) => (
            format!("\n{}", " ".repeat(n * (depth + 1))),
            format!("\n{}", " ".repeat(n * depth)),
            format!(",\n{}", " ".repeat(n * (depth + 1))),
        ),
        None => (String::new(), String::new(), item.to_string()),
    };
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => py_number(n),
        Value::String(s) => py_string(s),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| py_dumps(v, item, key, indent, depth + 1))
                .collect();
            format!("[{open_pad}{}{close_pad}]", parts.join(&sep))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let v = py_dumps(v, item, key, indent, depth + 1);
                    format!("{}{key}{v}", py_string(k))
                })
                .collect();
            format!("{{{open_pad}{}{close_pad}}}", parts.join(&sep))
        }
    }
}

/// NDJSON records: `separators=(",", ":")`.
fn py_record(v: &Value) -> String {
    py_dumps(v, ",", ":", None, 0)
}

/// `log.ndjson` lines: Python's default separators.
fn py_log_line(v: &Value) -> String {
    py_dumps(v, ", ", ": ", None, 0)
}

/// `.metadata`: `indent=2`, no trailing newline.
fn py_metadata(v: &Value) -> String {
    py_dumps(v, ",", ": ", Some(2), 0)
}

// ---------------------------------------------------------------------------------------
// Python's crawl "transaction time" (spec §9.7, §13.6) and isoformat.

/// A FHIR date or instant as an instant with its own offset (none → +14:00).
fn parse_fhir_date(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    use chrono::{FixedOffset, NaiveDate, TimeZone};
    let text = text.replace(":60", ":59");
    let plus14 = FixedOffset::east_opt(14 * 3600)?;
    let date_only = match text.len() {
        4 => format!("{text}-01-01"),
        7 => format!("{text}-01"),
        10 => text.clone(),
        _ => String::new(),
    };
    if !date_only.is_empty() {
        let d = NaiveDate::parse_from_str(&date_only, "%Y-%m-%d").ok()?;
        return plus14
            .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .single();
    }
    chrono::DateTime::parse_from_rfc3339(&text).ok()
}

/// Python's `datetime.isoformat()` of an aware datetime.
fn py_isoformat(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let micros = t.timestamp_subsec_micros();
    let frac = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!("{}{frac}{}", t.format("%Y-%m-%dT%H:%M:%S"), t.format("%:z"))
}

/// The done time Python records for a crawled type: the latest `meta.lastUpdated` or
/// created-date field (the crawl started later than any of them).
fn python_done(ty: &str, resources: &[Value]) -> String {
    let created = match ty {
        "AllergyIntolerance" | "Condition" => Some("recordedDate"),
        "DiagnosticReport" | "Observation" => Some("issued"),
        "DocumentReference" => Some("date"),
        "Immunization" => Some("recorded"),
        "MedicationRequest" | "ServiceRequest" => Some("authoredOn"),
        _ => None,
    };
    let mut best: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    for r in resources {
        let candidates = [
            r["meta"]["lastUpdated"].as_str(),
            created.and_then(|f| r[f].as_str()),
        ];
        for t in candidates.into_iter().flatten().filter_map(parse_fhir_date) {
            if best.is_none_or(|b| t > b) {
                best = Some(t);
            }
        }
    }
    py_isoformat(&best.expect("a date"))
}

// ---------------------------------------------------------------------------------------
// The fixture writer.

/// One managed crawl export as the Python tool leaves it: `export --id-file <group>.txt
/// --id-system … --type <types> --hydration-tasks none --nickname <nick> OUT`.
struct PythonCrawl<'a> {
    fhir_url: &'a str,
    /// `001.<nick>`.
    subfolder: &'a str,
    /// The ID file's stem, which names the fake log's Group.
    group_name: &'a str,
    /// Type → its crawled resources, in canonical type order.
    resources: Vec<(&'a str, Vec<Value>)>,
}

fn write_gz(path: &Path, lines: &[String]) {
    let file = std::fs::File::create(path).expect("create gz");
    let mut gz = GzEncoder::new(file, Compression::new(9));
    for line in lines {
        gz.write_all(line.as_bytes()).expect("write gz");
        gz.write_all(b"\n").expect("write gz");
    }
    gz.finish().expect("finish gz");
}

fn write_python_export(out: &Path, export: &PythonCrawl<'_>) {
    let work = out.join(export.subfolder);
    std::fs::create_dir_all(&work).expect("create workdir");
    let managed = json!({
        "fhir-url": export.fhir_url,
        "group": null,
        "kind": "managed",
        "timestamp": WRITTEN_AT,
        "version": "1.0.3"
    });
    std::fs::write(out.join(".metadata"), py_metadata(&managed)).expect("write");

    let mut filters = serde_json::Map::new();
    let mut done = serde_json::Map::new();
    for (ty, resources) in &export.resources {
        filters.insert(ty.to_string(), json!([]));
        done.insert(ty.to_string(), json!(python_done(ty, resources)));
        let lines: Vec<String> = resources.iter().map(py_record).collect();
        write_gz(&work.join(format!("{ty}.ndjson.gz")), &lines);
        let link = out.join(format!("{ty}.001.ndjson.gz"));
        let target = Path::new(export.subfolder).join(format!("{ty}.ndjson.gz"));
        std::os::unix::fs::symlink(target, link).expect("symlink");
    }
    let meta = json!({
        "filters": filters,
        "since": null,
        "kind": "output",
        "timestamp": WRITTEN_AT,
        "version": "1.0.3",
        "done": done,
        "complete": true
    });
    std::fs::write(work.join(".metadata"), py_metadata(&meta)).expect("write");

    // The fake log: its transaction time is the earliest done time (spec §12.8).
    let earliest = done
        .values()
        .filter_map(|v| v.as_str())
        .min_by_key(|s| parse_fhir_date(s))
        .expect("done")
        .to_string();
    let event = |id: &str, detail: Value| json!({"exportId": "fake-log", "timestamp": WRITTEN_AT, "eventId": id, "eventDetail": detail});
    let mut kickoff = event(
        "kickoff",
        json!({
            "exportUrl": format!("{}/Group/{}/$export", export.fhir_url, export.group_name),
            "softwareName": null, "softwareVersion": null, "softwareReleaseDate": null,
            "fhirVersion": null, "requestParameters": {}, "errorCode": null,
            "errorBody": null, "responseHeaders": {}
        }),
    );
    if let Some(map) = kickoff.as_object_mut() {
        map.insert("_client".into(), json!("smart-fetch"));
        map.insert("_clientVersion".into(), json!("1.0.3"));
    }
    let events = [
        kickoff,
        event("status_complete", json!({"transactionTime": earliest})),
        event(
            "status_page_complete",
            json!({"transactionTime": earliest, "outputFileCount": 0, "deletedFileCount": 0, "errorFileCount": 0}),
        ),
        event(
            "manifest_complete",
            json!({"transactionTime": earliest, "totalOutputFileCount": 0, "totalDeletedFileCount": 0, "totalErrorFileCount": 0, "totalManifests": 1}),
        ),
        event(
            "export_complete",
            json!({"files": 0, "resources": 0, "bytes": 0, "attachments": null, "duration": 0}),
        ),
    ];
    let log: String = events.iter().map(|e| py_log_line(e) + "\n").collect();
    std::fs::write(work.join("log.ndjson"), log).expect("write log");
}

/// Quarter 1 of the fake EHR as the Python tool exports `TYPES` for MRNs `0..N+2`
/// (the last two are unknown until quarter 2).
fn quarter_one_export<'a>(fhir_url: &'a str, subfolder: &'a str) -> PythonCrawl<'a> {
    let resources = TYPES
        .iter()
        .map(|&ty| {
            let of_type: Vec<Value> = (0..N)
                .flat_map(|i| data::patient_resources_in_quarter(SEED, N, i, 1))
                .filter(|r| r["resourceType"] == ty)
                .collect();
            (ty, of_type)
        })
        .collect();
    PythonCrawl {
        fhir_url,
        subfolder,
        group_name: "mrns",
        resources,
    }
}

/// Writes the fixture for a running fake EHR (`fake-ehr --flavor epic --patients 20`), to
/// compare with the real Python tool's folder by hand:
/// `PY_FIXTURE_URL=<url> PY_FIXTURE_OUT=<dir> cargo test --test python_folders -- --ignored`
/// next to `smart-fetch export --fhir-url <url> --id-file mrns.txt --id-system <MRN system>
/// --type Patient,Encounter,Condition,Procedure --hydration-tasks none --nickname py-q1 <dir2>`.
#[test]
#[ignore = "writes the fixture for a by-hand comparison with the Python tool"]
fn write_fixture_for_comparison() {
    let url = std::env::var("PY_FIXTURE_URL").expect("PY_FIXTURE_URL");
    let out = PathBuf::from(std::env::var("PY_FIXTURE_OUT").expect("PY_FIXTURE_OUT"));
    write_python_export(&out, &quarter_one_export(&url, "001.py-q1"));
}

// ---------------------------------------------------------------------------------------

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn deleted_ids(workdir: &Path, ty: &str) -> BTreeSet<String> {
    let path = workdir
        .join("deleted")
        .join(format!("Bundle.{ty}.ndjson.gz"));
    if !path.exists() {
        return BTreeSet::new();
    }
    read_lines(&path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            let url = v["entry"][0]["request"]["url"].as_str().expect("url");
            url.strip_prefix(&format!("{ty}/"))
                .expect("type")
                .to_string()
        })
        .collect()
}

fn ids_in(path: &Path) -> BTreeSet<String> {
    read_lines(path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            v["id"].as_str().expect("id").to_string()
        })
        .collect()
}

#[test]
fn python_folder_continued_with_since_auto() {
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: N,
        seed: SEED,
        ..Config::default()
    });
    let url = ehr.base_url();
    let dir = temp_dir("python-folder");
    let out = dir.join("out");
    let fixture = quarter_one_export(&url, "001.py-q1");
    write_python_export(&out, &fixture);
    let mrns = mrn_file(&dir, "mrns.txt", data::patients_in_quarter(N, 2));

    ehr.set_quarter(2).expect("quarter 2");
    let args = [
        "export",
        "--fhir-url",
        &url,
        "--id-file",
        p(&mrns),
        "--id-system",
        data::MRN_SYSTEM,
        "--type",
        "Patient,Encounter,Condition,Procedure",
        "--since",
        "auto",
        "--nickname",
        "ours-q2",
        p(&out),
    ];
    let run = run(&args);
    assert_success(&run);
    let stdout = text(&run.stdout);

    // Since values: the Python export's done times, per type, as it spelled them.
    let py_meta = read_json(&out.join("001.py-q1/.metadata"));
    for ty in TYPES {
        let since = py_meta["done"][ty].as_str().expect("done");
        let line = format!("Using since value of '{since}' for {ty}.");
        assert!(stdout.contains(&line), "{line}\n{stdout}");
    }
    assert!(
        stdout.contains("defaulting to 'created' instead."),
        "{stdout}"
    );
    assert!(stdout.contains("Count of new patients: 4."), "{stdout}");
    assert!(stdout.contains("Count of deleted patients: 4."), "{stdout}");

    let ours = out.join("002.ours-q2");
    let meta = read_json(&ours.join(".metadata"));
    assert_eq!(meta["since"], "auto");
    assert_eq!(meta["sinceMode"], "created");
    assert_eq!(meta["sinceResources"], json!(["Condition"]));
    assert_eq!(
        meta["newPatients"],
        json!(["pat-000006", "pat-000016", "pat-000020", "pat-000021"])
    );
    assert!(!ours.join("error").exists(), "no search failed");

    // Deleted patients and resources, against the Python baseline.
    assert_eq!(
        deleted_ids(&ours, "Patient"),
        ["pat-000003", "pat-000007", "pat-000013", "pat-000017"]
            .map(String::from)
            .into()
    );
    let removed = data::removed_in_quarter2(SEED, N);
    for ty in ["Encounter", "Procedure"] {
        let was: BTreeSet<String> = fixture
            .resources
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, rs)| {
                rs.iter()
                    .filter_map(|r| r["id"].as_str())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = removed
            .iter()
            .filter_map(|r| r.strip_prefix(&format!("{ty}/")))
            .filter(|id| was.contains(*id))
            .map(String::from)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(deleted_ids(&ours, ty), want, "deleted {ty}");
    }
    assert!(
        !ours.join("deleted/Bundle.Condition.ndjson.gz").exists(),
        "a created-mode since type is never compared"
    );

    // New and surviving patients have their whole history, Conditions included.
    let conditions = ids_in(&ours.join("Condition.ndjson.gz"));
    for i in [6, 16, 20, 21] {
        for r in data::patient_resources_in_quarter(SEED, N, i, 2) {
            if r["resourceType"] == "Condition" {
                let id = r["id"].as_str().expect("id");
                assert!(conditions.contains(id), "Condition/{id} of patient {i}");
            }
        }
    }

    // Symlinks over both tools' subfolders (spec §18): the since Condition export adds to
    // Python's; full exports of the other types replace Python's.
    let links = symlinks(&out);
    let of = |ty: &str| -> BTreeMap<String, PathBuf> {
        links
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{ty}.")))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    };
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, PathBuf> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), PathBuf::from(t)))
            .collect()
    };
    assert_eq!(
        of("Condition"),
        want(&[
            ("Condition.001.ndjson.gz", "001.py-q1/Condition.ndjson.gz"),
            ("Condition.002.ndjson.gz", "002.ours-q2/Condition.ndjson.gz"),
        ])
    );
    for ty in ["Patient", "Encounter", "Procedure"] {
        assert_eq!(
            of(ty),
            want(&[(
                &format!("{ty}.001.ndjson.gz"),
                &format!("002.ours-q2/{ty}.ndjson.gz")
            )]),
            "{ty} links"
        );
    }
    for (name, target) in &links {
        assert!(out.join(target).is_file(), "{name} -> {}", target.display());
    }
    // Python's files stay as they were.
    for ty in TYPES {
        assert!(out.join(format!("001.py-q1/{ty}.ndjson.gz")).is_file());
    }
}

#[test]
fn fixture_spellings_are_pythons() {
    // Python's json.dumps of what the server sent: floats re-spelled, ASCII escapes.
    let v: Value =
        serde_json::from_str(r#"{"a":1.50,"b":120.0,"c":7,"d":"café 😀","e":[]}"#).expect("json");
    assert_eq!(
        py_record(&v),
        r#"{"a":1.5,"b":120.0,"c":7,"d":"caf\u00e9 \ud83d\ude00","e":[]}"#
    );
    assert_eq!(
        py_metadata(&json!({"f": {"P": [], "O": ["x"]}, "s": null})),
        "{\n  \"f\": {\n    \"P\": [],\n    \"O\": [\n      \"x\"\n    ]\n  },\n  \"s\": null\n}"
    );
    let t = parse_fhir_date("2025-01-04T19:55:07.065Z").expect("date");
    assert_eq!(py_isoformat(&t), "2025-01-04T19:55:07.065000+00:00");
    let t = parse_fhir_date("2020").expect("date");
    assert_eq!(py_isoformat(&t), "2020-01-01T00:00:00+14:00");
}
