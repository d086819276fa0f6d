//! The one error type commands return, and its exit code. Only `main` turns it into text
//! for a person.

use crate::bulk::BulkError;
use crate::crawl::CrawlError;
use crate::fhir::FhirError;
use crate::filters::FilterError;
use crate::folder::FolderError;
use crate::hydrate::HydrateError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Crawl(#[from] CrawlError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    Bulk(#[from] BulkError),
    #[error(transparent)]
    Hydrate(#[from] HydrateError),
    #[error(transparent)]
    Groups(#[from] crate::groups::GroupsError),
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Delta(#[from] crate::delta::DeltaError),
    /// A fatal message worded at the point of failure (docs/cli.md#fatal-errors).
    #[error("{0}")]
    Message(String),
    /// Already printed to stdout (help listings, unknown type/task): exit with this code.
    #[error("")]
    Exit(u8),
    /// The run finished, but some work failed after its retries (searches, reads,
    /// downloads): the folder is left incomplete and a rerun retries only what failed.
    /// The message is the summary (one line per kind of failure and a total).
    #[error("{0}")]
    Incomplete(String),
    /// Interrupted (Ctrl-C, or SIGTERM from a scheduler): committed work is safe (exit 130).
    #[error("Interrupted. Run the same command again to resume.")]
    Interrupted,
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Exit(code) => *code,
            AppError::Interrupted => 130,
            AppError::Incomplete(_)
            | AppError::Bulk(BulkError::Incomplete(_))
            | AppError::Crawl(CrawlError::Bulk(BulkError::Incomplete(_))) => 3,
            AppError::Groups(err) if err.is_usage() => 2,
            AppError::Archive(err) if err.is_usage() => 2,
            AppError::Archive(crate::archive::ArchiveError::Interrupted) => 130,
            _ => 1,
        }
    }
}
