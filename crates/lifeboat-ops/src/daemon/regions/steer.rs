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

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use lifeboat_region::health::{Consensus, Verdict};
use lifeboat_region::traffic::{Applied, TrafficError, TrafficProvider};
use tokio::sync::watch;

use super::{health, metrics};
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
        let (steering, by_region) = verdicts::steering(&views, &regions, now, max_age);
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
        tokio::select! {
            r = own_verdicts.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(every) => {}
            _ = stopped(&mut sd) => return,
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
