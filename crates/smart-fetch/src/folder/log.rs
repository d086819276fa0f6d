//! `log.ndjson` (docs/log.md): Bulk Data export log lines, appended one whole line per write in
//! Python `json.dumps` spelling. Crawls write the "fake" log (docs/log.md#the-crawl-log) so Cumulus
//! ETL finds a group name and transaction time. Knows the line format only; which events to log and
//! when is the bulk/crawl engines' business.

use super::FolderError;
use crate::json;
use crate::timestamp::{self, Timestamp};
use serde_json::{Map, Value, json};
use std::fs;
use std::io::Write;
use std::path::Path;

/// File name inside a workdir; never compressed.
pub const FILE_NAME: &str = "log.ndjson";

/// `exportId` of every crawl-emulated event.
pub const FAKE_EXPORT_ID: &str = "fake-log";

/// `<fhir-url>/Group/<name>/$export`, or `<fhir-url>/$export` for an empty name. Joined like
/// a path: no doubled slash when the URL already ends with one.
pub fn crawl_export_url(fhir_url: &str, group_name: &str) -> String {
    let sep = if fhir_url.ends_with('/') { "" } else { "/" };
    if group_name.is_empty() {
        format!("{fhir_url}{sep}$export")
    } else {
        format!("{fhir_url}{sep}Group/{group_name}/$export")
    }
}

/// One log line (without newline). `kickoff` lines carry the client name and version.
pub fn event_line(export_id: &str, ts: &Timestamp, event_id: &str, detail: Value) -> String {
    let mut line = Map::new();
    line.insert("exportId".into(), Value::String(export_id.into()));
    line.insert("timestamp".into(), Value::String(timestamp::isoformat(ts)));
    line.insert("eventId".into(), Value::String(event_id.into()));
    line.insert("eventDetail".into(), detail);
    if event_id == "kickoff" {
        line.insert("_client".into(), Value::String("smart-fetch".into()));
        line.insert(
            "_clientVersion".into(),
            Value::String(crate::COMPAT_VERSION.into()),
        );
    }
    json::to_log_line(&Value::Object(line))
}

