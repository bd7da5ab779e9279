//! The daemon's region metrics (docs/daemon.md, "Regions"). Registered only
//! when this daemon does region work, so a single-region daemon exports
//! none of them; the copy families ([`describe_copies`]) when a region has
//! a `repository:`. Unknown values (a server not reached) are exported as NaN
//! rather than left at their last value: no comparison with NaN is true, so
//! no alert fires on a stale number, and `lifeboat_replication_streaming`
//! says 0.

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

use super::decide::StandbyPoint;

pub const LAG_SECONDS: &str = "lifeboat_replication_lag_seconds";
pub const LAG_BYTES: &str = "lifeboat_replication_lag_bytes";
pub const HEARTBEAT_AGE: &str = "lifeboat_replication_heartbeat_age_seconds";
pub const STREAMING: &str = "lifeboat_replication_streaming";
pub const PRIMARY: &str = "lifeboat_region_primary";
pub const HEARTBEAT_WRITES: &str = "lifeboat_heartbeat_writes_total";
pub const HEARTBEAT_FAILURES: &str = "lifeboat_heartbeat_failures_total";
pub const HEARTBEAT_LAST: &str = "lifeboat_heartbeat_last_write_timestamp_seconds";
pub const REGION_HEALTHY: &str = "lifeboat_region_healthy";
pub const CHECK_HEALTHY: &str = "lifeboat_health_check_healthy";
pub const CHECK_PROBES: &str = "lifeboat_health_check_probes_total";
pub const CHECK_FAILURES: &str = "lifeboat_health_check_failures_total";
pub const CHECK_LAST_PROBE: &str = "lifeboat_health_check_last_probe_timestamp_seconds";
pub const TRAFFIC_ANSWER: &str = "lifeboat_traffic_answer";
pub const TRAFFIC_UPDATES: &str = "lifeboat_traffic_updates_total";
pub const TRAFFIC_FAILURES: &str = "lifeboat_traffic_apply_failures_total";

pub fn describe() {
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Replay lag of the standby region: pg_stat_replication.replay_lag on its primary (0 caught up), else the standby's now() minus its last replayed commit"
    );
    describe_gauge!(
        LAG_BYTES,
        Unit::Bytes,
        "WAL the standby region has not replayed: the primary's current LSN minus the standby's replay LSN"
    );
    describe_gauge!(
        HEARTBEAT_AGE,
        Unit::Seconds,
        "The standby region's now() minus the newest heartbeat it replayed: what a failover to it would lose now"
    );
    describe_gauge!(
        STREAMING,
        "1 when the standby region streams from its primary (pg_stat_replication state streaming), else 0"
    );
    describe_gauge!(
        PRIMARY,
        "1 when the region's server says it is a primary (pg_is_in_recovery() false), 0 standby or unreachable"
    );
    describe_gauge!(
        REGION_ROLE,
        "1 for the role the region's server answers with now (role primary, standby or unreachable), 0 for the others"
    );
    describe_counter!(
        HEARTBEAT_WRITES,
        "Heartbeats this daemon wrote on its region's primary"
    );
    describe_counter!(
        HEARTBEAT_FAILURES,
        "Heartbeats this daemon failed to write on its region's primary"
    );
    describe_gauge!(
        HEARTBEAT_LAST,
        Unit::Seconds,
        "Time of this daemon's last heartbeat written (Unix seconds, the primary's clock)"
    );
    describe_gauge!(
        REGION_HEALTHY,
        "1 when all the region's health checks pass as the vantage point observer sees them, else 0"
    );
    describe_gauge!(
        CHECK_HEALTHY,
        "1 when the health check's status is healthy from the vantage point observer, else 0"
    );
    describe_counter!(
        CHECK_PROBES,
        "Probes of the health check from this vantage point"
    );
    describe_counter!(
        CHECK_FAILURES,
        "Probes of the health check that failed from this vantage point"
    );
    describe_gauge!(
        CHECK_LAST_PROBE,
        Unit::Seconds,
        "Time of the health check's last probe from this vantage point (Unix seconds)"
    );
    describe_gauge!(
        TRAFFIC_ANSWER,
        "1 when the region's answer is in the answer set this daemon last made DNS give (rfc2136), else 0"
    );
    describe_counter!(
        TRAFFIC_UPDATES,
        "DNS UPDATEs this daemon sent that changed the steered name's answers (rfc2136)"
    );
    describe_counter!(
        TRAFFIC_FAILURES,
        "Steering applies that failed (rfc2136); the loop retries at its next round"
    );
}

fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn or_nan<T: Into<f64>>(v: Option<T>) -> f64 {
    v.map(Into::into).unwrap_or(f64::NAN)
}

pub fn primary(region: &str, is_primary: bool) {
    gauge!(PRIMARY, "region" => region.to_string()).set(if is_primary { 1.0 } else { 0.0 });
}

pub const REGION_ROLE: &str = "lifeboat_region_role";

/// `lifeboat_region_role{region,role}`: 1 for the role the region's server
/// answers with now (`primary`, `standby`, `unreachable`), 0 for the others,
/// so every series stays.
pub fn region_role(region: &str, role: &str) {
    for r in ["primary", "standby", "unreachable"] {
        gauge!(REGION_ROLE, "region" => region.to_string(), "role" => r).set(if r == role {
            1.0
        } else {
            0.0
        });
    }
}

pub const FAILOVER_UNDER_WAY: &str = "lifeboat_failover_in_progress";
pub const FAILOVER_BLOCKED: &str = "lifeboat_failover_blocked";
pub const FAILOVER_RECORDS: &str = "lifeboat_failover_records";
pub const FAILOVER_LAST: &str = "lifeboat_failover_last_timestamp_seconds";
pub const FAILOVER_LAST_RTO: &str = "lifeboat_failover_last_rto_seconds";
pub const FAILOVER_LAST_RPO: &str = "lifeboat_failover_last_rpo_seconds";

pub fn describe_changes() {
    describe_gauge!(
        FAILOVER_UNDER_WAY,
        "1 while a change of primary (failover or switchover) has not ended, per its progress in etcd"
    );
    describe_gauge!(
        FAILOVER_BLOCKED,
        "1 when a change of primary failed for good after the epoch changed: someone must resume it (the command again, or the next election holder)"
    );
    describe_gauge!(
        FAILOVER_RECORDS,
        "Failover records of the kind (automatic, manual, switchover) among the newest 200 in etcd, aborted ones included"
    );
    describe_gauge!(
        FAILOVER_LAST,
        Unit::Seconds,
        "Start of the newest completed change of primary of the kind (Unix seconds; NaN: none)"
    );
    describe_gauge!(
        FAILOVER_LAST_RTO,
        Unit::Seconds,
        "The newest completed change of the kind: failure (or request) to DNS answering the new primary, else to writes accepted"
    );
    describe_gauge!(
        FAILOVER_LAST_RPO,
        Unit::Seconds,
        "The newest completed change of the kind: its measured data loss window (an upper bound when the old primary's last heartbeat is unknown)"
    );
}

pub fn change_under_way(under_way: bool, blocked: bool) {
    gauge!(FAILOVER_UNDER_WAY).set(if under_way { 1.0 } else { 0.0 });
    gauge!(FAILOVER_BLOCKED).set(if blocked { 1.0 } else { 0.0 });
}

pub fn changes_of_kind(
    kind: &'static str,
    records: usize,
    last: Option<&lifeboat_region::failover::record::FailoverRecord>,
) {
    gauge!(FAILOVER_RECORDS, "kind" => kind).set(records as f64);
    gauge!(FAILOVER_LAST, "kind" => kind).set(or_nan(last.map(|r| unix(r.started_at))));
    gauge!(FAILOVER_LAST_RTO, "kind" => kind).set(or_nan(
        last.and_then(|r| r.rto_dns_seconds.or(r.rto_writes_seconds)),
    ));
    gauge!(FAILOVER_LAST_RPO, "kind" => kind).set(or_nan(last.and_then(|r| r.rpo_seconds)));
}

