//! Where crawled resources land: one writer thread owns every type's in-progress file and
//! resume journal. Each finished search chain (one patient, one type) is appended as its own
//! gzip member to `<Type>.ndjson[.gz].tmp`, then a journal line records the new length and
//! the chain's key. A crawl killed at any moment (even SIGKILL) loses at most the chains not
//! yet journaled; on restart the file is cut back to the last journaled length. Only when a
//! type is complete is its file renamed to the final name (never half-written there).
//! A failed chain writes no data: its key and OperationOutcome lines go into the journal
//! as *failed*, so a later run searches it again and a success there replaces them. Which
//! types are finished at the end is the engine's decision; `error_file` shows the
//! unfinished types' lines in `error/` until they are. Must not make requests or decide what
//! to crawl.

use super::CrawlError;
use super::error_file;
use super::report::{ChainOutcome, Dropped};
use crate::id_set::IdSet;
use crate::report::Reporter;
use crate::resources::ResourceType;
use crate::safe_file;
use crate::timestamp::{self, Timestamp};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Our resume state folder inside the workdir (defined once, in `folder`).
pub use crate::folder::STATE_DIR;

/// One resource, already serialized as its NDJSON line (with the trailing newline).
#[derive(Clone)]
pub struct Record {
    pub id: Option<String>,
    pub line: String,
}

/// Everything one search chain produced.
pub struct ChainResult {
    pub resource_type: ResourceType,
    /// Patient id (per-patient searches) or the looked-up ID/MRN (Patient lookups).
    pub key: String,
    pub records: Vec<Record>,
    /// OperationOutcome lines for `error/`.
    pub errors: Vec<String>,
    pub max_date: Option<Timestamp>,
    /// Complete, failed (only `errors` is kept, and the chain is searched again by the
    /// next run), or stopped on another patient's data (never sent here).
    pub outcome: ChainOutcome,
    /// What was left out of the answers (reported, never written).
    pub dropped: Dropped,
    /// Patient lookups: found patient → the records its `Patient.link` names (only
    /// patients with links), journaled so a resumed crawl still accepts their data.
    pub links: Vec<(String, Vec<String>)>,
    /// A search of several patients at once (`patient_lists`): for each record, the index
    /// of its patient in the list. Empty for any other search; split off before the sink.
    pub owners: Vec<usize>,
}

/// What a list search's answer holds for the whole list (its OperationOutcome lines, latest
/// date and left-out counts), as it is split into one result per lookup or patient: they go
/// with the first part only, since the journal keeps one latest date per type and adds the
/// rest up.
pub struct ListExtras(Option<(Vec<String>, Option<Timestamp>, Dropped)>);

impl ListExtras {
    pub fn new(errors: Vec<String>, max_date: Option<Timestamp>, dropped: Dropped) -> Self {
        ListExtras(Some((errors, max_date, dropped)))
    }

    /// One complete part of the list's answer, under `key`.
    pub fn part(
        &mut self,
        resource_type: ResourceType,
        key: String,
        records: Vec<Record>,
    ) -> ChainResult {
        let (errors, max_date, dropped) = self
            .0
            .take()
            .unwrap_or_else(|| (Vec::new(), None, Dropped::default()));
        ChainResult {
            resource_type,
            key,
            records,
            errors,
            max_date,
            outcome: ChainOutcome::Complete,
            dropped,
            links: Vec::new(),
            owners: Vec::new(),
        }
    }
}

/// What earlier runs already committed, per type.
#[derive(Default)]
pub struct Resumed {
    pub keys: HashMap<ResourceType, HashSet<String>>,
    /// Patient ids found by committed Patient lookups.
    pub found_patients: Vec<String>,
    /// Found patient → the records its `Patient.link` names.
    pub links: HashMap<String, Vec<String>>,
}

enum Msg {
    Chain(ChainResult),
    Finish(Finish),
}

