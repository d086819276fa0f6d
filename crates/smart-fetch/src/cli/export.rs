//! `export`: the managed export (spec §14). Picks the workdir, runs the crawl or the bulk
//! export (bulk on non-Epic servers unless `--export-mode` says otherwise), hydrates the
//! new workdir, names what is gone in `deleted/`, rebuilds the symlinks and marks the
//! workdir complete.

use super::args::{ExportArgs, ExportMode, General};
use super::{clients, common};
use crate::bulk::{self, BulkPlan};
use crate::console;
use crate::crawl::{self, BulkPatients, CrawlPlan};
use crate::error::AppError;
use crate::fhir::Vendor;
use crate::folder::{ManagedMetadata, OutputMetadata, history, symlinks, workdir};
use crate::hydrate::{HydrateOptions, Hydrator, mime, tasks};
use crate::resources::ResourceType;
use crate::timestamp;

pub async fn run(args: ExportArgs, general: &General) -> Result<(), AppError> {
    console::rule();
    let output_dir = clients::check_output_folder(&args.output_dir)?;
    let clients = clients::prepare(&args.auth, general)?;
    let types = crate::filters::select_types(&args.resources.types)?;
    let hydration_tasks = tasks::select(args.hydration_tasks.as_deref())?;
    clients.read_scope(&types, &hydration_tasks);
    let ids = common::read_cohort_ids(&args.cohort)?;
    let max_wait = super::bulk::wait_limit(args.bulk_timeout.as_deref())?;

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
    // Bulk mode works with the bulk client (its own credentials) from here on.
    let (caps, epic) = if crawl_mode {
        (caps, epic)
    } else {
        clients.bulk.open().await?;
        let caps = clients.bulk.capabilities();
        let epic = caps.vendor() == Vendor::Epic;
        (caps, epic)
    };

    let selection = common::select(
        types,
        &args.resources,
        args.since.as_deref(),
        args.since_mode,
        &caps,
        epic,
        common::SinceSource {
            managed_dir: Some(&output_dir),
            bulk: !crawl_mode,
        },
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

    let selected_types = selection.types.clone();
    let context = selection.context.clone();
    let compress = !args.no_compression;
    let group = args.cohort.group.as_deref();
    let mut accepted = std::collections::BTreeSet::new();
    let mut metadata = if crawl_mode {
        let plan = CrawlPlan {
            workdir: choice.path.clone(),
            managed_dir: Some(output_dir.clone()),
            source_dir: output_dir.clone(),
            types: selection.types,
            context: selection.context,
            effective: selection.effective,
            ids,
            id_system: args.cohort.id_system.clone(),
            group_name: common::group_name(&args.cohort, &args.output_dir),
            fhir_url,
            compress,
            epic,
            workers: common::worker_count(args.auth.max_connections()),
            bulk: Some(BulkPatients {
                client: clients.bulk.clone(),
                level: super::bulk::level(group, false),
                max_wait,
            }),
            allow_incomplete: args.crawl.allow_incomplete,
            strict: args.crawl.strict_search,
        };
        let outcome = crawl::run(rest.clone(), plan).await?;
        // An unfinished crawl stops here: hydrating, deriving deleted/ and linking half a
        // type would present it as whole. The rerun resumes the same workdir.
        common::report_crawl(&outcome, args.crawl.allow_incomplete)?;
        accepted = outcome.accepted;
        outcome.metadata
    } else {
        let plan = BulkPlan {
            workdir: choice.path.clone(),
            fhir_url,
            level: super::bulk::level(group, args.patient_level),
            types: selection.types,
            context: selection.context,
            since: selection.since,
            compress,
            max_wait,
            managed_dir: Some(output_dir.clone()),
        };
        bulk::run(&clients.bulk, plan).await?.metadata
    };

    let workdir = choice.path.clone();
    // Spec §14.6: only this workdir, inputs and outputs alike, default inline mimetypes.
    let hydrator = Hydrator::new(
        rest,
        HydrateOptions {
            workdir: choice.path.clone(),
            source_dir: choice.path.clone(),
            compress,
            mimetypes: mime::allowed(None),
        },
    );
    hydrator
        .run_export(&hydration_tasks, &selected_types)
        .await?;

    // A type with accepted failures lacks some patients' resources: they are not gone.
    let whole_types: Vec<ResourceType> = selected_types
        .iter()
        .copied()
        .filter(|t| !accepted.contains(t))
        .collect();
    note_deleted_resources(
        &history::CurrentExport {
            managed_dir: &output_dir,
            workdir: &workdir,
            context: &context,
            searched: &searched_types(&whole_types, crawl_mode, epic),
            accepted: &accepted.iter().copied().collect::<Vec<_>>(),
            tasks: &hydration_tasks,
            hydration: &hydrator.deletion_evidence(&hydration_tasks),
        },
        compress,
        &mut metadata,
    )?;
    symlinks::rebuild(&output_dir)?;
    // Reads that failed leave the folder incomplete (the rerun hydrates again and asks only
    // for what is missing), unless the user accepts it.
    if let Some(summary) = hydrator.failure_summary() {
        if !args.crawl.allow_incomplete {
            return Err(AppError::Incomplete(summary));
        }
        eprintln!("{summary}");
    }
    metadata.mark_complete()?;
    metadata.mark_export_complete(&hydrator.failed_reads())?;
    console::print_done();
    Ok(())
}

/// Spec §14.8: record which hydration tasks finished (later exports compare hydrated files
/// only with exports that ran the same ones), then name in `deleted/` what the comparable
/// earlier exports had and this one lacks, and what hydration found gone
/// (`folder::history` says what "comparable" means).
fn note_deleted_resources(
    current: &history::CurrentExport,
    compress: bool,
    metadata: &mut OutputMetadata,
) -> Result<(), AppError> {
    metadata.set_hydration_tasks(&current.hydration.completed)?;
    for (t, ids) in history::deleted_resources(current) {
        history::write_deleted(current.workdir, t, &ids, compress)?;
    }
    Ok(())
}

/// The selected types this run searched itself. Types Epic cannot search by patient are
/// only hydrated, and crawled Patients were compared by the crawl itself from the complete
/// ID lookup.
fn searched_types(types: &[ResourceType], crawl_mode: bool, epic: bool) -> Vec<ResourceType> {
    let not_searched = |t: ResourceType| {
        crawl_mode
            && (t == ResourceType::Patient
                || epic && matches!(t, ResourceType::EpisodeOfCare | ResourceType::Specimen))
    };
    types
        .iter()
        .copied()
        .filter(|t| !not_searched(*t))
        .collect()
}
