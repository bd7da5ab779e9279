//! Whether the primary region has failed, and whether a standby may be
//! promoted automatically. Pure: the daemon gathers an [`Observation`] (the
//! verdicts its peers published, the primary's lease, each standby's lag)
//! and acts on the [`Decision`].
//!
//! A failure is confirmed, not guessed: a *majority of the vantage points
//! outside the primary region* (the other regions' daemons and the witness)
//! must see the primary region's health checks failed, and the primary's
//! lease must be gone (its agent fenced it, or it is dead and its watchdog
//! stopped the server). A vantage point that published no verdict counts as
//! not seeing a failure, so a partitioned standby region alone can never
//! confirm one (it is one vote of two).
//!
//! The lag guard: a standby whose newest replayed heartbeat was older than
//! the region-failure RPO objective when the failure was confirmed is not
//! promoted automatically; the decision names the command an operator can
//! run to accept the loss.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one vantage point outside the primary region says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// The vantage point (a region's daemon or `witness`).
    pub from: String,
    /// `Some(true)`: its checks of the primary region failed (per the
    /// thresholds); `Some(false)`: healthy; `None`: no verdict published
    /// (absent daemon, stale report).
    pub primary_failed: Option<bool>,
}

/// A standby that could be promoted.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub region: String,
    /// Its server answers and is a standby (in recovery).
    pub reachable: bool,
    /// Age of its newest replayed heartbeat from the primary region when
    /// the failure was confirmed (`None`: never replayed one).
    pub heartbeat_age: Option<Duration>,
    /// The last byte lag reported for it, recorded beside the age.
    pub byte_lag: Option<u64>,
}

/// Everything the decision reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub primary: String,
    /// The vantage points configured outside the primary region (regions
    /// with a daemon, and the witness); votes from others are ignored.
    pub vantage_points: Vec<String>,
    pub votes: Vec<Vote>,
    /// The primary region's lease key exists in etcd.
    pub primary_lease_alive: bool,
    /// Standbys of the primary, in configured preference order.
    pub candidates: Vec<Candidate>,
    /// The region-failure RPO objective.
    pub rpo_objective: Duration,
    /// `failover.automatic` in the configuration.
    pub automatic: bool,
}

/// What to do about the primary region.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Not a majority sees it failed.
    Healthy { failed_votes: usize, needed: usize },
    /// A majority sees it failed, but its lease lives: its agent still
    /// renews (a partition between the checkers and the primary that etcd
    /// does not share), so promotion would risk two primaries.
    AwaitLease { confirmed_by: Vec<String> },
    /// Confirmed; promote `to`.
    Failover {
        to: String,
        confirmed_by: Vec<String>,
        heartbeat_age: Duration,
        byte_lag: Option<u64>,
    },
    /// Confirmed, but nothing may be promoted automatically; `why` says
    /// what an operator can do.
    Refused { why: String },
}

/// What confirmed an automatic failover, kept in its progress and its
/// record: who voted the primary failed, and the lag guard's inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The vantage points whose votes made the majority, sorted.
    pub confirmed_by: Vec<String>,
    /// When the deciding daemon saw the majority and the lease gone.
    pub confirmed_at: DateTime<Utc>,
    /// The promoted standby's newest replayed heartbeat's age then, in ms.
    pub heartbeat_age_ms: u64,
    /// The standby's last byte lag reported before the failure.
    pub byte_lag: Option<u64>,
    /// The daemon that decided (`daemon@<observer>`).
    pub decided_by: String,
}

/// The number of votes that make a majority of `n` vantage points.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

