//! Folder errors, worded as the Python tool's fatal messages (docs/cli.md#fatal-errors). Only
//! `main` prints them; the folder layer never exits the process itself.

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("Expected a local folder, but '{0}' looks like a URL.")]
    LooksLikeUrl(String),
    #[error("Local folder '{0}' does not exist.")]
    Missing(String),
    /// `Folder X is not an output folder, but a managed folder` (and the reverse).
    #[error(
        "Folder {folder} is not {} folder, but {} folder",
        with_article(expected),
        with_article(found)
    )]
    WrongKind {
        folder: String,
        expected: &'static str,
        found: String,
    },
    /// Context mismatches and the managed-folder checks carry the Python tool's full text.
    #[error("{0}")]
    Mismatch(String),
    #[error(
        "Existing subfolder '{0}' with the same nickname is too old to resume. Choose a new nickname."
    )]
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

/// `output` → `an output`, `managed` → `a managed`.
fn with_article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_messages_read_like_the_spec() {
        let e = FolderError::WrongKind {
            folder: "/tmp/x".into(),
            expected: "output",
            found: "managed".into(),
        };
        assert_eq!(
            e.to_string(),
            "Folder /tmp/x is not an output folder, but a managed folder"
        );
        let e = FolderError::WrongKind {
            folder: "out".into(),
            expected: "managed",
            found: "output".into(),
        };
        assert_eq!(
            e.to_string(),
            "Folder out is not a managed folder, but an output folder"
        );
    }
}
