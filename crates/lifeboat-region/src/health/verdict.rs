//! The verdict state machine (pure): one check's status from its probes'
//! outcomes, a region's status from its checks, and the view across vantage
//! points.
//!
//! Route 53's rules, kept here:
//! - a new check is healthy "until there's enough data to determine the
//!   actual status" ([Route 53: how it determines whether a health check is
//!   healthy](https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html));
//!   here: [`CheckState::new`] is healthy with no outcome yet;
//! - the status flips only after `failure_threshold` consecutive results
//!   that disagree with it, in either direction; one agreeing result in
//!   between starts the count again;
//! - across health checkers, an endpoint is healthy when more than 18 % of
//!   them report it healthy ([`consensus`]).
//!
//! A region is healthy when all its checks are (Route 53's calculated health
//! check with `HealthThreshold` = number of children), and a region without
//! checks is healthy (Route 53 treats a record without a health check as
//! healthy).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::outcome::Outcome;

/// Route 53: "If more than 18% of health checkers report that an endpoint is
/// healthy, Route 53 considers it healthy."
pub const CONSENSUS_HEALTHY_PERCENT: usize = 18;

/// One check's status as one vantage point sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    pub healthy: bool,
    /// When `healthy` took its value (when checking began, for the initial
    /// healthy status).
    pub since: DateTime<Utc>,
    /// Consecutive results so far that disagree with `healthy`.
    pub contrary: u32,
    /// The newest outcome; `None` before the first probe.
    pub last_outcome: Option<Outcome>,
    /// When `last_outcome` was observed (when checking began, before).
    pub observed_at: DateTime<Utc>,
}

/// The state after one outcome, and whether the status flipped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Step {
    pub state: CheckState,
    pub flipped: bool,
}

impl CheckState {
    /// A check that has not been probed yet: healthy, as in Route 53.
    pub fn new(now: DateTime<Utc>) -> Self {
        CheckState {
            healthy: true,
            since: now,
            contrary: 0,
            last_outcome: None,
            observed_at: now,
        }
    }

    /// The state after `outcome`, observed at `at`, with `threshold`
    /// consecutive disagreeing results needed to flip (0 is read as 1).
    pub fn observe(&self, outcome: Outcome, at: DateTime<Utc>, threshold: u32) -> Step {
        let threshold = threshold.max(1);
        let agrees = outcome.is_success() == self.healthy;
        let mut next = CheckState {
            healthy: self.healthy,
            since: self.since,
            contrary: 0,
            last_outcome: Some(outcome),
            observed_at: at,
        };
        if agrees {
            return Step {
                state: next,
                flipped: false,
            };
        }
        let contrary = self.contrary.saturating_add(1);
        if contrary >= threshold {
            next.healthy = !self.healthy;
            next.since = at;
            Step {
                state: next,
                flipped: true,
            }
        } else {
            next.contrary = contrary;
            Step {
                state: next,
                flipped: false,
            }
        }
    }
}

/// One check's verdict as published: what, who saw it, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub region: String,
    pub check: String,
    pub healthy: bool,
    /// When the status took its value (see [`CheckState::since`]).
    pub since: DateTime<Utc>,
    /// When the newest outcome was observed.
    pub observed_at: DateTime<Utc>,
    /// The vantage point: the daemon that probed (its region or host name,
    /// as the configuration names it).
    pub observer: String,
    /// `None` before the first probe (the initial healthy status).
    pub last_outcome: Option<Outcome>,
}

impl Verdict {
    pub fn new(region: &str, check: &str, observer: &str, state: &CheckState) -> Self {
        Verdict {
            region: region.to_string(),
            check: check.to_string(),
            healthy: state.healthy,
            since: state.since,
            observed_at: state.observed_at,
            observer: observer.to_string(),
            last_outcome: state.last_outcome.clone(),
        }
    }
}

