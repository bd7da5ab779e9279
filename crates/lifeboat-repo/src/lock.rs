//! Repository locks: documents under `locks/` that announce work in progress.
//!
//! - `shared` locks (backup, restore, forget, unlock) never block anything;
//!   they exist so that `prune` knows which operations may still rely on
//!   data it is about to delete (see `prune`).
//! - `exclusive` locks (prune, check) exclude each other: a prune waits for
//!   a running check and the reverse, so that `check` never reports as
//!   missing a pack that a prune deleted while it looked. Two checks exclude
//!   each other too. The daemon's scheduled `check --read-data` reads one
//!   part of the packs per run (`--read-data-subset`) so that it holds prune
//!   off for minutes, not hours.
//!
//! **Liveness.** A lock is refreshed (rewritten) every
//! [`LockOptions::refresh`]; the object's last-modified time, by the storage
//! server's clock (one clock for every client), is its refresh time. Another
//! process judges it stale when it has not been refreshed for
//! [`LockOptions::stale_after`], measured against that same clock (its
//! "now" is the storage time of its own lock). A lock also names a random
//! per-process `instance` id, its host's boot id, its PID namespace and its
//! holder's start time: a lock whose holder no longer runs is stale at once
//! only when it was written on this very kernel and PID namespace
//! (containers sharing a hostname do not share PIDs, so hostname and PID
//! alone prove nothing). The holder runs when a process with its PID and
//! its start time runs (a PID reused by another process proves nothing);
//! a lock written before start times were recorded is judged by its PID.
//!
//! **Locks this build cannot read.** A reader ignores fields it does not
//! know (a newer Lifeboat adds some). A lock it cannot open or parse at all
//! (damaged, not a lock, or a newer `version`) is not ignored: it counts as
//! held, exclusive, by an unknown holder until it goes stale by its storage
//! time, like any other ([`LockEntry::unreadable`]); `unlock --id` removes
//! it at any time. The repository key is checked when the repository is
//! opened, before any lock is read, so a wrong key never shows as locks
//! that cannot be read.
//!
//! **Losing a lock.** A refresh first checks that the lock still exists. If
//! it was removed (`unlock --all`, or another process judged it stale), or
//! refreshes keep failing until the lock has gone unrefreshed for half of
//! [`LockOptions::stale_after`] (before anyone may judge it stale), the lock
//! is *lost*: [`LockGuard::ensure_held`] and [`LockGuard::confirm`] then fail,
//! and the operation stops before committing anything (a backup checks
//! before every pack and before its index and snapshot).
//!
//! **Read-only repositories.** [`acquire_for_reading`] takes a lock for work
//! that only reads (restore, check, drill); when the storage refuses the
//! write (read-only mount or credentials, full disk), the work goes on
//! without a lock, with a warning: a concurrent prune could then delete a
//! pack mid-read, which fails the read naming the pack, never returns wrong
//! data (every blob is authenticated). See docs/format.md.
//!
//! **Release.** [`LockGuard::release`] deletes the lock. Dropping a guard
//! (an abandoned or interrupted operation) deletes it in a background task;
//! [`settle_releases`] waits for those, so a process that is about to exit
//! (Ctrl-C) or a daemon that abandoned one backup removes exactly the
//! dropped locks.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::random_array;
use crate::error::{BadInput, RepoError, Result};
use crate::format::{DOC_VERSION, LOCKS_PREFIX, id_of_key, open_doc, seal_doc};
use crate::keys::{hostname, username};
use crate::repo::Repository;
use crate::storage::Storage;

