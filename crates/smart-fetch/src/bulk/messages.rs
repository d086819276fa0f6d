//! Server messages after a bulk export (docs/bulk.md#server-messages): every OperationOutcome issue
//! in the workdir's `error/` files, sorted and de-duplicated; `fatal`/`error` issues end the run,
//! the rest are printed. The server wrote them, so they are printed through `text::printable`: an
//! escape sequence in a diagnostic must not drive the terminal.

use crate::folder::discovery;
use crate::ndjson;
use crate::report::Reporter;
use crate::text::printable;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// `(messages, errors)` from `<workdir>/error/`.
pub fn gather(workdir: &Path, reporter: &Reporter) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut messages = BTreeSet::new();
    let mut errors = BTreeSet::new();
    for (path, _) in discovery::list(&workdir.join("error"), reporter) {
        for outcome in ndjson::read_values(&path, reporter) {
            if outcome.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
                continue;
            }
            for issue in outcome
                .get("issue")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = [
                    issue.get("diagnostics"),
                    issue.pointer("/details/text"),
                    issue.get("code"),
                ]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find(|t| !t.is_empty())
                .unwrap_or_default()
                .to_string();
                match issue.get("severity").and_then(Value::as_str) {
                    Some("fatal" | "error") => errors.insert(text),
                    _ => messages.insert(text),
                };
            }
        }
    }
    (messages, errors)
}

/// ` - <message>`, safe for a terminal.
fn item(message: &str) -> String {
    format!(" - {}", printable(message))
}

/// `Messages from server:\n - a\n - b` (None when there are none).
pub fn messages_text(messages: &BTreeSet<String>) -> Option<String> {
    (!messages.is_empty()).then(|| {
        let lines: Vec<String> = messages.iter().map(|m| item(m)).collect();
        format!("Messages from server:\n{}", lines.join("\n"))
    })
}

/// `Errors occurred during export:\n - e1` (None when there are none).
pub fn errors_text(errors: &BTreeSet<String>) -> Option<String> {
    (!errors.is_empty()).then(|| {
        let lines: Vec<String> = errors.iter().map(|m| item(m)).collect();
        format!("Errors occurred during export:\n{}", lines.join("\n"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::temp_dir;

    #[test]
    fn sorts_warnings_from_errors() {
        let dir = temp_dir("bulk-messages");
        let error_dir = dir.join("error");
        let _ = std::fs::create_dir_all(&error_dir);
        let lines = [
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning","diagnostics":"warning1"},{"severity":"error","code":"error1"}]}"#,
            r#"{"resourceType":"OperationOutcome","issue":[{"details":{"text":"info"}},{"severity":"warning","diagnostics":"warning1"}]}"#,
        ];
        let _ = std::fs::write(
            error_dir.join("OperationOutcome.001.ndjson"),
            lines.join("\n"),
        );
        let (messages, errors) = gather(&dir, &Reporter::silent());
        assert_eq!(
            messages_text(&messages).as_deref(),
            Some("Messages from server:\n - info\n - warning1")
        );
        assert_eq!(
            errors_text(&errors).as_deref(),
            Some("Errors occurred during export:\n - error1")
        );
        assert_eq!(gather(&dir.join("nothing"), &Reporter::silent()).0.len(), 0);
        let hostile: BTreeSet<String> = ["clear\u{1b}[2Jscreen".to_string()].into();
        assert_eq!(
            errors_text(&hostile).as_deref(),
            Some("Errors occurred during export:\n - clear\\u{1b}[2Jscreen")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
