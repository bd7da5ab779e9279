//! Cron slots per source, in the source's time zone: one loop for its
//! backups (`schedule`) and one for its physical base backups
//! (`physical.schedule`), each with its own lock, so the two kinds never
//! hold each other up.
//!
//! Policy (docs/daemon.md), for each kind on its own:
//! - never two runs of one source: a run holds the source's lock; a slot
//!   that comes while the source's backup still runs is skipped and counted
//!   (`lifeboat_schedule_overlaps_total`), never queued or doubled;
//! - missed slots: when a daemon becomes active (start-up or takeover) and
//!   the source's newest snapshot is older than its latest slot, the
//!   source is backed up once, at once, however many slots were missed;
//! - a standby schedules nothing;
//! - slots are the cron expression read in the source's local time
//!   (`timezone:`), daylight saving time as croner does it: a fixed-time
//!   slot (one value each in seconds, minutes and hours, e.g. `30 2 * * *`)
//!   that falls into the hour skipped in spring runs once, at the first
//!   instant after the gap (03:00), and in the hour repeated in autumn runs
//!   once, in its first pass; slots of any other expression (a wildcard,
//!   list, range or step there: `0 * * * *`, `0 2,14 * * *`) are real
//!   instants: none in the skipped hour, each pass of the repeated hour has
//!   its own.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;

use tokio::sync::watch;

use super::{Daemon, Role, RunKind, SourceState, StartError, Trigger, metrics};
use crate::config::Timezone;

/// The first slot strictly after `t`.
pub fn next_after(cron: &Cron, tz: Timezone, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match tz {
        Timezone::Fixed(z) => next_in(cron, &z, t),
        Timezone::Named(z) => next_in(cron, &z, t),
    }
}

fn next_in<Z: TimeZone>(cron: &Cron, z: &Z, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&t.with_timezone(z), false)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The latest slot at or before `now`.
pub fn latest_due(cron: &Cron, tz: Timezone, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match tz {
        Timezone::Fixed(z) => latest_in(cron, &z, now),
        Timezone::Named(z) => latest_in(cron, &z, now),
    }
}

fn latest_in<Z: TimeZone>(cron: &Cron, z: &Z, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&now.with_timezone(z), true)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether a slot passed since the newest snapshot (or there is none):
/// the source is then backed up once, at once.
pub fn missed(
    cron: &Cron,
    tz: Timezone,
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let slot = latest_due(cron, tz, now)?;
    last_success.is_none_or(|t| t < slot).then_some(slot)
}

/// How many slots lie in `(after, until]`, counting at most `cap`.
pub fn slots_between(
    cron: &Cron,
    tz: Timezone,
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

/// What ended [`SlotClock::sleep_until`].
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// The slot's time came, and this daemon is still active.
    Slot,
    /// This daemon is no longer active: wait in [`SlotClock::until_active`].
    Standby,
    /// Shutdown.
    Stop,
}

/// The daemon's role and shutdown as one schedule loop (backups, drills,
/// checks) sees them: each loop runs only while its daemon is active and
/// ends at shutdown.
pub struct SlotClock {
    role: watch::Receiver<Role>,
    shutdown: watch::Receiver<bool>,
}

impl SlotClock {
    pub fn new(d: &Daemon) -> Self {
        SlotClock {
            role: d.role.subscribe(),
            shutdown: d.shutdown.subscribe(),
        }
    }

    /// Waits until this daemon is active (calling `on_standby` whenever it
    /// is not); false at shutdown.
    pub async fn until_active(&mut self, mut on_standby: impl FnMut()) -> bool {
        loop {
            if *self.shutdown.borrow() {
                return false;
            }
            if matches!(*self.role.borrow_and_update(), Role::Active) {
                return true;
            }
            on_standby();
            tokio::select! {
                r = self.role.changed() => if r.is_err() { return false },
                _ = super::stopped(&mut self.shutdown) => return false,
            }
        }
    }

