//! `export`: the managed export (spec §14).

use super::args::{ExportArgs, General};
use crate::error::AppError;

pub async fn run(args: ExportArgs, general: &General) -> Result<(), AppError> {
    let _ = (args, general);
    Err(AppError::Message("export: being wired".into()))
}
