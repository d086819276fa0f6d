//! The TOML config file (`--config`/`-c`, docs/cli.md#config-file): loading it, and layering its
//! values under the command line. Keys are long option names; a key fills an option only where the
//! subcommand has that option and the command line left it unset. Boolean flags, the choice options
//! (`export-mode`, `since-mode`) and positionals never come from the config; unknown keys
//! (including the deprecated `mrn-file`/`mrn-system`) are ignored.

use super::args::{
    AuthArgs, BatchArgs, BulkArgs, CohortArgs, Command, CrawlArgs, ExportArgs, HydrateArgs,
    ResourceArgs, SingleArgs,
};
use crate::error::AppError;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Read and parse a config file. Errors name the file and say what is wrong on one line.
pub fn load(path: &Path) -> Result<Table, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AppError::Message(format!(
            "Could not read config file '{}': {e}",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| {
        AppError::Message(format!(
            "Could not parse config file '{}': {e}",
            path.display()
        ))
    })
}

/// Parse config text; the error is one line: the TOML message and where it happened.
pub fn parse(text: &str) -> Result<Table, String> {
    text.parse::<Table>().map_err(|e| {
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("{message} (line {line}, column {column})")
            }
            None => message,
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Layer `config` under the parsed command line, for the subcommands that read the config
/// (export, bulk, crawl, hydrate, single). Others are left untouched.
pub fn apply(command: &mut Command, config: &Table) -> Result<(), AppError> {
    let layer = Layer(config);
    match command {
        Command::Export(args) => layer.export(args),
        Command::Bulk(args) => layer.bulk(args),
        Command::Crawl(args) => layer.crawl(args),
        Command::Hydrate(args) => layer.hydrate(args),
        Command::Single(args) => layer.single(args),
        Command::Batch(args) => layer.batch(args),
        Command::Bundle(_)
        | Command::ResetSymlinks(_)
        | Command::Groups(_)
        | Command::Status(_)
        | Command::Archive(_)
        | Command::Delta(_) => Ok(()),
    }
}

/// Whether a subcommand reads the config file at all (docs/cli.md#config-file: not
/// `bundle`/`reset-symlinks`; nor `groups`, `status`, `archive` and `delta`, ours, which talk to
/// no FHIR server and have no keys of their own there).
pub fn applies_to(command: &Command) -> bool {
    !matches!(
        command,
        Command::Bundle(_)
            | Command::ResetSymlinks(_)
            | Command::Groups(_)
            | Command::Status(_)
            | Command::Archive(_)
            | Command::Delta(_)
    )
}

struct Layer<'a>(&'a Table);

impl Layer<'_> {
    fn export(&self, args: &mut ExportArgs) -> Result<(), AppError> {
        self.string("nickname", &mut args.nickname)?;
        self.string("bulk-timeout", &mut args.bulk_timeout)?;
        self.string("since", &mut args.since)?;
        self.string("hydration-tasks", &mut args.hydration_tasks)?;
        self.auth(&mut args.auth)?;
        self.cohort(&mut args.cohort)?;
        self.resources(&mut args.resources)
    }

    fn batch(&self, args: &mut BatchArgs) -> Result<(), AppError> {
        self.string("nickname", &mut args.nickname)?;
        self.path("groups", &mut args.groups)?;
        self.string("shard", &mut args.shard)?;
        self.string("bulk-timeout", &mut args.bulk_timeout)?;
        self.string("since", &mut args.since)?;
        self.string("hydration-tasks", &mut args.hydration_tasks)?;
        self.string("id-system", &mut args.id_system)?;
        self.auth(&mut args.auth)?;
        self.resources(&mut args.resources)
    }

    fn bulk(&self, args: &mut BulkArgs) -> Result<(), AppError> {
        self.string("group", &mut args.group)?;
        self.string("bulk-timeout", &mut args.bulk_timeout)?;
        self.string("since", &mut args.since)?;
        self.auth(&mut args.auth)?;
        self.resources(&mut args.resources)
    }

    fn crawl(&self, args: &mut CrawlArgs) -> Result<(), AppError> {
        self.string("since", &mut args.since)?;
        self.string("bulk-timeout", &mut args.bulk_timeout)?;
        self.string("source-dir", &mut args.source_dir)?;
        self.cohort(&mut args.cohort)?;
        self.auth(&mut args.auth)?;
        self.resources(&mut args.resources)
    }

    fn hydrate(&self, args: &mut HydrateArgs) -> Result<(), AppError> {
        self.string("tasks", &mut args.tasks)?;
        self.string("source-dir", &mut args.source_dir)?;
        self.string("mimetypes", &mut args.mimetypes)?;
        self.auth(&mut args.auth)
    }

    fn single(&self, args: &mut SingleArgs) -> Result<(), AppError> {
        self.auth(&mut args.auth)
    }

    fn auth(&self, auth: &mut AuthArgs) -> Result<(), AppError> {
        self.string("smart-client-id", &mut auth.smart_client_id)?;
        self.string("smart-key", &mut auth.smart_key)?;
        self.string("smart-jku", &mut auth.smart_jku)?;
        self.string("bulk-smart-client-id", &mut auth.bulk_smart_client_id)?;
        self.string("bulk-smart-key", &mut auth.bulk_smart_key)?;
        self.string("basic-user", &mut auth.basic_user)?;
        self.string("basic-passwd", &mut auth.basic_passwd)?;
        self.string("bearer-token", &mut auth.bearer_token)?;
        self.string("fhir-url", &mut auth.fhir_url)?;
        self.string("token-url", &mut auth.token_url)?;
        self.path("ca-file", &mut auth.ca_file)?;
        self.connections("max-connections", &mut auth.max_connections)?;
        self.whole("request-timeout", &mut auth.request_timeout, 1, 86400)?;
        self.whole("max-body-size", &mut auth.max_body_size, 1, 65536)
    }

    fn cohort(&self, cohort: &mut CohortArgs) -> Result<(), AppError> {
        self.string("group", &mut cohort.group)?;
        self.string("group-nickname", &mut cohort.group_nickname)?;
        self.string("id-list", &mut cohort.id_list)?;
        self.path("id-file", &mut cohort.id_file)?;
        self.string("id-system", &mut cohort.id_system)
    }

    fn resources(&self, resources: &mut ResourceArgs) -> Result<(), AppError> {
        self.list("type", &mut resources.types)?;
        self.list("type-filter", &mut resources.type_filters)
    }

    /// A scalar option: strings as they are; numbers and booleans spelled as TOML spells
    /// them (a Group id may well be written as a bare number).
    fn string(&self, key: &str, slot: &mut Option<String>) -> Result<(), AppError> {
        if slot.is_some() {
            return Ok(());
        }
        if let Some(value) = self.0.get(key) {
            *slot = Some(scalar(key, value)?);
        }
        Ok(())
    }

    fn path(&self, key: &str, slot: &mut Option<PathBuf>) -> Result<(), AppError> {
        if slot.is_some() {
            return Ok(());
        }
        if let Some(value) = self.0.get(key) {
            *slot = Some(PathBuf::from(scalar(key, value)?));
        }
        Ok(())
    }

    /// `type`/`type-filter`: a string becomes a one-element list, an array is used as-is.
    fn list(&self, key: &str, slot: &mut Vec<String>) -> Result<(), AppError> {
        if !slot.is_empty() {
            return Ok(());
        }
        match self.0.get(key) {
            None => {}
            Some(Value::Array(items)) => {
                *slot = items
                    .iter()
                    .map(|item| scalar(key, item))
                    .collect::<Result<_, _>>()?;
            }
            Some(value) => *slot = vec![scalar(key, value)?],
        }
        Ok(())
    }

    fn connections(&self, key: &str, slot: &mut Option<u16>) -> Result<(), AppError> {
        let mut number = slot.map(u32::from);
        self.whole(key, &mut number, 1, 64)?;
        *slot = number.and_then(|n| u16::try_from(n).ok());
        Ok(())
    }

    /// A whole number in `lo..=hi`.
    fn whole(&self, key: &str, slot: &mut Option<u32>, lo: u32, hi: u32) -> Result<(), AppError> {
        if slot.is_some() {
            return Ok(());
        }
        let Some(value) = self.0.get(key) else {
            return Ok(());
        };
        let number = match value {
            Value::Integer(n) => Some(*n),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number.and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (lo..=hi).contains(&n) => {
                *slot = Some(n);
                Ok(())
            }
            _ => Err(AppError::Message(format!(
                "Config key '{key}' must be a whole number from {lo} to {hi}."
            ))),
        }
    }
}

