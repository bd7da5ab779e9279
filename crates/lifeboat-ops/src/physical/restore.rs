//! `restore physical`: point-in-time recovery into an empty directory.
//!
//! Steps, in order: refuse a non-empty `--pgdata` (nothing touched);
//! choose the base backup that reaches the target ([`super::plan`]);
//! check the archive past it (for `--to-latest`, a gap is an error before
//! anything is written); find the server binaries of the backup's major
//! version (missing: exit 2, also before anything is written); write the
//! files (modes kept, every blob verified, [`DirWriter`]; a standby's
//! `standby.signal` removed); add the recovery settings to
//! `postgresql.auto.conf` and `recovery.signal`; run the backup's major version of `postgres` on a
//! private socket until it has recovered and promoted (bounded, progress
//! every 10 s); verify from the server's log and its replay position that
//! the target itself was reached; run the source's verification queries;
//! stop the server cleanly; put `postgresql.auto.conf` back as the backup
//! had it. The directory is then ready for the user's own server to start
//! as a primary on the new timeline.
//!
//! The steps are public ([`prepare`], [`server_for`], [`write`],
//! [`recover`], [`run_queries`]) for `drill --physical`
//! (`crate::drill::physical`), which runs them into a temporary directory.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_postgres::basebackup::recovery::{self, LogVerdict, Target};
use lifeboat_postgres::basebackup::server::{RecoveryServer, chown_tree, server_owner};
use lifeboat_postgres::basebackup::{Lsn, SqlError};
use lifeboat_postgres::conn::pg_message;
use lifeboat_postgres::wal::SegmentName;
use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::lock::{LockMode, acquire_for_reading};
use lifeboat_repo::physical::{DATA_ITEM, DirWriter, FILES_ITEM, FileList};
use lifeboat_repo::restore::{read_item, restore_item};
use lifeboat_repo::snapshot::SnapshotRef;
use serde::Serialize;

use super::plan::{self, Candidate, archive_gaps, check_replay, choose, reaches, why_not};
use super::{PhysicalFacts, physical_facts};
use crate::context::Ctx;
use crate::error::{Error, FAILURE, INTEGRITY, NOT_FOUND, Result, VERIFY_FAILED, fail, usage};

/// What `restore physical` is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// `latest` (the newest base backup that reaches the target) or an id.
    pub snapshot: String,
    /// Only snapshots of this source; its verification queries run after.
    pub source: Option<String>,
    pub pgdata: PathBuf,
    pub target: Target,
    /// Stop after the target (PostgreSQL's default) rather than before it.
    pub inclusive: bool,
    /// How long recovery may run.
    pub timeout: Duration,
}

/// A verification query's result on the recovered server.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub name: String,
    pub value: Option<String>,
}

/// What was restored, recovered and verified.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub source: String,
    pub pgdata: PathBuf,
    pub target: String,
    /// PostgreSQL's own line saying where it stopped (or that archive
    /// recovery completed, for `--to-latest`).
    pub reached: String,
    pub replay_lsn: Option<String>,
    pub replay_time: Option<DateTime<Utc>>,
    /// The timeline the promoted server is on.
    pub timeline: Option<u32>,
    /// The last archived segment on the backup's timeline, when any.
    pub last_archived: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub queries: Vec<QueryResult>,
    pub restore_seconds: f64,
    pub recovery_seconds: f64,
}

/// `dir` must be absent or an empty directory.
pub fn check_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(usage(format!(
            "--pgdata {}: {e}; nothing was changed",
            dir.display()
        ))),
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(usage(format!(
                "--pgdata {} is not empty: a physical restore writes a whole data directory and \
                 only into an empty or absent one; nothing was changed. Choose another \
                 directory, or move this one aside",
                dir.display()
            ))),
        },
    }
}

fn sql_fail(code: i32, what: &str, e: &SqlError) -> Error {
    fail(code, format!("{what}: {}", pg_message(e)))
}

