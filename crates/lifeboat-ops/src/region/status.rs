//! `region status`: each region as its servers say it is (role from
//! `pg_is_in_recovery()` and the system identifier, never the config; for a
//! Patroni or CloudNativePG region also its manager's view: Patroni's
//! `/patroni` and `/cluster` roles, the `Cluster`'s replica status), its
//! replication lag and newest replayed heartbeat, every vantage point's
//! health verdicts, the age of the region's repository copy and its Redis
//! replication; and one overall verdict ([`judge`], pure).
//!
//! Verdicts and exit codes (docs/exit-codes.md, "Regions"): healthy (0);
//! degraded (10, `at_risk`): a standby's lag over the region-failure RPO
//! objective, a standby not streaming or unreachable, a region unhealthy,
//! a Redis replica's link down; broken (1, `failure`): no primary observed,
//! two primaries observed, every region unhealthy.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_region::health::{Consensus, RegionVerdict};
use lifeboat_region::heartbeat::{self, Seen};
use lifeboat_region::redis::{self as lredis, LinkStatus, ReplicationInfo};
use lifeboat_region::replication::{
    Observed, Retry, Role, Server, StandbyLag, observe, standby_lag,
};
use lifeboat_repo::Repository;
use serde::Serialize;

use super::traffic::config_of;
use super::verdicts::{self, ObserverView};
use crate::config::{PgManager, RegionConfig, RegionRepository};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Healthy,
    Degraded,
    Broken,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Broken => "broken",
        }
    }
}

/// The repository copy of a region.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RepositoryCopy {
    NotConfigured,
    /// Opened; the newest snapshot's time (none yet: `None`).
    Opened {
        url: String,
        snapshots: usize,
        newest: Option<DateTime<Utc>>,
        age_seconds: Option<i64>,
    },
    /// Configured but could not be opened or read.
    Unreadable {
        url: String,
        error: String,
    },
}

/// A region's Redis as `INFO replication` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RedisState {
    pub url: String,
    pub info: Option<ReplicationInfo>,
    pub summary: Option<String>,
    pub error: Option<String>,
}

impl RedisState {
    /// A replica whose link to its primary is not up, or a Redis not read.
    pub fn link_down(&self) -> bool {
        match &self.info {
            Some(i) => i
                .master_link_status
                .as_ref()
                .is_some_and(|l| *l != LinkStatus::Up),
            None => true,
        }
    }
}

/// What a region's manager says about it (shown next to what its server
/// says; the verdict stays the server's).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "manager", rename_all = "snake_case")]
pub enum ManagerView {
    Patroni(super::patroni::PatroniView),
    Cnpg(super::cnpg::CnpgView),
}

impl ManagerView {
    pub fn summary(&self) -> String {
        match self {
            ManagerView::Patroni(v) => v.summary(),
            ManagerView::Cnpg(v) => v.summary(),
        }
    }

    /// The name a Patroni standby cluster's leader streams as.
    pub fn standby_leader(&self) -> Option<&str> {
        use lifeboat_region::managers::patroni::StandbyState;
        match self {
            ManagerView::Patroni(v) => match v.standby.as_ref()? {
                StandbyState::Running { standby_leader }
                | StandbyState::NotRunning { standby_leader, .. } => Some(standby_leader.as_str()),
                _ => None,
            },
            ManagerView::Cnpg(_) => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            ManagerView::Patroni(v) => v.error.as_deref(),
            ManagerView::Cnpg(v) => v.error.as_deref(),
        }
    }
}

/// One region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    pub name: String,
    /// `primary` / `standby` as the config declares it.
    pub declared_role: String,
    pub manager: String,
    pub replicates_from: Option<String>,
    /// As the server says.
    pub observed: Observed,
    /// As its manager says (`patroni`, `cnpg`; none for `postgres`).
    pub manager_view: Option<ManagerView>,
    /// For a server in recovery (or declared standby): its lag, from the
    /// primary's `pg_stat_replication`, its own view, and its heartbeat.
    pub lag: Option<StandbyLag>,
    /// The newest heartbeat this server has (replayed, on a standby).
    pub heartbeat: Option<Seen>,
    pub heartbeat_error: Option<String>,
    /// Every vantage point's verdict on this region.
    pub health: Vec<RegionVerdict>,
    /// The view across fresh vantage points.
    pub consensus: Consensus,
    pub repository: RepositoryCopy,
    pub redis: Option<RedisState>,
}

impl RegionStatus {
    pub fn role(&self) -> &Role {
        &self.observed.role
    }
}

/// `region status`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub at: DateTime<Utc>,
    pub regions: Vec<RegionStatus>,
    /// The vantage points that published verdicts (sorted), with when.
    pub observers: Vec<super::traffic::ObserverSeen>,
    /// The region-failure RPO objective the lag is judged against.
    pub lag_objective_seconds: Option<i64>,
    pub verdict: Overall,
    pub reasons: Vec<String>,
    /// What does not change the verdict but should be fixed: a server with
    /// neither `wal_log_hints` nor data checksums (a rejoin after a
    /// failover must then clone it afresh; docs/failover.md, "Rejoin").
    pub warnings: Vec<String>,
}

