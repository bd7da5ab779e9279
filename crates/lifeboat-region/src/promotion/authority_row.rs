//! `lifeboat.authority` in the `lifeboat` database: one row per epoch that
//! promoted a server, written on the promoted server (the first write it
//! commits) and replicated to its standbys:
//!
//! ```sql
//! lifeboat.authority (epoch bigint PRIMARY KEY, region text NOT NULL,
//!                     promoted_at timestamptz NOT NULL, lsn pg_lsn)
//! ```
//!
//! [`write_epoch`] refuses an epoch not greater than the highest stored, in a
//! transaction that first takes an EXCLUSIVE lock on the table (concurrent
//! writers queue; readers do not wait): a promoter holding a stale epoch is
//! refused by the data as well as by etcd's compare-and-swap. Writing the
//! same epoch for the same region again is accepted and returns the stored
//! row (a resumed promotion).

use chrono::{DateTime, Utc};
use lifeboat_postgres::conn::{ConnConfig, pg_message};
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::replication::lsn::{self, Lsn};

/// One row of `lifeboat.authority`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityRow {
    pub epoch: u64,
    pub region: String,
    pub promoted_at: DateTime<Utc>,
    pub lsn: Option<Lsn>,
}

/// Errors of the authority row.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error(
        "epoch {given} for {region} refused: the server already records epoch {highest} \
         (region {highest_region}); this promoter is stale, read the authority record again"
    )]
    Stale {
        given: u64,
        region: String,
        highest: u64,
        highest_region: String,
    },
    #[error("epoch {0} does not fit PostgreSQL's bigint")]
    TooLarge(u64),
    #[error(
        "the server at {url} is in recovery (a standby): the epoch is written on the promoted \
         server only"
    )]
    NotPrimary { url: String },
    #[error("{what}: {message}")]
    Sql { what: &'static str, message: String },
}

impl AuthorityError {
    fn sql(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> AuthorityError {
        move |e| AuthorityError::Sql {
            what,
            message: pg_message(&e),
        }
    }

    pub(crate) fn on(self, conn: &ConnConfig) -> Self {
        match self {
            AuthorityError::NotPrimary { .. } => AuthorityError::NotPrimary {
                url: conn.display_url(),
            },
            other => other,
        }
    }
}

const DDL: &str = "CREATE SCHEMA IF NOT EXISTS lifeboat; \
     CREATE TABLE IF NOT EXISTS lifeboat.authority ( \
         epoch bigint PRIMARY KEY, region text NOT NULL, \
         promoted_at timestamptz NOT NULL, lsn pg_lsn)";

/// Creates `lifeboat.authority` when missing (`client` on the `lifeboat`
/// database of a primary).
pub async fn ensure_table(client: &Client) -> Result<(), AuthorityError> {
    let mut r = client.batch_execute(DDL).await;
    // two concurrent CREATE ... IF NOT EXISTS can collide on the catalogs
    if matches!(&r, Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION)) {
        r = client.batch_execute(DDL).await;
    }
    r.map_err(|e| {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            AuthorityError::NotPrimary { url: String::new() }
        } else {
            AuthorityError::sql("creating lifeboat.authority")(e)
        }
    })
}

fn row(r: &tokio_postgres::Row) -> AuthorityRow {
    AuthorityRow {
        epoch: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
        region: r.get(1),
        promoted_at: r.get(2),
        lsn: lsn::opt(r.get(3)),
    }
}

/// Writes `epoch` for `region` (with the promotion's WAL position `lsn`),
/// through `client` connected to the `lifeboat` database of the primary;
/// refuses an epoch not greater than the highest stored ([`AuthorityError::Stale`]),
/// except the same epoch and region again, which returns the stored row.
/// Creates the table when missing.
pub async fn write_epoch(
    client: &mut Client,
    epoch: u64,
    region: &str,
    lsn: Option<Lsn>,
) -> Result<AuthorityRow, AuthorityError> {
    let e = i64::try_from(epoch).map_err(|_| AuthorityError::TooLarge(epoch))?;
    ensure_table(client).await?;
    let read_only = |e: tokio_postgres::Error| {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            AuthorityError::NotPrimary { url: String::new() }
        } else {
            AuthorityError::sql("writing the epoch")(e)
        }
    };
    let tx = client.transaction().await.map_err(read_only)?;
    tx.batch_execute("LOCK TABLE lifeboat.authority IN EXCLUSIVE MODE")
        .await
        .map_err(read_only)?;
    let highest = tx
        .query_opt(
            "SELECT epoch, region, promoted_at, lsn::text FROM lifeboat.authority \
             ORDER BY epoch DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(AuthorityError::sql("reading the highest epoch"))?
        .map(|r| row(&r));
    if let Some(h) = highest {
        if h.epoch == epoch && h.region == region {
            return Ok(h);
        }
        if h.epoch >= epoch {
            return Err(AuthorityError::Stale {
                given: epoch,
                region: region.to_string(),
                highest: h.epoch,
                highest_region: h.region,
            });
        }
    }
    let lsn_text = lsn.map(|l| l.to_string());
    let written = tx
        .query_one(
            "INSERT INTO lifeboat.authority (epoch, region, promoted_at, lsn) \
             VALUES ($1, $2, clock_timestamp(), $3::text::pg_lsn) \
             RETURNING epoch, region, promoted_at, lsn::text",
            &[&e, &region, &lsn_text],
        )
        .await
        .map_err(read_only)?;
    let out = row(&written);
    tx.commit().await.map_err(read_only)?;
    Ok(out)
}

/// The highest epoch row on the server behind `client` (its `lifeboat`
/// database; a standby is fine); `None` when none was written.
pub async fn read_epoch(client: &Client) -> Result<Option<AuthorityRow>, AuthorityError> {
    match client
        .query_opt(
            "SELECT epoch, region, promoted_at, lsn::text FROM lifeboat.authority \
             ORDER BY epoch DESC LIMIT 1",
            &[],
        )
        .await
    {
        Ok(r) => Ok(r.map(|r| row(&r))),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
        Err(e) => Err(AuthorityError::sql("reading the epoch")(e)),
    }
}
