//! Restoring a snapshot's stream: fetch blobs in order (neighbouring blobs of
//! a pack in one ranged read), verify each against its id, write.
//! Every blob is authenticated and re-hashed before a byte of it is written,
//! and at the end the digest of the ids written, in order, and the byte
//! count are checked against the snapshot: a restore either writes the exact
//! bytes that were backed up or fails naming the object.
//!
//! Two ways out: [`restore_item`] writes the stream in order to any writer
//! (a pipe into pg_restore, stdout); [`restore_item_to_file`] writes each
//! blob at its offset in a file, from the decoding threads themselves, in
//! whatever order reads complete (staging for a parallel pg_restore: no
//! single writer thread to wait for, no reordering).
//!
//! Memory: what a restore holds is bounded in DECODED bytes ([`InFlight`],
//! [`DECODED_IN_FLIGHT`] by default), whatever the compression ratio. A
//! read is admitted only when its group's decoded size plus its sealed
//! (compressed) size fits in what is left of the bound, and that weight is
//! given back only once its blobs are written; reads are admitted in stream
//! order, so the next blob the writer needs always gets its turn. A 2 MiB
//! compressed read of 50× data decodes to 100 MiB: bounding the number of
//! reads, as before, bounded nothing.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::blobs::short_pack;
/// Kept here too: prune, check and the tests name them `restore::…`.
pub use crate::blobs::{chunk_ids, read_blob};
use crate::error::{Fault, Missing, RepoError, Result};
use crate::format::pack_key;
use crate::index::{BlobLocation, MasterIndex};
use crate::lock::{LockMode, acquire_for_reading};
use crate::pack::{BlobId, decode_blob};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::{Item, SnapshotRef};

/// Largest single ranged read (sealed bytes).
const MAX_READ: u64 = 2 * 1024 * 1024;
/// Largest decoded size of one ranged read's blobs (one blob larger than
/// this is read alone): at 50× compression a `MAX_READ` read would decode
/// to 100 MiB.
const MAX_GROUP_DECODED: u64 = 4 * 1024 * 1024;
/// Ranged reads in flight at most (fewer when the decoded bound is reached).
const READ_CONCURRENCY: usize = 6;
/// Decoded batches waiting for a slow consumer (e.g. pg_restore). What they
/// hold counts against the decoded bound, so the queue only needs to be deep
/// enough to keep the writer busy.
const WRITE_QUEUE: usize = 8;
/// What a restore holds at most by default, in decoded plus sealed bytes of
/// the reads admitted and not yet written: 6 reads of 2 MiB of
/// incompressible data and their queue fit (the throughput of the old
/// count-bounded pipeline), and 8× or 50× data cannot hold more.
pub const DECODED_IN_FLIGHT: u64 = 32 * 1024 * 1024;

/// The bound on a restore's in-flight data, counted in decoded bytes (plus
/// the sealed bytes of a read until its blobs are written), with the
/// counters tests read. One per restore call unless shared on purpose.
///
/// Held at most: `limit`, or one read group alone when a single blob is
/// larger than the limit allows (its weight is clamped to the limit).
pub struct InFlight {
    limit: u64,
    permits: Arc<Semaphore>,
    held: AtomicU64,
    peak: AtomicU64,
    on_full: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl InFlight {
    /// A bound of `limit` bytes (at least 1 KiB; at most 4 GiB).
    pub fn new(limit: u64) -> Arc<Self> {
        let limit = limit.clamp(1024, u32::MAX as u64);
        Arc::new(Self {
            limit,
            permits: Arc::new(Semaphore::new(limit as usize)),
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            on_full: Mutex::new(None),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Decoded (and sealed) bytes admitted and not yet written.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// The most [`held`](Self::held) has been.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }

    /// Calls `f` (from the restore's async task; it must not block) each
    /// time a read has to wait because the bound is reached. For tests: a
    /// deterministic point at which the pipeline is as full as it gets.
    pub fn on_full(&self, f: impl Fn() + Send + Sync + 'static) {
        *self.on_full.lock().expect("on_full lock") = Some(Box::new(f));
    }

    /// The largest decoded size one read group may have under this bound, so
    /// that several groups fit in it.
    fn group_cap(&self) -> u64 {
        MAX_GROUP_DECODED.min(self.limit / 4).max(1)
    }

    /// Waits until `weight` bytes fit, and counts them held until the
    /// returned ticket is dropped.
    async fn admit(self: &Arc<Self>, weight: u64) -> Result<Ticket> {
        let n = weight.clamp(1, self.limit) as u32;
        let permit = match Arc::clone(&self.permits).try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                if let Some(f) = self.on_full.lock().expect("on_full lock").as_ref() {
                    f();
                }
                Arc::clone(&self.permits)
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| RepoError::internal(Fault::Task, "restore memory bound closed"))?
            }
        };
        let now = self.held.fetch_add(weight, Ordering::SeqCst) + weight;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(Ticket {
            _permit: permit,
            budget: Arc::clone(self),
            weight,
        })
    }
}

/// Admitted bytes of one read group; given back when dropped, after the
/// group's blobs are written and freed.
struct Ticket {
    _permit: OwnedSemaphorePermit,
    budget: Arc<InFlight>,
    weight: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.weight, Ordering::SeqCst);
    }
}

