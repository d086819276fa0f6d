//! Client-assertion JWTs (RFC 7523): decoding, signature verification (RS256/RS384/RS512,
//! ES256/ES384) against a JWKS, and the SMART Backend Services claim checks.

use crate::keys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The longest a client may make an assertion live (SMART: at most five minutes).
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Clock slack allowed on `exp` and `nbf`.
const LEEWAY_SECS: i64 = 5;

/// A decoded, not yet verified, JWS compact serialisation.
pub struct Jws {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

fn b64_json(part: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("not base64url: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("not a JSON object".into())
    }
}

impl Jws {
    pub fn decode(token: &str) -> Result<Self, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("client_assertion is not a three-part JWS".into());
        };
        let header = b64_json(h).map_err(|e| format!("JWT header is {e}"))?;
        let claims = b64_json(c).map_err(|e| format!("JWT claims are {e}"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| format!("JWT signature is not base64url: {e}"))?;
        Ok(Self {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature,
        })
    }

    /// Checks the signature with a key of `jwks`: the key named by `kid` if any matches,
    /// else every key of the algorithm's type (clients may compute `kid` differently).
    pub fn verify_signature(&self, jwks: &Value) -> Result<(), String> {
        let alg = self.header["alg"].as_str().unwrap_or_default();
        let (kty, crv) = match alg {
            "RS256" | "RS384" | "RS512" => ("RSA", None),
            "ES256" => ("EC", Some("P-256")),
            "ES384" => ("EC", Some("P-384")),
            other => return Err(format!("unsupported JWT alg {other:?}")),
        };
        let suitable: Vec<&Value> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["kty"] == kty && crv.is_none_or(|c| k["crv"] == c))
            .collect();
        let kid = self.header["kid"].as_str();
        let named: Vec<&Value> = suitable
            .iter()
            .copied()
            .filter(|k| kid.is_some() && k["kid"].as_str() == kid)
            .collect();
        let candidates = if named.is_empty() { suitable } else { named };
        if candidates.is_empty() {
            return Err(format!("no registered {kty} key for alg {alg}"));
        }
        if candidates.iter().any(|k| self.verify_with(alg, k)) {
            Ok(())
        } else {
            Err("client_assertion signature does not verify".into())
        }
    }

    fn verify_with(&self, alg: &str, jwk: &Value) -> bool {
        use rsa::signature::Verifier as _;
        let input = self.signing_input.as_bytes();
        let sig = self.signature.as_slice();
        match alg {
            "RS256" | "RS384" | "RS512" => {
                let Some(key) = keys::rsa_public(jwk) else {
                    return false;
                };
                let Ok(signature) = rsa::pkcs1v15::Signature::try_from(sig) else {
                    return false;
                };
                match alg {
                    "RS256" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
                        .verify(input, &signature)
                        .is_ok(),
                    "RS384" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key)
                        .verify(input, &signature)
                        .is_ok(),
                    _ => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key)
                        .verify(input, &signature)
                        .is_ok(),
                }
            }
            "ES384" => {
                let (Some(key), Ok(signature)) = (
                    keys::p384_public(jwk),
                    p384::ecdsa::Signature::from_slice(sig),
                ) else {
                    return false;
                };
                key.verify(input, &signature).is_ok()
            }
            "ES256" => {
                let (Some(key), Ok(signature)) = (
                    keys::p256_public(jwk),
                    p256::ecdsa::Signature::from_slice(sig),
                ) else {
                    return false;
                };
                key.verify(input, &signature).is_ok()
            }
            _ => false,
        }
    }

    /// SMART Backend Services claims: `iss == sub == client_id`, `aud == token_url`,
    /// `exp` in the future but at most five minutes away, `jti` present.
    pub fn check_claims(&self, client_id: &str, token_url: &str, now: i64) -> Result<(), String> {
        let c = &self.claims;
        for claim in ["iss", "sub"] {
            if c[claim].as_str() != Some(client_id) {
                return Err(format!(
                    "{claim} must be the client id {client_id:?}, got {}",
                    c[claim]
                ));
            }
        }
        let aud_ok = match &c["aud"] {
            Value::String(aud) => aud == token_url,
            Value::Array(auds) => auds.iter().any(|a| a == token_url),
            _ => false,
        };
        if !aud_ok {
            return Err(format!(
                "aud must be the token URL {token_url:?}, got {}",
                c["aud"]
            ));
        }
        let exp = numeric(&c["exp"]).ok_or("exp is missing or not a number")?;
        if exp <= now - LEEWAY_SECS {
            return Err(format!("client_assertion expired (exp {exp}, now {now})"));
        }
        if exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
            return Err(format!(
                "exp {exp} is more than five minutes in the future (now {now})"
            ));
        }
        if let Some(nbf) = numeric(&c["nbf"])
            && nbf > now + LEEWAY_SECS
        {
            return Err(format!(
                "client_assertion not valid before {nbf} (now {now})"
            ));
        }
        match c["jti"].as_str() {
            Some(jti) if !jti.is_empty() => Ok(()),
            _ => Err("jti is missing".into()),
        }
    }
}

/// A NumericDate: JSON integer, or a float truncated to seconds.
fn numeric(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
}
