//! "How far are we?" for a whole batch: groups done / running / failed of the total,
//! requests per second, connections in use, the server's answer time and an ETA from the
//! groups this run finished. One line every `every` (a scheduler's log file gets a line a
//! minute, not a bar); the CLI may draw the same figures as a live bar on a terminal.

use crate::console::{human_duration, thousands};
use crate::fhir::{Budget, RequestRate};
use crate::report::Counters;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Group counts shared between the batch loop and the progress view.
#[derive(Default)]
pub struct Tally {
    pub total: AtomicUsize,
    /// Complete before this run started (skipped).
    pub skipped: AtomicUsize,
    /// Complete in this run.
    pub completed: AtomicUsize,
    pub failed: AtomicUsize,
    pub running: AtomicUsize,
}

impl Tally {
    pub fn new(total: usize) -> Arc<Tally> {
        let tally = Tally::default();
        tally.total.store(total, Ordering::Relaxed);
        Arc::new(tally)
    }
}

/// The progress line of the moment.
pub struct View {
    tally: Arc<Tally>,
    budget: Budget,
    counters: Counters,
    started: Instant,
    rate: RequestRate,
    /// Resources written, sampled like requests (the same windowed rate).
    resource_rate: RequestRate,
}

impl View {
    pub fn new(tally: Arc<Tally>, budget: Budget, counters: Counters) -> Self {
        let mut rate = RequestRate::new();
        rate.sample(budget.status().requests);
        let mut resource_rate = RequestRate::new();
        resource_rate.sample(counters.snapshot().resources);
        Self {
            tally,
            budget,
            counters,
            started: Instant::now(),
            rate,
            resource_rate,
        }
    }

    pub fn line(&mut self) -> String {
        let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let (total, skipped, completed, failed, running) = (
            get(&self.tally.total),
            get(&self.tally.skipped),
            get(&self.tally.completed),
            get(&self.tally.failed),
            get(&self.tally.running),
        );
        let status = self.budget.status();
        let per_second = self.rate.sample(status.requests);
        let counted = self.counters.snapshot();
        let resources_per_second = self.resource_rate.sample(counted.resources);
        let done = skipped + completed;
        let left = total.saturating_sub(done + failed);
        let eta = if completed > 0 && left > 0 {
            let per_group = self.started.elapsed().as_secs_f64() / completed as f64;
            format!(
                ", about {} left",
                human_duration((per_group * left as f64) as u64)
            )
        } else {
            String::new()
        };
        let answers = status.latency.map_or_else(String::new, |l| {
            format!(" (answers take {} ms)", l.as_millis())
        });
        format!(
            "Groups: {} of {} done, {running} running, {failed} failed; {} patients, {} \
             resources ({:.0}/s); {:.0} requests/s, connections {} of {}{answers}{eta}.",
            thousands(done as u64),
            thousands(total as u64),
            thousands(counted.patients),
            thousands(counted.resources),
            resources_per_second,
            per_second,
            status.limit,
            status.max,
        )
    }
}

/// How often a plain progress line is written.
pub const PLAIN_EVERY: Duration = Duration::from_secs(60);
