//! `batch`: export every group file of a folder into `OUTPUT_ROOT/<group>/`, as `export`
//! would, in one process. All groups share one set of clients (one token, one
//! CapabilityStatement, one connection budget with one adaptive controller), and at most
//! `parallel` groups are open at once so that groups *finish* one after another. A group that
//! fails does not stop the others; a group already complete for the nickname is skipped, so
//! rerunning the same command continues where the last run stopped.

pub mod progress;
pub mod shard;
pub mod summary;

use crate::cancel::Cancel;
use crate::error::AppError;
use crate::export::{self, Cohort, ExportPlan};
use crate::fhir::{Clients, FhirError};
use crate::report::Reporter;
use crate::status;
pub use shard::{Shard, ShardError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
pub use summary::{GroupRow, GroupState, Summary};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One group: its name (the file's name, which becomes its folder's name and the export
/// group name in `log.ndjson`) and its file of MRNs (or Patient IDs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("Could not read the groups folder {0}: {1}. Check --groups.")]
    GroupsDir(PathBuf, std::io::Error),
    #[error(
        "The groups folder {0} holds no group files. Write them with 'smart-fetch groups split'."
    )]
    NoGroups(PathBuf),
    #[error("Could not create {0}: {1}")]
    OutputRoot(PathBuf, std::io::Error),
    #[error("Could not write the batch summary {0}: {1}")]
    Summary(PathBuf, std::io::Error),
}

