//! Reading an export's NDJSON files line by line for a delta: every line whole (gzip
//! decompressed on the fly), its bytes kept exactly as written so a kept line is copied,
//! never re-serialized, and parsed once for its key and digest. Memory is one line at a
//! time (at most `ndjson::MAX_LINE`).

use super::canon::Canonicalizer;
use super::digest::{self, Digest};
use crate::ndjson;
use serde_json::Value;
use std::io;
use std::path::Path;

/// One non-blank line of a file.
pub struct Line<'a> {
    /// 1-based, counting blank lines too (as an editor shows them).
    pub number: u64,
    /// As written, without its line ending.
    pub bytes: &'a [u8],
    /// Key and digest, or `None` when the line is not a JSON object with a string
    /// `resourceType` and `id` (it cannot be compared, only kept).
    pub identity: Option<(u64, Digest)>,
    /// Why the line could not be parsed, if it could not.
    pub unreadable: Option<String>,
}

/// What a pass over one file met besides its lines.
#[derive(Debug, Default)]
pub struct Scanned {
    pub lines: u64,
    /// Lines longer than `ndjson::MAX_LINE`, by number (skipped: they cannot be held).
    pub too_long: Vec<u64>,
}

/// Call `each` for every non-blank line of `path`, in order.
pub fn scan(path: &Path, mut each: impl FnMut(Line<'_>) -> io::Result<()>) -> io::Result<Scanned> {
    let mut reader = ndjson::open_decompressed(path)?;
    let mut buf = Vec::new();
    let mut scanned = Scanned::default();
    let mut number = 0u64;
    let mut canon = Canonicalizer::default();
    loop {
        match ndjson::read_line_capped(&mut reader, &mut buf, ndjson::MAX_LINE)? {
            ndjson::Line::End => return Ok(scanned),
            ndjson::Line::TooLong => {
                number += 1;
                scanned.too_long.push(number);
                continue;
            }
            ndjson::Line::Read => number += 1,
        }
        let mut end = buf.len();
        while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        let bytes = &buf[..end];
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        scanned.lines += 1;
        let (identity, unreadable) = match canon.canonical(bytes) {
            Some(c) => (
                c.identity.map(|(t, id)| (digest::key(&t, &id), c.digest)),
                None,
            ),
            // Not sure of it: serde_json decides (and words the error).
            None => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => (
                    digest::key_of(&value).map(|key| (key, digest::digest(&value))),
                    None,
                ),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        each(Line {
            number,
            bytes,
            identity,
            unreadable,
        })?;
    }
}
