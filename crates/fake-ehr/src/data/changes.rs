//! Quarter 2's change list, resource by resource: what a full export of quarter 2 holds that
//! a full export of quarter 1 did not hold in the same form, sorted into the kinds of change
//! a hospital sees between two quarterly exports. It is the ground truth a quarter's *delta*
//! (the new and changed resources only, for the ETL) is checked against, and it is served
//! as `GET /__admin/changes` so scripts and benchmarks need no Rust to read it.
//!
//! Built from [`super::quarter_changes`] (the bookkeeping of the generator itself) and
//! checked in the tests below against a plain comparison of the two quarters' resources.

use super::{Fate, generate, generate_in_quarter, patient_id, patients_in_quarter};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The changes between quarter 1 and quarter 2 of one server (`Type/id` references).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeList {
    /// Ids of the patients that exist only in quarter 2.
    pub new_patients: Vec<String>,
    /// Searchable resources of the new patients, their Patient included.
    pub new: Vec<String>,
    /// New resources of existing patients with old created dates (back-filled).
    pub backfilled: Vec<String>,
    /// Same id, new content (a quarter-2 `meta.lastUpdated`; survivors' Patients; reports
    /// that dropped results).
    pub modified: Vec<String>,
    /// `(old, new)`: the same resource under a new id (ID churn); the new one is new.
    pub reidentified: Vec<(String, String)>,
    /// Searchable resources of a merged-away patient, same id, now pointing at the survivor.
    pub moved: Vec<String>,
    /// Searchable resources of quarter 1 that quarter 2 no longer has (the old ids of
    /// re-identified ones included).
    pub deleted: Vec<String>,
    /// Read-only (hydrated) resources of a merged-away patient that now point at the
    /// survivor: changed wherever an export holds them.
    pub hidden_moved: Vec<String>,
    /// Read-only resources of kept patients that quarter 2 deleted.
    pub hidden_deleted: Vec<String>,
}

impl ChangeList {
    /// Every searchable resource a delta of two full exports must hold: new, back-filled,
    /// modified, moved, and the new ids of re-identified ones.
    pub fn changed(&self) -> BTreeSet<String> {
        self.new
            .iter()
            .chain(&self.backfilled)
            .chain(&self.modified)
            .chain(&self.moved)
            .chain(self.reidentified.iter().map(|(_, new)| new))
            .cloned()
            .collect()
    }

    /// [`Self::changed`] by type: type → ids.
    pub fn changed_by_type(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for reference in self.changed() {
            if let Some((ty, id)) = reference.split_once('/') {
                out.entry(ty.to_string())
                    .or_default()
                    .insert(id.to_string());
            }
        }
        out
    }

    /// The JSON of `GET /__admin/changes`.
    pub fn to_json(&self) -> Value {
        json!({
            "from": 1,
            "to": 2,
            "newPatients": self.new_patients,
            "new": self.new,
            "backfilled": self.backfilled,
            "modified": self.modified,
            "reidentified": self.reidentified.iter()
                .map(|(old, new)| json!({"from": old, "to": new}))
                .collect::<Vec<_>>(),
            "moved": self.moved,
            "deleted": self.deleted,
            "hiddenMoved": self.hidden_moved,
            "hiddenDeleted": self.hidden_deleted,
            "changedCount": self.changed().len(),
        })
    }
}

fn key(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    )
}

/// The change list of a server with `patients` in quarter 1 (every list sorted).
pub fn quarter2_change_list(seed: u64, patients: usize) -> ChangeList {
    let mut list = ChangeList::default();
    for i in 0..patients_in_quarter(patients, 2) {
        let Some(c) = super::quarter_changes(seed, patients, i) else {
            continue;
        };
        match c.fate {
            Fate::New => {
                list.new_patients.push(patient_id(i));
                list.new.extend(generate(seed, i).resources.iter().map(key));
            }
            Fate::Absorbs(b) => {
                // The absorbed patient's read-only resources, compared as they are served.
                let before: BTreeMap<String, Value> = generate(seed, b)
                    .hidden
                    .into_iter()
                    .map(|r| (key(&r), r))
                    .collect();
                let after = generate_in_quarter(seed, patients, i, 2)
                    .map(|g| g.hidden)
                    .unwrap_or_default();
                for r in after {
                    let k = key(&r);
                    if before.get(&k).is_some_and(|old| *old != r) {
                        list.hidden_moved.push(k);
                    }
                }
            }
            Fate::Kept | Fate::Deleted | Fate::MergedInto(_) => {}
        }
        list.backfilled.extend(c.backfilled);
        list.modified.extend(c.modified);
        list.moved.extend(c.absorbed);
        list.deleted.extend(c.deleted);
        list.hidden_deleted.extend(c.hidden_deleted);
        for (old, new) in c.churned {
            list.deleted.push(old.clone());
            list.reidentified.push((old, new));
        }
    }
    for v in [
        &mut list.new_patients,
        &mut list.new,
        &mut list.backfilled,
        &mut list.modified,
        &mut list.moved,
        &mut list.deleted,
        &mut list.hidden_moved,
        &mut list.hidden_deleted,
    ] {
        v.sort();
    }
    list.reidentified.sort();
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::owner_in_quarter;

    /// Searchable resources by `Type/id` of every patient of `quarter` (merged-away patients'
    /// resources are in the survivor's data in quarter 2).
    fn all_of(seed: u64, n: usize, quarter: u8) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for i in 0..patients_in_quarter(n, quarter) {
            if owner_in_quarter(n, i, quarter) != Some(i) {
                continue;
            }
            for r in generate_in_quarter(seed, n, i, quarter)
                .map(|g| g.resources)
                .unwrap_or_default()
            {
                out.insert(key(&r), r);
            }
        }
        out
    }

    #[test]
    fn the_list_is_what_differs_between_the_quarters() {
        for (seed, n) in [(1, 20), (7, 41)] {
            let list = quarter2_change_list(seed, n);
            let q1 = all_of(seed, n, 1);
            let q2 = all_of(seed, n, 2);
            let differs: BTreeSet<String> = q2
                .iter()
                .filter(|(k, v)| q1.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(list.changed(), differs, "seed {seed}, {n} patients");
            let gone: BTreeSet<String> = q1
                .keys()
                .filter(|k| !q2.contains_key(*k))
                .cloned()
                .collect();
            let deleted: BTreeSet<String> = list.deleted.iter().cloned().collect();
            assert_eq!(deleted, gone);
            // Every kind of change is there.
            assert!(!list.new_patients.is_empty());
            assert!(!list.new.is_empty());
            assert!(!list.backfilled.is_empty());
            assert!(!list.modified.is_empty());
            assert!(!list.reidentified.is_empty());
            assert!(!list.moved.is_empty());
            assert!(!list.hidden_moved.is_empty());
            assert!(!list.hidden_deleted.is_empty());
            // The kinds do not overlap.
            let total = list.new.len()
                + list.backfilled.len()
                + list.modified.len()
                + list.moved.len()
                + list.reidentified.len();
            assert_eq!(total, list.changed().len());
        }
    }

    #[test]
    fn json_names_every_kind() {
        let list = quarter2_change_list(1, 20);
        let v = list.to_json();
        assert_eq!(v["changedCount"], list.changed().len());
        assert_eq!(
            v["reidentified"][0]["from"],
            list.reidentified[0].0.as_str()
        );
        assert_eq!(
            v["newPatients"].as_array().map(Vec::len),
            Some(list.new_patients.len())
        );
    }
}