pub use crate::lock_options::{LockOptions, REFRESH_INTERVAL, STALE_AFTER};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// A lock document. Readers ignore fields they do not know (a newer
/// Lifeboat's), so new fields need no new `version`; a `version` newer than
/// [`DOC_VERSION`] is refused by [`open_doc`], and such a lock counts as
/// held by an unknown holder (see [`LockEntry::unreadable`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockDoc {
    pub version: u64,
    pub mode: LockMode,
    /// What the holder is doing (`backup`, `prune`, …).
    pub operation: String,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// When the lock was first written, by the storage clock.
    pub created: DateTime<Utc>,
    /// Random per process: which locks are this process's own.
    #[serde(default)]
    pub instance: String,
    /// The holder's kernel boot id and PID namespace: its PID means
    /// something here only when both equal ours.
    #[serde(default)]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub pid_namespace: Option<String>,
    /// The holder's start time: field 22 of `/proc/<pid>/stat` (clock
    /// ticks since boot, so it means something only with `boot_id`). A
    /// process with `pid` but another start time is not the holder (the
    /// PID was reused). Absent in locks written before it existed: those
    /// are judged by the PID alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

/// This process's random instance id (written into every lock it takes).
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        random_array::<16>()
            .map(hex::encode)
            .unwrap_or_else(|_| format!("{:032x}", rand::random::<u128>()))
    })
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.display().to_string())
}

impl LockDoc {
    /// What a lock that could not be read is taken to say: every rule that
    /// reads a lock then errs on the side of the unknown holder. Exclusive
    /// (it conflicts with prune and check), created at 1970-01-01 (older
    /// than anything prune compares it with, so it holds back every pack
    /// and WAL object), operation `unknown` (not one that never reads WAL),
    /// no instance (never this process's own) and no boot id or PID
    /// namespace (its PID, 0, is never judged: only its storage time makes
    /// it stale).
    fn unknown_holder() -> Self {
        Self {
            version: DOC_VERSION,
            mode: LockMode::Exclusive,
            operation: "unknown".into(),
            hostname: "unknown".into(),
            username: "unknown".into(),
            pid: 0,
            created: DateTime::<Utc>::UNIX_EPOCH,
            instance: String::new(),
            boot_id: None,
            pid_namespace: None,
            start_time: None,
        }
    }
}

/// A lock found in the repository.
#[derive(Debug, Clone)]
pub struct LockEntry {
    pub key: String,
    /// What the lock says; for an unreadable one, [`LockDoc::unknown_holder`].
    pub doc: LockDoc,
    /// Why the lock could not be opened or parsed (damaged, not a lock, or
    /// written by a newer Lifeboat), when it could not. Such a lock counts
    /// as held, exclusive, by an unknown holder until it is stale by its
    /// storage time (`stale_at`); its messages say so.
    pub unreadable: Option<String>,
    /// Last refresh, by the storage clock.
    pub refreshed: DateTime<Utc>,
    /// When it goes stale unless refreshed again: `refreshed` plus
    /// [`LockOptions::stale_after`], by the storage clock.
    pub stale_at: DateTime<Utc>,
    pub stale: bool,
}

impl LockEntry {
    pub fn describe(&self) -> String {
        if let Some(why) = &self.unreadable {
            return format!(
                "lock {} could not be read ({why}): it counts as an exclusive lock held by an \
                 unknown holder, last written {}, and stops counting at {} (unwritten for the \
                 stale age)",
                id_of_key(&self.key),
                self.refreshed.format("%Y-%m-%d %H:%M:%S UTC"),
                self.stale_at.format("%Y-%m-%d %H:%M:%S UTC"),
            );
        }
        format!(
            "{} lock for {} held by pid {} on {} (user {}, instance {}) since {}, last refreshed {}",
            match self.doc.mode {
                LockMode::Shared => "shared",
                LockMode::Exclusive => "exclusive",
            },
            self.doc.operation,
            self.doc.pid,
            self.doc.hostname,
            self.doc.username,
            if self.doc.instance.is_empty() {
                "unknown"
            } else {
                &self.doc.instance[..self.doc.instance.len().min(8)]
            },
            self.doc.created.format("%Y-%m-%d %H:%M:%S UTC"),
            self.refreshed.format("%H:%M:%S UTC"),
        )
    }

