//! `FhirClient`: one server, one credential set. Sessions (capabilities + auth), request
//! construction (§7.3), retries (§7.5), 401 renewal (§7.6) and the budget.

use super::{Budget, Capabilities, FhirError};
use std::path::PathBuf;

/// Raw credential arguments as the user gave them (spec §2.2); loaded and validated by
/// `FhirClient::new`.
#[derive(Clone, Debug, Default)]
pub struct AuthOptions {
    pub smart_client_id: Option<String>,
    pub smart_key: Option<String>,
    pub basic_user: Option<String>,
    pub basic_passwd: Option<String>,
    pub bearer_token: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub fhir_url: String,
    pub auth: AuthOptions,
    pub token_url: Option<String>,
    pub smart_jku: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub verbose: bool,
}

pub struct FhirResponse {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes_body::Bytes,
}

mod bytes_body {
    pub type Bytes = Vec<u8>;
}

#[derive(Clone)]
pub struct FhirClient {}

impl FhirClient {
    /// Validates the auth combination and loads secrets and keys; no network.
    pub fn new(options: ClientOptions, budget: Budget) -> Result<Self, FhirError> {
        let _ = (options, budget);
        todo!()
    }

    /// Read the CapabilityStatement and authorize (spec §7.1).
    pub async fn open(&self) -> Result<(), FhirError> {
        todo!()
    }

    pub fn capabilities(&self) -> Capabilities {
        todo!()
    }

    /// The base URL with a trailing slash.
    pub fn base_url(&self) -> &str {
        todo!()
    }

    /// GET a path (joined to the base) or absolute URL with retries, auth and budget.
    pub async fn get(&self, url: &str, accept: &str) -> Result<FhirResponse, FhirError> {
        let _ = (url, accept);
        todo!()
    }

    /// GET with `Accept: application/fhir+json` and parse the body as JSON.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, FhirError> {
        let _ = url;
        todo!()
    }
}
