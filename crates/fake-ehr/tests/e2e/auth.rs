//! Basic, Bearer and SMART Backend Services authorization, including the token endpoint.

use crate::common::{claims, client, sign, token_request};
use fake_ehr::keys::{self, KeyAlg, KeyPair};
use fake_ehr::{AuthMode, Config, Server, start};
use serde_json::json;
use std::time::Duration;

async fn status_with(c: &reqwest::Client, url: &str, auth: Option<&str>) -> u16 {
    let mut request = c.get(url);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    request.send().await.expect("send").status().as_u16()
}

#[tokio::test]
async fn basic_and_bearer() {
    let basic = start(Config {
        auth: AuthMode::Basic {
            user: "alice".into(),
            password: "s3cret:ü".into(),
        },
        ..Config::default()
    })
    .await
    .expect("start");
    let c = client();
    let url = format!("{}/Patient/pat-000001", basic.base_url());
    use base64::Engine;
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret:ü")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:nope")
    );
    assert_eq!(status_with(&c, &url, Some(&good)).await, 200);
    assert_eq!(status_with(&c, &url, Some(&bad)).await, 401);
    assert_eq!(status_with(&c, &url, None).await, 401);
    assert_eq!(status_with(&c, &url, Some("Bearer x")).await, 401);
    // Metadata needs no auth.
    assert_eq!(
        status_with(&c, &format!("{}/metadata", basic.base_url()), None).await,
        200
    );
    assert_eq!(basic.stats().unauthorized, 3);

    let bearer = start(Config {
        auth: AuthMode::Bearer {
            token: "tok-123".into(),
        },
        ..Config::default()
    })
    .await
    .expect("start");
    let search = format!("{}/Condition?patient=pat-000001", bearer.base_url());
    assert_eq!(status_with(&c, &search, Some("Bearer tok-123")).await, 200);
    assert_eq!(status_with(&c, &search, Some("Bearer tok-1234")).await, 401);
    let response = c.get(&search).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or_default();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(bearer.stats().unauthorized, 2);
}

async fn smart_server(pair: &KeyPair, lifetime: Duration) -> Server {
    start(Config {
        auth: AuthMode::Smart {
            client_id: "client-1".into(),
            public_jwks: pair.public_jwks.clone(),
            token_lifetime: lifetime,
        },
        ..Config::default()
    })
    .await
    .expect("start")
}

async fn token_flow(alg: KeyAlg) {
    let pair = keys::generate(alg);
    let server = smart_server(&pair, Duration::from_secs(300)).await;
    let c = client();
    let token_url = server.token_url();
    assert_eq!(token_url, format!("{}/token", server.base_url()));
    let data_url = format!("{}/Patient/pat-000002", server.base_url());
    assert_eq!(status_with(&c, &data_url, None).await, 401);

    let assertion = sign(
        &pair,
        json!({ "jku": "https://client.example/jwks.json" }),
        &claims("client-1", &token_url, 240),
    );
    let (status, body) = token_request(&c, &token_url, &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "system/*.read");
    let token = body["access_token"].as_str().expect("token").to_string();
    assert_eq!(
        status_with(&c, &data_url, Some(&format!("Bearer {token}"))).await,
        200
    );
    assert_eq!(
        status_with(&c, &data_url, Some("Bearer made-up")).await,
        401
    );
    assert_eq!(
        server.stats().last_assertion_jku.as_deref(),
        Some("https://client.example/jwks.json")
    );

    // A kid the server does not know still verifies against a key of the same type.
    let assertion = sign(
        &pair,
        json!({ "kid": "pem-thumbprint-elsewhere" }),
        &claims("client-1", &token_url, 60),
    );
    let (status, body) = token_request(&c, &token_url, &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.stats().last_assertion_jku, None);
    let second = body["access_token"].as_str().expect("token").to_string();
    assert_ne!(second, token);
    assert_eq!(
        server.stats().issued_tokens,
        [token.clone(), second.clone()]
    );

    // Rejections.
    let other = keys::generate(alg);
    let mut wrong_iss = claims("client-1", &token_url, 60);
    wrong_iss["iss"] = json!("client-2");
    let mut no_jti = claims("client-1", &token_url, 60);
    no_jti.as_object_mut().map(|m| m.remove("jti"));
    let bad = [
        (
            "wrong key",
            sign(&other, json!({}), &claims("client-1", &token_url, 60)),
        ),
        (
            "wrong aud",
            sign(
                &pair,
                json!({}),
                &claims("client-1", "http://elsewhere/token", 60),
            ),
        ),
        (
            "expired",
            sign(&pair, json!({}), &claims("client-1", &token_url, -30)),
        ),
        (
            "too long",
            sign(&pair, json!({}), &claims("client-1", &token_url, 3600)),
        ),
        ("wrong iss", sign(&pair, json!({}), &wrong_iss)),
        ("no jti", sign(&pair, json!({}), &no_jti)),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, assertion) in bad {
        let (status, body) = token_request(&c, &token_url, &assertion).await;
        assert!(status == 400 || status == 401, "{what}: {status}");
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    }
    assert_eq!(server.stats().token, 9);
    // Rejected requests issue nothing.
    assert_eq!(server.stats().issued_tokens, [token, second]);
}

