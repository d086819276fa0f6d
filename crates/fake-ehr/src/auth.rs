//! Authorization of data routes (Open, Basic, Bearer, SMART) and the store of access tokens
//! issued by the token endpoint.

use crate::config::AuthMode;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Auth {
    mode: AuthMode,
    /// Issued SMART access tokens and when each expires.
    tokens: Mutex<HashMap<String, Instant>>,
}

impl Auth {
    pub fn new(mode: AuthMode) -> Self {
        Self {
            mode,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> &AuthMode {
        &self.mode
    }

    /// `Ok` when the request may read data; `Err` explains the 401.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), String> {
        let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let credentials = |scheme: &str| {
            header.and_then(|h| {
                let (s, rest) = h.split_once(' ')?;
                s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
            })
        };
        match &self.mode {
            AuthMode::Open => Ok(()),
            AuthMode::Basic { user, password } => {
                let expected = STANDARD.encode(format!("{user}:{password}"));
                match credentials("Basic") {
                    Some(given) if given == expected => Ok(()),
                    Some(_) => Err("wrong Basic credentials".into()),
                    None => Err("Basic authorization required".into()),
                }
            }
            AuthMode::Bearer { token } => match credentials("Bearer") {
                Some(given) if given == token => Ok(()),
                Some(_) => Err("unknown bearer token".into()),
                None => Err("Bearer authorization required".into()),
            },
            AuthMode::Smart { .. } => {
                let Some(given) = credentials("Bearer") else {
                    return Err("Bearer access token required".into());
                };
                let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
                match tokens.get(given) {
                    Some(expires) if *expires > Instant::now() => Ok(()),
                    Some(_) => Err("access token expired".into()),
                    None => Err("unknown access token".into()),
                }
            }
        }
    }

    /// Issues a new random access token valid for `lifetime`.
    pub fn issue(&self, lifetime: Duration) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Forget tokens that expired long ago so the map stays small.
        tokens.retain(|_, expires| *expires + Duration::from_secs(600) > now);
        tokens.insert(token.clone(), now + lifetime);
        token
    }
}
