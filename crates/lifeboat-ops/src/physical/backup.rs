//! `backup physical`: `pg_basebackup -D - -Ft -X fetch` streamed straight
//! into the repository through [`super::stream::PaddedTar`] (no staging
//! copy), cut into fixed-size blocks, under the repository's shared lock
//! like every backup; the snapshot (kind `physical`) records the
//! [`PhysicalFacts`]: start and stop LSN, timeline, the server's clock
//! around the backup, system identifier, version, the backup label.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_postgres::basebackup::run::{PgBaseBackup, program};
use lifeboat_postgres::basebackup::{Lsn, SqlError, manifest_wal_range, parse_backup_label};
use lifeboat_postgres::conn::pg_message;
use lifeboat_postgres::{Client, tools};
use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::physical::{DATA_ITEM, DEFAULT_BLOCK, FILES_ITEM, KIND, block_chunker};
use lifeboat_repo::snapshot::SnapshotRef;

use super::stream::{Collected, PaddedTar};
use super::{FACTS_VERSION, PhysicalFacts};
use crate::context::Ctx;
use crate::error::{Error, FAILURE, Result, fail};
use crate::postgres::source::{PgSource, configured_source, url_source};
use crate::postgres::{BackupFrom, conn_err, dump_err, tools_err};

/// What `backup physical` is asked to do.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub from: BackupFrom,
    /// Block size in bytes (a multiple of 8 KiB); `None`: the source's
    /// `physical.block_size`, else [`DEFAULT_BLOCK`].
    pub block_size: Option<u32>,
    pub tags: Vec<String>,
}

/// A committed physical snapshot.
pub struct BackupOutcome {
    pub snap: SnapshotRef,
    pub facts: PhysicalFacts,
    /// Why this base backup may not be recoverable as things stand (see
    /// [`archive_warning`]); `None` when nothing says so.
    pub archive_warning: Option<String>,
}

/// What the server says before the backup.
struct Before {
    server_version: String,
    server_version_num: i64,
    system_identifier: String,
    data_checksums: bool,
    superuser: String,
    wal_segment_size: u64,
    start_time: DateTime<Utc>,
}

fn sql(what: &'static str) -> impl Fn(lifeboat_postgres::conn::ConnError) -> Error {
    move |e| conn_err(e).context(what)
}

fn query_err(what: &str, e: &SqlError) -> Error {
    fail(FAILURE, format!("{what}: {}", pg_message(e)))
}

async fn before(c: &Client) -> Result<Before> {
    let row = c
        .query_one(
            "SELECT current_setting('server_version'), \
                    current_setting('server_version_num')::int8, \
                    (SELECT system_identifier::text FROM pg_control_system()), \
                    current_setting('data_checksums') = 'on', \
                    (SELECT rolname::text FROM pg_roles WHERE oid = 10), \
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'), \
                    now()",
            &[],
        )
        .await
        .map_err(|e| query_err("reading the server's identity", &e))?;
    Ok(Before {
        server_version: row.get(0),
        server_version_num: row.get(1),
        system_identifier: row.get(2),
        data_checksums: row.get(3),
        superuser: row.get(4),
        wal_segment_size: row.get::<_, i64>(5) as u64,
        start_time: row.get(6),
    })
}

/// The server's clock and next transaction id, after the backup.
async fn after(c: &Client) -> Result<(DateTime<Utc>, u64)> {
    let row = c
        .query_one(
            "SELECT now(), pg_snapshot_xmax(pg_current_snapshot())::text::int8",
            &[],
        )
        .await
        .map_err(|e| query_err("reading the server's clock after the backup", &e))?;
    Ok((row.get(0), row.get::<_, i64>(1) as u64))
}

/// Backs up the requested cluster into the repository of `ctx`.
pub async fn backup(ctx: &Ctx, req: BackupRequest) -> Result<BackupOutcome> {
    let source = match &req.from {
        BackupFrom::Source(name) => configured_source(ctx, name).await?,
        BackupFrom::Url(url) => url_source(url)?,
    };
    // --block-size, else the source's `physical.block_size` (what the
    // daemon's base backups of it use), else the default.
    let block = req
        .block_size
        .or_else(|| match &req.from {
            BackupFrom::Source(name) => ctx
                .config
                .as_ref()
                .and_then(|c| c.sources.get(name))
                .and_then(|s| s.physical.as_ref())
                .and_then(|p| p.block_size)
                .map(|b| b.bytes()),
            BackupFrom::Url(_) => None,
        })
        .unwrap_or(DEFAULT_BLOCK);
    let chunker = block_chunker(block)?;
    let repo = ctx.open().await?.with_chunker(chunker);
    backup_source(&repo, &source, block, req.tags, ctx.reporter()).await
}

