//! The hydration task registry (docs/hydration.md#task-registry: names, groups, input and output
//! types, reference paths, output file slugs, in registry order) and `--hydration-tasks`/`--tasks`
//! parsing (docs/hydration.md#choosing-tasks). Pure data and parsing: it runs nothing and touches
//! no files; printing is limited to the help listing and the unknown-task complaint of `select`.

use crate::error::AppError;
use crate::report::Reporter;
use crate::resources::ResourceType;

use ResourceType::*;

/// Task groups, the unit users select, in registry order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    EpisodeOfCare,
    Inline,
    Medication,
    Observation,
    Specimen,
    Practitioner,
    Location,
    Organization,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::EpisodeOfCare,
        Group::Inline,
        Group::Medication,
        Group::Observation,
        Group::Specimen,
        Group::Practitioner,
        Group::Location,
        Group::Organization,
    ];

    /// The lower-case name users type.
    pub fn name(self) -> &'static str {
        match self {
            Group::EpisodeOfCare => "episodeofcare",
            Group::Inline => "inline",
            Group::Medication => "medication",
            Group::Observation => "observation",
            Group::Specimen => "specimen",
            Group::Practitioner => "practitioner",
            Group::Location => "location",
            Group::Organization => "organization",
        }
    }

    fn from_name(name: &str) -> Option<Group> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// What a task does with each input resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Download the references found at these REFS paths (docs/hydration.md#task-registry) into
    /// `<Output>.<slug>.ndjson[.gz]`; recursive when input and output types are equal.
    Reference {
        paths: &'static [&'static str],
        slug: &'static str,
    },
    /// Inline attachment content into the input files themselves
    /// (docs/hydration.md#inlining-attachments).
    Inline,
    /// Search `PractitionerRole?practitioner=<id>` per Practitioner
    /// (docs/hydration.md#searching-practitioner-roles).
    SearchRoles,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub name: &'static str,
    pub group: Group,
    pub input: ResourceType,
    pub output: ResourceType,
    pub action: Action,
}

impl Task {
    /// `<Output>.<slug>`, the base of the file this task appends to (no file for inline).
    pub fn output_base(&self) -> Option<String> {
        match self.action {
            Action::Reference { slug, .. } => Some(format!("{}.{slug}", self.output)),
            Action::SearchRoles => Some(format!("{}.searched", self.output)),
            Action::Inline => None,
        }
    }

    /// Newly downloaded resources are themselves scanned for references (`obs-members`,
    /// `loc-loc`, `org-org`).
    pub fn is_recursive(&self) -> bool {
        matches!(self.action, Action::Reference { .. }) && self.input == self.output
    }
}

const fn reference(
    name: &'static str,
    group: Group,
    input: ResourceType,
    output: ResourceType,
    paths: &'static [&'static str],
) -> Task {
    Task {
        name,
        group,
        input,
        output,
        action: Action::Reference {
            paths,
            slug: "referenced",
        },
    }
}

const fn with_slug(mut task: Task, new_slug: &'static str) -> Task {
    if let Action::Reference { paths, .. } = task.action {
        task.action = Action::Reference {
            paths,
            slug: new_slug,
        };
    }
    task
}

const RECORDER_ASSERTER: &[&str] = &["recorder", "asserter"];
const DXR_PEOPLE: &[&str] = &["performer*", "resultsInterpreter*"];
const DOC_PEOPLE: &[&str] = &["subject", "author*", "authenticator"];
const ENC_PEOPLE: &[&str] = &["participant*.individual"];
const PERFORMER_ACTOR: &[&str] = &["performer*.actor"];
const MEDREQ_PEOPLE: &[&str] = &["reportedReference", "requester", "performer", "recorder"];
const PROCEDURE_PEOPLE: &[&str] = &["recorder", "asserter", "performer*.actor"];
const SERVREQ_PEOPLE: &[&str] = &["requester", "performer*"];
const SUBJECT: &[&str] = &["subject"];

use Group as G;

