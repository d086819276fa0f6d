//! Which two exports of a managed folder a delta compares, and whether it may: the quarter's
//! export (by nickname) and the one just before it (or the one named), both complete as
//! `status` decides it, both full (no `--since`), with the same filters and the same
//! finished hydration tasks. Anything else is refused with one line before anything is
//! written: a delta between unlike exports would hand the ETL the difference of two
//! different selections, which no earlier ETL run matches.

use super::DeltaError;
use super::manifest::ExportRef;
use crate::folder::OutputMetadata;
use crate::folder::workdir::{self, Workdir};
use crate::status::{self, Completion, LeafState};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One complete full export of the pair.
#[derive(Clone, Debug)]
pub struct Export {
    pub name: String,
    pub path: PathBuf,
    pub finished: String,
    /// Lines of its NDJSON files (to size the index), as its record or the files say.
    pub resources: u64,
}

impl Export {
    pub fn reference(&self) -> ExportRef {
        ExportRef {
            name: self.name.clone(),
            finished: self.finished.clone(),
        }
    }
}

/// The two exports a delta compares.
#[derive(Clone, Debug)]
pub struct Pair {
    pub current: Export,
    /// `None`: the group's first export; everything in it is new.
    pub previous: Option<Export>,
    pub filters: Value,
    pub hydration_tasks: BTreeSet<String>,
}

/// What a complete full export records about how it was made.
struct Made {
    export: Export,
    filters: Value,
    hydration: Option<BTreeSet<String>>,
}

