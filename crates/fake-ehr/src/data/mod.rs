//! The synthetic data set: deterministic FHIR R4 resources per patient, the shared pools
//! (practitioners, roles, organizations, locations, medications) and attachment Binaries,
//! plus the id and MRN formats that tie them together. Everything is a pure function of the
//! seed. Besides what searches return, each patient has readable-only resources
//! ([`hidden_resources`]) that only hydration can reach. A second "quarter" of the same
//! seed ([`quarter_changes`], [`generate_in_quarter`]) replays a quarter of changes:
//! deletions, new patients, merges, ID churn, modified and back-filled records.

mod binary;
mod changes;
mod patient;
mod quarter;
mod rng;
mod shared;
mod time;
mod vocab;

use serde_json::Value;

pub use binary::binary;
pub(crate) use binary::binary_from;
pub use changes::{ChangeList, quarter2_change_list};
pub use patient::{EXTERNAL_PRACTITIONER, Generated};
pub use quarter::{
    Changes, FIRST_QUARTER, Fate, LAST_QUARTER, QUARTER2_END, QUARTER2_START, exists_in_quarter,
    fate, generate_in_quarter, new_patient_count, owner_in_quarter,
    patient_index_by_mrn_in_quarter, patient_resource_in_quarter, patient_resources_in_quarter,
    patients_in_quarter, quarter_changes, reachable_in_quarter, removed_in_quarter2,
    resource_in_quarter, unreachable_in_quarter2,
};
pub(crate) use rng::mix;
pub use shared::{
    GONE_MEDICATION, GONE_ORGANIZATION, GONE_PRACTITIONER, SHARED_POOLS, picked, shared_pool,
    shared_resource,
};

/// Identifier system of the patients' MRNs (an Epic-style OID).
pub const MRN_SYSTEM: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14";

/// First MRN: `mrn(i)` is this plus `i`, zero-padded to at least eight digits.
const MRN_BASE: u64 = 10_000_000;

/// FHIR id of patient `i` (0-based), e.g. `pat-000007`.
pub fn patient_id(i: usize) -> String {
    format!("pat-{i:06}")
}

/// MRN of patient `i` under [`MRN_SYSTEM`], e.g. `10000007`.
pub fn mrn(i: usize) -> String {
    format!("{:08}", MRN_BASE + i as u64)
}

/// The patient index an MRN belongs to, if it is one this data set spells.
pub fn patient_index_from_mrn(mrn: &str) -> Option<usize> {
    if mrn.len() < 8 || !mrn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = mrn.parse().ok()?;
    let i = usize::try_from(n.checked_sub(MRN_BASE)?).ok()?;
    (self::mrn(i) == mrn).then_some(i)
}

/// The patient index encoded in a patient-linked id (`pat-000007`, `obs-000007-03`,
/// `bin-000007-doc-01-txt`). The caller still checks the id exists.
pub fn patient_index_from_id(id: &str) -> Option<usize> {
    let digits = id.split('-').nth(1)?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Id of the `n`-th (1-based) resource with id prefix `prefix` of patient `i`.
pub(crate) fn resource_id(prefix: &str, i: usize, n: usize) -> String {
    format!("{prefix}-{i:06}-{n:02}")
}

/// Every resource the server holds for patient `i`, Patient first, then the other
/// patient-linked types in canonical order. Identical for a given `(seed, i)` whatever the
/// patient count.
pub fn patient_resources(seed: u64, i: usize) -> Vec<Value> {
    patient::generate(seed, i).resources
}

/// What patient `i`'s resources reference but no search returns, readable by id only:
/// hidden Observations (`hobs-…`, results and members, some nested, some in a cycle),
/// Specimens (`hspec-…`) and an EpisodeOfCare (`heoc-…`). Identical whatever the patient
/// count, like [`patient_resources`].
pub fn hidden_resources(seed: u64, i: usize) -> Vec<Value> {
    patient::generate(seed, i).hidden
}

/// Both the searchable and the hidden resources of patient `i`, generated once.
pub fn generate(seed: u64, i: usize) -> Generated {
    patient::generate(seed, i)
}

/// What a read of `ty/id` answers on a server with at least `i + 1` patients (`i` being the
/// patient an id belongs to): a patient's resource (searchable or hidden), a shared pool
/// member or an attachment Binary; `None` is a 404.
pub fn resource(seed: u64, ty: &str, id: &str) -> Option<Value> {
    if ty == "Binary" {
        return binary(seed, id);
    }
    if SHARED_POOLS.iter().any(|(t, _, _)| *t == ty) {
        return shared_resource(seed, ty, id);
    }
    let generated = patient::generate(seed, patient_index_from_id(id)?);
    generated
        .resources
        .into_iter()
        .chain(generated.hidden)
        .find(|r| r["resourceType"] == ty && r["id"] == id)
}

/// Just the Patient resource of patient `i` (cheap; equal to `patient_resources(..)[0]`).
pub fn patient_resource(seed: u64, i: usize) -> Value {
    patient::generate_patient_only(seed, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(patient_id(7), "pat-000007");
        assert_eq!(mrn(7), "10000007");
        assert_eq!(patient_index_from_mrn("10000007"), Some(7));
        assert_eq!(patient_index_from_mrn("9999999"), None);
        assert_eq!(patient_index_from_mrn("1000000x"), None);
        assert_eq!(patient_index_from_mrn("010000007"), None);
        assert_eq!(patient_index_from_id("obs-000012-07"), Some(12));
        assert_eq!(patient_index_from_id("pat-1234567"), Some(1_234_567));
        assert_eq!(patient_index_from_id("prac-01"), None);
        assert_eq!(patient_index_from_id("pat-12"), None);
    }

    #[test]
    fn patient_only_matches_full() {
        for i in [0, 1, 99, 12_345] {
            let all = patient_resources(3, i);
            assert_eq!(all[0], patient_resource(3, i));
        }
    }

    #[test]
    fn counts_and_ids() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..300 {
            let all = patient_resources(1, i);
            assert!((40..=60).contains(&all.len()), "patient {i}: {}", all.len());
            assert_eq!(all[0]["resourceType"], "Patient");
            for r in &all {
                let key = format!("{}/{}", r["resourceType"], r["id"]);
                assert!(seen.insert(key.clone()), "duplicate {key}");
                assert!(r["meta"]["lastUpdated"].is_string());
            }
        }
    }
}
