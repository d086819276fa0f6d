//! `delta`: a quarter's changes only, for the ETL. From a managed folder's complete full
//! export of the quarter and the complete full export before it (same filters, same
//! hydration), a *delta leaf folder* elsewhere holding every resource line that is new or
//! whose content changed, in the same per-type files (a file, empty if need be, for every
//! file of the full export), with `deleted/` and `log.ndjson` exactly as the full export's
//! and a manifest (`delta.json`) naming the two exports. Cumulus ETL merges rows by id and
//! deletes only what `deleted/` names, so loading the delta on top of the previous
//! quarter's load gives the tables a load of the full export would, in a fraction of the
//! time (most resources are the same from one quarter to the next).
//!
//! Streams: the earlier export is read once into one digest per resource (`index`), the
//! quarter's once more and written out (`build`); memory does not grow with the size of
//! the resources. The delta is written into a hidden folder beside its final place and
//! renamed when whole, so a delta folder that exists is complete (`status` and `archive`
//! know it by its manifest). It is never written inside a managed export folder (the ETL
//! and the tools scan those). Refusals are one line and write nothing.
//! The rules, as a user sees them: `docs/additions.md#delta`.

pub mod build;
pub mod canon;
pub mod digest;
pub mod index;
pub mod manifest;
pub mod pair;
pub mod scan;

use crate::folder::contents;
use crate::folder::discovery;
use crate::report::Reporter;
use manifest::Manifest;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("'{folder}' holds no export named '{nickname}' (its exports: {found}).")]
    NoExport {
        folder: String,
        nickname: String,
        found: String,
    },
    #[error(
        "Export '{leaf}' is not complete ({state}): finish it (run the same export again), then make the delta."
    )]
    NotComplete { leaf: String, state: String },
    #[error(
        "The export before it, '{leaf}', is not complete ({state}): a delta needs the export the ETL loaded last; name it with --previous NICKNAME, or load this quarter's export in full."
    )]
    PreviousNotComplete { leaf: String, state: String },
    #[error(
        "Export '{leaf}' was made with --since {since}: a delta compares two full exports; load it as it is."
    )]
    NotFull { leaf: String, since: String },
    #[error("'{0}' is itself a delta, not an export.")]
    IsDelta(String),
    #[error("'{folder}' holds no export named '{nickname}' older than '{current}'.")]
    NoPrevious {
        folder: String,
        nickname: String,
        current: String,
    },
    #[error(
        "'{folder}' no longer holds the exports before '{current}': a delta needs the one the ETL loaded last; load '{current}' in full."
    )]
    EarlierGone { folder: String, current: String },
    #[error(
        "Exports '{previous}' and '{current}' were made with different filters ({difference}): a delta compares like with like; load '{current}' in full."
    )]
    DifferentFilters {
        previous: String,
        current: String,
        difference: String,
    },
    #[error(
        "Exports '{previous}' and '{current}' ran different hydration tasks ({difference}): a delta compares like with like; load '{current}' in full."
    )]
    DifferentHydration {
        previous: String,
        current: String,
        difference: String,
    },
    #[error(
        "Export '{leaf}' does not record which hydration tasks it finished (SMART Fetch 1.0.3 or an older smart-fetch made it), so it cannot be compared: load '{current}' in full."
    )]
    HydrationUnknown { leaf: String, current: String },
    #[error(
        "'{to}' is inside '{inside}', an export folder: write deltas elsewhere (the ETL and the export tools read everything in there)."
    )]
    InsideExport { to: String, inside: String },
    #[error(
        "'{path}' already holds a delta of other exports ({found}); remove it to make this one."
    )]
    Exists { path: String, found: String },
    #[error("{0}. The export is damaged; export it again.")]
    Damaged(String),
    #[error("Could not read '{path}': {message}")]
    Read { path: String, message: String },
    #[error("Could not write '{path}': {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
}

impl DeltaError {
    /// A refusal of this pair of exports, as opposed to a failure while reading or writing.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            DeltaError::Damaged(_) | DeltaError::Read { .. } | DeltaError::Write { .. }
        )
    }
}

/// One group's delta.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The group's managed export folder.
    pub managed_dir: PathBuf,
    /// The group's name (written to the manifest).
    pub group: String,
    /// The quarter's export.
    pub nickname: String,
    /// The export to compare with, by nickname; else the one just before.
    pub previous: Option<String>,
    /// Where the group's delta leaf folders go: `<to>/<leaf folder name>/`.
    pub to: PathBuf,
}

