//! `archive` end to end: real exports (a batch of five groups against fake-ehr, one of them
//! left incomplete), archived to a real S3 API server process (moto, from PyPI, installed by
//! `scripts/s3-test-server.sh`) and to a local folder, then checked with an independent
//! client (boto3) byte for byte: no symlink uploaded, the incomplete folder refused, a rerun
//! that uploads nothing (the tool's summary and the server's own request log), a SIGKILL in
//! the middle of a 300 MB upload finished by a rerun, memory bounded, wrong credentials and
//! an unknown bucket refused with one line each, and Cumulus ETL's own loader reading an
//! archived leaf folder from the bucket as it reads the local one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod archive_support;
mod support;

use archive_support::*;
use fake_ehr::{Config, Flavor, Server, TruncateSearch};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const NICK: &str = "q1";
const BUCKET: &str = "archive";
const GROUPS: usize = 5;
const PER_GROUP: usize = 4;

/// An OUTPUT_ROOT as a site has it after a quarter's batch: five groups, MRN-002's export
/// incomplete (one search always answered with cut-off JSON), and two symbolic links planted
/// in MRN-000's leaf folder (to a file and to a folder outside it).
struct Tree {
    ehr: Server,
    dir: TestDir,
    groups: PathBuf,
    out: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let dir = temp_dir(name);
        // Patient 9 is in MRN-002.
        let ehr = server_with(Config {
            flavor: Flavor::Epic,
            patients: GROUPS * PER_GROUP,
            truncate: Some(TruncateSearch {
                resource_type: "Condition".into(),
                patient: fake_ehr::data::patient_id(9),
            }),
            ..Config::default()
        });
        let groups = dir.join("groups");
        std::fs::create_dir_all(&groups).expect("groups dir");
        for g in 0..GROUPS {
            let text: String = (g * PER_GROUP..(g + 1) * PER_GROUP)
                .map(|i| fake_ehr::data::mrn(i) + "\n")
                .collect();
            std::fs::write(groups.join(format!("MRN-{g:03}")), text).expect("group file");
        }
        let tree = Tree {
            out: dir.join("out"),
            ehr,
            groups,
            dir,
        };
        let result = tree.batch();
        assert_eq!(result.status.code(), Some(3), "{}", text(&result.stderr));
        let leaf = tree.leaf("MRN-000");
        std::fs::write(tree.dir.join("outside.txt"), "not part of any export").expect("write");
        std::os::unix::fs::symlink(tree.dir.join("outside.txt"), leaf.join("planted-link.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(&tree.out, leaf.join("planted-dir-link")).expect("symlink");
        tree
    }

    fn batch(&self) -> std::process::Output {
        let url = self.ehr.base_url();
        run_quick_retries(&[
            "batch",
            "--fhir-url",
            &url,
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--groups",
            &self.groups.to_string_lossy(),
            "--nickname",
            NICK,
            &self.out.to_string_lossy(),
        ])
    }

    fn leaf(&self, group: &str) -> PathBuf {
        self.out.join(group).join(format!("001.{NICK}"))
    }

    fn out_s(&self) -> String {
        self.out.to_string_lossy().into_owned()
    }
}

/// Removes a test's folder when the test ends, also when it fails: the kill tests write
/// 300 MB files.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}):\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn states(summary: &Value) -> BTreeMap<String, String> {
    summary["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .map(|f| {
            (
                f["group"].as_str().unwrap_or_default().to_string(),
                f["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn expected_states(include_incomplete: bool, first: bool) -> BTreeMap<String, String> {
    let done = if first {
        "archived"
    } else {
        "already-archived"
    };
    (0..GROUPS)
        .map(|g| {
            let state = match (g, include_incomplete) {
                (2, false) => "refused",
                (2, true) => "archived",
                _ => done,
            };
            (format!("MRN-{g:03}"), state.to_string())
        })
        .collect()
}

/// Checks shared by the S3 and local runs: the archived copy of every complete leaf folder
/// is the folder, byte for byte, plus its manifest (whose checksums are the files'); no
/// link; nothing of the refused folder.
fn assert_archived_copy(tree: &Tree, archived: &Path, groups: &[usize], incomplete: &[usize]) {
    for g in 0..GROUPS {
        let group = format!("MRN-{g:03}");
        let copy = archived.join(&group).join(format!("001.{NICK}"));
        if !groups.contains(&g) {
            assert!(!copy.exists(), "{} should not be archived", copy.display());
            continue;
        }
        let mut got = files_under(&copy);
        let manifest: Value = serde_json::from_slice(
            &got.remove(".smart-fetch-archive.json")
                .unwrap_or_else(|| panic!("{group}: no manifest")),
        )
        .expect("manifest JSON");
        let local = files_under(&tree.leaf(&group));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            local.keys().collect::<Vec<_>>(),
            "{group}: the archive holds other files than the leaf folder"
        );
        for (rel, bytes) in &local {
            assert!(
                got[rel] == *bytes,
                "{group}/{rel} differs from its archived copy"
            );
        }
        assert!(local.contains_key(".metadata"));
        // An unfinished crawl has not written its log yet.
        assert_eq!(local.contains_key("log.ndjson"), !incomplete.contains(&g));
        let listed: BTreeMap<String, (u64, String)> = manifest["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap_or_default().to_string(),
                    (
                        f["size"].as_u64().unwrap_or_default(),
                        f["sha256"].as_str().unwrap_or_default().to_string(),
                    ),
                )
            })
            .collect();
        assert_eq!(listed.len(), local.len(), "{group}: manifest entries");
        for rel in local.keys() {
            let path = tree.leaf(&group).join(rel);
            let size = std::fs::metadata(&path).expect("stat").len();
            assert_eq!(
                listed[rel],
                (size, sha256_file(&path)),
                "{group}/{rel} in the manifest"
            );
        }
        assert_eq!(manifest["group"], group.as_str());
        assert_eq!(manifest["leaf"], format!("001.{NICK}"));
        assert_eq!(manifest["exportComplete"], !incomplete.contains(&g));
    }
    assert!(links_under(archived).is_empty(), "a link was archived");
    let everything = files_under(archived);
    assert!(
        !everything
            .keys()
            .any(|k| k.contains("planted") || k.contains("outside")),
        "a link was followed: {:?}",
        everything.keys().collect::<Vec<_>>()
    );
}

