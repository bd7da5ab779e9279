//! The heartbeat: one row per writer region in Lifeboat's own database
//! `lifeboat` (never the protected database, so no dump, fact or restore of
//! the application's database sees it), upserted on the primary every
//! interval (1 s by default):
//!
//! ```sql
//! lifeboat.heartbeat(region text PRIMARY KEY, seq bigint NOT NULL, at timestamptz NOT NULL)
//! ```
//!
//! `at` is the primary's `clock_timestamp()` at the write. A standby replays
//! the row like any other; the newest replayed row's age (the standby's
//! `now()` minus `at`) is the data a failover would lose now (the RPO now),
//! with two caveats said in `docs/regions/replication.md`: its resolution is
//! one interval (the age of a perfectly current standby ranges over
//! `[0, interval)`), and it compares two servers' clocks (keep them in NTP).
//! Unlike `pg_last_xact_replay_timestamp()` it keeps moving on an idle
//! primary, so "old but nothing to replay" cannot be mistaken for lag.
//!
//! The reader only reads (a standby is read-only); the writer fails with
//! [`HeartbeatError::NotPrimary`] on a server in recovery.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_postgres::conn::{ConnConfig, ConnError, pg_message};
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// Lifeboat's own database on every server.
pub const DATABASE: &str = "lifeboat";

/// The default interval between two heartbeats.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Errors of the heartbeat.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error(
        "the server at {url} is in recovery (a standby): heartbeats are written on the primary only"
    )]
    NotPrimary { url: String },
    #[error("{what} on {url}: {message}")]
    Sql {
        what: &'static str,
        url: String,
        message: String,
    },
}

impl HeartbeatError {
    /// Whether retrying may help (the server was not reached).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HeartbeatError::Conn(ConnError::Unreachable { .. } | ConnError::Other { .. })
        )
    }
}

/// One heartbeat row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Beat {
    pub region: String,
    pub seq: i64,
    pub at: DateTime<Utc>,
}

/// The newest heartbeat a server has (replayed, on a standby), and its age.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Seen {
    pub beat: Beat,
    /// The reading server's `now()`.
    pub read_at: DateTime<Utc>,
    /// `read_at - beat.at` in seconds, never negative ([`age_seconds`]).
    pub age_seconds: f64,
}

/// `now - at` in seconds; a negative difference (clock skew, or a beat
/// written after the reader's transaction began) counts as 0.
pub fn age_seconds(at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    ((now - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0)
}

/// The heartbeat writer of one region.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    region: String,
}

fn sql_err(
    what: &'static str,
    conn: &ConnConfig,
) -> impl FnOnce(tokio_postgres::Error) -> HeartbeatError {
    let url = conn.display_url();
    move |e| {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            HeartbeatError::NotPrimary { url }
        } else {
            HeartbeatError::Sql {
                what,
                url,
                message: pg_message(&e),
            }
        }
    }
}

/// The connection settings of `server`'s `lifeboat` database.
pub fn lifeboat_db(server: &ConnConfig) -> ConnConfig {
    server.with_dbname(DATABASE)
}

/// Creates the `lifeboat` database and the heartbeat table on the primary
/// behind `server` (any database of it) when missing, and returns a
/// connection to `lifeboat`. Idempotent (safe when two daemons race), so
/// callers retry it as a whole ([`HeartbeatError::is_transient`]); the
/// writer loop does by reconnecting on its next tick.
pub async fn ensure(server: &ConnConfig) -> Result<Client, HeartbeatError> {
    let db = lifeboat_db(server);
    let client = match db.connect().await {
        Ok(c) => c,
        Err(ConnError::DatabaseMissing { .. }) => {
            let admin = server.connect().await?;
            match admin
                .batch_execute(&format!("CREATE DATABASE {DATABASE} TEMPLATE template0"))
                .await
            {
                Ok(()) => {}
                // Another daemon created it first; a race shows as a unique
                // violation on pg_database's name index rather than 42P04.
                Err(e)
                    if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                        || e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
                Err(e) => return Err(sql_err("creating the lifeboat database", server)(e)),
            }
            db.connect().await?
        }
        Err(e) => return Err(e.into()),
    };
    let ddl = "CREATE SCHEMA IF NOT EXISTS lifeboat; \
               CREATE TABLE IF NOT EXISTS lifeboat.heartbeat ( \
                   region text PRIMARY KEY, seq bigint NOT NULL, at timestamptz NOT NULL)";
    // Two concurrent CREATE ... IF NOT EXISTS can still collide on the
    // catalogs' unique indexes; the second attempt then sees the objects.
    let mut result = client.batch_execute(ddl).await;
    if matches!(&result, Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION)) {
        result = client.batch_execute(ddl).await;
    }
    result.map_err(sql_err("creating the heartbeat table", &db))?;
    Ok(client)
}

