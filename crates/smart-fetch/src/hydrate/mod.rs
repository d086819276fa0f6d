//! Hydration (docs/hydration.md): fetching what searches and bulk exports leave out — referenced
//! resources, attachment content, PractitionerRoles by search — into a workdir. `tasks` is the
//! registry and its parsing, `reference`, `inline` and `practrole_search` run one task each, and
//! this module runs tasks: each once for `hydrate` (docs/hydration.md#the-hydrate-command), or the
//! multi-pass loop of `export` until no task finds anything new
//! (docs/hydration.md#hydration-after-an-export). `evidence` keeps what the run tells
//! deleted-resource detection. Talks to the server only through the `FhirClient` it is given;
//! touches only the workdir (and reads the source dir).

pub mod batch;
pub mod evidence;
pub mod inline;
pub mod input;
pub mod known;
pub mod mime;
pub mod output;
pub mod practrole_search;
pub mod progress;
pub mod reference;
pub mod refs;
pub mod stats;
pub mod tasks;

pub use tasks::{Action, Task};

use crate::fhir::{FhirClient, FhirError};
use crate::folder::FolderError;
use crate::report::Reporter;
use crate::resources::ResourceType;
use known::Known;
use serde_json::Value;
use stats::Status;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    /// An error that ends the run (authentication); per-item errors are only counted.
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error("Could not write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Folder(#[from] FolderError),
}

impl HydrateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        HydrateError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Where and how a run hydrates.
pub struct HydrateOptions {
    /// Outputs, the "already have" pool and inline rewrites live here.
    pub workdir: PathBuf,
    /// Reference and search tasks read their inputs here (usually the workdir).
    pub source_dir: PathBuf,
    /// Names of newly created output files only; rewrites keep their own compression.
    pub compress: bool,
    /// Lower-cased mimetypes that inline tasks fetch (`mime::allowed`).
    pub mimetypes: Vec<String>,
    /// Where the tasks' lines and progress go; its counters count hydrated resources.
    pub reporter: Reporter,
}

/// One run's hydration state: the client, the options, and the memory of references
/// already requested, shared by every task and pass of the run.
pub struct Hydrator {
    client: FhirClient,
    options: HydrateOptions,
    /// Input resources (or lines) in progress at once: twice the connections, so a worker
    /// busy with its result never leaves a connection idle; the budget caps requests.
    concurrency: usize,
    known: Known,
    evidence: evidence::Evidence,
    /// Items still failing after retries (a rerun may succeed), by what the task fetches:
    /// the output type, or Binary for note inlining.
    failed: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// What happened to one examined item, with the resource to write when one was fetched.
#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    pub resource: Option<Value>,
}

impl Outcome {
    pub fn of(status: Status) -> Self {
        Outcome {
            status,
            resource: None,
        }
    }
}

impl Hydrator {
    /// The status line of one task, showing the client's budget.
    fn progress(&self, label: String) -> progress::Progress {
        progress::Progress::new(label, self.client.budget().clone(), &self.options.reporter)
    }

    pub(crate) fn reporter(&self) -> &Reporter {
        &self.options.reporter
    }

    pub fn new(client: FhirClient, options: HydrateOptions) -> Self {
        let concurrency = client.budget().max() * 2;
        Hydrator {
            client,
            options,
            concurrency,
            known: Known::default(),
            evidence: evidence::Evidence::default(),
            failed: Default::default(),
        }
    }

