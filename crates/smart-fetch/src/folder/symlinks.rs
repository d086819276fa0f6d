//! The `Type.NNN.ndjson[.gz]` symlinks that pool a managed folder's active files
//! (docs/folders.md#symlinks), including hydrated types reached through chains. Only ever deletes
//! symlinks (never regular files) in the managed folder itself, and only links into workdirs with
//! relative targets, so the tree can be moved. Reads workdir `.metadata`, never writes it.

use super::metadata::OutputMetadata;
use super::workdir::{self, Workdir};
use super::{FolderError, ManagedMetadata, discovery};
use crate::report::Reporter;
use crate::resources::ResourceType;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use ResourceType::*;

/// Every patient-linked type, for the types reachable from all of them.
const ALL_PATIENT_TYPES: &[ResourceType] = &ResourceType::PATIENT_TYPES;

/// Patient-linked types other than Device: the inputs of the `*-pract`/`*-practrole` tasks.
const PRACTITIONER_SOURCES: &[ResourceType] = &[
    Patient,
    Encounter,
    AllergyIntolerance,
    Condition,
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
];

/// "Source export types" of R (docs/folders.md#active-files): the patient-linked types whose
/// export, in some workdir, can bring R files into that workdir. This is the transitive closure
/// over the hydration tasks of docs/hydration.md#task-registry (input → output), restricted to
/// patient-linked types. Unlike the original (docs/differences.md#symlinks-follow-hydration-chains)
/// chains count, which changes three rows:
/// * Location: `practrole-loc` reads PractitionerRoles, which come from every patient type
///   but Device (`*-practrole`, and `pract-practrole` via Practitioner), so Patient →
///   PractitionerRole → Location makes every patient type a source;
/// * Organization: `loc-org`, `pract-org` and `practrole-org` likewise make AllergyIntolerance,
///   Condition and Specimen sources (e.g. Condition → Practitioner → Organization);
/// * Practitioner / PractitionerRole gain nothing new (`practrole-pract`/`pract-practrole`
///   only link the two to each other).
///
/// The unit test `source_table_is_the_closure_of_hydration_tasks` recomputes this table from
/// the task list, so the two cannot drift apart silently.
pub fn source_types(r: ResourceType) -> &'static [ResourceType] {
    match r {
        Patient => &[Patient],
        Encounter => &[Encounter],
        AllergyIntolerance => &[AllergyIntolerance],
        Condition => &[Condition],
        Device => &[Device],
        DiagnosticReport => &[DiagnosticReport],
        DocumentReference => &[DocumentReference],
        // docref-epofcare, enc-epofcare, meddisp-epofcare
        EpisodeOfCare => &[
            DocumentReference,
            Encounter,
            EpisodeOfCare,
            MedicationDispense,
        ],
        Immunization => &[Immunization],
        MedicationDispense => &[MedicationDispense],
        MedicationRequest => &[MedicationRequest],
        // dxr-results, obs-members
        Observation => &[DiagnosticReport, Observation],
        Procedure => &[Procedure],
        ServiceRequest => &[ServiceRequest],
        // dxr-spec, obs-spec, servreq-spec (and DiagnosticReport → Observation → Specimen)
        Specimen => &[DiagnosticReport, Observation, ServiceRequest, Specimen],
        // Binary is never written as NDJSON by hydration.
        Binary => &[],
        // Patient → PractitionerRole → Location, plus the direct *-loc tasks.
        Location => ALL_PATIENT_TYPES,
        // meddisp-med, medreq-med
        Medication => &[MedicationDispense, MedicationRequest],
        // Condition → Practitioner/PractitionerRole → Organization, Device → Location →
        // Organization, plus the direct *-org tasks.
        Organization => ALL_PATIENT_TYPES,
        Practitioner | PractitionerRole => PRACTITIONER_SOURCES,
    }
}

/// Workdirs whose export of `e` is still current, newest first (docs/folders.md#active-files): a
/// filtered export is superseded once newer full exports covered all of its filters; an unfiltered
/// full export makes everything older obsolete.
fn active_workdirs(e: ResourceType, workdirs: &[(Workdir, OutputMetadata)]) -> Vec<&Workdir> {
    let mut full_filters: BTreeSet<String> = BTreeSet::new();
    let mut active = Vec::new();
    for (w, meta) in workdirs {
        let Some(f) = meta.filter_of(e) else {
            continue;
        };
        if !f.is_empty() && f.is_subset(&full_filters) {
            continue;
        }
        active.push(w);
        if !meta.since_resources().contains(e.as_str()) {
            if f.is_empty() {
                break;
            }
            full_filters.extend(f);
        }
    }
    active
}

