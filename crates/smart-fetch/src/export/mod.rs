//! The managed export (docs/export.md) as a library unit: given its plan, the shared clients, a
//! reporter and a cancellation token, it picks the workdir, runs the crawl or the bulk
//! export (bulk on non-Epic servers unless the plan says otherwise), hydrates the new
//! workdir, names what is gone in `deleted/`, rebuilds the symlinks and marks the workdir
//! complete. `export` wraps one of these; `batch` runs many over one budget.

pub mod selection;

use crate::bulk::{self, BulkPlan, Level};
use crate::cancel::Cancel;
use crate::crawl::{self, BulkPatients, CrawlOutcome, CrawlPlan};
use crate::error::AppError;
use crate::fhir::{Clients, Vendor};
use crate::filters::SinceMode;
use crate::folder::{ManagedMetadata, OutputMetadata, history, symlinks, workdir};
use crate::hydrate::{HydrateOptions, Hydrator, Task, mime};
use crate::report::Reporter;
use crate::resources::ResourceType;
use crate::timestamp;
use selection::{FilterChoice, SinceSource};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// How the data is fetched: `Auto` crawls on Epic and bulk-exports elsewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Auto,
    Bulk,
    Crawl,
}

/// Who is exported: an ID list (crawl by MRN or Patient ID) or a bulk Group / the system.
#[derive(Clone, Debug, Default)]
pub struct Cohort {
    /// IDs to look up; `None` exports the bulk group (or system) instead.
    pub ids: Option<Vec<String>>,
    /// Identifier system of the IDs (MRNs); `None` means Patient IDs.
    pub id_system: Option<String>,
    /// The bulk `--group`.
    pub group: Option<String>,
    /// Group name written to the crawl's `log.ndjson` (Cumulus ETL's export group).
    pub group_name: String,
}

/// Everything one managed export needs besides its clients.
#[derive(Clone, Debug)]
pub struct ExportPlan {
    /// The managed folder (holds `NNN.nickname/` workdirs and the symlinks).
    pub output_dir: PathBuf,
    pub nickname: Option<String>,
    pub mode: Mode,
    pub patient_level: bool,
    /// Selected types, before the server's capabilities narrow them.
    pub types: Vec<ResourceType>,
    pub filters: FilterChoice,
    pub since: Option<String>,
    pub since_mode: Option<SinceMode>,
    pub hydration_tasks: Vec<&'static Task>,
    pub cohort: Cohort,
    pub fhir_url: String,
    pub compress: bool,
    pub max_wait: Duration,
    /// Concurrent search chains of the crawl.
    pub workers: usize,
    pub allow_incomplete: bool,
    pub strict_search: bool,
}

/// A finished export.
#[derive(Clone, Debug)]
pub struct ExportOutcome {
    pub workdir: PathBuf,
}

/// Run one managed export to its end (the caller draws the opening rule and the done line), or
/// until `cancel` fires (`AppError::Interrupted`; the same plan resumes it).
pub async fn run(
    plan: ExportPlan,
    clients: &Clients,
    reporter: &Reporter,
    cancel: &Cancel,
) -> Result<ExportOutcome, AppError> {
    cancel.guard(run_export(plan, clients, reporter)).await
}

