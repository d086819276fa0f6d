//! The connection budget shared by every request of a process (and by the export groups of
//! a batch): at most `max` requests in flight, fewer while the server pushes back (429/503:
//! everyone pauses for the `Retry-After`, overlapping pauses count once), slows down (its
//! time to first byte is well above what it used to be) or is sick (a large share of recent
//! requests failed with 500/502/504 or a broken connection), climbing back as soon as
//! answers are healthy. One request's bad luck (a lone 500) costs that request its backoff,
//! never the others their pace. A value passed around, never a global.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Successes needed per step of recovery, per unit of the current limit: one round of
/// healthy answers at the current pace before we ask more of the server. It was four rounds;
/// with 5 % injected faults (a 429 every 60 answers or so) the crawl then spent half its time
/// below the ceiling.
const RECOVERY_FACTOR: usize = 1;

/// Outcomes (answers and transient failures) kept to judge whether the server is sick.
const OUTCOME_WINDOW: usize = 40;
/// Failures among the last `OUTCOME_WINDOW` outcomes that make the server sick: 30 %. At
/// 5 % of failures, as bad luck would have it, a window reaches this about once in a million.
const SICK_FAILURES: usize = 12;

/// Answers whose times are compared: "the server is slow" is decided on the median of the
/// last this many, so a steady mix of cheap and costly requests (a page of 1,000
/// Observations next to an empty Device search) is not mistaken for a server in trouble,
/// while a slowdown of everything shows within a few answers.
const WINDOW: usize = 15;
/// Each kind of request (resource type) is compared with its own fastest recent answer,
/// which is forgotten at this pace (the baseline may double every `BASELINE_DOUBLING`), so a
/// server that stays slow becomes the new normal and the limit climbs back to probe it.
const BASELINE_DOUBLING: Duration = Duration::from_secs(120);
/// An answer is "slow" when it exceeds this many of its kind's baseline plus
/// `SLOW_MARGIN`; the server is slow when the median answer of the window is. The margin
/// keeps scheduling jitter on fast servers (a millisecond becoming twenty on a busy
/// machine) from counting as a server in trouble.
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
    /// Per kind of request: its fastest recent answer (seconds) and when that was last
    /// updated (forgotten over time, see `BASELINE_DOUBLING`).
    baselines: HashMap<String, (f64, Instant)>,
    /// The last `WINDOW` answers: how far each was above its kind's slow line (seconds;
    /// negative when it was not), and its time.
    excess: VecDeque<f64>,
    answers: VecDeque<f64>,
    /// Answers since the limit was last cut for latency.
    since_cut: usize,
    /// Attempts sent through the budget, ever (for the request rate).
    requests: u64,
    /// The last `OUTCOME_WINDOW` outcomes, `true` for a transient failure, and how many of
    /// them are.
    outcomes: VecDeque<bool>,
    failures: usize,
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
    /// The median of the last answers' times.
    pub latency: Option<Duration>,
}

fn push_window(window: &mut VecDeque<f64>, value: f64) {
    window.push_back(value);
    if window.len() > WINDOW {
        window.pop_front();
    }
}

/// The middle value (the upper one of an even count); `None` for no values.
fn median(values: &VecDeque<f64>) -> Option<f64> {
    let mut sorted = [0.0f64; WINDOW];
    let n = values.len().min(WINDOW);
    for (slot, v) in sorted.iter_mut().zip(values.iter()) {
        *slot = *v;
    }
    let sorted = &mut sorted[..n];
    sorted.sort_by(f64::total_cmp);
    sorted.get(n / 2).copied()
}

/// What kind of request a URL is, for comparing answer times like with like: the last
/// path segment that is an R4 resource type (`Observation` for a search or a read of one),
/// else `other` (metadata, bulk status, files, ...); a search for several ids or
/// identifiers at once is a list of its length (`list_kind`). A fixed set, so the per-kind
/// memory stays small however many different resources are read.
pub fn request_kind(url: &str) -> &'static str {
    if let Some(kind) = list_kind(url) {
        return kind;
    }
    let path = url.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/')
        .find_map(|segment| {
            crate::resources::R4_RESOURCE_TYPES
                .iter()
                .copied()
                .find(|t| *t == segment)
        })
        .unwrap_or("other")
}

