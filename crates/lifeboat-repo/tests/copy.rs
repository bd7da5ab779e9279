//! `copy`: snapshots into a second repository, in both modes, on real local
//! storage: only missing blobs move between repositories sharing ids, a
//! re-chunked copy restores the same bytes, a copy killed at a pause point
//! resumes without sending a blob twice, a damaged write is caught by the
//! read-back, and targets that may not receive copies are refused with
//! nothing written.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::blobs::chunk_ids;
use lifeboat_repo::copy::{Copier, Filter, Mode};
use lifeboat_repo::storage::faulty::Op;
use lifeboat_repo::storage::gate::Gated;
use lifeboat_repo::storage::object::ObjectStoreBackend;
use lifeboat_repo::storage::read_back::ReadBack;
use lifeboat_repo::storage::{ObjectInfo, Storage, StorageResult};
use lifeboat_repo::{InitOptions, RepoError, Repository, Secret};

struct Target {
    _dir: tempfile::TempDir,
    gated: Arc<Gated>,
    repo: Repository,
    secret: Secret,
    storage: Arc<dyn Storage>,
}

fn opts() -> InitOptions {
    InitOptions {
        pack_size: 1024 * 1024,
        ..Default::default()
    }
}

/// A target over `Gated` local storage, read back after every write:
/// sharing the source's ids, or with parameters of its own.
async fn target(source: Option<&Repository>) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> =
        Arc::new(ObjectStoreBackend::local(&dir.path().join("copy"), true).unwrap());
    let gated = Arc::new(Gated::new(local));
    let storage: Arc<dyn Storage> = ReadBack::wrap(gated.clone());
    let secret = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
    let repo = match source {
        Some(s) => Repository::init_with_params_of(storage.clone(), &secret, opts(), s).await,
        None => Repository::init(storage.clone(), &secret, opts()).await,
    }
    .unwrap();
    Target {
        _dir: dir,
        gated,
        repo,
        secret,
        storage,
    }
}

async fn copy_all(source: &Repository, target: &Repository) -> Vec<lifeboat_repo::copy::Copied> {
    let mut c = Copier::prepare(source.clone(), target.clone())
        .await
        .unwrap();
    let snaps = c.choose(&Filter::default()).await.unwrap();
    let mut out = Vec::new();
    for s in &snaps {
        out.push(c.copy(s, &Arc::new(Progress::default())).await.unwrap());
    }
    out
}

