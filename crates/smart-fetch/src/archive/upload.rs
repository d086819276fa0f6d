//! Putting one file into the store with bounded memory. A file up to one part size goes up
//! in one request; a larger one in parts (object_store's multipart upload), several parts in
//! flight. Every byte read for sending sits in one of a few part-sized buffers shared by all
//! files of the run, so memory does not grow with file size or with the number of files in
//! flight: at most `BUFFERS × PART_SIZE` (32 MiB) of file data is held at once.
//!
//! Objects appear whole or not at all: S3 and the other clouds publish a multipart upload
//! only when it completes, and a local store renames a finished temp file. So a kill never
//! leaves a cut-off object (a cloud keeps the parts of an upload that was never completed
//! until a lifecycle rule removes them; a local store leaves `<name>#<n>`, which the archive
//! removes). On Ctrl-C or a failure the upload is aborted.
//!
//! On the clouds each object carries its sha256 as user metadata, which must be given when
//! the upload starts: a large file is therefore read twice (hashed, then sent, and hashed
//! again while sent, so a file that changed in between is caught instead of archived under
//! a wrong checksum). Small files are read once.

use super::dest::SHA256_ATTRIBUTE;
use super::hash;
use super::progress::Counters;
use super::select::LocalFile;
use crate::cancel::Cancel;
use bytes::{Bytes, BytesMut};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Parts are 8 MiB (S3's minimum is 5 MiB), more for files so large that 9,000 parts would
/// not hold them (S3 allows 10,000).
pub const PART_SIZE: u64 = 8 << 20;
const MAX_PARTS: u64 = 9_000;
/// Buffers of `PART_SIZE` for file data, shared by all uploads of the run: 32 MiB held at
/// most, whatever the number of files in flight.
pub const BUFFERS: usize = 4;

#[derive(Debug)]
pub(crate) enum UploadError {
    /// The local file could not be read, or changed while it was read.
    Local(String),
    /// The store failed (after its own retries).
    Store(object_store::Error),
    Stopped,
}

/// A fixed set of part-sized buffers, reused. Allocating a fresh 8 MiB buffer per part let
/// the allocator keep freed ones in per-thread arenas (the blocking threads that read and
/// write files each have one): 122 MiB peak for a 300 MB file to a local folder, where the
/// buffers themselves are 32 MiB.
struct Pool {
    slots: Arc<Semaphore>,
    spare: Mutex<Vec<BytesMut>>,
}

/// A buffer on loan, with the slot it holds.
struct Loan {
    buf: BytesMut,
    _slot: OwnedSemaphorePermit,
}

impl Pool {
    fn new() -> Self {
        Pool {
            slots: Arc::new(Semaphore::new(BUFFERS)),
            spare: Mutex::new(Vec::new()),
        }
    }

    async fn take(&self, stop: &Cancel) -> Result<Loan, UploadError> {
        let slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot.map_err(|_| UploadError::Stopped)?,
            () = stop.cancelled() => return Err(UploadError::Stopped),
        };
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        let buf = spare.unwrap_or_else(|| BytesMut::with_capacity(PART_SIZE as usize));
        Ok(Loan { buf, _slot: slot })
    }

    /// Back to the pool once the store let go of it (it may still hold the bytes for a
    /// moment after the request; then the buffer is simply freed).
    fn give_back(&self, sent: Bytes) {
        if let Ok(mut buf) = sent.try_into_mut()
            && buf.capacity() >= PART_SIZE as usize
            && let Ok(mut spare) = self.spare.lock()
        {
            buf.clear();
            spare.push(buf);
        }
    }
}

pub(crate) struct Uploader {
    store: Arc<dyn ObjectStore>,
    pool: Arc<Pool>,
    attributes: bool,
    counters: Arc<Counters>,
    stop: Cancel,
}

fn part_size(size: u64) -> u64 {
    PART_SIZE.max(size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20))
}

