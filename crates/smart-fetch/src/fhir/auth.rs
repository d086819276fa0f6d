//! Credentials: choosing the auth method (docs/server.md#choosing-the-auth-method), loading secrets
//! (docs/server.md#secrets-in-files-or-on-the-command-line), and the SMART access token cache with
//! its single-flight renewal (docs/server.md#renewing-tokens). The network side of a token request
//! lives in the client; this module decides when one is needed and shares its result.

use super::FhirError;
use super::client::AuthOptions;
use super::keys::SmartKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderValue;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const NO_AUTH_MESSAGE: &str =
    "Could not connect to server without authentication arguments";

pub(crate) enum AuthMethod {
    None,
    /// A fixed `Authorization` value (Basic or Bearer): nothing to renew.
    Static(HeaderValue),
    Smart(Box<SmartAuth>),
}

pub(crate) struct SmartAuth {
    pub client_id: String,
    pub key: SmartKey,
    /// Discovery happens once per client, whatever the number of sessions
    /// (docs/server.md#smart-backend-services).
    pub endpoint: tokio::sync::OnceCell<TokenEndpoint>,
    pub tokens: TokenCache,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenEndpoint {
    pub url: String,
    /// `read` (SMART v1 scopes) or `rs` (v2).
    pub scope_suffix: &'static str,
}

/// The outcome of choosing the method and loading the secrets: how to authorize, and the client id
/// for `Epic-Client-ID`.
pub(crate) struct LoadedAuth {
    pub method: AuthMethod,
    pub client_id: Option<String>,
}

/// Python's truthiness decides "given" in the original: an empty string is absent.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Validate the combination and load every secret and key: all before any network.
pub(crate) fn load(options: &AuthOptions) -> Result<LoadedAuth, FhirError> {
    let user = given(&options.basic_user);
    let passwd = given(&options.basic_passwd);
    let bearer = given(&options.bearer_token);
    let key = given(&options.smart_key);
    let client_id = given(&options.smart_client_id)
        .map(load_secret)
        .transpose()?;

    let basic = user.is_some() || passwd.is_some();
    if [basic, bearer.is_some(), key.is_some()]
        .into_iter()
        .filter(|b| *b)
        .count()
        > 1
    {
        return Err(FhirError::Config(
            "Multiple authentication methods have been specified. Double check your arguments."
                .to_string(),
        ));
    }

    let method = if basic {
        let (Some(user), Some(passwd)) = (user, passwd) else {
            return Err(FhirError::Config(
                "You must provide both a Basic user and a Basic password to connect to a Basic auth server."
                    .to_string(),
            ));
        };
        let passwd = load_secret_file(passwd, "--basic-passwd")?;
        let encoded = STANDARD.encode(format!("{user}:{passwd}"));
        AuthMethod::Static(sensitive_header(
            &format!("Basic {encoded}"),
            "Basic credentials",
        )?)
    } else if let Some(token) = bearer {
        let token = load_secret_file(token, "--bearer-token")?;
        AuthMethod::Static(sensitive_header(
            &format!("Bearer {token}"),
            "bearer token",
        )?)
    } else {
        match (&client_id, key) {
            (Some(id), Some(key)) => AuthMethod::Smart(Box::new(SmartAuth {
                client_id: id.clone(),
                key: SmartKey::load(key)?,
                endpoint: tokio::sync::OnceCell::new(),
                tokens: TokenCache::default(),
            })),
            (None, None) => AuthMethod::None,
            _ => {
                return Err(FhirError::Config(
                    "You must provide both a SMART client ID and a SMART key to connect to a SMART FHIR server."
                        .to_string(),
                ));
            }
        }
    };
    Ok(LoadedAuth { method, client_id })
}

/// A value that may name a file holding it
/// (docs/server.md#secrets-in-files-or-on-the-command-line). A path whose folder does not exist is
/// simply not a file, so literal secrets containing `/` work
/// (docs/differences.md#literal-secrets-with-a-slash).
pub fn load_secret(value: &str) -> Result<String, FhirError> {
    let path = Path::new(value);
    if !path.is_file() {
        return Ok(value.to_string());
    }
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|e| FhirError::Config(format!("Could not read '{value}': {e}")))
}

