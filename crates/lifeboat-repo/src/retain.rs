//! S3 Object Lock retention on what a snapshot needs (`docs/append-only.md`).
//!
//! When the bucket has Object Lock enabled, every backup, before it writes
//! its snapshot document, sets retention on each object that snapshot
//! needs: the packs holding its blobs (new or deduplicated against), the
//! index documents listing those packs, the repository's marker, config and
//! key slots; then, once stored, on the snapshot document itself. Retention
//! runs until at least [`RetentionPolicy::days`] from the backup; an object
//! whose retention ends sooner (a pack shared with older snapshots) is
//! extended to `days + slack` ([`RetentionPolicy::renew_slack_days`]).
//!
//! [`RetentionPolicy::days`]: crate::storage::object_lock::RetentionPolicy::days
//! [`RetentionPolicy::renew_slack_days`]: crate::storage::object_lock::RetentionPolicy::renew_slack_days
//!
//! A failure to set retention on a pack or index document fails the backup
//! before its snapshot exists (storage error: nothing half-protected is
//! announced); a failure on the snapshot document itself is reported as an
//! error naming the stored snapshot.
//!
//! `prune` asks [`retained_until`] before deleting a pack: one still under
//! retention is kept (it stays condemned and a later prune deletes it once
//! the retention has passed), instead of being hidden behind a delete
//! marker while its bytes stay billed.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::error::{RepoError, Result};
use crate::format::{CONFIG_KEY, KEYS_PREFIX, MARKER_KEY, pack_key};
use crate::index::MasterIndex;
use crate::references::referenced_blobs;
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;
pub use crate::storage::object_lock::ObjectLock;

/// How many retention requests are in flight at once.
const CONCURRENCY: usize = 16;

/// What one protection pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Protected {
    /// Objects whose retention was set or extended.
    pub set: usize,
    /// Objects already retained long enough.
    pub already: usize,
}

impl Protected {
    fn add(&mut self, o: Protected) {
        self.set += o.set;
        self.already += o.already;
    }
}

/// The keys of the objects `snap` needs (besides its own document): its
/// packs, the index documents that list them, marker, config, key slots.
pub async fn needed_keys(
    repo: &Repository,
    snap: &SnapshotRef,
    index: &MasterIndex,
) -> Result<Vec<String>> {
    let refs = referenced_blobs(repo, std::slice::from_ref(snap), index).await?;
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for id in &refs.used {
        if let Some(loc) = index.get(id) {
            let p = index.pack(loc);
            keys.insert(pack_key(&p.id));
            keys.insert(p.index_file.clone());
        }
    }
    keys.insert(MARKER_KEY.to_string());
    keys.insert(CONFIG_KEY.to_string());
    for o in repo.storage().list(KEYS_PREFIX).await? {
        keys.insert(o.key);
    }
    Ok(keys.into_iter().collect())
}

/// Makes sure each of `keys` is retained until at least `policy.days` from
/// now, extending the retention of those that end sooner.
pub async fn protect(lock: &ObjectLock, keys: &[String]) -> Result<Protected> {
    let now = Utc::now();
    let needed = now + Duration::days(i64::from(lock.policy.days));
    let until = needed + Duration::days(i64::from(lock.policy.renew_slack_days()));
    let results: Vec<Protected> = futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            let current = lock.client.retention(&key).await?;
            if current.is_some_and(|c| c >= needed) {
                return Ok::<_, RepoError>(Protected { set: 0, already: 1 });
            }
            lock.client
                .set_retention(&key, lock.policy.mode, until)
                .await?;
            Ok(Protected { set: 1, already: 0 })
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut total = Protected::default();
    for r in results {
        total.add(r);
    }
    tracing::debug!(set = total.set, already = total.already, until = %until, "object lock retention");
    Ok(total)
}

/// For each of `keys`, the end of its retention if that is still ahead of
/// `now` (objects missing or not retained are left out).
pub async fn retained_until(
    lock: &ObjectLock,
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<HashMap<String, DateTime<Utc>>> {
    let found: Vec<Option<(String, DateTime<Utc>)>> = futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            match lock.client.retention(&key).await {
                Ok(Some(until)) if until > now => Ok(Some((key, until))),
                Ok(_) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(RepoError::from(e)),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}
