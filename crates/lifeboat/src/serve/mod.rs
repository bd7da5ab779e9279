//! `lifeboat serve`: the daemon (docs/daemon.md).
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | the daemon's shared state, starting runs, start-up and the SIGTERM sequence |
//! | `runner.rs` | one backup of a source, in-process, with its retention and the grace period |
//! | `retention.rs` | forget per source after each backup; prune batched |
//! | `drills.rs` | scheduled restore drills and the drill gauges |
//! | `http.rs` | health, readiness, metrics and the JSON API |
//! | `page.rs` | the status page at `/`: one self-contained HTML page of the assessment |
//!
//! The schedules, checks, lease, metrics and the state they share are
//! `lifeboat_ops::daemon` (re-exported here under their old names).

pub mod drills;
pub mod http;
pub mod page;
pub mod retention;
pub mod runner;

pub use lifeboat_ops::daemon::{
    LastFailure, LastSuccess, Role, SourceState, SourceStatus, StartError, Trigger, checks, lease,
    metrics, scheduler, stopped,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::metrics::PrometheusHandle;
use anyhow::{Context, Result};
use chrono::{TimeDelta, Utc};
use lifeboat_ops::daemon::Host;
use lifeboat_repo::Repository;
use tokio::sync::watch;

use crate::config::{Config, ServeConfig};
use crate::context::Ctx;
use crate::exit::{OK, usage};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How long `/readyz` and the status page wait for the repository's marker.
pub const REPOSITORY_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The daemon's settings, resolved from `serve:` and flags.
pub struct Settings {
    pub listen: SocketAddr,
    /// The API's bearer token; `None`: every API request gets 401.
    pub token: Option<String>,
    pub lease: Duration,
    pub grace: Duration,
    pub prune_interval: Duration,
    pub prune_grace: Duration,
}

impl Settings {
    pub async fn resolve(ctx: &Ctx, listen: Option<SocketAddr>) -> Result<Self> {
        let conf = ctx
            .config
            .as_ref()
            .and_then(|c| c.serve.clone())
            .unwrap_or_default();
        let std = |d: Option<TimeDelta>, default: Duration| {
            d.and_then(|d| d.to_std().ok()).unwrap_or(default)
        };
        let listen = match listen {
            Some(l) => l,
            None => conf
                .listen
                .as_deref()
                .unwrap_or(DEFAULT_LISTEN)
                .parse()
                .map_err(|_| usage("serve.listen is not an address with a port"))?,
        };
        let token = resolve_token(ctx, &conf).await?;
        Ok(Settings {
            listen,
            token,
            lease: std(conf.lease, DEFAULT_LEASE),
            grace: std(conf.grace_period, DEFAULT_GRACE),
            prune_interval: std(conf.prune_interval, DEFAULT_PRUNE_INTERVAL),
            prune_grace: ctx.prune_grace().unwrap_or(Duration::from_secs(3600)),
        })
    }
}

async fn resolve_token(ctx: &Ctx, conf: &ServeConfig) -> Result<Option<String>> {
    let Some(r) = &conf.token else {
        tracing::warn!(
            "serve.token is not set: the API (/api/v1/…) refuses every request with 401; \
             health endpoints and metrics are open"
        );
        return Ok(None);
    };
    let t = r.resolve(&ctx.secrets).await.map_err(|e| {
        usage(format!(
            "serve.token ({r}): {e}; the daemon does not start without the API token it was configured with"
        ))
    })?;
    let t = t.trim().to_string();
    if t.len() < 16 {
        return Err(usage(format!(
            "serve.token ({r}) is shorter than 16 characters; use a long random token, e.g. `openssl rand -hex 32`"
        )));
    }
    Ok(Some(t))
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
        let guard = Arc::clone(&src.run_lock)
            .try_lock_owned()
            .map_err(|_| StartError::Busy(name.to_string()))?;
        let daemon = Arc::clone(self);
        Ok(tokio::spawn(async move {
            let outcome = runner::run(&daemon, &src, trigger).await;
            drop(guard);
            outcome
        }))
    }

    /// Reads every snapshot once: newest per source, counts, repository size.
    pub async fn refresh_from_repository(&self) -> Result<()> {
        let snaps = self.repo.snapshots().await?;
        for (name, src) in &self.sources {
            let mine: Vec<_> = snaps
                .iter()
                .filter(|s| &s.snapshot.source == name)
                .collect();
            // The last success is the newest full snapshot: a partial one
            // (`backup postgres --table`) is no backup of the source.
            let newest = mine
                .iter()
                .rev()
                .find(|s| s.snapshot.scope().is_full())
                .map(|s| (s.id.clone(), s.snapshot.time));
            metrics::snapshots(name, mine.len());
            src.update(|st| {
                st.snapshots = mine.len();
                if let Some((id, time)) = &newest
                    && st.last_success.as_ref().is_none_or(|l| l.time < *time)
                {
                    st.last_success = Some(LastSuccess {
                        snapshot: id.clone(),
                        time: *time,
                        duration_seconds: None,
                    });
                }
            });
            metrics::last_success(name, newest.map(|n| n.1));
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
            if let Some(l) = src.status().last_success {
                metrics::rpo(name, (now - l.time).num_milliseconds() as f64 / 1000.0);
            }
        }
    }
}

