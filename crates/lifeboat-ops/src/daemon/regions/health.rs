//! Health checks from this daemon's vantage point: one
//! [`Checker`](lifeboat_region::health::Checker) per region that has
//! checks, this daemon's region name as the observer; every report sets the
//! check's metrics, a region's verdict is recomputed and, when it changes,
//! this vantage point's verdicts are handed to the steering loop. This vantage point's verdicts are published
//! (through the repository) on every flip and every [`publish_every`], so
//! that `region status` and the other regions' steering loops see them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lifeboat_region::health::{self, Checker, Report, Verdict, region_verdict};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::metrics;
use crate::config::Config;
use crate::daemon::{Daemon, stopped};

/// How often this vantage point's verdicts are published besides every
/// flip: the longest request interval of the checks, between 5 s and 60 s.
/// Views older than three of these are not counted by the steering loops.
pub fn publish_every(config: &Config) -> Duration {
    config
        .regions()
        .values()
        .flat_map(|r| r.check_specs())
        .map(|c| c.interval)
        .max()
        .unwrap_or(Duration::from_secs(30))
        .clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Starts the checkers and the task that consumes their reports.
pub fn spawn(
    d: &Arc<Daemon>,
    own: &str,
    views: watch::Sender<Vec<Verdict>>,
) -> Vec<JoinHandle<()>> {
    let Some(config) = d.ctx.config.as_ref() else {
        return Vec::new();
    };
    let (tx, rx) = mpsc::channel(256);
    let mut tasks = Vec::new();
    let mut regions = Vec::new();
    for (name, r) in config.regions_in_file_order() {
        regions.push(name.to_string());
        metrics::region_healthy(name, own, true);
        let specs: Vec<health::CheckSpec> = r.check_specs().iter().map(|c| c.probe()).collect();
        if specs.is_empty() {
            continue;
        }
        for s in &specs {
            metrics::check_started(name, &s.name, own);
        }
        let checker = Checker::new(name, own, specs);
        let mut sd = d.shutdown.subscribe();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            checker.run(tx, async move { stopped(&mut sd).await }).await
        }));
    }
    drop(tx);
    tasks.push(tokio::spawn(consume(
        Arc::clone(d),
        own.to_string(),
        regions,
        rx,
        views,
        publish_every(config),
    )));
    tasks
}

/// This vantage point's verdict on every region: healthy when all its
/// checks are (a region without checks always is).
fn region_health(
    regions: &[String],
    own: &str,
    latest: &BTreeMap<(String, String), Verdict>,
) -> Vec<(String, bool)> {
    let all: Vec<Verdict> = latest.values().cloned().collect();
    regions
        .iter()
        .map(|r| (r.clone(), region_verdict(r, own, &all).healthy))
        .collect()
}

async fn consume(
    d: Arc<Daemon>,
    own: String,
    regions: Vec<String>,
    mut rx: mpsc::Receiver<Report>,
    views: watch::Sender<Vec<Verdict>>,
    every: Duration,
) {
    let mut latest: BTreeMap<(String, String), Verdict> = BTreeMap::new();
    // Every region starts healthy (Route 53: a new check is healthy).
    let mut health_before: Vec<(String, bool)> =
        regions.iter().map(|r| (r.clone(), true)).collect();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut sd = d.shutdown.subscribe();
    loop {
        let flipped = tokio::select! {
            r = rx.recv() => match r {
                Some(report) => {
                    metrics::check_probed(&report.verdict);
                    let key = (report.verdict.region.clone(), report.verdict.check.clone());
                    latest.insert(key, report.verdict);
                    report.flipped
                }
                None => return,
            },
            _ = ticker.tick() => true,
            _ = stopped(&mut sd) => return,
        };
        let now = region_health(&regions, &own, &latest);
        for (region, healthy) in &now {
            metrics::region_healthy(region, &own, *healthy);
        }
        if now != health_before {
            for ((region, healthy), (_, was)) in now.iter().zip(&health_before) {
                if healthy != was {
                    if *healthy {
                        tracing::info!(region = %region, observer = %own, "region healthy again from this vantage point");
                    } else {
                        tracing::warn!(region = %region, observer = %own, "region unhealthy from this vantage point");
                    }
                }
            }
            health_before = now;
            views.send_replace(latest.values().cloned().collect());
        }
        if flipped {
            let all: Vec<Verdict> = latest.values().cloned().collect();
            if let Err(e) = crate::region::verdicts::publish(&d.repo, &own, &all).await {
                tracing::warn!(observer = %own, error = %e, "cannot publish this vantage point's health verdicts; retrying at the next flip or period");
            }
        }
    }
}
