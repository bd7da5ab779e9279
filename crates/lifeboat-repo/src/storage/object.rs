//! [`Storage`] over the `object_store` crate: a local directory
//! (`LocalFileSystem`) or an S3-compatible bucket (`AmazonS3`).
//!
//! Open one with [`open_url`] (an existing repository location) or
//! [`open_url_create`] (for `init`: also creates a missing local directory).
//! Both return the bare backend; wrap it in
//! [`Retrying`](super::retry::Retrying) so transient failures are retried.
//!
//! Properties the repository relies on:
//! - `put` is atomic. The local backend writes a staging file next to the
//!   target (`name#<digits>`, never listed), holding an `flock` on it, then
//!   fsyncs it, renames it into place and fsyncs the directory; S3 publishes
//!   an object (single or multipart) whole.
//! - Staging files abandoned by a crash (even `kill -9`: the kernel drops the
//!   `flock`) are removed by the next `list` of their directory, so `prune`
//!   leaves no half-written file behind. Ones still being written are kept.
//! - Objects larger than [`MULTIPART_THRESHOLD`] are uploaded in parts of
//!   [`PART_SIZE`] (S3 needs ≥ 5 MiB for every part but the last), several
//!   in flight at once.
//! - Every `object_store` error is classified into a [`StorageErrorKind`]
//!   with a message that says what to do about it.
//! - `object_store`'s own HTTP retries are kept to one quick retry, so that
//!   [`Retrying`](super::retry::Retrying) is the one retry policy (and the one
//!   that logs).

use std::error::Error as StdError;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use super::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult};

/// Objects larger than this are uploaded with a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
/// Size of each part of a multipart upload (the last one may be smaller).
/// S3 requires at least 5 MiB for all but the last part.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// How many parts of one multipart upload are in flight at once.
pub const UPLOAD_CONCURRENCY: usize = 4;

/// Timeout for establishing a connection to the S3 endpoint.
const CONNECT_TIMEOUT: &str = "5s";
/// Timeout for one whole HTTP request, body included (a part is ≤ 8 MiB).
const REQUEST_TIMEOUT: &str = "60s";

/// Settings for S3-compatible storage. Every field left `None` falls back
/// to the standard AWS environment variables (`AWS_ENDPOINT`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …).
///
/// `Debug` never prints the secret access key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000` for MinIO or moto; `None` for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Permit a plain `http://` endpoint (otherwise only https is used).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Where a repository URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A local directory (absolute path).
    Local(PathBuf),
    /// `s3://bucket/prefix`; `prefix` has no leading or trailing `/` and may
    /// be empty.
    S3 { bucket: String, prefix: String },
}

impl RepoLocation {
    /// Parse a repository URL: a plain path, `file:///path` or
    /// `s3://bucket/prefix`. A relative path is made absolute against the
    /// current directory.
    pub fn parse(url: &str) -> StorageResult<Self> {
        let invalid = |message: String| {
            StorageError::new(StorageErrorKind::InvalidLocation, "open", url, message)
        };
        if url.is_empty() {
            return Err(invalid("the repository URL is empty".into()));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(
                    "no bucket in the URL; write it as s3://BUCKET/PREFIX".into(),
                ));
            }
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() {
                validate_key(prefix).map_err(|m| invalid(format!("invalid prefix: {m}")))?;
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(invalid(
                    "a file URL must hold an absolute path: file:///path/to/repo".into(),
                ));
            }
            return Ok(Self::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            let message = match scheme {
                "gs" | "gcs" => "Google Cloud Storage (gs://) is not supported yet; \
                                 use its S3-compatible endpoint with s3:// instead"
                    .to_string(),
                "az" | "azure" | "abfs" | "abfss" | "adl" => {
                    "Azure Blob Storage is not supported yet".to_string()
                }
                other => format!(
                    "unknown URL scheme {other}://; use a path, file:///path or s3://bucket/prefix"
                ),
            };
            return Err(invalid(message));
        }
        let path = std::path::absolute(url)
            .map_err(|e| invalid(format!("cannot resolve the path: {e}")))?;
        Ok(Self::Local(path))
    }
}

/// Open the repository storage at `url` (a path, `file:///path` or
/// `s3://bucket/prefix`). A local directory must already exist: if it does
/// not, the error is of kind `NotFound` and names the path.
pub fn open_url(url: &str, s3: &S3Settings) -> StorageResult<Arc<dyn Storage>> {
    Ok(Arc::new(ObjectStoreBackend::open(url, s3, false)?))
}

/// Like [`open_url`], but creates a missing local directory (for `init`).
/// For S3 it is the same as [`open_url`] (the bucket must exist).
pub fn open_url_create(url: &str, s3: &S3Settings) -> StorageResult<Arc<dyn Storage>> {
    Ok(Arc::new(ObjectStoreBackend::open(url, s3, true)?))
}

/// Mode of every file Lifeboat writes in a local repository: the data is
/// encrypted, but `keys/` holds the wrapped master key (an offline guessing
/// target) and the rest reveals sizes and times, so only the owner reads it.
pub const LOCAL_FILE_MODE: u32 = 0o600;
/// Mode of every directory Lifeboat creates in (or as) a local repository.
pub const LOCAL_DIR_MODE: u32 = 0o700;

