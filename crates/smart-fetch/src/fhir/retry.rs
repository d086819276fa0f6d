//! When to try a request again and how long to wait first: exponential backoff with jitter,
//! `Retry-After` honoured within a cap. Pure timing logic; the loop lives in the client.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime};

/// How persistent one kind of request is. Data requests ride out a bad minute of the server;
/// startup requests (metadata, SMART discovery, token) fail within seconds on a dead server.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total tries, the first included.
    pub max_attempts: u32,
    /// Wait before the second try; doubles for each later one.
    pub base_delay: Duration,
    /// Ceiling of one computed wait.
    pub max_delay: Duration,
    /// Ceiling of a wait the server asked for with `Retry-After`.
    pub retry_after_cap: Duration,
}

impl RetryPolicy {
    /// Searches, downloads, `single`: ~1 s, 2 s, 4 s … 60 s, 8 tries (about 2 minutes).
    pub fn data() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            retry_after_cap: Duration::from_secs(120),
        }
    }

    /// Metadata, SMART configuration and token requests: ~1 s then 2 s, 3 tries.
    pub fn startup() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(2),
            retry_after_cap: Duration::from_secs(120),
        }
    }

    /// Wait after failed try number `attempt` (1-based): the server's `Retry-After` when it
    /// gave one (capped), else our own backoff.
    pub fn wait_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => asked.min(self.retry_after_cap),
            None => jittered(self.backoff(attempt), self.max_delay),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::data()
    }
}

/// ±20 %: enough that workers throttled together do not all come back in the same instant.
fn jittered(delay: Duration, cap: Duration) -> Duration {
    use rand::Rng;
    let factor: f64 = rand::thread_rng().gen_range(0.8..1.2);
    delay.mul_f64(factor).min(cap)
}

/// `Retry-After` as integer seconds (negative → 0) or an HTTP date (past → 0); anything
/// else → `None`, so the caller falls back to its own delay.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after_value(value, SystemTime::now())
}

fn parse_retry_after_value(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(Duration::from_secs(seconds.max(0).unsigned_abs()));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after_value("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after_value("-5", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after_value(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after_value(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after_value("soon", now), None);
        assert_eq!(parse_retry_after_value("1.5", now), None);

        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "7".parse().expect("header value"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let policy = RetryPolicy::data();
        for attempt in 1..=10 {
            let expected = Duration::from_secs(1 << (attempt - 1).min(6)).min(policy.max_delay);
            let wait = policy.wait_after(attempt, None);
            assert!(wait >= expected.mul_f64(0.79), "{attempt}: {wait:?}");
            assert!(wait <= expected.mul_f64(1.21).min(policy.max_delay));
        }
        assert_eq!(
            policy.wait_after(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(120)
        );
        assert_eq!(
            policy.wait_after(5, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(RetryPolicy::startup().wait_after(2, None) <= Duration::from_secs(2));
    }
}