/// Every task of SMART Fetch 1.0.3, in registry order (docs/hydration.md#task-registry). One
/// line per task so the table reads like the one in the docs.
#[rustfmt::skip]
pub const TASKS: &[Task] = &[
    // episodeofcare
    reference("docref-epofcare", G::EpisodeOfCare, DocumentReference, EpisodeOfCare, &["context.encounter*"]),
    reference("enc-epofcare", G::EpisodeOfCare, Encounter, EpisodeOfCare, &["episodeOfCare*"]),
    reference("meddisp-epofcare", G::EpisodeOfCare, MedicationDispense, EpisodeOfCare, &["context"]),
    // inline
    Task { name: "doc-inline", group: G::Inline, input: DocumentReference, output: DocumentReference, action: Action::Inline },
    Task { name: "dxr-inline", group: G::Inline, input: DiagnosticReport, output: DiagnosticReport, action: Action::Inline },
    // medication
    reference("meddisp-med", G::Medication, MedicationDispense, Medication, &["medicationReference"]),
    reference("medreq-med", G::Medication, MedicationRequest, Medication, &["medicationReference"]),
    // observation
    with_slug(reference("dxr-results", G::Observation, DiagnosticReport, Observation, &["result*"]), "results"),
    with_slug(reference("obs-members", G::Observation, Observation, Observation, &["hasMember*"]), "members"),
    // specimen
    reference("dxr-spec", G::Specimen, DiagnosticReport, Specimen, &["specimen*"]),
    reference("obs-spec", G::Specimen, Observation, Specimen, &["specimen"]),
    reference("servreq-spec", G::Specimen, ServiceRequest, Specimen, &["specimen*"]),
    // practitioner
    reference("allergy-pract", G::Practitioner, AllergyIntolerance, Practitioner, RECORDER_ASSERTER),
    reference("allergy-practrole", G::Practitioner, AllergyIntolerance, PractitionerRole, RECORDER_ASSERTER),
    reference("cond-pract", G::Practitioner, Condition, Practitioner, RECORDER_ASSERTER),
    reference("cond-practrole", G::Practitioner, Condition, PractitionerRole, RECORDER_ASSERTER),
    reference("dxr-pract", G::Practitioner, DiagnosticReport, Practitioner, DXR_PEOPLE),
    reference("dxr-practrole", G::Practitioner, DiagnosticReport, PractitionerRole, DXR_PEOPLE),
    reference("doc-pract", G::Practitioner, DocumentReference, Practitioner, DOC_PEOPLE),
    reference("doc-practrole", G::Practitioner, DocumentReference, PractitionerRole, DOC_PEOPLE),
    reference("enc-pract", G::Practitioner, Encounter, Practitioner, ENC_PEOPLE),
    reference("enc-practrole", G::Practitioner, Encounter, PractitionerRole, ENC_PEOPLE),
    reference("epofcare-pract", G::Practitioner, EpisodeOfCare, Practitioner, &["careManager"]),
    reference("epofcare-practrole", G::Practitioner, EpisodeOfCare, PractitionerRole, &["careManager"]),
    reference("imm-pract", G::Practitioner, Immunization, Practitioner, PERFORMER_ACTOR),
    reference("imm-practrole", G::Practitioner, Immunization, PractitionerRole, PERFORMER_ACTOR),
    reference("meddisp-pract", G::Practitioner, MedicationDispense, Practitioner, &["performer*.actor", "receiver*", "substitution.responsibleParty*"]),
    reference("meddisp-practrole", G::Practitioner, MedicationDispense, PractitionerRole, &["performer*.actor", "substitution.responsibleParty*"]),
    reference("medreq-pract", G::Practitioner, MedicationRequest, Practitioner, MEDREQ_PEOPLE),
    reference("medreq-practrole", G::Practitioner, MedicationRequest, PractitionerRole, MEDREQ_PEOPLE),
    reference("obs-pract", G::Practitioner, Observation, Practitioner, &["performer*"]),
    reference("obs-practrole", G::Practitioner, Observation, PractitionerRole, &["performer*"]),
    reference("pat-pract", G::Practitioner, Patient, Practitioner, &["generalPractitioner*"]),
    reference("pat-practrole", G::Practitioner, Patient, PractitionerRole, &["generalPractitioner*"]),
    reference("procedure-pract", G::Practitioner, Procedure, Practitioner, PROCEDURE_PEOPLE),
    reference("procedure-practrole", G::Practitioner, Procedure, PractitionerRole, PROCEDURE_PEOPLE),
    reference("servreq-pract", G::Practitioner, ServiceRequest, Practitioner, SERVREQ_PEOPLE),
    reference("servreq-practrole", G::Practitioner, ServiceRequest, PractitionerRole, SERVREQ_PEOPLE),
    reference("spec-pract", G::Practitioner, Specimen, Practitioner, &["collection.collector"]),
    reference("spec-practrole", G::Practitioner, Specimen, PractitionerRole, &["collection.collector"]),
    Task { name: "pract-practrole", group: G::Practitioner, input: Practitioner, output: PractitionerRole, action: Action::SearchRoles },
    reference("practrole-pract", G::Practitioner, PractitionerRole, Practitioner, &["practitioner"]),
    // location
    reference("dev-loc", G::Location, Device, Location, &["location"]),
    reference("dxr-loc", G::Location, DiagnosticReport, Location, SUBJECT),
    reference("enc-loc", G::Location, Encounter, Location, &["hospitalization.origin", "hospitalization.destination", "location*.location"]),
    reference("imm-loc", G::Location, Immunization, Location, &["location"]),
    reference("meddisp-loc", G::Location, MedicationDispense, Location, &["location", "destination"]),
    reference("obs-loc", G::Location, Observation, Location, SUBJECT),
    reference("practrole-loc", G::Location, PractitionerRole, Location, &["location*"]),
    reference("proc-loc", G::Location, Procedure, Location, &["location"]),
    reference("servreq-loc", G::Location, ServiceRequest, Location, &["subject", "locationReference*"]),
    reference("spec-loc", G::Location, Specimen, Location, SUBJECT),
    reference("loc-loc", G::Location, Location, Location, &["partOf"]),
    // organization
    reference("dev-org", G::Organization, Device, Organization, &["owner"]),
    reference("dxr-org", G::Organization, DiagnosticReport, Organization, DXR_PEOPLE),
    reference("doc-org", G::Organization, DocumentReference, Organization, &["author*", "authenticator", "custodian"]),
    reference("enc-org", G::Organization, Encounter, Organization, &["hospitalization.origin", "hospitalization.destination", "serviceProvider"]),
    reference("epofcare-org", G::Organization, EpisodeOfCare, Organization, &["managingOrganization"]),
    reference("imm-org", G::Organization, Immunization, Organization, &["manufacturer", "performer*.actor", "protocolApplied*.authority"]),
    reference("loc-org", G::Organization, Location, Organization, &["managingOrganization"]),
    reference("meddisp-org", G::Organization, MedicationDispense, Organization, PERFORMER_ACTOR),
    reference("medreq-org", G::Organization, MedicationRequest, Organization, &["reportedReference", "requester", "performer", "dispenseRequest.performer"]),
    reference("obs-org", G::Organization, Observation, Organization, &["performer*"]),
    reference("pat-org", G::Organization, Patient, Organization, &["contact*.organization", "generalPractitioner*", "managingOrganization"]),
    reference("pract-org", G::Organization, Practitioner, Organization, &["qualification*.issuer"]),
    reference("practrole-org", G::Organization, PractitionerRole, Organization, &["organization"]),
    reference("proc-org", G::Organization, Procedure, Organization, &["performer*.actor", "performer*.onBehalfOf"]),
    reference("servreq-org", G::Organization, ServiceRequest, Organization, SERVREQ_PEOPLE),
    reference("org-org", G::Organization, Organization, Organization, &["partOf"]),
];