    /// Reads that still failed after their retries (server errors, timeouts, broken
    /// answers), as the stderr summary: one line and a total, or `None` when none failed.
    /// Answers that a rerun would not change (404, a refused MIME type) are not counted.
    pub fn failure_summary(&self) -> Option<String> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let total: u64 = failed.values().sum();
        if total == 0 {
            return None;
        }
        let parts: Vec<String> = failed.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let noun = if total == 1 { "read" } else { "reads" };
        Some(format!(
            "{total} hydration {noun} failed after retries ({}); rerun the same command to retry them",
            parts.join(", ")
        ))
    }

    /// Reads that still failed after their retries, by what they fetch (the output type,
    /// or Binary for note inlining).
    pub fn failed_reads(&self) -> std::collections::BTreeMap<String, u64> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Leave the workdir's record of reads this hydration could not get (removed when all
    /// were answered), so `status` can tell a failed export from one still running.
    fn record_failed_reads(&self) -> Result<(), HydrateError> {
        crate::folder::contents::record_failed_reads(&self.options.workdir, &self.failed_reads())?;
        Ok(())
    }

    /// What this run's tasks tell deleted-resource detection, for the `selected` tasks it
    /// was asked to run (call after `run_export`).
    pub fn deletion_evidence(&self, selected: &[&'static Task]) -> evidence::HydrationReport {
        self.evidence.report(selected)
    }

    /// `hydrate`: each task once, in registry order, a rule line before each
    /// (docs/hydration.md#the-hydrate-command).
    pub async fn run_each(&self, tasks: &[&Task]) -> Result<(), HydrateError> {
        crate::folder::metadata::forget_hydration_tasks(&self.options.workdir)?;
        crate::folder::contents::forget_failed_reads(&self.options.workdir)?;
        for task in tasks {
            self.options.reporter.rule();
            self.run_task(task).await?;
        }
        self.record_failed_reads()
    }

    /// `export`: passes over the selected types, then over the types the previous pass produced
    /// (docs/hydration.md#hydration-after-an-export), and on until no task finds anything new: a
    /// task runs again when an earlier task wrote new resources of its input type (a Practitioner
    /// first found through a PractitionerRole still gets its own roles searched). The "already have
    /// or asked for" memory keeps each reference to one request however often a task runs. A rule
    /// line before the first task and after each.
    pub async fn run_export(
        &self,
        tasks: &[&Task],
        types: &[ResourceType],
    ) -> Result<(), HydrateError> {
        // A version per type, bumped whenever a task writes new resources of it (or first makes it
        // available); a task is due when its input type's version passed the one it saw when it
        // last started. Rounds keep the order of the Python tool's passes: what a round makes due
        // waits for the next round.
        let mut version: HashMap<ResourceType, u32> = types.iter().map(|t| (*t, 1)).collect();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let mut first = true;
        // The files change from here on: the workdir's record of complete tasks no longer
        // holds until `export` writes a new one.
        crate::folder::metadata::forget_hydration_tasks(&self.options.workdir)?;
        crate::folder::contents::forget_failed_reads(&self.options.workdir)?;
        for round in 0..=MAX_ROUNDS {
            let due: Vec<&Task> = tasks
                .iter()
                .copied()
                .filter(|t| {
                    let v = version.get(&t.input).copied().unwrap_or(0);
                    v > 0 && seen.get(t.name).copied().unwrap_or(0) < v
                })
                .collect();
            if due.is_empty() {
                break;
            }
            if round == MAX_ROUNDS {
                // Never seen: but a task stopped with work left has not exported in full.
                due.iter().for_each(|t| self.evidence.incomplete(t.name));
                break;
            }
            for task in due {
                let input_version = version.get(&task.input).copied().unwrap_or(0);
                let first_run = seen.insert(task.name, input_version).is_none();
                if first {
                    self.options.reporter.rule();
                    first = false;
                }
                let stats = self.run_task(task).await?;
                self.options.reporter.rule();
                // A rewrite (note inlining) changes resources in place: nothing new to follow.
                if matches!(task.action, Action::Inline) {
                    continue;
                }
                let found_new = stats.is_some_and(|s| s.count(Status::NewlyDone).1 > 0);
                let output = version.entry(task.output).or_insert(0);
                if found_new || (first_run && *output == 0) {
                    *output += 1;
                }
            }
        }
        self.record_failed_reads()
    }

    /// One task: its header line, then the skip message or its statistics table.
    pub async fn run_task(&self, task: &Task) -> Result<Option<stats::Stats>, HydrateError> {
        let stats = match task.action {
            Action::Reference { paths, .. } => {
                self.header(task);
                reference::run(self, task, paths).await?
            }
            Action::SearchRoles => {
                self.header(task);
                practrole_search::run(self, task).await?
            }
            Action::Inline => inline::run(self, task).await?,
        };
        // Reference tasks tell failures from "gone" item by item (`reference::download`);
        // for the others any failed item leaves the task incomplete.
        let failed =
            |s: &stats::Stats| s.count(Status::FatalError).1 + s.count(Status::RetryError).1 > 0;
        if !matches!(task.action, Action::Reference { .. }) && stats.as_ref().is_some_and(failed) {
            self.evidence.incomplete(task.name);
        }
        if let Some(retry) = stats.as_ref().map(|s| s.count(Status::RetryError).1)
            && retry > 0
        {
            let what = match task.action {
                Action::Inline => "Binary".to_string(),
                _ => task.output.to_string(),
            };
            *self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(what)
                .or_default() += retry;
        }
        if let Some(stats) = &stats {
            let (items, adjective) = match task.action {
                Action::Inline => ("Attachments".to_string(), "inlined"),
                _ => (format!("{}s", task.output), "downloaded"),
            };
            self.options
                .reporter
                .info(stats.table(&format!("{}s", task.input), &items, adjective));
        }
        Ok(stats)
    }

    fn header(&self, task: &Task) {
        self.options.reporter.info(format!(
            "Downloading referenced {}s from {}s.",
            task.output, task.input
        ));
    }

    pub(crate) fn skip(&self, task: &Task) {
        self.options.reporter.info(format!(
            "Skipping {}, no {} resources found.",
            task.name, task.input
        ));
    }

    /// Per-item error text, shown only with `--verbose` (docs/hydration.md#fetching-a-reference,
    /// docs/hydration.md#inlining-attachments); on stdout in the text format, as the Python tool
    /// printed it.
    pub(crate) fn report(&self, message: &str) {
        // Often the server's own words (an OperationOutcome's text).
        self.options
            .reporter
            .verbose_on_stdout(|| crate::text::printable(message).into_owned());
    }

    /// A request error that is not fatal to the run, reported and classified.
    pub(crate) fn item_error(&self, error: &FhirError) -> Status {
        self.report(&error.to_string());
        if error.is_temporary() {
            Status::RetryError
        } else {
            Status::FatalError
        }
    }

    /// Path of a newly created (or appended) output file in the workdir.
    pub(crate) fn output_path(&self, base: &str) -> PathBuf {
        self.options
            .workdir
            .join(crate::ndjson::file_name(base, self.options.compress))
    }
}

