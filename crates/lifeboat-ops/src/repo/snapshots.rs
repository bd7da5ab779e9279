//! `lifeboat snapshots`: the repository's snapshots, optionally of one
//! source, and the row `--json` shows for each.

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use lifeboat_repo::snapshot::{BackupStats, CONFIG_ITEM, ScopeView, SnapshotRef};
use serde::Serialize;

use crate::error::Result;

/// The snapshots (every source's, or only `source`'s), in the repository's order.
pub async fn list(repo: &Repository, source: Option<&str>) -> Result<Vec<SnapshotRef>> {
    Ok(repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| source.is_none_or(|src| s.snapshot.source == src))
        .collect())
}

/// One snapshot as `lifeboat snapshots --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    pub id: String,
    pub time: DateTime<Utc>,
    pub source: String,
    pub kind: String,
    pub hostname: String,
    pub tags: Vec<String>,
    /// The payload's bytes: the items' sizes, without the stored
    /// configuration (a few hundred bytes the source never held).
    pub size: u64,
    /// Whether the snapshot holds the configuration its backup ran with
    /// (`lifeboat restore config`).
    pub config: bool,
    pub stats: BackupStats,
    /// What part of its source the snapshot holds (`full` or partial).
    pub scope: ScopeView,
}

impl From<&SnapshotRef> for SnapshotRow {
    fn from(s: &SnapshotRef) -> Self {
        SnapshotRow {
            id: s.id.clone(),
            time: s.snapshot.time,
            source: s.snapshot.source.clone(),
            kind: s.snapshot.kind.clone(),
            hostname: s.snapshot.hostname.clone(),
            tags: s.snapshot.tags.clone(),
            size: size(s),
            config: has_config(s),
            stats: s.snapshot.stats.clone(),
            scope: ScopeView::from(&s.snapshot.scope()),
        }
    }
}

/// The snapshot's payload bytes: its items' sizes, the stored
/// configuration ([`CONFIG_ITEM`]) left out, so that a dump's snapshot shows
/// the dump's size.
pub fn size(s: &SnapshotRef) -> u64 {
    s.snapshot
        .items
        .iter()
        .filter(|i| i.name != CONFIG_ITEM)
        .map(|i| i.size)
        .sum()
}

/// Whether the snapshot holds its backup's configuration.
pub fn has_config(s: &SnapshotRef) -> bool {
    s.snapshot.items.iter().any(|i| i.name == CONFIG_ITEM)
}
