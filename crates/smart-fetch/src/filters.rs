//! Type selection, type filters and since handling (docs/cli.md#choosing-types to
//! docs/cli.md#default-observation-filter, docs/since.md): which types a run exports, with which
//! search parameters. Pure logic over the CLI values and server capabilities; the only output is
//! the handful of stdout lines the Python tool prints here (type help, skipped types, the
//! since-mode fallback).

use crate::error::AppError;
use crate::fhir::Capabilities;
use crate::report::Reporter;
use crate::resources::{ResourceType, default_observation_filter};
use crate::timestamp::{Timestamp, isoformat};
use std::collections::{BTreeMap, BTreeSet};

/// Type → set of search-parameter strings (ORed). An empty set means "no filter".
pub type Filters = BTreeMap<ResourceType, BTreeSet<String>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinceMode {
    Updated,
    Created,
}

impl SinceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SinceMode::Updated => "updated",
            SinceMode::Created => "created",
        }
    }
}

/// Outcome of `--type` parsing (docs/cli.md#choosing-types).
#[derive(Debug, PartialEq, Eq)]
pub enum TypeSelection {
    Selected(Vec<ResourceType>),
    /// `help` was asked for: print `type_help()` and exit 0.
    Help,
    /// Unknown token as typed: print the message, a blank line, `type_help()`, exit 2.
    Unknown(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("Type filter arguments must be in the format 'Resource?params'.")]
    BadFormat,
    #[error("Type filter for {0} but that type is not included in --type.")]
    NotSelected(String),
}

/// docs/cli.md#choosing-types. `values` are the `--type` arguments (empty = the default `all`);
/// each is split on `,` without trimming; tokens are case-insensitive. The first unknown token (in
/// the order given) wins over `help`; `all` selects every patient type; otherwise canonical order,
/// no duplicates.
pub fn parse_types(values: &[String]) -> TypeSelection {
    let tokens: Vec<&str> = if values.is_empty() {
        vec!["all"]
    } else {
        values.iter().flat_map(|v| v.split(',')).collect()
    };
    let is = |token: &str, word: &str| token.eq_ignore_ascii_case(word);

    if let Some(unknown) = tokens.iter().find(|t| {
        !is(t, "all") && !is(t, "help") && ResourceType::parse_patient_type_ci(t).is_none()
    }) {
        return TypeSelection::Unknown((*unknown).to_string());
    }
    if tokens.iter().any(|t| is(t, "help")) {
        return TypeSelection::Help;
    }
    if tokens.iter().any(|t| is(t, "all")) {
        return TypeSelection::Selected(ResourceType::PATIENT_TYPES.to_vec());
    }
    let chosen: BTreeSet<ResourceType> = tokens
        .iter()
        .filter_map(|t| ResourceType::parse_patient_type_ci(t))
        .collect();
    // ResourceType's order is the canonical order (docs/cli.md#resource-types).
    TypeSelection::Selected(chosen.into_iter().collect())
}

/// `These resource types are supported:` listing (docs/cli.md#choosing-types), lines joined by
/// `\n`, without a trailing newline.
pub fn type_help() -> String {
    let mut lines = vec![
        "These resource types are supported:".to_string(),
        "  all".to_string(),
    ];
    lines.extend(
        ResourceType::PATIENT_TYPES
            .iter()
            .map(|t| format!("  {}", t.as_str())),
    );
    lines.join("\n")
}

/// `parse_types` plus its messages and exit codes, as every command needs it: `help`
/// reports the listing and ends with `AppError::Exit(0)`; an unknown token reports
/// `Unknown resource type provided: <t>` as an error (stderr in the text format), then a
/// blank line and the listing as regular output (stdout; the Python tool put all three on
/// stdout), and ends with `AppError::Exit(2)`.
pub fn select_types(values: &[String], reporter: &Reporter) -> Result<Vec<ResourceType>, AppError> {
    match parse_types(values) {
        TypeSelection::Selected(types) => Ok(types),
        TypeSelection::Help => {
            reporter.info(type_help());
            Err(AppError::Exit(0))
        }
        TypeSelection::Unknown(token) => {
            reporter.error(format!("Unknown resource type provided: {token}"));
            reporter.info(format!("\n{}", type_help()));
            Err(AppError::Exit(2))
        }
    }
}

