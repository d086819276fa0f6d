//! Folders as the Python SMART Fetch 1.0.3 writes them, for tests that continue or read
//! them: its JSON spellings (`json.dumps` with ASCII escapes, re-spelled floats), its crawl
//! "transaction time", and a writer of one managed crawl export (both kinds of `.metadata`
//! with Python's key order, `001.<nick>/<Type>.ndjson.gz`, the fake `log.ndjson`, the
//! symlinks). Checked once by hand against the real tool (`python_folders.rs`,
//! `write_fixture_for_comparison`).

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// `.metadata` and `log.ndjson` write times of the fixture (never compared).
pub const WRITTEN_AT: &str = "2025-12-31T09:00:00.123456+00:00";

// ---------------------------------------------------------------------------------------
// Python's JSON spellings (json.dumps with ensure_ascii), written independently of ours.

pub fn py_string(s: &str) -> String {
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
            // Python escapes everything outside ' '..='~' (DEL and controls included).
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
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
pub fn py_number(n: &serde_json::Number) -> String {
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
pub fn py_dumps(
    value: &Value,
    item: &str,
    key: &str,
    indent: Option<usize>,
    depth: usize,
) -> String {
    dumps_with(value, item, key, indent, depth, &py_number)
}

/// The NDJSON line smart-fetch must write for a resource, built without any of its code:
/// Python's `json.dumps(value, separators=(",", ":"))` (ASCII escapes, keys in order), with
/// numbers as the server spelled them (the one deliberate difference,
/// docs/differences.md#numbers-keep-the-servers-spelling). Tests build expected lines with
/// this, never with `smart_fetch::json`, so a bug in our serializer fails them.
pub fn ndjson_line(value: &Value) -> String {
    dumps_with(value, ",", ":", None, 0, &|n: &serde_json::Number| {
        n.to_string()
    })
}

fn dumps_with(
    value: &Value,
    item: &str,
    key: &str,
    indent: Option<usize>,
    depth: usize,
    number: &dyn Fn(&serde_json::Number) -> String,
) -> String {
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
        Value::Number(n) => number(n),
        Value::String(s) => py_string(s),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| dumps_with(v, item, key, indent, depth + 1, number))
                .collect();
            format!("[{open_pad}{}{close_pad}]", parts.join(&sep))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let v = dumps_with(v, item, key, indent, depth + 1, number);
                    format!("{}{key}{v}", py_string(k))
                })
                .collect();
            format!("{{{open_pad}{}{close_pad}}}", parts.join(&sep))
        }
    }
}

/// NDJSON records: `separators=(",", ":")`.
pub fn py_record(v: &Value) -> String {
    py_dumps(v, ",", ":", None, 0)
}

/// `log.ndjson` lines: Python's default separators.
pub fn py_log_line(v: &Value) -> String {
    py_dumps(v, ", ", ": ", None, 0)
}

/// `.metadata`: `indent=2`, no trailing newline.
pub fn py_metadata(v: &Value) -> String {
    py_dumps(v, ",", ": ", Some(2), 0)
}

// ---------------------------------------------------------------------------------------
// Python's crawl "transaction time" (docs/since.md#reading-fhir-dates,
// docs/crawl.md#writing-resources-and-finishing-a-type) and isoformat.

/// A FHIR date or instant as an instant with its own offset (none → +14:00).
pub fn parse_fhir_date(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
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
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&text) {
        return Some(t);
    }
    // A date and time without an offset: the earliest zone on Earth.
    let naive = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    plus14.from_local_datetime(&naive).single()
}

/// Python's `datetime.isoformat()` of an aware datetime.
pub fn py_isoformat(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
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
pub fn python_done(ty: &str, resources: &[Value]) -> String {
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
pub struct PythonCrawl<'a> {
    pub fhir_url: &'a str,
    /// `001.<nick>`.
    pub subfolder: &'a str,
    /// The ID file's stem, which names the fake log's Group.
    pub group_name: &'a str,
    /// Type → its crawled resources, in canonical type order.
    pub resources: Vec<(&'a str, Vec<Value>)>,
}

pub fn write_gz(path: &Path, lines: &[String]) {
    let file = std::fs::File::create(path).expect("create gz");
    let mut gz = GzEncoder::new(file, Compression::new(9));
    for line in lines {
        gz.write_all(line.as_bytes()).expect("write gz");
        gz.write_all(b"\n").expect("write gz");
    }
    gz.finish().expect("finish gz");
}

pub fn write_python_export(out: &Path, export: &PythonCrawl<'_>) {
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

    // The fake log: its transaction time is the earliest done time (docs/log.md#the-crawl-log).
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
