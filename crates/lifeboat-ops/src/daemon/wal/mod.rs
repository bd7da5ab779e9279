//! WAL streaming by the daemon (`wal.streaming`, docs/physical.md
//! "Streaming"): for each configured postgres source, the active daemon
//! runs PostgreSQL's own `pg_receivewal` through a physical replication
//! slot into a spool directory and stores what it receives in the
//! repository:
//!
//! - every complete segment and history file with the code of `wal push`
//!   (`crate::wal::store`: write-once, same key, same epoch rule), removed
//!   from the spool only once the store returned;
//! - every `partial_interval` (default 5 s) the segment still being
//!   received, as a new version under `wal-partial/`
//!   (`lifeboat_repo::wal::partial`), so the archive is seconds behind the
//!   server; `wal fetch` serves it when the complete segment is not stored.
//!
//! `pg_receivewal` is supervised: restarted with a growing backoff when it
//! ends (its last lines of standard error logged), killed with the daemon.
//! Nothing is lost across restarts: the slot keeps on the server whatever
//! `pg_receivewal` has not reported flushed, and the spool keeps what it
//! flushed until it is stored. A standby daemon streams nothing.
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | the loop per source: receiver, spool, positions, metrics |
//! | `spool.rs` | the spool's files: what to store, what is still received |
//! | `receiver.rs` | the `pg_receivewal` child process |
//! | `position.rs` | archived position and recovery point (pure) |
//! | `metrics.rs` | the `lifeboat_wal_*` families |

pub mod metrics;
pub mod position;
pub mod receiver;
pub mod spool;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lifeboat_postgres::lsn::Lsn;
use lifeboat_postgres::tools;
use lifeboat_postgres::wal::SegmentName;
use lifeboat_postgres::wal::receive::{self, segment_start};
use lifeboat_repo::wal::PutOutcome;
use lifeboat_repo::wal::partial::{self, PartialKey, valid_length};

use self::position::{Samples, archived_position};
use self::receiver::Receiver;
use super::Daemon;
use super::scheduler::{SlotClock, Wake};
use crate::config::{DEFAULT_SPOOL_DIR, StreamingConfig};

/// How often the spool is looked at and the server's position sampled.
const TICK: Duration = Duration::from_secs(1);
/// The longest wait before starting `pg_receivewal` again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One task per streamed source (none without `wal.streaming`).
pub fn spawn(d: &Arc<Daemon>) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(cfg) = d.ctx.config.as_ref().and_then(|c| c.wal.clone()) else {
        return Vec::new();
    };
    if cfg.streaming.is_empty() {
        return Vec::new();
    }
    metrics::describe();
    let root = cfg
        .spool_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR));
    let config = d.ctx.config.as_ref();
    cfg.streaming
        .into_iter()
        .map(|(source, s)| {
            let objective = config.and_then(|c| {
                c.objective("database-corruption")
                    .map(|o| o.rpo.num_seconds() as f64)
                    .or_else(|| {
                        d.source(&source)
                            .and_then(|src| src.rpo_objective)
                            .map(|r| r.num_seconds() as f64)
                    })
            });
            metrics::started(&source, objective);
            let spool = root.join(&source);
            tokio::spawn(run(Arc::clone(d), source, s, spool))
        })
        .collect()
}

/// Streams while this daemon is active; ends at shutdown.
async fn run(d: Arc<Daemon>, source: String, cfg: StreamingConfig, spool: PathBuf) {
    let mut clock = SlotClock::new(&d);
    while clock.until_active(|| {}).await {
        let mut s = Stream::new(&d, &source, &cfg, spool.clone());
        s.run(&mut clock).await;
    }
}

/// The state of one source's stream on the active daemon.
struct Stream<'a> {
    d: &'a Daemon,
    source: &'a str,
    cfg: &'a StreamingConfig,
    spool: PathBuf,
    receiver: Option<(Receiver, Instant)>,
    next_start: Instant,
    backoff: Duration,
    server: Option<lifeboat_postgres::Client>,
    /// How to reach the server again when the sampling connection broke.
    conn: Option<lifeboat_postgres::ConnConfig>,
    /// The version stored last, per segment still received.
    pushed: HashMap<(u32, String), PartialKey>,
    last_partial_push: Option<Instant>,
    complete_end: Option<u64>,
    /// (segment start, valid length, segment size) of the newest version
    /// stored, and the receiver's written position sampled before it was
    /// read.
    partial: Option<((u64, u64, u64), Option<u64>)>,
    archived: Option<u64>,
    samples: Samples,
}