#[tokio::test]
async fn token_flow_rs384() {
    token_flow(KeyAlg::Rs384).await;
}

#[tokio::test]
async fn token_flow_es384() {
    token_flow(KeyAlg::Es384).await;
}

#[tokio::test]
async fn expired_access_token_is_refused() {
    let pair = keys::generate(KeyAlg::Es384);
    let server = smart_server(&pair, Duration::from_secs(1)).await;
    let c = client();
    let assertion = sign(
        &pair,
        json!({}),
        &claims("client-1", &server.token_url(), 60),
    );
    let (status, body) = token_request(&c, &server.token_url(), &assertion).await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 1);
    let auth = format!(
        "Bearer {}",
        body["access_token"].as_str().unwrap_or_default()
    );
    let url = format!("{}/Encounter?patient=pat-000000", server.base_url());
    assert_eq!(status_with(&c, &url, Some(&auth)).await, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status_with(&c, &url, Some(&auth)).await, 401);
    assert_eq!(server.stats().unauthorized, 1);
}

#[test]
fn key_pairs_are_consistent() {
    for alg in [KeyAlg::Rs384, KeyAlg::Es384] {
        let pair = keys::generate(alg);
        let private = &pair.private_jwks["keys"][0];
        let public = &pair.public_jwks["keys"][0];
        assert_eq!(private["kid"], pair.kid.as_str());
        assert_eq!(public["kid"], pair.kid.as_str());
        assert_eq!(private["key_ops"], json!(["sign"]));
        assert_eq!(public["key_ops"], json!(["verify"]));
        assert!(public.get("d").is_none());
        assert!(private["d"].is_string());
        assert_eq!(keys::thumbprint(public).as_deref(), Some(pair.kid.as_str()));
        match alg {
            KeyAlg::Rs384 => {
                assert_eq!(public["kty"], "RSA");
                for member in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                    let v = private[member].as_str().unwrap_or_default();
                    assert!(!v.is_empty() && !v.contains('='), "{member}");
                }
                // The private JWK and the PEM are the same key.
                use base64::Engine;
                use rsa::pkcs8::DecodePrivateKey;
                let b = |m: &str| {
                    rsa::BigUint::from_bytes_be(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(private[m].as_str().unwrap_or_default())
                            .expect("b64"),
                    )
                };
                let from_pem = rsa::RsaPrivateKey::from_pkcs8_pem(&pair.private_pem).expect("pem");
                let from_jwk = rsa::RsaPrivateKey::from_components(
                    b("n"),
                    b("e"),
                    b("d"),
                    vec![b("p"), b("q")],
                )
                .expect("jwk");
                assert_eq!(from_pem, from_jwk);
            }
            KeyAlg::Es384 => {
                assert_eq!(public["kty"], "EC");
                assert_eq!(public["crv"], "P-384");
                assert!(pair.private_pem.contains("BEGIN PRIVATE KEY"));
            }
        }
    }
}
