//! The "prepare clients" step shared by export, bulk, crawl, hydrate and single
//! (docs/cli.md#preparing-the-clients): `--fhir-url` is required, REST/bulk credentials fall back
//! on each other, and two `FhirClient`s are built over one connection budget. No network happens
//! here: sessions are opened later by the commands. Also the local-folder checks of
//! docs/cli.md#folder-arguments.

use super::args::AuthArgs;
use crate::error::AppError;
use crate::fhir::client::{DEFAULT_MAX_BODY, DEFAULT_READ_TIMEOUT};
use crate::fhir::{AuthOptions, Budget, ClientOptions, FhirClient, RetryPolicy};
use crate::folder::FolderError;
use crate::report::Reporter;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::fhir::Clients;

/// SMART credentials of one client after the REST/bulk fallback.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmartCredentials {
    pub client_id: Option<String>,
    pub key: Option<String>,
}

/// docs/cli.md#preparing-the-clients step 3: which SMART id/key each client uses, as (REST, bulk).
pub fn fallback_credentials(auth: &AuthArgs) -> (SmartCredentials, SmartCredentials) {
    // Python tests truthiness, so an empty string counts as "not given".
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(String::from);
    let rest_id = given(&auth.smart_client_id);
    let rest_key = given(&auth.smart_key);
    let bulk_id = given(&auth.bulk_smart_client_id);
    let bulk_key = given(&auth.bulk_smart_key);

    let rest_full = rest_id.is_some() && rest_key.is_some();
    let bulk_none = bulk_id.is_none() && bulk_key.is_none();
    let bulk_full = bulk_id.is_some() && bulk_key.is_some();
    let rest_none = rest_id.is_none() && rest_key.is_none();

    if rest_full && bulk_none {
        let creds = SmartCredentials {
            client_id: rest_id,
            key: rest_key,
        };
        (creds.clone(), creds)
    } else if bulk_full && rest_none {
        let creds = SmartCredentials {
            client_id: bulk_id,
            key: bulk_key,
        };
        (creds.clone(), creds)
    } else {
        let bulk = SmartCredentials {
            client_id: bulk_id.or_else(|| rest_id.clone()),
            key: bulk_key.or_else(|| rest_key.clone()),
        };
        let rest = SmartCredentials {
            client_id: rest_id,
            key: rest_key,
        };
        (rest, bulk)
    }
}

/// The options each client is built with, as (REST, bulk). Fails without `--fhir-url`.
/// The clients report (verbose retries, token renewals, connection changes) to `reporter`.
pub fn client_options(
    auth: &AuthArgs,
    reporter: &Reporter,
) -> Result<(ClientOptions, ClientOptions), AppError> {
    let fhir_url = auth
        .fhir_url
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AppError::Message("--fhir-url is required".to_string()))?;
    let (rest_creds, bulk_creds) = fallback_credentials(auth);
    let options = |creds: SmartCredentials| ClientOptions {
        fhir_url: fhir_url.clone(),
        auth: AuthOptions {
            smart_client_id: creds.client_id,
            smart_key: creds.key,
            basic_user: auth.basic_user.clone(),
            basic_passwd: auth.basic_passwd.clone(),
            bearer_token: auth.bearer_token.clone(),
        },
        token_url: auth.token_url.clone(),
        smart_jku: auth.smart_jku.clone(),
        ca_file: auth.ca_file.clone(),
        reporter: reporter.clone(),
        read_timeout: auth
            .request_timeout
            .map_or(DEFAULT_READ_TIMEOUT, |s| Duration::from_secs(u64::from(s))),
        max_body: auth
            .max_body_size
            .map_or(DEFAULT_MAX_BODY, |m| u64::from(m) * 1024 * 1024),
        retry: data_retry_policy(),
        ..ClientOptions::default()
    };
    Ok((options(rest_creds), options(bulk_creds)))
}

/// Environment variable that shortens the waits between retries of data requests to
/// milliseconds (the base wait, doubling up to 32 times it; as many tries as usual). For
/// tests of servers that fail on every try, which would otherwise wait about two minutes
/// per request; not meant for real servers, so it is not an option.
pub const RETRY_BASE_MS_ENV: &str = "SMART_FETCH_RETRY_BASE_MS";

