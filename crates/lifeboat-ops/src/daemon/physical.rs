//! One scheduled physical base backup of a postgres source (`physical:`):
//! the flow of `lifeboat backup physical --source NAME`
//! ([`crate::physical::backup::backup_source`]) in-process, with the same
//! repository lock (`backup physical`, which holds prune's WAL deletion
//! back while it runs), the source's `physical.block_size`, and failure
//! reasons named as for the source's other backups. The runner
//! ([`super::runner`]) records the outcome and applies retention.

use lifeboat_repo::physical::block_chunker;
use lifeboat_repo::snapshot::SnapshotRef;

use super::runner::{RunError, reason_for_conn, reason_for_kind};
use super::{Daemon, SourceState};
use crate::config::SourceKind;
use crate::failure;

/// Takes a base backup of `src` into the daemon's repository.
pub(super) async fn backup(
    d: &Daemon,
    src: &SourceState,
    tags: Vec<String>,
) -> Result<SnapshotRef, RunError> {
    let name = &src.name;
    if src.kind != SourceKind::Postgres {
        return Err(RunError {
            reason: "config",
            error: failure!(
                "{name} is a {} source; physical base backups are of PostgreSQL servers",
                src.kind
            ),
        });
    }
    let block = src
        .physical
        .as_ref()
        .map_or(lifeboat_repo::physical::DEFAULT_BLOCK, |p| p.block_size);
    let config = |error| RunError {
        reason: "config",
        error,
    };
    let chunker = block_chunker(block).map_err(|e| config(e.into()))?;
    let source = crate::postgres::configured_source(&d.ctx, name)
        .await
        .map_err(config)?;
    // Connect once first, so that a server that is down is named as such.
    match source.conn.connect().await {
        Ok(c) => drop(c),
        Err(e) => {
            return Err(RunError {
                reason: reason_for_conn(&e),
                error: crate::postgres::conn_err(e),
            });
        }
    }
    let repo = d.repo.clone().with_chunker(chunker);
    crate::physical::backup::backup_source(&repo, &source, block, tags, &crate::report::Silent)
        .await
        .map(|done| done.snap)
        .map_err(|error| RunError {
            reason: reason_for_kind(error.kind()),
            error,
        })
}
