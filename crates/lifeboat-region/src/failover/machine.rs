//! One change of primary as a state machine: [`Progress`] (the state kept in
//! etcd between steps), [`Event`] (what a step's IO reported) and
//! [`apply`], the only transition function. [`action`] says what IO the
//! current state needs next.
//!
//! The order, for a failover (automatic or manual):
//! `AwaitFence → BumpEpoch → Promote → SwitchDns → Scale → Verify → Record → Done`
//! and for a planned switchover:
//! `Quiesce → StopOld → AwaitReplay → BumpEpoch → Promote → FollowOld →
//!  SwitchDns → Scale → Verify → Record → Done`.
//!
//! The epoch bump is the point of no return. Before it a change can end
//! without effect (`Aborted`; a switchover instead goes through `Rollback`,
//! which restarts the old primary and brings its writers back). After it the
//! new epoch is the truth everywhere, so a step that fails for good leaves
//! the change *blocked* in its phase for an operator (or the next holder of
//! the election) to resume; it is never undone and never repeated from the
//! start. A resumer that finds the epoch already bumped to this change's
//! epoch and primary (the bump's outcome was unknown to the one who sent it)
//! continues from `Promote`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::{Kind, Plan};
use crate::replication::lsn::Lsn;

/// Where a change of primary stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Switchover: the old primary's writers are quiesced.
    Quiesce,
    /// Switchover: the old primary is stopped cleanly; its final WAL
    /// position (the shutdown checkpoint) becomes known.
    StopOld,
    /// Switchover: the standby replays up to the old primary's final
    /// position.
    AwaitReplay,
    /// Failover: the old primary's lease is gone (so its agent fenced it or
    /// is dead with its watchdog) and the safety margin has passed.
    AwaitFence,
    /// The authority's epoch is bumped by compare-and-swap: the point of no
    /// return.
    BumpEpoch,
    /// The standby is promoted and accepts a write carrying the new epoch.
    Promote,
    /// Switchover: the old primary follows the new one as a standby.
    FollowOld,
    /// DNS answers the new primary (and the epoch's TXT record).
    SwitchDns,
    /// Failover: the new region's serving Deployments scaled to their
    /// failover replica counts; switchover: the writers are back.
    Scale,
    /// A heartbeat commits through the new primary and DNS answers it.
    Verify,
    /// The failover record is stored (repository and etcd).
    Record,
    /// Finished.
    Done,
    /// Switchover given up before the bump: the old primary is restarted as
    /// primary and its writers brought back.
    Rollback,
    /// Ended before the bump with no effect.
    Aborted,
    /// Ended after a rollback.
    RolledBack,
}

impl Phase {
    /// Every phase, in the order a table test walks them.
    pub const ALL: [Phase; 15] = [
        Phase::Quiesce,
        Phase::StopOld,
        Phase::AwaitReplay,
        Phase::AwaitFence,
        Phase::BumpEpoch,
        Phase::Promote,
        Phase::FollowOld,
        Phase::SwitchDns,
        Phase::Scale,
        Phase::Verify,
        Phase::Record,
        Phase::Done,
        Phase::Rollback,
        Phase::Aborted,
        Phase::RolledBack,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Aborted | Phase::RolledBack)
    }

    /// Whether the epoch has been bumped once the change is in this phase.
    pub fn past_point_of_no_return(self) -> bool {
        matches!(
            self,
            Phase::Promote
                | Phase::FollowOld
                | Phase::SwitchDns
                | Phase::Scale
                | Phase::Verify
                | Phase::Record
                | Phase::Done
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Quiesce => "quiesce",
            Phase::StopOld => "stop-old",
            Phase::AwaitReplay => "await-replay",
            Phase::AwaitFence => "await-fence",
            Phase::BumpEpoch => "bump-epoch",
            Phase::Promote => "promote",
            Phase::FollowOld => "follow-old",
            Phase::SwitchDns => "switch-dns",
            Phase::Scale => "scale",
            Phase::Verify => "verify",
            Phase::Record => "record",
            Phase::Done => "done",
            Phase::Rollback => "rollback",
            Phase::Aborted => "aborted",
            Phase::RolledBack => "rolled-back",
        }
    }
}

/// The phase a change of this kind starts in.
pub fn first_phase(kind: Kind) -> Phase {
    if kind.is_planned() {
        Phase::Quiesce
    } else {
        Phase::AwaitFence
    }
}

