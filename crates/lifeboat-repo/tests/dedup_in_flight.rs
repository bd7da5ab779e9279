//! Identical chunks in flight at the same time (workers hash and claim them
//! in parallel) are stored once: a stream of zeros is forty identical
//! maximum-size chunks, all queued together.

use std::sync::Arc;

use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::{InitOptions, Repository, Secret};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_chunks_in_flight_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_url_create(
        dir.path().join("repo").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let repo = Repository::init(
        storage,
        &Secret::Passphrase("pw".into()),
        InitOptions::default(),
    )
    .await
    .unwrap();
    let mut s = BackupSession::start(&repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    let item = s
        .add_stream("zeros", std::io::Cursor::new(vec![0u8; 20 << 20]))
        .await
        .unwrap();
    let snap = s
        .commit(SnapshotMeta {
            source: "zeros".into(),
            kind: "stream".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(item.chunks, 40, "20 MiB of zeros: forty 512 KiB chunks");
    assert_eq!(
        snap.snapshot.stats.new_chunks, 1,
        "{:?}",
        snap.snapshot.stats
    );
    // And the repository holds that one data blob once (plus the tree blob).
    let index = repo.load_index_docs().await.unwrap();
    let blobs: Vec<_> = index
        .iter()
        .flat_map(|(_, doc)| doc.packs.iter().flat_map(|p| p.blobs.iter()))
        .collect();
    assert_eq!(blobs.len(), 2, "{blobs:?}");
}
