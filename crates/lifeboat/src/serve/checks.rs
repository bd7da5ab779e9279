//! Scheduled repository checks (`serve.check`): the active daemon runs
//! `check` (with `--read-data` by default) on its schedule, in UTC, and
//! records the outcome in the repository like the CLI does, so that
//! `lifeboat readiness` sees a recent check. No catch-up after downtime: the
//! next slot comes soon enough, and a check is not a backup.

use std::sync::Arc;

use chrono::Utc;
use croner::Cron;
use lifeboat_dr::record::{CheckRecord, store_check};
use lifeboat_repo::backup::Progress;

use super::scheduler::{self, SlotClock, Wake};
use super::{Daemon, metrics};
use crate::config::Timezone;

pub async fn run(d: Arc<Daemon>, cron: Cron, read_data: bool) {
    let mut clock = SlotClock::new(&d);
    while clock.until_active(|| {}).await {
        loop {
            let Some(next) = scheduler::next_after(&cron, Timezone::UTC, Utc::now()) else {
                return;
            };
            match clock.sleep_until(next).await {
                Wake::Stop => return,
                Wake::Standby => break,
                Wake::Slot => {}
            }
            let report = tokio::select! {
                r = lifeboat_repo::check::check(&d.repo, read_data, Arc::new(Progress::default())) => r,
                _ = clock.stopped() => return,
            };
            record(&d, read_data, report).await;
        }
    }
}

/// Logs a check's outcome, sets its metrics and stores its record.
async fn record(
    d: &Daemon,
    read_data: bool,
    report: lifeboat_repo::Result<lifeboat_repo::check::CheckReport>,
) {
    match report {
        Ok(r) => {
            let rec = CheckRecord::of(&r, read_data);
            metrics::check_ran(&rec);
            if r.ok() {
                tracing::info!(read_data, packs = r.packs, "repository check passed");
            } else {
                for p in &r.errors {
                    tracing::error!(object = %p.object, detail = %p.detail, "repository check found a problem");
                }
            }
            if let Err(e) = store_check(&d.repo, &rec).await {
                tracing::warn!(error = %e, "the check's outcome could not be recorded");
            }
        }
        Err(e) => tracing::error!(error = %e, "repository check could not run"),
    }
}
