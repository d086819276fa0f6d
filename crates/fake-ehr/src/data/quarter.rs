//! Quarter 2 of the synthetic data: what a quarterly refresh finds changed on the same
//! seed. Quarter 1 is the data as generated; quarter 2 replays, deterministically from
//! `(seed, patient index)` and the quarter-1 patient count `N`:
//!
//! * **patients** (by index `i < N`, rule `i % 10`): `3` is deleted with everything it had;
//!   `7` is merged into `i - 1` (its record is gone, its MRN finds the survivor, and its
//!   resources, ids unchanged, now point at the survivor); `6` is that survivor when
//!   `i + 1 < N` (its Patient gains `link: [{other: Patient/<i+1>, type: replaces}]` and the
//!   absorbed MRN as an `old` identifier); the others are kept. Patients `N ..
//!   N + ceil(N / 10)` are new: their MRNs and records exist only in quarter 2, with their
//!   whole (old) history.
//! * **resources** of kept patients and survivors (their own searchable resources, Patient
//!   excluded): about 6 % are deleted, 5 % get a new id (`<old id>-q2`, same content, a
//!   quarter-2 `meta.lastUpdated`: "ID churn"), 12 % are modified (a quarter-2
//!   `meta.lastUpdated`); each such patient also gains one or two back-filled resources
//!   (copies of one of its resources with a new id `<prefix>-<patient>-bf<n>`, the old
//!   created dates, and a quarter-2 `meta.lastUpdated`). About 30 % of kept Patients are
//!   modified too, and every survivor is.
//!
//! * **hidden** (read-only) resources of kept patients and survivors (their own): about
//!   12 % of the hidden Observations, Specimens and EpisodesOfCare are deleted (a read
//!   answers 404; what referenced them still does), and a DiagnosticReport drops about 25 %
//!   of its `result` references to hidden Observations that still exist ("orphans": still
//!   readable, but nothing the patient has leads to them any more; the report gets a
//!   quarter-2 `meta.lastUpdated` unless it already has one). They come from a stream of
//!   their own, so the changes above are the same as before hidden ones changed. An
//!   absorbed patient's hidden resources move to the survivor unchanged (patient references
//!   rewritten).
//!
//! Quarter-2 timestamps lie in [`QUARTER2_START`, `QUARTER2_END`], after everything
//! quarter 1 holds, so `_lastUpdated=gt<quarter-1 done time>` finds exactly the changes.
//! Patient `i`'s data never depends on `N`, except that survivor `i` only absorbs `i + 1`
//! when that patient exists. [`removed_in_quarter2`] lists the searchable resources gone;
//! [`unreachable_in_quarter2`] everything, hidden resources included, that a client
//! following references can no longer reach.

use super::binary::binary_from;
use super::rng::Rng;
use super::time::{self, Spelling};
use super::{
    Generated, MRN_SYSTEM, SHARED_POOLS, generate, mrn, patient, patient_id, patient_index_from_id,
    patient_index_from_mrn, shared_resource,
};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

/// The quarter the data starts in.
pub const FIRST_QUARTER: u8 = 1;
/// The last quarter the data knows; later quarters look like it.
pub const LAST_QUARTER: u8 = 2;

/// 2026-01-02T00:00:00Z: no quarter-2 change is earlier (quarter 1 ends 2025-12-30).
pub const QUARTER2_START: i64 = 1_767_312_000;
/// 2026-03-30T00:00:00Z: no quarter-2 change is later.
pub const QUARTER2_END: i64 = 1_774_828_800;

/// Stream of the resource changes of one patient.
const DOMAIN: u64 = 0x5155_4152_5445_5232;
/// Stream of the change of a Patient resource itself (so the Patient alone is cheap).
const PATIENT_DOMAIN: u64 = 0x5155_5041_5449_454E;
/// Stream of the changes to a patient's hidden resources and the references to them (its
/// own stream, so adding these changes left every other quarter-2 change as it was).
const HIDDEN_DOMAIN: u64 = 0x5155_4849_4444_454E;

