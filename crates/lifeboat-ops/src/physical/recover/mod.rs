//! `recover postgres --source NAME --before T`: the source's server
//! recovered to just before a moment, in place (docs/physical.md,
//! "Recovering a source to a moment").
//!
//! Point-in-time recovery is server-wide: every database of the server goes
//! back. The flow, in order:
//!
//! 1. **Checks, nothing changed** ([`checks`]): the moment is in the past;
//!    the source has `postgres.pgdata` (agent mode); the server is a primary
//!    running on that directory, by what it and the directory say
//!    ([`plan::is_source_dir`]); the WAL up to now is in the repository (a
//!    segment switch, waited for); a base backup of this server's system
//!    identifier reaches the moment, with no gap in the archive past it;
//!    server binaries of its major version; room beside the directory; a
//!    `TMPDIR` the recovery server's run directory can be made in and its
//!    user can enter.
//! 2. Writers quiesced as for `restore postgres` (`crate::quiesce`); the
//!    RTO clock starts.
//! 3. The server stopped with its control ([`swap::Server`]).
//! 4. `restore physical`'s restore and recovery
//!    ([`restore::restore_prepared`]) into `<pgdata>.recovering-<stamp>`
//!    beside it, to the moment, exclusive.
//! 5. Swap: `<pgdata>` → `<pgdata>.replaced-<stamp>` (kept until
//!    `--drop-replaced`), the recovered directory → `<pgdata>`.
//! 6. The server started with its control and verified: a primary of the
//!    same system, the source's verification queries. The new timeline's
//!    history file was marked ready before the start, so the server
//!    archives it (the private server ran with archiving off).
//! 7. Writers back; RTO and RPO recorded (`recoveries/<id>`).
//!
//! Any failure or interruption after step 3 puts the old directory back
//! and starts it, then brings the writers back, and fails (exit 130 for an
//! interruption): nothing is lost.

mod checks;
mod database;
pub mod plan;
pub mod swap;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_dr::record::{self, DrillStep, RecoveryRecord};
use lifeboat_kube::client::ClusterOptions;
use lifeboat_postgres::basebackup::recovery::Target;
use lifeboat_repo::Repository;
use lifeboat_repo::lock::{LockMode, acquire_for_reading};
use serde::Serialize;

use super::restore::{self, QueryResult, RestoreRequest};
use crate::context::Ctx;
use crate::error::{Error, FAILURE, INTERRUPTED, Result, fail};
use crate::postgres::restore::steps::{Interruption, Signals};
use crate::quiesce::{self, Quiesced};

pub use database::{DatabaseOutcome, recover_database};

/// What `recover postgres` is asked to do.
#[derive(Debug, Clone)]
pub struct RecoverRequest {
    /// A configured postgres source with `postgres.pgdata`.
    pub source: String,
    /// Recover to just before this moment (exclusive).
    pub before: DateTime<Utc>,
    /// Remove the directories kept aside (this one's too) once recovered.
    pub drop_replaced: bool,
    /// How long the recovery may run.
    pub timeout: Duration,
    /// How long to wait for the WAL up to now to reach the repository.
    pub archive_timeout: Duration,
    /// The cluster of the writers to quiesce.
    pub cluster: ClusterOptions,
    /// `--database DB`: only this database, through a side server
    /// ([`recover_database`]); `None`: the whole server in place.
    pub database: Option<String>,
    /// Where the side server's temporary data directory is created
    /// (`--side-dir`; default `TMPDIR`).
    pub side_dir: Option<PathBuf>,
}

/// What was recovered (`--json` shows it as it is).
#[derive(Debug, Clone, Serialize)]
pub struct RecoverOutcome {
    /// The recovery record's id (`recoveries/<id>`), or `not-recorded`.
    pub record: String,
    /// `replace`.
    pub mode: &'static str,
    pub source: String,
    pub pgdata: PathBuf,
    /// Where the old data directory was kept (absent once dropped).
    pub replaced: PathBuf,
    /// Directories kept aside that `--drop-replaced` removed.
    pub dropped: Vec<PathBuf>,
    pub snapshot: String,
    pub before: DateTime<Utc>,
    /// PostgreSQL's line saying where it stopped.
    pub reached: String,
    pub replay_lsn: Option<String>,
    pub replay_time: Option<DateTime<Utc>>,
    pub timeline: Option<u32>,
    /// The segment holding the WAL up to the recovery's start.
    pub archived_through: String,
    pub queries: Vec<QueryResult>,
    pub writers: &'static str,
    pub rto_seconds: f64,
    pub rpo_seconds: Option<f64>,
    pub restore_seconds: f64,
    pub recovery_seconds: f64,
}

