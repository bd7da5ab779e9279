//! Promoting a standby under an epoch: `SELECT pg_promote(true, secs)`, wait
//! until `pg_is_in_recovery()` is false, then commit the epoch's row in
//! `lifeboat.authority` ([`super::authority_row`]) — the first write the new
//! primary commits, so "writable" is proven by a real commit.
//!
//! Idempotent, for a failover resumed by the next holder of the election:
//! a server already promoted that holds this epoch's row (same region) is
//! `Ok` with `already_primary`; one already promoted without the row (the
//! previous promoter died between the two steps) gets the row and is
//! `already_primary` too. A server (standby or not) that already records a
//! *higher* epoch is refused before anything is done: the promoter is stale.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_postgres::conn::{ConnConfig, ConnError, pg_message};
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::authority_row::{self, AuthorityError, AuthorityRow};
use crate::heartbeat::{self, HeartbeatError};
use crate::replication::lsn::Lsn;
use crate::replication::observe::{self, timeline_of_walfile};
use crate::replication::retry::Retry;

/// A promoted server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Promoted {
    /// The timeline it now writes.
    pub timeline: Option<u32>,
    /// `pg_current_wal_lsn()` right after the promotion (recorded in the row).
    pub lsn: Lsn,
    /// When the epoch's row committed (the server's clock).
    pub writable_at: DateTime<Utc>,
    /// It was already out of recovery when asked (a resumed promotion).
    pub already_primary: bool,
    pub row: AuthorityRow,
    /// The `synchronous_standby_names` it had and that the promotion
    /// cleared (see [`clear_synchronous_standbys`]); `None`: it had none.
    pub synchronous_cleared: Option<String>,
}

/// Errors of a promotion.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("{what} on {url}: {message}")]
    Sql {
        what: &'static str,
        url: String,
        message: String,
    },
    #[error(
        "{url} already records epoch {found} (region {region}), higher than this promotion's \
         {ours}: this promoter is stale; read the authority record again"
    )]
    HigherEpoch {
        url: String,
        ours: u64,
        found: u64,
        region: String,
    },
    #[error(
        "{url} was still in recovery {waited:?} after it was asked to promote (pg_promote(), or \
         its manager); look at its log (a promotion can wait for the end of WAL replay) and run \
         the promotion again"
    )]
    NotPromoted { url: String, waited: Duration },
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

impl PromoteError {
    /// Whether running the promotion again may help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PromoteError::Conn(ConnError::Unreachable { .. } | ConnError::Other { .. })
                | PromoteError::NotPromoted { .. }
        )
    }
}

fn sql(
    what: &'static str,
    conn: &ConnConfig,
) -> impl FnOnce(tokio_postgres::Error) -> PromoteError {
    let url = conn.display_url();
    move |e| PromoteError::Sql {
        what,
        url,
        message: pg_message(&e),
    }
}

async fn in_recovery(client: &Client, conn: &ConnConfig) -> Result<bool, PromoteError> {
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get(0))
        .map_err(sql("reading pg_is_in_recovery()", conn))
}

