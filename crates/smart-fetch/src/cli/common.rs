//! Steps shared by `export` and `crawl`: reading the cohort IDs, type and filter selection
//! against the server, the since message, the group name for the crawl log, and what a
//! crawl reports at its end.

use super::args::{CohortArgs, ResourceArgs, SinceModeArg};
use crate::crawl::cohort;
use crate::error::AppError;
use crate::export::selection::FilterChoice;
use crate::fhir::Capabilities;
use crate::report::Reporter;
use crate::resources::ResourceType;
use std::path::Path;

/// IDs from `--id-list`/`--id-file`, read before any request; `None` when neither is given.
pub fn read_cohort_ids(cohort: &CohortArgs) -> Result<Option<Vec<String>>, AppError> {
    if cohort.id_list.is_none() && cohort.id_file.is_none() {
        return Ok(None);
    }
    Ok(Some(cohort::read_ids(
        cohort.id_list.as_deref(),
        cohort.id_file.as_deref(),
    )?))
}

pub use crate::export::selection::{Selection, SinceSource};

/// `export::selection::select` with the command line's resource arguments.
#[allow(clippy::too_many_arguments)]
pub fn select(
    types: Vec<ResourceType>,
    resources: &ResourceArgs,
    since: Option<&str>,
    since_mode: SinceModeArg,
    caps: &Capabilities,
    epic: bool,
    source: SinceSource<'_>,
    reporter: &Reporter,
) -> Result<Selection, AppError> {
    crate::export::selection::select(
        types,
        &FilterChoice {
            type_filters: resources.type_filters.clone(),
            default_filters: !resources.no_default_filters,
        },
        since,
        since_mode.mode(),
        caps,
        epic,
        source,
        reporter,
    )
}

/// docs/log.md#the-crawl-log: `--group-nickname`, `--group`, the ID file's stem, else the folder's
/// name.
pub fn group_name(cohort: &CohortArgs, folder: &str) -> String {
    if let Some(n) = cohort.group_nickname.as_ref().or(cohort.group.as_ref()) {
        return n.clone();
    }
    if let Some(stem) = cohort.id_file.as_ref().and_then(|f| f.file_stem()) {
        return stem.to_string_lossy().into_owned();
    }
    // A folder argument ending in `/` has no base name, as in the Python tool.
    if folder.ends_with('/') {
        return String::new();
    }
    Path::new(folder)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Concurrent search chains: twice the connections and two more, so neither a chain busy
/// parsing or handing its results to the writer nor one waiting out a retry's backoff (a
/// lone 500) leaves a connection idle. With `max + 2`, 5 % of 500/502 answers at 20 ms
/// made a crawl 1.28 × slower than without faults; with this, see the README's benchmark.
/// Not many more: a chain waiting for a slot between its pages holds fetched pages that a
/// kill would waste.
pub fn worker_count(max_connections: usize) -> usize {
    2 * max_connections + 2
}

/// After a crawl: what was left out of the answers, then either what failed (exit 3) or the
/// accepted failures as a note (see `export::report_crawl`).
pub fn report_crawl(
    outcome: &crate::crawl::CrawlOutcome,
    accepted: bool,
    reporter: &Reporter,
) -> Result<(), AppError> {
    crate::export::report_crawl(outcome, accepted, reporter)
}
