//! What hydration must produce, worked out from docs/ alone: the task registry of
//! docs/hydration.md#task-registry as a table, a model of a workdir (file name → resources) and a
//! simulation of the tasks (docs/hydration.md) and of `export`'s multi-pass loop
//! (docs/hydration.md#hydration-after-an-export) against the synthetic data set, with the
//! references it must request (once each per run) and the Binaries it must read. Also readers for
//! the folders the real binary writes.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::{expected_resources_of, read_lines};

/// docs/hydration.md#task-registry, in registry order: group, task, input, output, slug, reference
/// paths.
const REGISTRY: &str = "\
episodeofcare docref-epofcare DocumentReference EpisodeOfCare referenced context.encounter*
episodeofcare enc-epofcare Encounter EpisodeOfCare referenced episodeOfCare*
episodeofcare meddisp-epofcare MedicationDispense EpisodeOfCare referenced context
inline doc-inline DocumentReference DocumentReference - -
inline dxr-inline DiagnosticReport DiagnosticReport - -
medication meddisp-med MedicationDispense Medication referenced medicationReference
medication medreq-med MedicationRequest Medication referenced medicationReference
observation dxr-results DiagnosticReport Observation results result*
observation obs-members Observation Observation members hasMember*
specimen dxr-spec DiagnosticReport Specimen referenced specimen*
specimen obs-spec Observation Specimen referenced specimen
specimen servreq-spec ServiceRequest Specimen referenced specimen*
practitioner allergy-pract AllergyIntolerance Practitioner referenced recorder,asserter
practitioner allergy-practrole AllergyIntolerance PractitionerRole referenced recorder,asserter
practitioner cond-pract Condition Practitioner referenced recorder,asserter
practitioner cond-practrole Condition PractitionerRole referenced recorder,asserter
practitioner dxr-pract DiagnosticReport Practitioner referenced performer*,resultsInterpreter*
practitioner dxr-practrole DiagnosticReport PractitionerRole referenced performer*,resultsInterpreter*
practitioner doc-pract DocumentReference Practitioner referenced subject,author*,authenticator
practitioner doc-practrole DocumentReference PractitionerRole referenced subject,author*,authenticator
practitioner enc-pract Encounter Practitioner referenced participant*.individual
practitioner enc-practrole Encounter PractitionerRole referenced participant*.individual
practitioner epofcare-pract EpisodeOfCare Practitioner referenced careManager
practitioner epofcare-practrole EpisodeOfCare PractitionerRole referenced careManager
practitioner imm-pract Immunization Practitioner referenced performer*.actor
practitioner imm-practrole Immunization PractitionerRole referenced performer*.actor
practitioner meddisp-pract MedicationDispense Practitioner referenced performer*.actor,receiver*,substitution.responsibleParty*
practitioner meddisp-practrole MedicationDispense PractitionerRole referenced performer*.actor,substitution.responsibleParty*
practitioner medreq-pract MedicationRequest Practitioner referenced reportedReference,requester,performer,recorder
practitioner medreq-practrole MedicationRequest PractitionerRole referenced reportedReference,requester,performer,recorder
practitioner obs-pract Observation Practitioner referenced performer*
practitioner obs-practrole Observation PractitionerRole referenced performer*
practitioner pat-pract Patient Practitioner referenced generalPractitioner*
practitioner pat-practrole Patient PractitionerRole referenced generalPractitioner*
practitioner procedure-pract Procedure Practitioner referenced recorder,asserter,performer*.actor
practitioner procedure-practrole Procedure PractitionerRole referenced recorder,asserter,performer*.actor
practitioner servreq-pract ServiceRequest Practitioner referenced requester,performer*
practitioner servreq-practrole ServiceRequest PractitionerRole referenced requester,performer*
practitioner spec-pract Specimen Practitioner referenced collection.collector
practitioner spec-practrole Specimen PractitionerRole referenced collection.collector
practitioner pract-practrole Practitioner PractitionerRole searched -
practitioner practrole-pract PractitionerRole Practitioner referenced practitioner
location dev-loc Device Location referenced location
location dxr-loc DiagnosticReport Location referenced subject
location enc-loc Encounter Location referenced hospitalization.origin,hospitalization.destination,location*.location
location imm-loc Immunization Location referenced location
location meddisp-loc MedicationDispense Location referenced location,destination
location obs-loc Observation Location referenced subject
location practrole-loc PractitionerRole Location referenced location*
location proc-loc Procedure Location referenced location
location servreq-loc ServiceRequest Location referenced subject,locationReference*
location spec-loc Specimen Location referenced subject
location loc-loc Location Location referenced partOf
organization dev-org Device Organization referenced owner
organization dxr-org DiagnosticReport Organization referenced performer*,resultsInterpreter*
organization doc-org DocumentReference Organization referenced author*,authenticator,custodian
organization enc-org Encounter Organization referenced hospitalization.origin,hospitalization.destination,serviceProvider
organization epofcare-org EpisodeOfCare Organization referenced managingOrganization
organization imm-org Immunization Organization referenced manufacturer,performer*.actor,protocolApplied*.authority
organization loc-org Location Organization referenced managingOrganization
organization meddisp-org MedicationDispense Organization referenced performer*.actor
organization medreq-org MedicationRequest Organization referenced reportedReference,requester,performer,dispenseRequest.performer
organization obs-org Observation Organization referenced performer*
organization pat-org Patient Organization referenced contact*.organization,generalPractitioner*,managingOrganization
organization pract-org Practitioner Organization referenced qualification*.issuer
organization practrole-org PractitionerRole Organization referenced organization
organization proc-org Procedure Organization referenced performer*.actor,performer*.onBehalfOf
organization servreq-org ServiceRequest Organization referenced requester,performer*
organization org-org Organization Organization referenced partOf
";

