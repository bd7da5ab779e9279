//! `region replicate` and `region status` for a region whose PostgreSQL is a
//! Patroni cluster (`postgres.manager: patroni`, docs/regions/managers.md).
//!
//! Replicate, in order: the primary is observed (it must say it is one);
//! the `standby_cluster` settings are computed from the primary region's URL
//! and printed; Patroni's node says which database it holds
//! ([`patroni::target_verdict`]: a cluster holding another database is
//! refused unless `--replace`, a primary of the same database always; an
//! unreachable one gets the replication role made on the primary and the
//! bootstrap configuration printed, for a new cluster); the replication
//! role and the slot are made on the primary (the postgres path's steps); the settings are written through `PATCH /config`
//! unless `/config` already holds them; then the primary's
//! `pg_stat_replication` must show the standby leader streaming through the
//! slot and a heartbeat written on the primary must be replayed on the
//! region's server, within the postgres path's timeouts.

use std::time::{Duration, Instant};

use lifeboat_postgres::Secret;
use lifeboat_postgres::conn::{ConnConfig, PgHost};
use lifeboat_region::heartbeat::{self, Heartbeat, HeartbeatError, Seen};
use lifeboat_region::managers::patroni::{
    self, BasicAuth, ClusterView, NodeStatus, PatroniApi, PatroniError, StandbyClusterSettings,
    StandbyState, StreamingEvidence, TargetVerdict,
};
use lifeboat_region::replication::replicate::ensure_role;
use lifeboat_region::replication::{Retry, Timeouts, observe, plan};
use serde::Serialize;
use serde_json::Value;

use super::replicate::{ManagerEvent, replicate_error};
use crate::config::{PatroniConfig, RegionConfig};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// What `region replicate` did to a Patroni region.
#[derive(Debug, Clone, Serialize)]
pub struct PatroniReplicated {
    pub api_url: String,
    /// The settings, and the exact `PATCH /config` body.
    pub settings: StandbyClusterSettings,
    pub request: Value,
    /// `false`: `/config` held the settings already; nothing was written.
    pub changed: bool,
    /// `standby_cluster` as `/config` holds it afterwards.
    pub standby_cluster: Value,
    pub role: String,
    pub slot: String,
    pub slot_created: bool,
    pub system_identifier: String,
    pub streaming: StreamingEvidence,
    /// The heartbeat written on the primary, as the region's server replayed it.
    pub heartbeat: Seen,
}

/// The region's Patroni REST API client (`postgres.patroni`).
pub async fn api_of(ctx: &Ctx, name: &str, r: &RegionConfig) -> Result<PatroniApi> {
    let c: &PatroniConfig = r
        .postgres
        .patroni
        .as_ref()
        .map(|s| &s.value)
        .ok_or_else(|| {
            Error::usage(format!(
                "regions.{name}.postgres.manager is patroni but regions.{name}.postgres.patroni \
             (its REST API url, username and password) is not set"
            ))
        })?;
    let credentials = match (&c.username, &c.password) {
        (Some(u), Some(p)) => Some(BasicAuth {
            username: u.clone(),
            password: Secret::new(
                ctx.resolve(p)
                    .await
                    .map_err(|e| e.context(format!("regions.{name}.postgres.patroni.password")))?,
            ),
        }),
        (None, None) => None,
        _ => {
            return Err(Error::usage(format!(
                "regions.{name}.postgres.patroni: give both username and password (Patroni's \
                 restapi.authentication), or neither"
            )));
        }
    };
    PatroniApi::new(c.url.as_str(), credentials).map_err(|e| Error::usage(e.to_string()))
}