    /// Sleeps until `at` unless this daemon stops being active or shuts down.
    pub async fn sleep_until(&mut self, at: DateTime<Utc>) -> Wake {
        loop {
            if *self.shutdown.borrow() {
                return Wake::Stop;
            }
            if !matches!(*self.role.borrow_and_update(), Role::Active) {
                return Wake::Standby;
            }
            let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => return Wake::Slot,
                _ = super::stopped(&mut self.shutdown) => return Wake::Stop,
                r = self.role.changed() => if r.is_err() { return Wake::Stop },
            }
        }
    }

    /// Resolves at shutdown; for `select!` around work a loop runs.
    pub async fn stopped(&mut self) {
        super::stopped(&mut self.shutdown).await
    }
}

/// The scheduling loop of one source's runs of `kind` (its backups on
/// `schedule`, or its base backups on `physical.schedule`); ends at
/// shutdown. Missed slots are judged from the newest snapshot of that kind.
pub async fn run(d: Arc<Daemon>, src: Arc<SourceState>, kind: RunKind) {
    let Some(schedule) = src.schedule_of(kind).cloned() else {
        return;
    };
    let cron = schedule.cron().clone();
    let name = src.name.clone();
    let mut clock = SlotClock::new(&d);
    while clock.until_active(|| set_next(&src, kind, None)).await {
        // Another daemon may have backed up since this one last looked.
        if let Err(e) = d.refresh_from_repository().await {
            tracing::warn!(source = %name, error = %format!("{e:#}"), "cannot read the snapshots; judging missed slots from what this daemon saw");
        }
        let now = Utc::now();
        let last = src.run_status(kind).last_success.map(|l| l.time);
        let mut last_slot = now;
        if let Some(slot) = missed(&cron, src.tz, last, now) {
            tracing::info!(
                source = %name,
                run = kind.noun(),
                slot = %slot,
                newest_snapshot = %last.map_or_else(|| "none".to_string(), |t| t.to_rfc3339()),
                "a scheduled slot passed without a backup (no daemon was active): backing up once now"
            );
            run_once(&d, &src, kind, &cron, Trigger::MissedSlot, slot).await;
            last_slot = slot.max(now);
        }
        loop {
            let from = Utc::now().max(last_slot);
            let Some(next) = next_after(&cron, src.tz, from) else {
                tracing::warn!(source = %name, run = kind.noun(), schedule = %schedule, "the schedule has no future slot");
                set_next(&src, kind, None);
                clock.stopped().await;
                return;
            };
            set_next(&src, kind, Some(next));
            match clock.sleep_until(next).await {
                Wake::Stop => return,
                Wake::Standby => break,
                Wake::Slot => {}
            }
            // The timer may fire a little early: never run a slot twice.
            last_slot = next;
            run_once(&d, &src, kind, &cron, Trigger::Schedule, next).await;
        }
    }
}

fn set_next(src: &SourceState, kind: RunKind, next: Option<DateTime<Utc>>) {
    metrics::run_next(kind, &src.name, next);
    src.update_run(kind, |r| *r.next_run = next);
}