/// A connection to `server`'s `lifeboat` database, `None` when it has none
/// (a server that never carried a heartbeat or an epoch). One connection
/// does the whole promotion: each new one costs several round trips to the
/// region (TCP, TLS, SCRAM), which is RTO when the promoter is far away.
pub async fn connect_lifeboat(server: &ConnConfig) -> Result<Option<Client>, PromoteError> {
    match observe::connect(&heartbeat::lifeboat_db(server), Retry::default()).await {
        Ok(c) => Ok(Some(c)),
        Err(ConnError::DatabaseMissing { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Promotes the standby behind `server` (a superuser connection, any
/// database) for `region` under `epoch`; see the module docs.
pub async fn promote(
    server: &ConnConfig,
    region: &str,
    epoch: u64,
    timeout: Duration,
) -> Result<Promoted, PromoteError> {
    let lifeboat = connect_lifeboat(server).await?;
    promote_through(server, lifeboat, region, epoch, timeout).await
}

/// [`promote`] through `lifeboat`, the caller's connection to the server's
/// `lifeboat` database ([`connect_lifeboat`]): every statement goes through
/// it (`pg_promote()` and `ALTER SYSTEM` work from any database), so the
/// promotion opens no connection of its own; without one it connects to
/// `server`, and creates the `lifeboat` database once the server is
/// writable.
pub async fn promote_through(
    server: &ConnConfig,
    lifeboat: Option<Client>,
    region: &str,
    epoch: u64,
    timeout: Duration,
) -> Result<Promoted, PromoteError> {
    if let Some(lb) = &lifeboat
        && let Some(row) = authority_row::read_epoch(lb).await?
        && row.epoch > epoch
    {
        return Err(PromoteError::HigherEpoch {
            url: server.display_url(),
            ours: epoch,
            found: row.epoch,
            region: row.region,
        });
    }
    let mut lifeboat = lifeboat;
    let own: Client;
    let client: &Client = match &lifeboat {
        Some(lb) => lb,
        None => {
            own = observe::connect(server, Retry::default()).await?;
            &own
        }
    };
    let already_primary = !in_recovery(client, server).await?;
    if !already_primary {
        let secs = i32::try_from(timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        match client
            .query_one("SELECT pg_promote(true, $1)", &[&secs])
            .await
        {
            Ok(_) => {}
            // promoted meanwhile (by us before, or by a manager): carry on
            Err(e) if e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {}
            Err(e) => return Err(sql("pg_promote()", server)(e)),
        }
        let started = Instant::now();
        while in_recovery(client, server).await? {
            if started.elapsed() >= timeout {
                return Err(PromoteError::NotPromoted {
                    url: server.display_url(),
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let synchronous_cleared = clear_synchronous_standbys(client, server).await?;
    let mut promoted = write_row(server, lifeboat.take(), region, epoch).await?;
    promoted.already_primary = already_primary;
    promoted.synchronous_cleared = synchronous_cleared;
    Ok(promoted)
}

/// For a server that its manager promotes (Patroni, CloudNativePG): waits,
/// bounded by `timeout`, until it answers out of recovery, then commits
/// the epoch's row as [`promote`] does. The server is never promoted here
/// and its `synchronous_standby_names` is left alone: both are the
/// manager's (Patroni's `synchronous_mode`, CloudNativePG's
/// `postgresql.synchronous`). A server that already records a higher epoch
/// is refused first, like [`promote`]. `already_primary` says it was out
/// of recovery at the first look.
pub async fn record_epoch(
    server: &ConnConfig,
    region: &str,
    epoch: u64,
    timeout: Duration,
) -> Result<Promoted, PromoteError> {
    if let Some(lb) = connect_lifeboat(server).await?
        && let Some(row) = authority_row::read_epoch(&lb).await?
        && row.epoch > epoch
    {
        return Err(PromoteError::HigherEpoch {
            url: server.display_url(),
            ours: epoch,
            found: row.epoch,
            region: row.region,
        });
    }
    let started = Instant::now();
    let mut first = true;
    let already_primary = loop {
        // A manager restarts or reconnects its server while promoting it: a
        // refused connection is waited for like a server still in recovery.
        let brief = Retry {
            attempts: 1,
            ..Retry::default()
        };
        let recovering = match observe::connect(server, brief).await {
            Ok(client) => in_recovery(&client, server).await.unwrap_or(true),
            Err(_) => true,
        };
        if !recovering {
            break first;
        }
        first = false;
        if started.elapsed() >= timeout {
            return Err(PromoteError::NotPromoted {
                url: server.display_url(),
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut promoted = write_row(server, None, region, epoch).await?;
    promoted.already_primary = already_primary;
    Ok(promoted)
}

/// The WAL position and the epoch's row on a server out of recovery,
/// through `lifeboat` (a connection to its `lifeboat` database) when the
/// caller has one, else one opened here (creating the database).
async fn write_row(
    server: &ConnConfig,
    lifeboat: Option<Client>,
    region: &str,
    epoch: u64,
) -> Result<Promoted, PromoteError> {
    let mut lb = match lifeboat {
        Some(lb) => lb,
        None => heartbeat::ensure(server).await.map_err(|e| match e {
            HeartbeatError::Conn(c) => PromoteError::Conn(c),
            other => PromoteError::Sql {
                what: "opening the lifeboat database",
                url: server.display_url(),
                message: other.to_string(),
            },
        })?,
    };
    let r = lb
        .query_one(
            "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())",
            &[],
        )
        .await
        .map_err(sql("reading the WAL position", server))?;
    let lsn = Lsn::parse(&r.get::<_, String>(0)).unwrap_or(Lsn(0));
    let timeline = timeline_of_walfile(&r.get::<_, String>(1));
    // A reload clearing synchronous standbys takes effect asynchronously,
    // and a manager's synchronous standbys may not follow yet: the epoch's
    // row must not wait for one meanwhile.
    lb.batch_execute("SET synchronous_commit = local")
        .await
        .map_err(sql("SET synchronous_commit", server))?;
    let row = authority_row::write_epoch(&mut lb, epoch, region, Some(lsn))
        .await
        .map_err(|e| e.on(server))?;
    Ok(Promoted {
        timeline,
        lsn: row.lsn.unwrap_or(lsn),
        writable_at: row.promoted_at,
        already_primary: false,
        row,
        synchronous_cleared: None,
    })
}

/// A promoted server must take writes at once, but the standbys its
/// `synchronous_standby_names` names (set for the old topology, or copied
/// from the old primary's configuration by the base backup) are gone or do
/// not follow it yet: every commit would wait for them, for ever. So the
/// setting is cleared (`ALTER SYSTEM`, which overrides `postgresql.conf`,
/// and a reload); the old value is returned for the report. Naming the
/// standbys again once they follow is `replication.synchronous`'s
/// (docs/failover.md, "Synchronous replication").
pub async fn clear_synchronous_standbys(
    client: &Client,
    server: &ConnConfig,
) -> Result<Option<String>, PromoteError> {
    let names: String = client
        .query_one("SELECT current_setting('synchronous_standby_names')", &[])
        .await
        .map_err(sql("reading synchronous_standby_names", server))?
        .get(0);
    if names.trim().is_empty() {
        return Ok(None);
    }
    client
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        .await
        .map_err(sql("clearing synchronous_standby_names", server))?;
    client
        .query_one("SELECT pg_reload_conf()", &[])
        .await
        .map_err(sql("reloading the configuration", server))?;
    Ok(Some(names))
}
