//! [`ReadBack`]: a storage wrapper that reads every object it writes back
//! and compares it byte for byte with what was sent, so a write that landed
//! damaged (a faulty gateway, a bit flip on the way, a truncated upload that
//! the server acknowledged) fails the operation at once instead of being
//! found by the next `check --read-data`.
//!
//! `lifeboat copy` writes through it into the target repository
//! (`docs/regions/copy.md`): what it writes was made from source blobs
//! authenticated with the source key and re-hashed against their ids, so a
//! read-back equal to the bytes sent proves the copy end to end. Locks and
//! the lease (`locks/`, `serve/`) are rewritten often and carry no data:
//! they are not read back.
//!
//! Cost: one GET of every object written (a pack is read back once).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::append_only::MUTABLE_PREFIXES;
use super::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult};

/// See the module docs.
#[derive(Debug)]
pub struct ReadBack {
    inner: Arc<dyn Storage>,
    /// Objects read back and found equal.
    verified: AtomicU64,
    /// Their bytes.
    verified_bytes: AtomicU64,
}

impl ReadBack {
    pub fn wrap(inner: Arc<dyn Storage>) -> Arc<ReadBack> {
        Arc::new(Self {
            inner,
            verified: AtomicU64::new(0),
            verified_bytes: AtomicU64::new(0),
        })
    }

    /// Objects written, read back and found equal so far, and their bytes.
    pub fn verified(&self) -> (u64, u64) {
        (
            self.verified.load(Ordering::Relaxed),
            self.verified_bytes.load(Ordering::Relaxed),
        )
    }

    async fn check(&self, key: &str, sent: &Bytes) -> StorageResult<()> {
        if MUTABLE_PREFIXES.iter().any(|p| key.starts_with(p)) {
            return Ok(());
        }
        let stored = self.inner.get(key).await?;
        if stored != *sent {
            return Err(StorageError::new(
                StorageErrorKind::Permanent,
                "put",
                key,
                format!(
                    "read back after writing, the object differs from what was sent ({} bytes stored, {} sent): the storage damaged it. Nothing refers to it yet; run the command again, and check the storage",
                    stored.len(),
                    sent.len()
                ),
            ));
        }
        self.verified.fetch_add(1, Ordering::Relaxed);
        self.verified_bytes
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl Storage for ReadBack {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put(key, data.clone()).await?;
        self.check(key, &data).await
    }

    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        let created = self.inner.put_new(key, data.clone()).await?;
        if created {
            self.check(key, &data).await?;
        }
        Ok(created)
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
        self.inner.delete(key).await
    }
}
