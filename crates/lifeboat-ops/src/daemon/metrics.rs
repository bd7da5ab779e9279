//! Prometheus metrics of the daemon (names in `docs/daemon.md`).
//!
//! Recorded through the `metrics` facade into a Prometheus recorder whose
//! handle renders `/metrics`. Gauges derived from the clock (`rpo_seconds`)
//! are set at render time from the daemon's state.
//!
//! Every counter, histogram and state gauge exists from start
//! ([`daemon_started`], [`source_started`]); the families that stay absent
//! until there is something to say (a time that has not happened yet) are
//! marked "absent until …" in `docs/daemon.md` and `docs/drills.md`, and a
//! test holds both to it. The exporter renders families in hash-map order,
//! different at every scrape; [`render`] puts them in a stable order.

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
/// Renders the scrape payload ([`render`]); the daemon keeps it.
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::error::{Error, Kind, Result};

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
/// Set from the repository's drill records (any daemon's or CLI's drills);
/// the PrometheusRule's drill-overdue alert fires while it is old or absent.
pub const DRILL_LAST_SUCCESS: &str = "lifeboat_drill_last_success_timestamp_seconds";
pub const DRILL_LAST_RUN: &str = "lifeboat_drill_last_run_timestamp_seconds";
pub const DRILL_SUCCESS: &str = "lifeboat_drill_success";
pub const DRILL_RTO: &str = "lifeboat_drill_rto_seconds";
pub const DRILL_RPO: &str = "lifeboat_drill_rpo_seconds";
pub const DRILLS: &str = "lifeboat_drills_total";
pub const DRILL_RUNNING: &str = "lifeboat_drill_running";
/// Restores the daemon runs (the restore step of its drills).
pub const RESTORE_DURATION: &str = "lifeboat_restore_duration_seconds";
pub const RESTORE_LAST_SUCCESS: &str = "lifeboat_restore_last_success_timestamp_seconds";
pub const RESTORES: &str = "lifeboat_restores_total";
/// A source's physical base backups (`physical:`), registered for the
/// sources that have one.
pub const PHYSICAL_BACKUPS: &str = "lifeboat_physical_backups_total";
pub const PHYSICAL_FAILURES: &str = "lifeboat_physical_backup_failures_total";
pub const PHYSICAL_DURATION: &str = "lifeboat_physical_backup_duration_seconds";
pub const PHYSICAL_LAST_SUCCESS: &str = "lifeboat_physical_backup_last_success_timestamp_seconds";
pub const PHYSICAL_LAST_FAILURE: &str = "lifeboat_physical_backup_last_failure_timestamp_seconds";
pub const PHYSICAL_BYTES_READ: &str = "lifeboat_physical_backup_bytes_read_total";
pub const PHYSICAL_BYTES_STORED: &str = "lifeboat_physical_backup_bytes_stored_total";
pub const PHYSICAL_RUNNING: &str = "lifeboat_physical_backup_running";
pub const PHYSICAL_OVERLAPS: &str = "lifeboat_physical_schedule_overlaps_total";
pub const PHYSICAL_NEXT_RUN: &str = "lifeboat_physical_schedule_next_run_timestamp_seconds";
pub const CHECK_LAST_SUCCESS: &str = "lifeboat_check_last_success_timestamp_seconds";
pub const CHECK_PROBLEMS: &str = "lifeboat_check_problems";

/// Installs the global recorder; the handle renders the scrape payload.
pub fn install() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(BACKUP_DURATION.into()),
            &[
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
            ],
        )
        .map_err(failed("configuring the metrics recorder"))?
        .set_buckets_for_metric(
            Matcher::Full(PHYSICAL_DURATION.into()),
            &[
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
            ],
        )
        .map_err(failed("configuring the metrics recorder"))?
        .set_buckets_for_metric(
            Matcher::Full(RESTORE_DURATION.into()),
            &[
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
            ],
        )
        .map_err(failed("configuring the metrics recorder"))?
        .install_recorder()
        .map_err(failed("installing the metrics recorder"))?;
    describe();
    Ok(handle)
}