/// Consecutive blobs of one pack fetched by one ranged read, each with its
/// offset in the restored stream.
struct ReadGroup {
    pack: String,
    start: u64,
    end: u64,
    blobs: Vec<(BlobLocation, u64)>,
    /// Sum of the blobs' decoded lengths.
    decoded: u64,
}

impl ReadGroup {
    /// What the group holds between its read and its write: the sealed
    /// bytes read and the blobs decoded from them.
    fn weight(&self) -> u64 {
        (self.end - self.start) + self.decoded
    }
}

/// Which blobs of a stream a restore writes: all, or those overlapping a
/// range (trimmed to it), or all but those lying wholly inside some ranges
/// (left as holes in a file).
#[derive(Clone, Debug, Default)]
pub enum Part {
    #[default]
    All,
    Range(std::ops::Range<u64>),
    Except(Vec<std::ops::Range<u64>>),
}

impl Part {
    fn keeps(&self, start: u64, end: u64) -> bool {
        match self {
            Part::All => true,
            Part::Range(r) => start < r.end && end > r.start,
            Part::Except(skip) => !skip.iter().any(|r| r.start <= start && end <= r.end),
        }
    }
}

/// The ranged reads that fetch the blobs of `ids` (a stream's chunks in
/// order) that `part` keeps: neighbours in a pack share a read of at most
/// `MAX_READ` sealed and `max_decoded` decoded bytes.
fn plan_reads(
    index: &MasterIndex,
    ids: &[BlobId],
    part: &Part,
    max_decoded: u64,
) -> Result<Vec<ReadGroup>> {
    let mut groups: Vec<ReadGroup> = Vec::new();
    let mut at = 0u64;
    for id in ids {
        let loc = *index.get(id).ok_or_else(|| {
            RepoError::corrupt(
                format!("blob {}", hex::encode(id)),
                "not in any index (its pack is missing or was pruned)",
            )
        })?;
        let offset = at;
        at += loc.entry.raw_length as u64;
        if !part.keeps(offset, at) {
            continue;
        }
        let pack = &index.pack(&loc).id;
        let (s, e) = (loc.entry.offset, loc.entry.offset + loc.entry.length as u64);
        let raw = loc.entry.raw_length as u64;
        if let Some(g) = groups.last_mut()
            && g.pack == *pack
            && g.end == s
            && e - g.start <= MAX_READ
            && g.decoded + raw <= max_decoded
        {
            g.end = e;
            g.decoded += raw;
            g.blobs.push((loc, offset));
            continue;
        }
        groups.push(ReadGroup {
            pack: pack.clone(),
            start: s,
            end: e,
            blobs: vec![(loc, offset)],
            decoded: raw,
        });
    }
    Ok(groups)
}

/// Checks the chunk list against the snapshot's digest and size before a
/// byte is written (a partial restore cannot check the digest afterwards).
fn check_plan(
    repo: &Repository,
    index: &MasterIndex,
    snap: &SnapshotRef,
    item: &Item,
    ids: &[BlobId],
) -> Result<()> {
    let mut hasher = repo.key().hasher();
    let mut total = 0u64;
    for id in ids {
        hasher.update(id);
        let loc = index.get(id).ok_or_else(|| {
            RepoError::corrupt(
                format!("blob {}", hex::encode(id)),
                "not in any index (its pack is missing or was pruned)",
            )
        })?;
        total += loc.entry.raw_length as u64;
    }
    if hasher.finalize().to_hex().as_str() != item.digest || total != item.size {
        return Err(stream_mismatch(snap, item, total));
    }
    Ok(())
}

