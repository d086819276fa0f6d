//! `groups split`: the command-line edge of `crate::groups`. It names this run's removed
//! list by the clock, decides dry run or write, and turns the plan into the few lines a
//! site reads after each quarter's split: one line per group that changed, new groups as
//! one range, totals. Never one line per MRN unless asked (`--show-removed`): a site with
//! thousands of removals would otherwise lose the summary in them; the list is in a file.
//! No server, no config file. Its lines are messages, not data, so they go through the
//! reporter like every other command's: `--log-format plain|json` puts them on stderr.

use super::args::{GroupsArgs, GroupsCommand, GroupsSplitArgs};
use crate::console::thousands;
use crate::error::AppError;
use crate::groups::{self, Change, Plan, SplitRequest};
use crate::report::Reporter;

pub fn run(args: GroupsArgs, reporter: &Reporter) -> Result<(), AppError> {
    match args.command {
        GroupsCommand::Split(args) => split(&args, reporter),
    }
}

fn split(args: &GroupsSplitArgs, reporter: &Reporter) -> Result<(), AppError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let plan = groups::plan_split(&SplitRequest {
        mrns: &args.mrns,
        dir: &args.groups_dir,
        size: args.size,
        prefix: &args.prefix,
        width: args.width,
        stamp: &stamp,
    })?;
    for ignored in &plan.ignored {
        reporter.warn(format!(
            "Ignored {:?} in {}: it looks like a group file but its name is not {:?} followed by digits.",
            ignored.name,
            args.groups_dir.display(),
            args.prefix
        ));
    }
    if !args.dry_run {
        plan.apply()?;
    }
    for line in summary(&plan, args) {
        reporter.info(line);
    }
    if args.show_removed && plan.total_removed() > 0 {
        reporter.info("Removed MRNs (group, MRN):");
        for group in &plan.groups {
            for mrn in &group.removed {
                reporter.info(format!("{}\t{mrn}", group.name));
            }
        }
    }
    Ok(())
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        thousands(n as u64),
        if n == 1 { one } else { many }
    )
}

fn summary(plan: &Plan, args: &GroupsSplitArgs) -> Vec<String> {
    let mut lines = Vec::new();
    if args.dry_run {
        lines.push("Dry run: nothing was written. The run would do this:".to_string());
    }
    let mut dropped = Vec::new();
    if plan.source_blank > 0 {
        dropped.push(count(plan.source_blank, "blank line", "blank lines"));
    }
    if plan.source_duplicates > 0 {
        dropped.push(count(plan.source_duplicates, "duplicate", "duplicates"));
    }
    let dropped = if dropped.is_empty() {
        String::new()
    } else {
        format!(" (dropped {})", dropped.join(" and "))
    };
    lines.push(format!(
        "Read {} from {}{dropped}.",
        count(plan.total_mrns(), "MRN", "MRNs"),
        args.mrns.display()
    ));
    if plan.create_dir {
        lines.push(format!("New groups folder {}.", args.groups_dir.display()));
    }
    for group in plan.groups.iter().filter(|g| g.change == Change::Rewritten) {
        let mut what = Vec::new();
        if !group.removed.is_empty() {
            what.push(count(group.removed.len(), "MRN removed", "MRNs removed"));
        }
        if group.repeated_lines > 0 {
            what.push(count(
                group.repeated_lines,
                "repeated line dropped",
                "repeated lines dropped",
            ));
        }
        if group.mrns.is_empty() {
            what.push("none left (the empty file stays, so its number is never used again)".into());
        } else {
            what.push(format!("{} kept", thousands(group.mrns.len() as u64)));
        }
        lines.push(format!("{}: {}.", group.name, what.join(", ")));
    }
    let new: Vec<_> = plan
        .groups
        .iter()
        .filter(|g| g.change == Change::New)
        .collect();
    match new.as_slice() {
        [] => {}
        [one] => lines.push(format!(
            "New group {}: {}.",
            one.name,
            count(one.mrns.len(), "MRN", "MRNs")
        )),
        [first, .., last] => {
            // New groups are filled in order, so only the last can be short.
            let short = if last.mrns.len() < args.size {
                format!(" ({} has {})", last.name, thousands(last.mrns.len() as u64))
            } else {
                String::new()
            };
            lines.push(format!(
                "New groups {} to {}: {}, {} a group{short}.",
                first.name,
                last.name,
                count(plan.total_new(), "MRN", "MRNs"),
                thousands(args.size as u64),
            ));
        }
    }
    lines.push(format!(
        "Groups: {} unchanged, {} rewritten, {} new; {} in {} ({} removed, {} new).",
        thousands(plan.count(Change::Unchanged) as u64),
        thousands(plan.count(Change::Rewritten) as u64),
        thousands(plan.count(Change::New) as u64),
        count(plan.total_mrns(), "MRN", "MRNs"),
        count(plan.groups.len(), "group", "groups"),
        thousands(plan.total_removed() as u64),
        thousands(plan.total_new() as u64),
    ));
    if let Some(path) = &plan.removed_list {
        let verb = if args.dry_run { "would be" } else { "are" };
        lines.push(format!(
            "The removed MRNs {verb} listed in {}.",
            path.display()
        ));
    }
    lines
}
