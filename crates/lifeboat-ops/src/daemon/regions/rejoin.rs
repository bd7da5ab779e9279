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
//! doubling to 16 min), a successful one ends the fenced state. When the
//! authority moves past the epoch a rejoin started under while it is in
//! its last steps (verify, DNS: the server is a standby by then), those
//! are abandoned ([`AutoRejoin::authority_seen`]) and the server is looked
//! at again at once: a primary that died meanwhile would otherwise hold the
//! rejoin, and every later one, for up to [`STEP_TIMEOUT`] per step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::daemon::Daemon;
use crate::region::failover::rejoin;

/// How often the own server is looked at when nothing runs.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The first wait after a failed rejoin; doubled after each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The first wait before a failed capacity step is tried again; doubled
/// after each failure, up to [`MAX_BACKOFF`].
pub const CAPACITY_FIRST_BACKOFF: Duration = Duration::from_secs(10);
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
    /// The server steps are done (a standby under the current epoch) but
    /// the capacity step failed (the Kubernetes API did not answer): tried
    /// again after [`CAPACITY_FIRST_BACKOFF`], doubling, by rerunning the
    /// rejoin, whose server steps then only verify.
    CapacityFailed(String),
    Failed(String),
    /// Its last steps were abandoned: the authority moved on (looked at
    /// again without a backoff).
    Abandoned(String),
}

/// The auto-rejoin state of one agent: a running rejoin, or when to look
/// again.
pub struct AutoRejoin {
    task: Option<JoinHandle<Finished>>,
    next: Instant,
    backoff: Duration,
    /// A rejoin whose capacity step failed is to be run again (its server
    /// steps stand), with its own backoff: scaling calls are cheap, and the
    /// region's writers stay down until it succeeds.
    capacity_pending: bool,
    capacity_backoff: Duration,
    /// The authority epoch the running rejoin started under, and how to
    /// tell it to abandon its last steps.
    started_under: u64,
    abandon: Option<tokio::sync::watch::Sender<bool>>,
}

