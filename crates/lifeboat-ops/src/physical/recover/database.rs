//! `recover postgres --source NAME --before T --database DB`: one database
//! of the source's server brought back to just before a moment, the
//! server's other databases untouched (docs/physical.md, "One database
//! (`--database`)").
//!
//! Point-in-time recovery is server-wide, so the whole cluster is recovered
//! on the side and the one database moved back logically:
//!
//! 1. **Checks, nothing changed**: the moment is in the past; `DB` is the
//!    source's database (its writers and verification queries are that
//!    database's); the server is a primary; then, under the repository
//!    lock, [`checks::base_and_archive`] (a base backup of this server's
//!    system that reaches the moment, the WAL up to now archived, no gap,
//!    the binaries), room for the base backup's files in the side
//!    directory, the side directory and `TMPDIR` (where the side server's
//!    socket and log go) usable by the server's user
//!    ([`checks::check_temp_dir`]). No `pgdata` or `control` is needed: the source's server is
//!    never stopped, so this mode runs anywhere the repository and the
//!    server are reachable (no agent mode).
//! 2. **The side server**: `restore physical`'s [`restore::write`] and
//!    [`restore::recover`] into a temporary directory (`--side-dir`, else
//!    `TMPDIR`) to the moment, exclusive, on a private socket; the database
//!    must exist there (else exit 3); the source's verification queries run
//!    on it.
//! 3. **The dump**: `backup postgres`'s [`backup_database`] of that database
//!    on the side server into the repository (a logical snapshot of the
//!    source, tagged `recovered`, its facts taken from the recovered data);
//!    then the side server is stopped and its directory removed.
//! 4. **The restore**: `restore postgres`'s steps
//!    ([`crate::postgres::restore::steps`]) of that snapshot into the
//!    source: authenticated while the writers run, writers quiesced,
//!    `pg_restore --clean`, every fact verified, writers back. Its failures
//!    are `restore postgres`'s (a partial target: exit 11, writers left
//!    stopped), and the snapshot stays in the repository to restore again.
//! 5. **The record** (`recoveries/<id>`, mode `database`): RTO is the
//!    writers' pause (step 4 from the quiesce on); RPO as for the in-place
//!    mode.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_dr::record::{self, RecoveryRecord};
use lifeboat_postgres::basebackup::recovery::Target;
use lifeboat_postgres::basebackup::server::RecoveryServer;
use lifeboat_postgres::conn::{ConnConfig, pg_message};
use lifeboat_postgres::facts::FactDiff;
use lifeboat_repo::Repository;
use lifeboat_repo::lock::{LockMode, acquire_for_reading};
use serde::Serialize;

use super::restore::{self, QueryResult, RestoreRequest};
use super::{RecoverRequest, Steps, checks, interrupted, plan, store};
use crate::context::Ctx;
use crate::error::{Error, FAILURE, NOT_FOUND, Result, fail, usage};
use crate::physical::scratch::ScratchDir;
use crate::postgres::restore::steps::{self, Signals};
use crate::postgres::restore::{
    RestoreRequest as LogicalRequest, Writers, choose_target, staging_limit_from_env,
};
use crate::postgres::{PgSource, backup_database, conn_err};

/// What `recover postgres --database` did (`--json` shows it as it is).
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseOutcome {
    /// The recovery record's id (`recoveries/<id>`), or `not-recorded`.
    pub record: String,
    /// `database`.
    pub mode: &'static str,
    pub source: String,
    pub database: String,
    /// The base backup the side server was recovered from.
    pub snapshot: String,
    /// The logical snapshot of the recovered database (in the repository;
    /// `restore postgres ID` restores it again).
    pub dump_snapshot: String,
    pub before: DateTime<Utc>,
    /// PostgreSQL's line saying where the side server stopped.
    pub reached: String,
    pub replay_lsn: Option<String>,
    pub replay_time: Option<DateTime<Utc>>,
    /// The segment holding the WAL up to the recovery's start.
    pub archived_through: String,
    /// The source's verification queries on the side server.
    pub queries: Vec<QueryResult>,
    /// Every fact of the dump checked on the restored database.
    pub verified: Option<bool>,
    pub differences: Vec<FactDiff>,
    pub writers: Writers,
    /// The writers' pause: from the quiesce to the writers back.
    pub rto_seconds: f64,
    pub rpo_seconds: Option<f64>,
    /// The side server: the base backup's files written, then the replay.
    pub restore_seconds: f64,
    pub recovery_seconds: f64,
    /// The dump of the database from the side server into the repository.
    pub dump_seconds: f64,
    /// `pg_restore` into the source (writers stopped), before verification.
    pub load_seconds: f64,
}

