//! Acceptance of batched reads and lookups (issue 14, parts 1 and 2) through the real binary
//! against the synthetic EHR over real HTTP: hydration reads referenced resources in `_id`
//! lists and looks MRNs up several to a search where the server takes lists, and writes
//! exactly what one read (or one lookup) at a time writes, also on servers that refuse
//! lists (400), ignore them (answer as if `_id` or `identifier` were absent) or take them
//! only with the patient named. Request counts are worked out from the data: one list per
//! 50 references of a task run, plus one read for each reference a list did not bring back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod hydration_support;
mod support;

use fake_ehr::{Config, Flavor, Server, ValueLists};
use hydration_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::*;

const SEED: u64 = 1;
/// References in one list at most (`hydrate::batch::MAX_IDS`).
const MAX_IDS: usize = 50;
/// Longest list URL (`hydrate::batch::MAX_URL_BYTES`).
const MAX_URL_BYTES: usize = 2_000;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn export(url: &str, mrns: &Path, out: &Path, nickname: &str) -> String {
    export_with(url, mrns, out, nickname, &[])
}

fn export_with(url: &str, mrns: &Path, out: &Path, nickname: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "export",
        "--fhir-url",
        url,
        "--export-mode",
        "crawl",
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--id-file",
        p(mrns),
        "--nickname",
        nickname,
        p(out),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_success(&o);
    text(&o.stdout)
}

/// Every file under `dir` (sub-folders included, `log.ndjson` and `.metadata` aside: they
/// hold times): NDJSON ones as sorted lines (lines come in completion order), others whole.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list folder").flatten() {
            let path = entry.path();
            let name = path.strip_prefix(dir).expect("under").display().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".ndjson.gz") || name.ends_with(".ndjson") {
                if name == "log.ndjson" {
                    continue;
                }
                let mut lines = read_lines(&path);
                lines.sort();
                out.insert(name, lines);
            } else if name != ".metadata" && !name.starts_with(".resume") {
                out.insert(name, vec![String::new()]);
            }
        }
    }
    out
}

/// The hydration tables of a run's output: per table, its rows as (label, items), the
/// column that does not depend on which input resource happened to claim a reference
/// first.
fn tables(stdout: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in stdout.lines() {
        if let Some(task) = line.strip_prefix("Downloading referenced ") {
            out.push((task.to_string(), Vec::new()));
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let is_row = ["Total", "Already", "Newly", "Fatal", "Retried"]
            .iter()
            .any(|w| line.trim_start().starts_with(w));
        if let (true, Some((_, rows)), Some(items)) = (is_row, out.last_mut(), words.last()) {
            let label = words[..words.len().saturating_sub(2)].join(" ");
            rows.push((label, items.to_string()));
        }
    }
    out
}

/// The server's reference fetches of a run, without Binaries (note inlining reads those).
fn reference_fetches(before: &fake_ehr::Stats, after: &fake_ehr::Stats) -> BTreeMap<String, u64> {
    fetches_between(before, after)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("Binary/"))
        .collect()
}