impl Default for AutoRejoin {
    fn default() -> Self {
        AutoRejoin {
            task: None,
            next: Instant::now(),
            backoff: FIRST_BACKOFF,
            capacity_pending: false,
            capacity_backoff: CAPACITY_FIRST_BACKOFF,
            started_under: 0,
            abandon: None,
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
            Ok(f) => f,
            Err(e) => Finished::Failed(format!("the rejoin task ended: {e}")),
        };
        self.abandon = None;
        let now = Instant::now();
        match &outcome {
            Finished::Rejoined(_) => {
                self.backoff = FIRST_BACKOFF;
                self.capacity_pending = false;
                self.capacity_backoff = CAPACITY_FIRST_BACKOFF;
                self.next = now + CHECK_INTERVAL;
            }
            Finished::CapacityFailed(_) => {
                self.backoff = FIRST_BACKOFF;
                self.capacity_pending = true;
                self.next = now + self.capacity_backoff;
                self.capacity_backoff = (self.capacity_backoff * 2).min(MAX_BACKOFF);
            }
            Finished::Abandoned(_) => self.next = now,
            Finished::Failed(_) => {
                self.next = now + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
        Some(outcome)
    }

    /// Whether an earlier rejoin's capacity step failed and is to be tried
    /// again (by [`AutoRejoin::start`] once [`AutoRejoin::due`]).
    pub fn capacity_pending(&self) -> bool {
        self.capacity_pending
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

    /// The authority was read at `epoch`: a running rejoin started under
    /// an older one abandons its last steps (the primary it joins may be
    /// gone; see the module docs). Returns whether it was told to.
    pub fn authority_seen(&mut self, epoch: u64) -> bool {
        match &self.abandon {
            Some(tx) if epoch > self.started_under && !*tx.borrow() => {
                tx.send_replace(true);
                true
            }
            _ => false,
        }
    }

    /// Starts a rejoin of `region` in a task of its own, under the
    /// authority's `epoch`, once `after` (the fence's scaling of the
    /// region's writers to 0, if one runs) has ended: the rejoin brings
    /// them back last, so it must not overtake it.
    pub fn start(
        &mut self,
        d: &Arc<Daemon>,
        region: &str,
        epoch: u64,
        why: &'static str,
        after: Option<tokio::task::JoinHandle<()>>,
    ) {
        let (d, region) = (Arc::clone(d), region.to_string());
        tracing::warn!(region = %region, why, epoch, "auto_rejoin: making this region's server a standby of the current primary");
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.started_under = epoch;
        self.abandon = Some(tx);
        self.task = Some(tokio::spawn(async move {
            if let Some(writers_down) = after {
                // Bounded: the scaling has its own timeout.
                let _ = writers_down.await;
            }
            let req = rejoin::Request {
                region: region.clone(),
                step_timeout: STEP_TIMEOUT,
                abandon: Some(rx.clone()),
            };
            let report = rejoin::run(&d.ctx, &req, |n| {
                if n.ok {
                    tracing::info!(region = %region, step = n.step, "auto_rejoin: {}", n.text);
                } else {
                    tracing::warn!(region = %region, step = n.step, "auto_rejoin: {}", n.text);
                }
            })
            .await;
            let report = match report {
                Ok(r) => r,
                Err(e) if *rx.borrow() => return Finished::Abandoned(e.to_string()),
                Err(e) => return Finished::Failed(e.to_string()),
            };
            if let Some(e) = report.capacity_error() {
                return Finished::CapacityFailed(format!("{e} ({})", e.hint()));
            }
            Finished::Rejoined(format!(
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
            a.task = Some(tokio::spawn(async { Finished::Failed("no".into()) }));
            while !a.task.as_ref().unwrap().is_finished() {
                tokio::task::yield_now().await;
            }
            let before = Instant::now();
            assert!(matches!(a.finished().await, Some(Finished::Failed(_))));
            waits.push((a.next - before).as_secs() / 60);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 16, 16]);
        a.task = Some(tokio::spawn(async { Finished::Rejoined("ok".into()) }));
        while !a.task.as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(a.finished().await, Some(Finished::Rejoined(_))));
        assert_eq!(a.backoff, FIRST_BACKOFF);
    }

    #[tokio::test]
    async fn a_failed_capacity_step_is_tried_again_with_its_own_backoff() {
        let mut a = AutoRejoin::default();
        assert!(!a.capacity_pending());
        let mut waits = Vec::new();
        for _ in 0..8 {
            a.task = Some(tokio::spawn(async {
                Finished::CapacityFailed("no API".into())
            }));
            while !a.task.as_ref().unwrap().is_finished() {
                tokio::task::yield_now().await;
            }
            let before = Instant::now();
            assert!(matches!(
                a.finished().await,
                Some(Finished::CapacityFailed(_))
            ));
            assert!(a.capacity_pending(), "to be tried again");
            assert!(!a.due(), "not before the backoff");
            waits.push((a.next - before).as_secs_f64().round() as u64);
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 640, 960]);
        // A failed rerun of the whole rejoin keeps the capacity step pending
        // (the server steps may be what failed this time).
        a.task = Some(tokio::spawn(async { Finished::Failed("no".into()) }));
        while !a.task.as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(a.finished().await, Some(Finished::Failed(_))));
        assert!(a.capacity_pending());
        // Done: nothing pending, both backoffs back at their start.
        a.task = Some(tokio::spawn(async { Finished::Rejoined("ok".into()) }));
        while !a.task.as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(a.finished().await, Some(Finished::Rejoined(_))));
        assert!(!a.capacity_pending());
        assert_eq!(a.capacity_backoff, CAPACITY_FIRST_BACKOFF);
        assert_eq!(a.backoff, FIRST_BACKOFF);
    }

    #[tokio::test]
    async fn a_newer_epoch_abandons_the_running_rejoin_once_and_it_is_retried_at_once() {
        let mut a = AutoRejoin::default();
        assert!(!a.authority_seen(9), "nothing runs: nothing to abandon");
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        a.started_under = 3;
        a.abandon = Some(tx);
        a.task = Some(tokio::spawn(async move {
            let _ = rx.wait_for(|x| *x).await;
            Finished::Abandoned("moved on".into())
        }));
        assert!(!a.authority_seen(3), "the same epoch: it goes on");
        assert!(!a.authority_seen(2));
        assert!(a.authority_seen(4), "a newer epoch: abandoned");
        assert!(!a.authority_seen(5), "told once");
        while !a.task.as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        let backoff = a.backoff;
        assert!(matches!(a.finished().await, Some(Finished::Abandoned(_))));
        assert_eq!(a.backoff, backoff, "no backoff for an abandoned rejoin");
        assert!(a.due(), "looked at again at once");
    }
}