impl<'a> Stream<'a> {
    fn new(d: &'a Daemon, source: &'a str, cfg: &'a StreamingConfig, spool: PathBuf) -> Self {
        Stream {
            d,
            source,
            cfg,
            spool,
            receiver: None,
            next_start: Instant::now(),
            backoff: Duration::from_secs(1),
            server: None,
            conn: None,
            pushed: HashMap::new(),
            last_partial_push: None,
            complete_end: None,
            partial: None,
            archived: None,
            samples: Samples::default(),
        }
    }

    async fn run(&mut self, clock: &mut SlotClock) {
        tracing::info!(source = %self.source, spool = %self.spool.display(), "WAL streaming starts");
        self.seed_recovery_point().await;
        loop {
            self.supervise().await;
            let (current, written) = self.sample().await;
            self.ship(written, false).await;
            self.measure(current);
            match clock.sleep_until(Utc::now() + TICK).await {
                Wake::Slot => {}
                Wake::Stop | Wake::Standby => break,
            }
        }
        if let Some((r, _)) = self.receiver.take() {
            r.stop(Duration::from_secs(5)).await;
        }
        metrics::up(self.source, false);
        // What arrived before the receiver stopped.
        let (current, written) = self.sample().await;
        self.ship(written, true).await;
        self.measure(current);
        tracing::info!(source = %self.source, "WAL streaming stopped");
    }

    /// Before anything is stored by this run: the newest object's time, so
    /// that the recovery point ages (and alerts) even if streaming never
    /// works.
    async fn seed_recovery_point(&self) {
        match crate::wal::check::archive(&self.d.repo, Utc::now()).await {
            Ok(Some(a)) => {
                if let Some(t) = a.overview.newest_time {
                    metrics::archived_through(self.source, t);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "cannot list the WAL archive")
            }
        }
    }