fn data_retry_policy() -> RetryPolicy {
    let policy = RetryPolicy::data();
    let base = std::env::var(RETRY_BASE_MS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match base {
        Some(ms) => RetryPolicy {
            base_delay: std::time::Duration::from_millis(ms),
            max_delay: std::time::Duration::from_millis(ms.saturating_mul(32))
                .min(policy.max_delay),
            // Waits the server asks for too: a test of an absurd `Retry-After` should not
            // sit out the two-minute cap.
            retry_after_cap: std::time::Duration::from_millis(ms.saturating_mul(200))
                .min(policy.retry_after_cap),
            ..policy
        },
        None => policy,
    }
}

/// Prepare clients with a fresh budget of `--max-connections` (default 5).
pub fn prepare(auth: &AuthArgs, reporter: &Reporter) -> Result<Clients, AppError> {
    prepare_with_budget(auth, Budget::new(auth.max_connections()), reporter)
}

/// Prepare clients drawing from an existing budget (several export groups in one process).
/// Validates the auth combination and loads secrets; opens no session.
pub fn prepare_with_budget(
    auth: &AuthArgs,
    budget: Budget,
    reporter: &Reporter,
) -> Result<Clients, AppError> {
    let (rest_options, bulk_options) = client_options(auth, reporter)?;
    let rest = FhirClient::new(rest_options, budget.clone())?;
    let bulk = FhirClient::new(bulk_options, budget.clone())?;
    if auth.no_search_lists {
        rest.batch_support().turn_off();
        bulk.batch_support().turn_off();
    }
    Ok(Clients { rest, bulk, budget })
}

/// docs/cli.md#folder-arguments: does this path parse as a URL with a scheme (`s3://…`,
/// `http://…`, `a:b`)? A Windows drive path (`C:\x`, `C:/x`, `C:`) is a local folder, not a
/// URL with scheme `c` (docs/differences.md#windows-drive-paths). The only copy of this rule.
pub fn looks_like_url(path: &str) -> bool {
    let Some(colon) = path.find(':') else {
        return false;
    };
    let scheme = &path[..colon];
    let mut chars = scheme.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return false;
    }
    let rest = &path[colon + 1..];
    let drive = scheme.len() == 1 && (rest.is_empty() || rest.starts_with(['\\', '/']));
    !drive
}

/// Output-folder check (docs/cli.md#folder-arguments): refuses URL-looking paths. The folder may
/// not exist yet.
pub fn check_output_folder(path: &str) -> Result<PathBuf, AppError> {
    if looks_like_url(path) {
        return Err(FolderError::LooksLikeUrl(path.to_string()).into());
    }
    Ok(PathBuf::from(path))
}

