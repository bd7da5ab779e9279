//! Append-only mode on the client side: [`AppendOnly`] wraps a [`Storage`]
//! so that nothing written can be deleted or replaced through it, except
//! the two kinds of object that are rewritten by design:
//!
//! - `locks/…`: a lock is rewritten on every refresh and deleted on release
//!   (as restic's rest-server `--append-only` allows removing locks);
//! - `serve/…`: the daemon's lease, renewed and released the same way.
//!
//! Everything else is written with [`Storage::put_new`] (a conditional
//! create). An existing object under a content-addressed prefix (`data/`,
//! `index/`, `snapshots/`, `condemned/`, `drills/`, `checks/`: the name is a
//! hash of the bytes) already holds the same bytes, and the put succeeds
//! without replacing it; an existing object elsewhere (`config`, `keys/…`)
//! is refused. Deletes outside `locks/` and `serve/` are refused.
//!
//! This is the client's promise. The guarantee against a *leaked*
//! credential comes from the storage: credentials that cannot delete (and,
//! on S3, cannot overwrite) outside `locks/` and `serve/`. `docs/append-only.md`
//! gives the IAM policies.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult};

/// Prefixes whose objects are rewritten and deleted in normal operation.
pub const MUTABLE_PREFIXES: &[&str] = &["locks/", "serve/"];

/// Prefixes whose object names are content hashes: an existing object holds
/// the same bytes.
pub const CONTENT_ADDRESSED_PREFIXES: &[&str] = &[
    "data/",
    "index/",
    "snapshots/",
    "condemned/",
    "drills/",
    "checks/",
    "failovers/",
    "recoveries/",
];

/// What to tell a user whose command needs to delete.
pub const ADMIN_HINT: &str = "the repository is in append-only mode (repository.append_only or LIFEBOAT_APPEND_ONLY): its credentials may add but never delete or overwrite. Run forget, prune, repair index and key remove with the administrator's configuration (append_only off, the admin credentials); see docs/append-only.md";

fn is_mutable(key: &str) -> bool {
    MUTABLE_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn is_content_addressed(key: &str) -> bool {
    CONTENT_ADDRESSED_PREFIXES
        .iter()
        .any(|p| key.starts_with(p))
}

/// See the module docs.
#[derive(Debug)]
pub struct AppendOnly {
    inner: Arc<dyn Storage>,
}

impl AppendOnly {
    pub fn wrap(inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
        Arc::new(Self { inner })
    }

    fn refused(op: &'static str, key: &str, what: &str) -> StorageError {
        StorageError::new(
            StorageErrorKind::Permanent,
            op,
            key,
            format!("refusing to {what}: {ADMIN_HINT}"),
        )
        .refusing_writes(true)
    }
}

#[async_trait]
impl Storage for AppendOnly {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        if is_mutable(key) {
            return self.inner.put(key, data).await;
        }
        if self.inner.put_new(key, data).await? || is_content_addressed(key) {
            Ok(())
        } else {
            Err(Self::refused("put", key, "replace an existing object"))
        }
    }

    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        self.inner.put_new(key, data).await
    }

    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        if is_mutable(key) {
            return self.inner.delete(key).await;
        }
        Err(Self::refused("delete", key, "delete"))
    }
}