    /// Starts `pg_receivewal` when it is not running and its backoff has
    /// passed; notices when it ended.
    async fn supervise(&mut self) {
        if let Some((r, since)) = &mut self.receiver {
            let Some(why) = r.ended() else { return };
            let ran = since.elapsed();
            self.receiver = None;
            metrics::up(self.source, false);
            metrics::restarted(self.source);
            if ran > Duration::from_secs(30) {
                self.backoff = Duration::from_secs(1);
            }
            self.next_start = Instant::now() + self.backoff;
            tracing::warn!(source = %self.source, after_seconds = ran.as_secs(), retry_in_seconds = self.backoff.as_secs(), "pg_receivewal ended: {why}; starting it again");
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            return;
        }
        if Instant::now() < self.next_start {
            return;
        }
        match self.start().await {
            Ok(r) => {
                metrics::up(self.source, true);
                self.receiver = Some((r, Instant::now()));
            }
            Err(e) => {
                self.next_start = Instant::now() + self.backoff;
                tracing::warn!(source = %self.source, retry_in_seconds = self.backoff.as_secs(), "cannot start WAL streaming: {e}");
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// The source's server, its `pg_receivewal`, the slot (created if
    /// absent), the spool, then the stream.
    async fn start(&mut self) -> Result<Receiver, String> {
        let src = crate::postgres::source::configured_source(&self.d.ctx, self.source)
            .await
            .map_err(|e| e.to_string())?;
        let client = src.conn.connect().await.map_err(|e| e.to_string())?;
        let num = lifeboat_postgres::conn::server_version_num(&client)
            .await
            .map_err(|e| lifeboat_postgres::conn::pg_message(&e))?;
        let found =
            tools::discover(tools::server_major(num), &src.discovery).map_err(|e| e.to_string())?;
        let program = found.dir.join("pg_receivewal");
        if !program.is_file() {
            return Err(format!(
                "no pg_receivewal beside {} (install the PostgreSQL client package of the \
                 server's major version)",
                found.pg_dump.display()
            ));
        }
        let slot = self.cfg.slot_name(self.source);
        receiver::run_once(
            &program,
            &receive::create_slot_args(&slot),
            &src.conn,
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| format!("creating the replication slot {slot}: {e}"))?;
        spool::create(&self.spool)
            .map_err(|e| format!("cannot create the spool {}: {e}", self.spool.display()))?;
        // In bytes (pg_settings' unit for it is B), as `backup physical` reads it.
        let segment_size: i64 = client
            .query_one(
                "SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'",
                &[],
            )
            .await
            .map_err(|e| lifeboat_postgres::conn::pg_message(&e))?
            .get(0);
        let segment_size = segment_size as u64;
        for name in spool::repair_short_partials(&self.spool, segment_size)? {
            tracing::warn!(source = %self.source, file = %name,
                "a .partial cut short while pg_receivewal padded it (only zeros) was emptied so that pg_receivewal starts again");
        }
        let args = receive::stream_args(&self.spool, &slot, self.cfg.synchronous);
        let r = Receiver::start(&program, &args, &src.conn, self.source)
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        tracing::info!(source = %self.source, slot = %slot, program = %program.display(), "pg_receivewal started");
        self.server = Some(client);
        self.conn = Some(src.conn);
        Ok(r)
    }

    /// The server's current position and the receiver's written position
    /// (its walsender's `write_lsn`), `None` when not known now.
    async fn sample(&mut self) -> (Option<u64>, Option<u64>) {
        if self.server.is_none()
            && let Some(conn) = &self.conn
        {
            self.server = conn.connect().await.ok();
        }
        let Some(client) = &self.server else {
            return (None, None);
        };
        let slot = self.cfg.slot_name(self.source);
        let q = "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                 ELSE pg_current_wal_lsn() END)::text, \
                 (SELECT r.write_lsn::text FROM pg_replication_slots s \
                  JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1)";
        match client.query_one(q, &[&slot]).await {
            Ok(row) => {
                let current = row
                    .get::<_, Option<String>>(0)
                    .and_then(|s| Lsn::parse(&s))
                    .map(|l| l.0);
                let written = row
                    .get::<_, Option<String>>(1)
                    .and_then(|s| Lsn::parse(&s))
                    .map(|l| l.0);
                if let Some(c) = current {
                    self.samples.push(Utc::now(), c);
                }
                (current, written)
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %lifeboat_postgres::conn::pg_message(&e), "cannot read the server's WAL position");
                self.server = None;
                (None, None)
            }
        }
    }

    /// Stores what the spool holds: complete files (then removed), and the
    /// segments still received when their interval has passed (or `force`).
    async fn ship(&mut self, written: Option<u64>, force: bool) {
        let names = match spool::names(&self.spool) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "cannot read the spool");
                return;
            }
        };
        let plan = spool::plan(&names);
        let interval = self.cfg.partial_interval().to_std().unwrap_or_default();
        let partial_due = !plan.partial.is_empty()
            && !interval.is_zero()
            && (force
                || self
                    .last_partial_push
                    .is_none_or(|t| t.elapsed() >= interval));
        if plan.complete.is_empty() && !partial_due {
            return;
        }
        let epoch = match crate::wal::epoch::writer_epoch(&self.d.ctx, None).await {
            Ok(e) => e.epoch,
            Err(e) => {
                metrics::push_failed(self.source);
                tracing::warn!(source = %self.source, error = %e, "cannot decide the epoch to store WAL under; retrying");
                return;
            }
        };
        for name in &plan.complete {
            if let Err(e) = self.store_complete(name, epoch).await {
                metrics::push_failed(self.source);
                tracing::error!(source = %self.source, file = %name, error = %e, "cannot store a WAL file; it stays in the spool and is tried again");
                return;
            }
        }
        if partial_due {
            self.last_partial_push = Some(Instant::now());
            for seg in &plan.partial {
                if let Err(e) = self.store_partial(seg, epoch, written).await {
                    metrics::push_failed(self.source);
                    tracing::warn!(source = %self.source, segment = %seg, error = %e, "cannot store the segment being received; trying again");
                }
            }
        }
    }

    async fn store_complete(&mut self, name: &str, epoch: u64) -> Result<(), String> {
        let path = self.spool.join(name);
        let data = read(&path).await?;
        let stored = crate::wal::store(&self.d.repo, name, &data, epoch)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(seg) = SegmentName::parse(name) {
            let end = segment_start(&seg, data.len() as u64) + data.len() as u64;
            self.complete_end = Some(self.complete_end.map_or(end, |e| e.max(end)));
            let counted = self
                .pushed
                .remove(&(seg.timeline, name.to_string()))
                .map_or(0, |k| k.length);
            metrics::stored_bytes(self.source, (data.len() as u64).saturating_sub(counted));
            self.drop_versions(seg.timeline, name, None).await;
        }
        spool::remove(&self.spool, name)
            .map_err(|e| format!("stored, but cannot remove it from the spool: {e}"))?;
        tracing::debug!(source = %self.source, key = %stored.key, outcome = stored.outcome, "WAL file stored");
        Ok(())
    }

    async fn store_partial(
        &mut self,
        seg: &SegmentName,
        epoch: u64,
        written: Option<u64>,
    ) -> Result<(), String> {
        let segment = seg.to_string();
        let path = self.spool.join(format!("{segment}.partial"));
        let data = match read(&path).await {
            Ok(d) => d,
            // Completed and renamed meanwhile: stored at the next tick.
            Err(_) if !path.exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = valid_length(&data);
        let size = data.len() as u64;
        let at = (segment_start(seg, size), len, size);
        let id = (seg.timeline, segment.clone());
        let before = self.pushed.get(&id).cloned();
        if before
            .as_ref()
            .is_none_or(|k| k.length != len || k.epoch != epoch)
        {
            let key =
                PartialKey::new(seg.timeline, &segment, epoch, len).map_err(|e| e.to_string())?;
            match partial::put(&self.d.repo, &key, &data)
                .await
                .map_err(|e| e.to_string())?
            {
                PutOutcome::Stored { .. } | PutOutcome::AlreadyStored { .. } => {}
                PutOutcome::Differs { .. } => {
                    return Err(format!(
                        "{key} is stored with other content: another writer streams this \
                         timeline under the same epoch (nothing overwritten)"
                    ));
                }
            }
            let counted = before.as_ref().map_or(0, |k| k.length);
            metrics::stored_bytes(self.source, len.saturating_sub(counted));
            self.drop_versions(seg.timeline, &segment, Some(&key)).await;
            self.pushed.insert(id, key);
        }
        let newest = self.partial.is_none_or(|((start, _, _), _)| at.0 >= start);
        if newest {
            self.partial = Some((at, written));
        }
        Ok(())
    }

    /// Deletes the stored versions of `segment` but `keep` (all of them
    /// once the complete segment is stored). A refused delete (append-only)
    /// leaves them: readers take the newest.
    async fn drop_versions(&self, timeline: u32, segment: &str, keep: Option<&PartialKey>) {
        let versions = match partial::versions(&self.d.repo, timeline, segment).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(source = %self.source, error = %e, "cannot list partial versions");
                return;
            }
        };
        for v in versions.iter().filter(|v| Some(*v) != keep) {
            if let Err(e) = partial::delete(&self.d.repo, v).await {
                tracing::debug!(source = %self.source, key = %v, error = %e, "an older partial version stays");
            }
        }
    }

    /// The archived position, lag and recovery point into the metrics.
    fn measure(&mut self, current: Option<u64>) {
        let archived = archived_position(
            self.complete_end,
            self.partial.map(|(p, _)| p),
            self.partial.and_then(|(_, w)| w),
        );
        if let Some(a) = archived {
            if self.archived.is_none_or(|b| a > b) {
                self.archived = Some(a);
            }
            metrics::archived(self.source, self.archived.unwrap_or(a));
            if let Some(t) = self.samples.through(a) {
                metrics::archived_through(self.source, t);
            }
        }
        metrics::lag(
            self.source,
            match (current, self.archived) {
                (Some(c), Some(a)) => Some(c.saturating_sub(a)),
                _ => None,
            },
        );
    }
}

async fn read(path: &Path) -> Result<Vec<u8>, String> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}
