//! Repository locks: documents under `locks/` that announce work in progress.
//!
//! - `shared` locks (backup, restore, forget, check) never block anything;
//!   they exist so that `prune` knows which operations may still rely on
//!   data it is about to delete (see `prune`).
//! - `exclusive` locks (prune) exclude each other.
//!
//! A lock is refreshed every [`REFRESH_INTERVAL`]. It is stale when its
//! holder is a process on this host that no longer runs, or when it has
//! not been refreshed for [`STALE_AFTER`]. Stale locks are ignored and
//! removed. Times are the storage server's (`last_modified`), one clock for
//! every client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::random_array;
use crate::error::{RepoError, Result};
use crate::format::{DOC_VERSION, LOCKS_PREFIX, id_of_key, open_doc, seal_doc};
use crate::keys::{hostname, username};
use crate::repo::Repository;

pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    Shared,
    Exclusive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockDoc {
    pub version: u64,
    pub mode: LockMode,
    /// What the holder is doing (`backup`, `prune`, …).
    pub operation: String,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// When the lock was first written, by the storage clock.
    pub created: DateTime<Utc>,
}

/// A lock found in the repository.
#[derive(Debug, Clone)]
pub struct LockEntry {
    pub key: String,
    pub doc: LockDoc,
    /// Last refresh, by the storage clock.
    pub refreshed: DateTime<Utc>,
    pub stale: bool,
}

impl LockEntry {
    pub fn describe(&self) -> String {
        format!(
            "{} lock for {} held by pid {} on {} (user {}) since {}, last refreshed {}",
            match self.doc.mode {
                LockMode::Shared => "shared",
                LockMode::Exclusive => "exclusive",
            },
            self.doc.operation,
            self.doc.pid,
            self.doc.hostname,
            self.doc.username,
            self.doc.created.format("%Y-%m-%d %H:%M:%S UTC"),
            self.refreshed.format("%H:%M:%S UTC"),
        )
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn is_stale(doc: &LockDoc, refreshed: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    if doc.hostname == hostname() && doc.pid != std::process::id() && !pid_alive(doc.pid) {
        return true;
    }
    now.signed_duration_since(refreshed)
        .to_std()
        .map(|age| age > STALE_AFTER)
        .unwrap_or(false)
}

/// Every lock in the repository, with staleness judged against `now`
/// (pass the storage clock's now when known).
pub async fn list_locks(repo: &Repository, now: DateTime<Utc>) -> Result<Vec<LockEntry>> {
    let mut out = Vec::new();
    for o in repo.storage().list(LOCKS_PREFIX).await? {
        let bytes = match repo.storage().get(&o.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        match open_doc::<LockDoc>(repo.key(), "lock", &o.key, &bytes) {
            Ok(doc) => {
                let stale = is_stale(&doc, o.last_modified, now);
                out.push(LockEntry {
                    key: o.key,
                    doc,
                    refreshed: o.last_modified,
                    stale,
                });
            }
            Err(e) => tracing::warn!("ignoring unreadable lock {}: {e}", o.key),
        }
    }
    Ok(out)
}

/// A held lock. Refreshed in the background; release it with
/// [`LockGuard::release`] (dropping it removes it on a best-effort basis).
pub struct LockGuard {
    repo: Repository,
    key: String,
    doc: LockDoc,
    refresher: tokio::task::JoinHandle<()>,
    released: bool,
}

impl LockGuard {
    pub fn id(&self) -> &str {
        id_of_key(&self.key)
    }

    /// When the lock was created, by the storage clock.
    pub fn created(&self) -> DateTime<Utc> {
        self.doc.created
    }

    /// Rewrites the lock and returns the storage time of that write: a
    /// fence. Everything this process stored before the call is visible to
    /// any request that the storage receives after the returned time
    /// (prune dates condemnations with it, see `prune`).
    pub async fn touch(&self) -> Result<DateTime<Utc>> {
        let storage = self.repo.storage();
        storage
            .put(
                &self.key,
                Bytes::from(seal_doc(self.repo.key(), "lock", &self.doc)?),
            )
            .await?;
        Ok(storage.head(&self.key).await?.last_modified)
    }

    pub async fn release(mut self) -> Result<()> {
        self.refresher.abort();
        self.released = true;
        self.repo.storage().delete(&self.key).await?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.refresher.abort();
        if !self.released
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let storage = Arc::clone(self.repo.storage());
            let key = self.key.clone();
            handle.spawn(async move {
                let _ = storage.delete(&key).await;
            });
        }
    }
}

/// Takes a lock. An exclusive lock fails with [`RepoError::Locked`], naming
/// the holder, when another live exclusive lock exists; stale locks are removed.
pub async fn acquire(repo: &Repository, mode: LockMode, operation: &str) -> Result<LockGuard> {
    let key = format!("{LOCKS_PREFIX}{}", hex::encode(random_array::<16>()?));
    let mut doc = LockDoc {
        version: DOC_VERSION,
        mode,
        operation: operation.to_string(),
        hostname: hostname(),
        username: username(),
        pid: std::process::id(),
        // Until the storage time is known, the lock claims to be older than
        // anything: a reader between the two puts must not take a local
        // clock that runs ahead for the lock's age (prune would think the
        // holder started after a condemnation it never saw).
        created: DateTime::<Utc>::UNIX_EPOCH,
    };
    let storage = repo.storage();
    storage
        .put(&key, Bytes::from(seal_doc(repo.key(), "lock", &doc)?))
        .await?;
    // Use the storage clock from here on.
    let created = storage.head(&key).await?.last_modified;
    doc.created = created;
    storage
        .put(&key, Bytes::from(seal_doc(repo.key(), "lock", &doc)?))
        .await?;

    let others = list_locks(repo, created).await?;
    for other in &others {
        if other.key == key {
            continue;
        }
        if other.stale {
            tracing::info!("removing stale lock: {}", other.describe());
            let _ = storage.delete(&other.key).await;
            continue;
        }
        if mode == LockMode::Exclusive && other.doc.mode == LockMode::Exclusive {
            let _ = storage.delete(&key).await;
            return Err(RepoError::Locked(format!(
                "{}. If that process is gone, its lock goes stale {} min after its last refresh, or remove it with `lifeboat unlock`",
                other.describe(),
                STALE_AFTER.as_secs() / 60
            )));
        }
    }

    let refresher = {
        let storage = Arc::clone(storage);
        let key = key.clone();
        let bytes = seal_doc(repo.key(), "lock", &doc)?;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_INTERVAL).await;
                if let Err(e) = storage.put(&key, Bytes::from(bytes.clone())).await {
                    tracing::warn!("could not refresh lock {key}: {e}");
                }
            }
        })
    };
    Ok(LockGuard {
        repo: repo.clone(),
        key,
        doc,
        refresher,
        released: false,
    })
}

/// Removes stale locks (or, with `all`, every lock). Returns what was removed.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<LockEntry>> {
    let now = Utc::now();
    let mut removed = Vec::new();
    for l in list_locks(repo, now).await? {
        if l.stale || all {
            repo.storage().delete(&l.key).await?;
            removed.push(l);
        }
    }
    Ok(removed)
}
