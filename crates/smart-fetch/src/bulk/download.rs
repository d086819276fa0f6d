//! Bulk file downloads (docs/bulk.md#downloads, docs/folders.md#bulk-files-on-disk): all files of
//! the manifest at once within the connection budget (each holds a slot while its body streams),
//! each body streamed chunk by chunk into `<file>.tmp` — through gzip unless `--no-compression` —
//! by a blocking writer, then fsynced and renamed into place. Memory stays flat however large a
//! file is: at most a few chunks per download are in flight between network and disk.
//!
//! Which files are fetched, and which with credentials, is `trust`'s decision; a refused
//! file is never requested. Redirects to another host never carry the token (the HTTP
//! client drops `Authorization` when the host changes).
//!
//! A download that stalls (no answer, or a body that stops moving, for the `stall` limit)
//! or breaks off mid-way is downloaded again from the start (5 tries, with backoff); each
//! failure is a `download_error` in the log. A file that still fails, or is refused, does
//! not stop the others: `download_all` reports it (see `failures`). Only what would fail
//! every file alike (the disk, the log, the credentials) ends the downloads at once.

use super::BulkError;
use super::events::{BulkLog, ErrorDetail, Watch, Watched};
use super::failures::{Failure, Reason};
use super::journal::Journal;
use super::manifest::FileEntry;
use super::stall::{self, HeaderClock};
use super::trust::{FileTrust, Refusal};
use crate::console;
use crate::fhir::{FhirClient, FhirError, Request, StreamResponse};
use crate::ndjson;
use crate::report::Reporter;
use crate::text::printable;
use bytes::{Bytes, BytesMut};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

const NDJSON: &str = "application/fhir+ndjson";
/// A download's total time is not limited (a healthy multi-gigabyte file may take hours);
/// this only replaces the engine's 300 s limit on a whole exchange. Stalls are what end a
/// dead download (see `stall`).
const NO_TOTAL_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Tries of a download that stalls or whose body breaks off (the engine already retried
/// getting an answer at all).
const STREAM_ATTEMPTS: u32 = 5;
/// Batches queued between the network and the writer of one file, which bounds the memory
/// of a download when the disk side (gzip) is slower than the server: with 4 queued
/// batches that could grow to twice their size, a fast server (1 GB in 2.3 s) made a
/// download of five files peak at 34 MiB; with 2 exact batches of 128 KiB, 21 MiB.
const QUEUE: usize = 2;
/// Network chunks are gathered up to this size before they cross to the writer thread.
/// Chunks come as read from the socket, often 8-16 KiB; handing each over on its own cost
/// two thread wake-ups per chunk, which were most of the CPU time of a 1 GB download
/// (benchmark (d): 0.56 million futex calls).
const BATCH: usize = 128 * 1024;

/// Totals of what this run downloaded (for `export_complete`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub resources: u64,
    pub chars: u64,
}

/// What `download_all` did: the totals of the files it downloaded, and the files it could
/// not download.
#[derive(Debug, Default)]
pub struct Report {
    pub totals: Totals,
    pub failures: Vec<Failure>,
}

/// What one finished file held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct FileStats {
    /// Lines (docs/folders.md#counting-lines).
    lines: u64,
    /// Decoded characters (`fileSize` of the log; bytes for ASCII).
    chars: u64,
    /// Bytes received (after any transfer decoding).
    bytes: u64,
}

/// Why one download ended without a file.
enum Missing {
    /// This file only; the others go on.
    File(Reason),
    /// Every other file would fail alike: stop.
    Fatal(BulkError),
}

impl From<BulkError> for Missing {
    fn from(e: BulkError) -> Self {
        Missing::Fatal(e)
    }
}

impl From<crate::folder::FolderError> for Missing {
    fn from(e: crate::folder::FolderError) -> Self {
        Missing::Fatal(e.into())
    }
}

