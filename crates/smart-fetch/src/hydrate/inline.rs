//! Inline tasks (`doc-inline`, `dxr-inline`, docs/hydration.md#inlining-attachments): put the
//! content behind attachment URLs into the attachments themselves (`data`, `contentType` with
//! charset, `size`, `hash`). Each input file of the workdir is rewritten through a temp file that
//! replaces it only once every line is written, in the original order; lines it does not change
//! (blank, undecodable, other types, nothing to inline) are copied byte for byte. An interrupted or
//! failed rewrite leaves the original untouched, and a rerun skips attachments that already have
//! `data`. Reads only the workdir (a `--source-dir` does not apply).

use super::progress::Progress;
use super::stats::{Stats, Status};
use super::{HydrateError, Hydrator, Task, input, mime, outcome_text};
use crate::fhir::{FhirResponse, Request};
use crate::folder::discovery;
use crate::ndjson::{self, SafeWriter};
use crate::resources::ResourceType;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use std::io::BufRead;
use std::path::{Path, PathBuf};

pub async fn run(h: &Hydrator, task: &Task) -> Result<Option<Stats>, HydrateError> {
    let files = discovery::files_of_type(&h.options.workdir, task.input.as_str(), h.reporter());
    if files.is_empty() {
        h.skip(task);
        return Ok(None);
    }
    let mut stats = Stats::default();
    let mut progress = h.progress(format!("Inlining {}s…", task.input));
    for path in files {
        stats.merge(&rewrite_file(h, task.input, path, &mut progress).await?);
    }
    Ok(Some(stats))
}

/// One line of a file being rewritten, after processing.
enum Line {
    /// Written back exactly as read.
    Keep(Vec<u8>),
    Changed(Value),
}

/// Rewrite one file. The original is replaced only when every line was written and
/// something changed.
async fn rewrite_file(
    h: &Hydrator,
    input_type: ResourceType,
    path: PathBuf,
    progress: &mut Progress,
) -> Result<Stats, HydrateError> {
    let mut rewrite = Rewrite::new(path.clone());
    let mut stats = Stats::default();
    let mut lines = input::raw_lines(path.clone())
        .map(|line| async move {
            match line {
                Ok(bytes) => process_line(h, input_type, bytes).await.map(Ok),
                Err(e) => Ok(Err(e)),
            }
        })
        .buffered(h.concurrency);
    while let Some(result) = lines.next().await {
        let (line, statuses) = match result? {
            Ok(processed) => processed,
            Err(read_error) => {
                // Keep the file as it is rather than cut it short.
                h.reporter().warn_on_stdout(format!(
                    "Could not read from '{}': {read_error}",
                    path.display()
                ));
                return Ok(stats);
            }
        };
        if let Some(statuses) = statuses {
            stats.add(&statuses);
            progress.tick();
        }
        rewrite.write(&line)?;
    }
    drop(lines);
    rewrite.commit()?;
    Ok(stats)
}

/// A rewrite in progress. Nothing is written until the first line that changes: the
/// unchanged lines before it are then copied from the original, so a rerun over notes that
/// are all inlined already writes nothing. Dropped without `commit` — an error, a read
/// failure, Ctrl-C dropping the whole run — it leaves the original untouched and removes
/// its temp file.
struct Rewrite {
    path: PathBuf,
    writer: Option<SafeWriter>,
    /// Unchanged lines read before the first change, not yet written.
    unchanged_prefix: u64,
}

impl Rewrite {
    fn new(path: PathBuf) -> Self {
        Rewrite {
            path,
            writer: None,
            unchanged_prefix: 0,
        }
    }

    fn write(&mut self, line: &Line) -> Result<(), HydrateError> {
        let written = match (&mut self.writer, line) {
            (None, Line::Keep(_)) => {
                self.unchanged_prefix += 1;
                Ok(())
            }
            (None, Line::Changed(value)) => {
                let mut writer = SafeWriter::new(self.path.clone(), false);
                let result = copy_lines(&self.path, self.unchanged_prefix, &mut writer)
                    .and_then(|()| writer.write(value));
                self.writer = Some(writer);
                result
            }
            (Some(writer), Line::Keep(bytes)) => writer.write_raw_line(bytes),
            (Some(writer), Line::Changed(value)) => writer.write(value),
        };
        written.map_err(|e| HydrateError::io(&self.path, e))
    }