/// What to do with each type once every chain is in.
pub struct Finish {
    /// Types to finalize (file to its final name, lines to `error/` for good); the others
    /// stay resumable and their lines are shown in `error/` until they are finished.
    pub types: BTreeSet<ResourceType>,
    /// `--allow-incomplete`: the lines of failed chains of finalized types go to `error/`
    /// for good (otherwise a finalized type has none left from this run).
    pub accept_failed: bool,
}

/// Handle the crawl workers send results through.
#[derive(Clone)]
pub struct SinkSender {
    tx: mpsc::Sender<Msg>,
}

impl SinkSender {
    pub async fn send(&self, result: ChainResult) -> Result<(), CrawlError> {
        self.tx
            .send(Msg::Chain(result))
            .await
            .map_err(|_| CrawlError::Message("The output writer stopped unexpectedly.".into()))
    }
}

pub struct Sink {
    tx: mpsc::Sender<Msg>,
    thread: WriterThread,
}

impl Sink {
    /// Open (or resume) the in-progress files of `types` in `workdir`.
    /// `reporter` hears about unreadable state files; its counters count resources written.
    pub fn open(
        workdir: &Path,
        types: &[ResourceType],
        compress: bool,
        reporter: Reporter,
    ) -> Result<(Sink, Resumed), CrawlError> {
        let state_dir = workdir.join(STATE_DIR);
        fs::create_dir_all(&state_dir).map_err(|e| io_error(&state_dir, e))?;
        let mut states = HashMap::new();
        let mut resumed = Resumed::default();
        for &t in types {
            let (state, journal) = TypeState::open(workdir, t, compress)?;
            resumed.keys.insert(t, journal.keys);
            resumed.found_patients.extend(journal.found);
            resumed.links.extend(journal.links);
            states.insert(t, state);
        }
        let error_target = workdir
            .join("error")
            .join(crate::ndjson::file_name("OperationOutcome", compress));
        // Small on purpose: chains waiting here are not committed yet, so a kill loses them.
        let (tx, rx) = mpsc::channel(8);
        let thread = std::thread::Builder::new()
            .name("crawl-writer".into())
            .spawn(move || writer_loop(rx, states, compress, error_target, state_dir, reporter))
            .map_err(|e| CrawlError::Message(format!("Could not start the output writer: {e}")))?;
        Ok((Sink { tx, thread }, resumed))
    }

    pub fn sender(&self) -> SinkSender {
        SinkSender {
            tx: self.tx.clone(),
        }
    }

    /// Every chain has been sent: finalize the types `finish` names and show the others'
    /// lines in `error/`. Returns the done time of each finalized type.
    pub async fn finish(
        self,
        finish: Finish,
    ) -> Result<BTreeMap<ResourceType, Timestamp>, CrawlError> {
        // The writer only finalizes on an explicit Finish, so an interrupted crawl (senders
        // dropped without it) leaves every type resumable.
        let Sink { tx, thread } = self;
        let _ = tx.send(Msg::Finish(finish)).await;
        drop(tx);
        join(thread).await
    }

    /// Stop without finalizing anything (interrupt or fatal error): waits until everything
    /// already received is committed.
    pub async fn abandon(self) -> Result<(), CrawlError> {
        let Sink { tx, thread } = self;
        drop(tx);
        join(thread).await.map(|_| ())
    }

    /// Finalize removes the journal only after the caller has recorded `done`.
    pub fn clear_state(workdir: &Path, t: ResourceType) {
        let state_dir = workdir.join(STATE_DIR);
        let _ = fs::remove_file(state_dir.join(journal_name(t)));
        let _ = fs::remove_file(state_dir.join(errors_name(t)));
        let _ = fs::remove_file(error_file::ledger_path(&state_dir, t));
        // Leaves the folder when it is empty; harmless if other types still use it.
        let _ = fs::remove_dir(&state_dir);
    }
}

type WriterThread = std::thread::JoinHandle<Result<BTreeMap<ResourceType, Timestamp>, CrawlError>>;

async fn join(thread: WriterThread) -> Result<BTreeMap<ResourceType, Timestamp>, CrawlError> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| CrawlError::Message(format!("The output writer failed: {e}")))?
        .map_err(|_| CrawlError::Message("The output writer panicked.".into()))?
}