/// docs/cli.md#types-the-server-lacks; reports `Skipping <Type> because the server does not support
/// it.` for each dropped type, alphabetically.
pub fn limit_to_server(
    types: Vec<ResourceType>,
    caps: &Capabilities,
    reporter: &Reporter,
) -> Vec<ResourceType> {
    let Some(supported) = caps.supported_types() else {
        return types;
    };
    let (kept, dropped): (Vec<_>, Vec<_>) = types
        .into_iter()
        .partition(|t| supported.iter().any(|s| s == t.as_str()));
    let mut dropped: Vec<&str> = dropped.iter().map(|t| t.as_str()).collect();
    dropped.sort_unstable();
    for name in dropped {
        reporter.info(format!(
            "Skipping {name} because the server does not support it."
        ));
    }
    kept
}

/// docs/cli.md#type-filters + default filters (docs/cli.md#default-observation-filter). Every
/// selected type gets an entry.
pub fn build_filters(
    type_filters: &[String],
    types: &[ResourceType],
    default_filters: bool,
    epic: bool,
) -> Result<Filters, FilterError> {
    let mut filters: Filters = types.iter().map(|t| (*t, BTreeSet::new())).collect();
    for value in type_filters {
        let Some((name, params)) = value.split_once('?') else {
            return Err(FilterError::BadFormat);
        };
        let selected = types.iter().find(|t| t.as_str() == name);
        let Some(entry) = selected.and_then(|t| filters.get_mut(t)) else {
            return Err(FilterError::NotSelected(name.to_string()));
        };
        entry.insert(params.to_string());
    }
    if default_filters
        && let Some(observation) = filters.get_mut(&ResourceType::Observation)
        && observation.is_empty()
    {
        observation.insert(default_observation_filter(epic).to_string());
    }
    Ok(filters)
}

/// docs/since.md#since-modes (`auto` reports the fallback message when it picks `created`).
/// `requested` is `None` for `--since-mode=auto`; the result is `None` when there is no `--since`.
pub fn since_mode(
    requested: Option<SinceMode>,
    since: Option<&str>,
    caps: &Capabilities,
    reporter: &Reporter,
) -> Option<SinceMode> {
    since?;
    if let Some(mode) = requested {
        return Some(mode);
    }
    if caps.supports_search_param("Patient", "_lastUpdated") {
        Some(SinceMode::Updated)
    } else {
        reporter
            .info("Server doesn't support 'updated' since mode, defaulting to 'created' instead.");
        Some(SinceMode::Created)
    }
}

/// The created-mode search parameter of a type, if the server declares it
/// (docs/since.md#created-date-fields, docs/since.md#declared-search-parameters).
pub fn created_param(t: ResourceType, caps: &Capabilities) -> Option<&'static str> {
    t.created_search_param()
        .filter(|param| caps.supports_search_param(t.as_str(), param))
}

/// docs/since.md#types-with-a-since-restriction.
pub fn since_resources(
    types: &[ResourceType],
    mode: Option<SinceMode>,
    caps: &Capabilities,
) -> BTreeSet<ResourceType> {
    match mode {
        None => BTreeSet::new(),
        Some(SinceMode::Created) => types
            .iter()
            .copied()
            .filter(|t| created_param(*t, caps).is_some())
            .collect(),
        Some(SinceMode::Updated) => types.iter().copied().collect(),
    }
}

/// The since value to apply (docs/since.md#search-parameters-with-a-since).
#[derive(Clone, Debug)]
pub enum Since {
    None,
    Literal(String),
    PerType(BTreeMap<ResourceType, Timestamp>),
}

impl Since {
    /// The value for one type: the literal, or that type's timestamp (isoformat); `None` when
    /// this type gets no since restriction.
    pub fn value_for(&self, t: ResourceType) -> Option<String> {
        match self {
            Since::None => None,
            Since::Literal(value) => Some(value.clone()),
            Since::PerType(map) => map.get(&t).map(isoformat),
        }
    }
}