/// The recovery records (`recoveries/`), oldest first; with `source`, only
/// that source's. `recover list` prints them.
pub async fn list(
    repo: &Repository,
    source: Option<&str>,
) -> Result<Vec<record::Stored<RecoveryRecord>>> {
    Ok(record::recoveries(repo)
        .await?
        .into_iter()
        .filter(|r| source.is_none_or(|s| r.record.source == s))
        .collect())
}

/// Recovers the source as `req` asks (see the module docs).
pub async fn recover(ctx: &Ctx, req: RecoverRequest) -> Result<RecoverOutcome> {
    if req.database.is_some() || req.side_dir.is_some() {
        return Err(crate::error::usage(
            "--database and --side-dir recover one database through a side server: \
             recover_database, not the in-place recovery",
        ));
    }
    let mut signals = Signals::install();
    let found = checks::server(ctx, &req).await?;
    let repo = ctx.open().await?;
    // Held until the end: prune deletes no WAL while it is live, and the
    // base backup cannot be forgotten from under the recovery.
    let lock = acquire_for_reading(&repo, LockMode::Shared, "recover postgres").await?;
    let result = recover_locked(ctx, &req, &repo, found, &mut signals).await;
    if let Some(lock) = lock {
        let _ = lock.release().await;
    }
    result
}

/// One step of the record (the drill records' shape).
fn step(name: &str, ok: bool, since: Instant, detail: String) -> DrillStep {
    DrillStep {
        name: name.into(),
        ok,
        seconds: since.elapsed().as_secs_f64(),
        detail,
    }
}

/// Steps, as the record lists them.
#[derive(Default)]
struct Steps(Vec<DrillStep>);

impl Steps {
    fn done(&mut self, ctx: &Ctx, name: &str, ok: bool, since: Instant, detail: String) {
        if !ctx.global.quiet {
            ctx.reporter().note(&format!("{name}: {detail}"));
        }
        self.0.push(step(name, ok, since, detail));
    }
}