#[derive(Clone, Debug)]
pub struct Task {
    pub group: String,
    pub name: String,
    pub input: String,
    pub output: String,
    /// `referenced`, `results`, `members`, `searched`, or `-` for inline tasks.
    pub slug: String,
    pub paths: Vec<String>,
}

impl Task {
    pub fn is_inline(&self) -> bool {
        self.group == "inline"
    }
}

pub fn registry() -> Vec<Task> {
    REGISTRY
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Task {
                group: f[0].into(),
                name: f[1].into(),
                input: f[2].into(),
                output: f[3].into(),
                slug: f[4].into(),
                paths: f[5]
                    .split(',')
                    .filter(|p| *p != "-")
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect()
}

/// The `reference` strings a dot-separated path reaches (`*` segments are arrays).
pub fn refs_at<'a>(v: &'a Value, path: &str) -> Vec<&'a str> {
    fn walk<'a>(v: &'a Value, segments: &[&str], out: &mut Vec<&'a str>) {
        let Some((first, rest)) = segments.split_first() else {
            out.extend(v["reference"].as_str());
            return;
        };
        match first.strip_suffix('*') {
            Some(name) => {
                for item in v[name].as_array().into_iter().flatten() {
                    walk(item, rest, out);
                }
            }
            None if !v[*first].is_null() => walk(&v[*first], rest, out),
            None => {}
        }
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(v, &segments, &mut out);
    out
}

pub fn key_of(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap_or_default(),
        r["id"].as_str().unwrap_or_default()
    )
}

pub const DEFAULT_MIMETYPES: [&str; 3] = ["text/plain", "text/html", "application/xhtml+xml"];

/// The lower-cased media type of a `Content-Type` value, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}

/// What inlining does to one attachment (docs/hydration.md#inlining-attachments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Not fetched: no content type, not an allowed type, or no url.
    Ignored,
    /// Has `data` already: left alone, not fetched.
    AlreadyDone,
    /// Fetched, but the Binary answered another MIME type: left alone, counted as an error.
    WrongMime,
    /// Fetched and inlined.
    Inlined,
}

