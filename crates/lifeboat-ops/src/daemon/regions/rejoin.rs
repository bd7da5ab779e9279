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
//! answers but cannot be identified are left alone (a standby's writers
//! are looked at: below).
//!
//! A rejoin runs in a task of its own (a clone can take minutes), so the
//! lease renewals go on; a failed one is retried after a backoff (1 min,
//! doubling to 16 min), a successful one ends the fenced state. When the
//! authority moves past the epoch a rejoin started under while it is in
//! its last steps (verify, DNS: the server is a standby by then), those
//! are abandoned ([`AutoRejoin::authority_seen`]) and the server is looked
//! at again at once: a primary that died meanwhile would otherwise hold the
//! rejoin, and every later one, for up to [`STEP_TIMEOUT`] per step.
//!
//! A rejoin's capacity step (its region's writers back to the counts the
//! fence recorded) can fail after its server steps stand (the Kubernetes
//! API did not answer). Whether it is still to be done is read, not
//! remembered, so a restarted daemon finishes it too: at each check where
//! the server answers as a standby and the authority names another region,
//! a task of its own ([`AutoRejoin::look`]) reads the region's configured
//! writer Deployments (`regions.NAME.deployments`, only those) and the
//! primary region's and, when any of its own still carries
//! `lifeboat.io/original-replicas` or any of the primary's still carries a
//! failover's `lifeboat.io/failover-scaled` mark, runs the rejoin again
//! with [`rejoin::Request::finish_only`]: the same code as `region rejoin`,
//! refused unless the primary of the current epoch lists the server
//! streaming (it never stops or rewinds a standby), and under its own
//! rules (refused while a change of primary is under way, whose switchover
//! quiesce holds the same annotation; its capacity step only after verify,
//! which waits until the server replayed the epoch). It waits for a fence's
//! scaling of the writers still running in this daemon, as a rejoin does.
//! Writers that a source's `quiesce:` names too are left to the operator
//! ([`capacity_step`]): a restore records its counts in the same annotation
//! and leaves its writers down on purpose when verification fails. The
//! capacity step is tried again after 10 s, doubling to 16 min, as long as
//! it fails, the writers cannot be read or they are left as they are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::metrics;
use crate::daemon::Daemon;
use crate::region::failover::{rejoin, scale};

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

/// What a look at a standby's writers leads to (pure), from `held`, its
/// region's writer Deployments that still carry the recorded count,
/// `shared`, those of them a source's `quiesce:` names too, and
/// `primary_scaled`, the primary region's Deployments still at their
/// failover counts (a rejoin's last scaling, back to normal, not done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapacityStep {
    /// None is held down or left at its failover count: nothing to do.
    Done,
    /// Finish the capacity step (a rejoin with `finish_only`).
    Finish,
    /// Held down, but some of them are a restore's writers too: a restore
    /// may hold them down on purpose, so they are left to the operator
    /// (and so is the primary's scaling back, which a rejoin does only
    /// after them).
    LeaveToOperator(String),
}

/// See [`CapacityStep`].
pub fn capacity_step(
    held: &[String],
    shared: &[String],
    primary_scaled: &[String],
) -> CapacityStep {
    if held.is_empty() && primary_scaled.is_empty() {
        return CapacityStep::Done;
    }
    let both: Vec<&str> = held
        .iter()
        .filter(|h| shared.contains(h))
        .map(String::as_str)
        .collect();
    if both.is_empty() {
        CapacityStep::Finish
    } else {
        CapacityStep::LeaveToOperator(format!(
            "{} also named in a source's quiesce: (a restore records its counts in the same \
             annotation and may hold them down on purpose): left to the operator; once no \
             restore holds them, run `lifeboat region rejoin` for this region (or `lifeboat \
             unquiesce` for the restore's)",
            both.join(", ")
        ))
    }
}