fn writer_loop(
    mut rx: mpsc::Receiver<Msg>,
    mut states: HashMap<ResourceType, TypeState>,
    compress: bool,
    error_target: PathBuf,
    state_dir: PathBuf,
    reporter: Reporter,
) -> Result<BTreeMap<ResourceType, Timestamp>, CrawlError> {
    let mut finish = None;
    // One deflate state for every type: commits are made here one after another, and each
    // is a gzip member of its own. One per type held 13 of them (about 5 MiB) all run long.
    let mut gzip = compress.then(MemberEncoder::new);
    while let Some(msg) = rx.blocking_recv() {
        let mut batch: HashMap<ResourceType, Vec<ChainResult>> = HashMap::new();
        let mut push = |msg: Msg, finish: &mut Option<Finish>| match msg {
            Msg::Chain(r) => batch.entry(r.resource_type).or_default().push(r),
            Msg::Finish(f) => *finish = Some(f),
        };
        push(msg, &mut finish);
        // Coalesce whatever else is already queued into the same commit per type.
        while let Ok(msg) = rx.try_recv() {
            push(msg, &mut finish);
        }
        for (t, results) in batch {
            let state = states.get_mut(&t).ok_or_else(|| {
                CrawlError::Message(format!("No output file was opened for {t}."))
            })?;
            let written = state.commit(results, gzip.as_mut())?;
            reporter.counters().add_resources(written);
        }
        if finish.is_some() {
            break;
        }
    }
    let Some(finish) = finish else {
        return Ok(BTreeMap::new());
    };
    let mut done = BTreeMap::new();
    let mut permanent = Vec::new();
    let mut provisional = BTreeMap::new();
    let mut types: Vec<_> = states.into_iter().collect();
    types.sort_by_key(|(t, _)| *t);
    for (t, state) in types {
        if finish.types.contains(&t) {
            let (when, lines) = state.finalize(finish.accept_failed, &reporter)?;
            done.insert(t, when);
            permanent.push((t, lines));
        } else {
            provisional.insert(t, state.error_lines(true, &reporter));
        }
    }
    error_file::publish(&error_target, &state_dir, &permanent, &provisional)?;
    Ok(done)
}

/// Per type, the searches (chains) that failed and wait for the next run, as the journals
/// of unfinished types list them. Reads only, for `status`; a journal that cannot be read
/// lists none, as it would for a resuming crawl.
pub fn journaled_failures(workdir: &Path) -> BTreeMap<ResourceType, u64> {
    let state_dir = workdir.join(STATE_DIR);
    let mut out = BTreeMap::new();
    for t in ResourceType::SCOPE_TYPES {
        let path = state_dir.join(journal_name(t));
        if !path.is_file() {
            continue;
        }
        let journal = [true, false].into_iter().find_map(|compress| {
            read_journal(&path, &crate::ndjson::file_name(t.as_str(), compress))
        });
        if let Some(journal) = journal
            && !journal.failed.is_empty()
        {
            out.insert(t, journal.failed.len() as u64);
        }
    }
    out
}

fn journal_name(t: ResourceType) -> String {
    format!("{t}.journal")
}

fn errors_name(t: ResourceType) -> String {
    format!("{t}.errors.ndjson")
}

fn io_error(path: &Path, e: io::Error) -> CrawlError {
    CrawlError::Message(format!("Could not write {}: {e}", path.display()))
}

struct TypeState {
    target: PathBuf,
    tmp: PathBuf,
    data: Option<File>,
    data_len: u64,
    errors_path: PathBuf,
    errors: Option<File>,
    errors_len: u64,
    journal: File,
    journal_path: PathBuf,
    start: Timestamp,
    max_date: Option<Timestamp>,
    /// Patient lookups may find one patient under two MRNs; write it once.
    seen: Option<IdSet>,
    /// Chains whose last try failed, with their OperationOutcome lines.
    failed: BTreeMap<String, Vec<String>>,
}

