//! The regions as `status`, the status page and `/api/v1/assessment` show
//! them ([`lifeboat_dr::regions`]): every region's server as observed in
//! one round, and with `failover:` the authority read from etcd (primary,
//! epoch, live leases, a change under way, the newest change that ended).
//! etcd unreachable is shown, not an error: the status is wanted most when
//! something is down.

use lifeboat_dr::regions::{
    self, AuthorityOverview, ChangeUnderWay, LastChange, LeaseRow, RegionRow, RegionsOverview,
};
use lifeboat_region::failover::machine::Progress;
use lifeboat_region::failover::record::FailoverRecord;
use lifeboat_region::replication::Role;

use crate::config::Config;
use crate::context::Ctx;
use crate::daemon::regions::watch::Round;
use crate::region::failover::authority;

/// How many failover records are read to find the newest that ended.
const RECORDS_READ: usize = 5;

/// The overview from `round` (every region observed) and, with
/// `failover:`, etcd read now.
pub async fn gather(ctx: &Ctx, cfg: &Config, round: &Round) -> RegionsOverview {
    let points = round.standbys();
    let rows: Vec<RegionRow> = cfg
        .regions_in_file_order()
        .into_iter()
        .map(|(name, r)| {
            let p = points.iter().find(|p| p.region == name);
            let (observed, reason) = match round.role(name) {
                Some(Role::Primary) => ("primary", None),
                Some(Role::Standby) => ("standby", None),
                Some(Role::Unreachable { reason, .. }) => ("unreachable", Some(reason.clone())),
                None => ("unreachable", Some("not observed".to_string())),
            };
            RegionRow {
                name: name.to_string(),
                declared_role: r.postgres.role().to_string(),
                observed_role: observed.to_string(),
                streaming: p.is_some_and(|p| p.streaming),
                lag_seconds: p.and_then(|p| p.lag_seconds),
                lag_bytes: p.and_then(|p| p.lag_bytes),
                heartbeat_age_seconds: p.and_then(|p| p.heartbeat_age_seconds),
                reason,
            }
        })
        .collect();
    let authority = match cfg.failover {
        None => None,
        Some(_) => Some(authority_overview(ctx).await),
    };
    let warnings = regions::warnings(&rows, authority.as_ref());
    RegionsOverview {
        regions: rows,
        authority,
        warnings,
    }
}

async fn authority_overview(ctx: &Ctx) -> AuthorityOverview {
    let view = match authority::view(ctx, RECORDS_READ).await {
        Ok(v) => v,
        Err(e) => {
            return AuthorityOverview {
                error: Some(e.to_string()),
                primary: None,
                epoch: None,
                changed_at: None,
                changed_by: None,
                leases: Vec::new(),
                under_way: None,
                last_change: None,
            };
        }
    };
    let a = view.authority.as_ref();
    AuthorityOverview {
        error: None,
        primary: a.map(|a| a.primary.clone()),
        epoch: a.map(|a| a.epoch),
        changed_at: a.map(|a| a.changed_at),
        changed_by: a.map(|a| a.changed_by.clone()),
        leases: view
            .leases
            .iter()
            .map(|l| LeaseRow {
                region: l.region.clone(),
                holder: l
                    .holder
                    .as_ref()
                    .map(|h| format!("{} pid {}", h.host, h.pid)),
                ttl_remaining_seconds: l.ttl_remaining_seconds,
            })
            .collect(),
        under_way: view.progress.as_ref().and_then(under_way),
        last_change: view.failovers.first().map(last_change),
    }
}

fn under_way(p: &Progress) -> Option<ChangeUnderWay> {
    if p.phase.is_terminal() {
        return None;
    }
    Some(ChangeUnderWay {
        kind: p.plan.kind.as_str().to_string(),
        from: p.plan.from.clone(),
        to: p.plan.to.clone(),
        phase: p.phase.as_str().to_string(),
        started_at: p.plan.started_at,
        blocked: p.blocked.clone(),
    })
}

fn last_change(r: &FailoverRecord) -> LastChange {
    LastChange {
        kind: r.kind.as_str().to_string(),
        from: r.from.clone(),
        to: r.to.clone(),
        epoch: r.epoch,
        outcome: r.outcome.clone(),
        started_at: r.started_at,
        rto_seconds: r.rto_dns_seconds.or(r.rto_writes_seconds),
        rpo_seconds: r.rpo_seconds,
        rpo_exact: r.rpo_exact,
        rto_objective_seconds: r.objectives.map(|o| o.rto_seconds),
        rpo_objective_seconds: r.objectives.map(|o| o.rpo_seconds),
        met: r.met,
    }
}
