//! "How far is the archive?": files and bytes done of the total, upload rate and ETA, as one
//! line every so often through the Reporter (a scheduler's log gets lines, not a bar).
//! Bytes found already in the archive count as done but not toward the rate.

use crate::console::{human_duration, human_file_size, thousands};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Default)]
pub struct Counters {
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub folders_total: AtomicU64,
    pub files_done: AtomicU64,
    /// File bytes sent (parts count as they finish).
    pub bytes_uploaded: AtomicU64,
    /// File bytes found already archived.
    pub bytes_present: AtomicU64,
    pub folders_done: AtomicU64,
}

impl Counters {
    pub fn uploaded(&self, bytes: u64) {
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// `Archive: 12 of 155 files, 1.2GB of 4.1GB (80.5MB/s), 3 of 5 leaf folders, about 38s left.`
pub fn line(counters: &Counters, started: Instant) -> String {
    let uploaded = get(&counters.bytes_uploaded);
    let done = uploaded + get(&counters.bytes_present);
    let total = get(&counters.bytes_total).max(done);
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        uploaded as f64 / seconds
    } else {
        0.0
    };
    let eta = if rate > 0.0 && total > done {
        format!(
            ", about {} left",
            human_duration(((total - done) as f64 / rate) as u64)
        )
    } else {
        String::new()
    };
    format!(
        "Archive: {} of {} files, {} of {} ({}/s), {} of {} leaf folders{eta}.",
        thousands(get(&counters.files_done)),
        thousands(get(&counters.files_total)),
        human_file_size(done),
        human_file_size(total),
        human_file_size(rate as u64),
        get(&counters.folders_done),
        get(&counters.folders_total),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_rate_and_eta() {
        let c = Counters::default();
        c.files_total.store(10, Ordering::Relaxed);
        c.bytes_total.store(100 << 20, Ordering::Relaxed);
        c.folders_total.store(2, Ordering::Relaxed);
        let started = Instant::now() - std::time::Duration::from_secs(10);
        c.uploaded(40 << 20);
        c.bytes_present.store(10 << 20, Ordering::Relaxed);
        let text = line(&c, started);
        assert!(
            text.starts_with("Archive: 0 of 10 files, 50MB of 100MB (4"),
            "{text}"
        );
        assert!(text.contains("0 of 2 leaf folders, about 1"), "{text}");
    }
}