/// The schedule loops of `lifeboat_ops::daemon` run on this daemon.
impl Host for Daemon {
    type Outcome = runner::Outcome;
    type Error = anyhow::Error;

    fn repository(&self) -> &Repository {
        &self.repo
    }

    fn subscribe_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    async fn refresh_from_repository(&self) -> Result<()> {
        Daemon::refresh_from_repository(self).await
    }

    fn start_run(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
    ) -> Result<tokio::task::JoinHandle<runner::Outcome>, StartError> {
        Daemon::start_run(self, name, trigger)
    }
}

/// Builds the daemon from the configuration and runs it until SIGTERM:
/// start-up, the tasks, then the shutdown sequence.
pub async fn serve(ctx: Ctx, listen: Option<SocketAddr>) -> Result<i32> {
    let Some(config) = ctx.config.clone() else {
        return Err(usage(
            "lifeboat serve needs a configuration file with sources: pass --config FILE or set LIFEBOAT_CONFIG (see examples/kubernaut.yaml)",
        ));
    };
    let settings = Settings::resolve(&ctx, listen).await?;
    let repo = ctx.open().await?;
    let handle = metrics::install()?;
    let sources = source_states(&config);
    metrics::daemon_started();
    let (role_tx, _) = watch::channel(Role::Starting);
    let (shutdown_tx, _) = watch::channel(false);
    let daemon = Arc::new(Daemon {
        ctx,
        repo,
        settings,
        identity: lease::identity(),
        sources,
        role: Arc::new(role_tx),
        shutdown: shutdown_tx,
        metrics: handle,
        prune: tokio::sync::Mutex::new(retention::PruneState::default()),
    });
    let listener = start(&daemon).await?;
    let tasks = Tasks::spawn(&daemon, &config, listener);
    wait_for_termination().await;
    tasks.shut_down(&daemon).await;
    tracing::info!("lifeboat serve stopped");
    Ok(OK)
}

/// The configured sources as the daemon runs them, in the configuration's
/// order, each with its metric families registered (they exist from start).
fn source_states(config: &Config) -> BTreeMap<String, Arc<SourceState>> {
    let objectives = lifeboat_ops::assess::objectives(config);
    let mut sources = BTreeMap::new();
    for (name, s) in &config.sources {
        let rpo_objective = lifeboat_dr::objectives::for_source(&objectives, &s.covers)
            .rpo
            .map(|t| TimeDelta::seconds(t.seconds));
        if let Some(r) = rpo_objective {
            metrics::rpo_objective(name, r.num_seconds() as f64);
        }
        for reason in runner::REASONS {
            metrics::failure_reason_seen(name, reason);
        }
        metrics::source_started(name);
        sources.insert(
            name.clone(),
            Arc::new(SourceState {
                name: name.clone(),
                kind: s.kind,
                schedule: s.schedule.clone(),
                tz: s.timezone.unwrap_or(crate::config::Timezone::UTC),
                retention: s.retention.clone(),
                rpo_objective,
                run_lock: Arc::new(tokio::sync::Mutex::new(())),
                status: Mutex::new(SourceStatus::default()),
            }),
        );
    }
    sources
}

