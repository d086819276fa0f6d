//! `crawl`: a standalone crawl into one output folder (docs/crawl.md#the-crawl-command): no managed
//! folder, no symlinks, no hydration. A crawl with failed searches (or a type stopped on other
//! patients' data) leaves the folder incomplete and exits 3 (`AppError::Incomplete`).

use super::args::CrawlArgs;
use super::{clients, common};
use crate::crawl::{self, BulkPatients, CrawlPlan};
use crate::error::AppError;
use crate::fhir::Vendor;
use crate::report::Reporter;

pub async fn run(args: CrawlArgs, reporter: &Reporter) -> Result<(), AppError> {
    reporter.rule();
    let output_dir = clients::check_output_folder(&args.output_dir)?;
    let source_dir = match &args.source_dir {
        Some(dir) => clients::check_input_folder(dir)?,
        None => output_dir.clone(),
    };
    let max_wait = super::bulk::wait_limit(args.bulk_timeout.as_deref())?;
    let clients = clients::prepare(&args.auth, reporter)?;
    let types = crate::filters::select_types(&args.resources.types, reporter)?;
    clients.read_scope(&types, &[]);
    let ids = common::read_cohort_ids(&args.cohort)?;

    let rest = clients.rest.clone();
    rest.open().await?;
    let caps = rest.capabilities();
    let epic = caps.vendor() == Vendor::Epic;
    let selection = common::select(
        types,
        &args.resources,
        args.since.as_deref(),
        args.since_mode,
        &caps,
        epic,
        common::SinceSource {
            managed_dir: None,
            bulk: false,
        },
        reporter,
    )?;
    let folder_arg = args.source_dir.as_deref().unwrap_or(&args.output_dir);
    let plan = CrawlPlan {
        workdir: output_dir,
        managed_dir: None,
        source_dir,
        types: selection.types,
        context: selection.context,
        effective: selection.effective,
        ids,
        id_system: args.cohort.id_system.clone(),
        group_name: common::group_name(&args.cohort, folder_arg),
        fhir_url: args.auth.fhir_url.clone().unwrap_or_default(),
        compress: !args.no_compression,
        epic,
        workers: common::worker_count(args.auth.max_connections()),
        bulk: Some(BulkPatients {
            client: clients.bulk.clone(),
            level: super::bulk::level(args.cohort.group.as_deref(), false),
            max_wait,
        }),
        allow_incomplete: args.crawl.allow_incomplete,
        strict: args.crawl.strict_search,
        reporter: reporter.clone(),
    };
    let outcome = crawl::run(rest, plan).await?;
    common::report_crawl(&outcome, args.crawl.allow_incomplete, reporter)?;
    let mut metadata = outcome.metadata;
    if args.bundle {
        // Overwrites an earlier Bundle; a folder with nothing to bundle is fine here.
        crate::bundle::bundle_folder(metadata.dir(), !args.no_compression, true, reporter)?;
    }
    metadata.mark_complete()?;
    reporter.done();
    Ok(())
}
