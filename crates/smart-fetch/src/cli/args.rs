//! clap definitions: every subcommand and flag of docs/cli.md#subcommands with the Python tool's
//! names, metavars, defaults and help groups, parsed argparse-style (`options:` heading,
//! unique-prefix long options, `-c`/`-v` in either position). Parsing only; values are validated by
//! the commands, and the config file is layered on top by `cli::config`.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Default of `--max-connections` (the Python tool's connection pool size).
pub const DEFAULT_MAX_CONNECTIONS: u16 = 5;

#[derive(Parser, Debug)]
#[command(
    name = "smart-fetch",
    version = crate::COMPAT_VERSION,
    about = "Pull FHIR data out of an EHR for research (crawl, bulk export, hydration)",
    subcommand_required = true,
    propagate_version = true,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true,
    infer_long_args = true,
    next_help_heading = "options"
)]
pub struct Cli {
    #[command(flatten)]
    pub general: General,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted at root level and on every subcommand (both positions are honoured).
#[derive(Args, Debug, Clone, Default)]
pub struct General {
    /// show this help message and exit
    #[arg(short = 'h', long = "help", action = ArgAction::Help, global = true)]
    pub help: Option<bool>,
    /// show program's version number and exit
    #[arg(long = "version", action = ArgAction::Version, global = true)]
    pub version: Option<bool>,
    /// TOML config file (keys are long option names)
    #[arg(short = 'c', long = "config", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// show more output (like network errors)
    #[arg(short = 'v', long = "verbose", action = ArgAction::SetTrue, global = true)]
    pub verbose: bool,
    /// how messages are printed: text (the console, default), plain (timestamped lines for log
    /// files) or json (one JSON object a line)
    #[arg(long = "log-format", value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

impl General {
    /// `--log-format`, text when not given. Not read from the config file: like the other
    /// choice options it comes from the command line only, which also lets a config file
    /// that cannot be read be reported in the format asked for.
    pub fn log_format(&self) -> crate::report::Format {
        match self.log_format.unwrap_or_default() {
            LogFormat::Text => crate::report::Format::Text,
            LogFormat::Plain => crate::report::Format::Plain,
            LogFormat::Json => crate::report::Format::Json,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Plain,
    Json,
}

#[derive(Subcommand, Debug)]
#[command(
    subcommand_help_heading = "commands",
    after_help = "if you are unsure which you want, start with the high-level 'export' command"
)]
pub enum Command {
    /// run a managed export
    Export(ExportArgs),
    /// run a bulk export
    Bulk(BulkArgs),
    /// run a crawl (REST alternative to bulk export)
    Crawl(CrawlArgs),
    /// add to already-exported data
    Hydrate(HydrateArgs),
    /// request a single resource
    Single(SingleArgs),
    /// convert a folder of data into a single Bundle file
    #[command(
        help_template = "{before-help}Caution: this will delete all current FHIR data in the folder, replacing it with the Bundle file\n\n{usage-heading} {usage}\n\n{all-args}{after-help}"
    )]
    Bundle(BundleArgs),
    /// reset managed export symlinks (not normally needed)
    #[command(name = "reset-symlinks")]
    ResetSymlinks(ResetSymlinksArgs),
    /// split a full MRN list into stable group files, one per managed export
    Groups(GroupsArgs),
    /// export every group file of a folder, each into its own managed folder, in one process
    Batch(BatchArgs),
    /// show the state of every group's export under an output folder (reads only)
    Status(StatusArgs),
    /// copy each group's leaf folder of a quarter to object storage (S3, GCS, Azure, a path)
    Archive(ArchiveArgs),
    /// write a quarter's new and changed resources only (against the export before), for the ETL
    Delta(DeltaArgs),
}

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "authentication")]
pub struct AuthArgs {
    /// client ID for SMART authentication
    #[arg(long, value_name = "ID")]
    pub smart_client_id: Option<String>,
    /// JWKS or PEM file for SMART authentication
    #[arg(long, value_name = "PATH")]
    pub smart_key: Option<String>,
    /// JWK Set URL to name in the client assertion's `jku` header (Epic asks for one)
    #[arg(long, value_name = "URL")]
    pub smart_jku: Option<String>,
    /// client ID for bulk-export SMART authentication, only needed if the EHR uses separate bulk
    /// credentials
    #[arg(long, value_name = "ID")]
    pub bulk_smart_client_id: Option<String>,
    /// JWKS or PEM file for bulk-export SMART authentication
    #[arg(long, value_name = "PATH")]
    pub bulk_smart_key: Option<String>,
    /// username for Basic authentication
    #[arg(long, value_name = "USER")]
    pub basic_user: Option<String>,
    /// password file for Basic authentication
    #[arg(long, value_name = "PATH")]
    pub basic_passwd: Option<String>,
    /// token file for Bearer authentication
    #[arg(long, value_name = "PATH")]
    pub bearer_token: Option<String>,
    /// FHIR server base URL
    #[arg(long, value_name = "URL")]
    pub fhir_url: Option<String>,
    /// FHIR server token URL, only needed if server does not provide it
    #[arg(long, value_name = "URL")]
    pub token_url: Option<String>,
    /// PEM file of extra CA certificates to trust (e.g. a hospital's internal CA)
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// most simultaneous requests to the server, a ceiling: fewer while it pushes back (default 5)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_connections: Option<u16>,
    /// longest wait in seconds for the next byte of an answer, the first included (default 120)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    pub request_timeout: Option<u32>,
    /// largest answer in MiB (after decompression) read into memory: a search page, a read, an
    /// attachment (default 128)
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_body_size: Option<u32>,
    /// one resource, MRN or patient per request: never several in one search (`_id`, `identifier` or `patient` lists), even where the server takes them
    #[arg(long)]
    pub no_search_lists: bool,
}

