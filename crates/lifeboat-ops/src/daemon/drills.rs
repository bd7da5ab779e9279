//! Scheduled restore drills (`drill.schedule` of a source), and the drill
//! gauges, which come from the repository's records so that drills run by
//! the CLI or by another daemon count too.
//!
//! Policy (docs/drills.md): only the active daemon drills; one drill at a
//! time per daemon (each may start a PostgreSQL of its own); a slot missed
//! while no daemon was active is drilled once when one becomes active, like
//! backups; a drill never holds a source's backup lock (it only reads).
//! Each slot drills the kinds of `drill.kinds` in order (logical, then
//! physical), one after the other; unset: logical.

use std::sync::Arc;

use chrono::Utc;
use croner::Cron;

use super::scheduler::{self, SlotClock, Wake};
use super::{Daemon, metrics};
use crate::config::{Config, Timezone};
use crate::drill::{self, Request};
use lifeboat_dr::record::DrillKind;

/// One drill loop per source with `drill.schedule`, sharing one turn: one
/// drill at a time, since each may start a PostgreSQL of its own.
pub fn spawn(daemon: &Arc<Daemon>, config: &Config) -> Vec<tokio::task::JoinHandle<()>> {
    let drill_turn = Arc::new(tokio::sync::Mutex::new(()));
    let mut loops = Vec::new();
    for (name, s) in &config.sources {
        let Some(schedule) = s.drill.as_ref().and_then(|d| d.schedule.clone()) else {
            continue;
        };
        let kinds = scheduled_kinds(s.drill.as_ref().and_then(|d| d.kinds.as_deref()));
        loops.push(tokio::spawn(run(
            Arc::clone(daemon),
            name.clone(),
            kinds,
            schedule.cron().clone(),
            s.timezone.unwrap_or(Timezone::UTC),
            Arc::clone(&drill_turn),
        )));
    }
    loops
}

/// The kinds a slot drills, in order: `drill.kinds`, else logical.
fn scheduled_kinds(configured: Option<&[DrillKind]>) -> Vec<DrillKind> {
    let mut kinds = configured.map(<[DrillKind]>::to_vec).unwrap_or_default();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        kinds.push(DrillKind::Logical);
    }
    kinds
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
    kinds: Vec<DrillKind>,
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
            drill_slot(&d, &name, &kinds, &one_at_a_time, &mut clock).await;
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
            drill_slot(&d, &name, &kinds, &one_at_a_time, &mut clock).await;
        }
    }
}

/// The drills of one slot: each kind in turn, until shutdown.
async fn drill_slot(
    d: &Daemon,
    name: &str,
    kinds: &[DrillKind],
    one_at_a_time: &tokio::sync::Mutex<()>,
    clock: &mut SlotClock,
) {
    for &kind in kinds {
        if !drill_once(d, name, kind, one_at_a_time, clock).await {
            return;
        }
    }
}

/// Runs one drill, unless shutdown comes first (then `false`). A drill interrupted by
/// shutdown leaves no record (its scratch cluster is removed on drop).
async fn drill_once(
    d: &Daemon,
    name: &str,
    kind: DrillKind,
    one_at_a_time: &tokio::sync::Mutex<()>,
    clock: &mut SlotClock,
) -> bool {
    let _turn = tokio::select! {
        g = one_at_a_time.lock() => g,
        _ = clock.stopped() => return false,
    };
    let req = Request {
        source: Some(name.to_string()),
        db: None,
        scratch: None,
        // The source's drill.scratch_is_copy and restore.jobs apply.
        scratch_is_copy: false,
        jobs: None,
        physical: kind == DrillKind::Physical,
        trigger: "schedule",
        cluster: d.ctx.cluster_options(None, None),
    };
    metrics::drill_running(name, true);
    match kind {
        DrillKind::Logical => {
            tracing::info!(source = %name, "drill started: the latest full snapshot (partial snapshots are never drilled)")
        }
        DrillKind::Physical => {
            tracing::info!(source = %name, "physical drill started: the latest base backup and the archived WAL, recovered in a throwaway data directory")
        }
    }
    let result = tokio::select! {
        r = drill::run(&d.ctx, &d.repo, &req) => Some(r),
        _ = clock.stopped() => None,
    };
    metrics::drill_running(name, false);
    match result {
        None => {
            tracing::warn!(source = %name, kind = %kind, "drill abandoned at shutdown; no record was stored");
            return false;
        }
        Some(Ok(rec)) => {
            let r = &rec.record;
            metrics::drill_ran(r);
            if r.ok {
                tracing::info!(source = %name, kind = %kind, drill = %rec.id, snapshot = %r.short_snapshot(), rto_seconds = r.rto_seconds, rpo_seconds = r.rpo_seconds, "drill passed");
            } else {
                tracing::error!(source = %name, kind = %kind, drill = %rec.id, snapshot = %r.short_snapshot(), failure = %r.failure.as_deref().unwrap_or(""), "drill FAILED");
            }
            refresh(d).await;
        }
        Some(Err(e)) => {
            metrics::drill_error(name);
            tracing::error!(source = %name, kind = %kind, error = %format!("{e:#}"), "drill could not run");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_drills_the_configured_kinds_logical_first() {
        use DrillKind::{Logical, Physical};
        let table: &[(Option<&[DrillKind]>, &[DrillKind])] = &[
            (None, &[Logical]),
            (Some(&[]), &[Logical]),
            (Some(&[Physical]), &[Physical]),
            (Some(&[Physical, Logical, Physical]), &[Logical, Physical]),
        ];
        for (configured, want) in table {
            assert_eq!(scheduled_kinds(*configured), *want, "{configured:?}");
        }
    }
}
