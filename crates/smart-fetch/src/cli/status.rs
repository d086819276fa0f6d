//! `status OUTPUT_ROOT [--nickname NAME] [--json | --leaf-folders] [--check]`: prints what
//! `crate::status` read, as a table for a person (default), JSON for scripts (schema in the
//! README), or the complete leaf folders' paths alone, one per line, as the input list of
//! Cumulus ETL or an archive job. The report is the answer, so its exit status is 0 whatever
//! the groups' states; `--check` turns it into a gate for scripts (3 unless all complete).
//! No server, no config file, no writes.

use super::args::StatusArgs;
use crate::archive::{ArchiveState, Destination};
use crate::console::thousands;
use crate::error::AppError;
use crate::status::{self, Completion, Group, Leaf, LeafState, Report, State};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub async fn run(args: StatusArgs) -> Result<(), AppError> {
    let report = status::read(Path::new(&args.output_root), args.nickname.as_deref())?;
    let archive = match &args.archive {
        Some(to) => Some(archive_states(&report, to).await?),
        None => None,
    };
    let archive = archive.as_ref();
    let text = if args.leaf_folders {
        report
            .complete_leaf_folders()
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect()
    } else if args.json {
        format!("{}\n", json_text(&report, archive))
    } else {
        table(&report, archive)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| AppError::Message(format!("Could not write the report: {e}")))?;
    if args.check && !report.all_complete() {
        return Err(AppError::Incomplete(check_line(&report)));
    }
    Ok(())
}

/// `--archive`: where the leaf folders were checked, and each group's answer (by group name;
/// groups without a leaf folder have none).
struct Archived {
    shown: String,
    states: BTreeMap<String, ArchiveState>,
}

async fn archive_states(report: &Report, to: &str) -> Result<Archived, AppError> {
    let dest = Destination::open(to).await?;
    // The quick probe `archive` makes first: a missing bucket must be an error, not every
    // folder "not archived" (a read in it answers 404 like a missing manifest), and a wrong
    // endpoint one line now rather than minutes of retries on the first read.
    dest.check().await?;
    let mut states = BTreeMap::new();
    for group in &report.groups {
        if let Some(leaf) = &group.leaf {
            let complete = matches!(leaf.state, LeafState::Complete(_));
            let state =
                crate::archive::archive_state(&dest, &group.name, &leaf.path, complete).await?;
            states.insert(group.name.clone(), state);
        }
    }
    Ok(Archived {
        shown: dest.shown().to_string(),
        states,
    })
}

fn archive_json(state: &ArchiveState) -> Value {
    match state {
        ArchiveState::Missing => json!({ "state": "missing", "archived": null }),
        ArchiveState::Current { archived } => json!({ "state": "current", "archived": archived }),
        ArchiveState::Outdated { archived } => {
            json!({ "state": "outdated", "archived": archived })
        }
    }
}

/// The NOTES text for one group's archive state.
fn archive_note(state: &ArchiveState) -> String {
    match state {
        ArchiveState::Missing => "not archived".into(),
        ArchiveState::Current { archived } => format!("archived {}", short_time(archived)),
        ArchiveState::Outdated { archived } => format!(
            "archived {}, changed since: rerun archive",
            short_time(archived)
        ),
    }
}

/// Why `--check` fails, in one line.
fn check_line(report: &Report) -> String {
    let totals = report.totals();
    if totals.groups == 0 {
        return format!("No group folders found in {}.", report.root.display());
    }
    let not_complete: Vec<String> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Complete)
        .filter_map(|s| {
            let n = totals.by_state.get(&s).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {}", label(s)))
        })
        .collect();
    format!(
        "Not every group is complete: {} of {} groups ({}).",
        totals.groups - totals.by_state.get(&State::Complete).copied().unwrap_or(0),
        totals.groups,
        not_complete.join(", ")
    )
}

