//! Turning a folder of NDJSON into one FHIR Bundle file (docs/commands.md#bundle): `bundle DIR` and
//! the `--bundle` flag of `crawl`/`bulk`. Unlike the Python tool the Bundle is written to a temp
//! file and renamed, and a symlinked input loses only its link, never the file it points at
//! (docs/differences.md#bundling-is-all-or-nothing), so bundling a managed folder cannot destroy
//! its workdirs.
//!
//! Bundling deletes its inputs, so it is all or nothing: every line of every input must be
//! carried over. A line that is not UTF-8 or not JSON, or a file that cannot be read to its
//! end, makes the whole bundle refuse: the temp file is removed, no input is touched, and
//! the error lists the bad lines (file and line number, the first `MAX_REPORTED`) and their
//! total. The Python tool skipped such lines (and everything after a non-UTF-8 byte) and
//! deleted the inputs anyway. Blank lines hold no data and are skipped as before.

use crate::folder::discovery;
use crate::json;
use crate::ndjson;
use crate::report::Reporter;
use crate::text::printable;
use crate::timestamp;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bad lines listed one by one in the error; the rest are only counted.
const MAX_REPORTED: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("Bundle file '{0}' already exists.")]
    Exists(String),
    #[error("Could not write the Bundle file '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Some input could not be carried over whole: nothing was written or removed.
    #[error("{}", unreadable_text(.folder, .problems))]
    Unreadable { folder: String, problems: Problems },
}

/// Lines (or files) that could not be carried over: the first few described, all counted.
#[derive(Debug, Default)]
pub struct Problems {
    pub shown: Vec<String>,
    pub total: u64,
}

impl Problems {
    fn add(&mut self, text: String) {
        self.total += 1;
        if self.shown.len() < MAX_REPORTED {
            self.shown.push(text);
        }
    }
}

fn unreadable_text(folder: &str, problems: &Problems) -> String {
    let what = if problems.total == 1 {
        "1 line or file could not be read".to_string()
    } else {
        format!(
            "{} lines or files could not be read",
            crate::console::thousands(problems.total)
        )
    };
    let mut lines = vec![format!(
        "Not bundling '{folder}': {what}, and bundling would lose them. Nothing was written \
         and no file was removed."
    )];
    lines.extend(problems.shown.iter().map(|p| format!("  {p}")));
    let hidden = problems.total - problems.shown.len() as u64;
    if hidden > 0 {
        lines.push(format!(
            "  … and {} more",
            crate::console::thousands(hidden)
        ));
    }
    lines.push("Fix or remove them, then bundle again.".to_string());
    lines.join("\n")
}

#[derive(Debug)]
pub enum Outcome {
    /// The Bundle's path, and how many resources it holds.
    Written(PathBuf, u64),
    /// No typed NDJSON file in the folder; nothing written.
    NoInputs,
}

/// `Bundle.json[.gz]` in `dir`. With `overwrite` false an existing file is an error.
/// `reporter` hears about files whose type cannot be read (they are not bundled).
pub fn bundle_folder(
    dir: &Path,
    compress: bool,
    overwrite: bool,
    reporter: &Reporter,
) -> Result<Outcome, BundleError> {
    let name = if compress {
        "Bundle.json.gz"
    } else {
        "Bundle.json"
    };
    let target = dir.join(name);
    if !overwrite && target.exists() {
        return Err(BundleError::Exists(target.display().to_string()));
    }
    let inputs: Vec<PathBuf> = discovery::list(dir, reporter)
        .into_iter()
        .filter_map(|(path, t)| t.map(|_| path))
        .collect();
    if inputs.is_empty() {
        return Ok(Outcome::NoInputs);
    }
    let io_err = |source| BundleError::Io {
        path: target.display().to_string(),
        source,
    };
    let tmp = ndjson::tmp_path(&target);
    let mut problems = Problems::default();
    let written = write_bundle(&tmp, &inputs, compress, &mut problems);
    let count = match written {
        Ok(count) if problems.total == 0 => count,
        Ok(_) => {
            let _ = fs::remove_file(&tmp);
            return Err(BundleError::Unreadable {
                folder: dir.display().to_string(),
                problems,
            });
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
    };
    fs::rename(&tmp, &target).map_err(io_err)?;
    remove_inputs(dir, &inputs).map_err(io_err)?;
    Ok(Outcome::Written(target, count))
}

fn write_bundle(
    tmp: &Path,
    inputs: &[PathBuf],
    compress: bool,
    problems: &mut Problems,
) -> io::Result<u64> {
    // Never through a link planted at the temp name (see `safe_file`).
    let file = BufWriter::new(crate::safe_file::create_fresh(tmp)?);
    let count = if compress {
        let mut gz = GzEncoder::new(file, Compression::default());
        let count = write_body(&mut gz, inputs, problems)?;
        gz.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        count
    } else {
        let mut plain = file;
        let count = write_body(&mut plain, inputs, problems)?;
        plain.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        count
    };
    Ok(count)
}

/// The Python tool's exact layout: one entry per line, compact resources. Every input is
/// read to its end even after a problem, so the error can list them all.
fn write_body(
    out: &mut impl Write,
    inputs: &[PathBuf],
    problems: &mut Problems,
) -> io::Result<u64> {
    let now = timestamp::isoformat(&timestamp::now());
    write!(
        out,
        "{{\n  \"resourceType\": \"Bundle\",\n  \"meta\": {{\n    \"profile\": [\"http://hl7.org/fhir/R4/StructureDefinition/Bundle\"]\n  }},\n  \"type\": \"collection\",\n  \"timestamp\": \"{now}\",\n  \"entry\": ["
    )?;
    let mut count = 0u64;
    for input in inputs {
        read_input(input, problems, |value| {
            let sep = if count == 0 { "" } else { "," };
            count += 1;
            write!(
                out,
                "{sep}\n    {{\"resource\": {}}}",
                json::to_ndjson_line(&value)
            )
        })?;
    }
    out.write_all(b"\n  ]\n}\n")?;
    Ok(count)
}

/// Hand every JSON line of `path` to `each`; note every line (or the file) that cannot be
/// read as a problem. Errors of `each` (writing the Bundle) end the read.
fn read_input(
    path: &Path,
    problems: &mut Problems,
    mut each: impl FnMut(Value) -> io::Result<()>,
) -> io::Result<()> {
    let name = printable(&path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    ))
    .into_owned();
    let mut reader = match ndjson::open_decompressed(path) {
        Ok(reader) => reader,
        Err(e) => {
            problems.add(format!("{name}: could not be opened ({e})"));
            return Ok(());
        }
    };
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => line_no += 1,
            Err(e) => {
                problems.add(format!(
                    "{name}: could not be read past line {line_no} ({e})"
                ));
                return Ok(());
            }
        }
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = std::str::from_utf8(line) {
            problems.add(format!("{name}:{line_no}: not UTF-8 text ({e})"));
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            // Once something is missing the Bundle is thrown away: only keep checking.
            Ok(value) if problems.total == 0 => each(value)?,
            Ok(_) => {}
            Err(e) => problems.add(format!("{name}:{line_no}: not valid JSON ({e})")),
        }
    }
}

/// Remove what was bundled: regular files themselves, symlinks only as links.
fn remove_inputs(dir: &Path, inputs: &[PathBuf]) -> io::Result<()> {
    let wanted: HashSet<PathBuf> = inputs
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Ok(resolved) = fs::canonicalize(&path) else {
            continue;
        };
        if wanted.contains(&resolved) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}
