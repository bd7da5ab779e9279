//! One etcd call bounded by a deadline, and idempotent calls retried with
//! backoff until the deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::error::{Failure, failure};

/// First wait after a transient failure; doubled up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_millis(800);

/// Shortest cut of one attempt.
const MIN_ATTEMPT: Duration = Duration::from_millis(500);

/// The time one operation may take, and each attempt of it: at most a
/// third of the whole, so an attempt stuck at a member whose leader just
/// died (etcd holds such a request until its own, longer, timeout) leaves
/// time for attempts after the next leader is elected.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    deadline: Instant,
    attempt: Duration,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Self {
        Budget {
            deadline: Instant::now() + total,
            attempt: (total / 3).max(MIN_ATTEMPT).min(total),
        }
    }

    /// When the attempt starting now is cut.
    fn attempt_deadline(&self) -> Instant {
        (Instant::now() + self.attempt).min(self.deadline)
    }
}

/// One attempt, cut by the budget (a cut attempt is transient: its outcome
/// is unknown for a write).
pub(crate) async fn once<T>(
    budget: Budget,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout_at(budget.attempt_deadline(), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failure(&e)),
        Err(_) => Err(Failure::Transient(
            "no answer before the request timeout".to_string(),
        )),
    }
}

/// Retries `call` while it fails transiently and the next attempt can still
/// start within the budget. Only for calls that may be sent twice.
pub(crate) async fn retried<T, F, Fut>(budget: Budget, mut call: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let mut delay = FIRST_DELAY;
    loop {
        match once(budget, call()).await {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(why)) => {
                if !pause(budget, &mut delay).await {
                    return Err(Failure::Transient(why));
                }
            }
            Err(other) => return Err(other),
        }
    }
}

/// Waits `delay` (then doubles it) if that leaves time in the budget;
/// `false` when the budget is spent.
pub(crate) async fn pause(budget: Budget, delay: &mut Duration) -> bool {
    if Instant::now() + *delay >= budget.deadline {
        return false;
    }
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(MAX_DELAY);
    true
}

/// Runs `a` and `b` at once: the first success, or the first error for
/// which `decisive` holds (an answer that settles it, e.g. "lease not
/// found"), else (both failed) `a`'s error. For an idempotent request sent
/// twice through the balanced channel, which picks a member at random for
/// each: a member that swallows requests (partitioned: no refusal, no
/// answer) holds both copies with probability 1/n² instead of 1/n.
pub(crate) async fn first_ok<T, E>(
    a: impl Future<Output = Result<T, E>>,
    b: impl Future<Output = Result<T, E>>,
    decisive: impl Fn(&E) -> bool,
) -> Result<T, E> {
    tokio::pin!(a);
    tokio::pin!(b);
    let mut a_err: Option<E> = None;
    let mut b_failed = false;
    loop {
        tokio::select! {
            r = &mut a, if a_err.is_none() => match r {
                Ok(v) => return Ok(v),
                Err(e) if decisive(&e) => return Err(e),
                Err(e) => a_err = Some(e),
            },
            r = &mut b, if !b_failed => match r {
                Ok(v) => return Ok(v),
                Err(e) if decisive(&e) => return Err(e),
                Err(_) => b_failed = true,
            },
        }
        if b_failed && let Some(e) = a_err.take() {
            return Err(e);
        }
    }
}

/// The first backoff delay, for loops of their own.
pub(crate) fn first_delay() -> Duration {
    FIRST_DELAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_ok_takes_the_first_success_and_waits_out_a_failure() {
        use std::future::pending;
        let never = || pending::<Result<u32, &str>>();
        let decisive = |e: &&str| *e == "gone";
        // One side hangs (a swallowing member): the other's success wins.
        assert_eq!(first_ok(never(), async { Ok(2) }, decisive).await, Ok(2));
        assert_eq!(first_ok(async { Ok(1) }, never(), decisive).await, Ok(1));
        // One fails at once: the other's later success still wins.
        let late = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(3)
        };
        assert_eq!(
            first_ok(async { Err("refused") }, late, decisive).await,
            Ok(3)
        );
        // Both fail: the first one's error.
        assert_eq!(
            first_ok(async { Err::<u32, _>("a") }, async { Err("b") }, decisive).await,
            Err("a")
        );
        // One fails, the other hangs: it waits (the caller's cut ends it)...
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            first_ok(async { Err::<u32, _>("a") }, never(), decisive),
        )
        .await;
        assert!(r.is_err());
        // ...unless the failure settles it.
        assert_eq!(
            first_ok(never(), async { Err("gone") }, decisive).await,
            Err("gone")
        );
    }

    #[tokio::test]
    async fn retries_transient_failures_until_the_deadline_and_not_others() {
        let budget = Budget::new(Duration::from_secs(2));
        let deadline = budget.deadline;
        let mut n = 0;
        let r: Result<(), Failure> = retried(budget, || {
            n += 1;
            async {
                Err(etcd_client::Error::LeaseKeepAliveError(
                    "stream closed".into(),
                ))
            }
        })
        .await;
        assert!(matches!(r, Err(Failure::Transient(_))));
        // Retried (50+100+200+400+800 ms of waits fit in 2 s), but stopped
        // before the deadline rather than sleeping past it.
        assert!((2..=6).contains(&n), "{n} attempts");
        assert!(Instant::now() < deadline);

        let mut n = 0;
        let r: Result<(), Failure> = retried(budget, || {
            n += 1;
            async { Err(etcd_client::Error::InvalidArgs("bad".into())) }
        })
        .await;
        assert!(matches!(r, Err(Failure::Other(_))));
        assert_eq!(n, 1);

        let mut n = 0;
        let r = retried(budget, || {
            n += 1;
            let v = n;
            async move {
                if v < 3 {
                    Err(etcd_client::Error::LeaseKeepAliveError("again".into()))
                } else {
                    Ok(v)
                }
            }
        })
        .await;
        assert_eq!(r, Ok(3));
    }

    #[tokio::test]
    async fn an_attempt_is_cut_at_a_third_of_the_budget() {
        let budget = Budget::new(Duration::from_secs(3));
        let r: Result<(), Failure> = once(budget, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(Failure::Transient(_))));
        // Cut after its third of the budget, not at the budget's end.
        assert!(Instant::now() < budget.deadline);
    }
}