/// A region's status as one vantage point sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionVerdict {
    pub region: String,
    pub observer: String,
    /// All of the region's checks healthy (or it has none).
    pub healthy: bool,
    /// The checks that are unhealthy, sorted.
    pub unhealthy_checks: Vec<String>,
    /// The newest `observed_at` among the checks; `None` without checks.
    pub observed_at: Option<DateTime<Utc>>,
}

/// `region`'s verdict from `observer`'s check verdicts (the others in
/// `verdicts` are ignored): healthy when every check is healthy.
pub fn region_verdict(region: &str, observer: &str, verdicts: &[Verdict]) -> RegionVerdict {
    let mine: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.region == region && v.observer == observer)
        .collect();
    let mut unhealthy_checks: Vec<String> = mine
        .iter()
        .filter(|v| !v.healthy)
        .map(|v| v.check.clone())
        .collect();
    unhealthy_checks.sort();
    unhealthy_checks.dedup();
    RegionVerdict {
        region: region.to_string(),
        observer: observer.to_string(),
        healthy: unhealthy_checks.is_empty(),
        unhealthy_checks,
        observed_at: mine.iter().map(|v| v.observed_at).max(),
    }
}

/// A region's status across vantage points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consensus {
    /// `None` when no vantage point has a fresh verdict.
    pub healthy: Option<bool>,
    /// Observers with a fresh verdict saying healthy / unhealthy, sorted.
    pub healthy_observers: Vec<String>,
    pub unhealthy_observers: Vec<String>,
    /// Observers whose newest verdict is older than the allowed age (or has
    /// no observation), sorted; not counted.
    pub stale_observers: Vec<String>,
}

