//! The guard loop: renew the region lease every `renew_interval`; fence
//! once at the deadline ([`super::deadline`]) when the renewals stopped
//! succeeding.
//!
//! Each renewal call is bounded by the time left to the deadline, so a hung
//! call (etcd partitioned away, a TCP connection that never answers) cannot
//! delay the fence: at the deadline the call is dropped and the fence runs.
//! After a failed renewal the next attempt comes `renew_interval` after the
//! failed one was sent, like any other.

use std::future::Future;
use std::time::{Duration, Instant};

use super::deadline::{FenceTiming, RenewalOutcome, Renewals};

/// How the guard ended.
#[derive(Debug)]
pub enum GuardOutcome<F> {
    /// `cancel` completed (clean shutdown, or this region is no longer
    /// primary); nothing was fenced.
    Cancelled { renewals: u64 },
    /// The deadline passed without a successful renewal; the fence ran and
    /// returned `fence`.
    Fenced {
        /// The deadline that passed.
        deadline: Instant,
        renewals: u64,
        /// Failed or cut-off renewals since the last success.
        failures: u32,
        last_error: Option<String>,
        fence: F,
    },
}

/// Renews the lease until `cancel` completes, or fences once at the
/// deadline. `lease_sent` and `lease_ttl` describe the grant (or the last
/// renewal) the caller already has; `renew` renews once and returns the TTL
/// etcd answered with; `fence` is run at most once.
pub async fn run_guard<R, RFut, E, F, FFut, C>(
    timing: FenceTiming,
    lease_sent: Instant,
    lease_ttl: Duration,
    mut renew: R,
    fence: F,
    cancel: C,
) -> GuardOutcome<FFut::Output>
where
    R: FnMut() -> RFut,
    RFut: Future<Output = Result<Duration, E>>,
    E: std::fmt::Display,
    F: FnOnce() -> FFut,
    FFut: Future,
    C: Future<Output = ()>,
{
    let mut renewals = Renewals::new(timing, lease_sent, lease_ttl);
    let mut next_attempt = lease_sent + timing.renew_interval;
    tokio::pin!(cancel);
    loop {
        let deadline = renewals.deadline();
        let wake = next_attempt.min(deadline);
        tokio::select! {
            biased;
            _ = &mut cancel => return GuardOutcome::Cancelled { renewals: renewals.succeeded() },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if renewals.fence_now(now) {
            break;
        }
        if now < next_attempt {
            continue;
        }
        let sent = now;
        next_attempt = sent + timing.renew_interval;
        let call = tokio::time::timeout_at(deadline.into(), renew());
        let answer = tokio::select! {
            biased;
            _ = &mut cancel => return GuardOutcome::Cancelled { renewals: renewals.succeeded() },
            a = call => a,
        };
        let outcome = match answer {
            Ok(Ok(ttl)) => RenewalOutcome::Renewed { ttl },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "renewing the region lease failed");
                RenewalOutcome::Failed {
                    error: e.to_string(),
                }
            }
            Err(_) => RenewalOutcome::TimedOut,
        };
        renewals.record(sent, outcome);
    }
    let deadline = renewals.deadline();
    tracing::error!(
        failures = renewals.failed_since_success(),
        "the region lease was not renewed before the fence deadline: fencing PostgreSQL"
    );
    let fenced = fence().await;
    GuardOutcome::Fenced {
        deadline,
        renewals: renewals.succeeded(),
        failures: renewals.failed_since_success(),
        last_error: renewals.last_error().map(str::to_string),
        fence: fenced,
    }
}

#[cfg(test)]
mod tests {
    //! Real time, deterministic control: every renewal call asks the test
    //! (through a channel) and waits for the test's answer, so the test
    //! decides what each renewal returns and when, and whether it hangs.
    //! Durations are never asserted; orderings are.

    use super::*;
    use tokio::sync::{mpsc, oneshot};

    type Reply = oneshot::Sender<Result<Duration, String>>;