async fn run_once(
    d: &Arc<Daemon>,
    src: &SourceState,
    kind: RunKind,
    cron: &Cron,
    trigger: Trigger,
    slot: DateTime<Utc>,
) {
    match d.start_run_of(&src.name, kind, trigger) {
        Ok(h) => {
            let _ = h.await;
            let skipped = slots_between(cron, src.tz, slot, Utc::now(), 1_000_000);
            if skipped > 0 {
                tracing::warn!(
                    source = %src.name,
                    run = kind.noun(),
                    skipped,
                    "the backup ran past its next scheduled slot(s); they were skipped, not queued"
                );
                metrics::run_overlap(kind, &src.name, skipped);
                src.update_run(kind, |r| *r.overlaps += skipped);
            }
        }
        Err(StartError::Busy(..)) => {
            tracing::warn!(
                source = %src.name,
                run = kind.noun(),
                slot = %slot,
                "a backup of this source is still running (started through the API); this slot is skipped, not queued"
            );
            metrics::run_overlap(kind, &src.name, 1);
            src.update_run(kind, |r| *r.overlaps += 1);
        }
        Err(e) => tracing::info!(source = %src.name, run = kind.noun(), "slot not run: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn cron(s: &str) -> Cron {
        crate::config::Schedule::parse(s).unwrap().cron().clone()
    }

    fn utc(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).unwrap()
    }

    #[test]
    fn hourly_slots_in_utc_and_offsets() {
        let c = cron("0 * * * *");
        let utc0 = Timezone::Fixed(FixedOffset::east_opt(0).unwrap());
        assert_eq!(next_after(&c, utc0, utc(10, 0, 0)), Some(utc(11, 0, 0)));
        assert_eq!(next_after(&c, utc0, utc(10, 59, 59)), Some(utc(11, 0, 0)));
        // Daily at 02:00 in +02:00 is 00:00 UTC.
        let d = cron("0 2 * * *");
        let plus2 = Timezone::Fixed(FixedOffset::east_opt(7200).unwrap());
        assert_eq!(
            next_after(&d, plus2, utc(12, 0, 0)),
            Some(Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap())
        );
        assert_eq!(latest_due(&d, plus2, utc(12, 0, 0)), Some(utc(0, 0, 0)));
    }

    #[test]
    fn missed_slots_run_once() {
        let c = cron("0 * * * *");
        let z = Timezone::Fixed(FixedOffset::east_opt(0).unwrap());
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
        let z = Timezone::Fixed(FixedOffset::east_opt(0).unwrap());
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(10, 14, 59), 100), 0);
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(10, 15, 0), 100), 1);
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(11, 0, 0), 100), 4);
        assert_eq!(slots_between(&c, z, utc(10, 0, 0), utc(11, 0, 0), 2), 2);
        let s = cron("* * * * * *");
        assert_eq!(slots_between(&s, z, utc(10, 0, 0), utc(10, 0, 3), 100), 3);
    }

    const BERLIN: Timezone = Timezone::Named(chrono_tz::Europe::Berlin);

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// All slots in `(after, until]`, in order.
    fn slots(
        c: &Cron,
        tz: Timezone,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while let Some(s) = next_after(c, tz, t).filter(|s| *s <= until) {
            out.push(s);
            t = s;
        }
        out
    }

    #[test]
    fn named_zone_follows_daylight_saving_time() {
        // Daily at 02:00 local: 01:00 UTC in winter (CET), 00:00 UTC in
        // summer (CEST).
        let d = cron("0 2 * * *");
        assert_eq!(
            next_after(&d, BERLIN, at(2026, 1, 15, 12, 0)),
            Some(at(2026, 1, 16, 1, 0))
        );
        assert_eq!(
            next_after(&d, BERLIN, at(2026, 7, 15, 12, 0)),
            Some(at(2026, 7, 16, 0, 0))
        );
        assert_eq!(
            latest_due(&d, BERLIN, at(2026, 7, 15, 12, 0)),
            Some(at(2026, 7, 15, 0, 0))
        );
        let ny = Timezone::Named(chrono_tz::America::New_York);
        assert_eq!(
            next_after(&d, ny, at(2026, 1, 15, 12, 0)),
            Some(at(2026, 1, 16, 7, 0))
        );
    }

    #[test]
    fn berlin_spring_forward() {
        // 2026-03-29: at 02:00 CET (01:00 UTC) clocks jump to 03:00 CEST;
        // 02:00–02:59 local does not exist.
        let daily = cron("30 2 * * *");
        // A fixed-time slot in the skipped hour runs once, at the first
        // instant after the gap (03:00 CEST = 01:00 UTC)...
        assert_eq!(
            slots(
                &daily,
                BERLIN,
                at(2026, 3, 27, 12, 0),
                at(2026, 3, 30, 12, 0)
            ),
            [
                at(2026, 3, 28, 1, 30), // 02:30 CET
                at(2026, 3, 29, 1, 0),  // 03:00 CEST, the gap's end
                at(2026, 3, 30, 0, 30), // 02:30 CEST
            ]
        );
        // ...and is what a daemon starting later that day finds missed.
        assert_eq!(
            latest_due(&daily, BERLIN, at(2026, 3, 29, 6, 0)),
            Some(at(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            missed(
                &daily,
                BERLIN,
                Some(at(2026, 3, 29, 1, 0)),
                at(2026, 3, 29, 6, 0)
            ),
            None
        );
        // Slots of a wildcard hour are real instants: none in the gap, an
        // hour apart across it.
        let hourly = cron("30 * * * *");
        assert_eq!(
            slots(
                &hourly,
                BERLIN,
                at(2026, 3, 28, 23, 0),
                at(2026, 3, 29, 2, 0)
            ),
            [
                at(2026, 3, 28, 23, 30), // 00:30 CET
                at(2026, 3, 29, 0, 30),  // 01:30 CET
                at(2026, 3, 29, 1, 30),  // 03:30 CEST
            ]
        );
        assert_eq!(
            slots_between(
                &hourly,
                BERLIN,
                at(2026, 3, 28, 23, 0),
                at(2026, 3, 29, 2, 0),
                100
            ),
            3
        );
    }

    #[test]
    fn berlin_fall_back() {
        // 2026-10-25: at 03:00 CEST (01:00 UTC) clocks go back to 02:00 CET;
        // 02:00–02:59 local happens twice (00:00–00:59 and 01:00–01:59 UTC).
        let daily = cron("30 2 * * *");
        // A fixed-time slot in the repeated hour runs once, in its first pass.
        assert_eq!(
            slots(
                &daily,
                BERLIN,
                at(2026, 10, 23, 12, 0),
                at(2026, 10, 26, 12, 0)
            ),
            [
                at(2026, 10, 24, 0, 30), // 02:30 CEST
                at(2026, 10, 25, 0, 30), // 02:30 CEST, first pass only
                at(2026, 10, 26, 1, 30), // 02:30 CET
            ]
        );
        // Not again from anywhere inside the repeated hour.
        for t in [
            at(2026, 10, 25, 0, 30),
            at(2026, 10, 25, 0, 45),
            at(2026, 10, 25, 1, 15),
        ] {
            assert_eq!(
                next_after(&daily, BERLIN, t),
                Some(at(2026, 10, 26, 1, 30)),
                "{t}"
            );
        }
        // A daemon starting in the second pass does not run it again.
        assert_eq!(
            latest_due(&daily, BERLIN, at(2026, 10, 25, 1, 45)),
            Some(at(2026, 10, 25, 0, 30))
        );
        assert_eq!(
            missed(
                &daily,
                BERLIN,
                Some(at(2026, 10, 25, 0, 30)),
                at(2026, 10, 25, 1, 45)
            ),
            None
        );
        assert_eq!(
            slots_between(
                &daily,
                BERLIN,
                at(2026, 10, 25, 0, 30),
                at(2026, 10, 25, 23, 0),
                100
            ),
            0
        );
        // Slots of a wildcard hour are real instants, an hour apart: each
        // pass of the repeated hour has its own, none twice.
        let hourly = cron("0 * * * *");
        assert_eq!(
            slots(
                &hourly,
                BERLIN,
                at(2026, 10, 24, 23, 0),
                at(2026, 10, 25, 2, 0)
            ),
            [
                at(2026, 10, 25, 0, 0), // 02:00 CEST
                at(2026, 10, 25, 1, 0), // 02:00 CET
                at(2026, 10, 25, 2, 0), // 03:00 CET
            ]
        );
    }
}
