//! `pract-practrole` (docs/hydration.md#searching-practitioner-roles): search
//! `PractitionerRole?practitioner=<id>` for every Practitioner, because servers such as Epic have
//! roles nobody references. Roles go to `PractitionerRole.searched.ndjson[.gz]`, which is also the
//! record of which practitioners were searched: a practitioner with roles there is not searched
//! again. Pages are followed through their `next` links like a crawl search; errors are counted,
//! never written.

use super::output::Appender;
use super::stats::{Stats, Status};
use super::{HydrateError, Hydrator, Outcome, Task, input, outcome_text, refs, wrong_type_text};
use crate::folder::discovery;
use crate::ndjson;
use crate::report::Reporter;
use crate::url_encoding::quote as encode_query_value;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const ROLE: &str = "PractitionerRole";

/// What earlier runs searched, from the `.searched` files only.
#[derive(Default)]
struct Searched {
    /// `PractitionerRole/<id>` of every searched role (this run's included).
    roles: HashSet<String>,
    /// Practitioner id → roles recorded for it.
    per_practitioner: HashMap<String, usize>,
}

pub async fn run(h: &Hydrator, task: &Task) -> Result<Option<Stats>, HydrateError> {
    let inputs = discovery::files_of_type(&h.options.source_dir, task.input.as_str(), h.reporter());
    if inputs.is_empty() {
        h.skip(task);
        return Ok(None);
    }
    let workdir = h.options.workdir.clone();
    let reporter = h.reporter().clone();
    let searched = tokio::task::spawn_blocking(move || scan_searched(&workdir, &reporter))
        .await
        .unwrap_or_default();
    let per_practitioner = searched.per_practitioner;
    let state = Mutex::new(RunState {
        roles: searched.roles,
    });
    let base = task.output_base().unwrap_or_default();
    let mut out = Appender::new(h.output_path(&base), h.reporter().counters());
    let mut stats = Stats::default();
    let mut progress = h.progress(format!("Downloading {}s…", task.output));
    let mut results = input::values(inputs, Some(vec!["resourceType", "id"]), h.reporter())
        .map(|practitioner| search_one(h, &per_practitioner, &state, practitioner))
        .buffer_unordered(h.concurrency);
    while let Some(result) = results.next().await {
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(err) => {
                drop(results);
                out.finish()?;
                return Err(err);
            }
        };
        let statuses: Vec<Status> = outcomes.iter().map(|o| o.status).collect();
        stats.add(&statuses);
        progress.tick();
        for role in outcomes.iter().filter_map(|o| o.resource.as_ref()) {
            // Later reference tasks of this run need not download it again.
            if let Some(key) = refs::key_of(role) {
                h.known.claim(&key);
            }
            out.write(role)?;
        }
    }
    out.finish()?;
    Ok(Some(stats))
}

struct RunState {
    roles: HashSet<String>,
}

fn lock(state: &Mutex<RunState>) -> std::sync::MutexGuard<'_, RunState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn scan_searched(workdir: &Path, reporter: &Reporter) -> Searched {
    let mut searched = Searched::default();
    let files: Vec<PathBuf> = discovery::files_of_type(workdir, ROLE, reporter)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/PractitionerRole.searched."))
        .collect();
    for path in files {
        for role in ndjson::read_values(&path, reporter) {
            if let Some(key) = refs::key_of(&role) {
                searched.roles.insert(key);
            }
            let practitioner = role
                .pointer("/practitioner/reference")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("Practitioner/"));
            if let Some(id) = practitioner {
                *searched.per_practitioner.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    searched
}

async fn search_one(
    h: &Hydrator,
    per_practitioner: &HashMap<String, usize>,
    state: &Mutex<RunState>,
    practitioner: Value,
) -> Result<Vec<Outcome>, HydrateError> {
    let Some(id) = practitioner.get("id").and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    if let Some(&n) = per_practitioner.get(id).filter(|n| **n > 0) {
        return Ok((0..n).map(|_| Outcome::of(Status::AlreadyDone)).collect());
    }
    // Run-wide, not per task: the task runs again when later tasks find new
    // practitioners, and must not search the earlier ones a second time.
    if !h.known.claim(&format!("{ROLE}?practitioner={id}")) {
        return Ok(Vec::new());
    }
    let mut outcomes = Vec::new();
    let mut pages_seen = HashSet::new();
    let mut next = Some(format!("{ROLE}?practitioner={}", encode_query_value(id)));
    while let Some(url) = next.take() {
        if !pages_seen.insert(url.clone()) {
            break;
        }
        let page = match h.client.get_json(&url).await {
            Ok(page) => page,
            Err(err) if err.is_fatal() => return Err(err.into()),
            // Like a crawl search, a failed page is an OperationOutcome: the server's own
            // when it sent one (verbose prints its text), else the error message.
            Err(err) => {
                let status = match err.operation_outcome().and_then(|oo| outcome_text(&oo)) {
                    Some(text) => {
                        h.report(&text);
                        if err.is_temporary() {
                            Status::RetryError
                        } else {
                            Status::FatalError
                        }
                    }
                    None => h.item_error(&err),
                };
                outcomes.push(Outcome::of(status));
                break;
            }
        };
        if page.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            h.report(&wrong_type_text("Bundle", &page));
            outcomes.push(Outcome::of(Status::FatalError));
            break;
        }
        for entry in page
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(resource) = entry
                .get("resource")
                .filter(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            else {
                continue;
            };
            outcomes.push(role_outcome(h, state, resource));
        }
        next = next_link(&page);
    }
    Ok(outcomes)
}

fn role_outcome(h: &Hydrator, state: &Mutex<RunState>, resource: &Value) -> Outcome {
    if resource.get("resourceType").and_then(Value::as_str) != Some(ROLE) {
        let text = outcome_text(resource).unwrap_or_else(|| wrong_type_text(ROLE, resource));
        h.report(&text);
        return Outcome::of(Status::FatalError);
    }
    if let Some(key) = refs::key_of(resource)
        && !lock(state).roles.insert(key)
    {
        return Outcome::of(Status::AlreadyDone);
    }
    Outcome {
        status: Status::NewlyDone,
        resource: Some(resource.clone()),
    }
}

fn next_link(page: &Value) -> Option<String> {
    page.get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_only_searched_files() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let _ = std::fs::create_dir_all(&dir);
        let write = |name: &str, text: &str| {
            if let Err(e) = std::fs::write(dir.join(name), text) {
                panic!("{e}");
            }
        };
        write(
            "PractitionerRole.searched.ndjson",
            "{\"resourceType\":\"PractitionerRole\",\"id\":\"r1\",\"practitioner\":{\"reference\":\"Practitioner/p1\"}}\n\
             {\"resourceType\":\"PractitionerRole\",\"id\":\"r2\",\"practitioner\":{\"reference\":\"Practitioner/p1\"}}\n\
             {\"resourceType\":\"PractitionerRole\",\"id\":\"r3\"}\n",
        );
        write(
            "PractitionerRole.referenced.ndjson",
            "{\"resourceType\":\"PractitionerRole\",\"id\":\"r9\",\"practitioner\":{\"reference\":\"Practitioner/p2\"}}\n",
        );
        let searched = scan_searched(&dir, &Reporter::silent());
        assert_eq!(searched.roles.len(), 3);
        assert!(searched.roles.contains("PractitionerRole/r3"));
        assert_eq!(searched.per_practitioner.get("p1"), Some(&2));
        assert_eq!(searched.per_practitioner.get("p2"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