/// Create a local repository directory (and its parents) if missing, mode
/// [`LOCAL_DIR_MODE`]. An existing directory keeps its mode.
pub fn create_local_dir(path: &FsPath) -> StorageResult<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(LOCAL_DIR_MODE)
        .create(path)
        .map_err(|e| {
            let (kind, hint) = classify_io(&e, false);
            StorageError::new(
                kind,
                "create",
                path.display().to_string(),
                format!("cannot create the repository directory: {hint}{e}"),
            )
            .refusing_writes(refuses_writes_io(&e))
        })
}

/// The `object_store`-backed [`Storage`].
#[derive(Debug)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    location: String,
    /// Remote (S3) or local: decides how unclassifiable errors are treated.
    remote: bool,
    multipart_threshold: usize,
    part_size: usize,
    upload_concurrency: usize,
    multipart_uploads: AtomicU64,
    /// For a local directory: its canonical path. Puts then go through
    /// [`local_put`] and listings sweep abandoned staging files.
    local_root: Option<PathBuf>,
    /// For S3 when no credential source is configured (no keys, no web
    /// identity, no container credentials, signing not skipped): the
    /// instance metadata endpoint that `object_store` falls back to. Its
    /// failure then means "no AWS credentials found", said so.
    instance_metadata: Option<String>,
}

impl ObjectStoreBackend {
    /// Wrap any `ObjectStore`; keys are used as-is as its paths.
    /// `location` is what [`Storage::location`] shows; `remote` says whether
    /// unclassified errors should be treated as transient (network) or
    /// permanent (local).
    pub fn new(store: Arc<dyn ObjectStore>, location: impl Into<String>, remote: bool) -> Self {
        Self {
            store,
            location: location.into(),
            remote,
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
            upload_concurrency: UPLOAD_CONCURRENCY,
            multipart_uploads: AtomicU64::new(0),
            local_root: None,
            instance_metadata: None,
        }
    }

    /// Change when multipart uploads are used and the part size
    /// (`part_size` is raised to at least 5 MiB).
    pub fn with_multipart(mut self, threshold: usize, part_size: usize) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(5 * 1024 * 1024);
        self
    }

    /// Open `url` (see [`open_url`]); `create` creates a missing local
    /// directory.
    pub fn open(url: &str, s3: &S3Settings, create: bool) -> StorageResult<Self> {
        match RepoLocation::parse(url)? {
            RepoLocation::Local(path) => Self::local(&path, create),
            RepoLocation::S3 { bucket, prefix } => Self::s3(&bucket, &prefix, s3),
        }
    }

    /// A repository in a local directory.
    pub fn local(path: &FsPath, create: bool) -> StorageResult<Self> {
        let shown = path.display().to_string();
        if create {
            create_local_dir(path)?;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StorageError::new(
                    StorageErrorKind::Permanent,
                    "open",
                    shown,
                    "not a directory",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::new(
                    StorageErrorKind::NotFound,
                    "open",
                    shown.clone(),
                    format!("no such directory: {shown}"),
                ));
            }
            Err(e) => {
                let (kind, hint) = classify_io(&e, false);
                return Err(StorageError::new(kind, "open", shown, format!("{hint}{e}")));
            }
        }
        let fs = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| map_error(e, "open", &shown, false))?
            .with_fsync(true);
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut backend = Self::new(
            Arc::new(fs),
            format!("file://{}", canonical.display()),
            false,
        );
        backend.local_root = Some(canonical);
        Ok(backend)
    }

    /// A repository in an S3-compatible bucket, under `prefix` (may be
    /// empty). Settings override the `AWS_*` environment variables.
    pub fn s3(bucket: &str, prefix: &str, s3: &S3Settings) -> StorageResult<Self> {
        let location = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let fail = |message: String| {
            StorageError::new(
                StorageErrorKind::InvalidLocation,
                "open",
                location.clone(),
                message,
            )
        };

        let builder = s3_builder(bucket, s3);
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(message) = plain_http_refused(endpoint.as_deref(), allow_http) {
            return Err(fail(message));
        }
        let instance_metadata = instance_metadata_only(&builder);
        let store = builder.build().map_err(|e| {
            fail(format!(
                "invalid S3 configuration: {e} (check the bucket name, region and endpoint)"
            ))
        })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        let mut backend = Self::new(store, location, true);
        backend.instance_metadata = instance_metadata;
        Ok(backend)
    }

    /// How many multipart uploads this backend has completed (for tests and
    /// diagnostics).
    pub fn multipart_uploads(&self) -> u64 {
        self.multipart_uploads.load(Ordering::Relaxed)
    }

    fn err(&self, e: object_store::Error, op: &'static str, key: &str) -> StorageError {
        if let Some(endpoint) = &self.instance_metadata {
            let text = chain_message(&e);
            if is_metadata_failure(&text, endpoint) {
                return StorageError::new(
                    StorageErrorKind::Permanent,
                    op,
                    key,
                    no_credentials_message(endpoint, &text),
                );
            }
        }
        map_error(e, op, key, self.remote)
    }

    async fn put_multipart(&self, path: &Path, key: &str, data: Bytes) -> StorageResult<()> {
        let mut upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| self.err(e, "put", key))?;
        let len = data.len();
        let parts: Vec<_> = (0..len)
            .step_by(self.part_size)
            .map(|start| {
                let end = (start + self.part_size).min(len);
                upload.put_part(PutPayload::from(data.slice(start..end)))
            })
            .collect();
        let sent: Result<Vec<()>, _> = futures::stream::iter(parts)
            .buffer_unordered(self.upload_concurrency)
            .try_collect()
            .await;
        let result = match sent {
            Ok(_) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.multipart_uploads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = upload.abort().await {
                    tracing::debug!(key, error = %abort, "aborting a failed multipart upload failed");
                }
                Err(self.err(e, "put", key))
            }
        }
    }

    fn info(&self, meta: ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            key: meta.location.to_string(),
            size: meta.size,
            last_modified: meta.last_modified,
        }
    }
}