/// Requests that change something in a moto request log (object writes, multipart steps,
/// deletes).
fn writes_in(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("\"PUT ") || l.contains("\"POST ") || l.contains("\"DELETE "))
        .collect()
}

#[test]
fn s3_archive_of_five_groups_refuses_the_incomplete_one_and_reruns_upload_nothing() {
    let tree = Tree::new("archive-s3");
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let env = s3.env();
    let to = format!("s3://{BUCKET}/epic/");
    let out_s = tree.out_s();
    let args = ["--nickname", NICK, "--to", &to, "--json", &out_s];

    let started = Instant::now();
    let first = archive(&args, &env);
    let first_secs = started.elapsed().as_secs_f64();
    assert_eq!(first.status.code(), Some(3), "{}", text(&first.stderr));
    let stderr = text(&first.stderr);
    let refusal: Vec<&str> = stderr.lines().filter(|l| l.contains("MRN-002")).collect();
    assert_eq!(refusal.len(), 2, "{stderr}");
    assert!(
        refusal[0].contains("not complete") && refusal[0].contains("--include-incomplete"),
        "{stderr}"
    );
    assert!(
        refusal[1].contains("1 of 5 leaf folders are not archived"),
        "{stderr}"
    );
    let summary = json_of(&first);
    assert_eq!(states(&summary), expected_states(false, true));
    let uploaded = summary["totals"]["filesUploaded"]
        .as_u64()
        .unwrap_or_default();
    assert!(uploaded > 40, "{summary}");
    assert_eq!(summary["totals"]["linksSkipped"], 2);

    let listing = s3.list(BUCKET, "epic/");
    // Every file of the four complete leaf folders, plus one manifest each, and nothing else.
    assert_eq!(listing.len() as u64, uploaded + 4, "{listing:?}");
    let copy = tree.dir.join("from-s3");
    s3.download(BUCKET, "epic/", &copy);
    assert_archived_copy(&tree, &copy, &[0, 1, 3, 4], &[]);

    // Rerun: nothing sent, nothing changed in the bucket.
    let offset = s3.log_len();
    let started = Instant::now();
    let again = archive(&args, &env);
    let again_secs = started.elapsed().as_secs_f64();
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    let summary = json_of(&again);
    assert_eq!(states(&summary), expected_states(false, false));
    assert_eq!(summary["totals"]["filesUploaded"], 0, "{summary}");
    assert_eq!(summary["totals"]["bytesUploaded"], 0, "{summary}");
    let log = s3.log_since(offset, BUCKET);
    assert!(writes_in(&log).is_empty(), "the rerun wrote: {log}");
    assert_eq!(
        s3.list(BUCKET, "epic/"),
        listing,
        "objects changed on rerun"
    );
    eprintln!(
        "S3: first archive {first_secs:.1} s ({uploaded} files), rerun {again_secs:.1} s with {} requests, none writing",
        log.lines().count().saturating_sub(1)
    );

    // The incomplete folder on request: archived, and its manifest says so.
    let with = archive(
        &[
            "--nickname",
            NICK,
            "--to",
            &to,
            "--json",
            "--include-incomplete",
            &out_s,
        ],
        &env,
    );
    assert_success(&with);
    assert_eq!(states(&json_of(&with)), expected_states(true, false));
    let copy = tree.dir.join("from-s3-all");
    s3.download(BUCKET, "epic/", &copy);
    assert_archived_copy(&tree, &copy, &[0, 1, 2, 3, 4], &[2]);
    let _ = std::fs::remove_dir_all(&tree.dir);
}

