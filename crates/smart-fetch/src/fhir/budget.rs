//! The connection budget shared by every request of a process (and later by several export
//! groups): at most `max` requests in flight, fewer while the server pushes back (429/503),
//! climbing back when it is healthy. A value passed around, never a global.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Successes needed per step of recovery, per unit of the current limit: a server that just
/// pushed back gets a fair stretch of calm before we ask more of it.
const RECOVERY_FACTOR: usize = 4;

#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    max: usize,
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
}

struct State {
    limit: usize,
    /// Permits handed out before a shrink that must vanish when they come back, because
    /// the semaphore cannot take back permits it has lent.
    debt: usize,
    successes: usize,
    paused_until: Option<Instant>,
}

/// One slot of the budget; held for one HTTP attempt and given back on drop.
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    inner: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut state = self.inner.lock();
        if state.debt > 0 {
            state.debt -= 1;
            permit.forget();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Budget {
    pub fn new(max_connections: usize) -> Self {
        let max = max_connections.max(1);
        Budget {
            inner: Arc::new(Inner {
                max,
                semaphore: Arc::new(Semaphore::new(max)),
                state: Mutex::new(State {
                    limit: max,
                    debt: 0,
                    successes: 0,
                    paused_until: None,
                }),
            }),
        }
    }

    /// Wait for a slot (and for any shared pause to end).
    pub async fn acquire(&self) -> Permit {
        loop {
            self.wait_for_pause().await;
            let Ok(permit) = self.inner.semaphore.clone().acquire_owned().await else {
                // The semaphore is never closed; if it were, running unthrottled beats hanging.
                return Permit {
                    permit: None,
                    inner: self.inner.clone(),
                };
            };
            let permit = Permit {
                permit: Some(permit),
                inner: self.inner.clone(),
            };
            // A pause may have begun while we queued for the slot: honour it too.
            if self.pause_remaining().is_none() {
                return permit;
            }
        }
    }

    /// The server said slow down: pause everyone for `retry_after` and shrink the limit.
    pub fn throttled(&self, retry_after: Duration) {
        let now = Instant::now();
        let until = now + retry_after;
        let mut state = self.inner.lock();
        let already_paused = state.paused_until.is_some_and(|p| p > now);
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
        state.successes = 0;
        // Requests sent before the pause come back throttled together; that is one signal,
        // not many, so the limit halves once per pause.
        if already_paused || state.limit <= 1 {
            return;
        }
        let new_limit = (state.limit / 2).max(1);
        let remove = state.limit - new_limit;
        state.limit = new_limit;
        let forgotten = self.inner.semaphore.forget_permits(remove);
        state.debt += remove - forgotten;
    }

    /// A healthy answer: let the limit climb back towards the ceiling.
    pub fn healthy(&self) {
        let mut state = self.inner.lock();
        if state.limit >= self.inner.max {
            return;
        }
        state.successes += 1;
        if state.successes < state.limit * RECOVERY_FACTOR {
            return;
        }
        state.successes = 0;
        state.limit += 1;
        if state.debt > 0 {
            state.debt -= 1;
        } else {
            self.inner.semaphore.add_permits(1);
        }
    }

    /// Current allowed concurrency (for progress and `--verbose`).
    pub fn current_limit(&self) -> usize {
        self.inner.lock().limit
    }

    /// The ceiling given at construction (`--max-connections`).
    pub fn max(&self) -> usize {
        self.inner.max
    }

    fn pause_remaining(&self) -> Option<Instant> {
        let until = self.inner.lock().paused_until?;
        (until > Instant::now()).then_some(until)
    }

    async fn wait_for_pause(&self) {
        while let Some(until) = self.pause_remaining() {
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_concurrency_and_shrinks_with_lent_permits() {
        let budget = Budget::new(4);
        let held: Vec<Permit> = futures_util::future::join_all((0..4).map(|_| budget.acquire()))
            .await
            .into_iter()
            .collect();
        assert_eq!(budget.inner.semaphore.available_permits(), 0);
        budget.throttled(Duration::from_millis(1));
        assert_eq!(budget.current_limit(), 2);
        drop(held);
        // Two of the four lent permits were forgotten on return.
        assert_eq!(budget.inner.semaphore.available_permits(), 2);
    }

    #[tokio::test]
    async fn throttle_pauses_everyone_and_halves_once_per_pause() {
        let budget = Budget::new(8);
        budget.throttled(Duration::from_millis(80));
        budget.throttled(Duration::from_millis(80));
        assert_eq!(budget.current_limit(), 4);
        let start = Instant::now();
        let _permit = budget.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(70));
        budget.throttled(Duration::ZERO);
        assert_eq!(budget.current_limit(), 2);
    }

    #[tokio::test]
    async fn recovers_gradually() {
        let budget = Budget::new(3);
        budget.throttled(Duration::ZERO);
        assert_eq!(budget.current_limit(), 1);
        for _ in 0..3 {
            budget.healthy();
        }
        assert_eq!(budget.current_limit(), 1);
        budget.healthy();
        assert_eq!(budget.current_limit(), 2);
        for _ in 0..8 {
            budget.healthy();
        }
        assert_eq!(budget.current_limit(), 3);
        for _ in 0..100 {
            budget.healthy();
        }
        assert_eq!(budget.current_limit(), 3);
        assert_eq!(budget.inner.semaphore.available_permits(), 3);
    }
}
