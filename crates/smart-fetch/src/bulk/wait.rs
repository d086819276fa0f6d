//! Waiting on the server (docs/bulk.md#waiting-and-polling): kickoff, status polls and DELETE
//! repeat while the server answers 202, sleeping what its `Retry-After` asks (seconds, an HTTP
//! date, or — one reference server does this — an absolute Unix time; at most five minutes),
//! showing its `X-Progress`, until the export's total wait (those pauses plus retry pauses) would
//! pass the limit (30 days unless `--bulk-timeout` says otherwise).
//!
//! Both headers come from the server and are checked before use: `Retry-After` is read by
//! the request engine's one parser (`fhir::retry::retry_after_of`, which brings any
//! number into range) and kept between 0.1 s and five minutes here, and `X-Progress` is cut
//! to one short line and made printable (`text::printable`).

use super::BulkError;
use super::events::Watch;
use crate::console;
use crate::fhir::retry::{MIN_RETRY_AFTER, retry_after_of};
use crate::fhir::{FhirClient, FhirError, FhirResponse, Request};
use crate::report::{Progress, Reporter};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an export may keep us waiting, in total, by default (the Python tool's limit).
pub const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);
/// Pause when a 202 names no (usable) `Retry-After`.
const DEFAULT_DELAY: Duration = Duration::from_secs(60);
/// Longest single pause, whatever the server asks.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// Longest `X-Progress` text shown, in characters (one line of a terminal).
const MAX_PROGRESS_CHARS: usize = 100;

/// `--bulk-timeout`: `30d`, `12h`, `90m`, `45s` or plain seconds.
pub fn parse_wait_limit(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => f64::NAN,
    };
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    let seconds = value * factor;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 10.0 * 365.0 * 86400.0 {
        return Err(format!(
            "Invalid --bulk-timeout '{text}': give a duration like 30d, 12h, 90m or 600s."
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `X-Progress` as shown: lossy UTF-8, trimmed, cut to `MAX_PROGRESS_CHARS` characters
/// (with `…`), control characters escaped. `None` when blank.
pub fn progress_text(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut shown: String = text.chars().take(MAX_PROGRESS_CHARS).collect();
    if text.chars().nth(MAX_PROGRESS_CHARS).is_some() {
        shown.push('…');
    }
    // A newline would break the line redrawn in place, so it is escaped too.
    Some(crate::text::printable(&shown).replace('\n', "\\u{a}"))
}

/// The wait of one export run: every pause so far and the limit.
pub struct Waiting {
    limit: Duration,
    total: Duration,
    /// Retry pauses, added by the request observers (milliseconds).
    retried_ms: Arc<AtomicU64>,
    reporter: Reporter,
    /// The progress text last reported (without live progress only changes are reported).
    last_progress: Option<String>,
    /// The live status line while we wait.
    status: Option<Progress>,
}

impl Waiting {
    pub fn new(limit: Duration, reporter: &Reporter) -> Self {
        Waiting {
            limit,
            total: Duration::ZERO,
            retried_ms: Arc::new(AtomicU64::new(0)),
            reporter: reporter.clone(),
            last_progress: None,
            status: None,
        }
    }

    /// The counter request observers add their retry pauses to.
    pub fn retry_counter(&self) -> Arc<AtomicU64> {
        self.retried_ms.clone()
    }

    /// Take the retry pauses observers counted into the total.
    fn absorb_retries(&mut self) -> bool {
        let ms = self.retried_ms.swap(0, Ordering::Relaxed);
        self.total = self.total.saturating_add(Duration::from_millis(ms));
        ms > 0
    }

    /// `<X-Progress or waiting…> (<so far> so far, waiting for <delay> more)`: a live
    /// status line on a terminal; otherwise reported as a line whenever the progress text
    /// changes, so logs of unattended runs still show how the export went.
    fn show(&mut self, progress: Option<&str>, delay: Duration) {
        let text = progress.unwrap_or("waiting…");
        let line = format!(
            "{text} ({} so far, waiting for {} more)",
            console::human_duration(self.total.as_secs()),
            console::human_duration(delay.as_secs_f64().ceil() as u64)
        );
        let status = self
            .status
            .get_or_insert_with(|| self.reporter.progress_bar(""));
        if status.is_live() {
            status.set_message(line);
        } else if self.last_progress.as_deref() != Some(text) {
            self.reporter.info(line);
        }
        self.last_progress = Some(text.to_string());
    }

    fn clear_status(&mut self) {
        self.status = None;
    }

    /// `  Waited for a total of <total>` (after a call during which we waited).
    fn report_total(&mut self) {
        self.clear_status();
        self.reporter.info(format!(
            "  Waited for a total of {}",
            console::human_duration(self.total.as_secs())
        ));
    }
}

/// Why `until` gave up without an answer it wanted.
pub enum WaitError {
    /// The request failed (after the engine's retries); already seen by the observer.
    Request(FhirError),
    /// Our own verdict ("Unexpected status code …", "Timed out …"): not yet logged.
    Verdict(String),
}

impl From<WaitError> for BulkError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Request(e) => BulkError::Fhir(e),
            WaitError::Verdict(message) => BulkError::Message(message),
        }
    }
}