#[async_trait]
impl Storage for ObjectStoreBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let path = key_path("put", key)?;
        if let Some(root) = &self.local_root {
            let root = root.clone();
            let target = root.join(key);
            return tokio::task::spawn_blocking(move || local_put(&root, &target, &data, true))
                .await
                .map_err(|e| {
                    StorageError::new(StorageErrorKind::Permanent, "put", key, e.to_string())
                })?
                .map(|_| ())
                .map_err(|e| local_io_error(&e, "put", key));
        }
        if data.len() > self.multipart_threshold {
            return self.put_multipart(&path, key, data).await;
        }
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e, "put", key))
    }

    /// Locally: the staging file is hard-linked to the key, which fails if
    /// the name exists. On S3: one PUT (never multipart: object_store offers
    /// no conditional multipart completion) with `If-None-Match: *`; a
    /// `412 Precondition Failed` means the object exists.
    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        let path = key_path("put", key)?;
        if let Some(root) = &self.local_root {
            let root = root.clone();
            let target = root.join(key);
            return tokio::task::spawn_blocking(move || local_put(&root, &target, &data, false))
                .await
                .map_err(|e| {
                    StorageError::new(StorageErrorKind::Permanent, "put", key, e.to_string())
                })?
                .map_err(|e| local_io_error(&e, "put", key));
        }
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err(e, "put", key)),
        }
    }

    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        let path = key_path("get", key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.err(e, "get", key))?;
        let expected = result.meta.size;
        let bytes = result.bytes().await.map_err(|e| self.err(e, "get", key))?;
        if bytes.len() as u64 != expected {
            return Err(StorageError::new(
                StorageErrorKind::Transient,
                "get",
                key,
                format!("short read: expected {expected} bytes, got {}", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        let path = key_path("get_range", key)?;
        if range.start > range.end {
            return Err(StorageError::new(
                StorageErrorKind::Permanent,
                "get_range",
                key,
                format!("invalid range {}..{}", range.start, range.end),
            ));
        }
        if range.start == range.end {
            // Still report a missing object as missing.
            self.head(key).await?;
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let bytes = self
            .store
            .get_range(&path, range.clone())
            .await
            .map_err(|e| self.err(e, "get_range", key))?;
        if bytes.len() as u64 != want {
            // The object is shorter than the caller knows it to be (a
            // truncated pack): damaged data, not a storage failure.
            return Err(StorageError::new(
                StorageErrorKind::Truncated,
                "get_range",
                key,
                format!(
                    "range {}..{} is past the end of the object ({} bytes returned)",
                    range.start,
                    range.end,
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        let path = key_path("head", key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.err(e, "head", key))?;
        let mut info = self.info(meta);
        // Report the key as asked, not as the store normalised it.
        info.key = key.to_string();
        Ok(info)
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        // object_store lists by whole path segments; list the directory part
        // of `prefix` and filter the rest as a plain string prefix.
        let dir = match prefix.rfind('/') {
            Some(i) => prefix[..i].trim_end_matches('/'),
            None => "",
        };
        let dir_path = if dir.is_empty() {
            None
        } else {
            Some(key_path("list", dir)?)
        };
        if let Some(root) = &self.local_root {
            let swept = root.join(dir);
            let _ = tokio::task::spawn_blocking(move || sweep_staging(&swept)).await;
        }
        let metas: Vec<ObjectMeta> = self
            .store
            .list(dir_path.as_ref())
            .try_collect()
            .await
            .map_err(|e| {
                let mut err = self.err(e, "list", prefix);
                if err.kind == StorageErrorKind::NotFound {
                    // An object vanished between being listed and being
                    // looked at (a concurrent delete): listing again helps.
                    err.kind = StorageErrorKind::Transient;
                    err.message = format!("an object vanished during the listing: {}", err.message);
                }
                err
            })?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| self.info(m))
            .filter(|i| i.key.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let path = key_path("delete", key)?;
        match self.store.delete(&path).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                let err = self.err(e, "delete", key);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }
}

/// The `object_store` S3 builder for `bucket` with `s3`'s settings over the
/// `AWS_*` environment (shared with [`super::object_lock`], which signs its
/// own requests with the same credentials).
pub(crate) fn s3_builder(bucket: &str, s3: &S3Settings) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                base: 2.0,
            },
            max_retries: 1,
            retry_timeout: Duration::from_secs(30),
        })
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            CONNECT_TIMEOUT,
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            REQUEST_TIMEOUT,
        )
        // One `DELETE /key` per object rather than a one-key
        // DeleteObjects batch: the repository deletes single keys, and a
        // refusal (append-only credentials) is then a plain 403 for that
        // key, as IAM servers that authorise batches per bucket see it.
        .with_disable_bulk_delete(true);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if s3.allow_http {
        builder = builder.with_allow_http(true);
    }
    builder
}

/// Does `name` look like a staging file, `<name>#<digits>`?
fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((base, digits)) => {
            !base.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Write `data` to `target` atomically and durably: into a staging file
/// `<target>#<random digits>` next to it (which `LocalFileSystem` never
/// lists), fsync, rename over `target`, fsync the directory. The file is
/// created [`LOCAL_FILE_MODE`], directories [`LOCAL_DIR_MODE`].
///
/// The writer holds an exclusive `flock` on the staging file from just after
/// creating it until after the rename, and the kernel drops it when the
/// process dies, even by `kill -9`. So a staging file whose lock can be
/// taken belongs to nobody any more: [`sweep_staging`] removes exactly those.
///
/// Missing directories between `root` and the target are created, never
/// `root` itself: a repository directory that was moved or deleted under a
/// running process is an error (`NotFound` on the root), not a fresh empty
/// directory that would then collect snapshots without marker, keys or config.
///
/// With `replace` false the staging file is hard-linked to `target` instead
/// of renamed over it, which fails when `target` exists: then nothing is
/// changed and the result is `false` (see [`Storage::put_new`]).
fn local_put(root: &FsPath, target: &FsPath, data: &[u8], replace: bool) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

    let parent = target.parent().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the key has no parent")
    })?;
    let name = target
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty key"))?
        .to_string_lossy()
        .into_owned();
    for _ in 0..5 {
        let staging = parent.join(format!("{name}#{}", rand::random::<u64>()));
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(LOCAL_FILE_MODE)
                .open(&staging)
        };
        let mut file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_dirs_below(root, parent)?;
                open()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        file.lock()?;
        // A sweeper may have taken the lock between our create and lock, and
        // removed the file: then start again with a new name.
        if file.metadata()?.nlink() == 0 {
            continue;
        }
        let written = file.write_all(data).and_then(|()| file.sync_all());
        let published = written.and_then(|()| {
            if replace {
                std::fs::rename(&staging, target).map(|()| true)
            } else {
                let linked = match std::fs::hard_link(&staging, target) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                };
                let _ = std::fs::remove_file(&staging);
                linked
            }
        });
        let created = match published {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                return Err(e);
            }
        };
        std::fs::File::open(parent)?.sync_all()?;
        return Ok(created);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "could not create a staging file (raced with cleanup)",
    ))
}

