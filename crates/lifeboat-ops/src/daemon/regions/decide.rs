//! The daemon's region decisions, pure (tested with tables): which
//! observed primary a standby streams from and its lag as the metrics give
//! it, and the verdict per region the steering loop applies from every
//! fresh vantage point's view.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_region::replication::{Observed, Role, StandbyLag, standby_lag};
use lifeboat_region::traffic::Verdicts;

/// One standby region's replication, as the lag metrics export it. `None`
/// values are unknown (the server was not reached or did not say).
#[derive(Clone, Debug, PartialEq)]
pub struct StandbyPoint {
    pub region: String,
    /// The region observed primary that it was measured against.
    pub primary: Option<String>,
    /// The primary lists it `streaming` in `pg_stat_replication` (or, with
    /// no primary observed, its WAL receiver says `streaming`).
    pub streaming: bool,
    /// Replay lag: `pg_stat_replication.replay_lag` on the primary (0 when
    /// caught up), else the standby's `now()` − last replayed commit.
    pub lag_seconds: Option<f64>,
    /// WAL not yet replayed: primary's current LSN − standby's replay LSN.
    pub lag_bytes: Option<u64>,
    /// The standby's `now()` − the newest heartbeat it replayed.
    pub heartbeat_age_seconds: Option<f64>,
}

impl StandbyPoint {
    fn from_lag(region: &str, primary: Option<&str>, lag: &StandbyLag) -> Self {
        StandbyPoint {
            region: region.to_string(),
            primary: primary.map(String::from),
            streaming: lag.streaming,
            lag_seconds: lag
                .from_primary
                .and_then(|l| l.seconds)
                .or_else(|| lag.from_standby.and_then(|l| l.seconds)),
            lag_bytes: lag.bytes(),
            heartbeat_age_seconds: lag.heartbeat_age_seconds,
        }
    }
}

/// The region observed primary that `standby` streams from: the one whose
/// `pg_stat_replication` lists it (by `application_name`, the standby's
/// region name, as `region replicate` sets it), else the only primary
/// observed, else none (no primary, or several and none lists it).
pub fn primary_for<'a>(standby: &str, observed: &'a [(String, Observed)]) -> Option<&'a str> {
    let primaries: Vec<&(String, Observed)> = observed
        .iter()
        .filter(|(_, o)| o.role == Role::Primary)
        .collect();
    let listing = primaries.iter().find(|(_, o)| {
        o.primary
            .as_ref()
            .is_some_and(|p| p.replicas.iter().any(|r| r.application_name == standby))
    });
    match (listing, primaries.as_slice()) {
        (Some((name, _)), _) => Some(name),
        (None, [(name, _)]) => Some(name),
        _ => None,
    }
}

/// Every region observed as a standby, with its lag; `heartbeats` holds
/// the age of the newest heartbeat each standby replayed (when read).
/// Primaries and unreachable servers have no point: a region that is not a
/// standby now has no replication lag to report.
pub fn standby_points(
    observed: &[(String, Observed)],
    heartbeats: &BTreeMap<String, f64>,
) -> Vec<StandbyPoint> {
    observed
        .iter()
        .filter(|(_, o)| o.role == Role::Standby)
        .map(|(region, o)| {
            let primary = primary_for(region, observed);
            let p_obs = primary.and_then(|p| observed.iter().find(|(n, _)| n == p).map(|x| &x.1));
            let lag = standby_lag(p_obs, o, region, heartbeats.get(region).copied());
            StandbyPoint::from_lag(region, primary, &lag)
        })
        .collect()
}

/// One vantage point's view of one region, as published (or this daemon's
/// own, from memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub observer: String,
    pub region: String,
    pub healthy: bool,
    /// When the observer last probed the region.
    pub observed_at: DateTime<Utc>,
}

/// Why a region got its steering verdict: the fresh observers counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub healthy: Vec<String>,
    pub unhealthy: Vec<String>,
}

