//! One bulk export from kickoff to cleanup (docs/bulk.md#waiting-and-polling), "perform bulk"
//! around it (docs/bulk.md#running-a-bulk-export: context, skipping done types, marking them done)
//! and `--cancel` (docs/bulk.md#cleanup-and-cancel).
//!
//! Deliberate differences from the Python tool, each for a reason:
//! * a resumed export downloads only the files not yet complete (see `journal`);
//! * a saved status URL the server no longer knows (404/410) is cleared, together with the
//!   files that export left, instead of failing every later run;
//! * `--cancel` clears the saved status (and that export's files) after the DELETE;
//! * files are written to `<name>.tmp` and renamed when complete;
//! * status URLs and manifest files are checked against the FHIR server's origin before
//!   anything (above all the access token) goes there (see `trust`);
//! * a file that cannot be downloaded does not stop the others; the export then stays
//!   unfinished for a rerun, which fetches only the missing files (see `failures`).

use super::BulkError;
use super::download;
use super::events::{BulkLog, ErrorDetail, Watch, Watched};
use super::failures;
use super::journal::{self, Journal};
use super::kickoff::{self, Level};
use super::manifest;
use super::messages;
use super::trust::{self, FileTrust, ForeignStatus};
use super::wait::{self, WaitError, Waiting};
use crate::fhir::{FhirClient, FhirError, Request};
use crate::filters::{self, Filters, Since};
use crate::folder::{ExportContext, OutputMetadata, log as folder_log};
use crate::report::Reporter;
use crate::resources::ResourceType;
use crate::text::printable;
use crate::timestamp::{self, Timestamp};
use reqwest::header::{CONTENT_LOCATION, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FHIR_JSON: &str = "application/fhir+json";

/// One export: what to ask the server for and where the files go.
pub struct Export<'a> {
    pub client: &'a FhirClient,
    pub workdir: &'a Path,
    /// `--fhir-url` as given (the kickoff URL is built from it, docs/bulk.md#kickoff-url).
    pub fhir_url: &'a str,
    pub level: &'a Level,
    pub types: &'a [ResourceType],
    /// Effective (bulk) filters of `types`, for `_typeFilter`.
    pub filters: &'a Filters,
    pub since: Option<&'a str>,
    /// Gzip the downloaded files.
    pub compress: bool,
    pub max_wait: Duration,
    /// Where its lines and progress go; its counters count the resources downloaded.
    pub reporter: &'a Reporter,
}

/// What a finished export tells its caller.
pub struct Exported {
    /// The moment the exported data is valid as of (`done` time of its types).
    pub transaction_time: Timestamp,
}