impl TypeState {
    fn open(
        workdir: &Path,
        t: ResourceType,
        compress: bool,
    ) -> Result<(TypeState, Journal), CrawlError> {
        let file_name = crate::ndjson::file_name(t.as_str(), compress);
        let target = workdir.join(&file_name);
        let tmp = workdir.join(format!("{file_name}.tmp"));
        let state_dir = workdir.join(STATE_DIR);
        let journal_path = state_dir.join(journal_name(t));
        let errors_path = state_dir.join(errors_name(t));

        let previous = read_journal(&journal_path, &file_name);
        let mut resumed = None;
        if let Some(j) = previous {
            // A crash between the final rename and clearing the journal: take it back.
            if !tmp.exists() && j.data_len > 0 && target.exists() {
                fs::rename(&target, &tmp).map_err(|e| io_error(&tmp, e))?;
            }
            if truncate_to(&tmp, j.data_len) && truncate_to(&errors_path, j.errors_len) {
                resumed = Some(j);
            }
        }
        let resumed_ok = resumed.is_some();
        let mut journal = match resumed {
            Some(j) => j,
            None => {
                fresh(&tmp, &errors_path)?;
                Journal::new(timestamp::now())
            }
        };
        let (start, data_len, errors_len, max_date) = (
            journal.start,
            journal.data_len,
            journal.errors_len,
            journal.max_date,
        );

        let reuse_journal = resumed_ok;
        // Never through a link planted at one of our names (`safe_file`).
        let mut journal_file = if reuse_journal {
            safe_file::append_regular(&journal_path)
        } else {
            safe_file::create_fresh(&journal_path)
        }
        .map_err(|e| io_error(&journal_path, e))?;
        if !reuse_journal {
            let head = json!({"start": timestamp::isoformat(&start), "file": file_name});
            writeln!(journal_file, "{head}").map_err(|e| io_error(&journal_path, e))?;
        }
        let open_append = |path: &Path, len: u64| -> Result<Option<File>, CrawlError> {
            if len == 0 {
                return Ok(None);
            }
            safe_file::append_regular(path)
                .map(Some)
                .map_err(|e| io_error(path, e))
        };
        let seen = (t == ResourceType::Patient)
            .then(|| journal.found.iter().map(String::as_str).collect());
        let state = TypeState {
            data: open_append(&tmp, data_len)?,
            errors: open_append(&errors_path, errors_len)?,
            target,
            tmp,
            data_len,
            errors_path,
            errors_len,
            journal: journal_file,
            journal_path,
            start,
            max_date,
            seen,
            failed: std::mem::take(&mut journal.failed),
        };
        Ok((state, journal))
    }