/// `--bearer-token` and `--basic-passwd` name a file; the secret itself is still accepted
/// (the Python tool does), but a value that looks like a path to a file that is not there
/// is a mistake to report, not a token to send to the server.
fn load_secret_file(value: &str, option: &str) -> Result<String, FhirError> {
    let path = Path::new(value);
    let looks_like_path = value.starts_with(['/', '~', '.'])
        || value.ends_with(".txt")
        || value.ends_with(".token")
        || path
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && p.is_dir());
    if looks_like_path && !path.is_file() {
        return Err(FhirError::Config(format!(
            "{option}: no such file '{value}'. Give the path of a file that holds the secret."
        )));
    }
    load_secret(value)
}

/// An `Authorization` value, marked sensitive so no debug output shows it.
pub(crate) fn sensitive_header(value: &str, what: &str) -> Result<HeaderValue, FhirError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        FhirError::Config(format!(
            "The {what} contains characters that cannot be sent in an HTTP header."
        ))
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// One access token and when to replace it.
pub(crate) struct AccessToken {
    pub header: HeaderValue,
    /// Which renewal produced it: a request that failed with an older token need not renew.
    pub serial: u64,
    pub renew_at: Option<Instant>,
}

impl AccessToken {
    fn fresh(&self) -> bool {
        self.renew_at.is_none_or(|at| Instant::now() < at)
    }
}

/// Renew a little before expiry, so a request never leaves with a token about to die:
/// a minute, or a fifth of a short lifetime.
pub(crate) fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(60))
}

#[derive(Default)]
pub(crate) struct TokenCache {
    state: Mutex<TokenState>,
    /// Held for the whole of a renewal: one in flight, the others wait for its result.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct TokenState {
    /// Counts renewals, failed ones included.
    serial: u64,
    token: Option<Arc<AccessToken>>,
    error: Option<String>,
}

