//! The daemon's region work (docs/daemon.md, "Regions"; issue 19, "Where
//! each part runs"): on every region's daemon, regardless of the
//! repository's lease (backups, prune and drills stay bound to it), except
//! the copies into the regions' repositories, which the lease holder makes:
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | which region this daemon is (`serve.region`), starting the tasks |
//! | `copy.rs` | on the lease holder only, with or without `serve.region`: the scheduled copies into each region's `repository:` |
//! | `watch.rs` | observing every region's server (role, lag, heartbeat age) and the heartbeat writer |
//! | `health.rs` | one health checker per region, this daemon as vantage point; publishing its verdicts |
//! | `steer.rs` | the `rfc2136` steering loop: the answer set equal to the healthy regions |
//! | `decide.rs` | the pure decisions: which primary a standby streams from, its lag as the metrics give it |
//! | `changes.rs` | with `failover:`: the changes of primary in etcd as `lifeboat_failover_*` metrics |
//! | `agent.rs` | with `failover:`: the region's etcd lease, and beside the primary the fence and its watchdog |
//! | `rejoin.rs` | with `failover.auto_rejoin`: when a returning former primary here is made a standby again (pure), and the rejoin's task |
//! | `autofail.rs` | with `failover:`: this vantage point's vote on the primary region, the decision, the election and the automatic failover |
//! | `metrics.rs` | the region metric families |
//!
//! Without `regions:` nothing here runs and no region metric exists; with
//! `regions:` but no `serve.region` (`--region`, `LIFEBOAT_REGION`) the
//! daemon logs why and does no region work but the copies.
//!
//! A **witness** (`serve.region` naming a `failover.witnesses` entry) is a
//! vantage point without a database: it runs the health checks of every
//! region, holds its lease (`<prefix>/leases/<witness>`), votes, campaigns
//! and can drive a failover; no heartbeat, lag watching, fence, steering
//! or copies of its own (the copies stay bound to the repository's lease).

pub mod agent;
pub mod autofail;
pub mod changes;
pub mod copy;
pub mod decide;
pub mod etcd_leader;
pub mod failsafe;
pub mod health;
pub mod metrics;
pub mod named_standby;
pub mod rejoin;
pub mod steer;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::topology::Provider;
use tokio::task::JoinHandle;

use super::Daemon;
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Result, usage};

/// How often every region's server is observed (role, lag, heartbeat age).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The region this daemon runs in: `serve.region` (which `--region` and
/// `LIFEBOAT_REGION` set). An unknown name is a usage error (exit 2)
/// naming the configured ones; a name without `regions:` too.
pub fn own_region(config: &Config) -> Result<Option<String>> {
    let Some(name) = config.serve.as_ref().and_then(|s| s.region.clone()) else {
        return Ok(None);
    };
    if config.regions().is_empty() {
        return Err(usage(format!(
            "serve.region (--region, LIFEBOAT_REGION) is `{name}`, but the configuration has no \
             regions: section; remove it or describe the regions (docs/regions/topology.md)"
        )));
    }
    if is_witness(config, &name) {
        if let Some(why) = lifeboat_region::authority::keys::region_problem(&name) {
            return Err(usage(format!(
                "serve.region (--region, LIFEBOAT_REGION): the witness name {name:?} {why}; it \
                 names the witness's keys in etcd"
            )));
        }
        return Ok(Some(name));
    }
    config
        .region(&name)
        .map_err(|e| usage(format!("serve.region (--region, LIFEBOAT_REGION): {e}")))?;
    Ok(Some(name))
}

/// Whether `name` is one of `failover.witnesses` (a vantage point without
/// a database).
pub fn is_witness(config: &Config, name: &str) -> bool {
    config
        .failover
        .as_ref()
        .is_some_and(|f| f.witnesses.iter().any(|w| w == name))
}

/// The region `name`'s server, its password read now (a rotated one is
/// taken at the next call).
pub async fn server(ctx: &Ctx, config: &Config, name: &str) -> Result<ConnConfig> {
    let r = config.region(name).map_err(|e| usage(e.to_string()))?;
    crate::postgres::source::connection(ctx, &r.postgres.url, r.postgres.password.as_ref()).await
}

/// Starts the region tasks (none without `regions:`; only the copies
/// without this daemon's region, which is logged). They end at shutdown,
/// like the schedule loops they are awaited with.
pub fn spawn(d: &Arc<Daemon>) -> Vec<JoinHandle<()>> {
    let Some(config) = d.ctx.config.as_ref() else {
        return Vec::new();
    };
    if config.regions().is_empty() {
        return Vec::new();
    }
    // Bound to the lease, not to this daemon's region.
    let mut tasks = copy::spawn(d, config);
    let region = match own_region(config) {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::info!(
                regions = %config.regions().keys().cloned().collect::<Vec<_>>().join(","),
                "regions are configured but this daemon's region is not (serve.region, --region \
                 or LIFEBOAT_REGION): no heartbeat, lag watching, health checks or traffic \
                 steering from this daemon"
            );
            return tasks;
        }
        // Checked at build; unreachable here, but never a panic.
        Err(e) => {
            tracing::error!(error = %e, "no region work");
            return tasks;
        }
    };
    metrics::describe();
    tasks.extend(etcd_leader::spawn(d, config));
    if is_witness(config, &region) {
        tracing::info!(witness = %region, "witness: health checks of every region, votes and the failover election; no database here");
        tasks.extend(agent::spawn(d, config, &region));
        let (views_tx, views_rx) = tokio::sync::watch::channel(Vec::new());
        tasks.extend(health::spawn(d, &region, views_tx));
        tasks.extend(autofail::spawn(d, config, &region, views_rx));
        return tasks;
    }
    tracing::info!(region = %region, "region work: heartbeat while this region's server is the primary, lag watching, health checks");
    let (own_primary_tx, own_primary_rx) = tokio::sync::watch::channel(false);
    tasks.push(tokio::spawn(watch::observe_loop(
        Arc::clone(d),
        region.clone(),
        own_primary_tx,
    )));
    tasks.push(tokio::spawn(watch::heartbeat_loop(
        Arc::clone(d),
        region.clone(),
        own_primary_rx,
    )));
    tasks.extend(agent::spawn(d, config, &region));
    if config.failover.is_some() {
        tasks.push(tokio::spawn(changes::run(Arc::clone(d))));
    }
    let (views_tx, views_rx) = tokio::sync::watch::channel(Vec::new());
    let votes_rx = views_tx.subscribe();
    tasks.extend(health::spawn(d, &region, views_tx));
    tasks.extend(autofail::spawn(d, config, &region, votes_rx));
    match config.traffic_provider() {
        Some(Provider::Rfc2136) => tasks.push(tokio::spawn(steer::run(
            Arc::clone(d),
            region.clone(),
            views_rx,
        ))),
        Some(Provider::Route53) => tracing::info!(
            "traffic.provider route53: Route 53 runs the health checks and answers by them; \
             the daemon keeps no steering loop (`lifeboat region traffic apply` writes the records)"
        ),
        None => {}
    }
    tasks
}

/// A pause that ends early at shutdown: true when it ended because of
/// shutdown.
pub(crate) async fn pause(d: &Daemon, dur: Duration) -> bool {
    let mut rx = d.shutdown.subscribe();
    tokio::select! {
        _ = super::stopped(&mut rx) => true,
        _ = tokio::time::sleep(dur) => d.shutting_down(),
    }
}