/// The phase after `phase` completes, for this kind (`None` for the
/// terminal phases and the ends of rollback).
fn successor(kind: Kind, phase: Phase) -> Option<Phase> {
    let planned = kind.is_planned();
    Some(match phase {
        Phase::Quiesce => Phase::StopOld,
        Phase::StopOld => Phase::AwaitReplay,
        Phase::AwaitReplay | Phase::AwaitFence => Phase::BumpEpoch,
        Phase::BumpEpoch => Phase::Promote,
        Phase::Promote if planned => Phase::FollowOld,
        Phase::Promote | Phase::FollowOld => Phase::SwitchDns,
        Phase::SwitchDns => Phase::Scale,
        Phase::Scale => Phase::Verify,
        Phase::Verify => Phase::Record,
        Phase::Record => Phase::Done,
        Phase::Rollback => Phase::RolledBack,
        Phase::Done | Phase::Aborted | Phase::RolledBack => return None,
    })
}

/// One completed phase and when it completed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTime {
    pub phase: Phase,
    pub at: DateTime<Utc>,
}

/// The state of one change of primary: what is kept in etcd between steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub plan: Plan,
    pub phase: Phase,
    /// Switchover: the old primary's shutdown checkpoint position.
    #[serde(default)]
    pub final_lsn: Option<Lsn>,
    /// The standby's replayed position when it was promoted (switchover:
    /// when it had replayed past `final_lsn`).
    #[serde(default)]
    pub replayed_lsn: Option<Lsn>,
    /// The new primary's position when it accepted its first write.
    #[serde(default)]
    pub promoted_lsn: Option<Lsn>,
    /// Completed phases, in order.
    #[serde(default)]
    pub steps: Vec<StepTime>,
    /// Failed attempts of the current phase.
    #[serde(default)]
    pub attempts: u32,
    /// The last failure of the current phase.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Set when the current phase failed for good after the point of no
    /// return: an operator (or the next election holder) must resume.
    #[serde(default)]
    pub blocked: Option<String>,
    /// Why the change ended early (aborted or rolled back).
    #[serde(default)]
    pub ended_because: Option<String>,
    /// Automatic failover: what confirmed the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<super::confirm::Confirmation>,
}

impl Progress {
    pub fn start(plan: Plan) -> Progress {
        Progress {
            phase: first_phase(plan.kind),
            plan,
            final_lsn: None,
            replayed_lsn: None,
            promoted_lsn: None,
            steps: Vec::new(),
            attempts: 0,
            last_error: None,
            blocked: None,
            ended_because: None,
            confirmation: None,
        }
    }

    /// When `phase` completed, if it did.
    pub fn completed_at(&self, phase: Phase) -> Option<DateTime<Utc>> {
        self.steps.iter().find(|s| s.phase == phase).map(|s| s.at)
    }
}

/// What a step's IO reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The old primary's writers are quiesced.
    Quiesced,
    /// The old primary stopped cleanly at this shutdown checkpoint.
    OldStopped {
        final_lsn: Lsn,
    },
    /// The standby has replayed up to `lsn`.
    Replayed {
        lsn: Lsn,
    },
    /// The old primary's lease is gone and the safety margin has passed.
    FenceHeld,
    /// Our compare-and-swap set this epoch.
    EpochBumped {
        epoch: u64,
    },
    /// The authority record as read back (after a refused compare-and-swap,
    /// or by a resumer): its primary and epoch.
    AuthorityIs {
        primary: String,
        epoch: u64,
    },
    /// The standby is primary and committed a write carrying the epoch.
    Promoted {
        lsn: Lsn,
    },
    /// The old primary streams from the new one.
    OldFollowing,
    DnsSwitched,
    Scaled,
    Verified,
    Recorded,
    /// The old primary runs as primary again with its writers back.
    RolledBack,
    /// The current phase's step failed; `transient` failures are retried.
    Failed {
        transient: bool,
        detail: String,
    },
    /// An operator (or the daemon, when the primary recovered before the
    /// bump) gives the change up.
    Cancel {
        reason: String,
    },
    /// An operator (or a resumer) lifts a block to try the phase again.
    Resume,
}

