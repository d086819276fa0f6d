//! Acceptance of hydration (issue 3, docs/hydration.md, docs/folders.md#active-files) through the
//! real binary against the synthetic EHR over real HTTP: a managed `export` of 100 patients
//! (generic, crawl, MRN file) and a smaller Epic one leave exactly what the task table of
//! docs/hydration.md#task-registry says in the workdir — notes inlined with data, size, hash and
//! charset (PDF and wrong-MIME ones untouched), hidden Observations reached through results and
//! nested or cyclic members, every referenced Medication, Practitioner, PractitionerRole, Location,
//! Organization, Specimen and EpisodeOfCare once — with one read per distinct reference (404s
//! included) and links for the hydrated types; and `hydrate` on a folder exported without hydration
//! ends the same.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod hydration_support;
mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_ehr::{AuthMode, Flavor, Server};
use hydration_support::*;
use serde_json::Value;
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::*;

const SEED: u64 = 1;

/// The types hydration fetches by reference.
const HYDRATED: [&str; 8] = [
    "Medication",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Organization",
    "Specimen",
    "EpisodeOfCare",
    "Observation",
];

fn export_args(url: &str, mrns: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "export",
        "--fhir-url",
        url,
        "--export-mode",
        "crawl",
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        mrns.to_str().unwrap(),
        "--nickname",
        "h",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_strings(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

fn split_binary(reads: &BTreeMap<String, u64>) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    reads
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .partition(|(k, _)| !k.starts_with("Binary/"))
}

/// Practitioner ids of the `PractitionerRole?practitioner=` searches received.
fn role_searches(ehr: &Server) -> Vec<String> {
    let mut out: Vec<String> = decoded_searches(&ehr.stats())
        .into_iter()
        .filter_map(|s| {
            s.strip_prefix("PractitionerRole?")
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("practitioner=")))
                .map(|p| p.trim_start_matches("Practitioner/").to_string())
        })
        .collect();
    out.sort();
    out
}

/// Every attachment of the notes holds what docs/hydration.md#inlining-attachments says: text, HTML
/// and XHTML inlined with the Binary's bytes, size, SHA-1 and charset; PDF, wrong-MIME and
/// pre-inlined ones as the server sent them. Returns the count per Binary kind.
fn check_attachments(work: &Path) -> BTreeMap<String, usize> {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for file in ["DocumentReference.ndjson.gz", "DiagnosticReport.ndjson.gz"] {
        for line in read_lines(&work.join(file)) {
            let r: Value = serde_json::from_str(&line).unwrap();
            let ty = r["resourceType"].as_str().unwrap();
            let id = r["id"].as_str().unwrap();
            let original = fake_ehr::data::resource(SEED, ty, id).expect("the server's resource");
            let before = attachments(&original);
            let after = attachments(&r);
            assert_eq!(before.len(), after.len(), "{ty}/{id}");
            for (b, a) in before.iter().zip(after) {
                let url = b["url"].as_str().unwrap();
                assert_eq!(a["url"], url);
                let binary_id = url.strip_prefix("Binary/").unwrap();
                let kind = binary_id.rsplit('-').next().unwrap().to_string();
                let binary = fake_ehr::data::binary(SEED, binary_id).unwrap();
                match kind.as_str() {
                    "txt" | "html" | "xhtml" => {
                        let bytes = STANDARD.decode(binary["data"].as_str().unwrap()).unwrap();
                        let served = binary["contentType"].as_str().unwrap();
                        let charset = served
                            .split_once("charset=")
                            .map_or("utf-8".to_string(), |(_, c)| c.to_lowercase());
                        let mime = media_type(b["contentType"].as_str().unwrap());
                        assert_eq!(a["data"], binary["data"], "{url} data");
                        assert_eq!(a["size"], bytes.len() as u64, "{url} size");
                        assert_eq!(
                            a["hash"],
                            STANDARD.encode(Sha1::digest(&bytes)),
                            "{url} hash"
                        );
                        assert_eq!(
                            a["contentType"],
                            format!("{mime}; charset={charset}"),
                            "{url} contentType (served as {served})"
                        );
                        // Existing keys keep their place; new ones follow in order.
                        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
                        let old: Vec<&String> = b.as_object().unwrap().keys().collect();
                        assert_eq!(&keys[..old.len()], &old[..], "{url} key order");
                        assert_eq!(&keys[old.len()..], ["data", "size", "hash"], "{url}");
                    }
                    // Not a default type; answers another MIME type; already has data.
                    "pdf" | "rtf" | "pre" => assert_eq!(a, *b, "{url} must be left alone"),
                    other => panic!("unexpected attachment kind {other}"),
                }
                *kinds.entry(kind).or_default() += 1;
            }
            // Everything but the attachments is as the server sent it.
            let mut stripped = r.clone();
            for a in attachments_mut(&mut stripped) {
                let url = a["url"].clone();
                let from = attachments(&original)
                    .into_iter()
                    .find(|o| o["url"] == url)
                    .cloned()
                    .unwrap();
                *a = from;
            }
            assert_eq!(
                stripped, original,
                "{ty}/{id} changed beyond its attachments"
            );
        }
    }
    kinds
}

