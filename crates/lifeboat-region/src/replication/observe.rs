//! Observing a server: its role and identity as the server itself says them
//! (`pg_is_in_recovery()`, `pg_control_system()`), never as the config
//! declares them; on a primary its `pg_stat_replication` rows, on a standby its
//! receive/replay positions, last replayed transaction time and WAL receiver.
//!
//! The queries cast every `pg_lsn` to text and every interval to seconds, and
//! the rows are turned into the plain values below by small pure functions.
//! Reading `pg_control_system()` and the sender/receiver details needs a
//! superuser or a role granted `pg_monitor`.

use chrono::{DateTime, Utc};
use lifeboat_postgres::conn::{ConnConfig, ConnError, pg_message};
use serde::Serialize;
use tokio_postgres::Client;

use super::lsn::{self, Lsn};
use super::retry::Retry;

/// A PostgreSQL server to observe: a name for messages (the region) and how
/// to reach it (any database; the password comes with the `ConnConfig`).
#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    pub conn: ConnConfig,
}

/// `pg_control_system().system_identifier`: the same on a primary and every
/// physical copy of it (standby, base backup), different for every `initdb`.
/// Serialised as a string (it does not fit a JSON double).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SystemId(pub u64);

impl std::fmt::Display for SystemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for SystemId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Who a reachable server is. Two connections reach the same running server
/// exactly when both the system identifier and the postmaster's start time
/// (microseconds) are equal: a copy shares the first, never the second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub system_identifier: SystemId,
    pub postmaster_start: DateTime<Utc>,
    /// `inet_server_port()`; `None` over a Unix socket.
    pub port: Option<i32>,
    pub server_version_num: i64,
    /// The timeline the server writes (primary) or receives/replays (standby).
    pub timeline: Option<u32>,
}

impl Identity {
    /// Whether `self` and `other` were read from the same running server.
    pub fn same_server(&self, other: &Identity) -> bool {
        self.system_identifier == other.system_identifier
            && self.postmaster_start == other.postmaster_start
    }
}

/// The role a server says it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    /// `pg_is_in_recovery()` is false: it accepts writes.
    Primary,
    /// `pg_is_in_recovery()` is true.
    Standby,
    /// Not reached, or reached but not readable; the reason says which and why.
    Unreachable {
        reason: String,
        /// A server answered at that address but could not be identified
        /// (authentication failed, database missing, state not readable).
        answered: bool,
    },
}

/// One `pg_stat_replication` row (a WAL sender serving a standby or a base backup).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplicaRow {
    pub application_name: String,
    pub client_addr: Option<String>,
    /// `startup`, `catchup`, `streaming`, `backup` or `stopping`.
    pub state: String,
    pub sent_lsn: Option<Lsn>,
    pub write_lsn: Option<Lsn>,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    pub write_lag_seconds: Option<f64>,
    pub flush_lag_seconds: Option<f64>,
    /// PostgreSQL's own measure; NULL when the standby is caught up and idle.
    pub replay_lag_seconds: Option<f64>,
    pub sync_state: Option<String>,
    /// The replication slot the sender uses, when it uses one.
    pub slot_name: Option<String>,
}

impl ReplicaRow {
    /// Whether this sender serves the standby of region `standby`: it
    /// streams as the region's name (what `region replicate` sets as
    /// `application_name`) or through the region's slot
    /// ([`slot_name`](super::plan::slot_name)), which a standby whose
    /// manager names it otherwise (a Patroni standby leader streams as its
    /// member name) still uses.
    pub fn serves(&self, standby: &str) -> bool {
        self.application_name == standby
            || self.slot_name.as_deref() == Some(super::plan::slot_name(standby).as_str())
    }
}

/// What a primary says about its WAL and its standbys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrimaryView {
    /// `pg_current_wal_lsn()`.
    pub current_lsn: Lsn,
    pub replicas: Vec<ReplicaRow>,
}

/// `pg_stat_wal_receiver`: the standby's connection to its upstream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WalReceiver {
    /// `streaming`, `starting`, `waiting`, `restarting`, `stopping`, ...
    pub status: String,
    pub received_tli: Option<u32>,
    pub flushed_lsn: Option<Lsn>,
    pub latest_end_lsn: Option<Lsn>,
    pub last_msg_receipt: Option<DateTime<Utc>>,
    pub sender_host: Option<String>,
    pub sender_port: Option<i32>,
    pub slot_name: Option<String>,
}

