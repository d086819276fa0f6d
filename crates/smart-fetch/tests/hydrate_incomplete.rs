//! A hydration read that still fails after its retries (the server answers 500) leaves the
//! export incomplete: exit status 3, the read named on stderr, the folder not marked
//! complete. Once the server is fixed, the same command asks again only for what is
//! missing, and the folder equals that of an export that never failed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod support;

use fake_ehr::{AuthMode, Config, Flavor, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use support::*;

const N: usize = 6;

fn ehr() -> Server {
    server_with(Config {
        flavor: Flavor::Generic,
        patients: N,
        auth: AuthMode::Open,
        ..Config::default()
    })
}

fn export(ehr: &Server, dir: &Path, extra: &[&str]) -> Output {
    let mrns = mrn_file(dir, "MRN-6", N);
    let out = dir.join("out");
    let url = ehr.base_url();
    let mut args = vec![
        "export",
        "--fhir-url",
        &url,
        "--export-mode",
        "crawl",
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap_or_default(),
        "--nickname",
        "q",
    ];
    args.extend_from_slice(extra);
    let out = out.to_string_lossy().into_owned();
    args.push(&out);
    run_quick_retries(&args)
}

/// Type → sorted lines, over every NDJSON file of the workdir.
fn by_type(workdir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(workdir).expect("list").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".ndjson.gz") || name.ends_with(".ndjson")) || name == "log.ndjson" {
            continue;
        }
        let t = name.split('.').next().unwrap_or_default().to_string();
        out.entry(t).or_default().extend(read_lines(&entry.path()));
    }
    for lines in out.values_mut() {
        lines.sort();
    }
    out
}

#[test]
fn a_failing_hydration_read_leaves_the_export_incomplete_until_rerun() {
    // The export that never failed, and the hidden Observation to break.
    let clean_dir = temp_dir("hydrate-clean");
    let clean_ehr = ehr();
    assert_success(&export(&clean_ehr, &clean_dir, &[]));
    let clean = by_type(&first_workdir(&clean_dir.join("out")));
    let hidden: BTreeSet<String> = clean_ehr
        .stats()
        .reads_by_path
        .keys()
        .filter(|p| p.starts_with("Observation/"))
        .cloned()
        .collect();
    let victim = hidden
        .iter()
        .next()
        .expect("a hydrated Observation")
        .clone();

    let dir = temp_dir("hydrate-failing");
    let ehr = ehr();
    ehr.set_failing_reads([victim.clone()]);
    let first = export(&ehr, &dir, &[]);
    assert_eq!(first.status.code(), Some(3), "{}", text(&first.stderr));
    let stderr = text(&first.stderr);
    assert!(
        stderr.contains("1 hydration read failed after retries (Observation 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("rerun the same command"), "{stderr}");
    let workdir = first_workdir(&dir.join("out"));
    assert_ne!(read_json(&workdir.join(".metadata"))["complete"], true);
    let id = victim.trim_start_matches("Observation/");
    assert!(!all_text_under(&workdir).contains(&format!("\"id\":\"{id}\"")));

    // Fixed: the same command asks again for the victim, and for nothing else that worked
    // (answers a rerun cannot change — 404s, notes of a refused type — are asked again too).
    ehr.set_failing_reads(Vec::<String>::new());
    let before = ehr.stats();
    let second = export(&ehr, &dir, &[]);
    assert_success(&second);
    let after = ehr.stats();
    // No crawl search again. Role searches of practitioners without roles are repeated:
    // the `.searched` file, the only record of them, cannot hold "none" (as in the Python
    // tool).
    let again = &after.search_urls[before.search_urls.len()..];
    assert!(
        again
            .iter()
            .all(|s| s.contains("/PractitionerRole?practitioner=")),
        "searched again: {again:?}"
    );
    let reread: BTreeSet<String> = after
        .reads_by_path
        .iter()
        .filter(|(k, n)| before.reads_by_path.get(*k) != Some(n))
        .map(|(k, _)| k.clone())
        .collect();
    // What is missing: the victim and whatever only it leads to (the reads the clean
    // export made that the failing one never got to).
    let missing: BTreeSet<String> = clean_ehr
        .stats()
        .reads_by_path
        .keys()
        .filter(|k| !before.reads_by_path.contains_key(*k))
        .cloned()
        .chain([victim.clone()])
        .collect();
    assert!(
        reread.is_superset(&missing),
        "missing {missing:?}, asked {reread:?}"
    );
    for path in &reread {
        let (ty, rid) = path.split_once('/').unwrap_or_default();
        let unchangeable = fake_ehr::data::resource(1, ty, rid).is_none() || path.ends_with("-rtf");
        assert!(
            missing.contains(path) || unchangeable,
            "asked again: {path}"
        );
    }
    assert_eq!(read_json(&workdir.join(".metadata"))["complete"], true);
    assert_eq!(
        by_type(&workdir),
        clean,
        "the folder equals the export that never failed"
    );
}
