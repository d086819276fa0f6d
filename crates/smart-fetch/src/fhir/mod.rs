//! The request engine: every byte to or from the FHIR server goes through `FhirClient`.
//! It owns auth and its renewal, retries, the shared connection budget and server
//! capabilities. It knows nothing about export folders.

mod auth;
pub mod batching;
pub mod budget;
pub mod capabilities;
pub mod client;
pub mod clients;
pub mod error;
pub mod keys;
pub mod retry;

pub use auth::load_secret;
pub use budget::{Budget, RequestRate};
pub use capabilities::{Capabilities, Vendor};
pub use client::{
    AuthOptions, ClientOptions, FhirClient, FhirResponse, Request, RequestObserver, StreamResponse,
};
pub use clients::Clients;
pub use error::FhirError;
pub use retry::RetryPolicy;
