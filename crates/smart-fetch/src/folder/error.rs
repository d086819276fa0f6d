//! Folder errors, worded as the spec's fatal messages (§19.3).

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("Expected a local folder, but '{0}' looks like a URL.")]
    LooksLikeUrl(String),
    #[error("Local folder '{0}' does not exist.")]
    Missing(String),
    #[error("Folder {folder} is not a {expected} folder, but an {found} folder")]
    WrongKind {
        folder: String,
        expected: &'static str,
        found: String,
    },
    /// Context mismatches and the managed-folder checks carry the spec's full text.
    #[error("{0}")]
    Mismatch(String),
    #[error("Existing subfolder '{0}' with the same nickname is too old to resume. Choose a new nickname.")]
    NicknameTooOld(String),
    #[error("Folder '{0}' does not look like a SMART Fetch managed export folder.")]
    NotManaged(String),
    #[error("Could not write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not read {path}: {message}")]
    Corrupt { path: String, message: String },
}
