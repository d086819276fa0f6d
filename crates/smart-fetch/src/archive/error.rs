//! What can go wrong in `archive`, each as one line a hospital data engineer can act on, and
//! the one place that turns an `object_store` error into such a line.
//!
//! `object_store` formats a failed request as the method, the URL and the server's whole
//! answer body. The URL carries no secret (requests are signed in headers), but the body of
//! an S3 error may echo the access key ID, the string that was signed or a request ID, and a
//! URL the user configured (`AWS_ENDPOINT_URL`) could carry a password. So no text of theirs
//! is ever shown for a remote store: only the HTTP status, the service's error code (a bare
//! word such as `InvalidAccessKeyId`) and, for a transport failure, its kind. Local-path
//! errors (file://) are the operating system's and are shown as they are.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Destination(String),
    #[error(
        "This smart-fetch was built without {what} support: rebuild it with the cargo feature '{feature}' (it is on by default)."
    )]
    FeatureMissing {
        what: &'static str,
        feature: &'static str,
    },
    #[error("{0}")]
    Profile(String),
    #[error(
        "The archive folder '{0}' does not exist (is the share mounted?). Create it first, or fix --to."
    )]
    NoFolder(PathBuf),
    #[error(
        "The bucket or container of {dest} does not exist{code}. Check the name in --to{hint}."
    )]
    NoBucket {
        dest: String,
        code: String,
        hint: &'static str,
    },
    #[error("{dest} refused the credentials ({detail}). Check {vars}.")]
    Credentials {
        dest: String,
        detail: String,
        vars: &'static str,
    },
    #[error(
        "{dest} denied {doing} ({detail}). The credentials need permission to list, read, write and delete objects under the destination."
    )]
    Denied {
        dest: String,
        doing: String,
        detail: String,
    },
    #[error(
        "Could not reach {dest} while {doing} ({detail}). Check {endpoint}and the network; the same command then resumes."
    )]
    Unreachable {
        dest: String,
        doing: String,
        detail: String,
        endpoint: &'static str,
    },
    #[error(
        "{dest} failed while {doing} ({detail}), after retries. Rerun the same command to resume."
    )]
    Store {
        dest: String,
        doing: String,
        detail: String,
    },
    /// OUTPUT_ROOT is missing, not a folder, a leaf folder or unreadable: `status`'s words.
    #[error(transparent)]
    Root(#[from] crate::status::StatusError),
    #[error("Nothing to archive: {0}")]
    NothingToArchive(String),
    #[error("Interrupted. Run the same command again to resume.")]
    Interrupted,
}

impl ArchiveError {
    /// A bad `--to` is a usage error (exit 2), like any other bad option value.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ArchiveError::Destination(_) | ArchiveError::FeatureMissing { .. }
        )
    }
}

/// What the remote store was asked when it failed, and where it is, for the message.
pub(crate) struct Context<'a> {
    pub dest: &'a str,
    pub doing: &'a str,
    /// The scheme decides which environment variables the hints name.
    pub scheme: super::dest::SchemeKind,
}

/// The facts of a failed request that are safe to show.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub status: Option<u16>,
    /// The service's error code, e.g. `NoSuchBucket`.
    pub code: Option<String>,
    /// A transport failure's kind (no answer at all).
    pub transport: Option<&'static str>,
}

impl Facts {
    pub fn of(err: &object_store::Error) -> Facts {
        let mut facts = Facts::default();
        let mut text = err.to_string();
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(s) = source {
            if let Some(http) = s.downcast_ref::<object_store::client::HttpError>() {
                use object_store::client::HttpErrorKind as K;
                facts.transport = Some(match http.kind() {
                    K::Connect => "could not connect",
                    K::Timeout => "timed out",
                    K::Interrupted => "the connection broke off",
                    K::Decode => "an answer that could not be read",
                    K::Request => "the request could not be sent",
                    _ => "a transport error",
                });
            }
            text.push('\n');
            text.push_str(&s.to_string());
            source = s.source();
        }
        facts.status = match err {
            object_store::Error::NotFound { .. } => Some(404),
            object_store::Error::PermissionDenied { .. } => Some(403),
            object_store::Error::Unauthenticated { .. } => Some(401),
            _ => None,
        }
        .or_else(|| status_in(&text));
        facts.code = code_in(&text);
        if facts.status.is_some() {
            facts.transport = None;
        }
        facts
    }