const DELETE: f64 = 0.06;
const CHURN: f64 = 0.05;
const MODIFY: f64 = 0.12;
const PATIENT_MODIFY: f64 = 0.3;
/// Per hidden resource of a kept patient or survivor.
const HIDDEN_DELETE: f64 = 0.12;
/// Per `result` reference of a DiagnosticReport to a hidden Observation that still exists.
const ORPHAN: f64 = 0.25;

/// What happens to a patient between quarter 1 and quarter 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Still there; some of its resources change.
    Kept,
    /// Gone in quarter 2, with all its resources.
    Deleted,
    /// Merged into this surviving patient: the record is gone, the MRN finds the survivor,
    /// and the resources belong to the survivor.
    MergedInto(usize),
    /// Survivor of a merge that absorbs this patient.
    Absorbs(usize),
    /// Exists only in quarter 2.
    New,
}

/// Patient `i`'s changes from quarter 1 to quarter 2. References are `Type/id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    pub fate: Fate,
    /// Searchable resources of quarter 1 that exist nowhere in quarter 2: the deleted
    /// ones, and for a deleted patient all of them (Patient included); for a merged-away
    /// patient only its Patient (the rest moves to the survivor, see `absorbed`).
    pub deleted: Vec<String>,
    /// ID churn: `(old, new)`; the old reference is gone, the new one has the same content
    /// and a quarter-2 `meta.lastUpdated`.
    pub churned: Vec<(String, String)>,
    /// Same id, quarter-2 `meta.lastUpdated` (a survivor's Patient is always here).
    pub modified: Vec<String>,
    /// New resources with old created dates and a quarter-2 `meta.lastUpdated`.
    pub backfilled: Vec<String>,
    /// A survivor's resources that came from the absorbed patient: ids and
    /// `meta.lastUpdated` unchanged, patient references rewritten to the survivor.
    pub absorbed: Vec<String>,
    /// Hidden resources of the patient's own that are deleted: a read answers 404, and the
    /// references to them are left dangling. (A deleted patient's hidden resources are gone
    /// too, but are not listed here: see `deleted` and [`unreachable_in_quarter2`].)
    pub hidden_deleted: Vec<String>,
    /// `(report, observation)`: a DiagnosticReport of quarter 2 (by its quarter-2 id) no
    /// longer lists this hidden Observation in `result`. The Observation is still readable;
    /// whether anything else still leads to it is for [`unreachable_in_quarter2`] to say.
    pub orphaned: Vec<(String, String)>,
}

impl Changes {
    fn new(fate: Fate) -> Self {
        Self {
            fate,
            deleted: Vec::new(),
            churned: Vec::new(),
            modified: Vec::new(),
            backfilled: Vec::new(),
            absorbed: Vec::new(),
            hidden_deleted: Vec::new(),
            orphaned: Vec::new(),
        }
    }
}

/// Quarters are 1 and 2; anything later is quarter 2, anything earlier quarter 1.
fn normalise(quarter: u8) -> u8 {
    quarter.clamp(FIRST_QUARTER, LAST_QUARTER)
}

/// How many patients are new in quarter 2 on a server with `patients` in quarter 1.
pub fn new_patient_count(patients: usize) -> usize {
    patients.div_ceil(10)
}

/// The patient index range `0..n` of `quarter` (some indices may be gone in quarter 2).
pub fn patients_in_quarter(patients: usize, quarter: u8) -> usize {
    if normalise(quarter) == 1 {
        patients
    } else {
        patients + new_patient_count(patients)
    }
}

/// The fate of patient `i` on a server with `patients` in quarter 1; `None` when the
/// index exists in neither quarter.
pub fn fate(patients: usize, i: usize) -> Option<Fate> {
    if i >= patients_in_quarter(patients, 2) {
        return None;
    }
    if i >= patients {
        return Some(Fate::New);
    }
    Some(match i % 10 {
        3 => Fate::Deleted,
        6 if i + 1 < patients => Fate::Absorbs(i + 1),
        7 => Fate::MergedInto(i - 1),
        _ => Fate::Kept,
    })
}

