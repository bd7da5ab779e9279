//! `backup postgres`: a `REPEATABLE READ` transaction exports its snapshot,
//! `pg_dump -Fc -Z0 --snapshot` streams into the repository (no local
//! staging) while the facts (row counts, versions, size, verification
//! queries) are taken in the same snapshot; the snapshot document carries
//! them.

use std::io::Read;
use std::sync::{Arc, Mutex};

use lifeboat_postgres::archive::{ArchiveLayout, LayoutScanner};
use lifeboat_postgres::dump::PgDump;
use lifeboat_postgres::facts::{DumpScope, Facts, SnapshotSession};
use lifeboat_postgres::tools;
use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::snapshot::{Scope, SnapshotRef, TableRef};

use super::DUMP_ITEM;
use super::errors::{dump_err, facts_err, tools_err};
use super::source::{PgSource, configured_source, url_source};
use crate::context::Ctx;
use crate::error::{Error, FAILURE, Result, fail};
use crate::report::Reporter;

/// Which database to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupFrom {
    /// A PostgreSQL source of the configuration file.
    Source(String),
    /// A database URL (password from PGPASSWORD or ~/.pgpass).
    Url(String),
}

/// What `backup postgres` is asked to do.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub from: BackupFrom,
    /// Only these tables (`name` or `schema.name`; a partitioned table brings
    /// its partitions); empty: the whole database.
    pub tables: Vec<String>,
    /// Only the schema, no rows.
    pub schema_only: bool,
    pub tags: Vec<String>,
}

/// A committed PostgreSQL snapshot and the facts it carries.
pub struct BackupOutcome {
    pub snap: SnapshotRef,
    pub facts: Facts,
}

pub use crate::error::BackupFailure;

/// Backs up the requested database into the repository of `ctx`.
pub async fn backup(ctx: &Ctx, req: BackupRequest) -> Result<BackupOutcome> {
    let source = match &req.from {
        BackupFrom::Source(name) => configured_source(ctx, name).await?,
        BackupFrom::Url(url) => url_source(url)?,
    };
    let repo = ctx.open().await?;
    backup_database(
        &repo,
        &source,
        &req.tables,
        req.schema_only,
        req.tags,
        ctx.reporter(),
    )
    .await
    .map_err(Error::from)
}

/// Backs up `source` (already resolved, e.g. by the daemon) as `req` asks,
/// into `repo`.
pub async fn backup_source(
    repo: &Repository,
    source: &PgSource,
    req: BackupRequest,
    reporter: &dyn Reporter,
) -> Result<BackupOutcome, BackupFailure> {
    backup_database(
        repo,
        source,
        &req.tables,
        req.schema_only,
        req.tags,
        reporter,
    )
    .await
}

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

/// Dumps `source` into `repo` with facts taken in the dumped snapshot.
pub async fn backup_database(
    repo: &Repository,
    source: &PgSource,
    tables: &[String],
    schema_only: bool,
    tags: Vec<String>,
    reporter: &dyn Reporter,
) -> Result<BackupOutcome, BackupFailure> {
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
    let mut bs = BackupSession::start(repo, Arc::clone(&progress))
        .await
        .map_err(BackupFailure::repository)?;
    let dump = match PgDump::spawn(&tools, &source.conn, Some(session.snapshot_id()), &scope) {
        Ok(d) => d,
        Err(e) => {
            bs.abort().await;
            return Err(dump_err(e).into());
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
    let display = reporter.progress(Arc::clone(&progress), "backup", true);
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
            )
            .into(),
            None => BackupFailure::repository(Error::from(e).context("backing up the dump")),
        });
    }
    let mut facts = match facts {
        Ok(f) => f,
        Err(e) => {
            bs.abort().await;
            let _ = session.finish().await;
            return Err(facts_err(e)
                .context("taking the facts; nothing was committed")
                .into());
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
                kind: super::source::POSTGRES_KIND.into(),
                tags,
                facts: serde_json::to_value(&facts).map_err(Error::from)?,
            },
            snapshot_scope(&scope, &facts),
        )
        .await
        .map_err(BackupFailure::repository)?;
    Ok(BackupOutcome { snap, facts })
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
