//! NDJSON files on disk: names and compression (decided by name only,
//! docs/folders.md#compression-and-file-names), reading plain or multi-member gzip line by line
//! (docs/folders.md#reading-ndjson), line counting (docs/folders.md#counting-lines), the crash-safe
//! writer (docs/folders.md#writing-ndjson: `<target>.tmp`, fsync, rename; commit only on success)
//! and whole-file atomic writes. Must not know about workdirs, metadata or resource types.

use crate::report::Reporter;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `<base>.ndjson` or `<base>.ndjson.gz`.
pub fn file_name(base: &str, compress: bool) -> String {
    if compress {
        format!("{base}.ndjson.gz")
    } else {
        format!("{base}.ndjson")
    }
}

/// True when the lower-cased name, minus a trailing `.tmp`, ends with `.gz`.
pub fn is_compressed_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.strip_suffix(".tmp").unwrap_or(&name).ends_with(".gz")
}

/// `<path>.tmp`, the scratch name next to the target (same folder, so rename is atomic).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Longest NDJSON line read into memory (decompressed). A resource this large is only
/// ever a note with a big attachment inlined; anything longer is treated as damage, so a
/// file with one endless line cannot take the machine's memory.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// What `read_line_capped` found.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// End of the input: nothing read.
    End,
    /// A line (with its `\n`, if any) is in the buffer.
    Read,
    /// The line passed `MAX_LINE`: it was read past and dropped; the buffer is empty.
    TooLong,
}

/// `read_until(b'\n')` that never holds more than `cap` bytes of one line.
pub fn read_line_capped(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Line> {
    buf.clear();
    let read = reader.take(cap as u64 + 1).read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if buf.len() <= cap || buf.last() == Some(&b'\n') {
        return Ok(Line::Read);
    }
    buf.clear();
    // Skip the rest of the line without keeping it.
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                break;
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
    Ok(Line::TooLong)
}

/// Open a file for reading, transparently decompressing (all members of) gzip by name.
pub fn open_decompressed(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    if is_compressed_name(path) {
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            MultiGzDecoder::new(BufReader::new(file)),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(64 * 1024, file)))
    }
}

/// Every JSON value of a file, skipping blank lines; undecodable lines and unreadable files
/// are skipped with the Python tool's warning to `reporter`, at the moment they are met (the
/// text format keeps them in their place among the other lines).
pub fn read_values(path: &Path, reporter: &Reporter) -> impl Iterator<Item = Value> + use<> {
    ValueReader::new(path, None, reporter)
}

/// Like [`read_values`], but each object holds only its top-level `fields` (see
/// [`crate::json_fields`]): for readers that look at a few keys of every resource.
pub fn read_fields(
    path: &Path,
    fields: &[&'static str],
    reporter: &Reporter,
) -> impl Iterator<Item = Value> + use<> {
    ValueReader::new(path, Some(fields.to_vec()), reporter)
}

/// Lazily opened so that a caller that never iterates costs nothing.
struct ValueReader {
    path: PathBuf,
    reader: Option<Box<dyn BufRead + Send>>,
    started: bool,
    line_no: u64,
    buf: Vec<u8>,
    /// Only these top-level fields are built; `None` builds whole values.
    fields: Option<Vec<&'static str>>,
    reporter: Reporter,
}

impl ValueReader {
    fn new(path: &Path, fields: Option<Vec<&'static str>>, reporter: &Reporter) -> Self {
        ValueReader {
            path: path.to_path_buf(),
            reader: None,
            started: false,
            line_no: 0,
            buf: Vec::new(),
            fields,
            reporter: reporter.clone(),
        }
    }

    fn fail(&mut self, err: impl std::fmt::Display) -> Option<Value> {
        self.reporter.warn_on_stdout(format!(
            "Could not read from '{}': {err}",
            self.path.display()
        ));
        self.reader = None;
        None
    }
}

impl Iterator for ValueReader {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if !self.started {
            self.started = true;
            match open_decompressed(&self.path) {
                Ok(r) => self.reader = Some(r),
                Err(e) => return self.fail(e),
            }
        }
        loop {
            let reader = self.reader.as_mut()?;
            match read_line_capped(reader, &mut self.buf, MAX_LINE) {
                Ok(Line::End) => {
                    self.reader = None;
                    return None;
                }
                Ok(Line::Read) => {}
                Ok(Line::TooLong) => {
                    self.line_no += 1;
                    self.reporter.warn_on_stdout(format!(
                        "Could not decode '{}:{}': the line is longer than {} MiB",
                        self.path.display(),
                        self.line_no,
                        MAX_LINE / (1024 * 1024)
                    ));
                    continue;
                }
                Err(e) => return self.fail(e),
            }
            self.line_no += 1;
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if end == 0 {
                continue;
            }
            // The Python reader decodes text as UTF-8 and gives up on the whole file when it
            // cannot; mirror that rather than reporting a per-line JSON error.
            if let Err(e) = std::str::from_utf8(&self.buf[..end]) {
                return self.fail(e);
            }
            let parsed = match &self.fields {
                Some(fields) => crate::json_fields::parse(&self.buf[..end], fields),
                None => serde_json::from_slice::<Value>(&self.buf[..end]),
            };
            match parsed {
                Ok(v) => return Some(v),
                Err(e) => self.reporter.warn_on_stdout(format!(
                    "Could not decode '{}:{}': {e}",
                    self.path.display(),
                    self.line_no
                )),
            }
        }
    }
}