    /// Replace the original, if anything changed.
    fn commit(mut self) -> Result<(), HydrateError> {
        match self.writer.take() {
            Some(writer) => writer.commit().map_err(|e| HydrateError::io(&self.path, e)),
            None => Ok(()),
        }
    }
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            drop(writer);
            let _ = std::fs::remove_file(ndjson::tmp_path(&self.path));
        }
    }
}

/// The first `n` lines of `path`, split exactly as `input::raw_lines` splits them.
fn copy_lines(path: &Path, n: u64, writer: &mut SafeWriter) -> std::io::Result<()> {
    let mut reader = ndjson::open_decompressed(path)?;
    let mut line = Vec::new();
    for _ in 0..n {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file changed while it was being rewritten",
            ));
        }
        input::trim_line_end(&mut line);
        writer.write_raw_line(&line)?;
    }
    Ok(())
}

/// A line and the statuses of its attachments (`None`: not a resource, not counted).
async fn process_line(
    h: &Hydrator,
    input_type: ResourceType,
    bytes: Vec<u8>,
) -> Result<(Line, Option<Vec<Status>>), HydrateError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((Line::Keep(bytes), None));
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok((Line::Keep(bytes), None));
    };
    let statuses = inline_resource(h, input_type, &mut value).await?;
    if statuses.contains(&Status::NewlyDone) {
        Ok((Line::Changed(value), Some(statuses)))
    } else {
        Ok((Line::Keep(bytes), Some(statuses)))
    }
}

/// JSON pointers of the attachments of a resource of the task's input type.
fn attachment_pointers(resource: &Value, input_type: ResourceType) -> Vec<String> {
    if resource.get("resourceType").and_then(Value::as_str) != Some(input_type.as_str()) {
        return Vec::new();
    }
    let items = |field: &str| {
        resource
            .get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().enumerate().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    match input_type {
        ResourceType::DocumentReference => items("content")
            .into_iter()
            .filter(|(_, c)| c.get("attachment").is_some_and(|a| !a.is_null()))
            .map(|(i, _)| format!("/content/{i}/attachment"))
            .collect(),
        ResourceType::DiagnosticReport => items("presentedForm")
            .into_iter()
            .map(|(i, _)| format!("/presentedForm/{i}"))
            .collect(),
        _ => Vec::new(),
    }
}

/// Inline every attachment of one resource, in order; a resource without any counts as one
/// ignored item.
async fn inline_resource(
    h: &Hydrator,
    input_type: ResourceType,
    resource: &mut Value,
) -> Result<Vec<Status>, HydrateError> {
    let pointers = attachment_pointers(resource, input_type);
    if pointers.is_empty() {
        return Ok(vec![Status::Ignored]);
    }
    let mut statuses = Vec::with_capacity(pointers.len());
    for pointer in pointers {
        let status = match resource
            .pointer_mut(&pointer)
            .and_then(Value::as_object_mut)
        {
            Some(attachment) => inline_attachment(h, attachment).await?,
            None => Status::Ignored,
        };
        statuses.push(status);
    }
    Ok(statuses)
}

/// What to do with an attachment before any request (docs/hydration.md#inlining-attachments,
/// steps 1–4).
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Skip(Status),
    /// GET this URL with `Accept: <mimetype>`.
    Fetch {
        url: String,
        mimetype: String,
    },
}

fn plan(attachment: &Map<String, Value>, allowed: &[String]) -> Plan {
    let Some(content_type) = attachment
        .get("contentType")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    else {
        return Plan::Skip(Status::Ignored);
    };
    let mimetype = mime::media_type(content_type);
    if !allowed.contains(&mimetype) {
        return Plan::Skip(Status::Ignored);
    }
    if attachment.contains_key("data") {
        return Plan::Skip(Status::AlreadyDone);
    }
    match attachment
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        Some(url) => Plan::Fetch {
            url: url.to_string(),
            mimetype,
        },
        None => Plan::Skip(Status::Ignored),
    }
}