#[test]
fn local_archive_is_the_same_and_follows_a_folder_that_is_finished_later() {
    let tree = Tree::new("archive-local");
    let dest = tree.dir.join("archive");
    let to = format!("file://{}/", dest.display());
    let out_s = tree.out_s();
    let args = ["--nickname", NICK, "--to", &to, "--json", &out_s];

    // The archive folder must exist (an unmounted share must not become a local folder).
    let missing = archive(&args, &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(one_line(&missing).contains("does not exist"));
    std::fs::create_dir_all(&dest).expect("mkdir");

    let first = archive(&args, &[]);
    assert_eq!(first.status.code(), Some(3), "{}", text(&first.stderr));
    assert_eq!(states(&json_of(&first)), expected_states(false, true));
    assert_archived_copy(&tree, &dest, &[0, 1, 3, 4], &[]);

    // `status --archive`: the complete folders are archived as they are, the refused one not.
    let status = status_with_archive(&to, &out_s);
    for g in ["MRN-000", "MRN-001", "MRN-003", "MRN-004"] {
        assert_eq!(status[g], "current", "{g}: {status:?}");
    }
    assert_eq!(status["MRN-002"], "missing", "{status:?}");

    // Rerun: nothing written (every archived file keeps its modification time).
    let mtimes = |root: &Path| -> BTreeMap<String, std::time::SystemTime> {
        files_under(root)
            .into_keys()
            .map(|rel| {
                let t = std::fs::metadata(root.join(&rel))
                    .and_then(|m| m.modified())
                    .expect("mtime");
                (rel, t)
            })
            .collect()
    };
    let before = mtimes(&dest);
    let again = archive(&args, &[]);
    assert_eq!(again.status.code(), Some(3));
    let summary = json_of(&again);
    assert_eq!(states(&summary), expected_states(false, false));
    assert_eq!(summary["totals"]["filesUploaded"], 0);
    assert_eq!(mtimes(&dest), before, "the rerun rewrote archived files");

    // Archived while unfinished, then finished by the batch: the rerun brings the archive
    // in line (changed files sent, files the folder no longer has removed) and the new
    // manifest says complete.
    let all = [
        "--nickname",
        NICK,
        "--to",
        &to,
        "--json",
        "--include-incomplete",
        &out_s,
    ];
    assert_success(&archive(&all, &[]));
    let unfinished = files_under(&dest.join("MRN-002").join(format!("001.{NICK}")));
    tree.ehr.set_truncate(None);
    assert_success(&tree.batch());
    let finished = archive(&args, &[]);
    assert_success(&finished);
    let summary = json_of(&finished);
    let row = summary["folders"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["group"] == "MRN-002"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["state"], "archived", "{row}");
    assert!(
        row["filesUploaded"].as_u64().unwrap_or_default() > 0,
        "{row}"
    );
    let now = files_under(&tree.leaf("MRN-002"));
    let gone = unfinished
        .keys()
        .filter(|k| *k != ".smart-fetch-archive.json" && !now.contains_key(*k))
        .count() as u64;
    assert_eq!(row["objectsRemoved"], gone, "{row}");
    assert_archived_copy(&tree, &dest, &[0, 1, 2, 3, 4], &[]);
    let manifest = read_json(
        &dest
            .join("MRN-002")
            .join(format!("001.{NICK}"))
            .join(".smart-fetch-archive.json"),
    );
    assert_eq!(manifest["exportComplete"], true);

    // Now every folder is archived as it is; one changed afterwards shows as changed, in
    // the table too, until the next archive run.
    let status = status_with_archive(&to, &out_s);
    assert!(status.values().all(|s| s == "current"), "{status:?}");
    let log = tree.leaf("MRN-004").join("log.ndjson");
    std::fs::File::options()
        .append(true)
        .open(&log)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)))
        .expect("touch log.ndjson");
    assert_eq!(status_with_archive(&to, &out_s)["MRN-004"], "outdated");
    let table = run(&["status", "--nickname", NICK, "--archive", &to, &out_s]);
    assert_success(&table);
    let table = text(&table.stdout);
    assert!(
        table.contains("changed since: rerun archive")
            && table.contains("4 leaf folders archived as they are now, 1 changed since"),
        "{table}"
    );
    assert_success(&archive(&args, &[]));
    assert_eq!(status_with_archive(&to, &out_s)["MRN-004"], "current");

    // The library call `status` uses: where is a leaf folder archived, and how?
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (found, missing) = runtime.block_on(async {
        let dest = smart_fetch::archive::Destination::open(&to)
            .await
            .expect("destination");
        (
            smart_fetch::archive::archived_at(&dest, "MRN-002", &format!("001.{NICK}"))
                .await
                .expect("archived_at"),
            smart_fetch::archive::archived_at(&dest, "MRN-009", &format!("001.{NICK}"))
                .await
                .expect("archived_at"),
        )
    });
    let found = found.expect("MRN-002 is archived");
    assert!(found.export_complete);
    assert_eq!(found.files.len(), now.len());
    assert!(missing.is_none());

    // A nickname nobody exported: nothing to archive, one line.
    let none = archive(&["--nickname", "q9", "--to", &to, &out_s], &[]);
    assert_eq!(none.status.code(), Some(1));
    let line = one_line(&none);
    assert!(
        line.starts_with("Nothing to archive") && line.contains("q9"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&tree.dir);
}

