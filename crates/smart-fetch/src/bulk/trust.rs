//! The bulk trust boundary: which URLs a bulk export follows, and which of them get our
//! credentials (the `Authorization` header, and `Epic-Client-ID`).
//!
//! The access token is for the FHIR server, so it goes only to its origin — the scheme,
//! host and port of `--fhir-url`. What a server hands us (the status URL of a kickoff, the
//! files of a manifest) is checked against that origin before anything is sent:
//! * a status URL (kickoff `Content-Location`, or one saved by an earlier run) must be on
//!   the FHIR server's origin, and so must the answer that named it; otherwise it is
//!   refused: never polled, saved, or DELETEd with a token;
//! * a manifest counts only when the status answer that carried it came from the FHIR
//!   server's origin (after redirects). A manifest from anywhere else gives none of its
//!   files credentials;
//! * a manifest file on the FHIR server's origin is fetched with credentials; on another
//!   origin without them, when the manifest says no token is needed
//!   (`requiresAccessToken: false`), and not at all when it says one is (we would have to
//!   hand the token to someone else);
//! * only `http` and `https` URLs are fetched; anything else (`file://`…) is refused at once.
//!
//! The Python tool sends the token with every file; this is deliberately stricter. The
//! decision is made here and nowhere else, so the request engine is never asked to send
//! credentials to a foreign origin, whatever its own rules.

use crate::fhir::client::same_origin;
use crate::text::printable;
use reqwest::Url;
use std::fmt;

/// The origin of a URL as people write it: `scheme://host[:port]`.
fn origin_text(url: &Url) -> String {
    printable(&url.origin().ascii_serialization()).into_owned()
}

/// Why a status URL is not followed.
#[derive(Debug)]
pub struct ForeignStatus {
    pub url: String,
    /// The foreign origin (of the URL, or of the answer that named it).
    pub origin: String,
    pub fhir_origin: String,
    /// The URL itself is on our origin, but the answer naming it came from `origin`.
    pub named_elsewhere: bool,
}

impl ForeignStatus {
    /// `it is on <origin>` or `it was named by an answer from <origin>`.
    pub fn reason(&self) -> String {
        if self.named_elsewhere {
            format!("it was named by an answer from {}", self.origin)
        } else {
            format!("it is on {}", self.origin)
        }
    }
}

/// A status URL is followed only when it, and the answer that named it (`via`, the final
/// URL of the kickoff after redirects), are on the FHIR server's origin.
pub fn check_status_url(fhir: &Url, status: &Url, via: Option<&Url>) -> Result<(), ForeignStatus> {
    let foreign = |origin: &Url, named_elsewhere| ForeignStatus {
        url: printable(status.as_str()).into_owned(),
        origin: origin_text(origin),
        fhir_origin: origin_text(fhir),
        named_elsewhere,
    };
    if !same_origin(status, fhir) {
        return Err(foreign(status, false));
    }
    match via {
        Some(via) if !same_origin(via, fhir) => Err(foreign(via, true)),
        _ => Ok(()),
    }
}

/// Why one manifest file is not downloaded. Each is final: asking again changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL we can make sense of (the engine's message).
    BadUrl(String),
    /// Not `http`/`https` (e.g. `file:`).
    Scheme(String),
    /// On another origin, and the manifest says the access token is needed there.
    ForeignNeedsToken { origin: String },
    /// The manifest itself came from another origin, and says its files need the token.
    UntrustedManifest { origin: String },
}

impl Refusal {
    /// One kind per variant, for the summary at the end of a run.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::BadUrl(_) => "refused: not a usable URL",
            Refusal::Scheme(_) => "refused: not an http(s) URL",
            Refusal::ForeignNeedsToken { .. } => {
                "refused: on another origin than the FHIR server, and the manifest wants the access token sent there"
            }
            Refusal::UntrustedManifest { .. } => {
                "refused: the manifest came from another origin than the FHIR server and wants the access token"
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadUrl(message) => write!(f, "{}", printable(message)),
            Refusal::Scheme(scheme) => write!(
                f,
                "only http and https URLs are downloaded, not '{}:'",
                printable(scheme)
            ),
            Refusal::ForeignNeedsToken { origin } => write!(
                f,
                "it is on {origin}, not on the FHIR server, and the manifest says it needs the \
                 access token, which is only ever sent to the FHIR server"
            ),
            Refusal::UntrustedManifest { origin } => write!(
                f,
                "the manifest came from {origin}, not from the FHIR server, and says its files \
                 need the access token"
            ),
        }
    }
}

/// Where the files of one manifest may be fetched from, and with what.
pub struct FileTrust {
    fhir: Url,
    /// The origin the manifest came from, when that is not the FHIR server's.
    untrusted_source: Option<String>,
    requires_token: bool,
}

