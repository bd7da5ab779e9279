//! Scheduled restore drills (`drill.schedule` of a source), and the drill
//! gauges, which come from the repository's records so that drills run by
//! the CLI or by another daemon count too.
//!
//! Policy (docs/drills.md): only the active daemon drills; one drill at a
//! time per daemon (each may start a PostgreSQL of its own); a slot missed
//! while no daemon was active is drilled once when one becomes active, like
//! backups; a drill never holds a source's backup lock (it only reads).

use std::sync::Arc;

use chrono::Utc;
use croner::Cron;

use super::scheduler::{self, SlotClock, Wake};
use super::{Daemon, metrics};
use crate::config::{Config, Timezone};
use crate::drill::{self, Request};

/// One drill loop per source with `drill.schedule`, sharing one turn: one
/// drill at a time, since each may start a PostgreSQL of its own.
pub fn spawn(daemon: &Arc<Daemon>, config: &Config) -> Vec<tokio::task::JoinHandle<()>> {
    let drill_turn = Arc::new(tokio::sync::Mutex::new(()));
    let mut loops = Vec::new();
    for (name, s) in &config.sources {
        let Some(schedule) = s.drill.as_ref().and_then(|d| d.schedule.clone()) else {
            continue;
        };
        loops.push(tokio::spawn(run(
            Arc::clone(daemon),
            name.clone(),
            schedule.cron().clone(),
            s.timezone.unwrap_or(Timezone::UTC),
            Arc::clone(&drill_turn),
        )));
    }
    loops
}

/// Reads the drill records and sets the gauges of every configured source.
pub async fn refresh(d: &Daemon) {
    let records = match lifeboat_dr::record::drills(&d.repo).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the repository's drill records");
            return;
        }
    };
    for name in d.sources.keys() {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| &r.record.source == name)
            .collect();
        let last = mine.last().map(|r| &r.record);
        let last_ok = mine.iter().rev().find(|r| r.record.ok).map(|r| &r.record);
        metrics::drill_state(name, last, last_ok);
    }
}

/// The drill loop of one source; ends at shutdown.
pub async fn run(
    d: Arc<Daemon>,
    name: String,
    cron: Cron,
    tz: Timezone,
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
) {
    let mut clock = SlotClock::new(&d);
    while clock.until_active(|| {}).await {
        let now = Utc::now();
        let last = lifeboat_dr::record::drills(&d.repo)
            .await
            .ok()
            .and_then(|r| {
                r.iter()
                    .rev()
                    .find(|x| x.record.source == name)
                    .map(|x| x.record.started)
            });
        let mut last_slot = now;
        if let Some(slot) = scheduler::missed(&cron, tz, last, now)
            && last.is_some()
        {
            // Only after downtime: a source never drilled waits for its
            // first slot (its first backup may not exist yet).
            tracing::info!(source = %name, slot = %slot, "a drill slot passed while no daemon was active: drilling once now");
            drill_once(&d, &name, &one_at_a_time, &mut clock).await;
            last_slot = slot.max(now);
        }
        loop {
            let from = Utc::now().max(last_slot);
            let Some(next) = scheduler::next_after(&cron, tz, from) else {
                clock.stopped().await;
                return;
            };
            match clock.sleep_until(next).await {
                Wake::Stop => return,
                Wake::Standby => break,
                Wake::Slot => {}
            }
            last_slot = next;
            drill_once(&d, &name, &one_at_a_time, &mut clock).await;
        }
    }
}

/// Runs one drill, unless shutdown comes first. A drill interrupted by
/// shutdown leaves no record (its scratch cluster is removed on drop).
async fn drill_once(
    d: &Daemon,
    name: &str,
    one_at_a_time: &tokio::sync::Mutex<()>,
    clock: &mut SlotClock,
) {
    let _turn = tokio::select! {
        g = one_at_a_time.lock() => g,
        _ = clock.stopped() => return,
    };
    let req = Request {
        source: Some(name.to_string()),
        db: None,
        scratch: None,
        // The source's drill.scratch_is_copy and restore.jobs apply.
        scratch_is_copy: false,
        jobs: None,
        trigger: "schedule",
        cluster: d.ctx.cluster_options(None, None),
    };
    metrics::drill_running(name, true);
    tracing::info!(source = %name, "drill started: the latest full snapshot (partial snapshots are never drilled)");
    let result = tokio::select! {
        r = drill::run(&d.ctx, &d.repo, &req) => Some(r),
        _ = clock.stopped() => None,
    };
    metrics::drill_running(name, false);
    match result {
        None => tracing::warn!(source = %name, "drill abandoned at shutdown; no record was stored"),
        Some(Ok(rec)) => {
            let r = &rec.record;
            metrics::drill_ran(r);
            if r.ok {
                tracing::info!(source = %name, drill = %rec.id, snapshot = %r.short_snapshot(), rto_seconds = r.rto_seconds, rpo_seconds = r.rpo_seconds, "drill passed");
            } else {
                tracing::error!(source = %name, drill = %rec.id, snapshot = %r.short_snapshot(), failure = %r.failure.as_deref().unwrap_or(""), "drill FAILED");
            }
            refresh(d).await;
        }
        Some(Err(e)) => {
            metrics::drill_error(name);
            tracing::error!(source = %name, error = %format!("{e:#}"), "drill could not run");
        }
    }
}
