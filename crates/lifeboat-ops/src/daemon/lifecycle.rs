//! The daemon's life: built from the configuration and its settings,
//! started (reading what the repository already holds), its tasks (the
//! lease, the backup schedules, the check loop, and the loops it is given:
//! the drill loops of [`super::drills::spawn`]), and the SIGTERM sequence. HTTP is the binary's: it starts
//! its server before [`Tasks::spawn`] and stops it after
//! [`Tasks::shut_down`] (HTTP last).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use tokio::sync::watch;

use super::{
    Daemon, PhysicalPlan, Role, RunKind, Settings, SourceState, SourceStatus, checks, lease,
    metrics,
};
use super::{regions, retention, runner, scheduler};
use crate::config::{Config, Timezone};
use crate::context::Ctx;
use crate::error::{Result, usage};

/// Builds the daemon from `ctx`'s configuration: opens the repository,
/// installs the metrics recorder and registers every source's metrics.
/// Without a configuration it is a usage error.
pub async fn build(ctx: Ctx, settings: Settings) -> Result<Arc<Daemon>> {
    // `serve.region` names a configured region (exit 2 otherwise).
    regions::own_region(config(&ctx)?)?;
    let repo = ctx.open().await?;
    // The recorder first: the sources' metric families are registered into
    // it (registered before, they would be lost and not scraped from start).
    let handle = metrics::install()?;
    let sources = source_states(config(&ctx)?);
    metrics::daemon_started();
    let (role_tx, _) = watch::channel(Role::Starting);
    let (shutdown_tx, _) = watch::channel(false);
    let failsafe = regions::failsafe::State::new(config(&ctx)?);
    Ok(Arc::new(Daemon {
        ctx,
        repo,
        settings,
        identity: lease::identity(),
        sources,
        role: Arc::new(role_tx),
        shutdown: shutdown_tx,
        metrics: handle,
        prune: tokio::sync::Mutex::new(retention::PruneState::default()),
        failsafe,
    }))
}

/// The daemon's configuration; without one it is a usage error (checked
/// before anything else).
pub fn config(ctx: &Ctx) -> Result<&Config> {
    ctx.config.as_ref().ok_or_else(|| {
        usage(
            "lifeboat serve needs a configuration file with sources: pass --config FILE or set LIFEBOAT_CONFIG (see examples/kubernaut.yaml)",
        )
    })
}

/// The configured sources as the daemon runs them, in the configuration's
/// order, each with its metric families registered (they exist from start).
fn source_states(config: &Config) -> BTreeMap<String, Arc<SourceState>> {
    let objectives = config.dr_objectives();
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
        let physical = s.physical.as_ref().map(|p| PhysicalPlan {
            schedule: p.schedule.clone(),
            block_size: p
                .block_size
                .map_or(lifeboat_repo::physical::DEFAULT_BLOCK, |b| b.bytes()),
        });
        if physical.is_some() {
            metrics::physical_started(name);
        }
        sources.insert(
            name.clone(),
            Arc::new(SourceState {
                name: name.clone(),
                kind: s.kind,
                schedule: s.schedule.clone(),
                tz: s.timezone.unwrap_or(Timezone::UTC),
                retention: s.retention.clone(),
                rpo_objective,
                run_lock: Arc::new(tokio::sync::Mutex::new(())),
                status: Mutex::new(SourceStatus {
                    physical: physical.as_ref().map(|_| Default::default()),
                    ..Default::default()
                }),
                physical,
                physical_lock: Arc::new(tokio::sync::Mutex::new(())),
            }),
        );
    }
    sources
}

/// Start-up, once listening: reads what the repository already holds (a
/// failure is logged; the first run reads it again).
pub async fn start(daemon: &Daemon) {
    if let Err(e) = daemon.refresh_from_repository().await {
        tracing::warn!(error = %format!("{e:#}"), "could not read the snapshots at start-up; retrying after the first run");
    }
}

/// The daemon's tasks but HTTP: the lease and the schedule loops, with what
/// stops each.
pub struct Tasks {
    lease: tokio::task::JoinHandle<()>,
    /// The lease is renewed until the last run has ended, so that no
    /// standby takes over while a backup still finishes in the grace period.
    lease_stop: watch::Sender<bool>,
    schedulers: Vec<tokio::task::JoinHandle<()>>,
}

impl Tasks {
    /// Starts the lease, one loop per scheduled source, the check loop when
    /// `serve.check` is set, the region tasks (`regions.rs`), and takes
    /// `more` (the drill loops),
    /// which must end at shutdown like the others.
    pub fn spawn(daemon: &Arc<Daemon>, more: Vec<tokio::task::JoinHandle<()>>) -> Self {
        let (lease_stop, lease_stop_rx) = watch::channel(false);
        let lease = tokio::spawn(lease::run(
            daemon.repo.clone(),
            daemon.identity.clone(),
            daemon.settings.lease,
            Arc::clone(&daemon.role),
            lease_stop_rx,
        ));
        let mut schedulers = spawn_schedules(daemon);
        // The region work runs on every region's daemon, active or standby.
        schedulers.extend(regions::spawn(daemon));
        // WAL streaming: on the active daemon only (its loops wait).
        schedulers.extend(super::wal::spawn(daemon));
        schedulers.extend(more);
        Tasks {
            lease,
            lease_stop,
            schedulers,
        }
    }

    /// The SIGTERM sequence: no new work; the schedule loops end, then the
    /// runs (within the grace period); then the lease is released, so a
    /// standby takes over at once. The caller stops HTTP after this.
    pub async fn shut_down(self, daemon: &Daemon) {
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
            let _ = src.physical_lock.lock().await;
        }
        self.lease_stop.send_replace(true);
        let _ = self.lease.await;
        lease::release(&daemon.repo, &daemon.identity).await;
    }
}

/// One loop per scheduled source and one per source with
/// `physical.schedule`, and the check loop when `serve.check` is set.
fn spawn_schedules(daemon: &Arc<Daemon>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut schedulers = Vec::new();
    for (name, src) in &daemon.sources {
        if src.physical.is_some() {
            schedulers.push(tokio::spawn(scheduler::run(
                Arc::clone(daemon),
                Arc::clone(src),
                RunKind::Physical,
            )));
        }
        if src.schedule.is_none() {
            if src.physical.is_some() {
                tracing::info!(source = %name, "no schedule: base backups on physical.schedule only (other backups through the API)");
            } else {
                tracing::info!(source = %name, "no schedule: backed up only through the API");
            }
            continue;
        }
        schedulers.push(tokio::spawn(scheduler::run(
            Arc::clone(daemon),
            Arc::clone(src),
            RunKind::Backup,
        )));
    }
    let check = daemon
        .ctx
        .config
        .as_ref()
        .and_then(|c| c.serve.as_ref())
        .and_then(|s| s.check.clone());
    if let Some(c) = check {
        schedulers.push(tokio::spawn(checks::run(
            Arc::clone(daemon),
            c.schedule.cron().clone(),
            c.read_data,
            c.read_data_parts,
        )));
    }
    schedulers
}

/// Resolves at SIGTERM (never, when it cannot be listened for: then the
/// daemon is stopped with SIGINT).
pub async fn wait_for_termination() {
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
