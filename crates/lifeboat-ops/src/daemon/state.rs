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

/// Which of a source's runs: its backup (`schedule`, the API; logical for
/// a postgres source) or its physical base backup (`physical.schedule`).
/// Each has its own lock, schedule, status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Backup,
    Physical,
}

impl RunKind {
    /// What logs call the run: `backup`, `physical backup`.
    pub fn noun(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Physical => "physical backup",
        }
    }
}

/// What the API shows about a source. `last_success` and the counts are
/// about its backups (`schedule`, the API): the newest full snapshot that
/// is not a base backup; `physical` about its base backups.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    pub last_success: Option<LastSuccess>,
    pub last_failure: Option<LastFailure>,
    pub running_since: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub snapshots: usize,
    pub overlaps: u64,
    /// The physical base backups (`physical:`), when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical: Option<RunStatus>,
}

/// The state of one kind of run of a source (its base backups).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStatus {
    pub last_success: Option<LastSuccess>,
    pub last_failure: Option<LastFailure>,
    pub running_since: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    /// Physical snapshots of the source in the repository.
    pub snapshots: usize,
    pub overlaps: u64,
}

/// A source's physical base backups as the daemon takes them (`physical:`).
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    pub schedule: Schedule,
    /// Bytes per block.
    pub block_size: u32,
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
    /// `physical:`: base backups on their own schedule.
    pub physical: Option<PhysicalPlan>,
    /// Held for the whole of a physical run: never two base backups of one
    /// source (a base backup and a logical backup may run at once).
    pub physical_lock: Arc<tokio::sync::Mutex<()>>,
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

    /// The time of the source's newest backup of either kind (what the RPO
    /// gauge and the API's `rpo_seconds` measure from).
    pub fn newest_backup(&self) -> Option<DateTime<Utc>> {
        let s = self.status();
        let physical = s.physical.and_then(|p| p.last_success).map(|l| l.time);
        s.last_success.map(|l| l.time).max(physical)
    }

    /// The schedule of `kind`'s runs.
    pub fn schedule_of(&self, kind: RunKind) -> Option<&Schedule> {
        match kind {
            RunKind::Backup => self.schedule.as_ref(),
            RunKind::Physical => self.physical.as_ref().map(|p| &p.schedule),
        }
    }

    /// The lock a run of `kind` holds.
    pub fn lock_of(&self, kind: RunKind) -> &Arc<tokio::sync::Mutex<()>> {
        match kind {
            RunKind::Backup => &self.run_lock,
            RunKind::Physical => &self.physical_lock,
        }
    }

    /// The status of `kind`'s runs (a physical one of a source without
    /// `physical:` is created at its first run, through the API).
    pub fn run_status(&self, kind: RunKind) -> RunStatus {
        let s = self.status();
        match kind {
            RunKind::Backup => RunStatus {
                last_success: s.last_success,
                last_failure: s.last_failure,
                running_since: s.running_since,
                next_run: s.next_run,
                snapshots: s.snapshots,
                overlaps: s.overlaps,
            },
            RunKind::Physical => s.physical.unwrap_or_default(),
        }
    }

    /// Changes the status of `kind`'s runs.
    pub fn update_run(&self, kind: RunKind, f: impl FnOnce(&mut RunView<'_>)) {
        self.update(|s| match kind {
            RunKind::Backup => f(&mut RunView {
                last_success: &mut s.last_success,
                last_failure: &mut s.last_failure,
                running_since: &mut s.running_since,
                next_run: &mut s.next_run,
                snapshots: &mut s.snapshots,
                overlaps: &mut s.overlaps,
            }),
            RunKind::Physical => {
                let p = s.physical.get_or_insert_with(RunStatus::default);
                f(&mut RunView {
                    last_success: &mut p.last_success,
                    last_failure: &mut p.last_failure,
                    running_since: &mut p.running_since,
                    next_run: &mut p.next_run,
                    snapshots: &mut p.snapshots,
                    overlaps: &mut p.overlaps,
                })
            }
        });
    }
}