/// Creates `dir` and its missing parents up to, but not including, `root`,
/// which must exist: if it does not, the error says the repository
/// directory is gone.
fn create_dirs_below(root: &FsPath, dir: &FsPath) -> std::io::Result<()> {
    let Ok(relative) = dir.strip_prefix(root) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is outside the repository", dir.display()),
        ));
    };
    use std::os::unix::fs::DirBuilderExt;
    let mut path = root.to_path_buf();
    for part in relative.components() {
        path.push(part);
        match std::fs::DirBuilder::new()
            .mode(LOCAL_DIR_MODE)
            .create(&path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !root.is_dir() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the repository directory {} no longer exists (moved or deleted?); it is not created again: restore it or point --repo at its new place",
                        root.display()
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Remove the staging files under `dir` that no writer holds any more
/// (left by a crash or `kill -9` in the middle of a put). Best effort:
/// errors only skip files.
fn sweep_staging(dir: &FsPath) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            sweep_staging(&path);
            continue;
        }
        if !file_type.is_file() || !is_staging_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() {
            // Nobody holds it: abandoned. (If it was renamed into place
            // meanwhile, the path is gone and this removes nothing.)
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), "removed an abandoned staging file")
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "cannot remove a staging file")
                }
            }
        }
    }
}

fn local_io_error(e: &std::io::Error, op: &'static str, key: &str) -> StorageError {
    let (kind, hint) = classify_io(e, false);
    let kind = match (kind, e.kind()) {
        // Raced with cleanup: trying again helps.
        (_, std::io::ErrorKind::Interrupted) => StorageErrorKind::Transient,
        // A missing directory while writing is not a missing object.
        (StorageErrorKind::NotFound, _) => StorageErrorKind::Permanent,
        (k, _) => k,
    };
    StorageError::new(kind, op, key, format!("{hint}{e}")).refusing_writes(refuses_writes_io(e))
}

/// Whether an IO error means the storage refuses writes (permissions, a
/// read-only file system, no space or quota).
fn refuses_writes_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied | K::ReadOnlyFilesystem | K::StorageFull | K::QuotaExceeded
    )
}

/// Why a plain-http endpoint is refused, if it is: http must be allowed
/// explicitly, so credentials do not travel in the clear by accident.
fn plain_http_refused(endpoint: Option<&str>, allow_http: bool) -> Option<String> {
    let endpoint = endpoint?;
    if endpoint.starts_with("http://") && !allow_http {
        Some(format!(
            "the endpoint {endpoint} is plain http; allow it explicitly \
             (allow_http in the config, or AWS_ALLOW_HTTP=true) or use https"
        ))
    } else {
        None
    }
}

/// Check that `key` is a relative `/`-separated path of plain segments.
fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err("empty path segment (leading, trailing or doubled '/')".into());
        }
        if segment == "." || segment == ".." {
            return Err("'.' and '..' are not allowed".into());
        }
        if segment.chars().any(|c| c.is_control() || c == '\\') {
            return Err("control characters and '\\' are not allowed".into());
        }
    }
    Ok(())
}

