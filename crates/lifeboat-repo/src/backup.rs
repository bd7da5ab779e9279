//! Backing up byte streams: chunk, deduplicate, compress, encrypt, pack,
//! upload; then the index; then the snapshot.
//!
//! The pipeline uses every core while holding at most a few packs and two
//! byte-bounded queues of chunks in memory; what grows with the stream is
//! only its chunk list (32 bytes a chunk) and the session's dedup set:
//!
//! ```text
//! reader ─► chunker thread ─► workers (BLAKE3 id, dedup,  ─► packer ─► uploads
//!           (FastCDC cuts,    zstd + AES-GCM if new)         (async)   (≤ 2 at once)
//!            sequence no.)    (one per core)
//!                 ▲                 │
//!                 └── (seq, id) ────┘  chunk ids, put back in stream order
//! ```
//!
//! The chunker thread only cuts: hashing every chunk there made it the
//! pipeline's serial stage. Workers take chunks in any order; each reports
//! its chunk's id with the chunk's sequence number, so the item's chunk list
//! stays in stream order. Deduplication stays exact: a chunk is stored only
//! by the worker that first inserts its id into the session's `seen` set
//! (under a mutex), so identical chunks in flight at once are stored once.
//!
//! A crash at any point leaves at most packs that no index lists (or that no
//! snapshot references); `prune` removes those after its grace period.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use tokio::task::JoinSet;

use crate::chunker::{Chunker, READ_BUFFER};
use crate::crypto::MasterKey;
use crate::error::{Fault, RepoError, Result};
use crate::format::{DOC_VERSION, INDEX_PREFIX, SNAPSHOTS_PREFIX, hex32, pack_key};
use crate::index::{MasterIndex, doc_for_packs};
use crate::keys::{hostname, username};
use crate::lock::{LockGuard, LockMode, acquire};
use crate::pack::{BlobEntry, BlobId, BlobKind, EncodedBlob, PackBuilder, encode_blob};
/// Kept here too: the binary and the tests name it `backup::Progress`.
pub use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::{BackupStats, Item, SCOPED_SNAPSHOT_VERSION, Scope, Snapshot, SnapshotRef};

/// Chunk ids per tree blob (2 MiB of ids).
const IDS_PER_TREE_BLOB: usize = 65_536;
/// Chunks (and sealed blobs) queued per worker: deep enough that a worker
/// rarely waits while the chunker or the packer is descheduled...
const QUEUE_PER_WORKER: usize = 8;
/// ...but never more than this many bytes of maximum-size chunks per queue,
/// so memory does not grow with the core count or with `--chunk-avg`.
const QUEUE_BYTES: usize = 8 << 20;

/// Entries of each pipeline queue (chunk jobs, sealed blobs): 16 on two
/// cores with the default 512 KiB maximum chunk, never under 2.
fn queue_depth(workers: usize, max_chunk: usize) -> usize {
    (workers * QUEUE_PER_WORKER)
        .min(QUEUE_BYTES / max_chunk.max(1))
        .max(2)
}
/// Packs uploaded concurrently.
const UPLOAD_CONCURRENCY: usize = 2;

/// What the snapshot should say about itself.
#[derive(Debug, Clone, Default)]
pub struct SnapshotMeta {
    pub source: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub facts: serde_json::Value,
}

/// One backup in progress: add streams, then [`BackupSession::commit`].
/// Dropping it without committing leaves no snapshot.
pub struct BackupSession {
    repo: Repository,
    index: Arc<MasterIndex>,
    /// Ids stored by this session so far (all its streams).
    seen: Arc<Mutex<HashSet<BlobId>>>,
    packs: Vec<(String, u64, Vec<BlobEntry>)>,
    items: Vec<Item>,
    progress: Arc<Progress>,
    started: Instant,
    lock: LockGuard,
    /// Write an index document for each pack as it lands, not one at the
    /// end ([`BackupSession::index_every_pack`]); the ids of packs indexed so.
    index_every_pack: bool,
    indexed: HashSet<String>,
}

/// Work for the workers.
enum Job {
    /// The `seq`-th chunk of the stream: hash it, report its id, store it if new.
    Chunk { seq: usize, data: Vec<u8> },
    /// A piece of the chunk list, already hashed by the chunker: store it if new.
    Tree { id: BlobId, data: Vec<u8> },
}

struct ChunkerResult {
    tree: Vec<String>,
    size: u64,
    chunks: u64,
    digest: String,
}

/// Whether `id` is to be stored: not in the repository, and not stored by
/// this session yet (this call claims it).
fn claim(index: &MasterIndex, seen: &Mutex<HashSet<BlobId>>, id: BlobId) -> bool {
    !index.contains(&id)
        && seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id)
}