/// The fate of an attachment and, when inlined, the attachment as it must be written.
pub fn inline_attachment(seed: u64, a: &Value) -> (Fate, Value) {
    let Some(declared) = a["contentType"].as_str() else {
        return (Fate::Ignored, a.clone());
    };
    let mime = media_type(declared);
    if !DEFAULT_MIMETYPES.contains(&mime.as_str()) {
        return (Fate::Ignored, a.clone());
    }
    if a.get("data").is_some() {
        return (Fate::AlreadyDone, a.clone());
    }
    let Some(url) = a["url"].as_str() else {
        return (Fate::Ignored, a.clone());
    };
    let id = url.strip_prefix("Binary/").expect("relative Binary urls");
    let binary = fake_ehr::data::binary(seed, id).expect("the Binary exists");
    let served = binary["contentType"].as_str().unwrap_or("text/plain");
    if media_type(served) != mime {
        return (Fate::WrongMime, a.clone());
    }
    let bytes = STANDARD
        .decode(binary["data"].as_str().unwrap_or_default())
        .expect("base64");
    let charset = served
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_lowercase())
        .unwrap_or_else(|| "utf-8".into());
    let mut out = a.clone();
    let map = out.as_object_mut().expect("attachment object");
    map.insert(
        "contentType".into(),
        Value::String(format!("{mime}; charset={charset}")),
    );
    map.insert("data".into(), Value::String(STANDARD.encode(&bytes)));
    map.insert("size".into(), Value::from(bytes.len() as u64));
    map.insert(
        "hash".into(),
        Value::String(STANDARD.encode(Sha1::digest(&bytes))),
    );
    (Fate::Inlined, out)
}

