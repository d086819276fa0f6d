//! Export jobs: a kickoff's parameters are checked and resolved at once into the list of
//! files the job will offer (resource keys only, so even a huge export costs a few bytes per
//! resource here); the job then "runs" for the configured duration before its manifest is
//! ready. Jobs live until DELETE or until the server forgets them.

use super::BulkConfig;
use super::filter::TypeFilter;
use crate::catalog::{self, Kind};
use crate::data;
use crate::instant;
use crate::query;
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a kickoff was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Level {
    System,
    Patient,
    Group(String),
}

/// Which manifest array a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Output,
    Error,
    Deleted,
}

/// What a file holds, produced when it is downloaded.
pub enum Content {
    /// Resources of one patient-linked type: `(patient index, position in that patient's
    /// resources)`, in order.
    Resources(Vec<(u32, u16)>),
    /// Resources held as they are (shared pools, OperationOutcomes, deleted Bundles).
    Values(Vec<Value>),
}

impl Content {
    pub fn len(&self) -> usize {
        match self {
            Content::Resources(keys) => keys.len(),
            Content::Values(values) => values.len(),
        }
    }
}

pub struct FileSpec {
    pub category: Category,
    pub type_name: String,
    pub content: Content,
}

pub struct Job {
    pub id: String,
    pub started: Instant,
    pub duration: Duration,
    pub transaction_time: String,
    /// The kickoff URL, for the manifest's `request`.
    pub request: String,
    pub files: Vec<FileSpec>,
}

impl Job {
    /// Percent done, `None` once the manifest is ready.
    pub fn progress(&self) -> Option<u64> {
        let elapsed = self.started.elapsed();
        if elapsed >= self.duration {
            return None;
        }
        let pct = elapsed.as_millis() * 100 / self.duration.as_millis().max(1);
        Some(u64::try_from(pct).unwrap_or(99).min(99))
    }
}

#[derive(Default)]
pub struct Jobs {
    map: Mutex<HashMap<String, Arc<Job>>>,
    next: AtomicU64,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn next_id(&self) -> String {
        format!("job-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn insert(&self, job: Job) {
        self.lock().insert(job.id.clone(), Arc::new(job));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// Why a kickoff is refused: status and OperationOutcome diagnostics.
pub struct Refusal(pub u16, pub String);

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(400, message.into())
}

/// Resolves a kickoff into a job (not yet stored).
pub fn build(
    store: &Store,
    config: &BulkConfig,
    id: String,
    level: &Level,
    raw_query: &str,
    request: String,
) -> Result<Job, Refusal> {
    let pairs = query::parse(raw_query).map_err(bad)?;
    let mut types: Vec<String> = Vec::new();
    let mut since: Option<(String, i64)> = None;
    let mut filters: Vec<TypeFilter> = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "_type" => types.extend(value.split(',').map(str::to_string)),
            "_since" => {
                let millis = instant::parse_millis(value)
                    .ok_or_else(|| bad(format!("_since {value:?} is not a FHIR instant")))?;
                since = Some((value.clone(), millis));
            }
            "_typeFilter" => {
                for item in value.split(',') {
                    filters.push(TypeFilter::parse(item).map_err(bad)?);
                }
            }
            "_outputFormat" => {
                if !matches!(
                    value.as_str(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) {
                    return Err(bad(format!("_outputFormat {value:?} is not supported")));
                }
            }
            other => return Err(bad(format!("Unknown $export parameter {other:?}"))),
        }
    }

    // Which types, in the catalog's (canonical) order.
    let wanted: BTreeSet<&'static str> = if types.is_empty() {
        catalog::TYPES
            .iter()
            .filter(|t| matches!(t.kind, Kind::Patient | Kind::Linked))
            .map(|t| t.name)
            .collect()
    } else {
        let mut set = BTreeSet::new();
        for name in &types {
            let info = catalog::lookup(name)
                .ok_or_else(|| bad(format!("_type names unknown type {name:?}")))?;
            match info.kind {
                Kind::Binary => return Err(bad("Binary cannot be exported")),
                Kind::Shared if *level != Level::System => {
                    return Err(bad(format!(
                        "{name} can only be exported at system level on this server"
                    )));
                }
                _ => {}
            }
            set.insert(info.name);
        }
        set
    };
    for f in &filters {
        if !wanted.contains(f.type_name) {
            return Err(bad(format!(
                "_typeFilter for {} but that type is not in _type",
                f.type_name
            )));
        }
    }

    let patients: Vec<usize> = match level {
        Level::System | Level::Patient => (0..store.patient_count()).collect(),
        Level::Group(group) => {
            let Some((_, members)) = config.groups.iter().find(|(g, _)| g == group) else {
                return Err(Refusal(404, format!("Group/{group} is not known")));
            };
            members_of(members, store.patient_count())
        }
    };