/// The source, its server and the side directory, checked.
struct Found {
    src: PgSource,
    /// A connection to the source's server that works now: the source's
    /// database, or `postgres` when that database is gone (dropped by
    /// mistake is one reason to recover it).
    conn: ConnConfig,
    system_identifier: u64,
    side_parent: PathBuf,
}

fn nothing(e: impl std::fmt::Display) -> Error {
    usage(format!("{e}; nothing was changed"))
}

/// Recovers the one database as the module docs say.
pub async fn recover_database(ctx: &Ctx, req: RecoverRequest) -> Result<DatabaseOutcome> {
    let mut signals = Signals::install();
    let found = check_server(ctx, &req).await?;
    let repo = ctx.open().await?;
    // Held until the end: prune deletes no WAL while it is live, and the
    // base backup cannot be forgotten from under the recovery.
    let lock = acquire_for_reading(&repo, LockMode::Shared, "recover postgres").await?;
    let result = locked(ctx, &req, &repo, &found, &mut signals).await;
    if let Some(lock) = lock {
        let _ = lock.release().await;
    }
    result
}

/// Step 1 without the repository.
async fn check_server(ctx: &Ctx, req: &RecoverRequest) -> Result<Found> {
    plan::check_moment(req.before, Utc::now()).map_err(nothing)?;
    if req.drop_replaced {
        return Err(usage(
            "--drop-replaced is for the in-place recovery (it removes data directories kept \
             aside); with --database no data directory is replaced",
        ));
    }
    let db = req.database.as_deref().unwrap_or_default();
    let src = crate::postgres::configured_source(ctx, &req.source).await?;
    let own = src.conn.dbname.clone();
    plan::check_database(&req.source, db, &own).map_err(nothing)?;
    let side_parent = match &req.side_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    let side_parent = std::fs::canonicalize(&side_parent)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            nothing(format!(
                "--side-dir {}: not an existing directory (the side server's temporary data \
                 directory is created inside it)",
                side_parent.display()
            ))
        })?;
    let (client, conn) = match src.conn.connect().await {
        Ok(c) => (c, src.conn.clone()),
        Err(first) => {
            // The database may be gone: the server is asked through the
            // maintenance database instead.
            let other = src.conn.with_dbname("postgres");
            match other.connect().await {
                Ok(c) => {
                    ctx.reporter().note(&format!(
                        "database {own} cannot be reached ({first}); asking the server through \
                         database postgres (restore postgres creates {own} if it is missing)"
                    ));
                    (c, other)
                }
                Err(_) => return Err(conn_err(first)),
            }
        }
    };
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), pg_is_in_recovery()",
            &[],
        )
        .await
        .map_err(|e| {
            fail(
                FAILURE,
                format!("asking the source's server who it is: {}", pg_message(&e)),
            )
        })?;
    drop(client);
    if row.get::<_, bool>(1) {
        return Err(nothing(
            "the source's server is a standby (in recovery): a database can be restored only \
             into its primary",
        ));
    }
    Ok(Found {
        system_identifier: row.get::<_, i64>(0) as u64,
        src,
        conn,
        side_parent,
    })
}

/// The room the side server's directory needs in `dir`.
fn check_side_room(dir: &std::path::Path, bytes: u64) -> Result<()> {
    let needed = super::swap::room_needed(bytes);
    let available =
        lifeboat_postgres::dump::free_space(dir).map_err(|e| fail(FAILURE, e.to_string()))?;
    if available < needed {
        return Err(usage(format!(
            "not enough free space in {} for the side server's data directory: {needed} bytes \
             needed (the base backup's files plus a margin), {available} available. Nothing was \
             changed; pass --side-dir DIR on a filesystem with room",
            dir.display()
        )));
    }
    Ok(())
}