/// Rounds of `run_export` at most: each round follows references one step further, and no
/// FHIR reference chain we hydrate is anywhere near this deep.
const MAX_ROUNDS: usize = 32;

/// The text of an OperationOutcome: its first issue's `details.text`, else `diagnostics`.
pub(crate) fn outcome_text(value: &Value) -> Option<String> {
    if value.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return None;
    }
    let issue = value.get("issue")?.as_array()?.first()?;
    issue
        .pointer("/details/text")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| issue.get("diagnostics").and_then(Value::as_str))
        .map(str::to_string)
}

/// Verbose text for a resource of the wrong type: its OperationOutcome text if it is one.
pub(crate) fn wrong_type_text(expected: &str, got: &Value) -> String {
    outcome_text(got).unwrap_or_else(|| {
        let t = got
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        format!("Error: expected resource type of '{expected}', but got '{t}'.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcome_texts() {
        let oo = json!({"resourceType": "OperationOutcome", "issue": [{"details": {"text": "Nope"}, "diagnostics": "d"}]});
        assert_eq!(outcome_text(&oo).as_deref(), Some("Nope"));
        let oo = json!({"resourceType": "OperationOutcome", "issue": [{"diagnostics": "d"}]});
        assert_eq!(wrong_type_text("Medication", &oo), "d");
        assert_eq!(
            wrong_type_text("Medication", &json!({"resourceType": "Patient"})),
            "Error: expected resource type of 'Medication', but got 'Patient'."
        );
    }
}