    /// Commit finished chains; returns how many resources were written.
    /// Commits `results`; `gzip` compresses the data (none when the output is plain NDJSON).
    fn commit(
        &mut self,
        results: Vec<ChainResult>,
        gzip: Option<&mut MemberEncoder>,
    ) -> Result<u64, CrawlError> {
        let mut written = 0;
        let mut lines = Vec::new();
        let mut errors = Vec::new();
        let mut keys = Vec::with_capacity(results.len());
        let mut found = Vec::new();
        let mut failed = serde_json::Map::new();
        let mut links = serde_json::Map::new();
        for r in results {
            match r.outcome {
                ChainOutcome::Complete => {}
                ChainOutcome::Failed(_) => {
                    failed.insert(r.key.clone(), json!(r.errors));
                    self.failed.insert(r.key, r.errors);
                    continue;
                }
                // The engine stops the type instead; nothing of such a chain is kept.
                ChainOutcome::Foreign(_) => continue,
            }
            self.failed.remove(&r.key);
            keys.push(r.key);
            for (patient, linked) in r.links {
                links.insert(patient, json!(linked));
            }
            for record in r.records {
                if let (Some(seen), Some(id)) = (self.seen.as_mut(), record.id.as_ref()) {
                    found.push(id.clone());
                    if !seen.insert(id) {
                        continue;
                    }
                }
                lines.extend_from_slice(record.line.as_bytes());
                written += 1;
            }
            for e in r.errors {
                errors.extend_from_slice(e.as_bytes());
            }
            if let Some(d) = r.max_date {
                self.max_date = Some(self.max_date.map_or(d, |m| m.max(d)));
            }
        }
        if !lines.is_empty() {
            let bytes = match gzip {
                Some(gzip) => gzip.member(&lines),
                None => lines,
            };
            let file = match self.data.as_mut() {
                Some(f) => f,
                None => self.data.insert(
                    safe_file::create_fresh(&self.tmp).map_err(|e| io_error(&self.tmp, e))?,
                ),
            };
            file.write_all(&bytes).map_err(|e| io_error(&self.tmp, e))?;
            self.data_len += bytes.len() as u64;
        }
        if !errors.is_empty() {
            let file = match self.errors.as_mut() {
                Some(f) => f,
                None => self.errors.insert(
                    safe_file::create_fresh(&self.errors_path)
                        .map_err(|e| io_error(&self.errors_path, e))?,
                ),
            };
            file.write_all(&errors)
                .map_err(|e| io_error(&self.errors_path, e))?;
            self.errors_len += errors.len() as u64;
        }
        // The journal line goes last: a crash before it discards this chain's bytes.
        let mut entry = json!({
            "o": self.data_len,
            "e": self.errors_len,
            "k": keys,
            "f": found,
            "m": self.max_date.as_ref().map(timestamp::isoformat),
        });
        // Only when there are any, so a healthy crawl's journal stays as it was. Older
        // versions ignore both keys: a failed chain is simply not committed for them.
        if !failed.is_empty() {
            entry["x"] = Value::Object(failed);
        }
        if !links.is_empty() {
            entry["l"] = Value::Object(links);
        }
        // One write per line: `writeln!` straight into the unbuffered file made a system
        // call for every token of the JSON (about 35 per commit; 0.97 million writes and a
        // quarter of the CPU time in the 2,000-patient benchmark). One write also keeps a
        // line whole unless the process dies inside that call.
        let mut line = entry.to_string();
        line.push('\n');
        self.journal
            .write_all(line.as_bytes())
            .map_err(|e| io_error(&self.journal_path, e))?;
        Ok(written)
    }

    /// Move the finished file to its final name and return the type's transaction time
    /// (docs/crawl.md#writing-resources-and-finishing-a-type) with its lines for `error/` (failed
    /// chains' only if `accept_failed`).
    fn finalize(
        self,
        accept_failed: bool,
        reporter: &Reporter,
    ) -> Result<(Timestamp, Vec<Value>), CrawlError> {
        let lines = self.error_lines(accept_failed, reporter);
        if let Some(file) = self.data {
            file.sync_all().map_err(|e| io_error(&self.tmp, e))?;
            drop(file);
            fs::rename(&self.tmp, &self.target).map_err(|e| io_error(&self.target, e))?;
        }
        let when = match self.max_date {
            Some(m) if m < self.start => m,
            _ => self.start,
        };
        Ok((when, lines))
    }

    /// The OperationOutcomes of committed chains (server warnings), then, with
    /// `with_failed`, those of the failed chains (in key order).
    fn error_lines(&self, with_failed: bool, reporter: &Reporter) -> Vec<Value> {
        let mut lines = Vec::new();
        if self.errors_len > 0 {
            lines.extend(crate::ndjson::read_values(&self.errors_path, reporter));
        }
        if with_failed {
            lines.extend(
                self.failed
                    .values()
                    .flatten()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
            );
        }
        lines
    }
}

/// Makes one complete gzip member (RFC 1952) per commit from a single deflate state that is
/// reset, not rebuilt, between members. A new `GzEncoder` per commit allocated and zeroed
/// the compressor's tables (a few hundred KiB) every time: page faults, `memset` and
/// `malloc` were a third of the crawl's CPU time in the benchmark.
struct MemberEncoder {
    deflate: DeflateEncoder<Vec<u8>>,
}

