//! Deleting data no snapshot needs, safely beside running backups.
//!
//! Prune never blocks backups and backups never block prune. Safety comes
//! from condemning packs before deleting them, and from a *fence*: a storage
//! time after which every starting backup is certain to see a condemnation.
//!
//! 1. **Condemn.** Indexed packs none of whose blobs any snapshot references
//!    are announced in a `condemned/` document (`condemned_at` absent). From
//!    then on new backups do not deduplicate against them
//!    ([`crate::backup::BackupSession::start`]). Only once that document is
//!    stored does prune take the fence: it rewrites its own lock and reads
//!    the lock's storage time ([`crate::lock::LockGuard::touch`]). A backup
//!    whose lock is younger than the fence read the condemned list after the
//!    announcement was visible. The packs are then listed again with
//!    `condemned_at` = the fence, and the announcement is removed.
//! 2. **Delete.** A condemned pack is deleted when (a) the grace period has
//!    passed since its fence, (b) no live lock of another operation was
//!    created at or before the fence (it may have deduplicated against the
//!    pack), and (c) no snapshot references it (one that finished may have:
//!    then it is rescued). Locks are listed *before* snapshots are read, so
//!    an operation missing from the lock listing has already written its
//!    snapshot. With a zero grace period a second pass right after the
//!    fence deletes what nothing holds.
//!
//! Packs that no index lists (left by an interrupted backup) are deleted when
//! older than the grace period and no live lock predates them (the backup
//! writing them would hold such a lock; one that finished wrote its index
//! before its lock went, and the index is read after the locks).
//!
//! Prune refuses to run when a snapshot references blobs that no index lists:
//! their packs would look unused. `lifeboat repair index` rebuilds the index.
//!
//! Deletion order is crash-safe: condemned documents as they now stand, the
//! consolidated index (without deleted packs), old index documents, the
//! packs, then old condemned documents. The argument that no interleaving
//! loses data is in `docs/format.md` ("Why prune is safe").
//!
//! One pass is three steps, each its own module: [`gather`] reads what the
//! pass decides on ([`PruneInputs`], in the protocol's order), [`plan()`]
//! decides, as a pure function table-tested against every rule above, and
//! [`execute()`] carries the [`PrunePlan`] out in
//! the documented order. [`prune`] runs one pass, and a second one right
//! after it when the grace period is zero.
//!
//! WAL objects are not in packs: [`prune_with_wal`] adds a step after the
//! packs' passes that deletes the WAL no kept physical snapshot needs
//! ([`wal`], decided by [`plan_wal`]), with the service layer's knowledge
//! of PostgreSQL ([`WalRules`]). [`prune`] alone leaves WAL untouched.

mod execute;
mod inputs;
mod plan;
pub mod wal;
mod wal_plan;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::condemned::{CondemnedDoc, CondemnedEntry};
use crate::error::{RepoError, Result};
use crate::lock::{LockGuard, LockMode, acquire};
use crate::repo::Repository;
pub use execute::execute;
pub use inputs::{gather, retained_packs};
pub use plan::{IndexRewrite, PruneInputs, PrunePlan, plan};
pub use wal::WalRules;
pub use wal_plan::{
    WAL_INDEPENDENT, WalCutoff, WalInputs, WalObject, WalPlan, WalPruneReport, plan_wal,
};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub grace: Duration,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            dry_run: false,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub snapshots: usize,
    pub packs_total: usize,
    /// Packs newly condemned by this run.
    pub condemned: usize,
    /// Condemned packs found referenced again and kept.
    pub rescued: usize,
    pub deleted_packs: usize,
    pub deleted_bytes: u64,
    /// Of those, packs that no index listed (interrupted backups).
    pub deleted_leftovers: usize,
    /// Condemned or leftover packs still waiting (grace period or locks).
    pub waiting: usize,
    /// Why some packs wait, if anything holds them.
    pub waiting_reasons: Vec<String>,
    /// Packs prune would delete but kept because S3 Object Lock retains
    /// them (they stay condemned; a prune after `retained_until` deletes
    /// them).
    pub retained: usize,
    /// The latest end of those packs' retention.
    pub retained_until: Option<DateTime<Utc>>,
    /// Bytes of unreferenced blobs inside packs that are still partly used.
    pub unused_bytes_in_live_packs: u64,
    pub dry_run: bool,
    /// WAL objects deleted (or, dry, that would be) and kept; all zero
    /// when prune ran without WAL rules.
    pub wal: WalPruneReport,
}

/// Prunes packs (WAL objects are left alone: see [`prune_with_wal`]).
pub async fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    prune_with_wal(repo, opts, None).await
}