fn append_lines(workdir: &Path, lines: &[String]) -> Result<(), FolderError> {
    let path = workdir.join(FILE_NAME);
    let io_err = |source| FolderError::Io {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(workdir).map_err(io_err)?;
    // Only ever a regular file: a link planted at this name is an error, never followed.
    let mut file = crate::safe_file::append_regular(&path).map_err(io_err)?;
    for line in lines {
        // One write per whole line, so a crash never leaves half a line before the next one.
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        file.write_all(&bytes).map_err(io_err)?;
    }
    Ok(())
}

/// Make sure `log.ndjson` can take lines (creating it when missing) before starting
/// something whose events must be logged: a bulk kickoff the log could not record would
/// leave a job on the server that no later run knows about.
pub fn check_writable(workdir: &Path) -> Result<(), FolderError> {
    append_lines(workdir, &[])
}

/// Append one event, timestamped now.
pub fn append_event(
    workdir: &Path,
    export_id: &str,
    event_id: &str,
    detail: Value,
) -> Result<(), FolderError> {
    let line = event_line(export_id, &timestamp::now(), event_id, detail);
    append_lines(workdir, &[line])
}

/// The five fake-log events of a crawl, in order.
pub fn crawl_log_lines(
    export_url: &str,
    transaction_time: &Timestamp,
    now: &Timestamp,
) -> Vec<String> {
    let tt = timestamp::isoformat(transaction_time);
    let events = [
        (
            "kickoff",
            json!({
                "exportUrl": export_url,
                "softwareName": null,
                "softwareVersion": null,
                "softwareReleaseDate": null,
                "fhirVersion": null,
                "requestParameters": {},
                "errorCode": null,
                "errorBody": null,
                "responseHeaders": {},
            }),
        ),
        ("status_complete", json!({"transactionTime": tt})),
        (
            "status_page_complete",
            json!({
                "transactionTime": tt,
                "outputFileCount": 0,
                "deletedFileCount": 0,
                "errorFileCount": 0,
            }),
        ),
        (
            "manifest_complete",
            json!({
                "transactionTime": tt,
                "totalOutputFileCount": 0,
                "totalDeletedFileCount": 0,
                "totalErrorFileCount": 0,
                "totalManifests": 1,
            }),
        ),
        (
            "export_complete",
            json!({
                "files": 0,
                "resources": 0,
                "bytes": 0,
                "attachments": null,
                "duration": 0,
            }),
        ),
    ];
    events
        .into_iter()
        .map(|(event, detail)| event_line(FAKE_EXPORT_ID, now, event, detail))
        .collect()
}

/// Append the five fake-log events of a crawl.
pub fn append_crawl_log(
    workdir: &Path,
    export_url: &str,
    transaction_time: &Timestamp,
) -> Result<(), FolderError> {
    let lines = crawl_log_lines(export_url, transaction_time, &timestamp::now());
    append_lines(workdir, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::temp_dir;

    fn ts(text: &str) -> Timestamp {
        match timestamp::parse_fhir(text) {
            Some(t) => t,
            None => panic!("bad timestamp {text}"),
        }
    }

    #[test]
    fn export_urls() {
        assert_eq!(
            crawl_export_url("http://example.invalid/R4", "blarg"),
            "http://example.invalid/R4/Group/blarg/$export"
        );
        assert_eq!(
            crawl_export_url("http://example.invalid/R4/", "blarg"),
            "http://example.invalid/R4/Group/blarg/$export"
        );
        assert_eq!(
            crawl_export_url("http://example.invalid/R4", ""),
            "http://example.invalid/R4/$export"
        );
    }

    #[test]
    fn fake_log_lines_match_python() {
        let now = ts("2021-09-15T01:23:45+04:00");
        let lines = crawl_log_lines(
            "http://example.invalid/R4/Group/blarg/$export",
            &ts("2021-09-15T01:23:45+04:00"),
            &now,
        );
        let common =
            r#"{"exportId": "fake-log", "timestamp": "2021-09-15T01:23:45+04:00", "eventId": "#;
        let expected = [
            r#""kickoff", "eventDetail": {"exportUrl": "http://example.invalid/R4/Group/blarg/$export", "softwareName": null, "softwareVersion": null, "softwareReleaseDate": null, "fhirVersion": null, "requestParameters": {}, "errorCode": null, "errorBody": null, "responseHeaders": {}}, "_client": "smart-fetch", "_clientVersion": "1.0.3"}"#,
            r#""status_complete", "eventDetail": {"transactionTime": "2021-09-15T01:23:45+04:00"}}"#,
            r#""status_page_complete", "eventDetail": {"transactionTime": "2021-09-15T01:23:45+04:00", "outputFileCount": 0, "deletedFileCount": 0, "errorFileCount": 0}}"#,
            r#""manifest_complete", "eventDetail": {"transactionTime": "2021-09-15T01:23:45+04:00", "totalOutputFileCount": 0, "totalDeletedFileCount": 0, "totalErrorFileCount": 0, "totalManifests": 1}}"#,
            r#""export_complete", "eventDetail": {"files": 0, "resources": 0, "bytes": 0, "attachments": null, "duration": 0}}"#,
        ];
        let expected: Vec<String> = expected.iter().map(|e| format!("{common}{e}")).collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn appends_whole_lines() {
        let dir = temp_dir("log");
        let work = dir.join("001.x");
        let tt = ts("2020-01-01");
        if let Err(e) = append_crawl_log(&work, "http://x/$export", &tt) {
            panic!("{e}");
        }
        if let Err(e) = append_event(&work, "id1", "download_request", json!({"fileUrl": "é"})) {
            panic!("{e}");
        }
        let text = fs::read_to_string(work.join(FILE_NAME)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(text.ends_with('\n'));
        assert!(lines[1].contains(r#""transactionTime": "2020-01-01T00:00:00+14:00""#));
        assert!(lines[5].starts_with(r#"{"exportId": "id1", "timestamp": ""#));
        assert!(
            lines[5].ends_with(
                r#""eventId": "download_request", "eventDetail": {"fileUrl": "\u00e9"}}"#
            )
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
