//! Errors of the request engine, with the spec's message shape (§7.4):
//! `An error occurred when connecting to "<url>": [<status>] <detail>`.

use serde_json::Value;

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
}

impl FhirError {
    /// The body, when it is a JSON OperationOutcome (crawl writes it to `error/`).
    pub fn operation_outcome(&self) -> Option<Value> {
        todo!()
    }

    /// Errors that must end the whole run rather than one search.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FhirError::Auth(_) | FhirError::Config(_))
    }
}
