//! What the engine's interleaving tests share (`prune_race.rs`,
//! `repair_index.rs`): a repository over the `Gated` storage wrapper, backups
//! that remember what each snapshot must restore to, and the proof that
//! every snapshot still does.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::HashMap;
use std::sync::Arc;

use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::check::CheckReport;
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::gate::Gated;
use lifeboat_repo::storage::object::ObjectStoreBackend;
use lifeboat_repo::{InitOptions, Repository, Secret};

/// `len` pseudo-random (incompressible, non-repeating) bytes from `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub gated: Arc<Gated>,
    pub repo: Repository,
    /// What each snapshot must restore to.
    pub expected: HashMap<String, Vec<u8>>,
    /// The source name of its snapshots.
    pub source: &'static str,
}

/// A new repository (1 MiB packs, key file) over `Gated` local storage.
pub async fn fixture(source: &'static str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> =
        Arc::new(ObjectStoreBackend::local(&dir.path().join("repo"), true).unwrap());
    let gated = Arc::new(Gated::new(local));
    let secret = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
    let repo = Repository::init(
        gated.clone(),
        &secret,
        InitOptions {
            pack_size: 1024 * 1024,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        gated,
        repo,
        expected: HashMap::new(),
        source,
    }
}

/// Backs `bytes` up as one snapshot and remembers them.
pub async fn backup(f: &mut Fixture, bytes: Vec<u8>) -> String {
    let mut s = BackupSession::start(&f.repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    s.add_stream("stdin", std::io::Cursor::new(bytes.clone()))
        .await
        .unwrap();
    let id = s.commit(meta(f.source)).await.unwrap().id;
    f.expected.insert(id.clone(), bytes);
    id
}

#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every snapshot restores to what was backed up, and check is clean.
/// Returns the check's report for further assertions.
pub async fn assert_intact(f: &Fixture, context: &str) -> CheckReport {
    let snaps = f.repo.snapshots().await.unwrap();
    assert_eq!(
        snaps.len(),
        f.expected.len(),
        "{context}: snapshots {:?}",
        snaps.iter().map(|s| s.short_id()).collect::<Vec<_>>()
    );
    for s in &snaps {
        let out = SharedBuf::default();
        restore_item(&f.repo, s, None, out.clone(), Arc::new(Progress::default()))
            .await
            .unwrap_or_else(|e| {
                panic!("{context}: snapshot {} does not restore: {e}", s.short_id())
            });
        assert!(
            *out.0.lock().unwrap() == f.expected[&s.id],
            "{context}: snapshot {} restores different bytes",
            s.short_id()
        );
    }
    let report = lifeboat_repo::check::check(&f.repo, true, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(report.ok(), "{context}: check: {:?}", report.errors);
    report
}

/// The metadata of a stream snapshot of `source`.
pub fn meta(source: &str) -> SnapshotMeta {
    SnapshotMeta {
        source: source.into(),
        kind: "stream".into(),
        ..Default::default()
    }
}
