//! Resource type tables: which FHIR types the tool exports, their canonical order, the
//! created-date search fields, scope types and the full R4 type list used to sniff file names.
//! Pure data; no I/O.

use std::fmt;
use std::str::FromStr;

/// The types this tool knows by name: the 15 patient-linked types (in canonical order) and
/// the six types that only arrive through hydration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Patient,
    Encounter,
    AllergyIntolerance,
    Condition,
    Device,
    DiagnosticReport,
    DocumentReference,
    EpisodeOfCare,
    Immunization,
    MedicationDispense,
    MedicationRequest,
    Observation,
    Procedure,
    ServiceRequest,
    Specimen,
    Binary,
    Location,
    Medication,
    Organization,
    Practitioner,
    PractitionerRole,
}

impl ResourceType {
    /// Patient-linked ("exportable") types in canonical order (docs/cli.md#resource-types).
    pub const PATIENT_TYPES: [ResourceType; 15] = [
        Self::Patient,
        Self::Encounter,
        Self::AllergyIntolerance,
        Self::Condition,
        Self::Device,
        Self::DiagnosticReport,
        Self::DocumentReference,
        Self::EpisodeOfCare,
        Self::Immunization,
        Self::MedicationDispense,
        Self::MedicationRequest,
        Self::Observation,
        Self::Procedure,
        Self::ServiceRequest,
        Self::Specimen,
    ];

    /// Every type that gets an OAuth scope and symlinks (docs/cli.md#scope-types).
    pub const SCOPE_TYPES: [ResourceType; 21] = [
        Self::Patient,
        Self::Encounter,
        Self::AllergyIntolerance,
        Self::Condition,
        Self::Device,
        Self::DiagnosticReport,
        Self::DocumentReference,
        Self::EpisodeOfCare,
        Self::Immunization,
        Self::MedicationDispense,
        Self::MedicationRequest,
        Self::Observation,
        Self::Procedure,
        Self::ServiceRequest,
        Self::Specimen,
        Self::Binary,
        Self::Location,
        Self::Medication,
        Self::Organization,
        Self::Practitioner,
        Self::PractitionerRole,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Encounter => "Encounter",
            Self::AllergyIntolerance => "AllergyIntolerance",
            Self::Condition => "Condition",
            Self::Device => "Device",
            Self::DiagnosticReport => "DiagnosticReport",
            Self::DocumentReference => "DocumentReference",
            Self::EpisodeOfCare => "EpisodeOfCare",
            Self::Immunization => "Immunization",
            Self::MedicationDispense => "MedicationDispense",
            Self::MedicationRequest => "MedicationRequest",
            Self::Observation => "Observation",
            Self::Procedure => "Procedure",
            Self::ServiceRequest => "ServiceRequest",
            Self::Specimen => "Specimen",
            Self::Binary => "Binary",
            Self::Location => "Location",
            Self::Medication => "Medication",
            Self::Organization => "Organization",
            Self::Practitioner => "Practitioner",
            Self::PractitionerRole => "PractitionerRole",
        }
    }

    pub fn is_patient_type(self) -> bool {
        Self::PATIENT_TYPES.contains(&self)
    }

    /// Case-insensitive lookup among the patient-linked types, as `--type` accepts them.
    pub fn parse_patient_type_ci(token: &str) -> Option<ResourceType> {
        Self::PATIENT_TYPES
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(token))
    }

    /// Created-mode search parameter (docs/since.md#created-date-fields, middle column).
    pub fn created_search_param(self) -> Option<&'static str> {
        match self {
            Self::AllergyIntolerance => Some("date"),
            Self::Condition => Some("recorded-date"),
            Self::DiagnosticReport => Some("issued"),
            Self::DocumentReference => Some("date"),
            Self::MedicationRequest => Some("authoredon"),
            Self::Observation => Some("issued"),
            Self::ServiceRequest => Some("authored"),
            _ => None,
        }
    }

    /// The reference field that this type's `patient` search parameter reads (FHIR R4
    /// search parameter definitions: `Condition.subject`, `Device.patient`, …). The crawl
    /// searches `<Type>?patient=<id>` and checks that every resource of the answer names
    /// that patient here, so a server that ignores the parameter is caught.
    pub fn patient_field(self) -> Option<&'static str> {
        match self {
            Self::Encounter
            | Self::Condition
            | Self::DiagnosticReport
            | Self::DocumentReference
            | Self::MedicationDispense
            | Self::MedicationRequest
            | Self::Observation
            | Self::Procedure
            | Self::ServiceRequest
            | Self::Specimen => Some("subject"),
            Self::AllergyIntolerance | Self::Device | Self::EpisodeOfCare | Self::Immunization => {
                Some("patient")
            }
            _ => None,
        }
    }

    /// Field read from resources for crawl transaction-time tracking
    /// (docs/since.md#created-date-fields, right column).
    pub fn created_field(self) -> Option<&'static str> {
        match self {
            Self::AllergyIntolerance | Self::Condition => Some("recordedDate"),
            Self::DiagnosticReport | Self::Observation => Some("issued"),
            Self::DocumentReference => Some("date"),
            Self::Immunization => Some("recorded"),
            Self::MedicationRequest | Self::ServiceRequest => Some("authoredOn"),
            _ => None,
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown resource type '{0}'")]
pub struct UnknownResourceType(pub String);

impl FromStr for ResourceType {
    type Err = UnknownResourceType;

    /// Exact (case-sensitive) name of any known type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SCOPE_TYPES
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownResourceType(s.to_string()))
    }
}

/// Default Observation category filter (docs/cli.md#default-observation-filter).
pub fn default_observation_filter(epic: bool) -> &'static str {
    if epic {
        "category=social-history,vital-signs,imaging,laboratory,survey,exam"
    } else {
        "category=social-history,vital-signs,imaging,laboratory,survey,exam,procedure,therapy,activity"
    }
}

/// Every FHIR R4 resource type name, for sniffing a file's type from its name
/// (docs/folders.md#finding-files-by-type).
pub const R4_RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_order_and_names_round_trip() {
        for t in ResourceType::SCOPE_TYPES {
            assert_eq!(t.as_str().parse::<ResourceType>().ok(), Some(t));
            assert!(R4_RESOURCE_TYPES.contains(&t.as_str()));
        }
        assert_eq!(ResourceType::PATIENT_TYPES[0], ResourceType::Patient);
        assert_eq!(ResourceType::PATIENT_TYPES[14], ResourceType::Specimen);
        assert_eq!(
            ResourceType::parse_patient_type_ci("condITION"),
            Some(ResourceType::Condition)
        );
        assert_eq!(ResourceType::parse_patient_type_ci("Medication"), None);
    }

    #[test]
    fn every_searched_type_has_a_patient_field() {
        for t in ResourceType::PATIENT_TYPES {
            assert_eq!(
                t.patient_field().is_some(),
                t != ResourceType::Patient,
                "{t}"
            );
        }
        assert_eq!(ResourceType::Condition.patient_field(), Some("subject"));
        assert_eq!(ResourceType::Immunization.patient_field(), Some("patient"));
        assert_eq!(ResourceType::Practitioner.patient_field(), None);
    }
}
