//! [`Retrying`]: the one retry policy for storage requests.
//!
//! Transient errors ([`StorageErrorKind::Transient`]: timeouts, connection
//! resets, 5xx, throttling) are retried with exponential backoff and jitter;
//! `NotFound` and `Permanent` errors are returned at once. Every retry is
//! logged with `tracing::warn!`. All [`Storage`] operations are idempotent
//! (a `put` writes the same bytes again, deleting a missing object is not an
//! error), so retrying a request whose response was lost is safe.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::RngExt;

use super::{ObjectInfo, Storage, StorageErrorKind, StorageResult};

/// When and how often to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub base_delay: Duration,
    /// Upper bound for one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 50 ms doubling up to 5 s: about 6 s of retrying in all,
    /// enough to ride out a brief outage or throttling.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The exponential delay (no jitter) before retry number `retry`
    /// (1-based), capped at `max_delay`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The delay before retry number `retry` with jitter: uniformly random
    /// in `[backoff/2, backoff]`, so concurrent clients spread out.
    pub fn delay(&self, retry: u32) -> Duration {
        let full = self.backoff(retry);
        let half = full / 2;
        let extra = full.saturating_sub(half).as_micros() as u64;
        let jitter = if extra == 0 {
            0
        } else {
            rand::rng().random_range(0..=extra)
        };
        half + Duration::from_micros(jitter)
    }
}

/// A [`Storage`] wrapper that retries transient failures of the inner
/// storage according to a [`RetryPolicy`].
#[derive(Debug)]
pub struct Retrying<S: ?Sized = dyn Storage> {
    inner: Arc<S>,
    policy: RetryPolicy,
}

impl<S: Storage + ?Sized> Retrying<S> {
    pub fn new(inner: Arc<S>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    async fn run<T, F, Fut>(&self, op: &'static str, key: &str, mut attempt: F) -> StorageResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StorageResult<T>>,
    {
        let max = self.policy.max_attempts.max(1);
        let mut tries = 0u32;
        loop {
            tries += 1;
            match attempt().await {
                Ok(v) => {
                    if tries > 1 {
                        tracing::info!(
                            op,
                            key,
                            attempts = tries,
                            "storage request succeeded after retrying"
                        );
                    }
                    return Ok(v);
                }
                Err(e) if e.kind != StorageErrorKind::Transient => return Err(e),
                Err(mut e) if tries >= max => {
                    if max > 1 {
                        e.message = format!("{} (gave up after {tries} attempts)", e.message);
                    }
                    return Err(e);
                }
                Err(e) => {
                    let delay = self.policy.delay(tries);
                    tracing::warn!(
                        op,
                        key,
                        attempt = tries,
                        max_attempts = max,
                        delay_ms = delay.as_millis() as u64,
                        error = %e,
                        "transient storage error, retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl Retrying<dyn Storage> {
    /// Wrap `inner` and return it as a plain `Arc<dyn Storage>`.
    pub fn wrap(inner: Arc<dyn Storage>, policy: RetryPolicy) -> Arc<dyn Storage> {
        Arc::new(Self::new(inner, policy))
    }
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for Retrying<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.run("put", key, || self.inner.put(key, data.clone()))
            .await
    }

    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        // A retry after an attempt that landed sees the object: `false`,
        // which for a content-addressed key means "stored".
        self.run("put", key, || self.inner.put_new(key, data.clone()))
            .await
    }

    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.run("get", key, || self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.run("get_range", key, || {
            self.inner.get_range(key, range.clone())
        })
        .await
    }

    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.run("head", key, || self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.run("list", prefix, || self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.run("delete", key, || self.inner.delete(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::faulty::{Faulty, Op};
    use crate::storage::object::ObjectStoreBackend;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(50));
        assert_eq!(p.backoff(2), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(200));
        assert_eq!(p.backoff(10), Duration::from_secs(5));
        assert_eq!(p.backoff(200), Duration::from_secs(5));
        for retry in 1..12 {
            let d = p.delay(retry);
            assert!(d <= p.backoff(retry) && d >= p.backoff(retry) / 2, "{d:?}");
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
        let faulty = Arc::new(Faulty::new(local, 7).with_transient_failures(0.3));
        let policy = RetryPolicy {
            max_attempts: 12,
            ..fast()
        };
        let s = Retrying::new(faulty.clone(), policy);
        for i in 0..40 {
            s.put(&format!("k/{i}"), Bytes::from(vec![i as u8; 100]))
                .await
                .unwrap();
        }
        for i in 0..40 {
            assert_eq!(s.get(&format!("k/{i}")).await.unwrap(), vec![i as u8; 100]);
        }
        assert!(faulty.injected_failures() > 10);
        assert!(faulty.counts().get(Op::Put) > 40);
    }

    #[tokio::test]
    async fn permanent_and_not_found_are_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
        let faulty = Arc::new(Faulty::new(local, 1));
        let s = Retrying::new(faulty.clone(), fast());
        let e = s.get("missing").await.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(faulty.counts().get(Op::Get), 1);

        faulty.set_fail_permanently(true);
        let e = s.put("a", Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.kind, StorageErrorKind::Permanent);
        assert_eq!(faulty.counts().get(Op::Put), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
        let faulty = Arc::new(Faulty::new(local, 1).with_transient_failures(1.0));
        let s = Retrying::new(faulty.clone(), fast());
        let e = s.head("x").await.unwrap_err();
        assert!(e.is_transient());
        assert!(e.message.contains("gave up after 6 attempts"), "{e}");
        assert_eq!(faulty.counts().get(Op::Head), 6);
    }
}
