//! The connection budget shared by every request of a process (and later by several export
//! groups): at most `max` requests in flight, fewer while the server pushes back (429/503)
//! or slows down (answers take much longer than they used to), climbing back when it is
//! healthy. A value passed around, never a global.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Successes needed per step of recovery, per unit of the current limit: a server that just
/// pushed back gets a fair stretch of calm before we ask more of it.
const RECOVERY_FACTOR: usize = 4;

/// Weight of the newest answer in the running latency (an exponential average).
const LATENCY_WEIGHT: f64 = 0.1;
/// The baseline is the fastest recent answer; it forgets a faster past by this factor per
/// answer (about doubling over 350 answers), so a server that stays slow becomes the new
/// normal and the limit climbs back to probe it.
const BASELINE_DRIFT: f64 = 1.002;
/// "Slow" means the running latency (and the latest answer) exceed this many baselines plus
/// `SLOW_MARGIN`. The margin keeps scheduling jitter on fast servers (a millisecond
/// becoming twenty on a busy machine) from counting as a server in trouble.
const SLOW_FACTOR: f64 = 2.0;
const SLOW_MARGIN: Duration = Duration::from_millis(50);

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
    /// Fastest recent answer, seconds (slowly forgotten, see `BASELINE_DRIFT`).
    baseline: Option<f64>,
    /// Running average of answer times, seconds.
    recent: Option<f64>,
    /// Answers since the limit was last cut for latency.
    since_cut: usize,
    /// Attempts sent through the budget, ever (for the request rate).
    requests: u64,
}

/// What the budget is doing, for progress lines and `--verbose`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetStatus {
    /// Connections allowed now.
    pub limit: usize,
    /// `--max-connections`.
    pub max: usize,
    /// Requests sent so far.
    pub requests: u64,
    /// Running average of answer times.
    pub latency: Option<Duration>,
    /// What answers took when the server was at its fastest lately.
    pub baseline: Option<Duration>,
}

impl BudgetStatus {
    /// `3/5 connections, 120 requests/s, answers in 21 ms` for progress lines.
    pub fn describe(&self, requests_per_second: f64) -> String {
        let mut text = format!(
            "{}/{} connections, {requests_per_second:.0} requests/s",
            self.limit, self.max
        );
        if let Some(latency) = self.latency {
            text.push_str(&format!(
                ", answers in {:.0} ms",
                latency.as_secs_f64() * 1e3
            ));
        }
        text
    }
}

/// Requests per second over about the last ten seconds, from samples of the budget's
/// request counter taken whenever a progress line is drawn.
pub struct RequestRate {
    samples: VecDeque<(std::time::Instant, u64)>,
}

impl Default for RequestRate {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestRate {
    const WINDOW: Duration = Duration::from_secs(10);

    pub fn new() -> Self {
        RequestRate {
            samples: VecDeque::new(),
        }
    }

