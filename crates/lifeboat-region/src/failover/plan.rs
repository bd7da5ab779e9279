//! What kind of change of primary is under way, and the facts fixed when it
//! starts (they never change while it runs, so every step and every resumer
//! reads the same ones).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why the primary changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The daemons confirmed the primary region's failure.
    Automatic,
    /// `lifeboat region failover --to R`: the same steps and fencing as
    /// automatic, started by an operator.
    Manual,
    /// `lifeboat region switchover --to R`: planned, zero data loss; the old
    /// primary is stopped cleanly first and follows the new one afterwards.
    Switchover,
}

impl Kind {
    /// Whether the old primary takes part (switchover), so its final WAL
    /// position is known and nothing is lost; otherwise it is presumed
    /// gone and fenced by its lease.
    pub fn is_planned(self) -> bool {
        matches!(self, Kind::Switchover)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Automatic => "automatic",
            Kind::Manual => "manual",
            Kind::Switchover => "switchover",
        }
    }
}

/// The fixed facts of one change of primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub kind: Kind,
    /// The region that was primary (the authority record's primary at the
    /// start).
    pub from: String,
    /// The region to promote.
    pub to: String,
    /// The authority's epoch when the change started; the change bumps it to
    /// `epoch_before + 1` and nothing else.
    pub epoch_before: u64,
    /// The operator accepted losing the writes the standby has not replayed
    /// (manual failover past the lag guard).
    pub accept_data_loss: bool,
    /// When the failure began as best known: the first failed check, or the
    /// operator's request for manual kinds. RTO is measured from here.
    pub failure_at: DateTime<Utc>,
    /// Who started it (daemon `region/host/pid`, or `operator@host`).
    pub started_by: String,
    pub started_at: DateTime<Utc>,
}

impl Plan {
    /// The epoch this change establishes.
    pub fn epoch_after(&self) -> u64 {
        self.epoch_before + 1
    }
}
