//! A restore holds a bounded number of DECODED bytes, whatever the
//! compression ratio (issue 16, "Restore memory is bounded"). The stream
//! compresses ~50×: before the bound, six 2 MiB reads of it in flight plus
//! the writer's queue held up to ~900 MiB decoded.
//!
//! The writer is held at its first write until the restore reports that a
//! read had to wait for the bound (`InFlight::on_full`): the pipeline is then
//! as full as it gets. Two counts check the bound: the restore's own
//! (`InFlight::peak`) and one made outside it, from the ranged reads the
//! storage serves: at each read, the decoded size of every blob read so far
//! minus the bytes the writer has written. That one also releases the writer
//! as soon as it exceeds the bound, so a restore without a bound (one that
//! never waits) fails the test instead of hanging it.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::format::pack_key;
use lifeboat_repo::restore::{
    InFlight, Part, chunk_ids, restore_item_part_bounded, restore_item_part_to_file_bounded,
};
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::storage::{ObjectInfo, Storage, StorageResult};
use lifeboat_repo::{InitOptions, Repository, Secret};

/// ~50× under zstd: each 1000-byte line has 16 random hex digits.
fn compressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let filler = "status=ok note=nothing to see here; ".repeat(30);
    let mut v = Vec::with_capacity(len + 1000);
    let mut line = 0u64;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let l = format!("{line:08} {x:016x} {filler}");
        v.extend_from_slice(&l.as_bytes()[..999]);
        v.push(b'\n');
        line += 1;
    }
    v.truncate(len);
    v
}

/// Storage that counts, at every ranged read, the decoded bytes read so far
/// ahead of the writer (blobs located by `blobs`: pack key → (offset, decoded
/// length)), and releases the writer once that exceeds `limit`.
#[derive(Debug)]
struct Logged {
    inner: Arc<dyn Storage>,
    written: Arc<AtomicU64>,
    blobs: Mutex<HashMap<String, Vec<(u64, u64)>>>,
    limit: AtomicU64,
    read: AtomicU64,
    worst: AtomicU64,
    release: Mutex<Option<mpsc::Sender<()>>>,
}

#[async_trait]
impl Storage for Logged {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        let decoded: u64 = self.blobs.lock().unwrap().get(key).map_or(0, |b| {
            b.iter()
                .filter(|(off, _)| range.contains(off))
                .map(|(_, r)| r)
                .sum()
        });
        let read = self.read.fetch_add(decoded, Ordering::SeqCst) + decoded;
        let ahead = read.saturating_sub(self.written.load(Ordering::SeqCst));
        self.worst.fetch_max(ahead, Ordering::SeqCst);
        if ahead > self.limit.load(Ordering::SeqCst)
            && let Some(tx) = self.release.lock().unwrap().as_ref()
        {
            let _ = tx.send(());
        }
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.inner.delete(key).await
    }
}

/// A writer that holds its first write until `go` says so, and counts.
struct Gated {
    go: Option<mpsc::Receiver<()>>,
    out: Arc<Mutex<Vec<u8>>>,
    written: Arc<AtomicU64>,
}

impl Write for Gated {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(go) = self.go.take() {
            go.recv().expect("the restore reports a wait on the bound");
        }
        self.out.lock().unwrap().extend_from_slice(b);
        self.written.fetch_add(b.len() as u64, Ordering::SeqCst);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    repo: Repository,
    logged: Arc<Logged>,
    written: Arc<AtomicU64>,
    input: Vec<u8>,
    id: String,
}

