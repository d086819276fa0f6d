//! Search: strict parameter validation (unknown parameters are errors), the Epic flavor's
//! restrictions, filtering, and stateless paging into a searchset Bundle. Every parameter
//! takes a comma-separated OR list; `_id` finds whatever a read finds (hidden resources
//! too, which no other search returns), so a client can read many resources in one search.

use crate::catalog::{self, Kind, TypeInfo};
use crate::config::Flavor;
use crate::data::{self, MRN_SYSTEM};
use crate::instant::{self, DateFilter};
use crate::store::Store;
use crate::switches::ValueLists;
use serde_json::{Value, json};

/// Largest page served, whatever `_count` asks for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One search as received.
pub struct SearchRequest<'a> {
    pub info: &'static TypeInfo,
    pub flavor: Flavor,
    /// The raw query string (without `?`).
    pub raw_query: &'a str,
    /// The decoded query pairs, in order.
    pub pairs: &'a [(String, String)],
    /// e.g. `http://127.0.0.1:1234/fhir`.
    pub base_url: &'a str,
    pub default_page_size: usize,
    /// Drop `patient` / `subject` and answer with every patient's resources of the type
    /// (`Config::ignore_patient_param`).
    pub ignore_patient: bool,
    /// `_id` with several values: answered, refused or ignored (`switches::ValueLists`).
    pub id_lists: ValueLists,
    /// `identifier` with several values, likewise.
    pub identifier_lists: ValueLists,
    /// `patient` / `subject` with several values, likewise.
    pub patient_lists: ValueLists,
    /// `_id` searches must also name the patient (`Config::id_search_needs_patient`).
    pub id_needs_patient: bool,
    /// `Type/id`s whose reads are refused or failing (`Server::set_refused_reads`,
    /// `set_failing_reads`): an `_id` search leaves them out, as a server that will not
    /// hand a resource over does not list it either.
    pub withheld: &'a (dyn Fn(&str) -> bool + Sync),
}

/// A token search value: `system|code`, `|code` (no system) or `code` (any system).
#[derive(Debug)]
struct Token {
    system: Option<String>,
    code: String,
}

impl Token {
    fn parse(value: &str) -> Self {
        match value.split_once('|') {
            Some((system, code)) => Self {
                system: Some(system.to_string()),
                code: code.to_string(),
            },
            None => Self {
                system: None,
                code: value.to_string(),
            },
        }
    }

    fn system_matches(&self, system: Option<&str>) -> bool {
        match self.system.as_deref() {
            None => true,
            Some("") => system.is_none(),
            Some(wanted) => system == Some(wanted),
        }
    }
}