    let deleted_set: BTreeSet<&str> = config.deleted.iter().map(String::as_str).collect();
    let deleted_at = instant::parse_millis(&config.deleted_at).unwrap_or(i64::MAX);
    let report_deleted = since.as_ref().is_some_and(|(_, s)| *s < deleted_at);

    // Quarter 2's deletions and ID churn happened in [QUARTER2_START, QUARTER2_END]: an
    // export since a time before that end reports them, as a server keeping deletion
    // history would (a Group export, only for its members).
    let report_quarter = since
        .as_ref()
        .is_some_and(|(_, s)| *s < data::QUARTER2_END * 1000);
    let mut keys: HashMap<&'static str, Vec<(u32, u16)>> = HashMap::new();
    let mut deleted: Vec<String> = Vec::new();
    for &i in &patients {
        if report_quarter {
            deleted.extend(
                store
                    .removed_since_quarter1(i)
                    .into_iter()
                    .filter(|r| r.split('/').next().is_some_and(|t| wanted.contains(t))),
            );
        }
        // What a search could return: a bulk export holds the same resources.
        let Some(generated) = store.patient_data(i) else {
            continue;
        };
        for (k, resource) in generated.resources.iter().enumerate() {
            let Some(info) = resource["resourceType"].as_str().and_then(catalog::lookup) else {
                continue;
            };
            if !wanted.contains(info.name) {
                continue;
            }
            let reference = format!(
                "{}/{}",
                info.name,
                resource["id"].as_str().unwrap_or_default()
            );
            if deleted_set.contains(reference.as_str()) {
                if report_deleted {
                    deleted.push(reference);
                }
                continue;
            }
            if let Some((_, since)) = &since {
                let updated = resource["meta"]["lastUpdated"]
                    .as_str()
                    .and_then(instant::parse_millis);
                if updated.is_none_or(|u| u <= *since) {
                    continue;
                }
            }
            let mut own = filters
                .iter()
                .filter(|f| f.type_name == info.name)
                .peekable();
            if own.peek().is_some() && !own.any(|f| f.matches(resource)) {
                continue;
            }
            let (Ok(p), Ok(k)) = (u32::try_from(i), u16::try_from(k)) else {
                continue;
            };
            keys.entry(info.name).or_default().push((p, k));
        }
    }

    let per_file = config.resources_per_file.max(1);
    let mut files = Vec::new();
    for info in catalog::TYPES.iter().filter(|t| wanted.contains(t.name)) {
        if info.kind == Kind::Shared {
            let pool: Vec<Value> = data::shared_pool(store.seed(), info.name)
                .into_iter()
                .filter(|r| {
                    let reference = format!("{}/{}", info.name, r["id"].as_str().unwrap_or(""));
                    !deleted_set.contains(reference.as_str())
                })
                .collect();
            for chunk in pool.chunks(per_file) {
                files.push(FileSpec {
                    category: Category::Output,
                    type_name: info.name.to_string(),
                    content: Content::Values(chunk.to_vec()),
                });
            }
            continue;
        }
        for chunk in keys.remove(info.name).unwrap_or_default().chunks(per_file) {
            files.push(FileSpec {
                category: Category::Output,
                type_name: info.name.to_string(),
                content: Content::Resources(chunk.to_vec()),
            });
        }
    }
    if !config.error_messages.is_empty() {
        let outcomes = config
            .error_messages
            .iter()
            .map(|(severity, text)| {
                json!({
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": severity, "code": "processing", "diagnostics": text}]
                })
            })
            .collect();
        files.push(FileSpec {
            category: Category::Error,
            type_name: "OperationOutcome".into(),
            content: Content::Values(outcomes),
        });
    }
    let bundles: Vec<Value> = deleted
        .iter()
        .map(|reference| {
            json!({
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": reference}}]
            })
        })
        .collect();
    for chunk in bundles.chunks(per_file) {
        files.push(FileSpec {
            category: Category::Deleted,
            type_name: "Bundle".into(),
            content: Content::Values(chunk.to_vec()),
        });
    }

    let transaction_time = config.transaction_time.clone().unwrap_or_else(|| {
        chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    });
    Ok(Job {
        id,
        started: Instant::now(),
        duration: config.job_duration,
        transaction_time,
        request,
        files,
    })
}

fn members_of(members: &super::Membership, count: usize) -> Vec<usize> {
    match members {
        super::Membership::All => (0..count).collect(),
        super::Membership::Even => (0..count).step_by(2).collect(),
        super::Membership::Indices(list) => {
            let set: BTreeSet<usize> = list.iter().copied().filter(|i| *i < count).collect();
            set.into_iter().collect()
        }
    }
}