/// docs/since.md#search-parameters-with-a-since: base filters plus since parameters. In updated
/// mode a bulk export gets no extra filters (it uses `_since`, see `bulk_since`).
pub fn effective_params(
    base: &Filters,
    since: &Since,
    mode: Option<SinceMode>,
    caps: &Capabilities,
    bulk: bool,
) -> Filters {
    let Some(mode) = mode else {
        return base.clone();
    };
    if matches!(since, Since::None) || (mode == SinceMode::Updated && bulk) {
        return base.clone();
    }
    base.iter()
        .map(|(t, filters)| {
            let param = match mode {
                SinceMode::Created => created_param(*t, caps),
                SinceMode::Updated => Some("_lastUpdated"),
            };
            let extra = param.zip(since.value_for(*t));
            let filters = match extra {
                Some((param, value)) => append(filters, &format!("{param}=gt{value}")),
                None => filters.clone(),
            };
            (*t, filters)
        })
        .collect()
}

/// "Append" of docs/since.md#search-parameters-with-a-since: each filter becomes `<filter>&<new>`;
/// no filter → just `<new>`.
fn append(filters: &BTreeSet<String>, new: &str) -> BTreeSet<String> {
    if filters.is_empty() {
        BTreeSet::from([new.to_string()])
    } else {
        filters.iter().map(|f| format!("{f}&{new}")).collect()
    }
}