    /// What to do when its holder is gone (killed, its host or pod gone)
    /// while the lock is not stale yet: when it stops counting on its own,
    /// and the command that removes it now. For an unreadable lock (whose
    /// `describe` says when it stops counting): only that command.
    pub fn if_gone(&self) -> String {
        if self.unreadable.is_some() {
            // `describe` said when it stops counting; there is no process
            // to name.
            return format!(
                "it has no holder this Lifeboat can check: once no newer Lifeboat is working on \
                 this repository, remove it now with `lifeboat unlock --id {}`",
                id_of_key(&self.key)
            );
        }
        format!(
            "if process {} on {} is gone (killed, or its host or container gone), its lock stops \
             counting at {} (unrefreshed for the stale age), or remove it now with \
             `lifeboat unlock --id {}`",
            self.doc.pid,
            self.doc.hostname,
            self.stale_at.format("%Y-%m-%d %H:%M:%S UTC"),
            id_of_key(&self.key)
        )
    }

    /// Whether this process took it.
    pub fn is_own(&self) -> bool {
        self.doc.instance == instance_id()
    }
}

/// What `/proc/<pid>/stat` says: the state letter and the start time
/// (field 22, clock ticks since boot). `None`: no such process.
fn proc_stat(pid: u32) -> Option<(Option<char>, Option<u64>)> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ppid …`: the fields after the last `)` (comm may
        // hold one) are field 3 (the state) onwards.
        Ok(stat) => {
            let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let mut fields = rest.split_ascii_whitespace();
            let state = fields.next().and_then(|f| f.chars().next());
            // Field 22 is the 20th after the `)`; the state was the 1st.
            let start = fields.nth(18).and_then(|f| f.parse().ok());
            Some((state, start))
        }
        Err(_) => std::path::Path::new(&format!("/proc/{pid}"))
            .exists()
            .then_some((None, None)),
    }
}

/// This process's start time (field 22 of `/proc/self/stat`).
fn own_start_time() -> Option<u64> {
    static START: OnceLock<Option<u64>> = OnceLock::new();
    *START.get_or_init(|| proc_stat(std::process::id()).and_then(|(_, start)| start))
}

/// Whether the holder that wrote `doc` runs (call only for a lock written
/// in this PID space: [`in_this_pid_space`]): a process with its PID
/// exists, is not a zombie (a killed process its parent has not waited for
/// yet runs no more code), and, when the lock records its start time,
/// started then (else the PID was reused by another process). A lock
/// without a start time (written before it was recorded) is judged by the
/// PID alone.
fn holder_runs(doc: &LockDoc) -> bool {
    match proc_stat(doc.pid) {
        None => false,
        Some((state, start)) => {
            state.is_none_or(|s| s != 'Z' && s != 'X')
                && match (doc.start_time, start) {
                    (Some(recorded), Some(now)) => recorded == now,
                    // Unreadable start time: the PID alone, as before.
                    _ => true,
                }
        }
    }
}

/// Whether the lock was written on this kernel, in this PID namespace: then
/// its `pid` says whether its holder runs.
fn in_this_pid_space(doc: &LockDoc) -> bool {
    doc.boot_id.is_some()
        && doc.pid_namespace.is_some()
        && doc.boot_id == boot_id()
        && doc.pid_namespace == pid_namespace()
}

/// Stale: not refreshed for `stale_after` by the storage clock, or written
/// on this kernel, in this PID namespace, by a process that no longer runs.
fn is_stale(
    doc: &LockDoc,
    refreshed: DateTime<Utc>,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> bool {
    if in_this_pid_space(doc) && doc.instance != instance_id() && !holder_runs(doc) {
        return true;
    }
    unrefreshed_for(refreshed, now, stale_after)
}

/// Not refreshed for `stale_after` by the storage clock: the one rule that
/// also judges an unreadable lock.
fn unrefreshed_for(refreshed: DateTime<Utc>, now: DateTime<Utc>, stale_after: Duration) -> bool {
    now.signed_duration_since(refreshed)
        .to_std()
        .map(|age| age > stale_after)
        .unwrap_or(false)
}

/// Every lock in the repository, with staleness judged against `now`, a
/// time by the storage clock (e.g. a lock of one's own: [`LockGuard::created`]).
/// A lock that cannot be opened or parsed is listed too, as held by an
/// unknown holder ([`LockEntry::unreadable`]); an error reading the storage
/// fails the listing.
pub async fn list_locks(repo: &Repository, now: DateTime<Utc>) -> Result<Vec<LockEntry>> {
    let stale_after = repo.lock_options().stale_after;
    let mut out = Vec::new();
    for o in repo.storage().list(LOCKS_PREFIX).await? {
        let bytes = match repo.storage().get(&o.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let (doc, unreadable, stale) = match open_doc::<LockDoc>(repo.key(), "lock", &o.key, &bytes)
        {
            Ok(doc) => {
                let stale = is_stale(&doc, o.last_modified, now, stale_after);
                (doc, None, stale)
            }
            Err(e) => (
                LockDoc::unknown_holder(),
                Some(e.to_string()),
                unrefreshed_for(o.last_modified, now, stale_after),
            ),
        };
        out.push(LockEntry {
            key: o.key,
            doc,
            unreadable,
            refreshed: o.last_modified,
            stale_at: o.last_modified
                + chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX),
            stale,
        });
    }
    Ok(out)
}

/// Why a held lock was lost; shared between a guard and its refresher.
#[derive(Debug, Default)]
struct Held {
    lost: Mutex<Option<String>>,
}

impl Held {
    fn lose(&self, why: String) {
        let mut l = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        if l.is_none() {
            tracing::error!("{why}");
            *l = Some(why);
        }
    }

    fn lost(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A held lock. Refreshed in the background; release it with
/// [`LockGuard::release`] (dropping it removes it in a background task:
/// see [`settle_releases`]).
pub struct LockGuard {
    repo: Repository,
    key: String,
    doc: LockDoc,
    held: Arc<Held>,
    refresher: tokio::task::JoinHandle<()>,
    released: bool,
    /// Stale locks of others this acquisition removed.
    swept: Vec<LockEntry>,
}

impl LockGuard {
    pub fn id(&self) -> &str {
        id_of_key(&self.key)
    }

    /// When the lock was created, by the storage clock.
    pub fn created(&self) -> DateTime<Utc> {
        self.doc.created
    }

    /// Fails with [`RepoError::LockLost`] when the refresher found the lock
    /// removed or could not refresh it for too long. No request.
    pub fn ensure_held(&self) -> Result<()> {
        match self.held.lost() {
            Some(why) => Err(RepoError::LockLost(why)),
            None => Ok(()),
        }
    }

    /// [`LockGuard::ensure_held`], then asks the storage that the lock
    /// still exists: call it right before committing.
    pub async fn confirm(&self) -> Result<()> {
        self.ensure_held()?;
        match self.repo.storage().head(&self.key).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                self.held.lose(gone_message(&self.doc.operation, &self.key));
                self.ensure_held()
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Rewrites the lock and returns the storage time of that write: a
    /// fence. Everything this process stored before the call is visible to
    /// any request that the storage receives after the returned time
    /// (prune dates condemnations with it, see `prune`).
    pub async fn touch(&self) -> Result<DateTime<Utc>> {
        self.ensure_held()?;
        let storage = self.repo.storage();
        storage
            .put(
                &self.key,
                Bytes::from(seal_doc(self.repo.key(), "lock", &self.doc)?),
            )
            .await?;
        Ok(storage.head(&self.key).await?.last_modified)
    }

    pub async fn release(mut self) -> Result<()> {
        self.refresher.abort();
        self.released = true;
        self.repo.storage().delete(&self.key).await?;
        Ok(())
    }
}

/// Lock deletions started by dropped guards, not yet awaited.
fn pending() -> &'static Mutex<Vec<tokio::task::JoinHandle<()>>> {
    static PENDING: OnceLock<Mutex<Vec<tokio::task::JoinHandle<()>>>> = OnceLock::new();
    PENDING.get_or_init(Default::default)
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.refresher.abort();
        if !self.released
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let storage = Arc::clone(self.repo.storage());
            let key = self.key.clone();
            let task = handle.spawn(async move {
                if let Err(e) = storage.delete(&key).await {
                    tracing::warn!("could not remove lock {key}: {e}; it goes stale on its own");
                }
            });
            let mut p = pending().lock().unwrap_or_else(PoisonError::into_inner);
            p.retain(|t| !t.is_finished());
            p.push(task);
        }
    }
}

/// Waits (at most `timeout`) for the deletions of locks whose guards were
/// dropped: call it before the runtime shuts down (Ctrl-C), or after
/// abandoning an operation, so that its lock is gone, not left to go stale.
pub async fn settle_releases(timeout: Duration) {
    let tasks = std::mem::take(&mut *pending().lock().unwrap_or_else(PoisonError::into_inner));
    if tasks.is_empty() {
        return;
    }
    if tokio::time::timeout(timeout, futures::future::join_all(tasks))
        .await
        .is_err()
    {
        tracing::warn!("some locks could not be removed in time; they go stale on their own");
    }
}

fn gone_message(operation: &str, key: &str) -> String {
    format!(
        "the {operation}'s repository lock {key} was removed by someone else (`lifeboat unlock --all`, or another process judged it stale); stopping without committing, since a prune may now delete data it relies on. Run it again"
    )
}

/// How one refresh ended.
enum Refresh {
    Done,
    Gone,
    Failed(String),
}

async fn refresh_once(storage: &dyn Storage, key: &str, bytes: &Bytes) -> Refresh {
    match storage.head(key).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Refresh::Gone,
        Err(e) => return Refresh::Failed(e.to_string()),
    }
    match storage.put(key, bytes.clone()).await {
        Ok(()) => Refresh::Done,
        Err(e) => Refresh::Failed(e.to_string()),
    }
}

async fn refresh_loop(
    storage: Arc<dyn Storage>,
    key: String,
    operation: String,
    bytes: Bytes,
    opts: LockOptions,
    held: Arc<Held>,
) {
    let mut last_ok = Instant::now();
    let mut wait = opts.refresh;
    loop {
        tokio::time::sleep(wait).await;
        match refresh_once(storage.as_ref(), &key, &bytes).await {
            Refresh::Done => {
                last_ok = Instant::now();
                wait = opts.refresh;
            }
            Refresh::Gone => {
                held.lose(gone_message(&operation, &key));
                return;
            }
            Refresh::Failed(e) => {
                let since = last_ok.elapsed();
                if since >= opts.give_up_after() {
                    held.lose(format!(
                        "could not refresh the {operation}'s repository lock {key} for {} s (last error: {e}); stopping without committing before another process may judge the lock stale. Fix the storage and run it again",
                        since.as_secs()
                    ));
                    return;
                }
                tracing::warn!("could not refresh lock {key}: {e}; trying again");
                wait = (opts.refresh / 4).max(Duration::from_millis(10));
            }
        }
    }
}

/// Takes a lock. An exclusive lock conflicts with another live exclusive
/// lock: then it fails with [`RepoError::Locked`], naming the holder, or,
/// with [`LockOptions::retry`], waits for it with backoff up to that long.
/// Stale locks are removed.
pub async fn acquire(repo: &Repository, mode: LockMode, operation: &str) -> Result<LockGuard> {
    let opts = repo.lock_options();
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        match try_acquire(repo, mode, operation).await {
            Err(RepoError::Locked(holder)) if started.elapsed() < opts.retry => {
                let left = opts.retry.saturating_sub(started.elapsed());
                let wait = backoff.min(left).max(Duration::from_millis(1));
                tracing::info!(
                    "waiting {} ms for a conflicting lock (--retry-lock, {} s left): {holder}",
                    wait.as_millis(),
                    left.as_secs()
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(RepoError::Locked(holder)) if !opts.retry.is_zero() => {
                return Err(RepoError::Locked(format!(
                    "still locked after waiting {} s (--retry-lock): {holder}",
                    opts.retry.as_secs()
                )));
            }
            r => return r,
        }
    }
}

/// [`acquire`] for work that only reads. When the storage refuses to write
/// the lock (read-only mount or credentials, full disk), returns `None`
/// after a warning and the caller reads without a lock (see the module
/// documentation for what that risks).
pub async fn acquire_for_reading(
    repo: &Repository,
    mode: LockMode,
    operation: &str,
) -> Result<Option<LockGuard>> {
    match acquire(repo, mode, operation).await {
        Ok(g) => Ok(Some(g)),
        Err(RepoError::Storage(e)) if e.write_refused => {
            tracing::warn!(
                "cannot write a lock to {} ({e}): the {operation} goes on without one. A prune running meanwhile could delete data it reads; it would then fail naming the missing pack, never return wrong data",
                repo.location()
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn try_acquire(repo: &Repository, mode: LockMode, operation: &str) -> Result<LockGuard> {
    let opts = repo.lock_options();
    let key = format!("{LOCKS_PREFIX}{}", hex::encode(random_array::<16>()?));
    let mut doc = LockDoc {
        version: DOC_VERSION,
        mode,
        operation: operation.to_string(),
        hostname: hostname(),
        username: username(),
        pid: std::process::id(),
        // Until the storage time is known, the lock claims to be older than
        // anything: a reader between the two puts must not take a local
        // clock that runs ahead for the lock's age (prune would think the
        // holder started after a condemnation it never saw).
        created: DateTime::<Utc>::UNIX_EPOCH,
        instance: instance_id().to_string(),
        boot_id: boot_id(),
        pid_namespace: pid_namespace(),
        start_time: own_start_time(),
    };
    let storage = repo.storage();
    storage
        .put(&key, Bytes::from(seal_doc(repo.key(), "lock", &doc)?))
        .await?;
    // Use the storage clock from here on.
    let created = match storage.head(&key).await {
        Ok(o) => o.last_modified,
        Err(e) => {
            let _ = storage.delete(&key).await;
            return Err(e.into());
        }
    };
    doc.created = created;
    let bytes = Bytes::from(seal_doc(repo.key(), "lock", &doc)?);
    if let Err(e) = storage.put(&key, bytes.clone()).await {
        let _ = storage.delete(&key).await;
        return Err(e.into());
    }

    let others = match list_locks(repo, created).await {
        Ok(o) => o,
        Err(e) => {
            let _ = storage.delete(&key).await;
            return Err(e);
        }
    };
    let mut swept = Vec::new();
    for other in &others {
        if other.key == key {
            continue;
        }
        if other.stale {
            tracing::info!("removing stale lock: {}", other.describe());
            if storage.delete(&other.key).await.is_ok() {
                swept.push(other.clone());
            }
            continue;
        }
        if mode == LockMode::Shared && other.unreadable.is_some() {
            // No conflict for shared work, but prune and check will wait.
            tracing::warn!("{}; {}", other.describe(), other.if_gone());
        }
        if mode == LockMode::Exclusive && other.doc.mode == LockMode::Exclusive {
            let _ = storage.delete(&key).await;
            return Err(RepoError::Locked(format!(
                "{}. Wait for it (pass --retry-lock DURATION to wait automatically); {}",
                other.describe(),
                other.if_gone()
            )));
        }
    }

    let held = Arc::new(Held::default());
    let refresher = tokio::spawn(refresh_loop(
        Arc::clone(storage),
        key.clone(),
        operation.to_string(),
        bytes,
        opts,
        Arc::clone(&held),
    ));
    Ok(LockGuard {
        repo: repo.clone(),
        key,
        doc,
        held,
        refresher,
        released: false,
        swept,
    })
}

/// Removes the lock `id` (its id, as `describe` and `if_gone` name it, or
/// a prefix naming only it), stale or not: for a holder known to be gone
/// whose lock has not gone stale yet (another host's or container's, whose
/// process this host cannot see), or a lock that could not be read (there
/// is no holder process to check). Refused when its holder visibly runs on
/// this host ([`holder_runs`]). A lock that taking `unlock`'s own lock
/// already removed as stale (e.g. its PID now another process's) counts as
/// removed by this call. Returns it.
pub async fn unlock_id(repo: &Repository, id: &str) -> Result<LockEntry> {
    if id.is_empty() {
        return Err(RepoError::Invalid {
            what: BadInput::Parameter,
            message: "--id needs a lock's id (as a lock's description names it)".into(),
        });
    }
    let own = acquire(repo, LockMode::Shared, "unlock").await?;
    let now = own.created();
    let result = async {
        let named = |l: &LockEntry| id_of_key(&l.key) != own.id() && id_of_key(&l.key).starts_with(id);
        // Taking our own lock removed the stale ones it saw (a holder gone
        // from this host, or whose PID another process now has): one of
        // them may be the lock named.
        let mut matching: Vec<LockEntry> = own.swept.iter().filter(|l| named(l)).cloned().collect();
        let swept = matching.len();
        matching.extend(list_locks(repo, now).await?.into_iter().filter(|l| named(l)));
        match matching.as_slice() {
            [one] if swept == 1 => Ok(one.clone()),
            // Its holder runs here: removing the lock would let, say, a
            // prune delete what a running backup is writing.
            [one]
                if one.unreadable.is_none()
                    && in_this_pid_space(&one.doc)
                    && holder_runs(&one.doc) =>
            {
                Err(RepoError::Invalid {
                    what: BadInput::Parameter,
                    message: format!(
                        "{}: process {} still runs on this host, so its lock still protects what it \
                         does; stop it first (kill -TERM {}), after which the next operation finds \
                         the lock stale; nothing was removed",
                        one.describe(),
                        one.doc.pid,
                        one.doc.pid
                    ),
                })
            }
            [one] => {
                repo.storage().delete(&one.key).await?;
                Ok(one.clone())
            }
            [] => Err(RepoError::Invalid {
                what: BadInput::Parameter,
                message: format!(
                    "no lock {id} in the repository (already removed, or gone stale and removed by \
                 another operation); nothing was removed"
                ),
            }),
            many => Err(RepoError::Invalid {
                what: BadInput::Parameter,
                message: format!(
                    "{} locks start with {id}: give more of the id; nothing was removed",
                    many.len()
                ),
            }),
        }
    }
    .await;
    let _ = own.release().await;
    result
}

/// Removes stale locks (or, with `all`, every lock but its own). Staleness
/// is judged by the storage clock: `unlock` takes a shared lock of its own
/// to read that clock. Returns what was removed.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<LockEntry>> {
    let mut own = acquire(repo, LockMode::Shared, "unlock").await?;
    let now = own.created();
    // Taking its own lock already removed the stale ones it saw.
    let mut removed = std::mem::take(&mut own.swept);
    let result = async {
        for l in list_locks(repo, now).await? {
            if id_of_key(&l.key) == own.id() {
                continue;
            }
            if l.stale || all {
                repo.storage().delete(&l.key).await?;
                removed.push(l);
            }
        }
        Ok::<(), RepoError>(())
    }
    .await;
    let _ = own.release().await;
    result.map(|()| removed)
}
