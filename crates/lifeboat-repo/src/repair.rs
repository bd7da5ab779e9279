//! `repair index`: rebuilds the index from the packs' own headers.
//!
//! Every pack ends with a sealed header listing its blobs (`pack`), so the
//! index can always be rebuilt from the packs alone, e.g. after an `index/`
//! document was deleted or damaged (then `check` reports a snapshot's blobs
//! as not indexed, and `prune` refuses to run).
//!
//! Order, safe to interrupt at any point: list the old index documents;
//! list the packs and read every header (two small range reads per pack);
//! write new index documents covering every blob found; only then remove the
//! old documents that were listed at the start. Until the last step the old
//! documents stay, so no blob that was indexed is ever unindexed; documents a
//! concurrent backup writes meanwhile are not touched (they only duplicate
//! entries, which the index allows).
//!
//! A pack whose header cannot be read keeps the entries the old index had
//! for it (if any) and is reported; `check --read-data` says more. An
//! indexed pack that is gone from storage is dropped and reported.
//!
//! Takes an exclusive lock: no prune (which consolidates the index) or
//! check runs meanwhile; backups and restores carry on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::format::{DATA_PREFIX, DOC_VERSION, INDEX_PREFIX, id_of_key};
use crate::index::{IndexDoc, IndexPack};
use crate::lock::{LockMode, acquire};
use crate::pack::{BlobEntry, BlobRecord, read_header};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::storage::ObjectInfo;

/// Packs per new index document (a 16 MiB pack of 64 KiB chunks lists about
/// 250 blobs, ~40 KB of JSON before compression).
const PACKS_PER_DOC: usize = 256;
/// Headers read at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct PackProblem {
    pub pack: String,
    pub detail: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RepairIndexReport {
    /// Packs in storage.
    pub packs: usize,
    /// Blobs the new index lists.
    pub blobs: usize,
    /// Packs no old index document listed (now indexed).
    pub packs_newly_indexed: usize,
    pub index_files_written: usize,
    pub index_files_removed: usize,
    /// Old index documents that could not be read (removed too).
    pub unreadable_index_files: Vec<String>,
    /// Packs whose header could not be read: kept with their old entries
    /// when the old index had them, otherwise not indexed.
    pub unreadable_packs: Vec<PackProblem>,
    /// Packs the old index listed that are not in storage (dropped).
    pub missing_packs: Vec<String>,
}

/// Reads and authenticates a stored pack's header with two range reads.
pub async fn read_pack_header(repo: &Repository, o: &ObjectInfo) -> Result<Vec<BlobEntry>> {
    let storage = repo.storage();
    if o.size < 4 {
        return Err(RepoError::corrupt(&o.key, "pack too short"));
    }
    let tail = storage.get_range(&o.key, o.size - 4..o.size).await?;
    let hlen = u32::from_le_bytes(
        tail[..]
            .try_into()
            .map_err(|_| RepoError::corrupt(&o.key, "short read of the header length"))?,
    ) as u64;
    if hlen + 4 > o.size {
        return Err(RepoError::corrupt(
            &o.key,
            "pack header length out of range",
        ));
    }
    let start = o.size - 4 - hlen;
    let bytes = storage.get_range(&o.key, start..o.size).await?;
    let entries = read_header(repo.key(), &bytes, &o.key)?;
    for e in &entries {
        if e.offset + e.length as u64 > start {
            return Err(RepoError::corrupt(
                &o.key,
                format!("header lists blob {} outside the pack", hex::encode(e.id)),
            ));
        }
    }
    Ok(entries)
}

pub async fn repair_index(repo: &Repository, progress: Arc<Progress>) -> Result<RepairIndexReport> {
    repo.ensure_may_delete("repair index")?;
    let lock = acquire(repo, LockMode::Exclusive, "repair index").await?;
    let r = repair_locked(repo, progress).await;
    let _ = lock.release().await;
    r
}

async fn repair_locked(repo: &Repository, progress: Arc<Progress>) -> Result<RepairIndexReport> {
    let storage = repo.storage();
    let mut report = RepairIndexReport::default();

    // 1. The old index, read as far as it can be.
    let old_keys: Vec<String> = storage
        .list(INDEX_PREFIX)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut old: HashMap<String, IndexPack> = HashMap::new();
    for k in &old_keys {
        match repo.get_doc::<IndexDoc>(k, "index").await {
            Ok(d) => {
                for p in d.packs {
                    old.entry(p.id.clone()).or_insert(p);
                }
            }
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(RepoError::Storage(e)) => return Err(e.into()),
            Err(e) => report.unreadable_index_files.push(format!("{k}: {e}")),
        }
    }

    // 2. Every pack's header.
    let stored = storage.list(DATA_PREFIX).await?;
    report.packs = stored.len();
    let mut results = futures::stream::iter(stored.into_iter().map(|o| {
        let repo = repo.clone();
        let progress = Arc::clone(&progress);
        async move {
            let r = read_pack_header(&repo, &o).await;
            Progress::add(&progress.bytes_read, o.size);
            (o, r)
        }
    }))
    .buffer_unordered(CONCURRENCY);
    let mut packs: BTreeMap<String, IndexPack> = BTreeMap::new();
    let mut present: HashMap<String, ()> = HashMap::new();
    while let Some((o, r)) = results.next().await {
        let id = id_of_key(&o.key).to_string();
        present.insert(id.clone(), ());
        match r {
            Ok(entries) => {
                if !old.contains_key(&id) {
                    report.packs_newly_indexed += 1;
                }
                packs.insert(
                    id.clone(),
                    IndexPack {
                        id,
                        size: o.size,
                        blobs: entries.iter().map(BlobRecord::from).collect(),
                    },
                );
            }
            Err(RepoError::Storage(e)) if e.is_not_found() => {
                // Deleted meanwhile (a leftover removed by hand): nothing to index.
            }
            Err(RepoError::Storage(e)) => return Err(e.into()),
            Err(e) => {
                report.unreadable_packs.push(PackProblem {
                    pack: o.key.clone(),
                    detail: e.to_string(),
                });
                if let Some(p) = old.get(&id) {
                    packs.insert(id, p.clone());
                }
            }
        }
    }
    report.missing_packs = old
        .keys()
        .filter(|id| !present.contains_key(*id))
        .cloned()
        .collect();
    report.missing_packs.sort();
    report.unreadable_packs.sort_by(|a, b| a.pack.cmp(&b.pack));
    report.blobs = packs.values().map(|p| p.blobs.len()).sum();

    // 3. New documents first...
    let all: Vec<IndexPack> = packs.into_values().collect();
    let mut written = Vec::new();
    for chunk in all.chunks(PACKS_PER_DOC) {
        let doc = IndexDoc {
            version: DOC_VERSION,
            packs: chunk.to_vec(),
        };
        let id = repo.put_doc(INDEX_PREFIX, "index", &doc).await?;
        written.push(format!("{INDEX_PREFIX}{id}"));
    }
    report.index_files_written = written.len();
    // 4. ...then the old ones they replace.
    for k in &old_keys {
        if !written.contains(k) {
            storage.delete(k).await?;
            report.index_files_removed += 1;
        }
    }
    Ok(report)
}
