//! `export`: the managed export (spec §14). Picks the workdir, runs the crawl, rebuilds the
//! symlinks and marks the workdir complete. Bulk mode, hydration and deleted-resource
//! detection arrive with their own issues.

use super::args::{ExportArgs, ExportMode, General};
use super::{clients, common};
use crate::console;
use crate::crawl::{self, CrawlPlan};
use crate::error::AppError;
use crate::fhir::Vendor;
use crate::folder::{ManagedMetadata, symlinks, workdir};
use crate::timestamp;

pub async fn run(args: ExportArgs, general: &General) -> Result<(), AppError> {
    console::rule();
    let output_dir = clients::check_output_folder(&args.output_dir)?;
    let clients = clients::prepare(&args.auth, general)?;
    let types = crate::filters::select_types(&args.resources.types)?;
    if let Some(tasks) = &args.hydration_tasks {
        check_hydration_tasks(tasks)?;
    }
    let ids = common::read_cohort_ids(&args.cohort)?;

    let rest = clients.rest.clone();
    rest.open().await?;
    let caps = rest.capabilities();
    let epic = caps.vendor() == Vendor::Epic;
    let crawl_mode = match args.export_mode {
        ExportMode::Crawl => true,
        ExportMode::Bulk => false,
        ExportMode::Auto if epic => {
            println!(
                "Epic server detected. Defaulting to a 'crawl' instead of a 'bulk' export for non-Patient resources."
            );
            true
        }
        ExportMode::Auto => false,
    };
    if !crawl_mode {
        return Err(AppError::NotYet(
            "Bulk export is not available yet in this version. Use --export-mode crawl.".into(),
        ));
    }

    let selection = common::select(
        types,
        &args.resources,
        args.since.as_deref(),
        args.since_mode,
        &caps,
        epic,
    )?;
    let choice = workdir::choose(
        &output_dir,
        args.nickname.as_deref(),
        &selection.context,
        &selection.types,
        &timestamp::today_local(),
    )?;
    println!("{}", choice.message);
    let fhir_url = args.auth.fhir_url.clone().unwrap_or_default();
    ManagedMetadata::load(&output_dir)?.note_context(&fhir_url, args.cohort.group.as_deref())?;

    let plan = CrawlPlan {
        workdir: choice.path,
        source_dir: output_dir.clone(),
        types: selection.types,
        context: selection.context,
        effective: selection.effective,
        ids,
        id_system: args.cohort.id_system.clone(),
        group_name: common::group_name(&args.cohort, &args.output_dir),
        fhir_url,
        compress: !args.no_compression,
        epic,
        workers: common::worker_count(args.auth.max_connections()),
    };
    let outcome = crawl::run(rest, plan).await?;
    let mut metadata = outcome.metadata;

    symlinks::rebuild(&output_dir)?;
    metadata.mark_complete()?;
    console::print_done();
    Ok(())
}

/// Hydration runs with a later issue; until then only the names are checked (spec §15.1),
/// so scripts written for the Python tool keep working.
fn check_hydration_tasks(value: &str) -> Result<(), AppError> {
    const GROUPS: [&str; 8] = [
        "episodeofcare",
        "inline",
        "location",
        "medication",
        "observation",
        "organization",
        "practitioner",
        "specimen",
    ];
    let lower = value.to_lowercase();
    let tokens: Vec<&str> = lower.split(',').collect();
    let help = || {
        println!("These hydration tasks are supported:");
        for name in ["all", "none"].iter().chain(GROUPS.iter()) {
            println!("  {name}");
        }
    };
    if tokens.contains(&"help") {
        help();
        return Err(AppError::Exit(0));
    }
    if tokens.contains(&"none") || tokens.contains(&"all") {
        return Ok(());
    }
    if let Some(bad) = tokens.iter().find(|t| !GROUPS.contains(t)) {
        println!("Unknown hydration task provided: {bad}");
        println!();
        help();
        return Err(AppError::Exit(2));
    }
    Ok(())
}