fn label(state: State) -> &'static str {
    match state {
        State::Complete => "complete",
        State::Failed => "failed",
        State::InProgress => "in progress",
        State::NotStarted => "not started",
        State::Unknown => "unknown",
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

fn counts_json(map: &BTreeMap<String, u64>) -> Value {
    Value::Object(
        map.iter()
            .map(|(t, n)| (t.clone(), Value::from(*n)))
            .collect(),
    )
}

fn json_text(report: &Report, archive: Option<&Archived>) -> String {
    let totals = report.totals();
    let states: serde_json::Map<String, Value> = totals
        .by_state
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), Value::from(*n)))
        .collect();
    let value = json!({
        "root": path_text(&report.root),
        "nickname": report.nickname,
        "singleGroup": report.single_group,
        "groups": report.groups.iter().map(|g| group_json(g, archive)).collect::<Vec<_>>(),
        "otherFolders": report.other_folders.iter().map(|o| json!({
            "name": o.name,
            "path": path_text(&o.path),
            "reason": o.reason,
        })).collect::<Vec<_>>(),
        "totals": {
            "groups": totals.groups,
            "states": states,
            "complete": {
                "patients": totals.patients,
                "resources": counts_json(&totals.resources),
                "resourcesTotal": totals.resources.values().sum::<u64>(),
                "deleted": counts_json(&totals.deleted),
                "deletedTotal": totals.deleted.values().sum::<u64>(),
            },
        },
    });
    let mut value = value;
    if let (Some(archive), Some(map)) = (archive, value.as_object_mut()) {
        let current = archive
            .states
            .values()
            .filter(|s| matches!(s, ArchiveState::Current { .. }))
            .count();
        map.insert(
            "archive".into(),
            json!({ "destination": archive.shown, "current": current }),
        );
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn group_json(group: &Group, archive: Option<&Archived>) -> Value {
    let mut leaf = group.leaf.as_ref().map(leaf_json);
    if let (Some(Value::Object(map)), Some(state)) = (
        leaf.as_mut(),
        archive.and_then(|a| a.states.get(&group.name)),
    ) {
        map.insert("archive".into(), archive_json(state));
    }
    json!({
        "name": group.name,
        "path": path_text(&group.path),
        "state": group.state().as_str(),
        "managedMetadata": group.managed_metadata,
        "leafFolders": group.leaf_folders,
        "leaf": leaf,
    })
}

fn leaf_json(leaf: &Leaf) -> Value {
    let empty = BTreeMap::new();
    let (finished, tool, accepted_searches, accepted_reads) = match &leaf.state {
        LeafState::Complete(c) => (
            c.finished(),
            c.tool(),
            c.accepted_failed_searches().clone(),
            c.accepted_failed_reads(),
        ),
        _ => (None, None, BTreeMap::new(), BTreeMap::new()),
    };
    let (failed_searches, failed_reads) = match &leaf.state {
        LeafState::Failed(f) => (f.searches(), f.reads()),
        _ => (&empty, &empty),
    };
    let unreadable = match &leaf.state {
        LeafState::Unknown(why) => Some(why.as_str()),
        _ => None,
    };
    let delta = match &leaf.state {
        LeafState::Complete(Completion::Delta(m)) => json!({
            "current": m.current.name,
            "currentFinished": m.current.finished,
            "previous": m.previous.as_ref().map(|p| &p.name),
            "previousFinished": m.previous.as_ref().map(|p| &p.finished),
            "fullExportResources": counts_json(&m.resources),
            "fullExportResourcesTotal": m.resources_total(),
        }),
        _ => Value::Null,
    };
    json!({
        "name": leaf.name,
        "path": path_text(&leaf.path),
        "finished": finished,
        "tool": tool,
        "countedFrom": if leaf.counts.from_marker { "summary" } else { "files" },
        "patients": leaf.counts.patients,
        "resources": counts_json(&leaf.counts.resources),
        "resourcesTotal": leaf.counts.resources_total(),
        "deleted": counts_json(&leaf.counts.deleted),
        "deletedTotal": leaf.counts.deleted_total(),
        "failedSearches": counts_json(failed_searches),
        "failedReads": counts_json(failed_reads),
        "acceptedFailedSearches": counts_json(&accepted_searches),
        "acceptedFailedReads": counts_json(&accepted_reads),
        "unreadable": unreadable,
        "delta": delta,
        "problems": leaf.problems,
    })
}

/// `Condition 2, Observation 1`.
fn breakdown(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(t, n)| format!("{t} {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `2 searches (Condition 2)`.
fn tally(map: &BTreeMap<String, u64>, one: &str, many: &str) -> Option<String> {
    let n: u64 = map.values().sum();
    (n > 0).then(|| format!("{} ({})", plural(n, one, many), breakdown(map)))
}

/// The NOTES column: what a person should know about the row.
fn notes(group: &Group, nickname: Option<&str>, archive: Option<&Archived>) -> String {
    let mut notes = Vec::new();
    match &group.leaf {
        None => match (group.leaf_folders.last(), nickname) {
            (None, _) => notes.push("no leaf folders".to_string()),
            (Some(newest), Some(nick)) => {
                notes.push(format!("no leaf folder for '{nick}' (newest: {newest})"))
            }
            (Some(_), None) => {}
        },
        Some(leaf) => {
            match &leaf.state {
                LeafState::Complete(c) => {
                    let accepted: Vec<String> = [
                        tally(
                            c.accepted_failed_searches(),
                            "failed search",
                            "failed searches",
                        ),
                        tally(&c.accepted_failed_reads(), "failed read", "failed reads"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    if !accepted.is_empty() {
                        notes.push(format!(
                            "accepted with --allow-incomplete: {}",
                            accepted.join(", ")
                        ));
                    }
                    if matches!(c, Completion::Flagged { .. }) {
                        notes.push("no summary recorded: counted from the files".into());
                    }
                    if let Completion::Delta(m) = c {
                        notes.push(delta_note(m));
                    }
                }
                LeafState::Failed(f) => {
                    let failed: Vec<String> = [
                        tally(f.searches(), "search", "searches"),
                        tally(f.reads(), "read", "reads"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    notes.push(format!(
                        "failed: {}; rerun the same export to retry",
                        failed.join(", ")
                    ));
                }
                LeafState::InProgress => {}
                LeafState::Unknown(why) => notes.push(crate::text::printable(why).into_owned()),
            }
            if !leaf.problems.is_empty() {
                notes.push(format!(
                    "{} unreadable (see below)",
                    plural(leaf.problems.len() as u64, "file", "files")
                ));
            }
        }
    }
    let delta = matches!(
        group.leaf.as_ref().map(|l| &l.state),
        Some(LeafState::Complete(Completion::Delta(_)))
    );
    if !group.managed_metadata && !group.leaf_folders.is_empty() && !delta {
        notes.push("no managed .metadata".into());
    }
    if let Some(state) = archive.and_then(|a| a.states.get(&group.name)) {
        notes.push(archive_note(state));
    }
    notes.join("; ")
}

/// `delta of 002.q2 against 001.q1: 422 of 5,136 resources new or changed`.
fn delta_note(m: &crate::delta::manifest::Manifest) -> String {
    let against = match &m.previous {
        Some(p) => format!("against {}", crate::text::printable(&p.name)),
        None => "(first export: all new)".to_string(),
    };
    format!(
        "delta of {} {against}: {} of {} resources new or changed",
        crate::text::printable(&m.current.name),
        thousands(m.kept_total()),
        thousands(m.resources_total())
    )
}

/// `2026-03-05T10:11:12.123456-05:00` → `2026-03-05 10:11` (its own offset).
fn short_time(iso: &str) -> String {
    match (iso.get(..10), iso.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => iso.to_string(),
    }
}

fn table(report: &Report, archive: Option<&Archived>) -> String {
    let mut out = String::new();
    let about = match &report.nickname {
        Some(nick) => format!("leaf folders '{nick}'"),
        None => "newest leaf folders".to_string(),
    };
    out.push_str(&format!(
        "Status of {} ({about}):\n\n",
        crate::text::printable(&path_text(&report.root))
    ));
    if report.groups.is_empty() {
        out.push_str("No group folders found.\n");
    } else {
        let header = [
            "GROUP",
            "STATE",
            "LEAF FOLDER",
            "PATIENTS",
            "RESOURCES",
            "DELETED",
            "FINISHED",
            "NOTES",
        ];
        let mut rows: Vec<[String; 8]> = vec![header.map(str::to_string)];
        for group in &report.groups {
            let number = |f: &dyn Fn(&Leaf) -> u64| {
                group
                    .leaf
                    .as_ref()
                    .map_or("-".to_string(), |l| thousands(f(l)))
            };
            let finished = match group.leaf.as_ref().map(|l| &l.state) {
                Some(LeafState::Complete(c)) => c.finished().map_or("-".into(), short_time),
                _ => "-".into(),
            };
            rows.push([
                crate::text::printable(&group.name).into_owned(),
                label(group.state()).to_string(),
                group
                    .leaf
                    .as_ref()
                    .map_or("-".into(), |l| crate::text::printable(&l.name).into_owned()),
                number(&|l| l.counts.patients),
                number(&|l| l.counts.resources_total()),
                number(&|l| l.counts.deleted_total()),
                finished,
                notes(group, report.nickname.as_deref(), archive),
            ]);
        }
        let mut widths = [0usize; 8];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // Numbers right-aligned, text left; no padding after the last column.
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                if (3..6).contains(&i) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else if i + 1 < row.len() {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }

    let totals = report.totals();
    let states: Vec<String> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Unknown || totals.by_state.get(s).is_some_and(|n| *n > 0))
        .map(|s| {
            format!(
                "{} {}",
                totals.by_state.get(&s).copied().unwrap_or(0),
                label(s)
            )
        })
        .collect();
    out.push_str(&format!(
        "\n{}: {}.\n",
        plural(totals.groups as u64, "group", "groups"),
        states.join(", ")
    ));
    let resources: u64 = totals.resources.values().sum();
    let deleted: u64 = totals.deleted.values().sum();
    out.push_str(&format!(
        "Complete leaf folders hold {} and {}, and name {} as deleted.\n",
        plural(totals.patients, "patient", "patients"),
        plural(resources, "resource", "resources"),
        plural(deleted, "resource", "resources"),
    ));
    if !totals.resources.is_empty() {
        out.push_str(&format!("  Resources: {}.\n", breakdown(&totals.resources)));
    }
    if !totals.deleted.is_empty() {
        out.push_str(&format!("  Deleted: {}.\n", breakdown(&totals.deleted)));
    }
    if let Some(archive) = archive {
        let count =
            |f: fn(&ArchiveState) -> bool| archive.states.values().filter(|s| f(s)).count() as u64;
        out.push_str(&format!(
            "At {}: {} archived as they are now, {} changed since archived, {} not archived.\n",
            crate::text::printable(&archive.shown),
            plural(
                count(|s| matches!(s, ArchiveState::Current { .. })),
                "leaf folder",
                "leaf folders"
            ),
            count(|s| matches!(s, ArchiveState::Outdated { .. })),
            count(|s| matches!(s, ArchiveState::Missing)),
        ));
    }

    if !report.other_folders.is_empty() {
        out.push_str("\nNot group folders (left out):\n");
        for other in &report.other_folders {
            out.push_str(&format!(
                "  {}: {}\n",
                crate::text::printable(&path_text(&other.path)),
                crate::text::printable(&other.reason)
            ));
        }
    }
    let problems: Vec<&String> = report
        .groups
        .iter()
        .filter_map(|g| g.leaf.as_ref())
        .flat_map(|l| &l.problems)
        .collect();
    if !problems.is_empty() {
        out.push_str("\nCould not read (left out of the counts):\n");
        for problem in problems {
            out.push_str(&format!("  {}\n", crate::text::printable(problem)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_times_keep_their_offset() {
        assert_eq!(
            short_time("2026-03-05T10:11:12.123456-05:00"),
            "2026-03-05 10:11"
        );
        assert_eq!(short_time("soon"), "soon");
    }
}