/// Whether patient `i` (its Patient record) exists in `quarter`.
pub fn exists_in_quarter(patients: usize, i: usize, quarter: u8) -> bool {
    if normalise(quarter) == 1 {
        return i < patients;
    }
    matches!(
        fate(patients, i),
        Some(Fate::Kept | Fate::Absorbs(_) | Fate::New)
    )
}

/// The patient whose data holds what was patient `i`'s in `quarter`: `i` itself, the
/// survivor of a merge, or `None` when it is gone (or not there yet).
pub fn owner_in_quarter(patients: usize, i: usize, quarter: u8) -> Option<usize> {
    if normalise(quarter) == 1 {
        return (i < patients).then_some(i);
    }
    match fate(patients, i)? {
        Fate::Deleted => None,
        Fate::MergedInto(survivor) => Some(survivor),
        Fate::Kept | Fate::Absorbs(_) | Fate::New => Some(i),
    }
}

/// The patient an MRN finds in `quarter` (a merged-away MRN finds the survivor, as Epic
/// does).
pub fn patient_index_by_mrn_in_quarter(patients: usize, mrn: &str, quarter: u8) -> Option<usize> {
    let i = patient_index_from_mrn(mrn)?;
    let owner = owner_in_quarter(patients, i, quarter)?;
    exists_in_quarter(patients, owner, quarter).then_some(owner)
}

/// Patient `i`'s changes between quarter 1 and 2, `None` past the quarter-2 count.
pub fn quarter_changes(seed: u64, patients: usize, i: usize) -> Option<Changes> {
    Some(quarter2(seed, patients, i)?.1)
}

/// What patient `i` holds in `quarter` (searchable, Patient first, then canonical type
/// order; and hidden), or `None` when nothing searches under it there.
pub fn generate_in_quarter(seed: u64, patients: usize, i: usize, quarter: u8) -> Option<Generated> {
    if normalise(quarter) == 1 {
        return (i < patients).then(|| generate(seed, i));
    }
    quarter2(seed, patients, i)?.0
}

/// The searchable resources of patient `i` in `quarter` (Patient first; empty when the
/// patient does not exist there).
pub fn patient_resources_in_quarter(
    seed: u64,
    patients: usize,
    i: usize,
    quarter: u8,
) -> Vec<Value> {
    generate_in_quarter(seed, patients, i, quarter)
        .map(|g| g.resources)
        .unwrap_or_default()
}

/// Just the Patient resource of patient `i` in `quarter` (cheap).
pub fn patient_resource_in_quarter(
    seed: u64,
    patients: usize,
    i: usize,
    quarter: u8,
) -> Option<Value> {
    if normalise(quarter) == 1 {
        return (i < patients).then(|| patient::generate_patient_only(seed, i));
    }
    let only = || patient::generate_patient_only(seed, i);
    match fate(patients, i)? {
        Fate::Kept => Some(change_patient(seed, i, None, only()).0),
        Fate::Absorbs(b) => Some(change_patient(seed, i, Some(b), only()).0),
        Fate::New => Some(only()),
        Fate::Deleted | Fate::MergedInto(_) => None,
    }
}

/// What a read of `ty/id` answers in `quarter` on a server with `patients` in quarter 1.
pub fn resource_in_quarter(
    seed: u64,
    patients: usize,
    ty: &str,
    id: &str,
    quarter: u8,
) -> Option<Value> {
    if SHARED_POOLS.iter().any(|(t, _, _)| *t == ty) {
        return shared_resource(seed, ty, id);
    }
    let owner = owner_in_quarter(patients, patient_index_from_id(id)?, quarter)?;
    let generated = generate_in_quarter(seed, patients, owner, quarter)?;
    if ty == "Binary" {
        return binary_from(seed, id, &generated.resources);
    }
    generated
        .resources
        .into_iter()
        .chain(generated.hidden)
        .find(|r| r["resourceType"] == ty && r["id"] == id)
}

