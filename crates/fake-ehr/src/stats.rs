//! Request counters the tests inspect: live atomics and the serialisable snapshot `Stats`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Searches remembered in `search_urls`; later ones are counted but not kept.
pub const MAX_SEARCH_URLS: usize = 250_000;

/// Distinct paths counted in `reads_by_path`; reads of further paths are counted in `reads`
/// only.
pub const MAX_READ_PATHS: usize = 250_000;

/// Access tokens remembered in `issued_tokens`.
pub const MAX_ISSUED_TOKENS: usize = 10_000;

/// Data requests whose arrival time is kept in `data_arrivals_ms` (800 KB at most).
pub const MAX_ARRIVALS: usize = 100_000;

/// A snapshot of the counters (also served as JSON at `/__admin/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every request received except `/__admin/*`.
    pub requests: u64,
    pub metadata: u64,
    pub smart_config: u64,
    pub token: u64,
    pub searches: u64,
    pub reads: u64,
    pub faults: u64,
    /// Injected faults by kind (`Fault::name`: `429`, `500`, `drop`, ...), bulk routes
    /// included.
    #[serde(default)]
    pub fault_kinds: BTreeMap<String, u64>,
    /// Data requests answered 429 because they arrived in a throttle window
    /// (`Server::throttle`); not counted in `faults`.
    #[serde(default)]
    pub throttled: u64,
    /// When each of those arrived, in milliseconds since the server started (the first
    /// 100,000), on the clock of `data_arrivals_ms`.
    #[serde(default)]
    pub throttled_arrivals_ms: Vec<u64>,
    /// When each search and read arrived, in milliseconds since the server started, in
    /// order (the first 100,000): the pauses a client made are the gaps.
    #[serde(default)]
    pub data_arrivals_ms: Vec<u64>,
    /// Requests (admin ones aside) that came without a `User-Agent` header.
    #[serde(default)]
    pub requests_without_user_agent: u64,
    /// The `User-Agent` of the last request that had one.
    #[serde(default)]
    pub last_user_agent: Option<String>,
    /// Search answers cut off on purpose (`Config::truncate`).
    #[serde(default)]
    pub truncated: u64,
    pub unauthorized: u64,
    /// Requests that carried an `Epic-Client-ID` header.
    pub epic_client_id_headers: u64,
    /// `jku` header of the last client assertion received (None if it had none).
    pub last_assertion_jku: Option<String>,
    /// Path and query of every search received, in order (the first 250,000).
    pub search_urls: Vec<String>,
    /// Most data requests (searches and reads) handled at the same moment, counted from
    /// arrival to response (latency and slow faults included).
    pub max_in_flight: u64,
    /// Every access token the token endpoint issued, in order (the first 10,000).
    pub issued_tokens: Vec<String>,
    /// The `scope` of the last token request.
    #[serde(default)]
    pub last_scope: Option<String>,
    /// Read requests per path after the base URL, e.g. `Practitioner/prac-07` or
    /// `Binary/bin-000003-doc-01-txt`, whatever the answer (404s included).
    #[serde(default)]
    pub reads_by_path: BTreeMap<String, u64>,
    /// Bulk export requests.
    #[serde(default)]
    pub bulk: crate::bulk::BulkStats,
}

/// When the counters started (the server's start), for arrival times.
struct Epoch(std::time::Instant);

impl Default for Epoch {
    fn default() -> Self {
        Epoch(std::time::Instant::now())
    }
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub metadata: AtomicU64,
    pub smart_config: AtomicU64,
    pub token: AtomicU64,
    pub searches: AtomicU64,
    pub reads: AtomicU64,
    pub faults: AtomicU64,
    fault_kinds: Mutex<BTreeMap<String, u64>>,
    throttled: AtomicU64,
    throttled_arrivals_ms: Mutex<Vec<u64>>,
    epoch: Epoch,
    data_arrivals_ms: Mutex<Vec<u64>>,
    requests_without_user_agent: AtomicU64,
    last_user_agent: Mutex<Option<String>>,
    pub truncated: AtomicU64,
    pub unauthorized: AtomicU64,
    pub epic_client_id_headers: AtomicU64,
    last_assertion_jku: Mutex<Option<String>>,
    search_urls: Mutex<Vec<String>>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    issued_tokens: Mutex<Vec<String>>,
    last_scope: Mutex<Option<String>>,
    reads_by_path: Mutex<BTreeMap<String, u64>>,
    pub bulk: crate::bulk::BulkCounters,
}