/// Hidden Observations reachable from what the workdir exported, through `result` and
/// (transitively) `hasMember`.
fn reachable_hidden_observations(work: &Path) -> BTreeSet<String> {
    let mut queue: Vec<String> = Vec::new();
    for file in ["DiagnosticReport.ndjson.gz", "Observation.ndjson.gz"] {
        for line in read_lines(&work.join(file)) {
            let r: Value = serde_json::from_str(&line).unwrap();
            queue.extend(
                refs_at(&r, "result*")
                    .into_iter()
                    .chain(refs_at(&r, "hasMember*"))
                    .map(str::to_string),
            );
        }
    }
    let mut seen = BTreeSet::new();
    let mut found = BTreeSet::new();
    while let Some(reference) = queue.pop() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let Some(id) = reference.strip_prefix("Observation/") else {
            continue;
        };
        if !id.starts_with("hobs-") {
            continue;
        }
        if let Some(obs) = fake_ehr::data::resource(SEED, "Observation", id) {
            found.insert(reference.clone());
            queue.extend(refs_at(&obs, "hasMember*").into_iter().map(str::to_string));
        }
    }
    found
}

/// Everything a finished export with hydration must show (the workdir is `001.h`).
fn check_hydrated_export(out: &Path, ehr: &Server, n: usize, epic: bool) {
    let work = out.join("001.h");
    assert_eq!(read_json(&work.join(".metadata"))["complete"], true);
    let names = file_names(&work);
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    // The model of the whole run (tests/hydration_support).
    let mut sim = Sim::exported(SEED, n, &ALL_TYPES, epic);
    sim.export(&ALL_TYPES);

    // The attachments, one by one.
    let kinds = check_attachments(&work);
    for kind in ["txt", "html", "xhtml", "pdf", "rtf", "pre"] {
        assert!(kinds.contains_key(kind), "no {kind} attachment: {kinds:?}");
    }

    // Hidden Observations: each once, in the results or members file.
    let places = where_is(&work);
    let hidden = reachable_hidden_observations(&work);
    assert!(hidden.len() > n * 3, "{} hidden Observations", hidden.len());
    for key in &hidden {
        let files = places["Observation"].get(key).cloned().unwrap_or_default();
        assert!(
            files == ["Observation.results.ndjson.gz"]
                || files == ["Observation.members.ndjson.gz"],
            "{key} in {files:?}"
        );
    }
    let hydrated_obs: BTreeSet<&String> = places["Observation"]
        .iter()
        .filter(|(_, f)| f.iter().any(|f| f != "Observation.ndjson.gz"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        hydrated_obs,
        hidden.iter().collect(),
        "hydrated Observations"
    );

    // Every referenced resource of the hydrated types: present, exactly once per type (the searched
    // roles file aside: it records searches, docs/hydration.md#searching-practitioner-roles).
    let wanted: BTreeSet<String> = sim
        .known
        .iter()
        .filter(|k| {
            let (ty, id) = k.split_once('/').unwrap();
            fake_ehr::data::resource(SEED, ty, id).is_some()
        })
        .cloned()
        .collect();
    for ty in HYDRATED {
        let of_type = places.get(ty).cloned().unwrap_or_default();
        let want: Vec<&String> = wanted
            .iter()
            .filter(|k| k.starts_with(&format!("{ty}/")))
            .collect();
        assert!(!want.is_empty(), "no {ty} referenced");
        for key in want {
            let files: Vec<&String> = of_type
                .get(key)
                .into_iter()
                .flatten()
                .filter(|f| !f.starts_with("PractitionerRole.searched."))
                .collect();
            assert_eq!(files.len(), 1, "{key} in {files:?}");
        }
        for (key, files) in &of_type {
            let outside_search = files
                .iter()
                .filter(|f| !f.starts_with("PractitionerRole.searched."))
                .count();
            assert!(outside_search <= 1, "{key} written twice: {files:?}");
        }
    }

    // File by file, line by line (order aside: completion order), as the model says.
    let problems = diff_files(&sorted_file_lines(&work), &sim.sorted_lines());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // One fetch per distinct reference (a read, or a place in an `_id` list), 404s
    // included; one read per note attachment fetched. A 404 is read on its own once.
    let stats = ehr.stats();
    assert_eq!(
        stats.reads_by_path.get(fake_ehr::data::GONE_PRACTITIONER),
        Some(&1),
        "the missing Practitioner is read once"
    );
    let (refs, binaries) = split_binary(&fetches(&stats));
    let too_many: Vec<_> = refs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        too_many.is_empty(),
        "requested more than once: {too_many:?}"
    );
    assert_same_counts(
        &refs,
        &sim.reference_reads(),
        "fetches of referenced resources",
    );
    assert_same_counts(&binaries, &sim.binary_reads(), "Binary reads");

    // Each Practitioner's roles searched once.
    let mut searched = sim.searched.clone();
    searched.sort();
    assert_eq!(role_searches(ehr), searched);

    // Links: every file of every type, hydrated ones included, numbered in path order.
    let links = symlinks(out);
    let mut files_of_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ty, keys) in &places {
        for files in keys.values() {
            files_of_type
                .entry(ty.clone())
                .or_default()
                .extend(files.iter().cloned());
        }
    }
    for (ty, files) in &files_of_type {
        for (k, file) in files.iter().enumerate() {
            let name = format!("{ty}.{:03}.ndjson.gz", k + 1);
            assert_eq!(
                links.get(&name),
                Some(&PathBuf::from("001.h").join(file)),
                "link {name}: {links:?}"
            );
        }
        let count = links
            .keys()
            .filter(|l| l.starts_with(&format!("{ty}.")))
            .count();
        assert_eq!(count, files.len(), "{ty} links: {links:?}");
    }
    for ty in ["Medication", "Location", "Organization", "Practitioner"] {
        assert_eq!(
            links.get(&format!("{ty}.001.ndjson.gz")),
            Some(&PathBuf::from(format!("001.h/{ty}.referenced.ndjson.gz")))
        );
    }
}