async fn recover_locked(
    ctx: &Ctx,
    req: &RecoverRequest,
    repo: &Repository,
    found: checks::Found,
    signals: &mut Signals,
) -> Result<RecoverOutcome> {
    let checked = Instant::now();
    let ready = tokio::select! {
        r = checks::repository(ctx, req, repo, &found) => r?,
        i = signals.next() => return Err(interrupted(i, "while checking; nothing was changed")),
    };
    let checks::Found { src, pgdata, .. } = &found;
    let mut steps = Steps::default();
    steps.done(
        ctx,
        "check",
        true,
        checked,
        format!(
            "{} runs on {} ({}); base backup {} reaches {}; WAL archived through {}",
            src.name,
            pgdata.display(),
            found.proven_by,
            ready.prep.snap.short_id(),
            req.before.to_rfc3339(),
            ready.archived_through
        ),
    );

    // The writers, then the server.
    let started_at = Utc::now();
    let started = Instant::now();
    let quiescer = quiesce::from_config(
        src.config.as_ref().and_then(|c| c.quiesce.as_ref()),
        &src.name,
        req.cluster.clone(),
        quiesce::stderr_notify(ctx.global.quiet),
    )
    .map_err(|e| crate::error::usage(e.to_string()))?;
    let has_writers = quiescer.stops_writers();
    let described = quiescer.describe();
    if has_writers && !ctx.global.quiet {
        ctx.reporter().note(&format!(
            "if this recovery is killed, start the server on {} and bring the writers back \
             yourself: {}",
            pgdata.display(),
            quiescer.manual_resume_hint()
        ));
    }
    let guard = tokio::select! {
        r = Quiesced::stop(quiescer) => r?,
        i = signals.next() => return Err(interrupted(i, "while stopping the writers; nothing was changed")),
    };
    steps.done(ctx, "quiesce", true, started, described);
    let since = Instant::now();
    if let Err(e) = found.server.stop().await {
        // Still running, or stopped half-way: running again either way.
        if !found.server.running() {
            let _ = found.server.start().await;
        }
        let _ = guard.resume().await;
        return Err(e.context("nothing was changed; the writers were brought back"));
    }
    steps.done(
        ctx,
        "stop",
        true,
        since,
        format!("{} stopped", pgdata.display()),
    );

    let stamp = plan::stamp(started_at);
    let dirs = Dirs {
        pgdata: pgdata.clone(),
        recovering: plan::sibling(pgdata, "recovering", &stamp),
        aside: plan::sibling(pgdata, "replaced", &stamp),
        swapped: AtomicBool::new(false),
    };
    let replaced = tokio::select! {
        r = replace(ctx, req, repo, &found, &ready, &dirs, &mut steps) => r,
        i = signals.next() => Err(interrupted(i, "during the recovery")),
    };
    let done = match replaced {
        Ok(done) => done,
        Err(e) => {
            let e = put_back(ctx, &found, &dirs, guard, has_writers, e).await;
            let rec = failed_record(req, &found, &ready, started_at, started, &e, steps);
            store(ctx, repo, &rec).await;
            return Err(e);
        }
    };
    let since = Instant::now();
    guard.resume().await.map_err(|e| {
        e.context("the server was recovered and verified, but bringing the writers back failed")
    })?;
    let rto = started.elapsed().as_secs_f64();
    steps.done(
        ctx,
        "resume",
        true,
        since,
        if has_writers {
            "writers back"
        } else {
            "no writers configured"
        }
        .into(),
    );
    let rpo = plan::rpo_seconds(req.before, done.replay_time);
    let mut outcome = RecoverOutcome {
        record: String::new(),
        mode: "replace",
        source: src.name.clone(),
        pgdata: pgdata.clone(),
        replaced: dirs.aside.clone(),
        dropped: Vec::new(),
        snapshot: ready.prep.snap.id.clone(),
        before: req.before,
        reached: done.reached,
        replay_lsn: done.replay_lsn,
        replay_time: done.replay_time,
        timeline: done.timeline,
        archived_through: ready.archived_through.clone(),
        queries: done.queries,
        writers: if has_writers {
            "resumed"
        } else {
            "none configured"
        },
        rto_seconds: rto,
        rpo_seconds: rpo,
        restore_seconds: done.restore_seconds,
        recovery_seconds: done.recovery_seconds,
    };
    let rec = RecoveryRecord {
        version: record::RECORD_VERSION,
        source: src.name.clone(),
        mode: "replace".into(),
        database: None,
        snapshot: outcome.snapshot.clone(),
        snapshot_time: ready.prep.snap.snapshot.time,
        target: req.before,
        started: started_at,
        finished: Utc::now(),
        ok: true,
        failure: None,
        rto_seconds: rto,
        rpo_seconds: rpo,
        replay_time: outcome.replay_time,
        replay_lsn: outcome.replay_lsn.clone(),
        timeline: outcome.timeline,
        pgdata: pgdata.display().to_string(),
        replaced: Some(dirs.aside.display().to_string()),
        hostname: lifeboat_repo::keys::hostname(),
        program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        steps: steps.0,
    };
    outcome.record = store(ctx, repo, &rec).await;
    if req.drop_replaced {
        outcome.dropped = swap::drop_replaced(pgdata)
            .map_err(|e| e.context("recovered, but removing the directories kept aside failed"))?;
    }
    Ok(outcome)
}

/// The data directory, the recovery's directory beside it and where the
/// old one goes; `swapped` once the recovered one is in place.
struct Dirs {
    pgdata: PathBuf,
    recovering: PathBuf,
    aside: PathBuf,
    swapped: AtomicBool,
}

