//! One writer per managed folder. Two exports into the same folder at once (two submissions
//! of the same Slurm array, a batch and a hand-run export) would choose the same workdir and
//! interleave their files. An export holds an advisory lock on `.smart-fetch.lock` in the
//! managed folder while it runs; the kernel drops it when the process ends, however it ends,
//! so a killed export never leaves a stale lock behind. Hidden, so neither the Python tool
//! nor `status` take it for a workdir or data.

use std::fs::File;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".smart-fetch.lock";

/// Held while an export writes into a managed folder; released on drop.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "Another smart-fetch is exporting into {0} (it holds {1}). Wait for it to end, or stop it, then run this again."
    )]
    Busy(PathBuf, PathBuf),
    #[error("Could not lock {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Take the folder's lock, creating the folder if needed; fails at once if it is held.
pub fn lock(managed_dir: &Path) -> Result<FolderLock, LockError> {
    let path = managed_dir.join(LOCK_FILE);
    std::fs::create_dir_all(managed_dir).map_err(|e| LockError::Io(path.clone(), e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LockError::Io(path.clone(), e))?;
    try_lock(&file).map_err(|e| match e {
        Some(e) => LockError::Io(path.clone(), e),
        None => LockError::Busy(managed_dir.to_path_buf(), path.clone()),
    })?;
    Ok(FolderLock { _file: file })
}

/// `Err(None)` when another process holds the lock.
#[cfg(unix)]
fn try_lock(file: &File) -> Result<(), Option<std::io::Error>> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(None)
    } else {
        Err(Some(err))
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> Result<(), Option<std::io::Error>> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let root = crate::folder::discovery::tests::temp_dir("lock");
        // `lock` makes the folder it locks.
        let dir = root.join("managed");
        let first = lock(&dir);
        assert!(first.is_ok());
        // flock locks belong to the open file description: a second open is refused.
        assert!(matches!(lock(&dir), Err(LockError::Busy(..))));
        drop(first);
        assert!(lock(&dir).is_ok());
    }
}
