//! The command-line layer: parse (argparse-compatible exit codes and streams), layer the
//! config file, dispatch to one module per subcommand, and turn the outcome into a message
//! and an exit code. `main.rs` only builds the runtime around `parse`, `run` and `finish`.

pub mod archive;
pub mod args;
pub mod batch;
pub mod bulk;
pub mod bundle;
pub mod clients;
pub mod common;
pub mod config;
pub mod crawl;
pub mod delta;
pub mod export;
pub mod groups;
pub mod hydrate;
pub mod reset_symlinks;
pub mod single;
pub mod status;

use crate::cancel::Cancel;
use crate::error::AppError;
use crate::report::Reporter;
use args::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// Parse the command line. Help goes to stdout (exit 0), `--version` prints
/// `smart-fetch 1.0.3` (exit 0), usage errors go to stderr (exit 2); those come back as the
/// `Err` exit code, already printed.
pub fn parse<I, T>(argv: I) -> Result<Cli, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli),
        Err(err) if err.kind() == ErrorKind::DisplayVersion => {
            // Subcommands would render as `smart-fetch-export 1.0.3`; argparse always says
            // the program name.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "smart-fetch {}", crate::COMPAT_VERSION);
            let _ = out.flush();
            Err(ExitCode::SUCCESS)
        }
        Err(err) => {
            let _ = err.print();
            Err(ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2)))
        }
    }
}

/// Layer the config file (for the subcommands that read it), then run the subcommand,
/// reporting through `reporter`. Ctrl-C and SIGTERM end the run with
/// `AppError::Interrupted` (exit 130) through one cancellation token: committed work is
/// safe on disk.
pub async fn run(cli: Cli, reporter: &Reporter) -> Result<(), AppError> {
    let cancel = Cancel::new();
    cancel.on_signals();
    let work = dispatch(cli, reporter, &cancel);
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => result,
        () = cancel.cancelled() => {
            // Every command stops its work on the token at once; a batch then writes its
            // summary. Give that a moment, but the exit status is 130 whatever it returns.
            let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
            Err(AppError::Interrupted)
        }
    }
}

/// How long a cancelled command may take to leave its records in order.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn dispatch(cli: Cli, reporter: &Reporter, cancel: &Cancel) -> Result<(), AppError> {
    let Cli {
        general,
        mut command,
    } = cli;
    if config::applies_to(&command)
        && let Some(path) = &general.config
    {
        let table = config::load(path)?;
        config::apply(&mut command, &table)?;
    }
    match command {
        Command::Export(args) => export::run(args, reporter, cancel).await,
        Command::Crawl(args) => cancel.guard(crawl::run(args, reporter)).await,
        Command::Single(args) => cancel.guard(single::run(args, reporter)).await,
        Command::ResetSymlinks(args) => cancel.guard(reset_symlinks::run(args, reporter)).await,
        Command::Bulk(args) => cancel.guard(bulk::run(args, reporter)).await,
        Command::Hydrate(args) => cancel.guard(hydrate::run(args, reporter)).await,
        Command::Bundle(args) => bundle::run(args, reporter),
        Command::Groups(args) => groups::run(args, reporter),
        Command::Batch(args) => batch::run(args, reporter, cancel).await,
        Command::Status(args) => cancel.guard(status::run(args)).await,
        Command::Archive(args) => archive::run(args, reporter, cancel).await,
        Command::Delta(args) => cancel.guard(delta::run(args, reporter)).await,
    }
}