/// docs/since.md#the-bulk-since-value: the bulk `_since` value. `types` are the selected types.
pub fn bulk_since(
    since: &Since,
    mode: Option<SinceMode>,
    types: &[ResourceType],
) -> Option<String> {
    if mode == Some(SinceMode::Created) {
        return None;
    }
    match since {
        Since::None => None,
        Since::Literal(value) => Some(value.clone()),
        Since::PerType(map) => {
            let mut earliest: Option<&Timestamp> = None;
            for t in types {
                let ts = map.get(t)?;
                if earliest.is_none_or(|e| ts < e) {
                    earliest = Some(ts);
                }
            }
            earliest.map(isoformat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceType as T;
    use serde_json::json;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    /// A CapabilityStatement declaring `types`, each with the given search params.
    fn caps(types: &[(&str, &[&str])]) -> Capabilities {
        let resources: Vec<_> = types
            .iter()
            .map(|(t, params)| {
                let params: Vec<_> = params.iter().map(|p| json!({"name": p})).collect();
                json!({"type": t, "searchParam": params})
            })
            .collect();
        Capabilities::new(json!({
            "resourceType": "CapabilityStatement",
            "rest": [{"mode": "server", "resource": resources}]
        }))
    }

    #[test]
    fn types_default_to_all() {
        assert_eq!(
            parse_types(&[]),
            TypeSelection::Selected(T::PATIENT_TYPES.to_vec())
        );
        assert_eq!(
            parse_types(&strings(&["ALL"])),
            TypeSelection::Selected(T::PATIENT_TYPES.to_vec())
        );
        assert_eq!(
            parse_types(&strings(&["Condition", "all"])),
            TypeSelection::Selected(T::PATIENT_TYPES.to_vec())
        );
    }

    #[test]
    fn types_are_case_insensitive_canonical_and_deduplicated() {
        assert_eq!(
            parse_types(&strings(&["condITION,PATient"])),
            TypeSelection::Selected(vec![T::Patient, T::Condition])
        );
        assert_eq!(
            parse_types(&strings(&[
                "Observation",
                "Condition,observation",
                "Specimen"
            ])),
            TypeSelection::Selected(vec![T::Condition, T::Observation, T::Specimen])
        );
    }

    #[test]
    fn types_help_and_unknown() {
        assert_eq!(parse_types(&strings(&["help"])), TypeSelection::Help);
        assert_eq!(
            parse_types(&strings(&["Patient,HELP"])),
            TypeSelection::Help
        );
        assert_eq!(
            parse_types(&strings(&["bogus"])),
            TypeSelection::Unknown("bogus".into())
        );
        // Unknown wins over help.
        assert_eq!(
            parse_types(&strings(&["help,bogus"])),
            TypeSelection::Unknown("bogus".into())
        );
        // No trimming; empty tokens are unknown; non-patient types are unknown.
        assert_eq!(
            parse_types(&strings(&["Patient, Condition"])),
            TypeSelection::Unknown(" Condition".into())
        );
        assert_eq!(
            parse_types(&strings(&["Patient,"])),
            TypeSelection::Unknown("".into())
        );
        assert_eq!(
            parse_types(&strings(&["Medication"])),
            TypeSelection::Unknown("Medication".into())
        );
        // Reported as typed.
        assert_eq!(
            parse_types(&strings(&["Patient", "BoGuS"])),
            TypeSelection::Unknown("BoGuS".into())
        );
    }

    #[test]
    fn type_help_text() {
        let expected = "These resource types are supported:\n  all\n  Patient\n  Encounter\n  \
            AllergyIntolerance\n  Condition\n  Device\n  DiagnosticReport\n  DocumentReference\n  \
            EpisodeOfCare\n  Immunization\n  MedicationDispense\n  MedicationRequest\n  \
            Observation\n  Procedure\n  ServiceRequest\n  Specimen";
        assert_eq!(type_help(), expected);
    }

    #[test]
    fn select_types_exit_codes() {
        assert!(matches!(
            select_types(&strings(&["help"]), &Reporter::silent()),
            Err(AppError::Exit(0))
        ));
        assert!(matches!(
            select_types(&strings(&["bogus"]), &Reporter::silent()),
            Err(AppError::Exit(2))
        ));
        assert_eq!(
            select_types(&strings(&["Device"]), &Reporter::silent()).ok(),
            Some(vec![T::Device])
        );
    }

    #[test]
    fn server_limits_types() {
        let c = caps(&[("Patient", &[]), ("Condition", &[])]);
        assert_eq!(
            limit_to_server(
                vec![T::Patient, T::Condition, T::Device],
                &c,
                &Reporter::silent()
            ),
            vec![T::Patient, T::Condition]
        );
        // No CapabilityStatement: keep everything.
        let empty = Capabilities::default();
        assert_eq!(
            limit_to_server(vec![T::Patient, T::Device], &empty, &Reporter::silent()),
            vec![T::Patient, T::Device]
        );
        // A server entry without `resource` is skipped in favour of one with it.
        let c = Capabilities::new(json!({"rest": [
            {"mode": "client", "resource": [{"type": "Device"}]},
            {"mode": "server"},
            {"mode": "server", "resource": [{"type": "Device"}]}
        ]}));
        assert_eq!(
            limit_to_server(vec![T::Patient, T::Device], &c, &Reporter::silent()),
            vec![T::Device]
        );
    }

    #[test]
    fn filter_format_errors() {
        let types = [T::Patient, T::Condition];
        let err = build_filters(&strings(&["bogus"]), &types, true, false).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("Type filter arguments must be in the format 'Resource?params'.")
        );
        let err = build_filters(&strings(&["Device?code=1"]), &types, true, false).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("Type filter for Device but that type is not included in --type.")
        );
        // Case-sensitive type names.
        let err = build_filters(&strings(&["patient?active=true"]), &types, true, false).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("Type filter for patient but that type is not included in --type.")
        );
    }

    #[test]
    fn filters_collect_per_type() {
        let types = [T::Patient, T::Condition, T::Device];
        let filters = build_filters(
            &strings(&[
                "Condition?code=1",
                "Condition?code=2",
                "Condition?code=1",
                "Patient?active=true?x",
            ]),
            &types,
            true,
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(filters.len(), 3);
        assert_eq!(filters[&T::Condition], set(&["code=1", "code=2"]));
        assert_eq!(filters[&T::Patient], set(&["active=true?x"]));
        assert!(filters[&T::Device].is_empty());
    }

    #[test]
    fn default_observation_filter_rules() {
        let non_epic = "category=social-history,vital-signs,imaging,laboratory,survey,exam,procedure,therapy,activity";
        let epic = "category=social-history,vital-signs,imaging,laboratory,survey,exam";
        let types = [T::Condition, T::Observation];

        let f = build_filters(&[], &types, true, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f[&T::Observation], set(&[non_epic]));
        assert!(f[&T::Condition].is_empty());

        let f = build_filters(&[], &types, true, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f[&T::Observation], set(&[epic]));

        let f = build_filters(&[], &types, false, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(f[&T::Observation].is_empty());

        let custom = strings(&["Observation?code=1", "Observation?code=2"]);
        let f = build_filters(&custom, &types, true, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f[&T::Observation], set(&["code=1", "code=2"]));

        let f = build_filters(&[], &[T::Condition], true, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(!f.contains_key(&T::Observation));
    }

    #[test]
    fn since_mode_rules() {
        let with_updated = caps(&[("Patient", &["_lastUpdated"])]);
        let without = caps(&[("Patient", &["name"])]);
        assert_eq!(
            since_mode(None, None, &with_updated, &Reporter::silent()),
            None
        );
        assert_eq!(
            since_mode(
                Some(SinceMode::Created),
                None,
                &with_updated,
                &Reporter::silent()
            ),
            None
        );
        assert_eq!(
            since_mode(
                Some(SinceMode::Created),
                Some("2020"),
                &with_updated,
                &Reporter::silent()
            ),
            Some(SinceMode::Created)
        );
        assert_eq!(
            since_mode(
                Some(SinceMode::Updated),
                Some("2020"),
                &without,
                &Reporter::silent()
            ),
            Some(SinceMode::Updated)
        );
        assert_eq!(
            since_mode(None, Some("2020"), &with_updated, &Reporter::silent()),
            Some(SinceMode::Updated)
        );
        assert_eq!(
            since_mode(None, Some("2020"), &without, &Reporter::silent()),
            Some(SinceMode::Created)
        );
        assert_eq!(
            since_mode(
                None,
                Some("2020"),
                &Capabilities::default(),
                &Reporter::silent()
            ),
            Some(SinceMode::Created)
        );
        assert_eq!(SinceMode::Created.as_str(), "created");
    }

    fn all_created_caps() -> Capabilities {
        caps(&[
            ("Patient", &["_lastUpdated"]),
            ("AllergyIntolerance", &["date"]),
            ("Condition", &["recorded-date"]),
            ("DiagnosticReport", &["issued"]),
            ("DocumentReference", &["date"]),
            ("MedicationRequest", &["authoredon"]),
            ("Observation", &["issued"]),
            ("ServiceRequest", &["authored"]),
            ("Immunization", &["date"]),
        ])
    }

    #[test]
    fn since_resources_rules() {
        let all = T::PATIENT_TYPES;
        let c = all_created_caps();
        assert!(since_resources(&all, None, &c).is_empty());
        assert_eq!(
            since_resources(&all, Some(SinceMode::Updated), &c),
            all.iter().copied().collect()
        );
        let created = since_resources(&all, Some(SinceMode::Created), &c);
        assert_eq!(
            created,
            BTreeSet::from([
                T::AllergyIntolerance,
                T::Condition,
                T::DiagnosticReport,
                T::DocumentReference,
                T::MedicationRequest,
                T::Observation,
                T::ServiceRequest,
            ])
        );
        // Only declared fields count.
        let c = caps(&[
            ("Condition", &["recorded-date"]),
            ("Observation", &["code"]),
        ]);
        assert_eq!(
            since_resources(&all, Some(SinceMode::Created), &c),
            BTreeSet::from([T::Condition])
        );
    }

    fn base() -> Filters {
        Filters::from([
            (T::Patient, BTreeSet::new()),
            (T::Condition, set(&["code=1", "code=2"])),
            (T::Observation, set(&["category=laboratory"])),
            (T::Device, BTreeSet::new()),
        ])
    }

    #[test]
    fn effective_params_without_since() {
        let c = all_created_caps();
        assert_eq!(
            effective_params(&base(), &Since::None, Some(SinceMode::Updated), &c, false),
            base()
        );
        assert_eq!(
            effective_params(&base(), &Since::Literal("x".into()), None, &c, false),
            base()
        );
    }

    #[test]
    fn effective_params_updated() {
        let c = all_created_caps();
        let since = Since::Literal("2022-01-05".into());
        let crawl = effective_params(&base(), &since, Some(SinceMode::Updated), &c, false);
        assert_eq!(crawl[&T::Patient], set(&["_lastUpdated=gt2022-01-05"]));
        assert_eq!(
            crawl[&T::Condition],
            set(&[
                "code=1&_lastUpdated=gt2022-01-05",
                "code=2&_lastUpdated=gt2022-01-05"
            ])
        );
        assert_eq!(crawl[&T::Device], set(&["_lastUpdated=gt2022-01-05"]));
        // Bulk uses `_since` instead.
        let bulk = effective_params(&base(), &since, Some(SinceMode::Updated), &c, true);
        assert_eq!(bulk, base());
    }

    #[test]
    fn effective_params_created() {
        let c = all_created_caps();
        let since = Since::Literal("2022-01-05".into());
        for bulk in [false, true] {
            let f = effective_params(&base(), &since, Some(SinceMode::Created), &c, bulk);
            assert!(f[&T::Patient].is_empty());
            assert!(f[&T::Device].is_empty());
            assert_eq!(
                f[&T::Condition],
                set(&[
                    "code=1&recorded-date=gt2022-01-05",
                    "code=2&recorded-date=gt2022-01-05"
                ])
            );
            assert_eq!(
                f[&T::Observation],
                set(&["category=laboratory&issued=gt2022-01-05"])
            );
        }
        // Undeclared field: no since for that type.
        let c = caps(&[("Condition", &["recorded-date"])]);
        let f = effective_params(&base(), &since, Some(SinceMode::Created), &c, false);
        assert_eq!(f[&T::Observation], set(&["category=laboratory"]));
    }

    fn ts(text: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn effective_params_per_type() {
        let c = all_created_caps();
        let since = Since::PerType(BTreeMap::from([
            (T::Condition, ts("2021-09-14T01:23:45+04:00")),
            (T::Patient, ts("2021-09-14T01:23:45.5+00:00")),
        ]));
        let f = effective_params(&base(), &since, Some(SinceMode::Updated), &c, false);
        assert_eq!(
            f[&T::Patient],
            set(&["_lastUpdated=gt2021-09-14T01:23:45.500000+00:00"])
        );
        assert_eq!(
            f[&T::Condition],
            set(&[
                "code=1&_lastUpdated=gt2021-09-14T01:23:45+04:00",
                "code=2&_lastUpdated=gt2021-09-14T01:23:45+04:00"
            ])
        );
        // Types without a previous timestamp get no since.
        assert!(f[&T::Device].is_empty());
        assert_eq!(f[&T::Observation], set(&["category=laboratory"]));
    }

    #[test]
    fn bulk_since_rules() {
        let types = [T::Patient, T::Condition];
        let literal = Since::Literal("2022-03-23".into());
        assert_eq!(
            bulk_since(&literal, Some(SinceMode::Updated), &types).as_deref(),
            Some("2022-03-23")
        );
        assert_eq!(bulk_since(&literal, Some(SinceMode::Created), &types), None);
        assert_eq!(bulk_since(&Since::None, None, &types), None);
        let per_type = Since::PerType(BTreeMap::from([
            (T::Condition, ts("2021-09-14T01:23:45+04:00")),
            (T::Patient, ts("2021-09-13T00:00:00+00:00")),
        ]));
        assert_eq!(
            bulk_since(&per_type, Some(SinceMode::Updated), &types).as_deref(),
            Some("2021-09-13T00:00:00+00:00")
        );
        let missing = [T::Patient, T::Condition, T::Device];
        assert_eq!(
            bulk_since(&per_type, Some(SinceMode::Updated), &missing),
            None
        );
    }
}
