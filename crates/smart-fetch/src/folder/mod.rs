//! The export folder: numbered workdirs, `.metadata` of both kinds, `log.ndjson`, NDJSON
//! discovery and symlinks. Everything that touches the folder layout goes through here; it
//! never talks to the server.

pub mod discovery;
pub mod error;
pub mod log;
pub mod metadata;
pub mod symlinks;
pub mod workdir;

pub use error::FolderError;
pub use metadata::{ExportContext, ManagedMetadata, OutputMetadata};