/// Start-up: binds the listening address (a bad one is a usage error),
/// says so, and reads what the repository already holds (snapshots,
/// drill records).
async fn start(daemon: &Arc<Daemon>) -> Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(daemon.settings.listen)
        .await
        .map_err(|e| {
            usage(format!(
                "cannot listen on {}: {e}; change serve.listen in the configuration or pass --listen",
                daemon.settings.listen
            ))
        })?;
    let addr = listener.local_addr().context("the listening address")?;
    tracing::info!(
        listen = %addr,
        identity = %daemon.identity,
        repository = %daemon.repo.location(),
        sources = daemon.sources.len(),
        "lifeboat serve started"
    );
    if let Err(e) = daemon.refresh_from_repository().await {
        tracing::warn!(error = %format!("{e:#}"), "could not read the snapshots at start-up; retrying after the first run");
    }
    drills::refresh(daemon).await;
    Ok(listener)
}

/// The daemon's tasks: HTTP, the lease, and the schedule loops (backups,
/// drills, checks), with what stops each.
struct Tasks {
    http: tokio::task::JoinHandle<()>,
    http_stop: watch::Sender<bool>,
    lease: tokio::task::JoinHandle<()>,
    /// The lease is renewed until the last run has ended, so that no
    /// standby takes over while a backup still finishes in the grace period.
    lease_stop: watch::Sender<bool>,
    schedulers: Vec<tokio::task::JoinHandle<()>>,
}

impl Tasks {
    fn spawn(daemon: &Arc<Daemon>, config: &Config, listener: tokio::net::TcpListener) -> Self {
        let (http_stop, http_stop_rx) = watch::channel(false);
        let (lease_stop, lease_stop_rx) = watch::channel(false);
        let http = tokio::spawn(http::serve(Arc::clone(daemon), listener, http_stop_rx));
        let lease = tokio::spawn(lease::run(
            daemon.repo.clone(),
            daemon.identity.clone(),
            daemon.settings.lease,
            Arc::clone(&daemon.role),
            lease_stop_rx,
        ));
        Tasks {
            http,
            http_stop,
            lease,
            lease_stop,
            schedulers: spawn_schedules(daemon, config),
        }
    }

    /// The SIGTERM sequence: no new work; the schedule loops end, then the
    /// runs (within the grace period); then the lease is released, so a
    /// standby takes over at once; HTTP last.
    async fn shut_down(self, daemon: &Daemon) {
        tracing::info!(
            grace_seconds = daemon.settings.grace.as_secs(),
            "SIGTERM: taking no new work; running backups may finish within the grace period"
        );
        daemon.shutdown.send_replace(true);
        for s in self.schedulers {
            let _ = s.await;
        }
        // Runs started by the API: wait for each source's lock (they end
        // within the grace period, finished or abandoned).
        for src in daemon.sources.values() {
            let _ = src.run_lock.lock().await;
        }
        self.lease_stop.send_replace(true);
        let _ = self.lease.await;
        lease::release(&daemon.repo, &daemon.identity).await;
        self.http_stop.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http).await;
    }
}

/// One loop per scheduled source, one per source with `drill.schedule`, and
/// the check loop when `serve.check` is set.
fn spawn_schedules(daemon: &Arc<Daemon>, config: &Config) -> Vec<tokio::task::JoinHandle<()>> {
    let mut schedulers = Vec::new();
    for (name, src) in &daemon.sources {
        if src.schedule.is_none() {
            tracing::info!(source = %name, "no schedule: backed up only through the API");
            continue;
        }
        schedulers.push(tokio::spawn(scheduler::run(
            Arc::clone(daemon),
            Arc::clone(src),
        )));
    }

    // One drill at a time: each may start a PostgreSQL of its own.
    let drill_turn = Arc::new(tokio::sync::Mutex::new(()));
    for (name, s) in &config.sources {
        let Some(schedule) = s.drill.as_ref().and_then(|d| d.schedule.clone()) else {
            continue;
        };
        schedulers.push(tokio::spawn(drills::run(
            Arc::clone(daemon),
            name.clone(),
            schedule.cron().clone(),
            s.timezone.unwrap_or(crate::config::Timezone::UTC),
            Arc::clone(&drill_turn),
        )));
    }

    if let Some(c) = config.serve.as_ref().and_then(|s| s.check.clone()) {
        schedulers.push(tokio::spawn(checks::run(
            Arc::clone(daemon),
            c.schedule.cron().clone(),
            c.read_data,
            c.read_data_parts,
        )));
    }
    schedulers
}

async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop the daemon with SIGINT");
            std::future::pending::<()>().await;
        }
    }
}