async fn inline_attachment(
    h: &Hydrator,
    attachment: &mut Map<String, Value>,
) -> Result<Status, HydrateError> {
    let (url, mimetype) = match plan(attachment, &h.options.mimetypes) {
        Plan::Skip(status) => return Ok(status),
        Plan::Fetch { url, mimetype } => (url, mimetype),
    };
    let response = match h.client.request(Request::get(&url, &mimetype)).await {
        Ok(response) => response,
        Err(err) if err.is_fatal() => return Err(err.into()),
        Err(err) => return Ok(h.item_error(&err)),
    };
    let content_type = response.header("content-type");
    let got = content_type.map_or_else(|| "text/plain".to_string(), mime::media_type);
    // Some servers answer a Binary read with the FHIR resource whatever we ask for: the
    // note is its decoded `data`, never the JSON envelope.
    if got != mimetype && is_fhir_json(&got) {
        match binary_resource(&response.body) {
            BinaryContent::NotBinary => {}
            BinaryContent::Empty => {
                h.report(&format!(
                    "Error: the Binary resource at '{}' holds no data.",
                    crate::text::printable(&url)
                ));
                return Ok(Status::RetryError);
            }
            BinaryContent::Decoded {
                content_type,
                bytes,
            } => {
                let got = content_type
                    .as_deref()
                    .map_or_else(|| "text/plain".to_string(), mime::media_type);
                if got != mimetype {
                    h.report(&format!(
                        "Error: expected MIME type of '{mimetype}', but got '{got}'."
                    ));
                    return Ok(Status::FatalError);
                }
                apply(attachment, &mimetype, content_type.as_deref(), &bytes);
                return Ok(Status::NewlyDone);
            }
        }
    }
    if got != mimetype {
        h.report(&mime_mismatch_text(&mimetype, &got, &response));
        return Ok(Status::FatalError);
    }
    apply(attachment, &mimetype, content_type, &response.body);
    Ok(Status::NewlyDone)
}

fn is_fhir_json(media_type: &str) -> bool {
    matches!(media_type, "application/fhir+json" | "application/json")
}

/// A JSON answer to a Binary read, as far as inlining cares.
#[derive(Debug, PartialEq)]
enum BinaryContent {
    /// Not a FHIR Binary resource (e.g. an OperationOutcome).
    NotBinary,
    /// A Binary without usable `data` (absent, or not base64).
    Empty,
    Decoded {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
}

fn binary_resource(body: &[u8]) -> BinaryContent {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return BinaryContent::NotBinary;
    };
    if value.get("resourceType").and_then(Value::as_str) != Some("Binary") {
        return BinaryContent::NotBinary;
    }
    let data = value.get("data").and_then(Value::as_str);
    let Some(bytes) = data.and_then(|d| {
        let compact: String = d.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD.decode(compact).ok()
    }) else {
        return BinaryContent::Empty;
    };
    BinaryContent::Decoded {
        content_type: value
            .get("contentType")
            .and_then(Value::as_str)
            .map(str::to_string),
        bytes,
    }
}

fn mime_mismatch_text(want: &str, got: &str, response: &FhirResponse) -> String {
    let outcome = (got == "application/fhir+json")
        .then(|| response.json().ok())
        .flatten()
        .and_then(|v| outcome_text(&v));
    outcome.unwrap_or_else(|| format!("Error: expected MIME type of '{want}', but got '{got}'."))
}

