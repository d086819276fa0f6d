//! A one-line status on a terminal (stderr) while a task runs, e.g.
//! `Downloading Medications… 1,234 resources`, cleared when the task ends. Nothing at all
//! when stderr is not a terminal (logs and tests stay clean). Display only.

use crate::console::thousands;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(250);

pub struct Progress {
    label: String,
    enabled: bool,
    done: u64,
    last_draw: Option<Instant>,
}

impl Progress {
    /// `label` is the Python tool's bar description, like `Downloading Medications…`.
    pub fn new(label: String) -> Self {
        Progress {
            label,
            enabled: std::io::stderr().is_terminal(),
            done: 0,
            last_draw: None,
        }
    }

    /// One more input resource (or line) handled.
    pub fn tick(&mut self) {
        self.done += 1;
        if !self.enabled || self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} {} resources",
            self.label,
            thousands(self.done)
        );
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
