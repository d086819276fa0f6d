//! `archive`: the command-line edge of `crate::archive`. Parses the destination (a bad
//! `--to` is a usage error, exit 2), runs the archive with the console reporter (or, with
//! `--json`, every message on stderr so stdout holds only the summary), prints the per-folder
//! table, and picks the exit status: 0 when every selected leaf folder is archived, 3 when
//! some are not (refused as incomplete, or a local file failed), 1 for a run that could not
//! start or had to stop (wrong credentials, no such bucket, nothing to archive, a store
//! that keeps failing), 130 when interrupted.

use super::args::{ArchiveArgs, General};
use super::clients;
use crate::archive::{self, Destination, Plan};
use crate::cancel::Cancel;
use crate::error::AppError;
use crate::report::{Kind, Reporter, Sink};
use std::io::Write;
use std::sync::Arc;

/// `--json`: stdout is for the summary only.
struct AllToStderr;

impl Sink for AllToStderr {
    fn line(&self, kind: Kind, scope: Option<&str>, text: &str) {
        if kind == Kind::Rule {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = match scope {
            Some(scope) => writeln!(err, "[{scope}] {text}"),
            None => writeln!(err, "{text}"),
        };
    }
}

pub async fn run(args: ArchiveArgs, general: &General, cancel: &Cancel) -> Result<(), AppError> {
    let reporter = if args.json {
        Reporter::with_sink(Arc::new(AllToStderr), general.verbose)
    } else {
        Reporter::console(general.verbose)
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
    let summary = archive::run(&plan, &dest, &reporter, cancel).await?;
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
