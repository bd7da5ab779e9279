//! How an open repository takes and keeps its locks ([`LockOptions`]),
//! re-exported as `lock::LockOptions`.
//!
//! Apart from [`crate::lock`] because a [`Repository`](crate::repo::Repository)
//! carries these options while `lock` works on a `Repository`: with the
//! options in `lock`, `repo` and `lock` would each use the other.

use std::time::Duration;

/// How often a held lock is rewritten, by default.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How long another's lock may go unrefreshed before it is stale, by default.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// How locks are taken and kept; part of an open
/// [`Repository`](crate::repo::Repository)
/// ([`Repository::with_lock_options`](crate::repo::Repository::with_lock_options)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// How long to wait for a conflicting lock (`--retry-lock`), retrying
    /// with backoff; zero: fail at once with
    /// [`RepoError::Locked`](crate::error::RepoError::Locked).
    pub retry: Duration,
    /// How often a held lock is refreshed.
    pub refresh: Duration,
    /// Age (storage clock) after which another's unrefreshed lock is stale.
    pub stale_after: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            retry: Duration::ZERO,
            refresh: REFRESH_INTERVAL,
            stale_after: STALE_AFTER,
        }
    }
}

impl LockOptions {
    /// A holder that could not refresh for this long gives its lock up.
    pub fn give_up_after(&self) -> Duration {
        self.stale_after / 2
    }
}