/// Fill `buf` with the next `want` bytes of `file` (fewer only at the end of the file).
fn read_into(
    file: &mut std::fs::File,
    mut buf: BytesMut,
    want: usize,
) -> std::io::Result<BytesMut> {
    buf.clear();
    buf.resize(want, 0);
    let mut got = 0;
    while got < want {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn changed(file: &LocalFile) -> UploadError {
    UploadError::Local(format!(
        "{} changed while it was being archived (was it still being written?)",
        file.path.display()
    ))
}

fn local(file: &LocalFile, e: &std::io::Error) -> UploadError {
    UploadError::Local(format!("could not read {}: {e}", file.path.display()))
}

impl Uploader {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        attributes: bool,
        counters: Arc<Counters>,
        stop: Cancel,
    ) -> Self {
        Uploader {
            store,
            pool: Arc::new(Pool::new()),
            attributes,
            counters,
            stop,
        }
    }

    fn attributes(&self, sha256: &str) -> Attributes {
        let mut attributes = Attributes::new();
        if self.attributes {
            attributes.insert(
                Attribute::Metadata(SHA256_ATTRIBUTE.into()),
                sha256.to_string().into(),
            );
        }
        attributes
    }

    /// Upload `file` to `key`; returns its sha256.
    pub async fn upload(&self, file: &LocalFile, key: &ObjectPath) -> Result<String, UploadError> {
        if file.size <= PART_SIZE {
            self.upload_small(file, key).await
        } else {
            self.upload_parts(file, key).await
        }
    }

    async fn upload_small(
        &self,
        file: &LocalFile,
        key: &ObjectPath,
    ) -> Result<String, UploadError> {
        let loan = self.pool.take(&self.stop).await?;
        let (path, want) = (
            file.path.clone(),
            usize::try_from(file.size).unwrap_or(usize::MAX),
        );
        let Loan { buf, _slot } = loan;
        let read = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&path)?;
            let buf = read_into(&mut f, buf, want)?;
            // One byte more means the file grew since it was listed.
            let mut probe = [0u8; 1];
            let grew = f.read(&mut probe)? > 0;
            let mut hasher = hash::Hasher::new();
            hasher.update(&buf);
            Ok::<_, std::io::Error>((buf, hasher.finish(), grew))
        })
        .await
        .map_err(|e| UploadError::Local(e.to_string()))?;
        let (buf, sha256, grew) = read.map_err(|e| local(file, &e))?;
        if grew || buf.len() != want {
            return Err(changed(file));
        }
        let options = PutOptions {
            mode: PutMode::Overwrite,
            attributes: self.attributes(&sha256),
            ..PutOptions::default()
        };
        let bytes = buf.freeze();
        let put = self
            .store
            .put_opts(key, PutPayload::from(bytes.clone()), options);
        tokio::select! {
            result = put => { result.map_err(UploadError::Store)?; }
            () = self.stop.cancelled() => return Err(UploadError::Stopped),
        }
        self.pool.give_back(bytes);
        drop(_slot);
        self.counters.uploaded(file.size);
        Ok(sha256)
    }

    async fn upload_parts(
        &self,
        file: &LocalFile,
        key: &ObjectPath,
    ) -> Result<String, UploadError> {
        let path = file.path.clone();
        let hashed = tokio::select! {
            hashed = tokio::task::spawn_blocking(move || hash::file(&path)) => hashed,
            () = self.stop.cancelled() => return Err(UploadError::Stopped),
        };
        let (sha256, size) = hashed
            .map_err(|e| UploadError::Local(e.to_string()))?
            .map_err(|e| local(file, &e))?;
        if size != file.size {
            return Err(changed(file));
        }
        let options = PutMultipartOptions {
            attributes: self.attributes(&sha256),
            ..PutMultipartOptions::default()
        };
        let mut upload = self
            .store
            .put_multipart_opts(key, options)
            .await
            .map_err(UploadError::Store)?;
        match self.send_parts(upload.as_mut(), file, &sha256).await {
            Ok(()) => {
                tokio::select! {
                    result = upload.complete() => { result.map_err(UploadError::Store)?; }
                    () = self.stop.cancelled() => {
                        abort(upload.as_mut()).await;
                        return Err(UploadError::Stopped);
                    }
                }
                Ok(sha256)
            }
            Err(e) => {
                abort(upload.as_mut()).await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        upload: &mut dyn object_store::MultipartUpload,
        file: &LocalFile,
        sha256: &str,
    ) -> Result<(), UploadError> {
        let part = part_size(file.size);
        let mut reader = Some(std::fs::File::open(&file.path).map_err(|e| local(file, &e))?);
        let mut hasher = Some(hash::Hasher::new());
        let mut in_flight: JoinSet<Result<(), object_store::Error>> = JoinSet::new();
        let mut sent = 0u64;
        while sent < file.size {
            let want = part.min(file.size - sent);
            let Loan { buf, _slot } = self.pool.take(&self.stop).await?;
            let (Some(mut f), Some(mut h)) = (reader.take(), hasher.take()) else {
                return Err(UploadError::Stopped);
            };
            let want_len = usize::try_from(want).unwrap_or(usize::MAX);
            let read = tokio::task::spawn_blocking(move || {
                let buf = read_into(&mut f, buf, want_len)?;
                h.update(&buf);
                Ok((f, h, buf))
            })
            .await
            .map_err(|e| UploadError::Local(e.to_string()))?;
            let (f, h, buf) = read.map_err(|e| local(file, &e))?;
            reader = Some(f);
            hasher = Some(h);
            if (buf.len() as u64) < want {
                return Err(changed(file));
            }
            sent += want;
            let bytes = buf.freeze();
            let part_upload = upload.put_part(PutPayload::from(bytes.clone()));
            let (counters, pool) = (self.counters.clone(), self.pool.clone());
            in_flight.spawn(async move {
                let result = part_upload.await;
                pool.give_back(bytes);
                drop(_slot);
                if result.is_ok() {
                    counters.uploaded(want);
                }
                result
            });
            // Surface a failed part at once rather than after the whole file was read.
            while let Some(done) = in_flight.try_join_next() {
                joined(done)?;
            }
        }
        // A file that grew since it was hashed is caught here, one that changed in place
        // by the second hash.
        if let Some(f) = reader.as_mut() {
            let mut probe = [0u8; 1];
            if f.read(&mut probe).is_ok_and(|n| n > 0) {
                return Err(changed(file));
            }
        }
        loop {
            let next = tokio::select! {
                next = in_flight.join_next() => next,
                () = self.stop.cancelled() => return Err(UploadError::Stopped),
            };
            match next {
                Some(done) => joined(done)?,
                None => break,
            }
        }
        if hasher.map(hash::Hasher::finish).as_deref() != Some(sha256) {
            return Err(changed(file));
        }
        Ok(())
    }
}

fn joined(
    done: Result<Result<(), object_store::Error>, tokio::task::JoinError>,
) -> Result<(), UploadError> {
    match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(UploadError::Store(e)),
        Err(_) => Err(UploadError::Stopped),
    }
}