/// How a finished rejoin, or a look at a standby's writers, ended.
pub enum Finished {
    Rejoined(String),
    /// The server steps are done (a standby under the current epoch) but
    /// the capacity step failed (the Kubernetes API did not answer): tried
    /// again after [`CAPACITY_FIRST_BACKOFF`], doubling, once a look finds
    /// the writers still held down.
    CapacityFailed(String),
    Failed(String),
    /// Its last steps were abandoned: the authority moved on (looked at
    /// again without a backoff).
    Abandoned(String),
    /// A look at the standby's writers ran nothing: none is held down
    /// (`None`), or why those held down were left as they are (shared with
    /// a restore, or the finishing rejoin refused: not a streaming standby,
    /// a change of primary under way), looked at again after the capacity
    /// backoff. `held`: the writers it read still held down (empty: none).
    Looked {
        left: Option<String>,
        held: Vec<String>,
    },
    /// A look could not read the writers (the Kubernetes API): tried again
    /// after the capacity backoff.
    Unread(String),
}

/// The auto-rejoin state of one agent: a running rejoin, or when to look
/// again.
pub struct AutoRejoin {
    task: Option<JoinHandle<Finished>>,
    next: Instant,
    backoff: Duration,
    /// The wait before the next look after a capacity step that failed or
    /// writers that are held down or could not be read: scaling calls are
    /// cheap, and the region's writers stay down until it succeeds.
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
            Finished::Rejoined(_) | Finished::Looked { left: None, .. } => {
                self.backoff = FIRST_BACKOFF;
                self.capacity_backoff = CAPACITY_FIRST_BACKOFF;
                self.next = now + CHECK_INTERVAL;
            }
            Finished::CapacityFailed(_) => {
                self.backoff = FIRST_BACKOFF;
                self.capacity_later(now);
            }
            Finished::Looked { left: Some(_), .. } | Finished::Unread(_) => {
                self.capacity_later(now)
            }
            Finished::Abandoned(_) => self.next = now,
            Finished::Failed(_) => {
                self.next = now + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
        Some(outcome)
    }

    /// The next look after the capacity backoff, which doubles.
    fn capacity_later(&mut self, now: Instant) {
        self.next = now + self.capacity_backoff;
        self.capacity_backoff = (self.capacity_backoff * 2).min(MAX_BACKOFF);
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
        tracing::warn!(region = %region, why, epoch, "auto_rejoin: making this region's server a standby of the current primary");
        let rx = self.abandonable(epoch);
        let (d, region) = (Arc::clone(d), region.to_string());
        self.task = Some(tokio::spawn(async move {
            if let Some(writers_down) = after {
                // Bounded: the scaling has its own timeout.
                let _ = writers_down.await;
            }
            // Refused (a usage error, nothing changed): a failure here.
            run_rejoin(&d, &region, rx, false)
                .await
                .unwrap_or_else(Finished::Failed)
        }));
    }

    /// Looks at the writers of `region`, whose server answers as a standby
    /// under the authority's `epoch` naming `primary`, in a task of its own
    /// (the Kubernetes API may take its retry budget): when some still
    /// carry the count a fence recorded, or the primary region's are still
    /// at their failover counts, finishes the capacity step by a rejoin
    /// with `finish_only` (see the module docs), once `after` (a fence's
    /// scaling of the writers still running) has ended.
    pub fn look(
        &mut self,
        d: &Arc<Daemon>,
        region: &str,
        primary: &str,
        epoch: u64,
        after: Option<tokio::task::JoinHandle<()>>,
    ) {
        let rx = self.abandonable(epoch);
        let (d, region, primary) = (Arc::clone(d), region.to_string(), primary.to_string());
        self.task = Some(tokio::spawn(async move {
            if let Some(writers_down) = after {
                let _ = writers_down.await;
            }
            let Some(config) = d.ctx.config.as_ref() else {
                return Finished::Looked {
                    left: None,
                    held: Vec::new(),
                };
            };
            let held = match scale::held_down(&d.ctx, config, &region).await {
                Ok(h) => h,
                Err((_, e)) => return Finished::Unread(e),
            };
            // What was read, whatever the finishing rejoin below does.
            metrics::writers_held_down(&region, Some(held.len()));
            let scaled = match scale::at_failover_counts(&d.ctx, config, &primary).await {
                Ok(m) => m,
                Err((_, e)) => return Finished::Unread(e),
            };
            let shared = scale::shared_with_restores(config, &region);
            match capacity_step(&held, &shared, &scaled) {
                CapacityStep::Done => Finished::Looked { left: None, held },
                CapacityStep::LeaveToOperator(why) => Finished::Looked {
                    left: Some(why),
                    held,
                },
                CapacityStep::Finish => {
                    tracing::warn!(region = %region, held = %held.join(", "),
                        primary_at_failover_counts = %scaled.join(", "), epoch,
                        "auto_rejoin: this region's server is a standby and a rejoin's capacity step is not finished (its writers still held down, or the primary region's still at their failover counts): finishing it");
                    let f = run_rejoin(&d, &region, rx, true).await;
                    match f {
                        Ok(Finished::Rejoined(summary)) if !scaled.is_empty() => {
                            primary_still_scaled(&d, config, &primary, summary, held).await
                        }
                        Ok(f) => f,
                        Err(refused) => Finished::Looked {
                            left: Some(refused),
                            held,
                        },
                    }
                }
            }
        }));
    }

