//! Whose data a search answer holds. Some servers ignore a search parameter they do not
//! support and answer with everything they have: `Condition?patient=A` comes back with
//! every patient's Conditions, `Patient?identifier=…` with the whole Patient list. Written
//! to a patient's export, that is another person's medical record in a research database.
//! So before a resource is kept it is checked against what the search asked for: the
//! reference field that the type's `patient` parameter reads (`ResourceType::patient_field`)
//! for per-patient searches, the identifier or id for Patient lookups. Pure functions on
//! borrowed strings: the check runs for every resource on the crawl's fast path.

use serde_json::Value;

/// What every resource of one search chain must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A per-patient search: `field` must reference the patient searched or a record its
    /// `Patient.link` names (merged records: a server may file the absorbed record's data
    /// under either id).
    Patient {
        field: &'static str,
        patient: String,
        linked: Vec<String>,
    },
    /// Several patients' searches in one (`patient=a,b,c`, `patient_lists`): `field` must
    /// reference one of them, and that one is whose the resource is. Patients with linked
    /// records are never in a list.
    Patients {
        field: &'static str,
        patients: Vec<String>,
    },
    /// A Patient lookup by `identifier=<system>|<value>`.
    Identifier { system: String, value: String },
    /// A Patient lookup by `_id`.
    Id(String),
    /// Several Patient lookups in one search (`identifier=<system>|<v1>,<system>|<v2>`):
    /// every Patient must carry at least one of them, or the server did not search by
    /// the list (`lookups`).
    Identifiers { system: String, values: Vec<String> },
    /// Several Patient lookups by `_id` in one search.
    Ids(Vec<String>),
    /// Nothing to check (a type without a patient field).
    Anything,
}

impl Expected {
    /// Whether a resource whose patient field holds `reference` (none: the field or its
    /// `reference` is missing) belongs to the patient searched. A resource that names no
    /// patient cannot match a `patient=` search either, so it does not.
    pub fn accepts_reference(&self, reference: Option<&str>) -> bool {
        self.owner(reference).is_some()
    }

    /// Whose a resource whose patient field holds `reference` is: the index of the patient
    /// in a list search, 0 in any other search, `None` when it is no one's searched.
    pub fn owner(&self, reference: Option<&str>) -> Option<usize> {
        let id = reference.and_then(referenced_patient);
        match self {
            Expected::Patient {
                patient, linked, ..
            } => id
                .filter(|id| id == patient || linked.iter().any(|l| l == id))
                .map(|_| 0),
            Expected::Patients { patients, .. } => {
                id.and_then(|id| patients.iter().position(|p| p == id))
            }
            _ => Some(0),
        }
    }

    /// Whether a Patient from a lookup carries what was looked up.
    pub fn accepts_patient(&self, patient: &Value) -> bool {
        match self {
            Expected::Identifier { system, value } => patient
                .get("identifier")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|i| {
                    i.get("system").and_then(Value::as_str) == Some(system)
                        && i.get("value").and_then(Value::as_str) == Some(value)
                }),
            Expected::Id(id) => patient.get("id").and_then(Value::as_str) == Some(id),
            Expected::Identifiers { system, values } => values.iter().any(|value| {
                Expected::Identifier {
                    system: system.clone(),
                    value: value.clone(),
                }
                .accepts_patient(patient)
            }),
            Expected::Ids(ids) => patient
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.iter().any(|i| i == id)),
            Expected::Patient { .. } | Expected::Patients { .. } | Expected::Anything => true,
        }
    }

    /// The patient field of a per-patient search (to read it from each resource).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Expected::Patient { field, .. } | Expected::Patients { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether this is a Patient lookup (its results need the identifier check).
    pub fn is_lookup(&self) -> bool {
        matches!(
            self,
            Expected::Identifier { .. }
                | Expected::Id(_)
                | Expected::Identifiers { .. }
                | Expected::Ids(_)
        )
    }

    /// Whether this looks up several patients at once: a Patient carrying none of them
    /// is not left out quietly but ends the search (the server ignored the list).
    pub fn is_list(&self) -> bool {
        matches!(self, Expected::Identifiers { .. } | Expected::Ids(_))
    }

    /// Most patients a list can match, when that is known: one per id. An MRN may match
    /// several patients (a duplicate chart), so a list of identifiers has no such bound.
    pub fn most_matches(&self) -> Option<usize> {
        match self {
            Expected::Ids(ids) => Some(ids.len()),
            _ => None,
        }
    }

    /// Who was searched, for messages.
    pub fn searched(&self) -> String {
        match self {
            Expected::Patient { patient, .. } => format!("Patient/{patient}"),
            Expected::Patients { patients, .. } => {
                format!("{} patients at once", patients.len())
            }
            _ => String::new(),
        }
    }
}

