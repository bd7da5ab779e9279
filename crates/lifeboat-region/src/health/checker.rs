//! The checker loop: every check probed every `request_interval`, each
//! result fed to the check's state machine and published with its verdict.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::probe::{Timeouts, probe_with};
use super::spec::CheckSpec;
use super::verdict::{CheckState, Verdict};

/// What the loop publishes: after every probe the check's verdict, with
/// `flipped` set when the status just changed. Before the first probe each
/// check publishes its initial verdict (healthy, no outcome), so a consumer
/// knows every check from the start. Consumers that want changes only keep
/// the reports with `flipped`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    pub flipped: bool,
}

/// Probes one region's checks from one vantage point.
#[derive(Clone, Debug)]
pub struct Checker {
    region: String,
    observer: String,
    specs: Vec<CheckSpec>,
    timeouts: Timeouts,
}

impl Checker {
    /// `observer` names this vantage point in every verdict.
    pub fn new(
        region: impl Into<String>,
        observer: impl Into<String>,
        specs: Vec<CheckSpec>,
    ) -> Self {
        Checker {
            region: region.into(),
            observer: observer.into(),
            specs,
            timeouts: Timeouts::ROUTE53,
        }
    }

    /// Other time limits than Route 53's.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Runs every check on its own interval (the first probe at once) until
    /// `shutdown` completes or `reports`' receiver is dropped. A probe in
    /// flight at shutdown is abandoned. A zero interval is read as 1 ms.
    pub async fn run<F>(self, reports: mpsc::Sender<Report>, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        let mut tasks = JoinSet::new();
        for spec in self.specs {
            tasks.spawn(check_loop(
                self.region.clone(),
                self.observer.clone(),
                spec,
                self.timeouts,
                reports.clone(),
            ));
        }
        drop(reports);
        let all_done = async { while tasks.join_next().await.is_some() {} };
        tokio::select! {
            () = shutdown => {}
            () = all_done => {}
        }
        // Dropping the set aborts the loops still running.
    }
}

async fn check_loop(
    region: String,
    observer: String,
    spec: CheckSpec,
    timeouts: Timeouts,
    reports: mpsc::Sender<Report>,
) {
    let mut state = CheckState::new(Utc::now());
    let initial = Report {
        verdict: Verdict::new(&region, &spec.name, &observer, &state),
        flipped: false,
    };
    if reports.send(initial).await.is_err() {
        return;
    }
    let timeouts = timeouts.within(spec.request_interval);
    let mut ticker = tokio::time::interval(spec.request_interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = probe_with(&spec, &timeouts).await;
        let step = state.observe(outcome, Utc::now(), spec.threshold());
        state = step.state;
        let report = Report {
            verdict: Verdict::new(&region, &spec.name, &observer, &state),
            flipped: step.flipped,
        };
        if step.flipped {
            tracing::info!(
                region = %region,
                check = %spec.name,
                healthy = state.healthy,
                last = ?state.last_outcome.as_ref().map(ToString::to_string),
                "health check status changed"
            );
        }
        if reports.send(report).await.is_err() {
            return;
        }
    }
}
