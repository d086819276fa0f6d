//! `archive`: copy each group's leaf folder of a quarter (`MRN-123/002.2026-03/`) to object
//! storage (S3, GCS, Azure or a local path), to `<prefix>/<group>/<leaf folder>/…`, so the
//! hospital keeps the export and Cumulus ETL reads it straight from the bucket. Only leaf
//! folders go up (object storage has no symbolic links, and the managed folder's links only
//! pool the leaf folders' files), and never a link inside one.
//!
//! Like `aws s3 sync` and `rclone`, a rerun sends only what is missing or different, and a
//! run cut off anywhere (Ctrl-C, SIGKILL) is finished by the same command. The archive
//! state lives in the destination only: a manifest per leaf folder (sizes and sha256 of
//! every file, see `manifest.rs`) written after all its files and removed before any of them
//! changes, so a leaf folder counts as archived exactly when its manifest is there
//! ([`archived_at`]). Nothing is written into the export tree, which may be read-only.
//!
//! A folder whose export is not complete is refused unless asked for; a local file that
//! cannot be read fails its folder only; a store that refuses the credentials, has no such
//! bucket, or keeps failing after retries ends the run (every other folder would fail the
//! same way). Library code: messages go through the Reporter, values come back.

mod aws_profile;
pub mod dest;
pub mod error;
mod hash;
pub mod manifest;
pub mod progress;
pub mod select;
pub mod summary;
mod upload;

pub use dest::Destination;
pub use error::ArchiveError;
pub use manifest::{MANIFEST_NAME, Manifest};
pub use summary::{FolderRow, FolderState, Summary};

use crate::cancel::Cancel;
use crate::report::Reporter;
use futures_util::{StreamExt, TryStreamExt, stream};
use manifest::ManifestFile;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use progress::Counters;
use select::{LeafFolder, Listing, LocalFile};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use upload::{UploadError, Uploader};

/// What to archive and how.
#[derive(Clone, Debug)]
pub struct Plan {
    pub output_root: PathBuf,
    /// `None`: each group's newest leaf folder.
    pub nickname: Option<String>,
    pub include_incomplete: bool,
    /// Files in flight at once (leaf folders too).
    pub parallel: usize,
    /// How often a progress line is written (`None`: never).
    pub progress_every: Option<Duration>,
}

/// Is this leaf folder archived at `dest`, and with what? Reads its manifest (one request);
/// `None` when there is none, i.e. the folder was never archived there, or an archive of it
/// is under way or was cut off. For `status` and scripts, which call
/// [`Destination::check`] first: in a bucket that does not exist every read answers 404,
/// the same as a missing manifest.
pub async fn archived_at(
    dest: &Destination,
    group: &str,
    leaf: &str,
) -> Result<Option<Manifest>, ArchiveError> {
    let key = dest.leaf_prefix(group, leaf).join(MANIFEST_NAME);
    read_manifest(dest, &key).await
}

/// Whether one leaf folder is archived at a destination, as `status --archive` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveState {
    /// No manifest there: never archived, or an archive of it is under way or was cut off.
    Missing,
    /// The manifest describes the folder as it is now (same files, sizes, modification
    /// times and export completeness); `archived` is when it was written.
    Current { archived: String },
    /// Archived once, but the folder changed since (or could not be listed); a rerun of
    /// `archive` sends the difference.
    Outdated { archived: String },
}

/// [`ArchiveState`] of the leaf folder at `leaf` (group `group`) at `dest`: one read of its
/// manifest, compared with the local folder (no listing of the destination: the manifest is
/// written after every object and removed before any changes, so it vouches for them).
pub async fn archive_state(
    dest: &Destination,
    group: &str,
    leaf: &std::path::Path,
    complete: bool,
) -> Result<ArchiveState, ArchiveError> {
    let name = leaf
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(manifest) = archived_at(dest, group, &name).await? else {
        return Ok(ArchiveState::Missing);
    };
    let archived = manifest.archived.clone();
    let same = select::list_files(leaf)
        .is_ok_and(|listing| describes(&manifest, &listing.files, complete));
    Ok(if same {
        ArchiveState::Current { archived }
    } else {
        ArchiveState::Outdated { archived }
    })
}