/// Report a failed run's message (one line; the Python tool's multi-line messages as they are)
/// through `reporter` (stderr in every format) and pick the exit code. `AppError::Exit`
/// prints nothing.
pub fn finish(result: Result<(), AppError>, reporter: &Reporter) -> ExitCode {
    let _ = std::io::stdout().lock().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !matches!(err, AppError::Exit(_)) {
                // Messages often quote the server (a URL it sent, its error text).
                reporter.error(crate::text::printable(&err.to_string()));
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// The process's stdout and stderr, for the reporter: the one place they are opened.
fn streams() -> crate::report::Streams {
    use std::io::IsTerminal;
    crate::report::Streams {
        stdout: Box::new(std::io::stdout()),
        stderr: Box::new(std::io::stderr()),
        stdout_is_terminal: std::io::stdout().is_terminal(),
        stderr_is_terminal: std::io::stderr().is_terminal(),
    }
}

/// The whole program: parse, run on a multi-thread runtime, report.
pub fn main<I, T>(argv: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match parse(argv) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let reporter = Reporter::new(cli.general.log_format(), cli.general.verbose, streams());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return finish(
                Err(AppError::Message(format!(
                    "Could not start the async runtime: {e}"
                ))),
                &reporter,
            );
        }
    };
    let result = runtime.block_on(run(cli, &reporter));
    // Do not wait for stray blocking tasks (e.g. a file write cut short by Ctrl-C).
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    finish(result, &reporter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli(argv: &[&str]) -> Result<Cli, clap::Error> {
        let mut full = vec!["smart-fetch"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full)
    }

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbose_and_config_in_either_position() {
        let parsed =
            cli(&["-v", "-c", "a.toml", "export", "out"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.general.verbose);
        assert_eq!(
            parsed.general.config.as_deref(),
            Some(std::path::Path::new("a.toml"))
        );
        let parsed = cli(&["export", "out", "--verbose", "--config", "b.toml"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.general.verbose);
        assert_eq!(
            parsed.general.config.as_deref(),
            Some(std::path::Path::new("b.toml"))
        );
        let parsed = cli(&["export", "out"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.general.verbose);
        assert!(parsed.general.config.is_none());
    }

    #[test]
    fn log_format_in_either_position() {
        use crate::report::Format;
        let parsed =
            cli(&["--log-format", "json", "export", "out"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.general.log_format(), Format::Json);
        let parsed = cli(&["crawl", "out", "--log-format=plain"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.general.log_format(), Format::Plain);
        let parsed = cli(&["bundle", "dir"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.general.log_format(), Format::Text);
        let err = cli(&["export", "out", "--log-format", "x"]).err();
        assert_eq!(err.map(|e| e.exit_code()), Some(2));
    }

    #[test]
    fn hidden_aliases_and_prefixes() {
        let parsed = cli(&[
            "crawl",
            "out",
            "--mrn-file",
            "ids.txt",
            "--mrn-system",
            "uri:x",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Crawl(args) = parsed.command else {
            panic!("not crawl")
        };
        assert_eq!(
            args.cohort.id_file.as_deref(),
            Some(std::path::Path::new("ids.txt"))
        );
        assert_eq!(args.cohort.id_system.as_deref(), Some("uri:x"));

        let parsed = cli(&["export", "out", "--fhir", "http://x/", "--no-default"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Export(args) = parsed.command else {
            panic!("not export")
        };
        assert_eq!(args.auth.fhir_url.as_deref(), Some("http://x/"));
        assert!(args.resources.no_default_filters);
        // Ambiguous prefix is an error.
        assert!(cli(&["export", "out", "--no", "x"]).is_err());

        let mut help = Cli::command();
        let crawl = help
            .find_subcommand_mut("crawl")
            .map(|c| c.render_help().to_string());
        let crawl = crawl.unwrap_or_default();
        assert!(!crawl.contains("--mrn"), "{crawl}");
        assert!(crawl.contains("--id-file"), "{crawl}");
    }

    #[test]
    fn repeatable_types_and_interleaving() {
        let parsed = cli(&[
            "crawl",
            "--type",
            "Patient",
            "out",
            "--type=Condition,Device",
            "--type-filter",
            "Condition?code=1",
            "--since-mode",
            "created",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Crawl(args) = parsed.command else {
            panic!("not crawl")
        };
        assert_eq!(args.output_dir, "out");
        assert_eq!(args.resources.types, vec!["Patient", "Condition,Device"]);
        assert_eq!(args.resources.type_filters, vec!["Condition?code=1"]);
        assert_eq!(args.since_mode, args::SinceModeArg::Created);
    }

    #[test]
    fn usage_errors() {
        for argv in [
            &[][..],
            &["bogus"],
            &["export"],
            &["export", "out", "--bogus"],
            &["export", "out", "--export-mode", "fast"],
            &["export", "out", "--since-mode", "whenever"],
            &["single", "x", "--max-connections", "0"],
        ] {
            let err = cli(argv).err().map(|e| e.exit_code());
            assert_eq!(err, Some(2), "{argv:?}");
        }
        let err = cli(&["--help"]).err().map(|e| (e.kind(), e.exit_code()));
        assert_eq!(err, Some((ErrorKind::DisplayHelp, 0)));
        let err = cli(&["export", "--version"]).err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::DisplayVersion));
    }

    #[test]
    fn help_uses_argparse_headings() {
        let mut root = Cli::command();
        let text = root.render_help().to_string();
        assert!(text.contains("\noptions:\n"), "{text}");
        assert!(text.contains("commands:"), "{text}");
        assert!(!text.contains("Options:"), "{text}");
        let names: Vec<String> = root
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        assert_eq!(
            names,
            [
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
                "delta"
            ]
        );
        for name in names {
            let mut root = Cli::command();
            root.build();
            let Some(sub) = root.find_subcommand_mut(&name) else {
                panic!("{name}")
            };
            let text = sub.render_help().to_string();
            assert!(text.contains("\noptions:\n"), "{name}: {text}");
            assert!(!text.contains("Options:"), "{name}: {text}");
            assert!(!text.contains("Arguments:"), "{name}: {text}");
            assert!(text.contains("--config"), "{name}: {text}");
            assert!(text.contains("--verbose"), "{name}: {text}");
            assert!(text.contains("--log-format"), "{name}: {text}");
        }
    }
}