/// The attachments of a DocumentReference or DiagnosticReport (mutable, for rewriting).
pub fn attachments_mut(r: &mut Value) -> Vec<&mut Value> {
    match r["resourceType"].as_str() {
        Some("DocumentReference") => r["content"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get_mut("attachment"))
            .collect(),
        Some("DiagnosticReport") => r["presentedForm"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .collect(),
        _ => Vec::new(),
    }
}

pub fn attachments(r: &Value) -> Vec<&Value> {
    match r["resourceType"].as_str() {
        Some("DocumentReference") => r["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("attachment"))
            .collect(),
        Some("DiagnosticReport") => r["presentedForm"]
            .as_array()
            .into_iter()
            .flatten()
            .collect(),
        _ => Vec::new(),
    }
}

/// A workdir as docs/hydration.md says hydration leaves it, and what hydration had to request.
pub struct Sim {
    pub seed: u64,
    /// File name → resources, in write order.
    pub files: BTreeMap<String, Vec<Value>>,
    /// Every reference requested in this run (404s included): never requested twice.
    pub known: BTreeSet<String>,
    /// Read requests per `Type/id` (Binaries included).
    pub reads: BTreeMap<String, u64>,
    /// Practitioner ids searched with `PractitionerRole?practitioner=`.
    pub searched: Vec<String>,
    /// Fate of every attachment inlining examined.
    pub fates: Vec<(String, Fate)>,
    /// Every run of a reference task: its name and the references it requested, in order.
    pub runs: Vec<(String, Vec<String>)>,
}

impl Sim {
    /// A workdir holding what a crawl of patients `0..n` wrote (`<Type>.ndjson.gz`).
    pub fn exported(seed: u64, n: usize, types: &[&str], epic: bool) -> Self {
        let all: Vec<usize> = (0..n).collect();
        Self::exported_of(seed, &all, types, epic)
    }

    /// A workdir holding what a (generic) crawl of the one patient `i` wrote.
    pub fn exported_one(seed: u64, _n: usize, i: usize, types: &[&str]) -> Self {
        Self::exported_of(seed, &[i], types, false)
    }

    fn exported_of(seed: u64, indices: &[usize], types: &[&str], epic: bool) -> Self {
        let mut files = BTreeMap::new();
        for (t, lines) in expected_resources_of(seed, indices, types, epic) {
            let values: Vec<Value> = lines
                .values()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect();
            files.insert(format!("{t}.ndjson.gz"), values);
        }
        Self {
            seed,
            files,
            known: BTreeSet::new(),
            reads: BTreeMap::new(),
            searched: Vec::new(),
            fates: Vec::new(),
            runs: Vec::new(),
        }
    }

    fn of_type(&self, t: &str) -> Vec<Value> {
        self.files
            .values()
            .flatten()
            .filter(|r| r["resourceType"] == t)
            .cloned()
            .collect()
    }

    fn keys_of(&self, t: &str) -> BTreeSet<String> {
        self.of_type(t).iter().map(key_of).collect()
    }

    fn read(&mut self, key: &str) -> Option<Value> {
        *self.reads.entry(key.to_string()).or_default() += 1;
        let (ty, id) = key.split_once('/')?;
        fake_ehr::data::resource(self.seed, ty, id)
    }

    /// Runs one task on the workdir (docs/hydration.md).
    pub fn run(&mut self, task: &Task) {
        if task.is_inline() {
            self.inline(&task.input);
        } else if task.slug == "searched" {
            self.search_roles();
        } else {
            self.reference(task);
        }
    }

    fn inline(&mut self, ty: &str) {
        let names: Vec<String> = self
            .files
            .iter()
            .filter(|(_, rs)| rs.iter().any(|r| r["resourceType"] == ty))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let mut resources = self.files.remove(&name).unwrap_or_default();
            for r in resources.iter_mut() {
                if r["resourceType"] != ty {
                    continue;
                }
                for a in attachments_mut(r) {
                    let (fate, inlined) = inline_attachment(self.seed, a);
                    let url = a["url"].as_str().unwrap_or_default().to_string();
                    if matches!(fate, Fate::Inlined | Fate::WrongMime) {
                        *self.reads.entry(url.clone()).or_default() += 1;
                    }
                    self.fates.push((url, fate));
                    *a = inlined;
                }
            }
            self.files.insert(name, resources);
        }
    }

    fn reference(&mut self, task: &Task) {
        let inputs = self.of_type(&task.input);
        if inputs.is_empty() {
            return;
        }
        let mut pool = self.keys_of(&task.output);
        let file = format!("{}.{}.ndjson.gz", task.output, task.slug);
        self.runs.push((task.name.clone(), Vec::new()));
        for r in inputs {
            self.follow(&r, task, &mut pool, &file);
        }
    }

    fn follow(&mut self, r: &Value, task: &Task, pool: &mut BTreeSet<String>, file: &str) {
        let prefix = format!("{}/", task.output);
        let wanted: Vec<String> = task
            .paths
            .iter()
            .flat_map(|p| refs_at(r, p))
            .filter(|s| s.len() > prefix.len() && s.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        for reference in wanted {
            if pool.contains(&reference) || self.known.contains(&reference) {
                continue;
            }
            pool.insert(reference.clone());
            self.known.insert(reference.clone());
            if let Some((_, claimed)) = self.runs.last_mut() {
                claimed.push(reference.clone());
            }
            match self.read(&reference) {
                Some(found) if found["resourceType"] == task.output.as_str() => {
                    self.files
                        .entry(file.to_string())
                        .or_default()
                        .push(found.clone());
                    if task.input == task.output {
                        self.follow(&found, task, pool, file);
                    }
                }
                _ => {}
            }
        }
    }

    fn search_roles(&mut self) {
        let practitioners = self.of_type("Practitioner");
        if practitioners.is_empty() {
            return;
        }
        let file = "PractitionerRole.searched.ndjson.gz".to_string();
        let already: Vec<Value> = self.files.get(&file).cloned().unwrap_or_default();
        let mut private: BTreeSet<String> = already.iter().map(key_of).collect();
        let searched_for: BTreeSet<String> = already
            .iter()
            .filter_map(|r| r["practitioner"]["reference"].as_str())
            .filter_map(|r| r.strip_prefix("Practitioner/"))
            .map(str::to_string)
            .collect();
        let roles = fake_ehr::data::shared_pool(self.seed, "PractitionerRole");
        for p in practitioners {
            let id = p["id"].as_str().unwrap_or_default().to_string();
            if searched_for.contains(&id) || self.searched.contains(&id) {
                continue;
            }
            self.searched.push(id.clone());
            let wanted = format!("Practitioner/{id}");
            for role in roles
                .iter()
                .filter(|r| r["practitioner"]["reference"] == wanted.as_str())
            {
                if private.insert(key_of(role)) {
                    self.files
                        .entry(file.clone())
                        .or_default()
                        .push(role.clone());
                }
            }
        }
    }

    /// `export`'s hydration: passes until no new output type appears
    /// (docs/hydration.md#hydration-after-an-export).
    pub fn export(&mut self, selected: &[&str]) {
        let tasks = registry();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut this_pass: BTreeSet<String> = selected.iter().map(|s| s.to_string()).collect();
        while !this_pass.is_empty() {
            done.extend(this_pass.iter().cloned());
            let mut next = BTreeSet::new();
            for task in &tasks {
                if !this_pass.contains(&task.input) {
                    continue;
                }
                self.run(task);
                if !done.contains(&task.output) {
                    next.insert(task.output.clone());
                }
            }
            this_pass = next;
        }
    }

    /// The full reference closure of `export`'s hydration, whatever the task order: every task over
    /// the selected types and everything hydrated from them, swept again and again until a sweep
    /// adds nothing (the Python tool's passes stop earlier:
    /// docs/hydration.md#hydration-after-an-export).
    pub fn export_closure(&mut self, selected: &[&str]) {
        let tasks = registry();
        let mut reachable: BTreeSet<String> = selected.iter().map(|s| s.to_string()).collect();
        loop {
            let before: usize = self.files.values().map(Vec::len).sum();
            for task in &tasks {
                if reachable.contains(&task.input) && !task.is_inline() {
                    self.run(task);
                    reachable.insert(task.output.clone());
                }
            }
            let after: usize = self.files.values().map(Vec::len).sum();
            if after == before {
                break;
            }
        }
        for task in &tasks {
            if task.is_inline() && reachable.contains(&task.input) {
                self.run(task);
            }
        }
    }

    /// Resource type → its resources as sorted lines, whatever file holds them.
    pub fn lines_by_type(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.files.values().flatten() {
            let t = r["resourceType"].as_str().unwrap_or_default().to_string();
            out.entry(t)
                .or_default()
                .push(crate::support::python::ndjson_line(r));
        }
        for lines in out.values_mut() {
            lines.sort();
            lines.dedup();
        }
        out
    }

    /// `hydrate`: every task of the selected groups once, in registry order
    /// (docs/hydration.md#the-hydrate-command).
    pub fn hydrate(&mut self, groups: Option<&[&str]>) {
        for task in registry() {
            if groups.is_none_or(|g| g.contains(&task.group.as_str())) {
                self.run(&task);
            }
        }
    }

    /// File name → its lines as the tool writes them, sorted (order is completion order).
    pub fn sorted_lines(&self) -> BTreeMap<String, Vec<String>> {
        self.files
            .iter()
            .map(|(name, rs)| {
                let mut lines: Vec<String> =
                    rs.iter().map(crate::support::python::ndjson_line).collect();
                lines.sort();
                (name.clone(), lines)
            })
            .collect()
    }

    /// Reads of referenced resources (not Binaries).
    pub fn reference_reads(&self) -> BTreeMap<String, u64> {
        self.reads
            .iter()
            .filter(|(k, _)| !k.starts_with("Binary/"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub fn binary_reads(&self) -> BTreeMap<String, u64> {
        self.reads
            .iter()
            .filter(|(k, _)| k.starts_with("Binary/"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// NDJSON files directly in `dir` (not `log.ndjson`), name → lines sorted.
pub fn sorted_file_lines(dir: &Path) -> BTreeMap<String, Vec<String>> {
    ndjson_files(dir)
        .into_iter()
        .map(|p| {
            let mut lines = read_lines(&p);
            lines.sort();
            (file_name(&p), lines)
        })
        .collect()
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

pub fn ndjson_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = file_name(p);
            (n.ends_with(".ndjson") || n.ends_with(".ndjson.gz")) && n != "log.ndjson"
        })
        .collect();
    out.sort();
    out
}

/// Type → `Type/id` → the files holding it, for every resource in `dir`'s NDJSON files.
pub fn where_is(dir: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for path in ndjson_files(dir) {
        for line in read_lines(&path) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            let t = v["resourceType"].as_str().unwrap_or_default().to_string();
            out.entry(t)
                .or_default()
                .entry(key_of(&v))
                .or_default()
                .push(file_name(&path));
        }
    }
    out
}

/// Resource type → its lines across all files, sorted (what a user sees per type).
pub fn lines_by_type(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in ndjson_files(dir) {
        for line in read_lines(&path) {
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            let t = v["resourceType"].as_str().unwrap_or_default().to_string();
            out.entry(t).or_default().push(line);
        }
    }
    for lines in out.values_mut() {
        lines.sort();
    }
    out
}

/// Per file, which lines are missing from `actual` and which are unexpected (first few).
pub fn diff_files(
    actual: &BTreeMap<String, Vec<String>>,
    expected: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let names: BTreeSet<&String> = actual.keys().chain(expected.keys()).collect();
    for name in names {
        let a = actual.get(name).cloned().unwrap_or_default();
        let e = expected.get(name).cloned().unwrap_or_default();
        if a == e {
            continue;
        }
        let short = |l: &String| {
            let v: Value = serde_json::from_str(l).unwrap_or_default();
            key_of(&v)
        };
        let a_set: BTreeSet<&String> = a.iter().collect();
        let e_set: BTreeSet<&String> = e.iter().collect();
        let missing: Vec<String> = e_set.difference(&a_set).take(4).map(|l| short(l)).collect();
        let extra: Vec<String> = a_set.difference(&e_set).take(4).map(|l| short(l)).collect();
        problems.push(format!(
            "{name}: {} lines expected, {} written; missing {missing:?}; unexpected or different {extra:?}",
            e.len(),
            a.len()
        ));
    }
    problems
}

/// Asserts two request-count maps are equal, showing only the differences.
pub fn assert_same_counts(
    actual: &BTreeMap<String, u64>,
    expected: &BTreeMap<String, u64>,
    what: &str,
) {
    let keys: BTreeSet<&String> = actual.keys().chain(expected.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| actual.get(*k) != expected.get(*k))
        .map(|k| {
            format!(
                "{k}: {} requests, expected {}",
                actual.get(k).copied().unwrap_or(0),
                expected.get(k).copied().unwrap_or(0)
            )
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} differences (of {} expected):\n{}",
        diffs.len(),
        expected.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One `_id` list search a fake EHR received (not a Patient lookup): the type, the ids
/// asked for, and the patient named, if any.
#[derive(Clone, Debug)]
pub struct ListSearch {
    pub ty: String,
    pub ids: Vec<String>,
    pub patient: Option<String>,
}

/// The `_id` searches of other types than Patient among `searches` (decoded).
pub fn list_searches_in(searches: &[String]) -> Vec<ListSearch> {
    searches
        .iter()
        .filter_map(|s| {
            let (ty, query) = s.split_once('?')?;
            if ty == "Patient" {
                return None;
            }
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|p| p.strip_prefix(&format!("{name}=")))
                    .map(str::to_string)
            };
            let ids = param("_id")?;
            Some(ListSearch {
                ty: ty.to_string(),
                ids: ids.split(',').map(str::to_string).collect(),
                patient: param("patient"),
            })
        })
        .collect()
}

/// Every `_id` list search a fake EHR received.
pub fn list_searches(stats: &fake_ehr::Stats) -> Vec<ListSearch> {
    list_searches_in(&crate::support::decoded_searches(stats))
}

/// Per `Type/id`, how often a run between two snapshots fetched it: read on its own or
/// named in an `_id` list. A reference a list named but did not bring back is then read on
/// its own; that pair counts once (one fetch of it, by the only means that works).
pub fn fetches_between(before: &fake_ehr::Stats, after: &fake_ehr::Stats) -> BTreeMap<String, u64> {
    let searches = crate::support::decoded_searches(after);
    let new = searches.get(before.search_urls.len()..).unwrap_or_default();
    let mut listed: BTreeMap<String, u64> = BTreeMap::new();
    for list in list_searches_in(new) {
        for id in list.ids {
            *listed.entry(format!("{}/{id}", list.ty)).or_default() += 1;
        }
    }
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (key, n) in &after.reads_by_path {
        let read = n - before.reads_by_path.get(key).copied().unwrap_or(0);
        if read > 0 {
            out.insert(key.clone(), read);
        }
    }
    for (key, n) in listed {
        let read = out.get(&key).copied().unwrap_or(0);
        out.insert(key, n + read - u64::from(read > 0));
    }
    out
}

/// `fetches_between` since the server started.
pub fn fetches(stats: &fake_ehr::Stats) -> BTreeMap<String, u64> {
    fetches_between(&fake_ehr::Stats::default(), stats)
}