pub fn standby(p: &StandbyPoint) {
    let r = || p.region.clone();
    gauge!(LAG_SECONDS, "region" => r()).set(or_nan(p.lag_seconds));
    gauge!(LAG_BYTES, "region" => r()).set(or_nan(p.lag_bytes.map(|b| b as f64)));
    gauge!(HEARTBEAT_AGE, "region" => r()).set(or_nan(p.heartbeat_age_seconds));
    gauge!(STREAMING, "region" => r()).set(if p.streaming { 1.0 } else { 0.0 });
}

/// A region that was a standby and is not any more (promoted, or not
/// reached): its lag is unknown now, and it does not stream.
pub fn standby_unknown(region: &str) {
    let r = || region.to_string();
    gauge!(LAG_SECONDS, "region" => r()).set(f64::NAN);
    gauge!(LAG_BYTES, "region" => r()).set(f64::NAN);
    gauge!(HEARTBEAT_AGE, "region" => r()).set(f64::NAN);
    gauge!(STREAMING, "region" => r()).set(0.0);
}

pub fn heartbeat_started(region: &str) {
    counter!(HEARTBEAT_WRITES, "region" => region.to_string()).absolute(0);
    counter!(HEARTBEAT_FAILURES, "region" => region.to_string()).absolute(0);
}

pub fn heartbeat_written(region: &str, at: chrono::DateTime<chrono::Utc>) {
    counter!(HEARTBEAT_WRITES, "region" => region.to_string()).increment(1);
    gauge!(HEARTBEAT_LAST, "region" => region.to_string()).set(unix(at));
}

pub fn heartbeat_failed(region: &str) {
    counter!(HEARTBEAT_FAILURES, "region" => region.to_string()).increment(1);
}

pub fn check_started(region: &str, check: &str, observer: &str) {
    let l = || {
        [
            ("region", region.to_string()),
            ("check", check.to_string()),
            ("observer", observer.to_string()),
        ]
    };
    counter!(CHECK_PROBES, &l()).absolute(0);
    counter!(CHECK_FAILURES, &l()).absolute(0);
}

pub fn check_probed(v: &lifeboat_region::health::Verdict) {
    let l = || {
        [
            ("region", v.region.clone()),
            ("check", v.check.clone()),
            ("observer", v.observer.clone()),
        ]
    };
    gauge!(CHECK_HEALTHY, &l()).set(if v.healthy { 1.0 } else { 0.0 });
    if let Some(o) = &v.last_outcome {
        counter!(CHECK_PROBES, &l()).increment(1);
        if !o.is_success() {
            counter!(CHECK_FAILURES, &l()).increment(1);
        }
        gauge!(CHECK_LAST_PROBE, &l()).set(unix(v.observed_at));
    }
}

pub fn region_healthy(region: &str, observer: &str, healthy: bool) {
    gauge!(REGION_HEALTHY, "region" => region.to_string(), "observer" => observer.to_string())
        .set(if healthy { 1.0 } else { 0.0 });
}

pub fn traffic_started() {
    counter!(TRAFFIC_UPDATES).absolute(0);
    counter!(TRAFFIC_FAILURES).absolute(0);
}

pub fn traffic_answer(region: &str, answered: bool) {
    gauge!(TRAFFIC_ANSWER, "region" => region.to_string()).set(if answered { 1.0 } else { 0.0 });
}

pub fn traffic_updated() {
    counter!(TRAFFIC_UPDATES).increment(1);
}

pub fn traffic_failed() {
    counter!(TRAFFIC_FAILURES).increment(1);
}

