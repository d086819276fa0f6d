//! `FhirClient`: one server, one credential set. Sessions (capabilities + auth), request
//! construction (docs/server.md#requests), retries (docs/server.md#retries, our own policy),
//! 401 renewal (docs/server.md#renewing-tokens) and the budget.
//!
//! It is also the trust boundary, enforced here and nowhere else: credentials go only to
//! the FHIR server's origin (and the token endpoint, for the token request itself); every
//! answer is read under a size cap and a no-progress timeout; a JSON answer that does not
//! parse is retried like a broken connection. Callers cannot opt out of these rules, only
//! ask for a credential-free fetch of a foreign URL (`get_stream` with `credentials` off),
//! which is how the FHIR specs say a bulk file with `requiresAccessToken: false` is fetched.

use super::auth::{self, AccessToken, AuthMethod, NO_AUTH_MESSAGE, SmartAuth, TokenEndpoint};
use super::budget::Permit;
use super::error::error_detail;
use super::retry::retry_after_of;
use super::{Budget, Capabilities, FhirError, RetryPolicy, Vendor};
use crate::report::Reporter;
use crate::resources::ResourceType;
use futures_util::future::BoxFuture;
use reqwest::header::{ACCEPT, ACCEPT_CHARSET, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-exchange limit of an answer read in full (searches, reads): a body that trickles
/// in a byte at a time is as dead as a silent one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Whole-exchange limit of one startup try (metadata, SMART configuration, token): a server
/// that accepts connections and never answers fails the run in about half a minute.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `--request-timeout`: the longest wait for the next byte of an answer (the
/// first one included). Epic can take a minute to start a large search page.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// A request that timed out is tried at most this many times in all: a server that has
/// stopped answering should cost minutes per request, not a quarter of an hour.
const MAX_TIMEOUT_ATTEMPTS: u32 = 3;
/// Requests in a row that spent every retry on a transient failure, with no answer from
/// the server in between, before the run stops: with 5 connections and about 2 minutes of
/// retries each, several minutes of a server that is down. Going on would make every
/// remaining search of the cohort wait out its own retries.
const MAX_FAILURES_IN_A_ROW: u32 = 12;
/// Default of `--max-body-size`: the largest answer read into memory (after gzip). A search
/// page of a thousand resources is a few MB; this leaves room for very large notes while
/// keeping a hostile answer (an endless page, a gzip bomb) far from the machine's memory.
pub const DEFAULT_MAX_BODY: u64 = 128 * 1024 * 1024;
/// Error answers are only read for their message: the rest is dropped.
const MAX_ERROR_BODY: u64 = 1024 * 1024;
const MAX_REDIRECTS: usize = 10;
/// Longest token lifetime we plan around; also keeps `Instant` arithmetic in range.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
const FHIR_JSON: &str = "application/fhir+json";
/// Sent with every request (the token endpoint's too), so the EHR's operators can see who is
/// calling and which version. No project URL: the crate names no repository of its own, and
/// the Python tool's would point operators at the wrong project.
pub const USER_AGENT: &str = concat!("smart-fetch/", env!("CARGO_PKG_VERSION"), " (Rust)");
const EPIC_CLIENT_ID: HeaderName = HeaderName::from_static("epic-client-id");

/// Raw credential arguments as the user gave them (docs/cli.md#shared-option-groups); loaded and
/// validated by `FhirClient::new`.
#[derive(Clone, Default)]
pub struct AuthOptions {
    pub smart_client_id: Option<String>,
    pub smart_key: Option<String>,
    pub basic_user: Option<String>,
    pub basic_passwd: Option<String>,
    pub bearer_token: Option<String>,
}

/// Secrets stay out of debug output; a key given inline as JSON is a secret too.
impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        let key = self.smart_key.as_deref().map(|k| {
            if k.starts_with('{') {
                "<inline key>"
            } else {
                k
            }
        });
        f.debug_struct("AuthOptions")
            .field("smart_client_id", &self.smart_client_id)
            .field("smart_key", &key)
            .field("basic_user", &self.basic_user)
            .field("basic_passwd", &redacted(&self.basic_passwd))
            .field("bearer_token", &redacted(&self.bearer_token))
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub fhir_url: String,
    pub auth: AuthOptions,
    pub token_url: Option<String>,
    pub smart_jku: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Where the engine's own lines go (retries, token renewals, connection changes, all
    /// `--verbose`) and whose counters count its requests. A client shared by a batch's
    /// groups reports to the batch's root reporter: its lines are not about one group.
    pub reporter: Reporter,
    /// Searches, downloads and other requests made through the client.
    pub retry: RetryPolicy,
    /// Metadata, SMART configuration and token requests: short, so a dead server fails fast.
    pub startup_retry: RetryPolicy,
    /// `--request-timeout`: longest wait for the next byte of an answer.
    pub read_timeout: Duration,
    /// `--max-body-size`: largest answer read into memory, decompressed.
    pub max_body: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            fhir_url: String::new(),
            auth: AuthOptions::default(),
            token_url: None,
            smart_jku: None,
            ca_file: None,
            reporter: Reporter::silent(),
            retry: RetryPolicy::data(),
            startup_retry: RetryPolicy::startup(),
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// A successful (< 400) answer, body read in full.
#[derive(Clone, Debug)]
pub struct FhirResponse {
    /// Where the answer came from (after redirects).
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl FhirResponse {
    pub fn json(&self) -> Result<Value, FhirError> {
        serde_json::from_slice(&self.body).map_err(|e| FhirError::Invalid {
            url: self.url.clone(),
            message: format!("The server sent invalid JSON: {e}"),
        })
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// A successful (< 400) answer whose body is still on the wire (`FhirClient::get_stream`).
/// It holds its slot of the connection budget until dropped, because the body is still
/// using the connection.
pub struct StreamResponse {
    /// Where the answer came from (after redirects).
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    response: reqwest::Response,
    _permit: Option<Permit>,
}

impl StreamResponse {
    /// The next piece of the body, `None` at its end. A broken connection is a
    /// `FhirError::Transport` (the caller decides whether to start over).
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FhirError> {
        self.response
            .chunk()
            .await
            .map_err(|e| FhirError::Transport {
                url: self.url.clone(),
                message: describe_transport_error(&e),
            })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// Hooks into the retry loop of one request, for callers that log each attempt (the bulk
/// export log records every download attempt and error).
pub trait RequestObserver: Send + Sync {
    /// A counted attempt is about to be sent.
    fn attempt(&self, _url: &str) {}
    /// An answer arrived (any status), before it is judged: the bulk log records the
    /// headers of failed answers, which `FhirError` does not carry.
    fn response(&self, _status: u16, _headers: &HeaderMap) {}
    /// An attempt failed; `error` is what the caller gets if no retry follows.
    fn failed(&self, _error: &FhirError) {}
    /// About to sleep `wait` before the next attempt.
    fn retrying(&self, _wait: Duration) {}
}

/// A request beyond a plain GET: method, extra headers, own retry policy, observer.
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub accept: &'a str,
    /// Added after the defaults, replacing any of the same name.
    pub headers: HeaderMap,
    /// `None` = the client's data policy.
    pub retry: Option<RetryPolicy>,
    pub observer: Option<&'a dyn RequestObserver>,
    /// Replaces the 300 s limit on the whole exchange (e.g. for a very large download).
    pub timeout: Option<Duration>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, url: &'a str, accept: &'a str) -> Self {
        Request {
            method,
            url,
            accept,
            headers: HeaderMap::new(),
            retry: None,
            observer: None,
            timeout: None,
        }
    }

    pub fn get(url: &'a str, accept: &'a str) -> Self {
        Self::new(Method::GET, url, accept)
    }
}

#[derive(Clone)]
pub struct FhirClient {
    inner: Arc<Inner>,
}

struct Inner {
    base: Url,
    base_str: String,
    http: reqwest::Client,
    /// For every method but GET.
    http_no_redirect: reqwest::Client,
    auth: AuthMethod,
    /// Sent as `Epic-Client-ID` to Epic servers.
    client_id: Option<String>,
    token_url: Option<String>,
    jku: Option<String>,
    reporter: Reporter,
    retry: RetryPolicy,
    startup_retry: RetryPolicy,
    budget: Budget,
    capabilities: RwLock<Capabilities>,
    max_body: u64,
    read_timeout: Duration,
    /// Requests that ended in a transient failure since the server last answered.
    failures_in_a_row: std::sync::atomic::AtomicU32,
    /// The types this run will read (`set_scope_types`); `None` = every type we know.
    scope_types: RwLock<Option<Vec<ResourceType>>>,
    /// Set once `open_once` has succeeded: the groups of a batch share one discovery.
    opened: tokio::sync::Mutex<bool>,
    /// What this server does with searches of several values, learnt once for every user
    /// of the client.
    batch_support: Arc<super::batching::BatchSupport>,
}

/// Makes the form body of one attempt.
type FormBuilder<'a> = dyn Fn() -> Result<Vec<(&'static str, String)>, FhirError> + Sync + 'a;

/// One request as the retry loop sees it.
struct Plan<'a> {
    method: Method,
    url: Url,
    headers: HeaderMap,
    /// Through the client: budget, `Epic-Client-ID`, auth. Startup requests have none.
    client_request: bool,
    /// Built anew for each attempt (a token request needs a fresh `jti` every time).
    form: Option<&'a FormBuilder<'a>>,
    policy: &'a RetryPolicy,
    /// Retry 4xx too: token renewal mid-run, where Epic is known to answer a flaky 400.
    retry_all: bool,
    observer: Option<&'a dyn RequestObserver>,
    timeout: Option<Duration>,
    /// Leave the body of a successful answer on the wire (`get_stream`).
    stream: bool,
    /// Send the `Authorization` (and `Epic-Client-ID`) header. Off for bulk files on another
    /// host that the manifest says need no token.
    credentials: bool,
    /// The caller asked for JSON: a successful answer that does not parse (cut off, or
    /// garbage from a proxy) is retried like a broken connection, then fails.
    expect_json: bool,
}

/// The body of one answer: read in full, or (successful streamed answers) still unread.
enum Body {
    Read(bytes::Bytes),
    Live(reqwest::Response),
}

/// One answer as the retry loop sees it.
struct Sent {
    url: String,
    status: u16,
    headers: HeaderMap,
    body: Body,
    /// When its headers arrived: time to first byte is what the budget judges the server
    /// by, and a `Retry-After` counts from here.
    arrived: tokio::time::Instant,
}

enum SendError {
    Transport(reqwest::Error),
    Other(FhirError),
}

impl FhirClient {
    /// Validates the auth combination and loads secrets and keys; no network.
    pub fn new(options: ClientOptions, budget: Budget) -> Result<Self, FhirError> {
        let loaded = auth::load(&options.auth)?;
        let base_str = if options.fhir_url.ends_with('/') {
            options.fhir_url.clone()
        } else {
            format!("{}/", options.fhir_url)
        };
        let base = parse_fhir_url(&base_str)?;
        let certificates = match &options.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let build = |redirect: reqwest::redirect::Policy| {
            let mut builder = reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(options.read_timeout)
                .redirect(redirect);
            for certificate in &certificates {
                builder = builder.add_root_certificate(certificate.clone());
            }
            builder.build().map_err(|e| {
                FhirError::Config(format!(
                    "Could not set up the HTTP client: {}",
                    error_chain(&e)
                ))
            })
        };
        // reqwest drops Authorization (and cookies) when a redirect changes host or port.
        let http = build(reqwest::redirect::Policy::limited(MAX_REDIRECTS))?;
        // A DELETE or POST answered with a redirect is not replayed elsewhere as a GET.
        let http_no_redirect = build(reqwest::redirect::Policy::none())?;
        Ok(FhirClient {
            inner: Arc::new(Inner {
                base,
                base_str,
                http,
                http_no_redirect,
                auth: loaded.method,
                client_id: loaded.client_id,
                token_url: options.token_url.filter(|t| !t.is_empty()),
                jku: options.smart_jku.filter(|j| !j.is_empty()),
                reporter: options.reporter,
                retry: options.retry,
                startup_retry: options.startup_retry,
                budget,
                capabilities: RwLock::new(Capabilities::default()),
                max_body: options.max_body.max(1),
                read_timeout: options.read_timeout,
                failures_in_a_row: std::sync::atomic::AtomicU32::new(0),
                scope_types: RwLock::new(None),
                opened: tokio::sync::Mutex::new(false),
                batch_support: Default::default(),
            }),
        })
    }

    /// `open` unless a clone of this client has opened it already (a batch's groups share one
    /// CapabilityStatement and one token). Concurrent callers wait for the first.
    pub async fn open_once(&self) -> Result<(), FhirError> {
        let mut opened = self.inner.opened.lock().await;
        if !*opened {
            self.open().await?;
            *opened = true;
        }
        Ok(())
    }

    /// Read the CapabilityStatement and authorize (docs/server.md#sessions). May be called
    /// again: each call re-reads the capabilities and re-authorizes.
    pub async fn open(&self) -> Result<(), FhirError> {
        let url = self.resolve("metadata")?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT_CHARSET, HeaderValue::from_static("UTF-8"));
        let plan = self.startup_plan(Method::GET, url, headers);
        let capabilities = match self.execute(&plan).await {
            Ok(response) => match serde_json::from_slice::<Value>(&response.body) {
                Ok(value @ Value::Object(_)) => Capabilities::new(value),
                _ => Capabilities::default(),
            },
            // No server at all: nothing later can work, so say so now.
            Err(error @ FhirError::Transport { .. }) => return Err(error),
            Err(_) => Capabilities::default(),
        };
        *self
            .inner
            .capabilities
            .write()
            .unwrap_or_else(|e| e.into_inner()) = capabilities;
        self.authorize().await
    }

    pub fn capabilities(&self) -> Capabilities {
        self.inner
            .capabilities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What this server does with searches of several values (`batching`).
    pub fn batch_support(&self) -> &Arc<super::batching::BatchSupport> {
        &self.inner.batch_support
    }

    /// The base URL with a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_str
    }

    /// The FHIR server's origin, `scheme://host:port`, for messages.
    fn origin(&self) -> String {
        self.inner.base.origin().ascii_serialization()
    }

    /// Name the types this run will read (searched and hydrated), before the first token is
    /// requested: the token asks for exactly those scopes, since some servers refuse a
    /// token whose scopes name a type they do not hold.
    pub fn set_scope_types(&self, types: &[ResourceType]) {
        *self
            .inner
            .scope_types
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(types.to_vec());
    }

    /// `system/<T>.<suffix>` for each type this run reads that the server's
    /// CapabilityStatement lists (all of them when it lists none).
    fn scope(&self, suffix: &str) -> String {
        let chosen = self
            .inner
            .scope_types
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| ResourceType::SCOPE_TYPES.to_vec());
        let listed = self.capabilities().supported_types();
        let mut types: Vec<ResourceType> = Vec::new();
        for t in chosen {
            let on_server = listed
                .as_ref()
                .is_none_or(|l| l.is_empty() || l.iter().any(|n| n == t.as_str()));
            if on_server && !types.contains(&t) {
                types.push(t);
            }
        }
        types
            .iter()
            .map(|t| format!("system/{}.{suffix}", t.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `--request-timeout`: the longest silence an answer may keep (first byte included).
    pub fn read_timeout(&self) -> Duration {
        self.inner.read_timeout
    }

    /// The budget this client's requests draw from.
    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// The reporter this client was made with.
    pub fn reporter(&self) -> &Reporter {
        &self.inner.reporter
    }

    /// A path joined to the base (RFC 3986), or an absolute URL unchanged.
    pub fn resolve(&self, url: &str) -> Result<Url, FhirError> {
        self.inner.base.join(url).map_err(|e| FhirError::Invalid {
            url: url.to_string(),
            message: format!("Invalid URL: {e}"),
        })
    }

    /// GET a path (joined to the base) or absolute URL with retries, auth and budget.
    /// Any status >= 400 is an error (`FhirError::Http`, body kept).
    pub async fn get(&self, url: &str, accept: &str) -> Result<FhirResponse, FhirError> {
        self.request(Request::get(url, accept)).await
    }

    /// GET with `Accept: application/fhir+json` and parse the body as JSON.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, FhirError> {
        self.get(url, FHIR_JSON).await?.json()
    }

    /// Any request through the client: auth, `Epic-Client-ID`, budget and retries.
    pub async fn request(&self, request: Request<'_>) -> Result<FhirResponse, FhirError> {
        let plan = self.client_plan(&request, false, true)?;
        self.execute(&plan).await
    }

    /// Like `request`, but a successful answer comes back with its body unread, to be
    /// streamed (bulk downloads of any size). Auth, budget and retries apply to getting the
    /// answer; the caller owns what happens if the body breaks off. With `credentials` off
    /// no `Authorization` or `Epic-Client-ID` header is sent (and a 401 renews nothing).
    pub async fn get_stream(
        &self,
        request: Request<'_>,
        credentials: bool,
    ) -> Result<StreamResponse, FhirError> {
        let plan = self.client_plan(&request, true, credentials)?;
        let (sent, permit) = self.execute_sent(&plan).await?;
        match sent.body {
            Body::Live(response) => Ok(StreamResponse {
                url: sent.url,
                status: sent.status,
                headers: sent.headers,
                response,
                _permit: permit,
            }),
            // `send_once` leaves every successful streamed body unread; should that ever
            // change, the bytes are still the whole answer, so hand them on as an error
            // rather than lose them silently.
            Body::Read(_) => Err(FhirError::Invalid {
                url: sent.url,
                message: "The answer was read before it could be streamed".to_string(),
            }),
        }
    }

    /// A request's last failure, seen against the ones before it: an answer that is not
    /// transient (a 404, a 400) shows the server is up; a run of transient failures with
    /// nothing in between means it is down, and the run stops rather than wait out every
    /// remaining request's retries.
    fn judge_final_failure(&self, plan: &Plan<'_>, error: FhirError, transient: bool) -> FhirError {
        use std::sync::atomic::Ordering;
        let counter = &self.inner.failures_in_a_row;
        if !plan.client_request || !transient || matches!(error, FhirError::Broken { .. }) {
            if error.status().is_some() {
                counter.store(0, Ordering::Relaxed);
            }
            return error;
        }
        let failures = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < MAX_FAILURES_IN_A_ROW {
            return error;
        }
        FhirError::ServerDown(format!(
            "The server at {} stopped answering: {failures} requests in a row failed after all their retries (the last: {error}). Everything finished so far is kept; run the same command again once the server is back.",
            self.inner.base_str
        ))
    }

    /// The plan of a request made through the client.
    fn client_plan<'a>(
        &'a self,
        request: &'a Request<'a>,
        stream: bool,
        credentials: bool,
    ) -> Result<Plan<'a>, FhirError> {
        let url = self.resolve(request.url)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FhirError::Refused {
                url: url.to_string(),
                message: format!(
                    "only http and https URLs are fetched, not {}:",
                    url.scheme()
                ),
            });
        }
        // The trust rule: whatever the server hands us (a `next` link, a `Content-Location`,
        // an attachment URL), a request that would carry credentials goes to its origin
        // only. A credential-free fetch elsewhere is the caller's explicit choice.
        if credentials && !same_origin(&url, &self.inner.base) {
            return Err(FhirError::Refused {
                url: url.to_string(),
                message: format!(
                    "this URL is not on the FHIR server's origin ({}), and the server's credentials are only sent there",
                    self.origin()
                ),
            });
        }
        let expect_json = !stream && is_json_type(request.accept);
        let mut headers = HeaderMap::new();
        let accept = HeaderValue::from_str(request.accept).map_err(|_| FhirError::Invalid {
            url: url.to_string(),
            message: format!("Invalid Accept header '{}'", request.accept),
        })?;
        headers.insert(ACCEPT, accept);
        headers.insert(ACCEPT_CHARSET, HeaderValue::from_static("UTF-8"));
        for (name, value) in &request.headers {
            headers.insert(name.clone(), value.clone());
        }
        Ok(Plan {
            method: request.method.clone(),
            url,
            headers,
            client_request: true,
            form: None,
            policy: request.retry.as_ref().unwrap_or(&self.inner.retry),
            retry_all: false,
            observer: request.observer,
            timeout: request.timeout,
            stream,
            credentials,
            expect_json,
        })
    }

    fn startup_plan(&self, method: Method, url: Url, headers: HeaderMap) -> Plan<'_> {
        Plan {
            method,
            url,
            headers,
            client_request: false,
            form: None,
            policy: &self.inner.startup_retry,
            retry_all: false,
            observer: None,
            timeout: Some(STARTUP_TIMEOUT),
            stream: false,
            credentials: false,
            expect_json: false,
        }
    }

    async fn authorize(&self) -> Result<(), FhirError> {
        if let AuthMethod::Smart(smart) = &self.inner.auth {
            let serial = smart.tokens.serial();
            smart
                .tokens
                .renew(serial, || self.fetch_token(smart, false))
                .await?;
        }
        Ok(())
    }

    /// The `Authorization` value for a request, and the token it came from (SMART only).
    async fn authorization(
        &self,
    ) -> Result<(Option<HeaderValue>, Option<Arc<AccessToken>>), FhirError> {
        match &self.inner.auth {
            AuthMethod::None => Ok((None, None)),
            AuthMethod::Static(header) => Ok((Some(header.clone()), None)),
            AuthMethod::Smart(smart) => {
                let token = smart
                    .tokens
                    .current(|| {
                        if smart.tokens.serial() > 0 {
                            self.inner.reporter.verbose(|| {
                                "Renewing the SMART access token before it expires".to_string()
                            });
                        }
                        self.fetch_token(smart, true)
                    })
                    .await?;
                Ok((Some(token.header.clone()), Some(token)))
            }
        }
    }

    /// Discovery (once per client), then a token request (docs/server.md#smart-backend-services).
    /// Boxed because a token request runs through `execute`, which may itself renew.
    fn fetch_token<'a>(
        &'a self,
        smart: &'a SmartAuth,
        retry_all: bool,
    ) -> BoxFuture<'a, Result<(HeaderValue, Option<Duration>), FhirError>> {
        Box::pin(self.fetch_token_inner(smart, retry_all))
    }

    async fn fetch_token_inner(
        &self,
        smart: &SmartAuth,
        retry_all: bool,
    ) -> Result<(HeaderValue, Option<Duration>), FhirError> {
        let endpoint = smart
            .endpoint
            .get_or_try_init(|| self.discover())
            .await?
            .clone();
        let token_url = Url::parse(&endpoint.url).map_err(|e| {
            FhirError::Auth(format!(
                "Could not authenticate: invalid token URL '{}': {e}",
                endpoint.url
            ))
        })?;
        let scope = self.scope(endpoint.scope_suffix);
        let asked = scope.clone();
        let jku = self.inner.jku.as_deref();
        let audience = endpoint.url.clone();
        let form = move || -> Result<Vec<(&'static str, String)>, FhirError> {
            let now = chrono::Utc::now().timestamp();
            let assertion = smart
                .key
                .client_assertion(&smart.client_id, &audience, jku, now)?;
            Ok(vec![
                ("grant_type", "client_credentials".to_string()),
                ("scope", scope.clone()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ),
                ("client_assertion", assertion),
            ])
        };
        let mut plan = self.startup_plan(Method::POST, token_url, HeaderMap::new());
        plan.form = Some(&form);
        plan.retry_all = retry_all;
        let response = self.execute(&plan).await.map_err(|e| match e {
            FhirError::Auth(_) | FhirError::Config(_) => e,
            // Which scope it refused is in the server's words, if anywhere: show them and
            // what we asked for, so the user can leave the type out with --type.
            FhirError::Http { status, detail, body, .. } if is_scope_refusal(status, &body) => {
                FhirError::Auth(format!(
                    "Could not authenticate: the token endpoint refused the scope ({detail}). Asked for: {asked}. Leave types this server does not hold out with --type."
                ))
            }
            other => FhirError::Auth(format!("Could not authenticate: {other}")),
        })?;
        let unusable = |what: &str| {
            FhirError::Auth(format!(
                "Could not authenticate: the token endpoint \"{}\" {what}",
                endpoint.url
            ))
        };
        parse_token_answer(&response.body).map_err(unusable)
    }

    /// `GET .well-known/smart-configuration` (no auth). With `--token-url` its failure is harmless
    /// (docs/differences.md#smart-discovery-with-a-token-url). A 4xx means "no SMART configuration
    /// here", which the missing-endpoint message says more plainly than the raw error.
    async fn discover(&self) -> Result<TokenEndpoint, FhirError> {
        let url = self.resolve(".well-known/smart-configuration")?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let plan = self.startup_plan(Method::GET, url, headers);
        let config = match self.execute(&plan).await {
            Ok(response) => serde_json::from_slice(&response.body).unwrap_or(Value::Null),
            Err(_) if self.inner.token_url.is_some() => Value::Null,
            Err(FhirError::Http { status, .. }) if status < 500 => Value::Null,
            Err(error) => return Err(error),
        };
        let url = self
            .inner
            .token_url
            .clone()
            .or_else(|| {
                config
                    .get("token_endpoint")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                FhirError::Auth(format!(
                    "Server {} does not expose an OAuth token endpoint",
                    self.inner.base_str
                ))
            })?;
        let declares = |capability: &str| {
            config
                .get("capabilities")
                .and_then(Value::as_array)
                .is_some_and(|caps| caps.iter().any(|c| c.as_str() == Some(capability)))
        };
        let scope_suffix = if declares("permission-v2") && !declares("permission-v1") {
            "rs"
        } else {
            "read"
        };
        Ok(TokenEndpoint { url, scope_suffix })
    }

    /// The retry loop with the body read in full (every request but `get_stream`).
    async fn execute(&self, plan: &Plan<'_>) -> Result<FhirResponse, FhirError> {
        let (sent, permit) = self.execute_sent(plan).await?;
        let body = match sent.body {
            Body::Read(bytes) => bytes,
            // Only streamed plans leave a body unread; read it, still inside the slot.
            Body::Live(response) => {
                let read = read_capped(response, self.inner.max_body, &sent.url).await;
                drop(permit);
                read.map_err(|e| match e {
                    SendError::Transport(e) => FhirError::Transport {
                        url: sent.url.clone(),
                        message: describe_transport_error(&e),
                    },
                    SendError::Other(e) => e,
                })?
            }
        };
        Ok(FhirResponse {
            url: sent.url,
            status: sent.status,
            headers: sent.headers,
            body,
        })
    }

    /// The retry loop: one request, up to `policy.max_attempts` counted attempts, each with at
    /// most one immediate resend after renewing the token on a 401 (a token can also expire
    /// while a later attempt waits on a slow server). A streamed success comes back with its
    /// budget slot, which the body keeps until it is dropped.
    async fn execute_sent(&self, plan: &Plan<'_>) -> Result<(Sent, Option<Permit>), FhirError> {
        let inner = &self.inner;
        let max_attempts = plan.policy.max_attempts.max(1);
        let mut attempt: u32 = 1;
        let mut renewed = false;
        let mut resend = false;
        let mut timeouts: u32 = 0;
        let credentials = plan.client_request && plan.credentials;
        loop {
            // The slot first, then the token: the queue for a slot can be long, and the token
            // should be the freshest one when the request leaves.
            let permit = if plan.client_request {
                Some(inner.budget.acquire().await)
            } else {
                None
            };
            let (authorization, token) = if credentials {
                self.authorization().await?
            } else {
                (None, None)
            };
            if !resend && let Some(observer) = plan.observer {
                observer.attempt(plan.url.as_str());
            }
            resend = false;
            let sent_at = tokio::time::Instant::now();
            let outcome = self.send_once(plan, authorization).await;
            if let (Ok(sent), Some(observer)) = (&outcome, plan.observer) {
                observer.response(sent.status, &sent.headers);
            }
            // A success whose JSON does not parse is a broken answer, not data.
            let broken = match &outcome {
                // Only a 200 promises a body; a 202 or 204 may well be empty.
                Ok(sent) if sent.status == 200 && plan.expect_json => match &sent.body {
                    Body::Read(bytes) => json_problem(bytes),
                    Body::Live(_) => None,
                },
                _ => None,
            };
            let outcome = match outcome {
                Ok(sent) if sent.status < 400 && broken.is_none() => {
                    inner
                        .failures_in_a_row
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                    // A streamed body is a download: its own kind, whose answers start later
                    // than a status poll's (on a bulk server that writes files on demand).
                    let kind = if plan.stream {
                        "download"
                    } else {
                        super::budget::request_kind(plan.url.as_str())
                    };
                    if plan.client_request
                        && let Some(limit) = inner
                            .budget
                            .healthy(kind, sent.arrived.saturating_duration_since(sent_at))
                    {
                        inner.reporter.verbose(|| {
                            let status = inner.budget.status();
                            let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
                            format!(
                                "Connections: {limit} of {} (answers take {:.0} ms)",
                                status.max,
                                ms(status.latency),
                            )
                        });
                    }
                    // Only a body still on the wire keeps the slot.
                    let permit = if matches!(sent.body, Body::Live(_)) {
                        permit
                    } else {
                        None
                    };
                    return Ok((sent, permit));
                }
                other => other,
            };
            drop(permit);

            let mut retryable_anyway = false;
            let mut arrived = tokio::time::Instant::now();
            if let Ok(sent) = &outcome {
                arrived = sent.arrived;
            }
            let (error, retry_after) = match outcome {
                Ok(sent) if sent.status < 400 => {
                    retryable_anyway = true;
                    (
                        FhirError::Broken {
                            url: sent.url,
                            message: format!(
                                "The server sent invalid JSON: {}",
                                broken.unwrap_or_default()
                            ),
                        },
                        None,
                    )
                }
                Ok(sent) if sent.status == 401 && credentials => {
                    match &inner.auth {
                        AuthMethod::None => {
                            return Err(FhirError::Auth(NO_AUTH_MESSAGE.to_string()));
                        }
                        AuthMethod::Smart(smart) if !renewed => {
                            renewed = true;
                            resend = true;
                            let seen = token.map_or(0, |t| t.serial);
                            inner.reporter.verbose(|| {
                                format!(
                                    "Renewing the SMART access token after a 401 from {}",
                                    plan.url
                                )
                            });
                            smart
                                .tokens
                                .renew(seen, || self.fetch_token(smart, true))
                                .await?;
                            continue;
                        }
                        // Same credentials again would only fail again
                        // (docs/server.md#renewing-tokens).
                        _ => (http_error_of(&sent), None),
                    }
                }
                Ok(sent) => (
                    http_error_of(&sent),
                    retry_after_of(&sent.headers, plan.policy.retry_after_cap),
                ),
                Err(SendError::Transport(e)) => {
                    let error = FhirError::Transport {
                        url: plan.url.to_string(),
                        message: describe_transport_error(&e),
                    };
                    if is_permanent_transport_error(&e) {
                        if let Some(observer) = plan.observer {
                            observer.failed(&error);
                        }
                        return Err(error);
                    }
                    if e.is_timeout() {
                        timeouts += 1;
                    }
                    (error, None)
                }
                Err(SendError::Other(e)) => {
                    if let Some(observer) = plan.observer {
                        observer.failed(&e);
                    }
                    return Err(e);
                }
            };

            if let Some(observer) = plan.observer {
                observer.failed(&error);
            }
            let retryable = error.is_temporary()
                || retryable_anyway
                || (plan.retry_all && error.status().is_some());
            // 429 and 503 are the server pushing back on everyone; any other transient
            // failure is this request's bad luck, which the budget only counts (a server
            // failing much of the time is sick, see `Budget::failed`).
            let throttle = matches!(error.status(), Some(429 | 503));
            if plan.client_request
                && !throttle
                && (error.is_temporary() || retryable_anyway)
                && let Some(limit) = inner.budget.failed()
            {
                inner.reporter.verbose(|| {
                    format!(
                        "Connections: {limit} of {} (many requests fail)",
                        inner.budget.max()
                    )
                });
            }
            // Waits count from the answer's arrival, so reading an error body or queueing
            // for the lock does not add to them.
            let wait = if throttle {
                plan.policy.wait_after_throttle(attempt, retry_after)
            } else {
                plan.policy.wait_after(attempt, retry_after)
            };
            let resume_at = arrived + wait;
            if throttle && plan.client_request {
                // Nobody sends before the pause ends, even if this request stops here.
                inner.budget.throttled(resume_at);
            }
            if !retryable || attempt >= max_attempts || timeouts >= MAX_TIMEOUT_ATTEMPTS {
                return Err(self.judge_final_failure(plan, error, retryable));
            }
            let wait = resume_at.saturating_duration_since(tokio::time::Instant::now());
            renewed = false;
            inner.reporter.verbose(|| {
                let reason = match &error {
                    FhirError::Http { status, detail, .. } => format!("[{status}] {detail}"),
                    FhirError::Transport { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!(
                    "Retrying {} {} in {:.1}s (attempt {}/{}): {}",
                    plan.method,
                    plan.url,
                    wait.as_secs_f64(),
                    attempt + 1,
                    max_attempts,
                    // The server's own words, on a terminal.
                    crate::text::printable(&reason)
                )
            });
            if let Some(observer) = plan.observer {
                observer.retrying(wait);
            }
            tokio::time::sleep_until(resume_at).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange. Any status comes back as `Ok`; the body is read in full unless
    /// the plan streams and the answer is a success.
    async fn send_once(
        &self,
        plan: &Plan<'_>,
        authorization: Option<HeaderValue>,
    ) -> Result<Sent, SendError> {
        self.inner.reporter.counters().add_request();
        let mut headers = plan.headers.clone();
        if plan.client_request && plan.credentials {
            if let Some(client_id) = &self.inner.client_id
                && self.capabilities().vendor() == Vendor::Epic
                && let Ok(value) = HeaderValue::from_str(client_id)
            {
                headers.insert(EPIC_CLIENT_ID, value);
            }
            if let Some(authorization) = authorization {
                headers.insert(AUTHORIZATION, authorization);
            }
        }
        let http = if plan.method == Method::GET {
            &self.inner.http
        } else {
            &self.inner.http_no_redirect
        };
        let mut builder = http
            .request(plan.method.clone(), plan.url.clone())
            .headers(headers);
        match plan.timeout {
            Some(timeout) => builder = builder.timeout(timeout),
            // A streamed body has no total limit (a large bulk file may take hours); the
            // client's read timeout still ends one that stops moving.
            None if !plan.stream => builder = builder.timeout(REQUEST_TIMEOUT),
            None => {}
        }
        if let Some(form) = plan.form {
            builder = builder.form(&form().map_err(SendError::Other)?);
        }
        let response = builder.send().await.map_err(SendError::Transport)?;
        let arrived = tokio::time::Instant::now();
        let url = response.url().to_string();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = if plan.stream && status < 400 {
            Body::Live(response)
        } else if status < 400 {
            Body::Read(read_capped(response, self.inner.max_body, &url).await?)
        } else {
            Body::Read(read_error_body(response).await?)
        };
        Ok(Sent {
            url,
            status,
            headers,
            body,
            arrived,
        })
    }
}

/// Reads a successful answer's body whole, refusing it once it passes `limit` bytes
/// (counted after gzip, so a small compressed bomb is caught as it expands). The buffer
/// grows with what arrived, never by what a `Content-Length` claims.
async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
    url: &str,
) -> Result<bytes::Bytes, SendError> {
    let too_large = || {
        SendError::Other(FhirError::Refused {
            url: url.to_string(),
            message: format!(
                "the answer is larger than {} MiB (raise the limit with --max-body-size)",
                limit.div_ceil(1024 * 1024)
            ),
        })
    };
    // A declared length is only a hint here: gzip can make the body larger.
    if response.content_length().is_some_and(|n| n > limit) && !is_compressed(&response) {
        return Err(too_large());
    }
    // Most answers arrive as one chunk: hand that over without a copy.
    let Some(first) = response.chunk().await.map_err(SendError::Transport)? else {
        return Ok(bytes::Bytes::new());
    };
    if first.len() as u64 > limit {
        return Err(too_large());
    }
    let Some(second) = response.chunk().await.map_err(SendError::Transport)? else {
        return Ok(first);
    };
    // A declared length only sizes the first allocation, and never beyond a few MiB: the
    // buffer grows with what actually arrives.
    let hint = response
        .content_length()
        .unwrap_or(0)
        .min(limit)
        .min(8 << 20) as usize;
    let mut body = bytes::BytesMut::with_capacity(hint.max(first.len() + second.len()));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
        next = response.chunk().await.map_err(SendError::Transport)?;
    }
    Ok(body.freeze())
}

fn is_compressed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// An error answer is read only for its message: the first `MAX_ERROR_BODY` bytes are
/// kept and the rest is not waited for.
async fn read_error_body(mut response: reqwest::Response) -> Result<bytes::Bytes, SendError> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(SendError::Transport)? {
        let room = (MAX_ERROR_BODY as usize).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= MAX_ERROR_BODY {
            break;
        }
    }
    Ok(body.freeze())
}