fn key_path(op: &'static str, key: &str) -> StorageResult<Path> {
    let invalid = |message: String| {
        StorageError::new(
            StorageErrorKind::Permanent,
            op,
            key,
            format!("invalid key: {message}"),
        )
    };
    validate_key(key).map_err(invalid)?;
    Path::parse(key).map_err(|e| invalid(e.to_string()))
}

/// The whole chain of an error's messages, `a: b: c`, without repeats.
fn chain_message(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The first error of type `T` in `e`'s source chain (including `e`).
fn find_in_chain<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(c) = current {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        current = c.source();
    }
    None
}

/// The HTTP status that object_store's request error reports in its text
/// (`… status code: 503 Service Unavailable …`); its type is not public.
fn http_status(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

/// Classify an IO error: the kind, and a hint for the message (ends in ": "
/// when not empty).
fn classify_io(e: &std::io::Error, remote: bool) -> (StorageErrorKind, &'static str) {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => (StorageErrorKind::NotFound, ""),
        K::StorageFull => (
            StorageErrorKind::Permanent,
            "disk full: free space on the repository's file system: ",
        ),
        K::QuotaExceeded => (
            StorageErrorKind::Permanent,
            "disk quota exceeded: raise the quota or free space: ",
        ),
        K::ReadOnlyFilesystem => (
            StorageErrorKind::Permanent,
            "read-only file system: mount the repository read-write: ",
        ),
        K::PermissionDenied => (
            StorageErrorKind::Permanent,
            "permission denied: check the owner and mode of the repository directory: ",
        ),
        K::FileTooLarge => (StorageErrorKind::Permanent, "file too large: "),
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::Interrupted
        | K::WouldBlock
        | K::UnexpectedEof
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::AddrNotAvailable
        | K::ResourceBusy
        | K::StaleNetworkFileHandle => (StorageErrorKind::Transient, ""),
        _ if remote => (StorageErrorKind::Transient, ""),
        _ => (StorageErrorKind::Permanent, ""),
    }
}

/// Map an `object_store` error to a classified [`StorageError`].
pub(crate) fn map_error(
    e: object_store::Error,
    op: &'static str,
    key: &str,
    remote: bool,
) -> StorageError {
    use object_store::Error as E;
    let text = chain_message(&e);
    let (kind, message) = match &e {
        E::NotFound { .. } => {
            if text.contains("NoSuchBucket") {
                (
                    StorageErrorKind::Permanent,
                    format!(
                        "the bucket does not exist: create it or check the bucket name ({text})"
                    ),
                )
            } else {
                (StorageErrorKind::NotFound, "not found".to_string())
            }
        }
        E::PermissionDenied { .. } => (
            StorageErrorKind::Permanent,
            format!("access denied: check the credentials and the bucket's access policy ({text})"),
        ),
        E::Unauthenticated { .. } => (
            StorageErrorKind::Permanent,
            format!(
                "authentication failed: check the credentials (access key id and secret) ({text})"
            ),
        ),
        E::Precondition { .. } | E::NotModified { .. } | E::AlreadyExists { .. } => (
            StorageErrorKind::Permanent,
            format!("the storage refused a conditional request: {text}"),
        ),
        E::InvalidPath { .. } => (
            StorageErrorKind::Permanent,
            format!("invalid object path: {text}"),
        ),
        E::NotSupported { .. } | E::NotImplemented { .. } => (
            StorageErrorKind::Permanent,
            format!("the storage does not support this operation: {text}"),
        ),
        E::UnknownConfigurationKey { .. } => (
            StorageErrorKind::Permanent,
            format!("storage configuration error: {text}"),
        ),
        E::JoinError { .. } => (
            StorageErrorKind::Permanent,
            format!("internal error: {text}"),
        ),
        _ if is_short_read(&e, &text) => (
            StorageErrorKind::Truncated,
            format!("the object is shorter than the range asked of it: {text}"),
        ),
        _ => classify_generic(&e, &text, remote),
    };
    // 403 from a server (read-only credentials), or a local permission,
    // read-only or full-disk error.
    let refused = matches!(e, E::PermissionDenied { .. })
        || http_status(&text) == Some(403)
        || text.contains("code: AccessDenied")
        || find_in_chain::<std::io::Error>(&e).is_some_and(refuses_writes_io);
    StorageError::new(kind, op, key, message).refusing_writes(refused)
}

/// The instance metadata endpoint when it is the only credential source
/// left to `builder` (see `AmazonS3Builder::build`'s order: static keys,
/// web identity, container credentials, EKS pod identity, then the
/// instance metadata service); `None` when another one is configured.
fn instance_metadata_only(builder: &AmazonS3Builder) -> Option<String> {
    let set = |k: AmazonS3ConfigKey| builder.get_config_value(&k).is_some_and(|v| !v.is_empty());
    let skip_signature = builder
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let other_source = set(AmazonS3ConfigKey::AccessKeyId)
        || set(AmazonS3ConfigKey::SecretAccessKey)
        || (set(AmazonS3ConfigKey::WebIdentityTokenFile) && set(AmazonS3ConfigKey::RoleArn))
        || set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
        || set(AmazonS3ConfigKey::ContainerCredentialsFullUri)
        || skip_signature;
    if other_source {
        return None;
    }
    Some(
        builder
            .get_config_value(&AmazonS3ConfigKey::MetadataEndpoint)
            .unwrap_or_else(|| "http://169.254.169.254".into()),
    )
}