/// What a group's delta did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The delta leaf folder.
    pub path: PathBuf,
    pub manifest: Manifest,
    /// It was there already, made from the same two exports: nothing was written.
    pub up_to_date: bool,
}

/// `path` made absolute and normalized, its existing part with links resolved (so a link
/// into an export folder is seen for what it is).
fn resolved(path: &Path) -> PathBuf {
    let absolute = discovery::absolute_dir(path).unwrap_or_else(|| path.to_path_buf());
    let mut existing = absolute.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(&existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return absolute,
        }
    }
}

/// Refuse a destination inside `source` or inside any folder with a `.metadata` (a managed
/// export folder or a leaf folder of one).
pub fn check_destination(to: &Path, source: &Path) -> Result<(), DeltaError> {
    let target = resolved(to);
    let source = resolved(source);
    let shown = to.display().to_string();
    if target.starts_with(&source) {
        return Err(DeltaError::InsideExport {
            to: shown,
            inside: source.display().to_string(),
        });
    }
    for dir in target.ancestors() {
        if dir.join(crate::folder::metadata::FILE_NAME).is_file() {
            return Err(DeltaError::InsideExport {
                to: shown,
                inside: dir.display().to_string(),
            });
        }
    }
    Ok(())
}

/// The state folder a delta is written into before it takes its name.
fn partial_dir(to: &Path, leaf: &str) -> PathBuf {
    to.join(format!(".{leaf}.partial"))
}

/// Make one group's delta (or find it made already).
pub fn run(plan: &Plan, reporter: &Reporter) -> Result<Outcome, DeltaError> {
    let pair = pair::choose(&plan.managed_dir, &plan.nickname, plan.previous.as_deref())?;
    check_destination(&plan.to, &plan.managed_dir)?;
    let final_dir = plan.to.join(&pair.current.name);
    let current_ref = pair.current.reference();
    let previous_ref = pair.previous.as_ref().map(pair::Export::reference);
    if fs::symlink_metadata(&final_dir).is_ok() {
        let found = match manifest::load(&final_dir) {
            Ok(Some(m)) if m.is_of(&current_ref, previous_ref.as_ref()) => {
                return Ok(Outcome {
                    path: final_dir,
                    manifest: m,
                    up_to_date: true,
                });
            }
            Ok(Some(m)) => format!(
                "{} finished {} against {}",
                m.current.name,
                m.current.finished,
                m.previous.as_ref().map_or("nothing".into(), |p| format!(
                    "{} finished {}",
                    p.name, p.finished
                ))
            ),
            Ok(None) => "no delta manifest".into(),
            Err(why) => why,
        };
        return Err(DeltaError::Exists {
            path: final_dir.display().to_string(),
            found,
        });
    }

    let write_err = |path: &Path, source: io::Error| DeltaError::Write {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(&plan.to).map_err(|e| write_err(&plan.to, e))?;
    let partial = partial_dir(&plan.to, &pair.current.name);
    // Left by a run that was stopped: never a finished delta, so start again.
    match fs::remove_dir_all(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(&partial, e)),
    }
    fs::create_dir(&partial).map_err(|e| write_err(&partial, e))?;
    let result = fill(plan, &pair, &partial, reporter);
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            // Only when empty: the group's folder of deltas as it was before.
            let _ = fs::remove_dir(&plan.to);
            return Err(e);
        }
    };
    crate::ndjson::sync_dir(&partial);
    fs::rename(&partial, &final_dir).map_err(|e| write_err(&final_dir, e))?;
    crate::ndjson::sync_dir(&plan.to);
    Ok(Outcome {
        path: final_dir,
        manifest,
        up_to_date: false,
    })
}

/// Both passes into `out`, then the manifest (last).
fn fill(
    plan: &Plan,
    pair: &pair::Pair,
    out: &Path,
    reporter: &Reporter,
) -> Result<Manifest, DeltaError> {
    let index = match &pair.previous {
        Some(previous) => build::index_of(&previous.path, previous.resources, reporter)?,
        None => index::Index::default(),
    };
    let written = build::write_delta(&pair.current.path, &index, out, reporter)?;
    drop(index);
    let deleted = contents::count(out).deleted;
    let manifest = Manifest {
        kind: Manifest::kind(),
        made: crate::timestamp::isoformat(&crate::timestamp::now()),
        tool: crate::folder::metadata::TOOL.to_string(),
        group: plan.group.clone(),
        source: resolved(&plan.managed_dir).display().to_string(),
        current: pair.current.reference(),
        previous: pair.previous.as_ref().map(pair::Export::reference),
        filters: pair.filters.clone(),
        hydration_tasks: pair.hydration_tasks.iter().cloned().collect(),
        resources: written.resources,
        kept: written.kept,
        deleted,
    };
    manifest.write(out).map_err(|e| DeltaError::Write {
        path: out.join(manifest::FILE_NAME).display().to_string(),
        source: e,
    })?;
    Ok(manifest)
}