impl AuthArgs {
    /// `--max-connections`, or its default (5) when neither the command line nor the config
    /// file set it.
    pub fn max_connections(&self) -> usize {
        usize::from(self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS))
    }
}

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "cohort selection")]
pub struct CohortArgs {
    /// FHIR Group ID to export (default is whole system)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// a human-friendly name for the cohort, used in log files
    #[arg(long, value_name = "NAME")]
    pub group_nickname: Option<String>,
    /// comma-separated list of IDs or MRNs (instead of a Group)
    #[arg(long, value_name = "IDS")]
    pub id_list: Option<String>,
    /// file with IDs or MRNs, one per line (or a .csv file with an 'id' or 'mrn' column)
    #[arg(long, alias = "mrn-file", value_name = "PATH")]
    pub id_file: Option<PathBuf>,
    /// system identifier for the IDs (if not provided, IDs are FHIR Patient IDs)
    #[arg(long, alias = "mrn-system", value_name = "SYSTEM")]
    pub id_system: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "resource selection")]
pub struct ResourceArgs {
    /// only consider this resource type (can be specified multiple times or comma-separated; use
    /// 'help' to list them)
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// search filter for a resource type, like 'Observation?category=laboratory' (can be specified
    /// multiple times)
    #[arg(long = "type-filter", value_name = "FILTER")]
    pub type_filters: Vec<String>,
    /// disable any default filters (e.g. Observation categories)
    #[arg(long)]
    pub no_default_filters: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportMode {
    #[default]
    Auto,
    Bulk,
    Crawl,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SinceModeArg {
    #[default]
    Auto,
    Updated,
    Created,
}

impl SinceModeArg {
    /// `--since-mode` as given: `auto` → `None` (decided later from the server).
    pub fn mode(self) -> Option<crate::filters::SinceMode> {
        match self {
            SinceModeArg::Auto => None,
            SinceModeArg::Updated => Some(crate::filters::SinceMode::Updated),
            SinceModeArg::Created => Some(crate::filters::SinceMode::Created),
        }
    }
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct ExportArgs {
    /// folder to hold the managed export
    #[arg(value_name = "OUTPUT_DIR", help_heading = "positional arguments")]
    pub output_dir: String,
    /// nickname for this export (defaults to today's date)
    #[arg(long, value_name = "NAME")]
    pub nickname: Option<String>,
    /// how to export the data
    #[arg(long, value_enum, default_value_t = ExportMode::Auto, value_name = "MODE")]
    pub export_mode: ExportMode,
    /// in bulk mode without --group, export every patient with Patient/$export instead of a
    /// system-level export
    #[arg(long)]
    pub patient_level: bool,
    /// give up on a bulk export the server has not finished after this long (default 30d; e.g. 12h,
    /// 90m, 600s)
    #[arg(long, value_name = "DURATION")]
    pub bulk_timeout: Option<String>,
    /// only get data since this date (or 'auto' to use the previous export's time)
    #[arg(long, value_name = "TIMESTAMP")]
    pub since: Option<String>,
    /// how to interpret --since
    #[arg(long, value_enum, default_value_t = SinceModeArg::Auto, value_name = "MODE")]
    pub since_mode: SinceModeArg,
    /// which hydration tasks to run (comma separated, default is all; use 'help' to list them)
    #[arg(long, value_name = "NAMES")]
    pub hydration_tasks: Option<String>,
    /// turns off gzip compression of files (which saves ~90% of file size, but may not be supported
    /// in some downstream tools)
    #[arg(long)]
    pub no_compression: bool,
    #[command(flatten)]
    pub crawl: CrawlChecks,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub cohort: CohortArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

/// How a crawl treats searches that failed or a server that bends the rules (ours; the
/// Python tool has neither).
#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct BatchArgs {
    /// folder holding one managed folder per group (created if missing)
    #[arg(value_name = "OUTPUT_ROOT", help_heading = "positional arguments")]
    pub output_root: String,
    /// folder of group files (one ID a line, e.g. MRN-000, MRN-001, ...)
    #[arg(long, value_name = "DIR")]
    pub groups: Option<PathBuf>,
    /// nickname of this export in every group (e.g. 2026-03)
    #[arg(long, value_name = "NAME")]
    pub nickname: Option<String>,
    /// how many groups are exported at once (they share --max-connections)
    #[arg(long, value_name = "K", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub parallel_groups: u16,
    /// export only shard I of N of the groups (default: the Slurm array task's, else all);
    /// --max-connections is then the total of all shards
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// how to export the data
    #[arg(long, value_enum, default_value_t = ExportMode::Auto, value_name = "MODE")]
    pub export_mode: ExportMode,
    /// give up on a bulk export the server has not finished after this long (default 30d; e.g. 12h,
    /// 90m, 600s)
    #[arg(long, value_name = "DURATION")]
    pub bulk_timeout: Option<String>,
    /// only get data since this date (or 'auto' to use the previous export's time)
    #[arg(long, value_name = "TIMESTAMP")]
    pub since: Option<String>,
    /// how to interpret --since
    #[arg(long, value_enum, default_value_t = SinceModeArg::Auto, value_name = "MODE")]
    pub since_mode: SinceModeArg,
    /// which hydration tasks to run (comma separated, default is all; use 'help' to list them)
    #[arg(long, value_name = "NAMES")]
    pub hydration_tasks: Option<String>,
    /// turns off gzip compression of files (which saves ~90% of file size, but may not be supported
    /// in some downstream tools)
    #[arg(long)]
    pub no_compression: bool,
    /// the system of the IDs in the group files (e.g. your MRN system); without it they are Patient
    /// IDs
    #[arg(
        long,
        alias = "mrn-system",
        value_name = "SYSTEM",
        help_heading = "cohort selection"
    )]
    pub id_system: Option<String>,
    #[command(flatten)]
    pub crawl: CrawlChecks,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = "Credentials, region and endpoint come from the environment: AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL (plus AWS_ALLOW_HTTP=true for a plain-http endpoint), instance roles; GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY."
)]
pub struct ArchiveArgs {
    /// folder holding one managed folder per group (or one group's managed folder)
    #[arg(value_name = "OUTPUT_ROOT", help_heading = "positional arguments")]
    pub output_root: String,
    /// where to: s3://bucket/prefix/, gs://bucket/prefix/, az://container/prefix/ or file:///path/
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// the export to archive in every group (e.g. 2026-03); default: each group's newest leaf folder
    #[arg(long, value_name = "NAME")]
    pub nickname: Option<String>,
    /// also archive leaf folders whose export is not complete (their manifest says so)
    #[arg(long)]
    pub include_incomplete: bool,
    /// how many files are uploaded at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// print the summary as JSON on stdout (messages go to stderr)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CrawlChecks {
    /// accept searches that failed after retries: their types are marked done anyway and the run
    /// exits 0 (a summary is still printed)
    #[arg(long)]
    pub allow_incomplete: bool,
    /// ask the server to refuse search parameters it does not support (sends 'Prefer:
    /// handling=strict' with every search)
    #[arg(long)]
    pub strict_search: bool,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct BulkArgs {
    /// folder to hold the exported files
    #[arg(value_name = "OUTPUT_DIR", help_heading = "positional arguments")]
    pub output_dir: String,
    /// FHIR Group ID to export (default is whole system)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// only get data since this date
    #[arg(long, value_name = "TIMESTAMP")]
    pub since: Option<String>,
    /// how to interpret --since
    #[arg(long, value_enum, default_value_t = SinceModeArg::Auto, value_name = "MODE")]
    pub since_mode: SinceModeArg,
    /// put all resources into one Bundle file
    #[arg(long)]
    pub bundle: bool,
    /// turns off gzip compression of files (which saves ~90% of file size, but may not be supported
    /// in some downstream tools)
    #[arg(long)]
    pub no_compression: bool,
    /// cancel an interrupted export
    #[arg(long)]
    pub cancel: bool,
    /// export every patient with Patient/$export instead of a system-level export (for servers
    /// without one)
    #[arg(long)]
    pub patient_level: bool,
    /// give up on a bulk export the server has not finished after this long (default 30d; e.g. 12h,
    /// 90m, 600s)
    #[arg(long, value_name = "DURATION")]
    pub bulk_timeout: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct CrawlArgs {
    /// folder to hold the exported files
    #[arg(value_name = "OUTPUT_DIR", help_heading = "positional arguments")]
    pub output_dir: String,
    /// only get data since this date
    #[arg(long, value_name = "TIMESTAMP")]
    pub since: Option<String>,
    /// how to interpret --since
    #[arg(long, value_enum, default_value_t = SinceModeArg::Auto, value_name = "MODE")]
    pub since_mode: SinceModeArg,
    /// give up on a bulk export the server has not finished after this long (default 30d; e.g. 12h,
    /// 90m, 600s)
    #[arg(long, value_name = "DURATION")]
    pub bulk_timeout: Option<String>,
    /// put all resources into one Bundle file
    #[arg(long)]
    pub bundle: bool,
    /// turns off gzip compression of files (which saves ~90% of file size, but may not be supported
    /// in some downstream tools)
    #[arg(long)]
    pub no_compression: bool,
    /// folder with existing Patient resources, to use as a cohort (defaults to output folder)
    #[arg(long, value_name = "DIR", help_heading = "cohort selection")]
    pub source_dir: Option<String>,
    #[command(flatten)]
    pub crawl: CrawlChecks,
    #[command(flatten)]
    pub cohort: CohortArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct HydrateArgs {
    /// folder with exported data, where hydrated resources are written too
    #[arg(value_name = "OUTPUT_DIR", help_heading = "positional arguments")]
    pub output_dir: String,
    /// which hydration tasks to run (comma separated, default is all; use 'help' to list them)
    #[arg(long, value_name = "NAMES")]
    pub tasks: Option<String>,
    /// folder with your existing source resources (defaults to output folder)
    #[arg(long, value_name = "DIR")]
    pub source_dir: Option<String>,
    /// mimetypes to inline, comma separated (default is text, HTML, and XHTML)
    #[arg(long, value_name = "MIMES")]
    pub mimetypes: Option<String>,
    /// turns off gzip compression of files (which saves ~90% of file size, but may not be supported
    /// in some downstream tools)
    #[arg(long)]
    pub no_compression: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct SingleArgs {
    /// the resource to request, like Patient/abc or Patient?active=true
    #[arg(value_name = "ResourceType/ID", help_heading = "positional arguments")]
    pub path: String,
    /// for Binary resources, print the decoded data instead of the JSON
    #[arg(long)]
    pub binary: bool,
    /// print the JSON on one line
    #[arg(long)]
    pub compact: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct BundleArgs {
    /// folder of exported data to bundle
    #[arg(value_name = "DIR", help_heading = "positional arguments")]
    pub dir: String,
    /// turns off gzip compression of files (which saves ~90% of file size, but may not be supported
    /// in some downstream tools)
    #[arg(long)]
    pub no_compression: bool,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct ResetSymlinksArgs {
    /// folder holding a managed export
    #[arg(value_name = "OUTPUT_DIR", help_heading = "positional arguments")]
    pub output_dir: String,
}

/// `groups` (ours, not the Python tool's): MRN group files for sites that export their
/// patients in groups. A parent command so that later group chores fit beside `split`.
#[derive(Args, Debug, Clone)]
#[command(
    subcommand_required = true,
    subcommand_help_heading = "commands",
    next_help_heading = "options",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct GroupsArgs {
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum GroupsCommand {
    /// split an MRN list into group files; later runs keep every MRN in its group
    Split(GroupsSplitArgs),
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct GroupsSplitArgs {
    /// folder of group files, made on the first run
    #[arg(value_name = "GROUPS_DIR", help_heading = "positional arguments")]
    pub groups_dir: PathBuf,
    /// the full MRN list: a text file with one MRN a line, or a .csv file with an 'mrn' column
    #[arg(long, value_name = "PATH")]
    pub mrns: PathBuf,
    /// most MRNs in one group file, like 10000
    #[arg(long, value_name = "N")]
    pub size: usize,
    /// start of the group file names (default MRN-)
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "MRN-",
        hide_default_value = true
    )]
    pub prefix: String,
    /// digits of the group number, zero-padded (default 3; larger numbers get more digits)
    #[arg(
        long,
        value_name = "DIGITS",
        default_value_t = 3,
        hide_default_value = true
    )]
    pub width: usize,
    /// print what would change and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// also print every removed MRN with its group (they are always listed in a removed-*.csv file)
    #[arg(long)]
    pub show_removed: bool,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct StatusArgs {
    /// folder holding one managed export folder per group (or one managed export folder)
    #[arg(value_name = "OUTPUT_ROOT", help_heading = "positional arguments")]
    pub output_root: String,
    /// the export to report: each group's leaf folder of this nickname (default: the newest)
    #[arg(long, value_name = "NAME")]
    pub nickname: Option<String>,
    /// print the report as JSON (for scripts)
    #[arg(long, conflicts_with = "leaf_folders")]
    pub json: bool,
    /// print only the paths of complete leaf folders, one per line
    #[arg(long)]
    pub leaf_folders: bool,
    /// exit with status 3 unless every group is complete
    #[arg(long)]
    pub check: bool,
    /// also show whether each leaf folder is archived at this destination, as given to
    /// `archive --to` (s3://, gs://, az://, file:// or a path)
    #[arg(long, value_name = "URL")]
    pub archive: Option<String>,
}

#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "options",
    next_display_order = 10,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct DeltaArgs {
    /// one group's managed export folder, or an output root holding one per group
    #[arg(value_name = "SOURCE", help_heading = "positional arguments")]
    pub source: String,
    /// the quarter's export: each group's leaf folder of this nickname
    #[arg(long, value_name = "NAME")]
    pub nickname: String,
    /// where the deltas go, never inside an export folder: the group's folder of deltas
    /// (DELTA_ROOT/MRN-123) for one group, the delta root for an output root
    #[arg(long, value_name = "FOLDER")]
    pub to: String,
    /// the earlier export to compare with, by nickname (default: the one just before)
    #[arg(long, value_name = "NAME")]
    pub previous: Option<String>,
    /// groups worked on at once (default 2)
    #[arg(long, value_name = "N", default_value_t = 2, hide_default_value = true)]
    pub parallel: usize,
}
