//! The bulk export log (docs/log.md): which `log.ndjson` events a bulk export writes, with which
//! details, and the request observer that writes the per-attempt ones (`status_error`,
//! `download_request`, `download_error`) from inside the request engine's retry loop. The
//! line format itself belongs to `folder::log`.

use crate::fhir::{Capabilities, FhirError, RequestObserver};
use crate::folder::{FolderError, log};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The manifest array a file comes from (`itemType` of `download_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemType {
    Output,
    Error,
    Deleted,
}

impl ItemType {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Output => "output",
            ItemType::Error => "error",
            ItemType::Deleted => "deleted",
        }
    }
}

/// Appends the events of one exporter run to `<workdir>/log.ndjson`.
pub struct BulkLog {
    workdir: PathBuf,
    /// A random UUID until the kickoff succeeds, then the status URL (docs/log.md).
    export_id: Mutex<String>,
    /// When this run logged its first event (`export_complete.duration`).
    first_event: Mutex<Option<Instant>>,
}

/// What a failed request leaves for the log: `body`, `code`, `message`, `responseHeaders`.
pub struct ErrorDetail {
    pub body: Value,
    pub code: Value,
    pub message: String,
    pub headers: Value,
}

impl ErrorDetail {
    /// From an engine error and the headers of the answer that caused it, if any.
    pub fn of(error: &FhirError, headers: Option<&HeaderMap>) -> Self {
        match error {
            FhirError::Http { status, body, .. } => ErrorDetail {
                body: body_value(body),
                code: json!(status),
                message: error.to_string(),
                headers: headers.map_or(Value::Null, headers_value),
            },
            other => Self::without_response(other.to_string()),
        }
    }

    /// An error no answer came with (transport failures, broken streams, our own checks).
    pub fn without_response(message: String) -> Self {
        ErrorDetail {
            body: Value::Null,
            code: Value::Null,
            message,
            headers: Value::Null,
        }
    }
}

/// An error body: the JSON object when it is one, else the text.
fn body_value(body: &str) -> Value {
    match serde_json::from_str::<Value>(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::String(body.to_string()),
    }
}

/// Response headers with lower-cased names, repeated ones joined with `, `.
pub fn headers_value(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        map.insert(
            name.as_str().to_ascii_lowercase(),
            Value::String(values.join(", ")),
        );
    }
    Value::Object(map)
}

impl BulkLog {
    /// A log for a new export (random id until kickoff) or a resumed one (its status URL).
    pub fn new(workdir: &Path, export_id: Option<&str>) -> Self {
        let id = export_id
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        BulkLog {
            workdir: workdir.to_path_buf(),
            export_id: Mutex::new(id),
            first_event: Mutex::new(None),
        }
    }

    pub fn set_export_id(&self, id: &str) {
        *self.export_id.lock().unwrap_or_else(|e| e.into_inner()) = id.to_string();
    }

    fn write(&self, event: &str, detail: Value) -> Result<(), FolderError> {
        self.first_event
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        let id = self
            .export_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        log::append_event(&self.workdir, &id, event, detail)
    }

    /// `kickoff` (docs/log.md#kickoff): `outcome` is the 202's headers, or the error with the
    /// headers of the answer that carried it.
    pub fn kickoff(
        &self,
        url: &str,
        capabilities: &Capabilities,
        outcome: Result<&HeaderMap, &ErrorDetail>,
    ) -> Result<(), FolderError> {
        let (code, body, headers) = match outcome {
            Ok(headers) => (Value::Null, Value::Null, headers_value(headers)),
            // Without an answer, the body is the message (docs/log.md#kickoff).
            Err(e) if e.code.is_null() => {
                (Value::Null, Value::String(e.message.clone()), Value::Null)
            }
            Err(e) => (e.code.clone(), e.body.clone(), e.headers.clone()),
        };
        let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_string()));
        self.write(
            "kickoff",
            json!({
                "exportUrl": url,
                "softwareName": text(capabilities.software_name()),
                "softwareVersion": text(capabilities.software_version()),
                "softwareReleaseDate": text(capabilities.software_release_date()),
                "fhirVersion": text(capabilities.fhir_version()),
                "requestParameters": super::kickoff::request_parameters(url),
                "errorCode": code,
                "errorBody": body,
                "responseHeaders": headers,
            }),
        )
    }

    pub fn status_error(&self, e: &ErrorDetail) -> Result<(), FolderError> {
        self.write(
            "status_error",
            json!({"body": e.body, "code": e.code, "message": e.message, "responseHeaders": e.headers}),
        )
    }

    /// `status_complete`, `status_page_complete`, `manifest_complete`
    /// (docs/log.md#status-and-manifest-events).
    pub fn manifest(
        &self,
        transaction_time: &Value,
        outputs: usize,
        deleted: usize,
        errors: usize,
    ) -> Result<(), FolderError> {
        let tt = transaction_time;
        self.write("status_complete", json!({"transactionTime": tt}))?;
        self.write(
            "status_page_complete",
            json!({
                "transactionTime": tt,
                "outputFileCount": outputs,
                "deletedFileCount": deleted,
                "errorFileCount": errors,
            }),
        )?;
        self.write(
            "manifest_complete",
            json!({
                "transactionTime": tt,
                "totalOutputFileCount": outputs,
                "totalDeletedFileCount": deleted,
                "totalErrorFileCount": errors,
                "totalManifests": 1,
            }),
        )
    }

    pub fn download_request(
        &self,
        url: &str,
        item: ItemType,
        resource_type: &str,
    ) -> Result<(), FolderError> {
        self.write(
            "download_request",
            json!({"fileUrl": url, "itemType": item.as_str(), "resourceType": resource_type}),
        )
    }

    pub fn download_complete(
        &self,
        url: &str,
        resources: u64,
        size: u64,
    ) -> Result<(), FolderError> {
        self.write(
            "download_complete",
            json!({"fileUrl": url, "resourceCount": resources, "fileSize": size}),
        )
    }

    pub fn download_error(&self, url: &str, e: &ErrorDetail) -> Result<(), FolderError> {
        self.write(
            "download_error",
            json!({
                "fileUrl": url,
                "body": e.body,
                "code": e.code,
                "message": e.message,
                "responseHeaders": e.headers,
            }),
        )
    }

    /// `export_complete` (docs/log.md#export_complete); `duration` counts from this run's first
    /// event.
    pub fn export_complete(
        &self,
        files: u64,
        resources: u64,
        bytes: u64,
    ) -> Result<(), FolderError> {
        let started = *self.first_event.lock().unwrap_or_else(|e| e.into_inner());
        let duration = started.map_or(0, |s| s.elapsed().as_millis());
        self.write(
            "export_complete",
            json!({
                "files": files,
                "resources": resources,
                "bytes": bytes,
                "attachments": null,
                "duration": u64::try_from(duration).unwrap_or(u64::MAX),
            }),
        )
    }
}

/// What a [`Watch`] logs for each attempt.
pub enum Watched<'a> {
    /// Kickoff and DELETE: nothing per attempt (the kickoff event is written once, after).
    Quiet,
    /// Status polls: `status_error` for each failed attempt.
    Status,
    /// File downloads: `download_request` per attempt, `download_error` per failure.
    Download {
        url: &'a str,
        item: ItemType,
        resource_type: &'a str,
    },
}

/// The observer of one bulk request: logs attempts and failures, remembers the headers of
/// the last answer (the log wants them; `FhirError` does not keep them) and adds every
/// retry pause to the export's total wait.
pub struct Watch<'a> {
    log: &'a BulkLog,
    what: Watched<'a>,
    last_headers: Mutex<Option<HeaderMap>>,
    /// Milliseconds slept between attempts, shared with the waiting loop.
    waited_ms: &'a AtomicU64,
}

impl<'a> Watch<'a> {
    pub fn new(log: &'a BulkLog, what: Watched<'a>, waited_ms: &'a AtomicU64) -> Self {
        Watch {
            log,
            what,
            last_headers: Mutex::new(None),
            waited_ms,
        }
    }

    /// The error detail of `error`, with the headers of the answer it came from.
    pub fn detail(&self, error: &FhirError) -> ErrorDetail {
        let headers = self.last_headers.lock().unwrap_or_else(|e| e.into_inner());
        ErrorDetail::of(error, headers.as_ref())
    }
}

impl RequestObserver for Watch<'_> {
    fn attempt(&self, _url: &str) {
        *self.last_headers.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Watched::Download {
            url,
            item,
            resource_type,
        } = &self.what
        {
            // Logging is best effort inside the retry loop; a folder that cannot take a log
            // line fails the download's own writes soon after anyway.
            let _ = self.log.download_request(url, *item, resource_type);
        }
    }

    fn response(&self, _status: u16, headers: &HeaderMap) {
        *self.last_headers.lock().unwrap_or_else(|e| e.into_inner()) = Some(headers.clone());
    }

    fn failed(&self, error: &FhirError) {
        match &self.what {
            Watched::Quiet => {}
            Watched::Status => {
                let _ = self.log.status_error(&self.detail(error));
            }
            Watched::Download { url, .. } => {
                let _ = self.log.download_error(url, &self.detail(error));
            }
        }
    }

    fn retrying(&self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.waited_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::temp_dir;
    use reqwest::header::HeaderValue;

    #[test]
    fn kickoff_and_status_error_lines() {
        let dir = temp_dir("bulk-log");
        let log = BulkLog::new(&dir, None);
        let caps = Capabilities::default();
        let error = FhirError::Http {
            url: "http://x/$export".into(),
            status: 404,
            detail: "nope".into(),
            body: r#"{"resourceType":"OperationOutcome"}"#.into(),
        };
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let detail = ErrorDetail::of(&error, Some(&headers));
        assert!(
            log.kickoff("http://x/$export?_type=Patient", &caps, Err(&detail))
                .is_ok()
        );
        log.set_export_id("http://x/status/1");
        let transport = ErrorDetail::without_response("boom".into());
        assert!(log.status_error(&transport).is_ok());
        let text = std::fs::read_to_string(dir.join("log.ndjson")).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(uuid::Uuid::parse_str(lines[0]["exportId"].as_str().unwrap_or("")).is_ok());
        let kickoff = &lines[0]["eventDetail"];
        assert_eq!(kickoff["errorCode"], 404);
        assert_eq!(
            kickoff["errorBody"],
            json!({"resourceType": "OperationOutcome"})
        );
        assert_eq!(
            kickoff["responseHeaders"],
            json!({"content-type": "application/json", "x-multi": "a, b"})
        );
        assert_eq!(kickoff["requestParameters"], json!({"_type": "Patient"}));
        assert_eq!(lines[0]["_clientVersion"], "1.0.3");
        assert_eq!(lines[1]["exportId"], "http://x/status/1");
        assert_eq!(
            lines[1]["eventDetail"],
            json!({"body": null, "code": null, "message": "boom", "responseHeaders": null})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
