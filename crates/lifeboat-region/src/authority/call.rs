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

/// The first backoff delay, for loops of their own.
pub(crate) fn first_delay() -> Duration {
    FIRST_DELAY
}

#[cfg(test)]
mod tests {
    use super::*;

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
