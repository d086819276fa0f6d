//! Per-patient searches several patients at a time: `Condition?patient=a,b,c…&_count=100`
//! instead of one `Condition?patient=a` per patient, where the server takes such lists
//! (`fhir::batching`, learnt once per server and type). The crawl's own searches are most of
//! its requests (about 13 of 21 per patient with the default hydration), so this is the
//! largest saving left once hydration reads go as `_id` lists.
//!
//! A list is only trusted once it has shown it is one: a server that reads `a,b` as one odd
//! id answers with nothing, and one that keeps only the first value answers with that
//! patient's data, both plausible. So a probe counts as confirmed only when the answer holds
//! resources of at least two of the patients asked for; until then every patient of an
//! unconfirmed list is searched again on its own. Every resource must reference one of the
//! listed patients (`membership`); the answer is split back into one result per patient, so
//! the journal, resume and messages see the same per-patient searches as before. Builds URLs
//! and splits answers; the engine sends and queues.

use super::membership::Expected;
use super::report::ChainOutcome;
use super::sink::{ChainResult, ListExtras};
use crate::fhir::batching::Verdict;
use crate::hydrate::batch::{MAX_URL_BYTES, is_plain_id};
use crate::resources::ResourceType;
use std::collections::HashSet;

/// Most patients in one list. Twenty patients' Conditions or Encounters fit one page of
/// `PAGE_SIZE`, and a list that fails costs twenty single searches, not hundreds.
pub const MOST_PATIENTS: usize = 20;

/// Page size asked of a list search. Without it a server's default page (fake-ehr: 10,
/// many servers: 10 to 50) would split twenty patients' answers into many pages, taking
/// back what the list saved. 100 is within what the common servers accept for `_count`.
pub const PAGE_SIZE: usize = 100;

/// The support kind (`fhir::batching`) of patient lists of one type (a fixed name: the
/// support map is read on every turn of the queue).
pub fn kind(t: ResourceType) -> &'static str {
    match t {
        ResourceType::Patient => "Patient?patient",
        ResourceType::Encounter => "Encounter?patient",
        ResourceType::AllergyIntolerance => "AllergyIntolerance?patient",
        ResourceType::Condition => "Condition?patient",
        ResourceType::Device => "Device?patient",
        ResourceType::DiagnosticReport => "DiagnosticReport?patient",
        ResourceType::DocumentReference => "DocumentReference?patient",
        ResourceType::EpisodeOfCare => "EpisodeOfCare?patient",
        ResourceType::Immunization => "Immunization?patient",
        ResourceType::MedicationDispense => "MedicationDispense?patient",
        ResourceType::MedicationRequest => "MedicationRequest?patient",
        ResourceType::Observation => "Observation?patient",
        ResourceType::Procedure => "Procedure?patient",
        ResourceType::ServiceRequest => "ServiceRequest?patient",
        ResourceType::Specimen => "Specimen?patient",
        ResourceType::Binary => "Binary?patient",
        ResourceType::Location => "Location?patient",
        ResourceType::Medication => "Medication?patient",
        ResourceType::Organization => "Organization?patient",
        ResourceType::Practitioner => "Practitioner?patient",
        ResourceType::PractitionerRole => "PractitionerRole?patient",
    }
}

/// What follows the patient in a per-patient search URL (`&category=…`), or `None` when
/// the URL is not one a list can stand for (its patient id would need escaping).
fn rest<'a>(url: &'a str, t: ResourceType, patient: &str) -> Option<&'a str> {
    if !is_plain_id(patient) {
        return None;
    }
    let rest = url
        .strip_prefix(t.as_str())?
        .strip_prefix("?patient=")?
        .strip_prefix(patient)?;
    (rest.is_empty() || rest.starts_with('&')).then_some(rest)
}

