//! SMART Backend Services keys (docs/server.md#smart-backend-services): loading a private key
//! from JWKS/JWK/PEM (docs/server.md#secrets-in-files-or-on-the-command-line), its RFC 7638
//! thumbprint, and the signed client-assertion JWT.

use super::FhirError;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::path::Path;

/// JWK members are base64url without padding, but some tools pad anyway.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const JWKS_NO_KEY: &str = "No valid private key found in the provided JWKS file.";
const PEM_NO_KEY: &str = "No supported private key found in the provided PEM file.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
}

impl Algorithm {
    fn parse(alg: &str) -> Option<Self> {
        Some(match alg {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
        }
    }
}

#[derive(Clone)]
enum Material {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

/// A private key ready to sign client assertions. `Debug` never shows key material.
#[derive(Clone)]
pub struct SmartKey {
    alg: Algorithm,
    kid: String,
    material: Material,
}

impl std::fmt::Debug for SmartKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SmartKey {
    /// `--smart-key`: inline JSON starting with `{`, a `.jwks`/`.jwk` file or a `.pem` file.
    pub fn load(value: &str) -> Result<Self, FhirError> {
        if value.starts_with('{') {
            // The value itself is the secret: never echo it.
            let jwks = serde_json::from_str(value).map_err(|e| {
                FhirError::Config(format!("The inline SMART key is not valid JSON: {e}"))
            })?;
            return Self::from_jwks(&jwks);
        }
        let extension = Path::new(value)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("jwks" | "jwk") => {
                let text = read_key_file(value)?;
                let jwks = serde_json::from_str(&text).map_err(|e| {
                    FhirError::Config(format!("SMART key file '{value}' is not valid JSON: {e}"))
                })?;
                Self::from_jwks(&jwks)
            }
            Some("pem") => Self::from_pem(&read_key_file(value)?),
            _ => Err(FhirError::Config(format!(
                "Unrecognized private key file '{value}' (must end in .jwks or .pem)."
            ))),
        }
    }