impl BackupSession {
    /// Takes a shared lock and loads the index (minus condemned packs, which
    /// a concurrent prune may delete, so nothing new may refer to them).
    pub async fn start(repo: &Repository, progress: Arc<Progress>) -> Result<Self> {
        Self::start_as(repo, progress, "backup").await
    }

    /// [`BackupSession::start`] with the lock naming `operation` (`copy`).
    pub async fn start_as(
        repo: &Repository,
        progress: Arc<Progress>,
        operation: &str,
    ) -> Result<Self> {
        let lock = acquire(repo, LockMode::Shared, operation).await?;
        let mut index = repo.load_index().await?;
        let condemned = repo.condemned_packs().await?;
        index.forget_packs(&condemned);
        Ok(Self {
            repo: repo.clone(),
            index: Arc::new(index),
            seen: Arc::new(Mutex::new(HashSet::new())),
            packs: Vec::new(),
            items: Vec::new(),
            progress,
            started: Instant::now(),
            lock,
            index_every_pack: false,
            indexed: HashSet::new(),
        })
    }

    /// Stores an index document for each pack as soon as it is uploaded, so
    /// that an interrupted session leaves its packs indexed and a new one
    /// deduplicates against them instead of sending them again (`lifeboat
    /// copy` resumes so). Costs one small document per pack.
    pub fn index_every_pack(&mut self) {
        self.index_every_pack = true;
    }