/// The base backup to restore: `spec` (an id) if it reaches `target`, or
/// the newest that does.
async fn pick(
    repo: &Repository,
    spec: &str,
    source: Option<&str>,
    system: Option<&str>,
    target: &Target,
) -> Result<(SnapshotRef, PhysicalFacts)> {
    if spec != "latest" {
        let snap = repo.find_snapshot(spec, source).await?;
        let facts = physical_facts(&snap)?;
        if let Some(id) = system.filter(|id| *id != facts.system_identifier) {
            return Err(usage(format!(
                "snapshot {} is a base backup of system {}, not of this server (system {id}); \
                 nothing was changed",
                snap.short_id(),
                facts.system_identifier
            )));
        }
        if !reaches(&facts, target) {
            return Err(fail(
                NOT_FOUND,
                format!(
                    "snapshot {} cannot reach {target}: {}; nothing was changed. Pick an older \
                     physical snapshot, or `latest`",
                    snap.short_id(),
                    why_not(&facts, target)
                ),
            ));
        }
        return Ok((snap, facts));
    }
    let mut snaps = Vec::new();
    let mut cands = Vec::new();
    for s in repo.snapshots().await? {
        if s.snapshot.kind != lifeboat_repo::physical::KIND
            || source.is_some_and(|src| s.snapshot.source != src)
        {
            continue;
        }
        let facts = physical_facts(&s)?;
        if system.is_some_and(|id| id != facts.system_identifier) {
            continue;
        }
        cands.push(Candidate {
            id: s.id.clone(),
            facts,
        });
        snaps.push(s);
    }
    let chosen =
        choose(&cands, target).map_err(|e| fail(NOT_FOUND, format!("{e}; nothing was changed")))?;
    let snap = snaps
        .into_iter()
        .find(|s| s.id == chosen.id)
        .expect("the chosen candidate is one of the snapshots");
    Ok((snap, chosen.facts.clone()))
}

/// The archive past the backup on the timeline recovery follows: its last
/// segment stored and the missing ones (names); see [`Prepared`].
async fn archive_after(
    repo: &Repository,
    f: &PhysicalFacts,
) -> Result<(Option<String>, Vec<String>)> {
    let seg = f.wal_segment_size.max(1 << 20);
    let archived = super::ArchivedWal::list(repo, seg).await?;
    // The timeline recovery follows: PostgreSQL's `recovery_target_timeline
    // = latest` takes the newest timeline whose history file is archived.
    let newest = plan::newest_timeline(f.timeline, archived.histories());
    let stop_seg = f.stop_lsn.0 / seg;
    let (last, missing) = if newest == f.timeline {
        let present = archived.on(f.timeline);
        let (later, missing) = archive_gaps(&present, stop_seg, 20);
        // The stop segment itself counts as archived (recovery reads past
        // the backup's end in it).
        let last = later.or_else(|| present.contains(&stop_seg).then_some(stop_seg));
        (last, missing)
    } else {
        // Past the switch the newest timeline's own segments are read;
        // its gaps between its first and last segment stop recovery too.
        let present = archived.on(newest);
        let first = present.iter().copied().min().unwrap_or(stop_seg);
        archive_gaps(&present, first.saturating_sub(1), 20)
    };
    let name = |n: u64| Lsn(n * seg).segment_name(newest, seg);
    Ok((last.map(name), missing.into_iter().map(name).collect()))
}

/// The last error `wal fetch` printed into the recovery server's log
/// (its standard error goes there), if any.
fn fetch_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
}

/// Why a recovery server that exited before it promoted failed, by its
/// log (`log` whole, `tail` its end, shown): PostgreSQL's "recovery ended
/// before the target" (the WAL ran out first: exit 7) or a `wal fetch
/// --fatal-errors` that aborted the recovery (7: the target was not
/// reached); any other exit (a server that did not start, a FATAL during
/// recovery) is the server's failure, exit 1, with its log.
fn stopped(target: &Target, log: &str, tail: &str, last_archived: Option<&str>) -> Error {
    match recovery::judge_log(target, log) {
        LogVerdict::EndedEarly(line) => fail(
            VERIFY_FAILED,
            format!(
                "recovery ended before reaching {target}: the archive's WAL ran out first \
                 (PostgreSQL: {line}). The last segment archived on the timeline recovery \
                 follows is {}; a segment missing before the target stops recovery there",
                last_archived.unwrap_or("none")
            ),
        ),
        _ => match fetch_error(log) {
            Some(line) => fail(
                VERIFY_FAILED,
                format!(
                    "recovery was aborted: fetching WAL from the repository failed ({line}); \
                     nothing past that point was recovered. The recovery server's log:\n{tail}"
                ),
            ),
            None => fail(
                FAILURE,
                format!(
                    "the recovery server stopped before recovery ended (it did not start, or \
                     failed during recovery); its log:\n{tail}"
                ),
            ),
        },
    }
}