/// Route 53's aggregation across health checkers for one region: healthy
/// when more than 18 % of the vantage points with a fresh verdict (observed
/// at most `max_age` before `now`) say healthy. With two vantage points, one
/// healthy view is enough, as in Route 53. `verdicts` of other regions are
/// ignored.
pub fn consensus(
    region: &str,
    verdicts: &[RegionVerdict],
    now: DateTime<Utc>,
    max_age: Duration,
) -> Consensus {
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let mut c = Consensus {
        healthy: None,
        healthy_observers: Vec::new(),
        unhealthy_observers: Vec::new(),
        stale_observers: Vec::new(),
    };
    for v in verdicts.iter().filter(|v| v.region == region) {
        let fresh = v
            .observed_at
            .is_some_and(|t| now.signed_duration_since(t) <= max_age);
        let list = match (fresh, v.healthy) {
            (false, _) => &mut c.stale_observers,
            (true, true) => &mut c.healthy_observers,
            (true, false) => &mut c.unhealthy_observers,
        };
        list.push(v.observer.clone());
    }
    for list in [
        &mut c.healthy_observers,
        &mut c.unhealthy_observers,
        &mut c.stale_observers,
    ] {
        list.sort();
        list.dedup();
    }
    let fresh = c.healthy_observers.len() + c.unhealthy_observers.len();
    if fresh > 0 {
        c.healthy = Some(c.healthy_observers.len() * 100 > CONSENSUS_HEALTHY_PERCENT * fresh);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::super::outcome::{Failure, Success};
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }
    fn ok() -> Outcome {
        Outcome::Success(Success::Status { code: 200 })
    }
    fn bad() -> Outcome {
        Outcome::Failure(Failure::Status { code: 503 })
    }
    fn state(healthy: bool, contrary: u32) -> CheckState {
        CheckState {
            healthy,
            since: t(0),
            contrary,
            last_outcome: Some(if healthy { ok() } else { bad() }),
            observed_at: t(1),
        }
    }

    /// Every reachable state (status × contrary count below the threshold)
    /// × every outcome, for thresholds 1, 2 and 3.
    #[test]
    fn every_state_times_every_outcome() {
        // (threshold, healthy, contrary, outcome ok?, → healthy, contrary, flipped)
        let table: &[(u32, bool, u32, bool, bool, u32, bool)] = &[
            (1, true, 0, true, true, 0, false),
            (1, true, 0, false, false, 0, true),
            (1, false, 0, false, false, 0, false),
            (1, false, 0, true, true, 0, true),
            (2, true, 0, true, true, 0, false),
            (2, true, 0, false, true, 1, false),
            (2, true, 1, true, true, 0, false),
            (2, true, 1, false, false, 0, true),
            (2, false, 0, false, false, 0, false),
            (2, false, 0, true, false, 1, false),
            (2, false, 1, false, false, 0, false),
            (2, false, 1, true, true, 0, true),
            (3, true, 0, true, true, 0, false),
            (3, true, 0, false, true, 1, false),
            (3, true, 1, true, true, 0, false),
            (3, true, 1, false, true, 2, false),
            (3, true, 2, true, true, 0, false),
            (3, true, 2, false, false, 0, true),
            (3, false, 0, false, false, 0, false),
            (3, false, 0, true, false, 1, false),
            (3, false, 1, false, false, 0, false),
            (3, false, 1, true, false, 2, false),
            (3, false, 2, false, false, 0, false),
            (3, false, 2, true, true, 0, true),
        ];
        for &(threshold, healthy, contrary, success, want_healthy, want_contrary, want_flip) in
            table
        {
            let before = state(healthy, contrary);
            let outcome = if success { ok() } else { bad() };
            let step = before.observe(outcome.clone(), t(10), threshold);
            let case = format!(
                "threshold {threshold}, healthy {healthy}, contrary {contrary}, success {success}"
            );
            assert_eq!(step.state.healthy, want_healthy, "{case}");
            assert_eq!(step.state.contrary, want_contrary, "{case}");
            assert_eq!(step.flipped, want_flip, "{case}");
            assert_eq!(step.state.last_outcome, Some(outcome), "{case}");
            assert_eq!(step.state.observed_at, t(10), "{case}");
            let want_since = if want_flip { t(10) } else { t(0) };
            assert_eq!(step.state.since, want_since, "{case}");
        }
    }

    #[test]
    fn threshold_zero_flips_on_the_first_disagreeing_result() {
        let step = state(true, 0).observe(bad(), t(5), 0);
        assert!(step.flipped);
        assert!(!step.state.healthy);
    }

    #[test]
    fn new_check_is_healthy_without_outcome() {
        let s = CheckState::new(t(0));
        assert!(s.healthy);
        assert_eq!(s.last_outcome, None);
        assert_eq!(s.since, t(0));
        let v = Verdict::new("us-east", "web", "eu-west", &s);
        assert!(v.healthy);
        assert_eq!(v.observer, "eu-west");
    }

    /// Interrupted runs never flip: F F S F F F flips at the sixth result
    /// with threshold 3; then S S F S S S flips back at the twelfth.
    #[test]
    fn sequence_needs_consecutive_results() {
        let seq = [
            false, false, true, false, false, false, true, true, false, true, true, true,
        ];
        let mut s = CheckState::new(t(0));
        let mut flips = Vec::new();
        for (i, success) in seq.iter().enumerate() {
            let step = s.observe(if *success { ok() } else { bad() }, t(i as i64 + 1), 3);
            if step.flipped {
                flips.push((i + 1, step.state.healthy));
            }
            s = step.state;
        }
        assert_eq!(flips, vec![(6, false), (12, true)]);
        assert_eq!(s.since, t(12));
    }

    fn verdict(region: &str, check: &str, observer: &str, healthy: bool, at: i64) -> Verdict {
        Verdict {
            region: region.into(),
            check: check.into(),
            healthy,
            since: t(0),
            observed_at: t(at),
            observer: observer.into(),
            last_outcome: Some(if healthy { ok() } else { bad() }),
        }
    }

    #[test]
    fn region_verdict_table() {
        // (checks of us-east seen by eu-west as (name, healthy), → healthy, unhealthy list)
        type Row<'a> = (&'a [(&'a str, bool)], bool, &'a [&'a str]);
        let table: &[Row] = &[
            (&[], true, &[]),
            (&[("web", true)], true, &[]),
            (&[("web", false)], false, &["web"]),
            (&[("web", true), ("api", true)], true, &[]),
            (&[("web", true), ("api", false)], false, &["api"]),
            (&[("web", false), ("api", false)], false, &["api", "web"]),
        ];
        for (checks, want, want_unhealthy) in table {
            let mut vs: Vec<Verdict> = checks
                .iter()
                .enumerate()
                .map(|(i, (c, h))| verdict("us-east", c, "eu-west", *h, i as i64 + 1))
                .collect();
            // Other regions' and other observers' verdicts are ignored.
            vs.push(verdict("eu-west", "web", "eu-west", false, 50));
            vs.push(verdict("us-east", "web", "us-east", false, 60));
            let r = region_verdict("us-east", "eu-west", &vs);
            assert_eq!(r.healthy, *want, "{checks:?}");
            assert_eq!(r.unhealthy_checks, *want_unhealthy, "{checks:?}");
            let want_at = if checks.is_empty() {
                None
            } else {
                Some(t(checks.len() as i64))
            };
            assert_eq!(r.observed_at, want_at, "{checks:?}");
        }
    }

    fn rv(region: &str, observer: &str, healthy: bool, at: Option<i64>) -> RegionVerdict {
        RegionVerdict {
            region: region.into(),
            observer: observer.into(),
            healthy,
            unhealthy_checks: Vec::new(),
            observed_at: at.map(t),
        }
    }

    #[test]
    fn consensus_table() {
        let max_age = Duration::from_secs(60);
        let now = t(100);
        // (observers as (name, healthy, observed at), → healthy, stale)
        type Row<'a> = (
            &'a [(&'a str, bool, Option<i64>)],
            Option<bool>,
            &'a [&'a str],
        );
        let table: &[Row] = &[
            (&[], None, &[]),
            (&[("a", true, Some(90))], Some(true), &[]),
            (&[("a", false, Some(90))], Some(false), &[]),
            // Two vantage points: one healthy view is 50 % > 18 %.
            (
                &[("a", true, Some(90)), ("b", false, Some(90))],
                Some(true),
                &[],
            ),
            // 1 of 5 is 20 % > 18 %: healthy.
            (
                &[
                    ("a", true, Some(90)),
                    ("b", false, Some(90)),
                    ("c", false, Some(90)),
                    ("d", false, Some(90)),
                    ("e", false, Some(90)),
                ],
                Some(true),
                &[],
            ),
            // 1 of 6 is 16.7 % ≤ 18 %: unhealthy.
            (
                &[
                    ("a", true, Some(90)),
                    ("b", false, Some(90)),
                    ("c", false, Some(90)),
                    ("d", false, Some(90)),
                    ("e", false, Some(90)),
                    ("f", false, Some(90)),
                ],
                Some(false),
                &[],
            ),
            // Stale or never observed views do not count.
            (
                &[("a", true, Some(10)), ("b", false, Some(90))],
                Some(false),
                &["a"],
            ),
            (&[("a", true, None)], None, &["a"]),
            // Exactly max_age old is still fresh.
            (&[("a", true, Some(40))], Some(true), &[]),
        ];
        for (views, want, want_stale) in table {
            let mut vs: Vec<RegionVerdict> = views
                .iter()
                .map(|(o, h, at)| rv("us-east", o, *h, *at))
                .collect();
            vs.push(rv("eu-west", "z", false, Some(99)));
            let c = consensus("us-east", &vs, now, max_age);
            assert_eq!(c.healthy, *want, "{views:?}");
            assert_eq!(c.stale_observers, *want_stale, "{views:?}");
        }
    }

    #[test]
    fn verdict_round_trips_through_json() {
        let v = verdict("us-east", "web", "eu-west", false, 7);
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.contains("\"observer\":\"eu-west\""), "{json}");
        assert!(json.contains("\"kind\":\"status\""), "{json}");
        let back: Verdict = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