    /// Reads `reader` to its end into the repository as item `name`.
    /// A read error (including one a wrapping reader raises at its end, e.g.
    /// a dump process that exited non-zero) fails the whole backup.
    pub async fn add_stream<R: Read + Send + 'static>(
        &mut self,
        name: &str,
        reader: R,
    ) -> Result<Item> {
        let cfg = self.repo.config().clone();
        let key = self.repo.key().clone();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let depth = queue_depth(workers, cfg.chunker.max_size as usize);
        // Chunks waiting for a worker and sealed blobs waiting for the packer.
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(depth);
        // Unbounded on purpose: a worker must never block on reporting an id
        // while the chunker blocks on sending it work (that would deadlock).
        // The chunker drains it as it goes, so it holds about as many entries
        // as there are chunks in flight. `None`: a worker died.
        let (id_tx, id_rx) = crossbeam_channel::unbounded::<Option<(usize, BlobId)>>();
        let (blob_tx, mut blob_rx) = tokio::sync::mpsc::channel::<Result<EncodedBlob>>(depth);

        // Chunker thread.
        let chunker = {
            let key = key.clone();
            let progress = Arc::clone(&self.progress);
            std::thread::Builder::new()
                .name("lifeboat-chunker".into())
                .spawn(move || chunk_stream(reader, &key, &cfg, &progress, &job_tx, &id_rx))
                .map_err(|e| RepoError::io("starting chunker thread", e))?
        };
        // Worker threads.
        let mut worker_handles = Vec::new();
        for i in 0..workers {
            let rx = job_rx.clone();
            let ids = id_tx.clone();
            let tx = blob_tx.clone();
            let key = key.clone();
            let index = Arc::clone(&self.index);
            let seen = Arc::clone(&self.seen);
            let progress = Arc::clone(&self.progress);
            let level = self.repo.config().zstd_level;
            let h = std::thread::Builder::new()
                .name(format!("lifeboat-seal-{i}"))
                .spawn(move || {
                    let work = std::panic::AssertUnwindSafe(|| {
                        for job in rx.iter() {
                            let (id, kind, data) = match job {
                                Job::Chunk { seq, data } => {
                                    let id = key.blob_id(&data);
                                    if ids.send(Some((seq, id))).is_err() {
                                        break;
                                    }
                                    (id, BlobKind::Data, data)
                                }
                                Job::Tree { id, data } => (id, BlobKind::Tree, data),
                            };
                            if !claim(&index, &seen, id) {
                                continue;
                            }
                            if kind == BlobKind::Data {
                                Progress::add(&progress.bytes_new, data.len() as u64);
                                Progress::add(&progress.new_chunks, 1);
                            }
                            let r = encode_blob(&key, id, kind, &data, level);
                            drop(data);
                            if tx.blocking_send(r).is_err() {
                                break;
                            }
                        }
                    });
                    // A worker that panics may have reported an id it never
                    // stored, or never reported one the chunker waits for:
                    // both the chunker and the packer are told, so the
                    // stream fails instead of hanging or committing a
                    // reference to a missing blob.
                    if std::panic::catch_unwind(work).is_err() {
                        let _ = ids.send(None);
                        let _ = tx.blocking_send(Err(RepoError::internal(
                            Fault::Task,
                            "a backup worker thread panicked; nothing of this stream was committed",
                        )));
                    }
                })
                .map_err(|e| RepoError::io("starting worker thread", e))?;
            worker_handles.push(h);
        }
        drop(id_tx);
        drop(job_rx);
        drop(blob_tx);

        // Packer and uploads, here.
        let pack_result = self.pack_and_upload(&mut blob_rx).await;
        // Unblock the pipeline if packing failed early, then collect threads.
        drop(blob_rx);
        let joined = tokio::task::spawn_blocking(move || {
            let r = chunker.join();
            // A worker's panic is caught and reported in the pipeline; a
            // join error here would be a panic in that reporting itself.
            let workers_ok = worker_handles.into_iter().all(|h| h.join().is_ok());
            match (r, workers_ok) {
                (Ok(chunked), true) => Ok(chunked),
                _ => Err(()),
            }
        })
        .await;
        let outcome = joined
            .map_err(|e| RepoError::internal(Fault::Task, format!("joining pipeline: {e}")))
            .and_then(|r| {
                r.map_err(|_| RepoError::internal(Fault::Task, "a backup pipeline thread panicked"))
            })
            .and_then(|chunked| pack_result.and(chunked));
        let chunked = match outcome {
            Ok(chunked) => chunked,
            Err(e) => {
                // Ids this stream claimed may belong to blobs that never
                // reached storage: forget every claim (a blob seen again is
                // then stored again: wasteful, never wrong).
                self.seen = Arc::new(Mutex::new(HashSet::new()));
                return Err(e);
            }
        };
        let item = Item {
            name: name.to_string(),
            size: chunked.size,
            chunks: chunked.chunks,
            tree: chunked.tree,
            digest: chunked.digest,
        };
        self.items.push(item.clone());
        Ok(item)
    }

    async fn pack_and_upload(
        &mut self,
        blob_rx: &mut tokio::sync::mpsc::Receiver<Result<EncodedBlob>>,
    ) -> Result<()> {
        let pack_size = self.repo.config().pack_size as usize;
        let key = self.repo.key().clone();
        let mut uploads: JoinSet<Result<(String, u64, Vec<BlobEntry>)>> = JoinSet::new();
        let mut builder = PackBuilder::with_capacity(pack_size + 1024 * 1024);
        loop {
            let blob = blob_rx.recv().await;
            let done = blob.is_none();
            if let Some(blob) = blob {
                builder.add(blob?);
            }
            if (done && !builder.is_empty()) || builder.len() >= pack_size {
                let full = std::mem::replace(
                    &mut builder,
                    PackBuilder::with_capacity(pack_size + 1024 * 1024),
                );
                // A backup whose lock is lost stops here: a prune may
                // already delete what it deduplicated against.
                self.lock.ensure_held()?;
                while uploads.len() >= UPLOAD_CONCURRENCY {
                    if let Some(r) = uploads.join_next().await {
                        self.landed(join_upload(r)?);
                    }
                }
                let storage = Arc::clone(self.repo.storage());
                let progress = Arc::clone(&self.progress);
                let key = key.clone();
                let index_now = self.index_every_pack.then(|| self.repo.clone());
                uploads.spawn(async move {
                    // Sealing the header and hashing the 16 MiB pack for its
                    // name happen off the packer loop, which meanwhile keeps
                    // taking blobs from the workers.
                    let finished = tokio::task::spawn_blocking(move || full.finish(&key))
                        .await
                        .map_err(|e| {
                            RepoError::internal(Fault::Task, format!("finishing a pack: {e}"))
                        })??;
                    let size = finished.bytes.len() as u64;
                    storage
                        .put(&pack_key(&finished.id), Bytes::from(finished.bytes))
                        .await?;
                    Progress::add(&progress.bytes_stored, size);
                    let pack = (finished.id, size, finished.entries);
                    // Indexed as soon as it is stored (`index_every_pack`):
                    // a kill from here on leaves it for the next run.
                    if let Some(repo) = index_now {
                        let doc = doc_for_packs(std::slice::from_ref(&pack));
                        repo.put_doc(INDEX_PREFIX, "index", &doc).await?;
                    }
                    Ok(pack)
                });
            }
            if done {
                break;
            }
        }
        while let Some(r) = uploads.join_next().await {
            self.landed(join_upload(r)?);
        }
        Ok(())
    }

    /// Packs this session has stored so far, the blobs in them and the
    /// packs' bytes.
    pub fn packs_stored(&self) -> (u64, u64, u64) {
        (
            self.packs.len() as u64,
            self.packs.iter().map(|p| p.2.len() as u64).sum(),
            self.packs.iter().map(|p| p.1).sum(),
        )
    }

    /// A pack is stored (and, with `index_every_pack`, indexed by its
    /// upload task): remember it.
    fn landed(&mut self, pack: (String, u64, Vec<BlobEntry>)) {
        if self.index_every_pack {
            self.indexed.insert(pack.0.clone());
        }
        self.packs.push(pack);
    }

    /// Gives up: no snapshot is written; packs already uploaded are left
    /// for `prune`. Releases the lock.
    pub async fn abort(self) {
        if let Err(e) = self.lock.release().await {
            tracing::warn!("could not remove lock: {e}");
        }
    }

    /// Writes the index for this session's packs, then the snapshot, of the
    /// whole source ([`Scope::full`]); each only while the session's lock is
    /// still there (else [`RepoError::LockLost`], and nothing is committed).
    pub async fn commit(self, meta: SnapshotMeta) -> Result<SnapshotRef> {
        self.commit_scoped(meta, Scope::full()).await
    }

    /// [`BackupSession::commit`] for a snapshot that holds `scope` of its
    /// source; a partial one never stands for the source's latest backup.
    ///
    /// When the repository stores a configuration
    /// ([`Repository::with_stored_config`]), it is stored here as the last
    /// item, [`CONFIG_ITEM`](crate::snapshot::CONFIG_ITEM).
    pub async fn commit_scoped(mut self, meta: SnapshotMeta, scope: Scope) -> Result<SnapshotRef> {
        if let Some(text) = self.repo.stored_config().map(|t| t.as_bytes().to_vec()) {
            self.add_stream(crate::snapshot::CONFIG_ITEM, std::io::Cursor::new(text))
                .await?;
        }
        let bytes_stored = self.write_index().await?;
        let p = &self.progress;
        let stats = BackupStats {
            bytes_read: self.items.iter().map(|i| i.size).sum(),
            bytes_new: Progress::get(&p.bytes_new),
            bytes_stored,
            chunks: self.items.iter().map(|i| i.chunks).sum(),
            new_chunks: Progress::get(&p.new_chunks),
            packs: self.packs.len() as u64,
            duration_seconds: self.started.elapsed().as_secs_f64(),
        };
        let scope = scope.normalized();
        let snapshot = Snapshot {
            // See `SCOPED_SNAPSHOT_VERSION`: only a partial snapshot needs
            // the newer version.
            version: if scope.is_full() {
                DOC_VERSION
            } else {
                SCOPED_SNAPSHOT_VERSION
            },
            time: Utc::now(),
            hostname: hostname(),
            username: username(),
            source: meta.source,
            kind: meta.kind,
            tags: meta.tags,
            items: std::mem::take(&mut self.items),
            stats,
            facts: meta.facts,
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            scope: (!scope.is_full()).then_some(scope),
        };
        self.store_snapshot(snapshot).await
    }

    /// Commits a copy of `original` (`lifeboat copy` into a repository of
    /// other parameters): the index for this session's packs, then a
    /// snapshot that is `original` with this session's items (the same
    /// names, re-chunked for this repository), every other member (time,
    /// host, facts, stats, scope) unchanged. No configuration item is
    /// added: the original's, if any, is among the items copied.
    pub async fn commit_copy(mut self, original: &Snapshot) -> Result<SnapshotRef> {
        self.write_index().await?;
        let mut snapshot = original.clone();
        snapshot.items = std::mem::take(&mut self.items);
        self.store_snapshot(snapshot).await
    }

    /// Stores the index document for the packs not indexed yet, after
    /// checking the lock is still held; returns the bytes of every pack of
    /// the session plus that document.
    async fn write_index(&mut self) -> Result<u64> {
        let mut bytes_stored: u64 = self.packs.iter().map(|p| p.1).sum();
        self.lock.confirm().await?;
        let left: Vec<(String, u64, Vec<BlobEntry>)> = self
            .packs
            .iter()
            .filter(|p| !self.indexed.contains(&p.0))
            .cloned()
            .collect();
        if !left.is_empty() {
            let doc = doc_for_packs(&left);
            let (_, sealed_len) = self.repo.put_doc_sized(INDEX_PREFIX, "index", &doc).await?;
            bytes_stored += sealed_len;
        }
        Ok(bytes_stored)
    }

    /// Object Lock retention, the snapshot document, the lock released.
    async fn store_snapshot(self, snapshot: Snapshot) -> Result<SnapshotRef> {
        // S3 Object Lock: retain what the snapshot needs before announcing
        // it (a failure here commits nothing), then the snapshot itself.
        let mut snap = SnapshotRef {
            id: String::new(),
            snapshot,
        };
        if let Some(lock) = self.repo.object_lock() {
            let mut index = self.repo.load_index().await?;
            index.forget_packs(&self.repo.condemned_packs().await?);
            let keys = crate::retain::needed_keys(&self.repo, &snap, &index).await?;
            crate::retain::protect(lock, &keys).await?;
        }
        self.lock.confirm().await?;
        snap.id = self
            .repo
            .put_doc(SNAPSHOTS_PREFIX, "snapshot", &snap.snapshot)
            .await?;
        if let Some(lock) = self.repo.object_lock() {
            let key = format!("{SNAPSHOTS_PREFIX}{}", snap.id);
            if let Err(e) = crate::retain::protect(lock, &[key]).await {
                let _ = self.lock.release().await;
                return Err(RepoError::Storage(crate::storage::StorageError::new(
                    crate::storage::StorageErrorKind::Permanent,
                    "put-retention",
                    format!("{SNAPSHOTS_PREFIX}{}", snap.id),
                    format!(
                        "snapshot {} is stored, but setting its Object Lock retention failed: {e}. The next backup protects its data again; fix the permission (s3:PutObjectRetention)",
                        snap.short_id()
                    ),
                )));
            }
        }
        if let Err(e) = self.lock.release().await {
            tracing::warn!("could not remove lock: {e}");
        }
        Ok(snap)
    }
}