/// `status --archive` and `archive::archive_state` when the destination cannot be read: a
/// missing archive folder, and a manifest that cannot be opened, are one line and exit 1
/// with no report; the library call returns the error, not an answer.
#[test]
fn status_archive_of_an_unreadable_destination_is_one_line() {
    let dir = temp_dir("archive-status-unreadable");
    let _cleanup = RemoveOnDrop(dir.to_path_buf());
    let out = dir.join("out");
    let leaf = synthetic_group(&out, "MRN-000", "001.q1");
    let out_s = out.to_string_lossy().into_owned();
    let dest = dir.join("archive");
    let to = format!("file://{}/", dest.display());
    let status_of = || run(&["status", "--nickname", "q1", "--archive", &to, &out_s]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = || {
        runtime.block_on(async {
            let dest = smart_fetch::archive::Destination::open(&to)
                .await
                .expect("destination");
            smart_fetch::archive::archive_state(&dest, "MRN-000", &leaf, true).await
        })
    };

    let missing = status_of();
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stdout));
    let line = one_line(&missing);
    assert!(line.contains("does not exist"), "{line}");
    assert!(missing.stdout.is_empty(), "{}", text(&missing.stdout));

    std::fs::create_dir_all(&dest).expect("mkdir");
    assert_success(&archive(&["--nickname", "q1", "--to", &to, &out_s], &[]));
    let manifest = dest.join("MRN-000/001.q1/.smart-fetch-archive.json");
    let archived = read_json(&manifest)["archived"]
        .as_str()
        .expect("archived")
        .to_string();
    assert_eq!(
        state().ok(),
        Some(smart_fetch::archive::ArchiveState::Current { archived })
    );

    // A link to itself: no one, not even root, can open it.
    std::fs::remove_file(&manifest).expect("remove the manifest");
    std::os::unix::fs::symlink(&manifest, &manifest).expect("symlink");
    let broken = status_of();
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken.stdout));
    let line = one_line(&broken);
    assert!(
        line.contains("MRN-000/001.q1/.smart-fetch-archive.json"),
        "{line}"
    );
    assert!(broken.stdout.is_empty(), "{}", text(&broken.stdout));
    let error = state().err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("MRN-000/001.q1/.smart-fetch-archive.json")),
        "{error:?}"
    );
}