/// What the recovered, started server says.
struct Replaced {
    reached: String,
    replay_lsn: Option<String>,
    replay_time: Option<DateTime<Utc>>,
    timeline: Option<u32>,
    queries: Vec<QueryResult>,
    restore_seconds: f64,
    recovery_seconds: f64,
}

/// Steps 4 to 6 (module docs), with the server stopped. An `Err` (or this
/// future dropped) leaves `dirs` for [`put_back`].
async fn replace(
    ctx: &Ctx,
    req: &RecoverRequest,
    repo: &Repository,
    found: &checks::Found,
    ready: &checks::Ready,
    dirs: &Dirs,
    steps: &mut Steps,
) -> Result<Replaced> {
    let since = Instant::now();
    let restore_req = RestoreRequest {
        snapshot: ready.prep.snap.id.clone(),
        source: None,
        pgdata: dirs.recovering.clone(),
        target: Target::Time(req.before),
        inclusive: false,
        timeout: req.timeout,
    };
    let out = restore::restore_prepared(
        ctx,
        repo,
        &ready.prep,
        Some(&found.src),
        &ready.bin,
        dirs.recovering.clone(),
        &restore_req,
    )
    .await?;
    check_before(req.before, out.replay_time)?;
    steps.done(
        ctx,
        "recover",
        true,
        since,
        format!(
            "{}; replayed up to {} (last commit {})",
            out.reached,
            out.replay_lsn.as_deref().unwrap_or("?"),
            out.replay_time
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "none past the base backup".into())
        ),
    );
    mark_history_ready(&dirs.recovering, out.timeline)?;

    let since = Instant::now();
    swap::swap_in(&dirs.pgdata, &dirs.recovering, &dirs.aside)?;
    dirs.swapped.store(true, Ordering::SeqCst);
    found.server.start().await?;
    steps.done(
        ctx,
        "swap",
        true,
        since,
        format!(
            "{} holds the recovered cluster and runs; the old one is {}",
            dirs.pgdata.display(),
            dirs.aside.display()
        ),
    );
    let since = Instant::now();
    let queries = checks::verify_started(&found.src, found.system_identifier).await?;
    steps.done(
        ctx,
        "verify",
        true,
        since,
        format!(
            "a primary of system {}; {} verification quer{}",
            found.system_identifier,
            queries.len(),
            if queries.len() == 1 { "y" } else { "ies" }
        ),
    );
    Ok(Replaced {
        reached: out.reached,
        replay_lsn: out.replay_lsn,
        replay_time: out.replay_time,
        timeline: out.timeline,
        queries,
        restore_seconds: out.restore_seconds,
        recovery_seconds: out.recovery_seconds,
    })
}

/// The last replayed commit must be before the moment (the recovery was
/// exclusive: a commit at the moment itself is not included).
fn check_before(before: DateTime<Utc>, replay: Option<DateTime<Utc>>) -> Result<()> {
    match replay {
        Some(t) if t >= before => Err(fail(
            crate::error::VERIFY_FAILED,
            format!(
                "the recovered server replayed a commit at {}, not before {}",
                t.to_rfc3339(),
                before.to_rfc3339()
            ),
        )),
        _ => Ok(()),
    }
}

/// Marks the promoted timeline's history file ready for archiving
/// (`pg_wal/archive_status/<TLI>.history.ready`): the private server ran
/// with `archive_mode = off`, so PostgreSQL did not, and a later recovery
/// needs the file to follow this timeline. The server started on the
/// directory archives it first, with its own `archive_command`, as the
/// server's user (a push by this process could leave directories in a
/// local repository that user cannot write).
fn mark_history_ready(dir: &Path, timeline: Option<u32>) -> Result<()> {
    let Some(tl) = timeline.filter(|t| *t > 1) else {
        return Ok(());
    };
    let name = format!("{tl:08X}.history");
    if !dir.join("pg_wal").join(&name).exists() {
        return Err(fail(
            FAILURE,
            format!(
                "the promoted server left no pg_wal/{name} in {}",
                dir.display()
            ),
        ));
    }
    let ready = dir.join(format!("pg_wal/archive_status/{name}.ready"));
    std::fs::write(&ready, b"")
        .map_err(|e| fail(FAILURE, format!("writing {}: {e}", ready.display())))?;
    let owner = lifeboat_postgres::basebackup::server::server_owner()
        .map_err(|e| fail(FAILURE, e.to_string()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&ready, Some(uid), Some(gid))
            .map_err(|e| fail(FAILURE, format!("chown {}: {e}", ready.display())))?;
    }
    Ok(())
}