/// ID1 ID2, CM = deflate, no flags, MTIME 0, XFL 0, OS unknown: what `GzEncoder` writes.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl MemberEncoder {
    fn new() -> Self {
        MemberEncoder {
            deflate: DeflateEncoder::new(Vec::new(), Compression::default()),
        }
    }

    fn member(&mut self, bytes: &[u8]) -> Vec<u8> {
        // The encoder is between streams (new, or just reset) and owes its Vec nothing, so
        // the header can go straight in. Writing into a Vec cannot fail. `reset` finishes
        // the stream into that Vec, hands it back and readies the compressor for the next.
        let out = self.deflate.get_mut();
        out.reserve(bytes.len() / 4 + 64);
        out.extend_from_slice(&GZIP_HEADER);
        let _ = self.deflate.write_all(bytes);
        let mut out = self.deflate.reset(Vec::new()).unwrap_or_default();
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32.
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out
    }
}

/// Start a type over: no stale partial data may leak into the new file.
fn fresh(tmp: &Path, errors: &Path) -> Result<(), CrawlError> {
    for path in [tmp, errors] {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    Ok(())
}

/// The strings of a JSON array (anything else in it, or no array, is nothing).
fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A journal entry's object of string lists under `key` (`{"chain": ["line", …]}`).
fn string_lists(entry: &Value, key: &str) -> Vec<(String, Vec<String>)> {
    entry
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), string_list(v)))
        .collect()
}

/// Cut `path` back to `len` bytes. False when the file holds less than the journal says
/// (e.g. lost in a power failure), which means starting the type over.
fn truncate_to(path: &Path, len: u64) -> bool {
    if len == 0 {
        return fs::remove_file(path).is_ok() || !path.exists();
    }
    match safe_file::append_regular(path) {
        Ok(f) => match f.metadata() {
            Ok(m) if m.len() >= len => f.set_len(len).is_ok(),
            _ => false,
        },
        Err(_) => false,
    }
}

/// What a type's journal says was committed.
struct Journal {
    start: Timestamp,
    data_len: u64,
    errors_len: u64,
    keys: HashSet<String>,
    found: Vec<String>,
    max_date: Option<Timestamp>,
    /// Chains whose last try failed, with their OperationOutcome lines.
    failed: BTreeMap<String, Vec<String>>,
    links: HashMap<String, Vec<String>>,
}

impl Journal {
    fn new(start: Timestamp) -> Self {
        Journal {
            start,
            data_len: 0,
            errors_len: 0,
            keys: HashSet::new(),
            found: Vec::new(),
            max_date: None,
            failed: BTreeMap::new(),
            links: HashMap::new(),
        }
    }
}