/// What to make over an output root (or one group's managed folder).
#[derive(Clone, Debug)]
pub struct RootPlan {
    /// An output root of group folders, or one group's managed folder.
    pub source: PathBuf,
    pub nickname: String,
    pub previous: Option<String>,
    /// The delta root (`<to>/<group>/<leaf>/`); for one managed folder, that group's
    /// folder of deltas (`<to>/<leaf>/`).
    pub to: PathBuf,
    /// Groups worked on at once.
    pub parallel: usize,
}

/// What a run over a root did.
#[derive(Debug)]
pub struct RootOutcome {
    /// The source was one group's managed folder.
    pub single_group: bool,
    /// Every group's result, in group order.
    pub groups: Vec<GroupResult>,
}

/// One group's result in a run over a root.
#[derive(Debug)]
pub struct GroupResult {
    pub group: String,
    pub result: Result<Outcome, DeltaError>,
}

/// Every group's delta, `parallel` at a time, in group order. A group that is refused or
/// fails does not stop the others. Errors only when the root cannot be read or the
/// destination is inside it.
pub fn run_root(plan: &RootPlan, reporter: &Reporter) -> Result<RootOutcome, DeltaError> {
    let report = crate::status::read(&plan.source, Some(&plan.nickname))?;
    if !report.single_group {
        check_destination(&plan.to, &plan.source)?;
    }
    let plans: Vec<Plan> = report
        .groups
        .iter()
        .map(|g| Plan {
            managed_dir: g.path.clone(),
            group: g.name.clone(),
            nickname: plan.nickname.clone(),
            previous: plan.previous.clone(),
            to: if report.single_group {
                plan.to.clone()
            } else {
                plan.to.join(&g.name)
            },
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<GroupResult>>> =
        std::sync::Mutex::new((0..plans.len()).map(|_| None).collect());
    let workers = plan.parallel.clamp(1, plans.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(group) = plans.get(i) else { break };
                    let scoped = if report.single_group {
                        reporter.clone()
                    } else {
                        reporter.scoped(&group.group)
                    };
                    let result = run(group, &scoped);
                    match &result {
                        Ok(outcome) => scoped.info(outcome_line(outcome)),
                        // The caller reports the one group's error as the run's.
                        Err(_) if report.single_group => {}
                        Err(e) => scoped.warn(e.to_string()),
                    }
                    let mut slots = results.lock().unwrap_or_else(|e| e.into_inner());
                    slots[i] = Some(GroupResult {
                        group: group.group.clone(),
                        result,
                    });
                }
            });
        }
    });
    let groups = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Ok(RootOutcome {
        single_group: report.single_group,
        groups,
    })
}

/// `Wrote '<path>': 422 of 5,136 resources (8.2 %) new or changed, 57 deleted, against
/// 001.q1.`
pub fn outcome_line(outcome: &Outcome) -> String {
    let m = &outcome.manifest;
    let (kept, all) = (m.kept_total(), m.resources_total());
    let share = share(kept, all);
    let against = match &m.previous {
        Some(p) => format!("against {}", p.name),
        None => "the group's first export: everything is new".to_string(),
    };
    let deleted: u64 = m.deleted.values().sum();
    let verb = if outcome.up_to_date {
        "Up to date"
    } else {
        "Wrote"
    };
    format!(
        "{verb} '{}': {} of {} resources{share} new or changed, {} deleted, {against}.",
        outcome.path.display(),
        crate::console::thousands(kept),
        crate::console::thousands(all),
        crate::console::thousands(deleted),
    )
}

/// ` (8.2 %)`: the share of lines kept, or nothing when there were none.
pub fn share(kept: u64, all: u64) -> String {
    if all == 0 {
        String::new()
    } else {
        format!(" ({:.1} %)", kept as f64 * 100.0 / all as f64)
    }
}

/// Totals over many groups' manifests.
pub fn totals<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> (u64, u64) {
    manifests.into_iter().fold((0, 0), |(kept, all), m| {
        (kept + m.kept_total(), all + m.resources_total())
    })
}

/// Kept lines by type over many groups.
pub fn kept_by_type<'a>(
    manifests: impl IntoIterator<Item = &'a Manifest>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in manifests {
        for (t, n) in &m.kept {
            *out.entry(t.clone()).or_default() += n;
        }
    }
    out
}