/// A search that names several ids or identifiers (`Observation?_id=a,b,c`, as
/// `hydrate::batch` and `crawl::lookups` send) does the work of that many reads, so its
/// answer takes longer the more it names: it is compared only with lists of about its
/// length, never with reads of its type, or every full list would look like a slow server.
fn list_kind(url: &str) -> Option<&'static str> {
    let query = url.split('#').next()?.split_once('?')?.1;
    let values = query
        .split('&')
        .filter_map(|p| {
            p.strip_prefix("_id=")
                .or_else(|| p.strip_prefix("identifier="))
        })
        .map(|v| v.matches(',').count() + 1)
        .max()?;
    match values {
        0..=1 => None,
        2..=8 => Some("list of 2-8"),
        9..=16 => Some("list of 9-16"),
        17..=32 => Some("list of 17-32"),
        _ => Some("list of 33 or more"),
    }
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
                    baselines: HashMap::new(),
                    excess: VecDeque::with_capacity(WINDOW + 1),
                    answers: VecDeque::with_capacity(WINDOW + 1),
                    since_cut: 0,
                    requests: 0,
                    outcomes: VecDeque::with_capacity(OUTCOME_WINDOW + 1),
                    failures: 0,
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

    /// The server said slow down (429/503): nobody sends a request before `until` (the
    /// answer's arrival plus its `Retry-After`), and the limit halves. Pauses that overlap
    /// count once: the latest end wins, so several 429s arriving together on several
    /// connections make one pause, never the sum. Requests sent before the pause come back
    /// throttled together; that is one signal, not many, so the limit halves once per pause.
    pub fn throttled(&self, until: Instant) {
        let now = Instant::now();
        let mut state = self.inner.lock();
        let already_paused = state.paused_until.is_some_and(|p| p > now);
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
        state.successes = 0;
        if already_paused || state.limit <= 1 {
            return;
        }
        let new_limit = (state.limit / 2).max(1);
        self.shrink(&mut state, new_limit);
    }

    /// A request failed in a way that is usually its own bad luck (500, 502, 504, a broken
    /// or timed-out connection, a cut-off answer). It costs the others nothing unless such
    /// failures persist: while `SICK_FAILURES` of the last `OUTCOME_WINDOW` outcomes are
    /// failures the server is sick, and it loses one connection per round of outcomes
    /// (every `2 × limit`), down to one. Returns the new limit when it changed.
    pub fn failed(&self) -> Option<usize> {
        let mut state = self.inner.lock();
        Self::push_outcome(&mut state, true);
        state.since_cut = state.since_cut.saturating_add(1);
        if state.failures < SICK_FAILURES {
            return None;
        }
        state.successes = 0;
        self.cut_once_per_round(&mut state)
    }

    /// The server is slow or sick: one connection less per round of outcomes (every
    /// `2 × limit`, so each cut can show before the next), down to one. Returns the new
    /// limit when it changed.
    fn cut_once_per_round(&self, state: &mut State) -> Option<usize> {
        if state.limit <= 1 || state.since_cut < 2 * state.limit {
            return None;
        }
        state.since_cut = 0;
        let new_limit = state.limit - 1;
        self.shrink(state, new_limit);
        Some(new_limit)
    }

    fn push_outcome(state: &mut State, failed: bool) {
        state.outcomes.push_back(failed);
        state.failures += usize::from(failed);
        if state.outcomes.len() > OUTCOME_WINDOW
            && let Some(oldest) = state.outcomes.pop_front()
        {
            state.failures -= usize::from(oldest);
        }
    }

    fn shrink(&self, state: &mut State, new_limit: usize) {
        let remove = state.limit - new_limit;
        state.limit = new_limit;
        let forgotten = self.inner.semaphore.forget_permits(remove);
        state.debt += remove - forgotten;
    }

    /// A successful answer of `kind` (the resource type asked for, see [`request_kind`];
    /// `download` for a streamed body) whose headers took `latency` to come (time to first
    /// byte: how long a large body then takes to stream says nothing about the server's
    /// health). While the median of the last answers is well above what their kinds take at
    /// best, the server is slow: it loses one connection per round of answers (every
    /// `2 × limit` answers, so each cut can show before the next), down to one; otherwise,
    /// unless the server is sick (see [`failed`](Self::failed)), the limit climbs back
    /// towards the ceiling, one step per `limit` healthy answers. Returns the new limit when
    /// it changed.
    pub fn healthy(&self, kind: &str, latency: Duration) -> Option<usize> {
        let now = Instant::now();
        let sample = latency.as_secs_f64();
        let mut state = self.inner.lock();
        Self::push_outcome(&mut state, false);
        let baseline = match state.baselines.get_mut(kind) {
            Some((best, updated)) => {
                let forgotten =
                    now.duration_since(*updated).as_secs_f64() / BASELINE_DOUBLING.as_secs_f64();
                *best = (*best * forgotten.exp2()).min(sample);
                *updated = now;
                *best
            }
            None => {
                state.baselines.insert(kind.to_string(), (sample, now));
                sample
            }
        };
        let excess = sample - (baseline * SLOW_FACTOR + SLOW_MARGIN.as_secs_f64());
        push_window(&mut state.excess, excess);
        push_window(&mut state.answers, sample);
        state.since_cut = state.since_cut.saturating_add(1);
        if median(&state.excess).is_some_and(|m| m > 0.0) {
            state.successes = 0;
            return self.cut_once_per_round(&mut state);
        }
        if state.limit >= self.inner.max {
            return None;
        }
        if state.failures >= SICK_FAILURES {
            state.successes = 0;
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
            latency: duration(median(&state.answers)),
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
        budget.throttled(Instant::now() + Duration::from_millis(1));
        assert_eq!(budget.current_limit(), 2);
        drop(held);
        // Two of the four lent permits were forgotten on return.
        assert_eq!(budget.inner.semaphore.available_permits(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_pauses_everyone_once_and_halves_once_per_pause() {
        let budget = Budget::new(8);
        let arrived = Instant::now();
        // Five 429s with `Retry-After: 2` arrive together: one pause of 2 s, not 10.
        for _ in 0..5 {
            budget.throttled(arrived + Duration::from_secs(2));
        }
        assert_eq!(budget.current_limit(), 4);
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    let _permit = budget.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        for handle in waiting {
            let resumed = handle.await.expect("join");
            assert_eq!(resumed - arrived, Duration::from_secs(2));
        }
        // A pause ending earlier than the current one does not shorten it.
        budget.throttled(Instant::now() + Duration::from_secs(3));
        budget.throttled(Instant::now() + Duration::from_secs(1));
        let start = Instant::now();
        drop(budget.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(budget.current_limit(), 2);
        // An earlier pause that has ended counts as a new one.
        budget.throttled(Instant::now());
        assert_eq!(budget.current_limit(), 1);
    }

    #[tokio::test]
    async fn lone_failures_cost_the_others_nothing_but_a_sick_server_loses_connections() {
        let budget = Budget::new(5);
        // One failure in twenty (5 % of 500s and dropped connections), for a long time.
        for i in 0..20_000u32 {
            if i % 20 == 7 {
                assert_eq!(budget.failed(), None, "cut after {i}");
            } else {
                budget.healthy("Condition", FAST);
            }
        }
        // Bursts of bad luck too: three failures in a row now and then.
        for i in 0..2_000u32 {
            if i % 60 < 3 {
                assert_eq!(budget.failed(), None, "cut after {i}");
            } else {
                budget.healthy("Condition", FAST);
            }
        }
        assert_eq!(budget.current_limit(), 5);
        // Half of all requests failing is a sick server: one connection less per round.
        let mut cuts = Vec::new();
        for i in 0..200u32 {
            let cut = if i % 2 == 0 {
                budget.failed()
            } else {
                budget.healthy("Condition", FAST)
            };
            cuts.extend(cut);
        }
        assert_eq!(cuts, [4, 3, 2, 1]);
        // Healthy again: as soon as the failures leave the window, the limit climbs back,
        // one step per `limit` answers.
        let mut climbs = Vec::new();
        for _ in 0..60 {
            climbs.extend(budget.healthy("Condition", FAST));
        }
        assert_eq!(climbs, [2, 3, 4, 5]);
        assert_eq!(budget.inner.semaphore.available_permits(), 5);
    }

    const FAST: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn backs_off_when_answers_slow_down_and_climbs_back() {
        let budget = Budget::new(4);
        for _ in 0..50 {
            assert_eq!(budget.healthy("Condition", FAST), None);
        }
        assert_eq!(budget.current_limit(), 4);
        // A lone slow answer is jitter, not a slowdown.
        assert_eq!(
            budget.healthy("Condition", Duration::from_millis(400)),
            None
        );
        for _ in 0..20 {
            budget.healthy("Condition", FAST);
        }
        assert_eq!(budget.current_limit(), 4);
        // The server now takes half a second: one connection less per round of answers.
        let slow = Duration::from_millis(500);
        let mut cuts = Vec::new();
        for _ in 0..40 {
            if let Some(limit) = budget.healthy("Condition", slow) {
                cuts.push(limit);
            }
        }
        assert_eq!(cuts, [3, 2, 1]);
        assert_eq!(budget.current_limit(), 1);
        let status = budget.status();
        assert_eq!(status.latency, Some(slow));
        // Within seconds the fast past is not forgotten: slow answers still count as slow.
        assert_eq!(budget.healthy("Condition", slow), None);
        assert_eq!(budget.current_limit(), 1);
        // Fast again: the limit climbs back, one step per `limit` healthy answers.
        let mut climbs = Vec::new();
        for _ in 0..200 {
            if let Some(limit) = budget.healthy("Condition", FAST) {
                climbs.push(limit);
            }
        }
        assert_eq!(climbs, [2, 3, 4]);
        assert_eq!(budget.inner.semaphore.available_permits(), 4);
    }

    #[tokio::test]
    async fn a_steady_mix_of_cheap_and_costly_requests_is_not_a_slowdown() {
        let budget = Budget::new(5);
        for i in 0..5000u64 {
            // Two in thirteen answers are big Observation pages; within a kind too, some
            // pages are full and slow, most are small.
            let (kind, ms) = match i % 13 {
                0 | 5 => ("Observation", 600.0),
                7 => ("Observation", 25.0),
                9 => ("Encounter", 150.0),
                _ => ("Condition", 20.0),
            };
            budget.healthy(kind, Duration::from_secs_f64(ms / 1000.0));
            assert_eq!(budget.current_limit(), 5, "cut after {i} answers");
        }
        // But when everything slows down, it is a slowdown.
        let cuts = (0..60)
            .filter_map(|i| {
                let kind = if i % 2 == 0 {
                    "Observation"
                } else {
                    "Condition"
                };
                budget.healthy(kind, Duration::from_millis(900))
            })
            .count();
        assert!(cuts >= 3, "{cuts} cuts");
    }

    #[test]
    fn request_kinds() {
        assert_eq!(
            request_kind("https://ehr.example.org/api/FHIR/R4/Observation?patient=1"),
            "Observation"
        );
        assert_eq!(request_kind("http://h/fhir/Binary/ABC123"), "Binary");
        assert_eq!(request_kind("http://h/fhir/Patient/Patient"), "Patient");
        assert_eq!(request_kind("https://EHR/api/FHIR/R4/metadata"), "other");
        assert_eq!(request_kind("http://h/fhir/bulk-status/7"), "other");
        // Lists of ids or identifiers by their length, not their type.
        let ids = |n: usize| {
            (0..n)
                .map(|i| format!("o{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let list = |n| format!("http://h/fhir/Observation?_id={}&_count={n}", ids(n));
        assert_eq!(request_kind(&list(1)), "Observation");
        assert_eq!(request_kind(&list(2)), "list of 2-8");
        assert_eq!(request_kind(&list(20)), "list of 17-32");
        assert_eq!(request_kind(&list(50)), "list of 33 or more");
        assert_eq!(
            request_kind("http://h/fhir/Patient?identifier=s%7C1,s%7C2&_count=2"),
            "list of 2-8"
        );
        assert_eq!(
            request_kind("http://h/fhir/Observation?patient=p&_id=a,b"),
            "list of 2-8"
        );
        assert_eq!(
            request_kind("http://h/fhir/Observation?patient=1&category=a,b"),
            "Observation"
        );
    }

    #[tokio::test]
    async fn jitter_of_a_fast_server_is_not_a_slowdown() {
        let budget = Budget::new(5);
        for i in 0..1000u64 {
            // 0.3 ms answers with 40 ms scheduling hiccups now and then.
            let ms = if i % 7 == 0 { 40.0 } else { 0.3 };
            budget.healthy("Condition", Duration::from_secs_f64(ms / 1000.0));
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
    async fn recovers_one_step_per_round_of_healthy_answers() {
        let budget = Budget::new(3);
        budget.throttled(Instant::now());
        assert_eq!(budget.current_limit(), 1);
        budget.healthy("Condition", FAST);
        assert_eq!(budget.current_limit(), 2);
        budget.healthy("Condition", FAST);
        assert_eq!(budget.current_limit(), 2);
        budget.healthy("Condition", FAST);
        assert_eq!(budget.current_limit(), 3);
        for _ in 0..100 {
            budget.healthy("Condition", FAST);
        }
        assert_eq!(budget.current_limit(), 3);
        assert_eq!(budget.inner.semaphore.available_permits(), 3);
    }
}
