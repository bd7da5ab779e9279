//! The one retry policy for Kubernetes API calls: every idempotent request
//! Lifeboat makes (get, list, discovery, server-side apply, a PUT carrying
//! the resourceVersion it replaces, the scale and annotation merge patches,
//! which set absolute values) goes through [`call`].
//!
//! kube's own retry layer is turned off ([`crate::client::connect`]), so
//! this is the only one.
//!
//! Transient answers are retried with exponential backoff and jitter within
//! a bounded total time ([`RetryPolicy::budget`], 30 s by default):
//! `429 TooManyRequests` (after the `details.retryAfterSeconds` the API
//! server sends with it, which is its `Retry-After` header), every `5xx`
//! (`500 etcdserver: leader changed`, `503` during an API server restart),
//! and transport failures: connections refused or reset, timeouts, a
//! response cut short. Anything else (400, 403, 404, 409, 422, TLS and
//! configuration errors) is returned at once.
//!
//! The budget comes from `LIFEBOAT_KUBE_RETRY_BUDGET` (`30s`, `500ms`,
//! `0` = never retry), read once per process; tests set it short.
//! Not bounded here: one attempt's own duration, which the client's
//! connect and read timeouts bound.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::RngExt;

/// The environment variable that sets [`RetryPolicy::budget`].
pub const BUDGET_ENV: &str = "LIFEBOAT_KUBE_RETRY_BUDGET";

/// When and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// No retry starts later than this after the first attempt started.
    pub budget: Duration,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound of one delay (a server's Retry-After may ask for more).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 30 s of retrying, 200 ms doubling up to 5 s: rides out an etcd
    /// leader election or an API server rolling restart.
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(30),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The process's policy: the default, with the budget from
    /// [`BUDGET_ENV`] when it is set and valid (an invalid value is warned
    /// about once and ignored).
    pub fn current() -> RetryPolicy {
        static POLICY: OnceLock<RetryPolicy> = OnceLock::new();
        *POLICY.get_or_init(|| {
            let mut p = RetryPolicy::default();
            if let Ok(v) = std::env::var(BUDGET_ENV) {
                match parse_duration(&v) {
                    Some(d) => p.budget = d,
                    None => tracing::warn!(
                        "{BUDGET_ENV}={v:?} is not a duration like 30s or 500ms; using {} s",
                        p.budget.as_secs()
                    ),
                }
            }
            p
        })
    }

    /// The delay before retry number `retry` (1-based): uniformly random in
    /// `[d/2, d]` for the exponential `d`, so clients that failed together
    /// do not come back together.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let full = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = full / 2;
        let spread = full.saturating_sub(half).as_micros() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        half + Duration::from_micros(jitter)
    }
}

/// `30s`, `1.5s`, `500ms`, `2m`, or plain seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Whether an error is worth another attempt, and how long the server asked
/// to wait first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Retry; `Some` when the server named a delay (Retry-After).
    Transient(Option<Duration>),
    Permanent,
}

/// Classifies a client error (see the module docs).
pub fn classify(e: &kube::Error) -> Transience {
    match e {
        kube::Error::Api(s) => match s.code {
            429 | 500..=599 => {
                let after = s
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|n| *n > 0)
                    .map(|n| Duration::from_secs(u64::from(n)));
                Transience::Transient(after)
            }
            _ => Transience::Permanent,
        },
        kube::Error::HyperError(h) => {
            if h.is_incomplete_message()
                || h.is_closed()
                || h.is_canceled()
                || h.is_timeout()
                || io_transient(e)
            {
                Transience::Transient(None)
            } else {
                Transience::Permanent
            }
        }
        kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            if io_transient(e) || chain_says_transient(e) {
                Transience::Transient(None)
            } else {
                Transience::Permanent
            }
        }
        _ => Transience::Permanent,
    }
}

/// An `io::Error` of a transient kind somewhere in the cause chain.
fn io_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
                    | Interrupted
            )
        {
            return true;
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_timeout())
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Connector and timeout layers that wrap their cause as text only.
fn chain_says_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        let m = c.to_string().to_ascii_lowercase();
        if m.contains("timed out")
            || m.contains("connection refused")
            || m.contains("connection reset")
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// A call that failed: the last error, and how hard it was tried.
#[derive(Debug)]
pub struct Failed {
    pub error: kube::Error,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// From the first attempt's start to the last one's end.
    pub elapsed: Duration,
}

impl Failed {
    /// Whether the last error was transient (so the budget ran out).
    pub fn exhausted(&self) -> bool {
        matches!(classify(&self.error), Transience::Transient(_))
    }