/// Kick off (or resume), wait, download, clean up, report server messages
/// (docs/bulk.md#waiting-and-polling). `metadata` is the workdir's: `bulk-status` is saved there
/// right after the kickoff and removed once the job is finished on our side.
pub async fn export(
    job: &Export<'_>,
    metadata: &mut OutputMetadata,
) -> Result<Exported, BulkError> {
    let reporter = job.reporter;
    reporter.rule();
    let client = job.client;
    let workdir = job.workdir;
    let stall = client.read_timeout();
    // Before anything reaches the server: a kickoff the log cannot record must not happen.
    folder_log::check_writable(workdir)?;
    let fhir_origin = client.resolve("")?;
    let mut waiting = Waiting::new(job.max_wait, reporter);
    let resumed = metadata.bulk_status().map(str::to_string);
    let log = BulkLog::new(workdir, resumed.as_deref());

    let status_url = match resumed {
        Some(url) => {
            // Saved by an earlier run (perhaps of another tool or version): checked again,
            // it is about to be polled with our credentials.
            if let Err(foreign) = saved_status_check(client, &fhir_origin, &url) {
                return Err(BulkError::Message(format!(
                    "Not resuming the bulk export saved in {}: its status URL '{}' is on {}, \
                     not on the FHIR server ({}), and our credentials go only to the FHIR \
                     server. Run the same command with --cancel to forget it.",
                    workdir.display(),
                    foreign.url,
                    foreign.origin,
                    foreign.fhir_origin
                )));
            }
            reporter.info("Resuming bulk FHIR export…");
            url
        }
        None => {
            let url = kickoff(job, &log, &mut waiting).await?;
            metadata.set_bulk_status(&url)?;
            reporter.info("Starting bulk FHIR export…");
            url
        }
    };

    // Poll until the manifest is ready.
    let retried = waiting.retry_counter();
    let watch = Watch::new(&log, Watched::Status, &retried);
    let polled = wait::until(
        client,
        || Request::get(&status_url, "application/json"),
        |status| status == 200,
        &mut waiting,
        &watch,
    )
    .await;
    let response = match polled {
        Ok(response) => response,
        Err(WaitError::Request(FhirError::Http {
            status: status @ (404 | 410),
            detail,
            ..
        })) => return Err(forget(metadata, workdir, &status_url, status, &detail)),
        Err(WaitError::Verdict(message)) => {
            log.status_error(&ErrorDetail::without_response(message.clone()))?;
            return Err(BulkError::Message(message));
        }
        Err(e) => return Err(e.into()),
    };
    drop(watch);
    let body: Value = response.json()?;
    let manifest = manifest::parse(&body, job.compress)?;
    let trust = FileTrust::new(&fhir_origin, &response.url, manifest.requires_access_token);
    if !trust.manifest_trusted() {
        reporter.warn(format!(
            "The bulk export manifest came from '{}', not from the FHIR server; none of its \
             files get our credentials.",
            printable(&response.url)
        ));
    }
    log.manifest(
        &manifest.transaction_time,
        manifest.outputs,
        manifest.deleted,
        manifest.errors,
    )?;
    let transaction_time = manifest
        .transaction_time
        .as_str()
        .and_then(timestamp::parse_fhir)
        .unwrap_or_else(|| {
            let raw = match &manifest.transaction_time {
                Value::String(s) => s.clone(),
                Value::Null => "None".to_string(),
                other => other.to_string(),
            };
            reporter.warn_on_stdout(format!(
                "Could not parse transactionTime: {}",
                printable(&raw)
            ));
            timestamp::now()
        });

    reporter.info("Bulk FHIR export finished, now downloading resources…");
    let mut journal = Journal::open(workdir, &status_url);
    let report = download::download_all(
        client,
        &log,
        workdir,
        &manifest.files,
        &trust,
        stall,
        &mut journal,
        reporter,
    )
    .await?;
    if !report.failures.is_empty() {
        // Unfinished: the status URL, the journal and the server's job stay for a rerun.
        return Err(BulkError::Incomplete(failures::summary(
            &report.failures,
            manifest.files.len(),
        )));
    }
    let totals = report.totals;
    log.export_complete(totals.files, totals.resources, totals.chars)?;

    delete_job(client, &status_url, reporter).await;
    metadata.clear_bulk_status()?;
    journal::remove(workdir);

    let (notes, errors) = messages::gather(workdir, reporter);
    if let Some(text) = messages::messages_text(&notes) {
        reporter.info(text);
    }
    if let Some(text) = messages::errors_text(&errors) {
        return Err(BulkError::Message(text));
    }
    Ok(Exported { transaction_time })
}