/// `status --json --archive TO`: each group's archive state (`current`, `outdated`,
/// `missing`).
fn status_with_archive(to: &str, out: &str) -> BTreeMap<String, String> {
    let result = run(&["status", "--nickname", NICK, "--json", "--archive", to, out]);
    assert_success(&result);
    let report: Value = serde_json::from_slice(&result.stdout).expect("status JSON");
    report["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .map(|g| {
                    (
                        g["name"].as_str().unwrap_or_default().to_string(),
                        g["leaf"]["archive"]["state"]
                            .as_str()
                            .unwrap_or("(none)")
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL in the middle of a 300 MB upload, then the same command: the object ends whole
/// (its sha256 is the file's), nothing claimed the folder archived in between, and the
/// rerun's peak memory stays under 64 MiB.
fn kill_mid_upload_then_resume(
    dir: &Path,
    to: &str,
    env: &[(String, String)],
    mid_upload: &dyn Fn() -> bool,
    archived_file: &dyn Fn(&Path) -> PathBuf,
    manifest_exists: &dyn Fn() -> bool,
) -> (u64, f64) {
    const BIG: u64 = 300 << 20;
    let out = dir.join("out");
    let leaf = synthetic_group(&out, "MRN-000", "001.q1");
    let big = leaf.join("padding.bin");
    write_noise(&big, BIG);
    let out_s = out.to_string_lossy().into_owned();
    let args = ["--nickname", "q1", "--to", to, "--json", &out_s];
    let mut env = env.to_vec();
    env.push(("SMART_FETCH_PROGRESS_SECS".into(), "0.5".into()));
    let env = &env[..];

    let mut child = spawn_archive(&args, env);
    let started = Instant::now();
    while !mid_upload() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("archive ended ({status}) before it could be killed mid-upload");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "upload never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        !manifest_exists(),
        "a manifest claims the cut-off folder is archived"
    );

    let started = Instant::now();
    let (rerun, peak) = archive_measured(&args, env);
    let seconds = started.elapsed().as_secs_f64();
    assert_success(&rerun);
    let summary = json_of(&rerun);
    assert_eq!(summary["folders"][0]["state"], "archived", "{summary}");
    // Progress lines (with --json they are on stderr): files, bytes, rate, folders, ETA.
    let stderr = text(&rerun.stderr);
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Archive: "))
        .collect();
    assert!(
        progress.iter().any(|l| l.contains(" files, ")
            && l.contains("/s)")
            && l.contains("of 1 leaf folders")),
        "{stderr}"
    );
    assert!(manifest_exists());
    let copy = archived_file(&big);
    assert_eq!(
        sha256_file(&copy),
        sha256_file(&big),
        "the archived copy differs"
    );
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB for a 300 MB upload",
        peak >> 20
    );
    (peak, seconds)
}

#[test]
fn s3_sigkill_during_a_300_mb_upload_then_rerun_completes_it() {
    let dir = temp_dir("archive-s3-kill");
    let _cleanup = RemoveOnDrop(dir.to_path_buf());
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let key = "epic/MRN-000/001.q1/padding.bin";
    let offset = s3.log_len();
    let log = s3.log.clone();
    let (peak, seconds) = kill_mid_upload_then_resume(
        &dir,
        &format!("s3://{BUCKET}/epic/"),
        &s3.env(),
        &|| {
            // Four parts (32 MiB) in: well inside the 300 MB.
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.get(offset..)
                .unwrap_or_default()
                .matches(&format!("PUT /{BUCKET}/{key}?partNumber="))
                .count()
                >= 4
        },
        &|_| {
            let copy = dir.join("downloaded");
            s3.download(BUCKET, "epic/MRN-000/001.q1/", &copy);
            copy.join("padding.bin")
        },
        &|| {
            s3.list(BUCKET, "epic/")
                .contains_key("epic/MRN-000/001.q1/.smart-fetch-archive.json")
        },
    );
    // The killed run's upload was never completed, so it never became an object; it stays
    // open on the server (a lifecycle rule clears such uploads on real S3).
    assert!(s3.open_uploads(BUCKET).iter().any(|k| k == key));
    eprintln!(
        "S3: 300 MB upload after a kill: {seconds:.1} s, peak RSS {:.1} MiB",
        peak as f64 / f64::from(1 << 20)
    );
}

#[test]
fn local_sigkill_during_a_300_mb_upload_then_rerun_completes_it() {
    let dir = temp_dir("archive-local-kill");
    let _cleanup = RemoveOnDrop(dir.to_path_buf());
    let dest = dir.join("archive");
    std::fs::create_dir_all(&dest).expect("mkdir");
    let leaf_copy = dest.join("MRN-000/001.q1");
    let staging = |min: u64| {
        std::fs::read_dir(&leaf_copy).ok().is_some_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("padding.bin#")
                    && e.metadata().is_ok_and(|m| m.len() >= min)
            })
        })
    };
    let (peak, seconds) = kill_mid_upload_then_resume(
        &dir,
        &format!("file://{}/", dest.display()),
        &[],
        &|| staging(32 << 20),
        &|_| leaf_copy.join("padding.bin"),
        &|| leaf_copy.join(".smart-fetch-archive.json").exists(),
    );
    // The cut-off staging file of the killed run is gone.
    assert!(
        !staging(0),
        "a cut-off upload was left beside the archived files"
    );
    eprintln!(
        "file://: 300 MB upload after a kill: {seconds:.1} s, peak RSS {:.1} MiB",
        peak as f64 / f64::from(1 << 20)
    );
}