/// Environment variables (name, value) a child process is given.
pub type EnvVars = Vec<(String, String)>;

/// The command the server runs to fetch WAL: this binary with the
/// configuration, repository and secret file this restore used (absolute
/// paths), and the environment variables it read them from.
fn restore_command(ctx: &Ctx) -> Result<(Vec<String>, EnvVars)> {
    let exe = std::env::current_exe()
        .map_err(|e| fail(FAILURE, format!("finding this program's path: {e}")))?;
    let abs = |p: &Path| -> Result<String> {
        std::path::absolute(p)
            .map(|p| p.display().to_string())
            .map_err(|e| fail(FAILURE, format!("{}: {e}", p.display())))
    };
    let mut argv = vec![exe.display().to_string()];
    let g = &ctx.global;
    let config = g.config.clone().or_else(|| {
        let p = PathBuf::from(crate::context::DEFAULT_CONFIG);
        (ctx.config.is_some() && p.exists()).then_some(p)
    });
    if let Some(c) = &config {
        argv.extend(["--config".into(), abs(c)?]);
    }
    if let Some(r) = &g.repo {
        let local = !r.contains("://");
        argv.extend([
            "--repo".into(),
            if local { abs(Path::new(r))? } else { r.clone() },
        ]);
    }
    if let Some(k) = &g.key_file {
        argv.extend(["--key-file".into(), abs(k)?]);
    } else if let Some(p) = &g.password_file {
        argv.extend(["--password-file".into(), abs(p)?]);
    }
    // --fatal-errors: a copy that cannot be read (damaged, a wrong key, the
    // storage or the repository's files unreadable by the server's user)
    // aborts the recovery instead of ending it there as if the archive
    // ended: never a silently shorter history.
    argv.extend(["wal", "fetch", "--fatal-errors", "%f", "%p"].map(String::from));
    // The settings Lifeboat reads from its environment (a passphrase in
    // LIFEBOAT_PASSWORD, S3 credentials) reach the command through the
    // server's environment, never through the configuration file.
    let env = std::env::vars()
        .filter(|(k, _)| {
            (k.starts_with("LIFEBOAT_") || k.starts_with("AWS_"))
                && k != "LIFEBOAT_CONFIG"
                && k != "LIFEBOAT_REPO"
        })
        .collect();
    Ok((argv, env))
}

/// The base backup chosen for a target and what the archive holds past
/// it: what `restore physical` and `drill --physical` decide before
/// anything is written.
pub struct Prepared {
    pub snap: SnapshotRef,
    pub facts: PhysicalFacts,
    /// The end of the archive: the last segment archived on the timeline
    /// recovery follows (the newest archived one, else the backup's own;
    /// on the backup's own, its stop segment counts).
    pub last_archived: Option<String>,
    /// The segments missing before `last_archived` on that timeline (on
    /// the backup's own: after its stop segment; at most 20 named).
    pub missing: Vec<String>,
}

impl Prepared {
    /// Why recovery to the end of the archive would stop short: the gap,
    /// its missing segments named; `None` when the archive is continuous.
    pub fn gap(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            format!(
                "the archive has a gap on timeline {} after base backup {}: {} missing (up to {})",
                self.facts.timeline,
                self.snap.short_id(),
                self.missing.join(", "),
                self.last_archived.as_deref().unwrap_or("?")
            )
        })
    }
}

/// Chooses the base backup (`spec`: `latest` or an id; of `source` when
/// given) that reaches `target`, and lists the archive past it.
pub async fn prepare(
    repo: &Repository,
    spec: &str,
    source: Option<&str>,
    target: &Target,
) -> Result<Prepared> {
    prepare_for(repo, spec, source, None, target).await
}

/// [`prepare`], among the base backups of the cluster whose
/// `system_identifier` is `system` only, when given (`recover postgres`:
/// the server's own lineage, whatever source name its backups carry).
pub async fn prepare_for(
    repo: &Repository,
    spec: &str,
    source: Option<&str>,
    system: Option<&str>,
    target: &Target,
) -> Result<Prepared> {
    let (snap, facts) = pick(repo, spec, source, system, target).await?;
    let (last_archived, missing) = archive_after(repo, &facts).await?;
    Ok(Prepared {
        snap,
        facts,
        last_archived,
        missing,
    })
}

