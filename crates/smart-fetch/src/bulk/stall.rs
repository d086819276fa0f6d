//! How long a bulk file download may stall before it counts as dead.
//!
//! A healthy download of many gigabytes may take hours, so there is no limit on a
//! download's total time. What is limited is silence: the wait for the answer's headers
//! (from sending the request, connection included) and, once the body flows, the wait for
//! its next bytes. Either one longer than the stall limit ends that try as a network
//! failure, which is tried again like a broken connection.
//!
//! The limit is `--request-timeout` (default 120 s), the same silence the request engine
//! allows any answer: one knob for a user whose server thinks longer (and for tests, which
//! cannot wait minutes for a server that never answers).
//!
//! The wait for headers is watched from outside the request engine, through its observer
//! hooks: an attempt starts the clock, an answer (any status) or a failure stops it. That
//! keeps the engine's own waits (for a connection slot, a token, a retry pause) out of it.

use crate::fhir::{FhirError, RequestObserver};
use reqwest::header::HeaderMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The request observer of one download: passes every hook on to `inner` (the export
/// log) and keeps the time the current attempt has been waiting for its answer.
pub struct HeaderClock<'a> {
    inner: &'a dyn RequestObserver,
    waiting_since: Mutex<Option<Instant>>,
}

impl<'a> HeaderClock<'a> {
    pub fn new(inner: &'a dyn RequestObserver) -> Self {
        HeaderClock {
            inner,
            waiting_since: Mutex::new(None),
        }
    }

    fn set(&self, value: Option<Instant>) {
        *self.waiting_since.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// How long the attempt in flight has waited for its answer (zero between attempts).
    fn waited(&self) -> Duration {
        self.waiting_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |since| since.elapsed())
    }
}

impl RequestObserver for HeaderClock<'_> {
    fn attempt(&self, url: &str) {
        self.set(Some(Instant::now()));
        self.inner.attempt(url);
    }

    fn response(&self, status: u16, headers: &HeaderMap) {
        // A 401 may be followed at once by the same attempt with a renewed token, which
        // the engine does not report as a new attempt: its wait is timed too. (When no
        // resend follows, `failed` stops the clock.)
        self.set((status == 401).then(Instant::now));
        self.inner.response(status, headers);
    }

    fn failed(&self, error: &FhirError) {
        self.set(None);
        self.inner.failed(error);
    }

    fn retrying(&self, wait: Duration) {
        self.inner.retrying(wait);
    }
}

/// The answer had not come after `limit`.
#[derive(Debug)]
pub struct Stalled;

/// Run `request` (a request observed by `clock`), giving up once one of its attempts has
/// waited `limit` for an answer. Giving up drops the request, which closes its connection
/// and frees its slot of the connection budget.
pub async fn answer_within<T>(
    clock: &HeaderClock<'_>,
    limit: Duration,
    request: impl Future<Output = T>,
) -> Result<T, Stalled> {
    let step = (limit / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(step);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(request);
    loop {
        tokio::select! {
            answer = &mut request => return Ok(answer),
            _ = ticks.tick() => {
                if clock.waited() >= limit {
                    return Err(Stalled);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl RequestObserver for Quiet {}

    #[tokio::test]
    async fn gives_up_on_an_attempt_without_answer_only() {
        let quiet = Quiet;
        let clock = HeaderClock::new(&quiet);
        let limit = Duration::from_millis(100);
        // Waiting before the attempt (a queue for a slot, a retry pause) does not count.
        let slow_start = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            clock.attempt("u");
            clock.response(200, &HeaderMap::new());
            7
        };
        assert_eq!(answer_within(&clock, limit, slow_start).await.ok(), Some(7));
        let silent = async {
            clock.attempt("u");
            std::future::pending::<()>().await
        };
        let started = Instant::now();
        assert!(answer_within(&clock, limit, silent).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        // A 401, then the resend with a renewed token that never gets an answer.
        let resent = async {
            clock.attempt("u");
            clock.response(401, &HeaderMap::new());
            std::future::pending::<()>().await
        };
        assert!(answer_within(&clock, limit, resent).await.is_err());
    }
}
