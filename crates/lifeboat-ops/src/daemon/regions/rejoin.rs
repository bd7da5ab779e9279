//! `failover.auto_rejoin` (docs/failover.md, "Rejoin"): the daemon of a
//! region the authority does not name makes its returning old primary a
//! streaming standby of the current primary again, by the same code as
//! `lifeboat region rejoin R` ([`crate::region::failover::rejoin::run`]).
//! Called from the agent's loop (`agent.rs`), which holds the lease.
//!
//! Only a server that was a primary is rejoined ([`wants_rejoin`], pure):
//! one that is down (no postmaster runs on its data directory) and whose
//! control file says it went down as a primary (`in production`: stopped
//! at once or crashed; `shut down`), after this daemon fenced it or once
//! the authority has moved past every epoch this region was primary under. A writable one is left to the agent,
//! which fences a stale primary first (then it is down). A standby, a
//! server down in recovery (an operator's maintenance) and one that
//! answers but cannot be identified are left alone.
//!
//! A rejoin runs in a task of its own (a clone can take minutes), so the
//! lease renewals go on; a failed one is retried after a backoff (1 min,
//! doubling to 16 min), a successful one ends the fenced state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::daemon::Daemon;
use crate::region::failover::rejoin;

/// How often the own server is looked at when nothing runs.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The first wait after a failed rejoin; doubled after each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait after failed rejoins.
pub const MAX_BACKOFF: Duration = Duration::from_secs(16 * 60);
/// Bound on each waiting step of a rejoin (stop, rewind, start,
/// streaming, replay), as `region rejoin --step-timeout`'s default.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// What the own server looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// It answers and accepts writes.
    Writable,
    /// It answers and is in recovery.
    Standby,
    /// Something answered but could not be identified (authentication,
    /// database missing).
    Unidentified,
    /// Nothing answers; `state`: its control file's `Database cluster
    /// state` when it could be read.
    Down { state: Option<String> },
}

/// Why the region's server should be rejoined now, or `None` (pure).
/// `fenced_here`: this daemon fenced it; `authority_moved`: the authority's
/// epoch is above every epoch this region was known primary under (above
/// 1 when none is known).
pub fn wants_rejoin(seen: &Seen, fenced_here: bool, authority_moved: bool) -> Option<&'static str> {
    let Seen::Down { state: Some(state) } = seen else {
        return None;
    };
    // Stopped at once or crashed (`in production`), or shut down, as a
    // primary; a standby's states (`… in recovery`) are left alone.
    if state != "in production" && state != "shut down" {
        return None;
    }
    if fenced_here {
        Some("this daemon fenced its server")
    } else if authority_moved {
        Some("its server went down as a primary and the authority has moved on")
    } else {
        None
    }
}

/// Whether the authority at `epoch` has moved past `own_epoch`, the
/// highest epoch this region was known primary under (pure).
pub fn authority_moved(epoch: u64, own_epoch: Option<u64>) -> bool {
    epoch > own_epoch.unwrap_or(1).max(1)
}

/// How a finished rejoin ended.
pub enum Finished {
    Rejoined(String),
    Failed(String),
}

/// The auto-rejoin state of one agent: a running rejoin, or when to look
/// again.
pub struct AutoRejoin {
    task: Option<JoinHandle<Result<String, String>>>,
    next: Instant,
    backoff: Duration,
}

impl Default for AutoRejoin {
    fn default() -> Self {
        AutoRejoin {
            task: None,
            next: Instant::now(),
            backoff: FIRST_BACKOFF,
        }
    }
}

