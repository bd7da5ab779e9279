//! The fence deadline (pure): when a primary that cannot renew its region
//! lease must have fenced itself.
//!
//! etcd counts a lease's TTL from when *it* handled the grant or the last
//! keep-alive; the agent cannot know that moment, only when it *sent* the
//! request, which is earlier. So the deadline is counted from the send:
//!
//! ```text
//! deadline = send instant of the last successful renewal + ttl − fence_guard
//! ```
//!
//! on the local monotonic clock (`Instant`, CLOCK_MONOTONIC: wall-clock
//! steps do not move it). etcd's own clock runs at a rate that differs from
//! ours by a tiny fraction, and the lease may expire up to an election
//! timeout *later* on an etcd leader change (never earlier), so the fence
//! always precedes the expiry by at least `fence_guard` minus the drift over
//! one TTL. `fence_guard` pays for the fence itself (an immediate stop
//! takes well under a second; terminating sessions too) and for a slow
//! scheduler. A promotion elsewhere waits for the expiry plus its own
//! safety margin on top.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The lease and fence timing of one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FenceTiming {
    /// The TTL the region lease is granted with.
    pub lease_ttl: Duration,
    /// How often the lease is renewed.
    pub renew_interval: Duration,
    /// How long before the lease could expire the fence must be in place.
    pub fence_guard: Duration,
}

impl Default for FenceTiming {
    fn default() -> Self {
        FenceTiming {
            lease_ttl: Duration::from_secs(10),
            renew_interval: Duration::from_secs(2),
            fence_guard: Duration::from_secs(3),
        }
    }
}

/// Why a timing cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimingProblem {
    #[error("{what} is 0; give it a positive duration")]
    Zero { what: &'static str },
    #[error(
        "fence_guard ({guard:?}) is not shorter than lease_ttl ({ttl:?}): the primary would fence \
         at once after every renewal; lower fence_guard or raise lease_ttl"
    )]
    GuardNotBelowTtl { guard: Duration, ttl: Duration },
    #[error(
        "renew_interval ({renew:?}) is not shorter than lease_ttl − fence_guard ({window:?}): the \
         primary would fence before its next renewal; renew more often or raise lease_ttl"
    )]
    RenewNotBelowWindow { renew: Duration, window: Duration },
    #[error(
        "only {attempts} renewal attempt(s) fit between a renewal and the fence deadline \
         (lease_ttl − fence_guard = {window:?}, renew_interval {renew:?}): one lost renewal \
         would fence the primary; at least 2 are needed (renew more often or raise lease_ttl)"
    )]
    TooFewRenewals {
        attempts: u32,
        window: Duration,
        renew: Duration,
    },
}

impl FenceTiming {
    /// `lease_ttl − fence_guard` (0 when the guard is not shorter).
    pub fn window(&self) -> Duration {
        self.lease_ttl.saturating_sub(self.fence_guard)
    }

