//! The `fake-ehr` command: serve the synthetic FHIR server, generate client keys
//! (`keygen`), or list patient MRNs (`mrns`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line: its address, keys, MRN lists and errors are its output"
)]

use clap::{Args, Parser, Subcommand, ValueEnum};
use fake_ehr::keys::{self, KeyAlg};
use fake_ehr::{AuthMode, Config, Flavor, data};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fake-ehr",
    version,
    about = "Deterministic synthetic FHIR R4 server for testing smart-fetch",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a client key pair: writes private.jwks, public.jwks and private.pem.
    Keygen {
        #[arg(long, value_enum, default_value_t = AlgArg::Rs384)]
        alg: AlgArg,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the MRNs of patients `from .. from+patients`, one per line.
    Mrns {
        #[arg(long, default_value_t = 100)]
        patients: usize,
        #[arg(long, default_value_t = 0)]
        from: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgArg {
    Rs384,
    Es384,
}

#[derive(Clone, Copy, ValueEnum)]
enum FlavorArg {
    Epic,
    Generic,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    Open,
    Basic,
    Bearer,
    Smart,
}

#[derive(Args)]
struct ServeArgs {
    /// TCP port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Number of synthetic patients (ids pat-000000.., MRNs 10000000..).
    #[arg(long, default_value_t = 100)]
    patients: usize,
    /// Seed of the synthetic data and of fault selection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Vendor to imitate.
    #[arg(long, value_enum, default_value_t = FlavorArg::Generic)]
    flavor: FlavorArg,
    /// Every request is answered this long after it arrived (however long the answer
    /// took to make). Change while running with `POST /__admin/latency?ms=N`.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// `TYPE=MS`: searches and reads of this resource type are answered after MS
    /// milliseconds instead (repeatable), e.g. `--type-latency Observation=300`.
    #[arg(long, value_parser = parse_type_latency)]
    type_latency: Vec<(String, u64)>,
    /// Fraction (0.0..=1.0) of search/read/token requests that get a fault.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// The kinds of fault injected, comma-separated, from 429, 500, 502, 503, drop (the
    /// connection breaks off mid-body) and slow (a 2 s answer); default: every kind. The
    /// same requests fail whatever the kinds (e.g. `--fault-kinds 500,502`).
    #[arg(long, value_delimiter = ',', value_parser = fake_ehr::Fault::parse)]
    fault_kinds: Vec<fake_ehr::Fault>,
    /// `Retry-After` seconds of injected 429 and 503 answers.
    #[arg(long, default_value_t = 1)]
    fault_retry_after: u64,
    /// Answer Binary reads with the FHIR Binary resource (JSON) whatever Accept asks for.
    #[arg(long)]
    binary_as_resource: bool,
    /// A resource type this server does not hold (repeatable): left out of the
    /// CapabilityStatement, and token requests whose scope names it are refused.
    #[arg(long)]
    absent_type: Vec<String>,
    /// Search page size when a search has no _count.
    #[arg(long, default_value_t = 10)]
    page_size: usize,
    /// How search and read requests are authorized.
    #[arg(long, value_enum, default_value_t = AuthArg::Open)]
    auth: AuthArg,
    /// User for --auth basic.
    #[arg(long)]
    basic_user: Option<String>,
    /// Password for --auth basic.
    #[arg(long)]
    basic_password: Option<String>,
    /// Token for --auth bearer.
    #[arg(long)]
    bearer_token: Option<String>,
    /// SMART client id whose assertions are accepted.
    #[arg(long)]
    client_id: Option<String>,
    /// Public JWKS file for SMART client assertions.
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// Lifetime of access tokens issued under --auth smart.
    #[arg(long, default_value_t = 300)]
    token_lifetime_secs: u64,
    /// Seconds a bulk export job runs before its manifest is ready (polls meanwhile get 202
    /// with X-Progress).
    #[arg(long, default_value_t = 0.0)]
    bulk_job_secs: f64,
    /// Most resources in one bulk output file.
    #[arg(long, default_value_t = 1000)]
    bulk_resources_per_file: usize,
    /// Bytes of padding added to every exported resource (to make big exports).
    #[arg(long, default_value_t = 0)]
    bulk_pad_bytes: usize,
    /// Fraction (0.0..=1.0) of bulk status and file requests that get a fault (of the
    /// kinds of --fault-kinds).
    #[arg(long, default_value_t = 0.0)]
    bulk_fault_rate: f64,
    /// Bulk file downloads start answering after this many milliseconds instead of
    /// --latency-ms (a file server slower to start than the status URL).
    #[arg(long)]
    bulk_file_latency_ms: Option<u64>,
    /// Host to put in bulk file URLs (e.g. localhost), as if files lived elsewhere.
    #[arg(long)]
    bulk_file_host: Option<String>,
    /// Bulk files need no access token (manifest `requiresAccessToken: false`).
    #[arg(long)]
    bulk_open_files: bool,
    /// Quarter of the data to serve at start: 1, or 2 for a quarter of changes (deleted,
    /// new and merged patients, ID churn, modified and back-filled records). Switch while
    /// running with `POST /__admin/quarter?n=2`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    quarter: u8,
    /// TYPE: searches of this type ignore `patient=` / `subject=` and return every
    /// patient's resources of the type (repeatable), as a server that drops a parameter it
    /// does not support. Change while running with `POST /__admin/ignore-patient?type=T`.
    #[arg(long, value_name = "TYPE")]
    ignore_patient_param: Vec<String>,
    /// TYPE=PATIENT_ID: the searches of this patient for this type are answered with JSON
    /// cut off halfway, on every page and every attempt, e.g. `Condition=pat-000003`.
    /// Change while running with `POST /__admin/truncate?type=T&patient=ID` (DELETE: off).
    #[arg(long, value_name = "TYPE=PATIENT_ID", value_parser = parse_truncate)]
    truncate_search: Option<fake_ehr::TruncateSearch>,
    /// How `_id` searches with several values (`Observation?_id=a,b`) are answered: as an
    /// OR list, refused with 400, or as if `_id` were absent. Change while running with
    /// `POST /__admin/value-lists?id=MODE`.
    #[arg(long, value_name = "MODE", default_value = "accept", value_parser = fake_ehr::ValueLists::parse)]
    id_lists: fake_ehr::ValueLists,
    /// The same for `identifier` (`Patient?identifier=sys|1,sys|2`); `POST
    /// /__admin/value-lists?identifier=MODE`.
    #[arg(long, value_name = "MODE", default_value = "accept", value_parser = fake_ehr::ValueLists::parse)]
    identifier_lists: fake_ehr::ValueLists,
    /// The same for `patient` / `subject` (`Condition?patient=a,b`), plus `first` (only
    /// the first value is used); `POST /__admin/value-lists?patient=MODE`.
    #[arg(long, value_name = "MODE", default_value = "accept", value_parser = fake_ehr::ValueLists::parse)]
    patient_lists: fake_ehr::ValueLists,
    /// TYPE: `_id` searches of this type answer 400 unless they also name the patient
    /// (repeatable), as servers that allow a search only within one patient's chart.
    /// Change while running with `POST /__admin/id-needs-patient?type=T`.
    #[arg(long, value_name = "TYPE")]
    id_search_needs_patient: Vec<String>,
}

fn parse_truncate(value: &str) -> Result<fake_ehr::TruncateSearch, String> {
    match value.split_once('=') {
        Some((ty, patient)) if !ty.is_empty() && !patient.is_empty() => {
            Ok(fake_ehr::TruncateSearch {
                resource_type: ty.to_string(),
                patient: patient.to_string(),
            })
        }
        _ => Err(format!(
            "{value:?} is not TYPE=PATIENT_ID (e.g. Condition=pat-000003)"
        )),
    }
}

fn parse_type_latency(value: &str) -> Result<(String, u64), String> {
    let (ty, ms) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not TYPE=MS (e.g. Observation=300)"))?;
    let ms = ms
        .parse::<u64>()
        .map_err(|_| format!("{ms:?} is not a number of milliseconds"))?;
    Ok((ty.to_string(), ms))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Keygen { alg, out }) => keygen(alg, &out),
        Some(Command::Mrns { patients, from }) => mrns(from, patients),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fake-ehr: {message}");
            ExitCode::from(2)
        }
    }
}

