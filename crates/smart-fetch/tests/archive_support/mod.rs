//! What the archive tests need beyond `support`: a real S3 API server (moto's server mode,
//! started by `scripts/s3-test-server.sh`, which installs it into a venv under target/ on
//! first use and is stopped by PID when the test ends), an independent S3 client (boto3,
//! `s3_client.py`), and runs of `smart-fetch archive` with a clean environment (no AWS_*
//! variable or ~/.aws file of the machine leaks into a test).
#![allow(dead_code)]

use super::support;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn venvs() -> PathBuf {
    std::env::var_os("SMART_FETCH_TEST_VENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-venvs"))
}

/// A moto server on loopback, stopped when dropped.
pub struct S3Server {
    pub port: u16,
    pid: i32,
    pub log: PathBuf,
    key_id: String,
    secret: String,
}

impl S3Server {
    /// Any access key is accepted.
    pub fn start() -> S3Server {
        Self::start_with(&[])
    }

    /// With IAM checks: the first 4 requests are free (they make the user, its key, its
    /// policy and the bucket, see [`S3Server::with_iam_user`]); every later request must be
    /// signed with that user's key, as on real S3.
    pub fn start_with_auth() -> S3Server {
        Self::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")])
    }

    fn start_with(env: &[(&str, &str)]) -> S3Server {
        let out = Command::new(repo_root().join("scripts/s3-test-server.sh"))
            .args(["start", "--watch", &std::process::id().to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run scripts/s3-test-server.sh: {e}"));
        let text = support::text(&out.stdout);
        assert!(out.status.success(), "s3-test-server.sh failed: {text}");
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
        };
        S3Server {
            port: field("port").parse().expect("port"),
            pid: field("pid").parse().expect("pid"),
            log: PathBuf::from(field("log")),
            key_id: "test-key-id".into(),
            secret: "test-secret".into(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a client of this server needs (keys, region, endpoint, plain http).
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_with(&self.key_id, &self.secret)
    }

    pub fn env_with(&self, key_id: &str, secret: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", key_id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &self.endpoint()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Run the boto3 client with our credentials; its stdout.
    pub fn client(&self, args: &[&str]) -> String {
        let out = clean_command(&venvs().join("moto/bin/python"), &self.env())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/archive_support/s3_client.py"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run s3_client.py: {e}"));
        assert!(
            out.status.success(),
            "s3_client.py {args:?} failed: {}",
            support::text(&out.stderr)
        );
        support::text(&out.stdout)
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.client(&["create-bucket", bucket]);
    }

    /// Auth mode: make an IAM user with every permission and the bucket, then use its key.
    pub fn with_iam_user(mut self, bucket: &str) -> S3Server {
        let made: Value =
            serde_json::from_str(&self.client(&["iam-user"])).expect("iam-user output");
        self.key_id = made["id"].as_str().expect("key id").to_string();
        self.secret = made["secret"].as_str().expect("secret").to_string();
        self.create_bucket(bucket);
        self
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Key → (size, etag, last modified) of every object under `prefix`.
    pub fn list(&self, bucket: &str, prefix: &str) -> BTreeMap<String, (u64, String, String)> {
        let found: Value =
            serde_json::from_str(&self.client(&["list", bucket, prefix])).expect("list output");
        found
            .as_array()
            .expect("a list")
            .iter()
            .map(|o| {
                (
                    o["key"].as_str().unwrap_or_default().to_string(),
                    (
                        o["size"].as_u64().unwrap_or_default(),
                        o["etag"].as_str().unwrap_or_default().to_string(),
                        o["lastModified"].as_str().unwrap_or_default().to_string(),
                    ),
                )
            })
            .collect()
    }

    pub fn download(&self, bucket: &str, prefix: &str, dest: &Path) {
        self.client(&["download", bucket, prefix, &dest.to_string_lossy()]);
    }

    /// Keys of multipart uploads started and never completed.
    pub fn open_uploads(&self, bucket: &str) -> Vec<String> {
        serde_json::from_str(&self.client(&["uploads", bucket])).expect("uploads output")
    }

    pub fn log_len(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |t| t.len())
    }

    /// The server's request log from `offset` on, once every request made before this call
    /// is in it (a marker request is sent and waited for).
    pub fn log_since(&self, offset: usize, bucket: &str) -> String {
        let marker = format!(
            "log-marker-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );
        self.client(&["mark", bucket, &marker]);
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(at) = text.find(&marker) {
                return text.get(offset..at).unwrap_or_default().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the marker never reached the server log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // The server was started by the script for this test alone.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
    }
}

/// A command whose environment has none of the machine's cloud settings (AWS_*, GOOGLE_*,
/// AZURE_*), a HOME without ~/.aws, and `env` added.
pub fn clean_command(program: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_") {
            command.env_remove(&key);
        }
    }
    command.env("HOME", std::env::temp_dir().join("sf-archive-no-home"));
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
}

fn smart_fetch(subcommand: &str, args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = clean_command(Path::new(support::bin()), env);
    command
        .arg(subcommand)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn archive_command(args: &[&str], env: &[(String, String)]) -> Command {
    smart_fetch("archive", args, env)
}

/// `smart-fetch status ARGS` (for `--archive` with a store's settings in `env`).
pub fn status(args: &[&str], env: &[(String, String)]) -> Output {
    let child = smart_fetch("status", args, env)
        .spawn()
        .expect("start smart-fetch");
    support::wait(child, Duration::from_secs(300))
}

/// `smart-fetch archive ARGS` to completion (killed after 5 minutes).
pub fn archive(args: &[&str], env: &[(String, String)]) -> Output {
    let child = archive_command(args, env)
        .spawn()
        .expect("start smart-fetch");
    support::wait(child, Duration::from_secs(300))
}

pub fn spawn_archive(args: &[&str], env: &[(String, String)]) -> Child {
    archive_command(args, env)
        .spawn()
        .expect("start smart-fetch")
}

/// Like [`archive`], sampling the peak resident memory (`VmHWM`) every few milliseconds
/// while the pipes are drained; returns the output and the peak in bytes.
pub fn archive_measured(args: &[&str], env: &[(String, String)]) -> (Output, u64) {
    let mut child = spawn_archive(args, env);
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status_file = format!("/proc/{}/status", child.id());
    let started = Instant::now();
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            for line in text.lines() {
                if let Some(kib) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = kib
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    peak = peak.max(kib * 1024);
                }
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > Duration::from_secs(300) => {
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for smart-fetch: {e}"),
        }
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    (output, peak)
}

/// Relative path → bytes of every regular file under `dir` (links neither followed nor
/// listed).
pub fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .into_owned();
                found.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    found
}

/// Every symbolic link under `dir`, relative.
pub fn links_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.file_type().is_symlink() {
                found.push(
                    path.strip_prefix(dir)
                        .expect("under")
                        .to_string_lossy()
                        .into_owned(),
                );
            } else if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

/// sha256 of a file, as `sha256sum` prints it.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `size` bytes that do not compress (xorshift), written in 1 MiB blocks.
pub fn write_noise(path: &Path, size: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).expect("write");
        left -= n as u64;
    }
    file.flush().expect("flush");
}

/// A managed folder with one complete leaf folder, written by hand (for tests about the
/// upload itself rather than about exports).
pub fn synthetic_group(out: &Path, group: &str, leaf: &str) -> PathBuf {
    let managed = out.join(group);
    let leaf_dir = managed.join(leaf);
    std::fs::create_dir_all(leaf_dir.join("error")).expect("mkdir");
    std::fs::write(
        managed.join(".metadata"),
        r#"{"kind": "managed", "fhir-url": "http://127.0.0.1/fhir"}"#,
    )
    .expect("write");
    std::fs::write(
        leaf_dir.join(".metadata"),
        r#"{"kind": "output", "complete": true}"#,
    )
    .expect("write");
    std::fs::write(
        leaf_dir.join("Patient.ndjson"),
        "{\"resourceType\": \"Patient\", \"id\": \"p1\"}\n",
    )
    .expect("write");
    std::fs::write(leaf_dir.join("error/OperationOutcome.ndjson"), "").expect("write");
    leaf_dir
}

/// The one line of stderr, asserting there is exactly one.
pub fn one_line(out: &Output) -> String {
    let stderr = support::text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    lines[0].to_string()
}
