//! The promote step of a change of primary, by the target region's
//! manager (docs/failover.md, "A change of primary, step by step"):
//!
//! - `postgres`: `pg_promote()`, then the epoch's row
//!   ([`lifeboat_region::promotion::promote`]);
//! - `patroni` ([`patroni`]): `standby_cluster` removed through `/config`,
//!   a running regular leader awaited, then the epoch's row;
//! - `cnpg` ([`cnpg`]): the `Cluster`'s `spec.replica` patched, its status
//!   awaited, then the epoch's row.
//!
//! Whatever the manager, the step is done only when the server itself
//! answers out of recovery and commits the epoch's row in
//! `lifeboat.authority` through the region's `postgres.url`
//! ([`lifeboat_region::promotion::promote::record_epoch`]). Every path is
//! idempotent: a resumed change writes nothing its first run wrote.

mod cnpg;
mod patroni;

use std::time::Duration;

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::promotion::Promoted;
use lifeboat_region::promotion::promote as pg;

use crate::config::{PgManager, RegionConfig};
use crate::context::Ctx;

/// A promotion that did not happen: whether trying again may help, and
/// what to tell the operator.
pub(super) type Failure = (bool, String);

/// What the manager did, for the step's note (`None` for `postgres`).
pub(super) type ManagerNote = Option<String>;

/// Promotes region `name` (its server behind `conn`) under `epoch`, each
/// waiting part bounded by `timeout`; `lifeboat` is the step's connection
/// to the server's `lifeboat` database, reused by `postgres` (one
/// connection for the whole promotion: [`pg::promote_through`]).
#[allow(clippy::too_many_arguments)]
pub(super) async fn promote(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    conn: &ConnConfig,
    lifeboat: Option<lifeboat_postgres::Client>,
    epoch: u64,
    timeout: Duration,
) -> Result<(Promoted, ManagerNote), Failure> {
    match r.postgres.manager() {
        PgManager::Postgres => pg::promote_through(conn, lifeboat, name, epoch, timeout)
            .await
            .map(|p| (p, None))
            .map_err(|e| (e.is_transient(), e.to_string())),
        PgManager::Patroni => patroni::promote(ctx, name, r, conn, epoch, timeout)
            .await
            .map(|(p, note)| (p, Some(note))),
        PgManager::Cnpg => cnpg::promote(ctx, name, r, conn, epoch, timeout)
            .await
            .map(|(p, note)| (p, Some(note))),
    }
}

/// The epoch's row once the manager promoted the server: waits until it
/// answers out of recovery (bounded by what is left of `timeout`, at least
/// a few seconds: the manager's own wait may have used it up).
async fn record_epoch(
    conn: &ConnConfig,
    name: &str,
    epoch: u64,
    left: Duration,
) -> Result<Promoted, Failure> {
    pg::record_epoch(conn, name, epoch, left.max(Duration::from_secs(5)))
        .await
        .map_err(|e| (e.is_transient(), e.to_string()))
}
