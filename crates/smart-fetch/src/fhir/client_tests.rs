//! Client tests against a tiny HTTP server on 127.0.0.1 that answers from a closure and
//! records every request.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn form(&self) -> HashMap<String, String> {
        Url::parse(&format!("http://x/?{}", self.body))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

impl Reply {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// `(request, how many earlier requests had the same path)` → reply.
type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TestServer {
    async fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::<Recorded>::new()));
        let handler: Handler = Arc::new(handler);
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let recorded = recorded.clone();
                tokio::spawn(serve(stream, handler, recorded));
            }
        });
        TestServer { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self, path: &str) -> Vec<Recorded> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    handler: Handler,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let request = Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned(),
    };
    let seen = {
        let mut all = recorded.lock().expect("lock");
        let seen = all.iter().filter(|r| r.path == request.path).count();
        all.push(request.clone());
        seen
    };
    let answer = handler(&request, seen);
    tokio::time::sleep(answer.delay).await;
    let mut text = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&answer.body);
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        retry_after_cap: Duration::from_millis(50),
    }
}

fn options(base: &str) -> ClientOptions {
    ClientOptions {
        fhir_url: base.to_string(),
        retry: fast(4),
        startup_retry: fast(2),
        ..ClientOptions::default()
    }
}

/// An ES256 key given inline, and its public half for checking assertions.
fn smart_key() -> (String, p256::PublicKey) {
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1", "key_ops": ["sign"],
        "d": URL_SAFE_NO_PAD.encode(secret.to_bytes()),
    });
    (jwk.to_string(), secret.public_key())
}

fn smart_options(base: &str, key: &str) -> ClientOptions {
    let mut options = options(base);
    options.auth.smart_client_id = Some("my-client".into());
    options.auth.smart_key = Some(key.to_string());
    options
}