/// The kickoff (docs/bulk.md#waiting-and-polling): logged once, after success or final failure.
async fn kickoff(
    job: &Export<'_>,
    log: &BulkLog,
    waiting: &mut Waiting,
) -> Result<String, BulkError> {
    let url = kickoff::kickoff_url(job.fhir_url, job.level, job.types, job.filters, job.since);
    let capabilities = job.client.capabilities();
    let retried = waiting.retry_counter();
    let watch = Watch::new(log, Watched::Quiet, &retried);
    let result = wait::until(
        job.client,
        || {
            let mut request = Request::get(&url, FHIR_JSON);
            request
                .headers
                .insert("prefer", HeaderValue::from_static("respond-async"));
            request
        },
        |status| status == 202,
        waiting,
        &watch,
    )
    .await;
    let response = match result {
        Ok(response) => response,
        Err(WaitError::Request(error)) => {
            log.kickoff(&url, &capabilities, Err(&watch.detail(&error)))?;
            return Err(error.into());
        }
        Err(WaitError::Verdict(message)) => {
            log.kickoff(
                &url,
                &capabilities,
                Err(&ErrorDetail::without_response(message.clone())),
            )?;
            return Err(BulkError::Message(message));
        }
    };
    let location = response
        .header(CONTENT_LOCATION.as_str())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| job.client.resolve(l).map(|u| u.to_string()));
    let status_url = match location {
        Some(Ok(url)) => url,
        _ => {
            let message = "The bulk FHIR export server accepted the export but did not say \
                           where to follow it (no usable Content-Location header)."
                .to_string();
            log.kickoff(
                &url,
                &capabilities,
                Err(&ErrorDetail::without_response(message.clone())),
            )?;
            return Err(BulkError::Message(message));
        }
    };
    if let Err(foreign) = kickoff_status_check(job.client, &response.url, &status_url) {
        let message = format!(
            "Refusing to follow the bulk export at '{}': {}, not the FHIR server ({}), and \
             our credentials go only to the FHIR server. Nothing was saved.",
            foreign.url,
            foreign.reason(),
            foreign.fhir_origin
        );
        log.kickoff(
            &url,
            &capabilities,
            Err(&ErrorDetail::without_response(message.clone())),
        )?;
        return Err(BulkError::Message(message));
    }
    log.set_export_id(&status_url);
    log.kickoff(&url, &capabilities, Ok(&response.headers))?;
    Ok(status_url)
}

/// DELETE the job on the server (docs/bulk.md#cleanup-and-cancel). Not fatal: a 404 means the
/// server already forgot it; anything else is a warning.
async fn delete_job(
    client: &FhirClient,
    status_url: &str,
    reporter: &Reporter,
) -> Option<FhirError> {
    let request = Request::new(Method::DELETE, status_url, FHIR_JSON);
    match client.request(request).await {
        Ok(_) => None,
        Err(FhirError::Http { status: 404, .. }) => None,
        Err(error) => {
            reporter.warn_on_stdout(format!(
                "Failed to clean up export job on the server side: {}",
                printable(&error.to_string())
            ));
            Some(error)
        }
    }
}

/// The server no longer knows the saved export: clear it so the next run starts afresh.
fn forget(
    metadata: &mut OutputMetadata,
    workdir: &Path,
    status_url: &str,
    status: u16,
    detail: &str,
) -> BulkError {
    let removed = journal::discard_export(workdir, status_url);
    if let Err(e) = metadata.clear_bulk_status() {
        return e.into();
    }
    let files = match removed {
        0 => String::new(),
        1 => " and the 1 file it had downloaded".to_string(),
        n => format!(" and the {n} files it had downloaded"),
    };
    BulkError::Message(format!(
        "The server no longer knows the bulk export at {} ([{status}] {}); \
         it may have expired. Cleared it{files} from {}; run the same command again to \
         start a new export.",
        printable(status_url),
        printable(detail),
        workdir.display()
    ))
}

/// The status URL named by a kickoff answer (`answered_from`, after redirects).
fn kickoff_status_check(
    client: &FhirClient,
    answered_from: &str,
    status_url: &str,
) -> Result<(), ForeignStatus> {
    let fhir = client
        .resolve("")
        .map_err(|_| unusable_status(client, status_url))?;
    let status = Url::parse(status_url).map_err(|_| unusable_status(client, status_url))?;
    let via = Url::parse(answered_from).ok();
    trust::check_status_url(&fhir, &status, via.as_ref())
}

/// A status URL saved in `.metadata` by an earlier run.
fn saved_status_check(client: &FhirClient, fhir: &Url, saved: &str) -> Result<(), ForeignStatus> {
    let status = client
        .resolve(saved)
        .map_err(|_| unusable_status(client, saved))?;
    trust::check_status_url(fhir, &status, None)
}

/// A status URL that is not a URL at all: not followed either.
fn unusable_status(client: &FhirClient, url: &str) -> ForeignStatus {
    ForeignStatus {
        url: printable(url).into_owned(),
        origin: "no usable origin".to_string(),
        fhir_origin: printable(client.base_url()).into_owned(),
        named_elsewhere: false,
    }
}