/// The group files of `dir`, in name order: every regular file (or link to one) directly in
/// it, except hidden files, unfinished writes (`*.tmp`) and the lists of removed MRNs that
/// `groups split` leaves there.
pub fn list_groups(dir: &Path) -> Result<Vec<Group>, BatchError> {
    let entries = std::fs::read_dir(dir).map_err(|e| BatchError::GroupsDir(dir.into(), e))?;
    let mut groups: Vec<Group> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let path = entry.path();
            let bookkeeping = name.starts_with('.')
                || name.ends_with(".tmp")
                || crate::groups::is_removed_list(&name);
            (!bookkeeping && std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
                .then_some(Group { name, file: path })
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    if groups.is_empty() {
        return Err(BatchError::NoGroups(dir.into()));
    }
    Ok(groups)
}

/// A batch: the groups to export and the export every group gets.
pub struct BatchPlan {
    pub output_root: PathBuf,
    pub nickname: String,
    pub groups: Vec<Group>,
    /// Groups open at once.
    pub parallel: usize,
    pub shard: Option<Shard>,
    /// The export of one group, less what differs per group (folder, IDs, group name).
    pub template: ExportPlan,
    /// How often a progress line is written (`None`: never).
    pub progress_every: Option<std::time::Duration>,
}

/// The leaf folder of `nickname` in a group's managed folder, as `status` reads it (only
/// reads): whether its whole export finished, and what it holds.
pub fn leaf_status(group_dir: &Path, nickname: &str) -> Option<status::Leaf> {
    if !group_dir.is_dir() {
        return None;
    }
    status::read(group_dir, Some(nickname))
        .ok()?
        .groups
        .into_iter()
        .next()?
        .leaf
}

/// Fill a summary row's figures from what the group's leaf folder holds.
fn note_counts(row: &mut GroupRow, leaf: &status::Leaf) {
    row.folder = Some(leaf.path.clone());
    row.patients = Some(leaf.counts.patients);
    row.resources = Some(leaf.counts.resources_total());
    row.failed_searches = Some(match &leaf.state {
        status::LeafState::Failed(f) => f.searches().values().sum(),
        status::LeafState::Complete(c) => c.accepted_failed_searches().values().sum(),
        _ => 0,
    });
}

/// Run the batch until every group has had its turn, or `cancel` fires. Always returns the
/// summary (also written to disk); the caller turns it into an exit status.
pub async fn run(
    plan: BatchPlan,
    clients: &Clients,
    reporter: &Reporter,
    cancel: &Cancel,
) -> Result<Summary, BatchError> {
    std::fs::create_dir_all(&plan.output_root)
        .map_err(|e| BatchError::OutputRoot(plan.output_root.clone(), e))?;
    let shard_text = plan.shard.map(|s| s.to_string());
    let summary_path = Summary::path(&plan.output_root, &plan.nickname, shard_text.as_deref());
    let mut summary = Summary {
        nickname: plan.nickname.clone(),
        shard: shard_text,
        groups: plan
            .groups
            .iter()
            .map(|g| GroupRow {
                group: g.name.clone(),
                folder: None,
                state: GroupState::NotStarted,
                skipped: false,
                patients: None,
                resources: None,
                failed_searches: None,
                wall_seconds: 0.0,
                error: None,
            })
            .collect(),
    };
    reporter.info(format!(
        "Exporting {} groups into {}, {} at a time.",
        plan.groups.len(),
        plan.output_root.display(),
        plan.parallel.max(1)
    ));

    let tally = progress::Tally::new(plan.groups.len());
    // On a terminal, one live line redrawn every second; elsewhere (a scheduler's log) a
    // line every `progress_every`. The group reporters are scoped and draw none of their own.
    let live = reporter.progress_bar(String::new());
    let every = if live.is_live() {
        Some(std::time::Duration::from_secs(1))
    } else {
        plan.progress_every
    };
    let ticker = every.map(|every| {
        let mut view = progress::View::new(
            tally.clone(),
            clients.budget.clone(),
            reporter.counters().clone(),
        );
        let reporter = reporter.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let line = view.line();
                if live.is_live() {
                    live.set_message(line);
                } else {
                    reporter.info(line);
                }
            }
        })
    });

    // A fatal server problem (unreachable, refused credentials) ends the batch: every
    // further group would fail the same way.
    let stop = Cancel::new();
    let template = Arc::new(plan.template);
    let mut running: JoinSet<(usize, GroupRow)> = JoinSet::new();
    let mut next = 0;
    let mut finished = 0;
    let total = plan.groups.len();
    loop {
        while running.len() < plan.parallel.max(1)
            && next < total
            && !cancel.is_cancelled()
            && !stop.is_cancelled()
        {
            let index = next;
            next += 1;
            let group = plan.groups[index].clone();
            let group_dir = plan.output_root.join(&group.name);
            if let Some(leaf) = leaf_status(&group_dir, &plan.nickname)
                .filter(|l| l.state.state() == status::State::Complete)
            {
                let row = &mut summary.groups[index];
                row.state = GroupState::Complete;
                row.skipped = true;
                note_counts(row, &leaf);
                finished += 1;
                tally.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            tally.running.fetch_add(1, Ordering::Relaxed);
            let template = template.clone();
            let clients = clients.clone();
            let reporter = reporter.scoped(&group.name);
            let cancel = cancel.clone();
            let stop = stop.clone();
            let nickname = plan.nickname.clone();
            running.spawn(async move {
                let row = run_group(
                    &group, group_dir, &nickname, &template, &clients, &reporter, &cancel, &stop,
                )
                .await;
                (index, row)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        finished += 1;
        tally.running.fetch_sub(1, Ordering::Relaxed);
        if let Ok((index, row)) = joined {
            match row.state {
                GroupState::Complete => tally.completed.fetch_add(1, Ordering::Relaxed),
                _ => tally.failed.fetch_add(1, Ordering::Relaxed),
            };
            reporter.info(format!(
                "{} {} ({finished} of {total} groups done).",
                row.group,
                row.state.as_str()
            ));
            summary.groups[index] = row;
        }
        summary
            .write(&summary_path)
            .map_err(|e| BatchError::Summary(summary_path.clone(), e))?;
    }
    if let Some(ticker) = ticker {
        ticker.abort();
        // Awaited so the live line (dropped with the task) is gone before the summary.
        let _ = ticker.await;
    }
    summary
        .write(&summary_path)
        .map_err(|e| BatchError::Summary(summary_path.clone(), e))?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn run_group(
    group: &Group,
    group_dir: PathBuf,
    nickname: &str,
    template: &ExportPlan,
    clients: &Clients,
    reporter: &Reporter,
    cancel: &Cancel,
    stop: &Cancel,
) -> GroupRow {
    let started = Instant::now();
    let mut row = GroupRow {
        group: group.name.clone(),
        folder: None,
        state: GroupState::Failed,
        skipped: false,
        patients: None,
        resources: None,
        failed_searches: None,
        wall_seconds: 0.0,
        error: None,
    };
    let result = async {
        // The group's folder first, so `status` lists a group that failed before its export
        // began (an unreadable group file) as not started rather than not at all.
        std::fs::create_dir_all(&group_dir).map_err(|e| {
            AppError::Message(format!("Could not create {}: {e}", group_dir.display()))
        })?;
        // Said in the batch's terms (the group file, not `--id-file`) before the reader runs.
        if let Err(e) = std::fs::read_to_string(&group.file) {
            return Err(AppError::Message(format!(
                "Could not read the group file {}: {e}. Fix or replace the file (one ID a line, UTF-8), then rerun.",
                group.file.display()
            )));
        }
        let ids = crate::crawl::cohort::read_ids(None, Some(&group.file))?;
        if ids.is_empty() {
            return Err(AppError::Message(format!(
                "The group file {} holds no IDs.",
                group.file.display()
            )));
        }
        let plan = ExportPlan {
            output_dir: group_dir.clone(),
            cohort: Cohort {
                ids: Some(ids),
                id_system: template.cohort.id_system.clone(),
                group: None,
                group_name: group.name.clone(),
            },
            ..template.clone()
        };
        export::run(plan, clients, reporter, cancel).await
    }
    .await;
    row.wall_seconds = started.elapsed().as_secs_f64();
    if let Some(leaf) = leaf_status(&group_dir, nickname) {
        note_counts(&mut row, &leaf);
    }
    match result {
        Ok(outcome) => {
            row.state = GroupState::Complete;
            row.folder = Some(outcome.workdir);
        }
        Err(AppError::Interrupted) => row.state = GroupState::Interrupted,
        Err(error) => {
            if is_fatal(&error) {
                stop.cancel();
            }
            let message = error.to_string();
            let text = crate::text::printable(&message);
            reporter.warn(format!("Group {} failed: {text}", group.name));
            row.error = Some(text.lines().next().unwrap_or_default().to_string());
        }
    }
    row
}

/// Errors that every other group would meet too.
fn is_fatal(error: &AppError) -> bool {
    let fhir = |e: &FhirError| e.is_fatal();
    match error {
        AppError::Fhir(e) => fhir(e),
        AppError::Crawl(crate::crawl::CrawlError::Fhir(e)) => fhir(e),
        AppError::Hydrate(crate::hydrate::HydrateError::Fhir(e)) => fhir(e),
        _ => false,
    }
}
