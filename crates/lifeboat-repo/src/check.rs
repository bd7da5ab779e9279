//! Repository integrity checks.
//!
//! `check` verifies structure: marker, config, key slots, every index and
//! snapshot document (decrypted and re-hashed), that every pack an index
//! lists exists with the right size, and that every blob a snapshot needs
//! is indexed. `check --read-data` also downloads every pack, re-hashes it
//! against its name, authenticates its header and every blob, and compares
//! the header with the index. Every problem names the object. WAL objects
//! are counted and, with `--read-data`, verified too (`wal::check`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use serde::Serialize;

use crate::blobs::chunk_ids;
use crate::condemned::CondemnedDoc;
use crate::error::{RepoError, Result};
use crate::format::{
    CONDEMNED_PREFIX, DATA_PREFIX, INDEX_PREFIX, SNAPSHOTS_PREFIX, id_of_key, pack_key,
    parse_hex32, verify_storage_id,
};
use crate::index::{IndexDoc, MasterIndex};
use crate::lock::{LockMode, acquire_for_reading};
use crate::pack::{BlobEntry, decode_blob, read_header};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::{Item, Snapshot};
pub use crate::subset::DataSubset;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The object at fault (storage key, or snapshot/blob description).
    pub object: String,
    pub detail: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub index_files: usize,
    pub packs: usize,
    pub blobs: usize,
    /// Bytes downloaded and verified (with `--read-data`).
    pub bytes_verified: u64,
    /// Packs no index lists: left by interrupted backups (prune removes
    /// them) unless `unindexed_blobs` > 0, when an index document is lost
    /// and `lifeboat repair index` must run before any prune.
    pub unindexed_packs: usize,
    /// Blobs that snapshots need and no index lists (a tree blob that is
    /// not indexed counts once). Prune refuses to run while this is not 0.
    pub unindexed_blobs: usize,
    /// Packs condemned by prune, waiting for deletion (not checked).
    pub condemned_packs: usize,
    pub errors: Vec<Problem>,
    pub read_data: bool,
    /// WAL objects (`wal/`, `wal-partial/`), and how many were read back
    /// and verified (`crate::wal::check`).
    pub wal_objects: usize,
    pub wal_verified: usize,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn problem(&mut self, object: impl Into<String>, detail: impl std::fmt::Display) {
        self.errors.push(Problem {
            object: object.into(),
            detail: detail.to_string(),
        });
    }

    fn record_error(&mut self, fallback: &str, e: RepoError) {
        match e {
            RepoError::Corrupt { object, detail } => self.problem(object, detail),
            other => self.problem(fallback, other),
        }
    }
}

/// What to do about snapshot blobs that no index lists.
const REPAIR_HINT: &str = "; an index document is missing or damaged: run `lifeboat repair index` (it rebuilds the index from the packs' headers) and do not prune before, or prune would take the packs holding them for unused";

pub async fn check(
    repo: &Repository,
    read_data: bool,
    progress: Arc<Progress>,
) -> Result<CheckReport> {
    check_subset(repo, read_data, None, progress).await
}

/// [`check`] reading only `subset` of the packs with `read_data`
/// (`--read-data-subset`); `None`: all of them.
pub async fn check_subset(
    repo: &Repository,
    read_data: bool,
    subset: Option<DataSubset>,
    progress: Arc<Progress>,
) -> Result<CheckReport> {
    // Exclusive: prune must not delete packs while we look at them (a
    // read-only repository cannot be pruned meanwhile by anyone who could
    // not write a lock either; see docs/format.md).
    let lock = acquire_for_reading(repo, LockMode::Exclusive, "check").await?;
    let r = check_locked(repo, read_data, subset, progress).await;
    if let Some(lock) = lock {
        // A check that lost its lock may report packs a prune deleted meanwhile.
        let held = lock.ensure_held();
        let _ = lock.release().await;
        held?;
    }
    r
}

/// The checks in order: repository documents, index, condemned lists,
/// packs against the index, snapshots against the index, then (with
/// `read_data`) the packs' contents.
async fn check_locked(
    repo: &Repository,
    read_data: bool,
    subset: Option<DataSubset>,
    progress: Arc<Progress>,
) -> Result<CheckReport> {
    let mut report = CheckReport {
        read_data,
        ..Default::default()
    };
    check_repository_documents(repo, &mut report).await?;
    let (index, indexed_entries) = load_index(repo, &mut report).await?;
    let condemned = load_condemned(repo, &mut report).await?;
    let stored = check_packs(repo, &index, &condemned, &mut report).await?;
    check_snapshots(repo, &index, &mut report).await?;
    if read_data {
        let packs: Vec<(String, String)> = stored
            .iter()
            .filter(|(id, _)| !condemned.contains(*id))
            .filter(|(id, _)| subset.is_none_or(|s| s.contains(id)))
            .map(|(id, (key, _))| (id.clone(), key.clone()))
            .collect();
        read_packs(repo, packs, indexed_entries, &progress, &mut report).await;
    }
    check_wal(repo, read_data, subset, &progress, &mut report).await?;
    Ok(report)
}

