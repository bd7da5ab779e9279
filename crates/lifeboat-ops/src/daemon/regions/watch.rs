//! Observing every region's server from this daemon (role as the server
//! says it, lag, the newest heartbeat a standby replayed) every
//! [`WATCH_INTERVAL`](super::WATCH_INTERVAL), and the heartbeat writer,
//! which runs while this daemon's region's server is OBSERVED primary
//! (never because the configuration declares it so).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lifeboat_region::heartbeat::{self, Heartbeat};
use lifeboat_region::replication::{Observed, Retry, Role, Server, observe};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::decide::{self, StandbyPoint};
use super::{WATCH_INTERVAL, metrics, pause, server};
use crate::config::Config;
use crate::context::Ctx;
use crate::daemon::{Daemon, stopped};

/// Network failures while observing are retried this often: briefly, the
/// next round comes in seconds.
const OBSERVE_RETRY: Retry = Retry {
    attempts: 2,
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(1),
};

/// One round of observations: every region's server (file order) and the
/// age of the newest heartbeat each standby replayed.
pub struct Round {
    pub observed: Vec<(String, Observed)>,
    pub heartbeats: BTreeMap<String, f64>,
}

impl Round {
    /// Every standby's replication as the metrics give it.
    pub fn standbys(&self) -> Vec<StandbyPoint> {
        decide::standby_points(&self.observed, &self.heartbeats)
    }

    pub fn role(&self, region: &str) -> Option<&Role> {
        self.observed
            .iter()
            .find(|(n, _)| n == region)
            .map(|(_, o)| &o.role)
    }
}

/// Observes every region's server at once (bounded by the connect timeouts
/// and [`OBSERVE_RETRY`]); never fails: what could not be reached is
/// `Role::Unreachable` with the reason. Also used by `readiness`.
pub async fn observe_all(ctx: &Ctx, config: &Config) -> Round {
    observe_within(ctx, config, None).await
}

/// [`observe_all`] with each server's observation cut at `bound` (then it
/// is `Role::Unreachable`, "no answer within …"): a server whose packets
/// vanish (a partitioned region) costs at most `bound`, not its connect
/// timeouts and retries (20 s and more), so a caller on a short cycle
/// (the failover votes) keeps its cadence.
pub async fn observe_within(ctx: &Ctx, config: &Config, bound: Option<Duration>) -> Round {
    let names: Vec<String> = config
        .regions_in_file_order()
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    observe_regions_within(ctx, config, &names, bound).await
}

/// [`observe_within`] for the regions `names` only (in that order): the
/// failover votes, once a failure is confirmed, look at the candidates
/// alone and not at the failed (possibly silent) primary.
pub async fn observe_regions_within(
    ctx: &Ctx,
    config: &Config,
    names: &[String],
    bound: Option<Duration>,
) -> Round {
    let mut set = JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let conn = server(ctx, config, name).await;
        let name = name.clone();
        set.spawn(async move {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => return (i, name.clone(), unreachable(&name, e.to_string()), None),
            };
            let look = observe_one(name.clone(), conn);
            match bound {
                None => {
                    let (o, age) = look.await;
                    (i, name, o, age)
                }
                // The whole look (the role, then the heartbeat on a second
                // connection) within the bound: a server that falls silent
                // between the two must not stall the caller either.
                Some(b) => match tokio::time::timeout(b, look).await {
                    Ok((o, age)) => (i, name, o, age),
                    Err(_) => {
                        let why = format!("no answer within {} ms", b.as_millis());
                        (i, name.clone(), unreachable(&name, why), None)
                    }
                },
            }
        });
    }
    let mut rows = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            rows.push(r);
        }
    }
    rows.sort_by_key(|r| r.0);
    let heartbeats = rows
        .iter()
        .filter_map(|(_, n, _, a)| a.map(|a| (n.clone(), a)))
        .collect();
    Round {
        observed: rows.into_iter().map(|(_, n, o, _)| (n, o)).collect(),
        heartbeats,
    }
}

/// One server: its role (retried briefly), and for a standby the age of the
/// newest heartbeat it replayed.
async fn observe_one(
    name: String,
    conn: lifeboat_postgres::conn::ConnConfig,
) -> (Observed, Option<f64>) {
    let server = Server {
        name: name.clone(),
        conn: conn.clone(),
    };
    let o = observe(&server, OBSERVE_RETRY).await;
    // The newest heartbeat any writer left (after a failover the new
    // primary's row is the newest).
    let age = if o.role == Role::Standby {
        match heartbeat::read(&conn, None).await {
            Ok(seen) => seen.map(|s| s.age_seconds),
            Err(e) => {
                tracing::debug!(region = %name, error = %e, "cannot read the heartbeat");
                None
            }
        }
    } else {
        None
    };
    (o, age)
}