/// Reads of referenced resources (not Binaries) between two snapshots.
fn reference_reads(before: &fake_ehr::Stats, after: &fake_ehr::Stats) -> BTreeMap<String, u64> {
    after
        .reads_by_path
        .iter()
        .filter(|(k, _)| !k.starts_with("Binary/"))
        .map(|(k, n)| {
            (
                k.clone(),
                n - before.reads_by_path.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The `_id` lists a run sent, one entry per list.
fn lists_between(before: &fake_ehr::Stats, after: &fake_ehr::Stats) -> Vec<ListSearch> {
    let searches = decoded_searches(after);
    list_searches_in(&searches[before.search_urls.len()..])
}

struct Run {
    work: PathBuf,
    stdout: String,
    before: fake_ehr::Stats,
    after: fake_ehr::Stats,
}

/// A managed export of patients `0..n` from a new server made of `config`.
fn export_from(dir: &Path, name: &str, config: Config) -> (Run, Server) {
    let n = config.patients;
    let ehr = server_with(config);
    let mrns = mrn_file(dir, &format!("MRN-{name}"), n);
    let out = dir.join(name);
    let before = ehr.stats();
    let stdout = export(&ehr.base_url(), &mrns, &out, "h");
    let after = ehr.stats();
    let run = Run {
        work: out.join("001.h"),
        stdout,
        before,
        after,
    };
    (run, ehr)
}

/// Keys `Type/id` a run must have asked for that the server does not hold (404s).
fn missing(keys: impl Iterator<Item = String>) -> BTreeSet<String> {
    keys.filter(|k| {
        let (ty, id) = k.split_once('/').expect("Type/id");
        fake_ehr::data::resource(SEED, ty, id).is_none()
    })
    .collect()
}

#[test]
fn the_same_files_whether_the_server_takes_refuses_or_ignores_id_lists() {
    let dir = temp_dir("batching-modes");
    let n = 40;
    let epic = true;
    let mut sim = Sim::exported(SEED, n, &ALL_TYPES, epic);
    sim.export(&ALL_TYPES);
    let expected = sim.reference_reads();
    let gone = missing(expected.keys().cloned());
    assert!(!gone.is_empty(), "the data has references that answer 404");
    // Which run of which task asked for what, and whether the task follows its own output.
    let recursive: BTreeSet<String> = registry()
        .into_iter()
        .filter(|t| t.input == t.output)
        .map(|t| t.name)
        .collect();

    let mut results: Vec<(ValueLists, Run)> = Vec::new();
    for mode in [ValueLists::Accept, ValueLists::Refuse, ValueLists::Ignore] {
        let (run, _ehr) = export_from(
            &dir,
            &format!("{mode:?}"),
            Config {
                flavor: Flavor::Epic,
                patients: n,
                seed: SEED,
                id_lists: mode,
                ..Config::default()
            },
        );
        // What the spec's model says, file by file and line by line.
        let problems = diff_files(&sorted_file_lines(&run.work), &sim.sorted_lines());
        assert!(problems.is_empty(), "{mode:?}: {}", problems.join("\n"));
        let lists = lists_between(&run.before, &run.after);
        let reads = reference_reads(&run.before, &run.after);
        for list in &lists {
            assert!(list.ids.len() >= 2 && list.ids.len() <= MAX_IDS, "{list:?}");
            let scoped = list.patient.is_some();
            assert!(mode != ValueLists::Accept || !scoped, "{list:?}");
        }
        match mode {
            ValueLists::Accept => {
                // Every reference fetched once, by a list or (not brought back) a read.
                assert_same_counts(
                    &reference_fetches(&run.before, &run.after),
                    &expected,
                    "fetches of referenced resources",
                );
                // One list per 50 references of a task run (a lone last one is read), and
                // one read per reference a list did not bring back: the 404s. Recursive
                // tasks (members of members) may send a short list per level.
                let (mut exact, mut lone, mut recursive_refs, mut recursive_runs) = (0, 0, 0, 0);
                for (task, claimed) in &sim.runs {
                    let k = claimed.len();
                    if recursive.contains(task) {
                        recursive_refs += k;
                        recursive_runs += usize::from(k > 0);
                        continue;
                    }
                    exact += k / MAX_IDS + usize::from(k % MAX_IDS >= 2);
                    lone += usize::from(k % MAX_IDS == 1);
                }
                let slack = 4 * recursive_runs;
                assert!(
                    lists.len() >= exact
                        && lists.len() <= exact + recursive_refs.div_ceil(MAX_IDS) + slack,
                    "{} lists for {} references in {} task runs: {exact} for the plain tasks, \
                     {recursive_refs} references in {recursive_runs} runs of recursive ones",
                    lists.len(),
                    expected.len(),
                    sim.runs.len()
                );
                let read_keys: BTreeSet<String> = reads.keys().cloned().collect();
                assert!(
                    gone.is_subset(&read_keys),
                    "every 404 is read on its own: {:?}",
                    gone.difference(&read_keys).collect::<Vec<_>>()
                );
                assert!(reads.values().all(|n| *n == 1), "{reads:?}");
                let listed: BTreeSet<String> = lists
                    .iter()
                    .flat_map(|l| l.ids.iter().map(|id| format!("{}/{id}", l.ty)))
                    .collect();
                let gone_listed: Vec<&String> =
                    gone.iter().filter(|k| listed.contains(*k)).collect();
                assert!(!gone_listed.is_empty(), "a 404 went out in a list first");
                // Reads besides the 404s are lone references (one per task run at most).
                let lone_reads = reads.keys().filter(|k| !gone.contains(*k)).count();
                assert!(
                    lone_reads >= lone && lone_reads <= lone + slack,
                    "{lone_reads} reads of references that were found, {lone} lone ones expected"
                );
                assert!(
                    lists.len() + reads.len() < expected.len() / 4,
                    "{} lists and {} reads for {} references",
                    lists.len(),
                    reads.len(),
                    expected.len()
                );
            }
            ValueLists::Refuse | ValueLists::Ignore => {
                // Every reference read on its own, and at most two lists tried per type
                // (without, then with the patient named), every one refused or unusable.
                assert_same_counts(&reads, &expected, &format!("{mode:?}: reads"));
                let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
                for list in &lists {
                    *per_type.entry(list.ty.as_str()).or_default() += 1;
                }
                assert!(per_type.values().all(|n| *n <= 2), "{mode:?}: {per_type:?}");
                assert!(
                    per_type.contains_key("Observation"),
                    "{mode:?}: {per_type:?}"
                );
            }
            ValueLists::First => unreachable!("not one of the modes run here"),
        }
        results.push((mode, run));
    }
    // Every file, line for line, and the same hydration tables.
    let (_, first) = &results[0];
    let first_files = files_under(&first.work);
    assert!(
        first_files
            .keys()
            .any(|f| f == "Observation.results.ndjson.gz")
    );
    for (mode, run) in &results[1..] {
        let files = files_under(&run.work);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            first_files.keys().collect::<Vec<_>>(),
            "{mode:?}: file names"
        );
        let problems = diff_files(&files, &first_files);
        assert!(problems.is_empty(), "{mode:?}: {}", problems.join("\n"));
        assert_eq!(
            tables(&run.stdout),
            tables(&first.stdout),
            "{mode:?}: tables"
        );
    }
    let observation_table = tables(&first.stdout)
        .into_iter()
        .find(|(t, _)| t == "Observations from DiagnosticReports.")
        .expect("the results table");
    assert!(
        observation_table
            .1
            .iter()
            .any(|(label, _)| label == "Fatal errors"),
        "404s counted: {observation_table:?}"
    );
}

#[test]
fn a_404_in_a_list_is_read_on_its_own_and_named_deleted() {
    // Quarter 2 deletes some hidden Observations, Specimens and EpisodesOfCare (reads
    // answer 404): they must reach `deleted/` as they do with one read at a time.
    let dir = temp_dir("batching-quarter2");
    let n = 20;
    let mut second: Vec<(ValueLists, Run)> = Vec::new();
    // The third run turns lists off on a server that takes them (`--no-search-lists`).
    for (run_no, mode) in [ValueLists::Accept, ValueLists::Refuse, ValueLists::Accept]
        .into_iter()
        .enumerate()
    {
        let extra: &[&str] = match run_no {
            2 => &["--no-search-lists"],
            _ => &[],
        };
        let ehr = server_with(Config {
            flavor: Flavor::Epic,
            patients: n,
            seed: SEED,
            id_lists: mode,
            ..Config::default()
        });
        let mrns = mrn_file(&dir, &format!("MRN-{run_no}"), n);
        let out = dir.join(format!("{run_no}"));
        export_with(&ehr.base_url(), &mrns, &out, "q1", extra);
        ehr.set_quarter(2).expect("quarter 2");
        let before = ehr.stats();
        let stdout = export_with(&ehr.base_url(), &mrns, &out, "q2", extra);
        let after = ehr.stats();
        second.push((
            mode,
            Run {
                work: out.join("002.q2"),
                stdout,
                before,
                after,
            },
        ));
    }
    let (accept, refuse, off) = (&second[0].1, &second[1].1, &second[2].1);
    assert!(
        lists_between(&off.before, &off.after).is_empty(),
        "--no-search-lists sends no list"
    );
    assert_eq!(
        reference_reads(&off.before, &off.after),
        reference_reads(&refuse.before, &refuse.after),
        "--no-search-lists reads what a server without lists is read"
    );
    let problems = diff_files(&files_under(&accept.work), &files_under(&off.work));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(tables(&accept.stdout), tables(&off.stdout));
    let deleted = files_under(&accept.work.join("deleted"));
    let hydrated_gone: Vec<&String> = deleted
        .iter()
        .filter(|(f, _)| f.contains("Observation") || f.contains("Specimen"))
        .flat_map(|(_, lines)| lines)
        .collect();
    assert!(
        !hydrated_gone.is_empty(),
        "hidden resources named deleted: {deleted:?}"
    );
    let problems = diff_files(&files_under(&accept.work), &files_under(&refuse.work));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(tables(&accept.stdout), tables(&refuse.stdout));

    // With lists, each 404 went out in a list, was not brought back, and was read once.
    let gone_in_q2 = |k: &String| {
        let (ty, id) = k.split_once('/').expect("Type/id");
        fake_ehr::data::resource_in_quarter(SEED, n, ty, id, 2).is_none()
    };
    let reads = reference_reads(&accept.before, &accept.after);
    let refused_reads = reference_reads(&refuse.before, &refuse.after);
    let gone: BTreeMap<&String, &u64> = reads.iter().filter(|(k, _)| gone_in_q2(k)).collect();
    let gone_one_by_one: BTreeMap<&String, &u64> = refused_reads
        .iter()
        .filter(|(k, _)| gone_in_q2(k))
        .collect();
    assert_eq!(gone, gone_one_by_one, "the same 404s, each read once");
    let listed: BTreeSet<String> = lists_between(&accept.before, &accept.after)
        .iter()
        .flat_map(|l| l.ids.iter().map(|id| format!("{}/{id}", l.ty)))
        .collect();
    assert!(
        gone.keys().filter(|k| listed.contains(**k)).count() > 0,
        "a 404 inside a list: {gone:?}"
    );
}

#[test]
fn lists_name_the_patient_where_the_server_needs_it() {
    let dir = temp_dir("batching-patient");
    let n = 20;
    let needs: Vec<String> = ["Observation", "Specimen", "EpisodeOfCare"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (run, _ehr) = export_from(
        &dir,
        "needs-patient",
        Config {
            flavor: Flavor::Generic,
            patients: n,
            seed: SEED,
            id_search_needs_patient: needs.clone(),
            ..Config::default()
        },
    );
    let mut sim = Sim::exported(SEED, n, &ALL_TYPES, false);
    sim.export(&ALL_TYPES);
    let problems = diff_files(&sorted_file_lines(&run.work), &sim.sorted_lines());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let lists = lists_between(&run.before, &run.after);
    // Every reference fetched once: in a list that named the patient (or needed none), or
    // read on its own; the lists refused for lacking a patient fetched nothing.
    let mut fetched = reference_reads(&run.before, &run.after);
    for list in &lists {
        if list.patient.is_none() && needs.contains(&list.ty) {
            continue;
        }
        for id in &list.ids {
            let key = format!("{}/{id}", list.ty);
            // Read on its own after the list: the list did not bring it back.
            fetched.entry(key).or_insert(1);
        }
    }
    assert_same_counts(
        &fetched,
        &sim.reference_reads(),
        "fetches of referenced resources",
    );
    let observations: Vec<&ListSearch> = lists.iter().filter(|l| l.ty == "Observation").collect();
    // The first list (without a patient) is refused; after it, one patient per list.
    assert!(observations[0].patient.is_none(), "{:?}", observations[0]);
    let by_patient: Vec<&&ListSearch> = observations
        .iter()
        .filter(|l| l.patient.is_some())
        .collect();
    assert_eq!(by_patient.len(), observations.len() - 1, "{observations:?}");
    assert!(by_patient.len() >= n / 2, "{} lists", by_patient.len());
    for list in by_patient {
        let patient = list.patient.as_deref().expect("a patient");
        let index = fake_ehr::data::patient_index_from_id(patient);
        for id in &list.ids {
            assert_eq!(fake_ehr::data::patient_index_from_id(id), index, "{list:?}");
        }
    }
    // Types that need no patient still go in plain lists.
    assert!(
        lists
            .iter()
            .any(|l| l.ty == "Practitioner" && l.patient.is_none()),
        "{lists:?}"
    );
}

/// `crawl --type Condition` of `mrns` from a server made of `config`: the folder's Patient
/// and Condition lines, its output, and the Patient lookups the server saw.
fn crawl_lookups(
    dir: &Path,
    name: &str,
    config: Config,
    mrns: &[String],
) -> (BTreeMap<String, Vec<String>>, String, Vec<String>) {
    let ehr = server_with(config);
    let file = dir.join(format!("{name}.txt"));
    std::fs::write(&file, mrns.join("\n") + "\n").expect("write MRNs");
    let out = dir.join(name);
    let o = run(&[
        "crawl",
        "--fhir-url",
        &ehr.base_url(),
        p(&out),
        "--id-file",
        p(&file),
        "--id-system",
        fake_ehr::data::MRN_SYSTEM,
        "--type",
        "Condition",
    ]);
    assert_success(&o);
    let lookups: Vec<String> = ehr
        .stats()
        .search_urls
        .iter()
        .filter(|u| u.starts_with("/fhir/Patient?"))
        .cloned()
        .collect();
    let output = format!("{}\n--- stderr ---\n{}", text(&o.stdout), text(&o.stderr));
    (files_under(&out), output, lookups)
}

#[test]
fn mrns_are_looked_up_many_to_a_search() {
    let dir = temp_dir("batching-lookups");
    let n = 150;
    // Not the server's first patients: a server that drops `identifier` answers with
    // those, which must not happen to be the MRNs of the list it was asked.
    let mut mrns: Vec<String> = (50..50 + n).rev().map(fake_ehr::data::mrn).collect();
    // An MRN nobody has, in the middle.
    mrns.insert(70, "99999999".to_string());
    let config = |identifier_lists| Config {
        flavor: Flavor::Epic,
        patients: 50 + n,
        seed: SEED,
        identifier_lists,
        ..Config::default()
    };
    let (files, output, lookups) = crawl_lookups(&dir, "accept", config(ValueLists::Accept), &mrns);
    let patients = &files["Patient.ndjson.gz"];
    assert_eq!(patients.len(), n);

    // Lists as long as the URL limit allows, then one lookup for the MRN that matched
    // nothing (asked on its own, as before).
    let ids_in = |url: &str| {
        url.split_once("identifier=")
            .map(|(_, rest)| {
                rest.split('&')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .count()
            })
            .unwrap_or(0)
    };
    let lists: Vec<&String> = lookups.iter().filter(|u| ids_in(u) > 1).collect();
    let per_list = ids_in(lists[0]);
    assert!((20..=MAX_IDS).contains(&per_list), "{per_list} MRNs a list");
    for list in &lists {
        assert!(list.len() + 40 <= MAX_URL_BYTES, "{} bytes", list.len());
        assert!(ids_in(list) <= per_list);
    }
    assert_eq!(lists.len(), mrns.len().div_ceil(per_list), "{lookups:#?}");
    let singles: Vec<&String> = lookups.iter().filter(|u| ids_in(u) == 1).collect();
    assert_eq!(singles.len(), 1, "{singles:?}");
    assert!(singles[0].contains("99999999"), "{singles:?}");

    // The same folder and output when the server refuses or ignores lists, with one
    // lookup per MRN after the one list tried.
    for mode in [ValueLists::Refuse, ValueLists::Ignore] {
        let (other, other_output, lookups) =
            crawl_lookups(&dir, &format!("{mode:?}"), config(mode), &mrns);
        let problems = diff_files(&other, &files);
        assert!(problems.is_empty(), "{mode:?}: {}", problems.join("\n"));
        assert_eq!(other_output, output, "{mode:?}: what the run said");
        assert_eq!(lookups.len(), 1 + mrns.len(), "{mode:?}: {lookups:#?}");
        assert!(
            ids_in(&lookups[0]) > 1,
            "{mode:?}: the first is the list tried"
        );
    }
}

/// A server whose MRNs are not one patient each: four charts share MRN 222, one chart
/// carries MRNs 333 and 444 (a merge), MRN 555 is nobody's. It takes `identifier` lists
/// (`urn:mrn|111,urn:mrn|222`) and declares that it does.
fn duplicate_mrn_server() -> support::hostile::Hostile {
    use serde_json::json;
    use support::hostile::{Hostile, bundle, json_answer};
    let charts: Vec<(&str, Vec<&str>)> = vec![
        ("p1", vec!["111"]),
        ("p2a", vec!["222"]),
        ("p2b", vec!["222"]),
        ("p2c", vec!["222"]),
        ("p2d", vec!["222"]),
        ("p3", vec!["333", "444"]),
    ];
    Hostile::start("127.0.0.1", move |seen, _| {
        let (path, query) = seen.target.split_once('?').unwrap_or((&seen.target, ""));
        let param = |key: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.replace("%7C", "|").replace("%3A", ":"))
        };
        match path {
            "/metadata" => json_answer(&json!({
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "software": {"name": "duplicates"},
                "rest": [{"mode": "server", "resource": [
                    {"type": "Patient", "searchParam": [
                        {"name": "identifier", "type": "token"},
                        {"name": "_id", "type": "token"}]},
                    {"type": "Condition", "searchParam": [{"name": "patient", "type": "reference"}]}
                ]}]
            })),
            "/Patient" => {
                let wanted: Vec<String> = param("identifier")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|v| v.strip_prefix("urn:mrn|").map(str::to_string))
                    .collect();
                let found: Vec<serde_json::Value> = charts
                    .iter()
                    .filter(|(_, mrns)| mrns.iter().any(|m| wanted.iter().any(|w| w == m)))
                    .map(|(id, mrns)| {
                        let identifier: Vec<serde_json::Value> = mrns
                            .iter()
                            .map(|m| json!({"system": "urn:mrn", "value": m}))
                            .collect();
                        json!({"resourceType": "Patient", "id": id, "identifier": identifier})
                    })
                    .collect();
                // The total counts every chart, more than the MRNs asked for.
                let mut page = bundle(&found, None);
                page["total"] = json!(found.len());
                json_answer(&page)
            }
            "/Condition" => {
                let p = param("patient").unwrap_or_default();
                json_answer(&bundle(
                    &[json!({"resourceType": "Condition", "id": format!("c-{p}"),
                             "subject": {"reference": format!("Patient/{p}")}})],
                    None,
                ))
            }
            _ => json_answer(&bundle(&[], None)),
        }
    })
}

#[test]
fn an_mrn_of_two_charts_or_of_none_is_reported_as_without_lists() {
    let dir = temp_dir("batching-duplicate-mrns");
    let mrns = "111\n222\n555\n333\n444\n";
    let file = dir.join("mrns.txt");
    std::fs::write(&file, mrns).expect("write MRNs");
    let mut runs = Vec::new();
    for extra in [&[][..], &["--no-search-lists"][..]] {
        let h = duplicate_mrn_server();
        let out = dir.join(if extra.is_empty() {
            "lists"
        } else {
            "one-by-one"
        });
        let mut args = vec![
            "crawl",
            "--fhir-url",
            &h.url,
            p(&out),
            "--id-file",
            p(&file),
            "--id-system",
            "urn:mrn",
            "--type",
            "Condition",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_success(&o);
        let lookups: Vec<String> = h
            .seen()
            .iter()
            .filter(|s| s.path() == "/Patient")
            .map(|s| s.target.clone())
            .collect();
        let crawled: BTreeSet<String> = h
            .seen()
            .iter()
            .filter(|s| s.path() == "/Condition")
            .map(|s| s.target.clone())
            .collect();
        let output = format!("{}\n--- stderr ---\n{}", text(&o.stdout), text(&o.stderr));
        runs.push((files_under(&out), output, lookups, crawled));
    }
    let (lists, one_by_one) = (&runs[0], &runs[1]);
    let problems = diff_files(&lists.0, &one_by_one.0);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(lists.1, one_by_one.1, "what the run said");
    // The server reads `patient=a,b` as one odd id, so the one list of patients it was
    // sent (a probe) proved nothing and each patient was searched on its own after it.
    let (patient_lists, singles): (BTreeSet<String>, BTreeSet<String>) =
        lists.3.iter().cloned().partition(|t| t.contains(','));
    assert!(patient_lists.len() <= 1, "{patient_lists:?}");
    assert_eq!(singles, one_by_one.3, "the patients crawled");
    // Every chart of MRN 222 and the merged chart once, each crawled.
    let patients: Vec<String> = lists.0["Patient.ndjson.gz"]
        .iter()
        .map(|l| l.split('"').nth(7).unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        patients,
        ["p1", "p2a", "p2b", "p2c", "p2d", "p3"],
        "{:?}",
        lists.0
    );
    assert_eq!(singles.len(), 6, "{singles:?}");
    // One list of all five MRNs, then MRN 555 (found by no one) on its own; without
    // lists one lookup per MRN.
    assert_eq!(one_by_one.2.len(), 5, "{:?}", one_by_one.2);
    assert_eq!(lists.2.len(), 2, "{:?}", lists.2);
    assert_eq!(
        lists.2[0].matches("urn%3Amrn%7C").count(),
        5,
        "{:?}",
        lists.2
    );
    assert!(
        lists.2[1].ends_with("identifier=urn%3Amrn%7C555"),
        "{:?}",
        lists.2
    );
}

/// A server that takes the first `identifier` list (the probe) and then, under load, starts
/// answering lists as if `identifier` were absent (its first charts, none of them asked
/// for), slowly, so the lists sent after the probe are all out when the first comes back.
/// One MRN per chart (`10000 + i`); single lookups are always answered right.
fn turning_server(charts: usize) -> support::hostile::Hostile {
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};
    use support::hostile::{Hostile, bundle, json_answer};
    let probe_answered = AtomicBool::new(false);
    let chart = |i: usize| {
        json!({"resourceType": "Patient", "id": format!("p{i}"),
               "identifier": [{"system": "urn:mrn", "value": format!("{}", 10_000 + i)}]})
    };
    Hostile::start("127.0.0.1", move |seen, _| {
        let (path, query) = seen.target.split_once('?').unwrap_or((&seen.target, ""));
        let param = |key: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.replace("%7C", "|").replace("%3A", ":"))
        };
        match path {
            "/metadata" => json_answer(&json!({
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "software": {"name": "turning"},
                "rest": [{"mode": "server", "resource": [
                    {"type": "Patient", "searchParam": [
                        {"name": "identifier", "type": "token"}]},
                    {"type": "Condition", "searchParam": [{"name": "patient", "type": "reference"}]}
                ]}]
            })),
            "/Patient" => {
                let wanted: Vec<usize> = param("identifier")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|v| v.strip_prefix("urn:mrn|")?.parse::<usize>().ok())
                    .filter_map(|m| m.checked_sub(10_000))
                    .filter(|i| *i < charts)
                    .collect();
                let list = param("identifier").is_some_and(|v| v.contains(','));
                if list && probe_answered.swap(true, Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    let strangers: Vec<serde_json::Value> = (0..charts)
                        .filter(|i| !wanted.contains(i))
                        .take(3)
                        .map(chart)
                        .collect();
                    return json_answer(&bundle(&strangers, None));
                }
                let found: Vec<serde_json::Value> = wanted.into_iter().map(chart).collect();
                json_answer(&bundle(&found, None))
            }
            "/Condition" => {
                let p = param("patient").unwrap_or_default();
                json_answer(&bundle(
                    &[json!({"resourceType": "Condition", "id": format!("c-{p}"),
                             "subject": {"reference": format!("Patient/{p}")}})],
                    None,
                ))
            }
            _ => json_answer(&bundle(&[], None)),
        }
    })
}

