//! FHIR Bulk Data export (`$export`) for the fake EHR: kickoff at system, Group and Patient
//! level with `_type`, `_since` and `_typeFilter`; jobs that take a configurable time and
//! report `X-Progress`; manifests with output, error and deleted files split across several
//! files; token-protected or "signed URL" downloads, optionally on another host or behind a
//! redirect; DELETE; injected faults on the status and file routes; and padding that makes
//! gigabyte-sized files without holding them in memory (bodies are generated while they
//! stream). Everything a test needs to check is counted in [`BulkStats`].

mod files;
mod filter;
mod jobs;
mod routes;

pub use routes::{Route, classify, handle};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which patients belong to a Group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Every patient of the server.
    All,
    /// Patients with an even index (`pat-000000`, `pat-000002`, …).
    Even,
    /// Exactly these patient indices (those past the patient count are ignored).
    Indices(Vec<usize>),
}

/// How a 202 status answer spells `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Integer seconds (the common form).
    Seconds(u64),
    /// An HTTP date this many seconds from now.
    HttpDate(u64),
    /// An absolute Unix timestamp this many seconds from now (one reference server does
    /// this, against the HTTP spec).
    Epoch(u64),
}

/// Bulk export behaviour of the server.
#[derive(Clone, Debug)]
pub struct BulkConfig {
    /// Groups `Group/<id>/$export` knows, with their members.
    pub groups: Vec<(String, Membership)>,
    /// How long a job runs before its manifest is ready (0 = ready at the first poll).
    pub job_duration: Duration,
    /// `Retry-After` of a 202 status answer.
    pub retry_after: RetryAfter,
    /// Most resources in one output file; more make more files of the same type.
    pub resources_per_file: usize,
    /// Extra bytes added to every exported resource (inside `text.div`), produced while the
    /// file streams: `patients × ~50 × pad_bytes` is the export size.
    pub pad_bytes: usize,
    /// `requiresAccessToken` of manifests; when true, file downloads need the access token
    /// like any data request.
    pub requires_access_token: bool,
    /// Host (e.g. `localhost`) to put in file URLs instead of the server's own `127.0.0.1`,
    /// so downloads go to "another host" (same port).
    pub file_host: Option<String>,
    /// File URLs point at the server's own host and answer with a 307 to the same file on
    /// `file_host` (a storage redirect).
    pub redirect_files: bool,
    /// Resources (`Type/id`) the server deleted at `deleted_at`: never in an output file,
    /// and listed in `deleted` files of exports whose `_since` is before `deleted_at`.
    pub deleted: Vec<String>,
    pub deleted_at: String,
    /// One OperationOutcome per `(severity, diagnostics)` in an error file of every job.
    pub error_messages: Vec<(String, String)>,
    /// Fraction (0.0..=1.0) of status and file requests that get an injected fault.
    pub fault_rate: f64,
    /// Pause before every chunk of a file body (makes downloads slow enough to interrupt).
    pub chunk_delay: Duration,
    /// Time to first byte of file downloads, instead of `Config::latency` (a file server
    /// slower to start an answer than the status URL, as the SMART reference server is).
    pub file_latency: Option<Duration>,
    /// `transactionTime` of every manifest; `None` = the kickoff time.
    pub transaction_time: Option<String>,
    /// DELETE of a status URL is refused with a 400 (the job stays).
    pub refuse_deletes: bool,
}

impl Default for BulkConfig {
    fn default() -> Self {
        Self {
            groups: vec![
                ("all".to_string(), Membership::All),
                ("even".to_string(), Membership::Even),
            ],
            job_duration: Duration::ZERO,
            retry_after: RetryAfter::Seconds(1),
            resources_per_file: 1000,
            pad_bytes: 0,
            requires_access_token: true,
            file_host: None,
            redirect_files: false,
            deleted: Vec::new(),
            deleted_at: "2025-06-01T00:00:00Z".to_string(),
            error_messages: Vec::new(),
            fault_rate: 0.0,
            chunk_delay: Duration::ZERO,
            file_latency: None,
            transaction_time: None,
            refuse_deletes: false,
        }
    }
}

