//! FHIR Bulk Data export (docs/bulk.md, docs/log.md): the kickoff URL, the server-driven waiting
//! loop, the manifest, downloads streamed straight to (gzip) files on disk, the `log.ndjson` events
//! Cumulus ETL reads, server messages, DELETE, cancel and resume.
//!
//! Resume is finer than the Python tool's: besides the status URL in `.metadata` (which the
//! Python tool also keeps), a journal of our own (`.resume/bulk.journal`) lists the files
//! already complete, so an interrupted export downloads only what it still lacks.

pub mod download;
pub mod engine;
pub mod events;
pub mod failures;
pub mod journal;
pub mod kickoff;
pub mod manifest;
pub mod messages;
pub mod patients;
pub mod stall;
pub mod trust;
pub mod wait;

pub use engine::{BulkOutcome, BulkPlan, Export, Exported, cancel, export, run};
pub use kickoff::Level;
pub use wait::{DEFAULT_WAIT_LIMIT, parse_wait_limit};

use crate::fhir::FhirError;
use crate::folder::FolderError;

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// A fatal message worded at the point of failure (docs/cli.md#fatal-errors and our own).
    #[error("{0}")]
    Message(String),
    /// Every file that could be downloaded was, but some could not (refused or still
    /// failing): the export stays unfinished for a rerun. The text is the summary of
    /// `failures`. Exit code 3.
    #[error("{0}")]
    Incomplete(String),
}
