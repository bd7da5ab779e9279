//! Locks and the repository are what they claim (issue 16): a lost lock
//! stops a backup before it commits; PIDs prove nothing across PID
//! namespaces, nor a PID another process now has, a killed holder's lock
//! says what clears it (prune's per-pack lines too); a lock with a field
//! this build does not know is honoured, and one it cannot read at all
//! counts as held, exclusive, until stale; `--retry-lock` waits;
//! a dropped guard's lock (and only it)
//! is removed; check and prune exclude each other; read-only work needs no
//! write; `--read-data-subset` parts cover every pack; a local repository's
//! root is never created by a write.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::check::check_subset;
use lifeboat_repo::format::seal_doc;
use lifeboat_repo::lock::{self, LockDoc, LockMode, LockOptions};
use lifeboat_repo::prune::{PruneOptions, PruneReport, prune};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::storage::object::open_url_create;
use lifeboat_repo::storage::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult};
use lifeboat_repo::subset::DataSubset;
use lifeboat_repo::{InitOptions, RepoError, Repository, Secret};

fn secret() -> Secret {
    Secret::Passphrase("correct horse battery staple".into())
}

fn data(len: usize, seed: u64) -> Vec<u8> {
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

/// Refuses writes when told to: puts and deletes (all, or only under
/// `locks/`) fail as a read-only mount does.
#[derive(Debug)]
struct Refusing {
    inner: Arc<dyn Storage>,
    refuse_all: AtomicBool,
    refuse_locks: AtomicBool,
}

impl Refusing {
    fn new(inner: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            refuse_all: AtomicBool::new(false),
            refuse_locks: AtomicBool::new(false),
        })
    }

    fn refuses(&self, key: &str) -> bool {
        self.refuse_all.load(Ordering::SeqCst)
            || (key.starts_with("locks/") && self.refuse_locks.load(Ordering::SeqCst))
    }

    fn refusal(op: &'static str, key: &str) -> StorageError {
        StorageError::new(
            StorageErrorKind::Permanent,
            op,
            key,
            "read-only file system: mount the repository read-write: Read-only file system (os error 30)",
        )
        .refusing_writes(true)
    }
}

#[async_trait]
impl Storage for Refusing {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        if self.refuses(key) {
            return Err(Self::refusal("put", key));
        }
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        if self.refuses(key) {
            return Err(Self::refusal("delete", key));
        }
        self.inner.delete(key).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    storage: Arc<Refusing>,
    repo: Repository,
}

async fn fixture(opts: LockOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let inner = open_url_create(path.to_str().unwrap(), &Default::default()).unwrap();
    let storage = Refusing::new(inner);
    let init = InitOptions {
        pack_size: 1024 * 1024,
        ..Default::default()
    };
    Repository::init(storage.clone(), &secret(), init)
        .await
        .unwrap();
    let repo = Repository::open(storage.clone(), &secret())
        .await
        .unwrap()
        .with_lock_options(opts);
    Fixture {
        _dir: dir,
        path,
        storage,
        repo,
    }
}

fn meta() -> SnapshotMeta {
    SnapshotMeta {
        source: "locks".into(),
        kind: "stream".into(),
        ..Default::default()
    }
}

async fn backup(repo: &Repository, bytes: Vec<u8>) -> lifeboat_repo::Result<String> {
    let mut s = BackupSession::start(repo, Arc::new(Progress::default())).await?;
    s.add_stream("stdin", std::io::Cursor::new(bytes)).await?;
    Ok(s.commit(meta()).await?.id)
}