/// The side server runs as the server's user on a directory inside `dir`:
/// that user must be able to enter it (`--side-dir` under root's own
/// directory, mode 0700, is the usual mistake), or the restore would be
/// written for nothing.
fn check_side_reachable(bin: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    lifeboat_postgres::basebackup::server::check_reachable(bin, dir).map_err(|e| {
        usage(format!(
            "{e}: the side server runs as that user on a data directory inside {}. Nothing was \
             changed; pass --side-dir DIR that user can enter (every directory above it \
             searchable by it)",
            dir.display()
        ))
    })
}

/// What the side server gave.
struct Side {
    reached: String,
    replay_lsn: Option<String>,
    replay_time: Option<DateTime<Utc>>,
    queries: Vec<QueryResult>,
    restore_seconds: f64,
    recovery_seconds: f64,
    dump: String,
    dump_seconds: f64,
}

async fn locked(
    ctx: &Ctx,
    req: &RecoverRequest,
    repo: &Repository,
    found: &Found,
    signals: &mut Signals,
) -> Result<DatabaseOutcome> {
    let db = found.src.conn.dbname.clone();
    let checked = Instant::now();
    let ready = tokio::select! {
        r = async {
            let ready = checks::base_and_archive(
                ctx, req, repo, &found.src, &found.conn, found.system_identifier,
            )
            .await?;
            check_side_room(&found.side_parent, ready.prep.facts.file_bytes)?;
            check_side_reachable(&ready.bin, &found.side_parent)?;
            checks::check_temp_dir(&ready.bin)?;
            Ok::<_, Error>(ready)
        } => r?,
        i = signals.next() => return Err(interrupted(i, "while checking; nothing was changed")),
    };
    let mut steps = Steps::default();
    steps.done(
        ctx,
        "check",
        true,
        checked,
        format!(
            "database {db} of source {}; base backup {} reaches {}; WAL archived through {}; \
             room in {}",
            found.src.name,
            ready.prep.snap.short_id(),
            req.before.to_rfc3339(),
            ready.archived_through,
            found.side_parent.display()
        ),
    );
    let started_at = Utc::now();
    let started = Instant::now();
    let mut record = Record {
        req,
        found,
        snapshot: ready.prep.snap.id.clone(),
        snapshot_time: ready.prep.snap.snapshot.time,
        started_at,
        side: String::new(),
    };

    // Steps 2 and 3: the side server, the dump. Nothing of the source is
    // touched; an interruption drops the side server and its directory.
    let scratch = ScratchDir::create_in(&found.side_parent, "lifeboat-recover-", "pass --side-dir");
    let mut scratch = match scratch {
        Ok(s) => s,
        Err(e) => return Err(record.failed(ctx, repo, e, steps, 0.0).await),
    };
    record.side = scratch.pgdata().display().to_string();
    let side = tokio::select! {
        r = side(ctx, req, repo, &ready, found, &mut scratch, &mut steps) => r,
        i = signals.next() => Err(interrupted(i, "on the side server; the source was not touched")),
    };
    let since = Instant::now();
    let removed = scratch.remove().await;
    let side = match side {
        Ok(s) => s,
        Err(e) => {
            let e = e.context("nothing was changed on the source");
            steps
                .0
                .push(super::step("recover", false, started, e.message.clone()));
            steps.done(ctx, "cleanup", true, since, removed);
            return Err(record.failed(ctx, repo, e, steps, 0.0).await);
        }
    };
    steps.done(ctx, "cleanup", true, since, removed);

    // Step 4: restore postgres's steps, the writers' pause among them.
    let logical = LogicalRequest {
        snapshot: side.dump.clone(),
        source: Some(found.src.name.clone()),
        staging_limit: staging_limit_from_env(),
        cluster: req.cluster.clone(),
        ..LogicalRequest::default()
    };
    let again = format!(
        "the recovered database is snapshot {} in the repository: `lifeboat restore postgres {} \
         --source {}` restores it again",
        &side.dump[..8.min(side.dump.len())],
        &side.dump[..8.min(side.dump.len())],
        found.src.name
    );
    let since = Instant::now();
    let mut paused = None;
    let restored = async {
        let loaded = steps::load(ctx, &logical).await?;
        let chosen = choose_target(ctx, &logical, &loaded.snap, loaded.source.as_ref()).await?;
        let plan = steps::plan(&logical, &loaded, chosen.jobs)?;
        let prepared = steps::prepare(ctx, &loaded, &chosen, &plan, signals).await?;
        paused = Some(Instant::now());
        let quiesced = steps::quiesce(ctx, &logical, &loaded, &chosen, signals).await?;
        let restored = steps::restore(
            ctx,
            &loaded,
            &chosen.target,
            &plan,
            prepared,
            quiesced,
            signals,
        )
        .await?;
        let load_seconds = restored.restore_seconds;
        let out = steps::verify(ctx, &logical, &loaded, &chosen.target, restored, signals).await?;
        match out.error() {
            Some(e) => Err(e),
            None => Ok((out.report, load_seconds)),
        }
    }
    .await;
    let rto = paused.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    let (report, load_seconds) = match restored {
        Ok(r) => r,
        Err(e) => {
            let e = e.context(again);
            steps
                .0
                .push(super::step("restore", false, since, e.message.clone()));
            return Err(record.failed(ctx, repo, e, steps, rto).await);
        }
    };
    steps.done(
        ctx,
        "restore",
        true,
        since,
        format!(
            "snapshot {} restored into {} (pg_restore --clean) and verified; writers {}",
            &side.dump[..8.min(side.dump.len())],
            report.target,
            match report.writers {
                Writers::Resumed => "back",
                _ => "not configured",
            }
        ),
    );
    let rpo = plan::rpo_seconds(req.before, side.replay_time);
    let mut outcome = DatabaseOutcome {
        record: String::new(),
        mode: "database",
        source: found.src.name.clone(),
        database: db.clone(),
        snapshot: ready.prep.snap.id.clone(),
        dump_snapshot: side.dump.clone(),
        before: req.before,
        reached: side.reached.clone(),
        replay_lsn: side.replay_lsn.clone(),
        replay_time: side.replay_time,
        archived_through: ready.archived_through.clone(),
        queries: side.queries,
        verified: report.verified,
        differences: report.differences,
        writers: report.writers,
        rto_seconds: rto,
        rpo_seconds: rpo,
        restore_seconds: side.restore_seconds,
        recovery_seconds: side.recovery_seconds,
        dump_seconds: side.dump_seconds,
        load_seconds,
    };
    let mut rec = record.base(steps);
    rec.ok = true;
    rec.rto_seconds = rto;
    rec.rpo_seconds = rpo;
    rec.replay_time = outcome.replay_time;
    rec.replay_lsn = outcome.replay_lsn.clone();
    outcome.record = store(ctx, repo, &rec).await;
    Ok(outcome)
}