/// The configured source `name` (its verification queries and `bin_dir`),
/// when given, and the server binaries of the backup's major version.
pub async fn server_for(
    ctx: &Ctx,
    name: Option<&str>,
    facts: &PhysicalFacts,
) -> Result<(Option<crate::postgres::PgSource>, PathBuf)> {
    let source = match name {
        Some(name) => Some(crate::postgres::configured_source(ctx, name).await?),
        None => None,
    };
    let bin = bin_dir(facts, source.as_ref())?;
    Ok((source, bin))
}

/// What [`write`] did.
pub struct Written {
    /// Entries and bytes of the data directory written.
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// `postgresql.auto.conf` as the backup had it (`None`: it had none).
    pub original_conf: Option<Vec<u8>>,
    /// The environment `wal fetch` needs (given to the recovery server).
    pub env: EnvVars,
}

/// Writes the base backup's files into `pgdata` (created, mode 0700), adds
/// the recovery settings for `target` and gives the tree to the server's
/// user. An error leaves `pgdata` holding an incomplete restore.
pub async fn write(
    ctx: &Ctx,
    repo: &Repository,
    p: &Prepared,
    pgdata: &Path,
    target: &Target,
    inclusive: bool,
    reporter: &dyn crate::report::Reporter,
) -> Result<Written> {
    let started = Instant::now();
    let (files, bytes) = write_files(repo, &p.snap, pgdata, reporter).await?;
    let seconds = started.elapsed().as_secs_f64();
    if drop_standby_signal(pgdata)? {
        reporter.note(
            "the base backup was taken on a standby: its standby.signal was removed (the \
             restored server recovers to the target and promotes; it must not wait as a \
             standby of the live primary)",
        );
    }
    let (argv, env) = restore_command(ctx)?;
    let original_conf = std::fs::read(pgdata.join("postgresql.auto.conf")).ok();
    write_settings(pgdata, target, inclusive, &argv)?;
    let owner = server_owner().map_err(|e| fail(FAILURE, e.to_string()))?;
    chown_tree(pgdata, owner).map_err(|e| fail(FAILURE, e.to_string()))?;
    Ok(Written {
        files,
        bytes,
        seconds,
        original_conf,
        env,
    })
}

/// Runs the source's verification queries on the recovered server (in the
/// source URL's database): each one's value; a failing query is an error
/// (exit 7).
pub async fn run_queries(
    server: &RecoveryServer,
    facts: &PhysicalFacts,
    src: &crate::postgres::PgSource,
) -> Result<Vec<QueryResult>> {
    let db = src.conn.dbname.clone();
    let conn = server.conn_config(&facts.superuser, &db);
    let client = conn
        .connect()
        .await
        .map_err(|e| fail(VERIFY_FAILED, format!("connecting to {db} to verify: {e}")))?;
    let mut out = Vec::new();
    for q in &src.queries {
        let rows = client
            .simple_query(&q.sql)
            .await
            .map_err(|e| sql_fail(VERIFY_FAILED, &format!("verification query {}", q.name), &e))?;
        let value = rows.iter().find_map(|m| match m {
            lifeboat_postgres::basebackup::SimpleQueryMessage::Row(r) => {
                r.get(0).map(str::to_string)
            }
            _ => None,
        });
        out.push(QueryResult {
            name: q.name.clone(),
            value,
        });
    }
    Ok(out)
}

/// Restores and recovers as `req` asks.
pub async fn restore(ctx: &Ctx, req: RestoreRequest) -> Result<RestoreOutcome> {
    let pgdata = std::path::absolute(&req.pgdata)
        .map_err(|e| usage(format!("--pgdata {}: {e}", req.pgdata.display())))?;
    check_empty(&pgdata)?;
    let repo = ctx.open().await?;
    // Held until the recovered server has stopped, before the snapshot is
    // picked: prune deletes no WAL while it is live (docs/format.md, "Why
    // prune is safe").
    let lock = acquire_for_reading(&repo, LockMode::Shared, "restore physical").await?;
    let result = restore_from(ctx, req, &repo, pgdata).await;
    if let Some(lock) = lock {
        let _ = lock.release().await;
    }
    result
}

