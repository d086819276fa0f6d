//! The crawl: cohort resolution, the per-patient search scheduler and its resume journal.

#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error("{0}")]
    Message(String),
}
