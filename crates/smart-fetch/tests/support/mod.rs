//! Shared pieces of the end-to-end tests: a fake EHR on loopback, the real `smart-fetch`
//! binary, and readers for the folders it writes. Tests assert on what a user sees.
#![allow(dead_code)]

pub mod hostile;
pub mod python;

use fake_ehr::{AuthMode, Config, Flavor, Server};
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "smart-fetch-test-client";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smart-fetch")
}

/// A fresh folder for one test, under the system's temp folder. It is removed with
/// everything in it when the test ends, so a run leaves nothing behind; a test that fails
/// keeps it for a look and says where.
pub fn temp_dir(name: &str) -> TestDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("sf-e2e-{name}-"))
        .tempdir()
        .expect("create temp dir");
    TestDir(Some(dir))
}

/// See [`temp_dir`]. Derefs to its `Path`.
pub struct TestDir(Option<tempfile::TempDir>);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("test folder kept: {}", dir.keep().display());
        }
    }
}

pub fn server(flavor: Flavor, patients: usize, auth: AuthMode) -> Server {
    fake_ehr::spawn(Config {
        flavor,
        patients,
        auth,
        ..Config::default()
    })
    .expect("start fake EHR")
}

pub fn server_with(config: Config) -> Server {
    fake_ehr::spawn(config).expect("start fake EHR")
}

/// Write the MRNs of patients `0..n` to a file named `name` in `dir`.
pub fn mrn_file(dir: &Path, name: &str, n: usize) -> PathBuf {
    let path = dir.join(name);
    let text: String = (0..n).map(|i| fake_ehr::data::mrn(i) + "\n").collect();
    std::fs::write(&path, text).expect("write MRN file");
    path
}

/// Run smart-fetch to completion (killed after two minutes so a hang fails the test).
pub fn run(args: &[&str]) -> Output {
    let child = spawn(args);
    wait(child, HANG_LIMIT)
}

/// Like [`run`], with retries a few milliseconds apart instead of over two minutes, for
/// tests of requests that fail on every try.
pub fn run_quick_retries(args: &[&str]) -> Output {
    let child = Command::new(bin())
        .args(args)
        .env("SMART_FETCH_RETRY_BASE_MS", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smart-fetch");
    wait(child, HANG_LIMIT)
}

/// Like [`run`], with these environment variables set for the child.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smart-fetch");
    wait(child, HANG_LIMIT)
}

pub fn spawn(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smart-fetch")
}

/// How long a command may run before a test takes it for hung and kills it. Only a safety
/// net: no test measures speed with it. Generous, because a loaded two-core CI machine runs
/// many tests' exports at once and a 20-group batch can take minutes there.
pub const HANG_LIMIT: Duration = Duration::from_secs(600);

pub fn wait(mut child: Child, limit: Duration) -> Output {
    // Read both pipes while waiting: a child that writes more than a pipe holds (64 KiB)
    // would otherwise block on its next line and never exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break status,
                    Err(e) => panic!("waiting for smart-fetch: {e}"),
                }
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for smart-fetch: {e}"),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "smart-fetch failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Lines of an NDJSON file, gzip decided by name.
pub fn read_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let content = if path.to_string_lossy().ends_with(".gz") {
        let mut s = String::new();
        MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("gunzip {}: {e}", path.display()));
        s
    } else {
        String::from_utf8(bytes).expect("utf-8")
    };
    content
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Type → id → the exact line, for every `*.ndjson[.gz]` directly in `dir`. Panics on a
/// resource written twice.
pub fn folder_resources(dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    folder_resources_where(dir, |_| true)
}

/// Like [`folder_resources`], for the files of these types only (hydration may write one
/// resource into two files of a hydrated type: `.referenced` and `.searched`).
pub fn folder_resources_of(
    dir: &Path,
    types: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    folder_resources_where(dir, |name| {
        types.iter().any(|t| name.starts_with(&format!("{t}.")))
    })
}

fn folder_resources_where(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("list workdir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name.ends_with(".ndjson") || name.ends_with(".ndjson.gz"))
                && name != "log.ndjson"
                && keep(&name)
        })
        .collect();
    entries.sort();
    for path in entries {
        for line in read_lines(&path) {
            let value: Value = serde_json::from_str(&line).expect("valid JSON line");
            let t = value["resourceType"]
                .as_str()
                .expect("resourceType")
                .to_string();
            let id = value["id"].as_str().expect("id").to_string();
            let previous = out.entry(t.clone()).or_default().insert(id.clone(), line);
            assert!(
                previous.is_none(),
                "{t}/{id} written twice in {}",
                dir.display()
            );
        }
    }
    out
}

pub const EPIC_CATEGORIES: [&str; 6] = [
    "social-history",
    "vital-signs",
    "imaging",
    "laboratory",
    "survey",
    "exam",
];

/// What the server holds for patients `0..n` in `types`, as the lines the tool must write:
/// Epic skips EpisodeOfCare and Specimen searches and filters Observations by category.
pub fn expected_resources(
    seed: u64,
    n: usize,
    types: &[&str],
    epic: bool,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let all: Vec<usize> = (0..n).collect();
    expected_resources_of(seed, &all, types, epic)
}

