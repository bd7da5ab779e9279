//! The `rfc2136` steering loop: keeps the steered name's answer set equal
//! to the healthy regions'. On every change of this vantage point's region
//! verdicts, and every [`publish_every`](super::health::publish_every), it
//! reads every vantage point's published verdicts, puts this daemon's
//! view from memory in place of its own published one, decides per region
//! with the same rule as `region traffic apply`
//! ([`verdicts::steering`]: Route 53's consensus of the fresh views) and applies
//! them through the provider, which plans from what DNS answers now and
//! writes one UPDATE with a prerequisite on that answer set, so two
//! daemons never overwrite each other blindly (a lost race is re-read and
//! re-planned by the provider). Route 53 needs no loop: it runs the health
//! checks itself.
//!
//! **With `failover:` the answer set also follows the authority**
//! ([`follow_authority`], pure): a region is answered only when it is the
//! authority's primary (etcd), or its server says it is a standby that has
//! replayed the current epoch's `lifeboat.authority` row
//! ([`lifeboat_region::promotion::rejoin::has_replayed`]), besides being
//! healthy. So after a failover the old primary's region is not answered
//! again when it recovers (it answers as a writable primary at an older
//! epoch, or as a standby that has not replayed the new epoch) until it has
//! rejoined. The authority is read from etcd every round; when etcd cannot
//! be read the last authority read is used, and with none read yet the
//! loop leaves DNS as it is. Without `failover:` steering is by health
//! alone, as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use lifeboat_region::authority::AuthorityStore;
use lifeboat_region::health::{Consensus, Verdict};
use lifeboat_region::promotion::rejoin::has_replayed;
use lifeboat_region::traffic::{Applied, TrafficError, TrafficProvider, Verdicts};
use serde::Serialize;
use tokio::sync::watch;

use super::{health, metrics};
use crate::config::Config;
use crate::context::Ctx;
use crate::daemon::{Daemon, stopped};
use crate::region::verdicts::{self, ObserverView};

