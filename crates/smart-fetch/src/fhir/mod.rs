//! The request engine: every byte to or from the FHIR server goes through `FhirClient`.
//! It owns auth and its renewal, retries, the shared connection budget and server
//! capabilities. It knows nothing about export folders.

pub mod budget;
pub mod capabilities;
pub mod client;
pub mod error;

pub use budget::Budget;
pub use capabilities::{Capabilities, Vendor};
pub use client::{AuthOptions, ClientOptions, FhirClient, FhirResponse};
pub use error::FhirError;
