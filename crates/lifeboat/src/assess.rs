//! Gathers the evidence `lifeboat status`, `lifeboat readiness` and the
//! daemon's status page judge: the configuration's sources and objectives,
//! the repository's snapshots, drill and check records, and the daemon's
//! lease. The judging itself is `lifeboat_dr::{status, readiness}`.

use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_dr::objectives::Objective;
use lifeboat_dr::readiness::{self, Attestation, Daemon, Readiness};
use lifeboat_dr::record::{self, CheckRecord, Stored};
use lifeboat_dr::status::{self, Policy, SnapshotInfo, SourceInput, Status};
use lifeboat_repo::Repository;
use serde::Serialize;

use crate::config::Config;
use crate::serve::lease;

/// Everything the verdicts were drawn from, and the verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub status: Status,
    pub readiness: Readiness,
    /// Per source, its snapshots (oldest first) for charts.
    #[serde(skip)]
    pub sources: Vec<SourceInput>,
}

pub fn policy(cfg: &Config) -> Policy {
    let d = Policy::default();
    let r = cfg.readiness.clone().unwrap_or_default();
    Policy {
        drill_max_age: r.drill_max_age.unwrap_or(d.drill_max_age),
        check_max_age: r.check_max_age.unwrap_or(d.check_max_age),
    }
}

pub fn objectives(cfg: &Config) -> Vec<Objective> {
    cfg.objectives
        .iter()
        .map(|o| Objective {
            scenario: o.scenario.clone(),
            rto: o.rto,
            rpo: o.rpo,
            priority: o.priority.map(|p| format!("{p:?}")),
        })
        .collect()
}

/// Reads the evidence from the repository and judges it at `now`.
pub async fn gather(cfg: &Config, repo: &Repository, now: DateTime<Utc>) -> Result<Assessment> {
    let snaps = repo.snapshots().await?;
    let drills = record::drills(repo).await?;
    let checks: Vec<Stored<CheckRecord>> = record::checks(repo).await?;
    let sources: Vec<SourceInput> = cfg
        .sources
        .iter()
        .map(|(name, s)| SourceInput {
            name: name.clone(),
            kind: s.kind.to_string(),
            schedule: s.schedule.as_ref().map(|c| c.as_str().to_string()),
            drill_schedule: s
                .drill
                .as_ref()
                .and_then(|d| d.schedule.as_ref())
                .map(|c| c.as_str().to_string()),
            covers: s.covers.clone(),
            retention: s.retention.clone(),
            snapshots: snaps
                .iter()
                .filter(|x| &x.snapshot.source == name)
                .map(|x| SnapshotInfo {
                    id: x.id.clone(),
                    time: x.snapshot.time,
                    bytes_read: x.snapshot.stats.bytes_read,
                    bytes_stored: x.snapshot.stats.bytes_stored,
                    duration_seconds: x.snapshot.stats.duration_seconds,
                    scope: x.snapshot.scope().key(),
                })
                .collect(),
            drills: drills
                .iter()
                .filter(|d| &d.record.source == name)
                .cloned()
                .collect(),
        })
        .collect();
    let objectives = objectives(cfg);
    let policy = policy(cfg);
    let st = status::evaluate(&sources, &objectives, &policy, now);
    let daemon = daemon_state(repo, now).await;
    let keys = repo.list_keys().await.map(|k| k.len()).unwrap_or(0);
    let encryption = format!(
        "AES-256-GCM with a random master key wrapped in {keys} key slot(s); every object but the marker is sealed"
    );
    let attestations = cfg.readiness.clone().unwrap_or_default().attestations;
    let attest = move |id: &str| {
        attestations.get(id).map(|a| Attestation {
            by: a.by.clone(),
            date: a.date,
            note: a.note.clone(),
        })
    };
    let ready = readiness::evaluate(&readiness::Inputs {
        sources: &sources,
        status: &st,
        checks: &checks,
        daemon,
        encryption,
        attestation: &attest,
        policy,
        now,
    });
    Ok(Assessment {
        status: st,
        readiness: ready,
        sources,
    })
}

/// Whether a daemon holds the repository's lease: renewed (the object
/// rewritten) within the lease's duration, judged at `now`.
async fn daemon_state(repo: &Repository, now: DateTime<Utc>) -> Daemon {
    let (Ok(Some(doc)), Ok(info)) = (
        lease::read(repo).await,
        repo.storage().head(lease::LEASE_KEY).await,
    ) else {
        return Daemon::Absent;
    };
    let age = (now - info.last_modified).max(TimeDelta::zero());
    if age.num_seconds() <= doc.duration_seconds as i64 {
        Daemon::Active {
            holder: doc.holder,
            age_seconds: age.num_seconds(),
        }
    } else {
        Daemon::Stale {
            holder: doc.holder,
            age_seconds: age.num_seconds(),
        }
    }
}