/// The recorder's error, with what was being done (exit 1).
fn failed(doing: &'static str) -> impl Fn(BuildError) -> Error {
    move |e| Error::from_std(Kind::Failure, &e).context(doing)
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
        "Start of the source's last successful restore drill (Unix seconds)"
    );
    describe_gauge!(
        DRILL_LAST_RUN,
        Unit::Seconds,
        "Start of the source's last restore drill, passed or failed (Unix seconds)"
    );
    describe_gauge!(
        DRILL_SUCCESS,
        "1 when the source's last drill passed, 0 when it failed"
    );
    describe_gauge!(
        DRILL_RTO,
        Unit::Seconds,
        "Time to recover measured by the source's last successful drill"
    );
    describe_gauge!(
        DRILL_RPO,
        Unit::Seconds,
        "Data-loss window of the source's last successful drill (its snapshot's age)"
    );
    describe_counter!(
        DRILLS,
        "Drills run by this daemon, by result (passed, failed, error)"
    );
    describe_gauge!(DRILL_RUNNING, "1 while a drill of the source runs");
    describe_histogram!(
        RESTORE_DURATION,
        Unit::Seconds,
        "Duration of restores run by the daemon (the restore step of drills)"
    );
    describe_gauge!(
        RESTORE_LAST_SUCCESS,
        Unit::Seconds,
        "End of the source's last successful restore run by the daemon (Unix seconds)"
    );
    describe_counter!(
        RESTORES,
        "Restores run by the daemon, by result (success, failure)"
    );
    describe_gauge!(
        CHECK_LAST_SUCCESS,
        Unit::Seconds,
        "Time of the last repository check this daemon ran that passed (Unix seconds)"
    );
    describe_gauge!(
        CHECK_PROBLEMS,
        "Problems found by the last repository check this daemon ran"
    );
    describe_counter!(
        PHYSICAL_BACKUPS,
        "Physical base backups the daemon took that committed a snapshot"
    );
    describe_counter!(
        PHYSICAL_FAILURES,
        "Physical base backups that failed, by reason"
    );
    describe_histogram!(
        PHYSICAL_DURATION,
        Unit::Seconds,
        "Duration of physical base backups that committed a snapshot"
    );
    describe_gauge!(
        PHYSICAL_LAST_SUCCESS,
        Unit::Seconds,
        "Time of the source's newest physical base backup (Unix seconds)"
    );
    describe_gauge!(
        PHYSICAL_LAST_FAILURE,
        Unit::Seconds,
        "Time of the source's last failed physical base backup (Unix seconds)"
    );
    describe_counter!(
        PHYSICAL_BYTES_READ,
        Unit::Bytes,
        "Bytes of data-directory files read by physical base backups"
    );
    describe_counter!(
        PHYSICAL_BYTES_STORED,
        Unit::Bytes,
        "Bytes written to the repository by physical base backups"
    );
    describe_gauge!(
        PHYSICAL_RUNNING,
        "1 while a physical base backup of the source runs"
    );
    describe_counter!(
        PHYSICAL_OVERLAPS,
        "Physical backup slots skipped because the previous base backup was still running"
    );
    describe_gauge!(
        PHYSICAL_NEXT_RUN,
        Unit::Seconds,
        "Next scheduled physical base backup of the source (Unix seconds)"
    );
    describe_gauge!(
        LEASE_ACTIVE,
        "1 when this daemon holds the repository's lease and runs the schedules, 0 as a standby"
    );
}

/// The families of the daemon as a whole that exist from start; called once
/// the recorder is installed.
pub fn daemon_started() {
    counter!(PRUNE_FAILURES).absolute(0);
    lease_active(false);
}

/// The families of source `name` that exist from start: counters at 0, the
/// running gauges at 0, the duration histograms with empty buckets. (Times
/// that have not happened yet stay absent: see the module docs.)
pub fn source_started(name: &str) {
    let s = || name.to_string();
    for c in [BACKUPS, BYTES_READ, BYTES_STORED, OVERLAPS, FORGOTTEN] {
        counter!(c, "source" => s()).absolute(0);
    }
    for result in ["passed", "failed", "error"] {
        counter!(DRILLS, "source" => s(), "result" => result).absolute(0);
    }
    for result in ["success", "failure"] {
        counter!(RESTORES, "source" => s(), "result" => result).absolute(0);
    }
    // Registering a histogram is enough for it to render (empty buckets).
    let _ = histogram!(BACKUP_DURATION, "source" => s());
    let _ = histogram!(RESTORE_DURATION, "source" => s());
    running(name, false);
    drill_running(name, false);
    snapshots(name, 0);
}

/// The physical families of source `name` (one with `physical:`) that
/// exist from start, as [`source_started`] does for its backups.
pub fn physical_started(name: &str) {
    let s = || name.to_string();
    for c in [
        PHYSICAL_BACKUPS,
        PHYSICAL_BYTES_READ,
        PHYSICAL_BYTES_STORED,
        PHYSICAL_OVERLAPS,
    ] {
        counter!(c, "source" => s()).absolute(0);
    }
    for reason in super::runner::REASONS {
        counter!(PHYSICAL_FAILURES, "source" => s(), "reason" => *reason).absolute(0);
    }
    let _ = histogram!(PHYSICAL_DURATION, "source" => s());
    gauge!(PHYSICAL_RUNNING, "source" => s()).set(0.0);
}