fn keygen(alg: AlgArg, out: &std::path::Path) -> Result<(), String> {
    let pair = keys::generate(match alg {
        AlgArg::Rs384 => KeyAlg::Rs384,
        AlgArg::Es384 => KeyAlg::Es384,
    });
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let files = [
        ("private.jwks", pretty(&pair.private_jwks)),
        ("public.jwks", pretty(&pair.public_jwks)),
        ("private.pem", pair.private_pem.clone()),
    ];
    for (name, contents) in files {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("kid {}", pair.kid);
    Ok(())
}

fn mrns(from: usize, count: usize) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for i in from..from.saturating_add(count) {
        if writeln!(out, "{}", data::mrn(i)).is_err() {
            return Ok(()); // e.g. a closed pipe: stop quietly
        }
    }
    let _ = out.flush();
    Ok(())
}

fn required(value: Option<String>, flag: &str, mode: &str) -> Result<String, String> {
    value.ok_or_else(|| format!("--auth {mode} needs {flag}"))
}

fn config_from(args: ServeArgs) -> Result<Config, String> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(format!(
            "--fault-rate must be within 0.0..=1.0, got {}",
            args.fault_rate
        ));
    }
    if !(0.0..=1.0).contains(&args.bulk_fault_rate) {
        return Err(format!(
            "--bulk-fault-rate must be within 0.0..=1.0, got {}",
            args.bulk_fault_rate
        ));
    }
    if !(0.0..=86_400.0).contains(&args.bulk_job_secs) {
        return Err("--bulk-job-secs must be within 0..=86400".into());
    }
    if args.page_size == 0 {
        return Err("--page-size must be at least 1".into());
    }
    let auth = match args.auth {
        AuthArg::Open => AuthMode::Open,
        AuthArg::Basic => AuthMode::Basic {
            user: required(args.basic_user, "--basic-user", "basic")?,
            password: required(args.basic_password, "--basic-password", "basic")?,
        },
        AuthArg::Bearer => AuthMode::Bearer {
            token: required(args.bearer_token, "--bearer-token", "bearer")?,
        },
        AuthArg::Smart => {
            let path = args.jwks.ok_or("--auth smart needs --jwks")?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let public_jwks: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            if !public_jwks["keys"].is_array() {
                return Err(format!("{} has no \"keys\" array", path.display()));
            }
            AuthMode::Smart {
                client_id: required(args.client_id, "--client-id", "smart")?,
                public_jwks,
                token_lifetime: Duration::from_secs(args.token_lifetime_secs),
            }
        }
    };
    Ok(Config {
        quarter: args.quarter,
        ignore_patient_param: args.ignore_patient_param,
        truncate: args.truncate_search,
        id_lists: args.id_lists,
        identifier_lists: args.identifier_lists,
        patient_lists: args.patient_lists,
        id_search_needs_patient: args.id_search_needs_patient,
        seed: args.seed,
        patients: args.patients,
        flavor: match args.flavor {
            FlavorArg::Epic => Flavor::Epic,
            FlavorArg::Generic => Flavor::Generic,
        },
        auth,
        latency: Duration::from_millis(args.latency_ms),
        type_latency: args
            .type_latency
            .iter()
            .map(|(t, ms)| (t.clone(), Duration::from_millis(*ms)))
            .collect(),
        fault_rate: args.fault_rate,
        fault_kinds: args.fault_kinds,
        fault_retry_after: args.fault_retry_after,
        binary_as_resource: args.binary_as_resource,
        absent_types: args.absent_type,
        page_size: args.page_size,
        port: args.port,
        bulk: fake_ehr::BulkConfig {
            job_duration: Duration::from_secs_f64(args.bulk_job_secs),
            resources_per_file: args.bulk_resources_per_file.max(1),
            pad_bytes: args.bulk_pad_bytes,
            fault_rate: args.bulk_fault_rate,
            file_latency: args.bulk_file_latency_ms.map(Duration::from_millis),
            file_host: args.bulk_file_host,
            requires_access_token: !args.bulk_open_files,
            ..fake_ehr::BulkConfig::default()
        },
    })
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let config = config_from(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let server = fake_ehr::start(config)
            .await
            .map_err(|e| format!("cannot listen: {e}"))?;
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "fake-ehr listening on {}", server.base_url());
        let _ = stdout.flush();
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        drop(server);
        Ok(())
    })
}