/// Best effort, briefly: the parts of an upload never completed are invisible but billed.
async fn abort(upload: &mut dyn object_store::MultipartUpload) {
    let _ = tokio::time::timeout(Duration::from_secs(10), upload.abort()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_buffer_comes_back_to_the_pool_whole() {
        let pool = Pool::new();
        for len in [10, PART_SIZE as usize] {
            let mut buf = BytesMut::with_capacity(PART_SIZE as usize);
            buf.resize(len, 7);
            let sent = buf.freeze();
            let held = sent.clone();
            pool.give_back(sent);
            drop(held);
            let spare = pool.spare.lock().map(|s| s.len()).unwrap_or(0);
            // Still shared when given back: freed, not pooled.
            assert_eq!(spare, 0);
        }
        let mut buf = BytesMut::with_capacity(PART_SIZE as usize);
        buf.resize(10, 7);
        pool.give_back(buf.freeze());
        let spare = pool.spare.lock().map(|s| s.len()).unwrap_or(0);
        assert_eq!(spare, 1, "a buffer the store let go of is reused");
    }

    #[test]
    fn parts_fit_the_limits() {
        assert_eq!(part_size(300 << 20), PART_SIZE);
        // 200 GB: 9,000 parts would be 22.2 MiB each, rounded up to whole MiB.
        let big = 200_000_000_000u64;
        let p = part_size(big);
        assert!(
            p.is_multiple_of(1 << 20) && big.div_ceil(p) <= MAX_PARTS,
            "{p}"
        );
    }
}
