//! [`Gated`]: a storage wrapper **for tests** that pauses a chosen request
//! until the test lets it go, so a test can drive two repository operations
//! (backup, prune, forget, check, repair) through an exact interleaving —
//! no sleeps standing in for ordering.
//!
//! ```text
//! let mut pause = gated.pause_before(Some(Op::Put), "condemned/", 1);
//! let prune = tokio::spawn(prune(repo.clone(), opts));
//! let (op, key) = pause.reached().await.unwrap(); // prune is now stopped before that put
//! run_a_backup(&repo).await;                      // the interleaving under test
//! pause.release();                                // prune carries on
//! ```
//!
//! A rule matches requests by operation (or any operation) and key prefix,
//! counted from when it is armed; the `nth` match stops *before* reaching
//! the inner storage, reports `(op, key)` and waits for
//! [`Pause::release`] (or for the [`Pause`] to be dropped). A rule fires
//! once. Requests that match no armed rule pass straight through, so other
//! operations keep running while one is held. Never use it outside tests.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::faulty::Op;
use super::{ObjectInfo, Storage, StorageResult};

struct Rule {
    op: Option<Op>,
    prefix: String,
    /// Matches still to let through before stopping.
    remaining: u64,
    reached: oneshot::Sender<(Op, String)>,
    release: oneshot::Receiver<()>,
}

/// A request held (or to be held) by [`Gated::pause_before`].
pub struct Pause {
    reached: Option<oneshot::Receiver<(Op, String)>>,
    release: Option<oneshot::Sender<()>>,
}

impl Pause {
    /// Waits until the matching request has arrived and is held; returns its
    /// operation and key. `None` when the wrapper was dropped first.
    pub async fn reached(&mut self) -> Option<(Op, String)> {
        self.reached.take()?.await.ok()
    }

    /// Lets the held request proceed (also done by dropping the `Pause`).
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

/// Test-only pausing [`Storage`] wrapper; see the module documentation.
pub struct Gated<S: ?Sized = dyn Storage> {
    inner: Arc<S>,
    rules: Mutex<Vec<Rule>>,
    requests: AtomicU64,
}

impl<S: ?Sized> std::fmt::Debug for Gated<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated").finish_non_exhaustive()
    }
}

impl<S: Storage + ?Sized> Gated<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self {
            inner,
            rules: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Requests seen so far (all operations).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Arms a rule: the `nth` (1-based) request from now whose operation is
    /// `op` (any, when `None`) and whose key starts with `prefix` is held
    /// before it reaches the storage.
    pub fn pause_before(&self, op: Option<Op>, prefix: &str, nth: u64) -> Pause {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Rule {
                op,
                prefix: prefix.to_string(),
                remaining: nth.saturating_sub(1),
                reached: reached_tx,
                release: release_rx,
            });
        Pause {
            reached: Some(reached_rx),
            release: Some(release_tx),
        }
    }

    /// Stops here if an armed rule says so.
    async fn gate(&self, op: Op, key: &str) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let fired = {
            let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            let mut fired = None;
            for (i, r) in rules.iter_mut().enumerate() {
                if r.op.is_some_and(|o| o != op) || !key.starts_with(&r.prefix) {
                    continue;
                }
                if r.remaining == 0 {
                    fired = Some(i);
                    break;
                }
                r.remaining -= 1;
            }
            fired.map(|i| rules.remove(i))
        };
        if let Some(rule) = fired {
            let _ = rule.reached.send((op, key.to_string()));
            // Released, or the test dropped its Pause: go on either way.
            let _ = rule.release.await;
        }
    }
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for Gated<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.gate(Op::Put, key).await;
        self.inner.put(key, data).await
    }

    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        self.gate(Op::Put, key).await;
        self.inner.put_new(key, data).await
    }

    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.gate(Op::Get, key).await;
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.gate(Op::GetRange, key).await;
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.gate(Op::Head, key).await;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.gate(Op::List, prefix).await;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.gate(Op::Delete, key).await;
        self.inner.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::object::ObjectStoreBackend;

    #[tokio::test]
    async fn holds_the_nth_matching_request_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
        let s = Arc::new(Gated::new(inner));
        let mut pause = s.pause_before(Some(Op::Put), "b/", 2);
        s.put("a/1", Bytes::from_static(b"x")).await.unwrap();
        s.put("b/1", Bytes::from_static(b"x")).await.unwrap();
        let writer = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.put("b/2", Bytes::from_static(b"y")).await })
        };
        assert_eq!(pause.reached().await, Some((Op::Put, "b/2".to_string())));
        // Held: not stored yet, and other requests pass.
        assert!(s.get("b/2").await.unwrap_err().is_not_found());
        s.put("b/3", Bytes::from_static(b"z")).await.unwrap();
        pause.release();
        writer.await.unwrap().unwrap();
        assert_eq!(&s.get("b/2").await.unwrap()[..], b"y");
    }
}
