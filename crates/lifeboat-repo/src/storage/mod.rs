//! The one small storage interface the repository is written against.
//!
//! Everything the repository persists goes through [`Storage`]: whole-object
//! puts, gets (whole or a byte range), listing by prefix, head and delete.
//! Keys are relative, `/`-separated paths such as `data/ab/ab12…`.
//! Errors are typed and classified ([`StorageErrorKind`]) so that callers
//! (and the [`retry::Retrying`] wrapper) can tell a transient failure, worth
//! retrying, from a permanent one that must fail fast with a clear message.

pub mod append_only;
// Test-only wrappers (fault injection, request gating): not in release
// builds; tests get them through the `testing` feature (this crate's and
// its users' dev-dependencies turn it on).
#[cfg(any(test, feature = "testing"))]
pub mod faulty;
#[cfg(any(test, feature = "testing"))]
pub mod gate;
pub mod object;
pub mod object_lock;
pub mod read_back;
pub mod retry;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// What one stored object looks like in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the repository root, e.g. `snapshots/0a1b…`.
    pub key: String,
    pub size: u64,
    /// Time of the last write, by the storage server's clock (one clock for
    /// every client, which is why prune's grace period is measured with it).
    pub last_modified: DateTime<Utc>,
}

/// How a failed request should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// The object does not exist.
    NotFound,
    /// Worth retrying: timeouts, connection resets, 5xx, throttling.
    Transient,
    /// Retrying will not help: permissions, bad credentials, bad bucket,
    /// invalid request, local disk full.
    Permanent,
    /// The location or the storage settings are invalid (an unknown URL
    /// scheme, a plain-http endpoint not allowed, an unusable S3
    /// configuration): the user must fix them; nothing was asked of the
    /// storage.
    InvalidLocation,
    /// The object is shorter than the range asked of it: what was stored
    /// is damaged (a truncated pack), not the storage failing to answer.
    Truncated,
}

#[derive(Debug, thiserror::Error)]
#[error("{op} {key}: {message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// The operation that failed (`get`, `put`, `list`, …).
    pub op: &'static str,
    /// The key (or prefix) it was about.
    pub key: String,
    pub message: String,
    /// The storage refused to write: permission denied (a read-only mount
    /// or read-only credentials), a read-only file system, a full disk or
    /// an exceeded quota. Read-only work may go on without writing
    /// (see [`crate::lock::acquire_for_reading`]).
    pub write_refused: bool,
}

impl StorageError {
    pub fn new(
        kind: StorageErrorKind,
        op: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            op,
            key: key.into(),
            message: message.into(),
            write_refused: false,
        }
    }

    /// Marks this error as the storage refusing writes (see
    /// [`StorageError::write_refused`]).
    pub fn refusing_writes(mut self, refused: bool) -> Self {
        self.write_refused = refused;
        self
    }

    pub fn not_found(op: &'static str, key: impl Into<String>) -> Self {
        Self::new(StorageErrorKind::NotFound, op, key, "not found")
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == StorageErrorKind::NotFound
    }

    pub fn is_transient(&self) -> bool {
        self.kind == StorageErrorKind::Transient
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The storage the repository lives on. Implementations must make `put`
/// atomic: a reader sees either no object or the whole object, never a
/// prefix of it (object stores do this natively; the local backend writes a
/// temporary file and renames it).
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Human-readable location, for messages (`file:///srv/backups`, `s3://b/p`).
    fn location(&self) -> String;
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()>;
    /// Stores `data` under `key` only if no object is there yet: a
    /// conditional create (S3 `If-None-Match: *`, a hard link locally), so
    /// an existing object is never replaced. Returns `Ok(true)` when this call
    /// created it and `Ok(false)` when an object already existed (for a
    /// content-addressed key: the same bytes, e.g. a retried request whose
    /// first attempt landed). Used in append-only mode
    /// ([`append_only::AppendOnly`]).
    ///
    /// The default (head, then put) is **not** atomic; backends that can
    /// create conditionally override it and wrappers forward it.
    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        match self.head(key).await {
            Ok(_) => Ok(false),
            Err(e) if e.is_not_found() => self.put(key, data).await.map(|()| true),
            Err(e) => Err(e),
        }
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes>;
    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes>;
    async fn head(&self, key: &str) -> StorageResult<ObjectInfo>;
    /// Every object whose key starts with `prefix` (e.g. `snapshots/`).
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>>;
    /// Deleting an object that does not exist is not an error.
    async fn delete(&self, key: &str) -> StorageResult<()>;
}