/// Every searchable resource (`Type/id`) of quarter 1 that no quarter-2 read finds: the
/// deleted ones, the old ids of churned ones, and the records of deleted and merged-away
/// patients, with the resources of deleted patients.
pub fn removed_in_quarter2(seed: u64, patients: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for i in 0..patients {
        if let Some(c) = quarter_changes(seed, patients, i) {
            out.extend(c.deleted);
            out.extend(c.churned.into_iter().map(|(old, _)| old));
        }
    }
    out
}

/// Every patient-linked resource (`Type/id`; searchable and hidden, Patient included) that
/// a client could reach in quarter 1 and can no longer reach in quarter 2, reaching being
/// what [`reachable_in_quarter`] says with the same `reference_only` types. That is the
/// searchable resources gone ([`removed_in_quarter2`]), everything of deleted patients,
/// deleted hidden resources, hidden Observations orphaned by their report (with the members
/// only they led to), and on a server that cannot search `reference_only` types, such
/// resources nothing references any more. Shared resources (practitioners, organizations,
/// ...) never change, so they are never listed.
pub fn unreachable_in_quarter2(
    seed: u64,
    patients: usize,
    reference_only: &[&str],
) -> BTreeSet<String> {
    let before = reachable_in_quarter(seed, patients, 1, reference_only);
    let after = reachable_in_quarter(seed, patients, 2, reference_only);
    before.difference(&after).cloned().collect()
}

/// The patient-linked resources (`Type/id`) of `quarter` that a client holds when it
/// searches every patient's resources of every type except `reference_only` (Epic cannot
/// search EpisodeOfCare and Specimen by patient), then reads every relative reference it
/// finds in what it holds, again and again, until nothing new is found. Hidden resources
/// are reached only this way; a reference that answers 404 reaches nothing.
pub fn reachable_in_quarter(
    seed: u64,
    patients: usize,
    quarter: u8,
    reference_only: &[&str],
) -> BTreeSet<String> {
    // Everything a read can find, by `Type/id` (ids are unique across patients, and an
    // absorbed patient's resources are in the survivor's data).
    let mut readable: HashMap<String, Value> = HashMap::new();
    let mut queue: Vec<String> = Vec::new();
    for i in 0..patients_in_quarter(patients, quarter) {
        let Some(generated) = generate_in_quarter(seed, patients, i, quarter) else {
            continue;
        };
        for r in generated.resources {
            let k = key(&r);
            let ty = r["resourceType"].as_str().unwrap_or_default();
            if !reference_only.contains(&ty) {
                queue.push(k.clone());
            }
            readable.insert(k, r);
        }
        for r in generated.hidden {
            readable.insert(key(&r), r);
        }
    }
    let mut reached: BTreeSet<String> = BTreeSet::new();
    while let Some(k) = queue.pop() {
        if !reached.insert(k.clone()) {
            continue;
        }
        let Some(resource) = readable.get(&k) else {
            continue;
        };
        let mut found = Vec::new();
        references_in(resource, &mut found);
        queue.extend(
            found
                .into_iter()
                .filter(|r| readable.contains_key(*r) && !reached.contains(*r))
                .map(str::to_string),
        );
    }
    reached
}

/// Every `reference` string anywhere in `value`.
fn references_in<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("reference", Value::String(s)) => out.push(s),
                    _ => references_in(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references_in(v, out)),
        _ => {}
    }
}

fn key(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    )
}

