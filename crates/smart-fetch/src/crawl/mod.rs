//! The crawl: emulating a bulk export with per-patient searches (docs/crawl.md). `cohort` reads
//! the IDs a user names, `engine` plans and schedules the search chains, `search` runs one
//! chain, `lookups` sends Patient lookups several to a search, `patient_lists` sends the
//! searches of several patients as one, `membership` checks that
//! its answers hold only the patient searched, `sink`
//! commits results crash-safely and resumably, `error_file` keeps `error/` describing the
//! folder, and `report` says what a run did not get.

pub mod cohort;
pub mod engine;
pub mod error_file;
pub mod id_queue;
pub mod lookups;
pub mod membership;
pub mod patient_lists;
pub mod report;
pub mod search;
pub mod sink;

pub use engine::{BulkPatients, CrawlOutcome, CrawlPlan, run};
pub use report::CrawlReport;

use crate::fhir::FhirError;
use crate::folder::FolderError;

#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Bulk(#[from] crate::bulk::BulkError),
    #[error(
        "No cohort patients found in {0}.\nYou must either provide a cohort from a previous export with --source-dir, --id-list, or --id-file, or export patients in this crawl too."
    )]
    NoCohort(String),
    #[error("Interrupted. Run the same command again to resume.")]
    Interrupted,
    #[error("{0}")]
    Message(String),
}
