//! smart-fetch: pull FHIR data out of an EHR (crawl, bulk export, hydration) into folders that
//! SMART Fetch 1.0.3 and Cumulus ETL read. The binary in `main.rs` is a thin shell over `cli`.
//!
//! Library modules never print: every message goes through a `report::Reporter` value, so
//! one run can be shown as console text, log lines or JSON, and many exports can share one
//! process. Only `cli` opens stdout and stderr; it hands them to the reporter.
//! (`print!`-style macros are denied for the whole workspace in Cargo.toml; the process's
//! streams, `std::io::stdout`/`stderr`, by clippy.toml.)
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::disallowed_methods)]

pub mod archive;
pub mod batch;
pub mod bulk;
pub mod bundle;
pub mod cancel;
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "the command line is where output is printed"
)]
pub mod cli;
pub mod console;
pub mod crawl;
pub mod delta;
pub mod error;
pub mod export;
pub mod fhir;
pub mod filters;
pub mod folder;
pub mod groups;
pub mod hydrate;
pub mod id_set;
pub mod json;
pub mod json_fields;
pub mod ndjson;
pub mod report;
pub mod resources;
pub mod safe_file;
pub mod status;
pub mod text;
pub mod timestamp;
pub mod url_encoding;

/// The SMART Fetch version whose on-disk format and output we reproduce. Written into
/// `.metadata` and `log.ndjson` so downstream tools see a folder they know.
pub const COMPAT_VERSION: &str = "1.0.3";