/// Prunes packs and, with `wal` rules, the WAL no kept physical snapshot
/// needs (after the packs, under the same lock).
pub async fn prune_with_wal(
    repo: &Repository,
    opts: &PruneOptions,
    wal: Option<&dyn WalRules>,
) -> Result<PruneReport> {
    repo.ensure_may_delete("prune")?;
    let lock = acquire(repo, LockMode::Exclusive, "prune").await?;
    let result = match (prune_locked(repo, opts, &lock).await, wal) {
        (Ok(mut report), Some(rules)) => wal_step(repo, opts, &lock, rules).await.map(|w| {
            report.wal = w;
            report
        }),
        (other, _) => other,
    };
    let _ = lock.release().await;
    result
}

/// The WAL step: plans and (unless dry) deletes.
async fn wal_step(
    repo: &Repository,
    opts: &PruneOptions,
    lock: &LockGuard,
    rules: &dyn WalRules,
) -> Result<WalPruneReport> {
    let grace = chrono::Duration::from_std(opts.grace)
        .map_err(|e| RepoError::invalid(crate::error::BadInput::Parameter, e.to_string()))?;
    let plan = wal::pass(repo, lock, rules, grace).await?;
    if !opts.dry_run {
        wal::execute(repo, lock, &plan).await?;
    }
    Ok(plan.report)
}

async fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    lock: &LockGuard,
) -> Result<PruneReport> {
    let grace = chrono::Duration::from_std(opts.grace)
        .map_err(|e| RepoError::invalid(crate::error::BadInput::Parameter, e.to_string()))?;
    let first = pass(repo, lock, grace, opts.dry_run).await?;
    if opts.dry_run {
        return Ok(first.report);
    }
    let fenced = execute(repo, lock, &first).await?;
    if !(fenced && grace.is_zero()) {
        return Ok(first.report);
    }
    // Second pass: deletes what was just condemned unless an operation
    // that started before the fence still runs (or used it: rescued).
    let second = pass(repo, lock, grace, false).await?;
    execute(repo, lock, &second).await?;
    Ok(after_second_pass(first.report, second.report))
}

/// Gathers and plans one pass. On a bucket with S3 Object Lock, the packs
/// the plan would delete are asked for their retention and the pass is
/// planned again knowing it (only those packs: one request each).
async fn pass(
    repo: &Repository,
    lock: &LockGuard,
    grace: chrono::Duration,
    dry_run: bool,
) -> Result<PrunePlan> {
    let mut inputs = gather(repo, lock).await?;
    let first = plan(&inputs, lock.id(), grace, dry_run)?;
    let Some(object_lock) = repo.object_lock() else {
        return Ok(first);
    };
    if first.delete.is_empty() {
        return Ok(first);
    }
    inputs.retained = retained_packs(object_lock, &first.delete).await?;
    if inputs.retained.is_empty() {
        return Ok(first);
    }
    plan(&inputs, lock.id(), grace, dry_run)
}

/// The report of a run whose second pass (zero grace) followed the first:
/// what both deleted and rescued, what the first condemned, and the rest
/// as the second pass left it.
fn after_second_pass(first: PruneReport, second: PruneReport) -> PruneReport {
    PruneReport {
        deleted_packs: first.deleted_packs + second.deleted_packs,
        deleted_bytes: first.deleted_bytes + second.deleted_bytes,
        deleted_leftovers: first.deleted_leftovers + second.deleted_leftovers,
        rescued: first.rescued + second.rescued,
        retained: second.retained,
        retained_until: second.retained_until,
        waiting: second.waiting,
        waiting_reasons: second.waiting_reasons,
        snapshots: second.snapshots,
        unused_bytes_in_live_packs: second.unused_bytes_in_live_packs,
        packs_total: first.packs_total,
        condemned: first.condemned,
        dry_run: first.dry_run,
        wal: second.wal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_pass_adds_its_deletions_and_reports_what_still_waits() {
        let first = PruneReport {
            snapshots: 3,
            packs_total: 10,
            condemned: 4,
            rescued: 1,
            deleted_packs: 2,
            deleted_bytes: 200,
            deleted_leftovers: 2,
            waiting: 4,
            waiting_reasons: vec!["first".into()],
            unused_bytes_in_live_packs: 7,
            ..Default::default()
        };
        let until = DateTime::from_timestamp(1_800_000_000, 0);
        let second = PruneReport {
            snapshots: 4,
            packs_total: 8,
            condemned: 0,
            rescued: 1,
            deleted_packs: 3,
            deleted_bytes: 300,
            deleted_leftovers: 0,
            waiting: 1,
            waiting_reasons: vec!["second".into()],
            retained: 1,
            retained_until: until,
            unused_bytes_in_live_packs: 5,
            dry_run: false,
            wal: WalPruneReport::default(),
        };
        let want = PruneReport {
            snapshots: 4,
            packs_total: 10,
            condemned: 4,
            rescued: 2,
            deleted_packs: 5,
            deleted_bytes: 500,
            deleted_leftovers: 2,
            waiting: 1,
            waiting_reasons: vec!["second".into()],
            retained: 1,
            retained_until: until,
            unused_bytes_in_live_packs: 5,
            dry_run: false,
            wal: WalPruneReport::default(),
        };
        assert_eq!(after_second_pass(first, second), want);
    }
}
