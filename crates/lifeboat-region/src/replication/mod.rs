//! PostgreSQL streaming replication between regions: observing role and lag
//! (what the servers say, never the config), the plan to seed a standby (a
//! pure function), and the steps that carry it out.
//!
//! - [`observe`]: role, identity, `pg_stat_replication`, a standby's positions.
//! - [`lag`]: lag in bytes and seconds from observations (pure).
//! - [`target`]: the standby's data directory, its owner and server control.
//! - [`plan`]: steps or a refusal (pure).
//! - [`replicate`]: running the plan (`region replicate`), with progress events.
//! - [`synchronous`]: naming the standbys in the primary's `synchronous_standby_names`.
//! - [`conf`]: quoting and `postgresql.auto.conf` rewriting (pure).
//! - [`lsn`], [`retry`]: WAL positions; retries of idempotent calls.
//!
//! The documentation of what happens and why is `docs/regions/replication.md`.

pub mod conf;
pub mod lag;
pub mod lsn;
pub mod observe;
pub mod plan;
pub mod replicate;
pub mod retry;
pub mod synchronous;
pub mod target;

pub use lag::{Lag, LagBasis, StandbyLag, lag_from_primary, lag_from_standby, standby_lag};
pub use lsn::Lsn;
pub use observe::{Identity, Observed, Role, Server, SystemId, observe};
pub use plan::{Plan, Refusal, Step, plan};
pub use replicate::{Outcome, Progress, ReplicateError, ReplicateRequest, Timeouts, replicate};
pub use retry::Retry;
pub use target::{ServerControl, StandbyTarget, TargetDir};
