//! The WAL streamer's metrics (docs/daemon.md, docs/physical.md
//! "Metrics"). Registered per streamed source when the daemon starts its
//! streamer, so a daemon without `wal.streaming` exports none of them.

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

pub const LAST_ARCHIVED_LSN: &str = "lifeboat_wal_last_archived_lsn";
pub const LAST_ARCHIVED_TIME: &str = "lifeboat_wal_last_archived_timestamp_seconds";
pub const ARCHIVED_BYTES: &str = "lifeboat_wal_archived_bytes_total";
pub const LAG_BYTES: &str = "lifeboat_wal_lag_bytes";
pub const STREAMING_UP: &str = "lifeboat_wal_streaming_up";
pub const RECEIVER_RESTARTS: &str = "lifeboat_wal_receiver_restarts_total";
pub const PUSH_FAILURES: &str = "lifeboat_wal_push_failures_total";
pub const RPO_OBJECTIVE: &str = "lifeboat_wal_rpo_objective_seconds";

pub fn describe() {
    describe_gauge!(
        LAST_ARCHIVED_LSN,
        "The WAL position up to which the repository holds the source's WAL (complete segments and the newest partial version), as a number"
    );
    describe_gauge!(
        LAST_ARCHIVED_TIME,
        Unit::Seconds,
        "The newest time at which everything the server had written was in the repository (Unix seconds): now minus this is the archive's recovery point"
    );
    describe_counter!(
        ARCHIVED_BYTES,
        Unit::Bytes,
        "WAL bytes stored in the repository by the streamer (complete files, and the growth of the segment being received)"
    );
    describe_gauge!(
        LAG_BYTES,
        Unit::Bytes,
        "The server's current WAL position minus the archived position (the partial version included)"
    );
    describe_gauge!(
        STREAMING_UP,
        "1 while pg_receivewal runs for the source on this daemon, else 0"
    );
    describe_counter!(
        RECEIVER_RESTARTS,
        "Times pg_receivewal ended and was started again"
    );
    describe_counter!(
        PUSH_FAILURES,
        "Failed stores of a WAL file or partial version (retried at the next tick)"
    );
    describe_gauge!(
        RPO_OBJECTIVE,
        Unit::Seconds,
        "The database-corruption RPO objective (else the source's tightest) the archive is held to"
    );
}

/// The families of a streamed source that exist from start.
pub fn started(source: &str, rpo_objective: Option<f64>) {
    let s = || source.to_string();
    counter!(ARCHIVED_BYTES, "source" => s()).absolute(0);
    counter!(RECEIVER_RESTARTS, "source" => s()).absolute(0);
    counter!(PUSH_FAILURES, "source" => s()).absolute(0);
    up(source, false);
    if let Some(r) = rpo_objective {
        gauge!(RPO_OBJECTIVE, "source" => s()).set(r);
    }
}

pub fn up(source: &str, on: bool) {
    gauge!(STREAMING_UP, "source" => source.to_string()).set(if on { 1.0 } else { 0.0 });
}

pub fn restarted(source: &str) {
    counter!(RECEIVER_RESTARTS, "source" => source.to_string()).increment(1);
}

pub fn push_failed(source: &str) {
    counter!(PUSH_FAILURES, "source" => source.to_string()).increment(1);
}

pub fn archived(source: &str, lsn: u64) {
    gauge!(LAST_ARCHIVED_LSN, "source" => source.to_string()).set(lsn as f64);
}

/// WAL bytes newly in the repository: a complete file's size less what its
/// partial versions already counted, or a partial version's growth.
pub fn stored_bytes(source: &str, bytes: u64) {
    counter!(ARCHIVED_BYTES, "source" => source.to_string()).increment(bytes);
}

pub fn archived_through(source: &str, t: chrono::DateTime<chrono::Utc>) {
    gauge!(LAST_ARCHIVED_TIME, "source" => source.to_string())
        .set(t.timestamp_micros() as f64 / 1e6);
}

pub fn lag(source: &str, bytes: Option<u64>) {
    gauge!(LAG_BYTES, "source" => source.to_string()).set(bytes.map_or(f64::NAN, |b| b as f64));
}
