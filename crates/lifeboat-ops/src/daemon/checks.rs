//! Scheduled repository checks (`serve.check`): the active daemon runs
//! `check` (with `--read-data` by default) on its schedule, in UTC, and
//! records the outcome in the repository like the CLI does, so that
//! `lifeboat readiness` sees a recent check. No catch-up after downtime: the
//! next slot comes soon enough, and a check is not a backup.
//!
//! A check holds the exclusive lock, which keeps prune off; reading every
//! pack of a large repository takes hours. So with `read_data_parts` M > 1
//! each run reads one part (`--read-data-subset N/M`), the part after the
//! one the newest recorded daemon-style check read (the repository is the
//! only state), and M runs read every pack.

use std::sync::Arc;

use chrono::Utc;
use croner::Cron;
use lifeboat_dr::record::{CheckRecord, store_check};
use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::subset::DataSubset;

use super::scheduler::{self, SlotClock, Wake};
use super::{Daemon, metrics};
use crate::config::Timezone;

pub async fn run(d: Arc<Daemon>, cron: Cron, read_data: bool, parts: u32) {
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
            let subset = if read_data {
                next_part(&d.repo, parts).await
            } else {
                None
            };
            let report = tokio::select! {
                r = lifeboat_repo::check::check_subset(&d.repo, read_data, subset, Arc::new(Progress::default())) => r,
                _ = clock.stopped() => return,
            };
            let mut report = report;
            if let Ok(r) = &mut report
                && let Err(e) = crate::wal::check::add_to_report(&d.repo, r).await
            {
                tracing::warn!(error = %e, "cannot list the WAL archive for its gaps");
            }
            record(&d.repo, read_data, subset, report).await;
        }
    }
}

/// The part this run reads: after the newest recorded `N/parts` check
/// (CLI or daemon), part 1 when there is none. `None` with one part.
pub async fn next_part(repo: &Repository, parts: u32) -> Option<DataSubset> {
    if parts <= 1 {
        return None;
    }
    let last = match lifeboat_dr::record::checks(repo).await {
        Ok(records) => records.iter().rev().find_map(|r| {
            match r.record.read_data_subset.as_deref()?.parse().ok()? {
                DataSubset::Part { n, m } if m == parts => Some(n),
                _ => None,
            }
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the check records to choose the part to read; reading part 1");
            None
        }
    };
    Some(DataSubset::Part {
        n: last.map_or(1, |n| n % parts + 1),
        m: parts,
    })
}

/// Logs a check's outcome, sets its metrics and stores its record.
async fn record(
    repo: &Repository,
    read_data: bool,
    subset: Option<DataSubset>,
    report: lifeboat_repo::Result<lifeboat_repo::check::CheckReport>,
) {
    match report {
        Ok(r) => {
            let mut rec = CheckRecord::of(&r, read_data);
            rec.read_data_subset = subset.map(|s| s.to_string());
            metrics::check_ran(&rec);
            let part = subset
                .map(|s| s.to_string())
                .unwrap_or_else(|| "all".into());
            if r.ok() {
                tracing::info!(read_data, part = %part, packs = r.packs, "repository check passed");
            } else {
                for p in &r.errors {
                    tracing::error!(object = %p.object, detail = %p.detail, "repository check found a problem");
                }
            }
            if let Err(e) = store_check(repo, &rec).await {
                tracing::warn!(error = %e, "the check's outcome could not be recorded (the next run reads the same part again)");
            }
        }
        Err(e) => tracing::error!(error = %e, "repository check could not run"),
    }
}
