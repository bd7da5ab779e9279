//! The daemon (`lifeboat serve`, `docs/daemon.md`): its shared state,
//! starting runs, the runs themselves, retention, when to run (schedules,
//! checks), who runs (the lease), what it reports (metrics), start-up and
//! the SIGTERM sequence. The binary resolves its options from flags and
//! configuration, serves HTTP (health, metrics, the API, the status page)
//! and runs the drill loops (`crates/lifeboat/src/serve/`).
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | [`Daemon`]: the shared state, starting runs, reading the repository |
//! | `lifecycle.rs` | building the daemon, start-up, its tasks and the SIGTERM sequence |
//! | `runner.rs` | one backup of a source, in-process, with its retention and the grace period |
//! | `physical.rs` | one physical base backup of a source (`physical:`), as `backup physical` takes it |
//! | `retention.rs` | forget per source after each backup; prune batched |
//! | `state.rs` | the role, what started a run, a source's state and status, why a run was not started |
//! | `scheduler.rs` | cron slots per source and kind of run (time zone, missed slots, overlaps); `SlotClock` |
//! | `checks.rs` | scheduled repository checks, recorded for readiness |
//! | `lease.rs` | one active daemon per repository |
//! | `metrics.rs` | metric names and recording |
//! | `wal/` | WAL streaming (`wal.streaming`): `pg_receivewal` supervised, its spool stored |
//! | `regions/` | on every region's daemon: heartbeat, lag watching, health checks, `rfc2136` steering |

pub mod checks;
pub mod drills;
pub mod lease;
pub mod lifecycle;
pub mod metrics;
mod physical;
pub mod regions;
pub mod retention;
pub mod runner;
pub mod scheduler;
pub mod state;
pub mod wal;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use tokio::sync::watch;

use self::metrics::PrometheusHandle;
use crate::context::Ctx;
use crate::error::Result;

pub use lifecycle::{Tasks, build, start, wait_for_termination};
pub use state::{
    LastFailure, LastSuccess, PhysicalPlan, Role, RunKind, RunStatus, SourceState, SourceStatus,
    StartError, Trigger,
};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How long `/readyz` and the status page wait for the repository's marker.
pub const REPOSITORY_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The daemon's settings, resolved from `serve:` and flags (by the binary).
pub struct Settings {
    pub listen: SocketAddr,
    /// The API's bearer token; `None`: every API request gets 401.
    pub token: Option<String>,
    pub lease: Duration,
    pub grace: Duration,
    pub prune_interval: Duration,
    pub prune_grace: Duration,
}

pub struct Daemon {
    pub ctx: Ctx,
    pub repo: Repository,
    pub settings: Settings,
    pub identity: String,
    pub sources: BTreeMap<String, Arc<SourceState>>,
    pub role: Arc<watch::Sender<Role>>,
    pub shutdown: watch::Sender<bool>,
    pub metrics: PrometheusHandle,
    pub prune: tokio::sync::Mutex<retention::PruneState>,
    /// What this daemon vouched for and froze (`failover.etcd_lost:
    /// keep_if_peers_agree`; `regions::failsafe`).
    pub failsafe: regions::failsafe::State,
}

impl Daemon {
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn source(&self, name: &str) -> Option<&Arc<SourceState>> {
        self.sources.get(name)
    }

    /// Starts a backup of `name` now, unless one is running, this daemon is a
    /// standby, or it is shutting down. The run holds the source's lock.
    pub fn start_run(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
    ) -> Result<tokio::task::JoinHandle<runner::Outcome>, StartError> {
        self.start_run_of(name, RunKind::Backup, trigger)
    }