/// The item `item_name`, or the snapshot's only/first item.
fn select_item(snap: &SnapshotRef, item_name: Option<&str>) -> Result<Item> {
    match item_name {
        Some(n) => snap
            .snapshot
            .items
            .iter()
            .find(|i| i.name == n)
            .ok_or_else(|| {
                RepoError::not_found(
                    Missing::Item,
                    format!("snapshot {} has no item {n}", snap.short_id()),
                )
            }),
        None => snap.snapshot.items.first().ok_or_else(|| {
            RepoError::not_found(
                Missing::Item,
                format!("snapshot {} holds no items", snap.short_id()),
            )
        }),
    }
    .cloned()
}

/// Writes item `item_name` (or the snapshot's only/first item) to `writer`.
/// Returns the number of bytes written.
pub async fn restore_item<W: Write + Send + 'static>(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
    writer: W,
    progress: Arc<Progress>,
) -> Result<u64> {
    restore_item_part(repo, snap, item_name, &Part::All, writer, progress).await
}

/// Reads item `item_name` whole into memory, verified like any restore:
/// for items known to be small (a stored configuration, a physical
/// snapshot's file list, a kube snapshot's objects).
pub async fn read_item(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
) -> Result<Vec<u8>> {
    let buf = SharedBuf::default();
    restore_item(
        repo,
        snap,
        item_name,
        buf.clone(),
        Arc::new(Progress::default()),
    )
    .await?;
    let bytes = std::mem::take(&mut *buf.0.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(bytes)
}

/// A `Write` into memory that [`read_item`] keeps a handle to (the
/// restore owns the writer it is given).
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `part` of item `item_name` (`Part::All` or a `Part::Range`) to
/// `writer`, in order. Every blob is verified as for a whole restore, and
/// the chunk list is checked against the snapshot before anything is written.
/// Returns the number of bytes written.
pub async fn restore_item_part<W: Write + Send + 'static>(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
    part: &Part,
    writer: W,
    progress: Arc<Progress>,
) -> Result<u64> {
    let bound = InFlight::new(DECODED_IN_FLIGHT);
    restore_item_part_bounded(repo, snap, item_name, part, writer, progress, &bound).await
}

/// [`restore_item_part`] holding at most `bound`'s decoded bytes in flight.
pub async fn restore_item_part_bounded<W: Write + Send + 'static>(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
    part: &Part,
    writer: W,
    progress: Arc<Progress>,
    bound: &Arc<InFlight>,
) -> Result<u64> {
    if matches!(part, Part::Except(_)) {
        return Err(RepoError::internal(
            Fault::Misuse,
            "a stream cannot leave holes; restore to a file",
        ));
    }
    let item = select_item(snap, item_name)?;
    let lock = acquire_for_reading(repo, LockMode::Shared, "restore").await?;
    let result = restore_locked(repo, snap, &item, part, writer, progress, bound).await;
    if let Some(lock) = lock {
        let _ = lock.release().await;
    }
    result
}

/// Writes item `item_name` (or the snapshot's only/first item) into `file`,
/// which should be empty: every blob at its own offset, written by the
/// thread that decoded it, several reads in flight in any order. Before a
/// byte is written the planned chunk list is checked against the snapshot's
/// digest and size, so the file holds exactly the recorded stream when this
/// returns `Ok`; on an error its contents are partial and must be discarded.
/// Returns the number of bytes written.
pub async fn restore_item_to_file(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
    file: std::fs::File,
    progress: Arc<Progress>,
) -> Result<u64> {
    restore_item_part_to_file(repo, snap, item_name, &Part::All, file, progress).await
}

/// Like [`restore_item_to_file`] for `part` of the item: each kept blob at its
/// own offset (`Part::Range` writes whole blobs overlapping the range;
/// `Part::Except` leaves holes where it skips). The file is not extended or
/// truncated. Returns the number of bytes written.
pub async fn restore_item_part_to_file(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
    part: &Part,
    file: std::fs::File,
    progress: Arc<Progress>,
) -> Result<u64> {
    let bound = InFlight::new(DECODED_IN_FLIGHT);
    restore_item_part_to_file_bounded(repo, snap, item_name, part, file, progress, &bound).await
}

