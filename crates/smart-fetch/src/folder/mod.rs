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

use std::path::Path;

/// True when `path` starts with a URL scheme (`letter (letter|digit|+|-|.)* ":"`), the way
/// Python's `urlparse` sees one. Like the original this also catches `C:\x` and `a:b`
/// (docs/cli.md#folder-arguments), which keeps the same arguments rejected.
pub fn looks_like_url(path: &str) -> bool {
    let Some((scheme, _)) = path.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// docs/cli.md#folder-arguments output-folder check (the folder itself is created later, on
/// demand).
pub fn check_output_folder(path: &str) -> Result<(), FolderError> {
    if looks_like_url(path) {
        return Err(FolderError::LooksLikeUrl(path.to_string()));
    }
    Ok(())
}

/// docs/cli.md#folder-arguments input-folder check: not a URL, and it must exist.
pub fn check_input_folder(path: &str) -> Result<(), FolderError> {
    check_output_folder(path)?;
    if !Path::new(path).exists() {
        return Err(FolderError::Missing(path.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_detection_matches_urlparse() {
        assert!(looks_like_url("s3://bucket/"));
        assert!(looks_like_url("http://example.invalid/R4"));
        assert!(looks_like_url("C:\\x"));
        assert!(looks_like_url("a:b"));
        assert!(!looks_like_url("/tmp/x"));
        assert!(!looks_like_url("relative/dir"));
        assert!(!looks_like_url("1a:b"));
        assert!(!looks_like_url(":x"));
        assert!(matches!(
            check_output_folder("http://x"),
            Err(FolderError::LooksLikeUrl(_))
        ));
        assert_eq!(
            check_input_folder("/definitely/not/here/sf")
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("Local folder '/definitely/not/here/sf' does not exist.")
        );
    }
}
