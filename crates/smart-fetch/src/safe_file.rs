//! Opening the files we write without following links someone else put there.
//!
//! An export folder is often shared (a hospital share, a job runner's scratch space), and a
//! symbolic link planted at one of our temp names (`<file>.tmp`, `.metadata.tmp`) or at
//! `log.ndjson` used to make us write through it into whatever it pointed at. So:
//! * temp files are made fresh: whatever is at the name (a stale temp file, a link) is
//!   removed — removing a link never touches its target — and the file is then created
//!   exclusively (`O_CREAT | O_EXCL`, which never follows a link: if anything reappears at
//!   the name in between, the open fails instead);
//! * files we append to (`log.ndjson`, our resume journals) are opened without following a
//!   link (`O_NOFOLLOW`) and must be regular files; anything else is an error, never
//!   followed or replaced, because the file holds history we must not lose.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Create `path` as a new, empty file for writing, after removing whatever was at that
/// name (a stale file or a symbolic link, never what a link points at). A directory there
/// is an error.
pub fn create_fresh(path: &Path) -> io::Result<File> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a folder, not a file we can replace", path.display()),
            ));
        }
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    no_follow(&mut options);
    options.open(path)
}

/// Open `path` for appending, creating it when missing. It must be a regular file: a
/// symbolic link (or a pipe, device, folder) at that name is an error that says so.
pub fn append_regular(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    no_follow(&mut options);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) => {
            return Err(match fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_symlink() => not_regular("a symbolic link"),
                _ => e,
            });
        }
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular("not a regular file"));
    }
    Ok(file)
}

/// Callers name the path in their own message.
fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}; refusing to write through it (remove it and run again)"),
    )
}

/// Never follow a link at the last component; never block on a FIFO someone put there
/// (it is then rejected as not a regular file).
#[cfg(unix)]
fn no_follow(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
}

/// Elsewhere `create_new` still refuses an existing name (links included); appending
/// relies on the type check after opening.
#[cfg(not(unix))]
fn no_follow(_options: &mut OpenOptions) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::folder::discovery::tests::temp_dir;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = temp_dir("safe-file-create");
        let victim = dir.join("victim");
        let _ = fs::write(&victim, "precious");
        let tmp = dir.join("A.ndjson.gz.tmp");
        let _ = symlink(&victim, &tmp);
        let file = create_fresh(&tmp);
        assert!(file.is_ok(), "{file:?}");
        if let Ok(mut f) = file {
            let _ = f.write_all(b"ours");
        }
        assert_eq!(
            fs::read_to_string(&victim).ok().as_deref(),
            Some("precious")
        );
        assert_eq!(fs::read_to_string(&tmp).ok().as_deref(), Some("ours"));
        assert!(!fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_symlink()));
        // A stale temp file is replaced too; a folder is not.
        assert!(create_fresh(&tmp).is_ok());
        assert_eq!(fs::read(&tmp).ok().map(|b| b.len()), Some(0));
        assert!(create_fresh(&dir).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn appending_only_to_regular_files() {
        let dir = temp_dir("safe-file-append");
        let log = dir.join("log.ndjson");
        let opened = append_regular(&log).and_then(|mut f| f.write_all(b"1\n"));
        assert!(opened.is_ok());
        let opened = append_regular(&log).and_then(|mut f| f.write_all(b"2\n"));
        assert!(opened.is_ok());
        assert_eq!(fs::read_to_string(&log).ok().as_deref(), Some("1\n2\n"));

        let victim = dir.join("victim");
        let _ = fs::write(&victim, "precious");
        let linked = dir.join("linked.ndjson");
        let _ = symlink(&victim, &linked);
        let err = append_regular(&linked).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("is a symbolic link; refusing to write through it")),
            "{err:?}"
        );
        // A dangling link is not followed into a new file either.
        let dangling = dir.join("dangling.ndjson");
        let _ = symlink(dir.join("nowhere"), &dangling);
        assert!(append_regular(&dangling).is_err());
        assert!(!dir.join("nowhere").exists());
        assert_eq!(
            fs::read_to_string(&victim).ok().as_deref(),
            Some("precious")
        );
        assert!(append_regular(&dir).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
