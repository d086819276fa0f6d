//! A one-line status on a terminal (stderr) while a task runs, e.g.
//! `Downloading Medications… 1,234 resources, 5/5 connections, 180 requests/s, answers in
//! 21 ms`, cleared when the task ends. With `--verbose` the line is also printed on a line
//! of its own every 10 seconds (terminal or not); otherwise nothing at all when stderr is not
//! a terminal (logs and tests stay clean). Display only.

use crate::console::thousands;
use crate::fhir::{Budget, RequestRate};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(250);
const VERBOSE_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    label: String,
    terminal: bool,
    verbose: bool,
    done: u64,
    last_draw: Option<Instant>,
    last_line: Instant,
    budget: Budget,
    rate: RequestRate,
}

impl Progress {
    /// `label` is the Python tool's bar description, like `Downloading Medications…`.
    pub fn new(label: String, budget: Budget, verbose: bool) -> Self {
        let mut rate = RequestRate::new();
        rate.sample(budget.status().requests);
        Progress {
            label,
            terminal: std::io::stderr().is_terminal(),
            verbose,
            done: 0,
            last_draw: None,
            last_line: Instant::now(),
            budget,
            rate,
        }
    }

    /// One more input resource (or line) handled.
    pub fn tick(&mut self) {
        self.done += 1;
        if !(self.terminal || self.verbose)
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
        let mut err = std::io::stderr().lock();
        if self.verbose && self.last_line.elapsed() >= VERBOSE_EVERY {
            self.last_line = Instant::now();
            let clear = if self.terminal { "\r\x1b[2K" } else { "" };
            let _ = writeln!(err, "{clear}{line}");
        }
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        }
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.terminal && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