impl Event {
    /// Short name for messages and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Quiesced => "quiesced",
            Event::OldStopped { .. } => "old-stopped",
            Event::Replayed { .. } => "replayed",
            Event::FenceHeld => "fence-held",
            Event::EpochBumped { .. } => "epoch-bumped",
            Event::AuthorityIs { .. } => "authority-is",
            Event::Promoted { .. } => "promoted",
            Event::OldFollowing => "old-following",
            Event::DnsSwitched => "dns-switched",
            Event::Scaled => "scaled",
            Event::Verified => "verified",
            Event::Recorded => "recorded",
            Event::RolledBack => "rolled-back",
            Event::Failed { .. } => "failed",
            Event::Cancel { .. } => "cancel",
            Event::Resume => "resume",
        }
    }
}

/// Why an event was refused in the current state. Refusals change nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{event} refused in phase {phase}: {why}", phase = .phase.as_str())]
pub struct Refusal {
    pub phase: Phase,
    pub event: &'static str,
    pub why: String,
}

/// The next state, or why `event` cannot happen now.
pub fn apply(progress: &Progress, event: &Event, at: DateTime<Utc>) -> Result<Progress, Refusal> {
    let phase = progress.phase;
    let refuse = |why: &str| Refusal {
        phase,
        event: event.name(),
        why: why.to_string(),
    };
    if phase.is_terminal() {
        return Err(refuse("the change of primary has ended"));
    }
    let kind = progress.plan.kind;
    let mut next = progress.clone();
    let complete = |mut next: Progress| -> Progress {
        next.steps.push(StepTime { phase, at });
        next.phase = successor(kind, phase).expect("non-terminal phases have a successor");
        next.attempts = 0;
        next.last_error = None;
        next.blocked = None;
        next
    };
    match (phase, event) {
        (Phase::Quiesce, Event::Quiesced) => Ok(complete(next)),
        (Phase::StopOld, Event::OldStopped { final_lsn }) => {
            next.final_lsn = Some(*final_lsn);
            Ok(complete(next))
        }
        (Phase::AwaitReplay, Event::Replayed { lsn }) => {
            let target = progress
                .final_lsn
                .ok_or_else(|| refuse("the old primary's final position is not known"))?;
            if *lsn < target {
                return Err(refuse(&format!(
                    "replayed {lsn} is short of the old primary's final position {target}"
                )));
            }
            next.replayed_lsn = Some(*lsn);
            Ok(complete(next))
        }
        (Phase::AwaitFence, Event::FenceHeld) => Ok(complete(next)),
        (Phase::BumpEpoch, Event::EpochBumped { epoch }) => {
            if *epoch != progress.plan.epoch_after() {
                return Err(refuse(&format!(
                    "epoch {epoch} is not this change's epoch {}",
                    progress.plan.epoch_after()
                )));
            }
            Ok(complete(next))
        }
        (Phase::BumpEpoch, Event::AuthorityIs { primary, epoch }) => {
            let plan = &progress.plan;
            if *epoch == plan.epoch_after() && *primary == plan.to {
                // Our bump landed though its sender did not learn it.
                Ok(complete(next))
            } else if *epoch == plan.epoch_before && *primary == plan.from {
                Err(refuse(
                    "the authority is unchanged: send the compare-and-swap (again)",
                ))
            } else {
                end_early(
                    next,
                    format!(
                        "the authority changed under this change: {primary} is primary at epoch {epoch}"
                    ),
                )
            }
        }
        (Phase::Promote, Event::Promoted { lsn }) => {
            next.promoted_lsn = Some(*lsn);
            Ok(complete(next))
        }
        (Phase::FollowOld, Event::OldFollowing)
        | (Phase::SwitchDns, Event::DnsSwitched)
        | (Phase::Scale, Event::Scaled)
        | (Phase::Verify, Event::Verified)
        | (Phase::Record, Event::Recorded)
        | (Phase::Rollback, Event::RolledBack) => Ok(complete(next)),
        (_, Event::Failed { transient, detail }) => {
            next.attempts += 1;
            next.last_error = Some(detail.clone());
            if *transient || phase == Phase::Rollback {
                // A rollback is retried until it succeeds or an operator
                // steps in; it has nowhere else to go.
                return Ok(next);
            }
            if phase.past_point_of_no_return() {
                next.blocked = Some(detail.clone());
                Ok(next)
            } else if phase == Phase::BumpEpoch {
                // The bump's failure may have an unknown outcome: the
                // driver reads the authority back (AuthorityIs) before
                // giving up, so a hard failure here is one that certainly
                // wrote nothing.
                end_early(next, format!("the epoch could not be bumped: {detail}"))
            } else {
                end_early(next, format!("{} failed: {detail}", phase.as_str()))
            }
        }
        (_, Event::Cancel { reason }) => {
            if phase.past_point_of_no_return() {
                return Err(refuse(
                    "the epoch is already bumped; the change cannot be undone: resume it, then switch back if needed",
                ));
            }
            if phase == Phase::Rollback {
                return Err(refuse("already rolling back"));
            }
            end_early(next, format!("cancelled: {reason}"))
        }
        (_, Event::Resume) => {
            if progress.blocked.is_none() {
                return Err(refuse("nothing is blocked"));
            }
            next.blocked = None;
            Ok(next)
        }
        _ => Err(refuse("not the event this phase waits for")),
    }
}