/// docs/hydration.md#inlining-attachments, step 7: new keys go after the existing ones; existing
/// keys keep their place.
fn apply(
    attachment: &mut Map<String, Value>,
    mimetype: &str,
    content_type: Option<&str>,
    body: &[u8],
) {
    let charset = mime::recorded_charset(content_type);
    attachment.insert("data".into(), Value::String(STANDARD.encode(body)));
    attachment.insert(
        "contentType".into(),
        Value::String(format!("{mimetype}; charset={charset}")),
    );
    attachment.insert("size".into(), Value::from(body.len() as u64));
    attachment.insert(
        "hash".into(),
        Value::String(STANDARD.encode(Sha1::digest(body))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Read;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn spec_example_hello() {
        let mut attachment = object(json!({"url": "Binary/y", "contentType": "text/plain"}));
        apply(&mut attachment, "text/plain", Some("text/plain"), b"hello");
        assert_eq!(
            crate::json::to_ndjson_line(&Value::Object(attachment)),
            r#"{"url":"Binary/y","contentType":"text/plain; charset=utf-8","data":"aGVsbG8=","size":5,"hash":"qvTGHdzF6KLavt4PO0gs2a6pQ00="}"#
        );
        let mut attachment = object(json!({"contentType": "text/html", "url": "Binary/z"}));
        apply(
            &mut attachment,
            "text/html",
            Some("text/html; charset=ASCII"),
            b"",
        );
        assert_eq!(attachment["contentType"], "text/html; charset=ascii");
        assert_eq!(attachment["size"], 0);
        assert_eq!(attachment["hash"], "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
        let keys: Vec<&str> = attachment.keys().map(String::as_str).collect();
        assert_eq!(keys, ["contentType", "url", "data", "size", "hash"]);
    }

    #[test]
    fn binary_resources_are_decoded() {
        let decoded = binary_resource(
            br#"{"resourceType":"Binary","contentType":"text/plain; charset=utf-8","data":"aGVs\nbG8="}"#,
        );
        assert_eq!(
            decoded,
            BinaryContent::Decoded {
                content_type: Some("text/plain; charset=utf-8".into()),
                bytes: b"hello".to_vec()
            }
        );
        assert_eq!(
            binary_resource(br#"{"resourceType":"Binary","contentType":"text/plain"}"#),
            BinaryContent::Empty
        );
        assert_eq!(
            binary_resource(br#"{"resourceType":"Binary","data":"!!"}"#),
            BinaryContent::Empty
        );
        assert_eq!(
            binary_resource(br#"{"resourceType":"OperationOutcome"}"#),
            BinaryContent::NotBinary
        );
        assert_eq!(binary_resource(b"hello"), BinaryContent::NotBinary);
    }

    #[test]
    fn plans_per_attachment() {
        let allowed = mime::allowed(None);
        let p = |v: Value| plan(&object(v), &allowed);
        assert_eq!(p(json!({"url": "Binary/1"})), Plan::Skip(Status::Ignored));
        assert_eq!(
            p(json!({"url": "Binary/1", "contentType": ""})),
            Plan::Skip(Status::Ignored)
        );
        assert_eq!(
            p(json!({"url": "Binary/1", "contentType": "application/pdf"})),
            Plan::Skip(Status::Ignored)
        );
        assert_eq!(
            p(json!({"url": "Binary/1", "contentType": "text/plain", "data": null})),
            Plan::Skip(Status::AlreadyDone)
        );
        assert_eq!(
            p(json!({"contentType": "text/plain"})),
            Plan::Skip(Status::Ignored)
        );
        assert_eq!(
            p(json!({"url": "Binary/1", "contentType": "Text/HTML; charset=latin1"})),
            Plan::Fetch {
                url: "Binary/1".into(),
                mimetype: "text/html".into()
            }
        );
        // Malformed content types are text/plain (Python email semantics).
        assert_eq!(
            p(json!({"url": "http://x/b", "contentType": "nonsense"})),
            Plan::Fetch {
                url: "http://x/b".into(),
                mimetype: "text/plain".into()
            }
        );
        let custom = mime::allowed(Some("tEXt/Custom1,application/custom2"));
        assert_eq!(
            plan(
                &object(json!({"url": "a", "contentType": "text/plain"})),
                &custom
            ),
            Plan::Skip(Status::Ignored)
        );
        assert!(matches!(
            plan(
                &object(json!({"url": "a", "contentType": "text/custom1"})),
                &custom
            ),
            Plan::Fetch { .. }
        ));
    }

    #[test]
    fn rewrites_copy_the_unchanged_prefix_and_keep_every_line() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let _ = std::fs::create_dir_all(&dir);
        for name in ["a.ndjson", "a.ndjson.gz"] {
            let path = dir.join(name);
            let original = b"{\"id\":1}\r\n\nnot json \xff\n{\"id\":2}\n{\"id\":3}\n";
            let mut w = SafeWriter::new(path.clone(), false);
            for line in original.split(|b| *b == b'\n').take(5) {
                let mut line = line.to_vec();
                input::trim_line_end(&mut line);
                if let Err(e) = w.write_raw_line(&line) {
                    panic!("{e}");
                }
            }
            if let Err(e) = w.commit() {
                panic!("{e}");
            }
            let read = |p: &Path| {
                let mut bytes = Vec::new();
                match ndjson::open_decompressed(p).map(|mut r| r.read_to_end(&mut bytes)) {
                    Ok(Ok(_)) => bytes,
                    other => panic!("{other:?}"),
                }
            };
            let before = read(&path);
            let keep = |s: &[u8]| Line::Keep(s.to_vec());

            // Nothing changes: nothing is written at all.
            let mut r = Rewrite::new(path.clone());
            for line in [
                &b"{\"id\":1}"[..],
                b"",
                b"not json \xff",
                b"{\"id\":2}",
                b"{\"id\":3}",
            ] {
                assert!(r.write(&keep(line)).is_ok());
            }
            assert!(r.commit().is_ok());
            assert!(!ndjson::tmp_path(&path).exists());
            assert_eq!(read(&path), before);

            // Interrupted after a change: original untouched, temp file gone.
            let mut r = Rewrite::new(path.clone());
            assert!(r.write(&keep(b"{\"id\":1}")).is_ok());
            assert!(
                r.write(&Line::Changed(serde_json::json!({"id": 1.5})))
                    .is_ok()
            );
            assert!(ndjson::tmp_path(&path).exists());
            drop(r);
            assert!(!ndjson::tmp_path(&path).exists());
            assert_eq!(read(&path), before);

            // A change in the middle: the prefix is copied byte for byte, order kept.
            let mut r = Rewrite::new(path.clone());
            for line in [&b"{\"id\":1}"[..], b"", b"not json \xff"] {
                assert!(r.write(&keep(line)).is_ok());
            }
            assert!(
                r.write(&Line::Changed(serde_json::json!({"id": 2, "x": "é"})))
                    .is_ok()
            );
            assert!(r.write(&keep(b"{\"id\":3}")).is_ok());
            assert!(r.commit().is_ok());
            assert_eq!(
                read(&path),
                b"{\"id\":1}\n\nnot json \xff\n{\"id\":2,\"x\":\"\\u00e9\"}\n{\"id\":3}\n"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn attachments_of_each_type() {
        let doc = json!({
            "resourceType": "DocumentReference",
            "content": [
                {"attachment": {"url": "a"}},
                {"format": {}},
                {"attachment": null},
                {"attachment": {"url": "b"}}
            ]
        });
        assert_eq!(
            attachment_pointers(&doc, ResourceType::DocumentReference),
            ["/content/0/attachment", "/content/3/attachment"]
        );
        assert!(attachment_pointers(&doc, ResourceType::DiagnosticReport).is_empty());
        let dxr =
            json!({"resourceType": "DiagnosticReport", "presentedForm": [{"url": "a"}, "odd"]});
        assert_eq!(
            attachment_pointers(&dxr, ResourceType::DiagnosticReport),
            ["/presentedForm/0", "/presentedForm/1"]
        );
        assert!(
            attachment_pointers(
                &json!({"resourceType": "DiagnosticReport"}),
                ResourceType::DiagnosticReport
            )
            .is_empty()
        );
    }
}
