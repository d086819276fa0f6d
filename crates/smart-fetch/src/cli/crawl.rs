//! `crawl`: a standalone crawl into one output folder (spec §13.1).

use super::args::{CrawlArgs, General};
use crate::error::AppError;

pub async fn run(args: CrawlArgs, general: &General) -> Result<(), AppError> {
    let _ = (args, general);
    Err(AppError::Message("crawl: being wired".into()))
}
