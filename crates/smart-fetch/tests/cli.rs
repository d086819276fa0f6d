//! The command line as a user meets it, through the real binary and without a server: help,
//! version, usage errors, `--type` parsing, the config file and the early folder checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

use std::path::Path;
use std::process::{Command, Output};

const SUBCOMMANDS: [&str; 12] = [
    "export",
    "bulk",
    "crawl",
    "hydrate",
    "single",
    "bundle",
    "reset-symlinks",
    "groups",
    "batch",
    "status",
    "archive",
    "delta",
];

/// Nothing listens here, so any accidental request fails at once instead of hanging.
const DEAD_URL: &str = "http://127.0.0.1:9/fhir";

fn run(args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_smart-fetch"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!("could not run smart-fetch: {e}"),
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh folder for one test, removed when it ends; derefs to its path.
struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("smart-fetch-cli-{name}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    TempDir(dir)
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 temp path"))
}

/// One clean line on stderr with this exit status, no panic text.
fn assert_one_line_error(o: &Output, code: i32, expected: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, format!("{expected}\n"));
}

#[test]
fn help_for_root_and_every_subcommand() {
    let mut cases = vec![vec!["--help"], vec!["-h"]];
    for sub in SUBCOMMANDS {
        cases.push(vec![sub, "--help"]);
        cases.push(vec![sub, "-h"]);
    }
    for args in cases {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("options:\n"),
            "{args:?}: {}",
            stdout(&o)
        );
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    let root = stdout(&run(&["--help"]));
    for sub in SUBCOMMANDS {
        assert!(root.contains(sub), "{sub} not in {root}");
    }
    assert!(root.contains("start with the high-level 'export' command"));
    // Deprecated aliases work but are not advertised.
    let crawl = stdout(&run(&["crawl", "--help"]));
    assert!(!crawl.contains("--mrn-"), "{crawl}");
}

