//! Where an archive goes: `--to` parsed into an `object_store` client and a key prefix, with
//! credentials, region and endpoint from each cloud's usual environment, and the few calls
//! the archive makes (list a leaf folder's objects, read a checksum, check the destination
//! before anything is uploaded).
//!
//! Accepted: `s3://bucket[/prefix]`, `gs://bucket[/prefix]`, `az://container[/prefix]`,
//! `file:///path` or a plain path. A URL never carries credentials or options (no
//! `user:password@`, no query string such as an Azure SAS token): they would end up in
//! shell history, logs and our messages; the environment holds them instead.

use super::aws_profile;
use super::error::{self, ArchiveError, Context, Facts};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientConfigKey, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;

/// The user metadata key under which each object's sha256 (hex) is stored on the clouds
/// (`x-amz-meta-sha256`, `x-goog-meta-sha256`, `x-ms-meta-sha256`).
pub const SHA256_ATTRIBUTE: &str = "sha256";

/// The environment variables a destination is built from.
pub type Env = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    S3,
    Gcs,
    Azure,
    Local,
}

pub struct Destination {
    /// For the work: patient retries (10 tries over up to 3 minutes, object_store's default
    /// `RetryConfig`).
    store: Arc<dyn ObjectStore>,
    /// For the first request only, so a wrong endpoint or bucket is one quick line rather
    /// than three minutes of retries.
    probe: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    shown: String,
    kind: SchemeKind,
    /// The local root, for a file:// destination.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Destination {
    // Never the stores: a builder's or client's Debug output may include credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

fn usage(to: &str, why: &str) -> ArchiveError {
    ArchiveError::Destination(format!(
        "--to '{}': {why}. Use s3://bucket/prefix/, gs://bucket/prefix/, az://container/prefix/ or file:///path/.",
        redact(to)
    ))
}

/// `--to` as it may be shown: what sits between `://` and the last `@` (a user and password,
/// even one holding `/` that no URL parser would place) and everything from `?` or `#` on
/// (a SAS token) replaced by `…`, so a credential typed into the URL is never echoed.
fn redact(to: &str) -> String {
    let mut shown = to.to_string();
    if let Some(cut) = shown.find(['?', '#']) {
        shown.truncate(cut);
        shown.push('…');
    }
    if let (Some(start), Some(at)) = (shown.find("://"), shown.rfind('@'))
        && at > start
    {
        shown.replace_range(start + 3..at, "…");
    }
    crate::text::printable(&shown).into_owned()
}

/// Request limits for the work: 10 s to connect, and 5 minutes for one request, since an
/// 8 MiB part on a slow hospital uplink can take longer than object_store's 30 s default.
const CONNECT_TIMEOUT: &str = "10s";
const REQUEST_TIMEOUT: &str = "300s";

fn probe_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

impl Destination {
    /// Parse `--to` and build the client (no request is sent, except to find an S3 bucket's
    /// region when neither the environment nor the profile names one and no endpoint is set).
    pub async fn open(to: &str) -> Result<Destination, ArchiveError> {
        let env: Env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::open_with(to, &env).await
    }

