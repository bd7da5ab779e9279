//! Snapshot documents: what one backup holds and the facts to verify it by.
//! A snapshot is written last, after its packs and index, so a snapshot that
//! exists is complete.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u64,
    pub time: DateTime<Utc>,
    pub hostname: String,
    pub username: String,
    /// The configured source name (or `stream:<name>` for ad-hoc streams).
    pub source: String,
    /// What kind of payload: `stream`, `postgres`, `kube`.
    pub kind: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub items: Vec<Item>,
    pub stats: BackupStats,
    /// Payload-specific facts for verifying a restore (row counts, …).
    #[serde(default)]
    pub facts: serde_json::Value,
    /// The Lifeboat version that wrote it.
    pub program: String,
}

/// One stream in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub size: u64,
    pub chunks: u64,
    /// Tree blob ids (hex) whose concatenated contents are the chunk id list.
    pub tree: Vec<String>,
    /// Keyed BLAKE3 of the concatenated chunk ids (hex), checked after a
    /// restore together with `size`.
    pub digest: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupStats {
    pub bytes_read: u64,
    /// Plaintext bytes of chunks not already in the repository.
    pub bytes_new: u64,
    /// Bytes this backup added to storage (packs and index).
    pub bytes_stored: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    pub packs: u64,
    pub duration_seconds: f64,
}

/// A snapshot with its id (the storage name, hex).
#[derive(Debug, Clone)]
pub struct SnapshotRef {
    pub id: String,
    pub snapshot: Snapshot,
}

impl SnapshotRef {
    pub fn short_id(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }
}
