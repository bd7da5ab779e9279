//! `backup postgres`, `restore postgres` and `verify`.
//!
//! Backup: a `REPEATABLE READ` transaction exports its snapshot, `pg_dump -Fc -Z0
//! --snapshot` streams into the repository (no local staging) while the facts (row
//! counts, versions, size, verification queries) are taken in the same snapshot;
//! the snapshot document carries them. Restore: authenticate every blob the
//! restore will read (staging for `--jobs N`, a read to nowhere otherwise)
//! while the writers are up, quiesce writers, `pg_restore --clean --if-exists`
//! fed from the repository (or from the staged file), verify every fact,
//! bring writers back (or leave them down when verification failed, unless
//! configured otherwise, and always when the restore stopped after touching
//! the target: "the target is partial", exit 11).
//!
//! Exit codes for PostgreSQL problems: authentication failure 6, database
//! missing 3, bad URL / unknown table / missing client tools 2, facts that do
//! not hold 7, not enough staging space 8, a partial target 11, everything
//! else 1.

use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use lifeboat_postgres::archive::{ArchiveLayout, DataBlock, LayoutScanner};
use lifeboat_postgres::conn::{self as pgconn, ConnConfig, ConnError, Secret};
use lifeboat_postgres::dump::{self, DumpError, PgDump, PgRestore, RestoreOptions};
use lifeboat_postgres::facts::{self, DumpScope, FactDiff, Facts, FactsError, SnapshotSession};
use lifeboat_postgres::identity::{self, IdentityError, Relation};
use lifeboat_postgres::split_restore::{self, RowSource};
use lifeboat_postgres::tools::{self, Discovery, PgTools, ToolsError};
use lifeboat_postgres::{RestoreOutcome, VerificationQuery};
use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::{Part, restore_item, restore_item_part, restore_item_part_to_file};
use lifeboat_repo::snapshot::{Scope, ScopeView, SnapshotRef, TableRef};
use serde::Serialize;

use crate::config::{PgUrl, SecretRef, SourceConfig, SourceKind};
use crate::context::Ctx;
use crate::exit::{
    AUTH, FAILURE, INTERRUPTED, NOT_FOUND, OK, PARTIAL, STORAGE, USAGE, VERIFY_FAILED, fail, usage,
};
use crate::interrupt;
use crate::output::{human_bytes, print_json};
use crate::progress;
use crate::quiesce::{self, NoQuiesce, Quiesced, Quiescer};

/// Name of the one item of a PostgreSQL snapshot.
pub const DUMP_ITEM: &str = "pg_dump.custom";

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("from").required(true).args(["source", "db"])))]
pub struct BackupPostgresArgs {
    /// A PostgreSQL source of the configuration file
    #[arg(long)]
    pub source: Option<String>,
    /// Or a database URL, postgresql://user@host:port/db (password from
    /// PGPASSWORD or ~/.pgpass, never in the URL)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Only this table (repeatable; `name` or `schema.name`; a partitioned
    /// table brings its partitions)
    #[arg(long = "table", value_name = "T")]
    pub tables: Vec<String>,
    /// Only the schema, no rows
    #[arg(long)]
    pub schema_only: bool,
    /// Tags to attach (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RestorePostgresArgs {
    /// Snapshot id (or unique prefix), or `latest` (the newest full snapshot; a partial one by id)
    pub snapshot: String,
    /// The configured source: with `latest`, its latest snapshot; without
    /// --target, its database is the target and its quiesce settings apply
    #[arg(long)]
    pub source: Option<String>,
    /// Restore into this database instead (created when missing), e.g. for an
    /// investigation. Whether it is the source's database is asked of the
    /// servers (system identifier, database OID, data directory, start time),
    /// not read from the URL: the source's writers are quiesced only for it
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// With --target: restore over an existing database that holds objects and
    /// is not the configured source (without it such a restore is refused and
    /// what is there is listed)
    #[arg(long)]
    pub clean_existing: bool,
    /// With --target: the configured source is down, so whether the target is
    /// its database cannot be asked; restore into the target as another
    /// database (the writers are not quiesced). Used only when the source's
    /// identity really cannot be read
    #[arg(long)]
    pub source_unreachable: bool,
    /// Parallel jobs [default: the source's restore.jobs, else 1]; above 1 the
    /// archive is staged to a temporary file first (free space is checked);
    /// pg_restore loads one table per job, and only the largest tables (each
    /// at least 1/(N+1) of all table bytes) have their rows spread over the jobs
    #[arg(long = "jobs", value_name = "N")]
    pub jobs_flag: Option<u32>,
    /// The jobs in effect: --jobs, else the source's `restore.jobs`, else 1
    /// (set by [`restore`] once the source is known).
    #[arg(skip)]
    pub jobs: u32,
    /// With --jobs (or restore.jobs) above 1: one job per table, as plain
    /// `pg_restore --jobs` does, instead of spreading a table's rows over the jobs
    #[arg(long)]
    pub whole_tables: bool,
    /// Where --jobs stages the archive [default: the system temp directory].
    /// LIFEBOAT_STAGING_LIMIT=BYTES caps how much of it staging may use
    #[arg(long, env = "LIFEBOAT_STAGING_DIR", value_name = "DIR")]
    pub staging_dir: Option<PathBuf>,
    /// Do not stop the writers (dangerous: they write into a database being replaced)
    #[arg(long)]
    pub no_quiesce: bool,
    /// Do not check the restored database against the snapshot's facts
    #[arg(long)]
    pub no_verify: bool,
    /// The cluster of the writers to quiesce (quiesce.deployments/statefulsets)
    #[command(flatten)]
    pub cluster: crate::cmd_kube::ClusterArgs,
    /// Restore only this table (repeatable; `name` or `schema.name`), in
    /// place with the writers quiesced, or beside the live one with --as
    #[arg(long = "table", value_name = "T")]
    pub tables: Vec<String>,
    /// Restore only this schema (repeatable), in place or beside with --as
    #[arg(long = "schema", value_name = "S")]
    pub schemas: Vec<String>,
    /// Restore the --table (then --schema) of the same position beside the
    /// live one under this name; nothing live is touched, no writer stopped
    #[arg(long = "as", value_name = "NEW")]
    pub as_names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Snapshot id (or unique prefix), or `latest` (the newest full snapshot)
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this source
    #[arg(long)]
    pub source: Option<String>,
    /// The live database to check, postgresql://user@host:port/db
    #[arg(long, value_name = "URL")]
    pub target: String,
}

// ---------------------------------------------------------------- errors

fn conn_code(e: &ConnError) -> i32 {
    match e {
        ConnError::AuthFailed { .. } => AUTH,
        ConnError::DatabaseMissing { .. } => NOT_FOUND,
        ConnError::InvalidUrl(_) | ConnError::PasswordInUrl | ConnError::PassFile { .. } => USAGE,
        _ => FAILURE,
    }
}