/// One data request being handled; counted in flight until dropped.
pub struct InFlight<'a> {
    counters: &'a Counters,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn record_search(&self, path_and_query: &str) {
        bump(&self.searches);
        let mut urls = self.search_urls.lock().unwrap_or_else(|e| e.into_inner());
        if urls.len() < MAX_SEARCH_URLS {
            urls.push(path_and_query.to_string());
        }
    }

    /// Counts a read of `<ty>/<id>`.
    pub fn record_read(&self, ty: &str, id: &str) {
        bump(&self.reads);
        let mut paths = self.reads_by_path.lock().unwrap_or_else(|e| e.into_inner());
        let path = format!("{ty}/{id}");
        if let Some(n) = paths.get_mut(&path) {
            *n += 1;
        } else if paths.len() < MAX_READ_PATHS {
            paths.insert(path, 1);
        }
    }

    /// Counts an injected fault.
    pub fn record_fault(&self, fault: crate::faults::Fault) {
        bump(&self.faults);
        let mut kinds = self.fault_kinds.lock().unwrap_or_else(|e| e.into_inner());
        *kinds.entry(fault.name().to_string()).or_default() += 1;
    }

    /// Counts a data request answered 429 by a throttle window, with its arrival time.
    pub fn record_throttled(&self) {
        bump(&self.throttled);
        let ms = self.elapsed_ms();
        let mut arrivals = self
            .throttled_arrivals_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if arrivals.len() < MAX_ARRIVALS {
            arrivals.push(ms);
        }
    }

    /// Milliseconds since the server started.
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes the `User-Agent` a request came with (or that it had none).
    pub fn record_user_agent(&self, user_agent: Option<&axum::http::HeaderValue>) {
        match user_agent {
            Some(value) => {
                let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                *self
                    .last_user_agent
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(text);
            }
            None => bump(&self.requests_without_user_agent),
        }
    }

    /// Counts a data request as in flight until the returned guard is dropped, and keeps
    /// its arrival time.
    pub fn enter_data_request(&self) -> InFlight<'_> {
        let ms = self.elapsed_ms();
        {
            let mut arrivals = self
                .data_arrivals_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if arrivals.len() < MAX_ARRIVALS {
                arrivals.push(ms);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight { counters: self }
    }

    /// Starts counting the most requests in flight afresh from those in flight now (bulk
    /// file downloads too).
    pub fn reset_max_in_flight(&self) {
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
        self.bulk.reset_max_downloads_in_flight();
    }

    pub fn record_issued_token(&self, token: &str) {
        let mut tokens = self.issued_tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() < MAX_ISSUED_TOKENS {
            tokens.push(token.to_string());
        }
    }

    pub fn record_scope(&self, scope: &str) {
        *self.last_scope.lock().unwrap_or_else(|e| e.into_inner()) = Some(scope.to_string());
    }

    pub fn record_jku(&self, jku: Option<String>) {
        *self
            .last_assertion_jku
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = jku;
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The plain counters of `/__admin/counts`: requests, searches, reads, faults, requests
    /// in flight now and at most.
    pub fn counts(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "requests": get(&self.requests),
            "searches": get(&self.searches),
            "reads": get(&self.reads),
            "faults": get(&self.faults),
            "throttled": get(&self.throttled),
            "requests_without_user_agent": get(&self.requests_without_user_agent),
            "max_downloads_in_flight": self.bulk.max_downloads_in_flight(),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
        })
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests: get(&self.requests),
            metadata: get(&self.metadata),
            smart_config: get(&self.smart_config),
            token: get(&self.token),
            searches: get(&self.searches),
            reads: get(&self.reads),
            faults: get(&self.faults),
            fault_kinds: self
                .fault_kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            throttled: get(&self.throttled),
            throttled_arrivals_ms: self
                .throttled_arrivals_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            data_arrivals_ms: self
                .data_arrivals_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            requests_without_user_agent: get(&self.requests_without_user_agent),
            last_user_agent: self
                .last_user_agent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            truncated: get(&self.truncated),
            unauthorized: get(&self.unauthorized),
            epic_client_id_headers: get(&self.epic_client_id_headers),
            last_assertion_jku: self
                .last_assertion_jku
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            search_urls: self
                .search_urls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            issued_tokens: self
                .issued_tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            reads_by_path: self
                .reads_by_path
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            last_scope: self
                .last_scope
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            bulk: self.bulk.snapshot(),
        }
    }
}