#[derive(Debug)]
enum Filter {
    Id(Vec<String>),
    /// Patient ids (`pat-000012`), from `patient` or `subject`.
    Patient(Vec<String>),
    /// Practitioner ids (`prac-07`), from `practitioner` (PractitionerRole).
    Practitioner(Vec<String>),
    Identifier(Vec<Token>),
    Category(Vec<Token>),
    Code(Vec<Token>),
    Date(&'static str, DateFilter),
}

struct Parsed {
    filters: Vec<Filter>,
    count: Option<usize>,
    offset: usize,
}

/// Runs the search; `Err` is a message for a 400 OperationOutcome.
pub fn search(store: &Store, req: &SearchRequest<'_>) -> Result<Value, String> {
    let mut parsed = parse(req)?;
    let info = req.info;
    let page_size = parsed
        .count
        .unwrap_or(req.default_page_size)
        .min(MAX_PAGE_SIZE);
    let offset = parsed.offset;

    // All patients, unfiltered: page straight through without generating the rest.
    if info.kind == Kind::Patient && parsed.filters.is_empty() {
        let total = store.existing_patient_count();
        let page: Vec<Value> = if store.quarter() == crate::data::FIRST_QUARTER {
            let end = offset.saturating_add(page_size).min(total);
            (offset.min(end)..end)
                .filter_map(|i| store.patient(i))
                .collect()
        } else {
            // Some indices are gone in later quarters: count the ones that exist.
            (0..store.patient_count())
                .filter(|&i| store.patient_exists(i))
                .skip(offset)
                .take(page_size)
                .filter_map(|i| store.patient(i))
                .collect()
        };
        return Ok(bundle(req, page, total, offset, page_size));
    }

    let candidates = if req.ignore_patient && info.kind == Kind::Linked {
        parsed.filters.retain(|f| !matches!(f, Filter::Patient(_)));
        (0..store.patient_count())
            .filter(|&i| store.patient_exists(i))
            .flat_map(|i| store.of_patient(info.name, i))
            .collect()
    } else {
        candidates(store, info, &parsed.filters, req.withheld)?
    };
    let matches: Vec<Value> = candidates
        .into_iter()
        .filter(|r| parsed.filters.iter().all(|f| matches(r, f)))
        .collect();
    let total = matches.len();
    let page: Vec<Value> = matches.into_iter().skip(offset).take(page_size).collect();
    Ok(bundle(req, page, total, offset, page_size))
}

fn parse(req: &SearchRequest<'_>) -> Result<Parsed, String> {
    let info = req.info;
    let ty = info.name;
    if info.kind == Kind::Binary {
        return Err("Binary resources can only be read, not searched".into());
    }
    let supported = catalog::search_params(info, req.flavor);
    let mut parsed = Parsed {
        filters: Vec::new(),
        count: None,
        offset: 0,
    };
    for (key, value) in req.pairs {
        let key = key.as_str();
        match key {
            "_count" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| format!("_count must be a non-negative integer, got {value:?}"))?;
                parsed.count = Some(n);
                continue;
            }
            "_offset" => {
                parsed.offset = value.parse::<usize>().map_err(|_| {
                    format!("_offset must be a non-negative integer, got {value:?}")
                })?;
                continue;
            }
            "_lastUpdated" if req.flavor == Flavor::Epic => {
                return Err(format!(
                    "The search parameter _lastUpdated is not supported for {ty} on this server"
                ));
            }
            _ => {}
        }
        if !supported.iter().any(|(name, _)| *name == key) {
            return Err(format!("Unknown search parameter {key:?} for {ty}"));
        }
        if value.is_empty() {
            return Err(format!("Search parameter {key:?} has an empty value"));
        }
        let values = value.split(',').count();
        let lists = match key {
            "_id" => req.id_lists,
            "identifier" => req.identifier_lists,
            "patient" | "subject" => req.patient_lists,
            _ => ValueLists::Accept,
        };
        let value = match lists {
            ValueLists::Refuse if values > 1 => {
                return Err(format!(
                    "Search parameter {key:?} takes one value on this server, got {values}"
                ));
            }
            ValueLists::Ignore if values > 1 => continue,
            ValueLists::First => value.split(',').next().unwrap_or_default(),
            _ => value.as_str(),
        };
        let list = || value.split(',').map(str::to_string).collect::<Vec<_>>();
        let tokens = || value.split(',').map(Token::parse).collect::<Vec<_>>();
        let filter = match key {
            "_id" => Filter::Id(list()),
            "patient" | "subject" => Filter::Patient(
                value
                    .split(',')
                    .map(|v| patient_reference(key, v))
                    .collect::<Result<_, _>>()?,
            ),
            "practitioner" => Filter::Practitioner(
                value
                    .split(',')
                    .map(|v| typed_reference(key, "Practitioner", v))
                    .collect::<Result<_, _>>()?,
            ),
            "identifier" => Filter::Identifier(tokens()),
            "category" => Filter::Category(tokens()),
            "code" => Filter::Code(tokens()),
            "_lastUpdated" => Filter::Date("lastUpdated", DateFilter::parse(value)?),
            _ => match info.created {
                Some((param, field)) if param == key => {
                    Filter::Date(field, DateFilter::parse(value)?)
                }
                _ => return Err(format!("Unknown search parameter {key:?} for {ty}")),
            },
        };
        parsed.filters.push(filter);
    }

    let has = |pred: fn(&Filter) -> bool| parsed.filters.iter().any(pred);
    let by_patient = has(|f| matches!(f, Filter::Patient(_)));
    let by_id = has(|f| matches!(f, Filter::Id(_)));
    if req.flavor == Flavor::Epic {
        if by_patient && matches!(ty, "EpisodeOfCare" | "Specimen") {
            return Err(format!("{ty} cannot be searched by patient on this server"));
        }
        if ty == "Observation" && !by_id && !has(|f| matches!(f, Filter::Category(_))) {
            return Err("Observation searches require a category parameter".into());
        }
    }
    if by_id && !by_patient && req.id_needs_patient {
        return Err(format!(
            "{ty} searches by _id need a patient or subject parameter on this server"
        ));
    }
    if info.kind == Kind::Linked && !by_patient && !by_id {
        return Err(format!(
            "{ty} searches require a patient, subject or _id parameter"
        ));
    }
    Ok(parsed)
}

