//! The crawl's `error/OperationOutcome.ndjson[.gz]`, kept describing the folder as it is
//! now. A finished type's OperationOutcomes (server warnings, failures accepted with
//! `--allow-incomplete`) are appended for good, as the Python tool does. An unfinished
//! type's lines (its warnings so far and why its failed searches failed) are shown too, so
//! a hospital engineer sees at once what went wrong, but only *provisionally*: they are
//! the file's last gzip member(s), and each type's exact bytes are kept in
//! `.resume/<Type>.error-tail`. The next run cuts that tail off before it writes the new
//! state, so a search that failed and later succeeded leaves no trace in `error/`, and one
//! that failed twice is listed once.
//!
//! Crash safety: the ledger files are written before the error file is replaced (one
//! rename). Killed in between, the file still ends with the old tail, which then no longer
//! matches the ledger; the next run leaves the file as it is (stale lines stay, nothing is
//! lost) and starts a new tail after it.

use super::CrawlError;
use crate::json;
use crate::ndjson;
use crate::resources::ResourceType;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where a type's provisional bytes of the error file are kept.
pub fn ledger_path(state_dir: &Path, t: ResourceType) -> PathBuf {
    state_dir.join(format!("{t}.error-tail"))
}

/// Rewrite `target`: what it held before (without the provisional tail of the last run),
/// then `permanent` (finished types, one gzip member each, in the order given), then the
/// provisional lines of every type still unfinished: `provisional` for the types of this
/// run (empty = none any more), and the last run's tail for types not in this one.
pub fn publish(
    target: &Path,
    state_dir: &Path,
    permanent: &[(ResourceType, Vec<Value>)],
    provisional: &BTreeMap<ResourceType, Vec<Value>>,
) -> Result<(), CrawlError> {
    let compress = ndjson::is_compressed_name(target);
    let mut old_tails = BTreeMap::new();
    for t in ResourceType::SCOPE_TYPES {
        match fs::read(ledger_path(state_dir, t)) {
            Ok(bytes) => {
                old_tails.insert(t, bytes);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&ledger_path(state_dir, t), e)),
        }
    }
    let nothing_new =
        permanent.iter().all(|(_, l)| l.is_empty()) && provisional.values().all(Vec::is_empty);
    if nothing_new && old_tails.is_empty() {
        return Ok(());
    }

    let existing = match fs::read(target) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(target, e)),
    };
    let old_tail: Vec<u8> = old_tails.values().flatten().copied().collect();
    let stripped = existing.ends_with(&old_tail);
    let mut out = if stripped {
        existing[..existing.len() - old_tail.len()].to_vec()
    } else {
        // Not the file the ledger describes (killed between the two writes, or edited):
        // keep all of it, and forget the old tails rather than add them twice.
        old_tails.clear();
        existing
    };
    if !compress && !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for (_, lines) in permanent {
        if !lines.is_empty() {
            out.extend_from_slice(&encode(lines, compress).map_err(|e| io_error(target, e))?);
        }
    }
    let mut tails = BTreeMap::new();
    for t in ResourceType::SCOPE_TYPES {
        let finished = permanent.iter().any(|(p, _)| *p == t);
        let bytes = match provisional.get(&t) {
            _ if finished => Vec::new(),
            Some(lines) if lines.is_empty() => Vec::new(),
            Some(lines) => encode(lines, compress).map_err(|e| io_error(target, e))?,
            None => old_tails.remove(&t).unwrap_or_default(),
        };
        out.extend_from_slice(&bytes);
        tails.insert(t, bytes);
    }

    for (t, bytes) in &tails {
        let path = ledger_path(state_dir, *t);
        if bytes.is_empty() {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(&path, e)),
                _ => {}
            }
        } else {
            fs::create_dir_all(state_dir).map_err(|e| io_error(state_dir, e))?;
            ndjson::write_atomic(&path, bytes).map_err(|e| io_error(&path, e))?;
        }
    }
    if out.is_empty() {
        match fs::remove_file(target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(target, e)),
            _ => {}
        }
        // Only when nothing else is in there (bulk error files, say).
        if let Some(dir) = target.parent() {
            let _ = fs::remove_dir(dir);
        }
        return Ok(());
    }
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    ndjson::write_atomic(target, &out).map_err(|e| io_error(target, e))
}