/// Why `bytes` is not one JSON value, or `None` when it is.
fn json_problem(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .err()
        .map(|e| e.to_string())
}

fn is_json_type(accept: &str) -> bool {
    let media = accept.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/fhir+json")
        || media.eq_ignore_ascii_case("application/json")
}

/// An OAuth error answer saying the scope is the problem (RFC 6749 `invalid_scope`).
fn is_scope_refusal(status: u16, body: &str) -> bool {
    status == 400
        && serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|e| e == "invalid_scope")
}

/// A token endpoint's answer: the `Authorization` value to send and the token's lifetime,
/// or what is wrong with it (the end of a sentence about the endpoint).
fn parse_token_answer(body: &[u8]) -> Result<(HeaderValue, Option<Duration>), &'static str> {
    let body: Value = serde_json::from_slice(body).map_err(|_| "did not answer with JSON")?;
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("gave no access_token")?;
    let header = auth::sensitive_header(&format!("Bearer {token}"), "access token")
        .map_err(|_| "gave an access token that cannot be sent in a header")?;
    let lifetime = body.get("expires_in").and_then(|v| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Ok((header, token_lifetime(lifetime)))
}

/// A token's `expires_in` as a lifetime we can plan with: negative, NaN and absurd values
/// (`1e300`) must not reach `Duration`, which panics on them.
fn token_lifetime(seconds: Option<f64>) -> Option<Duration> {
    let seconds = seconds.filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(
        seconds.min(MAX_TOKEN_LIFETIME.as_secs_f64()),
    ))
}