#[test]
fn generic_export_of_100_patients_hydrates_everything() {
    let dir = temp_dir("hydrate-export-100");
    let ehr = server(Flavor::Generic, 100, AuthMode::Open);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-100", 100);
    let out = dir.join("out");
    let o = run_strings(&export_args(&url, &mrns, &out, &[]));
    assert_success(&o);
    let stdout = text(&o.stdout);
    assert!(stdout.ends_with("✨ Done ✨\n"), "{stdout}");
    check_hydrated_export(&out, &ehr, 100, false);
}

#[test]
fn epic_export_hydrates_everything() {
    let dir = temp_dir("hydrate-export-epic");
    let ehr = server(Flavor::Epic, 30, AuthMode::Open);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-30", 30);
    let out = dir.join("out");
    let o = run_strings(&export_args(&url, &mrns, &out, &[]));
    assert_success(&o);
    let work = out.join("001.h");
    // Epic cannot search these by patient: everything of them comes from references.
    for ty in ["EpisodeOfCare", "Specimen"] {
        assert!(!work.join(format!("{ty}.ndjson.gz")).exists(), "{ty}");
        assert!(
            work.join(format!("{ty}.referenced.ndjson.gz")).is_file(),
            "{ty}"
        );
    }
    check_hydrated_export(&out, &ehr, 30, true);
}