/// Input-folder check (docs/cli.md#folder-arguments): refuses URL-looking paths and paths that do
/// not exist.
pub fn check_input_folder(path: &str) -> Result<PathBuf, AppError> {
    let folder = check_output_folder(path)?;
    if !Path::new(path).exists() {
        return Err(FolderError::Missing(path.to_string()).into());
    }
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(rest: (Option<&str>, Option<&str>), bulk: (Option<&str>, Option<&str>)) -> AuthArgs {
        AuthArgs {
            smart_client_id: rest.0.map(String::from),
            smart_key: rest.1.map(String::from),
            bulk_smart_client_id: bulk.0.map(String::from),
            bulk_smart_key: bulk.1.map(String::from),
            fhir_url: Some("http://example.invalid/R4".to_string()),
            ..AuthArgs::default()
        }
    }

    fn creds(id: Option<&str>, key: Option<&str>) -> SmartCredentials {
        SmartCredentials {
            client_id: id.map(String::from),
            key: key.map(String::from),
        }
    }

    #[test]
    fn fallback_rest_only_is_shared() {
        let a = auth((Some("rid"), Some("rkey")), (None, None));
        let (rest, bulk) = fallback_credentials(&a);
        assert_eq!(rest, creds(Some("rid"), Some("rkey")));
        assert_eq!(bulk, creds(Some("rid"), Some("rkey")));
    }

    #[test]
    fn fallback_bulk_only_is_shared() {
        let a = auth((None, None), (Some("bid"), Some("bkey")));
        let (rest, bulk) = fallback_credentials(&a);
        assert_eq!(rest, creds(Some("bid"), Some("bkey")));
        assert_eq!(bulk, creds(Some("bid"), Some("bkey")));
    }

    #[test]
    fn fallback_both_given_each_its_own() {
        let a = auth((Some("rid"), Some("rkey")), (Some("bid"), Some("bkey")));
        let (rest, bulk) = fallback_credentials(&a);
        assert_eq!(rest, creds(Some("rid"), Some("rkey")));
        assert_eq!(bulk, creds(Some("bid"), Some("bkey")));
    }

    #[test]
    fn fallback_partial_bulk_fills_from_rest_individually() {
        let a = auth((Some("rid"), Some("rkey")), (Some("bid"), None));
        let (rest, bulk) = fallback_credentials(&a);
        assert_eq!(rest, creds(Some("rid"), Some("rkey")));
        assert_eq!(bulk, creds(Some("bid"), Some("rkey")));

        // Only a REST id: both get just the id (client construction then complains).
        let a = auth((Some("rid"), None), (None, None));
        let (rest, bulk) = fallback_credentials(&a);
        assert_eq!(rest, creds(Some("rid"), None));
        assert_eq!(bulk, creds(Some("rid"), None));

        // Only a bulk key: REST gets nothing, bulk keeps its key.
        let a = auth((None, None), (None, Some("bkey")));
        let (rest, bulk) = fallback_credentials(&a);
        assert_eq!(rest, creds(None, None));
        assert_eq!(bulk, creds(None, Some("bkey")));
    }

    #[test]
    fn options_share_everything_but_smart_credentials() {
        let mut a = auth((Some("rid"), Some("rkey")), (Some("bid"), Some("bkey")));
        a.basic_user = Some("u".into());
        a.token_url = Some("https://token/".into());
        a.smart_jku = Some("https://jku/".into());
        let reporter = Reporter::to_writer(
            crate::report::Format::Plain,
            true,
            Box::new(std::io::sink()),
        );
        let (rest, bulk) = client_options(&a, &reporter).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest.fhir_url, "http://example.invalid/R4");
        assert_eq!(bulk.fhir_url, "http://example.invalid/R4");
        assert_eq!(rest.auth.smart_client_id.as_deref(), Some("rid"));
        assert_eq!(bulk.auth.smart_client_id.as_deref(), Some("bid"));
        assert_eq!(bulk.auth.basic_user.as_deref(), Some("u"));
        assert_eq!(bulk.token_url.as_deref(), Some("https://token/"));
        assert_eq!(rest.smart_jku.as_deref(), Some("https://jku/"));
        assert!(rest.reporter.is_verbose() && bulk.reporter.is_verbose());
    }

    #[test]
    fn fhir_url_is_required() {
        let a = AuthArgs::default();
        let err = client_options(&a, &Reporter::silent()).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("--fhir-url is required")
        );
    }

    #[test]
    fn url_detection() {
        for url in [
            "s3://bucket/",
            "http://x/y",
            "https://x",
            "a:b",
            "git+ssh://x",
        ] {
            assert!(looks_like_url(url), "{url}");
        }
        for path in [
            "/tmp/x", "out", "./a:b", "1a:b", "C:\\x", "C:/x", "C:", ":x", "",
        ] {
            assert!(!looks_like_url(path), "{path}");
        }
    }

    #[test]
    fn folder_checks() {
        let err = check_output_folder("s3://bucket/")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("Expected a local folder, but 's3://bucket/' looks like a URL.")
        );
        assert!(check_output_folder("/definitely/not/here").is_ok());
        let err = check_input_folder("/definitely/not/here")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("Local folder '/definitely/not/here' does not exist.")
        );
        let err = check_input_folder("http://x/").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("Expected a local folder, but 'http://x/' looks like a URL.")
        );
        let tmp = std::env::temp_dir();
        let tmp = tmp.to_string_lossy();
        assert!(check_input_folder(&tmp).is_ok());
    }
}