/// What a standby says about its progress.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StandbyView {
    /// `pg_last_wal_receive_lsn()`: WAL received and flushed (NULL before streaming).
    pub receive_lsn: Option<Lsn>,
    /// `pg_last_wal_replay_lsn()`.
    pub replay_lsn: Option<Lsn>,
    /// `pg_last_xact_replay_timestamp()`: commit time (on the primary's clock)
    /// of the last transaction replayed.
    pub last_replay_at: Option<DateTime<Utc>>,
    pub replay_paused: bool,
    /// `None`: no WAL receiver process (not streaming at all).
    pub wal_receiver: Option<WalReceiver>,
}

/// One observation of one server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observed {
    pub server: String,
    pub role: Role,
    pub identity: Option<Identity>,
    /// The server's `now()` when read (lags are computed against it).
    pub at: Option<DateTime<Utc>>,
    pub primary: Option<PrimaryView>,
    pub standby: Option<StandbyView>,
}

impl Observed {
    fn unreachable(server: &str, reason: String, answered: bool) -> Self {
        Observed {
            server: server.to_string(),
            role: Role::Unreachable { reason, answered },
            identity: None,
            at: None,
            primary: None,
            standby: None,
        }
    }
}

/// Observes `server`. Never fails: a server that cannot be reached (after
/// `retry` for network errors) or read is `Role::Unreachable` with the reason.
pub async fn observe(server: &Server, retry: Retry) -> Observed {
    let client = match connect(&server.conn, retry).await {
        Ok(c) => c,
        Err(e) => {
            let answered = !matches!(e, ConnError::Unreachable { .. });
            return Observed::unreachable(&server.name, e.to_string(), answered);
        }
    };
    match observe_client(&server.name, &client).await {
        Ok(o) => o,
        Err(e) => Observed::unreachable(
            &server.name,
            format!(
                "connected to {} but could not read its state: {} (the role needs superuser or pg_monitor)",
                server.conn.display_url(),
                pg_message(&e)
            ),
            true,
        ),
    }
}

/// Connects, retrying network failures (not authentication or a missing database).
pub async fn connect(conn: &ConnConfig, retry: Retry) -> Result<Client, ConnError> {
    retry
        .run(
            || conn.connect(),
            |e| matches!(e, ConnError::Unreachable { .. } | ConnError::Other { .. }),
        )
        .await
}

/// The timeline in a WAL file name (`000000020000000A000000F3` → 2).
pub fn timeline_of_walfile(name: &str) -> Option<u32> {
    name.get(..8).and_then(|h| u32::from_str_radix(h, 16).ok())
}

/// Observes the server behind an open connection (errors are SQL errors).
pub async fn observe_client(
    name: &str,
    client: &Client,
) -> Result<Observed, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), \
                    (SELECT system_identifier::text FROM pg_control_system()), \
                    pg_postmaster_start_time(), inet_server_port(), \
                    current_setting('server_version_num')::int8, now()",
            &[],
        )
        .await?;
    let in_recovery: bool = row.get(0);
    let sysid: String = row.get(1);
    let mut identity = Identity {
        system_identifier: SystemId(sysid.parse().unwrap_or(0)),
        postmaster_start: row.get(2),
        port: row.get(3),
        server_version_num: row.get(4),
        timeline: None,
    };
    let at: DateTime<Utc> = row.get(5);
    let mut out = Observed {
        server: name.to_string(),
        role: if in_recovery {
            Role::Standby
        } else {
            Role::Primary
        },
        identity: None,
        at: Some(at),
        primary: None,
        standby: None,
    };
    if in_recovery {
        let s = standby_view(client).await?;
        identity.timeline = s.wal_receiver.as_ref().and_then(|w| w.received_tli);
        if identity.timeline.is_none() {
            let r = client
                .query_one("SELECT timeline_id::int8 FROM pg_control_checkpoint()", &[])
                .await?;
            identity.timeline = u32::try_from(r.get::<_, i64>(0)).ok();
        }
        out.standby = Some(s);
    } else {
        let r = client
            .query_one(
                "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())",
                &[],
            )
            .await?;
        let current: String = r.get(0);
        identity.timeline = timeline_of_walfile(&r.get::<_, String>(1));
        out.primary = Some(PrimaryView {
            current_lsn: Lsn::parse(&current).unwrap_or(Lsn(0)),
            replicas: replica_rows(client).await?,
        });
    }
    out.identity = Some(identity);
    Ok(out)
}