// The copies into the regions' repositories (`copy.rs`): registered when a
// region has a `repository:`, whether or not this daemon has a region; only
// the daemon holding the lease copies, so a standby's series stay at zero
// (or at what it did while it was active).
pub const COPY_LAST_SUCCESS: &str = "lifeboat_copy_last_success_timestamp_seconds";
pub const COPY_NEWEST: &str = "lifeboat_copy_newest_snapshot_timestamp_seconds";
pub const COPY_FAILURES: &str = "lifeboat_copy_failures_total";
pub const COPY_SNAPSHOTS: &str = "lifeboat_copy_snapshots_total";
pub const COPY_BLOBS: &str = "lifeboat_copy_blobs_sent_total";
pub const COPY_BYTES_SENT: &str = "lifeboat_copy_bytes_sent_total";
pub const COPY_BYTES_STORED: &str = "lifeboat_copy_bytes_stored_total";
pub const COPY_RUNNING: &str = "lifeboat_copy_running";

pub fn describe_copies() {
    describe_gauge!(
        COPY_LAST_SUCCESS,
        Unit::Seconds,
        "End of this daemon's last successful copy into the region's repository (Unix seconds)"
    );
    describe_gauge!(
        COPY_NEWEST,
        Unit::Seconds,
        "Original time of the newest snapshot the region's repository holds after this daemon's last successful copy (Unix seconds): the recovery point of a restore from the copy"
    );
    describe_counter!(
        COPY_FAILURES,
        "Copies into the region's repository that failed (retried at the next slot)"
    );
    describe_counter!(
        COPY_SNAPSHOTS,
        "Snapshots copied into the region's repository (not those it held already)"
    );
    describe_counter!(
        COPY_BLOBS,
        "Blobs sent to the region's repository by copies"
    );
    describe_counter!(
        COPY_BYTES_SENT,
        Unit::Bytes,
        "Plaintext bytes of the blobs sent to the region's repository by copies"
    );
    describe_counter!(
        COPY_BYTES_STORED,
        Unit::Bytes,
        "Bytes stored in the region's repository by copies (packs)"
    );
    describe_gauge!(
        COPY_RUNNING,
        "1 while a copy into the region's repository runs (or waits for backups)"
    );
}

/// What one successful copy added.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyCounts {
    pub snapshots: u64,
    pub blobs: u64,
    pub bytes_sent: u64,
    pub bytes_stored: u64,
}

/// The copy families of `region` that exist from start.
pub fn copy_started(region: &str) {
    for c in [
        COPY_FAILURES,
        COPY_SNAPSHOTS,
        COPY_BLOBS,
        COPY_BYTES_SENT,
        COPY_BYTES_STORED,
    ] {
        counter!(c, "region" => region.to_string()).absolute(0);
    }
    copy_running(region, false);
}

pub fn copy_running(region: &str, on: bool) {
    gauge!(COPY_RUNNING, "region" => region.to_string()).set(if on { 1.0 } else { 0.0 });
}

pub fn copy_succeeded(
    region: &str,
    c: &CopyCounts,
    at: chrono::DateTime<chrono::Utc>,
    newest: Option<chrono::DateTime<chrono::Utc>>,
) {
    let r = || region.to_string();
    counter!(COPY_SNAPSHOTS, "region" => r()).increment(c.snapshots);
    counter!(COPY_BLOBS, "region" => r()).increment(c.blobs);
    counter!(COPY_BYTES_SENT, "region" => r()).increment(c.bytes_sent);
    counter!(COPY_BYTES_STORED, "region" => r()).increment(c.bytes_stored);
    gauge!(COPY_LAST_SUCCESS, "region" => r()).set(unix(at));
    if let Some(t) = newest {
        gauge!(COPY_NEWEST, "region" => r()).set(unix(t));
    }
}

pub fn copy_failed(region: &str) {
    counter!(COPY_FAILURES, "region" => region.to_string()).increment(1);
}

