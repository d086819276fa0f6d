//! Shared helpers: an HTTP client, JSON fetches, paging, and client-assertion signing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_ehr::keys::KeyPair;
use serde_json::{Value, json};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// GET `url`; returns the status and the JSON body (Null when not JSON).
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("send");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Follows `next` links from `url`, collecting every entry's resource.
pub async fn all_pages(client: &reqwest::Client, url: &str) -> (Vec<Value>, usize) {
    let mut resources = Vec::new();
    let mut next = Some(url.to_string());
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (status, bundle) = get(client, &url).await;
        assert_eq!(status, 200, "{url}: {bundle}");
        assert_eq!(bundle["type"], "searchset");
        pages += 1;
        assert!(pages < 100, "too many pages");
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            let resource = &entry["resource"];
            let full = entry["fullUrl"].as_str().unwrap_or_default();
            assert!(
                full.ends_with(&format!(
                    "/{}/{}",
                    resource["resourceType"].as_str().unwrap_or_default(),
                    resource["id"].as_str().unwrap_or_default()
                )),
                "{full}"
            );
            resources.push(resource.clone());
        }
        next = bundle["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str())
            .map(str::to_string);
    }
    (resources, pages)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` with the key pair's private key (from its PEM), as a client would.
pub fn sign(pair: &KeyPair, header_extra: Value, claims: &Value) -> String {
    let private = &pair.private_jwks["keys"][0];
    let alg = private["alg"].as_str().expect("alg").to_string();
    let mut header = json!({ "alg": alg, "typ": "JWT", "kid": pair.kid });
    if let (Some(h), Some(extra)) = (header.as_object_mut(), header_extra.as_object()) {
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match alg.as_str() {
        "RS384" => {
            use rsa::pkcs8::DecodePrivateKey;
            use rsa::signature::{SignatureEncoding, Signer};
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pair.private_pem).expect("pem");
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(key);
            signer.sign(input.as_bytes()).to_vec()
        }
        "ES384" => {
            use p384::ecdsa::signature::Signer;
            use p384::pkcs8::DecodePrivateKey;
            let key = p384::SecretKey::from_pkcs8_pem(&pair.private_pem).expect("pem");
            let signer = p384::ecdsa::SigningKey::from(key);
            let signature: p384::ecdsa::Signature = signer.sign(input.as_bytes());
            signature.to_bytes().to_vec()
        }
        other => panic!("unexpected alg {other}"),
    };
    format!("{input}.{}", b64(&signature))
}

/// Standard SMART Backend Services claims for `client_id` at `token_url`.
pub fn claims(client_id: &str, token_url: &str, lifetime_secs: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + lifetime_secs,
        "jti": format!("jti-{}", rand::random::<u64>())
    })
}

/// POSTs a client-credentials token request; returns status and JSON body.
pub async fn token_request(
    client: &reqwest::Client,
    token_url: &str,
    assertion: &str,
) -> (u16, Value) {
    let body = format!(
        "grant_type=client_credentials&scope=system%2F*.read&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let response = client
        .post(token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