/// The patient id a reference names: `Patient/<id>` or an absolute `…/Patient/<id>`, either
/// with a `/_history/<version>`. `None` for anything else (another type, a contained
/// `#ref`, an empty id).
pub fn referenced_patient(reference: &str) -> Option<&str> {
    let plain = reference
        .split_once("/_history/")
        .map_or(reference, |(p, _)| p);
    let (head, id) = plain.rsplit_once('/')?;
    let typed = head == "Patient" || head.ends_with("/Patient");
    (typed && !id.is_empty()).then_some(id)
}

/// Every record a Patient's `link` names (any link type: each one is, by definition, the
/// same person), for the membership check of that patient's searches.
pub fn linked_patients(patient: &Value) -> Vec<String> {
    patient
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("other")?.get("reference")?.as_str())
        .filter_map(referenced_patient)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_name_a_patient_in_every_spelling() {
        assert_eq!(referenced_patient("Patient/p1"), Some("p1"));
        assert_eq!(
            referenced_patient("https://ehr.example.org/fhir/Patient/p1"),
            Some("p1")
        );
        assert_eq!(referenced_patient("Patient/p1/_history/3"), Some("p1"));
        assert_eq!(referenced_patient("Group/g1"), None);
        assert_eq!(referenced_patient("NotPatient/p1"), None);
        assert_eq!(referenced_patient("#contained"), None);
        assert_eq!(referenced_patient("Patient/"), None);
        assert_eq!(referenced_patient("p1"), None);
    }

    #[test]
    fn a_search_accepts_the_patient_and_its_linked_records_only() {
        let expected = Expected::Patient {
            field: "subject",
            patient: "p1".into(),
            linked: vec!["p0".into()],
        };
        assert!(expected.accepts_reference(Some("Patient/p1")));
        assert!(expected.accepts_reference(Some("Patient/p0")));
        assert!(!expected.accepts_reference(Some("Patient/p2")));
        assert!(!expected.accepts_reference(Some("Patient/p10")));
        assert!(!expected.accepts_reference(None));
        assert!(!expected.accepts_reference(Some("Group/p1")));
        assert!(Expected::Anything.accepts_reference(None));
    }

    #[test]
    fn a_lookup_accepts_patients_carrying_what_was_looked_up() {
        let by_mrn = Expected::Identifier {
            system: "urn:mrn".into(),
            value: "123".into(),
        };
        let patient = |identifier: Value| json!({"resourceType": "Patient", "id": "p1", "identifier": identifier});
        assert!(by_mrn.accepts_patient(&patient(
            json!([{"system": "other", "value": "9"}, {"system": "urn:mrn", "value": "123"}])
        )));
        assert!(!by_mrn.accepts_patient(&patient(json!([{"system": "other", "value": "123"}]))));
        assert!(!by_mrn.accepts_patient(&patient(json!([{"system": "urn:mrn", "value": "1234"}]))));
        assert!(!by_mrn.accepts_patient(&json!({"resourceType": "Patient", "id": "p1"})));
        assert!(Expected::Id("p1".into()).accepts_patient(&patient(json!([]))));
        assert!(!Expected::Id("p2".into()).accepts_patient(&patient(json!([]))));
        let by_mrns = Expected::Identifiers {
            system: "urn:mrn".into(),
            values: vec!["9".into(), "123".into()],
        };
        assert!(by_mrns.accepts_patient(&patient(json!([{"system": "urn:mrn", "value": "123"}]))));
        assert!(!by_mrns.accepts_patient(&patient(json!([{"system": "urn:mrn", "value": "12"}]))));
        assert!(Expected::Ids(vec!["p0".into(), "p1".into()]).accepts_patient(&patient(json!([]))));
        assert!(!Expected::Ids(vec!["p0".into()]).accepts_patient(&patient(json!([]))));
    }

    #[test]
    fn links_of_any_type_name_the_same_person() {
        let p = json!({"link": [
            {"type": "replaces", "other": {"reference": "Patient/a"}},
            {"type": "seealso", "other": {"reference": "https://x/fhir/Patient/b"}},
            {"type": "refer", "other": {"reference": "RelatedPerson/c"}},
        ]});
        assert_eq!(linked_patients(&p), ["a", "b"]);
        assert!(linked_patients(&json!({})).is_empty());
    }
}