// The agent (`agent.rs`): registered when `failover:` is configured and this
// daemon has a region.
pub const AUTHORITY_EPOCH: &str = "lifeboat_authority_epoch";
pub const AUTHORITY_REACHABLE: &str = "lifeboat_authority_reachable";
pub const FENCED: &str = "lifeboat_fenced";
pub const LEASE_RENEWALS: &str = "lifeboat_region_lease_renewals_total";
pub const LEASE_RENEWAL_FAILURES: &str = "lifeboat_region_lease_renewal_failures_total";
pub const FENCE_DEADLINE: &str = "lifeboat_fence_deadline_seconds";
pub const AUTO_REJOINS: &str = "lifeboat_region_auto_rejoins_total";
pub const FAILSAFE: &str = "lifeboat_failsafe_active";
pub const WRITERS_HELD_DOWN: &str = "lifeboat_region_writers_held_down";

pub fn describe_agent() {
    describe_gauge!(
        AUTHORITY_EPOCH,
        "The epoch of the authority record in etcd as this daemon last read it (NaN before the first read)"
    );
    describe_gauge!(
        AUTHORITY_REACHABLE,
        "1 when this daemon's last call to etcd (the authority's store) succeeded, else 0: without etcd nothing is promoted anywhere"
    );
    describe_gauge!(
        FENCED,
        "1 when this daemon fenced its region's PostgreSQL (its lease could not be renewed, the authority names another region, or it shut down beside the primary); it stays 1 until the daemon restarts or its auto_rejoin makes the server a standby"
    );
    describe_counter!(
        AUTO_REJOINS,
        "Rejoins this daemon ran on its own (failover.auto_rejoin), by result (ok, failed, abandoned, capacity_failed: a standby now, its region's writers not back yet)"
    );
    describe_gauge!(
        WRITERS_HELD_DOWN,
        "This region's writer Deployments (regions.NAME.deployments) that still carry lifeboat.io/original-replicas while its server is a standby, as failover.auto_rejoin last read them: held down by a fence, not brought back by a rejoin's capacity step yet (NaN before the first read, without auto_rejoin, and while the authority names this region)"
    );
    describe_counter!(
        LEASE_RENEWALS,
        "Successful renewals (keep-alives) of this daemon's region lease in etcd"
    );
    describe_counter!(
        LEASE_RENEWAL_FAILURES,
        "Renewals of this daemon's region lease that failed or were cut off at the fence deadline"
    );
    describe_gauge!(
        FAILSAFE,
        "1 while this region's primary serves on the failsafe (failover.etcd_lost: keep_if_peers_agree): etcd does not answer its agent and every other daemon vouched for it at the last renewal"
    );
    describe_gauge!(
        FENCE_DEADLINE,
        Unit::Seconds,
        "Time left until this daemon fences its primary unless the lease is renewed (NaN while it guards no primary)"
    );
}

pub fn agent_started(region: &str) {
    let r = || region.to_string();
    counter!(LEASE_RENEWALS, "region" => r()).absolute(0);
    counter!(LEASE_RENEWAL_FAILURES, "region" => r()).absolute(0);
    gauge!(FENCED, "region" => r()).set(0.0);
    gauge!(FAILSAFE, "region" => r()).set(0.0);
    writers_held_down(region, None);
    for result in ["ok", "failed", "abandoned", "capacity_failed"] {
        counter!(AUTO_REJOINS, "region" => r(), "result" => result).absolute(0);
    }
    gauge!(AUTHORITY_EPOCH).set(f64::NAN);
    gauge!(AUTHORITY_REACHABLE).set(0.0);
    fence_deadline(region, None);
}

pub fn failsafe(region: &str, active: bool) {
    gauge!(FAILSAFE, "region" => region.to_string()).set(if active { 1.0 } else { 0.0 });
}

pub fn authority_epoch(epoch: u64) {
    gauge!(AUTHORITY_EPOCH).set(epoch as f64);
}

pub fn authority_reachable(ok: bool) {
    gauge!(AUTHORITY_REACHABLE).set(if ok { 1.0 } else { 0.0 });
}

