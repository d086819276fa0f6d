//! Turning a folder of NDJSON into one FHIR Bundle file (spec §17): `bundle DIR` and the
//! `--bundle` flag of `crawl`/`bulk`. Unlike the Python tool the Bundle is written to a temp
//! file and renamed, and a symlinked input loses only its link, never the file it points at
//! (quirk 23), so bundling a managed folder cannot destroy its workdirs.

use crate::folder::discovery;
use crate::json;
use crate::ndjson;
use crate::timestamp;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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
}

#[derive(Debug)]
pub enum Outcome {
    /// The Bundle's path, and how many resources it holds.
    Written(PathBuf, u64),
    /// No typed NDJSON file in the folder; nothing written.
    NoInputs,
}

/// `Bundle.json[.gz]` in `dir`. With `overwrite` false an existing file is an error.
pub fn bundle_folder(dir: &Path, compress: bool, overwrite: bool) -> Result<Outcome, BundleError> {
    let name = if compress {
        "Bundle.json.gz"
    } else {
        "Bundle.json"
    };
    let target = dir.join(name);
    if !overwrite && target.exists() {
        return Err(BundleError::Exists(target.display().to_string()));
    }
    let inputs: Vec<PathBuf> = discovery::list(dir)
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
    let count = write_bundle(&tmp, &inputs, compress).map_err(io_err)?;
    fs::rename(&tmp, &target).map_err(io_err)?;
    remove_inputs(dir, &inputs).map_err(io_err)?;
    Ok(Outcome::Written(target, count))
}

fn write_bundle(tmp: &Path, inputs: &[PathBuf], compress: bool) -> io::Result<u64> {
    let file = BufWriter::new(File::create(tmp)?);
    let count = if compress {
        let mut gz = GzEncoder::new(file, Compression::default());
        let count = write_body(&mut gz, inputs)?;
        gz.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        count
    } else {
        let mut plain = file;
        let count = write_body(&mut plain, inputs)?;
        plain.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        count
    };
    Ok(count)
}

/// The Python tool's exact layout: one entry per line, compact resources.
fn write_body(out: &mut impl Write, inputs: &[PathBuf]) -> io::Result<u64> {
    let now = timestamp::isoformat(&timestamp::now());
    write!(
        out,
        "{{\n  \"resourceType\": \"Bundle\",\n  \"meta\": {{\n    \"profile\": [\"http://hl7.org/fhir/R4/StructureDefinition/Bundle\"]\n  }},\n  \"type\": \"collection\",\n  \"timestamp\": \"{now}\",\n  \"entry\": ["
    )?;
    let mut count = 0u64;
    for input in inputs {
        for value in ndjson::read_values(input) {
            let sep = if count == 0 { "" } else { "," };
            write!(
                out,
                "{sep}\n    {{\"resource\": {}}}",
                json::to_ndjson_line(&value)
            )?;
            count += 1;
        }
    }
    out.write_all(b"\n  ]\n}\n")?;
    Ok(count)
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