#[test]
fn hydrate_on_an_unhydrated_export_matches_hydration_during_export() {
    let dir = temp_dir("hydrate-later");
    let n = 40;
    let ehr = server(Flavor::Generic, n, AuthMode::Open);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-40", n);

    let out_a = dir.join("during");
    assert_success(&run_strings(&export_args(&url, &mrns, &out_a, &[])));
    let work_a = out_a.join("001.h");

    let out_b = dir.join("later");
    let b = run_strings(&export_args(
        &url,
        &mrns,
        &out_b,
        &["--hydration-tasks", "none"],
    ));
    assert_success(&b);
    let work_b = out_b.join("001.h");
    assert!(!text(&b.stdout).contains("Downloading referenced"));
    let before = ehr.stats();
    let h = run(&["hydrate", work_b.to_str().unwrap(), "--fhir-url", &url]);
    assert_success(&h);
    assert!(text(&h.stdout).ends_with("✨ Done ✨\n"));
    let reads = fetches_between(&before, &ehr.stats());

    // The same resources, type by type, as hydration during the export.
    let a = lines_by_type(&work_a);
    let b = lines_by_type(&work_b);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "types"
    );
    for (ty, lines) in &a {
        assert!(lines == &b[ty], "{ty} differs");
    }
    // And the files the Python tool's single pass in registry order makes.
    let mut sim = Sim::exported(SEED, n, &ALL_TYPES, false);
    sim.hydrate(None);
    let problems = diff_files(&sorted_file_lines(&work_b), &sim.sorted_lines());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // One fetch per distinct reference (read or listed) and per note attachment fetched.
    assert_same_counts(&reads, &sim.reads, "fetches of the hydrate run");

    // Again: only what failed is asked for again (404s, the wrong-MIME notes), once each.
    let before = ehr.stats();
    let again = run(&["hydrate", work_b.to_str().unwrap(), "--fhir-url", &url]);
    assert_success(&again);
    let reads = fetches_between(&before, &ehr.stats());
    let failed: BTreeMap<String, u64> = sim
        .reads
        .keys()
        .filter(|k| {
            let (ty, id) = k.split_once('/').unwrap();
            fake_ehr::data::resource(SEED, ty, id).is_none() || k.ends_with("-rtf")
        })
        .map(|k| (k.clone(), 1))
        .collect();
    assert!(failed.contains_key(fake_ehr::data::GONE_PRACTITIONER));
    assert_same_counts(&reads, &failed, "a second hydrate re-asks only what failed");
    assert_eq!(lines_by_type(&work_b), b, "and changes nothing");
}