/// [`restore`] under its lock.
async fn restore_from(
    ctx: &Ctx,
    req: RestoreRequest,
    repo: &Repository,
    pgdata: PathBuf,
) -> Result<RestoreOutcome> {
    let repo = repo.clone();
    let prep = prepare(&repo, &req.snapshot, req.source.as_deref(), &req.target).await?;
    if req.target == Target::Latest
        && let Some(gap) = prep.gap()
    {
        return Err(fail(
            INTEGRITY,
            format!(
                "{gap}; recovery to the latest point would stop silently at the gap. Nothing was \
                 changed. Recover to a target before the gap, or find the missing segments"
            ),
        ));
    }
    // Before anything is written: the binaries to recover with.
    let (source_cfg, bin) = server_for(ctx, req.source.as_deref(), &prep.facts).await?;
    restore_prepared(ctx, &repo, &prep, source_cfg.as_ref(), &bin, pgdata, &req).await
}

/// Everything of `restore physical` after the checks: the files of
/// `prep`'s base backup into `pgdata` (empty or absent), recovery to
/// `req`'s target by a private server from `bin`, `source_cfg`'s
/// verification queries on it, a clean stop and `postgresql.auto.conf`
/// put back. `recover postgres` runs it into a sibling of the source's data
/// directory. The caller holds the repository lock.
pub async fn restore_prepared(
    ctx: &Ctx,
    repo: &Repository,
    prep: &Prepared,
    source_cfg: Option<&crate::postgres::PgSource>,
    bin: &Path,
    pgdata: PathBuf,
    req: &RestoreRequest,
) -> Result<RestoreOutcome> {
    let (snap, facts) = (&prep.snap, &prep.facts);
    let reporter = ctx.reporter();
    reporter.note(&format!(
        "restoring base backup {} of {} ({}, consistent at {}, {}) to reach {}",
        snap.short_id(),
        snap.snapshot.source,
        facts.server_version,
        facts.stop_lsn,
        facts.stop_time.to_rfc3339(),
        req.target
    ));
    let written = write(
        ctx,
        repo,
        prep,
        &pgdata,
        &req.target,
        req.inclusive,
        reporter,
    )
    .await
    .map_err(|e| partial(e, &pgdata))?;
    let auto_conf = pgdata.join("postgresql.auto.conf");
    let recovered = recover(
        bin,
        &pgdata,
        &written.env,
        facts,
        req,
        prep.last_archived.as_deref(),
        reporter,
    )
    .await;
    let (mut server, mut outcome) = recovered.map_err(|e| partial(e, &pgdata))?;
    if let Some(src) = source_cfg {
        outcome.queries = run_queries(&server, facts, src).await?;
    }
    let clean = tokio::task::spawn_blocking(move || {
        let ok = server.stop(Duration::from_secs(300));
        (ok, server)
    })
    .await
    .map_err(|e| fail(FAILURE, format!("stopping the server: {e}")))?;
    if !clean.0 {
        return Err(fail(
            FAILURE,
            format!(
                "the recovered server did not shut down cleanly; its log:\n{}\n{} was recovered \
                 and promoted; start it once and stop it cleanly before using it",
                clean.1.log_tail(),
                pgdata.display()
            ),
        ));
    }
    // The recovery settings were for this run only: the directory goes
    // back to the backup's own postgresql.auto.conf (recovery.signal was
    // removed by the server when it promoted).
    match written.original_conf {
        Some(bytes) => std::fs::write(&auto_conf, bytes),
        None => std::fs::remove_file(&auto_conf),
    }
    .map_err(|e| fail(FAILURE, format!("restoring {}: {e}", auto_conf.display())))?;
    outcome.snapshot = snap.id.clone();
    outcome.source = snap.snapshot.source.clone();
    outcome.pgdata = pgdata;
    outcome.files = written.files;
    outcome.bytes = written.bytes;
    outcome.restore_seconds = written.seconds;
    Ok(outcome)
}

/// An error after the directory was created: say what is left there.
fn partial(e: Error, pgdata: &Path) -> Error {
    e.context(format!(
        "{} holds an incomplete restore: remove it before trying again",
        pgdata.display()
    ))
}

