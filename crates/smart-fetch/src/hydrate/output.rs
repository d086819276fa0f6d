//! Where reference and search tasks put what they download: `<Output>.<slug>.ndjson[.gz]`
//! in the workdir, appended to crash-safely through `SafeWriter` (temp file, fsync, rename)
//! and committed at the end of the task and at most once a minute before that, so an
//! interrupted task loses at most a minute of downloads, which the next run fetches again
//! (its "already have" pool is rebuilt from the files). Never rewrites existing lines.

use super::HydrateError;
use crate::ndjson::SafeWriter;
use crate::report::Counters;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How much work an interruption may cost; each checkpoint copies the file once.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

pub struct Appender {
    target: PathBuf,
    writer: Option<SafeWriter>,
    last_commit: Instant,
    /// Every resource written counts in the run's resources.
    counters: Counters,
}

impl Appender {
    pub fn new(target: PathBuf, counters: &Counters) -> Self {
        Appender {
            target,
            writer: None,
            last_commit: Instant::now(),
            counters: counters.clone(),
        }
    }

    pub fn write(&mut self, value: &Value) -> Result<(), HydrateError> {
        let target = &self.target;
        let writer = self
            .writer
            .get_or_insert_with(|| SafeWriter::new(target.clone(), true));
        writer
            .write(value)
            .map_err(|e| HydrateError::io(target, e))?;
        self.counters.add_resources(1);
        if self.last_commit.elapsed() >= CHECKPOINT_EVERY {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), HydrateError> {
        self.last_commit = Instant::now();
        match self.writer.take() {
            Some(writer) => writer
                .commit()
                .map_err(|e| HydrateError::io(&self.target, e)),
            None => Ok(()),
        }
    }

    /// Commit what was written (nothing written: no file is created).
    pub fn finish(mut self) -> Result<(), HydrateError> {
        self.commit()
    }
}