    /// Record the counter now; the rate since the oldest sample still in the window (0
    /// until time has passed).
    pub fn sample(&mut self, requests: u64) -> f64 {
        let now = std::time::Instant::now();
        self.samples.push_back((now, requests));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now - *t >= Self::WINDOW)
        {
            self.samples.pop_front();
        }
        let Some(&(then, before)) = self.samples.front() else {
            return 0.0;
        };
        let seconds = (now - then).as_secs_f64();
        if seconds < 0.01 {
            return 0.0;
        }
        requests.saturating_sub(before) as f64 / seconds
    }
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
                    baseline: None,
                    recent: None,
                    since_cut: 0,
                    requests: 0,
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
                self.inner.lock().requests += 1;
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
        self.shrink(&mut state, new_limit);
    }

    fn shrink(&self, state: &mut State, new_limit: usize) {
        let remove = state.limit - new_limit;
        state.limit = new_limit;
        let forgotten = self.inner.semaphore.forget_permits(remove);
        state.debt += remove - forgotten;
    }

    /// A successful answer that took `latency`. A server answering much slower than its
    /// recent best loses one connection per round of answers (every `2 × limit` answers,
    /// so each cut can show before the next), down to one; otherwise the limit climbs back
    /// towards the ceiling. Returns the new limit when it changed.
    pub fn healthy(&self, latency: Duration) -> Option<usize> {
        let mut state = self.inner.lock();
        let sample = latency.as_secs_f64();
        let baseline = state
            .baseline
            .map_or(sample, |b| (b * BASELINE_DRIFT).min(sample));
        let recent = state
            .recent
            .map_or(sample, |r| r + LATENCY_WEIGHT * (sample - r));
        state.baseline = Some(baseline);
        state.recent = Some(recent);
        state.since_cut = state.since_cut.saturating_add(1);
        let slow_above = baseline * SLOW_FACTOR + SLOW_MARGIN.as_secs_f64();
        if recent > slow_above && sample > slow_above {
            state.successes = 0;
            if state.limit > 1 && state.since_cut >= 2 * state.limit {
                state.since_cut = 0;
                let new_limit = state.limit - 1;
                self.shrink(&mut state, new_limit);
                return Some(new_limit);
            }
            return None;
        }
        if state.limit >= self.inner.max {
            return None;
        }
        state.successes += 1;
        if state.successes < state.limit * RECOVERY_FACTOR {
            return None;
        }
        state.successes = 0;
        state.limit += 1;
        if state.debt > 0 {
            state.debt -= 1;
        } else {
            self.inner.semaphore.add_permits(1);
        }
        Some(state.limit)
    }

    /// Limit, requests so far and answer times, at this moment.
    pub fn status(&self) -> BudgetStatus {
        let state = self.inner.lock();
        let duration = |s: Option<f64>| s.map(Duration::from_secs_f64);
        BudgetStatus {
            limit: state.limit,
            max: self.inner.max,
            requests: state.requests,
            latency: duration(state.recent),
            baseline: duration(state.baseline),
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

    const FAST: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn backs_off_when_answers_slow_down_and_climbs_back() {
        let budget = Budget::new(4);
        for _ in 0..50 {
            assert_eq!(budget.healthy(FAST), None);
        }
        assert_eq!(budget.current_limit(), 4);
        // A lone slow answer is jitter, not a slowdown.
        assert_eq!(budget.healthy(Duration::from_millis(400)), None);
        for _ in 0..20 {
            budget.healthy(FAST);
        }
        assert_eq!(budget.current_limit(), 4);
        // The server now takes half a second: one connection less per round of answers.
        let slow = Duration::from_millis(500);
        let mut cuts = Vec::new();
        for _ in 0..40 {
            if let Some(limit) = budget.healthy(slow) {
                cuts.push(limit);
            }
        }
        assert_eq!(cuts, [3, 2, 1]);
        assert_eq!(budget.current_limit(), 1);
        let status = budget.status();
        assert!(status.latency.expect("latency") > Duration::from_millis(300));
        // The baseline forgets the fast past only slowly.
        let baseline = status.baseline.expect("baseline");
        assert!(baseline >= FAST && baseline < Duration::from_millis(25));
        // Fast again: the limit climbs back, one step per 4 × limit healthy answers.
        let mut climbs = Vec::new();
        for _ in 0..200 {
            if let Some(limit) = budget.healthy(FAST) {
                climbs.push(limit);
            }
        }
        assert_eq!(climbs, [2, 3, 4]);
        assert_eq!(budget.inner.semaphore.available_permits(), 4);
    }

    #[tokio::test]
    async fn jitter_of_a_fast_server_is_not_a_slowdown() {
        let budget = Budget::new(5);
        for i in 0..1000u64 {
            // 0.3 ms answers with 40 ms scheduling hiccups now and then.
            let ms = if i % 7 == 0 { 40.0 } else { 0.3 };
            budget.healthy(Duration::from_secs_f64(ms / 1000.0));
        }
        assert_eq!(budget.current_limit(), 5);
    }

    #[test]
    fn request_rate_over_the_window() {
        let mut rate = RequestRate::new();
        let start = std::time::Instant::now();
        assert_eq!(rate.sample(0), 0.0);
        std::thread::sleep(Duration::from_millis(100));
        let r = rate.sample(50);
        // 50 requests over the time that really passed (a busy machine sleeps longer).
        let slowest = 50.0 / start.elapsed().as_secs_f64();
        assert!(r >= slowest * 0.99 && r <= 500.0, "{r}");
        let status = BudgetStatus {
            limit: 3,
            max: 5,
            requests: 50,
            latency: Some(Duration::from_millis(21)),
            baseline: None,
        };
        assert_eq!(
            status.describe(120.4),
            "3/5 connections, 120 requests/s, answers in 21 ms"
        );
    }

    #[tokio::test]
    async fn counts_requests() {
        let budget = Budget::new(2);
        drop(budget.acquire().await);
        drop(budget.acquire().await);
        assert_eq!(budget.status().requests, 2);
        assert_eq!(budget.status().max, 2);
    }

    #[tokio::test]
    async fn recovers_gradually() {
        let budget = Budget::new(3);
        budget.throttled(Duration::ZERO);
        assert_eq!(budget.current_limit(), 1);
        for _ in 0..3 {
            budget.healthy(FAST);
        }
        assert_eq!(budget.current_limit(), 1);
        budget.healthy(FAST);
        assert_eq!(budget.current_limit(), 2);
        for _ in 0..8 {
            budget.healthy(FAST);
        }
        assert_eq!(budget.current_limit(), 3);
        for _ in 0..100 {
            budget.healthy(FAST);
        }
        assert_eq!(budget.current_limit(), 3);
        assert_eq!(budget.inner.semaphore.available_permits(), 3);
    }
}