/// The target holds a copy of every source snapshot with the original's
/// time, source and facts, each restoring the source's bytes, and its
/// check (reading every pack) is clean.
async fn assert_copied(f: &Fixture, t: &Repository) {
    let copies = t.snapshots().await.unwrap();
    let originals = f.repo.snapshots().await.unwrap();
    assert_eq!(copies.len(), originals.len());
    for o in &originals {
        let c = copies
            .iter()
            .find(|c| c.snapshot.time == o.snapshot.time)
            .expect("a copy with the original's time");
        assert_eq!(c.snapshot.source, o.snapshot.source);
        assert_eq!(c.snapshot.facts, o.snapshot.facts);
        assert_eq!(c.snapshot.hostname, o.snapshot.hostname);
        let out = SharedBuf::default();
        lifeboat_repo::restore::restore_item(
            t,
            c,
            None,
            out.clone(),
            Arc::new(Progress::default()),
        )
        .await
        .unwrap();
        assert!(
            *out.0.lock().unwrap() == f.expected[&o.id],
            "copy of {} restores other bytes",
            o.short_id()
        );
    }
    let report = lifeboat_repo::check::check(t, true, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(report.ok(), "check of the target: {:?}", report.errors);
}

/// Every blob of `snap` (trees and chunks).
async fn blobs_of(repo: &Repository, id: &str) -> HashSet<[u8; 32]> {
    let index = repo.load_index().await.unwrap();
    let snap = repo.find_snapshot(id, None).await.unwrap();
    let mut out = HashSet::new();
    for item in &snap.snapshot.items {
        out.extend(
            item.tree
                .iter()
                .map(|t| lifeboat_repo::format::parse_hex32(t).unwrap()),
        );
        out.extend(chunk_ids(repo, &index, item).await.unwrap());
    }
    out
}

/// How many packs of the target hold each blob (from the index documents).
async fn pack_count_per_blob(repo: &Repository) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for (_, doc) in repo.load_index_docs().await.unwrap() {
        for p in doc.packs {
            for b in p.blobs {
                *n.entry(b.id).or_insert(0) += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_sharing_ids_receives_only_the_blobs_it_lacks() {
    let mut f = fixture("db").await;
    let first = data(3 << 20, 1);
    let a = backup(&mut f, first.clone()).await;
    let t = target(Some(&f.repo)).await;
    assert_eq!(Mode::of(&f.repo, &t.repo), Mode::SameIds);
    let done = copy_all(&f.repo, &t.repo).await;
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0].blobs_sent as usize,
        blobs_of(&f.repo, &a).await.len()
    );

    // A second backup sharing most of its data with the first.
    let mut second = first.clone();
    second[1_000_000..1_000_100].fill(7);
    second.extend(data(200_000, 2));
    let b = backup(&mut f, second).await;
    let new: HashSet<_> = blobs_of(&f.repo, &b)
        .await
        .difference(&blobs_of(&f.repo, &a).await)
        .copied()
        .collect();
    let done = copy_all(&f.repo, &t.repo).await;
    assert_eq!(done.len(), 2);
    assert!(
        done[0].skipped,
        "the first snapshot is in the target already"
    );
    assert!(!done[1].skipped);
    assert_eq!(
        done[1].blobs_sent as usize,
        new.len(),
        "exactly the missing blobs moved"
    );
    assert!(
        new.len() < 20,
        "a small change moves a few blobs, not {}",
        new.len()
    );
    assert_copied(&f, &t.repo).await;
    let again = copy_all(&f.repo, &t.repo).await;
    assert!(again.iter().all(|c| c.skipped), "a third run sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_of_its_own_gets_rechunked_copies_that_restore_the_same_bytes() {
    let mut f = fixture("db").await;
    backup(&mut f, data(2 << 20, 3)).await;
    backup(&mut f, data(1 << 20, 4)).await;
    let t = target(None).await;
    assert_eq!(Mode::of(&f.repo, &t.repo), Mode::Rechunk);
    let done = copy_all(&f.repo, &t.repo).await;
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|c| !c.skipped && c.blobs_sent > 0));
    assert_copied(&f, &t.repo).await;
    let again = copy_all(&f.repo, &t.repo).await;
    assert!(again.iter().all(|c| c.skipped));
}

/// A copy killed while its third pack is on its way (held at the target's
/// storage, then the task dropped, as a kill would), then run again: every
/// blob is in exactly one pack of the target, the second run sent only what
/// the first did not land, and the copy is whole.
async fn resumes_after_a_kill(share_ids: bool) {
    let mut f = fixture("db").await;
    backup(&mut f, data(6 << 20, 5)).await;
    let t = target(share_ids.then_some(&f.repo)).await;
    let mut pause = t.gated.pause_before(Some(Op::Put), "data/", 3);
    let (src, tgt) = (f.repo.clone(), t.repo.clone());
    let run = tokio::spawn(async move { copy_all(&src, &tgt).await });
    pause.reached().await.expect("the third pack's put is held");
    // The kill comes once every pack stored so far is indexed: the uploads
    // run concurrently, and an index write still in flight at the kill
    // would land after `landed` is counted below (polled, bounded).
    let mut settled = false;
    for _ in 0..400 {
        let stored = t.repo.storage().list("data/").await.unwrap().len();
        let indexed: usize = t
            .repo
            .load_index_docs()
            .await
            .unwrap()
            .iter()
            .map(|(_, d)| d.packs.len())
            .sum();
        if stored > 0 && stored == indexed {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        settled,
        "the packs stored before the held one were never all indexed"
    );
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    drop(pause);
    assert!(
        t.repo.snapshots().await.unwrap().is_empty(),
        "no snapshot before its blobs"
    );
    let landed = pack_count_per_blob(&t.repo).await.len();
    assert!(landed > 0, "the first two packs landed and were indexed");

    let done = copy_all(&f.repo, &t.repo).await;
    let total = pack_count_per_blob(&t.repo).await;
    let dup: Vec<_> = total.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "blobs sent twice: {}", dup.len());
    assert_eq!(done[0].blobs_sent as usize + landed, total.len());
    assert_copied(&f, &t.repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_copy_to_a_target_sharing_ids_resumes_without_resending() {
    resumes_after_a_kill(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rechunking_copy_resumes_without_resending() {
    resumes_after_a_kill(false).await;
}

/// Every key under the storage, with sizes.
async fn listing(s: &dyn Storage) -> Vec<(String, u64)> {
    let mut v: Vec<_> = s
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    v.sort();
    v
}

fn refused(r: Result<Copier, RepoError>, words: &str) {
    match r {
        Err(e @ RepoError::Invalid { .. }) => {
            assert!(e.to_string().contains(words), "{e}");
            assert!(
                e.to_string().contains("nothing was written")
                    || words.contains("repository being copied"),
                "{e}"
            );
        }
        Err(e) => panic!("refused with the wrong error: {e}"),
        Ok(_) => panic!("not refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_that_may_not_receive_copies_are_refused_with_nothing_written() {
    let mut f = fixture("db").await;
    backup(&mut f, data(100_000, 6)).await;
    let mut other = fixture("other").await;
    backup(&mut other, data(100_000, 7)).await;

    // A target holding another source's copies.
    let t = target(None).await;
    copy_all(&other.repo, &t.repo).await;
    let before = listing(t.storage.as_ref()).await;
    refused(
        Copier::prepare(f.repo.clone(), t.repo.clone()).await,
        "receives copies from repository",
    );
    assert_eq!(listing(t.storage.as_ref()).await, before);

    // A repository with backups of its own.
    let before = listing(other.repo.storage().as_ref()).await;
    refused(
        Copier::prepare(f.repo.clone(), other.repo.clone()).await,
        "of its own",
    );
    assert_eq!(listing(other.repo.storage().as_ref()).await, before);

    // The source itself.
    refused(
        Copier::prepare(f.repo.clone(), f.repo.clone()).await,
        "repository being copied",
    );
    let _ = &t.secret;
}

/// Storage that flips a bit in every pack it stores (a damaging gateway).
#[derive(Debug)]
struct Damaging(Arc<dyn Storage>);

#[async_trait]
impl Storage for Damaging {
    fn location(&self) -> String {
        self.0.location()
    }
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let mut v = data.to_vec();
        if key.starts_with("data/") {
            v[0] ^= 1;
        }
        self.0.put(key, Bytes::from(v)).await
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.0.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.0.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.0.list(prefix).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.0.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_damaged_on_its_way_fails_the_copy_at_once() {
    let mut f = fixture("db").await;
    backup(&mut f, data(500_000, 8)).await;
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> =
        Arc::new(ObjectStoreBackend::local(&dir.path().join("copy"), true).unwrap());
    let storage: Arc<dyn Storage> = ReadBack::wrap(Arc::new(Damaging(local)));
    let secret = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
    let t = Repository::init_with_params_of(storage, &secret, opts(), &f.repo)
        .await
        .unwrap();
    let mut c = Copier::prepare(f.repo.clone(), t.clone()).await.unwrap();
    let snaps = c.choose(&Filter::default()).await.unwrap();
    let err = c
        .copy(&snaps[0], &Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read back after writing"), "{err}");
    assert!(t.snapshots().await.unwrap().is_empty());
}