/// The WAL objects (`crate::wal::check`): counted; with `read_data`
/// every one (of `subset`) read back and verified.
async fn check_wal(
    repo: &Repository,
    read_data: bool,
    subset: Option<DataSubset>,
    progress: &Arc<Progress>,
    report: &mut CheckReport,
) -> Result<()> {
    let wal = crate::wal::check::check_objects(repo, read_data, subset, progress).await?;
    report.wal_objects = wal.objects;
    report.wal_verified = wal.verified;
    report.bytes_verified += wal.bytes_verified;
    for (object, detail) in wal.problems {
        report.problem(object, detail);
    }
    Ok(())
}

/// Marker, config and key slots.
async fn check_repository_documents(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    if let Err(e) = repo.verify_marker_and_config().await {
        report.record_error("lifeboat.repo", e);
    }
    for k in repo.verify_key_slots().await? {
        report.problem(k, "key slot fails its MAC (modified or damaged)");
    }
    Ok(())
}

/// Every index document, decrypted and loaded: the master index, and each
/// pack's entries as the index lists them (for `--read-data`'s comparison
/// with the pack headers).
async fn load_index(
    repo: &Repository,
    report: &mut CheckReport,
) -> Result<(MasterIndex, HashMap<String, Vec<BlobEntry>>)> {
    let mut index = MasterIndex::default();
    let mut indexed_entries: HashMap<String, Vec<BlobEntry>> = HashMap::new();
    for o in repo.storage().list(INDEX_PREFIX).await? {
        report.index_files += 1;
        match repo.get_doc::<IndexDoc>(&o.key, "index").await {
            Ok(doc) => {
                if let Err(e) = index.add_doc(&o.key, &doc) {
                    report.record_error(&o.key, e);
                }
                for p in &doc.packs {
                    let entries = indexed_entries.entry(p.id.clone()).or_default();
                    for b in &p.blobs {
                        match b.to_entry(&o.key) {
                            Ok(e) => entries.push(e),
                            Err(e) => report.record_error(&o.key, e),
                        }
                    }
                }
            }
            Err(e) => report.record_error(&o.key, e),
        }
    }
    report.blobs = index.blob_count();
    Ok((index, indexed_entries))
}

/// The packs prune has condemned (not checked: they are on their way out).
async fn load_condemned(repo: &Repository, report: &mut CheckReport) -> Result<HashSet<String>> {
    let mut condemned: HashSet<String> = HashSet::new();
    for o in repo.storage().list(CONDEMNED_PREFIX).await? {
        match repo.get_doc::<CondemnedDoc>(&o.key, "condemned").await {
            Ok(d) => condemned.extend(d.packs),
            Err(e) => report.record_error(&o.key, e),
        }
    }
    Ok(condemned)
}

/// Packs present against packs indexed: missing, wrong size, wrong place;
/// counts the unindexed and condemned ones. Returns the stored packs, by id:
/// (storage key, size).
async fn check_packs(
    repo: &Repository,
    index: &MasterIndex,
    condemned: &HashSet<String>,
    report: &mut CheckReport,
) -> Result<HashMap<String, (String, u64)>> {
    let stored: HashMap<String, (String, u64)> = repo
        .storage()
        .list(DATA_PREFIX)
        .await?
        .into_iter()
        .map(|o| (id_of_key(&o.key).to_string(), (o.key, o.size)))
        .collect();
    report.packs = stored.len();
    for p in &index.packs {
        match stored.get(&p.id) {
            None if condemned.contains(&p.id) => {}
            None => report.problem(
                pack_key(&p.id),
                format!("listed in {} but missing from storage", p.index_file),
            ),
            Some((_, size)) if *size != p.size => report.problem(
                pack_key(&p.id),
                format!("size is {size} bytes, {} says {}", p.index_file, p.size),
            ),
            Some((key, _)) if *key != pack_key(&p.id) => {
                report.problem(key.clone(), "pack stored under the wrong directory")
            }
            _ => {}
        }
    }
    report.unindexed_packs = stored.keys().filter(|p| !index.has_pack(p)).count();
    report.condemned_packs = stored.keys().filter(|p| condemned.contains(*p)).count();
    Ok(stored)
}