/// Outcome of task parsing (docs/hydration.md#choosing-tasks).
#[derive(Debug, PartialEq, Eq)]
pub enum TaskSelection {
    Selected(Vec<&'static Task>),
    /// `help` was asked for: print `task_help()` and exit 0.
    Help,
    /// Unknown token (lower-cased): print the complaint, a blank line, `task_help()`, exit 2.
    Unknown(String),
}

/// docs/hydration.md#choosing-tasks: lower-cased, split on `,` without trimming, absent = `all`.
/// `help` wins, then `none` (other tokens unchecked), then `all`; otherwise every token must be a
/// group. The result is in registry order whatever the order of the tokens.
pub fn parse(value: Option<&str>) -> TaskSelection {
    let lower = value.unwrap_or("all").to_lowercase();
    let tokens: Vec<&str> = lower.split(',').collect();
    if tokens.contains(&"help") {
        return TaskSelection::Help;
    }
    if tokens.contains(&"none") {
        return TaskSelection::Selected(Vec::new());
    }
    if tokens.contains(&"all") {
        return TaskSelection::Selected(TASKS.iter().collect());
    }
    let mut groups = Vec::new();
    for token in tokens {
        match Group::from_name(token) {
            Some(g) => groups.push(g),
            None => return TaskSelection::Unknown(token.to_string()),
        }
    }
    TaskSelection::Selected(TASKS.iter().filter(|t| groups.contains(&t.group)).collect())
}

/// `These hydration tasks are supported:` listing, without a trailing newline.
pub fn task_help() -> String {
    let mut names: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
    names.sort_unstable();
    let mut lines = vec!["These hydration tasks are supported:", "  all", "  none"]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    lines.extend(names.iter().map(|n| format!("  {n}")));
    lines.join("\n")
}

/// `parse` with its messages and exit codes, as `export` and `hydrate` need it. Like
/// `--type`, the complaint is an error (stderr in the text format) and the listing regular
/// output (stdout; the Python tool put both on stdout).
pub fn select(value: Option<&str>, reporter: &Reporter) -> Result<Vec<&'static Task>, AppError> {
    match parse(value) {
        TaskSelection::Selected(tasks) => Ok(tasks),
        TaskSelection::Help => {
            reporter.info(task_help());
            Err(AppError::Exit(0))
        }
        TaskSelection::Unknown(token) => {
            reporter.error(format!("Unknown hydration task provided: {token}"));
            reporter.info(format!("\n{}", task_help()));
            Err(AppError::Exit(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(selection: TaskSelection) -> Vec<&'static str> {
        match selection {
            TaskSelection::Selected(tasks) => tasks.iter().map(|t| t.name).collect(),
            other => panic!("not a selection: {other:?}"),
        }
    }

    #[test]
    fn registry_shape() {
        assert_eq!(TASKS.len(), 69);
        let unique: BTreeSet<&str> = TASKS.iter().map(|t| t.name).collect();
        assert_eq!(unique.len(), TASKS.len());
        // Groups appear in registry order, each contiguous.
        let mut order: Vec<Group> = TASKS.iter().map(|t| t.group).collect();
        order.dedup();
        assert_eq!(order, Group::ALL);
        let recursive: Vec<&str> = TASKS
            .iter()
            .filter(|t| t.is_recursive())
            .map(|t| t.name)
            .collect();
        assert_eq!(recursive, ["obs-members", "loc-loc", "org-org"]);
        let bases: BTreeSet<String> = TASKS.iter().filter_map(|t| t.output_base()).collect();
        let expected: BTreeSet<String> = [
            "EpisodeOfCare.referenced",
            "Medication.referenced",
            "Observation.results",
            "Observation.members",
            "Specimen.referenced",
            "Practitioner.referenced",
            "PractitionerRole.referenced",
            "PractitionerRole.searched",
            "Location.referenced",
            "Organization.referenced",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        assert_eq!(bases, expected);
    }

    #[test]
    fn parsing() {
        assert_eq!(names(parse(None)).len(), TASKS.len());
        assert_eq!(names(parse(Some("ALL"))).len(), TASKS.len());
        assert_eq!(names(parse(Some("none"))), Vec::<&str>::new());
        // `none` wins over unknown tokens, which are then not checked.
        assert_eq!(names(parse(Some("bogus,none"))), Vec::<&str>::new());
        assert_eq!(parse(Some("bogus,help")), TaskSelection::Help);
        assert_eq!(parse(Some("none,Help")), TaskSelection::Help);
        assert_eq!(
            parse(Some("medication,Bogus")),
            TaskSelection::Unknown("bogus".into())
        );
        // No trimming.
        assert_eq!(
            parse(Some("medication, inline")),
            TaskSelection::Unknown(" inline".into())
        );
        assert_eq!(parse(Some("")), TaskSelection::Unknown(String::new()));
        // Registry order, whatever the order typed.
        assert_eq!(
            names(parse(Some("Medication,EpisodeOfCare"))),
            [
                "docref-epofcare",
                "enc-epofcare",
                "meddisp-epofcare",
                "meddisp-med",
                "medreq-med"
            ]
        );
        assert_eq!(
            names(parse(Some("inline,inline"))),
            ["doc-inline", "dxr-inline"]
        );
        assert_eq!(
            names(parse(Some("specimen"))),
            ["dxr-spec", "obs-spec", "servreq-spec"]
        );
    }

    #[test]
    fn help_listing() {
        assert_eq!(
            task_help(),
            "These hydration tasks are supported:\n  all\n  none\n  episodeofcare\n  inline\n  \
             location\n  medication\n  observation\n  organization\n  practitioner\n  specimen"
        );
    }

    /// The symlink table (docs/folders.md#active-files, chains included) is the closure of this
    /// registry.
    #[test]
    fn symlink_sources_follow_the_registry() {
        for r in ResourceType::SCOPE_TYPES {
            let mut reach: BTreeSet<ResourceType> = [r].into_iter().collect();
            loop {
                let before = reach.len();
                for task in TASKS {
                    if reach.contains(&task.output) {
                        reach.insert(task.input);
                    }
                }
                if reach.len() == before {
                    break;
                }
            }
            let expected: BTreeSet<ResourceType> =
                reach.into_iter().filter(|t| t.is_patient_type()).collect();
            let table: BTreeSet<ResourceType> = crate::folder::symlinks::source_types(r)
                .iter()
                .copied()
                .collect();
            assert_eq!(table, expected, "source types of {r}");
        }
    }
}
