//! `hydrate`: run hydration tasks once each, in registry order, on an existing folder
//! (docs/hydration.md#the-hydrate-command). Outputs and the "already have" pool use OUTPUT_DIR;
//! reference tasks read their inputs from `--source-dir` when given.

use super::args::HydrateArgs;
use super::clients;
use crate::error::AppError;
use crate::hydrate::{HydrateOptions, Hydrator, mime, tasks};
use crate::report::Reporter;

pub async fn run(args: HydrateArgs, reporter: &Reporter) -> Result<(), AppError> {
    let output_dir = clients::check_output_folder(&args.output_dir)?;
    let source_dir = match &args.source_dir {
        Some(dir) => clients::check_input_folder(dir)?,
        None => output_dir.clone(),
    };
    let clients = clients::prepare(&args.auth, reporter)?;
    let tasks = tasks::select(args.tasks.as_deref(), reporter)?;
    clients.read_scope(&[], &tasks);

    let rest = clients.rest.clone();
    rest.open().await?;
    let hydrator = Hydrator::new(
        rest,
        HydrateOptions {
            workdir: output_dir,
            source_dir,
            compress: !args.no_compression,
            mimetypes: mime::allowed(args.mimetypes.as_deref()),
            reporter: reporter.clone(),
        },
    );
    hydrator.run_each(&tasks).await?;
    if let Some(summary) = hydrator.failure_summary() {
        return Err(AppError::Incomplete(summary));
    }
    reporter.done();
    Ok(())
}