/// The fields of one kind of run inside a [`SourceStatus`], to change them
/// the same way for either kind ([`SourceState::update_run`]).
pub struct RunView<'a> {
    pub last_success: &'a mut Option<LastSuccess>,
    pub last_failure: &'a mut Option<LastFailure>,
    pub running_since: &'a mut Option<DateTime<Utc>>,
    pub next_run: &'a mut Option<DateTime<Utc>>,
    pub snapshots: &'a mut usize,
    pub overlaps: &'a mut u64,
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no source named {0:?} in the configuration")]
    Unknown(String),
    #[error("source {0} is not a PostgreSQL source: it has no physical base backups")]
    NotPostgres(String),
    #[error("a {1} of {0} is already running")]
    Busy(String, &'static str),
    #[error("this daemon is a standby ({0}); send the request to the active one")]
    NotActive(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn source(physical: bool) -> SourceState {
        let schedule = Schedule::parse("0 * * * *").unwrap();
        SourceState {
            name: "db".into(),
            kind: SourceKind::Postgres,
            schedule: Some(schedule.clone()),
            tz: Timezone::UTC,
            retention: None,
            rpo_objective: None,
            run_lock: Arc::new(tokio::sync::Mutex::new(())),
            physical: physical.then(|| PhysicalPlan {
                schedule: Schedule::parse("30 2 * * *").unwrap(),
                block_size: 256 * 1024,
            }),
            physical_lock: Arc::new(tokio::sync::Mutex::new(())),
            status: Mutex::new(SourceStatus::default()),
        }
    }

    fn ok(h: u32) -> LastSuccess {
        LastSuccess {
            snapshot: format!("s{h}"),
            time: Utc.with_ymd_and_hms(2026, 12, 7, h, 0, 0).unwrap(),
            duration_seconds: Some(1.0),
        }
    }

    #[test]
    fn each_kind_of_run_has_its_own_status_lock_and_schedule() {
        let s = source(true);
        assert_eq!(
            s.schedule_of(RunKind::Backup).unwrap().as_str(),
            "0 * * * *"
        );
        assert_eq!(
            s.schedule_of(RunKind::Physical).unwrap().as_str(),
            "30 2 * * *"
        );
        assert!(!Arc::ptr_eq(
            s.lock_of(RunKind::Backup),
            s.lock_of(RunKind::Physical)
        ));
        let _held = s.lock_of(RunKind::Backup).try_lock().unwrap();
        assert!(s.lock_of(RunKind::Physical).try_lock().is_ok());

        s.update_run(RunKind::Physical, |r| {
            *r.last_success = Some(ok(3));
            *r.overlaps += 2;
        });
        s.update_run(RunKind::Backup, |r| *r.last_success = Some(ok(1)));
        let st = s.status();
        assert_eq!(st.last_success.unwrap().snapshot, "s1");
        assert_eq!(st.overlaps, 0);
        let p = s.run_status(RunKind::Physical);
        assert_eq!(p.last_success.unwrap().snapshot, "s3");
        assert_eq!(p.overlaps, 2);
        assert_eq!(
            s.run_status(RunKind::Backup).last_success.unwrap().snapshot,
            "s1"
        );
        // The RPO counts from the newest backup of either kind.
        assert_eq!(s.newest_backup(), Some(ok(3).time));
        s.update_run(RunKind::Backup, |r| *r.last_success = Some(ok(5)));
        assert_eq!(s.newest_backup(), Some(ok(5).time));

        // Without `physical:` there is no physical schedule and no
        // physical status until a physical run (through the API) makes one.
        let s = source(false);
        assert!(s.schedule_of(RunKind::Physical).is_none());
        assert!(s.status().physical.is_none());
        s.update_run(RunKind::Physical, |r| *r.running_since = Some(ok(4).time));
        assert_eq!(s.status().physical.unwrap().running_since, Some(ok(4).time));
    }
}
