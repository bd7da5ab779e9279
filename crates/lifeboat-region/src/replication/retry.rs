//! Retrying idempotent remote calls with exponential backoff.

use std::future::Future;
use std::time::Duration;

/// How often and how patiently an idempotent call is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// Upper bound of one wait.
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl Retry {
    /// Only one attempt.
    pub const ONCE: Retry = Retry {
        attempts: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The waits between attempts (`attempts - 1` of them).
    pub fn delays(&self) -> Vec<Duration> {
        let mut d = self.first_delay;
        (1..self.attempts.max(1))
            .map(|_| {
                let now = d.min(self.max_delay);
                d = d.saturating_mul(2);
                now
            })
            .collect()
    }

    /// Runs `call` until it succeeds, `retryable` says an error is final, or the
    /// attempts are used up; returns the last error.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut call: F,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut delays = self.delays().into_iter();
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) => match delays.next() {
                    Some(d) if retryable(&e) => tokio::time::sleep(d).await,
                    _ => return Err(e),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_table() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        let r = |attempts, first, max| Retry {
            attempts,
            first_delay: Duration::from_millis(first),
            max_delay: Duration::from_millis(max),
        };
        assert_eq!(r(1, 100, 1000).delays(), ms(&[]));
        assert_eq!(r(0, 100, 1000).delays(), ms(&[]));
        assert_eq!(r(4, 100, 1000).delays(), ms(&[100, 200, 400]));
        assert_eq!(r(6, 300, 1000).delays(), ms(&[300, 600, 1000, 1000, 1000]));
    }

    #[tokio::test]
    async fn stops_on_success_and_on_final_errors() {
        let fast = Retry {
            attempts: 5,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let mut n = 0;
        let r: Result<u32, &str> = fast
            .run(
                || {
                    n += 1;
                    let v = n;
                    async move { if v < 3 { Err("again") } else { Ok(v) } }
                },
                |_| true,
            )
            .await;
        assert_eq!(r, Ok(3));
        let mut n = 0;
        let r: Result<u32, &str> = fast
            .run(
                || {
                    n += 1;
                    async { Err("final") }
                },
                |e| *e != "final",
            )
            .await;
        assert_eq!((r, n), (Err("final"), 1));
        let mut n = 0;
        let r: Result<u32, &str> = fast
            .run(
                || {
                    n += 1;
                    async { Err("again") }
                },
                |_| true,
            )
            .await;
        assert_eq!((r, n), (Err("again"), 5));
    }
}