/// A manifest is a few KiB; anything much larger under its name is not ours.
const MANIFEST_MAX_BYTES: u64 = 64 << 20;

async fn read_manifest(
    dest: &Destination,
    key: &ObjectPath,
) -> Result<Option<Manifest>, ArchiveError> {
    let doing = format!("reading {}", key.as_ref());
    let result = match dest.store().get(key).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(error::remote(&e, &dest.context(&doing))),
    };
    if result.meta.size > MANIFEST_MAX_BYTES {
        return Ok(None);
    }
    match result.bytes().await {
        Ok(bytes) => Ok(Manifest::parse(&bytes)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(error::remote(&e, &dest.context(&doing))),
    }
}

/// Why one leaf folder's archive stopped.
enum LeafError {
    /// This folder only (a local file); the others go on.
    Local(String),
    /// The whole run (the store).
    Fatal(ArchiveError),
    Stopped,
}

enum FileOutcome {
    Uploaded { sha256: String },
    Present { sha256: String },
}

struct Ctx<'a> {
    dest: &'a Destination,
    reporter: &'a Reporter,
    uploader: Uploader,
    /// Files in flight, over all leaf folders.
    slots: Semaphore,
    parallel: usize,
    counters: Arc<Counters>,
    stop: Cancel,
}

impl Ctx<'_> {
    fn fatal(&self, e: &object_store::Error, doing: &str) -> LeafError {
        LeafError::Fatal(error::remote(e, &self.dest.context(doing)))
    }
}

