//! Starting and stopping the server: `start` inside the caller's tokio runtime, `spawn` on a
//! thread with its own runtime, and the `Server` handle (URLs, counters, stop on drop).

use crate::config::Config;
use crate::faults::Fault;
use crate::router::{self, AppState};
use crate::stats::Stats;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A running fake EHR. Dropping it stops the server.
pub struct Server {
    state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn state_for(config: Config, addr: SocketAddr) -> Arc<AppState> {
    let base_url = format!("http://{}:{}/fhir", Ipv4Addr::LOCALHOST, addr.port());
    Arc::new(AppState::new(config, base_url))
}

/// Starts the server on 127.0.0.1 inside the current tokio runtime.
pub async fn start(config: Config) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
    let state = state_for(config, listener.local_addr()?);
    let app = router::router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(Server {
        state,
        shutdown: Some(tx),
        thread: None,
    })
}

/// Runs the server on its own thread and runtime (for synchronous tests).
pub fn spawn(config: Config) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))?;
    listener.set_nonblocking(true)?;
    let state = state_for(config, listener.local_addr()?);
    let app = router::router(state.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fake-ehr")
        .enable_all()
        .build()?;
    let (tx, rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("fake-ehr".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    _ = axum::serve(listener, app).into_future() => {}
                    _ = rx => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_millis(200));
        })?;
    Ok(Server {
        state,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

impl Server {
    /// e.g. `http://127.0.0.1:PORT/fhir` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Absolute URL of the token endpoint (`<base_url>/token`).
    pub fn token_url(&self) -> String {
        self.state.token_url.clone()
    }

    /// Every request received except `/__admin/*`.
    pub fn requests(&self) -> u64 {
        self.state.counters.requests()
    }

    pub fn stats(&self) -> Stats {
        self.state.counters.snapshot()
    }

    /// Forget every bulk export job, as a server does when exports expire: their status
    /// URLs answer 404 from now on.
    pub fn expire_bulk_jobs(&self) {
        self.state.bulk.expire_all();
    }

    /// Serve quarter `quarter` (1 or 2) of the data from now on, at the same URL (see
    /// `data::quarter_changes` for what changes). Bulk jobs already started keep the
    /// resource list of their kickoff.
    pub fn set_quarter(&self, quarter: u8) -> Result<(), String> {
        self.state.store.set_quarter(quarter)
    }

    /// The quarter of the data served now.
    pub fn quarter(&self) -> u8 {
        self.state.store.quarter()
    }

    /// Answer every request `latency` after it arrives, from now on (an EHR slowing down
    /// or recovering).
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency.set(latency);
    }

    /// Answer the searches of `truncate` (every page, every attempt) with JSON cut off
    /// halfway from now on; `None` serves them whole again (the server is "fixed").
    pub fn set_truncate(&self, truncate: Option<crate::switches::TruncateSearch>) {
        self.state.switches.set_truncate(truncate);
    }

    /// Searches of these types ignore `patient=` / `subject=` from now on (an empty list:
    /// none do).
    pub fn set_ignore_patient_param(&self, types: Vec<String>) {
        self.state.switches.set_ignore_patient(types);
    }

    /// How `_id` and `identifier` searches with several values are answered from now on
    /// (`None` leaves that one as it is).
    pub fn set_value_lists(
        &self,
        id: Option<crate::switches::ValueLists>,
        identifier: Option<crate::switches::ValueLists>,
    ) {
        self.state.switches.set_value_lists(id, identifier, None);
    }

    /// How `patient` / `subject` searches with several values are answered from now on.
    pub fn set_patient_lists(&self, mode: crate::switches::ValueLists) {
        self.state.switches.set_value_lists(None, None, Some(mode));
    }

    /// `_id` searches of these types answer 400 unless they also name the patient, from
    /// now on (an empty list: none do).
    pub fn set_id_search_needs_patient(&self, types: Vec<String>) {
        self.state.switches.set_id_needs_patient(types);
    }

    /// From now on, reads of these resources (`Type/id`) answer 403 Forbidden, as from an
    /// EHR that still has them but will not hand them over (replaces the earlier list).
    pub fn set_refused_reads<I: IntoIterator<Item = String>>(&self, refs: I) {
        if let Ok(mut refused) = self.state.refused_reads.lock() {
            *refused = refs.into_iter().collect();
        }
    }

    /// From now on, reads of these resources (`Type/id`) answer 500 on every try, as from
    /// an EHR failing for the moment (replaces the earlier list; empty: fixed).
    pub fn set_failing_reads<I: IntoIterator<Item = String>>(&self, refs: I) {
        if let Ok(mut failing) = self.state.failing_reads.lock() {
            *failing = refs.into_iter().collect();
        }
    }

    /// From now on for `window`, answer every search and read with 429 and `Retry-After:
    /// retry_after` seconds (an EHR pushing back on every connection at once). A zero
    /// window ends one still open. Counted in `Stats::throttled`.
    pub fn throttle(&self, window: Duration, retry_after: u64) {
        self.state.faults.throttle_for(window, retry_after);
    }

    /// From now on, inject faults into this fraction of search, read and token requests,
    /// drawn from these kinds (empty: every kind), 429 and 503 saying `Retry-After:
    /// retry_after`; `None` keeps the setting. The same as `POST /__admin/faults`.
    pub fn set_faults(&self, rate: Option<f64>, kinds: Option<&[Fault]>, retry_after: Option<u64>) {
        self.state.faults.set(rate, kinds, retry_after);
        if kinds.is_some() {
            self.state.bulk.faults.set(None, kinds, retry_after);
        }
    }

    /// Start counting `Stats::max_in_flight` (and `BulkStats::max_downloads_in_flight`)
    /// afresh, from the requests in flight now.
    pub fn reset_max_in_flight(&self) {
        self.state.counters.reset_max_in_flight();
    }

    /// The configuration the server runs with (its `quarter` is the one it started with).
    pub fn config(&self) -> &Config {
        &self.state.config
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