fn names(workdirs: &[Workdir]) -> String {
    let mut names: Vec<&str> = workdirs.iter().map(|w| w.name.as_str()).collect();
    names.reverse();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Choose and check the pair in `managed_dir` for the export of `nickname`, compared with
/// the export of `previous` (a nickname) or else the one numbered just before it.
pub fn choose(
    managed_dir: &Path,
    nickname: &str,
    previous: Option<&str>,
) -> Result<Pair, DeltaError> {
    let folder = managed_dir.display().to_string();
    let workdirs = workdir::list(managed_dir);
    let Some(current) = workdirs.iter().find(|w| w.nickname == nickname) else {
        return Err(DeltaError::NoExport {
            folder,
            nickname: nickname.to_string(),
            found: names(&workdirs),
        });
    };
    let current_made = check(current)?;
    let earlier: Vec<&Workdir> = workdirs
        .iter()
        .filter(|w| w.number < current.number)
        .collect();
    let previous_dir = match previous {
        Some(nick) => match earlier.iter().find(|w| w.nickname == nick) {
            Some(w) => Some(*w),
            None => {
                return Err(DeltaError::NoPrevious {
                    folder,
                    nickname: nick.to_string(),
                    current: current.name.clone(),
                });
            }
        },
        // `list` is newest first: the first earlier one is the one just before.
        None => earlier.first().copied(),
    };
    let Some(previous_dir) = previous_dir else {
        if current.number > 1 {
            // Numbers count every export the folder ever made: the earlier ones are gone.
            return Err(DeltaError::EarlierGone {
                folder,
                current: current.name.clone(),
            });
        }
        return Ok(Pair {
            filters: current_made.filters,
            hydration_tasks: current_made.hydration.unwrap_or_default(),
            current: current_made.export,
            previous: None,
        });
    };
    let previous_made = check(previous_dir).map_err(|e| match e {
        DeltaError::NotComplete { leaf, state } if previous.is_none() => {
            DeltaError::PreviousNotComplete { leaf, state }
        }
        other => other,
    })?;
    if previous_made.filters != current_made.filters {
        return Err(DeltaError::DifferentFilters {
            previous: previous_made.export.name,
            current: current_made.export.name,
            difference: filter_difference(&previous_made.filters, &current_made.filters),
        });
    }
    let (Some(before), Some(now)) = (&previous_made.hydration, &current_made.hydration) else {
        let unknown = if previous_made.hydration.is_none() {
            &previous_made.export.name
        } else {
            &current_made.export.name
        };
        return Err(DeltaError::HydrationUnknown {
            leaf: unknown.clone(),
            current: current_made.export.name.clone(),
        });
    };
    if before != now {
        return Err(DeltaError::DifferentHydration {
            previous: previous_made.export.name.clone(),
            current: current_made.export.name.clone(),
            difference: set_difference(before, now),
        });
    }
    Ok(Pair {
        filters: current_made.filters,
        hydration_tasks: now.clone(),
        current: current_made.export,
        previous: Some(previous_made.export),
    })
}

/// A leaf folder must hold a complete, full export.
fn check(w: &Workdir) -> Result<Made, DeltaError> {
    let leaf = status::read_leaf(&w.name, &w.path);
    let finished = match &leaf.state {
        // `status` knows a delta by its manifest (it has no `.metadata`).
        LeafState::Complete(Completion::Delta(_)) => {
            return Err(DeltaError::IsDelta(w.path.display().to_string()));
        }
        LeafState::Complete(c) => c.finished().map(str::to_string),
        other => {
            return Err(DeltaError::NotComplete {
                leaf: w.path.display().to_string(),
                state: other.state().as_str().to_string(),
            });
        }
    };
    let metadata = OutputMetadata::load(&w.path).map_err(|e| DeltaError::NotComplete {
        leaf: w.path.display().to_string(),
        state: format!("its .metadata cannot be read: {e}"),
    })?;
    if let Some(since) = metadata.since() {
        return Err(DeltaError::NotFull {
            leaf: w.path.display().to_string(),
            since: since.to_string(),
        });
    }
    let Some(filters) = metadata.raw().get("filters").cloned() else {
        return Err(DeltaError::NotComplete {
            leaf: w.path.display().to_string(),
            state: "its .metadata records no filters".into(),
        });
    };
    Ok(Made {
        export: Export {
            name: w.name.clone(),
            path: w.path.clone(),
            finished: finished.unwrap_or_default(),
            resources: leaf.counts.resources_total(),
        },
        filters,
        hydration: metadata.hydration_tasks(),
    })
}

/// `T` for a type without filters, `T?a | T?b` with; types in name order.
fn describe_type(t: &str, params: Option<&Value>) -> String {
    let params: Vec<&str> = params
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if params.is_empty() {
        t.to_string()
    } else {
        params
            .iter()
            .map(|p| format!("{t}?{p}"))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// The types whose filters differ, each side in one short phrase.
fn filter_difference(before: &Value, now: &Value) -> String {
    let empty = serde_json::Map::new();
    let a = before.as_object().unwrap_or(&empty);
    let b = now.as_object().unwrap_or(&empty);
    let types: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let side = |map: &serde_json::Map<String, Value>, t: &str| match map.get(t) {
        None => "not exported".to_string(),
        Some(p) => describe_type(t, Some(p)),
    };
    let differing: Vec<String> = types
        .into_iter()
        .filter(|t| a.get(*t) != b.get(*t))
        .map(|t| format!("{} then, {} now", side(a, t), side(b, t)))
        .collect();
    if differing.is_empty() {
        "recorded differently".to_string()
    } else {
        differing.join("; ")
    }
}

fn set_difference(before: &BTreeSet<String>, now: &BTreeSet<String>) -> String {
    let gone: Vec<&str> = before.difference(now).map(String::as_str).collect();
    let added: Vec<&str> = now.difference(before).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !gone.is_empty() {
        parts.push(format!("only the earlier ran {}", gone.join(", ")));
    }
    if !added.is_empty() {
        parts.push(format!("only the later ran {}", added.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_read_in_one_phrase() {
        let before =
            json!({"Condition": [], "Patient": [], "Observation": ["category=laboratory"]});
        let now = json!({"Condition": ["category=problem-list-item"], "Patient": []});
        assert_eq!(
            filter_difference(&before, &now),
            "Condition then, Condition?category=problem-list-item now; \
             Observation?category=laboratory then, not exported now"
        );
        let a: BTreeSet<String> = ["dxr-results".to_string(), "doc-inline".to_string()].into();
        let b: BTreeSet<String> = ["dxr-results".to_string(), "obs-members".to_string()].into();
        assert_eq!(
            set_difference(&a, &b),
            "only the earlier ran doc-inline; only the later ran obs-members"
        );
    }
}