/// `pat-000012`, `Patient/pat-000012` or an absolute `.../Patient/pat-000012` → the id.
fn patient_reference(param: &str, value: &str) -> Result<String, String> {
    typed_reference(param, "Patient", value)
}

/// `<id>`, `<ty>/<id>` or an absolute `.../<ty>/<id>` → the id.
fn typed_reference(param: &str, ty: &str, value: &str) -> Result<String, String> {
    let id = match value.rsplit_once(&format!("{ty}/")) {
        Some((_, id)) => id,
        None if value.contains('/') => {
            return Err(format!("{param}={value:?} must reference a {ty}"));
        }
        None => value,
    };
    if id.is_empty() {
        return Err(format!("{param}={value:?} has no {} id", ty.to_lowercase()));
    }
    Ok(id.to_string())
}

/// The resources that could match: resolved from `_id`, the patient, the MRN, or a scan.
fn candidates(
    store: &Store,
    info: &TypeInfo,
    filters: &[Filter],
    withheld: &dyn Fn(&str) -> bool,
) -> Result<Vec<Value>, String> {
    let ty = info.name;
    if let Some(Filter::Id(ids)) = filters.iter().find(|f| matches!(f, Filter::Id(_))) {
        let mut out: Vec<Value> = Vec::new();
        for id in ids {
            if withheld(&format!("{ty}/{id}")) {
                continue;
            }
            if let Some(r) = store.read(ty, id)
                && !out.iter().any(|o| o["id"] == r["id"])
            {
                out.push(r);
            }
        }
        return Ok(out);
    }
    match info.kind {
        Kind::Linked => {
            let Some(Filter::Patient(ids)) =
                filters.iter().find(|f| matches!(f, Filter::Patient(_)))
            else {
                return Err(format!("{ty} searches require a patient parameter"));
            };
            let mut indexes: Vec<usize> = ids
                .iter()
                .filter_map(|id| store.patient_index(id))
                .collect();
            indexes.dedup();
            Ok(indexes
                .into_iter()
                .flat_map(|i| store.of_patient(ty, i))
                .collect())
        }
        Kind::Patient => {
            if let Some(Filter::Identifier(tokens)) =
                filters.iter().find(|f| matches!(f, Filter::Identifier(_)))
            {
                // MRNs map straight to a patient; any other identifier needs a scan.
                let direct: Option<Vec<Option<usize>>> = tokens
                    .iter()
                    .map(
                        |t| match (t.system.as_deref(), data::patient_index_from_mrn(&t.code)) {
                            (Some(MRN_SYSTEM), _) => Some(store.patient_index_by_mrn(&t.code)),
                            (None, Some(_)) => Some(store.patient_index_by_mrn(&t.code)),
                            _ => None,
                        },
                    )
                    .collect();
                if let Some(indexes) = direct {
                    let mut indexes: Vec<usize> = indexes.into_iter().flatten().collect();
                    indexes.sort_unstable();
                    indexes.dedup();
                    return Ok(indexes
                        .into_iter()
                        .filter_map(|i| store.patient(i))
                        .collect());
                }
            }
            Ok((0..store.patient_count())
                .filter_map(|i| store.patient(i))
                .collect())
        }
        Kind::Shared => Ok(data::shared_pool(store.seed(), ty)),
        Kind::Binary => Err("Binary resources can only be read, not searched".into()),
    }
}

