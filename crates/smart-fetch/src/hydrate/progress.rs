//! A task's status line while it runs, e.g. `Downloading Medications… 1,234 resources, 5/5
//! connections, 180 requests/s, answers in 21 ms`: a live line on a terminal
//! (`report::Progress`), cleared when the task ends. With `--verbose` the same text is also
//! reported as a verbose line every 10 seconds (terminal or not); otherwise nothing at all
//! without live progress (logs and tests stay clean). Display only.

use crate::console::thousands;
use crate::fhir::{Budget, RequestRate};
use crate::report::{self, Reporter};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(250);
const VERBOSE_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    label: String,
    bar: report::Progress,
    reporter: Reporter,
    done: u64,
    last_draw: Option<Instant>,
    last_line: Instant,
    budget: Budget,
    rate: RequestRate,
}

impl Progress {
    /// `label` is the Python tool's bar description, like `Downloading Medications…`.
    pub fn new(label: String, budget: Budget, reporter: &Reporter) -> Self {
        let mut rate = RequestRate::new();
        rate.sample(budget.status().requests);
        Progress {
            bar: reporter.progress_bar(label.clone()),
            label,
            reporter: reporter.clone(),
            done: 0,
            last_draw: None,
            last_line: Instant::now(),
            budget,
            rate,
        }
    }

    /// One more input resource (or line) handled. Called for every item, so the line is
    /// built at most every `REDRAW_EVERY`, and only when someone will see it.
    pub fn tick(&mut self) {
        self.done += 1;
        if !(self.bar.is_live() || self.reporter.is_verbose())
            || self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY)
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let status = self.budget.status();
        let line = format!(
            "{} {} resources, {}",
            self.label,
            thousands(self.done),
            status.describe(self.rate.sample(status.requests))
        );
        if self.last_line.elapsed() >= VERBOSE_EVERY {
            self.last_line = Instant::now();
            self.reporter.verbose(|| line.clone());
        }
        self.bar.set_message(line);
    }
}