/// Download every file of `files` not already in the journal, `stall` being the longest
/// silence a download may meet (see `stall`). Each finished file is reported to
/// `reporter`, and its lines counted in the run's resources.
#[allow(clippy::too_many_arguments)]
pub async fn download_all(
    client: &FhirClient,
    log: &BulkLog,
    workdir: &Path,
    files: &[FileEntry],
    trust: &FileTrust,
    stall: Duration,
    journal: &mut Journal,
    reporter: &Reporter,
) -> Result<Report, BulkError> {
    let waited = AtomicU64::new(0);
    let todo: Vec<&FileEntry> = files
        .iter()
        .filter(|f| !journal.is_done(&f.url, &f.rel_path))
        .collect();
    let skipped = files.len() - todo.len();
    if skipped > 0 {
        reporter.info(format!(
            "  Skipping {} already downloaded file{}.",
            console::thousands(skipped as u64),
            if skipped == 1 { "" } else { "s" }
        ));
    }
    let parallel = client.budget().max().max(1);
    // Collected first: a stream over a closure that borrows would make this future not
    // `Send` for every lifetime (a rustc limitation), and a batch spawns exports as tasks.
    let waited = &waited;
    let downloads: Vec<_> = todo
        .into_iter()
        .map(|entry| async move {
            let result =
                download_one(client, log, workdir, entry, trust, stall, waited, reporter).await;
            (entry, result)
        })
        .collect();
    let mut running = futures_util::stream::iter(downloads).buffer_unordered(parallel);

    let mut report = Report::default();
    while let Some((entry, result)) = running.next().await {
        let stats = match result {
            Ok(stats) => stats,
            Err(Missing::Fatal(e)) => return Err(e),
            Err(Missing::File(reason)) => {
                report.failures.push(Failure {
                    url: entry.url.clone(),
                    reason,
                });
                continue;
            }
        };
        log.download_complete(&entry.url, stats.lines, stats.chars)?;
        journal.record(&entry.url, &entry.rel_path).map_err(|e| {
            BulkError::Message(format!(
                "Could not record the download of {} in {}: {e}",
                entry.rel_path,
                workdir.display()
            ))
        })?;
        reporter.counters().add_resources(stats.lines);
        reporter.info(format!(
            "  Downloaded {} ({})",
            entry.rel_path,
            console::human_file_size(stats.bytes)
        ));
        report.totals.files += 1;
        report.totals.resources += stats.lines;
        report.totals.chars += stats.chars;
    }
    Ok(report)
}

/// Removes the temp file unless the download was committed (also when the future is
/// dropped: an interrupted or abandoned download leaves nothing behind).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// `300` or `0.5`: a limit as the person who set it wrote it.
fn seconds_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