    /// ` (still failing after 5 attempts over 31 s)` when retries ran out,
    /// else empty; for the end of a message.
    pub fn note(&self) -> String {
        if self.exhausted() {
            format!(
                " (still failing after {} attempt{} over {:.0} s)",
                self.attempts,
                if self.attempts == 1 { "" } else { "s" },
                self.elapsed.as_secs_f64()
            )
        } else {
            String::new()
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.error, self.note())
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs an idempotent request (`what` names it in the log: `scaling
/// deployment/x in ns`), retrying transient failures under the process's
/// [`RetryPolicy`]. Each retry is logged as a warning.
pub async fn call<T, F, Fut>(what: &str, op: F) -> Result<T, Failed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    call_with(&RetryPolicy::current(), what, op).await
}

/// [`call`] under an explicit policy.
pub async fn call_with<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, Failed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match op().await {
            Ok(v) => {
                if attempts > 1 {
                    tracing::info!("{what}: succeeded at attempt {attempts}");
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        let asked = match classify(&error) {
            Transience::Permanent => None,
            Transience::Transient(after) => {
                let delay = after.unwrap_or_else(|| policy.delay(attempts));
                (started.elapsed() + delay <= policy.budget).then_some(delay)
            }
        };
        let Some(delay) = asked else {
            return Err(Failed {
                error,
                attempts,
                elapsed: started.elapsed(),
            });
        };
        tracing::warn!(
            "{what}: {}; retrying in {} ms (attempt {} failed)",
            one_line(&error),
            delay.as_millis(),
            attempts
        );
        tokio::time::sleep(delay).await;
    }
}

/// A client error and its causes on one line.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(st)) => {
            return format!("{} {}: {}", st.code, st.reason, st.message);
        }
        _ => e.to_string(),
    };
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(code: u16, retry_after: u32) -> kube::Error {
        let mut s = Status::failure("boom", "InternalError");
        s.code = code;
        if retry_after > 0 {
            s.details = Some(
                serde_json::from_value(serde_json::json!({"retryAfterSeconds": retry_after}))
                    .unwrap(),
            );
        }
        kube::Error::Api(Box::new(s))
    }

    fn io(kind: std::io::ErrorKind) -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::new(kind, "x")))
    }

    #[test]
    fn what_is_transient() {
        for code in [429, 500, 502, 503, 504] {
            assert!(matches!(
                classify(&api(code, 0)),
                Transience::Transient(None)
            ));
        }
        assert_eq!(
            classify(&api(429, 3)),
            Transience::Transient(Some(Duration::from_secs(3)))
        );
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert_eq!(classify(&api(code, 0)), Transience::Permanent, "{code}");
        }
        use std::io::ErrorKind::*;
        for k in [ConnectionRefused, ConnectionReset, TimedOut, UnexpectedEof] {
            assert!(matches!(classify(&io(k)), Transience::Transient(None)));
        }
        assert_eq!(classify(&io(InvalidData)), Transience::Permanent);
        assert_eq!(
            classify(&kube::Error::LinesCodecMaxLineLengthExceeded),
            Transience::Permanent
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("3h"), None);
    }

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let p = RetryPolicy::default();
        for retry in 1..12 {
            let d = p.delay(retry);
            let full = (p.base_delay * 2u32.pow(retry - 1)).min(p.max_delay);
            assert!(d >= full / 2 && d <= full, "{retry}: {d:?}");
        }
    }

    fn quick(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            budget: Duration::from_millis(budget_ms),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let n = AtomicU32::new(0);
        let r = call_with(&quick(5_000), "t", || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(api(500, 0))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let n = AtomicU32::new(0);
        let r: Result<(), _> = call_with(&quick(5_000), "t", || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(api(403, 0))
        })
        .await;
        let f = r.unwrap_err();
        assert_eq!((f.attempts, n.load(Ordering::SeqCst)), (1, 1));
        assert!(!f.exhausted());
        assert_eq!(f.note(), "");
    }

    #[tokio::test]
    async fn the_budget_bounds_retrying() {
        let r: Result<(), _> = call_with(&quick(300), "t", || async { Err(api(503, 0)) }).await;
        let f = r.unwrap_err();
        assert!(f.attempts > 1 && f.exhausted(), "{f:?}");
        assert!(f.note().contains("still failing after"), "{}", f.note());
        // A Retry-After beyond the budget ends it at once.
        let r: Result<(), _> = call_with(&quick(30), "t", || async { Err(api(429, 60)) }).await;
        assert_eq!(r.unwrap_err().attempts, 1);
        // Budget 0: never retried.
        let r: Result<(), _> = call_with(&quick(0), "t", || async { Err(api(500, 0)) }).await;
        assert_eq!(r.unwrap_err().attempts, 1);
    }
}