/// Like [`expected_resources`], for the patients with these indices (`pat-000003` is 3).
pub fn expected_resources_of(
    seed: u64,
    indices: &[usize],
    types: &[&str],
    epic: bool,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for &i in indices {
        for resource in fake_ehr::data::patient_resources(seed, i) {
            let t = resource["resourceType"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !types.contains(&t.as_str()) {
                continue;
            }
            if epic && (t == "EpisodeOfCare" || t == "Specimen") {
                continue;
            }
            if t == "Observation" && !in_default_categories(&resource, epic) {
                continue;
            }
            let id = resource["id"].as_str().unwrap_or_default().to_string();
            out.entry(t)
                .or_default()
                .insert(id, python::ndjson_line(&resource));
        }
    }
    out
}

fn in_default_categories(obs: &Value, epic: bool) -> bool {
    let extra = ["procedure", "therapy", "activity"];
    obs["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str())
        .any(|code| EPIC_CATEGORIES.contains(&code) || (!epic && extra.contains(&code)))
}

pub const ALL_TYPES: [&str; 15] = [
    "Patient",
    "Encounter",
    "AllergyIntolerance",
    "Condition",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "EpisodeOfCare",
    "Immunization",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "Specimen",
];

/// Assert two folder snapshots hold the same resources, with a short diff on failure.
pub fn assert_same_resources(
    actual: &BTreeMap<String, BTreeMap<String, String>>,
    expected: &BTreeMap<String, BTreeMap<String, String>>,
) {
    let types: std::collections::BTreeSet<_> = actual.keys().chain(expected.keys()).collect();
    for t in types {
        let a = actual.get(t).cloned().unwrap_or_default();
        let e = expected.get(t).cloned().unwrap_or_default();
        let missing: Vec<_> = e.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
        let extra: Vec<_> = a.keys().filter(|k| !e.contains_key(*k)).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{t}: {} expected, {} written; missing {missing:?}, unexpected {extra:?}",
            e.len(),
            a.len()
        );
        for (id, line) in &e {
            assert_eq!(&a[id], line, "{t}/{id} differs from what the server sent");
        }
    }
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Every file under `dir` (recursively), as text, for secret scans.
pub fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_symlink() {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".gz") {
                out.push_str(&read_lines(&p).join("\n"));
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                out.push_str(&t);
            }
        }
    }
    out
}

/// The searches a fake EHR received, decoded and without the `/fhir/` prefix, e.g.
/// `Patient?identifier=urn:oid:1.2|10000003` (percent-encoding is the client's choice).
pub fn decoded_searches(stats: &fake_ehr::Stats) -> Vec<String> {
    stats
        .search_urls
        .iter()
        .map(|u| {
            let url = reqwest::Url::parse(&format!("http://fake-ehr{u}"))
                .unwrap_or_else(|e| panic!("search URL {u}: {e}"));
            let path = url.path().trim_start_matches("/fhir/").to_string();
            let query: Vec<String> = url.query_pairs().map(|(k, v)| format!("{k}={v}")).collect();
            if query.is_empty() {
                path
            } else {
                format!("{path}?{}", query.join("&"))
            }
        })
        .collect()
}

/// `searches` (decoded) with each search of several patients (`Condition?patient=a,b&…
/// &_count=100`, the crawl's patient lists) written as the per-patient searches it stands
/// for (`Condition?patient=a&…`, `Condition?patient=b&…`), in order; other searches as
/// they are.
pub fn per_patient_searches(searches: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in searches {
        let Some((ty, query)) = s.split_once('?') else {
            out.push(s.clone());
            continue;
        };
        let pairs: Vec<&str> = query.split('&').collect();
        let patients = pairs.iter().find_map(|p| p.strip_prefix("patient="));
        match patients {
            Some(list) if ty != "Patient" && list.contains(',') => {
                for patient in list.split(',') {
                    let rest: Vec<String> = pairs
                        .iter()
                        .filter(|p| !p.starts_with("_count="))
                        .map(|p| match p.starts_with("patient=") {
                            true => format!("patient={patient}"),
                            false => p.to_string(),
                        })
                        .collect();
                    out.push(format!("{ty}?{}", rest.join("&")));
                }
            }
            _ => out.push(s.clone()),
        }
    }
    out
}

/// Name → target of every symlink directly in `dir`.
pub fn symlinks(dir: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_symlink())
        .map(|e| {
            let target = std::fs::read_link(e.path()).expect("read link");
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect()
}

/// Names of the entries directly in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The events of a `log.ndjson`, parsed.
pub fn log_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l}: {e}")))
        .collect()
}

/// `127.0.0.1:PORT` of a fake EHR, for relays and proxies placed in front of it.
pub fn host_port(ehr: &Server) -> String {
    ehr.base_url()
        .trim_start_matches("http://")
        .trim_end_matches("/fhir")
        .to_string()
}

/// Copy bytes from one socket to the other until either side closes, then close the
/// writing half (the building block of the relays and proxies in the network tests).
pub fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    use std::io::Write;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The one workdir (`NNN.<nick>/`) of a managed folder after its first export.
pub fn first_workdir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .expect("list the managed folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir() && !p.is_symlink())
        .expect("a workdir")
}