/// Ctrl-C or SIGTERM (a scheduler's time limit) in the middle of a large upload: exit 130,
/// the upload aborted on the server (no parts left behind), no manifest.
#[test]
fn s3_sigterm_aborts_the_upload_in_flight() {
    let dir = temp_dir("archive-s3-term");
    let _cleanup = RemoveOnDrop(dir.to_path_buf());
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let out = dir.join("out");
    let leaf = synthetic_group(&out, "MRN-000", "001.q1");
    write_noise(&leaf.join("padding.bin"), 120 << 20);
    let out_s = out.to_string_lossy().into_owned();
    let key = "epic/MRN-000/001.q1/padding.bin";
    let offset = s3.log_len();
    let child = spawn_archive(
        &[
            "--nickname",
            "q1",
            "--to",
            &format!("s3://{BUCKET}/epic/"),
            &out_s,
        ],
        &s3.env(),
    );
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(&s3.log).unwrap_or_default();
        if log
            .get(offset..)
            .unwrap_or_default()
            .contains("?partNumber=2")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "upload never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let stopped = wait(child, Duration::from_secs(60));
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        text(&stopped.stderr)
    );
    assert!(
        text(&stopped.stderr).contains("Interrupted"),
        "{}",
        text(&stopped.stderr)
    );
    assert!(
        s3.open_uploads(BUCKET).is_empty(),
        "the upload was not aborted"
    );
    let listing = s3.list(BUCKET, "epic/");
    assert!(!listing.contains_key(key), "{listing:?}");
    assert!(
        !listing
            .keys()
            .any(|k| k.ends_with(".smart-fetch-archive.json"))
    );
}

