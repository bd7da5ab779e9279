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
//! The decision itself is [`plan`], a pure function of what one pass saw
//! ([`Scan`]); [`prune`] scans, plans and carries the plan out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::format::{
    CONDEMNED_PREFIX, DATA_PREFIX, DOC_VERSION, INDEX_PREFIX, id_of_key, parse_hex32, seal_doc,
    storage_id,
};
use crate::index::{IndexDoc, MasterIndex};
use crate::lock::{LockEntry, LockGuard, LockMode, acquire, list_locks};
use crate::pack::BlobId;
use crate::repo::Repository;
use crate::restore::chunk_ids;
use crate::snapshot::SnapshotRef;
use crate::storage::ObjectInfo;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondemnedDoc {
    pub version: u64,
    pub packs: Vec<String>,
    /// The fence: a storage time after which every new operation saw these
    /// packs condemned. Absent in an announcement, written before the fence
    /// was taken (a prune interrupted there leaves one; the next prune
    /// fences its packs anew). Kept when documents are rewritten, so
    /// rewriting does not restart the grace period.
    #[serde(default)]
    pub condemned_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct CondemnedEntry {
    pub key: String,
    pub doc: CondemnedDoc,
}

pub async fn load_condemned(repo: &Repository) -> Result<Vec<CondemnedEntry>> {
    let mut out = Vec::new();
    for o in repo.storage().list(CONDEMNED_PREFIX).await? {
        match repo.get_doc::<CondemnedDoc>(&o.key, "condemned").await {
            Ok(doc) => out.push(CondemnedEntry { key: o.key, doc }),
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

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

#[derive(Debug, Default, Clone, Serialize)]
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
}

/// What snapshots need, as far as the index can tell.
#[derive(Debug, Default, Clone)]
pub struct References {
    pub snapshots: usize,
    /// Every blob some snapshot needs: tree blobs and the chunks they list.
    pub used: HashSet<BlobId>,
    /// Snapshots needing blobs that no index lists: `(short id, how many)`
    /// (a tree blob that is not indexed counts once: its chunks are unknown).
    pub unindexed: Vec<(String, usize)>,
}

/// Every blob the given snapshots need. The index must have been read
/// *after* the snapshots were listed: a backup stores its index document
/// before its snapshot, so a blob missing here is missing for good.
pub async fn referenced_blobs(
    repo: &Repository,
    snaps: &[SnapshotRef],
    index: &MasterIndex,
) -> Result<References> {
    let mut refs = References {
        snapshots: snaps.len(),
        ..Default::default()
    };
    for s in snaps {
        let mut missing = 0usize;
        for item in &s.snapshot.items {
            let trees: Vec<Option<BlobId>> = item.tree.iter().map(|t| parse_hex32(t)).collect();
            let unindexed_trees = trees
                .iter()
                .filter(|t| t.is_none_or(|id| !index.contains(&id)))
                .count();
            refs.used.extend(trees.iter().flatten().copied());
            if unindexed_trees > 0 {
                missing += unindexed_trees;
                continue;
            }
            let ids = chunk_ids(repo, index, item).await.map_err(|e| {
                RepoError::corrupt(
                    format!("snapshot {}", s.short_id()),
                    format!("cannot read its chunk list ({e}); prune stops rather than guess. Run `lifeboat check`"),
                )
            })?;
            missing += ids.iter().filter(|id| !index.contains(id)).count();
            refs.used.extend(ids);
        }
        if missing > 0 {
            refs.unindexed.push((s.short_id().to_string(), missing));
        }
    }
    Ok(refs)
}

/// The refusal when snapshots need blobs no index lists.
fn unindexed_error(unindexed: &[(String, usize)]) -> RepoError {
    let list: Vec<String> = unindexed
        .iter()
        .map(|(id, n)| format!("snapshot {id} ({n} blobs)"))
        .collect();
    RepoError::corrupt(
        "index/",
        format!(
            "{} need blobs that no index document lists (an index document is missing or damaged); the packs holding them would look unused, so prune deleted nothing. Run `lifeboat repair index` to rebuild the index from the packs' own headers, then `lifeboat check`",
            list.join(", ")
        ),
    )
}

/// What one pass of prune saw, in the order it looked.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Storage time at the start of the pass (prune's own lock, rewritten).
    pub now: DateTime<Utc>,
    /// Listed first: an operation missing here had finished (snapshot and
    /// index written) before the snapshots and the index were read.
    pub locks: Vec<LockEntry>,
    pub refs: References,
    pub index_docs: Vec<(String, IndexDoc)>,
    pub condemned: Vec<CondemnedEntry>,
    /// Stored packs by id.
    pub stored: HashMap<String, ObjectInfo>,
}

/// Reads everything a pass decides on. The order is part of the protocol
/// (`docs/format.md`): locks, snapshots, index, condemned lists, packs.
pub async fn scan(repo: &Repository, lock: &LockGuard) -> Result<Scan> {
    let now = lock.touch().await?;
    let locks = list_locks(repo, now).await?;
    let snaps = repo.snapshots().await?;
    let index_docs = repo.load_index_docs().await?;
    let mut index = MasterIndex::default();
    for (k, d) in &index_docs {
        index.add_doc(k, d)?;
    }
    let refs = referenced_blobs(repo, &snaps, &index).await?;
    let condemned = load_condemned(repo).await?;
    let stored = repo
        .storage()
        .list(DATA_PREFIX)
        .await?
        .into_iter()
        .map(|o| (id_of_key(&o.key).to_string(), o))
        .collect();
    Ok(Scan {
        now,
        locks,
        refs,
        index_docs,
        condemned,
        stored,
    })
}

/// What a pass decided.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub report: PruneReport,
    /// Packs to delete now.
    pub delete: BTreeSet<String>,
    /// Packs to condemn and fence now (newly unreferenced, or announced by
    /// an interrupted prune and never fenced).
    pub condemn: BTreeSet<String>,
    /// Fenced packs that stay condemned, by fence.
    pub keep: BTreeMap<DateTime<Utc>, BTreeSet<String>>,
    /// Whether the condemned documents must be rewritten.
    pub rewrite_condemned: bool,
}

/// Decides what a pass does, from what it saw. `own_lock` is the id of the
/// prune's own lock (ignored when judging others).
pub fn plan(scan: &Scan, own_lock: &str, grace: chrono::Duration, dry_run: bool) -> Plan {
    let now = scan.now;
    let mut p = Plan::default();
    let r = &mut p.report;
    r.dry_run = dry_run;
    r.snapshots = scan.refs.snapshots;
    r.packs_total = scan.stored.len();
    let used = &scan.refs.used;
    let others: Vec<&LockEntry> = scan
        .locks
        .iter()
        .filter(|l| !l.stale && id_of_key(&l.key) != own_lock)
        .collect();
    let older_lock = |t: DateTime<Utc>| others.iter().find(|l| l.doc.created <= t).copied();

    // Which indexed packs hold referenced blobs (any copy counts).
    let mut indexed: BTreeSet<&str> = BTreeSet::new();
    let mut live: HashSet<&str> = HashSet::new();
    let mut unused: HashMap<&str, u64> = HashMap::new();
    for (_, doc) in &scan.index_docs {
        for pk in &doc.packs {
            if !indexed.insert(&pk.id) {
                continue; // listed twice (e.g. after `repair index`): count once
            }
            for b in &pk.blobs {
                if parse_hex32(&b.id).is_some_and(|id| used.contains(&id)) {
                    live.insert(&pk.id);
                } else {
                    *unused.entry(&pk.id).or_default() += b.length as u64;
                }
            }
        }
    }
    r.unused_bytes_in_live_packs = unused
        .iter()
        .filter(|(pk, _)| live.contains(*pk))
        .map(|(_, n)| n)
        .sum();

    // Earlier condemnations: each pack's earliest fence (any fenced document
    // still stored has been visible since before its fence), or none.
    let mut fence_of: BTreeMap<&str, Option<DateTime<Utc>>> = BTreeMap::new();
    for c in &scan.condemned {
        if c.doc.condemned_at.is_none() {
            p.rewrite_condemned = true; // an announcement left by an interrupted prune
        }
        for pk in &c.doc.packs {
            let f = fence_of.entry(pk).or_insert(c.doc.condemned_at);
            *f = match (*f, c.doc.condemned_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    for (pk, fence) in &fence_of {
        if !scan.stored.contains_key(*pk) {
            p.rewrite_condemned = true; // deleted already
            continue;
        }
        if live.contains(pk) {
            r.rescued += 1;
            p.rewrite_condemned = true;
            continue;
        }
        let Some(fence) = *fence else {
            p.condemn.insert(pk.to_string());
            continue;
        };
        if now - fence < grace {
            r.waiting += 1;
            p.keep.entry(fence).or_default().insert(pk.to_string());
        } else if let Some(l) = older_lock(fence) {
            r.waiting += 1;
            r.waiting_reasons.push(format!(
                "pack {} waits for {}",
                &pk[..pk.len().min(12)],
                l.describe()
            ));
            p.keep.entry(fence).or_default().insert(pk.to_string());
        } else {
            p.delete.insert(pk.to_string());
            p.rewrite_condemned = true;
        }
    }

    // Newly unreferenced indexed packs.
    for pk in &indexed {
        if !live.contains(pk) && !fence_of.contains_key(pk) && scan.stored.contains_key(*pk) {
            p.condemn.insert(pk.to_string());
        }
    }
    r.condemned = p.condemn.len();
    if !p.condemn.is_empty() {
        p.rewrite_condemned = true;
        if dry_run && grace.is_zero() && others.is_empty() {
            // A real run would fence them and delete them in its second pass.
            p.delete.extend(p.condemn.iter().cloned());
        } else {
            r.waiting += p.condemn.len();
            if grace.is_zero()
                && let Some(l) = others.first()
            {
                r.waiting_reasons.push(format!(
                    "{} newly condemned packs may wait for {}",
                    p.condemn.len(),
                    l.describe()
                ));
            }
        }
    }

    // Packs no index lists.
    for (id, info) in &scan.stored {
        if indexed.contains(id.as_str()) || fence_of.contains_key(id.as_str()) {
            continue;
        }
        // Written at or after the start of this pass: its writer may not be
        // in the lock listing yet.
        if info.last_modified >= now - grace {
            r.waiting += 1;
        } else if let Some(l) = older_lock(info.last_modified) {
            r.waiting += 1;
            r.waiting_reasons.push(format!(
                "unindexed pack {} waits for {}",
                &id[..id.len().min(12)],
                l.describe()
            ));
        } else {
            p.delete.insert(id.clone());
            r.deleted_leftovers += 1;
        }
    }

    r.deleted_packs = p.delete.len();
    r.deleted_bytes = p
        .delete
        .iter()
        .filter_map(|pk| scan.stored.get(pk))
        .map(|o| o.size)
        .sum();
    r.waiting_reasons.sort();
    r.waiting_reasons.dedup();
    p
}

/// On a bucket with S3 Object Lock: takes the packs still under retention
/// out of `plan.delete`. Deleting one would only hide it behind a delete
/// marker; a condemned one is kept in its condemned document (with its
/// fence) so that a later prune deletes it once its retention has passed,
/// and a leftover no index lists is simply found again next time.
async fn keep_retained(repo: &Repository, scan: &Scan, plan: &mut Plan) -> Result<()> {
    let Some(lock) = repo.object_lock() else {
        return Ok(());
    };
    if plan.delete.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = plan
        .delete
        .iter()
        .filter_map(|pk| scan.stored.get(pk).map(|o| o.key.clone()))
        .collect();
    let retained = crate::retain::retained_until(lock, &keys, Utc::now()).await?;
    if retained.is_empty() {
        return Ok(());
    }
    let fence_of: HashMap<&str, Option<DateTime<Utc>>> = scan
        .condemned
        .iter()
        .flat_map(|c| c.doc.packs.iter().map(|p| (p.as_str(), c.doc.condemned_at)))
        .collect();
    let r = &mut plan.report;
    let mut latest: Option<DateTime<Utc>> = None;
    for pk in plan.delete.clone() {
        let Some(o) = scan.stored.get(&pk) else {
            continue;
        };
        let Some(until) = retained.get(&o.key) else {
            continue;
        };
        plan.delete.remove(&pk);
        r.retained += 1;
        r.waiting += 1;
        r.deleted_bytes = r.deleted_bytes.saturating_sub(o.size);
        latest = latest.max(Some(*until));
        match fence_of.get(pk.as_str()) {
            Some(Some(fence)) => {
                plan.keep.entry(*fence).or_default().insert(pk.clone());
            }
            _ => r.deleted_leftovers = r.deleted_leftovers.saturating_sub(1),
        }
    }
    r.deleted_packs = plan.delete.len();
    r.retained_until = latest;
    if let Some(until) = latest {
        r.waiting_reasons.push(format!(
            "{} packs are under S3 Object Lock retention until {} at the latest; they stay condemned and a later prune deletes them",
            r.retained,
            until.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    Ok(())
}

async fn put_condemned(
    repo: &Repository,
    packs: Vec<String>,
    condemned_at: Option<DateTime<Utc>>,
) -> Result<String> {
    let doc = CondemnedDoc {
        version: DOC_VERSION,
        packs,
        condemned_at,
    };
    let bytes = seal_doc(repo.key(), "condemned", &doc)?;
    let key = format!("{CONDEMNED_PREFIX}{}", storage_id(&bytes));
    repo.storage().put(&key, Bytes::from(bytes)).await?;
    Ok(key)
}

/// Carries a plan out. Returns whether packs were newly condemned (fenced).
async fn execute(repo: &Repository, lock: &LockGuard, scan: &Scan, plan: &Plan) -> Result<bool> {
    let storage = repo.storage();
    let mut keep = plan.keep.clone();
    let mut written: HashSet<String> = HashSet::new();
    let mut announcements: Vec<String> = Vec::new();
    // 1. Announce, then fence: the fence is taken after the announcement is
    //    stored, so every operation whose lock is younger saw it.
    if !plan.condemn.is_empty() {
        let packs: Vec<String> = plan.condemn.iter().cloned().collect();
        announcements.push(put_condemned(repo, packs, None).await?);
        let fence = lock.touch().await?;
        keep.entry(fence)
            .or_default()
            .extend(plan.condemn.iter().cloned());
    }
    // 2. The condemned documents as they now stand (new before old, so a
    //    crash leaves a superset).
    if plan.rewrite_condemned {
        for (fence, packs) in &keep {
            written
                .insert(put_condemned(repo, packs.iter().cloned().collect(), Some(*fence)).await?);
        }
    }
    // Deleting anything without the lock could race another prune (the
    // lock was removed or judged stale): stop instead (`RepoError::LockLost`).
    if !plan.delete.is_empty() || plan.rewrite_condemned {
        lock.confirm().await?;
    }
    // 3. Consolidated index without the deleted packs, then the documents it replaces.
    let removed: HashSet<&str> = plan.delete.iter().map(String::as_str).collect();
    let touched: Vec<&String> = scan
        .index_docs
        .iter()
        .filter(|(_, d)| d.packs.iter().any(|pk| removed.contains(pk.id.as_str())))
        .map(|(k, _)| k)
        .collect();
    if !touched.is_empty() {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut kept = IndexDoc {
            version: DOC_VERSION,
            packs: Vec::new(),
        };
        for (k, d) in &scan.index_docs {
            if touched.contains(&k) {
                for pk in &d.packs {
                    if !removed.contains(pk.id.as_str()) && seen.insert(&pk.id) {
                        kept.packs.push(pk.clone());
                    }
                }
            }
        }
        if !kept.packs.is_empty() {
            repo.put_doc(INDEX_PREFIX, "index", &kept).await?;
        }
        for k in touched {
            storage.delete(k).await?;
        }
    }
    // 4. The packs.
    for pk in &plan.delete {
        lock.ensure_held()?;
        if let Some(o) = scan.stored.get(pk) {
            storage.delete(&o.key).await?;
        }
    }
    // 5. Old condemned documents and the announcement (their surviving
    //    packs were rewritten above).
    if plan.rewrite_condemned {
        for k in scan.condemned.iter().map(|c| &c.key).chain(&announcements) {
            if !written.contains(k) {
                storage.delete(k).await?;
            }
        }
    }
    Ok(!plan.condemn.is_empty())
}

pub async fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    repo.ensure_may_delete("prune")?;
    let lock = acquire(repo, LockMode::Exclusive, "prune").await?;
    let result = prune_locked(repo, opts, &lock).await;
    let _ = lock.release().await;
    result
}

async fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    lock: &LockGuard,
) -> Result<PruneReport> {
    let grace = chrono::Duration::from_std(opts.grace)
        .map_err(|e| RepoError::invalid(crate::error::BadInput::Parameter, e.to_string()))?;
    let first = scan(repo, lock).await?;
    if !first.refs.unindexed.is_empty() {
        return Err(unindexed_error(&first.refs.unindexed));
    }
    let mut p = plan(&first, lock.id(), grace, opts.dry_run);
    keep_retained(repo, &first, &mut p).await?;
    let mut report = p.report.clone();
    if opts.dry_run {
        return Ok(report);
    }
    let fenced = execute(repo, lock, &first, &p).await?;
    if fenced && grace.is_zero() {
        // Second pass: deletes what was just condemned unless an operation
        // that started before the fence still runs (or used it: rescued).
        let second = scan(repo, lock).await?;
        if !second.refs.unindexed.is_empty() {
            return Err(unindexed_error(&second.refs.unindexed));
        }
        let mut p2 = plan(&second, lock.id(), grace, false);
        keep_retained(repo, &second, &mut p2).await?;
        execute(repo, lock, &second, &p2).await?;
        let r2 = p2.report;
        report.deleted_packs += r2.deleted_packs;
        report.deleted_bytes += r2.deleted_bytes;
        report.deleted_leftovers += r2.deleted_leftovers;
        report.rescued += r2.rescued;
        report.retained = r2.retained;
        report.retained_until = r2.retained_until;
        report.waiting = r2.waiting;
        report.waiting_reasons = r2.waiting_reasons;
        report.snapshots = r2.snapshots;
        report.unused_bytes_in_live_packs = r2.unused_bytes_in_live_packs;
    }
    Ok(report)
}
