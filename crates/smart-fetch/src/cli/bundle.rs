//! `bundle DIR`: one Bundle file from a folder's NDJSON (docs/commands.md#bundle). No server
//! needed.

use super::args::BundleArgs;
use super::clients;
use crate::bundle::{self, Outcome};
use crate::error::AppError;
use crate::report::Reporter;

pub fn run(args: BundleArgs, reporter: &Reporter) -> Result<(), AppError> {
    reporter.rule();
    let dir = clients::check_input_folder(&args.dir)?;
    match bundle::bundle_folder(&dir, !args.no_compression, false, reporter)? {
        Outcome::NoInputs => Err(AppError::Message(format!(
            "No FHIR files found in '{}'.",
            args.dir
        ))),
        Outcome::Written(path, _) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let shown = std::path::Path::new(&args.dir).join(name.unwrap_or_default());
            reporter.info(format!("Bundle file '{}' created.", shown.display()));
            Ok(())
        }
    }
}