fn set_field(resource: &mut Value, key: &str, value: Value) {
    if let Some(map) = resource.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

fn set_last_updated(resource: &mut Value, when: &str) {
    match resource.get_mut("meta").and_then(Value::as_object_mut) {
        Some(meta) => {
            meta.insert("lastUpdated".into(), json!(when));
        }
        None => set_field(resource, "meta", json!({ "lastUpdated": when })),
    }
}

/// A quarter-2 moment and its spelling (always both drawn, so the stream stays aligned).
fn quarter2_instant(rng: &mut Rng) -> String {
    let when = rng.range_i64(QUARTER2_START, QUARTER2_END);
    let spelling = Spelling::random(rng);
    time::format_instant(when, spelling)
}

/// Patient `i`'s record in quarter 2 (kept or survivor) and whether it changed.
fn change_patient(seed: u64, i: usize, absorbs: Option<usize>, mut p: Value) -> (Value, bool) {
    let mut rng = Rng::new(seed, PATIENT_DOMAIN, i as u64);
    let modified = rng.chance(PATIENT_MODIFY) || absorbs.is_some();
    let when = quarter2_instant(&mut rng);
    if !modified {
        return (p, false);
    }
    set_last_updated(&mut p, &when);
    if let Some(b) = absorbs {
        if let Some(ids) = p.get_mut("identifier").and_then(Value::as_array_mut) {
            ids.push(json!({
                "use": "old",
                "type": {
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "MR",
                        "display": "Medical Record Number"
                    }],
                    "text": "MRN"
                },
                "system": MRN_SYSTEM,
                "value": mrn(b)
            }));
        }
        set_field(
            &mut p,
            "link",
            json!([{
                "other": { "reference": format!("Patient/{}", patient_id(b)) },
                "type": "replaces"
            }]),
        );
    }
    (p, true)
}

/// Quarter 2 of a kept patient's or survivor's own hidden resources: some deleted, some
/// hidden Observations dropped from their report's `result` (the report, from `out`, then
/// has a quarter-2 `meta.lastUpdated`). Back-filled copies keep what they copied.
fn change_hidden(
    seed: u64,
    i: usize,
    hidden: Vec<Value>,
    out: &mut [Value],
    changes: &mut Changes,
) -> Vec<Value> {
    let mut rng = Rng::new(seed, HIDDEN_DOMAIN, i as u64);
    let mut kept = Vec::with_capacity(hidden.len());
    for r in hidden {
        if rng.chance(HIDDEN_DELETE) {
            changes.hidden_deleted.push(key(&r));
        } else {
            kept.push(r);
        }
    }
    let existing: BTreeSet<String> = kept.iter().map(key).collect();
    for report in out.iter_mut() {
        let id = report["id"].as_str().unwrap_or_default().to_string();
        if report["resourceType"] != "DiagnosticReport" || id.contains("-bf") {
            continue;
        }
        let Some(results) = report.get_mut("result").and_then(Value::as_array_mut) else {
            continue;
        };
        let mut dropped = Vec::new();
        results.retain(|r| {
            let target = r["reference"].as_str().unwrap_or_default();
            let hidden_target =
                target.starts_with("Observation/hobs-") && existing.contains(target);
            if hidden_target && rng.chance(ORPHAN) {
                dropped.push(target.to_string());
                return false;
            }
            true
        });
        if dropped.is_empty() {
            continue;
        }
        let report_key = key(report);
        let already = changes.modified.contains(&report_key)
            || changes.churned.iter().any(|(_, new)| *new == report_key);
        let when = quarter2_instant(&mut rng);
        if !already {
            set_last_updated(report, &when);
            changes.modified.push(report_key.clone());
        }
        changes
            .orphaned
            .extend(dropped.into_iter().map(|o| (report_key.clone(), o)));
    }
    kept
}

/// Replaces every string equal to `from` (a patient reference) with `to`.
fn repoint(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s == from => *s = to.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|v| repoint(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| repoint(v, from, to)),
        _ => {}
    }
}

fn type_rank(resource: &Value) -> usize {
    let ty = resource["resourceType"].as_str().unwrap_or_default();
    crate::catalog::TYPES
        .iter()
        .position(|t| t.name == ty)
        .unwrap_or(usize::MAX)
}