async fn run_export(
    mut plan: ExportPlan,
    clients: &Clients,
    reporter: &Reporter,
) -> Result<ExportOutcome, AppError> {
    let output_dir = plan.output_dir.clone();
    let rest = clients.rest.clone();
    rest.open_once().await?;
    let caps = rest.capabilities();
    let epic = caps.vendor() == Vendor::Epic;
    let crawl_mode = match plan.mode {
        Mode::Crawl => true,
        Mode::Bulk => false,
        Mode::Auto if epic => {
            reporter.info(
                "Epic server detected. Defaulting to a 'crawl' instead of a 'bulk' export for non-Patient resources.",
            );
            true
        }
        Mode::Auto => false,
    };
    // Bulk mode works with the bulk client (its own credentials) from here on.
    let (caps, epic) = if crawl_mode {
        (caps, epic)
    } else {
        clients.bulk.open_once().await?;
        let caps = clients.bulk.capabilities();
        let epic = caps.vendor() == Vendor::Epic;
        (caps, epic)
    };

    let selection = selection::select(
        plan.types.clone(),
        &plan.filters,
        plan.since.as_deref(),
        plan.since_mode,
        &caps,
        epic,
        SinceSource {
            managed_dir: Some(&output_dir),
            bulk: !crawl_mode,
        },
        reporter,
    )?;
    // Held until this function returns: one export at a time per managed folder. Taken
    // once the server answered, so a run refused at the start leaves no folder behind.
    let _lock =
        crate::folder::lock::lock(&output_dir).map_err(|e| AppError::Message(e.to_string()))?;
    let choice = workdir::choose(
        &output_dir,
        plan.nickname.as_deref(),
        &selection.context,
        &selection.types,
        &timestamp::today_local(),
    )?;
    reporter.info(&choice.message);
    ManagedMetadata::load(&output_dir)?
        .note_context(&plan.fhir_url, plan.cohort.group.as_deref())?;

    let selected_types = selection.types.clone();
    let context = selection.context.clone();
    let compress = plan.compress;
    let group = plan.cohort.group.as_deref();
    let mut accepted = BTreeSet::new();
    let mut metadata = if crawl_mode {
        let crawl_plan = CrawlPlan {
            workdir: choice.path.clone(),
            managed_dir: Some(output_dir.clone()),
            source_dir: output_dir.clone(),
            types: selection.types,
            context: selection.context,
            effective: selection.effective,
            // Moved, not copied: a cohort of 100,000 MRNs is megabytes.
            ids: plan.cohort.ids.take(),
            id_system: plan.cohort.id_system.clone(),
            group_name: plan.cohort.group_name.clone(),
            fhir_url: plan.fhir_url.clone(),
            compress,
            epic,
            workers: plan.workers,
            bulk: Some(BulkPatients {
                client: clients.bulk.clone(),
                level: level(group, false),
                max_wait: plan.max_wait,
            }),
            allow_incomplete: plan.allow_incomplete,
            strict: plan.strict_search,
            reporter: reporter.clone(),
        };
        let outcome = crawl::run(rest.clone(), crawl_plan).await?;
        // An unfinished crawl stops here: hydrating, deriving deleted/ and linking half a
        // type would present it as whole. The rerun resumes the same workdir.
        report_crawl(&outcome, plan.allow_incomplete, reporter)?;
        accepted = outcome.accepted;
        outcome.metadata
    } else {
        let bulk_plan = BulkPlan {
            workdir: choice.path.clone(),
            fhir_url: plan.fhir_url.clone(),
            level: level(group, plan.patient_level),
            types: selection.types,
            context: selection.context,
            since: selection.since,
            compress,
            max_wait: plan.max_wait,
            managed_dir: Some(output_dir.clone()),
            reporter: reporter.clone(),
        };
        bulk::run(&clients.bulk, bulk_plan).await?.metadata
    };

    let workdir = choice.path.clone();
    // docs/hydration.md#hydration-after-an-export: only this workdir, inputs and outputs alike,
    // default inline mimetypes.
    let hydrator = Hydrator::new(
        rest,
        HydrateOptions {
            workdir: choice.path.clone(),
            source_dir: choice.path.clone(),
            compress,
            mimetypes: mime::allowed(None),
            reporter: reporter.clone(),
        },
    );
    hydrator
        .run_export(&plan.hydration_tasks, &selected_types)
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
            tasks: &plan.hydration_tasks,
            hydration: &hydrator.deletion_evidence(&plan.hydration_tasks),
            reporter,
        },
        compress,
        &mut metadata,
    )?;
    symlinks::rebuild(&output_dir, reporter)?;
    // Reads that failed leave the folder incomplete (the rerun hydrates again and asks only
    // for what is missing), unless the user accepts it.
    if let Some(summary) = hydrator.failure_summary() {
        if !plan.allow_incomplete {
            return Err(AppError::Incomplete(summary));
        }
        reporter.warn(summary);
    }
    // `complete` and its summary in one write: a kill between two writes left `complete`
    // without the summary, which a rerun of `batch` took for a finished export it could not
    // account for.
    metadata.mark_export_complete(&hydrator.failed_reads())?;
    Ok(ExportOutcome { workdir })
}

/// Where a bulk export is kicked off: the group, the patient level, else the whole system.
pub fn level(group: Option<&str>, patient_level: bool) -> Level {
    match group {
        Some(g) if !g.is_empty() => Level::Group(g.to_string()),
        _ if patient_level => Level::Patient,
        _ => Level::System,
    }
}

/// After a crawl: what was left out of the answers, then either what failed (exit 3
/// through `AppError::Incomplete`, the folder left unfinished) or, for failures accepted
/// with `--allow-incomplete`, the same summary as a note. All as warnings (stderr).
pub fn report_crawl(
    outcome: &CrawlOutcome,
    accepted: bool,
    reporter: &Reporter,
) -> Result<(), AppError> {
    for line in outcome.report.notes() {
        reporter.warn(line);
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
        reporter.warn(line);
    }
    Ok(())
}

/// docs/export.md#deleted-resources: record which hydration tasks finished (later exports compare
/// hydrated files only with exports that ran the same ones), then name in `deleted/` what the
/// comparable earlier exports had and this one lacks, and what hydration found gone
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
