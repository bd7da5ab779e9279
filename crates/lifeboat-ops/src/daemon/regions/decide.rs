//! The daemon's region decisions, pure (tested with tables): which
//! observed primary a standby streams from and its lag as the metrics give
//! it. (The steering verdict across vantage points is
//! `region::verdicts::steering`, shared with `region traffic`.)

use std::collections::BTreeMap;

use lifeboat_region::replication::{Observed, Role, StandbyLag, standby_lag};

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
/// region name, as `region replicate` sets it, or by the region's slot:
/// `ReplicaRow::serves`), else the only primary
/// observed, else none (no primary, or several and none lists it).
pub fn primary_for<'a>(standby: &str, observed: &'a [(String, Observed)]) -> Option<&'a str> {
    let primaries: Vec<&(String, Observed)> = observed
        .iter()
        .filter(|(_, o)| o.role == Role::Primary)
        .collect();
    let listing = primaries.iter().find(|(_, o)| {
        o.primary
            .as_ref()
            .is_some_and(|p| p.replicas.iter().any(|r| r.serves(standby)))
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