/// The scrape payload, families sorted by name and each family's series by
/// their labels, so that two scrapes list them in the same order (the
/// exporter's own order is a hash map's).
pub fn render(handle: &PrometheusHandle) -> String {
    stable_order(&handle.render())
}

/// See [`render`]. The exporter separates families by a blank line; within
/// one, `# HELP`/`# TYPE` come first, then the series: a histogram's or
/// summary's series is a run of lines ending in its `_count` line, kept in
/// its order (the buckets' `le` order matters); other series are one line.
fn stable_order(text: &str) -> String {
    let mut families: Vec<(String, String)> = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        let (head, samples): (Vec<&str>, Vec<&str>) =
            lines.iter().partition(|l| l.starts_with('#'));
        let name = head
            .iter()
            .find_map(|l| l.split_whitespace().nth(2))
            .or_else(|| samples.first().map(|l| series_name(l)))
            .unwrap_or("")
            .to_string();
        let grouped = head.iter().any(|l| {
            l.starts_with("# TYPE") && (l.ends_with(" histogram") || l.ends_with(" summary"))
        });
        let mut series: Vec<Vec<&str>> = Vec::new();
        if grouped {
            let mut cur = Vec::new();
            for l in samples {
                cur.push(l);
                if series_name(l).ends_with("_count") {
                    series.push(std::mem::take(&mut cur));
                }
            }
            if !cur.is_empty() {
                series.push(cur);
            }
        } else {
            series = samples.into_iter().map(|l| vec![l]).collect();
        }
        series.sort_by(|a, b| series_labels(a[0]).cmp(series_labels(b[0])).then(a.cmp(b)));
        let mut out = String::new();
        for l in head.iter().copied().chain(series.into_iter().flatten()) {
            out.push_str(l);
            out.push('\n');
        }
        families.push((name, out));
    }
    families.sort();
    families
        .into_iter()
        .map(|(_, f)| f)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `name` of a sample line `name{labels} value` or `name value`.
fn series_name(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or(line)
}