/// Archive the plan's leaf folders to `dest`. Returns the summary when the run went through
/// (some folders may be refused or failed: see [`Summary::not_archived`]); an error when it
/// could not start or had to stop.
pub async fn run(
    plan: &Plan,
    dest: &Destination,
    reporter: &Reporter,
    cancel: &Cancel,
) -> Result<Summary, ArchiveError> {
    let started = Instant::now();
    let nickname = plan.nickname.as_deref();
    let choices = select::groups(&plan.output_root, nickname)?;
    if choices.iter().all(|c| c.leaf.is_none()) {
        let what = match nickname {
            Some(nick) => format!("no leaf folder NNN.{nick}"),
            None => "no leaf folder".to_string(),
        };
        return Err(ArchiveError::NothingToArchive(if choices.is_empty() {
            format!(
                "{} holds no group folders with leaf folders. Give the folder that holds the group folders, or one group's managed folder.",
                plan.output_root.display()
            )
        } else {
            format!(
                "none of the {} group folders under {} has {what}. Check --nickname.",
                choices.len(),
                plan.output_root.display()
            )
        }));
    }
    dest.check().await?;

    let counters = Arc::new(Counters::default());
    let mut rows = Vec::new();
    let mut work: Vec<(usize, LeafFolder, Listing)> = Vec::new();
    for choice in choices {
        let Some(leaf) = choice.leaf else {
            reporter.warn(format!(
                "{}: no leaf folder{}; nothing archived for this group.",
                choice.group,
                nickname.map_or_else(String::new, |n| format!(" of the nickname '{n}'"))
            ));
            rows.push(FolderRow::new(&choice.group, FolderState::NoFolder));
            continue;
        };
        let mut row = FolderRow::new(&leaf.group, FolderState::NotDone);
        row.leaf = Some(leaf.name.clone());
        row.path = Some(leaf.path.clone());
        row.url = Some(dest.leaf_url(&leaf.group, &leaf.name));
        row.export_complete = Some(leaf.complete);
        if !leaf.complete && !plan.include_incomplete {
            reporter.warn(format!(
                "Not archiving {}: its export is not complete. Finish it (rerun the export or batch), or pass --include-incomplete.",
                leaf.path.display()
            ));
            row.state = FolderState::Refused;
            rows.push(row);
            continue;
        }
        match select::list_files(&leaf.path) {
            Ok(listing) => {
                row.files = listing.files.len() as u64;
                row.bytes = listing.bytes();
                row.links_skipped = listing.links.clone();
                row.other_skipped = listing.skipped.clone();
                counters.files_total.fetch_add(row.files, Ordering::Relaxed);
                counters.bytes_total.fetch_add(row.bytes, Ordering::Relaxed);
                counters.folders_total.fetch_add(1, Ordering::Relaxed);
                work.push((rows.len(), leaf, listing));
            }
            Err(e) => {
                row.state = FolderState::Failed;
                row.error = Some(format!("could not list {}: {e}", leaf.path.display()));
                reporter.warn(format!("{}: {}", row.name(), row.describe()));
            }
        }
        rows.push(row);
    }
    reporter.info(format!(
        "Archiving {} leaf folders ({} files, {}) to {}.",
        work.len(),
        crate::console::thousands(counters.files_total.load(Ordering::Relaxed)),
        crate::console::human_file_size(counters.bytes_total.load(Ordering::Relaxed)),
        dest.shown()
    ));

    // One token for everything in flight: the user's Ctrl-C, or a fatal store error here.
    let stop = Cancel::new();
    let watcher = {
        let (cancel, stop) = (cancel.clone(), stop.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            stop.cancel();
        })
    };
    let ticker = plan.progress_every.map(|every| {
        let (counters, reporter) = (counters.clone(), reporter.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                reporter.info(progress::line(&counters, started));
            }
        })
    });
    let parallel = plan.parallel.max(1);
    let ctx = Ctx {
        dest,
        reporter,
        uploader: Uploader::new(
            dest.store().clone(),
            dest.keeps_attributes(),
            counters.clone(),
            stop.clone(),
        ),
        slots: Semaphore::new(parallel),
        parallel,
        counters: counters.clone(),
        stop: stop.clone(),
    };
    let mut fatal = None;
    {
        let ctx = &ctx;
        let mut results = stream::iter(work)
            .map(|(index, leaf, listing)| async move {
                let started = Instant::now();
                let outcome = archive_leaf(ctx, &leaf, listing).await;
                (index, outcome, started.elapsed().as_secs_f64())
            })
            .buffer_unordered(parallel);
        while let Some((index, outcome, seconds)) = results.next().await {
            let row = &mut rows[index];
            row.seconds = seconds;
            match outcome {
                Ok(done) => {
                    row.state = done.state;
                    row.files_uploaded = done.files_uploaded;
                    row.bytes_uploaded = done.bytes_uploaded;
                    row.files_already_archived = done.files_already_archived;
                    row.objects_removed = done.objects_removed;
                    ctx.counters.folders_done.fetch_add(1, Ordering::Relaxed);
                    reporter.info(format!(
                        "{}: {}, {}.",
                        row.name(),
                        row.state.as_str(),
                        row.describe()
                    ));
                }
                Err(LeafError::Local(message)) => {
                    row.state = FolderState::Failed;
                    row.error = Some(message);
                    reporter.warn(format!("{}: not archived: {}.", row.name(), row.describe()));
                }
                Err(LeafError::Fatal(e)) => {
                    if fatal.is_none() {
                        fatal = Some(e);
                        stop.cancel();
                    }
                }
                Err(LeafError::Stopped) => {}
            }
        }
    }
    watcher.abort();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(ArchiveError::Interrupted);
    }
    Ok(Summary::new(
        dest.shown(),
        nickname,
        rows,
        started.elapsed().as_secs_f64(),
    ))
}

/// The figures of one archived leaf folder.
struct LeafDone {
    state: FolderState,
    files_uploaded: u64,
    bytes_uploaded: u64,
    files_already_archived: u64,
    objects_removed: u64,
}

/// `error/OperationOutcome.ndjson.gz` under `prefix`.
fn object_key(prefix: &ObjectPath, rel: &str) -> ObjectPath {
    rel.split('/')
        .fold(prefix.clone(), |key, part| key.join(part))
}

/// A key's path below `prefix`, spelled as the store lists it.
fn below(prefix: &ObjectPath, key: &ObjectPath) -> String {
    let start = format!("{}/", prefix.as_ref());
    key.as_ref()
        .strip_prefix(&start)
        .unwrap_or(key.as_ref())
        .to_string()
}

/// The manifest describes the local folder as it is: same files, sizes and modification
/// times, same export completeness (`status --archive`'s "current", and half of a rerun's
/// skip).
fn describes(manifest: &Manifest, files: &[LocalFile], complete: bool) -> bool {
    manifest.export_complete == complete
        && manifest.files.len() == files.len()
        && files.iter().all(|f| {
            manifest
                .file(&f.rel)
                .is_some_and(|m| m.size == f.size && m.mtime_ns == f.mtime_ns)
        })
}

