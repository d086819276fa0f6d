//! Steps shared by `export` and `crawl`: reading the cohort IDs, type and filter selection
//! against the server, the since message, the group name for the crawl log, and what a
//! crawl reports at its end.

use super::args::{CohortArgs, ResourceArgs, SinceModeArg};
use crate::crawl::cohort;
use crate::error::AppError;
use crate::fhir::Capabilities;
use crate::filters::{self, Filters, Since};
use crate::folder::{ExportContext, history};
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

/// What to export, once the server's capabilities are known: the context stored in
/// `.metadata`, the since value to apply and the effective search parameters.
pub struct Selection {
    pub types: Vec<ResourceType>,
    pub context: ExportContext,
    pub since: Since,
    pub effective: Filters,
}

/// Where a run stands: `--since auto` needs the managed folder's earlier exports, and bulk
/// runs say their single `_since` (spec §6.9).
pub struct SinceSource<'a> {
    pub managed_dir: Option<&'a Path>,
    pub bulk: bool,
}

pub fn select(
    types: Vec<ResourceType>,
    resources: &ResourceArgs,
    since: Option<&str>,
    since_mode: SinceModeArg,
    caps: &Capabilities,
    epic: bool,
    source: SinceSource<'_>,
) -> Result<Selection, AppError> {
    let types = filters::limit_to_server(types, caps);
    let base = filters::build_filters(
        &resources.type_filters,
        &types,
        !resources.no_default_filters,
        epic,
    )?;
    let mode = filters::since_mode(filters::parse_since_mode(since_mode), since, caps);
    let mut since_resources = filters::since_resources(&types, mode, caps);
    let since_value = match since {
        Some("auto") => {
            let Some(dir) = source.managed_dir else {
                // The Python tool sends `auto` literally here (quirk 5); refuse instead.
                return Err(AppError::Message(
                    "--since auto needs the earlier exports of a managed folder: use it with 'export', or give a timestamp.".into(),
                ));
            };
            let probe = ExportContext {
                filters: base.clone(),
                since: Some("auto".into()),
                since_mode: mode,
                since_resources: Default::default(),
            };
            let per_type = history::since_auto(dir, &probe);
            if per_type.is_empty() {
                return Err(AppError::Message(
                    "Could not detect a since value to use from previous exports.\nTry without a --since parameter, or provide a specific timestamp.".into(),
                ));
            }
            // A type never exported before is exported in full: record it as such, so
            // symlinks and deleted-resource detection treat it as a full export.
            since_resources.retain(|t| per_type.contains_key(t));
            Since::PerType(per_type)
        }
        Some(s) => Since::Literal(s.to_string()),
        None => Since::None,
    };
    let effective = filters::effective_params(&base, &since_value, mode, caps, source.bulk);
    match &since_value {
        Since::PerType(per_type) => {
            let bulk_since = filters::bulk_since(&since_value, mode, &types);
            match (source.bulk, bulk_since) {
                (true, Some(v)) => println!("Using since value of '{v}'."),
                (true, None) if mode != Some(filters::SinceMode::Created) => {}
                _ => {
                    let mut by_name: Vec<_> = per_type.iter().collect();
                    by_name.sort_by_key(|(t, _)| t.as_str());
                    for (t, ts) in by_name {
                        println!(
                            "Using since value of '{}' for {t}.",
                            crate::timestamp::isoformat(ts)
                        );
                    }
                }
            }
        }
        Since::Literal(s) => println!("Using since value of '{s}'."),
        Since::None => {}
    }
    Ok(Selection {
        types,
        context: ExportContext {
            filters: base,
            since: since.map(str::to_string),
            since_mode: mode,
            since_resources,
        },
        since: since_value,
        effective,
    })
}

/// Spec §12.8: `--group-nickname`, `--group`, the ID file's stem, else the folder's name.
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

/// Concurrent search chains: two more than the connections, so a chain busy parsing or
/// handing its results to the writer never leaves a connection idle. Not more: a chain
/// waiting for a slot between its pages holds fetched pages that a kill would waste.
pub fn worker_count(max_connections: usize) -> usize {
    max_connections + 2
}

/// After a crawl: print what was left out of the answers, then either what failed (exit 3
/// through `AppError::Incomplete`, the folder left unfinished) or, for failures accepted
/// with `--allow-incomplete`, the same summary as a note. All on stderr.
pub fn report_crawl(outcome: &crate::crawl::CrawlOutcome, accepted: bool) -> Result<(), AppError> {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    for line in outcome.report.notes() {
        let _ = writeln!(stderr, "{line}");
    }
    let lines = outcome.report.failure_lines(accepted);
    if !outcome.finished {
        let summary = if lines.is_empty() {
            "Some resource types could not be finished; rerun the same command to retry them"
                .to_string()
        } else {
            lines.join("\n")
        };
        return Err(AppError::Incomplete(summary));
    }
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
    Ok(())
}