/// One finished `auto_rejoin`: `result` is `ok`, `failed`, `abandoned`
/// (its last steps cut short because the authority moved on) or
/// `capacity_failed` (a standby now; its region's writers not back yet).
pub fn auto_rejoin(region: &str, result: &'static str) {
    counter!(AUTO_REJOINS, "region" => region.to_string(), "result" => result).increment(1);
}

/// How many of this region's writer Deployments `auto_rejoin` last found
/// still held down (`None`: not read, NaN).
pub fn writers_held_down(region: &str, n: Option<usize>) {
    gauge!(WRITERS_HELD_DOWN, "region" => region.to_string()).set(n.map_or(f64::NAN, |n| n as f64));
}

pub fn fenced(region: &str, on: bool) {
    gauge!(FENCED, "region" => region.to_string()).set(if on { 1.0 } else { 0.0 });
}

pub fn lease_renewed(region: &str) {
    counter!(LEASE_RENEWALS, "region" => region.to_string()).increment(1);
}

pub fn lease_renewal_failed(region: &str) {
    counter!(LEASE_RENEWAL_FAILURES, "region" => region.to_string()).increment(1);
}

/// Seconds left to the fence deadline (negative once passed); `None`: no
/// deadline (NaN).
pub fn fence_deadline(region: &str, left: Option<f64>) {
    gauge!(FENCE_DEADLINE, "region" => region.to_string()).set(left.unwrap_or(f64::NAN));
}

// --- automatic failover (autofail.rs) ---------------------------------------

pub const FAILOVER_DECISION: &str = "lifeboat_failover_decision";
pub const FAILOVER_VOTES: &str = "lifeboat_failover_votes";
pub const FAILOVERS: &str = "lifeboat_failovers_total";

/// The decisions `lifeboat_failover_decision` has a series for.
pub const DECISIONS: [&str; 5] = [
    "healthy",
    "await_lease",
    "failover",
    "refused",
    "change_under_way",
];

pub fn describe_autofail() {
    describe_gauge!(
        FAILOVER_DECISION,
        "1 for this daemon's latest decision on the primary region (healthy, await_lease, failover, refused, change_under_way), 0 for the others; all 0 in the primary region, which does not judge itself"
    );
    describe_gauge!(
        FAILOVER_VOTES,
        "Votes of the vantage points outside the primary region as this daemon last counted them: vote=failed, healthy, or missing (no vote, stale, or about another epoch)"
    );
    describe_counter!(
        FAILOVERS,
        "Failover records in etcd (every change of primary: automatic, manual, switchover)"
    );
    failover_decision(None);
}

/// `Some(word)`: 1 for it, 0 for the rest; `None`: all 0.
pub fn failover_decision(word: Option<&str>) {
    for d in DECISIONS {
        gauge!(FAILOVER_DECISION, "decision" => d).set(if Some(d) == word { 1.0 } else { 0.0 });
    }
}

/// The votes of the vantage points `vps` (one each; none is `missing`).
pub fn failover_votes(votes: &[lifeboat_region::failover::confirm::Vote], vps: &[String]) {
    let (mut failed, mut healthy) = (0usize, 0usize);
    for vp in vps {
        match votes
            .iter()
            .find(|v| &v.from == vp)
            .and_then(|v| v.primary_failed)
        {
            Some(true) => failed += 1,
            Some(false) => healthy += 1,
            None => {}
        }
    }
    let missing = vps.len() - failed - healthy;
    for (k, n) in [
        ("failed", failed),
        ("healthy", healthy),
        ("missing", missing),
    ] {
        gauge!(FAILOVER_VOTES, "vote" => k).set(n as f64);
    }
}

/// The count of failover records in etcd (the newest change's RTO and RPO
/// per kind are `changes.rs`'s).
pub fn failover_records(count: u64) {
    counter!(FAILOVERS).absolute(count);
}
