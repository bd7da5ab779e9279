//! The failover record: what one change of primary did and measured, kept
//! in the repository and in etcd, read by `status`, readiness and the
//! metrics.
//!
//! RTO is measured from the plan's `failure_at` (the fault injected or the
//! first failed check, or the operator's request) to the moment the new
//! primary accepted a write (`rto_writes`) and to the moment DNS answered it
//! (`rto_dns`). RPO is the distance between the newest heartbeat the old
//! primary committed and the newest the new primary had replayed when it was
//! promoted; when the old primary's last heartbeat is unknown (it is gone),
//! the failure time stands in for it, which bounds the loss from above.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::machine::{Phase, Progress, StepTime};
use super::plan::Kind;

/// What the driver measured about data loss.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RpoEvidence {
    /// The newest heartbeat the old primary committed, if it could be read
    /// (switchover; or after the old primary returned).
    pub old_last_heartbeat: Option<DateTime<Utc>>,
    /// The newest heartbeat from the old primary that the new one had
    /// replayed when it was promoted.
    pub new_last_replayed_heartbeat: Option<DateTime<Utc>>,
    /// The standby's byte lag last reported before promotion.
    pub byte_lag_at_promotion: Option<u64>,
}

/// The objectives the record is judged against (seed: region failure,
/// RTO 15 min, RPO 5 min).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    pub rto_seconds: f64,
    pub rpo_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub epoch: u64,
    pub kind: Kind,
    pub from: String,
    pub to: String,
    /// `done`, `aborted` or `rolled-back`.
    pub outcome: String,
    #[serde(default)]
    pub ended_because: Option<String>,
    pub failure_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub steps: Vec<StepTime>,
    pub writable_at: Option<DateTime<Utc>>,
    pub dns_at: Option<DateTime<Utc>>,
    pub rto_writes_seconds: Option<f64>,
    pub rto_dns_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// Whether `rpo_seconds` rests on the old primary's own last heartbeat
    /// (exact) or on the failure time (an upper bound).
    pub rpo_exact: bool,
    pub evidence: RpoEvidence,
    pub objectives: Option<Objectives>,
    /// Both measured values within the objectives; `None` when either is
    /// unknown or no objective is configured.
    pub met: Option<bool>,
    /// Set on the two switchovers a `lifeboat region rehearse` makes:
    /// `there` (to the standby) and `back` (to the original primary).
    /// Readiness's `failover-tests` item reads the newest `back`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<String>,
    /// Automatic failover: who confirmed the failure, and the lag guard's
    /// inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<super::confirm::Confirmation>,
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// The record of `progress` (finished or ended early).
pub fn record(
    progress: &Progress,
    evidence: RpoEvidence,
    objectives: Option<Objectives>,
) -> FailoverRecord {
    let plan = &progress.plan;
    let mut evidence = evidence;
    // A resumer did not see the lag the deciding daemon confirmed with.
    if evidence.byte_lag_at_promotion.is_none() {
        evidence.byte_lag_at_promotion = progress.confirmation.as_ref().and_then(|c| c.byte_lag);
    }
    let writable_at = progress.completed_at(Phase::Promote);
    let dns_at = progress.completed_at(Phase::SwitchDns);
    let rto_writes = writable_at.map(|t| seconds(plan.failure_at, t));
    let rto_dns = dns_at.map(|t| seconds(plan.failure_at, t));
    let (rpo, exact) = match evidence.new_last_replayed_heartbeat {
        Some(replayed) => match evidence.old_last_heartbeat {
            Some(old) => (Some(seconds(replayed, old)), true),
            None => (Some(seconds(replayed, plan.failure_at)), false),
        },
        None => (None, false),
    };
    let outcome = match progress.phase {
        Phase::Done => "done",
        Phase::Aborted => "aborted",
        Phase::RolledBack => "rolled-back",
        // A record of a change still under way (status shows it as such).
        _ => "incomplete",
    };
    let met = match (objectives, rto_dns.or(rto_writes), rpo) {
        (Some(o), Some(rto), Some(rpo)) if outcome == "done" => {
            Some(rto <= o.rto_seconds && rpo <= o.rpo_seconds)
        }
        _ => None,
    };
    FailoverRecord {
        epoch: plan.epoch_after(),
        kind: plan.kind,
        from: plan.from.clone(),
        to: plan.to.clone(),
        outcome: outcome.to_string(),
        ended_because: progress.ended_because.clone(),
        failure_at: plan.failure_at,
        started_at: plan.started_at,
        steps: progress.steps.clone(),
        writable_at,
        dns_at,
        rto_writes_seconds: rto_writes,
        rto_dns_seconds: rto_dns,
        rpo_seconds: rpo,
        rpo_exact: exact,
        evidence,
        objectives,
        met,
        rehearsal: None,
        confirmation: progress.confirmation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::machine::{Event, apply};
    use crate::failover::plan::Plan;
    use crate::replication::lsn::Lsn;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_796_000_000_000 + ms).unwrap()
    }

    fn finished(kind: Kind) -> Progress {
        let mut p = Progress::start(Plan {
            kind,
            from: "us-east".into(),
            to: "eu-west".into(),
            epoch_before: 1,
            accept_data_loss: false,
            failure_at: at(0),
            started_by: "t".into(),
            started_at: at(3_000),
        });
        let events = [
            (Event::FenceHeld, 13_000),
            (Event::EpochBumped { epoch: 2 }, 13_100),
            (Event::Promoted { lsn: Lsn(9) }, 14_500),
            (Event::DnsSwitched, 15_250),
            (Event::Scaled, 15_300),
            (Event::Verified, 16_000),
            (Event::Recorded, 16_100),
        ];
        for (e, t) in events {
            p = apply(&p, &e, at(t)).unwrap();
        }
        p
    }

    #[test]
    fn rto_from_failure_to_writes_and_dns() {
        let r = record(&finished(Kind::Automatic), RpoEvidence::default(), None);
        assert_eq!(r.outcome, "done");
        assert_eq!(r.epoch, 2);
        assert_eq!(r.rto_writes_seconds, Some(14.5));
        assert_eq!(r.rto_dns_seconds, Some(15.25));
        assert_eq!(r.rpo_seconds, None);
        assert_eq!(r.met, None);
    }

    #[test]
    fn rpo_exact_or_bounded() {
        let p = finished(Kind::Automatic);
        let bounded = record(
            &p,
            RpoEvidence {
                new_last_replayed_heartbeat: Some(at(-1_200)),
                byte_lag_at_promotion: Some(8192),
                ..Default::default()
            },
            Some(Objectives {
                rto_seconds: 15.0,
                rpo_seconds: 5.0,
            }),
        );
        assert_eq!((bounded.rpo_seconds, bounded.rpo_exact), (Some(1.2), false));
        // DNS at 15.25 s misses a 15 s objective.
        assert_eq!(bounded.met, Some(false));
        let exact = record(
            &p,
            RpoEvidence {
                old_last_heartbeat: Some(at(-200)),
                new_last_replayed_heartbeat: Some(at(-1_200)),
                byte_lag_at_promotion: None,
            },
            Some(Objectives {
                rto_seconds: 900.0,
                rpo_seconds: 300.0,
            }),
        );
        assert_eq!((exact.rpo_seconds, exact.rpo_exact), (Some(1.0), true));
        assert_eq!(exact.met, Some(true));
    }

    #[test]
    fn an_aborted_change_is_recorded_as_such_and_never_met() {
        let p = Progress::start(finished(Kind::Manual).plan);
        let p = apply(
            &p,
            &Event::Cancel {
                reason: "primary recovered".into(),
            },
            at(5_000),
        )
        .unwrap();
        let r = record(
            &p,
            RpoEvidence::default(),
            Some(Objectives {
                rto_seconds: 1.0,
                rpo_seconds: 1.0,
            }),
        );
        assert_eq!(r.outcome, "aborted");
        assert!(r.ended_because.unwrap().contains("primary recovered"));
        assert_eq!((r.writable_at, r.met), (None, None));
    }
}
