//! `batch`: the groups folder, the shard and the export flags parsed into a
//! `batch::BatchPlan`; one set of clients over the shard's share of `--max-connections`;
//! the per-group table at the end and the exit status (0 only when every group is complete).

use super::args::{BatchArgs, CohortArgs, ExportArgs};
use super::clients;
use crate::batch::{self, BatchPlan, GroupState, Shard};
use crate::cancel::Cancel;
use crate::error::AppError;
use crate::fhir::Budget;
use crate::report::Reporter;

pub async fn run(args: BatchArgs, reporter: &Reporter, cancel: &Cancel) -> Result<(), AppError> {
    let nickname = args
        .nickname
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            AppError::Message(
                "batch needs --nickname (e.g. --nickname 2026-03): it names every group's folder for this export.".into(),
            )
        })?;
    let groups_dir = args.groups.clone().ok_or_else(|| {
        AppError::Message(
            "batch needs --groups DIR, the folder of group files (see 'smart-fetch groups split')."
                .into(),
        )
    })?;
    let output_root = clients::check_output_folder(&args.output_root)?;
    let shard = match &args.shard {
        Some(text) => Some(Shard::parse(text).map_err(|e| AppError::Message(e.to_string()))?),
        None => Shard::from_slurm(|k| std::env::var(k).ok())
            .map_err(|e| AppError::Message(e.to_string()))?,
    };
    let all = batch::list_groups(&groups_dir).map_err(|e| AppError::Message(e.to_string()))?;
    let groups: Vec<_> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.takes(*i)))
        .map(|(_, g)| g)
        .collect();

    let total_connections = args.auth.max_connections();
    let connections = shard.map_or(total_connections, |s| s.share(total_connections));
    let clients = clients::prepare_with_budget(&args.auth, Budget::new(connections), reporter)?;
    let export_args = ExportArgs {
        output_dir: args.output_root.clone(),
        nickname: Some(nickname.clone()),
        export_mode: args.export_mode,
        patient_level: false,
        bulk_timeout: args.bulk_timeout.clone(),
        since: args.since.clone(),
        since_mode: args.since_mode,
        hydration_tasks: args.hydration_tasks.clone(),
        no_compression: args.no_compression,
        crawl: args.crawl.clone(),
        auth: args.auth.clone(),
        cohort: CohortArgs {
            id_system: args.id_system.clone(),
            ..CohortArgs::default()
        },
        resources: args.resources.clone(),
    };
    let mut template = super::export::plan(export_args, &clients, reporter)?;
    template.workers = super::common::worker_count(connections);
    if let Some(s) = shard {
        reporter.info(format!(
            "Shard {s}: {} groups, {connections} of {total_connections} connections.",
            groups.len()
        ));
    }
    if groups.is_empty() {
        reporter.info("No groups in this shard.");
        return Ok(());
    }
    let plan = BatchPlan {
        output_root,
        nickname,
        groups,
        parallel: usize::from(args.parallel_groups),
        shard,
        template,
        progress_every: Some(progress_every()),
    };
    let summary = batch::run(plan, &clients, reporter, cancel)
        .await
        .map_err(|e| AppError::Message(e.to_string()))?;
    for line in summary.table() {
        reporter.info(line);
    }
    if cancel.is_cancelled() {
        return Err(AppError::Interrupted);
    }
    if summary.all_complete() {
        reporter.done();
        return Ok(());
    }
    let not_complete: Vec<&str> = summary
        .groups
        .iter()
        .filter(|g| g.state != GroupState::Complete)
        .map(|g| g.group.as_str())
        .collect();
    Err(AppError::Incomplete(format!(
        "{} of {} groups are not complete ({}); rerun the same command to continue them.",
        not_complete.len(),
        summary.groups.len(),
        not_complete.join(", ")
    )))
}

/// Environment variable that sets the seconds between progress lines (default 60), for
/// tests and for sites whose scheduler logs want more or fewer lines.
pub const PROGRESS_SECS_ENV: &str = "SMART_FETCH_PROGRESS_SECS";

pub(crate) fn progress_every() -> std::time::Duration {
    std::env::var(PROGRESS_SECS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.1 && *s <= 86_400.0)
        .map_or(
            crate::batch::progress::PLAIN_EVERY,
            std::time::Duration::from_secs_f64,
        )
}
