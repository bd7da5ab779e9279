//! Scheduled copies of the repository into each region's second repository
//! (`regions.NAME.repository`; issue 19, "The repository in the second
//! region"; docs/regions/copy.md, "The daemon's scheduled copies").
//!
//! Why in `regions/` although, unlike its siblings, it is bound to the
//! lease: what it serves is a region (the copy in a region's failure
//! domain, the complete-outage objective), it is configured per region, its
//! metrics carry `{region}` (`regions/metrics.rs`) and it exists only with
//! `regions:`. The work itself is `lifeboat copy`'s engine
//! ([`lifeboat_repo::copy::Copier`]), written through a read-back check as
//! the CLI does.
//!
//! - **Who copies**: the daemon holding the repository's lease (the copy's
//!   *source*), as backups, prune, checks and drills: every region's daemon
//!   shares the one `repository:` and so its lease, and exactly one daemon
//!   copies at a time (the target refuses other sources anyway). This
//!   daemon's own region (`serve.region`) plays no part: the active daemon
//!   copies into every region's repository, with or without one.
//! - **When**: each region's `schedule` (cron, read in UTC, default
//!   [`DEFAULT_SCHEDULE`]), and once at once on becoming active (start-up,
//!   takeover): slots missed while no daemon was active are caught up by
//!   one copy. A copy sends what the target lacks, so a slot with nothing
//!   new costs listings only. Slots that pass while a copy runs are skipped.
//! - **After the backups**: at its slot a copy first waits until no backup
//!   of this daemon runs or is due ([`backups_busy`]), so that the copy
//!   that shares a slot with a backup (the default: both on the hour)
//!   carries it.
//! - **Never beside a prune**: prune is safe beside a copy anyway (the copy
//!   holds a shared lock on the source, as a restore does: docs/format.md,
//!   "Why prune is safe"), and this daemon does not even run one then: each
//!   snapshot's transfer holds the daemon's prune mutex, which
//!   `retention::maybe_prune` takes, so a prune waits for at most one
//!   snapshot's transfer and a transfer waits for a running prune. (Held
//!   for a whole copy, it would hold up the end of every backup run that
//!   finished meanwhile.)
//! - **Failures** (target unreachable, not a Lifeboat repository, receiving
//!   another source's copies, …) are logged with what to do, counted
//!   (`lifeboat_copy_failures_total`) and tried again at the next slot;
//!   nothing was written to a target refused before the first write. A
//!   copy cut short (failure, SIGTERM) resumes at its next run without
//!   sending again what landed.
//! - A region whose repository *is* the source (same repository id, read
//!   from it: never judged by the URL) is not copied into; that is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use croner::Cron;
use lifeboat_repo::copy::{Copier, Filter, Mode};
use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::read_back::ReadBack;
use lifeboat_repo::{Progress, Repository};
use tokio::task::JoinHandle;

use super::metrics;
use crate::config::{Config, RegionRepository, Schedule, Timezone};
use crate::context::Ctx;
use crate::daemon::scheduler::{self, SlotClock, Wake};
use crate::daemon::{Daemon, SourceStatus};
use crate::error::{Error, Result};

/// A region's copy schedule when it gives none: hourly, within the seed's
/// complete-outage RPO (1 h), on the hour like hourly backups (the copy
/// waits for them).
pub const DEFAULT_SCHEDULE: &str = "0 * * * *";
/// A backup whose slot comes within this margin counts as due: the copy's
/// timer and the backup's fire at the same instant, in either order.
pub const DUE_MARGIN: Duration = Duration::from_millis(500);
/// How often a copy waiting for backups looks again.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Starts one copy loop per region with a `repository:` (none without),
/// its metric families registered.
pub fn spawn(d: &Arc<Daemon>, config: &Config) -> Vec<JoinHandle<()>> {
    let targets: Vec<(String, RegionRepository)> = config
        .regions()
        .iter()
        .filter_map(|(name, r)| r.repository.clone().map(|t| (name.clone(), t)))
        .collect();
    if targets.is_empty() {
        return Vec::new();
    }
    metrics::describe_copies();
    let mut tasks = Vec::new();
    for (region, target) in targets {
        let schedule = match schedule(&target) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(region = %region, error = %e, "no scheduled copy for this region");
                continue;
            }
        };
        metrics::copy_started(&region);
        tracing::info!(
            region = %region,
            target = %target.url.as_str(),
            schedule = %schedule,
            "copies into this region's repository run on its schedule (UTC) while this daemon holds the repository's lease"
        );
        tasks.push(tokio::spawn(run(
            Arc::clone(d),
            region,
            target,
            schedule.cron().clone(),
        )));
    }
    tasks
}

/// The region's `schedule`, else [`DEFAULT_SCHEDULE`].
pub fn schedule(target: &RegionRepository) -> std::result::Result<Schedule, String> {
    match &target.schedule {
        Some(s) => Ok(s.clone()),
        None => Schedule::parse(DEFAULT_SCHEDULE),
    }
}

