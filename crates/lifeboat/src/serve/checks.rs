//! Scheduled repository checks (`serve.check`): the active daemon runs
//! `check` (with `--read-data` by default) on its schedule, in UTC, and
//! records the outcome in the repository like the CLI does, so that
//! `lifeboat readiness` sees a recent check. No catch-up after downtime: the
//! next slot comes soon enough, and a check is not a backup.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use croner::Cron;
use lifeboat_dr::record::{CheckRecord, RECORD_VERSION, store_check};
use lifeboat_repo::backup::Progress;

use super::{Daemon, Role, metrics, scheduler};
use crate::config::Timezone;

pub async fn run(d: Arc<Daemon>, cron: Cron, read_data: bool) {
    let mut role = d.role.subscribe();
    let mut shutdown = d.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if !matches!(*role.borrow_and_update(), Role::Active) {
            tokio::select! {
                r = role.changed() => if r.is_err() { return },
                _ = super::stopped(&mut shutdown) => return,
            }
            continue;
        }
        let Some(next) = scheduler::next_after(&cron, Timezone::UTC, Utc::now()) else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = super::stopped(&mut shutdown) => return,
            r = role.changed() => {
                if r.is_err() { return }
                continue;
            }
        }
        if !matches!(*role.borrow(), Role::Active) {
            continue;
        }
        let report = tokio::select! {
            r = lifeboat_repo::check::check(&d.repo, read_data, Arc::new(Progress::default())) => r,
            _ = super::stopped(&mut shutdown) => return,
        };
        match report {
            Ok(r) => {
                let rec = CheckRecord {
                    version: RECORD_VERSION,
                    time: Utc::now(),
                    read_data,
                    ok: r.ok(),
                    problems: r.errors.len(),
                    hostname: lifeboat_repo::keys::hostname(),
                    program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
                };
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
}