fn conn_hint(e: &ConnError) -> &'static str {
    match e {
        ConnError::AuthFailed { .. } => {
            "; check PGPASSWORD, ~/.pgpass (mode 0600) or the source's password reference"
        }
        ConnError::Unreachable { .. } => {
            "; check host and port, that the server runs and that it accepts TCP connections from here"
        }
        ConnError::DatabaseMissing { .. } => "; check the database name in the URL",
        _ => "",
    }
}

pub(crate) fn conn_err(e: ConnError) -> anyhow::Error {
    fail(conn_code(&e), format!("{e}{}", conn_hint(&e)))
}

pub(crate) fn facts_err(e: FactsError) -> anyhow::Error {
    match e {
        FactsError::Conn(c) => conn_err(c),
        FactsError::NoSuchTable(t) => fail(
            USAGE,
            format!(
                "table {t} does not exist; names resolve through search_path like in SQL \
                 (write schema.name to be exact); nothing was backed up"
            ),
        ),
        other => fail(FAILURE, other.to_string()),
    }
}

pub(crate) fn dump_err(e: DumpError) -> anyhow::Error {
    match e {
        DumpError::Conn(c) => conn_err(c),
        e @ DumpError::InsufficientSpace { .. } => fail(
            STORAGE,
            format!(
                "{e}; set --staging-dir (or LIFEBOAT_STAGING_DIR), or restore without --jobs (streams with no staging)"
            ),
        ),
        other => fail(FAILURE, other.to_string()),
    }
}

pub(crate) fn tools_err(e: ToolsError) -> anyhow::Error {
    fail(USAGE, e.to_string())
}

// ---------------------------------------------------------------- sources

/// A configured PostgreSQL source: its connection, discovery and queries.
pub(crate) struct PgSource {
    pub name: String,
    pub conn: ConnConfig,
    pub discovery: Discovery,
    pub queries: Vec<VerificationQuery>,
    pub config: Option<SourceConfig>,
}

/// A configured database: its URL with the password its reference resolves to.
pub(crate) fn connection(url: &PgUrl, password: Option<&SecretRef>) -> Result<ConnConfig> {
    let conn = ConnConfig::parse(url.as_str()).map_err(conn_err)?;
    Ok(match password {
        Some(p) => {
            let secret = p.resolve().map_err(|e| usage(e.to_string()))?;
            conn.with_password(Secret::new(secret))
        }
        None => conn,
    })
}

pub(crate) fn configured_source(ctx: &Ctx, name: &str) -> Result<PgSource> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(format!(
            "--source {name} needs a configuration file: pass --config FILE, set LIFEBOAT_CONFIG, \
             or use --db URL"
        ))
    })?;
    let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
    if src.kind != SourceKind::Postgres {
        return Err(usage(format!(
            "source {name} is a {} source, not postgres",
            src.kind
        )));
    }
    let pg = src
        .postgres
        .as_ref()
        .ok_or_else(|| usage(format!("source {name} has no postgres: section")))?;
    let conn = connection(&pg.url, pg.password.as_ref())?;
    Ok(PgSource {
        name: name.to_string(),
        conn,
        discovery: Discovery {
            configured_dir: pg.bin_dir.clone(),
            ..Discovery::default()
        },
        queries: pg
            .verify_queries
            .iter()
            .map(|q| VerificationQuery::new(&q.name, &q.sql))
            .collect(),
        config: Some(src.clone()),
    })
}

pub(crate) fn url_source(url: &str) -> Result<PgSource> {
    let conn = ConnConfig::parse(url).map_err(conn_err)?;
    Ok(PgSource {
        name: conn.display_url(),
        conn,
        discovery: Discovery::default(),
        queries: Vec::new(),
        config: None,
    })
}

/// The facts of a PostgreSQL snapshot; any other kind is a usage error.
pub(crate) fn postgres_facts(snap: &SnapshotRef) -> Result<Facts> {
    let kind = snap.snapshot.kind.as_str();
    if kind != "postgres" {
        return Err(usage(format!(
            "snapshot {} is a {kind} snapshot (source {}), not a PostgreSQL one; nothing was \
             changed. Restore it with `lifeboat restore {kind} {}`, or pick a PostgreSQL snapshot \
             from `lifeboat snapshots`",
            snap.short_id(),
            snap.snapshot.source,
            snap.short_id()
        )));
    }
    let facts: Facts = serde_json::from_value(snap.snapshot.facts.clone()).with_context(|| {
        format!(
            "snapshot {} carries unreadable PostgreSQL facts",
            snap.short_id()
        )
    })?;
    facts
        .check_format()
        .map_err(|e| fail(crate::exit::INCOMPATIBLE, e.to_string()))?;
    Ok(facts)
}

// ---------------------------------------------------------------- backup

/// pg_dump's stdout as a reader that reports pg_dump's failure at EOF (so a
/// dump that ended early fails the backup instead of committing a short
/// archive), and learns the archive's layout on the way.
struct DumpReader {
    dump: Option<PgDump>,
    failure: Arc<Mutex<Option<String>>>,
    scanner: Option<LayoutScanner>,
    layout: Arc<Mutex<Option<ArchiveLayout>>>,
}

impl Read for DumpReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(d) = self.dump.as_mut() else {
            return Ok(0);
        };
        let n = d.read(buf)?;
        if let Some(s) = self.scanner.as_mut() {
            s.observe(&buf[..n]);
        }
        if n == 0 && !buf.is_empty() {
            let d = self.dump.take().expect("present");
            if let Err(e) = d.wait() {
                let msg = e.to_string();
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
                return Err(std::io::Error::other(msg));
            }
            if let Some(s) = self.scanner.take() {
                *self.layout.lock().unwrap_or_else(|p| p.into_inner()) = s.finish();
            }
        }
        Ok(n)
    }
}

pub(crate) struct BackupDone {
    pub snap: SnapshotRef,
    pub facts: Facts,
}