/// Whether a backup with this status (or its physical base backup) is
/// running, or due (its slot within `margin` of `now`) and not yet ended: a
/// copy waits for it.
pub fn backup_busy(s: &SourceStatus, now: DateTime<Utc>, margin: Duration) -> bool {
    let margin = chrono::TimeDelta::from_std(margin).unwrap_or_default();
    let busy = |running: Option<DateTime<Utc>>, next: Option<DateTime<Utc>>| {
        running.is_some() || next.is_some_and(|at| at <= now + margin)
    };
    busy(s.running_since, s.next_run)
        || s.physical
            .as_ref()
            .is_some_and(|p| busy(p.running_since, p.next_run))
}

/// The sources whose backups a copy waits for now, by name.
pub fn backups_busy<'a>(
    sources: impl IntoIterator<Item = (&'a str, SourceStatus)>,
    now: DateTime<Utc>,
    margin: Duration,
) -> Vec<&'a str> {
    sources
        .into_iter()
        .filter(|(_, s)| backup_busy(s, now, margin))
        .map(|(n, _)| n)
        .collect()
}

/// The copy loop of one region; ends at shutdown.
async fn run(d: Arc<Daemon>, region: String, target: RegionRepository, cron: Cron) {
    let mut clock = SlotClock::new(&d);
    while clock.until_active(|| {}).await {
        // On becoming active: what was missed, once.
        if !copy_once(&d, &region, &target, &mut clock).await {
            return;
        }
        let mut last_slot = Utc::now();
        loop {
            let from = Utc::now().max(last_slot);
            let Some(next) = scheduler::next_after(&cron, Timezone::UTC, from) else {
                tracing::warn!(region = %region, "the copy schedule has no future slot");
                clock.stopped().await;
                return;
            };
            match clock.sleep_until(next).await {
                Wake::Stop => return,
                Wake::Standby => break,
                Wake::Slot => {}
            }
            // The timer may fire a little early: never run a slot twice.
            last_slot = next;
            if !copy_once(&d, &region, &target, &mut clock).await {
                return;
            }
        }
    }
}

/// Waits for the backups, copies, records the outcome; false at shutdown.
async fn copy_once(
    d: &Daemon,
    region: &str,
    target: &RegionRepository,
    clock: &mut SlotClock,
) -> bool {
    if !after_backups(d, region, clock).await {
        return false;
    }
    metrics::copy_running(region, true);
    let result = tokio::select! {
        r = copy(d, region, target) => Some(r),
        _ = clock.stopped() => None,
    };
    metrics::copy_running(region, false);
    let url = target.url.as_str();
    match result {
        None => {
            // The copy was dropped: its lock guards delete their locks.
            lifeboat_repo::lock::settle_releases(Duration::from_secs(10)).await;
            tracing::info!(
                region = %region,
                target = %url,
                "copy stopped at shutdown; the next run resumes it without sending again what landed"
            );
            false
        }
        Some(Ok(Outcome::IntoItself)) => {
            tracing::info!(
                region = %region,
                target = %url,
                "this region's repository is the repository itself (same id): nothing to copy; \
                 remove regions.{region}.repository or point it at a second repository"
            );
            true
        }
        Some(Ok(Outcome::Done(done))) => {
            metrics::copy_succeeded(region, &done.counts(), Utc::now(), done.newest);
            tracing::info!(
                region = %region,
                target = %url,
                mode = ?done.mode,
                copied = done.copied,
                skipped = done.skipped,
                blobs_sent = done.blobs_sent,
                bytes_sent = done.bytes_sent,
                bytes_stored = done.bytes_stored,
                objects_verified = done.objects_verified,
                newest_snapshot = %done.newest.map_or_else(|| "none".to_string(), |t| t.to_rfc3339()),
                duration_seconds = done.seconds,
                "copy succeeded"
            );
            true
        }
        Some(Err(e)) => {
            metrics::copy_failed(region);
            tracing::error!(
                region = %region,
                target = %url,
                error = %e,
                hint = %e.hint(),
                "copy failed; it is tried again at the next slot (`lifeboat copy --to URL` runs it by hand and says the same; `lifeboat region status` shows the copy's age)"
            );
            true
        }
    }
}

/// Waits until no backup of this daemon runs or is due; false at shutdown.
async fn after_backups(d: &Daemon, region: &str, clock: &mut SlotClock) -> bool {
    let mut said = false;
    loop {
        let busy = backups_busy(
            d.sources.iter().map(|(n, s)| (n.as_str(), s.status())),
            Utc::now(),
            DUE_MARGIN,
        );
        if busy.is_empty() {
            return true;
        }
        if !said {
            tracing::info!(
                region = %region,
                sources = %busy.join(","),
                "the copy waits for the running backup(s) to finish"
            );
            said = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(WAIT_POLL) => {}
            _ = clock.stopped() => return false,
        }
    }
}

/// What one copy run did.
enum Outcome {
    Done(Done),
    /// The region's repository is the source itself.
    IntoItself,
}

#[derive(Debug)]
struct Done {
    mode: Mode,
    copied: u64,
    skipped: u64,
    blobs_sent: u64,
    bytes_sent: u64,
    bytes_stored: u64,
    objects_verified: u64,
    /// The original time of the newest snapshot the target holds now.
    newest: Option<DateTime<Utc>>,
    seconds: f64,
}

