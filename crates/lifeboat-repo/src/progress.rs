//! Live counters of a long operation (backup, restore, check, repair), read
//! by progress displays while the operation runs. Shared through an `Arc`;
//! relaxed atomics, since a display needs no ordering with the data.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, for progress displays.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes_read: AtomicU64,
    /// Plaintext bytes of chunks that were new to the repository.
    pub bytes_new: AtomicU64,
    /// Bytes written to storage so far.
    pub bytes_stored: AtomicU64,
    pub chunks: AtomicU64,
    pub new_chunks: AtomicU64,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