/// Gathers the status of every configured region.
pub async fn status(ctx: &Ctx) -> Result<StatusReport> {
    let config = config_of(ctx)?;
    if config.regions().is_empty() {
        return Err(Error::usage(
            "the configuration has no `regions:` section; see docs/regions/topology.md",
        ));
    }
    let at = Utc::now();
    let ordered = config.regions_in_file_order();

    // One after the other: each observation is bounded by its connect
    // timeout and retries.
    let mut observations = Vec::new();
    for (name, r) in &ordered {
        observations.push(match super::conn::region_conn(ctx, r).await {
            Ok(conn) => {
                let server = Server {
                    name: name.to_string(),
                    conn: conn.clone(),
                };
                let o = observe(&server, Retry::default()).await;
                (Some(conn), o)
            }
            Err(e) => (None, unreachable(name, &e.to_string())),
        });
    }

    // Verdicts: read from the main repository; not fatal when it cannot be
    // opened (status of the servers is still worth showing).
    let (views, views_error) = match read_views(ctx).await {
        Ok(v) => (v, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let names: Vec<String> = ordered.iter().map(|(n, _)| n.to_string()).collect();
    let rv = verdicts::region_verdicts(&views, &names);
    let consensus =
        verdicts::consensus_by_region(&views, &names, at, super::traffic::max_view_age(config));

    let primary_obs: Option<&Observed> = {
        let primaries: Vec<&Observed> = observations
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.role == Role::Primary)
            .collect();
        (primaries.len() == 1).then(|| primaries[0])
    };

    let mut regions = Vec::new();
    for ((name, r), (conn, observed)) in ordered.iter().zip(observations.iter()) {
        let (hb, hb_err) = match (conn, &observed.role) {
            (Some(c), Role::Primary | Role::Standby) => match heartbeat::read(c, None).await {
                Ok(s) => (s, None),
                Err(e) => (None, Some(e.to_string())),
            },
            _ => (None, None),
        };
        let is_standby = observed.role == Role::Standby
            || (r.postgres.role() == crate::config::DeclaredRole::Standby
                && observed.role != Role::Primary);
        let manager_view = manager_view(ctx, name, r).await;
        // The primary's pg_stat_replication names a Patroni standby by its
        // standby leader's member name, a plain standby by its region's.
        let application_name = manager_view
            .as_ref()
            .and_then(ManagerView::standby_leader)
            .unwrap_or(*name);
        let lag = is_standby.then(|| {
            standby_lag(
                primary_obs,
                observed,
                application_name,
                hb.as_ref().map(|s| s.age_seconds),
            )
        });
        regions.push(RegionStatus {
            name: name.to_string(),
            declared_role: r.postgres.role().to_string(),
            manager: r.postgres.manager().to_string(),
            replicates_from: r.postgres.replicates_from().map(String::from),
            observed: observed.clone(),
            manager_view,
            lag,
            heartbeat: hb,
            heartbeat_error: hb_err,
            health: rv.iter().filter(|v| v.region == **name).cloned().collect(),
            consensus: consensus
                .get(*name)
                .cloned()
                .unwrap_or_else(empty_consensus),
            repository: repository_copy(ctx, r.repository.as_ref()).await,
            redis: redis_state(ctx, r).await,
        });
    }
    let objective = config.lag_objective();
    let (verdict, mut reasons) = judge(&regions, objective.map(|d| d.num_seconds()));
    if let Some(e) = views_error {
        reasons.push(format!(
            "the health verdicts could not be read from the repository: {e}"
        ));
    }
    Ok(StatusReport {
        at,
        observers: views
            .iter()
            .map(|v| super::traffic::ObserverSeen {
                observer: v.observer.clone(),
                published_at: v.published_at,
            })
            .collect(),
        regions,
        lag_objective_seconds: objective.map(|d| d.num_seconds()),
        verdict,
        reasons,
        warnings: super::failover::rehearse::rewind_warnings(ctx, config).await,
    })
}

/// The overall verdict and its reasons (pure; see the module docs).
pub fn judge(regions: &[RegionStatus], objective_seconds: Option<i64>) -> (Overall, Vec<String>) {
    let mut broken = Vec::new();
    let mut degraded = Vec::new();
    let primaries: Vec<&str> = regions
        .iter()
        .filter(|r| *r.role() == Role::Primary)
        .map(|r| r.name.as_str())
        .collect();
    match primaries.len() {
        0 => broken.push("no primary observed: no region's server accepts writes".to_string()),
        1 => {}
        _ => broken.push(format!(
            "{} primaries observed ({}): more than one server accepts writes",
            primaries.len(),
            primaries.join(", ")
        )),
    }
    let judged: Vec<&RegionStatus> = regions
        .iter()
        .filter(|r| r.consensus.healthy.is_some())
        .collect();
    let unhealthy: Vec<&str> = judged
        .iter()
        .filter(|r| r.consensus.healthy == Some(false))
        .map(|r| r.name.as_str())
        .collect();
    if !regions.is_empty() && unhealthy.len() == regions.len() {
        broken.push("every region is unhealthy".to_string());
    } else {
        for r in &unhealthy {
            degraded.push(format!("region {r} is unhealthy"));
        }
    }
    for r in regions {
        let declared_standby = r.declared_role == "standby";
        match (r.role(), &r.lag) {
            (Role::Unreachable { reason, .. }, _) if declared_standby => {
                degraded.push(format!("standby {} is unreachable: {reason}", r.name))
            }
            (_, Some(lag)) => {
                if !lag.streaming {
                    degraded.push(format!("standby {} is not streaming", r.name));
                }
                if let (Some(obj), Some(s)) = (objective_seconds, lag.seconds())
                    && s > obj as f64
                {
                    degraded.push(format!(
                        "standby {} lags {s:.0} s, over the region-failure RPO objective of {obj} s",
                        r.name
                    ));
                }
            }
            _ => {}
        }
        if let Some(redis) = &r.redis
            && redis.link_down()
        {
            degraded.push(match &redis.error {
                Some(e) => format!("Redis of {}: {e}", r.name),
                None => format!(
                    "Redis of {}: the replica's link to its primary is down",
                    r.name
                ),
            });
        }
    }
    if !broken.is_empty() {
        broken.extend(degraded);
        (Overall::Broken, broken)
    } else if !degraded.is_empty() {
        (Overall::Degraded, degraded)
    } else {
        (Overall::Healthy, Vec::new())
    }
}

fn empty_consensus() -> Consensus {
    Consensus {
        healthy: None,
        healthy_observers: Vec::new(),
        unhealthy_observers: Vec::new(),
        stale_observers: Vec::new(),
    }
}

fn unreachable(name: &str, reason: &str) -> Observed {
    Observed {
        server: name.to_string(),
        role: Role::Unreachable {
            reason: reason.to_string(),
            answered: false,
        },
        identity: None,
        at: None,
        primary: None,
        standby: None,
    }
}

async fn manager_view(ctx: &Ctx, name: &str, r: &RegionConfig) -> Option<ManagerView> {
    match r.postgres.manager() {
        PgManager::Postgres => None,
        PgManager::Patroni => Some(ManagerView::Patroni(
            super::patroni::view(ctx, name, r).await,
        )),
        PgManager::Cnpg => super::cnpg::view(ctx, name, r).await.map(ManagerView::Cnpg),
    }
}

async fn read_views(ctx: &Ctx) -> Result<Vec<ObserverView>> {
    let repo = ctx.open().await?;
    verdicts::read_all(&repo).await
}

/// Opens the region's repository copy and reads its newest snapshot time.
async fn repository_copy(ctx: &Ctx, repo: Option<&RegionRepository>) -> RepositoryCopy {
    let Some(r) = repo else {
        return RepositoryCopy::NotConfigured;
    };
    let url = r.url.as_str().to_string();
    match open_copy(ctx, r).await {
        Ok(repo) => match repo.snapshots().await {
            Ok(snaps) => {
                let newest = snaps.iter().map(|s| s.snapshot.time).max();
                RepositoryCopy::Opened {
                    url,
                    snapshots: snaps.len(),
                    newest,
                    age_seconds: newest.map(|t| (Utc::now() - t).num_seconds().max(0)),
                }
            }
            Err(e) => RepositoryCopy::Unreadable {
                url,
                error: e.to_string(),
            },
        },
        Err(e) => RepositoryCopy::Unreadable {
            url,
            error: e.to_string(),
        },
    }
}

/// The region's repository with its own secret and S3 settings; without a
/// secret of its own (`password`, `key_file`), the main repository's, as
/// `regions.NAME.repository` documents.
pub async fn open_copy(ctx: &Ctx, r: &RegionRepository) -> Result<Repository> {
    let storage = super::conn::copy_storage(ctx, r).await?;
    let secret = super::conn::copy_secret(ctx, r).await?;
    Ok(Repository::open(storage, &secret).await?)
}

async fn redis_state(ctx: &Ctx, r: &RegionConfig) -> Option<RedisState> {
    let c = r.redis.as_ref()?;
    let url = c.url.as_str().to_string();
    let endpoint = match super::conn::redis_endpoint(ctx, c).await {
        Ok(e) => e,
        Err(e) => {
            return Some(RedisState {
                url,
                info: None,
                summary: None,
                error: Some(e.to_string()),
            });
        }
    };
    Some(
        match lredis::info_replication(&endpoint, Duration::from_secs(5)).await {
            Ok(info) => RedisState {
                url,
                summary: Some(info.describe()),
                info: Some(info),
                error: None,
            },
            Err(e) => RedisState {
                url,
                info: None,
                summary: None,
                error: Some(e.to_string()),
            },
        },
    )
}
