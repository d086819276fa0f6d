//! `delta SOURCE --nickname NAME --to FOLDER [--previous NAME] [--parallel N]`: checks the
//! arguments, runs `crate::delta` off the async threads (it reads and writes files only)
//! and turns its results into the run's outcome. One group (SOURCE is a managed folder):
//! its line, or its refusal as the run's one-line error (exit 1). An output root: a line
//! per group as each ends, totals, and exit 3 naming the groups without a delta.

use super::args::DeltaArgs;
use super::clients;
use crate::console::thousands;
use crate::delta::{self, GroupResult, RootOutcome, RootPlan};
use crate::error::AppError;
use crate::report::Reporter;
use std::path::PathBuf;

pub async fn run(args: DeltaArgs, reporter: &Reporter) -> Result<(), AppError> {
    clients::check_input_folder(&args.source)?;
    clients::check_output_folder(&args.to)?;
    if args.parallel == 0 {
        return Err(AppError::Message(
            "--parallel must be at least 1.".to_string(),
        ));
    }
    let plan = RootPlan {
        source: PathBuf::from(&args.source),
        nickname: args.nickname.clone(),
        previous: args.previous.clone(),
        to: PathBuf::from(&args.to),
        parallel: args.parallel,
    };
    let worker = reporter.clone();
    let outcome = tokio::task::spawn_blocking(move || delta::run_root(&plan, &worker))
        .await
        .map_err(|e| AppError::Message(format!("The delta stopped unexpectedly: {e}")))??;
    finish(outcome, &args, reporter)
}

fn finish(outcome: RootOutcome, args: &DeltaArgs, reporter: &Reporter) -> Result<(), AppError> {
    let RootOutcome {
        single_group,
        groups: mut results,
    } = outcome;
    if single_group && let Some(only) = results.pop() {
        return only.result.map(|_| ()).map_err(AppError::from);
    }
    if results.is_empty() {
        return Err(AppError::Message(format!(
            "No group folders found in '{}'.",
            args.source
        )));
    }
    let (done, failed): (Vec<&GroupResult>, Vec<&GroupResult>) =
        results.iter().partition(|r| r.result.is_ok());
    let manifests: Vec<&delta::manifest::Manifest> = done
        .iter()
        .filter_map(|r| r.result.as_ref().ok().map(|o| &o.manifest))
        .collect();
    let (kept, all) = delta::totals(manifests.iter().copied());
    let share = delta::share(kept, all);
    reporter.info(format!(
        "Deltas of {} of {} groups in '{}': {} of {} resources{share} new or changed.",
        done.len(),
        results.len(),
        args.to,
        thousands(kept),
        thousands(all),
    ));
    if failed.is_empty() {
        return Ok(());
    }
    let refused = failed
        .iter()
        .filter(|r| matches!(&r.result, Err(e) if e.is_refusal()))
        .count();
    let names: Vec<&str> = failed.iter().map(|r| r.group.as_str()).collect();
    Err(AppError::Incomplete(format!(
        "{} of {} groups have no delta ({} refused, {} failed; each said why above): {}. Load those groups' exports in full, or fix them and run the same command again.",
        failed.len(),
        results.len(),
        refused,
        failed.len() - refused,
        names.join(", ")
    )))
}
