//! The engine over storage that fails: transient failures are retried and
//! the backup restores identically; permanent failures fail fast and say so
//! (issue 2, must-hold 7). Uses the library directly, with the test-only
//! `Faulty` wrapper around a real local repository.

use std::sync::Arc;
use std::time::Duration;

use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::faulty::Faulty;
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::storage::retry::{RetryPolicy, Retrying};
use lifeboat_repo::{InitOptions, Repository, Secret};

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Half compressible, half random.
        if (v.len() / 100_000) % 2 == 0 {
            v.extend_from_slice(format!("event {} ok;", x % 1000).as_bytes());
        } else {
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v.truncate(len);
    v
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    }
}

async fn backup(repo: &Repository, bytes: Vec<u8>) -> lifeboat_repo::Result<String> {
    let mut s = BackupSession::start(repo, Arc::new(Progress::default())).await?;
    s.add_stream("stdin", std::io::Cursor::new(bytes)).await?;
    let snap = s
        .commit(SnapshotMeta {
            source: "faults".into(),
            kind: "stream".into(),
            ..Default::default()
        })
        .await?;
    Ok(snap.id)
}

async fn restore(repo: &Repository, id: &str) -> lifeboat_repo::Result<Vec<u8>> {
    let snap = repo.find_snapshot(id, None).await?;
    let out = SharedBuf::default();
    restore_item(
        repo,
        &snap,
        None,
        out.clone(),
        Arc::new(Progress::default()),
    )
    .await?;
    Ok(out.0.lock().unwrap().clone())
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_transient_failures_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let local = open_url_create(
        dir.path().join("repo").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let faulty = Arc::new(Faulty::new(Arc::clone(&local), 7).with_transient_failures(0.10));
    let storage: Arc<dyn Storage> = Retrying::wrap(faulty.clone(), fast_retry());
    let secret = Secret::Passphrase("pw".into());
    // Small packs: many requests, so 10 % of them is a real number.
    let opts = InitOptions {
        pack_size: 1 << 20,
        ..Default::default()
    };
    let repo = Repository::init(Arc::clone(&storage), &secret, opts)
        .await
        .unwrap();
    let input = data(48 << 20, 3);
    let id = backup(&repo, input.clone()).await.unwrap();
    let requests = faulty.counts().total();
    assert!(requests > 30, "only {requests} requests");
    // Reopen through the faulty storage and restore.
    let repo = Repository::open(Arc::clone(&storage), &secret)
        .await
        .unwrap();
    let out = restore(&repo, &id).await.unwrap();
    assert!(out == input, "restored bytes differ");
    let report = lifeboat_repo::check::check(&repo, true, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    let total = faulty.counts().total();
    let injected = faulty.injected_failures();
    assert!(
        injected >= 5 && injected * 100 / total >= 5,
        "{injected} failures in {total} requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_fail_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let local = open_url_create(
        dir.path().join("repo").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let faulty = Arc::new(Faulty::new(Arc::clone(&local), 1));
    let storage: Arc<dyn Storage> = Retrying::wrap(faulty.clone(), RetryPolicy::default());
    let secret = Secret::Passphrase("pw".into());
    let repo = Repository::init(Arc::clone(&storage), &secret, InitOptions::default())
        .await
        .unwrap();
    faulty.set_fail_permanently(true);
    faulty.reset_counts();
    let started = std::time::Instant::now();
    let err = backup(&repo, data(4 << 20, 5)).await.unwrap_err();
    // Fast: no retry schedule was run (the default would take ~6 s per request).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(faulty.counts().total(), 1, "a permanent error was retried");
    assert_eq!(err.class(), lifeboat_repo::ErrorClass::Storage, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("storage"), "{msg}");
}