/// After a failure (or interruption) with the server stopped: the old data
/// directory back in place and started, the writers back. Returns the error
/// to report, saying what was done.
async fn put_back(
    ctx: &Ctx,
    found: &checks::Found,
    dirs: &Dirs,
    guard: Quiesced,
    has_writers: bool,
    e: Error,
) -> Error {
    let swapped = dirs.swapped.load(Ordering::SeqCst);
    ctx.reporter().note(&format!(
        "the recovery failed ({}); putting the old data directory back",
        e.message
    ));
    let restored = async {
        if swapped && found.server.running() {
            found.server.stop().await?;
        }
        swap::put_back(&dirs.pgdata, &dirs.recovering, &dirs.aside, swapped)?;
        found.server.start().await
    }
    .await;
    let code = e.code();
    let code = if code == crate::error::OK {
        FAILURE
    } else {
        code
    };
    match restored {
        Ok(()) => {
            let writers = match guard.resume().await {
                Ok(()) if has_writers => "the writers were brought back".to_string(),
                Ok(()) => "no writers are configured".to_string(),
                Err(r) => format!("bringing the writers back failed: {r}"),
            };
            fail(
                code,
                format!(
                    "{}. The old data directory was put back in {} and its server started; {writers}. \
                     Nothing was lost",
                    e.message,
                    dirs.pgdata.display()
                ),
            )
        }
        Err(r) => {
            let hint = guard.leave_down();
            fail(
                FAILURE,
                format!(
                    "{}; putting the old data directory back failed too: {}. The old data \
                     directory is {} (untouched); put it at {} and start the server yourself. \
                     THE WRITERS ARE LEFT STOPPED ({hint})",
                    e.message,
                    r.message,
                    if swapped && dirs.aside.exists() {
                        dirs.aside.display().to_string()
                    } else {
                        dirs.pgdata.display().to_string()
                    },
                    dirs.pgdata.display()
                ),
            )
        }
    }
}

fn interrupted(i: Interruption, when: &str) -> Error {
    fail(
        INTERRUPTED,
        match i {
            Interruption::Term => format!("terminated (SIGTERM) {when}"),
            Interruption::CtrlC => format!("interrupted {when}"),
        },
    )
}

fn failed_record(
    req: &RecoverRequest,
    found: &checks::Found,
    ready: &checks::Ready,
    started_at: DateTime<Utc>,
    started: Instant,
    e: &Error,
    mut steps: Steps,
) -> RecoveryRecord {
    steps
        .0
        .push(step("recover", false, started, e.message.clone()));
    RecoveryRecord {
        version: record::RECORD_VERSION,
        source: found.src.name.clone(),
        mode: "replace".into(),
        database: None,
        snapshot: ready.prep.snap.id.clone(),
        snapshot_time: ready.prep.snap.snapshot.time,
        target: req.before,
        started: started_at,
        finished: Utc::now(),
        ok: false,
        failure: Some(e.message.clone()),
        rto_seconds: started.elapsed().as_secs_f64(),
        rpo_seconds: None,
        replay_time: None,
        replay_lsn: None,
        timeline: None,
        pgdata: found.pgdata.display().to_string(),
        replaced: None,
        hostname: lifeboat_repo::keys::hostname(),
        program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        steps: steps.0,
    }
}

/// Stores the record; a failure to store is a warning (the recovery itself
/// is done either way). Its id, or `not-recorded`.
async fn store(ctx: &Ctx, repo: &Repository, rec: &RecoveryRecord) -> String {
    match record::store_recovery(repo, rec).await {
        Ok(id) => id,
        Err(e) => {
            ctx.reporter().note(&format!(
                "warning: the recovery record could not be stored in the repository: {e}"
            ));
            "not-recorded".into()
        }
    }
}
