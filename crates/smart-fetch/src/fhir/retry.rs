//! When to try a request again and how long to wait first: exponential backoff with jitter
//! for one request's bad luck, the server's `Retry-After` (read here, and only here, for the
//! whole code base) within a cap when it pushes back. Pure timing logic; the loop lives in
//! the client, the shared pause in the budget.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How persistent one kind of request is. Data requests ride out a bad couple of minutes of
/// the server; startup requests (metadata, SMART discovery, token) fail within seconds on a
/// dead server.
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

/// Shortest pause a `Retry-After` leads to, so `Retry-After: 0` on every answer does not
/// become a busy loop.
pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(100);

/// Integer `Retry-After` values above this are absolute Unix times, not durations (it is
/// about 2001-09-09; no server asks for a 30-year pause; one bulk reference server sends
/// moments). Above a thousand times this, milliseconds since the epoch.
const EPOCH_THRESHOLD: f64 = 1e9;

impl RetryPolicy {
    /// Searches, downloads, `single`: ~0.25 s, 0.5 s, 1 s … 60 s, 10 tries (about two
    /// minutes in all). A 500 or a dropped connection is usually one request's bad luck, so
    /// the first retry comes soon (a 1 s first wait kept a crawl's workers asleep a third of
    /// the time at 5 % faults); a server still failing after that gets the long waits.
    pub fn data() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(250),
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

    /// Wait after failed try number `attempt` (1-based) of one request's bad luck (a 5xx
    /// but 503, a broken connection): the server's `Retry-After` when it gave one (capped),
    /// else our own backoff.
    pub fn wait_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => self.honoured(asked),
            None => jittered(self.backoff(attempt), self.max_delay),
        }
    }

    /// Wait after a 429 or 503 (the server pushing back on everyone): what it asked for
    /// (capped, at least `MIN_RETRY_AFTER`), else four times the backoff of `attempt`
    /// (1 s, 2 s, 4 s … with the data policy) since a server under load needs more than
    /// a quarter of a second.
    pub fn wait_after_throttle(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => self.honoured(asked),
            None => jittered(self.backoff(attempt.saturating_add(2)), self.max_delay),
        }
    }

    fn honoured(&self, asked: Duration) -> Duration {
        asked
            .max(MIN_RETRY_AFTER)
            .min(self.retry_after_cap.max(MIN_RETRY_AFTER))
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

/// The pause an answer's `Retry-After` header asks for, as of now, at most `cap`; `None`
/// when there is none or it is unusable (see [`parse_retry_after`]).
pub fn retry_after_of(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now(), cap)
}

/// The pause a `Retry-After` value asks for, as of `now`, from zero to `cap`: seconds
/// (fractions too: `1.5` is one and a half seconds), an HTTP date, or an absolute Unix time
/// in seconds or milliseconds (digits only, above 10⁹). Past moments and negative numbers
/// are zero. `None` when unusable (not a number or date, NaN), so the caller uses its own
/// delay. Every number is brought into range before it becomes a `Duration`, which panics on
/// values it cannot hold (`99999999999999999999`, `1e300`, `inf`).
pub fn parse_retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    // Whole numbers too: `99999999999999999999` is beyond every integer type.
    if let Ok(n) = value.parse::<f64>() {
        if n.is_nan() {
            return None;
        }
        // Only digits can be a moment: `1e12` or `1.5e9` are plain (if absurd) pauses.
        let integer = value.bytes().all(|b| b.is_ascii_digit());
        let seconds = if integer && n > EPOCH_THRESHOLD * 1000.0 {
            n / 1000.0 - now_secs
        } else if integer && n > EPOCH_THRESHOLD {
            n - now_secs
        } else {
            n
        };
        return Some(Duration::from_secs_f64(
            seconds.clamp(0.0, cap.as_secs_f64()),
        ));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(300);

    fn secs(value: &str) -> Option<f64> {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        parse_retry_after(value, now, CAP).map(|d| d.as_secs_f64())
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(secs("120"), Some(120.0));
        assert_eq!(secs(" 7 "), Some(7.0));
        assert_eq!(secs("-3"), Some(0.0));
        assert_eq!(secs("1.5"), Some(1.5));
        assert_eq!(secs("0.25"), Some(0.25));
        assert_eq!(secs("1700000042"), Some(42.0));
        assert_eq!(secs("1600000000"), Some(0.0));
        assert_eq!(secs("1700000042000"), Some(42.0));
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(secs(&later), Some(30.0));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(secs(&earlier), Some(0.0));
        assert_eq!(secs("soon"), None);

        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_of(&headers, CAP), None);
        headers.insert(RETRY_AFTER, "1.5".parse().expect("header value"));
        assert_eq!(
            retry_after_of(&headers, CAP),
            Some(Duration::from_millis(1500))
        );
        headers.insert(RETRY_AFTER, "7".parse().expect("header value"));
        assert_eq!(retry_after_of(&headers, CAP), Some(Duration::from_secs(7)));
    }

    #[test]
    fn absurd_retry_after_values_stay_in_range() {
        let max = CAP.as_secs_f64();
        // Each of these panicked in `Duration::from_secs_f64` or overflowed before.
        for huge in [
            "99999999999999999999",
            "1e300",
            "1.7976931348623157e308",
            "inf",
            "+Infinity",
            "9223372036854775807",
            "18446744073709551616",
            "1e20",
            "400",
        ] {
            assert_eq!(secs(huge), Some(max), "{huge}");
        }
        for nothing in [
            "-1e300",
            "-inf",
            "-99999999999999999999",
            "-0",
            "0",
            "1e-300",
        ] {
            assert_eq!(secs(nothing), Some(0.0), "{nothing}");
        }
        for unusable in [
            "NaN",
            "nan",
            "",
            "1e",
            "0x10",
            "Fri, 31 Dec 99999 23:59:59 GMT",
        ] {
            assert_eq!(secs(unusable), None, "{unusable}");
        }
        assert_eq!(secs("Fri, 31 Dec 9999 23:59:59 GMT"), Some(max));
        assert_eq!(secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        // A moment far in the future (seconds and milliseconds since the epoch).
        assert_eq!(secs("99999999999"), Some(max));
        assert_eq!(secs("99999999999999"), Some(max));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let policy = RetryPolicy::data();
        for attempt in 1..=12 {
            let expected =
                Duration::from_millis(250 << (attempt - 1).min(10)).min(policy.max_delay);
            let wait = policy.wait_after(attempt, None);
            assert!(wait >= expected.mul_f64(0.79), "{attempt}: {wait:?}");
            assert!(wait <= expected.mul_f64(1.21).min(policy.max_delay));
        }
        // Tries 2 to 10 wait about two minutes in all.
        let total: Duration = (1..policy.max_attempts).map(|a| policy.backoff(a)).sum();
        assert!(
            (Duration::from_secs(100)..Duration::from_secs(150)).contains(&total),
            "{total:?}"
        );
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

    #[test]
    fn throttle_waits() {
        let policy = RetryPolicy::data();
        assert_eq!(
            policy.wait_after_throttle(1, Some(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
        // `Retry-After: 0` is not a busy loop.
        assert_eq!(
            policy.wait_after_throttle(1, Some(Duration::ZERO)),
            MIN_RETRY_AFTER
        );
        // Without one: about a second, then two.
        let first = policy.wait_after_throttle(1, None);
        assert!(
            (Duration::from_millis(790)..=Duration::from_millis(1210)).contains(&first),
            "{first:?}"
        );
        let second = policy.wait_after_throttle(2, None);
        assert!(second >= Duration::from_millis(1590), "{second:?}");
    }
}