    /// [`Destination::open`] with the environment given, for tests.
    pub async fn open_with(to: &str, env: &Env) -> Result<Destination, ArchiveError> {
        // A plain path (no scheme) is a local folder.
        if !to.contains("://") {
            return Self::local(to, std::path::absolute(to).unwrap_or_else(|_| to.into()));
        }
        let url = reqwest::Url::parse(to).map_err(|e| usage(to, &format!("not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(usage(
                to,
                "credentials do not belong in the URL (give them in the environment)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(usage(
                to,
                "options and tokens do not belong in the URL (give them in the environment)",
            ));
        }
        let scheme = url.scheme().to_ascii_lowercase();
        if scheme == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| usage(to, "not a local path"))?;
            return Self::local(to, path);
        }
        let bucket = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| usage(to, "no bucket or container name"))?
            .to_string();
        let prefix = ObjectPath::from_url_path(url.path())
            .map_err(|e| usage(to, &format!("the path cannot be an object key ({e})")))?;
        let shown = shown_url(&scheme, &bucket, &prefix);
        match scheme.as_str() {
            "s3" | "s3a" => Self::s3(bucket, prefix, shown, env).await,
            "gs" => Self::gcs(bucket, prefix, shown),
            "az" | "azure" => Self::azure(bucket, prefix, shown),
            other => Err(usage(to, &format!("'{other}:' is not a storage we know"))),
        }
    }

    fn local(to: &str, root: PathBuf) -> Result<Destination, ArchiveError> {
        // The folder must exist, like a bucket: an unmounted share must not silently become
        // a folder on the local disk.
        if !root.is_dir() {
            return Err(ArchiveError::NoFolder(root));
        }
        let make = || {
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| usage(to, &format!("cannot use this folder ({e})")))
        };
        let store: Arc<dyn ObjectStore> = Arc::new(make()?);
        let shown = format!(
            "file://{}/",
            root.display().to_string().trim_end_matches('/')
        );
        Ok(Destination {
            probe: store.clone(),
            store,
            prefix: ObjectPath::default(),
            shown,
            kind: SchemeKind::Local,
            local_root: Some(root),
        })
    }

    async fn s3(
        bucket: String,
        prefix: ObjectPath,
        shown: String,
        env: &Env,
    ) -> Result<Destination, ArchiveError> {
        // `AmazonS3Builder::from_env` reads the process environment; the same rule over the
        // given one keeps tests hermetic.
        let mut builder = AmazonS3Builder::new().with_bucket_name(&bucket);
        for (key, value) in env
            .iter()
            .filter(|(k, v)| k.starts_with("AWS_") && !v.is_empty())
        {
            if let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(config_key, value);
            }
        }
        let lookup = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        if let Some(profile) = aws_profile::load(&lookup)? {
            if let (Some(id), Some(secret)) = (profile.access_key_id, profile.secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                if let Some(token) = profile.session_token {
                    builder = builder.with_token(token);
                }
            }
            if builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .is_none()
                && let Some(region) = profile.region
            {
                builder = builder.with_region(region);
            }
            if builder
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .is_none()
                && let Some(endpoint) = profile.endpoint_url
            {
                builder = builder.with_endpoint(endpoint);
            }
        }
        // object_store would refuse a plain-http endpoint at the first request, in words
        // about URL schemes; say what to set instead.
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(endpoint) = &endpoint
            && endpoint.to_ascii_lowercase().starts_with("http://")
            && !allow_http
        {
            let shown_endpoint = reqwest::Url::parse(endpoint).map_or_else(
                |_| "http://…".to_string(),
                |u| {
                    format!(
                        "http://{}{}",
                        u.host_str().unwrap_or_default(),
                        u.port().map_or_else(String::new, |p| format!(":{p}"))
                    )
                },
            );
            return Err(ArchiveError::Destination(format!(
                "The S3 endpoint {shown_endpoint} is plain http: set AWS_ALLOW_HTTP=true to use it (only on a network you trust), or give an https endpoint."
            )));
        }
        let has_endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some()
            || builder
                .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
                .is_some();
        if builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .is_none()
            && !has_endpoint
        {
            // As the AWS CLI does: ask S3 where the bucket lives, instead of failing later
            // on a redirect that object_store cannot follow.
            match object_store::aws::resolve_bucket_region(&bucket, &Default::default()).await {
                Ok(region) => builder = builder.with_region(region),
                Err(object_store::Error::Generic { source, .. })
                    if source.to_string().contains("not found") =>
                {
                    return Err(error::no_bucket_error(
                        shown,
                        &Facts::default(),
                        SchemeKind::S3,
                    ));
                }
                // Unreachable from here: the first request says so with the real reason.
                Err(_) => {}
            }
        }
        for (key, value) in [
            (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
            (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
        ] {
            let key = AmazonS3ConfigKey::Client(key);
            if builder.get_config_value(&key).is_none() {
                builder = builder.with_config(key, value);
            }
        }
        Self::cloud("S3", SchemeKind::S3, prefix, shown, |retry| {
            builder.clone().with_retry(retry).build()
        })
    }

    /// A cloud destination: the work client and the probe client, built by `build` with
    /// their retry settings; `service` names the cloud when the settings are refused.
    fn cloud<S: ObjectStore>(
        service: &str,
        kind: SchemeKind,
        prefix: ObjectPath,
        shown: String,
        build: impl Fn(RetryConfig) -> object_store::Result<S>,
    ) -> Result<Destination, ArchiveError> {
        let make = |retry| -> Result<Arc<dyn ObjectStore>, ArchiveError> {
            let store = build(retry).map_err(|e| {
                ArchiveError::Destination(format!(
                    "Could not set up the {service} client for {shown}: {}",
                    builder_message(&e)
                ))
            })?;
            Ok(Arc::new(store))
        };
        let probe = make(probe_retry())?;
        let store = make(RetryConfig::default())?;
        Ok(Destination {
            store,
            probe,
            prefix,
            shown,
            kind,
            local_root: None,
        })
    }

    #[cfg(feature = "gcs")]
    fn gcs(bucket: String, prefix: ObjectPath, shown: String) -> Result<Destination, ArchiveError> {
        use object_store::gcp::GoogleCloudStorageBuilder;
        let builder = GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .with_config(
                object_store::gcp::GoogleConfigKey::Client(ClientConfigKey::Timeout),
                REQUEST_TIMEOUT,
            );
        Self::cloud(
            "Google Cloud Storage",
            SchemeKind::Gcs,
            prefix,
            shown,
            |retry| builder.clone().with_retry(retry).build(),
        )
    }

    #[cfg(not(feature = "gcs"))]
    fn gcs(_: String, _: ObjectPath, _: String) -> Result<Destination, ArchiveError> {
        Err(ArchiveError::FeatureMissing {
            what: "Google Cloud Storage",
            feature: "gcs",
        })
    }

    #[cfg(feature = "azure")]
    fn azure(
        container: String,
        prefix: ObjectPath,
        shown: String,
    ) -> Result<Destination, ArchiveError> {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let builder = MicrosoftAzureBuilder::from_env()
            .with_container_name(container)
            .with_config(
                AzureConfigKey::Client(ClientConfigKey::Timeout),
                REQUEST_TIMEOUT,
            );
        Self::cloud("Azure", SchemeKind::Azure, prefix, shown, |retry| {
            builder.clone().with_retry(retry).build()
        })
    }

    #[cfg(not(feature = "azure"))]
    fn azure(_: String, _: ObjectPath, _: String) -> Result<Destination, ArchiveError> {
        Err(ArchiveError::FeatureMissing {
            what: "Azure Blob Storage",
            feature: "azure",
        })
    }

    /// The destination as shown to people, with a trailing slash: `s3://bucket/epic/`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn kind(&self) -> SchemeKind {
        self.kind
    }

    /// `<prefix>/<group>/<leaf>` as an object key prefix.
    pub(crate) fn leaf_prefix(&self, group: &str, leaf: &str) -> ObjectPath {
        self.prefix.clone().join(group).join(leaf)
    }

    /// Where a leaf folder is, as a URL a person (or Cumulus ETL) can use.
    pub fn leaf_url(&self, group: &str, leaf: &str) -> String {
        format!("{}{group}/{leaf}/", self.shown)
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Only the clouds keep user metadata; a local folder has no place for it (so there the
    /// stored file itself is read to get its checksum).
    pub(crate) fn keeps_attributes(&self) -> bool {
        self.kind != SchemeKind::Local
    }

    pub(crate) fn context<'a>(&'a self, doing: &'a str) -> Context<'a> {
        Context {
            dest: &self.shown,
            doing,
            scheme: self.kind,
        }
    }

    /// One quick request before any work: does the destination exist, and does it take our
    /// credentials? A listing of the prefix never answers 404 for a bucket that exists.
    pub async fn check(&self) -> Result<(), ArchiveError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        match self.probe.list_with_delimiter(prefix).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let facts = Facts::of(&e);
                if self.kind != SchemeKind::Local && facts.status == Some(404) {
                    return Err(error::no_bucket_error(
                        self.shown.clone(),
                        &facts,
                        self.kind,
                    ));
                }
                Err(error::remote(&e, &self.context("listing it")))
            }
        }
    }

    /// Every object under a leaf prefix, by its path below the prefix (`error/x.ndjson.gz`).
    pub(crate) async fn list(
        &self,
        prefix: &ObjectPath,
    ) -> Result<BTreeMap<String, ObjectMeta>, ArchiveError> {
        let below = format!("{}/", prefix.as_ref());
        let listing: Result<Vec<ObjectMeta>, _> = self.store.list(Some(prefix)).try_collect().await;
        match listing {
            Ok(objects) => Ok(objects
                .into_iter()
                .filter_map(|meta| {
                    let rel = meta.location.as_ref().strip_prefix(&below)?.to_string();
                    Some((rel, meta))
                })
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(error::remote(
                &e,
                &self.context(&format!("listing {}", prefix.as_ref())),
            )),
        }
    }

    /// The sha256 an object holds: its metadata on the clouds, the stored file's own bytes
    /// on a local path. `None` when the object has none (written by another tool).
    pub(crate) async fn sha256_of(&self, key: &ObjectPath) -> Result<Option<String>, ArchiveError> {
        let doing = format!("reading {}", key.as_ref());
        if self.keeps_attributes() {
            let options = GetOptions {
                head: true,
                ..GetOptions::default()
            };
            return match self.store.get_opts(key, options).await {
                Ok(result) => Ok(result
                    .attributes
                    .get(&object_store::Attribute::Metadata(SHA256_ATTRIBUTE.into()))
                    .map(|v| v.to_string())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(error::remote(&e, &self.context(&doing))),
            };
        }
        let result = match self.store.get(key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(error::remote(&e, &self.context(&doing))),
        };
        let mut stream = result.into_stream();
        let mut hasher = super::hash::Hasher::new();
        loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => hasher.update(&chunk),
                Ok(None) => break,
                Err(e) => return Err(error::remote(&e, &self.context(&doing))),
            }
        }
        Ok(Some(hasher.finish()))
    }

    /// A local destination keeps an upload cut off by a kill as `<name>#<n>` next to the
    /// object (object_store's staging file, invisible to its listings). Remove those under a
    /// leaf folder before its manifest says it is whole, so no cut-off file stays beside
    /// the archived ones for a reader that lists the folder itself.
    pub(crate) fn remove_cut_off_uploads(&self, prefix: &ObjectPath) -> std::io::Result<u64> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        let mut dir = root.clone();
        for part in prefix.parts() {
            dir.push(part.as_ref());
        }
        let mut removed = 0;
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// `Observation.ndjson.gz#3`: object_store's local staging name (digits after the last `#`).
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(base, n)| {
        !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

fn shown_url(scheme: &str, bucket: &str, prefix: &ObjectPath) -> String {
    if prefix.as_ref().is_empty() {
        format!("{scheme}://{bucket}/")
    } else {
        format!("{scheme}://{bucket}/{}/", prefix.as_ref())
    }
}

/// A builder error is about configuration (a missing name, a value that does not parse);
/// its text names keys, not their values, but keep it to one line.
fn builder_message(e: &object_store::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(to: &str) -> Result<Destination, ArchiveError> {
        // A region, so no request goes out to find the bucket's.
        let env: Env = [
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "us-east-1"),
            ("HOME", "/nonexistent"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(Destination::open_with(to, &env))
    }

    #[test]
    fn urls_that_carry_secrets_or_unknown_schemes_are_refused() {
        for (to, words) in [
            ("s3://key:secret@bucket/x", "credentials"),
            ("az://container/x?sv=2024&sig=abc", "tokens"),
            ("ftp://host/x", "'ftp:'"),
            ("s3:///x", "no bucket"),
        ] {
            let err = open(to).err().map(|e| (e.is_usage(), e.to_string()));
            let Some((usage, text)) = err else {
                panic!("{to} was accepted")
            };
            assert!(usage, "{to}");
            assert!(text.contains(words), "{to}: {text}");
            assert!(!text.contains("secret") && !text.contains("sig="), "{text}");
        }
    }

    #[test]
    fn local_folders_must_exist() {
        let root = crate::folder::discovery::tests::temp_dir("archive-dest");
        let dir = root.join("dest");
        let missing = open(&format!("file://{}/", dir.display()));
        assert!(matches!(missing, Err(ArchiveError::NoFolder(_))));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let dest = open(&format!("file://{}/", dir.display())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dest.kind(), SchemeKind::Local);
        assert_eq!(
            dest.leaf_url("MRN-000", "001.q1"),
            format!("file://{}/MRN-000/001.q1/", dir.display())
        );
        let plain = open(&dir.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.shown(), dest.shown());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn s3_prefixes_are_kept_as_keys() {
        let dest = open("s3://archive-bucket/epic/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dest.shown(), "s3://archive-bucket/epic/");
        assert_eq!(
            dest.leaf_prefix("MRN-123", "002.2026-03").as_ref(),
            "epic/MRN-123/002.2026-03"
        );
        let bare = open("s3://archive-bucket").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bare.shown(), "s3://archive-bucket/");
        assert_eq!(bare.leaf_prefix("g", "001.x").as_ref(), "g/001.x");
        assert!(format!("{dest:?}").contains("archive-bucket"));
        assert!(!format!("{dest:?}").contains("secret"));
    }

    #[test]
    fn redacted_destinations() {
        assert_eq!(redact("s3://id:se/cr+et@bucket/x"), "s3://…@bucket/x");
        assert_eq!(redact("az://c/x?sv=1&sig=abc"), "az://c/x…");
        assert_eq!(redact("s3://bucket/epic/"), "s3://bucket/epic/");
    }

    #[test]
    fn staging_names() {
        assert!(is_staging_name("Observation.ndjson.gz#1"));
        assert!(is_staging_name("log.ndjson#12"));
        assert!(!is_staging_name("a#b"));
        assert!(!is_staging_name("#1"));
        assert!(!is_staging_name("Observation.ndjson.gz"));
    }
}