/// The files of `snap` into `pgdata` (created, mode 0700): (entries, bytes).
async fn write_files(
    repo: &Repository,
    snap: &SnapshotRef,
    pgdata: &Path,
    reporter: &dyn crate::report::Reporter,
) -> Result<(u64, u64)> {
    let bytes = read_item(repo, snap, Some(FILES_ITEM)).await?;
    let list = FileList::parse(
        &bytes,
        &format!("snapshot {} {FILES_ITEM}", snap.short_id()),
    )?;
    std::fs::create_dir_all(pgdata)
        .and_then(|()| std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| fail(FAILURE, format!("creating {}: {e}", pgdata.display())))?;
    let writer = DirWriter::create(pgdata, &list).map_err(|e| {
        fail(
            FAILURE,
            format!("creating the directories of {}: {e}", pgdata.display()),
        )
    })?;
    let progress = Arc::new(Progress::default());
    let display = reporter.progress(Arc::clone(&progress), "restore", false);
    let r = restore_item(repo, snap, Some(DATA_ITEM), writer.clone(), progress).await;
    drop(display);
    r?;
    let bytes = writer
        .finish()
        .map_err(|e| fail(INTEGRITY, format!("writing {}: {e}", pgdata.display())))?;
    Ok((list.entries.len() as u64, bytes))
}

/// Removes `standby.signal`, which a base backup taken on a standby holds
/// (`pg_basebackup` copies it): with it beside `recovery.signal` the server
/// would start in standby mode, which takes precedence, never promote,
/// and stream from the primary its `primary_conninfo` names. True when
/// there was one.
fn drop_standby_signal(pgdata: &Path) -> Result<bool> {
    let signal = pgdata.join("standby.signal");
    match std::fs::remove_file(&signal) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(fail(FAILURE, format!("removing {}: {e}", signal.display()))),
    }
}

/// `recovery.signal` and the recovery settings.
fn write_settings(pgdata: &Path, target: &Target, inclusive: bool, argv: &[String]) -> Result<()> {
    let lines = recovery::conf_lines(&recovery::settings(target, inclusive, argv));
    let io = |what: &str, e: std::io::Error| fail(FAILURE, format!("{what}: {e}"));
    let conf = pgdata.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&conf)
        .map_err(|e| io("opening postgresql.auto.conf", e))?;
    f.write_all(format!("\n{lines}").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("writing postgresql.auto.conf", e))?;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("chmod postgresql.auto.conf", e))?;
    let signal = pgdata.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| io("writing recovery.signal", e))?;
    std::fs::set_permissions(&signal, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("chmod recovery.signal", e))
}