/// Ends a change before the point of no return: a failover aborts, a
/// switchover rolls back (its old primary may already be stopped).
fn end_early(mut next: Progress, why: String) -> Result<Progress, Refusal> {
    next.ended_because = Some(why);
    next.blocked = None;
    next.attempts = 0;
    if next.plan.kind.is_planned() {
        next.phase = Phase::Rollback;
    } else {
        next.phase = Phase::Aborted;
    }
    Ok(next)
}

/// The IO the current state needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Quiesce {
        region: String,
    },
    StopOld {
        region: String,
    },
    AwaitReplay {
        region: String,
        lsn: Lsn,
    },
    AwaitFence {
        region: String,
    },
    /// Compare-and-swap from `expected_epoch` (primary `from`) to
    /// `expected_epoch + 1` (primary `to`); for a failover only while
    /// `from`'s lease key is absent.
    BumpEpoch {
        from: String,
        to: String,
        expected_epoch: u64,
        require_lease_gone: Option<String>,
    },
    Promote {
        region: String,
        epoch: u64,
    },
    FollowOld {
        region: String,
        new_primary: String,
    },
    SwitchDns {
        from: String,
        to: String,
        epoch: u64,
    },
    /// `planned`: bring the writers back (switchover); otherwise scale the
    /// region's serving Deployments to their failover replica counts.
    Scale {
        region: String,
        planned: bool,
    },
    Verify {
        region: String,
        epoch: u64,
    },
    Record,
    Rollback {
        region: String,
    },
    /// Blocked after the point of no return.
    WaitForOperator {
        reason: String,
    },
    /// Terminal.
    Nothing,
}