/// Before Lifeboat makes the slot `slot` on region `name`'s primary (a
/// standby region will stream through it): when that region is
/// Patroni-managed, the slot is first made one of its permanent slots
/// (`PATCH /config` `slots:`), since Patroni drops a physical slot it does
/// not know at its next loop and the standby would lose its WAL. Says what
/// was done; `None` for other managers.
pub async fn keep_slot_on(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    slot: &str,
) -> Result<Option<String>> {
    if r.postgres.manager() != crate::config::PgManager::Patroni {
        return Ok(None);
    }
    let api = api_of(ctx, name, r).await?;
    let wrote = api.keep_slot(slot).await.map_err(|e| {
        patroni_error(e)
            .context(format!(
                "making {slot} a permanent slot of {name}'s Patroni cluster (before creating it)"
            ))
            .with_hint(format!(
                "nothing was changed on the standby's data directory: once Patroni's REST API at \
                 {} answers (check that Patroni runs there, and regions.{name}.postgres.patroni), \
                 run the same command again",
                api.url()
            ))
    })?;
    Ok(Some(if wrote {
        format!("{slot} added to the permanent slots in {name}'s Patroni /config")
    } else {
        format!("{slot} is among the permanent slots in {name}'s Patroni /config already")
    }))
}

/// Where the standby region reaches the primary: host and port of its URL
/// (a Unix socket cannot be reached from another region).
pub fn primary_host(from: &str, conn: &ConnConfig) -> Result<(String, u16)> {
    match &conn.host {
        PgHost::Tcp(h) => Ok((h.clone(), conn.port)),
        PgHost::Unix(d) => Err(Error::usage(format!(
            "regions.{from}.postgres.url names a Unix socket ({}): a standby region reaches the \
             primary over TCP; give the primary's host name or address",
            d.display()
        ))),
    }
}

/// Replicates `req.from` (a primary, `primary`) into the Patroni region
/// `to`; see the module docs.
#[allow(clippy::too_many_arguments)]
pub async fn replicate<P: FnMut(ManagerEvent)>(
    ctx: &Ctx,
    from: &str,
    from_region: &RegionConfig,
    primary: &ConnConfig,
    primary_sysid: &str,
    to: &str,
    to_region: &RegionConfig,
    user: &str,
    password: &Secret,
    replace: bool,
    progress: &mut P,
) -> Result<PatroniReplicated> {
    let retry = Retry::default();
    let timeouts = Timeouts::default();
    let api = api_of(ctx, to, to_region).await?;
    let (host, port) = primary_host(from, primary)?;
    let slot = plan::slot_name(to);
    let settings = patroni::standby_cluster_settings(&host, port, Some(slot.as_str()))
        .map_err(|e| Error::usage(e.to_string()))?;
    progress(ManagerEvent::Settings {
        manager: "patroni".into(),
        target: api.url(),
        text: settings.render(),
        body: settings.patch_body(),
    });

    let node = match api.node_status().await {
        Ok(n) => n,
        Err(e @ PatroniError::Unreachable { .. }) => {
            // A standby region's new Patroni cluster bootstraps from the
            // primary with the replication role: make it now.
            let role = ensure_role(primary, user, password, retry)
                .await
                .map_err(replicate_error)?;
            progress(ManagerEvent::PrimaryPrepared { detail: role });
            return Err(Error::failure(format!(
                "{e}. The replication role is ready on the primary; if the standby region's \
                 Patroni cluster does not exist yet, bootstrap it from the primary with this in \
                 its members' configuration, start them, and run `region replicate` again:\n{}",
                patroni::bootstrap_yaml(&settings, user)
            )));
        }
        Err(other) => return Err(patroni_error(other)),
    };
    let other_database = match patroni::target_verdict(&node, primary_sysid, replace) {
        TargetVerdict::Proceed => None,
        TargetVerdict::ProceedOtherDatabase { message } => Some(message),
        TargetVerdict::RefuseOtherDatabase { message } => {
            return Err(Error::usage(format!("refused: {message}"))
                .with_hint(rebootstrap_hint(&settings, user)));
        }
        TargetVerdict::RefuseSamePrimary => {
            return Err(Error::usage(format!(
                "refused: the Patroni node at {} is a primary of the primary's own database \
                 (system identifier {primary_sysid}): it is region {from}'s cluster itself or a \
                 second primary, and making it a standby cluster would demote it",
                api.url()
            ))
            .with_hint(format!(
                "check regions.{to}.postgres.patroni.url; nothing was changed"
            )));
        }
        TargetVerdict::Unknown { state } => {
            return Err(Error::failure(format!(
                "Patroni at {} reports no system identifier (its PostgreSQL is {state}): wait \
                 until its cluster runs and rerun; nothing was changed",
                api.url()
            )));
        }
    };

    let role = ensure_role(primary, user, password, retry)
        .await
        .map_err(replicate_error)?;
    progress(ManagerEvent::PrimaryPrepared {
        detail: role.clone(),
    });
    // A Patroni primary keeps it as one of its permanent slots.
    let kept =
        super::replicate::ensure_primary_slot(ctx, from, from_region, primary, &slot).await?;
    for detail in kept.notes {
        progress(ManagerEvent::PrimaryPrepared { detail });
    }
    let slot_created = kept.created;

    let current = api.config().await.map_err(patroni_error)?;
    let request = settings.patch_body_against(&current);
    let (changed, config) = if settings.is_in(&current) {
        (false, current)
    } else {
        let config = api
            .apply_standby_cluster(&settings)
            .await
            .map_err(patroni_error)?;
        (true, config)
    };
    let standby_cluster = config
        .get("standby_cluster")
        .cloned()
        .unwrap_or(Value::Null);
    progress(ManagerEvent::Applied {
        changed,
        detail: if changed {
            format!("PATCH /config written; standby_cluster is now {standby_cluster}")
        } else {
            format!("/config holds these settings already; nothing written ({standby_cluster})")
        },
    });
    if let Some(message) = other_database {
        return Err(Error::failure(format!(
            "standby_cluster was written (--replace), but {message}"
        ))
        .with_hint(rebootstrap_hint(&settings, user)));
    }

    let started = Instant::now();
    let client = observe::connect(primary, retry)
        .await
        .map_err(|e| Error::failure(format!("the primary: {e}")))?;
    progress(ManagerEvent::Waiting {
        detail: format!(
            "waiting for the standby leader to stream through slot {slot} (at most {} s)",
            timeouts.streaming.as_secs()
        ),
    });
    let streaming = patroni::wait_streaming(
        &api,
        &client,
        Some(slot.as_str()),
        timeouts.streaming,
        Duration::from_millis(500),
    )
    .await
    .map_err(patroni_error)?;
    progress(ManagerEvent::Streaming {
        detail: format!(
            "the primary streams to standby leader {} through slot {}",
            streaming.standby_leader,
            streaming.walsender.slot_name.as_deref().unwrap_or("-")
        ),
    });
    let target = super::conn::region_conn(ctx, to_region).await?;
    let remaining = timeouts.streaming.saturating_sub(started.elapsed());
    let heartbeat = replayed_heartbeat(from, primary, &target, retry, remaining).await?;
    Ok(PatroniReplicated {
        api_url: api.url(),
        settings,
        request,
        changed,
        standby_cluster,
        role,
        slot,
        slot_created,
        system_identifier: primary_sysid.to_string(),
        streaming,
        heartbeat,
    })
}