/// [`restore_item_part_to_file`] holding at most `bound`'s decoded bytes in
/// flight.
pub async fn restore_item_part_to_file_bounded(
    repo: &Repository,
    snap: &SnapshotRef,
    item_name: Option<&str>,
    part: &Part,
    file: std::fs::File,
    progress: Arc<Progress>,
    bound: &Arc<InFlight>,
) -> Result<u64> {
    let item = select_item(snap, item_name)?;
    let lock = acquire_for_reading(repo, LockMode::Shared, "restore").await?;
    let result = restore_to_file_locked(repo, snap, &item, part, file, progress, bound).await;
    if let Some(lock) = lock {
        let _ = lock.release().await;
    }
    result
}

fn stream_mismatch(snap: &SnapshotRef, item: &Item, n: u64) -> RepoError {
    RepoError::corrupt(
        format!("snapshot {} item {}", snap.short_id(), item.name),
        format!(
            "the restored stream ({n} bytes) does not match what was recorded at backup ({} bytes, digest {})",
            item.size, item.digest
        ),
    )
}

/// Fetches one read group (one ranged read) and decodes its blobs in order
/// on a blocking thread, folding each into `acc` with `sink`. Every blob is
/// authenticated and checked against its id before `sink` sees it.
async fn fetch_group<T, F>(repo: &Repository, g: ReadGroup, acc: T, mut sink: F) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut T, &BlobLocation, u64, Vec<u8>) -> Result<()> + Send + 'static,
{
    let key = pack_key(&g.pack);
    let bytes = repo
        .storage()
        .get_range(&key, g.start..g.end)
        .await
        .map_err(|e| short_pack(&key, e))?;
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || {
        let mut acc = acc;
        for (loc, offset) in &g.blobs {
            let s = (loc.entry.offset - g.start) as usize;
            let sealed = bytes
                .get(s..s + loc.entry.length as usize)
                .ok_or_else(|| RepoError::corrupt(&key, "pack is shorter than its index says"))?;
            let data = decode_blob(
                repo.key(),
                &loc.entry,
                sealed,
                &format!("{key} blob {}", hex::encode(loc.entry.id)),
            )?;
            sink(&mut acc, loc, *offset, data)?;
        }
        Ok(acc)
    })
    .await
    .map_err(|e| RepoError::internal(Fault::Task, format!("decode task: {e}")))?
}

async fn restore_to_file_locked(
    repo: &Repository,
    snap: &SnapshotRef,
    item: &Item,
    part: &Part,
    file: std::fs::File,
    progress: Arc<Progress>,
    bound: &Arc<InFlight>,
) -> Result<u64> {
    use std::os::unix::fs::FileExt;

    let index = Arc::new(repo.load_index().await?);
    let ids = chunk_ids(repo, &index, item).await?;
    // The digest of the ids in order and the total length: the same check
    // restore_item makes after writing, made before.
    check_plan(repo, &index, snap, item, &ids)?;
    let groups = plan_reads(&index, &ids, part, bound.group_cap())?;
    let planned: u64 = groups
        .iter()
        .flat_map(|g| &g.blobs)
        .map(|(l, _)| l.entry.raw_length as u64)
        .sum();

    let file = Arc::new(file);
    // Reads admitted in order while the bound allows, completed in any
    // order; a read's ticket is given back once its blobs are written.
    let mut groups = groups.into_iter();
    let mut next = groups.next();
    let mut reads = FuturesUnordered::new();
    let mut written = 0u64;
    loop {
        if next.is_none() && reads.is_empty() {
            break;
        }
        let room = next.is_some() && reads.len() < READ_CONCURRENCY;
        let weight = next.as_ref().map_or(0, ReadGroup::weight);
        tokio::select! {
            biased;
            Some(r) = reads.next(), if !reads.is_empty() => {
                let (n, ticket): (u64, Ticket) = r?;
                drop(ticket);
                written += n;
                Progress::add(&progress.bytes_read, n);
            }
            ticket = bound.admit(weight), if room => {
                let ticket = ticket?;
                let g = next.take().expect("room means a next group");
                next = groups.next();
                let file = Arc::clone(&file);
                reads.push(async move {
                    let n = fetch_group(repo, g, 0u64, move |n, _, offset, data| {
                        file.write_all_at(&data, offset)
                            .map_err(|e| RepoError::io("writing the restored file", e))?;
                        *n += data.len() as u64;
                        Ok(())
                    })
                    .await?;
                    Ok::<_, RepoError>((n, ticket))
                });
            }
        }
    }
    if written != planned {
        return Err(stream_mismatch(snap, item, written));
    }
    Ok(written)
}

