//! [`Faulty`]: a storage wrapper **for tests**. It injects failures into a
//! chosen fraction of requests and counts the requests per operation.
//!
//! - `with_transient_failures(p)`: each request fails with a `Transient`
//!   error with probability `p`, from a seeded RNG, so a test run is
//!   reproducible. Half of the injected failures happen *after* the inner
//!   request was carried out (a lost response), which is what makes retries
//!   of non-idempotent code paths show up in tests.
//! - `set_fail_permanently(true)`: every request fails with a `Permanent`
//!   error, without reaching the inner storage.
//! - `only_ops(&[..])`: inject failures into those operations only.
//! - `counts()`: requests seen per [`Op`], failed ones included.
//!
//! [`Faulty::counting`] is the same wrapper with no failures: a plain
//! request counter.
//!
//! Never use it outside tests.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{ObjectInfo, Storage, StorageError, StorageErrorKind, StorageResult};

/// A [`Storage`] operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    Get,
    GetRange,
    Head,
    List,
    Delete,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Put,
        Op::Get,
        Op::GetRange,
        Op::Head,
        Op::List,
        Op::Delete,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

/// Requests seen per operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts([u64; 6]);

impl OpCounts {
    pub fn get(&self, op: Op) -> u64 {
        self.0[op.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[derive(Debug)]
struct FaultState {
    rng: StdRng,
    transient_rate: f64,
    ops: [bool; 6],
}

/// Test-only fault-injecting, request-counting [`Storage`] wrapper; see
/// the module documentation.
#[derive(Debug)]
pub struct Faulty<S: ?Sized = dyn Storage> {
    inner: Arc<S>,
    state: Mutex<FaultState>,
    permanent: AtomicBool,
    counts: [AtomicU64; 6],
    injected: AtomicU64,
}

/// Where an injected transient failure happens.
enum Fault {
    None,
    Before,
    After,
    Permanent,
}

impl<S: Storage + ?Sized> Faulty<S> {
    /// Wrap `inner`; no failures until configured. `seed` makes the
    /// injected failures reproducible.
    pub fn new(inner: Arc<S>, seed: u64) -> Self {
        Self {
            inner,
            state: Mutex::new(FaultState {
                rng: StdRng::seed_from_u64(seed),
                transient_rate: 0.0,
                ops: [true; 6],
            }),
            permanent: AtomicBool::new(false),
            counts: Default::default(),
            injected: AtomicU64::new(0),
        }
    }

    /// A plain request counter (no failures).
    pub fn counting(inner: Arc<S>) -> Self {
        Self::new(inner, 0)
    }

    /// Fail each request with a transient error with probability `rate`.
    pub fn with_transient_failures(self, rate: f64) -> Self {
        self.set_transient_rate(rate);
        self
    }

    /// Inject failures only into these operations.
    pub fn only_ops(self, ops: &[Op]) -> Self {
        {
            let mut state = self.lock();
            state.ops = [false; 6];
            for op in ops {
                state.ops[op.index()] = true;
            }
        }
        self
    }

    pub fn set_transient_rate(&self, rate: f64) {
        self.lock().transient_rate = rate.clamp(0.0, 1.0);
    }

    /// Make every request fail with a permanent error (or stop doing so).
    pub fn set_fail_permanently(&self, on: bool) {
        self.permanent.store(on, Ordering::SeqCst);
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Requests seen so far, per operation (failed ones included).
    pub fn counts(&self) -> OpCounts {
        let mut out = OpCounts::default();
        for (i, c) in self.counts.iter().enumerate() {
            out.0[i] = c.load(Ordering::SeqCst);
        }
        out
    }

    /// How many failures were injected so far.
    pub fn injected_failures(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn reset_counts(&self) {
        for c in &self.counts {
            c.store(0, Ordering::SeqCst);
        }
        self.injected.store(0, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic elsewhere while holding the lock leaves valid state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count the request and decide whether and where it fails.
    fn decide(&self, op: Op) -> Fault {
        self.counts[op.index()].fetch_add(1, Ordering::SeqCst);
        if self.permanent.load(Ordering::SeqCst) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Fault::Permanent;
        }
        let mut state = self.lock();
        if !state.ops[op.index()] || state.transient_rate <= 0.0 {
            return Fault::None;
        }
        let rate = state.transient_rate;
        if !state.rng.random_bool(rate) {
            return Fault::None;
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        if state.rng.random_bool(0.5) {
            Fault::Before
        } else {
            Fault::After
        }
    }

    async fn call<T, F>(&self, op: Op, key: &str, request: F) -> StorageResult<T>
    where
        F: std::future::Future<Output = StorageResult<T>>,
    {
        match self.decide(op) {
            Fault::None => request.await,
            Fault::Permanent => Err(StorageError::new(
                StorageErrorKind::Permanent,
                op.name(),
                key,
                "injected permanent failure (test)",
            )),
            Fault::Before => Err(StorageError::new(
                StorageErrorKind::Transient,
                op.name(),
                key,
                "injected transient failure (test)",
            )),
            Fault::After => {
                // The request happens; its answer is lost.
                let _ = request.await;
                Err(StorageError::new(
                    StorageErrorKind::Transient,
                    op.name(),
                    key,
                    "injected transient failure after the request (test)",
                ))
            }
        }
    }
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for Faulty<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.call(Op::Put, key, self.inner.put(key, data)).await
    }

    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        self.call(Op::Put, key, self.inner.put_new(key, data)).await
    }

    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.call(Op::Get, key, self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.call(Op::GetRange, key, self.inner.get_range(key, range))
            .await
    }

    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.call(Op::Head, key, self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.call(Op::List, prefix, self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.call(Op::Delete, key, self.inner.delete(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::object::ObjectStoreBackend;

    fn local() -> (tempfile::TempDir, Arc<ObjectStoreBackend>) {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
        (dir, s)
    }

    #[tokio::test]
    async fn counts_requests_per_operation() {
        let (_dir, inner) = local();
        let s = Faulty::counting(inner);
        s.put("a", Bytes::from_static(b"1")).await.unwrap();
        s.put("b", Bytes::from_static(b"2")).await.unwrap();
        s.get("a").await.unwrap();
        s.get_range("a", 0..1).await.unwrap();
        s.head("b").await.unwrap();
        s.list("").await.unwrap();
        s.delete("a").await.unwrap();
        let c = s.counts();
        assert_eq!(Op::ALL.map(|op| c.get(op)), [2, 1, 1, 1, 1, 1], "{c:?}");
        assert_eq!(c.total(), 7);
        assert_eq!(s.injected_failures(), 0);
        s.reset_counts();
        assert_eq!(s.counts().total(), 0);
    }

    #[tokio::test]
    async fn failure_rate_is_roughly_as_asked_and_reproducible() {
        let (_dir, inner) = local();
        inner.put("k", Bytes::from_static(b"v")).await.unwrap();
        let run = |seed| {
            let inner = inner.clone();
            async move {
                let s = Faulty::new(inner, seed).with_transient_failures(0.1);
                let mut pattern = Vec::new();
                for _ in 0..1000 {
                    pattern.push(s.head("k").await.is_err());
                }
                (pattern, s.injected_failures())
            }
        };
        let (a, failures) = run(42).await;
        let (b, _) = run(42).await;
        assert_eq!(a, b, "same seed, same failures");
        assert!(
            (50..=150).contains(&failures),
            "{failures} failures of 1000"
        );
        let errors = a.iter().filter(|f| **f).count() as u64;
        assert_eq!(errors, failures);
    }

    #[tokio::test]
    async fn only_selected_ops_fail() {
        let (_dir, inner) = local();
        let s = Faulty::new(inner, 3)
            .with_transient_failures(1.0)
            .only_ops(&[Op::Put]);
        let e = s.put("a", Bytes::from_static(b"1")).await.unwrap_err();
        assert!(e.is_transient());
        assert!(s.get("missing").await.unwrap_err().is_not_found());
        assert!(s.list("").await.is_ok());
    }

    #[tokio::test]
    async fn permanent_mode_fails_everything() {
        let (_dir, inner) = local();
        let s = Faulty::counting(inner);
        s.set_fail_permanently(true);
        for op in [
            s.put("a", Bytes::new()).await.err(),
            s.get("a").await.err(),
            s.list("").await.err(),
            s.delete("a").await.err(),
        ] {
            assert_eq!(op.unwrap().kind, StorageErrorKind::Permanent);
        }
        s.set_fail_permanently(false);
        s.put("a", Bytes::new()).await.unwrap();
    }
}