    /// Records `epoch` as the one the task to start runs under; the
    /// receiver tells it to abandon its last steps.
    fn abandonable(&mut self, epoch: u64) -> tokio::sync::watch::Receiver<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.started_under = epoch;
        self.abandon = Some(tx);
        rx
    }
}

/// A finishing rejoin ended well while `primary`'s Deployments were at
/// their failover counts: if they still are (its capacity step leaves them
/// there while another region is not back), the look is "left as they
/// are", tried again after the capacity backoff rather than at the next
/// check.
async fn primary_still_scaled(
    d: &Arc<Daemon>,
    config: &crate::config::Config,
    primary: &str,
    summary: String,
    held: Vec<String>,
) -> Finished {
    match scale::at_failover_counts(&d.ctx, config, primary).await {
        Ok(m) if m.is_empty() => Finished::Rejoined(summary),
        Ok(m) => Finished::Looked {
            left: Some(format!(
                "{primary}'s {} still at their failover counts after the capacity step ({summary})",
                m.join(", ")
            )),
            held,
        },
        Err((_, e)) => Finished::Unread(e),
    }
}

/// One rejoin of `region` (`finish_only`: see [`rejoin::Request`]);
/// `Err`: refused before anything was changed (a usage error: a change of
/// primary under way, not a streaming standby with `finish_only`), and why.
async fn run_rejoin(
    d: &Arc<Daemon>,
    region: &str,
    rx: tokio::sync::watch::Receiver<bool>,
    finish_only: bool,
) -> std::result::Result<Finished, String> {
    let req = rejoin::Request {
        region: region.to_string(),
        step_timeout: STEP_TIMEOUT,
        abandon: Some(rx.clone()),
        finish_only,
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
        Err(e) if *rx.borrow() => return Ok(Finished::Abandoned(e.to_string())),
        Err(e) if e.kind() == crate::error::Kind::Usage => {
            return Err(format!("{e} ({})", e.hint()));
        }
        Err(e) => return Ok(Finished::Failed(e.to_string())),
    };
    if let Some(e) = report.capacity_error() {
        return Ok(Finished::CapacityFailed(format!("{e} ({})", e.hint())));
    }
    Ok(Finished::Rejoined(format!(
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
    )))
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

    /// Runs `f` as the finished task and takes its outcome, returning the
    /// wait until the next look in whole seconds.
    async fn outcome(a: &mut AutoRejoin, f: Finished) -> (Finished, u64) {
        a.task = Some(tokio::spawn(async move { f }));
        while !a.task.as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        let before = Instant::now();
        let got = a.finished().await.expect("finished");
        (got, (a.next - before).as_secs_f64().round() as u64)
    }

    #[tokio::test]
    async fn a_failed_capacity_step_is_tried_again_with_its_own_backoff() {
        let mut a = AutoRejoin::default();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let (got, wait) = outcome(&mut a, Finished::CapacityFailed("no API".into())).await;
            assert!(matches!(got, Finished::CapacityFailed(_)));
            assert!(!a.due(), "not before the backoff");
            waits.push(wait);
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 640, 960]);
        // Writers that cannot be read, or are held down and left as they
        // are, keep doubling the same backoff.
        let (_, wait) = outcome(&mut a, Finished::Unread("no API".into())).await;
        assert_eq!(wait, 960);
        let (_, wait) = outcome(
            &mut a,
            Finished::Looked {
                left: Some("not streaming".into()),
                held: vec!["deployment/gateway".into()],
            },
        )
        .await;
        assert_eq!(wait, 960);
        // A rejoin that failed keeps its own backoff.
        let (_, wait) = outcome(&mut a, Finished::Failed("no".into())).await;
        assert_eq!(wait, 60);
        // A look that finds nothing held down: looked at again at the check
        // interval, both backoffs back at their start.
        let (_, wait) = outcome(
            &mut a,
            Finished::Looked {
                left: None,
                held: Vec::new(),
            },
        )
        .await;
        assert_eq!(wait, CHECK_INTERVAL.as_secs());
        assert_eq!(a.capacity_backoff, CAPACITY_FIRST_BACKOFF);
        assert_eq!(a.backoff, FIRST_BACKOFF);
        // So does a capacity step finished (the writers back).
        let (_, wait) = outcome(&mut a, Finished::CapacityFailed("no API".into())).await;
        assert_eq!(wait, 10);
        let (_, wait) = outcome(&mut a, Finished::Rejoined("ok".into())).await;
        assert_eq!(wait, CHECK_INTERVAL.as_secs());
        assert_eq!(a.capacity_backoff, CAPACITY_FIRST_BACKOFF);
    }

    #[test]
    fn held_down_writers_are_brought_back_unless_a_restore_names_them_too() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (held down, named by a source's quiesce:, the primary's still at
        // failover counts) → step
        assert_eq!(capacity_step(&[], &[], &[]), CapacityStep::Done);
        assert_eq!(
            capacity_step(&[], &v(&["deployment/gateway"]), &[]),
            CapacityStep::Done,
            "nothing held: nothing to do, shared or not"
        );
        assert_eq!(
            capacity_step(&v(&["deployment/gateway"]), &[], &[]),
            CapacityStep::Finish
        );
        assert_eq!(
            capacity_step(
                &v(&["deployment/gateway", "deployment/api"]),
                &v(&["deployment/worker"]),
                &[]
            ),
            CapacityStep::Finish,
            "a restore's other writers do not matter"
        );
        // The primary region's Deployments still at their failover counts:
        // finished too, even with nothing of this region's held down ...
        let scaled = v(&["deployment/gateway"]);
        assert_eq!(capacity_step(&[], &[], &scaled), CapacityStep::Finish);
        assert_eq!(
            capacity_step(&[], &v(&["deployment/gateway"]), &scaled),
            CapacityStep::Finish,
            "a restore's writers that are not held down do not matter"
        );
        // ... but not past this region's writers that a restore may hold.
        assert!(matches!(
            capacity_step(
                &v(&["deployment/gateway"]),
                &v(&["deployment/gateway"]),
                &scaled
            ),
            CapacityStep::LeaveToOperator(_)
        ));
        for (held, shared, named) in [
            (
                v(&["deployment/gateway"]),
                v(&["deployment/gateway"]),
                "deployment/gateway also named",
            ),
            (
                v(&["deployment/gateway", "deployment/api"]),
                v(&["deployment/api", "deployment/worker"]),
                "deployment/api also named",
            ),
        ] {
            match capacity_step(&held, &shared, &[]) {
                CapacityStep::LeaveToOperator(why) => {
                    assert!(why.starts_with(named), "{why}");
                    assert!(why.contains("`lifeboat region rejoin`"), "{why}");
                }
                other => panic!("{held:?} {shared:?}: {other:?}"),
            }
        }
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
