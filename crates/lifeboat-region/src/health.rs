//! Health checks with Route 53's semantics (docs/regions/health.md).
//!
//! - [`spec`]: what a check probes ([`CheckSpec`], Route 53's defaults).
//! - [`probe`]: one probe (TCP, HTTP, HTTPS without certificate
//!   validation, string matching) with Route 53's time limits, giving an
//!   [`Outcome`] with its reason.
//! - [`verdict`]: the pure state machine (a check flips after
//!   `failure_threshold` consecutive disagreeing results), a region's
//!   verdict from its checks, the consensus across vantage points.
//! - [`checker`]: the loop that probes on each interval and publishes
//!   [`Report`]s; cancellable.

pub mod checker;
pub mod outcome;
pub mod probe;
pub mod spec;
mod tls;
pub mod verdict;

pub use checker::{Checker, Report};
pub use outcome::{Failure, Outcome, Success};
pub use probe::{SEARCH_WINDOW, Timeouts, USER_AGENT_VALUE, probe, probe_with};
pub use spec::{CheckKind, CheckSpec};
pub use verdict::{CheckState, Consensus, RegionVerdict, Step, Verdict, consensus, region_verdict};