pub fn action(progress: &Progress) -> Action {
    let plan = &progress.plan;
    if let Some(reason) = &progress.blocked {
        return Action::WaitForOperator {
            reason: reason.clone(),
        };
    }
    let epoch = plan.epoch_after();
    match progress.phase {
        Phase::Quiesce => Action::Quiesce {
            region: plan.from.clone(),
        },
        Phase::StopOld => Action::StopOld {
            region: plan.from.clone(),
        },
        Phase::AwaitReplay => match progress.final_lsn {
            Some(lsn) => Action::AwaitReplay {
                region: plan.to.clone(),
                lsn,
            },
            // Unreachable through `apply`; a hand-edited record says so.
            None => Action::WaitForOperator {
                reason: "the old primary's final position is missing from the progress record"
                    .into(),
            },
        },
        Phase::AwaitFence => Action::AwaitFence {
            region: plan.from.clone(),
        },
        Phase::BumpEpoch => Action::BumpEpoch {
            from: plan.from.clone(),
            to: plan.to.clone(),
            expected_epoch: plan.epoch_before,
            require_lease_gone: (!plan.kind.is_planned()).then(|| plan.from.clone()),
        },
        Phase::Promote => Action::Promote {
            region: plan.to.clone(),
            epoch,
        },
        Phase::FollowOld => Action::FollowOld {
            region: plan.from.clone(),
            new_primary: plan.to.clone(),
        },
        Phase::SwitchDns => Action::SwitchDns {
            from: plan.from.clone(),
            to: plan.to.clone(),
            epoch,
        },
        Phase::Scale => Action::Scale {
            region: if plan.kind.is_planned() {
                plan.from.clone()
            } else {
                plan.to.clone()
            },
            planned: plan.kind.is_planned(),
        },
        Phase::Verify => Action::Verify {
            region: plan.to.clone(),
            epoch,
        },
        Phase::Record => Action::Record,
        Phase::Rollback => Action::Rollback {
            region: plan.from.clone(),
        },
        Phase::Done | Phase::Aborted | Phase::RolledBack => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_796_000_000 + s, 0).unwrap()
    }

    fn plan(kind: Kind) -> Plan {
        Plan {
            kind,
            from: "us-east".into(),
            to: "eu-west".into(),
            epoch_before: 4,
            accept_data_loss: false,
            failure_at: at(0),
            started_by: "test".into(),
            started_at: at(1),
        }
    }

    fn in_phase(kind: Kind, phase: Phase) -> Progress {
        let mut p = Progress::start(plan(kind));
        p.phase = phase;
        p.final_lsn = Some(Lsn(0x3000));
        p
    }

    /// One of each event, with the values a correct step reports.
    fn events() -> Vec<Event> {
        vec![
            Event::Quiesced,
            Event::OldStopped {
                final_lsn: Lsn(0x3000),
            },
            Event::Replayed { lsn: Lsn(0x3028) },
            Event::FenceHeld,
            Event::EpochBumped { epoch: 5 },
            Event::AuthorityIs {
                primary: "eu-west".into(),
                epoch: 5,
            },
            Event::Promoted { lsn: Lsn(0x4000) },
            Event::OldFollowing,
            Event::DnsSwitched,
            Event::Scaled,
            Event::Verified,
            Event::Recorded,
            Event::RolledBack,
            Event::Failed {
                transient: true,
                detail: "timeout".into(),
            },
            Event::Failed {
                transient: false,
                detail: "refused".into(),
            },
            Event::Cancel {
                reason: "operator".into(),
            },
            Event::Resume,
        ]
    }

    /// The phase each (kind, phase, event) leads to; `None` = refused.
    /// Written out as the rules the module doc states, independently of
    /// `apply`'s match.
    fn expected(kind: Kind, phase: Phase, event: &Event) -> Option<Phase> {
        use Phase::*;
        let planned = kind.is_planned();
        let early_end = if planned { Rollback } else { Aborted };
        if phase.is_terminal() {
            return None;
        }
        match event {
            Event::Failed {
                transient: true, ..
            } => Some(phase),
            Event::Failed {
                transient: false, ..
            } => Some(if phase.past_point_of_no_return() || phase == Rollback {
                phase
            } else {
                early_end
            }),
            Event::Cancel { .. } => {
                (!phase.past_point_of_no_return() && phase != Rollback).then_some(early_end)
            }
            // Nothing is blocked in these fixtures.
            Event::Resume => None,
            _ => {
                let wanted: &[(Phase, &str, Phase)] = &[
                    (Quiesce, "quiesced", StopOld),
                    (StopOld, "old-stopped", AwaitReplay),
                    (AwaitReplay, "replayed", BumpEpoch),
                    (AwaitFence, "fence-held", BumpEpoch),
                    (BumpEpoch, "epoch-bumped", Promote),
                    (BumpEpoch, "authority-is", Promote),
                    (
                        Promote,
                        "promoted",
                        if planned { FollowOld } else { SwitchDns },
                    ),
                    (FollowOld, "old-following", SwitchDns),
                    (SwitchDns, "dns-switched", Scale),
                    (Scale, "scaled", Verify),
                    (Verify, "verified", Record),
                    (Record, "recorded", Done),
                    (Rollback, "rolled-back", RolledBack),
                ];
                wanted
                    .iter()
                    .find(|(p, e, _)| *p == phase && *e == event.name())
                    .map(|(_, _, next)| *next)
            }
        }
    }

    #[test]
    fn every_phase_and_event() {
        let mut checked = 0;
        for kind in [Kind::Automatic, Kind::Manual, Kind::Switchover] {
            for phase in Phase::ALL {
                for event in events() {
                    let before = in_phase(kind, phase);
                    let got = apply(&before, &event, at(10));
                    let want = expected(kind, phase, &event);
                    match (&got, want) {
                        (Ok(p), Some(w)) => {
                            assert_eq!(p.phase, w, "{kind:?} {phase:?} {}", event.name())
                        }
                        (Err(_), None) => {}
                        _ => panic!(
                            "{kind:?} {phase:?} {}: got {got:?}, want {want:?}",
                            event.name()
                        ),
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 3 * 15 * 17);
    }

    fn run(kind: Kind, events: &[Event]) -> Progress {
        let mut p = Progress::start(plan(kind));
        for (i, e) in events.iter().enumerate() {
            p = apply(&p, e, at(10 + i as i64)).unwrap_or_else(|r| panic!("{r}"));
        }
        p
    }

    #[test]
    fn a_failover_walks_its_phases_and_records_each_time() {
        let p = run(
            Kind::Automatic,
            &[
                Event::FenceHeld,
                Event::EpochBumped { epoch: 5 },
                Event::Promoted { lsn: Lsn(0x4000) },
                Event::DnsSwitched,
                Event::Scaled,
                Event::Verified,
                Event::Recorded,
            ],
        );
        assert_eq!(p.phase, Phase::Done);
        let phases: Vec<Phase> = p.steps.iter().map(|s| s.phase).collect();
        assert_eq!(
            phases,
            [
                Phase::AwaitFence,
                Phase::BumpEpoch,
                Phase::Promote,
                Phase::SwitchDns,
                Phase::Scale,
                Phase::Verify,
                Phase::Record
            ]
        );
        assert_eq!(p.completed_at(Phase::Promote), Some(at(12)));
        assert_eq!(p.promoted_lsn, Some(Lsn(0x4000)));
    }

    #[test]
    fn a_switchover_walks_its_phases() {
        let p = run(
            Kind::Switchover,
            &[
                Event::Quiesced,
                Event::OldStopped {
                    final_lsn: Lsn(0x3000),
                },
                Event::Replayed { lsn: Lsn(0x3028) },
                Event::EpochBumped { epoch: 5 },
                Event::Promoted { lsn: Lsn(0x4000) },
                Event::OldFollowing,
                Event::DnsSwitched,
                Event::Scaled,
                Event::Verified,
                Event::Recorded,
            ],
        );
        assert_eq!(p.phase, Phase::Done);
        assert_eq!(p.final_lsn, Some(Lsn(0x3000)));
        assert_eq!(p.replayed_lsn, Some(Lsn(0x3028)));
    }

    #[test]
    fn replay_short_of_the_final_position_is_refused() {
        let p = in_phase(Kind::Switchover, Phase::AwaitReplay);
        let r = apply(&p, &Event::Replayed { lsn: Lsn(0x2FFF) }, at(5)).unwrap_err();
        assert!(r.why.contains("short of"), "{r}");
        let mut no_final = p.clone();
        no_final.final_lsn = None;
        assert!(apply(&no_final, &Event::Replayed { lsn: Lsn(0x9000) }, at(5)).is_err());
        assert!(matches!(action(&no_final), Action::WaitForOperator { .. }));
    }

    #[test]
    fn a_bump_to_another_epoch_is_refused() {
        let p = in_phase(Kind::Automatic, Phase::BumpEpoch);
        assert!(apply(&p, &Event::EpochBumped { epoch: 6 }, at(5)).is_err());
        assert!(apply(&p, &Event::EpochBumped { epoch: 4 }, at(5)).is_err());
    }

    #[test]
    fn reading_the_authority_back_after_an_unknown_bump() {
        let p = in_phase(Kind::Automatic, Phase::BumpEpoch);
        // Ours landed: continue.
        let ours = Event::AuthorityIs {
            primary: "eu-west".into(),
            epoch: 5,
        };
        assert_eq!(apply(&p, &ours, at(5)).unwrap().phase, Phase::Promote);
        // Unchanged: refused (the driver sends the CAS again).
        let unchanged = Event::AuthorityIs {
            primary: "us-east".into(),
            epoch: 4,
        };
        let r = apply(&p, &unchanged, at(5)).unwrap_err();
        assert!(r.why.contains("unchanged"), "{r}");
        // Someone else's change: abort, naming it.
        let other = Event::AuthorityIs {
            primary: "ap-south".into(),
            epoch: 5,
        };
        let q = apply(&p, &other, at(5)).unwrap();
        assert_eq!(q.phase, Phase::Aborted);
        assert!(
            q.ended_because
                .unwrap()
                .contains("ap-south is primary at epoch 5")
        );
        // A switchover in the same spot rolls back instead.
        let s = in_phase(Kind::Switchover, Phase::BumpEpoch);
        assert_eq!(apply(&s, &other, at(5)).unwrap().phase, Phase::Rollback);
    }

    #[test]
    fn past_the_bump_a_hard_failure_blocks_and_resume_retries_the_same_phase() {
        let p = in_phase(Kind::Automatic, Phase::SwitchDns);
        let failed = Event::Failed {
            transient: false,
            detail: "REFUSED by the name server".into(),
        };
        let blocked = apply(&p, &failed, at(5)).unwrap();
        assert_eq!(blocked.phase, Phase::SwitchDns);
        assert_eq!(blocked.attempts, 1);
        assert!(
            matches!(action(&blocked), Action::WaitForOperator { reason } if reason.contains("REFUSED"))
        );
        // The step itself may succeed while blocked (an operator fixed it
        // and a resumer tried): that completes the phase.
        assert_eq!(
            apply(&blocked, &Event::DnsSwitched, at(6)).unwrap().phase,
            Phase::Scale
        );
        let resumed = apply(&blocked, &Event::Resume, at(6)).unwrap();
        assert_eq!(resumed.blocked, None);
        assert_eq!(
            action(&resumed),
            Action::SwitchDns {
                from: "us-east".into(),
                to: "eu-west".into(),
                epoch: 5
            }
        );
        assert!(apply(&resumed, &Event::Resume, at(7)).is_err());
    }

    #[test]
    fn transient_failures_count_attempts_and_keep_the_phase() {
        let mut p = in_phase(Kind::Manual, Phase::AwaitFence);
        for n in 1..=3 {
            p = apply(
                &p,
                &Event::Failed {
                    transient: true,
                    detail: format!("etcd timeout {n}"),
                },
                at(n),
            )
            .unwrap();
        }
        assert_eq!((p.phase, p.attempts), (Phase::AwaitFence, 3));
        assert_eq!(p.last_error.as_deref(), Some("etcd timeout 3"));
        let p = apply(&p, &Event::FenceHeld, at(9)).unwrap();
        assert_eq!((p.attempts, p.last_error), (0, None));
    }

    #[test]
    fn actions_name_the_right_regions() {
        let a = |kind, phase| action(&in_phase(kind, phase));
        assert_eq!(
            a(Kind::Automatic, Phase::BumpEpoch),
            Action::BumpEpoch {
                from: "us-east".into(),
                to: "eu-west".into(),
                expected_epoch: 4,
                require_lease_gone: Some("us-east".into())
            }
        );
        // A switchover's old primary keeps its lease (its agent is alive
        // and stopped the server itself).
        assert!(matches!(
            a(Kind::Switchover, Phase::BumpEpoch),
            Action::BumpEpoch {
                require_lease_gone: None,
                ..
            }
        ));
        assert_eq!(
            a(Kind::Automatic, Phase::Scale),
            Action::Scale {
                region: "eu-west".into(),
                planned: false
            }
        );
        assert_eq!(
            a(Kind::Switchover, Phase::Scale),
            Action::Scale {
                region: "us-east".into(),
                planned: true
            }
        );
        assert_eq!(
            a(Kind::Switchover, Phase::FollowOld),
            Action::FollowOld {
                region: "us-east".into(),
                new_primary: "eu-west".into()
            }
        );
        assert_eq!(
            a(Kind::Switchover, Phase::Rollback),
            Action::Rollback {
                region: "us-east".into()
            }
        );
        for phase in [Phase::Done, Phase::Aborted, Phase::RolledBack] {
            assert_eq!(a(Kind::Automatic, phase), Action::Nothing);
        }
    }

    #[test]
    fn progress_survives_json_and_old_records_without_optional_fields() {
        let p = run(
            Kind::Switchover,
            &[
                Event::Quiesced,
                Event::OldStopped {
                    final_lsn: Lsn(0x3000),
                },
            ],
        );
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"phase\":\"await_replay\""), "{json}");
        assert!(json.contains("\"final_lsn\":\"0/3000\""), "{json}");
        let back: Progress = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for k in [
            "final_lsn",
            "replayed_lsn",
            "promoted_lsn",
            "steps",
            "attempts",
            "last_error",
            "blocked",
            "ended_because",
        ] {
            v.as_object_mut().unwrap().remove(k);
        }
        let minimal: Progress = serde_json::from_value(v).unwrap();
        assert_eq!(minimal.phase, Phase::AwaitReplay);
        assert!(minimal.steps.is_empty());
    }
}