#[test]
fn lists_answered_wrongly_after_the_probe_end_lists_with_one_warning() {
    const CHARTS: usize = 200;
    let dir = temp_dir("batching-turning");
    let mrns: String = (0..CHARTS).map(|i| format!("{}\n", 10_000 + i)).collect();
    let file = dir.join("mrns.txt");
    std::fs::write(&file, mrns).expect("write MRNs");
    let warning = "answered a search for several patients by identifier wrongly";
    let mut runs = Vec::new();
    for extra in [&[][..], &["--no-search-lists"][..]] {
        let h = turning_server(CHARTS);
        let out = dir.join(if extra.is_empty() {
            "lists"
        } else {
            "one-by-one"
        });
        let mut args = vec![
            "crawl",
            "--fhir-url",
            &h.url,
            p(&out),
            "--id-file",
            p(&file),
            "--id-system",
            "urn:mrn",
            "--type",
            "Condition",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_success(&o);
        let lookups: Vec<String> = h
            .seen()
            .iter()
            .filter(|s| s.path() == "/Patient")
            .map(|s| s.target.clone())
            .collect();
        runs.push((files_under(&out), text(&o.stdout), text(&o.stderr), lookups));
    }
    let (lists, one_by_one) = (&runs[0], &runs[1]);
    // Nothing of the wrong answers is kept: the same files as without lists.
    let problems = diff_files(&lists.0, &one_by_one.0);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(lists.0["Patient.ndjson.gz"].len(), CHARTS);
    assert_eq!(lists.1, one_by_one.1, "what the run said on stdout");
    // Several lists were out when the server turned; it is said once.
    let sent_lists = lists
        .3
        .iter()
        .filter(|u| u.contains("%2C") || u.contains(','))
        .count();
    assert!(
        sent_lists >= 3,
        "the probe and two lists at least: {:?}",
        lists.3
    );
    let said = format!("{}{}", lists.1, lists.2);
    assert_eq!(said.matches(warning).count(), 1, "{said}");
    assert!(!one_by_one.2.contains(warning), "{}", one_by_one.2);
    // Every MRN after the probe's is then looked up on its own, once.
    let probe_size = lists.3[0].matches("urn%3Amrn%7C").count();
    assert!(probe_size >= 2, "{:?}", lists.3[0]);
    assert_eq!(
        lists.3.len(),
        sent_lists + (CHARTS - probe_size),
        "{:?}",
        lists.3
    );
    assert_eq!(one_by_one.3.len(), CHARTS);
}

/// A per-patient search of the crawl as the server received it: its type, the patients it
/// named, and the rest of its query (filters) without `_count`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PatientSearch {
    ty: String,
    patients: Vec<String>,
    filters: String,
    count: Option<String>,
}