/// Dumps `source` into `repo` with facts taken in the dumped snapshot.
pub(crate) async fn backup_database(
    repo: &Repository,
    source: &PgSource,
    tables: &[String],
    schema_only: bool,
    tags: Vec<String>,
    mode: progress::Mode,
) -> Result<BackupDone> {
    let session = SnapshotSession::begin(&source.conn)
        .await
        .map_err(facts_err)?;
    let num = session.server_version_num().await.map_err(facts_err)?;
    let tools = tools::discover(tools::server_major(num), &source.discovery).map_err(tools_err)?;
    let scope = session
        .resolve_scope(tables, schema_only)
        .await
        .map_err(facts_err)?;
    let progress = Arc::new(Progress::default());
    let mut bs = BackupSession::start(repo, Arc::clone(&progress)).await?;
    let dump = match PgDump::spawn(&tools, &source.conn, Some(session.snapshot_id()), &scope) {
        Ok(d) => d,
        Err(e) => {
            bs.abort().await;
            return Err(dump_err(e));
        }
    };
    let failure = Arc::new(Mutex::new(None));
    let layout = Arc::new(Mutex::new(None));
    let reader = DumpReader {
        dump: Some(dump),
        failure: Arc::clone(&failure),
        scanner: Some(LayoutScanner::new()),
        layout: Arc::clone(&layout),
    };
    let display = progress::start(Arc::clone(&progress), "backup", mode, true);
    let (added, facts) = tokio::join!(
        bs.add_stream(DUMP_ITEM, reader),
        session.facts(&scope, &source.queries)
    );
    drop(display);
    if let Err(e) = added {
        bs.abort().await;
        let _ = session.finish().await;
        let pg = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
        return Err(match pg {
            Some(msg) => fail(
                FAILURE,
                format!("{msg}; nothing was committed to the repository"),
            ),
            None => anyhow::Error::from(e).context("backing up the dump"),
        });
    }
    let mut facts = match facts {
        Ok(f) => f,
        Err(e) => {
            bs.abort().await;
            let _ = session.finish().await;
            return Err(facts_err(e).context("taking the facts; nothing was committed"));
        }
    };
    facts.pg_dump_version = Some(tools.version.text.clone());
    facts.archive = layout.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Err(e) = session.finish().await {
        tracing::warn!(error = %e, "closing the snapshot transaction");
    }
    let snap = bs
        .commit_scoped(
            SnapshotMeta {
                source: source.name.clone(),
                kind: "postgres".into(),
                tags,
                facts: serde_json::to_value(&facts)?,
            },
            snapshot_scope(&scope, &facts),
        )
        .await?;
    Ok(BackupDone { snap, facts })
}

/// The snapshot document's scope for a dump of `scope` (also recorded in the
/// facts, partitions included; the document's copy is what the
/// repository-level code reads, with a partitioned table standing for its
/// partitions).
fn snapshot_scope(scope: &DumpScope, facts: &Facts) -> Scope {
    let r = |t: &lifeboat_postgres::TableName| TableRef {
        schema: t.schema.clone(),
        name: t.name.clone(),
    };
    Scope {
        tables: scope.tables.iter().map(r).collect(),
        schema_only: scope.schema_only,
        ..Scope::default()
    }
    .collapse_partitions(|t| {
        facts
            .tables
            .iter()
            .find(|f| f.table.schema == t.schema && f.table.name == t.name)
            .and_then(|f| f.parent.as_ref().map(r))
    })
}

#[derive(Serialize)]
struct BackupResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    stats: &'a lifeboat_repo::snapshot::BackupStats,
    facts: &'a Facts,
    scope: ScopeView,
}

pub async fn backup(ctx: &Ctx, a: BackupPostgresArgs) -> Result<i32> {
    let source = match (&a.source, &a.db) {
        (Some(name), _) => configured_source(ctx, name)?,
        (None, Some(url)) => url_source(url)?,
        (None, None) => return Err(usage("pass --source NAME or --db URL")),
    };
    let repo = ctx.open().await?;
    let done = backup_database(
        &repo,
        &source,
        &a.tables,
        a.schema_only,
        a.tags,
        crate::progress::mode(ctx),
    )
    .await?;
    let s = &done.snap.snapshot.stats;
    if ctx.json() {
        print_json(&BackupResult {
            id: &done.snap.id,
            source: &done.snap.snapshot.source,
            time: done.snap.snapshot.time,
            stats: s,
            facts: &done.facts,
            scope: ScopeView::from(&done.snap.snapshot.scope()),
        })?;
    } else {
        let rows: i64 = done
            .facts
            .tables
            .iter()
            .filter(|t| t.parent.is_none())
            .filter_map(|t| t.rows)
            .sum();
        println!(
            "snapshot {} saved: database {} ({}, {} tables, {rows} rows), dump {} read, {} new, {} stored, {:.1} s",
            done.snap.short_id(),
            done.facts.database,
            done.facts.server_version,
            done.facts.tables.len(),
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            s.duration_seconds,
        );
        let scope = done.snap.snapshot.scope();
        if !scope.is_full() {
            println!(
                "partial snapshot ({scope}): restore it by its id; `latest`, status, drills and \
                 retention go by the full snapshots of {}",
                done.snap.snapshot.source
            );
        }
    }
    Ok(OK)
}

// ---------------------------------------------------------------- restore

/// Feeds the snapshot's archive to pg_restore (streamed, or staged to a file
/// in `staging` for `opts.jobs` > 1).
pub(crate) async fn restore_archive(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staging: &Path,
    mode: progress::Mode,
) -> Result<RestoreOutcome> {
    let opts = opts.clone();
    let touched = AtomicBool::new(false);
    if opts.jobs <= 1 {
        restore_streamed(repo, snap, tools, target, &opts, mode, &touched).await
    } else {
        let mut staged = stage_archive_part(repo, snap, staging, mode, None, Vec::new()).await?;
        restore_staged(repo, snap, tools, target, &opts, &mut staged, &[], &touched).await
    }
}

/// Streams the snapshot's archive into `pg_restore` (one job); `touched` is
/// set once pg_restore runs.
async fn restore_streamed(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    mode: progress::Mode,
    touched: &AtomicBool,
) -> Result<RestoreOutcome> {
    let progress = Arc::new(Progress::default());
    let mut pr = PgRestore::spawn_stream(tools, target, opts).map_err(dump_err)?;
    touched.store(true, Ordering::SeqCst);
    let stdin = pr
        .take_stdin()
        .ok_or_else(|| anyhow::anyhow!("pg_restore has no stdin"))?;
    let display = progress::start(Arc::clone(&progress), "restore", mode, false);
    let fed = restore_item(
        repo,
        snap,
        None,
        BufWriter::with_capacity(1 << 20, stdin),
        progress,
    )
    .await;
    drop(display);
    let waited = pr.wait_async().await;
    match (fed, waited) {
        (Ok(_), Ok(o)) => Ok(o),
        (Err(e), Err(w)) => {
            let e = anyhow::Error::from(e);
            if crate::exit::code_for(&e) != FAILURE {
                Err(e.context(format!("pg_restore also failed: {w}")))
            } else {
                Err(dump_err(w))
            }
        }
        (Ok(_), Err(w)) => Err(dump_err(w)),
        (Err(e), Ok(_)) => Err(anyhow::Error::from(e).context("reading the archive")),
    }
}