    /// Renewal attempts strictly before the deadline after a renewal sent at
    /// 0: the `k ≥ 1` with `k · renew_interval < window`.
    pub fn attempts_before_deadline(&self) -> u32 {
        let (w, r) = (self.window().as_nanos(), self.renew_interval.as_nanos());
        if r == 0 {
            return u32::MAX;
        }
        u32::try_from(w.div_ceil(r).saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Everything wrong with this timing (empty when it can be used).
    pub fn problems(&self) -> Vec<TimingProblem> {
        let mut out = Vec::new();
        for (what, d) in [
            ("lease_ttl", self.lease_ttl),
            ("renew_interval", self.renew_interval),
            ("fence_guard", self.fence_guard),
        ] {
            if d.is_zero() {
                out.push(TimingProblem::Zero { what });
            }
        }
        if !out.is_empty() {
            return out;
        }
        if self.fence_guard >= self.lease_ttl {
            out.push(TimingProblem::GuardNotBelowTtl {
                guard: self.fence_guard,
                ttl: self.lease_ttl,
            });
            return out;
        }
        if self.renew_interval >= self.window() {
            out.push(TimingProblem::RenewNotBelowWindow {
                renew: self.renew_interval,
                window: self.window(),
            });
            return out;
        }
        let attempts = self.attempts_before_deadline();
        if attempts < 2 {
            out.push(TimingProblem::TooFewRenewals {
                attempts,
                window: self.window(),
                renew: self.renew_interval,
            });
        }
        out
    }

    /// The fence deadline after a renewal sent at `last_renewal_sent`.
    pub fn deadline(&self, last_renewal_sent: Instant) -> Instant {
        last_renewal_sent + self.window()
    }

    /// As [`Self::deadline`], when etcd answered the renewal with a TTL
    /// (`granted`) shorter than the configured one: the shorter counts.
    pub fn deadline_with_ttl(&self, sent: Instant, granted: Duration) -> Instant {
        sent + granted.min(self.lease_ttl).saturating_sub(self.fence_guard)
    }
}

/// What became of one renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// Renewed; etcd's answer gave the lease this TTL.
    Renewed {
        ttl: Duration,
    },
    Failed {
        error: String,
    },
    /// Cut off by the deadline before it answered.
    TimedOut,
}

/// One renewal attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    pub sent: Instant,
    pub outcome: RenewalOutcome,
}

/// How many renewals [`Renewals`] keeps for reports.
const KEPT: usize = 16;

/// The renewals of one lease so far and the deadline they give.
#[derive(Clone, Debug)]
pub struct Renewals {
    timing: FenceTiming,
    deadline: Instant,
    recent: VecDeque<Renewal>,
    succeeded: u64,
    failed_since_success: u32,
}

impl Renewals {
    /// A lease granted by a request sent at `granted_sent` with `ttl`.
    pub fn new(timing: FenceTiming, granted_sent: Instant, ttl: Duration) -> Self {
        Renewals {
            timing,
            deadline: timing.deadline_with_ttl(granted_sent, ttl),
            recent: VecDeque::new(),
            succeeded: 0,
            failed_since_success: 0,
        }
    }

