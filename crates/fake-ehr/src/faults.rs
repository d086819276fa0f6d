//! Fault injection: which search/read/token requests fail, and how (429, 500, 502, 503, a
//! dropped connection, or a slow answer), derived from the seed and a request counter.

use crate::outcome;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a slow fault holds the answer back.
pub const SLOW_DELAY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// 500 with an OperationOutcome.
    Internal,
    /// 502 with an HTML body, as a proxy would send.
    BadGateway,
    /// 503 with `Retry-After: 1`.
    Unavailable,
    /// Headers promise a body that never completes; the connection is closed.
    Drop,
    /// The normal answer, after [`SLOW_DELAY`].
    Slow,
}

const KINDS: [Fault; 6] = [
    Fault::TooManyRequests,
    Fault::Internal,
    Fault::BadGateway,
    Fault::Unavailable,
    Fault::Drop,
    Fault::Slow,
];

pub struct Faults {
    seed: u64,
    rate: f64,
    counter: AtomicU64,
}

impl Faults {
    pub fn new(seed: u64, rate: f64) -> Self {
        Self {
            seed,
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
            counter: AtomicU64::new(0),
        }
    }

    /// Draws the fate of the next eligible request.
    pub fn next(&self) -> Option<Fault> {
        if self.rate <= 0.0 {
            return None;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let h = crate::data::mix(crate::data::mix(self.seed ^ 0xFA17) ^ n);
        let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= self.rate {
            return None;
        }
        let kind = crate::data::mix(h) % KINDS.len() as u64;
        Some(KINDS[kind as usize])
    }
}

fn retry_after(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The response of a fault (not for [`Fault::Slow`], which answers normally).
pub fn response(fault: Fault) -> Response {
    match fault {
        Fault::TooManyRequests => retry_after(outcome::error(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many requests (injected fault)",
        )),
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
        Fault::Unavailable => retry_after(outcome::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "Service unavailable (injected fault)",
        )),
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
        let never = Faults::new(1, 0.0);
        assert!((0..100).all(|_| never.next().is_none()));
        let always = Faults::new(1, 1.0);
        let kinds: Vec<Fault> = (0..60).filter_map(|_| always.next()).collect();
        assert_eq!(kinds.len(), 60);
        for k in KINDS {
            assert!(kinds.contains(&k), "{k:?} never drawn");
        }
        let some = Faults::new(1, 0.25);
        let hits = (0..4000).filter(|_| some.next().is_some()).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