async fn setup(len: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let storage = open_url_create(path.to_str().unwrap(), &Default::default()).unwrap();
    let secret = Secret::Passphrase("pw".into());
    let repo = Repository::init(storage.clone(), &secret, InitOptions::default())
        .await
        .unwrap();
    let input = compressible(len);
    let progress = Arc::new(Progress::default());
    let mut s = BackupSession::start(&repo, Arc::clone(&progress))
        .await
        .unwrap();
    s.add_stream("stdin", std::io::Cursor::new(input.clone()))
        .await
        .unwrap();
    let snap = s
        .commit(SnapshotMeta {
            source: "memory".into(),
            kind: "stream".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let stats = &snap.snapshot.stats;
    assert!(
        stats.bytes_read >= 20 * stats.bytes_stored,
        "the fixture should compress well: {} read, {} stored",
        stats.bytes_read,
        stats.bytes_stored
    );
    let written = Arc::new(AtomicU64::new(0));
    let logged = Arc::new(Logged {
        inner: storage,
        written: Arc::clone(&written),
        blobs: Mutex::new(HashMap::new()),
        limit: AtomicU64::new(u64::MAX),
        read: AtomicU64::new(0),
        worst: AtomicU64::new(0),
        release: Mutex::new(None),
    });
    let repo = Repository::open(logged.clone(), &secret).await.unwrap();
    Setup {
        _dir: dir,
        repo,
        logged,
        written,
        input,
        id: snap.id,
    }
}

/// Locates the snapshot's blobs for the storage's count, which starts now.
async fn watch(s: &Setup, limit: u64, release: mpsc::Sender<()>) {
    let snap = s.repo.find_snapshot(&s.id, None).await.unwrap();
    let index = s.repo.load_index().await.unwrap();
    let ids = chunk_ids(&s.repo, &index, &snap.snapshot.items[0])
        .await
        .unwrap();
    let mut blobs: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for id in &ids {
        let loc = index.get(id).unwrap();
        blobs
            .entry(pack_key(&index.pack(loc).id))
            .or_default()
            .push((loc.entry.offset, loc.entry.raw_length as u64));
    }
    for b in blobs.values_mut() {
        b.sort_unstable();
        b.dedup();
    }
    *s.logged.blobs.lock().unwrap() = blobs;
    s.logged.read.store(0, Ordering::SeqCst);
    s.logged.worst.store(0, Ordering::SeqCst);
    s.logged.limit.store(limit, Ordering::SeqCst);
    *s.logged.release.lock().unwrap() = Some(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_restore_never_holds_more_decoded_bytes_than_its_bound() {
    let s = setup(48 << 20).await;
    let snap = s.repo.find_snapshot(&s.id, None).await.unwrap();
    let limit = 4 << 20;
    let bound = InFlight::new(limit);
    let (go, wait) = mpsc::channel();
    watch(&s, limit, go.clone()).await;
    let go = Mutex::new(go);
    bound.on_full(move || {
        let _ = go.lock().unwrap().send(());
    });
    let out = Arc::new(Mutex::new(Vec::new()));
    let writer = Gated {
        go: Some(wait),
        out: Arc::clone(&out),
        written: Arc::clone(&s.written),
    };
    let n = restore_item_part_bounded(
        &s.repo,
        &snap,
        None,
        &Part::All,
        writer,
        Arc::new(Progress::default()),
        &bound,
    )
    .await
    .unwrap();
    assert_eq!(n, s.input.len() as u64);
    assert!(*out.lock().unwrap() == s.input, "restored bytes differ");
    let ahead = s.logged.worst.load(Ordering::SeqCst);
    assert!(
        ahead <= limit,
        "{ahead} decoded bytes were read ahead of the writer, bound {limit}"
    );
    assert!(
        bound.peak() <= limit,
        "held {} bytes, bound {limit}",
        bound.peak()
    );
    // The bound was reached (the writer was held until it was).
    assert!(bound.peak() > limit / 2, "peak {}", bound.peak());
    assert_eq!(bound.held(), 0, "every ticket given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_to_a_file_never_holds_more_decoded_bytes_than_its_bound() {
    let s = setup(24 << 20).await;
    let snap = s.repo.find_snapshot(&s.id, None).await.unwrap();
    let limit = 2 << 20;
    let bound = InFlight::new(limit);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staged");
    let f = std::fs::File::create(&path).unwrap();
    let n = restore_item_part_to_file_bounded(
        &s.repo,
        &snap,
        None,
        &Part::All,
        f,
        Arc::new(Progress::default()),
        &bound,
    )
    .await
    .unwrap();
    assert_eq!(n, s.input.len() as u64);
    assert!(
        std::fs::read(&path).unwrap() == s.input,
        "staged bytes differ"
    );
    assert!(
        bound.peak() <= limit,
        "held {} bytes, bound {limit}",
        bound.peak()
    );
    assert!(bound.peak() > 0);
    assert_eq!(bound.held(), 0, "every ticket given back");
}