/// Same scheme, host and port (a missing port is the scheme's default; hosts are compared
/// as parsed, so case does not matter): the unit credentials are tied to.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// `--fhir-url`: an http(s) URL without a user name or password in it (those would end up
/// in `.metadata`, `log.ndjson` and messages). The URL is not echoed, since it may hold one.
fn parse_fhir_url(url: &str) -> Result<Url, FhirError> {
    let parsed =
        Url::parse(url).map_err(|e| FhirError::Config(format!("Invalid FHIR URL '{url}': {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(FhirError::Config(
            "--fhir-url must not hold a user name or password (user:password@host); pass them with --basic-user and --basic-passwd instead.".to_string(),
        ));
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FhirError::Config(format!(
            "Invalid FHIR URL '{url}': it must start with https:// (or http://)"
        )));
    }
    Ok(parsed)
}

/// Failures that the same request cannot heal by being sent again: a certificate we do not
/// trust, a URL reqwest cannot send.
fn is_permanent_transport_error(error: &reqwest::Error) -> bool {
    if error.is_builder() {
        return true;
    }
    let root = root_cause(error).to_ascii_lowercase();
    error.is_connect() && (root.contains("certificate") || root.contains("invalid dns name"))
}

/// The error of a failed answer (its body is always read).
fn http_error_of(sent: &Sent) -> FhirError {
    let body = match &sent.body {
        Body::Read(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Body::Live(_) => String::new(),
    };
    FhirError::Http {
        url: sent.url.clone(),
        status: sent.status,
        detail: error_detail(sent.status, &body),
        body,
    }
}

/// `--ca-file`: every certificate of the PEM file becomes a trusted root.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, FhirError> {
    let fail = |why: String| {
        FhirError::Config(format!(
            "Could not read CA file '{}': {why}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail(error_chain(&e)))?;
    if certificates.is_empty() {
        return Err(fail("no PEM certificate found".to_string()));
    }
    Ok(certificates)
}

/// A plain account of why no answer came: the kind of failure and its root cause, without
/// reqwest's "error sending request for url (…)" wrapper (the URL is already in the message).
fn describe_transport_error(error: &reqwest::Error) -> String {
    let root = root_cause(error);
    if error.is_timeout() {
        format!("Timed out waiting for the server: {root}")
    } else if error.is_connect() && root.contains("certificate") {
        // The usual cause at a hospital: an internal CA the system store does not hold.
        format!(
            "Could not connect to the server: {root} (if it uses an internal certificate authority, pass its certificate with --ca-file)"
        )
    } else if error.is_connect() {
        format!("Could not connect to the server: {root}")
    } else if error.is_redirect() {
        format!("Redirect failed: {root}")
    } else if error.is_body() || error.is_decode() {
        format!("Connection lost while reading the response: {root}")
    } else {
        format!("Request failed: {root}")
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error;
    while let Some(source) = current.source() {
        parts.push(source.to_string());
        current = source;
    }
    parts.join(": ")
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