/// The lines as the crawl writes them, as one gzip member (or plain text).
fn encode(lines: &[Value], compress: bool) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    for value in lines {
        json::write_ndjson(&mut text, value)?;
        text.push(b'\n');
    }
    if !compress {
        return Ok(text);
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&text)?;
    gz.finish()
}

fn io_error(path: &Path, e: io::Error) -> CrawlError {
    CrawlError::Message(format!("Could not write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sf-error-file-{tag}-{}-{}",
            std::process::id(),
            crate::timestamp::now().timestamp_micros()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn lines(path: &Path) -> Vec<String> {
        let mut text = String::new();
        if path.exists() {
            let mut reader = ndjson::open_decompressed(path).expect("open");
            std::io::Read::read_to_string(&mut reader, &mut text).expect("read");
        }
        text.lines().map(str::to_string).collect()
    }

    fn oo(text: &str) -> Value {
        json!({"resourceType": "OperationOutcome", "issue": [{"diagnostics": text}]})
    }

    #[test]
    fn provisional_lines_are_replaced_each_run_and_dropped_when_finished() {
        for name in ["OperationOutcome.ndjson.gz", "OperationOutcome.ndjson"] {
            let dir = temp_dir("cycle");
            let target = dir.join("error").join(name);
            let state = dir.join(crate::folder::STATE_DIR);
            let c = ResourceType::Condition;
            let o = ResourceType::Observation;
            // An earlier export's line stays whatever happens.
            publish(
                &target,
                &state,
                &[(ResourceType::Encounter, vec![oo("old")])],
                &BTreeMap::new(),
            )
            .expect("publish");
            // Run 1: Condition and Observation fail.
            let provisional =
                BTreeMap::from([(c, vec![oo("c failed")]), (o, vec![oo("o failed")])]);
            publish(&target, &state, &[], &provisional).expect("publish");
            assert_eq!(lines(&target).len(), 3);
            // Run 2 only retries Condition, which fails again: listed once.
            let provisional = BTreeMap::from([(c, vec![oo("c failed again")])]);
            publish(&target, &state, &[], &provisional).expect("publish");
            let now = lines(&target);
            assert_eq!(now.len(), 3, "{now:?}");
            assert!(now[0].contains("old"));
            assert!(now.iter().any(|l| l.contains("c failed again")));
            assert!(now.iter().any(|l| l.contains("o failed")));
            // Run 3: Condition finishes with a warning, Observation with nothing.
            publish(
                &target,
                &state,
                &[(c, vec![oo("c warning")])],
                &BTreeMap::from([(o, vec![])]),
            )
            .expect("publish");
            let now = lines(&target);
            assert_eq!(now.len(), 2, "{now:?}");
            assert!(now[1].contains("c warning"));
            assert!(!ledger_path(&state, c).exists() && !ledger_path(&state, o).exists());
        }
    }

    #[test]
    fn a_file_emptied_of_provisional_lines_is_removed() {
        let dir = temp_dir("empty");
        let target = dir.join("error").join("OperationOutcome.ndjson.gz");
        let state = dir.join(crate::folder::STATE_DIR);
        let t = ResourceType::Condition;
        publish(
            &target,
            &state,
            &[],
            &BTreeMap::from([(t, vec![oo("failed")])]),
        )
        .expect("publish");
        assert!(target.exists());
        publish(&target, &state, &[(t, vec![])], &BTreeMap::new()).expect("publish");
        assert!(!target.exists());
        assert!(!dir.join("error").exists());
    }

    #[test]
    fn a_file_that_does_not_end_with_the_ledger_is_kept_whole() {
        let dir = temp_dir("mismatch");
        let target = dir.join("error").join("OperationOutcome.ndjson");
        let state = dir.join(crate::folder::STATE_DIR);
        let t = ResourceType::Condition;
        publish(
            &target,
            &state,
            &[],
            &BTreeMap::from([(t, vec![oo("first")])]),
        )
        .expect("publish");
        // As if killed after the ledger but before the file was replaced.
        fs::write(ledger_path(&state, t), b"something else\n").expect("write");
        publish(
            &target,
            &state,
            &[],
            &BTreeMap::from([(t, vec![oo("second")])]),
        )
        .expect("publish");
        let now = lines(&target);
        assert_eq!(now.len(), 2, "nothing lost: {now:?}");
        publish(&target, &state, &[(t, vec![])], &BTreeMap::new()).expect("publish");
        assert_eq!(
            lines(&target).len(),
            1,
            "the tail of the matching ledger goes"
        );
    }
}