fn unreachable(name: &str, reason: String) -> Observed {
    Observed {
        server: name.to_string(),
        role: Role::Unreachable {
            reason,
            answered: false,
        },
        identity: None,
        at: None,
        primary: None,
        standby: None,
    }
}

fn role_word(r: &Role) -> &'static str {
    match r {
        Role::Primary => "primary",
        Role::Standby => "standby",
        Role::Unreachable { .. } => "unreachable",
    }
}

/// Every [`WATCH_INTERVAL`]: observes every region, sets the replication
/// metrics, logs role changes, and tells the heartbeat writer whether this
/// daemon's region's server is the primary now.
pub async fn observe_loop(d: Arc<Daemon>, own: String, own_primary: watch::Sender<bool>) {
    let Some(config) = d.ctx.config.as_ref() else {
        return;
    };
    let mut roles: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut standbys: Vec<String> = Vec::new();
    loop {
        let round = observe_all(&d.ctx, config).await;
        for (name, o) in &round.observed {
            let word = role_word(&o.role);
            metrics::primary(name, o.role == Role::Primary);
            metrics::region_role(name, role_word(&o.role));
            if roles.get(name) != Some(&word) {
                match &o.role {
                    Role::Unreachable { reason, .. } => {
                        tracing::warn!(region = %name, reason = %reason, "region's PostgreSQL not reached")
                    }
                    _ => {
                        tracing::info!(region = %name, role = word, "region's PostgreSQL observed")
                    }
                }
                roles.insert(name.clone(), word);
            }
        }
        let points = round.standbys();
        for p in &points {
            metrics::standby(p);
        }
        // A region that was a standby and is not any more keeps its series,
        // with unknown values.
        for gone in standbys
            .iter()
            .filter(|s| !points.iter().any(|p| &&p.region == s))
        {
            metrics::standby_unknown(gone);
        }
        standbys = points.iter().map(|p| p.region.clone()).collect();
        own_primary.send_if_modified(|was| {
            let now = round.role(&own) == Some(&Role::Primary);
            std::mem::replace(was, now) != now
        });
        if pause(&d, WATCH_INTERVAL).await {
            return;
        }
    }
}

/// Writes the heartbeat every `replication.heartbeat.interval` while this
/// daemon's region's server is observed primary; stops when it is observed
/// otherwise (or at shutdown), and starts again when it is primary again.
pub async fn heartbeat_loop(
    d: Arc<Daemon>,
    region: String,
    mut own_primary: watch::Receiver<bool>,
) {
    let Some(config) = d.ctx.config.as_ref() else {
        return;
    };
    let interval = config.heartbeat_interval();
    let hb = Heartbeat::new(region.clone());
    metrics::heartbeat_started(&region);
    loop {
        let mut sd = d.shutdown.subscribe();
        tokio::select! {
            r = own_primary.wait_for(|p| *p) => if r.is_err() { return },
            _ = stopped(&mut sd) => return,
        }
        let conn = match server(&d.ctx, config, &region).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(region = %region, error = %e, "cannot write the heartbeat: the region's connection settings");
                if pause(&d, WATCH_INTERVAL).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(region = %region, interval_ms = interval.as_millis() as u64, "writing the heartbeat: this region's server is the primary");
        let mut not_primary = own_primary.clone();
        let stop = async move {
            tokio::select! {
                _ = not_primary.wait_for(|p| !*p) => {}
                _ = stopped(&mut sd) => {}
            }
        };
        let mut failing = false;
        let region_ = region.clone();
        hb.run(&conn, interval, stop, |r| match r {
            Ok(b) => {
                metrics::heartbeat_written(&region_, b.at);
                if std::mem::take(&mut failing) {
                    tracing::info!(region = %region_, seq = b.seq, "heartbeat written again");
                }
            }
            Err(e) => {
                metrics::heartbeat_failed(&region_);
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(region = %region_, error = %e, "heartbeat not written; retrying every interval");
                }
            }
        })
        .await;
        if d.shutting_down() {
            return;
        }
        tracing::info!(region = %region, "stopped writing the heartbeat: this region's server is not observed primary");
    }
}