#[test]
fn passes_follow_new_types_and_chained_locations_are_linked() {
    // The example of docs/hydration.md#hydration-after-an-export: `--type
    // Patient,MedicationRequest` hydrates in three passes.
    let dir = temp_dir("hydrate-passes");
    let n = 20;
    let ehr = server(Flavor::Generic, n, AuthMode::Open);
    let url = ehr.base_url();
    let mrns = mrn_file(&dir, "MRN-20", n);
    let out = dir.join("out");
    let o = run_strings(&export_args(
        &url,
        &mrns,
        &out,
        &["--type", "Patient,MedicationRequest"],
    ));
    assert_success(&o);
    let headers: Vec<String> = text(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Downloading referenced "))
        .map(str::to_string)
        .collect();
    let expected = [
        // Pass 1: the exported types.
        "Medications from MedicationRequests.",
        "Practitioners from MedicationRequests.",
        "PractitionerRoles from MedicationRequests.",
        "Practitioners from Patients.",
        "PractitionerRoles from Patients.",
        "Organizations from MedicationRequests.",
        "Organizations from Patients.",
        // Pass 2: Medication, Practitioner, PractitionerRole, Organization.
        "PractitionerRoles from Practitioners.",
        "Practitioners from PractitionerRoles.",
        "Locations from PractitionerRoles.",
        "Organizations from Practitioners.",
        "Organizations from PractitionerRoles.",
        "Organizations from Organizations.",
        // Pass 3: Location.
        "Locations from Locations.",
        "Organizations from Locations.",
    ];
    // The passes of docs/hydration.md#hydration-after-an-export come first; after them, tasks run
    // again only for what the earlier ones newly found (the fixpoint), so the list may go on.
    assert_eq!(headers[..13], expected[..13], "{headers:?}");
    for header in &expected[13..] {
        assert!(
            headers[13..].contains(&header.to_string()),
            "{header}: {headers:?}"
        );
    }

    let work = out.join("001.h");
    let types = ["Patient", "MedicationRequest"];
    let mut sim = Sim::exported(SEED, n, &types, false);
    sim.export_closure(&types);
    assert_eq!(dedup(lines_by_type(&work)), sim.lines_by_type());
    // Each reference asked for once (read or listed), however often its task ran.
    let (refs, binaries) = split_binary(&fetches(&ehr.stats()));
    assert!(binaries.is_empty());
    let twice: Vec<_> = refs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    assert!(work.join("Location.referenced.ndjson.gz").exists());

    // Locations came only through Patient → PractitionerRole → Location (and partOf): still linked
    // (docs/differences.md#symlinks-follow-hydration-chains), like every other hydrated type.
    let links = symlinks(&out);
    for (ty, file) in [
        ("Location", "Location.referenced.ndjson.gz"),
        ("Organization", "Organization.referenced.ndjson.gz"),
        ("Medication", "Medication.referenced.ndjson.gz"),
        ("Practitioner", "Practitioner.referenced.ndjson.gz"),
        ("PractitionerRole", "PractitionerRole.referenced.ndjson.gz"),
        ("PractitionerRole", "PractitionerRole.searched.ndjson.gz"),
    ] {
        assert!(
            links.values().any(|t| t == &Path::new("001.h").join(file)),
            "{ty}: no link to {file}: {links:?}"
        );
    }
}

fn dedup(mut lines: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    for l in lines.values_mut() {
        l.dedup();
    }
    lines
}

#[test]
fn hydration_reaches_its_fixpoint_for_small_cohorts() {
    // Small cohorts are where a Practitioner is reached only through a PractitionerRole
    // (PractitionerRole.practitioner), whose own roles must then be searched as well. The
    // expectation is the full reference closure from fake-ehr's data, whatever the order.
    let n = 40;
    let ehr = server(Flavor::Generic, n, AuthMode::Open);
    let url = ehr.base_url();
    let mut beyond_passes = 0;
    for patient in [3usize, 7, 11, 19] {
        let dir = temp_dir("hydrate-fixpoint");
        let mrns = dir.join("MRN-1");
        std::fs::write(&mrns, fake_ehr::data::mrn(patient) + "\n").unwrap();
        let out = dir.join("out");
        let types = [
            "Patient",
            "Encounter",
            "MedicationRequest",
            "DiagnosticReport",
            "Observation",
        ];
        let o = run_strings(&export_args(
            &url,
            &mrns,
            &out,
            &["--type", &types.join(",")],
        ));
        assert_success(&o);
        let mut closure = Sim::exported_one(SEED, n, patient, &types);
        closure.export_closure(&types);
        let mut passes = Sim::exported_one(SEED, n, patient, &types);
        passes.export(&types);
        let got = dedup(lines_by_type(&out.join("001.h")));
        if closure.lines_by_type() != passes.lines_by_type() {
            beyond_passes += 1;
        }
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            closure.lines_by_type().keys().collect::<Vec<_>>(),
            "patient {patient}"
        );
        for (t, lines) in closure.lines_by_type() {
            assert!(
                got[&t] == lines,
                "patient {patient}: {t} differs from the closure"
            );
        }
    }
    assert!(
        beyond_passes > 0,
        "no cohort needed more than the passes: the test proves nothing"
    );
}
