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
use lifeboat_region::traffic::{Applied, TrafficError, TrafficProvider};
use tokio::sync::watch;

use super::{health, metrics};
use crate::config::Config;
use crate::context::Ctx;
use crate::daemon::{Daemon, stopped};
use crate::region::steering::{
    AuthorityView, describe, eligible, follow_authority, newer_epoch_seen, server_facts,
};
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
    let mut unreadable = false;
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
            // The servers first, the authority after them: an authority
            // read older than a server's facts could name the old primary
            // after a failover's bump and steer DNS back to it.
            let servers = server_facts(&d.ctx, config, &steered).await;
            match authority_now(&d.ctx, config, &mut store, &mut unreadable).await {
                Some(a) if newer_epoch_seen(&a, &servers).is_some() => {
                    tracing::warn!(
                        primary = %a.primary,
                        epoch = a.epoch,
                        server_epoch = newer_epoch_seen(&a, &servers),
                        "a server shows a newer epoch than the authority read (etcd not read now, or a change of primary under way): DNS left as it is this round"
                    );
                    if wait_next(&mut own_verdicts, &mut sd, every).await {
                        return;
                    }
                    continue;
                }
                Some(a) => {
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
                    // Not readable now (logged once by authority_now).
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

/// The authority read now, connecting to etcd when not connected; `None`
/// when it cannot be read now (logged when that starts). An authority read
/// earlier is never used: a daemon cut off from etcd may be in the old
/// primary's region, and steering there by its last read would answer the
/// fenced old primary after a failover elsewhere (review of the fault
/// suite's fixes).
async fn authority_now(
    ctx: &Ctx,
    config: &Config,
    store: &mut Option<AuthorityStore>,
    unreadable: &mut bool,
) -> Option<AuthorityView> {
    if store.is_none() {
        match crate::region::failover::authority::connect(ctx, config).await {
            Ok(s) => *store = Some(s),
            Err(e) => {
                if !std::mem::replace(unreadable, true) {
                    tracing::warn!(error = %e, "steering cannot reach etcd: DNS left as it is until it can");
                }
                return None;
            }
        }
    }
    let s = store.as_ref()?;
    match s.authority().await {
        Ok(Some(v)) => {
            if std::mem::replace(unreadable, false) {
                tracing::info!("steering reads the authority again");
            }
            Some(AuthorityView {
                primary: v.value.primary.clone(),
                epoch: v.value.epoch,
            })
        }
        Ok(None) => None,
        Err(e) => {
            if !std::mem::replace(unreadable, true) {
                tracing::warn!(error = %e, "steering cannot read the authority: DNS left as it is until it can");
            }
            *store = None;
            None
        }
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