/// `own` is this daemon's observer name; `own_verdicts` its newest
/// verdicts, sent by the health task when a region's verdict changes.
pub async fn run(d: Arc<Daemon>, own: String, mut own_verdicts: watch::Receiver<Vec<Verdict>>) {
    let Some(config) = d.ctx.config.as_ref() else {
        return;
    };
    metrics::traffic_started();
    let every = health::publish_every(config);
    let max_age = crate::region::traffic::max_view_age(config);
    let regions: Vec<String> = config
        .regions_in_file_order()
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let steered: Vec<String> = config
        .regions_in_file_order()
        .into_iter()
        .filter(|(_, r)| r.answer().is_some())
        .map(|(n, _)| n.to_string())
        .collect();
    let mut sd = d.shutdown.subscribe();
    let mut last_error: Option<String> = None;
    let mut provider: Option<Box<dyn TrafficProvider>> = None;
    let mut store: Option<AuthorityStore> = None;
    let mut authority: Option<AuthorityView> = None;
    let mut last_left_out: Option<Vec<String>> = None;
    loop {
        let published = match verdicts::read_all(&d.repo).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the other vantage points' verdicts; steering by this daemon's view alone");
                Vec::new()
            }
        };
        let now = Utc::now();
        let own_view = ObserverView {
            observer: own.clone(),
            published_at: now,
            verdicts: own_verdicts.borrow_and_update().clone(),
        };
        let views = verdicts::with_own(published, own_view);
        let (mut steering, by_region) = verdicts::steering(&views, &regions, now, max_age);
        if config.failover.is_some() {
            match authority_now(&d.ctx, config, &mut store, &mut authority).await {
                Some(a) => {
                    let servers = server_facts(&d.ctx, config, &steered).await;
                    let out: Vec<String> = steered
                        .iter()
                        .filter(|r| !eligible(r, &a, servers.get(*r)))
                        .map(|r| format!("{r} ({})", describe(servers.get(r))))
                        .collect();
                    if last_left_out.as_ref() != Some(&out) {
                        tracing::info!(
                            primary = %a.primary,
                            epoch = a.epoch,
                            left_out = %out.join(", "),
                            "steering follows the authority: regions left out until they rejoin (none: every region may be answered)"
                        );
                        last_left_out = Some(out);
                    }
                    match follow_authority(&steering, &steered, &a, &servers) {
                        Some(v) => steering = v,
                        None => {
                            tracing::warn!(primary = %a.primary, "no steered region is the authority's primary or a standby that replayed its epoch: DNS left as it is");
                            if wait_next(&mut own_verdicts, &mut sd, every).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
                None => {
                    tracing::warn!(
                        "the authority (etcd) has not been read yet: DNS left as it is until it is"
                    );
                    if wait_next(&mut own_verdicts, &mut sd, every).await {
                        return;
                    }
                    continue;
                }
            }
        }
        // Built on first use and again after a failure to build or a key
        // the server refused, so a fixed or rotated TSIG secret (a file, a
        // Kubernetes Secret) is taken without a restart.
        if provider.is_none() {
            match crate::region::traffic::provider(&d.ctx, config).await {
                Ok(p) => provider = Some(p),
                Err(e) => {
                    metrics::traffic_failed();
                    let msg = format!("the traffic provider cannot be built: {e}");
                    if last_error.as_deref() != Some(&msg) {
                        tracing::error!(error = %msg, "traffic steering is off until traffic: is fixed; retrying at the next change or period");
                    }
                    last_error = Some(msg);
                }
            }
        }
        if let Some(p) = &provider {
            match p.apply(&steering, false).await {
                Ok(a) => {
                    if last_error.take().is_some() {
                        tracing::info!("traffic steering works again");
                    }
                    report(&a, &steered, &by_region);
                }
                Err(e) => {
                    metrics::traffic_failed();
                    if matches!(e, TrafficError::Credentials { .. }) {
                        provider = None;
                    }
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(&msg) {
                        tracing::error!(error = %msg, "traffic steering failed; retrying at the next change or period");
                    }
                    last_error = Some(msg);
                }
            }
        }
        if wait_next(&mut own_verdicts, &mut sd, every).await {
            return;
        }
    }
}

/// Waits for a change of this daemon's verdicts or the period; true when
/// the loop must end (shutdown, or the health task is gone).
async fn wait_next(
    own_verdicts: &mut watch::Receiver<Vec<Verdict>>,
    sd: &mut watch::Receiver<bool>,
    every: std::time::Duration,
) -> bool {
    tokio::select! {
        r = own_verdicts.changed() => r.is_err(),
        _ = tokio::time::sleep(every) => false,
        _ = stopped(sd) => true,
    }
}

/// The authority as steering uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityView {
    pub primary: String,
    pub epoch: u64,
}

/// What a region's server says, for the authority rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerFacts {
    /// Not in recovery; `epoch`: its highest `lifeboat.authority` row.
    Primary { epoch: Option<u64> },
    /// In recovery; `epoch`: the highest row it replayed.
    Standby { epoch: Option<u64> },
    /// Not reached.
    Unknown,
}

/// What a server said, for the log.
fn describe(f: Option<&ServerFacts>) -> String {
    let e = |e: &Option<u64>| e.map(|e| e.to_string()).unwrap_or_else(|| "none".into());
    match f {
        Some(ServerFacts::Primary { epoch }) => {
            format!("a writable primary, newest epoch row {}", e(epoch))
        }
        Some(ServerFacts::Standby { epoch }) => {
            format!("a standby that replayed epoch row {}", e(epoch))
        }
        Some(ServerFacts::Unknown) | None => "not reached".into(),
    }
}

/// Whether `region` may be answered under `authority` (health aside): it is
/// the primary, or its server is a standby that replayed the epoch.
pub fn eligible(region: &str, authority: &AuthorityView, server: Option<&ServerFacts>) -> bool {
    region == authority.primary
        || matches!(server, Some(ServerFacts::Standby { epoch }) if has_replayed(*epoch, authority.epoch))
}