async fn lock_keys(repo: &Repository) -> Vec<String> {
    repo.storage()
        .list("locks/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_lock_was_removed_commits_nothing() {
    let f = fixture(LockOptions::default()).await;
    let mut s = BackupSession::start(&f.repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    s.add_stream("stdin", std::io::Cursor::new(data(300_000, 1)))
        .await
        .unwrap();
    // Someone runs `unlock --all` (or judges the lock stale) meanwhile.
    for k in lock_keys(&f.repo).await {
        f.repo.storage().delete(&k).await.unwrap();
    }
    let Err(e) = s.commit(meta()).await else {
        panic!("the commit must fail")
    };
    assert!(matches!(e, RepoError::LockLost(_)), "{e}");
    assert!(e.to_string().contains("without committing"), "{e}");
    assert!(f.repo.snapshots().await.unwrap().is_empty());
    assert!(f.repo.storage().list("index/").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_cannot_be_refreshed_is_lost_and_stops_the_backup() {
    let opts = LockOptions {
        refresh: Duration::from_millis(20),
        stale_after: Duration::from_millis(400),
        ..Default::default()
    };
    let f = fixture(opts).await;
    let mut s = BackupSession::start(&f.repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    let g = lock::acquire(&f.repo, LockMode::Shared, "probe")
        .await
        .unwrap();
    f.storage.refuse_locks.store(true, Ordering::SeqCst);
    // Wait (bounded) for the refresher to give the lock up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while g.ensure_held().is_ok() {
        assert!(Instant::now() < deadline, "the lock was never given up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = g.ensure_held().unwrap_err();
    assert!(matches!(e, RepoError::LockLost(_)), "{e}");
    assert!(e.to_string().contains("could not refresh"), "{e}");
    // The backup session's lock went the same way: its next pack fails.
    let Err(e) = s
        .add_stream("stdin", std::io::Cursor::new(data(3_000_000, 2)))
        .await
    else {
        panic!("the backup must stop")
    };
    assert!(matches!(e, RepoError::LockLost(_)), "{e}");
    f.storage.refuse_locks.store(false, Ordering::SeqCst);
    let Err(e) = s.commit(meta()).await else {
        panic!("no commit")
    };
    assert!(matches!(e, RepoError::LockLost(_)), "{e}");
    assert!(f.repo.snapshots().await.unwrap().is_empty());
}

fn foreign_doc(mode: LockMode, same_pid_space: bool) -> LockDoc {
    let mine = |p: &str| std::fs::read_link(p).ok().map(|p| p.display().to_string());
    LockDoc {
        version: 1,
        mode,
        operation: "backup".into(),
        hostname: lifeboat_repo::keys::hostname(),
        username: "other".into(),
        // No such process here.
        pid: 4_000_000,
        created: Utc::now(),
        instance: "another-process".into(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string()),
        pid_namespace: if same_pid_space {
            mine("/proc/self/ns/pid")
        } else {
            Some("pid:[1]".into())
        },
        start_time: None,
    }
}

/// Field 22 of `/proc/<pid>/stat`: the process's start time (clock ticks
/// since boot).
fn start_time_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_ascii_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

/// A holder's PID reused by another process proves nothing: a lock written
/// on this kernel and PID namespace whose PID runs but started at another
/// time than the lock records is stale at once, and `unlock --id` removes
/// it; the same PID with the recorded start time is the holder (its lock
/// counts, `unlock --id` refuses it), and so is a lock written before start
/// times were recorded (judged by the PID alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_pid_is_not_the_holder() {
    let f = fixture(LockOptions::default()).await;
    // A live process of this test's: "the PID's new owner".
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = start_time_of(pid);
    let doc = |start_time: Option<u64>| {
        let mut d = foreign_doc(LockMode::Shared, true);
        d.pid = pid;
        d.start_time = start_time;
        d
    };
    for (k, d) in [
        ("locks/aaaareused", doc(Some(started + 1))),
        ("locks/bbbbholder", doc(Some(started))),
        ("locks/ccccolder", doc(None)),
    ] {
        f.repo
            .storage()
            .put(k, Bytes::from(seal_doc(f.repo.key(), "lock", &d).unwrap()))
            .await
            .unwrap();
    }
    let now = f
        .repo
        .storage()
        .head("locks/ccccolder")
        .await
        .unwrap()
        .last_modified;
    let locks = lock::list_locks(&f.repo, now).await.unwrap();
    let stale = |k: &str| locks.iter().find(|l| l.key == k).unwrap().stale;
    assert!(
        stale("locks/aaaareused"),
        "PID {pid} is another process now"
    );
    assert!(!stale("locks/bbbbholder"), "PID {pid} with its start time");
    assert!(!stale("locks/ccccolder"), "no start time: the PID alone");
    // `unlock --id` removes the reused PID's lock, and only it.
    let removed = lock::unlock_id(&f.repo, "aaaa").await.unwrap();
    assert_eq!(removed.key, "locks/aaaareused");
    assert_eq!(
        lock_keys(&f.repo).await,
        ["locks/bbbbholder", "locks/ccccolder"]
    );
    // The holder's lock (and the older one naming a live PID) is refused.
    for id in ["bbbb", "cccc"] {
        let Err(e) = lock::unlock_id(&f.repo, id).await else {
            panic!("removed {id}, whose holder runs")
        };
        let text = e.to_string();
        assert!(
            text.contains(&format!("process {pid} still runs on this host"))
                && text.contains(&format!("kill -TERM {pid}"))
                && text.contains("nothing was removed"),
            "{text}"
        );
    }
    assert_eq!(lock_keys(&f.repo).await.len(), 2, "nothing removed");
    // A lock this process takes records its own start time.
    let g = lock::acquire(&f.repo, LockMode::Shared, "backup")
        .await
        .unwrap();
    let locks = lock::list_locks(&f.repo, g.created()).await.unwrap();
    let own = locks.iter().find(|l| l.is_own()).unwrap();
    assert_eq!(own.doc.start_time, Some(start_time_of(std::process::id())));
    g.release().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pid_proves_nothing_in_another_pid_namespace() {
    let f = fixture(LockOptions::default()).await;
    let other = foreign_doc(LockMode::Shared, false);
    let same = foreign_doc(LockMode::Shared, true);
    for (k, d) in [("locks/aa", &other), ("locks/bb", &same)] {
        f.repo
            .storage()
            .put(k, Bytes::from(seal_doc(f.repo.key(), "lock", d).unwrap()))
            .await
            .unwrap();
    }
    let now = f
        .repo
        .storage()
        .head("locks/aa")
        .await
        .unwrap()
        .last_modified;
    let locks = lock::list_locks(&f.repo, now).await.unwrap();
    let stale = |k: &str| locks.iter().find(|l| l.key == k).unwrap().stale;
    // Same hostname, dead PID, but another container's PID namespace: live
    // (refreshed just now by the storage clock).
    assert!(!stale("locks/aa"));
    // The same kernel and PID namespace: the PID is ours to judge.
    assert!(stale("locks/bb"));
    // By the storage clock, a lock not refreshed for stale_after is stale.
    let later = now + chrono::Duration::hours(1);
    let locks = lock::list_locks(&f.repo, later).await.unwrap();
    assert!(locks.iter().all(|l| l.stale));
    // Our own locks carry our instance id.
    let g = lock::acquire(&f.repo, LockMode::Shared, "own")
        .await
        .unwrap();
    let locks = lock::list_locks(&f.repo, g.created()).await.unwrap();
    let own: Vec<_> = locks.iter().filter(|l| l.is_own()).collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].doc.instance, lock::instance_id());
    assert_eq!(lock::instance_id().len(), 32);
    g.release().await.unwrap();
}

/// A holder killed (`kill -9`) leaves its lock behind. On this kernel and
/// PID namespace it is stale at once, even while the killed process is a
/// zombie its parent has not waited for. Elsewhere (another container, host
/// or pod) this process cannot tell: the lock counts until it goes stale by
/// the storage clock, and every message naming it says when that is and
/// which command removes it now (`unlock --id`, which removes that one lock
/// and no other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_is_judged_or_named_with_what_clears_it() {
    let f = fixture(LockOptions::default()).await;
    let put = |k: &'static str, d: LockDoc| {
        let repo = f.repo.clone();
        async move {
            repo.storage()
                .put(k, Bytes::from(seal_doc(repo.key(), "lock", &d).unwrap()))
                .await
                .unwrap();
        }
    };
    // A zombie: exited, not waited for yet.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let zombie = child.id();
    let state = || {
        std::fs::read_to_string(format!("/proc/{zombie}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.trim_start().chars().next())
            })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while state() != Some('Z') {
        assert!(Instant::now() < deadline, "{zombie} never became a zombie");
        std::thread::yield_now();
    }
    let mut killed = foreign_doc(LockMode::Shared, true);
    killed.pid = zombie;
    killed.operation = "recover postgres".into();
    put("locks/0123killed", killed).await;
    let mut elsewhere = foreign_doc(LockMode::Exclusive, false);
    elsewhere.operation = "check".into();
    put("locks/4567elsewhere", elsewhere).await;
    let now = f
        .repo
        .storage()
        .head("locks/4567elsewhere")
        .await
        .unwrap()
        .last_modified;
    let locks = lock::list_locks(&f.repo, now).await.unwrap();
    let find = |k: &str| locks.iter().find(|l| l.key == k).unwrap().clone();
    assert!(find("locks/0123killed").stale, "a zombie runs no more code");
    child.wait().unwrap();
    let far = find("locks/4567elsewhere");
    assert!(!far.stale);
    let hint = far.if_gone();
    assert!(
        hint.contains("process 4000000 on ")
            && hint.contains(
                &(far.refreshed + chrono::Duration::minutes(30))
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string()
            )
            && hint.contains("`lifeboat unlock --id 4567elsewhere`"),
        "{hint}"
    );
    // `unlock` alone removes the stale lock only.
    let removed = lock::unlock(&f.repo, false).await.unwrap();
    let keys: Vec<&str> = removed.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["locks/0123killed"]);
    assert_eq!(lock_keys(&f.repo).await, ["locks/4567elsewhere"]);
    // A prune (exclusive) is refused naming the holder and that command.
    let Err(e) = lock::acquire(&f.repo, LockMode::Exclusive, "prune").await else {
        panic!("the other exclusive lock counts")
    };
    let e = e.to_string();
    assert!(
        e.contains("exclusive lock for check held by pid 4000000")
            && e.contains("`lifeboat unlock --id 4567elsewhere`"),
        "{e}"
    );
    // `--id` removes the named one.
    let Err(e) = lock::unlock_id(&f.repo, "89").await else {
        panic!("no such lock")
    };
    assert!(e.to_string().contains("no lock 89"), "{e}");
    assert_eq!(lock_keys(&f.repo).await, ["locks/4567elsewhere"]);
    put("locks/4568other", foreign_doc(LockMode::Shared, false)).await;
    let Err(e) = lock::unlock_id(&f.repo, "456").await else {
        panic!("two locks start with 456")
    };
    assert!(e.to_string().contains("2 locks start with 456"), "{e}");
    assert_eq!(lock_keys(&f.repo).await.len(), 2, "nothing removed");
    let removed = lock::unlock_id(&f.repo, "4567").await.unwrap();
    assert_eq!(removed.key, "locks/4567elsewhere");
    assert_eq!(lock_keys(&f.repo).await, ["locks/4568other"]);
    lock::unlock_id(&f.repo, "4568other").await.unwrap();
    assert!(lock_keys(&f.repo).await.is_empty());
    // A lock whose holder runs on this host (this test) is not removed.
    let live = lock::acquire(&f.repo, LockMode::Shared, "backup")
        .await
        .unwrap();
    let Err(e) = lock::unlock_id(&f.repo, live.id()).await else {
        panic!("removed the lock of a running process")
    };
    let text = e.to_string();
    assert!(
        text.contains("still runs on this host")
            && text.contains(&format!("kill -TERM {}", std::process::id()))
            && text.contains("nothing was removed"),
        "{text}"
    );
    assert_eq!(lock_keys(&f.repo).await.len(), 1, "the live lock stays");
    live.release().await.unwrap();
    let g = lock::acquire(&f.repo, LockMode::Exclusive, "prune")
        .await
        .unwrap();
    g.release().await.unwrap();
}

/// Every line of prune's report about a pack kept for another operation's
/// lock (a condemned pack, a pack no index lists) names that lock, when it
/// stops counting and the `unlock --id` that removes it now: a real prune
/// (zero grace, so its second pass judges the packs it just condemned)
/// beside the lock of a backup on another host or container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_pack_prune_lines_say_what_clears_the_lock() {
    let f = fixture(LockOptions::default()).await;
    let gone = backup(&f.repo, data(300_000, 7)).await.unwrap();
    f.repo
        .storage()
        .delete(&format!("snapshots/{gone}"))
        .await
        .unwrap();
    // A pack no index lists (an interrupted backup's), written long ago.
    let leftover = format!("ab{}", "0".repeat(62));
    let leftover_key = format!("data/ab/{leftover}");
    f.repo
        .storage()
        .put(&leftover_key, Bytes::from_static(b"left by a backup"))
        .await
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(f.path.join(&leftover_key))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    // A backup elsewhere, running since before everything.
    let mut elsewhere = foreign_doc(LockMode::Shared, false);
    elsewhere.created = chrono::DateTime::<Utc>::UNIX_EPOCH;
    f.repo
        .storage()
        .put(
            "locks/4567elsewhere",
            Bytes::from(seal_doc(f.repo.key(), "lock", &elsewhere).unwrap()),
        )
        .await
        .unwrap();
    let refreshed = f
        .repo
        .storage()
        .head("locks/4567elsewhere")
        .await
        .unwrap()
        .last_modified;
    let report = prune_now(&f.repo).await.unwrap();
    assert_eq!(report.deleted_packs, 0, "{report:?}");
    let stops = (refreshed + chrono::Duration::minutes(30))
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let says_what_clears = |line: &str| {
        line.contains("shared lock for backup held by pid 4000000")
            && line.contains(&format!("its lock stops counting at {stops}"))
            && line.contains("`lifeboat unlock --id 4567elsewhere`")
    };
    let packs: Vec<&String> = report
        .waiting_reasons
        .iter()
        .filter(|w| w.starts_with("pack "))
        .collect();
    assert!(!packs.is_empty(), "{:?}", report.waiting_reasons);
    assert!(packs.iter().all(|w| says_what_clears(w)), "{packs:?}");
    let unindexed = format!("unindexed pack {} waits for", &leftover[..12]);
    let line = report
        .waiting_reasons
        .iter()
        .find(|w| w.starts_with(&unindexed))
        .unwrap_or_else(|| panic!("{:?}", report.waiting_reasons));
    assert!(says_what_clears(line), "{line}");
    // Once that lock is removed, the next prune deletes them.
    lock::unlock_id(&f.repo, "4567").await.unwrap();
    let report = prune_now(&f.repo).await.unwrap();
    assert!(report.waiting_reasons.is_empty(), "{report:?}");
    assert_eq!(report.deleted_leftovers, 1, "{report:?}");
    assert!(report.deleted_packs > 1, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_lock_waits_for_a_conflicting_lock() {
    let f = fixture(LockOptions::default()).await;
    let held = lock::acquire(&f.repo, LockMode::Exclusive, "check")
        .await
        .unwrap();
    // Without --retry-lock: exit 5 at once, naming the holder.
    let e = lock::acquire(&f.repo, LockMode::Exclusive, "prune")
        .await
        .err()
        .unwrap();
    assert!(matches!(e, RepoError::Locked(_)), "{e}");
    assert!(e.to_string().contains("--retry-lock"), "{e}");
    // With it: waits, and gets the lock once the holder releases it.
    let waiting = f.repo.clone().with_lock_options(LockOptions {
        retry: Duration::from_secs(120),
        ..Default::default()
    });
    let task =
        tokio::spawn(async move { lock::acquire(&waiting, LockMode::Exclusive, "prune").await });
    // Let it find the conflict at least once (its lock comes and goes).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!task.is_finished());
    held.release().await.unwrap();
    let g = task.await.unwrap().expect("acquired after the wait");
    g.release().await.unwrap();
    // A short wait that runs out says so.
    let _held = lock::acquire(&f.repo, LockMode::Exclusive, "check")
        .await
        .unwrap();
    let short = f.repo.clone().with_lock_options(LockOptions {
        retry: Duration::from_millis(300),
        ..Default::default()
    });
    let e = lock::acquire(&short, LockMode::Exclusive, "prune")
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("still locked after waiting"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_prune_exclude_each_other() {
    let f = fixture(LockOptions::default()).await;
    backup(&f.repo, data(100_000, 3)).await.unwrap();
    let check = lock::acquire(&f.repo, LockMode::Exclusive, "check")
        .await
        .unwrap();
    let e = prune(&f.repo, &PruneOptions::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, RepoError::Locked(_)), "{e}");
    assert!(e.to_string().contains("lock for check"), "{e}");
    check.release().await.unwrap();
    let p = lock::acquire(&f.repo, LockMode::Exclusive, "prune")
        .await
        .unwrap();
    let e = check_subset(&f.repo, false, None, Arc::new(Progress::default()))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("lock for prune"), "{e}");
    p.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_guard_removes_its_lock_only() {
    let f = fixture(LockOptions::default()).await;
    let keep = lock::acquire(&f.repo, LockMode::Shared, "backup")
        .await
        .unwrap();
    let mut s = BackupSession::start(&f.repo, Arc::new(Progress::default()))
        .await
        .unwrap();
    s.add_stream("stdin", std::io::Cursor::new(data(100_000, 4)))
        .await
        .unwrap();
    assert_eq!(lock_keys(&f.repo).await.len(), 2);
    // Abandoned, as the daemon does at the end of its grace period.
    drop(s);
    lock::settle_releases(Duration::from_secs(30)).await;
    assert_eq!(
        lock_keys(&f.repo).await,
        vec![format!("locks/{}", keep.id())]
    );
    keep.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_work_needs_no_write() {
    let f = fixture(LockOptions::default()).await;
    let bytes = data(2_500_000, 5);
    let id = backup(&f.repo, bytes.clone()).await.unwrap();
    f.storage.refuse_all.store(true, Ordering::SeqCst);

    // snapshots
    assert_eq!(f.repo.snapshots().await.unwrap().len(), 1);
    // restore
    let snap = f.repo.find_snapshot(&id, None).await.unwrap();
    let out = Arc::new(std::sync::Mutex::new(Vec::new()));
    struct W(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    restore_item(
        &f.repo,
        &snap,
        None,
        W(Arc::clone(&out)),
        Arc::new(Progress::default()),
    )
    .await
    .expect("restore from a read-only repository");
    assert!(*out.lock().unwrap() == bytes);
    // check --read-data
    let r = check_subset(&f.repo, true, None, Arc::new(Progress::default()))
        .await
        .expect("check of a read-only repository");
    assert!(r.ok(), "{:?}", r.errors);
    assert!(r.bytes_verified > 0);
    // What must write still fails, and says why.
    let e = backup(&f.repo, data(10, 6)).await.err().unwrap();
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = prune(&f.repo, &PruneOptions::default())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(lock_keys(&f.repo).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_data_subsets_cover_every_pack_once() {
    let f = fixture(LockOptions::default()).await;
    backup(&f.repo, data(6_000_000, 7)).await.unwrap();
    let packs = f.repo.storage().list("data/").await.unwrap();
    assert!(packs.len() >= 4, "{} packs", packs.len());
    let full = check_subset(&f.repo, true, None, Arc::new(Progress::default()))
        .await
        .unwrap();
    let mut sum = 0;
    for n in 1..=3 {
        let part = DataSubset::Part { n, m: 3 };
        let r = check_subset(&f.repo, true, Some(part), Arc::new(Progress::default()))
            .await
            .unwrap();
        assert!(r.ok(), "{:?}", r.errors);
        sum += r.bytes_verified;
    }
    assert_eq!(sum, full.bytes_verified);

    // A damaged pack is found by its part, and only by it.
    let victim = &packs[0];
    let id = victim.key.rsplit('/').next().unwrap();
    let mut bytes = f.repo.storage().get(&victim.key).await.unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(f.path.join(&victim.key), &bytes).unwrap();
    let mut found = Vec::new();
    for n in 1..=3 {
        let part = DataSubset::Part { n, m: 3 };
        let r = check_subset(&f.repo, true, Some(part), Arc::new(Progress::default()))
            .await
            .unwrap();
        if !r.ok() {
            assert!(part.contains(id));
            found.push(n);
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_never_creates_the_repository_root() {
    let f = fixture(LockOptions::default()).await;
    backup(&f.repo, data(10_000, 8)).await.unwrap();
    let moved = f.path.with_file_name("moved");
    std::fs::rename(&f.path, &moved).unwrap();
    let e = backup(&f.repo, data(10_000, 9)).await.err().unwrap();
    assert!(
        !f.path.exists(),
        "the repository root was created again: {e}"
    );
    let e = f.repo.verify_identity().await.err().unwrap();
    assert!(matches!(e, RepoError::NotARepository { .. }), "{e}");
    // Subdirectories under an existing root are still created.
    std::fs::rename(&moved, &f.path).unwrap();
    std::fs::remove_dir_all(f.path.join("snapshots")).unwrap();
    backup(&f.repo, data(10_000, 10)).await.unwrap();
    f.repo.verify_identity().await.unwrap();
}

/// Seals `json` as a lock document would be (any JSON: a newer Lifeboat's
/// lock, or one that is not a lock at all) and stores it as `key`.
async fn put_sealed(repo: &Repository, key: &str, json: &serde_json::Value) {
    repo.storage()
        .put(
            key,
            Bytes::from(seal_doc(repo.key(), "lock", json).unwrap()),
        )
        .await
        .unwrap();
}

/// A lock written by a newer Lifeboat, with a field this one does not know,
/// is read and honoured: its exclusive lock refuses a prune and a check
/// (naming it as any other), and once removed the prune runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_with_an_unknown_field_is_honoured() {
    let f = fixture(LockOptions::default()).await;
    backup(&f.repo, data(100_000, 11)).await.unwrap();
    let mut newer = serde_json::to_value(foreign_doc(LockMode::Exclusive, false)).unwrap();
    newer["operation"] = "check".into();
    newer["added_by_a_newer_lifeboat"] = serde_json::json!({ "any": ["thing"] });
    put_sealed(&f.repo, "locks/4567newer", &newer).await;
    let now = f
        .repo
        .storage()
        .head("locks/4567newer")
        .await
        .unwrap()
        .last_modified;
    let locks = lock::list_locks(&f.repo, now).await.unwrap();
    assert_eq!(locks.len(), 1, "the lock is read");
    assert_eq!(locks[0].doc.operation, "check");
    assert_eq!(locks[0].doc.pid, 4_000_000);
    assert!(!locks[0].stale);
    let Err(e) = prune(&f.repo, &PruneOptions::default()).await else {
        panic!("a prune ran beside a newer Lifeboat's check")
    };
    assert!(matches!(e, RepoError::Locked(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("exclusive lock for check held by pid 4000000")
            && text.contains("`lifeboat unlock --id 4567newer`"),
        "{text}"
    );
    let Err(e) = check_subset(&f.repo, false, None, Arc::new(Progress::default())).await else {
        panic!("a check ran beside a newer Lifeboat's check")
    };
    assert!(matches!(e, RepoError::Locked(_)), "{e}");
    lock::unlock_id(&f.repo, "4567").await.unwrap();
    prune(&f.repo, &PruneOptions::default()).await.unwrap();
}

/// A lock this Lifeboat cannot read (garbage bytes, a sealed document that
/// is no lock, a newer lock version) counts as held, exclusive, by an
/// unknown holder until it is stale by its storage time: prune and check
/// are refused with a message that says it could not be read, when it
/// stops counting and that `unlock --id` removes it; a backup (shared)
/// still runs. `unlock` removes it once stale, `unlock --id` at any time.
/// A wrong key is still a wrong key, whatever the locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_lock_counts_as_held_until_stale() {
    let f = fixture(LockOptions::default()).await;
    backup(&f.repo, data(100_000, 12)).await.unwrap();
    // Garbage bytes; a sealed document that is no lock; a newer version.
    let mut future = serde_json::to_value(foreign_doc(LockMode::Shared, false)).unwrap();
    future["version"] = 9.into();
    let unreadable = [
        ("locks/1111garbage", None),
        (
            "locks/2222notalock",
            Some(serde_json::json!({ "version": 1, "what": "not a lock" })),
        ),
        ("locks/3333version9", Some(future)),
    ];
    for (i, (key, sealed)) in unreadable.into_iter().enumerate() {
        match sealed {
            Some(json) => put_sealed(&f.repo, key, &json).await,
            None => f
                .repo
                .storage()
                .put(key, Bytes::from_static(b"\x00 not a sealed lock"))
                .await
                .unwrap(),
        }
        if i == 0 {
            // A wrong key fails as such, before any lock is looked at.
            let wrong = Secret::Passphrase("wrong horse".into());
            let Err(e) = Repository::open(f.storage.clone(), &wrong).await else {
                panic!("opened with a wrong passphrase")
            };
            assert!(matches!(e, RepoError::WrongKey(_)), "{e}");
            assert!(!e.to_string().contains("lock"), "{e}");
        }
        let id = key.trim_start_matches("locks/");
        let written = f.repo.storage().head(key).await.unwrap().last_modified;
        let stops = (written + chrono::Duration::minutes(30))
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        let says_so = |text: &str| {
            text.contains(&format!("lock {id} could not be read"))
                && text.contains(&format!("stops counting at {stops}"))
                && text.contains(&format!("`lifeboat unlock --id {id}`"))
        };
        let Err(e) = prune(&f.repo, &PruneOptions::default()).await else {
            panic!("a prune ran beside the unreadable lock {key}")
        };
        assert!(matches!(e, RepoError::Locked(_)), "{e}");
        assert!(says_so(&e.to_string()), "{e}");
        let Err(e) = check_subset(&f.repo, false, None, Arc::new(Progress::default())).await else {
            panic!("a check ran beside the unreadable lock {key}")
        };
        assert!(says_so(&e.to_string()), "{e}");
        // Shared work does not conflict with it.
        backup(&f.repo, data(10_000, 13)).await.unwrap();
        // `unlock` alone leaves it while it is not stale.
        assert!(lock::unlock(&f.repo, false).await.unwrap().is_empty());
        assert!(lock_keys(&f.repo).await.contains(&key.to_string()));
        if i == 0 {
            // Once unwritten for the stale age, `unlock` removes it.
            std::fs::File::options()
                .write(true)
                .open(f.path.join(key))
                .unwrap()
                .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
                .unwrap();
            let removed = lock::unlock(&f.repo, false).await.unwrap();
            assert_eq!(removed.len(), 1);
            assert_eq!(removed[0].key, key);
            assert!(
                removed[0].describe().contains("could not be read"),
                "{}",
                removed[0].describe()
            );
        } else {
            // `unlock --id` removes it at any time.
            let removed = lock::unlock_id(&f.repo, id).await.unwrap();
            assert_eq!(removed.key, key);
        }
        assert!(!lock_keys(&f.repo).await.contains(&key.to_string()));
    }
    assert!(lock_keys(&f.repo).await.is_empty());
    prune(&f.repo, &PruneOptions::default()).await.unwrap();
}

/// A prune with no grace period, not a dry run.
async fn prune_now(repo: &Repository) -> Result<PruneReport, RepoError> {
    prune(
        repo,
        &PruneOptions {
            grace: Duration::ZERO,
            dry_run: false,
        },
    )
    .await
}
