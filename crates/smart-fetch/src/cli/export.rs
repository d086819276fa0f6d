//! `export`: parse the managed export's arguments into an `export::ExportPlan` and run it
//! with this process's clients, the run's reporter and its cancellation token.

use super::args::{ExportArgs, ExportMode};
use super::{clients, common};
use crate::cancel::Cancel;
use crate::error::AppError;
use crate::export::selection::FilterChoice;
use crate::export::{self, Cohort, ExportPlan, Mode};
use crate::fhir::Clients;
use crate::hydrate::tasks;
use crate::report::Reporter;

pub async fn run(args: ExportArgs, reporter: &Reporter, cancel: &Cancel) -> Result<(), AppError> {
    // The rule line comes first, like the Python tool's, even when an argument is refused.
    reporter.rule();
    let (plan, clients) = prepare(args, reporter)?;
    export::run(plan, &clients, reporter, cancel).await?;
    reporter.done();
    Ok(())
}

/// Validate the arguments (before any request) into a plan and its clients (which report
/// to `reporter`).
pub fn prepare(args: ExportArgs, reporter: &Reporter) -> Result<(ExportPlan, Clients), AppError> {
    clients::check_output_folder(&args.output_dir)?;
    let clients = clients::prepare(&args.auth, reporter)?;
    let plan = plan(args, &clients, reporter)?;
    Ok((plan, clients))
}

/// The plan of one managed export from its arguments; names the SMART scopes on `clients`.
/// `--type help` and `--hydration-tasks help` print their listing through `reporter`.
pub fn plan(
    args: ExportArgs,
    clients: &Clients,
    reporter: &Reporter,
) -> Result<ExportPlan, AppError> {
    let output_dir = clients::check_output_folder(&args.output_dir)?;
    let types = crate::filters::select_types(&args.resources.types, reporter)?;
    let hydration_tasks = tasks::select(args.hydration_tasks.as_deref(), reporter)?;
    clients.read_scope(&types, &hydration_tasks);
    let ids = common::read_cohort_ids(&args.cohort)?;
    let max_wait = super::bulk::wait_limit(args.bulk_timeout.as_deref())?;
    Ok(ExportPlan {
        output_dir,
        nickname: args.nickname.clone(),
        mode: match args.export_mode {
            ExportMode::Auto => Mode::Auto,
            ExportMode::Bulk => Mode::Bulk,
            ExportMode::Crawl => Mode::Crawl,
        },
        patient_level: args.patient_level,
        types,
        filters: FilterChoice {
            type_filters: args.resources.type_filters.clone(),
            default_filters: !args.resources.no_default_filters,
        },
        since: args.since.clone(),
        since_mode: args.since_mode.mode(),
        hydration_tasks,
        cohort: Cohort {
            ids,
            id_system: args.cohort.id_system.clone(),
            group: args.cohort.group.clone(),
            group_name: common::group_name(&args.cohort, &args.output_dir),
        },
        fhir_url: args.auth.fhir_url.clone().unwrap_or_default(),
        compress: !args.no_compression,
        max_wait,
        workers: common::worker_count(args.auth.max_connections()),
        allow_incomplete: args.crawl.allow_incomplete,
        strict_search: args.crawl.strict_search,
    })
}
