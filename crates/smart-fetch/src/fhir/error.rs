//! Errors of the request engine, with the Python tool's message shape
//! (docs/server.md#error-messages-from-requests):
//! `An error occurred when connecting to "<url>": [<status>] <detail>`, and the choice of
//! `<detail>` from an error response body.

use serde_json::Value;

/// Statuses worth another try: the server may answer differently in a moment
/// (docs/server.md#retries).
pub const RETRYABLE_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// The server answered >= 400 (after retries, where retryable).
    #[error("An error occurred when connecting to \"{url}\": [{status}] {detail}")]
    Http {
        url: String,
        status: u16,
        detail: String,
        body: String,
    },
    /// No answer: DNS, refused, reset, timeout (after retries).
    #[error("An error occurred when connecting to \"{url}\": {message}")]
    Transport { url: String, message: String },
    /// Credentials or keys unusable, token endpoint refusing: ends the run.
    #[error("{0}")]
    Auth(String),
    /// Bad client configuration found before any request (argument combos, key files).
    #[error("{0}")]
    Config(String),
    /// A request that could not be made (unusable URL) or a successful answer that could not
    /// be used (`get_json` on a body that is not JSON). Not retried: a complete but malformed
    /// body is a server bug, not a hiccup. Fatal for that request only.
    #[error("An error occurred when connecting to \"{url}\": {message}")]
    Invalid { url: String, message: String },
    /// A successful answer whose body was not the JSON asked for (cut off, garbage), on
    /// every try: retried like a broken connection, so a later run may well succeed.
    #[error("An error occurred when connecting to \"{url}\": {message}")]
    Broken { url: String, message: String },
    /// Request after request failed with every retry spent and nothing succeeded between
    /// them: the server is down (a maintenance window, an outage). Ends the run; what was
    /// committed is kept and the same command resumes.
    #[error("{0}")]
    ServerDown(String),
    /// A request the trust rules forbid (credentials to another origin, a scheme other than
    /// http(s)) or an answer over a limit (`--max-body-size`). Not retried: the server would
    /// send the same again. Fatal for that request only.
    #[error("An error occurred when connecting to \"{url}\": Refused: {message}")]
    Refused { url: String, message: String },
}

impl FhirError {
    /// The body, when it is a JSON OperationOutcome (crawl writes it to `error/`).
    pub fn operation_outcome(&self) -> Option<Value> {
        let FhirError::Http { body, .. } = self else {
            return None;
        };
        let value: Value = serde_json::from_str(body).ok()?;
        (value.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome"))
            .then_some(value)
    }

    /// Errors that must end the whole run rather than one search.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            FhirError::Auth(_) | FhirError::Config(_) | FhirError::ServerDown(_)
        )
    }

    /// A "temporary" error (docs/server.md#retries): the request was retried and still failed, and
    /// a later run may succeed. Hydration counts these apart from permanent failures.
    pub fn is_temporary(&self) -> bool {
        match self {
            FhirError::Transport { .. } | FhirError::Broken { .. } => true,
            FhirError::Http { status, .. } => RETRYABLE_STATUSES.contains(status),
            _ => false,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            FhirError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `<detail>` of an error message, chosen from the error response body
/// (docs/server.md#error-messages-from-requests).
pub fn error_detail(status: u16, body: &str) -> String {
    let detail = match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => {
            if map.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") {
                let issue = map
                    .get("issue")
                    .and_then(Value::as_array)
                    .and_then(|issues| issues.first());
                let text = issue
                    .and_then(|i| i.pointer("/details/text"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty());
                text.or_else(|| issue.and_then(|i| i.get("diagnostics")?.as_str()))
                    .unwrap_or_default()
                    .to_string()
            } else if let Some(desc) = map.get("error_description").and_then(Value::as_str) {
                desc.to_string()
            } else if let Some(uri) = map.get("error_uri").and_then(Value::as_str) {
                format!("visit \"{uri}\" for more details")
            } else {
                String::new()
            }
        }
        // JSON that is not an object, or not JSON at all: the raw text says most.
        _ => body.trim().to_string(),
    };
    if detail.trim().is_empty() {
        generic_status_text(status)
    } else {
        detail
    }
}

fn generic_status_text(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown Status");
    let kind = if status >= 500 { "Server" } else { "Client" };
    format!("{kind} error '{status} {reason}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_from_operation_outcome_text_then_diagnostics() {
        let body = r#"{"resourceType":"OperationOutcome","issue":[{"details":{"text":"Nope"},"diagnostics":"diag"}]}"#;
        assert_eq!(error_detail(400, body), "Nope");
        let body = r#"{"resourceType":"OperationOutcome","issue":[{"diagnostics":"diag"}]}"#;
        assert_eq!(error_detail(400, body), "diag");
        let body = r#"{"resourceType":"OperationOutcome","issue":[]}"#;
        assert_eq!(error_detail(404, body), "Client error '404 Not Found'");
    }

    #[test]
    fn detail_from_oauth_and_raw_text() {
        assert_eq!(
            error_detail(
                400,
                r#"{"error":"invalid_client","error_description":"bad key"}"#
            ),
            "bad key"
        );
        assert_eq!(
            error_detail(400, r#"{"error":"x","error_uri":"https://e/doc"}"#),
            "visit \"https://e/doc\" for more details"
        );
        assert_eq!(error_detail(500, "[1, 2]"), "[1, 2]");
        assert_eq!(error_detail(502, "Bad gateway here\n"), "Bad gateway here");
        assert_eq!(
            error_detail(503, ""),
            "Server error '503 Service Unavailable'"
        );
        assert_eq!(
            error_detail(400, r#"{"other":1}"#),
            "Client error '400 Bad Request'"
        );
    }

    #[test]
    fn operation_outcome_only_for_outcome_bodies() {
        let oo = FhirError::Http {
            url: "u".into(),
            status: 404,
            detail: "d".into(),
            body: r#"{"resourceType":"OperationOutcome","issue":[]}"#.into(),
        };
        assert!(oo.operation_outcome().is_some());
        let other = FhirError::Http {
            url: "u".into(),
            status: 404,
            detail: "d".into(),
            body: "not json".into(),
        };
        assert!(other.operation_outcome().is_none());
        assert!(!other.is_temporary());
        assert_eq!(
            other.to_string(),
            "An error occurred when connecting to \"u\": [404] d"
        );
    }
}