#[test]
fn version_everywhere() {
    for args in [
        &["--version"][..],
        &["export", "--version"],
        &["single", "--version"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(stdout(&o), "smart-fetch 1.0.3\n", "{args:?}");
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_on_stderr() {
    for args in [
        &[][..],
        &["bogus"],
        &["export"],
        &["export", "out", "--bogus"],
        &["export", "out", "--export-mode", "fast"],
        &["crawl", "out", "--since-mode", "whenever"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(stdout(&o), "", "{args:?}");
        assert!(!stderr(&o).is_empty(), "{args:?}");
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
}

#[test]
fn fhir_url_is_required() {
    let dir = temp_dir("no-url");
    let out = dir.join("out");
    let o = run(&["single", "Patient/abc"]);
    assert_one_line_error(&o, 1, "--fhir-url is required");
    let o = run(&["export", path_str(&out)]);
    assert_one_line_error(&o, 1, "--fhir-url is required");
    let o = run(&["crawl", path_str(&out), "--type", "help"]);
    assert_one_line_error(&o, 1, "--fhir-url is required");
    assert!(!out.exists());
}

#[test]
fn type_help_needs_no_server() {
    let dir = temp_dir("type-help");
    let out = dir.join("out");
    for sub in ["export", "crawl"] {
        let o = run(&[sub, path_str(&out), "--fhir-url", DEAD_URL, "--type=help"]);
        assert_eq!(o.status.code(), Some(0), "{sub}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("These resource types are supported:\n  all\n  Patient\n"),
            "{sub}: {}",
            stdout(&o)
        );
        assert!(stdout(&o).contains("\n  Specimen\n"), "{sub}");
        assert_eq!(stderr(&o), "", "{sub}");
    }
    assert!(!out.exists());
}

#[test]
fn unknown_type_exits_2_with_the_listing() {
    let dir = temp_dir("type-bogus");
    let out = dir.join("out");
    for types in ["bogus", "help,bogus", "Patient,bogus"] {
        let o = run(&[
            "export",
            path_str(&out),
            "--fhir-url",
            DEAD_URL,
            "--type",
            types,
        ]);
        assert_eq!(o.status.code(), Some(2), "{types}: {}", stderr(&o));
        assert_eq!(stderr(&o), "Unknown resource type provided: bogus\n");
        assert!(stdout(&o).contains("These resource types are supported:"));
    }
    // No trimming around commas.
    let o = run(&[
        "export",
        path_str(&out),
        "--fhir-url",
        DEAD_URL,
        "--type",
        "Patient, Device",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "Unknown resource type provided:  Device\n");
    assert!(!out.exists());
}

#[test]
fn config_file_supplies_unset_options() {
    let dir = temp_dir("config");
    let out = dir.join("out");
    let config = dir.join("smart-fetch.toml");
    let text = format!("fhir-url = \"{DEAD_URL}\"\ntype = \"help\"\n");
    if let Err(e) = std::fs::write(&config, text) {
        panic!("{e}");
    }
    // Config after the subcommand, and at root level.
    for args in [
        vec!["export", path_str(&out), "-c", path_str(&config)],
        vec!["--config", path_str(&config), "export", path_str(&out)],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("These resource types are supported:"));
    }
    // The command line wins over the config file.
    let o = run(&[
        "export",
        path_str(&out),
        "-c",
        path_str(&config),
        "--type",
        "bogus",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o), "Unknown resource type provided: bogus\n");
    assert!(!out.exists());
}

#[test]
fn config_file_problems_are_one_line() {
    let dir = temp_dir("config-bad");
    let out = dir.join("out");
    let missing = dir.join("missing.toml");
    let o = run(&["export", path_str(&out), "-c", path_str(&missing)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "Could not read config file '{}'",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let bad = dir.join("bad.toml");
    if let Err(e) = std::fs::write(&bad, "fhir-url = \n") {
        panic!("{e}");
    }
    let o = run(&["single", "Patient/x", "-c", path_str(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("Could not parse config file '{}'", bad.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn url_looking_folders_are_refused() {
    let o = run(&["export", "s3://bucket/", "--fhir-url", DEAD_URL]);
    assert_one_line_error(
        &o,
        1,
        "Expected a local folder, but 's3://bucket/' looks like a URL.",
    );
    let o = run(&["crawl", "http://x/y", "--fhir-url", DEAD_URL]);
    assert_one_line_error(
        &o,
        1,
        "Expected a local folder, but 'http://x/y' looks like a URL.",
    );
}

#[test]
fn reset_symlinks_needs_a_managed_folder() {
    let dir = temp_dir("reset");
    let o = run(&["reset-symlinks", path_str(&dir)]);
    assert_one_line_error(
        &o,
        1,
        &format!(
            "Folder '{}' does not look like a SMART Fetch managed export folder.",
            dir.display()
        ),
    );
}

#[test]
fn hydration_task_parsing_needs_no_server() {
    let dir = temp_dir("tasks");
    let out = dir.join("out");
    let listing = "These hydration tasks are supported:\n  all\n  none\n  episodeofcare\n  inline\n  \
                   location\n  medication\n  observation\n  organization\n  practitioner\n  specimen\n";
    for args in [
        vec![
            "hydrate",
            path_str(&out),
            "--fhir-url",
            DEAD_URL,
            "--tasks",
            "help",
        ],
        vec![
            "hydrate",
            path_str(&out),
            "--fhir-url",
            DEAD_URL,
            "--tasks=bogus,HELP",
        ],
        vec![
            "export",
            path_str(&out),
            "--fhir-url",
            DEAD_URL,
            "--hydration-tasks",
            "help",
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        // `export` starts with its rule line.
        let text = stdout(&o);
        let text = text.trim_start_matches(['─', '\n']);
        assert_eq!(text, listing, "{args:?}");
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    for (args, bad) in [
        (
            vec![
                "hydrate",
                path_str(&out),
                "--fhir-url",
                DEAD_URL,
                "--tasks",
                "Medication,Bogus",
            ],
            "bogus",
        ),
        (
            vec![
                "export",
                path_str(&out),
                "--fhir-url",
                DEAD_URL,
                "--hydration-tasks=inline, location",
            ],
            " location",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&o),
            format!("Unknown hydration task provided: {bad}\n")
        );
        let text = stdout(&o);
        let rule = format!("{}\n", "─".repeat(80));
        let body = text.strip_prefix(&rule).unwrap_or(&text);
        assert_eq!(body, format!("\n{listing}"), "{args:?}");
    }
    // Like `--type help`, the listing needs `--fhir-url`
    // (docs/differences.md#type-help-needs-a-server-url).
    let o = run(&["hydrate", path_str(&out), "--tasks", "help"]);
    assert_one_line_error(&o, 1, "--fhir-url is required");
    assert!(!out.exists());
}

#[test]
fn hydrate_checks_its_folders() {
    let dir = temp_dir("hydrate-folders");
    let o = run(&["hydrate", "s3://bucket/", "--fhir-url", DEAD_URL]);
    assert_one_line_error(
        &o,
        1,
        "Expected a local folder, but 's3://bucket/' looks like a URL.",
    );
    let missing = dir.join("missing");
    let o = run(&[
        "hydrate",
        path_str(&dir),
        "--fhir-url",
        DEAD_URL,
        "--source-dir",
        path_str(&missing),
    ]);
    assert_one_line_error(
        &o,
        1,
        &format!("Local folder '{}' does not exist.", missing.display()),
    );
}
