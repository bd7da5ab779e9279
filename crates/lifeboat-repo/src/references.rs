//! What snapshots need: every blob (tree blobs and the chunks they list)
//! that some snapshot references. Prune decides what is unused from it;
//! [`crate::retain`] sets Object Lock retention on the packs holding it.
//! Its own module so that neither of those depends on the other.

use std::collections::HashSet;

use crate::blobs::chunk_ids;
use crate::error::{RepoError, Result};
use crate::format::parse_hex32;
use crate::index::MasterIndex;
use crate::pack::BlobId;
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;

/// What snapshots need, as far as the index can tell.
#[derive(Debug, Default, Clone)]
pub struct References {
    pub snapshots: usize,
    /// Every blob some snapshot needs: tree blobs and the chunks they list.
    pub used: HashSet<BlobId>,
    /// Snapshots needing blobs that no index lists: `(short id, how many)`
    /// (a tree blob that is not indexed counts once: its chunks are unknown).
    pub unindexed: Vec<(String, usize)>,
}

/// Every blob the given snapshots need. The index must have been read
/// *after* the snapshots were listed: a backup stores its index document
/// before its snapshot, so a blob missing here is missing for good.
pub async fn referenced_blobs(
    repo: &Repository,
    snaps: &[SnapshotRef],
    index: &MasterIndex,
) -> Result<References> {
    let mut refs = References {
        snapshots: snaps.len(),
        ..Default::default()
    };
    for s in snaps {
        let mut missing = 0usize;
        for item in &s.snapshot.items {
            let trees: Vec<Option<BlobId>> = item.tree.iter().map(|t| parse_hex32(t)).collect();
            let unindexed_trees = trees
                .iter()
                .filter(|t| t.is_none_or(|id| !index.contains(&id)))
                .count();
            refs.used.extend(trees.iter().flatten().copied());
            if unindexed_trees > 0 {
                missing += unindexed_trees;
                continue;
            }
            let ids = chunk_ids(repo, index, item).await.map_err(|e| {
                RepoError::corrupt(
                    format!("snapshot {}", s.short_id()),
                    format!("cannot read its chunk list ({e}); prune stops rather than guess. Run `lifeboat check`"),
                )
            })?;
            missing += ids.iter().filter(|id| !index.contains(id)).count();
            refs.used.extend(ids);
        }
        if missing > 0 {
            refs.unindexed.push((s.short_id().to_string(), missing));
        }
    }
    Ok(refs)
}
