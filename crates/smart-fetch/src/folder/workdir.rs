//! Numbered workdirs `NNN.nickname` inside a managed folder and the rules for reusing or creating
//! one (docs/export.md#choosing-the-workdir). Only reads: it names the folder to use but never
//! creates it (the engine does, when it starts) and never prints (the caller prints
//! `Choice::message`).

use super::{ExportContext, FolderError, OutputMetadata};
use crate::resources::ResourceType;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Workdir {
    pub number: u64,
    pub nickname: String,
    /// Folder name as found, e.g. `001.initial`.
    pub name: String,
    pub path: PathBuf,
}

/// `<digits>.<rest>` → (number, rest). The rest may be anything, even empty.
fn parse_name(name: &str) -> Option<(u64, &str)> {
    let (digits, rest) = name.split_once('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, rest))
}

/// Workdirs of a managed folder, newest (highest number) first. Symlinked folders count;
/// files and other names are ignored; a missing folder has none.
pub fn list(output_dir: &Path) -> Vec<Workdir> {
    let Ok(entries) = fs::read_dir(output_dir) else {
        return Vec::new();
    };
    let mut found: Vec<Workdir> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (number, nickname) = parse_name(&name)?;
            let path = output_dir.join(&name);
            // `fs::metadata` follows symlinks, so linked workdirs are included.
            if !fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                return None;
            }
            Some(Workdir {
                number,
                nickname: nickname.to_string(),
                name,
                path,
            })
        })
        .collect();
    // Ties (`1.a` vs `001.b`) are broken by name so the order never depends on the disk.
    found.sort_by(|a, b| b.number.cmp(&a.number).then_with(|| b.name.cmp(&a.name)));
    found
}

#[derive(Debug)]
pub struct Choice {
    pub path: PathBuf,
    pub name: String,
    /// The line to print (`Creating new subfolder …` / `Re-using existing subfolder …`).
    pub message: String,
}

/// Pick the workdir for this run. `today` is the default nickname (`YYYY-MM-DD`).
pub fn choose(
    output_dir: &Path,
    nickname: Option<&str>,
    ctx: &ExportContext,
    selected: &[ResourceType],
    today: &str,
) -> Result<Choice, FolderError> {
    let workdirs = list(output_dir);
    let prev = workdirs.first().map_or(0, |w| w.number);
    let reuse = |w: &Workdir, why: &str| Choice {
        path: w.path.clone(),
        name: w.name.clone(),
        message: format!("Re-using existing subfolder '{}' with {why}.", w.name),
    };

    if let Some(nick) = nickname {
        if let Some(w) = workdirs.iter().find(|w| w.nickname == nick) {
            // Only the newest export may be resumed: resuming an older one would put
            // newer data under an older number and confuse since=auto and symlinks.
            if w.number == prev {
                return Ok(reuse(w, "the same nickname"));
            }
            return Err(FolderError::NicknameTooOld(w.name.clone()));
        }
    } else if let Some(newest) = workdirs.first()
        && OutputMetadata::load(&newest.path)?.has_same_context(ctx, selected)
    {
        return Ok(reuse(newest, "similar arguments"));
    }

    let name = format!("{:03}.{}", prev + 1, nickname.unwrap_or(today));
    Ok(Choice {
        path: output_dir.join(&name),
        message: format!("Creating new subfolder '{name}'."),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::{Filters, SinceMode};
    use crate::folder::discovery::tests::{temp_dir, write};

    fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    fn ctx(types: &[ResourceType], since: Option<&str>) -> ExportContext {
        let filters: Filters = types.iter().map(|t| (*t, Default::default())).collect();
        ExportContext {
            filters,
            since: since.map(String::from),
            since_mode: since.map(|_| SinceMode::Updated),
            since_resources: if since.is_some() {
                types.iter().copied().collect()
            } else {
                Default::default()
            },
        }
    }

    #[test]
    fn lists_numbered_dirs_newest_first() {
        let dir = temp_dir("wd-list");
        for name in ["001.a", "010.b", "2.c", "003.", "x.y", "004"] {
            ok(fs::create_dir_all(dir.join(name)));
        }
        write(&dir.join("005.file"), "");
        let names: Vec<(u64, String)> = list(&dir)
            .into_iter()
            .map(|w| (w.number, w.nickname))
            .collect();
        assert_eq!(
            names,
            vec![
                (10, "b".to_string()),
                (3, String::new()),
                (2, "c".to_string()),
                (1, "a".to_string())
            ]
        );
        assert!(list(&dir.join("missing")).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn choice_rules() {
        let dir = temp_dir("wd-choose");
        let pat = [ResourceType::Patient];
        let c = ctx(&pat, None);
        // Empty folder: new, not created.
        let choice = ok(choose(&dir, None, &c, &pat, "2021-09-14"));
        assert_eq!(choice.name, "001.2021-09-14");
        assert_eq!(choice.message, "Creating new subfolder '001.2021-09-14'.");
        assert!(!choice.path.exists());

        // Same context reuses the newest.
        let mut m = ok(OutputMetadata::load(&choice.path));
        ok(m.note_context(&c));
        let again = ok(choose(&dir, None, &c, &pat, "2021-09-15"));
        assert_eq!(again.name, "001.2021-09-14");
        assert_eq!(
            again.message,
            "Re-using existing subfolder '001.2021-09-14' with similar arguments."
        );

        // Different since: new folder numbered after the newest.
        let since = ctx(&pat, Some("2020-01-01"));
        let other = ok(choose(&dir, None, &since, &pat, "2021-09-15"));
        assert_eq!(other.name, "002.2021-09-15");

        // Nicknames.
        let nick = ok(choose(&dir, Some("my-export"), &since, &pat, "2021-09-15"));
        assert_eq!(nick.name, "002.my-export");
        ok(ok(OutputMetadata::load(&nick.path)).note_context(&since));
        let reuse = ok(choose(&dir, Some("my-export"), &c, &pat, "x"));
        assert_eq!(
            reuse.message,
            "Re-using existing subfolder '002.my-export' with the same nickname."
        );
        ok(fs::create_dir_all(dir.join("003.newer")));
        let err = choose(&dir, Some("my-export"), &c, &pat, "x")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "Existing subfolder '002.my-export' with the same nickname is too old to resume. Choose a new nickname."
            )
        );
        // Newest (003) has no metadata: not the same context.
        let fresh = ok(choose(&dir, None, &c, &pat, "2021-09-16"));
        assert_eq!(fresh.name, "004.2021-09-16");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn auto_since_resumes_only_unfinished() {
        let dir = temp_dir("wd-auto");
        let types = [ResourceType::Patient, ResourceType::Condition];
        let c = ctx(&types, Some("auto"));
        let first = ok(choose(&dir, None, &c, &types, "d"));
        let mut m = ok(OutputMetadata::load(&first.path));
        ok(m.note_context(&c));
        let now = crate::timestamp::now();
        ok(m.mark_done(ResourceType::Patient, &now));
        assert_eq!(ok(choose(&dir, None, &c, &types, "d")).name, "001.d");
        ok(m.mark_done(ResourceType::Condition, &now));
        assert_eq!(ok(choose(&dir, None, &c, &types, "d")).name, "002.d");
        let _ = fs::remove_dir_all(&dir);
    }
}
