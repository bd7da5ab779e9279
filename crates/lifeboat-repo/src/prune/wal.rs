//! The WAL step of a prune: WAL objects (`wal/`, `wal-partial/`) that no
//! kept physical snapshot needs are deleted, after the packs' passes and
//! under the same exclusive lock.
//!
//! This crate does not know PostgreSQL: which snapshots are base backups,
//! where their WAL starts, and which segment a file name belongs to are
//! the service layer's ([`WalRules`], `lifeboat_ops::wal::retention`).
//! [`gather`] reads, in this order: prune's own lock rewritten (`now`, by
//! the storage clock), the locks, the WAL listing, the snapshots (for the
//! cutoff), the locks again. An operation that may read WAL and is in
//! either lock listing holds deletion back; one that started after the
//! first read the snapshots after prune did or needs only WAL written
//! after `now` (`docs/format.md`, "Why prune is safe"). The decision is
//! [`super::wal_plan::plan_wal`]'s; [`execute`] deletes by ascending
//! position.

use chrono::Duration;

use super::wal_plan::{WalCutoff, WalInputs, WalObject, WalPlan, plan_wal};
use crate::error::Result;
use crate::lock::{LockGuard, list_locks};
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;
use crate::wal::partial::{self, PartialKey};
use crate::wal::{self as store, WalKey};

/// What prune needs to know about WAL that this crate does not.
pub trait WalRules: Send + Sync {
    /// From every snapshot the step read (the kept ones): where the WAL
    /// that kept physical snapshots need starts. `Ok(None)` when no
    /// physical snapshot is kept (then no WAL is deleted); `Err` says why
    /// no cutoff can be decided (then no WAL is deleted either).
    fn cutoff(&self, snapshots: &[SnapshotRef]) -> std::result::Result<Option<WalCutoff>, String>;

    /// The segment number that the file `name`, stored on `timeline`,
    /// belongs to, for segments of `segment_size` bytes: a segment's own,
    /// a `.partial`'s or a backup label's segment's. `None` for what is
    /// never deleted by position (history files, names it does not know).
    fn position(&self, timeline: u32, name: &str, segment_size: u64) -> Option<u64>;
}

/// Reads what the WAL step decides on (see the module's order). `None`
/// when the repository holds no WAL object (nothing else is read then).
pub async fn gather(
    repo: &Repository,
    lock: &LockGuard,
    rules: &dyn WalRules,
) -> Result<Option<WalInputs>> {
    let now = lock.touch().await?;
    let mut locks = list_locks(repo, now).await?;
    let complete = store::list(repo).await?;
    let partials = partial::list(repo).await?;
    if complete.is_empty() && partials.is_empty() {
        return Ok(None);
    }
    let snaps = repo.snapshots().await?;
    let cutoff = rules.cutoff(&snaps);
    locks.extend(list_locks(repo, now).await?);
    let size = cutoff
        .as_ref()
        .ok()
        .and_then(|c| c.as_ref())
        .map(|c| c.segment_size);
    let position = |timeline: u32, name: &str| size.and_then(|s| rules.position(timeline, name, s));
    let objects = complete
        .iter()
        .map(|(k, o): &(WalKey, _)| WalObject {
            key: o.key.clone(),
            size: o.size,
            last_modified: o.last_modified,
            position: position(k.timeline, &k.name),
        })
        .chain(partials.iter().map(|(k, o): &(PartialKey, _)| WalObject {
            key: o.key.clone(),
            size: o.size,
            last_modified: o.last_modified,
            position: position(k.timeline, &k.segment),
        }))
        .collect();
    Ok(Some(WalInputs {
        now,
        objects,
        cutoff,
        locks,
    }))
}

/// Gathers and plans the WAL step.
pub async fn pass(
    repo: &Repository,
    lock: &LockGuard,
    rules: &dyn WalRules,
    grace: Duration,
) -> Result<WalPlan> {
    Ok(match gather(repo, lock, rules).await? {
        Some(inputs) => plan_wal(&inputs, lock.id(), grace),
        None => WalPlan::default(),
    })
}

/// Deletes what `plan` says, in its order, after confirming the lock is
/// still held (deleting without it could race another prune).
pub async fn execute(repo: &Repository, lock: &LockGuard, plan: &WalPlan) -> Result<()> {
    if plan.delete.is_empty() {
        return Ok(());
    }
    lock.confirm().await?;
    for key in &plan.delete {
        lock.ensure_held()?;
        repo.storage().delete(key).await?;
    }
    Ok(())
}
