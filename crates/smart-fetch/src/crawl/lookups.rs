//! Patient lookups several at a time: `Patient?identifier=<sys>|<mrn1>,<sys>|<mrn2>…` (or
//! `Patient?_id=a,b…` for FHIR ids) instead of one search per MRN, where the server takes
//! such lists (`fhir::batching`, learnt once per server). The answer of a list is split
//! back into one result per MRN, matched by the identifier (system and value) each Patient
//! carries, so the journal, resume and messages see the same per-MRN lookups as before. An
//! MRN the list did not find is looked up on its own, so an MRN that matches nothing is
//! reported exactly as before; a Patient carrying none of the MRNs asked for means the
//! server did not search by the list, and every MRN of it is looked up on its own. Builds
//! URLs and splits answers; the engine sends and queues.

use super::id_queue::IdQueue;
use super::membership::Expected;
use super::report::{ChainOutcome, FailureKind};
use super::sink::{ChainResult, ListExtras};
use crate::fhir::batching::Verdict;
use crate::hydrate::batch::{MAX_IDS, MAX_URL_BYTES};
use crate::url_encoding::quote as encode_query_value;
use serde_json::Value;

/// The support kind (`fhir::batching`) of lookup lists: by identifier or by id.
pub fn kind(id_system: Option<&str>) -> &'static str {
    match id_system {
        Some(_) => "Patient?identifier",
        None => "Patient?_id",
    }
}

/// The search parameter a lookup uses.
pub fn param(id_system: Option<&str>) -> &'static str {
    match id_system {
        Some(_) => "identifier",
        None => "_id",
    }
}

/// Characters that mean something inside a FHIR token list (`,` between values, `|`
/// between system and value, `$` and `\` as escapes): a value holding one is looked up on
/// its own, as before, rather than escaped in a way some server may read differently.
fn plain(text: &str) -> bool {
    !text.is_empty() && !text.contains([',', '|', '$', '\\'])
}

/// One value of a lookup list, encoded.
fn value(id_system: Option<&str>, id: &str) -> String {
    match id_system {
        Some(system) => encode_query_value(&format!("{system}|{id}")),
        None => encode_query_value(id),
    }
}

/// Take the next lookups to send: a list of up to `MAX_IDS` ids whose search URL (after
/// `base_len` bytes of base URL, before filters of up to `filter_len` bytes) fits
/// `MAX_URL_BYTES`, or the first id alone when it cannot go into a list.
pub fn take(
    queue: &mut IdQueue,
    id_system: Option<&str>,
    base_len: usize,
    filter_len: usize,
) -> Vec<String> {
    let system_plain = id_system.is_none_or(plain);
    let start =
        base_len + filter_len + format!("Patient?{}=&_count={MAX_IDS}&", param(id_system)).len();
    let mut taken: Vec<String> = Vec::new();
    let mut length = start;
    while let Some(id) = queue.front() {
        if !(system_plain && plain(id)) {
            if taken.is_empty() {
                taken.extend(queue.pop_front());
            }
            break;
        }
        let more = value(id_system, id).len() + 1;
        if taken.len() == MAX_IDS || (!taken.is_empty() && length + more > MAX_URL_BYTES) {
            break;
        }
        length += more;
        taken.extend(queue.pop_front());
    }
    taken
}

/// The search base (before filters) and the check of its answers for a list of ids.
pub fn list(id_system: Option<&str>, ids: &[String]) -> (String, Expected) {
    let values: Vec<String> = ids.iter().map(|id| value(id_system, id)).collect();
    let base = format!(
        "Patient?{}={}&_count={}",
        param(id_system),
        values.join(","),
        ids.len()
    );
    let expected = match id_system {
        Some(system) => Expected::Identifiers {
            system: system.to_string(),
            values: ids.to_vec(),
        },
        None => Expected::Ids(ids.to_vec()),
    };
    (base, expected)
}

/// What a list's answer shows about the server's lists.
pub fn verdict(result: &ChainResult) -> Verdict {
    match &result.outcome {
        ChainOutcome::Complete if result.records.is_empty() => Verdict::Empty,
        ChainOutcome::Complete => Verdict::Confirmed,
        ChainOutcome::Foreign(_) => Verdict::Ignored,
        ChainOutcome::Failed(FailureKind::Http(status)) if (400..500).contains(status) => {
            Verdict::Refused
        }
        ChainOutcome::Failed(FailureKind::NotBundle | FailureKind::ErrorInPage) => Verdict::Refused,
        ChainOutcome::Failed(_) => Verdict::Failed,
    }
}

