//! `lifeboat unlock`: stale locks (or, with `all`, every lock) removed.

use lifeboat_repo::Repository;
use lifeboat_repo::lock::LockEntry;

use crate::error::Result;

/// The locks removed.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<LockEntry>> {
    Ok(lifeboat_repo::lock::unlock(repo, all).await?)
}
