//! Fault injection: which search/read/token requests fail, and how (429, 500, 502, 503, a
//! dropped connection, or a slow answer), derived from the seed and a request counter; the
//! kinds drawn can be narrowed (`Config::fault_kinds`, e.g. only 500 and 502). Also a
//! throttle window a test opens while the server runs: every data request arriving in it is
//! answered 429, as when an EHR pushes back on every connection at once.

use crate::outcome;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a slow fault holds the answer back.
pub const SLOW_DELAY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` (`Config::fault_retry_after`, 1 s by default).
    TooManyRequests,
    /// 500 with an OperationOutcome.
    Internal,
    /// 502 with an HTML body, as a proxy would send.
    BadGateway,
    /// 503 with `Retry-After`, like a 429.
    Unavailable,
    /// Headers promise a body that never completes; the connection is closed.
    Drop,
    /// The normal answer, after [`SLOW_DELAY`].
    Slow,
}

impl Fault {
    /// Every kind, in the order faults are drawn from (kept, so a seed draws the same
    /// faults it always did when every kind is on).
    pub const ALL: [Fault; 6] = [
        Fault::TooManyRequests,
        Fault::Internal,
        Fault::BadGateway,
        Fault::Unavailable,
        Fault::Drop,
        Fault::Slow,
    ];

    /// The name used by `--fault-kinds` and in `Stats::fault_kinds`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::TooManyRequests => "429",
            Fault::Internal => "500",
            Fault::BadGateway => "502",
            Fault::Unavailable => "503",
            Fault::Drop => "drop",
            Fault::Slow => "slow",
        }
    }

    /// A kind by its [`name`](Self::name).
    pub fn parse(name: &str) -> Result<Fault, String> {
        let name = name.trim();
        Fault::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault kind {name:?} (known: {})", known.join(", "))
            })
    }
}

pub struct Faults {
    seed: u64,
    /// Rate, kinds and `Retry-After`: set at start, changed by `/__admin/faults`.
    settings: RwLock<FaultSettings>,
    counter: AtomicU64,
    /// Data requests arriving before this instant are answered 429 with this
    /// `Retry-After` (`Server::throttle`).
    throttle: Mutex<Option<(Instant, u64)>>,
}

/// What faults a server injects.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSettings {
    /// Fraction (0.0..=1.0) of eligible requests that fail.
    pub rate: f64,
    /// The kinds drawn from (never empty).
    pub kinds: Vec<Fault>,
    /// `Retry-After` seconds of 429 and 503 answers.
    pub retry_after: u64,
}

impl FaultSettings {
    /// `kinds` empty means every kind; a rate outside 0..=1 (or NaN) is brought into it.
    pub fn new(rate: f64, kinds: &[Fault], retry_after: u64) -> Self {
        let mut chosen: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|f| kinds.contains(f))
            .collect();
        if chosen.is_empty() {
            chosen = Fault::ALL.to_vec();
        }
        FaultSettings {
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
            kinds: chosen,
            retry_after,
        }
    }
}

impl Faults {
    /// `kinds` empty means every kind.
    pub fn new(seed: u64, rate: f64, kinds: &[Fault], retry_after: u64) -> Self {
        Self {
            seed,
            settings: RwLock::new(FaultSettings::new(rate, kinds, retry_after)),
            counter: AtomicU64::new(0),
            throttle: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> FaultSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace what is given, keep the rest (`kinds` empty: every kind).
    pub fn set(&self, rate: Option<f64>, kinds: Option<&[Fault]>, retry_after: Option<u64>) {
        let mut settings = self.settings.write().unwrap_or_else(|e| e.into_inner());
        *settings = FaultSettings::new(
            rate.unwrap_or(settings.rate),
            kinds.unwrap_or(&settings.kinds),
            retry_after.unwrap_or(settings.retry_after),
        );
    }

    /// `Retry-After` seconds of this server's 429 and 503 faults.
    pub fn retry_after(&self) -> u64 {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .retry_after
    }

    /// Answer every data request arriving within `window` from now with 429 and
    /// `Retry-After: retry_after` (a zero window ends an open one).
    pub fn throttle_for(&self, window: Duration, retry_after: u64) {
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        *throttle = (!window.is_zero()).then(|| (Instant::now() + window, retry_after));
    }

    /// The `Retry-After` to answer with when a request arriving at `arrived` falls in the
    /// throttle window.
    pub fn throttled(&self, arrived: Instant) -> Option<u64> {
        let throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        throttle.and_then(|(until, seconds)| (arrived < until).then_some(seconds))
    }

    /// Draws the fate of the next eligible request.
    pub fn next(&self) -> Option<Fault> {
        let settings = self.settings.read().unwrap_or_else(|e| e.into_inner());
        if settings.rate <= 0.0 {
            return None;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let h = crate::data::mix(crate::data::mix(self.seed ^ 0xFA17) ^ n);
        let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= settings.rate {
            return None;
        }
        let kind = crate::data::mix(h) % settings.kinds.len().max(1) as u64;
        settings.kinds.get(kind as usize).copied()
    }
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The response of a fault (not for [`Fault::Slow`], which answers normally); 429 and 503
/// say `Retry-After: retry_after`.
pub fn response(fault: Fault, retry_after: u64) -> Response {
    match fault {
        Fault::TooManyRequests => with_retry_after(
            outcome::error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many requests (injected fault)",
            ),
            retry_after,
        ),
        Fault::Internal | Fault::Slow => outcome::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "Internal server error (injected fault)",
        ),
        Fault::BadGateway => {
            let mut r = Response::new(Body::from(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            ));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        Fault::Unavailable => with_retry_after(
            outcome::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "Service unavailable (injected fault)",
            ),
            retry_after,
        ),
        Fault::Drop => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"resourceType\":\"Bundle\",")),
                Err(std::io::Error::other("injected dropped connection")),
            ];
            let mut r = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(outcome::FHIR_JSON),
            );
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("4096"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let never = Faults::new(1, 0.0, &[], 1);
        assert!((0..100).all(|_| never.next().is_none()));
        let always = Faults::new(1, 1.0, &[], 1);
        let kinds: Vec<Fault> = (0..60).filter_map(|_| always.next()).collect();
        assert_eq!(kinds.len(), 60);
        for k in Fault::ALL {
            assert!(kinds.contains(&k), "{k:?} never drawn");
        }
        let some = Faults::new(1, 0.25, &[], 1);
        let hits = (0..4000).filter(|_| some.next().is_some()).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn chosen_kinds_only() {
        let only = Faults::new(1, 1.0, &[Fault::Internal, Fault::BadGateway], 1);
        let kinds: Vec<Fault> = (0..200).filter_map(|_| only.next()).collect();
        assert_eq!(kinds.len(), 200);
        assert!(kinds.contains(&Fault::Internal) && kinds.contains(&Fault::BadGateway));
        assert!(
            kinds
                .iter()
                .all(|k| matches!(k, Fault::Internal | Fault::BadGateway))
        );
        // The same requests fail as with every kind on; only how they fail changes.
        let all = Faults::new(7, 0.1, &[], 1);
        let some = Faults::new(7, 0.1, &[Fault::Internal], 1);
        for _ in 0..1000 {
            assert_eq!(all.next().is_some(), some.next().is_some());
        }
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()), Ok(f));
        }
        assert!(Fault::parse("404").is_err());
    }

    #[test]
    fn throttle_window() {
        let faults = Faults::new(1, 0.0, &[], 1);
        assert_eq!(faults.throttled(Instant::now()), None);
        faults.throttle_for(Duration::from_secs(60), 2);
        assert_eq!(faults.throttled(Instant::now()), Some(2));
        assert_eq!(
            faults.throttled(Instant::now() + Duration::from_secs(61)),
            None
        );
        faults.throttle_for(Duration::ZERO, 2);
        assert_eq!(faults.throttled(Instant::now()), None);
    }
}