impl AutoRejoin {
    /// A finished rejoin's outcome (once), `None` while one runs or none did.
    pub async fn finished(&mut self) -> Option<Finished> {
        if !self.task.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        let outcome = match self.task.take()?.await {
            Ok(Ok(s)) => Finished::Rejoined(s),
            Ok(Err(e)) => Finished::Failed(e),
            Err(e) => Finished::Failed(format!("the rejoin task ended: {e}")),
        };
        let now = Instant::now();
        match &outcome {
            Finished::Rejoined(_) => {
                self.backoff = FIRST_BACKOFF;
                self.next = now + CHECK_INTERVAL;
            }
            Finished::Failed(_) => {
                self.next = now + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
        Some(outcome)
    }

    /// Whether the own server should be looked at now (nothing runs and
    /// the wait is over); schedules the next look.
    pub fn due(&mut self) -> bool {
        if self.task.is_some() || Instant::now() < self.next {
            return false;
        }
        self.next = Instant::now() + CHECK_INTERVAL;
        true
    }

    /// Starts a rejoin of `region` in a task of its own.
    pub fn start(&mut self, d: &Arc<Daemon>, region: &str, why: &'static str) {
        let (d, region) = (Arc::clone(d), region.to_string());
        tracing::warn!(region = %region, why, "auto_rejoin: making this region's server a standby of the current primary");
        self.task = Some(tokio::spawn(async move {
            let req = rejoin::Request {
                region: region.clone(),
                step_timeout: STEP_TIMEOUT,
            };
            let report = rejoin::run(&d.ctx, &req, |n| {
                if n.ok {
                    tracing::info!(region = %region, step = n.step, "auto_rejoin: {}", n.text);
                } else {
                    tracing::warn!(region = %region, step = n.step, "auto_rejoin: {}", n.text);
                }
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok(format!(
                "{} now streams from {} (epoch {}, method {})",
                report.region,
                report.primary,
                report.epoch,
                report
                    .method
                    .map_or("none: it already streamed".to_string(), |m| format!(
                        "{m:?}"
                    )
                    .to_lowercase())
            ))
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_former_primary_is_rejoined() {
        let down = |s: Option<&str>| Seen::Down {
            state: s.map(str::to_string),
        };
        // (seen, fenced here, authority moved) → rejoin?
        let table: Vec<(Seen, bool, bool, bool)> = vec![
            (Seen::Writable, true, true, false),
            (Seen::Writable, false, true, false),
            (Seen::Standby, true, true, false),
            (Seen::Standby, false, true, false),
            (Seen::Unidentified, true, true, false),
            (down(None), true, false, false),
            (down(Some("in production")), true, false, true),
            (down(Some("shut down")), true, false, true),
            (down(Some("shut down in recovery")), true, true, false),
            (down(Some("in archive recovery")), true, true, false),
            (down(Some("in production")), false, true, true),
            (down(Some("shut down")), false, true, true),
            (down(Some("in production")), false, false, false),
            (down(Some("shut down")), false, false, false),
            (down(Some("shut down in recovery")), false, true, false),
            (down(Some("in archive recovery")), false, true, false),
            (down(Some("in crash recovery")), false, true, false),
            (down(None), false, true, false),
        ];
        for (seen, fenced, moved, want) in table {
            assert_eq!(
                wants_rejoin(&seen, fenced, moved).is_some(),
                want,
                "{seen:?} fenced_here={fenced} authority_moved={moved}"
            );
        }
    }

    #[test]
    fn the_authority_moved_past_the_own_epoch() {
        assert!(!authority_moved(1, None));
        assert!(authority_moved(2, None));
        assert!(!authority_moved(2, Some(2)));
        assert!(authority_moved(3, Some(2)));
        assert!(!authority_moved(1, Some(0)));
    }

    #[tokio::test]
    async fn a_failure_backs_off_doubling_up_to_the_maximum() {
        let mut a = AutoRejoin::default();
        assert!(a.due());
        assert!(!a.due(), "not again within the check interval");
        let mut waits = Vec::new();
        for _ in 0..7 {
            a.task = Some(tokio::spawn(async { Err::<String, String>("no".into()) }));
            while !a.task.as_ref().unwrap().is_finished() {
                tokio::task::yield_now().await;
            }
            let before = Instant::now();
            assert!(matches!(a.finished().await, Some(Finished::Failed(_))));
            waits.push((a.next - before).as_secs() / 60);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 16, 16]);
        a.task = Some(tokio::spawn(async { Ok::<String, String>("ok".into()) }));
        while !a.task.as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(a.finished().await, Some(Finished::Rejoined(_))));
        assert_eq!(a.backoff, FIRST_BACKOFF);
    }
}
