//! `verify`: a live database checked against a PostgreSQL snapshot's facts.

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::facts::{self, FactDiff, Facts};
use lifeboat_repo::snapshot::SnapshotRef;

use super::errors::{conn_err, facts_err};
use super::source::{POSTGRES_KIND, postgres_facts};
use crate::context::Ctx;
use crate::error::{Error, Result, VERIFY_FAILED, fail};

#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Snapshot id (or unique prefix), or `latest`.
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this source.
    pub source: Option<String>,
    /// The live database, postgresql://user@host:port/db.
    pub target: String,
}

/// What the check found; differences make it fail ([`VerifyOutcome::error`]).
pub struct VerifyOutcome {
    pub snap: SnapshotRef,
    pub facts: Facts,
    /// The target's URL as shown (no password).
    pub target: String,
    pub differences: Vec<FactDiff>,
}

impl VerifyOutcome {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }

    /// Exit 7 when the database differs; `None` when it matches.
    pub fn error(&self) -> Option<Error> {
        (!self.ok()).then(|| {
            fail(
                VERIFY_FAILED,
                format!(
                    "{} differs from snapshot {} in {} fact(s) (table above)",
                    self.target,
                    self.snap.short_id(),
                    self.differences.len()
                ),
            )
        })
    }
}

pub async fn verify(ctx: &Ctx, req: VerifyRequest) -> Result<VerifyOutcome> {
    let repo = ctx.open().await?;
    let snap = repo
        // `latest`: the newest logical snapshot, not a newer base backup.
        .find_snapshot_of(&req.snapshot, req.source.as_deref(), Some(POSTGRES_KIND))
        .await?;
    let facts = postgres_facts(&snap)?;
    let target = ConnConfig::parse(&req.target).map_err(conn_err)?;
    let mut client = target.connect().await.map_err(conn_err)?;
    let differences = facts::verify(&facts, &mut client)
        .await
        .map_err(facts_err)?;
    Ok(VerifyOutcome {
        snap,
        facts,
        target: target.display_url(),
        differences,
    })
}
