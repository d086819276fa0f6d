//! fake-ehr: a deterministic synthetic FHIR R4 server for smart-fetch's end-to-end tests,
//! README demo and benchmarks. Patients are generated on demand from a seed; the server
//! imitates Epic or a generic FHIR server, with optional auth, latency and injected faults.

mod auth;
pub mod bulk;
mod capability;
mod catalog;
mod config;
pub mod data;
mod faults;
mod instant;
mod jwt;
pub mod keys;
mod latency;
mod outcome;
mod query;
mod router;
mod search;
mod server;
mod stats;
mod store;
mod switches;
mod token;

pub use bulk::{BulkConfig, BulkStats, Membership, RetryAfter};
pub use config::{AuthMode, Config, Flavor};
pub use faults::Fault;
pub use server::{Server, spawn, start};
pub use stats::Stats;
pub use switches::{TruncateSearch, ValueLists};
