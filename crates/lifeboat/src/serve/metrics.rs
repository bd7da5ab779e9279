//! Prometheus metrics of the daemon (names in `docs/daemon.md`).
//!
//! Recorded through the `metrics` facade into a Prometheus recorder whose
//! handle renders `/metrics`. Gauges derived from the clock (`rpo_seconds`)
//! are set at render time from the daemon's state.

use anyhow::{Context, Result};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const BACKUP_DURATION: &str = "lifeboat_backup_duration_seconds";
pub const LAST_SUCCESS: &str = "lifeboat_backup_last_success_timestamp_seconds";
pub const LAST_FAILURE: &str = "lifeboat_backup_last_failure_timestamp_seconds";
pub const BACKUPS: &str = "lifeboat_backups_total";
pub const FAILURES: &str = "lifeboat_backup_failures_total";
pub const BYTES_READ: &str = "lifeboat_backup_bytes_read_total";
pub const BYTES_STORED: &str = "lifeboat_backup_bytes_stored_total";
pub const RUNNING: &str = "lifeboat_backup_running";
pub const OVERLAPS: &str = "lifeboat_schedule_overlaps_total";
pub const NEXT_RUN: &str = "lifeboat_schedule_next_run_timestamp_seconds";
pub const RPO: &str = "lifeboat_rpo_seconds";
pub const RPO_OBJECTIVE: &str = "lifeboat_rpo_objective_seconds";
pub const SNAPSHOTS: &str = "lifeboat_snapshots";
pub const FORGOTTEN: &str = "lifeboat_retention_forgotten_total";
pub const PRUNE_LAST_SUCCESS: &str = "lifeboat_prune_last_success_timestamp_seconds";
pub const PRUNE_FAILURES: &str = "lifeboat_prune_failures_total";
pub const REPO_SIZE: &str = "lifeboat_repository_size_bytes";
pub const LEASE_ACTIVE: &str = "lifeboat_lease_active";
/// Set by restore drills (issue 6, not run by the daemon yet); the
/// PrometheusRule's drill-overdue alert fires while it is absent.
pub const DRILL_LAST_SUCCESS: &str = "lifeboat_drill_last_success_timestamp_seconds";

/// Installs the global recorder; the handle renders the scrape payload.
pub fn install() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(BACKUP_DURATION.into()),
            &[
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
            ],
        )
        .context("configuring the metrics recorder")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_histogram!(
        BACKUP_DURATION,
        Unit::Seconds,
        "Duration of backups that committed a snapshot"
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Time of the source's newest snapshot (Unix seconds)"
    );
    describe_gauge!(
        LAST_FAILURE,
        Unit::Seconds,
        "Time of the source's last failed backup (Unix seconds)"
    );
    describe_counter!(BACKUPS, "Backups that committed a snapshot");
    describe_counter!(FAILURES, "Backups that failed, by reason");
    describe_counter!(
        BYTES_READ,
        Unit::Bytes,
        "Bytes read from sources by backups"
    );
    describe_counter!(
        BYTES_STORED,
        Unit::Bytes,
        "Bytes written to the repository by backups (after dedup and compression)"
    );
    describe_gauge!(RUNNING, "1 while a backup of the source runs");
    describe_counter!(
        OVERLAPS,
        "Scheduled slots skipped because the source's previous backup was still running"
    );
    describe_gauge!(
        NEXT_RUN,
        Unit::Seconds,
        "Next scheduled backup of the source (Unix seconds)"
    );
    describe_gauge!(
        RPO,
        Unit::Seconds,
        "Recovery point now: seconds since the source's newest snapshot"
    );
    describe_gauge!(
        RPO_OBJECTIVE,
        Unit::Seconds,
        "The tightest non-zero RPO objective among the scenarios the source covers"
    );
    describe_gauge!(SNAPSHOTS, "Snapshots of the source in the repository");
    describe_counter!(
        FORGOTTEN,
        "Snapshots removed by the source's retention policy"
    );
    describe_gauge!(
        PRUNE_LAST_SUCCESS,
        Unit::Seconds,
        "Time of the last successful prune (Unix seconds)"
    );
    describe_counter!(PRUNE_FAILURES, "Prunes that failed");
    describe_gauge!(
        REPO_SIZE,
        Unit::Bytes,
        "Bytes of pack data in the repository"
    );
    describe_gauge!(
        DRILL_LAST_SUCCESS,
        Unit::Seconds,
        "Time of the last successful restore drill (Unix seconds)"
    );
    describe_gauge!(
        LEASE_ACTIVE,
        "1 when this daemon holds the repository's lease and runs the schedules, 0 as a standby"
    );
}

fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

pub fn backup_succeeded(
    source: &str,
    time: chrono::DateTime<chrono::Utc>,
    duration: f64,
    bytes_read: u64,
    bytes_stored: u64,
) {
    let s = source.to_string();
    counter!(BACKUPS, "source" => s.clone()).increment(1);
    histogram!(BACKUP_DURATION, "source" => s.clone()).record(duration);
    counter!(BYTES_READ, "source" => s.clone()).increment(bytes_read);
    counter!(BYTES_STORED, "source" => s.clone()).increment(bytes_stored);
    last_success(source, Some(time));
}

pub fn backup_failed(source: &str, reason: &str, time: chrono::DateTime<chrono::Utc>) {
    counter!(FAILURES, "source" => source.to_string(), "reason" => reason.to_string()).increment(1);
    gauge!(LAST_FAILURE, "source" => source.to_string()).set(unix(time));
}

/// Registers a failure reason at zero, so that `rate()` and alerts see the
/// series before the first failure.
pub fn failure_reason_seen(source: &str, reason: &str) {
    counter!(FAILURES, "source" => source.to_string(), "reason" => reason.to_string()).absolute(0);
}

pub fn last_success(source: &str, time: Option<chrono::DateTime<chrono::Utc>>) {
    if let Some(t) = time {
        gauge!(LAST_SUCCESS, "source" => source.to_string()).set(unix(t));
    }
}

pub fn running(source: &str, on: bool) {
    gauge!(RUNNING, "source" => source.to_string()).set(if on { 1.0 } else { 0.0 });
}

pub fn overlap(source: &str, skipped: u64) {
    counter!(OVERLAPS, "source" => source.to_string()).increment(skipped);
}

pub fn next_run(source: &str, at: Option<chrono::DateTime<chrono::Utc>>) {
    gauge!(NEXT_RUN, "source" => source.to_string()).set(at.map(unix).unwrap_or(0.0));
}

pub fn rpo(source: &str, seconds: f64) {
    gauge!(RPO, "source" => source.to_string()).set(seconds);
}

pub fn rpo_objective(source: &str, seconds: f64) {
    gauge!(RPO_OBJECTIVE, "source" => source.to_string()).set(seconds);
}

pub fn snapshots(source: &str, n: usize) {
    gauge!(SNAPSHOTS, "source" => source.to_string()).set(n as f64);
}

pub fn forgotten(source: &str, n: usize) {
    counter!(FORGOTTEN, "source" => source.to_string()).increment(n as u64);
}

pub fn pruned(time: chrono::DateTime<chrono::Utc>) {
    gauge!(PRUNE_LAST_SUCCESS).set(unix(time));
}

pub fn prune_failed() {
    counter!(PRUNE_FAILURES).increment(1);
}

pub fn repository_size(bytes: u64) {
    gauge!(REPO_SIZE).set(bytes as f64);
}

pub fn lease_active(active: bool) {
    gauge!(LEASE_ACTIVE).set(if active { 1.0 } else { 0.0 });
}