/// The primary's `pg_stat_replication`, ordered by application name.
pub async fn replica_rows(client: &Client) -> Result<Vec<ReplicaRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.application_name, host(r.client_addr), r.state, \
                    r.sent_lsn::text, r.write_lsn::text, r.flush_lsn::text, r.replay_lsn::text, \
                    extract(epoch FROM r.write_lag)::float8, \
                    extract(epoch FROM r.flush_lag)::float8, \
                    extract(epoch FROM r.replay_lag)::float8, \
                    r.sync_state, \
                    (SELECT s.slot_name::text FROM pg_replication_slots s WHERE s.active_pid = r.pid) \
             FROM pg_stat_replication r ORDER BY r.application_name, r.pid",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ReplicaRow {
            application_name: r.get(0),
            client_addr: r.get(1),
            state: r.get::<_, Option<String>>(2).unwrap_or_default(),
            sent_lsn: lsn::opt(r.get(3)),
            write_lsn: lsn::opt(r.get(4)),
            flush_lsn: lsn::opt(r.get(5)),
            replay_lsn: lsn::opt(r.get(6)),
            write_lag_seconds: r.get(7),
            flush_lag_seconds: r.get(8),
            replay_lag_seconds: r.get(9),
            sync_state: r.get(10),
            slot_name: r.get(11),
        })
        .collect())
}

/// A standby's positions and WAL receiver (PostgreSQL 13 or newer).
pub async fn standby_view(client: &Client) -> Result<StandbyView, tokio_postgres::Error> {
    let r = client
        .query_one(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
                    pg_last_xact_replay_timestamp(), pg_is_wal_replay_paused()",
            &[],
        )
        .await?;
    let w = client
        .query_opt(
            "SELECT status, received_tli::int8, flushed_lsn::text, latest_end_lsn::text, \
                    last_msg_receipt_time, sender_host, sender_port, slot_name::text \
             FROM pg_stat_wal_receiver",
            &[],
        )
        .await?;
    Ok(StandbyView {
        receive_lsn: lsn::opt(r.get(0)),
        replay_lsn: lsn::opt(r.get(1)),
        last_replay_at: r.get(2),
        replay_paused: r.get(3),
        wal_receiver: w.map(|w| WalReceiver {
            status: w.get(0),
            received_tli: w
                .get::<_, Option<i64>>(1)
                .and_then(|t| u32::try_from(t).ok()),
            flushed_lsn: lsn::opt(w.get(2)),
            latest_end_lsn: lsn::opt(w.get(3)),
            last_msg_receipt: w.get(4),
            sender_host: w.get(5),
            sender_port: w.get(6),
            slot_name: w.get(7),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_from_walfile_names() {
        let cases = [
            ("000000010000000000000003", Some(1)),
            ("000000020000000A000000F3", Some(2)),
            ("0000001F0000000000000001", Some(31)),
            ("0000000", None),
            ("zzzzzzzz0000000000000001", None),
        ];
        for (name, want) in cases {
            assert_eq!(timeline_of_walfile(name), want, "{name}");
        }
    }

    #[test]
    fn same_server_needs_identifier_and_start_time() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-06T07:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = |sys: u64, start: DateTime<Utc>, port: i32| Identity {
            system_identifier: SystemId(sys),
            postmaster_start: start,
            port: Some(port),
            server_version_num: 150000,
            timeline: Some(1),
        };
        let a = id(7, t0, 5432);
        // another port spelling of the same server (proxy, socket): same server
        assert!(a.same_server(&id(7, t0, 6543)));
        // a physical copy started at another moment: not the same server
        assert!(!a.same_server(&id(7, t0 + chrono::Duration::microseconds(1), 5432)));
        // another cluster that happened to start at the same moment
        assert!(!a.same_server(&id(8, t0, 5432)));
    }
}