impl Heartbeat {
    pub fn new(region: impl Into<String>) -> Self {
        Heartbeat {
            region: region.into(),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Writes one heartbeat through `client` (connected to `lifeboat` on the
    /// primary, see [`ensure`]): `seq` one more than the last, `at` now.
    pub async fn beat(&self, client: &Client) -> Result<Beat, tokio_postgres::Error> {
        let row = client
            .query_one(
                "INSERT INTO lifeboat.heartbeat AS h (region, seq, at) \
                 VALUES ($1, 1, clock_timestamp()) \
                 ON CONFLICT (region) DO UPDATE SET seq = h.seq + 1, at = clock_timestamp() \
                 RETURNING seq, at",
                &[&self.region],
            )
            .await?;
        Ok(Beat {
            region: self.region.clone(),
            seq: row.get(0),
            at: row.get(1),
        })
    }

    /// Writes heartbeats to the primary behind `server` every `interval` until
    /// `stop` completes; `on_beat` sees every outcome. A failure drops the
    /// connection and the next tick reconnects (creating the database and
    /// table if needed). Returns the number of heartbeats written.
    pub async fn run<F: Future<Output = ()>>(
        &self,
        server: &ConnConfig,
        interval: Duration,
        stop: F,
        mut on_beat: impl FnMut(Result<&Beat, &HeartbeatError>),
    ) -> u64 {
        let db = lifeboat_db(server);
        let mut client: Option<Client> = None;
        let mut written = 0u64;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return written,
                _ = ticks.tick() => {}
            }
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = match ensure(server).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        on_beat(Err(&e));
                        None
                    }
                };
            }
            let Some(c) = &client else { continue };
            match self.beat(c).await {
                Ok(b) => {
                    written += 1;
                    on_beat(Ok(&b));
                }
                Err(e) => {
                    on_beat(Err(&sql_err("writing the heartbeat", &db)(e)));
                    client = None;
                }
            }
        }
    }
}

/// The newest heartbeat on the server behind `client` (connected to its
/// `lifeboat` database; a standby is fine: this only reads), of `region`
/// or of any region. `None` when none was written (or replayed) yet.
pub async fn newest(
    client: &Client,
    region: Option<&str>,
) -> Result<Option<Seen>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT region, seq, at, now() FROM lifeboat.heartbeat \
             WHERE $1::text IS NULL OR region = $1 ORDER BY at DESC LIMIT 1",
            &[&region],
        )
        .await;
    let row = match row {
        Ok(r) => r,
        // The table is created on first use; before that there is nothing to see.
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(row.map(|r| {
        let beat = Beat {
            region: r.get(0),
            seq: r.get(1),
            at: r.get(2),
        };
        let read_at: DateTime<Utc> = r.get(3);
        Seen {
            age_seconds: age_seconds(beat.at, read_at),
            beat,
            read_at,
        }
    }))
}

/// [`newest`] on the server `server` (connecting to its `lifeboat`
/// database); `None` also when that database does not exist (yet).
pub async fn read(
    server: &ConnConfig,
    region: Option<&str>,
) -> Result<Option<Seen>, HeartbeatError> {
    let db = lifeboat_db(server);
    let client = match db.connect().await {
        Ok(c) => c,
        Err(ConnError::DatabaseMissing { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    newest(&client, region)
        .await
        .map_err(sql_err("reading the heartbeat", &db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_table() {
        let t = |s: i64, us: u32| DateTime::from_timestamp(1_800_000_000 + s, us * 1000).unwrap();
        let cases = [
            (t(0, 0), t(0, 0), 0.0),
            (t(0, 0), t(2, 500_000), 2.5),
            (t(10, 0), t(0, 0), 0.0), // reader's clock behind: 0, not negative
            (t(0, 999_999), t(1, 0), 0.000001),
        ];
        for (at, now, want) in cases {
            assert!((age_seconds(at, now) - want).abs() < 1e-9, "{at} {now}");
        }
    }
}