/// The verdict per region the steering loop applies: a region is unhealthy
/// when a strict majority of the observers with a fresh view (probed at
/// most `max_age` before `now`) say so; a region nobody has a fresh view of
/// gets no verdict (it then counts as healthy, as in Route 53). `own` is
/// this daemon's view, from memory: it replaces what `published` holds for
/// the same observer and is always fresh. A tie counts healthy: one
/// observer cut off from a region cannot take it out of DNS alone when
/// another sees it answer.
pub fn steering_verdicts(
    regions: &[String],
    own: &[View],
    published: &[View],
    now: DateTime<Utc>,
    max_age: Duration,
) -> (Verdicts, BTreeMap<String, Tally>) {
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let own_observers: Vec<&str> = own.iter().map(|v| v.observer.as_str()).collect();
    let mut verdicts = Verdicts::new();
    let mut tallies = BTreeMap::new();
    for region in regions {
        // The newest view per observer.
        let mut newest: BTreeMap<&str, &View> = BTreeMap::new();
        let candidates = own.iter().filter(|v| &v.region == region).chain(
            published
                .iter()
                .filter(|v| &v.region == region && !own_observers.contains(&v.observer.as_str()))
                .filter(|v| now - v.observed_at <= max_age),
        );
        for v in candidates {
            let e = newest.entry(v.observer.as_str()).or_insert(v);
            if v.observed_at > e.observed_at {
                *e = v;
            }
        }
        if newest.is_empty() {
            continue;
        }
        let mut t = Tally {
            healthy: Vec::new(),
            unhealthy: Vec::new(),
        };
        for (obs, v) in &newest {
            if v.healthy {
                t.healthy.push(obs.to_string());
            } else {
                t.unhealthy.push(obs.to_string());
            }
        }
        verdicts.insert(region.clone(), t.unhealthy.len() * 2 <= newest.len());
        tallies.insert(region.clone(), t);
    }
    (verdicts, tallies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn v(observer: &str, region: &str, healthy: bool, at: i64) -> View {
        View {
            observer: observer.into(),
            region: region.into(),
            healthy,
            observed_at: t(at),
        }
    }

    #[test]
    fn steering_verdicts_table() {
        let regions = vec!["us-east".to_string(), "eu-west".to_string()];
        let max_age = Duration::from_secs(60);
        // (own views, published views, want verdicts)
        type Row = (Vec<View>, Vec<View>, Vec<(&'static str, bool)>);
        let table: Vec<Row> = vec![
            // Only this daemon's view: its own verdicts.
            (
                vec![
                    v("us-east", "us-east", true, 100),
                    v("us-east", "eu-west", false, 100),
                ],
                vec![],
                vec![("us-east", true), ("eu-west", false)],
            ),
            // Two observers disagree: a tie counts healthy.
            (
                vec![v("us-east", "eu-west", false, 100)],
                vec![v("eu-west", "eu-west", true, 90)],
                vec![("eu-west", true)],
            ),
            // Two of two say unhealthy.
            (
                vec![v("us-east", "eu-west", false, 100)],
                vec![v("eu-west", "eu-west", false, 90)],
                vec![("eu-west", false)],
            ),
            // Two of three say unhealthy.
            (
                vec![v("a", "eu-west", true, 100)],
                vec![v("b", "eu-west", false, 90), v("c", "eu-west", false, 95)],
                vec![("eu-west", false)],
            ),
            // A stale view is not counted: own view alone decides.
            (
                vec![v("us-east", "eu-west", true, 100)],
                vec![
                    v("eu-west", "eu-west", false, 30),
                    v("x", "eu-west", false, 39),
                ],
                vec![("eu-west", true)],
            ),
            // Own published view is replaced by the one from memory.
            (
                vec![v("us-east", "eu-west", true, 100)],
                vec![v("us-east", "eu-west", false, 99)],
                vec![("eu-west", true)],
            ),
            // The newest published view per observer counts.
            (
                vec![],
                vec![v("b", "eu-west", true, 80), v("b", "eu-west", false, 90)],
                vec![("eu-west", false)],
            ),
            // No fresh view: no verdict; unknown regions ignored.
            (
                vec![],
                vec![v("b", "ap-south", false, 100), v("b", "eu-west", false, 10)],
                vec![],
            ),
        ];
        for (own, published, want) in table {
            let (got, _) = steering_verdicts(&regions, &own, &published, t(100), max_age);
            let want: Verdicts = want.iter().map(|(r, h)| (r.to_string(), *h)).collect();
            assert_eq!(got, want, "own {own:?} published {published:?}");
        }
    }
}