/// Quarter-2 data and changes of patient `i`; `None` past the quarter-2 count.
fn quarter2(seed: u64, patients: usize, i: usize) -> Option<(Option<Generated>, Changes)> {
    let fate = fate(patients, i)?;
    let mut changes = Changes::new(fate);
    let absorbs = match fate {
        Fate::New => return Some((Some(generate(seed, i)), changes)),
        Fate::Deleted => {
            changes.deleted = generate(seed, i).resources.iter().map(key).collect();
            return Some((None, changes));
        }
        Fate::MergedInto(_) => {
            changes.deleted.push(format!("Patient/{}", patient_id(i)));
            return Some((None, changes));
        }
        Fate::Kept => None,
        Fate::Absorbs(b) => Some(b),
    };

    let Generated { resources, hidden } = generate(seed, i);
    let mut own = resources.into_iter();
    let mut out = Vec::new();
    if let Some(p) = own.next() {
        let (p, modified) = change_patient(seed, i, absorbs, p);
        if modified {
            changes.modified.push(key(&p));
        }
        out.push(p);
    }
    let mut rng = Rng::new(seed, DOMAIN, i as u64);
    for mut r in own {
        let u = rng.unit();
        let when = quarter2_instant(&mut rng);
        if u < DELETE {
            changes.deleted.push(key(&r));
            continue;
        }
        if u < DELETE + CHURN {
            let old = key(&r);
            let new_id = format!("{}-q2", r["id"].as_str().unwrap_or_default());
            set_field(&mut r, "id", json!(new_id));
            set_last_updated(&mut r, &when);
            changes.churned.push((old, key(&r)));
        } else if u < DELETE + CHURN + MODIFY {
            set_last_updated(&mut r, &when);
            changes.modified.push(key(&r));
        }
        out.push(r);
    }
    let backfills = rng.range(1, 2);
    for n in 1..=backfills {
        let k = 1 + rng.below(out.len().saturating_sub(1) as u64) as usize;
        let when = quarter2_instant(&mut rng);
        let Some(source) = out.get(k) else {
            continue;
        };
        let mut copy = source.clone();
        let source_id = copy["id"].as_str().unwrap_or_default().to_string();
        let prefix = source_id.split('-').next().unwrap_or("res");
        set_field(&mut copy, "id", json!(format!("{prefix}-{i:06}-bf{n}")));
        set_last_updated(&mut copy, &when);
        changes.backfilled.push(key(&copy));
        out.push(copy);
    }

    let mut hidden = change_hidden(seed, i, hidden, &mut out, &mut changes);
    if let Some(b) = absorbs {
        let from = format!("Patient/{}", patient_id(b));
        let to = format!("Patient/{}", patient_id(i));
        let other = generate(seed, b);
        for mut r in other.resources.into_iter().skip(1) {
            repoint(&mut r, &from, &to);
            changes.absorbed.push(key(&r));
            out.push(r);
        }
        for mut r in other.hidden {
            repoint(&mut r, &from, &to);
            hidden.push(r);
        }
    }
    // Patient first, then types in canonical order (a stable sort keeps each type's order).
    out.sort_by_key(type_rank);
    Some((
        Some(Generated {
            resources: out,
            hidden,
        }),
        changes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::collections::{BTreeMap, HashSet};

    #[test]
    fn quarter_bounds_are_the_dates_they_say() {
        let start = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).single();
        let end = Utc.with_ymd_and_hms(2026, 3, 30, 0, 0, 0).single();
        assert_eq!(start.map(|d| d.timestamp()), Some(QUARTER2_START));
        assert_eq!(end.map(|d| d.timestamp()), Some(QUARTER2_END));
        const { assert!(QUARTER2_START > time::LATEST) };
    }

    #[test]
    fn fates_follow_the_rule() {
        assert_eq!(fate(20, 3), Some(Fate::Deleted));
        assert_eq!(fate(20, 6), Some(Fate::Absorbs(7)));
        assert_eq!(fate(20, 7), Some(Fate::MergedInto(6)));
        assert_eq!(fate(17, 16), Some(Fate::Kept));
        assert_eq!(fate(20, 20), Some(Fate::New));
        assert_eq!(fate(20, 21), Some(Fate::New));
        assert_eq!(fate(20, 22), None);
        assert_eq!(patient_index_by_mrn_in_quarter(20, &mrn(7), 2), Some(6));
        assert_eq!(patient_index_by_mrn_in_quarter(20, &mrn(7), 1), Some(7));
        assert_eq!(patient_index_by_mrn_in_quarter(20, &mrn(3), 2), None);
        assert_eq!(patient_index_by_mrn_in_quarter(20, &mrn(21), 1), None);
        assert_eq!(patient_index_by_mrn_in_quarter(20, &mrn(21), 2), Some(21));
    }

    #[test]
    fn quarter_one_is_the_generated_data() {
        for i in 0..12 {
            assert_eq!(
                patient_resources_in_quarter(1, 12, i, 1),
                super::super::patient_resources(1, i)
            );
        }
        assert!(patient_resources_in_quarter(1, 12, 12, 1).is_empty());
    }

    #[test]
    fn changes_match_the_quarter_two_data() {
        let (seed, n) = (1, 40);
        let mut per_type: BTreeMap<String, [usize; 4]> = BTreeMap::new();
        for i in 0..patients_in_quarter(n, 2) {
            let q1: HashSet<String> = generate_in_quarter(seed, n, i, 1)
                .map(|g| g.resources.iter().map(key).collect())
                .unwrap_or_default();
            let q2 = patient_resources_in_quarter(seed, n, i, 2);
            let q2_keys: HashSet<String> = q2.iter().map(key).collect();
            assert_eq!(q2_keys.len(), q2.len(), "patient {i}: duplicate ids");
            let c = quarter_changes(seed, n, i).expect("changes");
            for d in &c.deleted {
                assert!(q1.contains(d) && !q2_keys.contains(d), "{d}");
                let (ty, id) = d.split_once('/').expect("reference");
                assert!(resource_in_quarter(seed, n, ty, id, 2).is_none(), "{d}");
                per_type.entry(ty.into()).or_default()[0] += 1;
            }
            for (old, new) in &c.churned {
                assert!(q1.contains(old) && !q2_keys.contains(old));
                assert!(q2_keys.contains(new) && !q1.contains(new));
                per_type
                    .entry(old.split('/').next().unwrap_or_default().into())
                    .or_default()[1] += 1;
            }
            for m in c.modified.iter().chain(&c.backfilled) {
                let r = q2.iter().find(|r| key(r) == *m).expect("in quarter 2");
                let updated = r["meta"]["lastUpdated"].as_str().unwrap_or_default();
                let millis = crate::instant::parse_millis(updated).unwrap_or_default();
                assert!((QUARTER2_START * 1000..=QUARTER2_END * 1000).contains(&millis));
            }
            for m in &c.modified {
                per_type
                    .entry(m.split('/').next().unwrap_or_default().into())
                    .or_default()[2] += 1;
            }
            if !q2.is_empty() {
                assert_eq!(
                    patient_resource_in_quarter(seed, n, i, 2).as_ref(),
                    q2.first()
                );
                let subject = format!("Patient/{}", patient_id(i));
                for r in &q2[1..] {
                    let s = r["subject"]["reference"].as_str();
                    let s = s.or_else(|| r["patient"]["reference"].as_str());
                    assert_eq!(s, Some(subject.as_str()), "{}", key(r));
                }
            }
            if let Fate::Absorbs(b) = c.fate {
                assert_eq!(
                    q2[0]["link"][0]["other"]["reference"],
                    format!("Patient/{}", patient_id(b))
                );
                assert!(!c.absorbed.is_empty());
                for a in &c.absorbed {
                    assert!(q2_keys.contains(a));
                }
            }
        }
        // Every common type has deletions, churn and modifications somewhere.
        for ty in [
            "Encounter",
            "Condition",
            "Observation",
            "DocumentReference",
            "Procedure",
        ] {
            let counts = per_type.get(ty).copied().unwrap_or_default();
            assert!(
                counts[0] > 0 && counts[1] > 0 && counts[2] > 0,
                "{ty}: {counts:?}"
            );
        }
    }

    #[test]
    fn hidden_changes_match_the_quarter_two_data() {
        let (seed, n) = (1, 40);
        let (mut deleted, mut orphaned) = (BTreeMap::<String, usize>::new(), 0);
        for i in 0..patients_in_quarter(n, 2) {
            let c = quarter_changes(seed, n, i).expect("changes");
            let q1_hidden: HashSet<String> = generate_in_quarter(seed, n, i, 1)
                .map(|g| g.hidden.iter().map(key).collect())
                .unwrap_or_default();
            for d in &c.hidden_deleted {
                assert!(q1_hidden.contains(d), "{d} is one of the patient's own");
                let (ty, id) = d.split_once('/').expect("reference");
                assert!(resource_in_quarter(seed, n, ty, id, 1).is_some(), "{d}");
                assert!(resource_in_quarter(seed, n, ty, id, 2).is_none(), "{d}");
                *deleted.entry(ty.to_string()).or_default() += 1;
            }
            let q2 = patient_resources_in_quarter(seed, n, i, 2);
            for (report, obs) in &c.orphaned {
                let (ty, id) = obs.split_once('/').expect("reference");
                assert!(resource_in_quarter(seed, n, ty, id, 2).is_some(), "{obs}");
                let r = q2.iter().find(|r| key(r) == *report).expect("report");
                let results: Vec<&str> = r["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["reference"].as_str())
                    .collect();
                assert!(
                    !results.contains(&obs.as_str()),
                    "{report} still lists {obs}"
                );
                assert!(
                    c.modified.contains(report) || c.churned.iter().any(|(_, new)| new == report),
                    "{report} has a quarter-2 lastUpdated"
                );
                orphaned += 1;
            }
        }
        for ty in ["Observation", "Specimen", "EpisodeOfCare"] {
            assert!(deleted.get(ty).is_some_and(|n| *n > 0), "{ty}: {deleted:?}");
        }
        assert!(orphaned > 0);
    }

    #[test]
    fn unreachable_resources_are_the_ground_truth() {
        let (seed, n) = (1, 20);
        let shared: HashSet<&str> = SHARED_POOLS.iter().map(|(t, _, _)| *t).collect();
        for reference_only in [&[][..], &["EpisodeOfCare", "Specimen"][..]] {
            let gone = unreachable_in_quarter2(seed, n, reference_only);
            let q1 = reachable_in_quarter(seed, n, 1, reference_only);
            let q2 = reachable_in_quarter(seed, n, 2, reference_only);
            // Every searchable resource gone is unreachable (on Epic, those it reached).
            for r in removed_in_quarter2(seed, n) {
                assert!(gone.contains(&r) || !q1.contains(&r), "{r}");
            }
            for g in &gone {
                assert!(q1.contains(g) && !q2.contains(g), "{g}");
                let ty = g.split('/').next().unwrap_or_default();
                assert!(!shared.contains(ty), "{g}");
            }
            let mut orphans_alive = 0;
            for i in 0..n {
                let c = quarter_changes(seed, n, i).expect("changes");
                for d in &c.hidden_deleted {
                    assert!(gone.contains(d), "{d}");
                }
                for (_, obs) in &c.orphaned {
                    let (ty, id) = obs.split_once('/').expect("reference");
                    if gone.contains(obs) && resource_in_quarter(seed, n, ty, id, 2).is_some() {
                        orphans_alive += 1;
                    }
                }
            }
            // The set difference, not a 404, is the only way to see these.
            assert!(orphans_alive > 0, "{reference_only:?}");
            for ty in ["Observation", "Specimen", "EpisodeOfCare"] {
                let hidden = gone
                    .iter()
                    .filter(|g| g.starts_with(&format!("{ty}/h")))
                    .count();
                assert!(hidden > 0, "{ty} {reference_only:?}");
            }
        }
    }

    #[test]
    fn patients_do_not_depend_on_the_count() {
        for i in [0, 1, 5, 8, 9] {
            assert_eq!(
                patient_resources_in_quarter(4, 10, i, 2),
                patient_resources_in_quarter(4, 1000, i, 2)
            );
        }
    }
}
