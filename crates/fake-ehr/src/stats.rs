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

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub metadata: AtomicU64,
    pub smart_config: AtomicU64,
    pub token: AtomicU64,
    pub searches: AtomicU64,
    pub reads: AtomicU64,
    pub faults: AtomicU64,
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

    /// Counts a data request as in flight until the returned guard is dropped.
    pub fn enter_data_request(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight { counters: self }
    }

    /// Starts counting the most requests in flight afresh from those in flight now.
    pub fn reset_max_in_flight(&self) {
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
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
