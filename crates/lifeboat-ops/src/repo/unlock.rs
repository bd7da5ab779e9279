//! `lifeboat unlock`: stale locks (or, with `all`, every lock; with `--id`,
//! one named lock) removed.

use lifeboat_repo::Repository;
use lifeboat_repo::lock::LockEntry;

use crate::error::Result;

/// The locks removed.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<LockEntry>> {
    Ok(lifeboat_repo::lock::unlock(repo, all).await?)
}

/// The lock `id` (or a prefix naming only it) removed, stale or not.
pub async fn unlock_id(repo: &Repository, id: &str) -> Result<LockEntry> {
    Ok(lifeboat_repo::lock::unlock_id(repo, id).await?)
}
