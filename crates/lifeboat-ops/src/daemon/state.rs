//! The state the daemon's parts share: its role under the lease, what
//! started a run, each source's settings and status, and why a run was not
//! started. Plain data; the API serializes it as it is.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_repo::retention::RetentionPolicy;
use serde::Serialize;

use crate::config::{Schedule, SourceKind, Timezone};

/// What this daemon is doing about the repository's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Has not read the lease yet.
    Starting,
    /// Holds the lease: runs the schedules and the API's backups.
    Active,
    /// Another daemon holds the lease.
    Standby { holder: String },
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    /// A slot was missed while no daemon was active (run once).
    MissedSlot,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::MissedSlot => "missed_slot",
            Trigger::Api => "api",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LastSuccess {
    pub snapshot: String,
    pub time: DateTime<Utc>,
    /// `None` for snapshots found in the repository at start-up.
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastFailure {
    pub time: DateTime<Utc>,
    pub reason: String,
    pub message: String,
}

/// What the API shows about a source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    pub last_success: Option<LastSuccess>,
    pub last_failure: Option<LastFailure>,
    pub running_since: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub snapshots: usize,
    pub overlaps: u64,
}

/// A configured source as the daemon runs it.
pub struct SourceState {
    pub name: String,
    pub kind: SourceKind,
    pub schedule: Option<Schedule>,
    pub tz: Timezone,
    pub retention: Option<RetentionPolicy>,
    /// The tightest non-zero RPO of the scenarios it covers.
    pub rpo_objective: Option<TimeDelta>,
    /// Held for the whole of a run: never two runs of one source.
    pub run_lock: Arc<tokio::sync::Mutex<()>>,
    pub status: Mutex<SourceStatus>,
}

impl SourceState {
    pub fn status(&self) -> SourceStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut SourceStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no source named {0:?} in the configuration")]
    Unknown(String),
    #[error("a backup of {0} is already running")]
    Busy(String),
    #[error("this daemon is a standby ({0}); send the request to the active one")]
    NotActive(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
}