/// Bulk counters (a part of [`crate::Stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkStats {
    /// Kickoff requests answered 202.
    pub kickoffs: u64,
    /// Path and query of every kickoff request received (accepted or not).
    pub kickoff_urls: Vec<String>,
    /// Status requests received (GET of a status URL).
    pub status_polls: u64,
    /// File requests received, per file path (`/fhir/bulk-files/<job>/<n>`), redirects and
    /// faults included.
    pub downloads: BTreeMap<String, u64>,
    /// File bodies sent to the end (no fault, no redirect).
    pub completed_downloads: BTreeMap<String, u64>,
    /// DELETE requests of a status URL (known job or not).
    pub deletes: u64,
    /// File requests on `file_host` that carried an `Authorization` header.
    pub foreign_authorizations: u64,
    /// File requests refused for lack of a valid token.
    pub unauthorized_downloads: u64,
    /// Faults injected on status and file routes.
    pub faults: u64,
    /// Most file bodies being sent at the same moment, counted from the request's arrival
    /// to the body's last byte (or the connection's end); reset with `max_in_flight`.
    #[serde(default)]
    pub max_downloads_in_flight: u64,
}

#[derive(Default)]
pub struct BulkCounters {
    kickoffs: AtomicU64,
    kickoff_urls: Mutex<Vec<String>>,
    status_polls: AtomicU64,
    downloads: Mutex<BTreeMap<String, u64>>,
    completed_downloads: Mutex<BTreeMap<String, u64>>,
    deletes: AtomicU64,
    foreign_authorizations: AtomicU64,
    unauthorized_downloads: AtomicU64,
    faults: AtomicU64,
    downloads_in_flight: AtomicU64,
    max_downloads_in_flight: AtomicU64,
}

/// One file body being sent; counted in flight until dropped.
pub(crate) struct DownloadInFlight {
    state: std::sync::Arc<crate::router::AppState>,
}

impl DownloadInFlight {
    pub(crate) fn enter(state: std::sync::Arc<crate::router::AppState>) -> Self {
        let counters = &state.counters.bulk;
        let now = counters.downloads_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters
            .max_downloads_in_flight
            .fetch_max(now, Ordering::SeqCst);
        DownloadInFlight { state }
    }
}

impl Drop for DownloadInFlight {
    fn drop(&mut self) {
        self.state
            .counters
            .bulk
            .downloads_in_flight
            .fetch_sub(1, Ordering::SeqCst);
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn bump_key(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    *map.entry(key.to_string()).or_default() += 1;
}

impl BulkCounters {
    pub fn reset_max_downloads_in_flight(&self) {
        let now = self.downloads_in_flight.load(Ordering::SeqCst);
        self.max_downloads_in_flight.store(now, Ordering::SeqCst);
    }

    pub fn max_downloads_in_flight(&self) -> u64 {
        self.max_downloads_in_flight.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> BulkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let map =
            |m: &Mutex<BTreeMap<String, u64>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        BulkStats {
            kickoffs: get(&self.kickoffs),
            kickoff_urls: self
                .kickoff_urls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            status_polls: get(&self.status_polls),
            downloads: map(&self.downloads),
            completed_downloads: map(&self.completed_downloads),
            deletes: get(&self.deletes),
            foreign_authorizations: get(&self.foreign_authorizations),
            unauthorized_downloads: get(&self.unauthorized_downloads),
            faults: get(&self.faults),
            max_downloads_in_flight: self.max_downloads_in_flight(),
        }
    }
}

/// The live bulk state of one server: its jobs and the faults of the bulk routes.
pub struct BulkState {
    jobs: jobs::Jobs,
    pub(crate) faults: crate::faults::Faults,
}

impl BulkState {
    pub fn new(
        seed: u64,
        config: &BulkConfig,
        kinds: &[crate::faults::Fault],
        retry_after: u64,
    ) -> Self {
        Self {
            jobs: jobs::Jobs::default(),
            // A stream of its own, so bulk faults do not shift which searches fail.
            faults: crate::faults::Faults::new(
                seed ^ 0xB01C,
                config.fault_rate,
                kinds,
                retry_after,
            ),
        }
    }

    /// Forget every job, as a server does when exports expire: their status URLs answer
    /// 404 from now on.
    pub fn expire_all(&self) {
        self.jobs.clear();
    }
}