/// The health verdicts narrowed by the authority, one verdict per steered
/// region (pure): healthy (absent from `health` counts as healthy, as in
/// the answer-set rule) and [`eligible`]. When no eligible region is
/// healthy, the eligible ones are answered anyway (Route 53's "answer all
/// when none is healthy", kept to the regions that may take traffic: a
/// stale old primary is never answered). `None` when no steered region is
/// eligible: the caller leaves DNS as it is.
pub fn follow_authority(
    health: &Verdicts,
    steered: &[String],
    authority: &AuthorityView,
    servers: &BTreeMap<String, ServerFacts>,
) -> Option<Verdicts> {
    let ok: Vec<(&String, bool, bool)> = steered
        .iter()
        .map(|r| {
            (
                r,
                eligible(r, authority, servers.get(r)),
                health.get(r).copied().unwrap_or(true),
            )
        })
        .collect();
    if !ok.iter().any(|(_, e, _)| *e) {
        return None;
    }
    let any_healthy = ok.iter().any(|(_, e, h)| *e && *h);
    Some(
        ok.into_iter()
            .map(|(r, e, h)| (r.clone(), e && (h || !any_healthy)))
            .collect(),
    )
}

/// The authority read now, connecting to etcd when not connected; the last
/// one read when etcd cannot be read (logged), `None` when none was.
async fn authority_now(
    ctx: &Ctx,
    config: &Config,
    store: &mut Option<AuthorityStore>,
    last: &mut Option<AuthorityView>,
) -> Option<AuthorityView> {
    if store.is_none() {
        match crate::region::failover::authority::connect(ctx, config).await {
            Ok(s) => *store = Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "steering cannot reach etcd; using the last authority read")
            }
        }
    }
    if let Some(s) = store.as_ref() {
        match s.authority().await {
            Ok(Some(v)) => {
                *last = Some(AuthorityView {
                    primary: v.value.primary.clone(),
                    epoch: v.value.epoch,
                })
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "steering cannot read the authority; using the last one read");
                *store = None;
            }
        }
    }
    last.clone()
}

/// What each region's server says now (role, highest epoch row), each read
/// once with the connect timeout; a server not reached is `Unknown`.
pub async fn server_facts(
    ctx: &Ctx,
    config: &Config,
    regions: &[String],
) -> BTreeMap<String, ServerFacts> {
    let mut out = BTreeMap::new();
    for r in regions {
        let facts = match super::server(ctx, config, r).await {
            Ok(conn) => read_facts(&conn).await,
            Err(_) => ServerFacts::Unknown,
        };
        out.insert(r.clone(), facts);
    }
    out
}

async fn read_facts(conn: &lifeboat_postgres::conn::ConnConfig) -> ServerFacts {
    use lifeboat_region::replication::observe::connect;
    use lifeboat_region::replication::retry::Retry;
    let Ok(c) = connect(conn, Retry::ONCE).await else {
        return ServerFacts::Unknown;
    };
    let Ok(row) = c.query_one("SELECT pg_is_in_recovery()", &[]).await else {
        return ServerFacts::Unknown;
    };
    let in_recovery: bool = row.get(0);
    let epoch = match connect(&lifeboat_region::heartbeat::lifeboat_db(conn), Retry::ONCE).await {
        Ok(lb) => lifeboat_region::promotion::authority_row::read_epoch(&lb)
            .await
            .ok()
            .flatten()
            .map(|r| r.epoch),
        Err(_) => None,
    };
    if in_recovery {
        ServerFacts::Standby { epoch }
    } else {
        ServerFacts::Primary { epoch }
    }
}

