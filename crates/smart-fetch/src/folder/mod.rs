//! The export folder: numbered workdirs, `.metadata` of both kinds, `log.ndjson`, NDJSON
//! discovery and symlinks. Everything that touches the folder layout goes through here; it
//! never talks to the server and never prints fatal errors itself (it returns them).

pub mod contents;
pub mod discovery;
pub mod error;
pub mod history;
pub mod lock;
pub mod log;
pub mod metadata;
pub mod symlinks;
pub mod workdir;

pub use error::FolderError;
pub use metadata::{ExportCompletion, ExportContext, ManagedMetadata, OutputMetadata};

/// Our own state inside a workdir (the crawl's journals, the bulk journal, failed hydration
/// reads): one hidden folder that the Python tool never reads, so its folders stay its own
/// (docs/folders.md#our-own-state).
pub const STATE_DIR: &str = ".resume";
