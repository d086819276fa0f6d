//! The server's answer time: every non-admin request is answered `latency` after it arrived,
//! however long the handler took, so a benchmark's "20 ms" is the time a client really
//! waits. Changeable while the server runs (to imitate an EHR that slows down and recovers).
//! Does not decide what is answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// tokio's timer fires up to a millisecond late; the last stretch is slept on a blocking
/// thread with the OS's fine-grained timer instead.
const COARSE_SLACK: Duration = Duration::from_millis(2);

pub struct Latency {
    micros: AtomicU64,
}

impl Latency {
    pub fn new(latency: Duration) -> Self {
        Latency {
            micros: AtomicU64::new(as_micros(latency)),
        }
    }

    pub fn get(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    pub fn set(&self, latency: Duration) {
        self.micros.store(as_micros(latency), Ordering::Relaxed);
    }

    /// Waits until `latency` (read when the request arrived) has passed since `arrived`
    /// (at once if it already has).
    pub async fn hold(arrived: Instant, latency: Duration) {
        if latency.is_zero() {
            return;
        }
        let deadline = arrived + latency;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining > COARSE_SLACK {
            tokio::time::sleep(remaining - COARSE_SLACK).await;
        }
        let rest = deadline.saturating_duration_since(Instant::now());
        if !rest.is_zero() {
            // If the blocking pool is gone (shutdown), answering a little early is harmless.
            let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
        }
    }
}

fn as_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_at_the_latency_after_arrival() {
        let latency = Latency::new(Duration::from_millis(20));
        let arrived = Instant::now();
        let wanted = latency.get();
        std::thread::sleep(Duration::from_millis(5)); // the handler's own work
        Latency::hold(arrived, wanted).await;
        let took = arrived.elapsed();
        // Never early; the upper bound only catches a wait added on top of the work.
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_millis(200), "{took:?}");
        latency.set(Duration::ZERO);
        assert_eq!(latency.get(), Duration::ZERO);
    }
}