/// Lines in the decompressed content (docs/folders.md#counting-lines).
pub fn line_count(path: &Path) -> io::Result<u64> {
    let mut reader = open_decompressed(path)?;
    let mut count = 0u64;
    let mut last = None;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        count += memchr::memchr_iter(b'\n', chunk).count() as u64;
        last = chunk.last().copied();
        let n = chunk.len();
        reader.consume(n);
    }
    if last.is_some_and(|b| b != b'\n') {
        count += 1;
    }
    Ok(count)
}

/// Whether the (decompressed) content is non-empty and lacks a final `\n`.
fn needs_newline(path: &Path) -> io::Result<bool> {
    if is_compressed_name(path) {
        let mut reader = MultiGzDecoder::new(BufReader::new(File::open(path)?));
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = None;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            last = Some(buf[n - 1]);
        }
        Ok(last.is_some_and(|b| b != b'\n'))
    } else {
        let mut file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(false);
        }
        file.seek(SeekFrom::End(-1))?;
        let mut byte = [0u8; 1];
        file.read_exact(&mut byte)?;
        Ok(byte[0] != b'\n')
    }
}

/// fsync a folder so a rename inside it survives a power cut. Best effort: some platforms
/// and file systems cannot open or sync directories, and the rename itself already happened.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replace `path` with `bytes` atomically: `<path>.tmp`, fsync, rename, fsync the folder.
/// The folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let mut file = crate::safe_file::create_fresh(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    sync_dir(parent_dir(path));
    Ok(())
}