fn matches(resource: &Value, filter: &Filter) -> bool {
    match filter {
        Filter::Id(ids) => ids.iter().any(|id| resource["id"] == id.as_str()),
        Filter::Patient(ids) => {
            let reference = if resource["resourceType"] == "Patient" {
                resource["id"].as_str().map(|id| format!("Patient/{id}"))
            } else {
                resource["subject"]["reference"]
                    .as_str()
                    .or_else(|| resource["patient"]["reference"].as_str())
                    .map(str::to_string)
            };
            reference.is_some_and(|r| ids.iter().any(|id| r == format!("Patient/{id}")))
        }
        Filter::Practitioner(ids) => resource["practitioner"]["reference"]
            .as_str()
            .is_some_and(|r| ids.iter().any(|id| r == format!("Practitioner/{id}"))),
        Filter::Identifier(tokens) => tokens.iter().any(|t| {
            resource["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|ident| {
                    ident["value"].as_str() == Some(t.code.as_str())
                        && t.system_matches(ident["system"].as_str())
                })
        }),
        Filter::Category(tokens) => tokens.iter().any(|t| token_in(&resource["category"], t)),
        Filter::Code(tokens) => tokens.iter().any(|t| token_in(&resource["code"], t)),
        Filter::Date(field, date) => {
            let value = if *field == "lastUpdated" {
                &resource["meta"]["lastUpdated"]
            } else {
                &resource[*field]
            };
            value
                .as_str()
                .and_then(instant::parse_millis)
                .is_some_and(|millis| date.matches(millis))
        }
    }
}

/// Whether a code, CodeableConcept, or array of either carries the token.
fn token_in(value: &Value, token: &Token) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| token_in(v, token)),
        Value::String(code) => {
            *code == token.code && token.system.as_deref().is_none_or(str::is_empty)
        }
        Value::Object(_) => value["coding"].as_array().into_iter().flatten().any(|c| {
            c["code"].as_str() == Some(token.code.as_str())
                && token.system_matches(c["system"].as_str())
        }),
        _ => false,
    }
}

fn bundle(
    req: &SearchRequest<'_>,
    page: Vec<Value>,
    total: usize,
    offset: usize,
    page_size: usize,
) -> Value {
    let ty = req.info.name;
    let type_url = format!("{}/{ty}", req.base_url);
    let self_url = if req.raw_query.is_empty() {
        type_url.clone()
    } else {
        format!("{type_url}?{}", req.raw_query)
    };
    let mut links = vec![json!({ "relation": "self", "url": self_url })];
    let next = offset.saturating_add(page_size);
    if page_size > 0 && next < total {
        let mut kept: Vec<&str> = req
            .raw_query
            .split('&')
            .filter(|s| !s.is_empty())
            .filter(|s| s.split('=').next() != Some("_offset"))
            .collect();
        let next_param = format!("_offset={next}");
        kept.push(&next_param);
        links.push(json!({
            "relation": "next",
            "url": format!("{type_url}?{}", kept.join("&"))
        }));
    }
    let entries: Vec<Value> = page
        .into_iter()
        .map(|resource| {
            let id = resource["id"].as_str().unwrap_or_default().to_string();
            json!({
                "fullUrl": format!("{type_url}/{id}"),
                "resource": resource,
                "search": { "mode": "match" }
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries
    })
}