/// Steps 2 and 3: the cluster recovered in `scratch`, the database found
/// and verified there, dumped into the repository. The side server is left
/// in `scratch`'s keeping.
async fn side(
    ctx: &Ctx,
    req: &RecoverRequest,
    repo: &Repository,
    ready: &checks::Ready,
    found: &Found,
    scratch: &mut ScratchDir,
    steps: &mut Steps,
) -> Result<Side> {
    let db = &found.src.conn.dbname;
    let prep = &ready.prep;
    let pgdata = scratch.pgdata();
    let target = Target::Time(req.before);
    let since = Instant::now();
    let written = restore::write(ctx, repo, prep, &pgdata, &target, false, ctx.reporter()).await?;
    let rreq = RestoreRequest {
        snapshot: prep.snap.id.clone(),
        source: None,
        pgdata: pgdata.clone(),
        target,
        inclusive: false,
        timeout: req.timeout,
    };
    let (server, out) = restore::recover(
        &ready.bin,
        &pgdata,
        &written.env,
        &prep.facts,
        &rreq,
        prep.last_archived.as_deref(),
        ctx.reporter(),
    )
    .await
    .map_err(|e| e.context("the side server"))?;
    let server = scratch.keep(server);
    super::check_before(req.before, out.replay_time)?;
    steps.done(
        ctx,
        "recover",
        true,
        since,
        format!(
            "side server on {}: {}; replayed up to {} (last commit {})",
            pgdata.display(),
            out.reached,
            out.replay_lsn.as_deref().unwrap_or("?"),
            out.replay_time
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "none past the base backup".into())
        ),
    );

    let since = Instant::now();
    check_database(server, &prep.facts.superuser, db, req.before).await?;
    let queries = restore::run_queries(server, &prep.facts, &found.src).await?;
    let side_src = PgSource {
        name: found.src.name.clone(),
        conn: server.conn_config(&prep.facts.superuser, db),
        discovery: found.src.discovery.clone(),
        queries: found.src.queries.clone(),
        config: found.src.config.clone(),
    };
    let dumped = backup_database(
        repo,
        &side_src,
        &[],
        false,
        vec![
            "recovered".into(),
            format!("before-{}", plan::stamp(req.before)),
        ],
        ctx.reporter(),
    )
    .await
    .map_err(|e| Error::from(e).context(format!("dumping database {db} from the side server")))?;
    steps.done(
        ctx,
        "dump",
        true,
        since,
        format!(
            "database {db} of the side server dumped into snapshot {} ({} verification \
             quer{} ran on it)",
            dumped.snap.short_id(),
            queries.len(),
            if queries.len() == 1 { "y" } else { "ies" }
        ),
    );
    Ok(Side {
        reached: out.reached,
        replay_lsn: out.replay_lsn,
        replay_time: out.replay_time,
        queries,
        restore_seconds: written.seconds,
        recovery_seconds: out.recovery_seconds,
        dump: dumped.snap.id.clone(),
        dump_seconds: since.elapsed().as_secs_f64(),
    })
}