#[allow(clippy::too_many_arguments)]
async fn download_one(
    client: &FhirClient,
    log: &BulkLog,
    workdir: &Path,
    entry: &FileEntry,
    trust: &FileTrust,
    stall: Duration,
    waited: &AtomicU64,
    reporter: &Reporter,
) -> Result<FileStats, Missing> {
    let refuse = |refusal: Refusal| -> Result<FileStats, Missing> {
        let detail = ErrorDetail::without_response(format!("Not downloaded: {refusal}"));
        log.download_error(&entry.url, &detail)?;
        Err(Missing::File(Reason::Refused(refusal)))
    };
    let url = match client.resolve(&entry.url) {
        Ok(url) => url,
        Err(e) => return refuse(Refusal::BadUrl(e.to_string())),
    };
    let send_token = match trust.credentials_for(&url) {
        Ok(send) => send,
        Err(refusal) => return refuse(refusal),
    };
    let target = workdir.join(&entry.rel_path);
    let disk = |message: String| {
        Missing::Fatal(BulkError::Message(format!(
            "Error downloading '{}': {message}",
            printable(&entry.url)
        )))
    };
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| disk(format!("{}: {e}", dir.display())))?;
    }
    let tmp = ndjson::tmp_path(&target);
    let mut guard = TempGuard(Some(tmp.clone()));
    let compress = ndjson::is_compressed_name(&target);

    let mut attempt = 1;
    loop {
        let watch = Watch::new(
            log,
            Watched::Download {
                url: &entry.url,
                item: entry.item,
                resource_type: &entry.resource_type,
            },
            waited,
        );
        let clock = HeaderClock::new(&watch);
        let mut request = Request::get(url.as_str(), NDJSON);
        request.observer = Some(&clock);
        request.timeout = Some(NO_TOTAL_LIMIT);
        let answer =
            stall::answer_within(&clock, stall, client.get_stream(request, send_token)).await;
        let failure = match answer {
            Ok(Ok(mut response)) => {
                // The body streams in a task of its own, on the runtime's worker threads,
                // beside the HTTP connection task that feeds it. Polled from here it could
                // run on the thread that blocks on the whole command, and every chunk
                // received meant a futex call to wake that thread: a fifth of the CPU time
                // of benchmark (d), a 1 GB download.
                let streaming = {
                    let tmp = tmp.clone();
                    AbortOnDrop(tokio::spawn(async move {
                        stream_to_file(&mut response, &tmp, compress, stall).await
                    }))
                };
                match streaming.join().await {
                    Ok(stats) => {
                        fs::rename(&tmp, &target)
                            .map_err(|e| disk(format!("{}: {e}", target.display())))?;
                        guard.0 = None;
                        if let Some(dir) = target.parent() {
                            ndjson::sync_dir(dir);
                        }
                        return Ok(stats);
                    }
                    Err(StreamFailure::Network(error)) => match error {
                        FhirError::Transport { message, .. } => message,
                        other => other.to_string(),
                    },
                    Err(StreamFailure::Disk(error)) => {
                        let message = format!("{}: {error}", tmp.display());
                        log.download_error(
                            &entry.url,
                            &ErrorDetail::without_response(message.clone()),
                        )?;
                        return Err(disk(message));
                    }
                }
            }
            // The engine retried and logged this already.
            Ok(Err(error)) if error.is_fatal() => return Err(Missing::Fatal(error.into())),
            Ok(Err(error)) => return Err(Missing::File(Reason::Failed(error.to_string()))),
            Err(stall::Stalled) => format!(
                "Timed out waiting for the server: no answer for {} seconds",
                seconds_text(stall)
            ),
        };
        log.download_error(&entry.url, &ErrorDetail::without_response(failure.clone()))?;
        if attempt >= STREAM_ATTEMPTS {
            return Err(Missing::File(Reason::Failed(failure)));
        }
        // Never longer than the stall limit itself: shortening one shortens both.
        let pause = Duration::from_secs(1u64 << attempt.min(5)).min(stall);
        reporter.verbose(|| {
            format!(
                "Downloading {} again in {}s (attempt {}/{STREAM_ATTEMPTS}): {}",
                printable(&entry.url),
                seconds_text(pause),
                attempt + 1,
                printable(&failure)
            )
        });
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

/// A spawned task that stops when its handle is dropped (an interrupted download must not
/// go on in the background).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AbortOnDrop<Result<FileStats, StreamFailure>> {
    async fn join(mut self) -> Result<FileStats, StreamFailure> {
        (&mut self.0).await.unwrap_or_else(|e| {
            Err(StreamFailure::Disk(io::Error::other(format!(
                "the download stopped: {e}"
            ))))
        })
    }
}

enum StreamFailure {
    Network(FhirError),
    Disk(io::Error),
}

/// What the network side hands the writer.
enum Piece {
    Data(Bytes),
    /// The body is complete: finish, flush and fsync.
    End,
}

/// Stream the body into `tmp` (replacing it), returning the file's statistics once it is
/// whole and on disk.
async fn stream_to_file(
    response: &mut StreamResponse,
    tmp: &Path,
    compress: bool,
    stall: Duration,
) -> Result<FileStats, StreamFailure> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(QUEUE);
    let path = tmp.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || write_file(rx, &path, compress));
    let mut failure = None;
    // Exactly one batch: a buffer left to grow by doubling held twice the data.
    let mut pending = BytesMut::with_capacity(BATCH);
    loop {
        let next = match tokio::time::timeout(stall, response.chunk()).await {
            Ok(next) => next,
            Err(_) => Err(FhirError::Transport {
                url: response.url.clone(),
                message: format!(
                    "Timed out waiting for the server: no data for {} seconds",
                    seconds_text(stall)
                ),
            }),
        };
        let piece = match next {
            Ok(Some(chunk)) if pending.is_empty() && chunk.len() >= BATCH => Piece::Data(chunk),
            Ok(Some(chunk)) if pending.len() + chunk.len() > BATCH => {
                // Hand over what is gathered rather than grow the buffer past a batch.
                let full = std::mem::replace(&mut pending, BytesMut::with_capacity(BATCH));
                pending.extend_from_slice(&chunk);
                Piece::Data(full.freeze())
            }
            Ok(Some(chunk)) => {
                pending.extend_from_slice(&chunk);
                if pending.len() < BATCH {
                    continue;
                }
                Piece::Data(
                    std::mem::replace(&mut pending, BytesMut::with_capacity(BATCH)).freeze(),
                )
            }
            Ok(None) if !pending.is_empty() => {
                if tx
                    .send(Piece::Data(std::mem::take(&mut pending).freeze()))
                    .await
                    .is_err()
                {
                    break;
                }
                Piece::End
            }
            Ok(None) => Piece::End,
            Err(e) => {
                failure = Some(StreamFailure::Network(e));
                break;
            }
        };
        let end = matches!(piece, Piece::End);
        // A closed queue means the writer failed; its error comes from the join below.
        if tx.send(piece).await.is_err() || end {
            break;
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| StreamFailure::Disk(io::Error::other(format!("the writer stopped: {e}"))))?;
    match failure {
        Some(f) => Err(f),
        None => written.map_err(StreamFailure::Disk),
    }
}