/// Reads and authenticates `parts` of the snapshot's archive without writing
/// them anywhere: every blob is fetched, authenticated and checked against
/// its id, and the chunk list against the snapshot, exactly as a restore
/// does, so that a restore of these parts afterwards cannot meet a damaged
/// or missing blob (unless the repository changes in between). Costs one
/// more read of these parts; no disk.
async fn authenticate(
    repo: &Repository,
    snap: &SnapshotRef,
    parts: &[Part],
    mode: progress::Mode,
) -> Result<u64> {
    let progress = Arc::new(Progress::default());
    let display = progress::start(Arc::clone(&progress), "authenticating", mode, false);
    let mut n = 0;
    for p in parts {
        n += restore_item_part(repo, snap, None, p, std::io::sink(), Arc::clone(&progress)).await?;
    }
    drop(display);
    Ok(n)
}

/// The error of a restore that failed or was interrupted after it had begun
/// replacing the target: says so, leaves the writers stopped (they must not
/// write into a partial database), exit [`PARTIAL`] whatever the cause's
/// code.
fn partial(what: String, guard: Quiesced, target: &ConnConfig, has_writers: bool) -> anyhow::Error {
    let hint = guard.leave_down();
    let writers = if has_writers {
        format!(
            "THE WRITERS ARE LEFT STOPPED: the database must not take traffic. Run the restore \
             again (or restore another snapshot) and bring them back yourself only once it is \
             whole ({hint})"
        )
    } else {
        "Run the restore again (or restore another snapshot) before anything uses it".to_string()
    };
    fail(
        PARTIAL,
        format!(
            "the target is partial: {} was being replaced and {what}. {writers}",
            target.display_url()
        ),
    )
}

/// Restores a snapshot the way `restore postgres` does for `opts.jobs`:
/// streamed with one job; above one staged (the data blocks of the tables
/// worth splitting left out when the snapshot recorded the archive's layout)
/// and those tables' rows spread over the jobs. Drills use it, so that a
/// drill proves the source's production restore path.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn restore_snapshot(
    repo: &Repository,
    snap: &SnapshotRef,
    facts: &Facts,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staging: &Path,
    mode: progress::Mode,
) -> Result<RestoreOutcome> {
    if opts.jobs <= 1 {
        return restore_archive(repo, snap, tools, target, opts, staging, mode).await;
    }
    let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
    dump::check_staging_space(staging, size).map_err(dump_err)?;
    let split = tables_worth_splitting(facts, opts.jobs);
    let leave_out = blocks_to_leave_out(facts.archive.as_ref(), &split);
    let mut staged =
        stage_archive_part(repo, snap, staging, mode, facts.archive.clone(), leave_out).await?;
    let touched = AtomicBool::new(false);
    let r = restore_staged(
        repo,
        snap,
        tools,
        target,
        opts,
        &mut staged,
        &split,
        &touched,
    )
    .await;
    RemovedInBackground::start(staged.file);
    r
}

/// The tables whose rows a restore with `jobs` spreads over the jobs, by
/// their size at backup.
pub(crate) fn tables_worth_splitting(facts: &Facts, jobs: u32) -> Vec<facts::TableName> {
    let sizes: Vec<_> = facts
        .tables
        .iter()
        .filter_map(|t| Some((t.table.clone(), t.size_bytes?)))
        .collect();
    split_restore::tables_to_split(&sizes, jobs)
}

/// A staged archive.
pub(crate) struct Staged {
    pub file: tempfile::NamedTempFile,
    /// The archive's layout, when the snapshot recorded one: the TOC of the
    /// staged file then holds every data block's position.
    layout: Option<ArchiveLayout>,
    /// Data blocks left out (holes in the file): their rows are loaded from the
    /// repository during the restore.
    left_out: Vec<DataBlock>,
}

/// Stages the archive, except for the data blocks `leave_out` (which needs a
/// `layout`), and writes the layout's block positions into the staged TOC so
/// that pg_restore seeks to its blocks instead of scanning for them (and can
/// never read a hole).
async fn stage_archive_part(
    repo: &Repository,
    snap: &SnapshotRef,
    staging: &Path,
    mode: progress::Mode,
    layout: Option<ArchiveLayout>,
    leave_out: Vec<DataBlock>,
) -> Result<Staged> {
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-restore-")
        .suffix(".pgdump")
        .tempfile_in(staging)
        .with_context(|| format!("creating a staging file in {}", staging.display()))?;
    let f = tmp.reopen()?;
    let part = if leave_out.is_empty() {
        Part::All
    } else {
        let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
        f.set_len(size)
            .with_context(|| format!("sizing the staging file in {}", staging.display()))?;
        Part::Except(leave_out.iter().map(|b| b.start..b.end).collect())
    };
    let progress = Arc::new(Progress::default());
    let display = progress::start(Arc::clone(&progress), "staging", mode, false);
    let r = restore_item_part_to_file(repo, snap, None, &part, f, progress).await;
    drop(display);
    r.with_context(|| format!("staging the archive in {}", staging.display()))?;
    let staged = Staged {
        file: tmp,
        layout,
        left_out: leave_out,
    };
    staged.write_offsets()?;
    Ok(staged)
}

impl Staged {
    fn write_offsets(&self) -> Result<()> {
        if let Some(l) = &self.layout {
            l.write_offsets(self.file.as_file())
                .context("writing the data offsets into the staged archive")?;
        }
        Ok(())
    }

    /// Writes the left-out blocks into the file after all (the restore could
    /// not load them itself).
    async fn fill(&mut self, repo: &Repository, snap: &SnapshotRef) -> Result<()> {
        for b in std::mem::take(&mut self.left_out) {
            let f = self.file.reopen()?;
            restore_item_part_to_file(
                repo,
                snap,
                None,
                &Part::Range(b.start..b.end),
                f,
                Arc::new(Progress::default()),
            )
            .await
            .context("staging the rest of the archive")?;
        }
        // A blob that straddles the TOC's end may have been written again.
        self.write_offsets()
    }
}

/// The data blocks of `split` tables that a split restore can load straight
/// from the repository: all of them, or none (then everything is staged).
fn blocks_to_leave_out(
    layout: Option<&ArchiveLayout>,
    split: &[facts::TableName],
) -> Vec<DataBlock> {
    let Some(l) = layout else {
        return Vec::new();
    };
    let blocks: Vec<DataBlock> = split
        .iter()
        .filter_map(|t| l.table_data(&t.schema, &t.name).cloned())
        .filter(|b| b.copy.is_some())
        .collect();
    if blocks.len() == split.len() {
        blocks
    } else {
        Vec::new()
    }
}

/// Deletes a staged file on its own thread; dropping the guard waits for it,
/// so the file is gone when the command ends, whichever way it ends.
struct RemovedInBackground(Option<std::thread::JoinHandle<()>>);

impl RemovedInBackground {
    fn start(file: tempfile::NamedTempFile) -> Self {
        let path = file.path().to_path_buf();
        match std::thread::Builder::new()
            .name("lifeboat-unlink".into())
            .spawn(move || drop(file))
        {
            Ok(h) => Self(Some(h)),
            Err(e) => {
                // The closure (and so the file) is dropped with the error.
                tracing::warn!(path = %path.display(), error = %e, "could not start a thread to delete the staged archive; deleted inline");
                Self(None)
            }
        }
    }
}