/// Whether the searches of `patient` (its `urls`) can go in one list with those of
/// `first` (its `first_urls`): the same type, the same filters, plain ids.
pub fn compatible(
    t: ResourceType,
    first: &str,
    first_urls: &[String],
    patient: &str,
    urls: &[String],
) -> bool {
    first_urls.len() == urls.len()
        && first_urls.iter().zip(urls).all(|(a, b)| {
            match (rest(a, t, first), rest(b, t, patient)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        })
}

/// Whether one more patient fits a list whose URLs (`urls` of its first patient, base URL
/// of `base_len` bytes) already name `patients` ids of `ids_len` bytes in all.
pub fn fits(base_len: usize, urls: &[String], patients: usize, ids_len: usize, id: &str) -> bool {
    let longest = urls.iter().map(String::len).max().unwrap_or(0);
    let count = "&_count=".len() + 4;
    patients < MOST_PATIENTS
        && base_len + longest + ids_len + patients + id.len() + count <= MAX_URL_BYTES
}

/// The URLs of one list: each URL of the first patient's chain with every patient named.
pub fn urls(
    t: ResourceType,
    first: &str,
    first_urls: &[String],
    patients: &[String],
) -> Vec<String> {
    let list = patients.join(",");
    first_urls
        .iter()
        .filter_map(|url| rest(url, t, first))
        .map(|rest| format!("{t}?patient={list}{rest}&_count={PAGE_SIZE}"))
        .collect()
}

/// What a list's answer shows about the server's lists of this type.
pub fn verdict(result: &ChainResult) -> Verdict {
    match &result.outcome {
        ChainOutcome::Complete => {
            let owners: HashSet<usize> = result.owners.iter().copied().collect();
            match owners.len() {
                // Nothing, or one patient's data: what a server reading one value gives.
                0 | 1 => Verdict::Empty,
                _ => Verdict::Confirmed,
            }
        }
        // Refusals, strangers and failures read as for lookup lists.
        _ => super::lookups::verdict(result),
    }
}

/// A complete list answer as one result per patient, in the order of `patients` (a patient
/// with nothing gets an empty result: searched, and committed as such). The list's
/// OperationOutcome notes, latest date and left-out counts go with the first result (the
/// journal keeps one latest date per type and adds the rest up).
pub fn split(result: ChainResult, patients: &[String]) -> Vec<ChainResult> {
    let mut records: Vec<Vec<_>> = patients.iter().map(|_| Vec::new()).collect();
    for (record, owner) in result.records.into_iter().zip(result.owners) {
        if let Some(bucket) = records.get_mut(owner) {
            bucket.push(record);
        }
    }
    let mut extras = ListExtras::new(result.errors, result.max_date, result.dropped);
    patients
        .iter()
        .zip(records)
        .map(|(patient, records)| extras.part(result.resource_type, patient.clone(), records))
        .collect()
}

/// What every resource of a list must match.
pub fn expected(field: &'static str, patients: &[String]) -> Expected {
    Expected::Patients {
        field,
        patients: patients.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::report::{Dropped, FailureKind};
    use crate::crawl::sink::Record;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_keep_each_filter_and_need_the_same_filters() {
        let t = ResourceType::Observation;
        let a = strings(&[
            "Observation?patient=a&category=laboratory",
            "Observation?patient=a&category=vital-signs",
        ]);
        let b = strings(&[
            "Observation?patient=b&category=laboratory",
            "Observation?patient=b&category=vital-signs",
        ]);
        let since = strings(&[
            "Observation?patient=c&category=laboratory&_lastUpdated=gt2026",
            "Observation?patient=c&category=vital-signs&_lastUpdated=gt2026",
        ]);
        assert!(compatible(t, "a", &a, "b", &b));
        assert!(!compatible(t, "a", &a, "c", &since));
        assert!(!compatible(t, "a", &a, "b", &b[..1]));
        // An id that needs escaping never goes into a list.
        let odd = strings(&["Observation?patient=x%2Cy&category=laboratory"]);
        assert!(!compatible(t, "a", &a[..1], "x,y", &odd));
        assert_eq!(
            urls(t, "a", &a, &strings(&["a", "b"])),
            strings(&[
                "Observation?patient=a,b&category=laboratory&_count=100",
                "Observation?patient=a,b&category=vital-signs&_count=100",
            ])
        );
        assert_eq!(
            urls(
                ResourceType::Condition,
                "a",
                &strings(&["Condition?patient=a"]),
                &strings(&["a", "b"])
            ),
            strings(&["Condition?patient=a,b&_count=100"])
        );
    }

    #[test]
    fn lists_are_bounded_by_count_and_url_length() {
        let urls = strings(&["Condition?patient=a"]);
        assert!(fits(30, &urls, 1, 1, "b"));
        assert!(!fits(30, &urls, MOST_PATIENTS, 20, "b"));
        let long = "x".repeat(64);
        assert!(!fits(30, &urls, 5, MAX_URL_BYTES - 100, &long));
    }

    fn answer(owners: &[usize]) -> ChainResult {
        ChainResult {
            resource_type: ResourceType::Condition,
            key: "a".into(),
            records: owners
                .iter()
                .enumerate()
                .map(|(i, _)| Record {
                    id: Some(format!("c{i}")),
                    line: format!("{{\"id\":\"c{i}\"}}\n"),
                })
                .collect(),
            errors: vec!["note\n".into()],
            max_date: None,
            outcome: ChainOutcome::Complete,
            dropped: Dropped::default(),
            links: Vec::new(),
            owners: owners.to_vec(),
        }
    }

    #[test]
    fn only_two_patients_data_confirm_a_list() {
        assert_eq!(verdict(&answer(&[])), Verdict::Empty);
        assert_eq!(verdict(&answer(&[0, 0, 0])), Verdict::Empty);
        assert_eq!(verdict(&answer(&[0, 2])), Verdict::Confirmed);
        let mut refused = answer(&[]);
        refused.outcome = ChainOutcome::Failed(FailureKind::Http(400));
        assert_eq!(verdict(&refused), Verdict::Refused);
        refused.outcome = ChainOutcome::Failed(FailureKind::Http(503));
        assert_eq!(verdict(&refused), Verdict::Failed);
        refused.outcome = ChainOutcome::Foreign("x".into());
        assert_eq!(verdict(&refused), Verdict::Ignored);
    }

    #[test]
    fn answers_split_by_patient_and_every_patient_gets_a_result() {
        let parts = split(answer(&[2, 0, 2]), &strings(&["a", "b", "c"]));
        let keys: Vec<_> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        let ids = |i: usize| -> Vec<_> {
            parts[i]
                .records
                .iter()
                .map(|r| r.id.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(ids(0), ["c1"]);
        assert!(ids(1).is_empty());
        assert_eq!(ids(2), ["c0", "c2"]);
        assert_eq!(parts[0].errors, ["note\n"]);
        assert!(parts[1].errors.is_empty() && parts[2].errors.is_empty());
    }
}