/// `path` relative to `base`, both absolute and normalized; `..` where they diverge.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let p: Vec<Component> = path.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for comp in &p[common..] {
        out.push(comp.as_os_str());
    }
    out
}

#[cfg(unix)]
fn make_link(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Windows needs a privilege (or developer mode) for symlinks; when it is missing the error
/// surfaces as is rather than silently copying data, which Cumulus ETL would read twice.
#[cfg(windows)]
fn make_link(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn make_link(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symbolic links are not supported on this platform",
    ))
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> FolderError + '_ {
    move |source| FolderError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `reset-symlinks`: the folder must hold a non-empty managed `.metadata`
/// (docs/commands.md#reset-symlinks).
pub fn reset(managed_dir: &Path, reporter: &Reporter) -> Result<(), FolderError> {
    if ManagedMetadata::load(managed_dir)?.is_empty() {
        return Err(FolderError::NotManaged(managed_dir.display().to_string()));
    }
    rebuild(managed_dir, reporter)
}

/// Delete and recreate every type's symlinks in a managed folder (files that cannot be read
/// to learn their type are named to `reporter`).
pub fn rebuild(managed_dir: &Path, reporter: &Reporter) -> Result<(), FolderError> {
    let root = discovery::absolute_dir(managed_dir)
        .ok_or_else(|| FolderError::Missing(managed_dir.display().to_string()))?;

    // 1. Drop our old links (any `R.*` symlink), leaving regular files alone.
    let entries = fs::read_dir(&root).map_err(io_error(&root))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = ResourceType::SCOPE_TYPES
            .iter()
            .any(|t| name.starts_with(&format!("{t}.")));
        if ours && entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }

    // 2. Workdirs (newest first) with their metadata; listings are read lazily, once.
    let mut workdirs = Vec::new();
    for w in workdir::list(&root) {
        let meta = OutputMetadata::load(&w.path)?;
        workdirs.push((w, meta));
    }
    let mut listings: HashMap<PathBuf, Vec<(PathBuf, Option<String>)>> = HashMap::new();

    for r in ResourceType::SCOPE_TYPES {
        // Union of active workdirs over the source types, ordered by path string.
        let mut active: BTreeMap<String, PathBuf> = BTreeMap::new();
        for &e in source_types(r) {
            for w in active_workdirs(e, &workdirs) {
                active.insert(w.path.to_string_lossy().into_owned(), w.path.clone());
            }
        }
        let mut targets: Vec<PathBuf> = Vec::new();
        let mut seen = BTreeSet::new();
        for dir in active.values() {
            let listing = listings
                .entry(dir.clone())
                .or_insert_with(|| discovery::list(dir, reporter));
            for (path, t) in listing.iter() {
                if t.as_deref() == Some(r.as_str()) {
                    let rel = relative_to(path, &root);
                    if seen.insert(rel.clone()) {
                        targets.push(rel);
                    }
                }
            }
        }

        // 3. Number them. Re-runnable: whatever symlink holds the name is replaced.
        for (i, target) in targets.iter().enumerate() {
            let gz = target
                .file_name()
                .is_some_and(|n| n.to_string_lossy().to_lowercase().ends_with(".gz"));
            let name = format!("{r}.{:03}.ndjson{}", i + 1, if gz { ".gz" } else { "" });
            let link = root.join(name);
            if is_symlink(&link) {
                fs::remove_file(&link).map_err(io_error(&link))?;
            }
            make_link(target, &link).map_err(io_error(&link))?;
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::filters::{Filters, SinceMode};
    use crate::folder::ExportContext;
    use crate::folder::discovery::tests::{temp_dir, write};

    fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    /// Hydration tasks of docs/hydration.md#task-registry as (input, output), self-loops left out.
    const HYDRATION_EDGES: &[(ResourceType, ResourceType)] = &[
        (DocumentReference, EpisodeOfCare),
        (Encounter, EpisodeOfCare),
        (MedicationDispense, EpisodeOfCare),
        (MedicationDispense, Medication),
        (MedicationRequest, Medication),
        (DiagnosticReport, Observation),
        (DiagnosticReport, Specimen),
        (Observation, Specimen),
        (ServiceRequest, Specimen),
        (AllergyIntolerance, Practitioner),
        (AllergyIntolerance, PractitionerRole),
        (Condition, Practitioner),
        (Condition, PractitionerRole),
        (DiagnosticReport, Practitioner),
        (DiagnosticReport, PractitionerRole),
        (DocumentReference, Practitioner),
        (DocumentReference, PractitionerRole),
        (Encounter, Practitioner),
        (Encounter, PractitionerRole),
        (EpisodeOfCare, Practitioner),
        (EpisodeOfCare, PractitionerRole),
        (Immunization, Practitioner),
        (Immunization, PractitionerRole),
        (MedicationDispense, Practitioner),
        (MedicationDispense, PractitionerRole),
        (MedicationRequest, Practitioner),
        (MedicationRequest, PractitionerRole),
        (Observation, Practitioner),
        (Observation, PractitionerRole),
        (Patient, Practitioner),
        (Patient, PractitionerRole),
        (Procedure, Practitioner),
        (Procedure, PractitionerRole),
        (ServiceRequest, Practitioner),
        (ServiceRequest, PractitionerRole),
        (Specimen, Practitioner),
        (Specimen, PractitionerRole),
        (Practitioner, PractitionerRole),
        (PractitionerRole, Practitioner),
        (Device, Location),
        (DiagnosticReport, Location),
        (Encounter, Location),
        (Immunization, Location),
        (MedicationDispense, Location),
        (Observation, Location),
        (PractitionerRole, Location),
        (Procedure, Location),
        (ServiceRequest, Location),
        (Specimen, Location),
        (Device, Organization),
        (DiagnosticReport, Organization),
        (DocumentReference, Organization),
        (Encounter, Organization),
        (EpisodeOfCare, Organization),
        (Immunization, Organization),
        (Location, Organization),
        (MedicationDispense, Organization),
        (MedicationRequest, Organization),
        (Observation, Organization),
        (Patient, Organization),
        (Practitioner, Organization),
        (PractitionerRole, Organization),
        (Procedure, Organization),
        (ServiceRequest, Organization),
    ];

    #[test]
    fn source_table_is_the_closure_of_hydration_tasks() {
        for r in ResourceType::SCOPE_TYPES {
            let mut reach: BTreeSet<ResourceType> = [r].into_iter().collect();
            loop {
                let before = reach.len();
                for (input, output) in HYDRATION_EDGES {
                    if reach.contains(output) {
                        reach.insert(*input);
                    }
                }
                if reach.len() == before {
                    break;
                }
            }
            let expected: BTreeSet<ResourceType> =
                reach.into_iter().filter(|t| t.is_patient_type()).collect();
            let table: BTreeSet<ResourceType> = source_types(r).iter().copied().collect();
            assert_eq!(table, expected, "source types of {r}");
        }
    }

    fn export(
        root: &Path,
        name: &str,
        filters: &[(ResourceType, &[&str])],
        since: bool,
        files: &[&str],
    ) {
        let dir = root.join(name);
        let filters: Filters = filters
            .iter()
            .map(|(t, p)| (*t, p.iter().map(|s| s.to_string()).collect()))
            .collect();
        let ctx = ExportContext {
            since_resources: if since {
                filters.keys().copied().collect()
            } else {
                Default::default()
            },
            since: since.then(|| "2020-01-01".to_string()),
            since_mode: since.then_some(SinceMode::Updated),
            filters,
        };
        ok(ok(OutputMetadata::load(&dir)).note_context(&ctx));
        for file in files {
            write(&dir.join(file), "{}\n");
        }
    }

    fn links(root: &Path) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = ok(fs::read_dir(root))
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
            .map(|e| {
                let target = fs::read_link(e.path()).unwrap_or_default();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    target.to_string_lossy().into_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn managed(tag: &str) -> crate::folder::discovery::tests::TestDir {
        let root = temp_dir(tag);
        ok(ok(ManagedMetadata::load(&root)).note_context("http://example.invalid/R4", None));
        root
    }

    #[test]
    fn filters_are_independent() {
        let root = managed("sym-filters");
        let con = |name: &str, f: &[&str], since: bool| {
            export(
                &root,
                name,
                &[(Condition, f)],
                since,
                &["Condition.001.ndjson.gz"],
            );
            ok(rebuild(&root, &Reporter::silent()));
            links(&root)
                .into_iter()
                .map(|(_, t)| t.split('/').next().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(con("001.a", &["code=1234"], false), ["001.a"]);
        assert_eq!(con("002.b", &["severity=abcd"], false), ["001.a", "002.b"]);
        assert_eq!(
            con("003.c", &["code=1234"], true),
            ["001.a", "002.b", "003.c"]
        );
        assert_eq!(
            con("004.d", &["severity=abcd"], false),
            ["001.a", "003.c", "004.d"]
        );
        assert_eq!(con("005.e", &[], false), ["005.e"]);
        assert_eq!(
            links(&root),
            pairs(&[("Condition.001.ndjson.gz", "005.e/Condition.001.ndjson.gz")])
        );
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn random_file_is_ignored_and_names_follow_compression() {
        let root = managed("sym-random");
        export(&root, "001.x", &[(Patient, &[])], false, &[]);
        let work = root.join("001.x");
        write(
            &work.join("test.ndjson.gz"),
            "{\"resourceType\":\"Patient\"}\n",
        );
        write(
            &work.join("test.ndjson"),
            "{\"resourceType\":\"Patient\"}\n",
        );
        write(
            &work.join("random.ndjson"),
            "{\"resourceType\":\"Condition\"}\n",
        );
        write(&work.join("log.ndjson"), "{\"exportId\":\"fake-log\"}\n");
        write(&work.join("error/OperationOutcome.ndjson.gz"), "{}\n");
        // A regular file named like a link is left alone.
        write(&root.join("Condition.keep.ndjson"), "{}\n");
        ok(rebuild(&root, &Reporter::silent()));
        ok(rebuild(&root, &Reporter::silent())); // re-runnable
        assert_eq!(
            links(&root),
            pairs(&[
                ("Patient.001.ndjson", "001.x/test.ndjson"),
                ("Patient.002.ndjson.gz", "001.x/test.ndjson.gz"),
            ])
        );
        assert!(root.join("Condition.keep.ndjson").is_file());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn hydrated_types_follow_their_sources_and_chains() {
        let root = managed("sym-hydrate");
        // 001: Observation export with Locations hydrated; superseded by 003 below.
        export(
            &root,
            "001.a",
            &[(Observation, &[])],
            false,
            &["Observation.001.ndjson.gz", "Location.referenced.ndjson.gz"],
        );
        // 002: Procedure export with Locations.
        export(
            &root,
            "002.b",
            &[(Procedure, &[])],
            false,
            &["Procedure.001.ndjson.gz", "Location.referenced.ndjson.gz"],
        );
        // 003: Observation again, with results/members and Locations.
        export(
            &root,
            "003.c",
            &[(Observation, &[])],
            false,
            &[
                "Observation.001.ndjson.gz",
                "Observation.members.ndjson.gz",
                "Location.referenced.ndjson.gz",
            ],
        );
        // 004: Patient only; its Location arrived via Patient → PractitionerRole → Location.
        export(
            &root,
            "004.d",
            &[(Patient, &[])],
            false,
            &[
                "Patient.001.ndjson.gz",
                "PractitionerRole.referenced.ndjson.gz",
                "Location.referenced.ndjson.gz",
            ],
        );
        ok(rebuild(&root, &Reporter::silent()));
        let got: Vec<(String, String)> = links(&root)
            .into_iter()
            .filter(|(n, _)| n.starts_with("Location.") || n.starts_with("Observation."))
            .collect();
        assert_eq!(
            got,
            pairs(&[
                (
                    "Location.001.ndjson.gz",
                    "002.b/Location.referenced.ndjson.gz"
                ),
                (
                    "Location.002.ndjson.gz",
                    "003.c/Location.referenced.ndjson.gz"
                ),
                (
                    "Location.003.ndjson.gz",
                    "004.d/Location.referenced.ndjson.gz"
                ),
                (
                    "Observation.001.ndjson.gz",
                    "003.c/Observation.001.ndjson.gz"
                ),
                (
                    "Observation.002.ndjson.gz",
                    "003.c/Observation.members.ndjson.gz"
                ),
            ])
        );
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn reset_requires_managed_metadata() {
        let root = temp_dir("sym-reset");
        assert_eq!(
            reset(&root, &Reporter::silent())
                .err()
                .map(|e| e.to_string()),
            Some(format!(
                "Folder '{}' does not look like a SMART Fetch managed export folder.",
                root.display()
            ))
        );
        export(
            &root,
            "001.x",
            &[(Patient, &[])],
            false,
            &["Patient.ndjson"],
        );
        assert!(reset(&root.join("001.x"), &Reporter::silent()).is_err());
        ok(ok(ManagedMetadata::load(&root)).note_context("http://x", None));
        ok(reset(&root, &Reporter::silent()));
        assert_eq!(
            links(&root),
            pairs(&[("Patient.001.ndjson", "001.x/Patient.ndjson")])
        );
        assert_eq!(
            relative_to(Path::new("/a/b/c"), Path::new("/a/x")),
            PathBuf::from("../b/c")
        );
        let _ = fs::remove_dir_all(&root);
    }
}
