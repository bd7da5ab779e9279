//! The authority epoch a `wal push` writes under (docs/physical.md, "The
//! epoch"): the rule is a pure function of what the configuration and the
//! server say ([`decide`]); [`writer_epoch`] gathers them.
//!
//! - No `failover:` section: epoch 0. Without a failover authority there is
//!   one writer per repository, as without Lifeboat's multi-region.
//! - `failover:` configured: the highest epoch in `lifeboat.authority` of
//!   this region's server (`regions.<r>.postgres`, `r` from `--region`,
//!   `LIFEBOAT_REGION` or `serve.region`), read on every push. A server
//!   promoted by the authority records its epoch there as its first write,
//!   so a promoted primary pushes under the new epoch and a fenced former
//!   primary (whose table holds the old one) never writes the new
//!   primary's keys. No row, no table, no `lifeboat` database: 0 (nothing
//!   was ever promoted in this server's history). A server that cannot be
//!   asked fails the push (PostgreSQL retries it): guessing could put WAL
//!   under another writer's epoch.

use lifeboat_postgres::conn::ConnError;
use lifeboat_region::promotion::authority_row;

use crate::context::Ctx;
use crate::error::{Error, Kind, Result, usage};

/// The epoch and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WriterEpoch {
    pub epoch: u64,
    /// `none` (no failover authority configured) or `server` (read from
    /// the region's `lifeboat.authority`).
    pub source: &'static str,
    /// The region whose server was read.
    pub region: Option<String>,
}

/// What the server said about `lifeboat.authority`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerSays {
    /// The highest epoch row.
    Epoch(u64),
    /// No row, no table or no `lifeboat` database.
    Nothing,
}

/// The rule: no authority → 0; else what the server recorded, or 0.
pub fn decide(authority_configured: bool, server: Option<ServerSays>) -> u64 {
    match (authority_configured, server) {
        (false, _) => 0,
        (true, Some(ServerSays::Epoch(e))) => e,
        (true, Some(ServerSays::Nothing) | None) => 0,
    }
}

/// The epoch this push writes under; `region` is `--region`
/// (`LIFEBOAT_REGION`), else `serve.region`.
pub async fn writer_epoch(ctx: &Ctx, region: Option<&str>) -> Result<WriterEpoch> {
    let Some(config) = ctx.config.as_ref().filter(|c| c.failover.is_some()) else {
        return Ok(WriterEpoch {
            epoch: decide(false, None),
            source: "none",
            region: None,
        });
    };
    let name = region
        .map(str::to_string)
        .or_else(|| config.serve.as_ref().and_then(|s| s.region.clone()))
        .ok_or_else(|| {
            usage(
                "failover: is configured, so wal push writes under this region's authority epoch, \
                 read from its server: set serve.region in the configuration, or pass --region \
                 (LIFEBOAT_REGION) in archive_command",
            )
        })?;
    let r = config.regions.get(&name).ok_or_else(|| {
        usage(format!(
            "--region / serve.region is `{name}`, but the configuration has no regions.{name}"
        ))
    })?;
    let conn = crate::region::conn::region_conn(ctx, r).await?;
    let says = match conn.with_dbname("lifeboat").connect().await {
        Err(ConnError::DatabaseMissing { .. }) => ServerSays::Nothing,
        Err(e) => {
            return Err(Error::new(
                Kind::Failure,
                format!(
                    "cannot read the authority epoch from region {name}'s server: {e}; the file \
                     is not archived (PostgreSQL retries it)"
                ),
            ));
        }
        Ok(client) => match authority_row::read_epoch(&client).await {
            Ok(Some(row)) => ServerSays::Epoch(row.epoch),
            Ok(None) => ServerSays::Nothing,
            Err(e) => {
                return Err(Error::new(
                    Kind::Failure,
                    format!(
                        "cannot read lifeboat.authority on region {name}'s server: {e}; the file \
                         is not archived (PostgreSQL retries it)"
                    ),
                ));
            }
        },
    };
    Ok(WriterEpoch {
        epoch: decide(true, Some(says)),
        source: "server",
        region: Some(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let table = [
            (false, None, 0),
            (false, Some(ServerSays::Epoch(7)), 0),
            (true, Some(ServerSays::Epoch(7)), 7),
            (true, Some(ServerSays::Epoch(1)), 1),
            (true, Some(ServerSays::Nothing), 0),
        ];
        for (configured, says, want) in table {
            assert_eq!(decide(configured, says), want, "{configured} {says:?}");
        }
    }
}