    /// [`Self::start_run`] for either kind of run: a physical one holds the
    /// source's physical lock (a logical backup of it may run meanwhile)
    /// and is refused for a source that is not PostgreSQL.
    pub fn start_run_of(
        self: &Arc<Self>,
        name: &str,
        kind: RunKind,
        trigger: Trigger,
    ) -> Result<tokio::task::JoinHandle<runner::Outcome>, StartError> {
        if self.shutting_down() {
            return Err(StartError::ShuttingDown);
        }
        match self.role() {
            Role::Active => {}
            Role::Standby { holder } => {
                return Err(StartError::NotActive(format!("active: {holder}")));
            }
            Role::Starting => return Err(StartError::NotActive("starting".into())),
        }
        let src = self
            .source(name)
            .ok_or_else(|| StartError::Unknown(name.to_string()))?
            .clone();
        if kind == RunKind::Physical && src.kind != crate::config::SourceKind::Postgres {
            return Err(StartError::NotPostgres(name.to_string()));
        }
        let guard = Arc::clone(src.lock_of(kind))
            .try_lock_owned()
            .map_err(|_| StartError::Busy(name.to_string(), kind.noun()))?;
        let daemon = Arc::clone(self);
        Ok(tokio::spawn(async move {
            let outcome = runner::run(&daemon, &src, kind, trigger).await;
            drop(guard);
            outcome
        }))
    }

    /// Reads every snapshot once: newest per source and kind of run, counts,
    /// repository size.
    pub async fn refresh_from_repository(&self) -> Result<()> {
        let snaps = self.repo.snapshots().await?;
        for (name, src) in &self.sources {
            let mine: Vec<_> = snaps
                .iter()
                .filter(|s| &s.snapshot.source == name)
                .collect();
            let physical = |s: &&&lifeboat_repo::snapshot::SnapshotRef| {
                s.snapshot.kind == lifeboat_repo::physical::KIND
            };
            // The last success of each kind is its newest full snapshot: a
            // partial one (`backup postgres --table`) is no backup of the
            // source, and a base backup is not the last of the source's
            // logical backups (nor the other way round).
            let newest = |of_kind: bool| {
                mine.iter()
                    .rev()
                    .find(|s| s.snapshot.scope().is_full() && physical(s) == of_kind)
                    .map(|s| (s.id.clone(), s.snapshot.time))
            };
            let (newest_logical, newest_physical) = (newest(false), newest(true));
            let physical_count = mine.iter().filter(physical).count();
            metrics::snapshots(name, mine.len());
            let seen = |l: &mut Option<LastSuccess>, newest: &Option<(String, DateTime<Utc>)>| {
                if let Some((id, time)) = newest
                    && l.as_ref().is_none_or(|l| l.time < *time)
                {
                    *l = Some(LastSuccess {
                        snapshot: id.clone(),
                        time: *time,
                        duration_seconds: None,
                    });
                }
            };
            src.update(|st| {
                st.snapshots = mine.len() - physical_count;
                seen(&mut st.last_success, &newest_logical);
            });
            if src.physical.is_some() || physical_count > 0 {
                src.update_run(RunKind::Physical, |p| {
                    *p.snapshots = physical_count;
                    seen(&mut *p.last_success, &newest_physical);
                });
                metrics::physical_last_success(name, newest_physical.as_ref().map(|n| n.1));
            }
            // The source's newest snapshot of either kind: what a disaster
            // now would go back to.
            let newest_any = [&newest_logical, &newest_physical]
                .into_iter()
                .flatten()
                .map(|n| n.1)
                .max();
            metrics::last_success(name, newest_any);
        }
        retention::measure_repository(&self.repo).await;
        Ok(())
    }

    /// Why the repository cannot be used now (moved, deleted, replaced,
    /// unreachable), or `None` when its marker and config are still the
    /// ones opened at start-up. Bounded in time, for probes.
    pub async fn repository_problem(&self) -> Option<String> {
        match tokio::time::timeout(REPOSITORY_PROBE_TIMEOUT, self.repo.verify_identity()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the repository at {} did not answer within {} s",
                self.repo.location(),
                REPOSITORY_PROBE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Sets the clock-derived gauges; called before every scrape.
    pub fn update_clock_gauges(&self) {
        let now = Utc::now();
        for (name, src) in &self.sources {
            if let Some(t) = src.newest_backup() {
                metrics::rpo(name, (now - t).num_milliseconds() as f64 / 1000.0);
            }
        }
    }
}

/// Resolves when `rx` says shutdown (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
