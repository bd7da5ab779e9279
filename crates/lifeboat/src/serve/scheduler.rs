//! Cron slots per source, in the source's time zone.
//!
//! Policy (docs/daemon.md):
//! - never two runs of one source: a run holds the source's lock; a slot
//!   that comes while the source's backup still runs is skipped and counted
//!   (`lifeboat_schedule_overlaps_total`), never queued or doubled;
//! - missed slots: when a daemon becomes active (start-up or takeover) and
//!   the source's newest snapshot is older than its latest slot, the
//!   source is backed up once, at once, however many slots were missed;
//! - a standby schedules nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use croner::Cron;

use super::{Daemon, Role, SourceState, StartError, Trigger, metrics};

/// The first slot strictly after `t`.
pub fn next_after(cron: &Cron, tz: FixedOffset, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&t.with_timezone(&tz), false)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The latest slot at or before `now`.
pub fn latest_due(cron: &Cron, tz: FixedOffset, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&now.with_timezone(&tz), true)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether a slot passed since the newest snapshot (or there is none):
/// the source is then backed up once, at once.
pub fn missed(
    cron: &Cron,
    tz: FixedOffset,
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let slot = latest_due(cron, tz, now)?;
    last_success.is_none_or(|t| t < slot).then_some(slot)
}

/// How many slots lie in `(after, until]`, counting at most `cap`.
pub fn slots_between(
    cron: &Cron,
    tz: FixedOffset,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    cap: u64,
) -> u64 {
    let mut n = 0;
    let mut t = after;
    while n < cap {
        match next_after(cron, tz, t) {
            Some(s) if s <= until => {
                n += 1;
                t = s;
            }
            _ => break,
        }
    }
    n
}

/// The scheduling loop of one source; ends at shutdown.
pub async fn run(d: Arc<Daemon>, src: Arc<SourceState>) {
    let Some(schedule) = src.schedule.clone() else {
        return;
    };
    let cron = schedule.cron().clone();
    let name = src.name.clone();
    let mut role = d.role.subscribe();
    let mut shutdown = d.shutdown.subscribe();
    'standby: loop {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if matches!(*role.borrow_and_update(), Role::Active) {
                break;
            }
            set_next(&src, None);
            tokio::select! {
                r = role.changed() => if r.is_err() { return },
                _ = super::stopped(&mut shutdown) => return,
            }
        }
        // Another daemon may have backed up since this one last looked.
        if let Err(e) = d.refresh_from_repository().await {
            tracing::warn!(source = %name, error = %format!("{e:#}"), "cannot read the snapshots; judging missed slots from what this daemon saw");
        }
        let now = Utc::now();
        let last = src.status().last_success.map(|l| l.time);
        let mut last_slot = now;
        if let Some(slot) = missed(&cron, src.tz, last, now) {
            tracing::info!(
                source = %name,
                slot = %slot,
                newest_snapshot = ?last,
                "a scheduled slot passed without a backup (no daemon was active): backing up once now"
            );
            run_once(&d, &src, &cron, Trigger::MissedSlot, slot).await;
            last_slot = slot.max(now);
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !matches!(*role.borrow_and_update(), Role::Active) {
                continue 'standby;
            }
            let from = Utc::now().max(last_slot);
            let Some(next) = next_after(&cron, src.tz, from) else {
                tracing::warn!(source = %name, schedule = %schedule, "the schedule has no future slot");
                set_next(&src, None);
                super::stopped(&mut shutdown).await;
                return;
            };
            set_next(&src, Some(next));
            let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = super::stopped(&mut shutdown) => return,
                r = role.changed() => {
                    if r.is_err() { return }
                    continue;
                }
            }
            // The timer may fire a little early: never run a slot twice.
            last_slot = next;
            run_once(&d, &src, &cron, Trigger::Schedule, next).await;
        }
    }
}

fn set_next(src: &SourceState, next: Option<DateTime<Utc>>) {
    metrics::next_run(&src.name, next);
    src.update(|s| s.next_run = next);
}

async fn run_once(
    d: &Arc<Daemon>,
    src: &SourceState,
    cron: &Cron,
    trigger: Trigger,
    slot: DateTime<Utc>,
) {
    match d.start_run(&src.name, trigger) {
        Ok(h) => {
            let _ = h.await;
            let skipped = slots_between(cron, src.tz, slot, Utc::now(), 1_000_000);
            if skipped > 0 {
                tracing::warn!(
                    source = %src.name,
                    skipped,
                    "the backup ran past its next scheduled slot(s); they were skipped, not queued"
                );
                metrics::overlap(&src.name, skipped);
                src.update(|s| s.overlaps += skipped);
            }
        }
        Err(StartError::Busy(_)) => {
            tracing::warn!(
                source = %src.name,
                slot = %slot,
                "a backup of this source is still running (started through the API); this slot is skipped, not queued"
            );
            metrics::overlap(&src.name, 1);
            src.update(|s| s.overlaps += 1);
        }
        Err(e) => tracing::info!(source = %src.name, "slot not run: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cron(s: &str) -> Cron {
        crate::config::Schedule::parse(s).unwrap().cron().clone()
    }

    fn utc(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).unwrap()
    }

    #[test]
    fn hourly_slots_in_utc_and_offsets() {
        let c = cron("0 * * * *");
        let utc0 = FixedOffset::east_opt(0).unwrap();
        assert_eq!(next_after(&c, utc0, utc(10, 0, 0)), Some(utc(11, 0, 0)));
        assert_eq!(next_after(&c, utc0, utc(10, 59, 59)), Some(utc(11, 0, 0)));
        // Daily at 02:00 in +02:00 is 00:00 UTC.
        let d = cron("0 2 * * *");
        let plus2 = FixedOffset::east_opt(7200).unwrap();
        assert_eq!(
            next_after(&d, plus2, utc(12, 0, 0)),
            Some(Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap())
        );
        assert_eq!(latest_due(&d, plus2, utc(12, 0, 0)), Some(utc(0, 0, 0)));
    }

    #[test]
    fn missed_slots_run_once() {
        let c = cron("0 * * * *");
        let z = FixedOffset::east_opt(0).unwrap();
        // Down from 09:30 to 13:10: three slots missed, one run at once.
        assert_eq!(
            missed(&c, z, Some(utc(9, 0, 5)), utc(13, 10, 0)),
            Some(utc(13, 0, 0))
        );
        // Newest snapshot after the latest slot: nothing missed.
        assert_eq!(missed(&c, z, Some(utc(13, 0, 40)), utc(13, 10, 0)), None);
        // No snapshot at all: back up now.
        assert_eq!(missed(&c, z, None, utc(13, 10, 0)), Some(utc(13, 0, 0)));
    }

    #[test]
    fn overlapping_slots_are_counted() {
        let c = cron("*/15 * * * *");
        let z = FixedOffset::east_opt(0).unwrap();
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(10, 14, 59), 100), 0);
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(10, 15, 0), 100), 1);
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(11, 0, 0), 100), 4);
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(11, 0, 0), 2), 2);
        let s = cron("* * * * * *");
        assert_eq!(slots_between(&s, z, utc(10, 0, 0), utc(10, 0, 3), 100), 3);
    }
}
