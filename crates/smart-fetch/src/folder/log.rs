//! `log.ndjson` (spec §12): Bulk Data export log lines, appended. Crawls write the "fake"
//! log (§12.8) so Cumulus ETL finds a group name and transaction time.

use super::FolderError;
use crate::timestamp::Timestamp;
use std::path::Path;

/// Append the five fake-log events of a crawl.
pub fn append_crawl_log(
    workdir: &Path,
    export_url: &str,
    transaction_time: &Timestamp,
) -> Result<(), FolderError> {
    let _ = (workdir, export_url, transaction_time);
    todo!()
}