/// Whether an error is the instance metadata service failing to hand out
/// credentials (unreachable, 403, no role attached).
fn is_metadata_failure(text: &str, endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/');
    (!host.is_empty() && text.contains(host))
        || text.contains("latest/api/token")
        || text.contains("meta-data/iam/security-credentials")
}

fn no_credentials_message(endpoint: &str, text: &str) -> String {
    format!(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or \
         repository.s3.access_key_id and secret_access_key in the config), use web identity \
         (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as EKS IRSA sets them) or container \
         credentials, or run on an instance with an IAM role (AWS profiles in ~/.aws are not \
         read). With none of these, the instance metadata service at {endpoint} was asked and \
         failed: {text}"
    )
}

/// A range read past the end of an object: the local backend's
/// out-of-range / invalid-range errors (its error type is private, hence
/// the text), or HTTP 416 from a server.
fn is_short_read(e: &object_store::Error, text: &str) -> bool {
    let local = matches!(
        e,
        object_store::Error::Generic {
            store: "LocalFileSystem",
            ..
        }
    ) && (text.contains("Out of range of file")
        || text.contains("Requested range was invalid"));
    local || http_status(text) == Some(416)
}

fn classify_generic(
    e: &object_store::Error,
    text: &str,
    remote: bool,
) -> (StorageErrorKind, String) {
    if let Some(status) = http_status(text) {
        return match status {
            429 | 503 => (
                StorageErrorKind::Transient,
                format!("the storage server is throttling or unavailable: {text}"),
            ),
            500..=599 | 408 => (
                StorageErrorKind::Transient,
                format!("storage server error: {text}"),
            ),
            301 | 307 | 308 => (
                StorageErrorKind::Permanent,
                format!("the bucket is in another region: set the region ({text})"),
            ),
            400..=499 if text.contains("NoSuchBucket") => (
                StorageErrorKind::Permanent,
                format!("the bucket does not exist: create it or check the bucket name ({text})"),
            ),
            400..=499 => (
                StorageErrorKind::Permanent,
                format!("the storage server rejected the request: {text}"),
            ),
            _ => (StorageErrorKind::Transient, text.to_string()),
        };
    }
    if text.contains("InternalError") || text.contains("SlowDown") {
        return (StorageErrorKind::Transient, text.to_string());
    }
    if text.contains("code: AccessDenied") {
        // A bulk delete (DeleteObjects) answers 200 and reports the
        // refusal per key: e.g. append-only credentials.
        return (
            StorageErrorKind::Permanent,
            format!("access denied: check the credentials and the bucket's access policy ({text})"),
        );
    }
    if text.contains("redirect without LOCATION") {
        return (
            StorageErrorKind::Permanent,
            format!("the bucket is in another region: set the region ({text})"),
        );
    }
    if let Some(io) = find_in_chain::<std::io::Error>(e) {
        let (kind, hint) = classify_io(io, remote);
        let kind = if kind == StorageErrorKind::NotFound {
            // A missing file inside an operation that is not a lookup (e.g.
            // the repository directory removed underneath us).
            StorageErrorKind::Permanent
        } else {
            kind
        };
        return (kind, format!("{hint}{text}"));
    }
    if let Some(http) = find_in_chain::<object_store::client::HttpError>(e) {
        use object_store::client::HttpErrorKind as H;
        let hint = match http.kind() {
            H::Connect => "cannot connect to the storage server: ",
            H::Timeout => "the storage server timed out: ",
            _ => "",
        };
        return (StorageErrorKind::Transient, format!("{hint}{text}"));
    }
    if remote {
        (StorageErrorKind::Transient, text.to_string())
    } else {
        (StorageErrorKind::Permanent, text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn parse_urls() {
        assert_eq!(
            RepoLocation::parse("s3://bucket/a/b/").unwrap(),
            RepoLocation::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            RepoLocation::parse("s3://bucket").unwrap(),
            RepoLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            RepoLocation::parse("file:///srv/repo").unwrap(),
            RepoLocation::Local("/srv/repo".into())
        );
        assert_eq!(
            RepoLocation::parse("/srv/repo").unwrap(),
            RepoLocation::Local("/srv/repo".into())
        );
        match RepoLocation::parse("rel/dir").unwrap() {
            RepoLocation::Local(p) => assert!(p.is_absolute()),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "s3://",
            "s3:///x",
            "file://host/x",
            "ftp://x/y",
            "s3://b/a/../c",
        ] {
            let e = RepoLocation::parse(bad).unwrap_err();
            assert_eq!(e.kind, StorageErrorKind::InvalidLocation, "{bad}: {e}");
        }
        let e = RepoLocation::parse("gs://bucket/x").unwrap_err();
        assert!(e.message.contains("not supported yet"), "{e}");
        let e = RepoLocation::parse("az://container/x").unwrap_err();
        assert!(e.message.contains("not supported yet"), "{e}");
    }

    #[test]
    fn debug_hides_secret() {
        let s = S3Settings {
            access_key_id: Some("AKIDPUBLIC".into()),
            secret_access_key: Some("very-secret-value".into()),
            ..Default::default()
        };
        let shown = format!("{s:?}");
        assert!(shown.contains("AKIDPUBLIC"));
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn keys_are_validated() {
        for bad in ["", "/a", "a/", "a//b", "a/../b", "./a", "a\\b", "a\nb"] {
            let e = key_path("get", bad).unwrap_err();
            assert_eq!(e.kind, StorageErrorKind::Permanent, "{bad:?}");
        }
        assert_eq!(
            key_path("get", "data/ab/ab12").unwrap().as_ref(),
            "data/ab/ab12"
        );
    }

    #[test]
    fn missing_local_directory_is_not_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let url = missing.display().to_string();
        let e = open_url(&url, &S3Settings::default()).unwrap_err();
        assert_eq!(e.kind, StorageErrorKind::NotFound);
        assert!(e.to_string().contains(&url), "{e}");
        assert!(!missing.exists());
        // A file is not a directory.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = open_url(&file.display().to_string(), &S3Settings::default()).unwrap_err();
        assert_eq!(e.kind, StorageErrorKind::Permanent);
        // Created on request.
        let s = open_url_create(&format!("file://{url}"), &S3Settings::default()).unwrap();
        assert!(missing.is_dir());
        assert!(s.location().starts_with("file:///"), "{}", s.location());
    }

    #[test]
    fn the_instance_metadata_is_the_credential_source_only_when_nothing_else_is() {
        let b = AmazonS3Builder::new().with_bucket_name("b");
        assert_eq!(
            instance_metadata_only(&b).as_deref(),
            Some("http://169.254.169.254")
        );
        let b = AmazonS3Builder::new()
            .with_bucket_name("b")
            .with_metadata_endpoint("http://127.0.0.1:9");
        assert_eq!(
            instance_metadata_only(&b).as_deref(),
            Some("http://127.0.0.1:9")
        );
        let keys = AmazonS3Builder::new()
            .with_access_key_id("k")
            .with_secret_access_key("s");
        assert_eq!(instance_metadata_only(&keys), None);
        let web = AmazonS3Builder::new()
            .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, "/t")
            .with_config(AmazonS3ConfigKey::RoleArn, "arn:aws:iam::1:role/r");
        assert_eq!(instance_metadata_only(&web), None);
        let anonymous = AmazonS3Builder::new().with_skip_signature(true);
        assert_eq!(instance_metadata_only(&anonymous), None);
        assert!(is_metadata_failure(
            "Error performing PUT http://169.254.169.254/latest/api/token: 403",
            "http://169.254.169.254"
        ));
        assert!(!is_metadata_failure(
            "the bucket does not exist",
            "http://169.254.169.254"
        ));
        let m = no_credentials_message("http://169.254.169.254", "403 Forbidden");
        assert!(m.starts_with("no AWS credentials found"), "{m}");
        assert!(
            m.contains("AWS_ACCESS_KEY_ID") && m.contains("IAM role"),
            "{m}"
        );
    }

    #[test]
    fn local_roundtrip_and_list_prefixes() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = ObjectStoreBackend::local(dir.path(), false).unwrap();
            s.put("data/ab/ab01", Bytes::from_static(b"one"))
                .await
                .unwrap();
            s.put("data/ac/ac02", Bytes::from_static(b"two"))
                .await
                .unwrap();
            s.put("snapshots/s1", Bytes::from_static(b"three"))
                .await
                .unwrap();
            s.put("config", Bytes::from_static(b"c")).await.unwrap();
            let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|i| i.key).collect::<Vec<_>>();
            assert_eq!(
                keys(s.list("").await.unwrap()),
                ["config", "data/ab/ab01", "data/ac/ac02", "snapshots/s1"]
            );
            assert_eq!(
                keys(s.list("data/").await.unwrap()),
                ["data/ab/ab01", "data/ac/ac02"]
            );
            assert_eq!(keys(s.list("data/ab").await.unwrap()), ["data/ab/ab01"]);
            assert_eq!(keys(s.list("snap").await.unwrap()), ["snapshots/s1"]);
            assert!(s.list("nothing/").await.unwrap().is_empty());
            assert_eq!(s.get_range("snapshots/s1", 1..3).await.unwrap(), "hr");
            assert_eq!(s.get_range("snapshots/s1", 2..2).await.unwrap(), "");
            let e = s.get_range("snapshots/s1", 2..9).await.unwrap_err();
            assert_ne!(e.kind, StorageErrorKind::Transient, "{e}");
            // Shorter than asked: damaged data (integrity), not storage.
            assert_eq!(e.kind, StorageErrorKind::Truncated, "{e}");
            let e = s.get_range("snapshots/s1", 20..30).await.unwrap_err();
            assert_eq!(e.kind, StorageErrorKind::Truncated, "{e}");
            assert!(
                s.get_range("missing", 0..0)
                    .await
                    .unwrap_err()
                    .is_not_found()
            );
            // A staging file left by a crash is not listed.
            std::fs::write(dir.path().join("data/ab/ab01#7"), b"partial").unwrap();
            assert_eq!(keys(s.list("data/ab/").await.unwrap()), ["data/ab/ab01"]);
        });
    }

    #[test]
    fn staging_names() {
        assert!(is_staging_name("ab01#123"));
        assert!(is_staging_name("lock#1"));
        assert!(!is_staging_name("ab01"));
        assert!(!is_staging_name("ab01#"));
        assert!(!is_staging_name("#12"));
        assert!(!is_staging_name("ab#12x"));
    }

    #[test]
    fn abandoned_staging_files_are_swept_and_live_ones_kept() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = ObjectStoreBackend::local(dir.path(), false).unwrap();
            s.put("locks/l1", Bytes::from_static(b"lock"))
                .await
                .unwrap();
            s.put("data/ab/ab01", Bytes::from_static(b"pack"))
                .await
                .unwrap();
            // A crashed writer's leftovers: nobody holds them.
            let dead_lock = dir.path().join("locks/l2#77");
            let dead_pack = dir.path().join("data/ab/ab02#12345");
            std::fs::write(&dead_lock, b"half").unwrap();
            std::fs::write(&dead_pack, b"half").unwrap();
            // A writer in progress: holds the flock.
            let live = dir.path().join("data/ab/ab03#999");
            let held = std::fs::File::create(&live).unwrap();
            held.lock().unwrap();

            // Listing a prefix sweeps only under its directory.
            assert_eq!(s.list("locks/").await.unwrap().len(), 1);
            assert!(!dead_lock.exists());
            assert!(dead_pack.exists());
            let keys: Vec<_> = s
                .list("data/")
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.key)
                .collect();
            assert_eq!(keys, ["data/ab/ab01"]);
            assert!(!dead_pack.exists());
            assert!(live.exists(), "a staging file being written must be kept");
            drop(held);
            s.list("").await.unwrap();
            assert!(!live.exists());
            assert_eq!(s.get("locks/l1").await.unwrap(), "lock");
        });
    }

    #[test]
    fn local_put_overwrites_atomically_and_leaves_nothing() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
            // Concurrent writers and sweepers on the same key.
            let mut tasks = Vec::new();
            for i in 0..8u8 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..20 {
                        s.put("k/obj", Bytes::from(vec![i; 4096])).await.unwrap();
                        s.list("k/").await.unwrap();
                        let got = s.get("k/obj").await.unwrap();
                        assert_eq!(got.len(), 4096);
                        assert!(got.iter().all(|b| *b == got[0]), "torn object");
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let names: Vec<_> = std::fs::read_dir(dir.path().join("k"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["obj"]);
        });
    }

    #[test]
    fn local_permission_denied_is_permanent() {
        use std::os::unix::fs::PermissionsExt;
        // Root ignores permissions; nothing to test there.
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::create_dir(&probe).unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o500)).unwrap();
        let root = std::fs::write(probe.join("x"), b"x").is_ok();
        if root {
            return;
        }
        rt().block_on(async {
            let s = ObjectStoreBackend::local(&probe, false).unwrap();
            let e = s.put("a/b", Bytes::from_static(b"x")).await.unwrap_err();
            assert_eq!(e.kind, StorageErrorKind::Permanent, "{e}");
            assert!(e.message.contains("permission denied"), "{e}");
        });
    }

    #[test]
    fn full_disk_is_permanent_with_clear_message() {
        let e = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let (kind, hint) = classify_io(&e, false);
        assert_eq!(kind, StorageErrorKind::Permanent);
        assert!(hint.contains("disk full"));
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_io(&e, true).0, StorageErrorKind::Transient);
        // Through object_store's own error type.
        let err = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
        };
        let mapped = map_error(err, "put", "data/x", false);
        assert_eq!(mapped.kind, StorageErrorKind::Permanent);
        assert!(mapped.to_string().contains("disk full"), "{mapped}");
    }

    #[test]
    fn http_statuses_are_classified() {
        assert_eq!(
            http_status("Server returned non-2xx status code: 503 Service Unavailable: x"),
            Some(503)
        );
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        };
        for (msg, kind) in [
            (
                "Server returned non-2xx status code: 503 Service Unavailable: SlowDown",
                StorageErrorKind::Transient,
            ),
            (
                "Server returned non-2xx status code: 500 Internal Server Error: ",
                StorageErrorKind::Transient,
            ),
            (
                "Server returned non-2xx status code: 429 Too Many Requests: ",
                StorageErrorKind::Transient,
            ),
            (
                "Server returned non-2xx status code: 400 Bad Request: InvalidArgument",
                StorageErrorKind::Permanent,
            ),
            (
                "Server returned error response: <Code>InternalError</Code>",
                StorageErrorKind::Transient,
            ),
        ] {
            assert_eq!(
                map_error(generic(msg), "get", "k", true).kind,
                kind,
                "{msg}"
            );
        }
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        let e = map_error(denied, "get", "k", true);
        assert_eq!(e.kind, StorageErrorKind::Permanent);
        assert!(e.message.contains("check the credentials"), "{e}");
        let missing_bucket = object_store::Error::NotFound {
            path: "k".into(),
            source: "<Code>NoSuchBucket</Code>".into(),
        };
        assert_eq!(
            map_error(missing_bucket, "put", "k", true).kind,
            StorageErrorKind::Permanent
        );
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let refused = plain_http_refused(Some("http://127.0.0.1:9000"), false).unwrap();
        assert!(refused.contains("allow_http"), "{refused}");
        assert!(plain_http_refused(Some("http://127.0.0.1:9000"), true).is_none());
        assert!(plain_http_refused(Some("https://s3.example"), false).is_none());
        assert!(plain_http_refused(None, false).is_none());
    }

    #[test]
    fn unreachable_s3_endpoint_is_transient() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: true,
        };
        rt().block_on(async {
            let s = ObjectStoreBackend::s3("bucket", "prefix", &settings).unwrap();
            assert_eq!(s.location(), "s3://bucket/prefix");
            let e = s.get("config").await.unwrap_err();
            assert_eq!(e.kind, StorageErrorKind::Transient, "{e}");
            assert!(!e.to_string().contains("test:test"));
        });
    }
}