/// The manifest still describes the folder, and the destination holds what it lists: every
/// object there at its size, nothing else under the prefix.
fn up_to_date(
    manifest: &Manifest,
    prefix: &ObjectPath,
    files: &[LocalFile],
    remote: &BTreeMap<String, ObjectMeta>,
    complete: bool,
) -> bool {
    remote.len() == files.len() + 1
        && describes(manifest, files, complete)
        && files.iter().all(|f| {
            remote
                .get(&below(prefix, &object_key(prefix, &f.rel)))
                .is_some_and(|o| o.size == f.size)
        })
}

async fn archive_leaf(
    ctx: &Ctx<'_>,
    leaf: &LeafFolder,
    listing: Listing,
) -> Result<LeafDone, LeafError> {
    let prefix = ctx.dest.leaf_prefix(&leaf.group, &leaf.name);
    let manifest_key = prefix.clone().join(MANIFEST_NAME);
    let remote = ctx.dest.list(&prefix).await.map_err(LeafError::Fatal)?;
    let had_manifest = remote.contains_key(MANIFEST_NAME);
    let old = if had_manifest {
        read_manifest(ctx.dest, &manifest_key)
            .await
            .map_err(LeafError::Fatal)?
    } else {
        None
    };
    if let Some(m) = &old
        && up_to_date(m, &prefix, &listing.files, &remote, leaf.complete)
    {
        let files = listing.files.len() as u64;
        ctx.counters.files_done.fetch_add(files, Ordering::Relaxed);
        ctx.counters
            .bytes_present
            .fetch_add(listing.bytes(), Ordering::Relaxed);
        return Ok(LeafDone {
            state: FolderState::AlreadyArchived,
            files_uploaded: 0,
            bytes_uploaded: 0,
            files_already_archived: files,
            objects_removed: 0,
        });
    }
    // From here until the new manifest is written, the folder's objects may change: the old
    // manifest must not claim them meanwhile.
    if had_manifest {
        ctx.dest
            .store()
            .delete(&manifest_key)
            .await
            .map_err(|e| ctx.fatal(&e, &format!("removing the old {}", manifest_key.as_ref())))?;
    }
    let outcomes: Vec<(usize, FileOutcome)> = stream::iter(listing.files.iter().enumerate())
        .map(|(i, file)| {
            let (prefix, old, remote) = (&prefix, old.as_ref(), &remote);
            async move { Ok::<_, LeafError>((i, sync_file(ctx, file, prefix, old, remote).await?)) }
        })
        .buffer_unordered(ctx.parallel)
        .try_collect()
        .await?;
    let mut done = LeafDone {
        state: FolderState::Archived,
        files_uploaded: 0,
        bytes_uploaded: 0,
        files_already_archived: 0,
        objects_removed: 0,
    };
    let mut entries = Vec::with_capacity(outcomes.len());
    for (i, outcome) in outcomes {
        let file = &listing.files[i];
        let sha256 = match outcome {
            FileOutcome::Uploaded { sha256 } => {
                done.files_uploaded += 1;
                done.bytes_uploaded += file.size;
                sha256
            }
            FileOutcome::Present { sha256 } => {
                done.files_already_archived += 1;
                sha256
            }
        };
        entries.push(ManifestFile {
            path: file.rel.clone(),
            size: file.size,
            sha256,
            mtime_ns: file.mtime_ns,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));

    // Objects the folder no longer has (an earlier archive of it while unfinished) go, so
    // that a reader of the prefix sees the folder as it is.
    let keep: BTreeSet<String> = listing
        .files
        .iter()
        .map(|f| below(&prefix, &object_key(&prefix, &f.rel)))
        .collect();
    for (rel, meta) in &remote {
        if rel != MANIFEST_NAME && !keep.contains(rel) {
            ctx.dest
                .store()
                .delete(&meta.location)
                .await
                .map_err(|e| ctx.fatal(&e, &format!("removing {}", meta.location.as_ref())))?;
            ctx.reporter.verbose(|| {
                format!(
                    "{}: removed (the leaf folder no longer has it).",
                    meta.location.as_ref()
                )
            });
            done.objects_removed += 1;
        }
    }
    ctx.dest.remove_cut_off_uploads(&prefix).map_err(|e| {
        LeafError::Fatal(ArchiveError::Store {
            dest: ctx.dest.shown().to_string(),
            doing: format!("removing cut-off uploads under {}", prefix.as_ref()),
            detail: e.to_string(),
        })
    })?;
    if ctx.stop.is_cancelled() {
        return Err(LeafError::Stopped);
    }

    let manifest = Manifest {
        format: manifest::FORMAT,
        tool: format!("smart-fetch {}", env!("CARGO_PKG_VERSION")),
        group: leaf.group.clone(),
        leaf: leaf.name.clone(),
        source: std::path::absolute(&leaf.path)
            .unwrap_or_else(|_| leaf.path.clone())
            .display()
            .to_string(),
        export_complete: leaf.complete,
        archived: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        files: entries,
    };
    let options = PutOptions {
        mode: PutMode::Overwrite,
        ..PutOptions::default()
    };
    ctx.dest
        .store()
        .put_opts(&manifest_key, PutPayload::from(manifest.to_json()), options)
        .await
        .map_err(|e| ctx.fatal(&e, &format!("writing {}", manifest_key.as_ref())))?;
    Ok(done)
}

/// Make one file's object right: keep it when it is already there (by the old manifest's
/// quick check, else by comparing checksums), upload it otherwise.
async fn sync_file(
    ctx: &Ctx<'_>,
    file: &LocalFile,
    prefix: &ObjectPath,
    old: Option<&Manifest>,
    remote: &BTreeMap<String, ObjectMeta>,
) -> Result<FileOutcome, LeafError> {
    let _slot = tokio::select! {
        slot = ctx.slots.acquire() => slot.map_err(|_| LeafError::Stopped)?,
        () = ctx.stop.cancelled() => return Err(LeafError::Stopped),
    };
    let key = object_key(prefix, &file.rel);
    let listed = remote
        .get(&below(prefix, &key))
        .filter(|o| o.size == file.size);
    let present = |sha256: String, why: &str| {
        ctx.reporter
            .verbose(|| format!("{}: already archived ({why}).", key.as_ref()));
        ctx.counters.files_done.fetch_add(1, Ordering::Relaxed);
        ctx.counters
            .bytes_present
            .fetch_add(file.size, Ordering::Relaxed);
        Ok(FileOutcome::Present { sha256 })
    };
    if listed.is_some() {
        // Unchanged since the last archive: its checksum is the manifest's.
        if let Some(entry) = old.and_then(|m| m.file(&file.rel))
            && entry.size == file.size
            && entry.mtime_ns == file.mtime_ns
        {
            return present(
                entry.sha256.clone(),
                "unchanged since its manifest was written",
            );
        }
        let path = file.path.clone();
        let hashed = tokio::task::spawn_blocking(move || hash::file(&path))
            .await
            .map_err(|e| LeafError::Local(e.to_string()))?
            .map_err(|e| {
                LeafError::Local(format!("could not read {}: {e}", file.path.display()))
            })?;
        let remote_sha = ctx.dest.sha256_of(&key).await.map_err(LeafError::Fatal)?;
        if hashed.1 == file.size && remote_sha.as_deref() == Some(hashed.0.as_str()) {
            return present(hashed.0, "same size and sha256");
        }
    }
    match ctx.uploader.upload(file, &key).await {
        Ok(sha256) => {
            ctx.reporter.verbose(|| {
                format!(
                    "{}: uploaded ({}).",
                    key.as_ref(),
                    crate::console::human_file_size(file.size)
                )
            });
            ctx.counters.files_done.fetch_add(1, Ordering::Relaxed);
            Ok(FileOutcome::Uploaded { sha256 })
        }
        Err(UploadError::Local(message)) => Err(LeafError::Local(message)),
        Err(UploadError::Store(e)) => Err(ctx.fatal(&e, &format!("writing {}", key.as_ref()))),
        Err(UploadError::Stopped) => Err(LeafError::Stopped),
    }
}