    /// The first key usable for signing with a `kid` and an `alg`
    /// (docs/server.md#smart-backend-services). Keys whose algorithm we do not implement are passed
    /// over so a mixed JWKS still works.
    pub fn from_jwks(jwks: &Value) -> Result<Self, FhirError> {
        let keys: Vec<&Value> = match jwks.get("keys") {
            Some(Value::Array(keys)) => keys.iter().collect(),
            Some(_) => Vec::new(),
            None if jwks.is_object() => vec![jwks],
            None => Vec::new(),
        };
        let mut unsupported = None;
        for key in keys {
            let signs = key
                .get("key_ops")
                .and_then(Value::as_array)
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("sign")));
            let kid = key.get("kid").and_then(Value::as_str);
            let alg = key.get("alg").and_then(Value::as_str);
            let (true, Some(kid), Some(alg)) = (signs, kid, alg) else {
                continue;
            };
            let Some(algorithm) = Algorithm::parse(alg) else {
                unsupported.get_or_insert_with(|| alg.to_string());
                continue;
            };
            let material = jwk_material(key, algorithm)
                .ok_or_else(|| FhirError::Config(JWKS_NO_KEY.to_string()))?;
            return Ok(SmartKey {
                alg: algorithm,
                kid: kid.to_string(),
                material,
            });
        }
        Err(FhirError::Config(match unsupported {
            Some(alg) => format!(
                "{JWKS_NO_KEY}\n(algorithm '{alg}' is not supported; use RS384, ES384, RS256, RS512 or ES256)"
            ),
            None => JWKS_NO_KEY.to_string(),
        }))
    }

    /// A PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key; `kid` is its RFC 7638 thumbprint.
    pub fn from_pem(text: &str) -> Result<Self, FhirError> {
        for (label, der) in pem_blocks(text) {
            let material = match label.as_str() {
                "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(&der)
                    .map(|k| Material::Rsa(Box::new(k)))
                    .ok()
                    .or_else(|| {
                        p256::SecretKey::from_pkcs8_der(&der)
                            .ok()
                            .map(Material::P256)
                    })
                    .or_else(|| {
                        p384::SecretKey::from_pkcs8_der(&der)
                            .ok()
                            .map(Material::P384)
                    }),
                "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(&der)
                    .ok()
                    .map(|k| Material::Rsa(Box::new(k))),
                "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                    .ok()
                    .map(Material::P256)
                    .or_else(|| {
                        p384::SecretKey::from_sec1_der(&der)
                            .ok()
                            .map(Material::P384)
                    }),
                _ => None,
            };
            if let Some(material) = material {
                let alg = match material {
                    Material::Rsa(_) => Algorithm::RS384,
                    Material::P256(_) => Algorithm::ES256,
                    Material::P384(_) => Algorithm::ES384,
                };
                let kid = thumbprint(&material);
                return Ok(SmartKey { alg, kid, material });
            }
        }
        Err(FhirError::Config(PEM_NO_KEY.to_string()))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The RFC 7638 thumbprint of the public half.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.material)
    }

    /// The signed `client_assertion` for a token request (docs/server.md#smart-backend-services).
    pub fn client_assertion(
        &self,
        client_id: &str,
        token_url: &str,
        jku: Option<&str>,
        now_epoch: i64,
    ) -> Result<String, FhirError> {
        let mut header = json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid});
        if let Some(jku) = jku {
            header["jku"] = json!(jku);
        }
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "exp": now_epoch + 299,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// JWS signature bytes: PKCS#1 v1.5 for RS*, raw `r||s` for ES*.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, FhirError> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
        let mut rng = rand::thread_rng();
        let fail = |e: rsa::signature::Error| {
            FhirError::Auth(format!("Could not sign the SMART client assertion: {e}"))
        };
        Ok(match (&self.material, self.alg) {
            (Material::Rsa(key), Algorithm::RS256) => {
                rsa::pkcs1v15::SigningKey::<Sha256>::new((**key).clone())
                    .try_sign_with_rng(&mut rng, message)
                    .map_err(fail)?
                    .to_vec()
            }
            (Material::Rsa(key), Algorithm::RS384) => {
                rsa::pkcs1v15::SigningKey::<Sha384>::new((**key).clone())
                    .try_sign_with_rng(&mut rng, message)
                    .map_err(fail)?
                    .to_vec()
            }
            (Material::Rsa(key), Algorithm::RS512) => {
                rsa::pkcs1v15::SigningKey::<Sha512>::new((**key).clone())
                    .try_sign_with_rng(&mut rng, message)
                    .map_err(fail)?
                    .to_vec()
            }
            (Material::P256(key), Algorithm::ES256) => {
                let signature: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(key)
                    .try_sign(message)
                    .map_err(fail)?;
                signature.to_bytes().to_vec()
            }
            (Material::P384(key), Algorithm::ES384) => {
                let signature: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(key)
                    .try_sign(message)
                    .map_err(fail)?;
                signature.to_bytes().to_vec()
            }
            // Loading pairs every algorithm with matching material.
            (_, alg) => {
                return Err(FhirError::Auth(format!(
                    "The SMART key does not match its algorithm {}",
                    alg.as_str()
                )));
            }
        })
    }
}

fn read_key_file(path: &str) -> Result<String, FhirError> {
    std::fs::read_to_string(path)
        .map_err(|e| FhirError::Config(format!("Could not read SMART key file '{path}': {e}")))
}

fn b64_field(key: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_LENIENT
        .decode(key.get(name)?.as_str()?.trim())
        .ok()
}

fn jwk_material(key: &Value, alg: Algorithm) -> Option<Material> {
    let kty = key.get("kty").and_then(Value::as_str)?;
    let crv = key.get("crv").and_then(Value::as_str);
    match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            if kty != "RSA" {
                return None;
            }
            let int = |name| b64_field(key, name).map(|b| BigUint::from_bytes_be(&b));
            let primes = match (int("p"), int("q")) {
                (Some(p), Some(q)) => vec![p, q],
                _ => Vec::new(),
            };
            RsaPrivateKey::from_components(int("n")?, int("e")?, int("d")?, primes)
                .ok()
                .map(|k| Material::Rsa(Box::new(k)))
        }
        Algorithm::ES256 if kty == "EC" && crv == Some("P-256") => {
            p256::SecretKey::from_slice(&b64_field(key, "d")?)
                .ok()
                .map(Material::P256)
        }
        Algorithm::ES384 if kty == "EC" && crv == Some("P-384") => {
            p384::SecretKey::from_slice(&b64_field(key, "d")?)
                .ok()
                .map(Material::P384)
        }
        _ => None,
    }
}

/// `(label, DER)` of each well-formed PEM block, in file order.
fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), String::new()));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some((begin, body)) = current.take()
                && begin == label
                && let Ok(der) = STANDARD.decode(body)
            {
                blocks.push((begin, der));
            }
        } else if let Some((_, body)) = current.as_mut() {
            // Encrypted keys carry `Proc-Type:` headers; they fail to decode and are skipped.
            body.push_str(line);
        }
    }
    blocks
}