async fn restore_locked<W: Write + Send + 'static>(
    repo: &Repository,
    snap: &SnapshotRef,
    item: &Item,
    part: &Part,
    writer: W,
    progress: Arc<Progress>,
    bound: &Arc<InFlight>,
) -> Result<u64> {
    let index = Arc::new(repo.load_index().await?);
    let ids = chunk_ids(repo, &index, item).await?;
    let range = match part {
        Part::Range(r) => {
            check_plan(repo, &index, snap, item, &ids)?;
            if r.end > item.size || r.start > r.end {
                return Err(RepoError::internal(
                    Fault::Misuse,
                    format!(
                        "bytes {}..{} asked of a stream of {}",
                        r.start, r.end, item.size
                    ),
                ));
            }
            Some(r.clone())
        }
        _ => None,
    };
    let groups = plan_reads(&index, &ids, part, bound.group_cap())?;

    // Writer thread: ordered writes, and the digest of the ids of what it
    // wrote (every blob was verified against its id before it got here).
    // A tokio channel: the async side awaits a free slot instead of blocking
    // its thread (which would keep it from noticing a signal or a timeout
    // while a slow consumer such as a waiting pg_restore holds the writer).
    // Each batch travels with its ticket, given back once it is written.
    type Batch = Vec<(BlobId, u64, Vec<u8>)>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Batch, Ticket)>(WRITE_QUEUE);
    let mut hasher = repo.key().hasher();
    let trim = range.clone();
    let writer_thread = std::thread::Builder::new()
        .name("lifeboat-writer".into())
        .spawn(move || -> std::io::Result<(W, blake3::Hash, u64)> {
            let mut w = writer;
            let mut n = 0u64;
            while let Some((batch, ticket)) = rx.blocking_recv() {
                for (id, offset, b) in batch {
                    hasher.update(&id);
                    let bytes = match &trim {
                        None => &b[..],
                        Some(r) => {
                            let s = r.start.saturating_sub(offset).min(b.len() as u64) as usize;
                            let e = (r.end.saturating_sub(offset)).min(b.len() as u64) as usize;
                            &b[s..e.max(s)]
                        }
                    };
                    w.write_all(bytes)?;
                    n += bytes.len() as u64;
                }
                // The batch's blobs are freed by now (each after its write).
                drop(ticket);
            }
            w.flush()?;
            Ok((w, hasher.finalize(), n))
        })
        .map_err(|e| RepoError::io("starting writer thread", e))?;

    // Reads are admitted in stream order (so the one the writer needs next
    // always holds its ticket: no wait on the bound can deadlock) and
    // complete in that order.
    let mut groups = groups.into_iter();
    let mut next = groups.next();
    let mut reads = FuturesOrdered::new();
    let mut failure = None;
    loop {
        if next.is_none() && reads.is_empty() {
            break;
        }
        let room = next.is_some() && reads.len() < READ_CONCURRENCY;
        let weight = next.as_ref().map_or(0, ReadGroup::weight);
        tokio::select! {
            biased;
            Some(r) = reads.next(), if !reads.is_empty() => match r {
                Ok((batch, ticket)) => {
                    let batch: Batch = batch;
                    let n: u64 = batch.iter().map(|(_, _, b)| b.len() as u64).sum();
                    if tx.send((batch, ticket)).await.is_err() {
                        break; // writer failed; its error is reported below
                    }
                    Progress::add(&progress.bytes_read, n);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            },
            ticket = bound.admit(weight), if room => {
                let ticket = match ticket {
                    Ok(t) => t,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                let g = next.take().expect("room means a next group");
                next = groups.next();
                let batch = Vec::with_capacity(g.blobs.len());
                reads.push_back(async move {
                    let batch = fetch_group(repo, g, batch, |batch: &mut Batch, loc, offset, data| {
                        batch.push((loc.entry.id, offset, data));
                        Ok(())
                    })
                    .await?;
                    Ok::<_, RepoError>((batch, ticket))
                });
            }
        }
    }
    drop(tx);
    drop(reads);
    let written = tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .map_err(|e| RepoError::internal(Fault::Task, format!("writer: {e}")))?
        .map_err(|_| RepoError::internal(Fault::Task, "writer thread panicked"))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let (_w, digest, n) = written.map_err(|e| RepoError::io("writing the restored stream", e))?;
    let whole = match &range {
        None => digest.to_hex().as_str() == item.digest && n == item.size,
        Some(r) => n == r.end - r.start,
    };
    if !whole {
        return Err(stream_mismatch(snap, item, n));
    }
    Ok(n)
}
