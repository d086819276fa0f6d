//! The export-wide "already have or already asked for" memory of reference tasks
//! (docs/hydration.md#running-a-reference-task), shared by every task and pass of one run:
//! `<Type>/<id>` of every resource of a type found in the workdir's files (read once per type per
//! run), of every resource written since, and every reference string already requested, whether the
//! request worked or not. So a referenced resource is fetched once per run, and a reference that
//! answers 404 is asked for once, however many resources point at it. Holds keys only; never
//! requests or writes anything.

use crate::folder::discovery;
use crate::report::Reporter;
use crate::resources::ResourceType;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct Known {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Types whose workdir files were read into `keys`.
    loaded: HashSet<ResourceType>,
    keys: HashSet<String>,
}

impl Known {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert, so the set stays usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add the resources of type `t` in `dir`'s NDJSON files, the first time a task asks.
    /// Later files of that type are only ever written by this run, which inserts as it goes.
    pub async fn load(&self, dir: &Path, t: ResourceType, reporter: &Reporter) {
        if self.lock().loaded.contains(&t) {
            return;
        }
        let dir = dir.to_path_buf();
        let reporter = reporter.clone();
        let ids = tokio::task::spawn_blocking(move || {
            discovery::ids_of_type(&dir, t.as_str(), &reporter)
        })
        .await
        .unwrap_or_default();
        let mut state = self.lock();
        if state.loaded.insert(t) {
            state
                .keys
                .extend(ids.into_iter().map(|id| format!("{t}/{id}")));
        }
    }

    /// Claim a key: true when nobody had it (the caller then fetches or writes it).
    pub fn claim(&self, key: &str) -> bool {
        let mut state = self.lock();
        if state.keys.contains(key) {
            return false;
        }
        state.keys.insert(key.to_string())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lock().keys.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_once_and_claims_once() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let _ = std::fs::create_dir_all(&dir);
        let write = |name: &str, text: &str| {
            if let Err(e) = std::fs::write(dir.join(name), text) {
                panic!("{e}");
            }
        };
        write(
            "Medication.ndjson",
            "{\"resourceType\":\"Medication\",\"id\":\"1\"}\n",
        );
        write(
            "meds.ndjson",
            "{\"resourceType\":\"Medication\",\"id\":\"2\"}\n",
        );
        let known = Known::default();
        assert!(known.claim("Medication/9"));
        known
            .load(&dir, ResourceType::Medication, &Reporter::silent())
            .await;
        assert!(known.contains("Medication/1"));
        assert!(!known.claim("Medication/2"));
        assert!(!known.claim("Medication/9"));
        assert!(known.claim("Medication/3"));
        // A second load does not re-read (a file written meanwhile is this run's own).
        write(
            "more.ndjson",
            "{\"resourceType\":\"Medication\",\"id\":\"4\"}\n",
        );
        known
            .load(&dir, ResourceType::Medication, &Reporter::silent())
            .await;
        assert!(!known.contains("Medication/4"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
