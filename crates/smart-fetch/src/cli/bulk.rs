//! `bulk`: a bare bulk export into one output folder (docs/bulk.md#the-bulk-command): no managed
//! folder, no hydration, no symlinks. `--bundle` turns the folder into one Bundle file afterwards;
//! `--cancel` deletes the server's job and forgets it here.

use super::args::BulkArgs;
use super::{clients, common};
use crate::bulk::{self, BulkPlan, Level};
use crate::error::AppError;
use crate::fhir::Vendor;
use crate::filters::Since;
use crate::report::Reporter;
use std::time::Duration;

/// `--bulk-timeout`, or the 30-day default.
pub fn wait_limit(arg: Option<&str>) -> Result<Duration, AppError> {
    match arg {
        None => Ok(bulk::DEFAULT_WAIT_LIMIT),
        Some(text) => bulk::parse_wait_limit(text).map_err(AppError::Message),
    }
}

/// Where the export is kicked off: `--group`, `--patient-level`, else the whole system.
pub fn level(group: Option<&str>, patient_level: bool) -> Level {
    match group {
        Some(g) if !g.is_empty() => Level::Group(g.to_string()),
        _ if patient_level => Level::Patient,
        _ => Level::System,
    }
}

pub async fn run(args: BulkArgs, reporter: &Reporter) -> Result<(), AppError> {
    reporter.rule();
    let output_dir = clients::check_output_folder(&args.output_dir)?;
    let max_wait = wait_limit(args.bulk_timeout.as_deref())?;
    let clients = clients::prepare(&args.auth, reporter)?;
    let client = clients.bulk.clone();
    if args.cancel {
        client.open().await?;
        bulk::cancel(&client, &output_dir, &args.output_dir, reporter).await?;
        return Ok(());
    }
    let types = crate::filters::select_types(&args.resources.types, reporter)?;
    clients.read_scope(&types, &[]);

    client.open().await?;
    let caps = client.capabilities();
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
            bulk: true,
        },
        reporter,
    )?;
    let plan = BulkPlan {
        workdir: output_dir,
        fhir_url: args.auth.fhir_url.clone().unwrap_or_default(),
        level: level(args.group.as_deref(), args.patient_level),
        types: selection.types,
        context: selection.context,
        since: match &args.since {
            Some(s) => Since::Literal(s.clone()),
            None => Since::None,
        },
        compress: !args.no_compression,
        max_wait,
        managed_dir: None,
        reporter: reporter.clone(),
    };
    let outcome = bulk::run(&client, plan).await?;
    let mut metadata = outcome.metadata;
    if args.bundle {
        // docs/bulk.md#the-bulk-command step 6: overwrites an earlier Bundle; nothing to bundle is
        // fine here.
        crate::bundle::bundle_folder(metadata.dir(), !args.no_compression, true, reporter)?;
    }
    metadata.mark_complete()?;
    reporter.done();
    Ok(())
}