enum Sink {
    Plain(BufWriter<File>),
    // Boxed: the encoder's state is far larger than a plain writer.
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w,
        }
    }

    fn finish(self) -> io::Result<File> {
        let buffered = match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

/// Writes records to `<target>.tmp` and renames over `target` on `commit`. Dropping without
/// `commit` leaves the target untouched (and the `.tmp` behind, overwritten by the next
/// writer). Creates nothing until the first record. One writer per target at a time.
pub struct SafeWriter {
    target: PathBuf,
    tmp: PathBuf,
    append: bool,
    sink: Option<Sink>,
    written: u64,
}

impl SafeWriter {
    pub fn new(target: PathBuf, append: bool) -> Self {
        let tmp = tmp_path(&target);
        Self {
            target,
            tmp,
            append,
            sink: None,
            written: 0,
        }
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Records written through this writer (not counting any copied from the old target).
    pub fn written(&self) -> u64 {
        self.written
    }

    fn open(&mut self) -> io::Result<Sink> {
        fs::create_dir_all(parent_dir(&self.target))?;
        let mut newline = false;
        // Never through a link planted at the temp name (see `safe_file`).
        let mut file = crate::safe_file::create_fresh(&self.tmp)?;
        if self.append && fs::metadata(&self.target).is_ok_and(|m| m.is_file()) {
            io::copy(&mut File::open(&self.target)?, &mut file)?;
            newline = needs_newline(&self.tmp)?;
        }
        let buffered = BufWriter::with_capacity(64 * 1024, file);
        // Appending to gzip means adding a member: readers use a multi-member decoder.
        let mut sink = if is_compressed_name(&self.target) {
            Sink::Gzip(Box::new(GzEncoder::new(buffered, Compression::default())))
        } else {
            Sink::Plain(buffered)
        };
        if newline {
            sink.writer().write_all(b"\n")?;
        }
        Ok(sink)
    }

    pub fn write(&mut self, value: &Value) -> io::Result<()> {
        self.write_record(value)
    }

    /// Same as `write` for any serializable record (e.g. a typed struct).
    pub fn write_record<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        let sink = match self.sink.take() {
            Some(sink) => sink,
            None => self.open()?,
        };
        let sink = self.sink.insert(sink);
        let w = sink.writer();
        crate::json::write_ndjson(w, value)?;
        w.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// One line exactly as given (plus `\n`), for rewrites that must keep lines they do not
    /// understand byte for byte (blank or undecodable lines of a file being rewritten).
    pub fn write_raw_line(&mut self, line: &[u8]) -> io::Result<()> {
        let sink = match self.sink.take() {
            Some(sink) => sink,
            None => self.open()?,
        };
        let w = self.sink.insert(sink).writer();
        w.write_all(line)?;
        w.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Flush, fsync, rename. A writer that wrote nothing commits nothing.
    pub fn commit(self) -> io::Result<()> {
        let Some(sink) = self.sink else {
            return Ok(());
        };
        let file = sink.finish()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.target)?;
        sync_dir(parent_dir(&self.target));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::folder::discovery::tests::temp_dir;

    fn read_text(path: &Path) -> String {
        let mut out = String::new();
        match open_decompressed(path) {
            Ok(mut r) => {
                if let Err(e) = r.read_to_string(&mut out) {
                    panic!("read {}: {e}", path.display());
                }
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
        out
    }

    fn gz_bytes(text: &str) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        let _ = enc.write_all(text.as_bytes());
        enc.finish().unwrap_or_default()
    }

    fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    #[test]
    fn names() {
        assert_eq!(file_name("Patient.001", true), "Patient.001.ndjson.gz");
        assert_eq!(file_name("Patient.001", false), "Patient.001.ndjson");
        assert!(is_compressed_name(Path::new("/x/A.ndjson.GZ")));
        assert!(is_compressed_name(Path::new("/x/A.ndjson.gz.tmp")));
        assert!(!is_compressed_name(Path::new("/x.gz/A.ndjson")));
        assert!(!is_compressed_name(Path::new("A.ndjson.tmp")));
        assert_eq!(
            tmp_path(Path::new("/a/b.ndjson")),
            PathBuf::from("/a/b.ndjson.tmp")
        );
    }

    #[test]
    fn writes_compact_ascii_and_creates_nothing_for_zero_records() {
        let dir = temp_dir("write");
        for name in ["a.ndjson", "a.ndjson.gz"] {
            let target = dir.join("sub").join(name);
            let w = SafeWriter::new(target.clone(), false);
            ok(w.commit());
            assert!(!target.exists());
            assert!(!tmp_path(&target).exists());

            let mut w = SafeWriter::new(target.clone(), false);
            ok(w.write(&json!({"resourceType": "Patient", "name": "é"})));
            ok(w.write(&json!({"id": 2})));
            assert_eq!(w.written(), 2);
            assert!(!target.exists());
            ok(w.commit());
            assert_eq!(
                read_text(&target),
                "{\"resourceType\":\"Patient\",\"name\":\"\\u00e9\"}\n{\"id\":2}\n"
            );
            assert!(!tmp_path(&target).exists());
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn interruption_leaves_target_untouched() {
        let dir = temp_dir("interrupt");
        for (name, append) in [
            ("a.ndjson", false),
            ("a.ndjson", true),
            ("b.ndjson.gz", false),
            ("b.ndjson.gz", true),
        ] {
            let target = dir.join(name);
            let mut w = SafeWriter::new(target.clone(), false);
            ok(w.write(&json!({"id": "old"})));
            ok(w.commit());

            // Killed (dropped) mid-write: target unchanged, .tmp left behind.
            let mut w = SafeWriter::new(target.clone(), append);
            ok(w.write(&json!({"id": "new"})));
            drop(w);
            assert_eq!(read_text(&target), "{\"id\":\"old\"}\n");
            assert!(tmp_path(&target).exists());

            // A later successful run replaces the stale .tmp.
            let mut w = SafeWriter::new(target.clone(), append);
            ok(w.write(&json!({"id": "new"})));
            ok(w.commit());
            let expected = if append {
                "{\"id\":\"old\"}\n{\"id\":\"new\"}\n"
            } else {
                "{\"id\":\"new\"}\n"
            };
            assert_eq!(read_text(&target), expected);
            assert!(!tmp_path(&target).exists());
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn append_ensures_newline_plain_and_gz() {
        let dir = temp_dir("newline");
        let plain = dir.join("x.ndjson");
        ok(fs::write(&plain, "{\"id\":1}"));
        let mut w = SafeWriter::new(plain.clone(), true);
        ok(w.write(&json!({"id": 2})));
        ok(w.commit());
        assert_eq!(ok(fs::read_to_string(&plain)), "{\"id\":1}\n{\"id\":2}\n");

        let gz = dir.join("x.ndjson.gz");
        ok(fs::write(&gz, gz_bytes("{\"id\":1}")));
        let mut w = SafeWriter::new(gz.clone(), true);
        ok(w.write(&json!({"id": 2})));
        ok(w.commit());
        assert_eq!(read_text(&gz), "{\"id\":1}\n{\"id\":2}\n");
        let ids: Vec<Value> = read_values(&gz, &Reporter::silent()).collect();
        assert_eq!(ids, vec![json!({"id": 1}), json!({"id": 2})]);

        // Already ends with a newline: nothing inserted. Empty file: nothing inserted.
        let mut w = SafeWriter::new(plain.clone(), true);
        ok(w.write(&json!({"id": 3})));
        ok(w.commit());
        assert_eq!(
            ok(fs::read_to_string(&plain)),
            "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n"
        );
        let empty = dir.join("e.ndjson");
        ok(fs::write(&empty, ""));
        let mut w = SafeWriter::new(empty.clone(), true);
        ok(w.write(&json!({"id": 1})));
        ok(w.commit());
        assert_eq!(ok(fs::read_to_string(&empty)), "{\"id\":1}\n");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn raw_lines_are_kept_byte_for_byte() {
        let dir = temp_dir("raw");
        for name in ["r.ndjson", "r.ndjson.gz"] {
            let target = dir.join(name);
            let mut w = SafeWriter::new(target.clone(), false);
            ok(w.write_raw_line(b"not json \xff"));
            ok(w.write_raw_line(b""));
            ok(w.write(&json!({"id": 1})));
            ok(w.commit());
            let mut bytes = Vec::new();
            ok(ok(open_decompressed(&target)).read_to_end(&mut bytes));
            assert_eq!(bytes, b"not json \xff\n\n{\"id\":1}\n");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn append_without_target_removes_stale_tmp() {
        let dir = temp_dir("stale");
        let target = dir.join("s.ndjson");
        ok(fs::write(tmp_path(&target), "{\"junk\":true}\n"));
        let mut w = SafeWriter::new(target.clone(), true);
        ok(w.write(&json!({"id": 1})));
        ok(w.commit());
        assert_eq!(ok(fs::read_to_string(&target)), "{\"id\":1}\n");
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn planted_links_at_temp_names_are_not_written_through() {
        let dir = temp_dir("planted");
        let victim = dir.join("victim");
        let plant = |target: &Path| {
            let _ = fs::remove_file(tmp_path(target));
            ok(std::os::unix::fs::symlink(&victim, tmp_path(target)));
        };
        ok(fs::write(&victim, "precious\n"));
        // A hydration output appended to, a rewrite, and `.metadata`.
        let appended = dir.join("DocumentReference.ndjson.gz");
        let mut w = SafeWriter::new(appended.clone(), true);
        ok(w.write(&json!({"id": 1})));
        ok(w.commit());
        plant(&appended);
        let mut w = SafeWriter::new(appended.clone(), true);
        ok(w.write(&json!({"id": 2})));
        ok(w.commit());
        assert_eq!(read_text(&appended), "{\"id\":1}\n{\"id\":2}\n");
        let rewritten = dir.join("Condition.ndjson");
        plant(&rewritten);
        let mut w = SafeWriter::new(rewritten.clone(), false);
        ok(w.write(&json!({"id": 3})));
        ok(w.commit());
        let metadata = dir.join(".metadata");
        plant(&metadata);
        ok(write_atomic(&metadata, b"{}"));
        assert_eq!(ok(fs::read_to_string(&victim)), "precious\n");
        assert_eq!(ok(fs::read_to_string(&metadata)), "{}");
        assert_eq!(ok(fs::read_to_string(&rewritten)), "{\"id\":3}\n");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_multi_member_gzip_and_skips_bad_lines() {
        let dir = temp_dir("read");
        let gz = dir.join("m.ndjson.gz");
        let mut bytes = gz_bytes("{\"a\":1}\n\n");
        bytes.extend(gz_bytes("not json\r\n{\"a\":2}\r\n"));
        bytes.extend(gz_bytes("[3]"));
        ok(fs::write(&gz, bytes));
        let values: Vec<Value> = read_values(&gz, &Reporter::silent()).collect();
        assert_eq!(values, vec![json!({"a": 1}), json!({"a": 2}), json!([3])]);
        assert_eq!(ok(line_count(&gz)), 5);

        assert_eq!(
            read_values(&dir.join("missing.ndjson"), &Reporter::silent()).count(),
            0
        );
        let plain = dir.join("p.ndjson");
        ok(fs::write(&plain, "{\"b\":1.50}\n"));
        assert_eq!(ok(line_count(&plain)), 1);
        let values: Vec<String> = read_values(&plain, &Reporter::silent())
            .map(|v| crate::json::to_ndjson_line(&v))
            .collect();
        assert_eq!(values, vec!["{\"b\":1.50}".to_string()]);
        ok(fs::write(&plain, ""));
        assert_eq!(ok(line_count(&plain)), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn write_atomic_replaces_whole_file() {
        let dir = temp_dir("atomic");
        let path = dir.join(".metadata");
        ok(write_atomic(&path, b"{}"));
        ok(write_atomic(&path, b"{\n  \"a\": 1\n}"));
        assert_eq!(ok(fs::read_to_string(&path)), "{\n  \"a\": 1\n}");
        assert!(!dir.join(".metadata.tmp").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
