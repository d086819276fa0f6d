//! File bodies of an export job, produced while they stream: resources are generated (or
//! taken from the store's small cache) a line at a time, gathered into chunks of about
//! 64 KiB, and the optional padding is one shared buffer sent again for every resource, so
//! a gigabyte file costs the server no more memory than a kilobyte one.

use super::jobs::{Content, Job};
use crate::router::AppState;
use axum::body::{Body, Bytes};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 64 * 1024;
const PAD_OPEN: &[u8] =
    br#","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">"#;
const PAD_CLOSE: &[u8] = b"</div>\"}}\n";

struct Cursor {
    state: Arc<AppState>,
    /// Counts this body in flight until the stream ends or is dropped.
    _in_flight: super::DownloadInFlight,
    /// Counter key of the file (its URL path).
    key: String,
    job: Arc<Job>,
    file: usize,
    pos: usize,
    pad: Option<Bytes>,
    delay: Duration,
    pending: VecDeque<Bytes>,
    buf: Vec<u8>,
    /// The patient whose resources were fetched last, with them as JSON lines.
    patient: Option<(u32, Arc<Vec<String>>)>,
}

/// The streaming body of file `file` (0-based) of `job`; `key` counts it as completed once
/// the last byte is handed over.
pub fn body(state: Arc<AppState>, job: Arc<Job>, file: usize, key: String) -> Body {
    let config = &state.config.bulk;
    let pad = (config.pad_bytes > 0).then(|| Bytes::from(vec![b'x'; config.pad_bytes]));
    let delay = config.chunk_delay;
    let cursor = Cursor {
        _in_flight: super::DownloadInFlight::enter(state.clone()),
        state,
        key,
        job,
        file,
        pos: 0,
        pad,
        delay,
        pending: VecDeque::new(),
        buf: Vec::with_capacity(CHUNK),
        patient: None,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        let Some(chunk) = c.next_chunk() else {
            super::bump_key(&c.state.counters.bulk.completed_downloads, &c.key);
            return None;
        };
        if !c.delay.is_zero() {
            tokio::time::sleep(c.delay).await;
        }
        Some((Ok::<Bytes, std::io::Error>(chunk), c))
    });
    Body::from_stream(stream)
}

impl Cursor {
    fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            let len = self.job.files.get(self.file)?.content.len();
            if self.pos >= len {
                if self.buf.is_empty() {
                    return None;
                }
                return Some(Bytes::from(std::mem::take(&mut self.buf)));
            }
            while self.pos < len && self.buf.len() < CHUNK {
                self.push_line();
                if !self.pending.is_empty() {
                    break;
                }
            }
            if self.buf.len() >= CHUNK {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
                self.pending.push_back(Bytes::from(full));
            }
        }
    }

    /// Appends the line at `pos` (queueing the padding, when there is some, as its own
    /// chunk) and moves on.
    fn push_line(&mut self) {
        let pos = self.pos;
        self.pos += 1;
        let Some(spec) = self.job.files.get(self.file) else {
            return;
        };
        // Lines live here or in the patient's shared rendering; no copy of the latter.
        let owned: String;
        let shared: Arc<Vec<String>>;
        let (line, padded): (&str, bool) = match &spec.content {
            Content::Values(values) => match values.get(pos) {
                Some(v) => {
                    owned = v.to_string();
                    (&owned, false)
                }
                None => return,
            },
            Content::Resources(keys) => {
                let Some(&(patient, k)) = keys.get(pos) else {
                    return;
                };
                shared = match &self.patient {
                    Some((p, data)) if *p == patient => data.clone(),
                    _ => {
                        let Some(data) = self.state.store.patient_lines(patient as usize) else {
                            return;
                        };
                        self.patient = Some((patient, data.clone()));
                        data
                    }
                };
                match shared.get(usize::from(k)) {
                    Some(line) => (line.as_str(), self.pad.is_some()),
                    None => return,
                }
            }
        };
        match (&self.pad, padded) {
            (Some(pad), true) if line.ends_with('}') => {
                self.buf
                    .extend_from_slice(&line.as_bytes()[..line.len() - 1]);
                self.buf.extend_from_slice(PAD_OPEN);
                let head = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
                self.pending.push_back(Bytes::from(head));
                self.pending.push_back(pad.clone());
                self.buf.extend_from_slice(PAD_CLOSE);
            }
            _ => {
                self.buf.extend_from_slice(line.as_bytes());
                self.buf.push(b'\n');
            }
        }
    }
}
