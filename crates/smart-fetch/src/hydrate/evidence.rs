//! What one run's hydration tells deleted-resource detection (`folder::history`): which
//! tasks finished with every item answered, and which references the server said are gone
//! (404 Not Found, 410 Gone). Collected by the tasks as they go, read once at the end of
//! `export`; no requests, no files.
//!
//! A task that could not fetch something (a timeout, a 500, a 403, an answer of the wrong
//! type) did not export its output in full, and neither did any task fed by that output:
//! comparing such a partial list with a full one would name live resources as deleted. A
//! 404 or 410 is an answer, not a failure: the resource is gone, and the list is complete.

use super::tasks::{Action, Task};
use crate::resources::ResourceType;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct Evidence {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Tasks with at least one item that failed for another reason than "gone".
    incomplete: HashSet<&'static str>,
    gone: BTreeMap<ResourceType, BTreeSet<String>>,
}

/// The end-of-run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HydrationReport {
    /// Selected tasks that finished with every item answered and whose inputs are complete
    /// (registry order). A task that had nothing to do is complete.
    pub completed: Vec<&'static str>,
    /// Per type, ids whose read answered 404 or 410.
    pub gone: BTreeMap<ResourceType, BTreeSet<String>>,
}

impl Evidence {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert, so the state stays usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A read of `reference` (`<Type>/<id>`) answered 404 or 410. Versioned or otherwise
    /// unusual references say nothing certain about the resource itself and count as a
    /// failure of `task` instead.
    pub fn gone(&self, task: &'static str, t: ResourceType, reference: &str) {
        match plain_id(reference, t) {
            Some(id) => {
                self.lock()
                    .gone
                    .entry(t)
                    .or_default()
                    .insert(id.to_string());
            }
            None => self.incomplete(task),
        }
    }

    /// An item of `task` failed: the task's output is not complete in this run.
    pub fn incomplete(&self, task: &'static str) {
        self.lock().incomplete.insert(task);
    }

    /// The summary for the tasks this run was asked to run.
    pub fn report(&self, selected: &[&'static Task]) -> HydrationReport {
        let state = self.lock();
        let mut incomplete: BTreeSet<&str> = state.incomplete.iter().copied().collect();
        // A task reading a type that some task failed to fetch in full has incomplete
        // input, so its own output is incomplete too (Observation → obs-spec → Specimen).
        loop {
            let short: BTreeSet<ResourceType> = selected
                .iter()
                .filter(|t| incomplete.contains(t.name) && !matches!(t.action, Action::Inline))
                .map(|t| t.output)
                .collect();
            let before = incomplete.len();
            incomplete.extend(
                selected
                    .iter()
                    .filter(|t| short.contains(&t.input))
                    .map(|t| t.name),
            );
            if incomplete.len() == before {
                break;
            }
        }
        HydrationReport {
            completed: selected
                .iter()
                .map(|t| t.name)
                .filter(|n| !incomplete.contains(n))
                .collect(),
            gone: state.gone.clone(),
        }
    }
}

/// The id of `<t>/<id>` when it is a plain FHIR id (`[A-Za-z0-9.-]{1,64}`).
fn plain_id(reference: &str, t: ResourceType) -> Option<&str> {
    let id = reference.strip_prefix(t.as_str())?.strip_prefix('/')?;
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::super::tasks::TASKS;
    use super::*;

    fn task(name: &str) -> &'static Task {
        match TASKS.iter().find(|t| t.name == name) {
            Some(t) => t,
            None => panic!("no task {name}"),
        }
    }

    #[test]
    fn failures_spread_to_the_tasks_they_feed() {
        let selected: Vec<&'static Task> = [
            "dxr-results",
            "obs-members",
            "obs-spec",
            "dxr-spec",
            "dxr-inline",
            "obs-pract",
            "medreq-med",
        ]
        .map(task)
        .to_vec();
        let evidence = Evidence::default();
        assert_eq!(evidence.report(&selected).completed.len(), selected.len());
        evidence.incomplete("dxr-results");
        // A failed note does not make anything incomplete but the inline task itself.
        evidence.incomplete("dxr-inline");
        let report = evidence.report(&selected);
        assert_eq!(report.completed, ["dxr-spec", "medreq-med"]);
    }

    #[test]
    fn gone_needs_a_plain_id() {
        let evidence = Evidence::default();
        evidence.gone(
            "dxr-results",
            ResourceType::Observation,
            "Observation/a-1.b",
        );
        evidence.gone("dxr-spec", ResourceType::Specimen, "Specimen/s/_history/2");
        let report = evidence.report(&[task("dxr-results"), task("dxr-spec")]);
        assert_eq!(report.completed, ["dxr-results"]);
        let ids: Vec<&String> = report.gone.values().flatten().collect();
        assert_eq!(ids, ["a-1.b"]);
        assert_eq!(plain_id("Observation/", ResourceType::Observation), None);
        assert_eq!(plain_id("Observation/a b", ResourceType::Observation), None);
        assert_eq!(plain_id(&"x".repeat(70), ResourceType::Observation), None);
    }
}