/// A SMART server: tokens `tok-1`, `tok-2`, …; `/Patient/*` refuses `tok-1` with a 401.
async fn smart_server(token_delay: Duration, expires_in: f64) -> TestServer {
    let port = Arc::new(Mutex::new(0u16));
    let port_in_handler = port.clone();
    let server = TestServer::start(move |request, seen| {
        let port = *port_in_handler.lock().expect("lock");
        match request.path.as_str() {
            "/metadata" => reply(200, r#"{"software": {"name": "Epic"}}"#),
            "/.well-known/smart-configuration" => reply(
                200,
                &format!(r#"{{"token_endpoint": "http://127.0.0.1:{port}/token"}}"#),
            ),
            "/token" => reply(
                200,
                &format!(
                    r#"{{"access_token": "tok-{}", "expires_in": {expires_in}}}"#,
                    seen + 1
                ),
            )
            .delay(token_delay),
            _ if request.header("authorization") == Some("Bearer tok-1") => reply(401, ""),
            _ => reply(200, r#"{"resourceType": "Patient"}"#),
        }
    })
    .await;
    *port.lock().expect("lock") = server.addr.port();
    server
}

#[test]
fn urls_join_like_rfc3986() {
    let client = FhirClient::new(options("https://x.org/R4"), Budget::new(1)).expect("client");
    assert_eq!(client.base_url(), "https://x.org/R4/");
    let join = |u: &str| client.resolve(u).expect("join").to_string();
    assert_eq!(join("Patient/1"), "https://x.org/R4/Patient/1");
    assert_eq!(join("/Patient/1"), "https://x.org/Patient/1");
    assert_eq!(
        join("https://other.org/files/a.ndjson"),
        "https://other.org/files/a.ndjson"
    );
    assert_eq!(
        join("Observation?patient=1&code=a|b"),
        "https://x.org/R4/Observation?patient=1&code=a|b"
    );
}

#[test]
fn bad_ca_file_is_a_config_error() {
    let mut o = options("https://x.org/");
    o.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let Err(FhirError::Config(message)) = FhirClient::new(o, Budget::new(1)) else {
        panic!("config error expected");
    };
    assert!(message.starts_with("Could not read CA file '/nonexistent/ca.pem': "));
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let server = TestServer::start(|request, seen| match request.path.as_str() {
        "/r4/metadata" => reply(200, "<html>not json</html>"),
        _ if seen < 2 => reply(503, "busy").header("Retry-After", "0"),
        _ => reply(200, r#"{"resourceType": "Patient", "id": "1"}"#),
    })
    .await;
    let client = FhirClient::new(options(&server.url("/r4")), Budget::new(4)).expect("client");
    client.open().await.expect("open");
    assert_eq!(client.capabilities().vendor(), Vendor::Unknown);
    let patient = client.get_json("Patient/1").await.expect("patient");
    assert_eq!(patient["id"], "1");
    let requests = server.requests("/r4/Patient/1");
    assert_eq!(requests.len(), 3);
    let last = &requests[2];
    assert_eq!(last.header("accept"), Some("application/fhir+json"));
    assert_eq!(last.header("accept-charset"), Some("UTF-8"));
    assert_eq!(last.header("authorization"), None);
    assert_eq!(last.header("epic-client-id"), None);
    assert_eq!(server.requests("/r4/metadata").len(), 1);
    let metadata = &server.requests("/r4/metadata")[0];
    assert_eq!(metadata.header("accept"), Some("application/json"));
    // Each 503 (after the previous pause ended) halved the budget for everyone, down to one;
    // the healthy answer that followed gave one connection back at once.
    assert_eq!(client.budget().current_limit(), 2);
    // Every request names us, the first one included.
    assert_eq!(last.header("user-agent"), Some(USER_AGENT));
    assert_eq!(metadata.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with(&format!("smart-fetch/{} ", env!("CARGO_PKG_VERSION"))));
}

/// `Retry-After: 0.4` is 0.4 s (it was not understood, and a 5 ms backoff followed), and a
/// pause holds back every request, not only the throttled one.
#[tokio::test]
async fn a_fractional_retry_after_pauses_everyone() {
    let server = TestServer::start(|request, seen| match request.path.as_str() {
        "/r4/a" if seen == 0 => reply(429, "slow down").header("Retry-After", "0.4"),
        _ => reply(200, "{}"),
    })
    .await;
    let mut o = options(&server.url("/r4"));
    o.retry = RetryPolicy {
        retry_after_cap: Duration::from_secs(5),
        ..fast(4)
    };
    let client = FhirClient::new(o, Budget::new(3)).expect("client");
    let start = std::time::Instant::now();
    let first = client.get_json("a").await;
    assert!(first.is_ok(), "{first:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(390),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.requests("/r4/a").len(), 2);
    // A pause in progress holds back requests that had nothing to do with the 429.
    let start = std::time::Instant::now();
    client
        .budget()
        .throttled(tokio::time::Instant::now() + Duration::from_millis(300));
    let (b, c) = tokio::join!(client.get_json("b"), client.get_json("c"));
    assert!(b.is_ok() && c.is_ok());
    assert!(
        start.elapsed() >= Duration::from_millis(290),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_keeps_the_body() {
    let outcome = r#"{"resourceType":"OperationOutcome","issue":[{"diagnostics":"down"}]}"#;
    let server = TestServer::start(move |request, _| match request.path.as_str() {
        "/Patient/2" => reply(404, outcome),
        _ => reply(500, outcome),
    })
    .await;
    let client = FhirClient::new(options(&server.url("/")), Budget::new(2)).expect("client");
    let error = client.get("Patient/1", "application/fhir+json").await;
    let Err(error) = error else {
        panic!("error expected")
    };
    assert_eq!(
        error.to_string(),
        format!(
            "An error occurred when connecting to \"{}\": [500] down",
            server.url("/Patient/1")
        )
    );
    assert!(error.is_temporary());
    assert!(error.operation_outcome().is_some());
    assert_eq!(server.requests("/Patient/1").len(), 4);

    let Err(error) = client.get_json("Patient/2").await else {
        panic!("404 expected")
    };
    assert_eq!(error.status(), Some(404));
    assert!(!error.is_temporary() && !error.is_fatal());
    assert_eq!(server.requests("/Patient/2").len(), 1);
}

#[tokio::test]
async fn unauthenticated_401_is_an_auth_error() {
    let server = TestServer::start(|_, _| reply(401, "")).await;
    let client = FhirClient::new(options(&server.url("/")), Budget::new(2)).expect("client");
    client.open().await.expect("a 401 on metadata is not fatal");
    let Err(error) = client.get("Patient/1", "application/fhir+json").await else {
        panic!("error expected")
    };
    assert!(error.is_fatal());
    assert_eq!(
        error.to_string(),
        "Could not connect to server without authentication arguments"
    );
}

#[tokio::test]
async fn dead_server_fails_open_quickly() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = FhirClient::new(
        options(&format!("http://127.0.0.1:{port}/fhir")),
        Budget::new(2),
    )
    .expect("client");
    let Err(error) = client.open().await else {
        panic!("open should fail")
    };
    let message = error.to_string();
    assert!(matches!(error, FhirError::Transport { .. }), "{message}");
    assert!(
        message.starts_with(&format!(
            "An error occurred when connecting to \"http://127.0.0.1:{port}/fhir/metadata\": Could not connect to the server: "
        )),
        "{message}"
    );
}

#[tokio::test]
async fn smart_token_request_and_401_renewal() {
    let server = smart_server(Duration::ZERO, 3600.0).await;
    let (key, public) = smart_key();
    let client =
        FhirClient::new(smart_options(&server.url("/"), &key), Budget::new(2)).expect("client");
    client.open().await.expect("open");
    assert_eq!(client.capabilities().vendor(), Vendor::Epic);
    let token_requests = server.requests("/token");
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].method, "POST");
    let form = token_requests[0].form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let scopes: Vec<&str> = form["scope"].split(' ').collect();
    assert_eq!(scopes.len(), 21);
    assert!(scopes.contains(&"system/Patient.read"));
    assert!(scopes.contains(&"system/PractitionerRole.read"));
    assert_eq!(token_requests[0].header("authorization"), None);

    let assertion = &form["client_assertion"];
    let (input, signature) = assertion.rsplit_once('.').expect("jwt");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("b64");
    let signature = p256::ecdsa::Signature::from_slice(&signature).expect("r||s");
    use p256::ecdsa::signature::Verifier;
    p256::ecdsa::VerifyingKey::from(public)
        .verify(input.as_bytes(), &signature)
        .expect("assertion verifies");
    let claims = input.split('.').nth(1).expect("claims");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
    assert_eq!(claims["aud"], server.url("/token"));
    assert_eq!(claims["iss"], "my-client");

    // tok-1 is refused: one renewal, then the request goes through with tok-2.
    client.get_json("Patient/1").await.expect("patient");
    assert_eq!(server.requests("/token").len(), 2);
    let sent: Vec<_> = server
        .requests("/Patient/1")
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(sent, ["Bearer tok-1", "Bearer tok-2"]);
    let last = &server.requests("/Patient/1")[1];
    assert_eq!(last.header("epic-client-id"), Some("my-client"));
    // Discovery happened once, sessions re-authorize.
    client.open().await.expect("reopen");
    assert_eq!(server.requests("/.well-known/smart-configuration").len(), 1);
    assert_eq!(server.requests("/token").len(), 3);
}

#[tokio::test]
async fn concurrent_401s_share_one_renewal() {
    let server = smart_server(Duration::from_millis(100), 3600.0).await;
    let (key, _) = smart_key();
    let client =
        FhirClient::new(smart_options(&server.url("/"), &key), Budget::new(8)).expect("client");
    client.open().await.expect("open");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get_json(&format!("Patient/{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("patient");
    }
    assert_eq!(server.requests("/token").len(), 2);
}

#[tokio::test]
async fn token_renewed_before_expiry() {
    let server = smart_server(Duration::ZERO, 0.3).await;
    let (key, _) = smart_key();
    let client =
        FhirClient::new(smart_options(&server.url("/"), &key), Budget::new(2)).expect("client");
    client.open().await.expect("open");
    // Lifetime 0.3 s, margin 0.06 s: by now tok-1 is due for renewal, so no 401 is seen.
    tokio::time::sleep(Duration::from_millis(260)).await;
    client.get_json("Patient/1").await.expect("patient");
    let sent: Vec<_> = server
        .requests("/Patient/1")
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(sent, ["Bearer tok-2"]);
}

#[tokio::test]
async fn token_errors_and_discovery() {
    let server = TestServer::start(|request, _| match request.path.as_str() {
        "/token" => reply(
            400,
            r#"{"error":"invalid_client","error_description":"bad assertion"}"#,
        ),
        "/v2/.well-known/smart-configuration" => reply(
            200,
            r#"{"token_endpoint": "unused", "capabilities": ["permission-v2"]}"#,
        ),
        "/ok-token" => reply(200, r#"{"access_token": "x"}"#),
        _ => reply(404, "no"),
    })
    .await;
    let (key, _) = smart_key();

    let client =
        FhirClient::new(smart_options(&server.url("/"), &key), Budget::new(2)).expect("client");
    let Err(error) = client.open().await else {
        panic!("no endpoint")
    };
    assert_eq!(
        error.to_string(),
        format!(
            "Server {} does not expose an OAuth token endpoint",
            server.url("/")
        )
    );

    let mut o = smart_options(&server.url("/"), &key);
    o.token_url = Some(server.url("/token"));
    let client = FhirClient::new(o, Budget::new(2)).expect("client");
    let Err(error) = client.open().await else {
        panic!("token refused")
    };
    assert!(error.is_fatal());
    assert_eq!(
        error.to_string(),
        format!(
            "Could not authenticate: An error occurred when connecting to \"{}\": [400] bad assertion",
            server.url("/token")
        )
    );
    assert_eq!(
        server.requests("/token").len(),
        1,
        "a 400 at open is not retried"
    );

    let mut o = smart_options(&server.url("/v2"), &key);
    o.token_url = Some(server.url("/ok-token"));
    let client = FhirClient::new(o, Budget::new(2)).expect("client");
    client.open().await.expect("open");
    let form = server.requests("/ok-token")[0].form();
    assert!(form["scope"].split(' ').all(|s| s.ends_with(".rs")));
}

#[tokio::test]
async fn redirects_keep_authorization_only_within_the_origin() {
    let other = TestServer::start(|_, _| reply(200, "{}")).await;
    let elsewhere = other.url("/file");
    let server = TestServer::start(move |request, _| match request.path.as_str() {
        "/Binary/1" => reply(302, "").header("Location", &elsewhere),
        "/Binary/2" => reply(302, "").header("Location", "/Binary/3"),
        _ => reply(200, "{}"),
    })
    .await;
    let mut o = options(&server.url("/"));
    o.auth.bearer_token = Some("secret-token".into());
    let client = FhirClient::new(o, Budget::new(2)).expect("client");
    let response = client.get("Binary/1", "*/*").await.expect("redirected");
    assert_eq!(response.url, other.url("/file"));
    assert_eq!(other.requests("/file")[0].header("authorization"), None);
    client.get("Binary/2", "*/*").await.expect("redirected");
    assert_eq!(
        server.requests("/Binary/3")[0].header("authorization"),
        Some("Bearer secret-token")
    );
}

#[tokio::test]
async fn observer_sees_each_attempt() {
    #[derive(Default)]
    struct Counts(Mutex<(usize, usize, usize)>);
    impl RequestObserver for Counts {
        fn attempt(&self, _url: &str) {
            self.0.lock().expect("lock").0 += 1;
        }
        fn failed(&self, _error: &FhirError) {
            self.0.lock().expect("lock").1 += 1;
        }
        fn retrying(&self, _wait: Duration) {
            self.0.lock().expect("lock").2 += 1;
        }
    }
    let server = TestServer::start(|_, seen| {
        if seen == 0 {
            reply(502, "")
        } else {
            reply(202, "")
        }
    })
    .await;
    let client = FhirClient::new(options(&server.url("/")), Budget::new(2)).expect("client");
    let counts = Counts::default();
    let mut request = Request::get("$export", "application/fhir+json");
    request
        .headers
        .insert("prefer", HeaderValue::from_static("respond-async"));
    request.observer = Some(&counts);
    let response = client.request(request).await.expect("kickoff");
    assert_eq!(response.status, 202);
    assert_eq!(*counts.0.lock().expect("lock"), (2, 1, 1));
    assert_eq!(
        server.requests("/$export")[1].header("prefer"),
        Some("respond-async")
    );
}

#[tokio::test]
async fn streamed_answers_keep_their_slot_and_may_go_without_credentials() {
    let server = TestServer::start(|r, _| match r.path.as_str() {
        "/missing" => reply(404, "gone"),
        "/hdr" => reply(200, "{\"a\":1}\n").header("x-test", "yes"),
        _ => reply(200, "{\"a\":1}\n{\"b\":2}\n"),
    })
    .await;
    let mut o = options(&server.url("/"));
    o.auth.bearer_token = Some("secret-token".into());
    let budget = Budget::new(1);
    let client = FhirClient::new(o, budget.clone()).expect("client");

    let mut response = client
        .get_stream(Request::get("file", "application/fhir+ndjson"), true)
        .await
        .expect("stream");
    assert_eq!(response.status, 200);
    // The only slot is held while the body is on the wire: another request must wait.
    let waiting = client.get("hdr", "application/json");
    let blocked = tokio::time::timeout(Duration::from_millis(200), waiting).await;
    assert!(
        blocked.is_err(),
        "the streaming answer gave its slot back early"
    );
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"{\"a\":1}\n{\"b\":2}\n");
    drop(response);
    let hdr = client
        .get("hdr", "application/json")
        .await
        .expect("slot back");
    assert_eq!(hdr.header("x-test"), Some("yes"));

    let plain = client
        .get_stream(Request::get("other", "application/fhir+ndjson"), false)
        .await
        .expect("stream");
    drop(plain);
    assert_eq!(
        server.requests("/file")[0].header("authorization"),
        Some("Bearer secret-token")
    );
    assert_eq!(server.requests("/other")[0].header("authorization"), None);

    // An error answer is read in full and reported like any other.
    let error = client
        .get_stream(Request::get("missing", "application/fhir+ndjson"), true)
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            format!(
                "An error occurred when connecting to \"{}\": [404] gone",
                server.url("/missing")
            )
            .as_str()
        )
    );
}

mod properties {
    //! Whatever a server sends, the parsers of its answers return a value or an error:
    //! never a panic, never a wait or lifetime out of range.
    use super::super::*;
    use proptest::prelude::*;

    /// JSON-ish text: random bytes, or a token answer with arbitrary values spliced in.
    fn token_bodies() -> impl Strategy<Value = Vec<u8>> {
        let number = prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            "[0-9]{1,400}",
            "-?[0-9]{1,30}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,5})?",
            Just("1e300".to_string()),
            Just("\"1e300\"".to_string()),
            Just("null".to_string()),
        ];
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            (".{0,40}", number).prop_map(|(token, n)| {
                format!(
                    r#"{{"access_token":{},"expires_in":{n}}}"#,
                    serde_json::json!(token)
                )
                .into_bytes()
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn token_answers_never_panic(body in token_bodies()) {
            if let Ok((_, Some(lifetime))) = parse_token_answer(&body) {
                prop_assert!(lifetime <= MAX_TOKEN_LIFETIME);
            }
        }

        #[test]
        fn retry_after_never_panics_and_stays_capped(value in "\\PC{0,40}|[0-9]{15,40}|-?[0-9]{1,20}(\\.[0-9]+)?(e[0-9]{1,4})?") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(reqwest::header::RETRY_AFTER, v);
            }
            let policy = RetryPolicy::data();
            let asked = retry_after_of(&headers, policy.retry_after_cap);
            prop_assert!(asked.is_none_or(|a| a <= policy.retry_after_cap));
            prop_assert!(policy.wait_after(1, asked) <= policy.retry_after_cap);
            prop_assert!(policy.wait_after_throttle(1, asked) <= policy.retry_after_cap);
        }

        #[test]
        fn error_details_never_panic_and_are_printable(status in 0u16..1000, body in "\\PC{0,60}|.{0,60}") {
            let detail = crate::text::printable(&error_detail(status, &body)).into_owned();
            let clean = !detail.contains('\u{1b}');
            prop_assert!(clean, "escape left in {:?}", detail);
        }

        #[test]
        fn json_check_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = json_problem(&body);
        }
    }
}

#[tokio::test]
async fn a_delete_is_not_replayed_at_another_origin() {
    let other = TestServer::start(|_, _| reply(200, "{}")).await;
    let target = other.url("/elsewhere");
    let server = TestServer::start(move |_, _| reply(302, "").header("location", &target)).await;
    let mut o = options(&server.url("/"));
    o.auth.bearer_token = Some("secret-token".into());
    let client = FhirClient::new(o, Budget::new(1)).expect("client");
    let answer = client
        .request(Request::new(Method::DELETE, "job/1", "application/json"))
        .await;
    assert!(matches!(answer, Ok(ref r) if r.status == 302), "{answer:?}");
    assert!(other.requests("/elsewhere").is_empty(), "not followed");
    assert_eq!(server.requests("/job/1").len(), 1);
}