impl TokenCache {
    fn lock(&self) -> MutexGuard<'_, TokenState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn serial(&self) -> u64 {
        self.lock().serial
    }

    /// The token to send now, renewing first when there is none or it is about to expire.
    pub async fn current<F, Fut>(&self, fetch: F) -> Result<Arc<AccessToken>, FhirError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(HeaderValue, Option<Duration>), FhirError>>,
    {
        let serial = {
            let state = self.lock();
            match &state.token {
                Some(token) if token.fresh() => return Ok(token.clone()),
                _ => state.serial,
            }
        };
        self.renew(serial, fetch).await
    }

    /// Replace the token that was current at `seen_serial`. If another task renewed since,
    /// its result is shared instead of asking the server again.
    pub async fn renew<F, Fut>(
        &self,
        seen_serial: u64,
        fetch: F,
    ) -> Result<Arc<AccessToken>, FhirError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(HeaderValue, Option<Duration>), FhirError>>,
    {
        let _renewing = self.renewing.lock().await;
        {
            let state = self.lock();
            if state.serial != seen_serial {
                return match (&state.token, &state.error) {
                    (Some(token), _) => Ok(token.clone()),
                    (None, Some(error)) => Err(FhirError::Auth(error.clone())),
                    (None, None) => Err(FhirError::Auth(
                        "Could not authenticate: no access token".to_string(),
                    )),
                };
            }
        }
        let started = Instant::now();
        let result = fetch().await;
        let mut state = self.lock();
        state.serial += 1;
        match result {
            Ok((header, lifetime)) => {
                let token = Arc::new(AccessToken {
                    header,
                    serial: state.serial,
                    renew_at: lifetime.and_then(|l| started.checked_add(l - renewal_margin(l))),
                });
                state.token = Some(token.clone());
                state.error = None;
                Ok(token)
            }
            Err(error) => {
                state.token = None;
                state.error = Some(error.to_string());
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn options() -> AuthOptions {
        AuthOptions::default()
    }

    fn config_error(options: &AuthOptions) -> String {
        match load(options) {
            Err(FhirError::Config(message)) => message,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn method_choice_messages() {
        let mut o = options();
        o.basic_user = Some("u".into());
        o.bearer_token = Some("t".into());
        assert_eq!(
            config_error(&o),
            "Multiple authentication methods have been specified. Double check your arguments."
        );
        o.bearer_token = None;
        assert_eq!(
            config_error(&o),
            "You must provide both a Basic user and a Basic password to connect to a Basic auth server."
        );
        let mut o = options();
        o.smart_client_id = Some("id".into());
        assert_eq!(
            config_error(&o),
            "You must provide both a SMART client ID and a SMART key to connect to a SMART FHIR server."
        );
        // An empty value counts as absent, as in the original.
        let mut o = options();
        o.basic_user = Some(String::new());
        assert!(matches!(load(&o).map(|l| l.method), Ok(AuthMethod::None)));
    }

    #[test]
    fn basic_and_bearer_headers() {
        let mut o = options();
        o.basic_user = Some("user".into());
        o.basic_passwd = Some("a/b/c-not-a-file".into());
        let Ok(LoadedAuth {
            method: AuthMethod::Static(header),
            ..
        }) = load(&o)
        else {
            panic!("basic expected");
        };
        assert_eq!(
            header.to_str().ok(),
            Some(format!("Basic {}", STANDARD.encode("user:a/b/c-not-a-file")).as_str())
        );
        assert!(header.is_sensitive());

        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("token.txt");
        std::fs::write(&file, "  tok123\n").expect("write token");
        let mut o = options();
        o.bearer_token = Some(file.to_string_lossy().into_owned());
        let loaded = load(&o);
        let _ = std::fs::remove_dir_all(&dir);
        let Ok(LoadedAuth {
            method: AuthMethod::Static(header),
            ..
        }) = loaded
        else {
            panic!("bearer expected");
        };
        assert_eq!(header.to_str().ok(), Some("Bearer tok123"));
    }

    #[test]
    fn bad_key_fails_at_load() {
        let mut o = options();
        o.smart_client_id = Some("id".into());
        o.smart_key = Some("key.txt".into());
        assert_eq!(
            config_error(&o),
            "Unrecognized private key file 'key.txt' (must end in .jwks or .pem)."
        );
    }

    #[test]
    fn margin() {
        assert_eq!(
            renewal_margin(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(100)),
            Duration::from_secs(20)
        );
    }

    #[tokio::test]
    async fn one_renewal_for_many_waiters() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = |calls: Arc<AtomicUsize>| {
            move || async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok((
                    HeaderValue::from_str(&format!("Bearer t{n}")).expect("header"),
                    Some(Duration::from_secs(3600)),
                ))
            }
        };
        let first = cache.current(fetch(calls.clone())).await.expect("token");
        assert_eq!(first.header, "Bearer t1");
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let cache = cache.clone();
                let calls = calls.clone();
                let serial = first.serial;
                tokio::spawn(async move { cache.renew(serial, fetch(calls)).await })
            })
            .collect();
        for task in tasks {
            let token = task.await.expect("join").expect("token");
            assert_eq!(token.header, "Bearer t2");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn waiters_share_a_failure_and_expiry_triggers_renewal() {
        let cache = TokenCache::default();
        let short = cache
            .current(|| async { Ok((HeaderValue::from_static("Bearer a"), Some(Duration::ZERO))) })
            .await
            .expect("token");
        // Lifetime zero: stale at once, so the next use renews.
        let renewed = cache
            .current(|| async { Ok((HeaderValue::from_static("Bearer b"), None)) })
            .await
            .expect("token");
        assert_eq!(renewed.header, "Bearer b");
        let failed = cache
            .renew(renewed.serial, || async {
                Err(FhirError::Auth("Could not authenticate: no".into()))
            })
            .await;
        assert!(failed.is_err());
        let shared = cache
            .renew(short.serial + 1, || async {
                Ok((HeaderValue::from_static("Bearer c"), None))
            })
            .await;
        assert_eq!(
            shared.err().map(|e| e.to_string()),
            Some("Could not authenticate: no".to_string())
        );
    }
}