    fn timing() -> FenceTiming {
        FenceTiming {
            lease_ttl: Duration::from_millis(3_000),
            renew_interval: Duration::from_millis(200),
            fence_guard: Duration::from_millis(1_000),
        }
    }

    /// A renew closure that hands each call to the test.
    fn renewer(
        calls: mpsc::UnboundedSender<Reply>,
    ) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<Duration, String>> + Send>>
    {
        move || {
            let (tx, rx) = oneshot::channel();
            let sent = calls.send(tx);
            Box::pin(async move {
                sent.map_err(|_| "test gone".to_string())?;
                rx.await.unwrap_or_else(|_| Err("reply dropped".into()))
            })
        }
    }

    struct Harness {
        calls: mpsc::UnboundedReceiver<Reply>,
        fenced: oneshot::Receiver<()>,
        cancel: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<GuardOutcome<&'static str>>,
    }

    fn start() -> Harness {
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (fenced_tx, fenced) = oneshot::channel();
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run_guard(
            timing(),
            Instant::now(),
            timing().lease_ttl,
            renewer(calls_tx),
            move || async move {
                let _ = fenced_tx.send(());
                "fenced"
            },
            async move {
                let _ = cancel_rx.await;
            },
        ));
        Harness {
            calls,
            fenced,
            cancel: Some(cancel_tx),
            task,
        }
    }

    #[tokio::test]
    async fn successful_renewals_keep_the_fence_away_until_cancelled() {
        let mut h = start();
        // 15 renewals at 200 ms span 3 s, well past the first deadline (2 s
        // after the grant): had they not moved it, the fence would have run.
        for _ in 0..15 {
            let reply = h.calls.recv().await.expect("a renewal");
            reply.send(Ok(timing().lease_ttl)).unwrap();
        }
        assert!(h.fenced.try_recv().is_err(), "fenced despite renewals");
        h.cancel.take().unwrap().send(()).unwrap();
        match h.task.await.unwrap() {
            GuardOutcome::Cancelled { renewals } => assert!(renewals >= 14, "{renewals}"),
            other => panic!("{other:?}"),
        }
        assert!(h.fenced.try_recv().is_err(), "fenced after cancel");
    }

    #[tokio::test]
    async fn failing_renewals_fence_once_at_the_deadline() {
        let mut h = start();
        let first = h.calls.recv().await.unwrap();
        first.send(Ok(timing().lease_ttl)).unwrap();
        // every later renewal fails, until the fence runs
        let outcome = loop {
            tokio::select! {
                Some(reply) = h.calls.recv() => { let _ = reply.send(Err("etcd unreachable".into())); }
                out = &mut h.task => break out.unwrap(),
            }
        };
        match outcome {
            GuardOutcome::Fenced {
                renewals,
                failures,
                last_error,
                fence,
                ..
            } => {
                assert_eq!(renewals, 1);
                assert!(failures >= 1);
                assert_eq!(last_error.as_deref(), Some("etcd unreachable"));
                assert_eq!(fence, "fenced");
            }
            other => panic!("{other:?}"),
        }
        h.fenced.await.expect("the fence closure ran");
    }

    #[tokio::test]
    async fn a_hung_renewal_does_not_delay_the_fence() {
        let mut h = start();
        // the first renewal never answers: the test keeps its reply sender
        let hung = h.calls.recv().await.unwrap();
        h.fenced
            .await
            .expect("fenced while the renewal still hangs");
        // the fence ran while the call was pending; answering now changes nothing
        let _ = hung.send(Ok(timing().lease_ttl));
        match h.task.await.unwrap() {
            GuardOutcome::Fenced {
                renewals, failures, ..
            } => assert_eq!((renewals, failures), (0, 1)),
            other => panic!("{other:?}"),
        }
        assert!(
            h.calls.try_recv().is_err(),
            "no renewal was attempted after the hung one"
        );
    }
}