fn thumbprint(material: &Material) -> String {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    match material {
        Material::Rsa(key) => rsa_thumbprint(&key.n().to_bytes_be(), &key.e().to_bytes_be()),
        Material::P256(key) => {
            let point = key.public_key().to_encoded_point(false);
            let (x, y) = (point.x().map(|x| b64(x)), point.y().map(|y| b64(y)));
            ec_thumbprint("P-256", &x.unwrap_or_default(), &y.unwrap_or_default())
        }
        Material::P384(key) => {
            let point = key.public_key().to_encoded_point(false);
            let (x, y) = (point.x().map(|x| b64(x)), point.y().map(|y| b64(y)));
            ec_thumbprint("P-384", &x.unwrap_or_default(), &y.unwrap_or_default())
        }
    }
}

/// RFC 7638: SHA-256 of the required members, lexicographically ordered, no whitespace.
fn rsa_thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn ec_thumbprint(crv: &str, x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::traits::PrivateKeyParts;
    use std::sync::OnceLock;

    /// RSA key generation is slow; one key serves every test.
    fn rsa_key() -> RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| {
            RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("generate RSA key")
        })
        .clone()
    }

    fn temp_file(name: &str, contents: &str) -> (tempdir::TempDir, String) {
        let dir = tempdir::TempDir::new();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write temp file");
        let path = path.to_string_lossy().into_owned();
        (dir, path)
    }

    /// A throwaway folder removed on drop (no extra dev-dependency for it).
    mod tempdir {
        use std::path::{Path, PathBuf};
        pub struct TempDir(PathBuf);
        impl TempDir {
            pub fn new() -> Self {
                let path =
                    std::env::temp_dir().join(format!("smart-fetch-keys-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&path).expect("create temp dir");
                TempDir(path)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn rsa_jwk(key: &RsaPrivateKey, alg: &str, kid: &str) -> Value {
        let b = |n: &BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
        json!({
            "kty": "RSA", "alg": alg, "kid": kid, "key_ops": ["sign"],
            "n": b(key.n()), "e": b(key.e()), "d": b(key.d()),
            "p": b(&key.primes()[0]), "q": b(&key.primes()[1]),
        })
    }

    fn split_jwt(jwt: &str) -> (Value, Value, Vec<u8>, String) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).expect("base64url");
        let header = serde_json::from_slice(&decode(parts[0])).expect("header json");
        let claims = serde_json::from_slice(&decode(parts[1])).expect("claims json");
        (
            header,
            claims,
            decode(parts[2]),
            format!("{}.{}", parts[0], parts[1]),
        )
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let n = URL_SAFE_NO_PAD.decode(n).expect("n");
        let e = URL_SAFE_NO_PAD.decode("AQAB").expect("e");
        assert_eq!(
            rsa_thumbprint(&n, &e),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn jwks_file_rsa_round_trip() {
        use rsa::signature::Verifier;
        let key = rsa_key();
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "nosign", "alg": "RS384", "key_ops": ["verify"]},
            {"kty": "RSA", "alg": "RS384", "key_ops": ["sign"]},
            rsa_jwk(&key, "RS384", "good"),
        ]});
        let (_dir, path) = temp_file("key.JWKS", &jwks.to_string());
        let smart = SmartKey::load(&path).expect("load jwks");
        assert_eq!(smart.kid(), "good");
        assert_eq!(smart.algorithm(), Algorithm::RS384);

        let jwt = smart
            .client_assertion("my-client", "https://auth/token", Some("https://jku"), 1000)
            .expect("sign");
        let (header, claims, signature, input) = split_jwt(&jwt);
        assert_eq!(
            header,
            json!({"alg": "RS384", "typ": "JWT", "kid": "good", "jku": "https://jku"})
        );
        assert_eq!(claims["iss"], "my-client");
        assert_eq!(claims["sub"], "my-client");
        assert_eq!(claims["aud"], "https://auth/token");
        assert_eq!(claims["exp"], 1299);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
        let verifier = rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key.to_public_key());
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).expect("sig");
        verifier
            .verify(input.as_bytes(), &signature)
            .expect("valid signature");
    }

    #[test]
    fn single_jwk_inline_and_rs256() {
        let key = rsa_key();
        let jwk = rsa_jwk(&key, "RS256", "k1");
        let smart = SmartKey::load(&jwk.to_string()).expect("inline jwk");
        assert_eq!(smart.algorithm(), Algorithm::RS256);
        let jwt = smart.client_assertion("c", "t", None, 0).expect("sign");
        let (header, ..) = split_jwt(&jwt);
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}));
    }

    #[test]
    fn ec_jwk_es384_round_trip() {
        use p384::ecdsa::signature::Verifier;
        let secret = p384::SecretKey::random(&mut rand::thread_rng());
        let jwk = json!({"keys": [{
            "kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "ec", "key_ops": ["sign"],
            "d": URL_SAFE_NO_PAD.encode(secret.to_bytes()),
        }]});
        let (_dir, path) = temp_file("key.jwk", &jwk.to_string());
        let smart = SmartKey::load(&path).expect("load");
        let jwt = smart.client_assertion("c", "t", None, 0).expect("sign");
        let (_, _, signature, input) = split_jwt(&jwt);
        assert_eq!(signature.len(), 96);
        let signature = p384::ecdsa::Signature::from_slice(&signature).expect("raw r||s");
        p384::ecdsa::VerifyingKey::from(secret.public_key())
            .verify(input.as_bytes(), &signature)
            .expect("valid signature");
    }

    #[test]
    fn pem_keys_of_each_kind() {
        use p256::ecdsa::signature::Verifier;
        let key = rsa_key();
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
        let (_d1, path) = temp_file("k.pem", &pkcs8);
        let smart = SmartKey::load(&path).expect("pkcs8 rsa");
        assert_eq!(smart.algorithm(), Algorithm::RS384);
        assert_eq!(
            smart.kid(),
            rsa_thumbprint(&key.n().to_bytes_be(), &key.e().to_bytes_be())
        );

        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).expect("pkcs1");
        let with_cert = format!(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{}",
            *pkcs1
        );
        let (_d2, path) = temp_file("k.PEM", &with_cert);
        assert_eq!(SmartKey::load(&path).expect("pkcs1").kid(), smart.kid());

        let ec = p256::SecretKey::random(&mut rand::thread_rng());
        let sec1 = ec.to_sec1_pem(LineEnding::LF).expect("sec1");
        let (_d3, path) = temp_file("ec.pem", &sec1);
        let smart = SmartKey::load(&path).expect("sec1 p256");
        assert_eq!(smart.algorithm(), Algorithm::ES256);
        let jwt = smart.client_assertion("c", "t", None, 0).expect("sign");
        let (_, _, signature, input) = split_jwt(&jwt);
        let signature = p256::ecdsa::Signature::from_slice(&signature).expect("raw r||s");
        p256::ecdsa::VerifyingKey::from(ec.public_key())
            .verify(input.as_bytes(), &signature)
            .expect("valid signature");

        let ec384 = p384::SecretKey::random(&mut rand::thread_rng());
        let pkcs8 = ec384.to_pkcs8_pem(LineEnding::LF).expect("pkcs8 ec");
        let (_d4, path) = temp_file("ec384.pem", &pkcs8);
        assert_eq!(
            SmartKey::load(&path).expect("p384").algorithm(),
            Algorithm::ES384
        );
    }

    #[test]
    fn key_errors() {
        let err = |v: &str| SmartKey::load(v).expect_err("should fail").to_string();
        assert_eq!(
            err("/nowhere/key.txt"),
            "Unrecognized private key file '/nowhere/key.txt' (must end in .jwks or .pem)."
        );
        assert!(
            err("/nowhere/key.jwks")
                .starts_with("Could not read SMART key file '/nowhere/key.jwks': ")
        );
        let (_d1, path) = temp_file("bad.jwks", "{not json");
        assert!(err(&path).starts_with(&format!("SMART key file '{path}' is not valid JSON: ")));
        let (_d2, path) = temp_file("empty.jwks", r#"{"keys": []}"#);
        assert_eq!(err(&path), JWKS_NO_KEY);
        let (_d3, path) = temp_file(
            "pub.pem",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        assert_eq!(err(&path), PEM_NO_KEY);
        let secret_inline = r#"{"keys": [{"kty":"oct","k":"c2VjcmV0","kid":"a","alg":"HS256","key_ops":["sign"]}]}"#;
        let message = err(secret_inline);
        assert!(message.starts_with(JWKS_NO_KEY));
        assert!(!message.contains("c2VjcmV0"));
        assert!(!err("{broken c2VjcmV0").contains("c2VjcmV0"));
    }
}
