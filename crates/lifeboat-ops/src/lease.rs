//! The daemon's lease record in the repository (`serve/lease`): what it
//! holds and how to read it. The daemon (`lifeboat_ops::daemon::lease`)
//! writes, renews, takes over and releases it; the status assessment
//! ([`crate::assess`]) reads it to tell whether a daemon is active.

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use lifeboat_repo::format::open_doc;
use serde::{Deserialize, Serialize};

/// Where the lease lives in the repository.
pub const LEASE_KEY: &str = "serve/lease";

/// The lease document (sealed like every repository document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseDoc {
    pub version: u64,
    /// `hostname/pid/random`: one daemon process.
    pub holder: String,
    pub acquired: DateTime<Utc>,
    /// Bumped by every renewal; a standby watches it change.
    pub renewals: u64,
    /// How long the holder may go without renewing.
    pub duration_seconds: u64,
}

/// The lease, or `None` when no daemon holds one.
pub async fn read(repo: &Repository) -> lifeboat_repo::Result<Option<LeaseDoc>> {
    match repo.storage().get(LEASE_KEY).await {
        Ok(b) => Ok(Some(open_doc(repo.key(), "lease", LEASE_KEY, &b)?)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