/// The labels of a sample line (`{…}`, empty without), for ordering series.
fn series_labels(line: &str) -> &str {
    match (line.find('{'), line.rfind('}')) {
        (Some(a), Some(b)) if a < b => &line[a..=b],
        _ => "",
    }
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

/// A run of `kind` that committed a snapshot: the backups' families or
/// the physical ones; either is the source's newest snapshot.
pub fn run_succeeded(
    kind: super::RunKind,
    source: &str,
    time: chrono::DateTime<chrono::Utc>,
    duration: f64,
    bytes_read: u64,
    bytes_stored: u64,
) {
    match kind {
        super::RunKind::Backup => {
            backup_succeeded(source, time, duration, bytes_read, bytes_stored)
        }
        super::RunKind::Physical => {
            let s = source.to_string();
            counter!(PHYSICAL_BACKUPS, "source" => s.clone()).increment(1);
            histogram!(PHYSICAL_DURATION, "source" => s.clone()).record(duration);
            counter!(PHYSICAL_BYTES_READ, "source" => s.clone()).increment(bytes_read);
            counter!(PHYSICAL_BYTES_STORED, "source" => s.clone()).increment(bytes_stored);
            physical_last_success(source, Some(time));
            last_success(source, Some(time));
        }
    }
}

/// A run of `kind` that failed (reason labels as [`backup_failed`]).
pub fn run_failed(
    kind: super::RunKind,
    source: &str,
    reason: &str,
    time: chrono::DateTime<chrono::Utc>,
) {
    match kind {
        super::RunKind::Backup => backup_failed(source, reason, time),
        super::RunKind::Physical => {
            counter!(PHYSICAL_FAILURES, "source" => source.to_string(), "reason" => reason.to_string())
                .increment(1);
            gauge!(PHYSICAL_LAST_FAILURE, "source" => source.to_string()).set(unix(time));
        }
    }
}

pub fn physical_last_success(source: &str, time: Option<chrono::DateTime<chrono::Utc>>) {
    if let Some(t) = time {
        gauge!(PHYSICAL_LAST_SUCCESS, "source" => source.to_string()).set(unix(t));
    }
}

pub fn run_running(kind: super::RunKind, source: &str, on: bool) {
    match kind {
        super::RunKind::Backup => running(source, on),
        super::RunKind::Physical => {
            gauge!(PHYSICAL_RUNNING, "source" => source.to_string()).set(if on { 1.0 } else { 0.0 })
        }
    }
}

pub fn run_overlap(kind: super::RunKind, source: &str, skipped: u64) {
    match kind {
        super::RunKind::Backup => overlap(source, skipped),
        super::RunKind::Physical => {
            counter!(PHYSICAL_OVERLAPS, "source" => source.to_string()).increment(skipped)
        }
    }
}

pub fn run_next(kind: super::RunKind, source: &str, at: Option<chrono::DateTime<chrono::Utc>>) {
    match kind {
        super::RunKind::Backup => next_run(source, at),
        super::RunKind::Physical => gauge!(PHYSICAL_NEXT_RUN, "source" => source.to_string())
            .set(at.map(unix).unwrap_or(0.0)),
    }
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

/// The gauges of a source's drills, from the repository's records.
pub fn drill_state(
    source: &str,
    last: Option<&lifeboat_dr::record::DrillRecord>,
    last_ok: Option<&lifeboat_dr::record::DrillRecord>,
) {
    let l = || source.to_string();
    if let Some(d) = last {
        gauge!(DRILL_LAST_RUN, "source" => l()).set(unix(d.started));
        gauge!(DRILL_SUCCESS, "source" => l()).set(if d.ok { 1.0 } else { 0.0 });
    }
    if let Some(d) = last_ok {
        gauge!(DRILL_LAST_SUCCESS, "source" => l()).set(unix(d.started));
        gauge!(DRILL_RTO, "source" => l()).set(d.rto_seconds);
        gauge!(DRILL_RPO, "source" => l()).set(d.rpo_seconds);
    }
}

/// A drill this daemon ran: its result and its restore step.
pub fn drill_ran(d: &lifeboat_dr::record::DrillRecord) {
    let result = if d.ok { "passed" } else { "failed" };
    counter!(DRILLS, "source" => d.source.clone(), "result" => result).increment(1);
    if let Some(step) = d.steps.iter().find(|s| s.name == "restore") {
        let r = if step.ok { "success" } else { "failure" };
        counter!(RESTORES, "source" => d.source.clone(), "result" => r).increment(1);
        if step.ok {
            histogram!(RESTORE_DURATION, "source" => d.source.clone()).record(step.seconds);
            gauge!(RESTORE_LAST_SUCCESS, "source" => d.source.clone()).set(unix(d.finished));
        }
    }
}

/// A drill that could not run at all (no snapshot, bad configuration).
pub fn drill_error(source: &str) {
    counter!(DRILLS, "source" => source.to_string(), "result" => "error").increment(1);
}

pub fn drill_running(source: &str, on: bool) {
    gauge!(DRILL_RUNNING, "source" => source.to_string()).set(if on { 1.0 } else { 0.0 });
}

pub fn check_ran(c: &lifeboat_dr::record::CheckRecord) {
    gauge!(CHECK_PROBLEMS).set(c.problems as f64);
    if c.ok {
        gauge!(CHECK_LAST_SUCCESS).set(unix(c.time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_series_come_out_sorted_buckets_in_order() {
        let text = "# HELP b_total B\n# TYPE b_total counter\nb_total{source=\"z\"} 1\nb_total{source=\"a\"} 2\n\n\
# HELP a_seconds A\n# TYPE a_seconds histogram\n\
a_seconds_bucket{source=\"y\",le=\"5\"} 0\na_seconds_bucket{source=\"y\",le=\"+Inf\"} 0\na_seconds_sum{source=\"y\"} 0\na_seconds_count{source=\"y\"} 0\n\
a_seconds_bucket{source=\"x\",le=\"5\"} 1\na_seconds_bucket{source=\"x\",le=\"+Inf\"} 1\na_seconds_sum{source=\"x\"} 2\na_seconds_count{source=\"x\"} 1\n\n\
# TYPE c gauge\nc 3\n\n";
        let got = stable_order(text);
        let want = "# HELP a_seconds A\n# TYPE a_seconds histogram\n\
a_seconds_bucket{source=\"x\",le=\"5\"} 1\na_seconds_bucket{source=\"x\",le=\"+Inf\"} 1\na_seconds_sum{source=\"x\"} 2\na_seconds_count{source=\"x\"} 1\n\
a_seconds_bucket{source=\"y\",le=\"5\"} 0\na_seconds_bucket{source=\"y\",le=\"+Inf\"} 0\na_seconds_sum{source=\"y\"} 0\na_seconds_count{source=\"y\"} 0\n\n\
# HELP b_total B\n# TYPE b_total counter\nb_total{source=\"a\"} 2\nb_total{source=\"z\"} 1\n\n\
# TYPE c gauge\nc 3\n";
        assert_eq!(got, want);
        assert_eq!(stable_order(&got), got);
    }
}