fn read_journal(path: &Path, file_name: &str) -> Option<Journal> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next()?).ok()?;
    if head.get("file")?.as_str()? != file_name {
        return None;
    }
    let start = timestamp::parse_fhir(head.get("start")?.as_str()?)?;
    let mut journal = Journal::new(start);
    for line in lines {
        // A torn last line (killed mid-write) is simply not committed.
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            break;
        };
        let (Some(o), Some(e)) = (
            entry.get("o").and_then(Value::as_u64),
            entry.get("e").and_then(Value::as_u64),
        ) else {
            break;
        };
        journal.data_len = o;
        journal.errors_len = e;
        let strings = |key: &str| entry.get(key).map(string_list).unwrap_or_default();
        for key in strings("k") {
            journal.failed.remove(&key);
            journal.keys.insert(key);
        }
        journal.found.extend(strings("f"));
        journal.failed.extend(string_lists(&entry, "x"));
        journal.links.extend(string_lists(&entry, "l"));
        if let Some(m) = entry.get("m").and_then(Value::as_str) {
            journal.max_date = timestamp::parse_fhir(m);
        }
    }
    Some(journal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::report::FailureKind;
    use std::io::Read;

    fn result(key: &str, outcome: ChainOutcome) -> ChainResult {
        let line = format!("{{\"resourceType\":\"Condition\",\"id\":\"c-{key}\"}}\n");
        ChainResult {
            resource_type: ResourceType::Condition,
            key: key.to_string(),
            records: vec![Record {
                id: Some(format!("c-{key}")),
                line,
            }],
            errors: vec![format!(
                "{{\"resourceType\":\"OperationOutcome\",\"id\":\"{key}\"}}\n"
            )],
            max_date: None,
            outcome,
            dropped: Dropped::default(),
            links: Vec::new(),
            owners: Vec::new(),
        }
    }

    /// A failed chain is journaled as failed, not committed: reopened (as after SIGKILL) it
    /// is still to do, with its lines; a later success replaces them.
    #[test]
    fn failed_chains_stay_to_do_across_restarts_until_they_succeed() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        fs::create_dir_all(dir.join(STATE_DIR)).expect("state dir");
        let t = ResourceType::Condition;
        let (mut state, journal) = TypeState::open(&dir, t, true).expect("open");
        assert!(journal.keys.is_empty());
        let failed = ChainOutcome::Failed(FailureKind::Unusable);
        let mut gzip = MemberEncoder::new();
        state
            .commit(
                vec![
                    result("p1", ChainOutcome::Complete),
                    result("p2", failed.clone()),
                ],
                Some(&mut gzip),
            )
            .expect("commit");
        drop(state);

        let (mut state, journal) = TypeState::open(&dir, t, true).expect("reopen");
        assert_eq!(journal.keys, HashSet::from(["p1".to_string()]));
        assert_eq!(state.failed.keys().collect::<Vec<_>>(), ["p2"]);
        // Only the committed chain's data and warning are in the files.
        assert_eq!(state.error_lines(false, &Reporter::silent()).len(), 1);
        assert_eq!(state.error_lines(true, &Reporter::silent()).len(), 2);
        state
            .commit(vec![result("p2", failed)], Some(&mut gzip))
            .expect("commit");
        drop(state);
        let (mut state, _) = TypeState::open(&dir, t, true).expect("reopen");
        assert_eq!(state.failed.len(), 1, "failed twice, listed once");
        assert_eq!(
            journaled_failures(&dir).into_iter().collect::<Vec<_>>(),
            [(t, 1)]
        );
        assert_eq!(state.error_lines(true, &Reporter::silent()).len(), 2);
        state
            .commit(vec![result("p2", ChainOutcome::Complete)], Some(&mut gzip))
            .expect("commit");
        drop(state);

        let (state, journal) = TypeState::open(&dir, t, true).expect("reopen");
        assert_eq!(
            journal.keys,
            HashSet::from(["p1".to_string(), "p2".to_string()])
        );
        assert!(state.failed.is_empty());
        assert!(journaled_failures(&dir).is_empty());
        assert_eq!(
            state.error_lines(true, &Reporter::silent()).len(),
            2,
            "the two chains' own lines"
        );
        let (_, lines) = state
            .finalize(false, &Reporter::silent())
            .expect("finalize");
        assert_eq!(lines.len(), 2);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(
            File::open(dir.join("Condition.ndjson.gz")).expect("file"),
        )
        .read_to_string(&mut text)
        .expect("gunzip");
        assert_eq!(text.lines().count(), 2, "{text}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn members_from_one_encoder_read_back_as_one_stream() {
        let mut encoder = MemberEncoder::new();
        let mut file = Vec::new();
        let parts: [&[u8]; 3] = [b"{\"a\":1}\n", b"", b"{\"b\":2}\n{\"c\":3}\n"];
        for part in parts {
            let member = encoder.member(part);
            // Each member is a complete gzip stream on its own.
            let mut alone = Vec::new();
            flate2::read::GzDecoder::new(&member[..])
                .read_to_end(&mut alone)
                .expect("one member");
            assert_eq!(alone, part);
            file.extend_from_slice(&member);
        }
        let mut all = String::new();
        flate2::read::MultiGzDecoder::new(&file[..])
            .read_to_string(&mut all)
            .expect("all members");
        assert_eq!(all, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
    }
}