#[test]
fn wrong_credentials_unknown_bucket_and_unreachable_store_each_give_one_line() {
    let dir = temp_dir("archive-credentials");
    let _cleanup = RemoveOnDrop(dir.to_path_buf());
    let s3 = S3Server::start_with_auth().with_iam_user(BUCKET);
    let out = dir.join("out");
    synthetic_group(&out, "MRN-000", "001.q1");
    let out_s = out.to_string_lossy().into_owned();
    let to = format!("s3://{BUCKET}/epic/");
    let args = |to: &str| -> Vec<String> {
        ["--verbose", "--nickname", "q1", "--to", to, &out_s]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let run = |to: &str, env: &[(String, String)]| {
        let args = args(to);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        archive(&refs, env)
    };
    let status_of = |to: &str, env: &[(String, String)]| {
        status(&["--nickname", "q1", "--archive", to, &out_s], env)
    };
    let no_secret = |out: &std::process::Output, secret: &str| {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(secret), "a secret was printed: {all}");
    };

    // An unknown key, and a known key with the wrong secret.
    for (key_id, secret, code) in [
        (
            "AKIAWRONGWRONGWRONG0",
            "wrong-secret-1234",
            "InvalidAccessKeyId",
        ),
        (s3.key_id(), "wrong-secret-5678", "SignatureDoesNotMatch"),
    ] {
        let out = run(&to, &s3.env_with(key_id, secret));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let line = one_line(&out);
        assert!(
            line.contains("refused the credentials") && line.contains(code),
            "{line}"
        );
        assert!(
            !text(&out.stdout).contains("archived,"),
            "{}",
            text(&out.stdout)
        );
        no_secret(&out, secret);
        no_secret(&out, s3.secret());
        // `status --archive` asks the same store: the same line, and no report.
        let out = status_of(&to, &s3.env_with(key_id, secret));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let line = one_line(&out);
        assert!(
            line.contains("refused the credentials") && line.contains(code),
            "{line}"
        );
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        no_secret(&out, secret);
        no_secret(&out, s3.secret());
    }
    // Nothing was written by the refused runs.
    assert!(s3.list(BUCKET, "").is_empty());

    // The right key through an AWS profile (~/.aws/credentials), as `aws configure` leaves it.
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".aws")).expect("mkdir");
    std::fs::write(
        home.join(".aws/credentials"),
        format!(
            "[archive]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.key_id(),
            s3.secret()
        ),
    )
    .expect("write");
    let profile_env: Vec<(String, String)> = [
        ("HOME", home.to_string_lossy().into_owned()),
        ("AWS_PROFILE", "archive".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let ok = run(&to, &profile_env);
    assert_success(&ok);
    no_secret(&ok, s3.secret());
    assert!(
        s3.list(BUCKET, "")
            .contains_key("epic/MRN-000/001.q1/.smart-fetch-archive.json")
    );

    // A bucket that does not exist.
    let out = run("s3://no-such-bucket/epic/", &s3.env());
    assert_eq!(out.status.code(), Some(1));
    let line = one_line(&out);
    assert!(
        line.contains("does not exist") && line.contains("NoSuchBucket"),
        "{line}"
    );
    // `status --archive` too: not "not archived" for every folder (a read in a missing
    // bucket answers 404, as a missing manifest does).
    let out = status_of("s3://no-such-bucket/epic/", &s3.env());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let line = one_line(&out);
    assert!(
        line.contains("does not exist") && line.contains("NoSuchBucket"),
        "{line}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    // A profile that is not there.
    let mut missing = profile_env.clone();
    missing.retain(|(k, _)| k != "AWS_PROFILE");
    missing.push(("AWS_PROFILE".into(), "nope".into()));
    let out = run(&to, &missing);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("'nope'"));

    // An endpoint nobody listens on: one line, quickly (no minutes of retries).
    let mut unreachable = s3.env();
    unreachable.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    unreachable.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    let started = Instant::now();
    let out = run(&to, &unreachable);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("Could not reach"));
    assert!(started.elapsed() < Duration::from_secs(60));
    let started = Instant::now();
    let out = status_of(&to, &unreachable);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("Could not reach"));
    assert!(started.elapsed() < Duration::from_secs(60));

    // Plain http without AWS_ALLOW_HTTP, and a URL carrying credentials: usage errors.
    let mut no_http = s3.env();
    no_http.retain(|(k, _)| k != "AWS_ALLOW_HTTP");
    let out = run(&to, &no_http);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("AWS_ALLOW_HTTP=true"));
    let out = run(
        &format!("s3://id:{}@{BUCKET}/epic/", s3.secret()),
        &s3.env(),
    );
    assert_eq!(out.status.code(), Some(2));
    no_secret(&out, s3.secret());
}

