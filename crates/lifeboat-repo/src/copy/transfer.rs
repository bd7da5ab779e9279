//! Copying a snapshot into a target that shares the source's blob ids
//! (`init --copy-params-from`): only the blobs the target's index lacks are
//! sent. Each is read from its source pack, authenticated with the source
//! key and re-hashed against its id ([`decode_blob`]), sealed again with
//! the target's own encryption key, and packed; every pack is indexed as
//! soon as it is stored, so a run that is killed leaves what landed indexed
//! and the next run sends only the rest. The snapshot document is written
//! last, unchanged but for its seal.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use crate::blobs::{chunk_ids, short_pack};
use crate::error::{Fault, RepoError, Result};
use crate::format::{INDEX_PREFIX, SNAPSHOTS_PREFIX, pack_key, parse_hex32};
use crate::index::{BlobLocation, MasterIndex, doc_for_packs};
use crate::lock::LockGuard;
use crate::pack::{BlobId, EncodedBlob, PackBuilder, decode_blob, encode_blob};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;

/// The most bytes of a source pack fetched in one request: runs of missing
/// blobs closer than this are read together.
const MAX_SPAN: u64 = 32 << 20;

/// What one snapshot's copy sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Blobs the target lacked, sent now.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Packs written and their stored bytes.
    pub packs: u64,
    pub stored: u64,
}

/// Every blob `snap` needs (its tree blobs and the chunks they list), each
/// once, in the order the items name them.
pub(super) async fn needed_blobs(
    source: &Repository,
    index: &MasterIndex,
    snap: &SnapshotRef,
) -> Result<Vec<BlobId>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for item in &snap.snapshot.items {
        for t in &item.tree {
            let id = parse_hex32(t).ok_or_else(|| {
                RepoError::corrupt(format!("snapshot {}", snap.short_id()), "bad tree id")
            })?;
            if seen.insert(id) {
                out.push(id);
            }
        }
        for id in chunk_ids(source, index, item).await? {
            if seen.insert(id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// Copies `snap`'s missing blobs, then its document, into `target`, whose
/// index (`target_index`, condemned packs left out) is updated as packs land.
pub(super) async fn copy_same_ids(
    source: &Repository,
    source_index: &MasterIndex,
    target: &Repository,
    target_index: &mut MasterIndex,
    lock: &LockGuard,
    snap: &SnapshotRef,
    progress: &Arc<Progress>,
) -> Result<(String, Sent)> {
    let needed = needed_blobs(source, source_index, snap).await?;
    let mut missing: Vec<BlobLocation> = Vec::new();
    for id in &needed {
        if target_index.contains(id) {
            continue;
        }
        let loc = source_index.get(id).ok_or_else(|| {
            RepoError::corrupt(
                format!("blob {}", hex::encode(id)),
                "not in the source's index (its pack is missing or was pruned); run `lifeboat check` on the source",
            )
        })?;
        missing.push(*loc);
    }
    missing.sort_by_key(|l| (l.pack, l.entry.offset));
    let mut writer = PackWriter::new(target, lock);
    let mut start = 0;
    while start < missing.len() {
        let first = missing[start];
        let mut end = start + 1;
        while end < missing.len()
            && missing[end].pack == first.pack
            && missing[end].entry.offset + u64::from(missing[end].entry.length) - first.entry.offset
                <= MAX_SPAN
        {
            end += 1;
        }
        let run = &missing[start..end];
        let blobs = read_run(source, source_index, target, run).await?;
        for b in blobs {
            Progress::add(&progress.bytes_new, u64::from(b.raw_length));
            Progress::add(&progress.new_chunks, 1);
            writer.sent.blobs += 1;
            writer.sent.bytes += u64::from(b.raw_length);
            writer.add(b, target_index).await?;
        }
        start = end;
    }
    writer.flush(target_index).await?;
    lock.confirm().await?;
    let id = target
        .put_doc(SNAPSHOTS_PREFIX, "snapshot", &snap.snapshot)
        .await?;
    Ok((id, writer.sent))
}

/// Fetches one run of blobs of one source pack in a single request, and
/// re-seals each for the target (verified against its id on the way).
async fn read_run(
    source: &Repository,
    source_index: &MasterIndex,
    target: &Repository,
    run: &[BlobLocation],
) -> Result<Vec<EncodedBlob>> {
    let pack = &source_index.pack(&run[0]).id;
    let key = pack_key(pack);
    let from = run[0].entry.offset;
    let last = run[run.len() - 1].entry;
    let to = last.offset + u64::from(last.length);
    let bytes = source
        .storage()
        .get_range(&key, from..to)
        .await
        .map_err(|e| short_pack(&key, e))?;
    let run = run.to_vec();
    let source_key = source.key().clone();
    let target_key = target.key().clone();
    let level = target.config().zstd_level;
    tokio::task::spawn_blocking(move || {
        run.iter()
            .map(|l| {
                let at = (l.entry.offset - from) as usize;
                let sealed = bytes
                    .get(at..at + l.entry.length as usize)
                    .ok_or_else(|| RepoError::corrupt(&key, "shorter than its index says"))?;
                let plain = decode_blob(
                    &source_key,
                    &l.entry,
                    sealed,
                    &format!("{key} blob {}", hex::encode(l.entry.id)),
                )?;
                encode_blob(&target_key, l.entry.id, l.entry.kind, &plain, level)
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| RepoError::internal(Fault::Task, format!("re-sealing blobs: {e}")))?
}

/// Packs blobs for the target and stores each pack with its own index
/// document as soon as it is full.
struct PackWriter<'a> {
    target: &'a Repository,
    lock: &'a LockGuard,
    builder: PackBuilder,
    sent: Sent,
}

impl<'a> PackWriter<'a> {
    fn new(target: &'a Repository, lock: &'a LockGuard) -> Self {
        Self {
            target,
            lock,
            builder: PackBuilder::with_capacity(0),
            sent: Sent::default(),
        }
    }

    async fn add(&mut self, blob: EncodedBlob, index: &mut MasterIndex) -> Result<()> {
        self.builder.add(blob);
        if self.builder.len() as u64 >= self.target.config().pack_size {
            self.flush(index).await?;
        }
        Ok(())
    }

    /// Stores the pack being built (if any), then its index document, and
    /// adds it to `index`.
    async fn flush(&mut self, index: &mut MasterIndex) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        self.lock.ensure_held()?;
        let full = std::mem::replace(&mut self.builder, PackBuilder::with_capacity(0));
        let key = self.target.key().clone();
        let finished = tokio::task::spawn_blocking(move || full.finish(&key))
            .await
            .map_err(|e| RepoError::internal(Fault::Task, format!("finishing a pack: {e}")))??;
        let size = finished.bytes.len() as u64;
        self.target
            .storage()
            .put(&pack_key(&finished.id), Bytes::from(finished.bytes))
            .await?;
        let doc = doc_for_packs(&[(finished.id, size, finished.entries)]);
        self.lock.ensure_held()?;
        let id = self.target.put_doc(INDEX_PREFIX, "index", &doc).await?;
        index.add_doc(&format!("{INDEX_PREFIX}{id}"), &doc)?;
        self.sent.packs += 1;
        self.sent.stored += size;
        Ok(())
    }
}
