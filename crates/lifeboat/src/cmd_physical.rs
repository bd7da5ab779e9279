//! `backup physical` and `restore physical`: their flags, the requests to
//! `lifeboat_ops::physical` (where the flows live) and the printed results
//! (text, or `--json`). docs/physical.md.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use lifeboat_ops::physical::{self as ops, BackupRequest, RestoreRequest};
use lifeboat_ops::postgres::BackupFrom;
use lifeboat_postgres::basebackup::{Lsn, Target};
use lifeboat_repo::retention::parse_duration;
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};
use lifeboat_ops::error::{OK, Result, usage};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("from").required(true).args(["source", "db"])))]
pub struct BackupPhysicalArgs {
    /// A PostgreSQL source of the configuration file
    #[arg(long)]
    pub source: Option<String>,
    /// Or a database URL, postgresql://user@host:port/db (a role with
    /// REPLICATION; password from PGPASSWORD or ~/.pgpass, never in the URL)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Block size in KiB (a multiple of 8, 8 to 4096) [default: the
    /// source's physical.block_size, else 256]
    #[arg(long, value_name = "KIB")]
    pub block_size: Option<u32>,
    /// Tags to attach (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true)
    .args(["to_time", "to_lsn", "to_xid", "to_name", "to_latest"])))]
pub struct RestorePhysicalArgs {
    /// Snapshot id (or unique prefix), or `latest`: the newest base backup
    /// that can reach the target
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Only this source's base backups; its verification queries run on the
    /// recovered server
    #[arg(long)]
    pub source: Option<String>,
    /// The data directory to create (must be empty or absent)
    #[arg(long, value_name = "DIR")]
    pub pgdata: PathBuf,
    /// Recover to this moment (RFC 3339, e.g. 2026-12-04T10:47:00Z)
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// Recover to this WAL location (e.g. 0/3000148)
    #[arg(long, value_name = "LSN")]
    pub to_lsn: Option<String>,
    /// Recover to this transaction id (txid_current() / pg_current_xact_id())
    #[arg(long, value_name = "XID")]
    pub to_xid: Option<u64>,
    /// Recover to this restore point (pg_create_restore_point)
    #[arg(long, value_name = "NAME")]
    pub to_name: Option<String>,
    /// Recover to the end of the archive
    #[arg(long)]
    pub to_latest: bool,
    /// Stop just after the target (the default)
    #[arg(long, conflicts_with = "exclusive")]
    pub inclusive: bool,
    /// Stop just before the target
    #[arg(long)]
    pub exclusive: bool,
    /// How long recovery may run [default: 6h]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

impl RestorePhysicalArgs {
    fn target(&self) -> Result<Target> {
        if let Some(t) = &self.to_time {
            let t = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
                usage(format!(
                    "--to-time {t:?}: {e}; write it as RFC 3339, e.g. 2026-12-04T10:47:00Z"
                ))
            })?;
            return Ok(Target::Time(t.with_timezone(&chrono::Utc)));
        }
        if let Some(l) = &self.to_lsn {
            return l
                .parse::<Lsn>()
                .map(Target::Lsn)
                .map_err(|e| usage(format!("--to-lsn: {e}")));
        }
        if let Some(x) = self.to_xid {
            return Ok(Target::Xid(x));
        }
        if let Some(n) = &self.to_name {
            return Ok(Target::Name(n.clone()));
        }
        Ok(Target::Latest)
    }
}

#[derive(Serialize)]
struct BackupResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    /// Content bytes of the data directory's files (what was read).
    bytes_read: u64,
    /// Bytes of new blocks (plaintext), and what the repository grew by.
    bytes_new: u64,
    bytes_stored: u64,
    blobs_new: u64,
    blobs_reused: u64,
    duration_seconds: f64,
    stats: &'a lifeboat_repo::snapshot::BackupStats,
    facts: &'a ops::PhysicalFacts,
    /// Why the base backup may not be recoverable (also on stderr).
    archive_warning: Option<&'a str>,
}

pub async fn backup(ctx: &Ctx, a: BackupPhysicalArgs) -> Result<i32> {
    let from = match (a.source, a.db) {
        (Some(name), _) => BackupFrom::Source(name),
        (None, Some(url)) => BackupFrom::Url(url),
        (None, None) => return Err(usage("pass --source NAME or --db URL")),
    };
    let block_size = match a.block_size {
        Some(k) => Some(
            k.checked_mul(1024)
                .ok_or_else(|| usage("--block-size is too large"))?,
        ),
        None => None,
    };
    let done = ops::backup(
        ctx,
        BackupRequest {
            from,
            block_size,
            tags: a.tags,
        },
    )
    .await?;
    let s = &done.snap.snapshot.stats;
    let f = &done.facts;
    if ctx.json() {
        print_json(&BackupResult {
            id: &done.snap.id,
            source: &done.snap.snapshot.source,
            time: done.snap.snapshot.time,
            bytes_read: f.file_bytes,
            bytes_new: s.bytes_new,
            bytes_stored: s.bytes_stored,
            blobs_new: s.new_chunks,
            blobs_reused: s.chunks.saturating_sub(s.new_chunks),
            duration_seconds: s.duration_seconds,
            stats: s,
            facts: f,
            archive_warning: done.archive_warning.as_deref(),
        })?;
    } else {
        println!(
            "snapshot {} saved: base backup of {} (PostgreSQL {}, timeline {}, {} to {}), {} files, {} read, {} new, {} stored, {:.1} s",
            done.snap.short_id(),
            done.snap.snapshot.source,
            f.server_version,
            f.timeline,
            f.start_lsn,
            f.stop_lsn,
            f.files,
            human_bytes(f.file_bytes),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            s.duration_seconds,
        );
    }
    Ok(OK)
}

pub async fn restore(ctx: &Ctx, a: RestorePhysicalArgs) -> Result<i32> {
    let target = a.target()?;
    let timeout = match &a.timeout {
        Some(t) => parse_duration(t)
            .map_err(|e| usage(format!("--timeout: {e}")))?
            .to_std()
            .map_err(|_| usage("--timeout must be positive"))?,
        None => std::time::Duration::from_secs(6 * 3600),
    };
    let done = ops::restore(
        ctx,
        RestoreRequest {
            snapshot: a.snapshot,
            source: a.source,
            pgdata: a.pgdata,
            target,
            inclusive: !a.exclusive,
            timeout,
        },
    )
    .await?;
    if ctx.json() {
        print_json(&done)?;
    } else {
        println!(
            "restored snapshot {} of {} into {} ({} entries, {}) in {:.1} s; recovered to {} in {:.1} s: {}",
            &done.snapshot[..8.min(done.snapshot.len())],
            done.source,
            done.pgdata.display(),
            done.files,
            human_bytes(done.bytes),
            done.restore_seconds,
            done.target,
            done.recovery_seconds,
            done.reached,
        );
        println!(
            "replayed up to {} (last transaction {}), promoted on timeline {}; the server was \
             stopped cleanly and the directory is ready to start as a primary",
            done.replay_lsn.as_deref().unwrap_or("?"),
            done.replay_time
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "none".into()),
            done.timeline
                .map(|t| t.to_string())
                .unwrap_or_else(|| "?".into())
        );
        for q in &done.queries {
            println!(
                "  query {}: {}",
                q.name,
                q.value.as_deref().unwrap_or("NULL")
            );
        }
    }
    Ok(OK)
}
