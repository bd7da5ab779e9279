//! The daemon's parts that do not run a flow themselves (`docs/daemon.md`):
//! when to run (schedules, checks), who runs (the lease), what it reports
//! (metrics) and the state they share. The daemon itself (`Daemon`,
//! start-up, runs, drills, retention, HTTP) is still
//! `crates/lifeboat/src/serve/` and implements [`Host`] for the loops here.
//!
//! | module | owns |
//! |---|---|
//! | `state.rs` | the role, what started a run, a source's state and status, why a run was not started |
//! | `scheduler.rs` | cron slots per source (time zone, missed slots, overlaps); `SlotClock` |
//! | `checks.rs` | scheduled repository checks, recorded for readiness |
//! | `lease.rs` | one active daemon per repository |
//! | `metrics.rs` | metric names and recording |

pub mod checks;
pub mod lease;
pub mod metrics;
pub mod scheduler;
pub mod state;

use std::future::Future;
use std::sync::Arc;

use lifeboat_repo::Repository;
use tokio::sync::watch;

pub use state::{LastFailure, LastSuccess, Role, SourceState, SourceStatus, StartError, Trigger};

/// What the schedule loops ([`scheduler::run`], [`checks::run`]) need of the
/// daemon that runs them.
pub trait Host: Send + Sync + 'static {
    /// What a run's task ends with (only awaited here, never looked at).
    type Outcome: Send + 'static;
    /// Why the snapshots could not be read (logged with `{:#}`).
    type Error: std::fmt::Display + Send;

    fn repository(&self) -> &Repository;
    /// The role the lease publishes.
    fn subscribe_role(&self) -> watch::Receiver<Role>;
    /// `true` from SIGTERM on.
    fn subscribe_shutdown(&self) -> watch::Receiver<bool>;
    /// Reads every snapshot once: the sources' newest, counts, sizes.
    fn refresh_from_repository(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Starts a backup of `name` now, unless one is running, this daemon is
    /// a standby, or it is shutting down.
    fn start_run(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
    ) -> Result<tokio::task::JoinHandle<Self::Outcome>, StartError>;
}

/// Resolves when `rx` says shutdown (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