    /// `HTTP 403, InvalidAccessKeyId`, `could not connect`, …
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(status) = self.status {
            parts.push(format!("HTTP {status}"));
        }
        if let Some(code) = &self.code {
            parts.push(code.clone());
        }
        if let Some(kind) = self.transport {
            parts.push(kind.to_string());
        }
        if parts.is_empty() {
            parts.push("an unexpected answer".to_string());
        }
        parts.join(", ")
    }
}

/// `… status code: 403 Forbidden …` → 403.
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    let digits: String = text[at..].chars().take(3).collect();
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

/// `<Code>NoSuchBucket</Code>` → `NoSuchBucket` (letters and digits only, so nothing else
/// of the body can come along).
fn code_in(text: &str) -> Option<String> {
    let at = text.find("<Code>")? + "<Code>".len();
    let rest = &text[at..];
    let end = rest.find("</Code>")?;
    let code = &rest[..end];
    (!code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthenticationFailed",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
];

/// One line for a remote store error; `local` when the store is a local path, whose errors
/// are the operating system's own words and carry no secret.
pub(crate) fn remote(err: &object_store::Error, ctx: &Context<'_>) -> ArchiveError {
    use super::dest::SchemeKind;
    let dest = ctx.dest.to_string();
    let doing = ctx.doing.to_string();
    if ctx.scheme == SchemeKind::Local {
        return ArchiveError::Store {
            dest,
            doing,
            detail: err.to_string(),
        };
    }
    let facts = Facts::of(err);
    let detail = facts.detail();
    let vars = match ctx.scheme {
        SchemeKind::Gcs => "GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT",
        SchemeKind::Azure => {
            "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or the other AZURE_* credentials)"
        }
        _ => "AWS_PROFILE, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN",
    };
    let credentials = facts
        .code
        .as_deref()
        .is_some_and(|c| CREDENTIAL_CODES.contains(&c))
        || facts.status == Some(401);
    if credentials {
        return ArchiveError::Credentials { dest, detail, vars };
    }
    let no_bucket = facts
        .code
        .as_deref()
        .is_some_and(|c| c == "NoSuchBucket" || c == "ContainerNotFound");
    if no_bucket {
        return no_bucket_error(dest, &facts, ctx.scheme);
    }
    if facts.status == Some(403) {
        return ArchiveError::Denied {
            dest,
            doing,
            detail,
        };
    }
    if facts.status.is_none() && facts.transport.is_some() {
        let endpoint = match ctx.scheme {
            SchemeKind::S3 => {
                "AWS_ENDPOINT_URL (and AWS_ALLOW_HTTP=true for a plain-http endpoint) "
            }
            _ => "",
        };
        return ArchiveError::Unreachable {
            dest,
            doing,
            detail,
            endpoint,
        };
    }
    ArchiveError::Store {
        dest,
        doing,
        detail,
    }
}

pub(crate) fn no_bucket_error(
    dest: String,
    facts: &Facts,
    scheme: super::dest::SchemeKind,
) -> ArchiveError {
    ArchiveError::NoBucket {
        dest,
        code: facts
            .code
            .as_deref()
            .map_or_else(String::new, |c| format!(" ({c})")),
        hint: match scheme {
            super::dest::SchemeKind::S3 => ", and AWS_REGION / AWS_ENDPOINT_URL",
            _ => "",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_codes_and_statuses_are_taken_from_an_answer() {
        let body = "Error performing GET http://127.0.0.1:1/b in 2ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist</Message><AWSAccessKeyId>AKIASECRETISH</AWSAccessKeyId></Error>";
        assert_eq!(status_in(body), Some(403));
        assert_eq!(code_in(body).as_deref(), Some("InvalidAccessKeyId"));
        assert_eq!(code_in("<Code>two words</Code>"), None);
        assert_eq!(code_in("<Code></Code>"), None);
        assert_eq!(status_in("status code: 9x"), None);
        let facts = Facts {
            status: Some(403),
            code: Some("InvalidAccessKeyId".into()),
            transport: None,
        };
        assert_eq!(facts.detail(), "HTTP 403, InvalidAccessKeyId");
        assert!(!facts.detail().contains("AKIA"));
    }
}