/// The server binaries of the backup's major version: the source's
/// `bin_dir`, else `/usr/lib/postgresql/<major>/bin`.
fn bin_dir(f: &PhysicalFacts, source: Option<&crate::postgres::PgSource>) -> Result<PathBuf> {
    let major = lifeboat_postgres::tools::server_major(f.server_version_num);
    let dir = source
        .and_then(|s| s.discovery.configured_dir.clone())
        .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    if !dir.join("postgres").exists() {
        return Err(usage(format!(
            "the base backup is of PostgreSQL {major} and {} has no postgres server binary; \
             install the PostgreSQL {major} server (apt-get install postgresql-{major}) or set \
             the source's bin_dir. Nothing was changed",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Where the server is, asked through its socket.
struct Position {
    in_recovery: bool,
    replay_lsn: Option<String>,
    replay_time: Option<DateTime<Utc>>,
}

async fn position(server: &RecoveryServer, user: &str) -> Option<Position> {
    let c = server.conn_config(user, "template1").connect().await.ok()?;
    let row = c
        .query_one(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
                    pg_last_xact_replay_timestamp()",
            &[],
        )
        .await
        .ok()?;
    Some(Position {
        in_recovery: row.get(0),
        replay_lsn: row.get(1),
        replay_time: row.get(2),
    })
}

/// Runs the server until it has promoted, then checks that the target was
/// reached. The server is returned running (for the verification queries).
pub async fn recover(
    bin: &Path,
    pgdata: &Path,
    env: &[(String, String)],
    f: &PhysicalFacts,
    req: &RestoreRequest,
    last_archived: Option<&str>,
    reporter: &dyn crate::report::Reporter,
) -> Result<(RecoveryServer, RestoreOutcome)> {
    let started = Instant::now();
    let mut server = RecoveryServer::start(bin, pgdata, env)
        .map_err(|e| fail(FAILURE, format!("starting the recovery server: {e}")))?;
    let mut last_note = Instant::now();
    let promoted = loop {
        if server.exited() {
            break None;
        }
        if started.elapsed() > req.timeout {
            server.stop(Duration::from_secs(60));
            return Err(fail(
                FAILURE,
                format!(
                    "recovery did not finish within {} s (--timeout); the server was stopped. Its log:\n{}",
                    req.timeout.as_secs(),
                    server.log_tail()
                ),
            ));
        }
        if let Some(p) = position(&server, &f.superuser).await {
            if !p.in_recovery {
                break Some(());
            }
            if last_note.elapsed() > Duration::from_secs(10) {
                reporter.note(&format!(
                    "recovering: replayed up to {} ({})",
                    p.replay_lsn.as_deref().unwrap_or("?"),
                    p.replay_time.map(|t| t.to_rfc3339()).unwrap_or_default()
                ));
                last_note = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let log = server.log();
    let verdict = recovery::judge_log(&req.target, &log);
    if promoted.is_none() {
        return Err(stopped(
            &req.target,
            &log,
            &server.log_tail(),
            last_archived,
        ));
    }
    let p = position(&server, &f.superuser).await.ok_or_else(|| {
        fail(
            VERIFY_FAILED,
            format!(
                "the promoted server cannot be asked where it stopped; its log:\n{}",
                server.log_tail()
            ),
        )
    })?;
    let reached = match verdict {
        LogVerdict::Reached(line) => line,
        LogVerdict::Completed => "archive recovery complete".to_string(),
        LogVerdict::EndedEarly(_) | LogVerdict::Unknown => {
            return Err(fail(
                VERIFY_FAILED,
                format!(
                    "the server promoted, but its log does not say it reached {}; not trusting \
                     the result. Its log:\n{}",
                    req.target,
                    server.log_tail()
                ),
            ));
        }
    };
    let seg = f.wal_segment_size.max(1 << 20);
    let last_start = last_archived
        .and_then(SegmentName::parse)
        .map(|s| Lsn(s.number(seg) * seg));
    let replay_lsn = p.replay_lsn.as_deref().and_then(|l| l.parse::<Lsn>().ok());
    check_replay(
        &req.target,
        req.inclusive,
        replay_lsn,
        p.replay_time,
        last_start,
    )
    .map_err(|e| fail(VERIFY_FAILED, e))?;
    let timeline = timeline_now(&server, &f.superuser).await;
    Ok((
        server,
        RestoreOutcome {
            snapshot: String::new(),
            source: String::new(),
            pgdata: PathBuf::new(),
            target: req.target.to_string(),
            reached,
            replay_lsn: p.replay_lsn,
            replay_time: p.replay_time,
            timeline,
            last_archived: last_archived.map(str::to_string),
            files: 0,
            bytes: 0,
            queries: Vec::new(),
            restore_seconds: 0.0,
            recovery_seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

/// The promoted server's timeline (from its current WAL file's name).
async fn timeline_now(server: &RecoveryServer, user: &str) -> Option<u32> {
    let c = server.conn_config(user, "template1").connect().await.ok()?;
    let row = c
        .query_one(
            "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
            &[],
        )
        .await
        .ok()?;
    u32::from_str_radix(row.get::<_, &str>(0), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_server_that_stopped() {
        let t = Target::Time(
            DateTime::parse_from_rfc3339("2026-12-04T10:47:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        // It did not start (its socket directory out of its reach): the
        // server's failure, with its log.
        let log = "LOG:  starting PostgreSQL 15.20\nFATAL:  could not open lock file \
                   \"/tmp/x/.s.PGSQL.5432.lock\": Permission denied\n\
                   LOG:  database system is shut down\n";
        let e = stopped(&t, log, log, None);
        assert_eq!(e.code(), FAILURE, "{}", e.message);
        assert!(
            e.message.contains("did not start") && e.message.contains("Permission denied"),
            "{}",
            e.message
        );
        // The WAL ran out before the target: not reached.
        let log = "FATAL:  recovery ended before configured recovery target was reached\n";
        let e = stopped(&t, log, log, Some("000000010000000000000003"));
        assert_eq!(e.code(), VERIFY_FAILED, "{}", e.message);
        assert!(
            e.message.contains("000000010000000000000003"),
            "{}",
            e.message
        );
        // `wal fetch --fatal-errors` aborted it: not reached either.
        let log = "error: integrity failure in wal/00000001/x/0\nFATAL:  could not restore file\n";
        let e = stopped(&t, log, log, None);
        assert_eq!(e.code(), VERIFY_FAILED, "{}", e.message);
        assert!(e.message.contains("integrity failure"), "{}", e.message);
    }
}
