//! Client key pairs for SMART Backend Services (RS384 and ES384): generation, JWK encoding
//! (private and public JWKS, PKCS#8 PEM), RFC 7638 thumbprints, and JWK → verifying key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    Rs384,
    Es384,
}

/// A freshly generated client key in every form a client might hold it.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// `{"keys":[{..., "key_ops":["sign"], private members}]}`
    pub private_jwks: Value,
    /// `{"keys":[{..., "key_ops":["verify"]}]}`: what the server is configured with.
    pub public_jwks: Value,
    /// PKCS#8 PEM of the same private key.
    pub private_pem: String,
    /// RFC 7638 SHA-256 thumbprint of the public key, also the JWKs' `kid`.
    pub kid: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_uint(n: &BigUint) -> String {
    b64(&n.to_bytes_be())
}

/// Generates a new key pair (RSA 2048 for RS384, P-384 for ES384).
pub fn generate(alg: KeyAlg) -> KeyPair {
    let mut rng = rand::rngs::OsRng;
    match alg {
        KeyAlg::Rs384 => {
            #[allow(clippy::expect_used)]
            let key = RsaPrivateKey::new(&mut rng, 2048).expect("RSA 2048 key generation");
            rsa_pair(&key)
        }
        KeyAlg::Es384 => ec_pair(&p384::SecretKey::random(&mut rng)),
    }
}

fn rsa_pair(key: &RsaPrivateKey) -> KeyPair {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let public = json!({ "kty": "RSA", "n": b64_uint(key.n()), "e": b64_uint(key.e()) });
    let kid = thumbprint(&public).unwrap_or_default();
    let primes = key.primes();
    let opt = |v: Option<&BigUint>| v.map(b64_uint).unwrap_or_default();
    let private_key = json!({
        "kty": "RSA",
        "alg": "RS384",
        "kid": kid,
        "key_ops": ["sign"],
        "n": public["n"],
        "e": public["e"],
        "d": b64_uint(key.d()),
        "p": primes.first().map(b64_uint).unwrap_or_default(),
        "q": primes.get(1).map(b64_uint).unwrap_or_default(),
        "dp": opt(key.dp()),
        "dq": opt(key.dq()),
        "qi": key.crt_coefficient().map(|c| b64_uint(&c)).unwrap_or_default()
    });
    let public_key = json!({
        "kty": "RSA",
        "alg": "RS384",
        "kid": kid,
        "key_ops": ["verify"],
        "n": public["n"],
        "e": public["e"]
    });
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_default();
    KeyPair {
        private_jwks: json!({ "keys": [private_key] }),
        public_jwks: json!({ "keys": [public_key] }),
        private_pem,
        kid,
    }
}

fn ec_pair(secret: &p384::SecretKey) -> KeyPair {
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use p384::pkcs8::{EncodePrivateKey, LineEnding};
    let point = secret.public_key().to_encoded_point(false);
    let x = point.x().map(|x| b64(x)).unwrap_or_default();
    let y = point.y().map(|y| b64(y)).unwrap_or_default();
    let public = json!({ "kty": "EC", "crv": "P-384", "x": x, "y": y });
    let kid = thumbprint(&public).unwrap_or_default();
    let private_key = json!({
        "kty": "EC",
        "alg": "ES384",
        "kid": kid,
        "key_ops": ["sign"],
        "crv": "P-384",
        "x": x,
        "y": y,
        "d": b64(&secret.to_bytes())
    });
    let public_key = json!({
        "kty": "EC",
        "alg": "ES384",
        "kid": kid,
        "key_ops": ["verify"],
        "crv": "P-384",
        "x": x,
        "y": y
    });
    let private_pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_default();
    KeyPair {
        private_jwks: json!({ "keys": [private_key] }),
        public_jwks: json!({ "keys": [public_key] }),
        private_pem,
        kid,
    }
}

/// RFC 7638 SHA-256 thumbprint of an RSA or EC JWK (base64url, no padding).
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk[k].as_str();
    // Members in lexicographic order, no whitespace, as RFC 7638 requires.
    let canonical = match s("kty")? {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        _ => return None,
    };
    Some(b64(&Sha256::digest(canonical.as_bytes())))
}

fn member(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(jwk[name].as_str()?.trim_end_matches('='))
        .ok()
}

/// The RSA public key of a JWK with `kty: RSA`.
pub(crate) fn rsa_public(jwk: &Value) -> Option<RsaPublicKey> {
    let n = BigUint::from_bytes_be(&member(jwk, "n")?);
    let e = BigUint::from_bytes_be(&member(jwk, "e")?);
    RsaPublicKey::new(n, e).ok()
}

/// SEC1 uncompressed point bytes `04 || x || y`.
fn uncompressed(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + x.len() + y.len());
    bytes.push(0x04);
    bytes.extend_from_slice(x);
    bytes.extend_from_slice(y);
    bytes
}

/// The P-384 verifying key of a JWK with `kty: EC, crv: P-384`.
pub(crate) fn p384_public(jwk: &Value) -> Option<p384::ecdsa::VerifyingKey> {
    if jwk["crv"] != "P-384" {
        return None;
    }
    let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
    if x.len() != 48 || y.len() != 48 {
        return None;
    }
    p384::ecdsa::VerifyingKey::from_sec1_bytes(&uncompressed(&x, &y)).ok()
}

/// The P-256 verifying key of a JWK with `kty: EC, crv: P-256`.
pub(crate) fn p256_public(jwk: &Value) -> Option<p256::ecdsa::VerifyingKey> {
    if jwk["crv"] != "P-256" {
        return None;
    }
    let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&uncompressed(&x, &y)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example() {
        // The example key of RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn ec_keys_round_trip() {
        let pair = generate(KeyAlg::Es384);
        let public = &pair.public_jwks["keys"][0];
        assert_eq!(public["kid"], pair.kid.as_str());
        assert!(public.get("d").is_none());
        assert!(p384_public(public).is_some());
        assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(thumbprint(public).as_deref(), Some(pair.kid.as_str()));
    }
}