impl Drop for RemovedInBackground {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Restores a staged archive: with `opts.jobs` > 1 and tables to `split`, by
/// [`split_restore`] (their rows spread over all jobs, read from the
/// repository when staging left their blocks out); otherwise (or when the
/// archive does not fit it) by plain `pg_restore --jobs`. `touched` is set
/// once something runs against the target.
#[allow(clippy::too_many_arguments)]
async fn restore_staged(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staged: &mut Staged,
    split: &[facts::TableName],
    touched: &AtomicBool,
) -> Result<RestoreOutcome> {
    let path = staged.file.path().to_path_buf();
    if opts.jobs > 1 && !split.is_empty() {
        let (t, p, s) = (tools.clone(), path.clone(), split.to_vec());
        let plan = tokio::task::spawn_blocking(move || split_restore::plan(&t, &p, &s))
            .await
            .context("planning the restore")?
            .map_err(dump_err)?;
        let left_out: std::collections::BTreeSet<i64> =
            staged.left_out.iter().map(|b| b.dump_id).collect();
        if plan.as_ref().is_none_or(|p| p.split_dump_ids() != left_out) {
            staged.fill(repo, snap).await?;
        }
        if let Some(plan) = plan {
            let names: Vec<String> = plan.split_tables().iter().map(|t| t.to_string()).collect();
            tracing::info!(tables = %names.join(", "), jobs = opts.jobs, direct = !staged.left_out.is_empty(), "rows of these tables spread over the jobs");
            touched.store(true, Ordering::SeqCst);
            if staged.left_out.is_empty() {
                return split_restore::restore(
                    tools,
                    target,
                    &path,
                    opts,
                    &plan,
                    RowSource::Archive,
                )
                .await
                .map_err(dump_err);
            }
            return restore_split_from_repository(repo, snap, tools, target, opts, staged, &plan)
                .await;
        }
    } else if !staged.left_out.is_empty() {
        staged.fill(repo, snap).await?;
    }
    let pr = PgRestore::spawn_file(tools, target, &path, opts).map_err(dump_err)?;
    touched.store(true, Ordering::SeqCst);
    pr.wait_async().await.map_err(dump_err)
}

/// A split restore whose split rows come from the repository: the left-out
/// blocks are read in order into a pipe that the row reader takes them from.
async fn restore_split_from_repository(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staged: &Staged,
    plan: &split_restore::Plan,
) -> Result<RestoreOutcome> {
    let layout = staged
        .layout
        .clone()
        .expect("blocks are left out only with a layout");
    let (reader, writer) = std::io::pipe().context("creating a pipe for the rows")?;
    {
        use std::os::fd::AsRawFd;
        dump::enlarge_pipe(writer.as_raw_fd());
    }
    let blocks = staged.left_out.clone();
    let feed = async {
        let mut writer = Some(writer);
        for (i, b) in blocks.iter().enumerate() {
            let w = if i + 1 == blocks.len() {
                writer.take().expect("the writer")
            } else {
                writer.as_ref().expect("the writer").try_clone()?
            };
            restore_item_part(
                repo,
                snap,
                None,
                &Part::Range(b.start..b.end),
                w,
                Arc::new(Progress::default()),
            )
            .await
            .with_context(|| {
                format!(
                    "reading the rows of {}.{} from the repository",
                    b.schema, b.tag
                )
            })?;
        }
        Ok::<(), anyhow::Error>(())
    };
    let rows = RowSource::Blocks {
        reader: Box::new(reader),
        layout,
        blocks: staged.left_out.clone(),
    };
    let path = staged.file.path().to_path_buf();
    let (fed, restored) = tokio::join!(
        feed,
        split_restore::restore(tools, target, &path, opts, plan, rows)
    );
    match (fed, restored) {
        (Ok(()), r) => r.map_err(dump_err).map(|mut o| {
            o.split_rows_from = Some("repository".into());
            o
        }),
        // The restore failed and stopped reading the pipe: its error is the
        // cause, the feed's broken pipe only the consequence.
        (Err(e), Err(r)) if is_broken_pipe(&e) => Err(dump_err(r)),
        // The repository's error explains the reader's.
        (Err(e), Err(_)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
    }
}

/// Whether `e` comes from writing into a pipe whose reader is gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[derive(Serialize)]
struct RestoreResult {
    snapshot: String,
    source: String,
    target: String,
    created_database: bool,
    /// Staging the archive for --jobs > 1 (and authenticating the blocks it
    /// leaves out), before the writers were stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    staging_seconds: Option<f64>,
    /// A single stream: reading and authenticating the whole archive once,
    /// before the writers were stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_seconds: Option<f64>,
    /// From the writers stopped to the database restored (not verified yet).
    restore_seconds: f64,
    /// Tables whose rows were spread over the --jobs (empty: plain pg_restore).
    split_tables: Vec<String>,
    /// `repository` (their data blocks were not staged) or `staged archive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    split_rows_from: Option<String>,
    verified: Option<bool>,
    differences: Vec<FactDiff>,
    /// Facts this snapshot did not record (an older Lifeboat took it), so the
    /// verification could not check them (`Facts::not_recorded`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_recorded: Vec<&'static str>,
    /// `resumed`, `left_stopped` (verification failed), `none` (nothing
    /// configured stops writers of this target) or `not_stopped` (--no-quiesce).
    writers: &'static str,
}

/// Where a restore goes, as [`choose_target`] decided it.
pub(crate) struct TargetChoice {
    pub target: ConnConfig,
    pub discovery: Discovery,
    /// The source's quiesce settings, when the target is the source's database.
    pub quiesce: Option<crate::config::Quiesce>,
    /// The parallel jobs in effect: --jobs, else the source's restore.jobs, else 1.
    pub jobs: u32,
}

/// The parallel jobs of a restore of `source`: `flag` (--jobs), else the
/// source's `restore.jobs`, else 1.
pub(crate) fn restore_jobs(flag: Option<u32>, source: Option<&SourceConfig>) -> u32 {
    flag.or_else(|| source?.restore?.jobs.map(|j| j.get()))
        .unwrap_or(1)
}

/// Decides where the restore goes and whether that is the configured
/// source's database, by what both servers say ([`identity`]): the target is
/// the source (its writers quiesced) when system identifier, database OID,
/// data directory and postmaster start time match. A physical copy of the
/// source is named in a warning and restored like any other database. An
/// existing database holding objects that is not the source needs
/// `--clean-existing`. Nothing is changed here.
async fn choose_target(
    ctx: &Ctx,
    a: &RestorePostgresArgs,
    snap: &SnapshotRef,
    source: Option<&PgSource>,
) -> Result<TargetChoice> {
    let jobs = restore_jobs(a.jobs_flag, source.and_then(|s| s.config.as_ref()));
    if a.whole_tables && jobs < 2 {
        return Err(usage(
            "--whole-tables is for a parallel restore: pass --jobs N (N > 1) or set the source's restore.jobs",
        ));
    }
    let source_quiesce = |s: &PgSource| s.config.as_ref().and_then(|c| c.quiesce.clone());
    let url = match (&a.target, source) {
        (Some(url), _) => url,
        (None, Some(s)) => {
            return Ok(TargetChoice {
                target: s.conn.clone(),
                discovery: s.discovery.clone(),
                quiesce: source_quiesce(s),
                jobs,
            });
        }
        (None, None) => {
            return Err(usage(format!(
                "where to restore snapshot {}? pass --target postgresql://user@host:port/db, or \
                 --source NAME of a configured PostgreSQL source",
                snap.short_id()
            )));
        }
    };
    let target = ConnConfig::parse(url).map_err(conn_err)?;
    let shown = target.display_url();
    let discovery = source.map(|s| s.discovery.clone()).unwrap_or_default();
    let (src_id, tgt_id) = match source {
        Some(s) => {
            let (a, b) = tokio::join!(identity::read(&s.conn), identity::read(&target));
            (Some(a), b)
        }
        None => (None, identity::read(&target).await),
    };
    let tgt_id = tgt_id.map_err(|e| identity_err(e, &format!("the target {shown}")))?;
    if let (Some(s), Some(src_id)) = (source, src_id) {
        match src_id {
            Ok(src_id) => match identity::relation(&src_id, &tgt_id) {
                Relation::SameServer {
                    data_directory_compared,
                } => {
                    if !ctx.global.quiet {
                        eprintln!(
                            "the target {shown} is the database of source {} ({}, the same running \
                             server{}): its writers are quiesced as configured",
                            s.name,
                            tgt_id.describe(),
                            if data_directory_compared {
                                ""
                            } else {
                                " by its start time; data_directory is not readable by this user \
                                 (grant pg_read_all_settings to compare it too)"
                            }
                        );
                    }
                    if a.source_unreachable {
                        eprintln!(
                            "note: --source-unreachable was not needed: source {} answered",
                            s.name
                        );
                    }
                    return Ok(TargetChoice {
                        target,
                        discovery,
                        quiesce: source_quiesce(s),
                        jobs,
                    });
                }
                Relation::Copy { differs } => eprintln!(
                    "WARNING: the target {shown} is a physical copy of source {}'s database ({}; \
                     {} differ): it is not the running source, so the source's writers are NOT \
                     quiesced",
                    s.name,
                    tgt_id.describe(),
                    differs.join(" and ")
                ),
                Relation::OtherDatabase | Relation::Unrelated => {}
            },
            Err(e) if a.source_unreachable => eprintln!(
                "WARNING: --source-unreachable: source {} cannot be asked who it is ({e}); the \
                 target {shown} is restored as another database and the writers are NOT quiesced",
                s.name
            ),
            Err(e) => {
                return Err(fail(
                    USAGE,
                    format!(
                        "cannot tell whether the target {shown} is the database of source {}: \
                         reading the source's identity failed: {e}. Nothing was changed. If the \
                         source is down, pass --source-unreachable to restore into the target as \
                         another database (writers not quiesced); to restore the source itself, \
                         use --source {} without --target",
                        s.name, s.name
                    ),
                ));
            }
        }
    }
    if tgt_id.database_oid.is_some() && !a.clean_existing {
        let client = target.connect().await.map_err(conn_err)?;
        let contents = identity::user_objects(&client, 10).await.map_err(|e| {
            fail(
                FAILURE,
                format!("listing what {shown} holds: {}", pgconn::pg_message(&e)),
            )
        })?;
        if !contents.is_empty() {
            return Err(fail(
                USAGE,
                format!(
                    "the target {shown} is an existing database that is not the configured \
                     source{} and it holds {}: restoring replaces every object of the snapshot \
                     there. Nothing was changed. Pass --clean-existing to restore over it, or \
                     give a database that does not exist yet (it is created)",
                    if source.is_none() {
                        " (no configured source: a --db backup restored with --target)"
                    } else {
                        ""
                    },
                    contents.listing()
                ),
            ));
        }
    }
    Ok(TargetChoice {
        target,
        discovery,
        quiesce: None,
        jobs,
    })
}

/// A server identity that could not be read: refused, saying what to do.
pub(crate) fn identity_err(e: IdentityError, what: &str) -> anyhow::Error {
    match e {
        IdentityError::Conn(c) => {
            let code = conn_code(&c);
            fail(
                code,
                format!(
                    "{c}{} (reading the identity of {what}); nothing was changed",
                    conn_hint(&c)
                ),
            )
        }
        q @ IdentityError::Query { .. } => fail(
            USAGE,
            format!(
                "{q}; Lifeboat decides whether {what} is the source's database by the server's \
                 system identifier (pg_control_system(), executable by PUBLIC unless revoked: \
                 GRANT EXECUTE ON FUNCTION pg_control_system() TO this user); nothing was changed"
            ),
        ),
    }
}

/// Resolves when SIGTERM arrives (never, if it cannot be watched).
async fn sigterm(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

pub async fn restore(ctx: &Ctx, mut a: RestorePostgresArgs) -> Result<i32> {
    if !a.tables.is_empty() || !a.schemas.is_empty() || !a.as_names.is_empty() {
        return crate::cmd_tables::restore(ctx, a).await;
    }
    if a.jobs_flag == Some(0) {
        return Err(usage("--jobs must be at least 1"));
    }
    // Install the SIGTERM handler first so a termination runs our cleanup.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let repo = ctx.open().await?;
    let snap = repo.find_snapshot(&a.snapshot, a.source.as_deref()).await?;
    let facts = postgres_facts(&snap)?;

    // The configured source: --source, else the snapshot's source if configured.
    let src_name = a.source.clone().or_else(|| {
        ctx.config
            .as_ref()
            .filter(|c| c.sources.contains_key(&snap.snapshot.source))
            .map(|_| snap.snapshot.source.clone())
    });
    let source = src_name
        .as_deref()
        .map(|n| configured_source(ctx, n))
        .transpose()?;
    let chosen = choose_target(ctx, &a, &snap, source.as_ref()).await?;
    a.jobs = chosen.jobs;
    let (target, discovery, quiesce_cfg) = (chosen.target, chosen.discovery, chosen.quiesce);

    let staging = a.staging_dir.clone().unwrap_or_else(std::env::temp_dir);
    if a.jobs > 1 {
        let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
        dump::check_staging_space(&staging, size).map_err(dump_err)?;
        // An operator's cap on what staging may use of that disk.
        if let Some(limit) = std::env::var("LIFEBOAT_STAGING_LIMIT")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            let needed = size.saturating_add((size / 10).max(64 << 20));
            if needed > limit {
                return Err(dump_err(DumpError::InsufficientSpace {
                    dir: staging.clone(),
                    needed,
                    available: limit,
                }));
            }
        }
    }

    // The target and the tools for its server, and the snapshot's data
    // proven, at the same time, while the writers are still up. Every blob
    // the restore will read is authenticated here, before anything is
    // stopped or replaced: --jobs > 1 stages the archive (authenticating
    // what it writes) and authenticates the blocks it leaves out (their rows
    // are read from the repository during the restore); a single stream is
    // read and authenticated once without being written anywhere
    // (`authenticate`). A damaged snapshot fails here and changes nothing.
    let mode = crate::progress::mode(ctx);
    let prepare = async {
        let created = dump::create_database_if_missing(&target, "postgres")
            .await
            .map_err(dump_err)?;
        let client = target.connect().await.map_err(conn_err)?;
        let num = pgconn::server_version_num(&client)
            .await
            .map_err(|e| fail(FAILURE, pgconn::pg_message(&e)))?;
        drop(client);
        let tools = tools::discover(tools::server_major(num), &discovery).map_err(tools_err)?;
        Ok::<_, anyhow::Error>((created, tools))
    };
    // The tables worth spreading over the jobs, by their size at backup.
    let split = if a.whole_tables {
        Vec::new()
    } else {
        tables_worth_splitting(&facts, a.jobs)
    };
    let stage = async {
        let started = Instant::now();
        let staged = if a.jobs > 1 {
            let leave_out = blocks_to_leave_out(facts.archive.as_ref(), &split);
            let ranges: Vec<Part> = leave_out
                .iter()
                .map(|b| Part::Range(b.start..b.end))
                .collect();
            let (staged, _) = tokio::try_join!(
                stage_archive_part(
                    &repo,
                    &snap,
                    &staging,
                    mode,
                    facts.archive.clone(),
                    leave_out,
                ),
                // One progress display at a time: staging's.
                authenticate(&repo, &snap, &ranges, progress::Mode::Off),
            )?;
            Some(staged)
        } else {
            authenticate(&repo, &snap, &[Part::All], mode).await?;
            None
        };
        Ok::<_, anyhow::Error>((staged, started.elapsed().as_secs_f64()))
    };
    let stage = async {
        stage.await.map_err(|e| {
            e.context(format!(
                "reading snapshot {} before touching the target failed; nothing was changed and \
                 the writers were not stopped",
                snap.short_id()
            ))
        })
    };
    let ((created, tools), (mut staged, proven_seconds)) = tokio::select! {
        r = async { tokio::try_join!(prepare, stage) } => r?,
        _ = sigterm(&mut term) => return Err(fail(INTERRUPTED, "terminated (SIGTERM) while preparing the restore: nothing was restored and the writers were not stopped")),
        _ = interrupt::requested() => return Err(fail(INTERRUPTED, "interrupted while preparing the restore: nothing was restored and the writers were not stopped")),
    };
    if created && !ctx.global.quiet {
        eprintln!("created database {}", target.display_url());
    }
    if !ctx.global.quiet {
        let what = if staged.is_some() {
            "staged the archive"
        } else {
            "authenticated the archive"
        };
        eprintln!("{what} in {proven_seconds:.1} s (writers not stopped yet)");
    }

    let quiescer: Box<dyn Quiescer> = if a.no_quiesce {
        eprintln!(
            "WARNING: --no-quiesce: writers are NOT stopped; they keep writing into a database \
             that is being replaced, and verification may fail because of them"
        );
        Box::new(NoQuiesce)
    } else {
        quiesce::from_config(
            quiesce_cfg.as_ref(),
            src_name.as_deref().unwrap_or(&snap.snapshot.source),
            ctx.cluster_options(
                a.cluster.kubeconfig.as_deref(),
                a.cluster.context.as_deref(),
            ),
            quiesce::stderr_notify(ctx.global.quiet),
        )
        .map_err(|e| usage(e.to_string()))?
    };
    let resume_on_verify_failure = quiesce_cfg
        .as_ref()
        .is_some_and(|q| q.resume_on_verify_failure);
    // Whether any writers are stopped (and so resumed or left stopped): not
    // with --no-quiesce, nor without quiesce settings that stop something.
    let has_writers = quiescer.stops_writers();
    let no_writers = if a.no_quiesce { "not_stopped" } else { "none" };
    if !ctx.global.quiet {
        eprintln!(
            "restoring snapshot {} ({} of {}, taken {}) into {}; writers: {}",
            snap.short_id(),
            facts.database,
            snap.snapshot.source,
            facts.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
            target.display_url(),
            quiescer.describe()
        );
    }
    if !ctx.global.quiet && has_writers {
        eprintln!(
            "if this restore is killed, bring the writers back yourself: {}",
            quiescer.manual_resume_hint()
        );
    }
    // Stopping may wait minutes for pods to go: stay interruptible. A
    // cancelled stop is undone by the guard it created.
    let guard = tokio::select! {
        r = Quiesced::stop(quiescer) => r?,
        _ = sigterm(&mut term) => return Err(fail(INTERRUPTED, "terminated (SIGTERM) while stopping the writers: nothing was restored")),
        _ = interrupt::requested() => return Err(fail(INTERRUPTED, "interrupted while stopping the writers: nothing was restored")),
    };
    let started = Instant::now();
    let restore_opts = RestoreOptions {
        jobs: a.jobs,
        ..RestoreOptions::default()
    };
    // Set once pg_restore (or the split restore) has started: from then on
    // the target is no longer what it was, and a failure leaves it partial.
    let touched = AtomicBool::new(false);
    let run = async {
        match &mut staged {
            Some(file) => {
                restore_staged(
                    &repo,
                    &snap,
                    &tools,
                    &target,
                    &restore_opts,
                    file,
                    &split,
                    &touched,
                )
                .await
            }
            None => {
                restore_streamed(&repo, &snap, &tools, &target, &restore_opts, mode, &touched).await
            }
        }
    };
    let outcome = tokio::select! {
        r = run => r,
        _ = sigterm(&mut term) => Err(fail(INTERRUPTED, "terminated (SIGTERM) during the restore; pg_restore was stopped")),
        _ = interrupt::requested() => Err(fail(INTERRUPTED, "interrupted (Ctrl-C) during the restore; pg_restore was stopped")),
    };
    // pg_restore is done with the staged file. Deleting a file of gigabytes
    // takes the kernel a while (0.5 s for 2.5 GB here): do it beside the
    // verification; the guard waits for it when this function returns.
    let (staging_seconds, _removal) = match staged {
        Some(staged) => (
            Some(proven_seconds),
            Some(RemovedInBackground::start(staged.file)),
        ),
        None => (None, None),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let interrupted = crate::exit::code_for(&e) == INTERRUPTED;
            let e = if facts.scope.tables.is_empty() || interrupted {
                e
            } else {
                e.context(
                    "this snapshot holds only selected tables, not the extensions, functions and \
                     types they depend on: restore it into a database that has the schema (for \
                     example restore a --schema-only snapshot there first)",
                )
            };
            if touched.load(Ordering::SeqCst) {
                return Err(partial(
                    format!("the restore stopped before it finished: {e:#}"),
                    guard,
                    &target,
                    has_writers,
                ));
            }
            // Nothing of the target was touched yet: as before the stop.
            let e = if interrupted {
                fail(
                    INTERRUPTED,
                    format!("{e:#}: it had not touched the target yet, nothing was restored"),
                )
            } else {
                e
            };
            match guard.resume().await {
                Ok(()) => eprintln!("the restore failed; the writers were brought back"),
                Err(r) => eprintln!(
                    "error: the restore failed and bringing the writers back failed too: {r:#}"
                ),
            }
            return Err(e);
        }
    };
    for t in &outcome.tolerated_errors {
        tracing::info!(error = %t.message, "tolerated while dropping old objects");
    }
    let restore_seconds = started.elapsed().as_secs_f64();

    let mut result = RestoreResult {
        snapshot: snap.id.clone(),
        source: snap.snapshot.source.clone(),
        target: target.display_url(),
        created_database: created,
        authentication_seconds: staging_seconds.is_none().then_some(proven_seconds),
        staging_seconds,
        restore_seconds,
        split_tables: outcome.split_tables.clone(),
        split_rows_from: outcome.split_rows_from.clone(),
        verified: None,
        differences: Vec::new(),
        not_recorded: Vec::new(),
        writers: if has_writers { "resumed" } else { no_writers },
    };
    if a.no_verify {
        eprintln!(
            "WARNING: --no-verify: the restored database was NOT checked against the snapshot's facts"
        );
        guard.resume().await.context("bringing the writers back")?;
        report_restore(ctx, &result)?;
        return Ok(OK);
    }
    let checked = tokio::select! {
        r = async {
            let mut client = target.connect().await.map_err(conn_err)?;
            facts::verify(&facts, &mut client).await.map_err(facts_err)
        } => r,
        _ = sigterm(&mut term) => Err(fail(INTERRUPTED, "terminated (SIGTERM) while verifying")),
        _ = interrupt::requested() => Err(fail(INTERRUPTED, "interrupted (Ctrl-C) while verifying")),
    };
    let diffs = match checked {
        Ok(d) => d,
        Err(e) => {
            return Err(partial(
                format!(
                    "pg_restore finished, but the restored database could not be checked against \
                     the snapshot's facts, so it is not known to be whole: {e:#}"
                ),
                guard,
                &target,
                has_writers,
            ));
        }
    };
    result.verified = Some(diffs.is_empty());
    result.not_recorded = facts.not_recorded();
    if diffs.is_empty() {
        guard.resume().await.context(
            "the database was restored and verified, but bringing the writers back failed",
        )?;
        report_restore(ctx, &result)?;
        return Ok(OK);
    }
    result.differences = diffs;
    let writers_msg = if !has_writers {
        if a.no_quiesce {
            "the writers were not stopped (--no-quiesce); keep traffic away from it until it is \
             restored again"
                .to_string()
        } else {
            "no writers are configured to stop (no quiesce settings for this target); keep \
             traffic away from it until it is restored again"
                .to_string()
        }
    } else if resume_on_verify_failure {
        result.writers = "resumed";
        match guard.resume().await {
            Ok(()) => "the writers were brought back anyway (quiesce.resume_on_verify_failure)"
                .to_string(),
            Err(e) => format!("bringing the writers back failed: {e:#}"),
        }
    } else {
        result.writers = "left_stopped";
        let hint = guard.leave_down();
        format!(
            "THE WRITERS ARE LEFT STOPPED: the restored database does not match the snapshot and must \
             not take traffic. Investigate, restore another snapshot, or bring them back yourself ({hint})"
        )
    };
    if ctx.json() {
        print_json(&result)?;
    } else {
        print!("{}", facts::diff_table(&result.differences));
    }
    Err(fail(
        VERIFY_FAILED,
        format!(
            "the restored database differs from snapshot {} in {} fact(s) (table above); {writers_msg}",
            snap.short_id(),
            result.differences.len()
        ),
    ))
}

fn report_restore(ctx: &Ctx, r: &RestoreResult) -> Result<()> {
    if ctx.json() {
        return print_json(r);
    }
    let verified = match r.verified {
        Some(true) if r.not_recorded.is_empty() => "every fact verified".to_string(),
        Some(true) => format!(
            "every fact verified (not recorded in this snapshot, so not checked: {})",
            r.not_recorded.join(", ")
        ),
        Some(false) => "verification FAILED".to_string(),
        None => "not verified".to_string(),
    };
    let writers = match r.writers {
        "none" => "no writers configured",
        "not_stopped" => "writers not stopped (--no-quiesce)",
        "left_stopped" => "writers left stopped",
        _ => "writers resumed",
    };
    println!(
        "restored snapshot {} into {} in {:.1} s; {verified}; {writers}",
        &r.snapshot[..r.snapshot.len().min(8)],
        r.target,
        r.restore_seconds,
    );
    if !r.split_tables.is_empty() && !ctx.global.quiet {
        eprintln!(
            "the rows of {} were spread over the jobs (--whole-tables: one job per table)",
            r.split_tables.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- verify

#[derive(Serialize)]
struct VerifyResult<'a> {
    snapshot: &'a str,
    target: String,
    ok: bool,
    differences: &'a [FactDiff],
    /// Facts the snapshot did not record (an older Lifeboat took it): not checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_recorded: Vec<&'static str>,
}

pub async fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let snap = repo.find_snapshot(&a.snapshot, a.source.as_deref()).await?;
    let facts = postgres_facts(&snap)?;
    let target = ConnConfig::parse(&a.target).map_err(conn_err)?;
    let mut client = target.connect().await.map_err(conn_err)?;
    let diffs = facts::verify(&facts, &mut client)
        .await
        .map_err(facts_err)?;
    if ctx.json() {
        print_json(&VerifyResult {
            snapshot: &snap.id,
            target: target.display_url(),
            ok: diffs.is_empty(),
            differences: &diffs,
            not_recorded: facts.not_recorded(),
        })?;
    } else if diffs.is_empty() {
        println!(
            "{} matches snapshot {}: {}",
            target.display_url(),
            snap.short_id(),
            facts.checked_summary()
        );
    } else {
        print!("{}", facts::diff_table(&diffs));
    }
    if diffs.is_empty() {
        Ok(OK)
    } else {
        Err(fail(
            VERIFY_FAILED,
            format!(
                "{} differs from snapshot {} in {} fact(s) (table above)",
                target.display_url(),
                snap.short_id(),
                diffs.len()
            ),
        ))
    }
}