/// The crawl's own searches among a run's (per-patient searches; `_id` lists, which name
/// the patient on some servers, and Patient lookups left out), in arrival order, and how
/// many requests they took (their next pages, `_offset=…`, included).
fn patient_searches(
    before: &fake_ehr::Stats,
    after: &fake_ehr::Stats,
) -> (Vec<PatientSearch>, usize) {
    let searches = decoded_searches(after);
    let mut requests = 0;
    let firsts = searches[before.search_urls.len()..]
        .iter()
        .filter_map(|s| {
            let (ty, query) = s.split_once('?')?;
            let pairs: Vec<(&str, &str)> =
                query.split('&').filter_map(|p| p.split_once('=')).collect();
            if ty == "Patient" || pairs.iter().any(|(k, _)| *k == "_id") {
                return None;
            }
            requests += 1;
            if pairs.iter().any(|(k, _)| *k == "_offset") {
                return None;
            }
            let patients = pairs.iter().find(|(k, _)| *k == "patient")?.1;
            let count = pairs
                .iter()
                .find(|(k, _)| *k == "_count")
                .map(|(_, v)| v.to_string());
            let filters: Vec<String> = pairs
                .iter()
                .filter(|(k, _)| *k != "patient" && *k != "_count")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Some(PatientSearch {
                ty: ty.to_string(),
                patients: patients.split(',').map(str::to_string).collect(),
                filters: filters.join("&"),
                count,
            })
        })
        .collect();
    (firsts, requests)
}

