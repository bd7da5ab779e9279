//! Deleting data no snapshot needs, safely beside running backups.
//!
//! Prune never blocks backups and backups never block prune. Safety comes
//! from two phases and the storage clock:
//!
//! 1. **Condemn.** Packs none of whose blobs any snapshot references are
//!    listed in a `condemned/` document. From then on, new backups do not
//!    deduplicate against them (see [`crate::backup::BackupSession::start`]).
//! 2. **Delete.** A later prune (or the same one, with a zero grace period)
//!    deletes a condemned pack only when (a) the grace period has passed since
//!    it was condemned, (b) no live lock is older than the condemnation (an
//!    operation that started before might still use the pack), and (c) it is
//!    still unreferenced (a backup that started earlier may have used it:
//!    then it is rescued).
//!
//! Packs that no index lists (left by an interrupted backup) are deleted when
//! older than the grace period and no live lock predates them (the backup
//! writing them would hold such a lock).
//!
//! Deletion order is crash-safe: the consolidated index (without deleted
//! packs) is written first, then old index documents go, then the packs.

use std::collections::{BTreeMap, HashMap, HashSet};
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
use crate::lock::{LockEntry, LockMode, acquire, list_locks};
use crate::pack::BlobId;
use crate::repo::Repository;
use crate::restore::chunk_ids;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondemnedDoc {
    pub version: u64,
    pub packs: Vec<String>,
    /// When these packs were first condemned (absent: the document's own
    /// storage time). Kept when documents are rewritten, so rewriting does
    /// not restart the grace period.
    #[serde(default)]
    pub condemned_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct CondemnedEntry {
    pub key: String,
    pub doc: CondemnedDoc,
    pub since: DateTime<Utc>,
}

pub async fn load_condemned(repo: &Repository) -> Result<Vec<CondemnedEntry>> {
    let mut out = Vec::new();
    for o in repo.storage().list(CONDEMNED_PREFIX).await? {
        match repo.get_doc::<CondemnedDoc>(&o.key, "condemned").await {
            Ok(doc) => out.push(CondemnedEntry {
                since: doc.condemned_at.unwrap_or(o.last_modified),
                key: o.key,
                doc,
            }),
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
    /// Bytes of unreferenced blobs inside packs that are still partly used.
    pub unused_bytes_in_live_packs: u64,
    pub dry_run: bool,
}

/// Every blob some snapshot needs: tree blobs and the chunks they list.
pub async fn referenced_blobs(
    repo: &Repository,
    index: &MasterIndex,
) -> Result<(usize, HashSet<BlobId>)> {
    let snaps = repo.snapshots().await?;
    let mut used = HashSet::new();
    for s in &snaps {
        for item in &s.snapshot.items {
            for t in &item.tree {
                if let Some(id) = parse_hex32(t) {
                    used.insert(id);
                }
            }
            let ids = chunk_ids(repo, index, item).await.map_err(|e| {
                RepoError::corrupt(
                    format!("snapshot {}", s.short_id()),
                    format!("cannot read its chunk list ({e}); prune stops rather than guess. Run `lifeboat check`"),
                )
            })?;
            used.extend(ids);
        }
    }
    Ok((snaps.len(), used))
}

/// Locks held by others that are still alive.
fn live_others<'a>(locks: &'a [LockEntry], own: &str) -> impl Iterator<Item = &'a LockEntry> {
    locks
        .iter()
        .filter(move |l| !l.stale && id_of_key(&l.key) != own)
}

pub async fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let lock = acquire(repo, LockMode::Exclusive, "prune").await?;
    let result = prune_locked(repo, opts, lock.id(), lock.created()).await;
    let _ = lock.release().await;
    result
}

async fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    own_lock: &str,
    now: DateTime<Utc>,
) -> Result<PruneReport> {
    let storage = repo.storage();
    let grace =
        chrono::Duration::from_std(opts.grace).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };

    // Order matters: index before listing packs, so a pack indexed meanwhile
    // looks unindexed (and is protected by its writer's lock) rather than
    // the other way round.
    let index_docs = repo.load_index_docs().await?;
    let mut index = MasterIndex::default();
    for (k, d) in &index_docs {
        index.add_doc(k, d)?;
    }
    let condemned = load_condemned(repo).await?;
    let (nsnap, used) = referenced_blobs(repo, &index).await?;
    report.snapshots = nsnap;
    let stored_packs: HashMap<String, crate::storage::ObjectInfo> = storage
        .list(DATA_PREFIX)
        .await?
        .into_iter()
        .map(|o| (id_of_key(&o.key).to_string(), o))
        .collect();
    let locks = list_locks(repo, now).await?;
    report.packs_total = stored_packs.len();

    // Which indexed packs hold referenced blobs (any copy counts).
    let mut live_packs: HashSet<String> = HashSet::new();
    let mut pack_unused: HashMap<String, u64> = HashMap::new();
    for (_, doc) in &index_docs {
        for p in &doc.packs {
            for b in &p.blobs {
                let referenced = parse_hex32(&b.id).is_some_and(|id| used.contains(&id));
                if referenced {
                    live_packs.insert(p.id.clone());
                } else {
                    *pack_unused.entry(p.id.clone()).or_default() += b.length as u64;
                }
            }
        }
    }
    for (p, unused) in &pack_unused {
        if live_packs.contains(p) {
            report.unused_bytes_in_live_packs += unused;
        }
    }

    let older_lock = |t: DateTime<Utc>| {
        live_others(&locks, own_lock)
            .find(|l| l.doc.created <= t)
            .cloned()
    };
    let mut to_delete: HashSet<String> = HashSet::new();
    let mut still_condemned: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    let mut already_condemned: HashSet<String> = HashSet::new();

    // Phase 2 for earlier condemnations.
    for c in &condemned {
        for p in &c.doc.packs {
            already_condemned.insert(p.clone());
            if !stored_packs.contains_key(p) {
                continue; // deleted already
            }
            if live_packs.contains(p) {
                report.rescued += 1;
                continue;
            }
            if now - c.since < grace {
                report.waiting += 1;
                still_condemned.entry(c.since).or_default().push(p.clone());
            } else if let Some(l) = older_lock(c.since) {
                report.waiting += 1;
                report.waiting_reasons.push(format!(
                    "pack {} waits for {}",
                    &p[..12],
                    l.describe()
                ));
                still_condemned.entry(c.since).or_default().push(p.clone());
            } else {
                to_delete.insert(p.clone());
            }
        }
    }

    // Phase 1: newly unreferenced indexed packs.
    let newly: Vec<String> = index
        .packs
        .iter()
        .map(|p| p.id.clone())
        .filter(|p| {
            !live_packs.contains(p)
                && !already_condemned.contains(p)
                && stored_packs.contains_key(p)
        })
        .collect();
    report.condemned = newly.len();
    if !newly.is_empty() {
        // Their condemnation time is now (the storage clock, from our lock).
        if grace.is_zero() && older_lock(now).is_none() {
            to_delete.extend(newly.iter().cloned());
        } else {
            report.waiting += newly.len();
            if let Some(l) = older_lock(now) {
                report.waiting_reasons.push(format!(
                    "{} newly condemned packs wait for {}",
                    newly.len(),
                    l.describe()
                ));
            }
            still_condemned
                .entry(now)
                .or_default()
                .extend(newly.iter().cloned());
        }
    }

    // Packs no index lists.
    for (id, info) in &stored_packs {
        if index.has_pack(id) || already_condemned.contains(id) {
            continue;
        }
        if now - info.last_modified < grace {
            report.waiting += 1;
        } else if let Some(l) = older_lock(info.last_modified) {
            report.waiting += 1;
            report.waiting_reasons.push(format!(
                "unindexed pack {} waits for {}",
                &id[..12],
                l.describe()
            ));
        } else {
            to_delete.insert(id.clone());
            report.deleted_leftovers += 1;
        }
    }

    report.deleted_packs = to_delete.len();
    report.deleted_bytes = to_delete
        .iter()
        .filter_map(|p| stored_packs.get(p))
        .map(|o| o.size)
        .sum();
    report.waiting_reasons.sort();
    report.waiting_reasons.dedup();
    if opts.dry_run {
        return Ok(report);
    }

    // 1. Condemned list as it now stands (new before old, so a crash leaves a superset).
    let rewrite_condemned = report.condemned > 0 || !condemned.is_empty();
    if rewrite_condemned {
        for (since, packs) in &still_condemned {
            let doc = CondemnedDoc {
                version: DOC_VERSION,
                packs: packs.clone(),
                condemned_at: Some(*since),
            };
            let bytes = seal_doc(repo.key(), "condemned", &doc)?;
            let key = format!("{CONDEMNED_PREFIX}{}", storage_id(&bytes));
            storage.put(&key, Bytes::from(bytes)).await?;
        }
    }
    let removed_index_packs: HashSet<&String> =
        to_delete.iter().filter(|p| index.has_pack(p)).collect();
    // 2. Consolidated index without deleted packs, then the old documents.
    if !removed_index_packs.is_empty() {
        let touched: HashSet<&String> = index_docs
            .iter()
            .filter(|(_, d)| d.packs.iter().any(|p| removed_index_packs.contains(&p.id)))
            .map(|(k, _)| k)
            .collect();
        let mut keep = IndexDoc {
            version: DOC_VERSION,
            packs: Vec::new(),
        };
        for (k, d) in &index_docs {
            if touched.contains(k) {
                keep.packs.extend(
                    d.packs
                        .iter()
                        .filter(|p| !removed_index_packs.contains(&p.id))
                        .cloned(),
                );
            }
        }
        if !keep.packs.is_empty() {
            repo.put_doc(INDEX_PREFIX, "index", &keep).await?;
        }
        for k in touched {
            storage.delete(k).await?;
        }
    }
    // 3. The packs.
    for p in &to_delete {
        if let Some(o) = stored_packs.get(p) {
            storage.delete(&o.key).await?;
        }
    }
    // 4. Old condemned documents (their surviving packs were rewritten above).
    if rewrite_condemned {
        for c in &condemned {
            storage.delete(&c.key).await?;
        }
    }
    Ok(report)
}