/// Cumulus ETL's own loader (PyPI cumulus-etl, ~1.3 GB venv made once under target/) reads
/// an archived leaf folder from the S3 server and finds what it finds in the local folder:
/// the same resources, deletions, export group and time. Runs in CI (`CI` set) or with
/// `SMART_FETCH_ETL_CHECK=1`; elsewhere it says it was skipped.
#[test]
fn cumulus_etl_reads_an_archived_leaf_folder_from_s3_as_the_local_one() {
    if std::env::var_os("CI").is_none() && std::env::var_os("SMART_FETCH_ETL_CHECK").is_none() {
        eprintln!("skipped: set SMART_FETCH_ETL_CHECK=1 (CI sets CI) to run the Cumulus ETL check");
        return;
    }
    let dir = temp_dir("archive-etl");
    let ehr = server_with(Config {
        flavor: Flavor::Epic,
        patients: 10,
        ..Config::default()
    });
    let url = ehr.base_url();
    let ids = mrn_file(&dir, "MRN-000", 10);
    let out = dir.join("out");
    let managed = out.join("MRN-000");
    let export = |nick: &str| {
        let result = run(&[
            "export",
            "--fhir-url",
            &url,
            "--id-system",
            fake_ehr::data::MRN_SYSTEM,
            "--id-file",
            &ids.to_string_lossy(),
            "--nickname",
            nick,
            &managed.to_string_lossy(),
        ]);
        assert_success(&result);
    };
    export("q1");
    // The second quarter deletes and changes resources, so the leaf folder has deleted/.
    ehr.set_quarter(2).expect("quarter 2");
    export("q2");
    let leaf = managed.join("002.q2");
    assert!(leaf.join("deleted").is_dir());

    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let out_s = out.to_string_lossy().into_owned();
    assert_success(&archive(
        &[
            "--nickname",
            "q2",
            "--to",
            &format!("s3://{BUCKET}/epic/"),
            &out_s,
        ],
        &s3.env(),
    ));
    let started = Instant::now();
    let check = clean_command(&repo_root().join("scripts/etl-check.sh"), &s3.env())
        .arg(&leaf)
        .arg(format!("s3://{BUCKET}/epic/MRN-000/002.q2/"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/etl-check.sh");
    let stdout = text(&check.stdout);
    assert!(
        check.status.success(),
        "the ETL sees the archived folder differently:\n{stdout}\n{}",
        text(&check.stderr)
    );
    let found: Value = serde_json::from_str(&stdout).expect("etl-check output");
    let archived = &found[1];
    assert_eq!(archived["group"], "MRN-000");
    assert!(archived["exportTime"].is_string(), "{archived}");
    assert!(
        archived["resources"]["Patient"]["count"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(
        archived["deleted"].as_object().is_some_and(|d| d
            .values()
            .any(|ids| ids.as_array().is_some_and(|a| !a.is_empty()))),
        "{archived}"
    );
    eprintln!(
        "Cumulus ETL check: {:.1} s (venv install included on a first run)",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
