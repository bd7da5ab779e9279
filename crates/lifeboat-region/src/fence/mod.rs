//! The fence: what keeps a primary that lost its region lease from
//! accepting writes before another region is promoted (issue 20).
//!
//! - [`method`]: the configured fence (stop the server, or revoke LOGIN).
//! - [`deadline`]: the fence deadline from the lease timing (pure).
//! - [`guard`]: renew the lease, fence at the deadline.
//! - [`postgres`]: fencing and unfencing PostgreSQL, and proving the fence.
//! - [`watchdog`]: the separate process that stops PostgreSQL when the agent
//!   dies or stops feeding it.
//!
//! Documentation: `docs/failover-fence.md`.

pub mod deadline;
pub mod guard;
pub mod method;
pub mod postgres;
pub mod watchdog;

pub use deadline::{FenceTiming, RenewalOutcome, Renewals, TimingProblem};
pub use guard::{GuardOutcome, run_guard};
pub use method::FenceMethod;
pub use postgres::{
    FenceError, FenceProbe, FenceReport, PostmasterStop, UnfenceReport, fence, probe_fenced,
    revoke_login_on, stop_postmaster, unfence,
};
pub use watchdog::{Feeder, Watchdog};