/// Every snapshot document, and whether the index lists every blob its
/// items need.
async fn check_snapshots(
    repo: &Repository,
    index: &MasterIndex,
    report: &mut CheckReport,
) -> Result<()> {
    for o in repo.storage().list(SNAPSHOTS_PREFIX).await? {
        report.snapshots += 1;
        let snap: Snapshot = match repo.get_doc(&o.key, "snapshot").await {
            Ok(s) => s,
            Err(e) => {
                report.record_error(&o.key, e);
                continue;
            }
        };
        for item in &snap.items {
            check_item(repo, index, &o.key, item, report).await;
        }
    }
    Ok(())
}

/// Whether the index lists an item's tree blobs, then its chunks.
async fn check_item(
    repo: &Repository,
    index: &MasterIndex,
    snapshot_key: &str,
    item: &Item,
    report: &mut CheckReport,
) {
    let missing = item
        .tree
        .iter()
        .filter(|t| parse_hex32(t).is_none_or(|id| !index.contains(&id)))
        .count();
    if missing > 0 {
        report.unindexed_blobs += missing;
        report.problem(
            snapshot_key,
            format!(
                "item {}: {missing} tree blobs are not indexed{REPAIR_HINT}",
                item.name
            ),
        );
        return;
    }
    match chunk_ids(repo, index, item).await {
        Ok(ids) => {
            let missing = ids.iter().filter(|id| !index.contains(id)).count();
            if missing > 0 {
                report.unindexed_blobs += missing;
                report.problem(
                    snapshot_key,
                    format!(
                        "item {}: {missing} chunks are not indexed{REPAIR_HINT}",
                        item.name
                    ),
                );
            }
        }
        Err(e) => report.record_error(snapshot_key, e),
    }
}

/// `--read-data`: downloads `packs` (id, key), four at a time, and verifies
/// each ([`verify_pack`]) against the entries the index lists for it.
async fn read_packs(
    repo: &Repository,
    packs: Vec<(String, String)>,
    indexed_entries: HashMap<String, Vec<BlobEntry>>,
    progress: &Progress,
    report: &mut CheckReport,
) {
    let indexed = Arc::new(indexed_entries);
    let mut results = futures::stream::iter(packs.into_iter().map(|(id, key)| {
        let repo = repo.clone();
        let indexed = Arc::clone(&indexed);
        async move {
            let bytes = match repo.storage().get(&key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => return (0, Vec::new()),
                Err(e) => {
                    return (
                        0,
                        vec![Problem {
                            object: key,
                            detail: e.to_string(),
                        }],
                    );
                }
            };
            let n = bytes.len() as u64;
            let problems = tokio::task::spawn_blocking(move || {
                verify_pack(&repo, &key, &bytes, indexed.get(&id))
            })
            .await
            .unwrap_or_else(|e| {
                vec![Problem {
                    object: "check".into(),
                    detail: e.to_string(),
                }]
            });
            (n, problems)
        }
    }))
    .buffer_unordered(4);
    while let Some((n, problems)) = results.next().await {
        report.bytes_verified += n;
        progress.bytes_read.fetch_add(n, Ordering::Relaxed);
        report.errors.extend(problems);
    }
}

fn verify_pack(
    repo: &Repository,
    key: &str,
    bytes: &[u8],
    indexed: Option<&Vec<BlobEntry>>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |detail: String| {
        problems.push(Problem {
            object: key.to_string(),
            detail,
        })
    };
    if let Err(RepoError::Corrupt { detail, .. }) = verify_storage_id(key, bytes) {
        problem(detail);
    }
    let header = match read_header(repo.key(), bytes, key) {
        Ok(h) => h,
        Err(e) => {
            problem(format!("{e}"));
            return problems;
        }
    };
    for e in &header {
        let end = e.offset as usize + e.length as usize;
        let Some(sealed) = bytes.get(e.offset as usize..end) else {
            problem(format!("blob {} lies outside the pack", hex::encode(e.id)));
            continue;
        };
        if let Err(err) = decode_blob(repo.key(), e, sealed, key) {
            problem(format!("blob {}: {err}", hex::encode(e.id)));
        }
    }
    if let Some(indexed) = indexed {
        let in_header: HashSet<_> = header.iter().map(|e| (e.id, e.offset, e.length)).collect();
        for e in indexed {
            if !in_header.contains(&(e.id, e.offset, e.length)) {
                problem(format!(
                    "the index lists blob {} that the pack header does not",
                    hex::encode(e.id)
                ));
            }
        }
    }
    problems
}
