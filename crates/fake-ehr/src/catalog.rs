//! The resource types the server serves and the search parameters each one supports, per
//! flavor. The CapabilityStatement and the search validator both read this table.

use crate::config::Flavor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The Patient type itself.
    Patient,
    /// A type whose resources belong to one patient.
    Linked,
    /// A shared pool (Practitioner, Organization, ...).
    Shared,
    /// Attachment Binaries: read only.
    Binary,
}

#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    pub name: &'static str,
    pub kind: Kind,
    /// Supports `subject=Patient/<id>` as well as `patient=`.
    pub subject: bool,
    /// Supports `category`.
    pub category: bool,
    /// Supports `code`.
    pub code: bool,
    /// Created-date search parameter and the field it compares.
    pub created: Option<(&'static str, &'static str)>,
}

const fn t(
    name: &'static str,
    kind: Kind,
    subject: bool,
    category: bool,
    code: bool,
    created: Option<(&'static str, &'static str)>,
) -> TypeInfo {
    TypeInfo {
        name,
        kind,
        subject,
        category,
        code,
        created,
    }
}

use Kind::{Binary, Linked, Patient, Shared};

/// Every type served, patient-linked ones in canonical order.
pub const TYPES: [TypeInfo; 21] = [
    t("Patient", Patient, false, false, false, None),
    t("Encounter", Linked, true, false, false, None),
    t(
        "AllergyIntolerance",
        Linked,
        false,
        true,
        true,
        Some(("date", "recordedDate")),
    ),
    t(
        "Condition",
        Linked,
        true,
        true,
        true,
        Some(("recorded-date", "recordedDate")),
    ),
    t("Device", Linked, false, false, false, None),
    t(
        "DiagnosticReport",
        Linked,
        true,
        true,
        true,
        Some(("issued", "issued")),
    ),
    t(
        "DocumentReference",
        Linked,
        true,
        true,
        false,
        Some(("date", "date")),
    ),
    t("EpisodeOfCare", Linked, false, false, false, None),
    t("Immunization", Linked, false, false, false, None),
    t("MedicationDispense", Linked, true, false, false, None),
    t(
        "MedicationRequest",
        Linked,
        true,
        true,
        false,
        Some(("authoredon", "authoredOn")),
    ),
    t(
        "Observation",
        Linked,
        true,
        true,
        true,
        Some(("issued", "issued")),
    ),
    t("Procedure", Linked, true, true, true, None),
    t(
        "ServiceRequest",
        Linked,
        true,
        true,
        true,
        Some(("authored", "authoredOn")),
    ),
    t("Specimen", Linked, true, false, false, None),
    t("Binary", Binary, false, false, false, None),
    t("Location", Shared, false, false, false, None),
    t("Medication", Shared, false, false, false, None),
    t("Organization", Shared, false, false, false, None),
    t("Practitioner", Shared, false, false, false, None),
    t("PractitionerRole", Shared, false, false, false, None),
];

pub fn lookup(name: &str) -> Option<&'static TypeInfo> {
    TYPES.iter().find(|t| t.name == name)
}

/// Search parameters `(name, FHIR search type)` the type supports under `flavor`, excluding
/// the paging controls `_count` and `_offset`.
pub fn search_params(info: &TypeInfo, flavor: Flavor) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if info.kind == Kind::Binary {
        return out;
    }
    out.push(("_id", "token"));
    if flavor == Flavor::Generic {
        out.push(("_lastUpdated", "date"));
    }
    match info.kind {
        Kind::Patient => out.push(("identifier", "token")),
        Kind::Linked => {
            out.push(("patient", "reference"));
            if info.subject {
                out.push(("subject", "reference"));
            }
        }
        Kind::Shared | Kind::Binary => {}
    }
    if info.category {
        out.push(("category", "token"));
    }
    if info.code {
        out.push(("code", "token"));
    }
    if let Some((param, _)) = info.created {
        out.push((param, "date"));
    }
    if info.name == "PractitionerRole" {
        // The roles of one practitioner (how hydration finds roles nobody references).
        out.push(("practitioner", "reference"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epic_lacks_last_updated() {
        let obs = lookup("Observation").map(|i| search_params(i, Flavor::Epic));
        let names: Vec<_> = obs.unwrap_or_default().into_iter().map(|p| p.0).collect();
        assert!(names.contains(&"category") && names.contains(&"issued"));
        assert!(!names.contains(&"_lastUpdated"));
        let generic = lookup("Device").map(|i| search_params(i, Flavor::Generic));
        assert!(
            generic
                .unwrap_or_default()
                .contains(&("_lastUpdated", "date"))
        );
    }
}