/// The file behind the writer: plain, or a gzip stream over it.
enum Sink {
    Plain(BufWriter<File>),
    // Boxed: the encoder's state is far larger than a plain writer.
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

/// The blocking side: write what arrives; only an `End` makes a complete file.
fn write_file(
    mut rx: tokio::sync::mpsc::Receiver<Piece>,
    path: &Path,
    compress: bool,
) -> io::Result<FileStats> {
    // Never through a link planted at the temp name (see `safe_file`).
    let file = BufWriter::with_capacity(64 * 1024, crate::safe_file::create_fresh(path)?);
    let mut sink = if compress {
        Sink::Gzip(Box::new(GzEncoder::new(file, Compression::default())))
    } else {
        Sink::Plain(file)
    };
    let mut stats = FileStats::default();
    let mut last = None;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Data(chunk) => {
                stats.lines += memchr::memchr_iter(b'\n', &chunk).count() as u64;
                stats.chars += decoded_chars(&chunk);
                stats.bytes += chunk.len() as u64;
                if let Some(&b) = chunk.last() {
                    last = Some(b);
                }
                match &mut sink {
                    Sink::Plain(w) => w.write_all(&chunk)?,
                    Sink::Gzip(w) => w.write_all(&chunk)?,
                }
            }
            Piece::End => {
                if last.is_some_and(|b| b != b'\n') {
                    stats.lines += 1;
                }
                let buffered = match sink {
                    Sink::Plain(w) => w,
                    Sink::Gzip(w) => w.finish()?,
                };
                let file = buffered.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                return Ok(stats);
            }
        }
    }
    Err(io::Error::other("the download ended early"))
}

/// Characters of UTF-8 text (every byte that does not continue a character); a character
/// split across chunks is still counted once.
fn decoded_chars(chunk: &[u8]) -> u64 {
    if chunk.is_ascii() {
        return chunk.len() as u64;
    }
    chunk.iter().filter(|&&b| (b & 0xC0) != 0x80).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(decoded_chars(b"abc\n"), 4);
        assert_eq!(decoded_chars("é\n".as_bytes()), 2);
        let bytes = "a€b".as_bytes();
        assert_eq!(decoded_chars(&bytes[..2]) + decoded_chars(&bytes[2..]), 3);
    }

    #[tokio::test]
    async fn writer_only_completes_on_end() {
        let dir = crate::folder::discovery::tests::temp_dir("bulk-writer");
        let path = dir.join("a.ndjson.gz.tmp");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let p = path.clone();
        let writer = tokio::task::spawn_blocking(move || write_file(rx, &p, true));
        for piece in [
            Piece::Data(Bytes::from_static(b"{\"a\":1}\n{\"b\":")),
            Piece::Data(Bytes::from_static(b"2}")),
            Piece::End,
        ] {
            assert!(tx.send(piece).await.is_ok());
        }
        let stats = writer.await.ok().and_then(Result::ok);
        assert_eq!(
            stats,
            Some(FileStats {
                lines: 2,
                chars: 15,
                bytes: 15
            })
        );
        assert_eq!(ndjson::line_count(&path).ok(), Some(2));

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let p = path.clone();
        let writer = tokio::task::spawn_blocking(move || write_file(rx, &p, false));
        assert!(tx.send(Piece::Data(Bytes::from_static(b"x"))).await.is_ok());
        drop(tx);
        assert!(writer.await.ok().is_some_and(|r| r.is_err()));
        let _ = fs::remove_dir_all(&dir);
    }
}