/// A single value as text. The value is never echoed in an error: it may be a secret
/// (`bearer-token`, `basic-passwd`, an inline `smart-key`).
fn scalar(key: &str, value: &Value) -> Result<String, AppError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Datetime(d) => Ok(d.to_string()),
        Value::Array(_) => Err(AppError::Message(format!(
            "Config key '{key}' must be a single value (a string), not a list."
        ))),
        Value::Table(_) => Err(AppError::Message(format!(
            "Config key '{key}' must be a single value (a string), not a table."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::Cli;
    use clap::Parser;

    fn command(argv: &[&str]) -> Command {
        let mut full = vec!["smart-fetch"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full) {
            Ok(cli) => cli.command,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn table(text: &str) -> Table {
        match parse(text) {
            Ok(t) => t,
            Err(e) => panic!("bad test toml: {e}"),
        }
    }

    #[test]
    fn fills_unset_options_and_keeps_cli_values() {
        let mut cmd = command(&["export", "out", "--group", "cli-group"]);
        let cfg = table(
            r#"
            fhir-url = "https://ehr.example/"
            group = "Group1"
            nickname = "nick"
            since = "2020-01-01"
            hydration-tasks = "meds"
            smart-client-id = "id"
            smart-key = '{"keys": []}'
            bulk-smart-client-id = "bid"
            bulk-smart-key = "b.jwks"
            basic-user = "u"
            basic-passwd = "p"
            bearer-token = "t"
            token-url = "https://token/"
            smart-jku = "https://jku/"
            ca-file = "ca.pem"
            max-connections = 7
            group-nickname = "gn"
            id-list = "a,b"
            id-file = "ids.txt"
            id-system = "uri:mrn"
            "#,
        );
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Export(args) = cmd else {
            panic!("not export")
        };
        assert_eq!(args.cohort.group.as_deref(), Some("cli-group"));
        assert_eq!(args.auth.fhir_url.as_deref(), Some("https://ehr.example/"));
        assert_eq!(args.nickname.as_deref(), Some("nick"));
        assert_eq!(args.since.as_deref(), Some("2020-01-01"));
        assert_eq!(args.hydration_tasks.as_deref(), Some("meds"));
        assert_eq!(args.auth.smart_client_id.as_deref(), Some("id"));
        assert_eq!(args.auth.smart_key.as_deref(), Some(r#"{"keys": []}"#));
        assert_eq!(args.auth.bulk_smart_client_id.as_deref(), Some("bid"));
        assert_eq!(args.auth.bulk_smart_key.as_deref(), Some("b.jwks"));
        assert_eq!(args.auth.basic_user.as_deref(), Some("u"));
        assert_eq!(args.auth.basic_passwd.as_deref(), Some("p"));
        assert_eq!(args.auth.bearer_token.as_deref(), Some("t"));
        assert_eq!(args.auth.token_url.as_deref(), Some("https://token/"));
        assert_eq!(args.auth.smart_jku.as_deref(), Some("https://jku/"));
        assert_eq!(args.auth.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(args.auth.max_connections(), 7);
        assert_eq!(args.cohort.group_nickname.as_deref(), Some("gn"));
        assert_eq!(args.cohort.id_list.as_deref(), Some("a,b"));
        assert_eq!(args.cohort.id_file, Some(PathBuf::from("ids.txt")));
        assert_eq!(args.cohort.id_system.as_deref(), Some("uri:mrn"));
    }

    #[test]
    fn lists_strings_and_arrays() {
        let mut cmd = command(&["crawl", "out"]);
        let cfg = table(
            r#"
            type = "Condition,Patient"
            type-filter = "Patient?active=false"
            "#,
        );
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Crawl(args) = cmd else {
            panic!("not crawl")
        };
        assert_eq!(args.resources.types, vec!["Condition,Patient"]);
        assert_eq!(args.resources.type_filters, vec!["Patient?active=false"]);

        let mut cmd = command(&["bulk", "out", "--type", "Device"]);
        let cfg = table(
            r#"
            type = ["Condition", "Patient,Encounter"]
            type-filter = ["Patient?active=false", "Condition?code=1"]
            "#,
        );
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Bulk(args) = cmd else {
            panic!("not bulk")
        };
        assert_eq!(args.resources.types, vec!["Device"]);
        assert_eq!(
            args.resources.type_filters,
            vec!["Patient?active=false", "Condition?code=1"]
        );
    }

    #[test]
    fn flags_choices_positionals_aliases_and_unknown_keys_are_ignored() {
        let mut cmd = command(&["export", "out"]);
        let cfg = table(
            r#"
            no-compression = true
            no-default-filters = true
            export-mode = "crawl"
            since-mode = "created"
            output-dir = "elsewhere"
            mrn-file = "mrns.txt"
            mrn-system = "uri:mrn"
            verbose = true
            bogus = 1
            "#,
        );
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Export(args) = cmd else {
            panic!("not export")
        };
        assert!(!args.no_compression);
        assert!(!args.resources.no_default_filters);
        assert_eq!(args.export_mode, crate::cli::args::ExportMode::Auto);
        assert_eq!(args.since_mode, crate::cli::args::SinceModeArg::Auto);
        assert_eq!(args.output_dir, "out");
        assert_eq!(args.cohort.id_file, None);
        assert_eq!(args.cohort.id_system, None);
    }

    #[test]
    fn keys_only_apply_where_the_subcommand_has_the_option() {
        let cfg = table(
            r#"
            fhir-url = "https://ehr/"
            tasks = "meds"
            mimetypes = "text/plain"
            source-dir = "src"
            group = "g"
            "#,
        );
        let mut cmd = command(&["hydrate", "out"]);
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Hydrate(args) = cmd else {
            panic!("not hydrate")
        };
        assert_eq!(args.tasks.as_deref(), Some("meds"));
        assert_eq!(args.mimetypes.as_deref(), Some("text/plain"));
        assert_eq!(args.source_dir.as_deref(), Some("src"));
        assert_eq!(args.auth.fhir_url.as_deref(), Some("https://ehr/"));

        let mut cmd = command(&["single", "Patient/x"]);
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Single(args) = cmd else {
            panic!("not single")
        };
        assert_eq!(args.auth.fhir_url.as_deref(), Some("https://ehr/"));

        let mut cmd = command(&["bulk", "out"]);
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Bulk(args) = cmd else {
            panic!("not bulk")
        };
        assert_eq!(args.group.as_deref(), Some("g"));

        assert!(!applies_to(&command(&["bundle", "dir"])));
        assert!(!applies_to(&command(&["reset-symlinks", "dir"])));
        assert!(!applies_to(&command(&[
            "groups", "split", "--mrns", "m.txt", "--size", "5", "dir"
        ])));
        assert!(!applies_to(&command(&["status", "dir"])));
        assert!(applies_to(&command(&["single", "Patient/x"])));
    }

    #[test]
    fn max_connections_from_cli_wins_and_bad_values_fail() {
        let cfg = table("max-connections = 9");
        let mut cmd = command(&["single", "x", "--max-connections", "3"]);
        apply(&mut cmd, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let Command::Single(args) = cmd else {
            panic!("not single")
        };
        assert_eq!(args.auth.max_connections(), 3);

        let mut cmd = command(&["single", "x"]);
        let Command::Single(args) = &cmd else {
            panic!("not single")
        };
        assert_eq!(args.auth.max_connections(), 5);
        let err = apply(&mut cmd, &table("max-connections = 0"));
        assert!(err.is_err());
        let err = apply(&mut cmd, &table("max-connections = [1]"));
        assert!(err.is_err());
    }

    #[test]
    fn scalar_values_and_bad_shapes() {
        let mut cmd = command(&["bulk", "out"]);
        apply(&mut cmd, &table("group = 123")).unwrap_or_else(|e| panic!("{e}"));
        let Command::Bulk(args) = &cmd else {
            panic!("not bulk")
        };
        assert_eq!(args.group.as_deref(), Some("123"));

        let mut cmd = command(&["bulk", "out"]);
        let err = apply(&mut cmd, &table("fhir-url = [\"a\"]"));
        match err {
            Err(e) => assert_eq!(
                e.to_string(),
                "Config key 'fhir-url' must be a single value (a string), not a list."
            ),
            Ok(()) => panic!("expected an error"),
        }
    }

    #[test]
    fn parse_errors_are_one_line() {
        let err = parse("fhir-url = \"a\"\ngroup = \n")
            .err()
            .unwrap_or_default();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = crate::folder::discovery::tests::temp_dir("config");
        let missing = dir.join("missing.toml");
        let err = load(&missing)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!(
                "Could not read config file '{}'",
                missing.display()
            )),
            "{err}"
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "this is not toml").unwrap_or_else(|e| panic!("{e}"));
        let err = load(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.starts_with(&format!("Could not parse config file '{}'", bad.display())),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