/// Send `make()` until the answer is `done`; a 202 that is not `done` means "still working":
/// wait and ask again. Any other status is unexpected.
pub async fn until<'a>(
    client: &FhirClient,
    make: impl Fn() -> Request<'a>,
    done: impl Fn(u16) -> bool,
    waiting: &mut Waiting,
    watch: &'a Watch<'a>,
) -> Result<FhirResponse, WaitError> {
    let mut waited = false;
    let outcome = loop {
        let mut request = make();
        request.observer = Some(watch);
        let result = client.request(request).await;
        waited |= waiting.absorb_retries();
        let response = match result {
            Ok(response) => response,
            Err(e) => break Err(WaitError::Request(e)),
        };
        if done(response.status) {
            break Ok(response);
        }
        if response.status != 202 {
            break Err(WaitError::Verdict(format!(
                "Unexpected status code {} from the bulk FHIR export server.",
                response.status
            )));
        }
        // At least the engine's shortest pause, so `Retry-After: 0` is not a busy loop.
        let delay = retry_after_of(&response.headers, MAX_DELAY)
            .unwrap_or(DEFAULT_DELAY)
            .clamp(MIN_RETRY_AFTER, MAX_DELAY);
        if waiting.total.saturating_add(delay) > waiting.limit {
            break Err(WaitError::Verdict(
                "Timed out waiting for the bulk FHIR export to finish.".to_string(),
            ));
        }
        let progress = response
            .headers
            .get("x-progress")
            .and_then(|v| progress_text(v.as_bytes()));
        waiting.show(progress.as_deref(), delay);
        waiting.total = waiting.total.saturating_add(delay);
        waited = true;
        tokio::time::sleep(delay).await;
    };
    waiting.clear_status();
    if waited {
        waiting.report_total();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_one_short_printable_line() {
        assert_eq!(
            progress_text(b"  50% complete "),
            Some("50% complete".into())
        );
        assert_eq!(progress_text(b"   "), None);
        assert_eq!(
            progress_text(b"\x1b[2Jgone\nx").as_deref(),
            Some("\\u{1b}[2Jgone\\u{a}x")
        );
        assert_eq!(
            progress_text("\u{9b}2J".as_bytes()).as_deref(),
            Some("\\u{9b}2J")
        );
        let long = "x".repeat(10_000);
        let shown = progress_text(long.as_bytes()).unwrap_or_default();
        assert_eq!(shown.chars().count(), MAX_PROGRESS_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(
            progress_text(b"\xff\xfe ok").as_deref(),
            Some("\u{fffd}\u{fffd} ok")
        );
    }

    #[test]
    fn wait_limits() {
        assert_eq!(parse_wait_limit("30d"), Ok(DEFAULT_WAIT_LIMIT));
        assert_eq!(parse_wait_limit("12h"), Ok(Duration::from_secs(43200)));
        assert_eq!(parse_wait_limit("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_wait_limit("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_wait_limit("2.5s"), Ok(Duration::from_millis(2500)));
        assert!(parse_wait_limit("0").is_err());
        assert!(parse_wait_limit("soon").is_err());
        assert!(parse_wait_limit("5w").is_err());
    }
}