/// Logs what an apply changed and sets the answer gauges.
fn report(a: &Applied, steered: &[String], by_region: &BTreeMap<String, Consensus>) {
    for r in steered {
        metrics::traffic_answer(r, a.desired.regions.contains(r));
    }
    if !a.written {
        return;
    }
    metrics::traffic_updated();
    let changes: Vec<String> = a.changes.iter().map(ToString::to_string).collect();
    let unhealthy: Vec<String> = by_region
        .iter()
        .filter(|(_, c)| c.healthy == Some(false))
        .map(|(r, c)| format!("{r} (unhealthy for {})", c.unhealthy_observers.join(",")))
        .collect();
    if a.desired.all_unhealthy {
        tracing::warn!(
            provider = a.provider.as_str(),
            changes = %changes.join(", "),
            "no region is healthy: DNS answers with every region (Route 53's rule: an empty answer would make a health-check outage a total outage)"
        );
    } else {
        tracing::info!(
            provider = a.provider.as_str(),
            changes = %changes.join(", "),
            serving = %a.desired.regions.join(","),
            unhealthy = %unhealthy.join("; "),
            attempts = a.attempts,
            "traffic steered: DNS answers with the healthy regions"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_authority_table() {
        let steered = vec!["us-east".to_string(), "eu-west".to_string()];
        let auth = AuthorityView {
            primary: "eu-west".into(),
            epoch: 3,
        };
        let sb = |e: Option<u64>| ServerFacts::Standby { epoch: e };
        let pr = |e: Option<u64>| ServerFacts::Primary { epoch: e };
        type Row = (
            &'static str,
            Vec<(&'static str, bool)>,
            Vec<(&'static str, ServerFacts)>,
            Option<Vec<(&'static str, bool)>>,
        );
        let rows: Vec<Row> = vec![
            (
                "old primary back as a writable primary at epoch 2: left out though healthy",
                vec![],
                vec![("us-east", pr(Some(2))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "old primary a standby that has not replayed epoch 3: left out",
                vec![],
                vec![("us-east", sb(Some(2))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "rejoined (replayed epoch 3): answered again",
                vec![],
                vec![("us-east", sb(Some(3))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", true)]),
            ),
            (
                "rejoined but unhealthy: left out by health",
                vec![("us-east", false)],
                vec![("us-east", sb(Some(3))), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "old region unreachable: left out",
                vec![],
                vec![("us-east", ServerFacts::Unknown), ("eu-west", pr(Some(3)))],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
            (
                "the primary unhealthy, the stale region healthy: the primary still answered, never the stale one",
                vec![("eu-west", false), ("us-east", true)],
                vec![("us-east", pr(Some(2))), ("eu-west", ServerFacts::Unknown)],
                Some(vec![("eu-west", true), ("us-east", false)]),
            ),
        ];
        for (what, health, servers, want) in rows {
            let health: Verdicts = health
                .into_iter()
                .map(|(r, h)| (r.to_string(), h))
                .collect();
            let servers: BTreeMap<String, ServerFacts> = servers
                .into_iter()
                .map(|(r, f)| (r.to_string(), f))
                .collect();
            let want: Option<Verdicts> =
                want.map(|w| w.into_iter().map(|(r, h)| (r.to_string(), h)).collect());
            assert_eq!(
                follow_authority(&health, &steered, &auth, &servers),
                want,
                "{what}"
            );
        }
        // Epoch 1 (no promotion yet, no row anywhere): a standby is answered.
        let first = AuthorityView {
            primary: "us-east".into(),
            epoch: 1,
        };
        let servers = BTreeMap::from([("eu-west".to_string(), sb(None))]);
        assert_eq!(
            follow_authority(&Verdicts::new(), &steered, &first, &servers),
            Some(Verdicts::from([
                ("eu-west".to_string(), true),
                ("us-east".to_string(), true)
            ]))
        );
        // A primary not among the steered regions and no eligible standby.
        let elsewhere = AuthorityView {
            primary: "ap-south".into(),
            epoch: 4,
        };
        assert_eq!(
            follow_authority(&Verdicts::new(), &steered, &elsewhere, &BTreeMap::new()),
            None
        );
    }
}