/// Writes a heartbeat on the primary and waits (at most `within`, at least
/// 30 s) until `target` has replayed it.
pub async fn replayed_heartbeat(
    from: &str,
    primary: &ConnConfig,
    target: &ConnConfig,
    retry: Retry,
    within: Duration,
) -> Result<Seen> {
    let hb_err = |e: HeartbeatError| Error::failure(format!("heartbeat: {e}"));
    let client = retry
        .run(|| heartbeat::ensure(primary), HeartbeatError::is_transient)
        .await
        .map_err(hb_err)?;
    let beat = Heartbeat::new(from)
        .beat(&client)
        .await
        .map_err(|e| Error::failure(format!("writing a heartbeat on the primary: {e}")))?;
    let deadline = Instant::now() + within.max(Duration::from_secs(30));
    loop {
        let seen = heartbeat::read(target, Some(from)).await;
        if let Ok(Some(s)) = &seen
            && s.beat.seq >= beat.seq
        {
            return Ok(s.clone());
        }
        if Instant::now() >= deadline {
            return Err(Error::failure(format!(
                "the standby streams, but heartbeat {} written on the primary was not replayed \
                 on {} in time (last read: {})",
                beat.seq,
                target.display_url(),
                match seen {
                    Ok(Some(s)) => format!("heartbeat {}", s.beat.seq),
                    Ok(None) => "none".into(),
                    Err(e) => e.to_string(),
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rebootstrap_hint(settings: &StandbyClusterSettings, user: &str) -> String {
    format!(
        "Patroni does not re-clone a running cluster. Re-bootstrap it from the primary: stop \
         Patroni on every member, `patronictl -c <patroni.yml> remove <scope>`, empty each \
         member's data directory, put this in their configuration, start them, and rerun \
         `region replicate`:\n{}",
        patroni::bootstrap_yaml(settings, user)
    )
}

/// Patroni's errors as Lifeboat's: a refused credential is usage (exit 2,
/// nothing written), the rest failures.
pub fn patroni_error(e: PatroniError) -> Error {
    match e {
        PatroniError::BadUrl(_) | PatroniError::Settings(_) | PatroniError::Denied { .. } => {
            Error::usage(e.to_string())
        }
        other => Error::failure(other.to_string()),
    }
}

/// `region status`'s view of a Patroni region.
#[derive(Debug, Clone, Serialize)]
pub struct PatroniView {
    pub api_url: String,
    /// The node's own view (`GET /patroni`): its role (`primary`,
    /// `standby_leader`, `replica`), state and system identifier.
    pub node: Option<NodeStatus>,
    /// Every member (`GET /cluster`).
    pub cluster: Option<ClusterView>,
    /// The verdict on the cluster view: a running standby leader, a regular
    /// leader, ...
    pub standby: Option<StandbyState>,
    /// `standby_cluster` of `/config`, when set.
    pub standby_cluster: Option<Value>,
    pub error: Option<String>,
}

impl PatroniView {
    /// One phrase: the node's role and the cluster's leader.
    pub fn summary(&self) -> String {
        let node = self.node.as_ref().map(|n| match &n.role {
            patroni::NodeRole::Primary => "primary".to_string(),
            patroni::NodeRole::StandbyLeader => "standby_leader".to_string(),
            patroni::NodeRole::Replica => "replica".to_string(),
            patroni::NodeRole::Other(o) => o.clone(),
        });
        let cluster = self.standby.as_ref().map(|s| match s {
            StandbyState::Running { standby_leader } => {
                format!("standby cluster, leader {standby_leader}")
            }
            StandbyState::NotRunning {
                standby_leader,
                state,
            } => format!("standby leader {standby_leader} {state}"),
            StandbyState::RegularLeader { leader } => format!("leader {leader}"),
            StandbyState::NoLeader => "no leader".to_string(),
        });
        match (node, cluster) {
            (Some(n), Some(c)) => format!("patroni: {n} ({c})"),
            (Some(n), None) => format!("patroni: {n}"),
            (None, Some(c)) => format!("patroni: {c}"),
            (None, None) => "patroni: unreadable".to_string(),
        }
    }
}

/// Reads the Patroni region's view; never fails (errors are in the view).
pub async fn view(ctx: &Ctx, name: &str, r: &RegionConfig) -> PatroniView {
    let api = match api_of(ctx, name, r).await {
        Ok(a) => a.with_retry(patroni::Retry {
            attempts: 2,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(200),
        }),
        Err(e) => {
            return PatroniView {
                api_url: r
                    .postgres
                    .patroni
                    .as_ref()
                    .map(|p| p.value.url.as_str().to_string())
                    .unwrap_or_default(),
                node: None,
                cluster: None,
                standby: None,
                standby_cluster: None,
                error: Some(e.to_string()),
            };
        }
    };
    let mut errors = Vec::new();
    let node = api
        .node_status()
        .await
        .map_err(|e| errors.push(e.to_string()))
        .ok();
    let cluster = api
        .cluster()
        .await
        .map_err(|e| errors.push(e.to_string()))
        .ok();
    let standby_cluster = api
        .config()
        .await
        .map_err(|e| errors.push(e.to_string()))
        .ok()
        .and_then(|c| c.get("standby_cluster").cloned())
        .filter(|v| !v.is_null());
    PatroniView {
        api_url: api.url(),
        standby: cluster.as_ref().map(patroni::standby_state),
        node,
        cluster,
        standby_cluster,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}
