//! `archive`: the command-line edge of `crate::archive`. Parses the destination (a bad
//! `--to` is a usage error, exit 2), runs the archive with the console reporter (or, with
//! `--json`, every message on stderr so stdout holds only the summary), prints the per-folder
//! table, and picks the exit status: 0 when every selected leaf folder is archived, 3 when
//! some are not (refused as incomplete, or a local file failed), 1 for a run that could not
//! start or had to stop (wrong credentials, no such bucket, nothing to archive, a store
//! that keeps failing), 130 when interrupted.

use super::args::ArchiveArgs;
use super::clients;
use crate::archive::{self, Destination, Plan};
use crate::cancel::Cancel;
use crate::error::AppError;
use crate::report::{Format, Reporter};
use std::io::Write;

pub async fn run(args: ArchiveArgs, reporter: &Reporter, cancel: &Cancel) -> Result<(), AppError> {
    // `--json`: stdout is for the summary only. The plain and json log formats already
    // write every line to stderr; the text format is sent there too.
    let to_stderr;
    let reporter = if args.json && reporter.format() == Format::Text {
        to_stderr = Reporter::to_writer(
            Format::Text,
            reporter.is_verbose(),
            Box::new(std::io::stderr()),
        );
        &to_stderr
    } else {
        reporter
    };
    let output_root = clients::check_output_folder(&args.output_root)?;
    let nickname = args.nickname.clone().filter(|n| !n.is_empty());
    let dest = Destination::open(&args.to).await?;
    if nickname.is_none() {
        reporter.info("No --nickname given: archiving each group's newest leaf folder.");
    }
    let plan = Plan {
        output_root,
        nickname,
        include_incomplete: args.include_incomplete,
        parallel: usize::from(args.parallel),
        progress_every: Some(super::batch::progress_every()),
    };
    let summary = archive::run(&plan, &dest, reporter, cancel).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    } else {
        for line in summary.table() {
            reporter.info(line);
        }
    }
    let missing = summary.not_archived();
    if missing.is_empty() {
        if !args.json {
            reporter.done();
        }
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(|r| r.name()).collect();
    let refused = missing
        .iter()
        .filter(|r| r.state == archive::FolderState::Refused)
        .count();
    let why = if refused == missing.len() {
        "their export is not complete; finish it, or pass --include-incomplete"
    } else {
        "see the lines above; rerun the same command once fixed"
    };
    Err(AppError::Incomplete(format!(
        "{} of {} leaf folders are not archived ({}): {why}.",
        missing.len(),
        summary.totals.folders - summary.totals.no_folder,
        names.join(", ")
    )))
}