impl FileTrust {
    /// `manifest_url` is where the manifest actually came from (after redirects);
    /// `requires_token` is its `requiresAccessToken`.
    pub fn new(fhir: &Url, manifest_url: &str, requires_token: bool) -> Self {
        let untrusted_source = match Url::parse(manifest_url) {
            Ok(url) if same_origin(&url, fhir) => None,
            Ok(url) => Some(origin_text(&url)),
            Err(_) => Some(format!("'{}'", printable(manifest_url))),
        };
        FileTrust {
            fhir: fhir.clone(),
            untrusted_source,
            requires_token,
        }
    }

    /// Whether the manifest came from the FHIR server's origin.
    pub fn manifest_trusted(&self) -> bool {
        self.untrusted_source.is_none()
    }

    /// `Ok(true)`: fetch with credentials; `Ok(false)`: fetch without; `Err`: do not fetch.
    pub fn credentials_for(&self, url: &Url) -> Result<bool, Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        if let Some(origin) = &self.untrusted_source {
            return if self.requires_token {
                Err(Refusal::UntrustedManifest {
                    origin: origin.clone(),
                })
            } else {
                Ok(false)
            };
        }
        if same_origin(url, &self.fhir) {
            Ok(true)
        } else if self.requires_token {
            Err(Refusal::ForeignNeedsToken {
                origin: origin_text(url),
            })
        } else {
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap_or_else(|e| panic!("{u}: {e}"))
    }

    #[test]
    fn status_urls_stay_on_the_fhir_origin() {
        let fhir = url("https://ehr.example/R4/");
        let ok = check_status_url(&fhir, &url("https://ehr.example:443/status/1"), None);
        assert!(ok.is_ok());
        for other in [
            "https://evil.example/status/1",
            "http://ehr.example/status/1",
            "https://ehr.example:8443/status/1",
        ] {
            let err = check_status_url(&fhir, &url(other), None).err();
            assert!(err.is_some(), "{other}");
        }
        // Named by an answer that came from elsewhere (a redirected kickoff).
        let err = check_status_url(
            &fhir,
            &url("https://ehr.example/status/1"),
            Some(&url("https://evil.example/$export")),
        );
        assert_eq!(
            err.err().map(|e| e.reason()),
            Some("it was named by an answer from https://evil.example".to_string())
        );
        let err = check_status_url(&fhir, &url("https://evil.example/status/1"), None);
        assert_eq!(
            err.err().map(|e| e.reason()),
            Some("it is on https://evil.example".to_string())
        );
    }

    #[test]
    fn credentials_only_where_they_belong() {
        let fhir = url("https://ehr.example/R4/");
        let own = url("https://ehr.example/files/1");
        let bucket = url("https://bucket.s3.example/1?sig=x");
        let downgraded = url("http://ehr.example/files/1");

        let optional = FileTrust::new(&fhir, "https://ehr.example/status/1", false);
        assert!(optional.manifest_trusted());
        assert_eq!(optional.credentials_for(&own), Ok(true));
        assert_eq!(optional.credentials_for(&bucket), Ok(false));
        assert_eq!(optional.credentials_for(&downgraded), Ok(false));

        let required = FileTrust::new(&fhir, "https://ehr.example/status/1", true);
        assert_eq!(required.credentials_for(&own), Ok(true));
        assert_eq!(
            required.credentials_for(&bucket),
            Err(Refusal::ForeignNeedsToken {
                origin: "https://bucket.s3.example".into()
            })
        );
        assert!(required.credentials_for(&downgraded).is_err());

        for trust in [&optional, &required] {
            for u in ["file:///etc/passwd", "ftp://ehr.example/1", "data:,x"] {
                assert!(
                    matches!(trust.credentials_for(&url(u)), Err(Refusal::Scheme(_))),
                    "{u}"
                );
            }
        }

        // A manifest that arrived from another origin: no file gets credentials.
        let untrusted = FileTrust::new(&fhir, "https://evil.example/manifest", false);
        assert!(!untrusted.manifest_trusted());
        assert_eq!(untrusted.credentials_for(&own), Ok(false));
        assert_eq!(untrusted.credentials_for(&bucket), Ok(false));
        let untrusted = FileTrust::new(&fhir, "https://evil.example/manifest", true);
        assert!(matches!(
            untrusted.credentials_for(&own),
            Err(Refusal::UntrustedManifest { .. })
        ));
        let unparsable = FileTrust::new(&fhir, "not a URL", false);
        assert_eq!(unparsable.credentials_for(&own), Ok(false));
    }

    #[test]
    fn messages_are_one_printable_line() {
        let r = Refusal::Scheme("fi\u{1b}le".into());
        let text = r.to_string();
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
    }
}