pub fn decide(o: &Observation) -> Decision {
    let confirmed_by: Vec<String> = o
        .vantage_points
        .iter()
        .filter(|vp| **vp != o.primary)
        .filter(|vp| {
            o.votes
                .iter()
                .any(|v| &v.from == *vp && v.primary_failed == Some(true))
        })
        .cloned()
        .collect();
    let voters = o
        .vantage_points
        .iter()
        .filter(|vp| **vp != o.primary)
        .count();
    let needed = majority(voters);
    if voters == 0 || confirmed_by.len() < needed {
        return Decision::Healthy {
            failed_votes: confirmed_by.len(),
            needed,
        };
    }
    if o.primary_lease_alive {
        return Decision::AwaitLease { confirmed_by };
    }
    let mut reasons = Vec::new();
    for c in &o.candidates {
        if c.region == o.primary {
            continue;
        }
        if !c.reachable {
            reasons.push(format!(
                "{}: its server does not answer as a standby",
                c.region
            ));
            continue;
        }
        let Some(age) = c.heartbeat_age else {
            reasons.push(format!(
                "{}: it has replayed no heartbeat from {}, so its data loss is unknown",
                c.region, o.primary
            ));
            continue;
        };
        if age > o.rpo_objective {
            reasons.push(format!(
                "{}: its newest replayed heartbeat is {}s old, beyond the region-failure RPO objective of {}s",
                c.region,
                age.as_secs(),
                o.rpo_objective.as_secs()
            ));
            continue;
        }
        if !o.automatic {
            return Decision::Refused {
                why: format!(
                    "automatic failover is off (failover.automatic: false); to promote {} run: lifeboat region failover --to {}",
                    c.region, c.region
                ),
            };
        }
        return Decision::Failover {
            to: c.region.clone(),
            confirmed_by,
            heartbeat_age: age,
            byte_lag: c.byte_lag,
        };
    }
    let force = o
        .candidates
        .iter()
        .find(|c| c.region != o.primary && c.reachable)
        .map(|c| {
            format!(
                "; to promote anyway and accept the loss run: lifeboat region failover --to {} --accept-data-loss",
                c.region
            )
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        reasons.push(format!("no standby of {} is configured", o.primary));
    }
    Decision::Refused {
        why: format!(
            "no standby may be promoted automatically: {}{force}",
            reasons.join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(from: &str, failed: Option<bool>) -> Vote {
        Vote {
            from: from.into(),
            primary_failed: failed,
        }
    }

    fn cand(region: &str, age: Option<u64>) -> Candidate {
        Candidate {
            region: region.into(),
            reachable: true,
            heartbeat_age: age.map(Duration::from_secs),
            byte_lag: Some(512),
        }
    }

    fn obs(votes: Vec<Vote>, lease: bool, candidates: Vec<Candidate>) -> Observation {
        Observation {
            primary: "us-east".into(),
            vantage_points: vec!["eu-west".into(), "witness".into()],
            votes,
            primary_lease_alive: lease,
            candidates,
            rpo_objective: Duration::from_secs(300),
            automatic: true,
        }
    }

    #[test]
    fn majorities() {
        for (n, m) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)] {
            assert_eq!(majority(n), m, "{n}");
        }
    }

    #[test]
    fn decision_table() {
        let both = || vec![vote("eu-west", Some(true)), vote("witness", Some(true))];
        let ok = || vec![cand("eu-west", Some(3))];
        type Row = (&'static str, Observation, &'static str);
        let rows: Vec<Row> = vec![
            ("no votes", obs(vec![], false, ok()), "healthy"),
            (
                "one of two (standby region partitioned from the primary)",
                obs(
                    vec![vote("eu-west", Some(true)), vote("witness", Some(false))],
                    false,
                    ok(),
                ),
                "healthy",
            ),
            (
                "one of two, the other silent",
                obs(
                    vec![vote("eu-west", Some(true)), vote("witness", None)],
                    false,
                    ok(),
                ),
                "healthy",
            ),
            (
                "a vote from the primary itself does not count",
                obs(
                    vec![vote("eu-west", Some(true)), vote("us-east", Some(true))],
                    false,
                    ok(),
                ),
                "healthy",
            ),
            (
                "a vote from an unknown vantage point does not count",
                obs(
                    vec![vote("eu-west", Some(true)), vote("mallory", Some(true))],
                    false,
                    ok(),
                ),
                "healthy",
            ),
            (
                "majority but lease alive",
                obs(both(), true, ok()),
                "await-lease",
            ),
            ("confirmed", obs(both(), false, ok()), "failover:eu-west"),
            (
                "lag beyond the objective",
                obs(both(), false, vec![cand("eu-west", Some(301))]),
                "refused",
            ),
            (
                "lag exactly at the objective",
                obs(both(), false, vec![cand("eu-west", Some(300))]),
                "failover:eu-west",
            ),
            (
                "never replayed a heartbeat",
                obs(both(), false, vec![cand("eu-west", None)]),
                "refused",
            ),
            (
                "unreachable standby, a second one fine",
                obs(
                    both(),
                    false,
                    vec![
                        Candidate {
                            reachable: false,
                            ..cand("eu-west", Some(1))
                        },
                        cand("ap-south", Some(9)),
                    ],
                ),
                "failover:ap-south",
            ),
            ("no standby", obs(both(), false, vec![]), "refused"),
        ];
        for (name, o, want) in rows {
            let got = match decide(&o) {
                Decision::Healthy { .. } => "healthy".to_string(),
                Decision::AwaitLease { .. } => "await-lease".to_string(),
                Decision::Failover { to, .. } => format!("failover:{to}"),
                Decision::Refused { .. } => "refused".to_string(),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn refusals_say_what_to_run() {
        let o = obs(
            vec![vote("eu-west", Some(true)), vote("witness", Some(true))],
            false,
            vec![cand("eu-west", Some(900))],
        );
        let Decision::Refused { why } = decide(&o) else {
            panic!()
        };
        assert!(why.contains("900s old"), "{why}");
        assert!(
            why.contains("lifeboat region failover --to eu-west --accept-data-loss"),
            "{why}"
        );
        let off = Observation {
            automatic: false,
            candidates: vec![cand("eu-west", Some(1))],
            ..o
        };
        let Decision::Refused { why } = decide(&off) else {
            panic!()
        };
        assert!(why.contains("failover.automatic: false"), "{why}");
        assert!(
            why.contains("lifeboat region failover --to eu-west"),
            "{why}"
        );
    }

    #[test]
    fn three_regions_and_a_witness_need_two_of_three() {
        let mut o = obs(
            vec![vote("eu-west", Some(true)), vote("ap-south", Some(true))],
            false,
            vec![cand("eu-west", Some(2))],
        );
        o.vantage_points = vec!["eu-west".into(), "ap-south".into(), "witness".into()];
        assert!(
            matches!(decide(&o), Decision::Failover { ref confirmed_by, .. } if confirmed_by.len() == 2)
        );
        o.votes.pop();
        assert!(matches!(
            decide(&o),
            Decision::Healthy {
                failed_votes: 1,
                needed: 2
            }
        ));
    }
}