/// Issue 14, the crawl's own searches: several patients to one search where the server
/// takes patient lists, and the same files, line for line, whatever the server does with
/// them: refuses them (400), ignores them, or reads only the first patient (answers that
/// look right, so no list is trusted until one brought two patients' data).
#[test]
fn crawl_searches_go_several_patients_at_once_with_the_same_files() {
    let dir = temp_dir("batching-patient-lists");
    let n = 45;
    let mut sim = Sim::exported(SEED, n, &ALL_TYPES, true);
    sim.export(&ALL_TYPES);
    let mut singles_of: BTreeMap<String, Vec<PatientSearch>> = BTreeMap::new();
    let mut lists_of: BTreeMap<String, Vec<PatientSearch>> = BTreeMap::new();
    let mut requests_of: BTreeMap<String, usize> = BTreeMap::new();
    for mode in [
        ValueLists::Refuse,
        ValueLists::Accept,
        ValueLists::Ignore,
        ValueLists::First,
    ] {
        let (run, _ehr) = export_from(
            &dir,
            &format!("patients-{mode:?}"),
            Config {
                flavor: Flavor::Epic,
                patients: n,
                seed: SEED,
                patient_lists: mode,
                ..Config::default()
            },
        );
        // What the spec's model says, file by file and line by line.
        let problems = diff_files(&sorted_file_lines(&run.work), &sim.sorted_lines());
        assert!(problems.is_empty(), "{mode:?}: {}", problems.join("\n"));
        let (searches, requests) = patient_searches(&run.before, &run.after);
        let (lists, singles): (Vec<_>, Vec<_>) =
            searches.into_iter().partition(|s| s.patients.len() > 1);
        requests_of.insert(format!("{mode:?}"), requests);
        for list in &lists {
            assert!(list.patients.len() <= 20, "{mode:?}: {list:?}");
            assert_eq!(list.count.as_deref(), Some("100"), "{mode:?}: {list:?}");
        }
        // No patient searched alone twice for the same type and filters.
        let unique: BTreeSet<&PatientSearch> = singles.iter().collect();
        assert_eq!(unique.len(), singles.len(), "{mode:?}: a search sent twice");
        singles_of.insert(format!("{mode:?}"), singles);
        lists_of.insert(format!("{mode:?}"), lists);
    }
    // Refused: one list per type and filter tried, then every search one patient at a time;
    // the searches of every patient of every type (independently: patients × filters).
    let refused = &singles_of["Refuse"];
    let mut per_template: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in refused {
        *per_template
            .entry((s.ty.clone(), s.filters.clone()))
            .or_default() += 1;
    }
    assert!(per_template.len() >= 10, "{per_template:?}");
    assert!(per_template.values().all(|c| *c == n), "{per_template:?}");
    let mut tried: BTreeMap<&str, usize> = BTreeMap::new();
    for list in &lists_of["Refuse"] {
        *tried.entry(list.ty.as_str()).or_default() += 1;
    }
    assert!(tried.values().all(|c| *c == 1), "refused lists: {tried:?}");
    // Ignored (answered as if `patient` were absent: Epic refuses that) and first-only:
    // what was sent singly is exactly what the refused run sent, and a type gives up on
    // lists after at most three that proved nothing.
    for mode in ["Ignore", "First"] {
        let mut sent = singles_of[mode].clone();
        let mut expected = refused.clone();
        sent.sort();
        expected.sort();
        assert_eq!(sent, expected, "{mode}: single searches");
        let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
        for list in &lists_of[mode] {
            *per_type.entry(list.ty.as_str()).or_default() += 1;
        }
        assert!(per_type.values().all(|c| *c <= 3), "{mode}: {per_type:?}");
    }
    // Accepted: every patient's search of every type and filter made exactly once, in a
    // list that proved itself or alone, except where a probe proved nothing (then again
    // alone); far fewer requests than one per patient.
    let accepted = &lists_of["Accept"];
    let alone = &singles_of["Accept"];
    let mut covered: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for s in accepted.iter().chain(alone) {
        for p in &s.patients {
            *covered
                .entry((s.ty.clone(), s.filters.clone(), p.clone()))
                .or_default() += 1;
        }
    }
    assert_eq!(covered.len(), refused.len(), "every search covered");
    let twice = covered.values().filter(|c| **c > 1).count();
    assert!(
        twice <= 3 * 20 * per_template.len(),
        "{twice} searched twice"
    );
    let (with, without) = (requests_of["Accept"], requests_of["Refuse"]);
    assert!(
        with * 4 < without,
        "{with} crawl requests with lists, {without} without"
    );
}
