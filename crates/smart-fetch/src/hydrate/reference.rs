//! Reference tasks (spec §15.3, §15.4): for every input resource, download the references
//! found at the task's paths that point at its output type and are not already known, and
//! append them to `<Output>.<slug>.ndjson[.gz]`. Input resources are handled concurrently
//! (the connection budget caps requests in flight); the references of one resource in order,
//! depth-first into newly downloaded resources for recursive tasks (`obs-members`, `loc-loc`,
//! `org-org`), cycle-safe because every reference is claimed in the run-wide memory before
//! it is requested. Does not rewrite input files.

use super::output::Appender;
use super::stats::{Stats, Status};
use super::{HydrateError, Hydrator, Outcome, Task, input, refs, wrong_type_text};
use crate::folder::discovery;
use futures_util::StreamExt;
use serde_json::Value;

pub async fn run(
    h: &Hydrator,
    task: &Task,
    paths: &'static [&'static str],
) -> Result<Option<Stats>, HydrateError> {
    let inputs = discovery::files_of_type(&h.options.source_dir, task.input.as_str(), h.reporter());
    if inputs.is_empty() {
        h.skip(task);
        return Ok(None);
    }
    h.known
        .load(&h.options.workdir, task.output, h.reporter())
        .await;
    let base = task.output_base().unwrap_or_default();
    let mut out = Appender::new(h.output_path(&base), h.reporter().counters());
    let mut stats = Stats::default();
    let mut progress = h.progress(format!("Downloading {}s…", task.output));
    let recursive = task.is_recursive();
    // Only the fields the paths start from are built (first steps, `*` dropped).
    let mut fields: Vec<&'static str> = paths
        .iter()
        .filter_map(|p| p.split('.').next())
        .map(|f| f.trim_end_matches('*'))
        .collect();
    fields.dedup();
    let mut results = input::values(inputs, Some(fields), h.reporter())
        .map(|resource| resolve(h, task, paths, recursive, resource))
        .buffer_unordered(h.concurrency);
    while let Some(result) = results.next().await {
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(err) => {
                // What was downloaded is whole and worth keeping; the run ends anyway.
                drop(results);
                out.finish()?;
                return Err(err);
            }
        };
        let statuses: Vec<Status> = outcomes.iter().map(|o| o.status).collect();
        stats.add(&statuses);
        progress.tick();
        for resource in outcomes.iter().filter_map(|o| o.resource.as_ref()) {
            out.write(resource)?;
        }
    }
    out.finish()?;
    Ok(Some(stats))
}

/// Every reference of one input resource, and for recursive tasks of what it brought in.
async fn resolve(
    h: &Hydrator,
    task: &Task,
    paths: &[&str],
    recursive: bool,
    resource: Value,
) -> Result<Vec<Outcome>, HydrateError> {
    let mut outcomes = Vec::new();
    // A stack of reference lists (each reversed, so `pop` takes them in order): depth-first.
    let mut stack = vec![reference_list(&resource, paths)];
    while let Some(top) = stack.last_mut() {
        let Some(reference) = top.pop() else {
            stack.pop();
            continue;
        };
        let outcome = download(h, task, reference.as_deref()).await?;
        if recursive && let Some(found) = &outcome.resource {
            stack.push(reference_list(found, paths));
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn reference_list(resource: &Value, paths: &[&str]) -> Vec<Option<String>> {
    let mut list: Vec<Option<String>> = refs::references(resource, paths)
        .into_iter()
        .map(|r| r.map(str::to_string))
        .collect();
    list.reverse();
    list
}

/// Spec §15.4 for one reference. Only errors that end the run come back as `Err`. Besides
/// the statistics, a failure leaves the task incomplete and a 404 or 410 is kept as
/// evidence of a deletion (`evidence`); both still count as fatal errors in the table.
async fn download(
    h: &Hydrator,
    task: &Task,
    reference: Option<&str>,
) -> Result<Outcome, HydrateError> {
    let output = task.output;
    let Some(reference) = refs::wanted(reference, output) else {
        return Ok(Outcome::of(Status::Ignored));
    };
    // Claimed before the request, so concurrent workers (and later tasks and passes of this
    // run) never ask again, even when this request fails.
    if !h.known.claim(reference) {
        return Ok(Outcome::of(Status::AlreadyDone));
    }
    let value = match h.client.get_json(reference).await {
        Ok(value) => value,
        Err(err) if err.is_fatal() => return Err(err.into()),
        Err(err) => {
            match err.status() {
                Some(404 | 410) => h.evidence.gone(task.name, output, reference),
                _ => h.evidence.incomplete(task.name),
            }
            return Ok(Outcome::of(h.item_error(&err)));
        }
    };
    if value.get("resourceType").and_then(Value::as_str) != Some(output.as_str()) {
        h.report(&wrong_type_text(output.as_str(), &value));
        h.evidence.incomplete(task.name);
        return Ok(Outcome::of(Status::FatalError));
    }
    // `Medication/1/_history/2` and `Medication/1` are one resource: write it once.
    if let Some(key) = refs::key_of(&value)
        && key != reference
        && !h.known.claim(&key)
    {
        return Ok(Outcome::of(Status::AlreadyDone));
    }
    Ok(Outcome {
        status: Status::NewlyDone,
        resource: Some(value),
    })
}