/// Everything "perform bulk" (docs/bulk.md#running-a-bulk-export) needs.
pub struct BulkPlan {
    pub workdir: PathBuf,
    pub fhir_url: String,
    pub level: Level,
    /// Selected types (after limiting to the server), canonical order.
    pub types: Vec<ResourceType>,
    /// Stored in `.metadata` and compared on resume.
    pub context: ExportContext,
    /// The since value (`--since` as given).
    pub since: Since,
    pub compress: bool,
    pub max_wait: Duration,
    /// The managed folder of an `export` (for new patients); `None` for `bulk`.
    pub managed_dir: Option<PathBuf>,
    pub reporter: Reporter,
}

pub struct BulkOutcome {
    pub metadata: OutputMetadata,
    /// Types exported by this run (empty when all were done already).
    pub exported: Vec<ResourceType>,
    pub transaction_time: Option<Timestamp>,
}

/// docs/bulk.md#running-a-bulk-export: note the context, skip done types (unless an export is in
/// progress), run the export and mark its types done with its transaction time.
pub async fn run(client: &FhirClient, plan: BulkPlan) -> Result<BulkOutcome, BulkError> {
    std::fs::create_dir_all(&plan.workdir).map_err(|e| {
        BulkError::Message(format!("Could not create {}: {e}", plan.workdir.display()))
    })?;
    let mut metadata = OutputMetadata::load(&plan.workdir)?;
    metadata.note_context(&plan.context)?;
    let caps = client.capabilities();
    let effective = filters::effective_params(
        &plan.context.filters,
        &plan.since,
        plan.context.since_mode,
        &caps,
        true,
    );

    let mut types = plan.types.clone();
    if metadata.bulk_status().is_none() {
        types.retain(|t| {
            let done = metadata.is_done(*t);
            if done {
                plan.reporter.info(format!("Skipping {t}, already done."));
            }
            !done
        });
    }
    if types.is_empty() {
        return Ok(BulkOutcome {
            metadata,
            exported: types,
            transaction_time: None,
        });
    }
    let since = filters::bulk_since(&plan.since, plan.context.since_mode, &types);
    let job = Export {
        client,
        workdir: &plan.workdir,
        fhir_url: &plan.fhir_url,
        level: &plan.level,
        types: &types,
        filters: &effective,
        since: since.as_deref(),
        compress: plan.compress,
        max_wait: plan.max_wait,
        reporter: &plan.reporter,
    };
    let exported = export(&job, &mut metadata).await?;
    if let Some(managed) = &plan.managed_dir
        && types.contains(&ResourceType::Patient)
        && let Some(new) =
            super::patients::new_patients(managed, &plan.workdir, &plan.context, &plan.reporter)
        && !new.is_empty()
    {
        metadata.set_new_patients(&new)?;
    }
    for t in &types {
        metadata.mark_done(*t, &exported.transaction_time)?;
    }
    Ok(BulkOutcome {
        metadata,
        exported: types,
        transaction_time: Some(exported.transaction_time),
    })
}

/// `bulk --cancel` (docs/bulk.md#cleanup-and-cancel): DELETE the saved export, then forget it here
/// (unlike the Python tool, which kept trying to resume it).
pub async fn cancel(
    client: &FhirClient,
    workdir: &Path,
    folder: &str,
    reporter: &Reporter,
) -> Result<(), BulkError> {
    let mut metadata = OutputMetadata::load(workdir)?;
    let Some(status_url) = metadata.bulk_status().map(str::to_string) else {
        return Err(BulkError::Message(format!(
            "You provided --cancel but no in-progress bulk export was found in {folder}."
        )));
    };
    let fhir = client.resolve("")?;
    match saved_status_check(client, &fhir, &status_url) {
        Ok(()) => {
            delete_job(client, &status_url, reporter).await;
        }
        // Our credentials do not go there, so neither does a DELETE: only forget it here.
        Err(foreign) => reporter.warn_on_stdout(format!(
            "Not asking {} to delete the export at '{}': it is not the FHIR server ({}). \
             Forgetting it here only.",
            foreign.origin, foreign.url, foreign.fhir_origin
        )),
    }
    journal::discard_export(workdir, &status_url);
    metadata.clear_bulk_status()?;
    Ok(())
}