impl Done {
    fn counts(&self) -> metrics::CopyCounts {
        metrics::CopyCounts {
            snapshots: self.copied,
            blobs: self.blobs_sent,
            bytes_sent: self.bytes_sent,
            bytes_stored: self.bytes_stored,
        }
    }
}

/// One copy of every snapshot of the source into the region's repository.
async fn copy(d: &Daemon, region: &str, target: &RegionRepository) -> Result<Outcome> {
    let started = Instant::now();
    d.repo.verify_identity().await.map_err(|e| {
        Error::from(e)
            .context("the repository is not where the daemon opened it; nothing was copied")
    })?;
    let (into, read_back) = open_target(&d.ctx, target).await.map_err(|e| {
        e.context(format!(
            "opening region {region}'s repository {}",
            target.url.as_str()
        ))
    })?;
    // By what the repositories say, not by their URLs.
    if into.config().id == d.repo.config().id {
        return Ok(Outcome::IntoItself);
    }
    let mut copier = Copier::prepare(d.repo.clone(), into).await?;
    let chosen = copier.choose(&Filter::default()).await?;
    let mut done = Done {
        mode: copier.mode(),
        copied: 0,
        skipped: 0,
        blobs_sent: 0,
        bytes_sent: 0,
        bytes_stored: 0,
        objects_verified: 0,
        newest: chosen.iter().map(|s| s.snapshot.time).max(),
        seconds: 0.0,
    };
    for s in &chosen {
        let progress = Arc::new(Progress::default());
        let c = {
            // No prune of this daemon during the transfer (module docs).
            let _no_prune = d.prune.lock().await;
            copier.copy(s, &progress).await
        };
        let c = c.map_err(|e| {
            Error::from(e).context(format!(
                "copying snapshot {} ({} copied before it stay; the next run resumes)",
                s.short_id(),
                done.copied
            ))
        })?;
        if c.skipped {
            done.skipped += 1;
        } else {
            done.copied += 1;
        }
        done.blobs_sent += c.blobs_sent;
        done.bytes_sent += c.bytes_sent;
        done.bytes_stored += c.bytes_stored;
    }
    done.objects_verified = read_back.verified().0;
    done.seconds = started.elapsed().as_secs_f64();
    Ok(Outcome::Done(done))
}

/// The region's repository, opened with its own secret (read now, so a
/// rotated one is taken at the next run) and S3 settings, written through
/// a read-back check; without a secret of its own (`password`,
/// `key_file`), the main repository's, as `regions.NAME.repository`
/// documents.
async fn open_target(ctx: &Ctx, r: &RegionRepository) -> Result<(Repository, Arc<ReadBack>)> {
    let secret = crate::region::conn::copy_secret(ctx, r).await?;
    let read_back = ReadBack::wrap(crate::region::conn::copy_storage(ctx, r).await?);
    let store: Arc<dyn Storage> = Arc::clone(&read_back) as Arc<dyn Storage>;
    Ok((Repository::open(store, &secret).await?, read_back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: u32, ms: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, s).unwrap()
            + chrono::TimeDelta::milliseconds(ms as i64)
    }

    fn status(running: bool, next: Option<DateTime<Utc>>) -> SourceStatus {
        SourceStatus {
            running_since: running.then(|| at(0, 0)),
            next_run: next,
            ..Default::default()
        }
    }

    #[test]
    fn a_copy_waits_for_running_and_due_backups_only() {
        let now = at(10, 0);
        let m = DUE_MARGIN;
        // (running, next slot, busy)
        let table = [
            (false, None, false),              // no schedule, idle
            (false, Some(at(40, 0)), false),   // next slot later
            (true, Some(at(40, 0)), true),     // running (API-started)
            (true, None, true),                // running
            (false, Some(at(10, 0)), true),    // its slot is now
            (false, Some(at(9, 0)), true),     // slot passed, run not started yet
            (false, Some(at(10, 400)), true),  // fires in the same instant
            (false, Some(at(10, 600)), false), // beyond the margin
        ];
        for (running, next, busy) in table {
            let s = status(running, next);
            assert_eq!(backup_busy(&s, now, m), busy, "{running} {next:?}");
            // The same for a physical base backup of an idle source.
            let p = SourceStatus {
                physical: Some(crate::daemon::RunStatus {
                    running_since: s.running_since,
                    next_run: s.next_run,
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(backup_busy(&p, now, m), busy, "physical {running} {next:?}");
        }
        let got = backups_busy(
            [
                ("a", status(false, Some(at(40, 0)))),
                ("b", status(true, None)),
                ("c", status(false, Some(at(9, 0)))),
            ],
            now,
            m,
        );
        assert_eq!(got, ["b", "c"]);
    }

    #[test]
    fn the_default_schedule_is_hourly() {
        let s = Schedule::parse(DEFAULT_SCHEDULE).unwrap();
        let next = scheduler::next_after(s.cron(), Timezone::UTC, at(10, 0)).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap());
    }
}