/// The database must exist in the recovered cluster (exit 3 naming those
/// that do).
async fn check_database(
    server: &RecoveryServer,
    user: &str,
    db: &str,
    before: DateTime<Utc>,
) -> Result<()> {
    let client = server
        .conn_config(user, "template1")
        .connect()
        .await
        .map_err(|e| fail(FAILURE, format!("connecting to the side server: {e}")))?;
    let names: Vec<String> = client
        .query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| {
            fail(
                FAILURE,
                format!("listing the side server's databases: {}", pg_message(&e)),
            )
        })?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if names.iter().any(|n| n == db) {
        return Ok(());
    }
    Err(fail(
        NOT_FOUND,
        format!(
            "database {db} does not exist in the cluster as it was just before {} (it holds {}): \
             was it created later, or renamed? Pick a later moment",
            before.to_rfc3339(),
            names.join(", ")
        ),
    ))
}

/// What every record of this recovery shares.
struct Record<'a> {
    req: &'a RecoverRequest,
    found: &'a Found,
    snapshot: String,
    snapshot_time: DateTime<Utc>,
    started_at: DateTime<Utc>,
    side: String,
}

impl Record<'_> {
    fn base(&self, steps: Steps) -> RecoveryRecord {
        RecoveryRecord {
            version: record::RECORD_VERSION,
            source: self.found.src.name.clone(),
            mode: "database".into(),
            database: Some(self.found.src.conn.dbname.clone()),
            snapshot: self.snapshot.clone(),
            snapshot_time: self.snapshot_time,
            target: self.req.before,
            started: self.started_at,
            finished: Utc::now(),
            ok: false,
            failure: None,
            rto_seconds: 0.0,
            rpo_seconds: None,
            replay_time: None,
            replay_lsn: None,
            timeline: None,
            pgdata: self.side.clone(),
            replaced: None,
            hostname: lifeboat_repo::keys::hostname(),
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            steps: steps.0,
        }
    }

    /// Records the failure `e` (a warning when that fails) and returns it.
    async fn failed(
        &self,
        ctx: &Ctx,
        repo: &Repository,
        e: Error,
        steps: Steps,
        rto_seconds: f64,
    ) -> Error {
        let mut rec = self.base(steps);
        rec.failure = Some(e.message.clone());
        rec.rto_seconds = rto_seconds;
        store(ctx, repo, &rec).await;
        e
    }
}