    /// Records a renewal sent at `sent`. A success moves the deadline
    /// forward (never back: an answer to an older request that arrives late
    /// does not shorten it).
    pub fn record(&mut self, sent: Instant, outcome: RenewalOutcome) {
        match &outcome {
            RenewalOutcome::Renewed { ttl } => {
                self.deadline = self.deadline.max(self.timing.deadline_with_ttl(sent, *ttl));
                self.succeeded += 1;
                self.failed_since_success = 0;
            }
            RenewalOutcome::Failed { .. } | RenewalOutcome::TimedOut => {
                self.failed_since_success += 1;
            }
        }
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(Renewal { sent, outcome });
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the primary must be fenced at `now`.
    pub fn fence_now(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Time left until the deadline (0 once it has passed).
    pub fn time_left(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }

    pub fn succeeded(&self) -> u64 {
        self.succeeded
    }

    /// Failed (or timed-out) renewals since the last success.
    pub fn failed_since_success(&self) -> u32 {
        self.failed_since_success
    }

    /// The last few renewals, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Renewal> {
        self.recent.iter()
    }

    /// The error of the newest failed renewal, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.recent.iter().rev().find_map(|r| match &r.outcome {
            RenewalOutcome::Failed { error } => Some(error.as_str()),
            RenewalOutcome::TimedOut => Some("renewal cut off by the fence deadline"),
            RenewalOutcome::Renewed { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ttl: u64, renew: u64, guard: u64) -> FenceTiming {
        FenceTiming {
            lease_ttl: Duration::from_millis(ttl),
            renew_interval: Duration::from_millis(renew),
            fence_guard: Duration::from_millis(guard),
        }
    }

    #[test]
    fn problems_table() {
        let ms = Duration::from_millis;
        let cases: Vec<(FenceTiming, Vec<TimingProblem>)> = vec![
            // the defaults: window 7 s, attempts at 2, 4, 6 s
            (FenceTiming::default(), vec![]),
            (t(10_000, 2_000, 3_000), vec![]),
            (
                t(0, 2_000, 3_000),
                vec![TimingProblem::Zero { what: "lease_ttl" }],
            ),
            (
                t(10_000, 0, 0),
                vec![
                    TimingProblem::Zero {
                        what: "renew_interval",
                    },
                    TimingProblem::Zero {
                        what: "fence_guard",
                    },
                ],
            ),
            (
                t(3_000, 1_000, 3_000),
                vec![TimingProblem::GuardNotBelowTtl {
                    guard: ms(3_000),
                    ttl: ms(3_000),
                }],
            ),
            (
                t(10_000, 7_000, 3_000),
                vec![TimingProblem::RenewNotBelowWindow {
                    renew: ms(7_000),
                    window: ms(7_000),
                }],
            ),
            // window 4 s, renew 2 s: one attempt (at 2 s; 4 s is the deadline)
            (
                t(7_000, 2_000, 3_000),
                vec![TimingProblem::TooFewRenewals {
                    attempts: 1,
                    window: ms(4_000),
                    renew: ms(2_000),
                }],
            ),
            // window 4.001 s: attempts at 2 and 4 s
            (t(7_001, 2_000, 3_000), vec![]),
        ];
        for (timing, want) in cases {
            assert_eq!(timing.problems(), want, "{timing:?}");
        }
    }

    #[test]
    fn attempts_table() {
        for (timing, want) in [
            (t(10_000, 2_000, 3_000), 3),
            (t(7_000, 2_000, 3_000), 1),
            (t(7_001, 2_000, 3_000), 2),
            (t(1_000, 100, 200), 7),
        ] {
            assert_eq!(timing.attempts_before_deadline(), want, "{timing:?}");
        }
    }

    #[test]
    fn deadline_counts_from_the_send() {
        let timing = FenceTiming::default();
        let sent = Instant::now();
        assert_eq!(timing.deadline(sent), sent + Duration::from_secs(7));
        // etcd granted less than asked: the shorter TTL counts
        assert_eq!(
            timing.deadline_with_ttl(sent, Duration::from_secs(5)),
            sent + Duration::from_secs(2)
        );
        assert_eq!(
            timing.deadline_with_ttl(sent, Duration::from_secs(60)),
            sent + Duration::from_secs(7)
        );
        // a granted TTL below the guard: fence at once
        assert_eq!(timing.deadline_with_ttl(sent, Duration::from_secs(1)), sent);
    }

    #[test]
    fn renewals_move_the_deadline_forward_only() {
        let timing = FenceTiming::default();
        let s = |secs: u64| base() + Duration::from_secs(secs);
        let ttl = Duration::from_secs(10);
        let mut r = Renewals::new(timing, s(0), ttl);
        assert_eq!(r.deadline(), s(7));
        assert!(!r.fence_now(s(6)));
        assert!(r.fence_now(s(7)));
        assert_eq!(r.time_left(s(5)), Duration::from_secs(2));
        assert_eq!(r.time_left(s(9)), Duration::ZERO);

        r.record(s(2), RenewalOutcome::Renewed { ttl });
        assert_eq!(r.deadline(), s(9));
        r.record(
            s(4),
            RenewalOutcome::Failed {
                error: "etcd unreachable".into(),
            },
        );
        assert_eq!(r.deadline(), s(9));
        assert_eq!(r.failed_since_success(), 1);
        assert_eq!(r.last_error(), Some("etcd unreachable"));
        // a late answer to a request sent before the last success
        r.record(s(1), RenewalOutcome::Renewed { ttl });
        assert_eq!(r.deadline(), s(9));
        assert_eq!((r.succeeded(), r.failed_since_success()), (2, 0));
        r.record(s(6), RenewalOutcome::TimedOut);
        assert!(r.fence_now(s(9)));
        assert_eq!(r.recent().count(), 4);
        for i in 0..40 {
            r.record(s(10 + i), RenewalOutcome::Renewed { ttl });
        }
        assert_eq!(r.recent().count(), KEPT);
        assert_eq!(r.deadline(), s(49 + 7));
    }

    fn base() -> Instant {
        // any fixed instant: the arithmetic is relative
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }
}