/// A complete list answer as one result per id that found Patients (each Patient under
/// every id it carries, as separate lookups would have found it), and the ids it did not
/// find. The list's OperationOutcome notes, dates and left-out counts go with the first
/// result (the journal only adds them up).
pub fn split(
    result: ChainResult,
    id_system: Option<&str>,
    ids: &[String],
) -> (Vec<ChainResult>, Vec<String>) {
    let patients: Vec<Value> = result
        .records
        .iter()
        .map(|r| serde_json::from_str(&r.line).unwrap_or_default())
        .collect();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut extras = ListExtras::new(result.errors, result.max_date, result.dropped);
    for id in ids {
        let expected = match id_system {
            Some(system) => Expected::Identifier {
                system: system.to_string(),
                value: id.clone(),
            },
            None => Expected::Id(id.clone()),
        };
        let records: Vec<_> = result
            .records
            .iter()
            .zip(&patients)
            .filter(|(_, patient)| expected.accepts_patient(patient))
            .map(|(record, _)| record.clone())
            .collect();
        if records.is_empty() {
            missing.push(id.clone());
            continue;
        }
        found.push(extras.part(result.resource_type, id.clone(), records));
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::report::Dropped;
    use crate::crawl::sink::Record;
    use crate::resources::ResourceType;

    fn ids(list: &[&str]) -> IdQueue {
        let mut queue = IdQueue::default();
        for id in list {
            queue.push_back(id);
        }
        queue
    }

    #[test]
    fn lists_stop_at_values_that_need_escaping() {
        let mut queue = ids(&["1", "2", "a,b", "3"]);
        assert_eq!(take(&mut queue, Some("urn:mrn"), 30, 0), ["1", "2"]);
        assert_eq!(take(&mut queue, Some("urn:mrn"), 30, 0), ["a,b"]);
        assert_eq!(take(&mut queue, Some("urn:mrn"), 30, 0), ["3"]);
        assert!(take(&mut queue, Some("urn:mrn"), 30, 0).is_empty());
        // A system that would need escaping: one at a time.
        let mut queue = ids(&["1", "2"]);
        assert_eq!(take(&mut queue, Some("odd|system"), 30, 0), ["1"]);
    }

    #[test]
    fn lists_are_bounded_by_count_and_url_length() {
        let all: Vec<String> = (0..200).map(|i| format!("{i:08}")).collect();
        let mut queue = ids(&all.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(take(&mut queue, None, 30, 0).len(), MAX_IDS);
        let system = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14";
        let taken = take(&mut queue, Some(system), 40, 100);
        let (base, _) = list(Some(system), &taken);
        assert!(taken.len() > 20 && taken.len() < MAX_IDS, "{}", taken.len());
        assert!(40 + base.len() + 100 <= MAX_URL_BYTES, "{}", base.len());
        assert_eq!(
            list(Some("urn:mrn"), &["1".into(), "2".into()]).0,
            "Patient?identifier=urn%3Amrn%7C1,urn%3Amrn%7C2&_count=2"
        );
    }

    #[test]
    fn answers_split_by_the_identifier_each_patient_carries() {
        let patient = |id: &str, mrns: &[&str]| {
            let identifier: Vec<Value> = mrns
                .iter()
                .map(|m| serde_json::json!({"system": "urn:mrn", "value": m}))
                .collect();
            let line =
                serde_json::json!({"resourceType": "Patient", "id": id, "identifier": identifier});
            Record {
                id: Some(id.to_string()),
                line: format!("{line}\n"),
            }
        };
        let result = ChainResult {
            resource_type: ResourceType::Patient,
            key: "list".into(),
            // A survivor of a merge carries both MRNs; two records share MRN 3.
            records: vec![
                patient("a", &["1", "2"]),
                patient("b", &["3"]),
                patient("c", &["3"]),
            ],
            errors: vec!["note\n".into()],
            max_date: None,
            outcome: ChainOutcome::Complete,
            dropped: Dropped::default(),
            links: Vec::new(),
            owners: Vec::new(),
        };
        assert_eq!(verdict(&result), Verdict::Confirmed);
        let asked: Vec<String> = ["1", "2", "3", "4"].iter().map(|s| s.to_string()).collect();
        let (found, missing) = split(result, Some("urn:mrn"), &asked);
        let keys: Vec<(&str, Vec<&str>)> = found
            .iter()
            .map(|r| {
                (
                    r.key.as_str(),
                    r.records.iter().filter_map(|x| x.id.as_deref()).collect(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [("1", vec!["a"]), ("2", vec!["a"]), ("3", vec!["b", "c"])]
        );
        assert_eq!(found[0].errors.len(), 1);
        assert!(found[1].errors.is_empty());
        assert_eq!(missing, ["4"]);
    }
}