/// Backs up `source` into `repo` (whose chunker is already the block
/// chunker of `block`).
pub async fn backup_source(
    repo: &lifeboat_repo::Repository,
    source: &PgSource,
    block: u32,
    tags: Vec<String>,
    reporter: &dyn crate::report::Reporter,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let client = source.conn.connect().await.map_err(sql("connecting"))?;
    let b = before(&client).await?;
    let tools = tools::discover(tools::server_major(b.server_version_num), &source.discovery)
        .map_err(tools_err)?;
    let pg_basebackup = program(&tools.dir);
    let pgbb_version = tools::tool_version(&pg_basebackup).map_err(tools_err)?.text;
    let progress = Arc::new(Progress::default());
    // Named so that prune holds WAL deletion back while it runs (its
    // snapshot, not written yet, needs the WAL from its start on).
    let mut session =
        BackupSession::start_as(repo, Arc::clone(&progress), "backup physical").await?;
    let label = format!("lifeboat {}", b.start_time.format("%Y-%m-%dT%H:%M:%SZ"));
    let child = match PgBaseBackup::spawn(&pg_basebackup, &source.conn, &label) {
        Ok(c) => c,
        Err(e) => {
            session.abort().await;
            return Err(dump_err(e));
        }
    };
    reporter.note(&format!(
        "base backup of {} ({}) with {} blocks of {} KiB",
        source.name,
        b.server_version,
        pg_basebackup.display(),
        block / 1024
    ));
    let collected = Arc::new(Mutex::new(Collected::default()));
    let reader = PaddedTar::new(
        child,
        block,
        Arc::clone(&collected),
        Box::new(|mut c: PgBaseBackup| c.wait().map_err(|e| e.to_string())),
    );
    let display = reporter.progress(Arc::clone(&progress), "backup", true);
    let added = session.add_stream(DATA_ITEM, reader).await;
    drop(display);
    let mut got = std::mem::take(&mut *collected.lock().unwrap_or_else(|p| p.into_inner()));
    if let Err(e) = added {
        session.abort().await;
        return Err(match got.failure.take() {
            Some(msg) => fail(
                FAILURE,
                format!("{msg}; nothing was committed to the repository"),
            ),
            None => Error::from(e).context("backing up the base backup"),
        });
    }
    let result = finish(&client, &b, &mut got, block, pgbb_version).await;
    let (facts, list) = match result {
        Ok(x) => x,
        Err(e) => {
            session.abort().await;
            return Err(e.context("nothing was committed"));
        }
    };
    let list_bytes = serde_json::to_vec(&list).map_err(Error::from)?;
    if let Err(e) = session
        .add_stream(FILES_ITEM, std::io::Cursor::new(list_bytes))
        .await
    {
        session.abort().await;
        return Err(Error::from(e).context("storing the file list"));
    }
    let snap = session
        .commit(SnapshotMeta {
            source: source.name.clone(),
            kind: KIND.into(),
            tags,
            facts: serde_json::to_value(&facts).map_err(Error::from)?,
        })
        .await?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "physical backup done"
    );
    let archive_warning = archive_warning(repo, &facts).await;
    if let Some(w) = &archive_warning {
        tracing::warn!(snapshot = %snap.id, "{w}");
        reporter.note(&format!("warning: {w}"));
    }
    Ok(BackupOutcome {
        snap,
        facts,
        archive_warning,
    })
}

/// A base backup needs the archive from its start segment on. When the
/// archive on its timeline already holds later segments but not that one
/// (WAL streamed through a slot made after the backup's start: a backup of
/// a standby starts at its last restartpoint, which can be older), the
/// segment will not arrive by streaming, and `check` will call the backup
/// unrecoverable: said now, while another backup can still be taken. An
/// empty archive on the timeline says nothing (the segment may be on its
/// way); a listing that fails is not this backup's failure.
async fn archive_warning(repo: &Repository, f: &PhysicalFacts) -> Option<String> {
    let seg = f.wal_segment_size.max(1 << 20);
    // Partial versions count: the segment being streamed exists only so.
    let present = super::ArchivedWal::list(repo, seg)
        .await
        .ok()?
        .on(f.timeline);
    let start = f.start_lsn.0 / seg;
    let first = super::plan::archive_starts_after(&present, start)?;
    let name = |n: u64| Lsn(n * seg).segment_name(f.timeline, seg);
    Some(format!(
        "the archive on timeline {} starts at {}, after this base backup's start segment {}: \
         unless {} still reaches the archive (archive_command), this base backup cannot be \
         recovered. Streaming from a standby? Its base backup starts at its last restartpoint: \
         run CHECKPOINT on the primary, then on the standby, and take another",
        f.timeline,
        name(first),
        name(start),
        name(start)
    ))
}

/// The facts, from what the stream carried and what the server says now.
async fn finish(
    client: &Client,
    b: &Before,
    got: &mut Collected,
    block: u32,
    pg_basebackup_version: String,
) -> Result<(PhysicalFacts, lifeboat_repo::physical::FileList)> {
    let list = got
        .list
        .take()
        .ok_or_else(|| fail(FAILURE, "pg_basebackup's stream ended without its end"))?;
    let label_bytes = got.backup_label.take().ok_or_else(|| {
        fail(
            FAILURE,
            "the base backup holds no backup_label; is this pg_basebackup of PostgreSQL 13 or newer?",
        )
    })?;
    let label_text = String::from_utf8_lossy(&label_bytes).into_owned();
    let label = parse_backup_label(&label_text).map_err(|e| fail(FAILURE, e))?;
    let manifest = got.backup_manifest.take().ok_or_else(|| {
        fail(
            FAILURE,
            "the base backup holds no backup_manifest (PostgreSQL 13 or newer writes one)",
        )
    })?;
    let range = manifest_wal_range(&manifest).map_err(|e| fail(FAILURE, e))?;
    let (stop_time, next_xid) = after(client).await?;
    let facts = PhysicalFacts {
        version: FACTS_VERSION,
        system_identifier: b.system_identifier.clone(),
        server_version: b.server_version.clone(),
        server_version_num: b.server_version_num,
        timeline: label.start_timeline,
        start_lsn: label.start_lsn,
        stop_lsn: range.end,
        start_time: b.start_time,
        stop_time,
        next_xid,
        wal_segment_size: b.wal_segment_size,
        data_checksums: b.data_checksums,
        superuser: b.superuser.clone(),
        from_standby: label.backup_from == "standby",
        backup_label: label_text,
        pg_basebackup_version,
        files: list.entries.len() as u64,
        file_bytes: list.file_bytes(),
        block_size: block,
    };
    Ok((facts, list))
}