fn join_upload(
    r: std::result::Result<Result<(String, u64, Vec<BlobEntry>)>, tokio::task::JoinError>,
) -> Result<(String, u64, Vec<BlobEntry>)> {
    r.map_err(|e| RepoError::internal(Fault::Task, format!("upload task: {e}")))?
}

/// The chunker thread: cuts the stream into chunks and hands them, numbered,
/// to the workers; collects their ids in stream order; then stores the chunk
/// list as tree blobs.
fn worker_died() -> RepoError {
    RepoError::internal(
        Fault::Task,
        "a backup worker thread panicked; nothing of this stream was committed",
    )
}

fn chunk_stream<R: Read>(
    reader: R,
    key: &MasterKey,
    cfg: &crate::repo::RepoConfig,
    progress: &Progress,
    jobs: &crossbeam_channel::Sender<Job>,
    id_rx: &crossbeam_channel::Receiver<Option<(usize, BlobId)>>,
) -> Result<ChunkerResult> {
    let c = cfg.chunker;
    let mut chunker = Chunker::new(
        reader,
        c.min_size as usize,
        c.avg_size as usize,
        c.max_size as usize,
        key.chunker_seed(),
        READ_BUFFER,
    );
    let stopped = || RepoError::internal(Fault::Task, "backup pipeline stopped");
    // ids[seq] is the id of chunk seq once a worker has reported it.
    let mut ids: Vec<BlobId> = Vec::new();
    let mut received = 0usize;
    let mut size = 0u64;
    while let Some(chunk) = chunker
        .next_chunk()
        .map_err(|e| RepoError::io("reading the input stream", e))?
    {
        let seq = ids.len();
        ids.push([0; 32]);
        size += chunk.len() as u64;
        Progress::add(&progress.bytes_read, chunk.len() as u64);
        Progress::add(&progress.chunks, 1);
        jobs.send(Job::Chunk {
            seq,
            data: chunk.to_vec(),
        })
        .map_err(|_| stopped())?;
        for msg in id_rx.try_iter() {
            let (seq, id) = msg.ok_or_else(worker_died)?;
            ids[seq] = id;
            received += 1;
        }
    }
    while received < ids.len() {
        let (seq, id) = id_rx
            .recv()
            .map_err(|_| stopped())?
            .ok_or_else(worker_died)?;
        ids[seq] = id;
        received += 1;
    }
    // The item digest covers the chunk ids in order: each chunk is verified
    // against its id on restore, so this pins the whole stream without a
    // second pass over its bytes.
    let mut digest = key.hasher();
    for id in &ids {
        digest.update(id);
    }
    let mut tree = Vec::new();
    for piece in ids.chunks(IDS_PER_TREE_BLOB) {
        let data: Vec<u8> = piece.iter().flat_map(|id| id.iter().copied()).collect();
        let id = key.blob_id(&data);
        tree.push(hex32(&id));
        jobs.send(Job::Tree { id, data }).map_err(|_| stopped())?;
    }
    Ok(ChunkerResult {
        tree,
        size,
        chunks: ids.len() as u64,
        digest: digest.finalize().to_hex().to_string(),
    })
}
