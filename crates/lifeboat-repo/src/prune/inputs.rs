//! Reading what a prune pass decides on ([`gather`]), and asking S3 Object
//! Lock which of the packs a plan would delete are still retained
//! ([`retained_packs`]). All of prune's reads are here; the decision is
//! [`super::plan()`]'s.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::plan::PruneInputs;
use crate::error::Result;
use crate::format::{DATA_PREFIX, id_of_key};
use crate::index::MasterIndex;
use crate::lock::{LockGuard, list_locks};
use crate::references::referenced_blobs;
use crate::repo::Repository;
use crate::retain::{ObjectLock, retained_until};

/// Reads everything a pass decides on. The order is part of the protocol
/// (`docs/format.md`): prune's own lock rewritten for `now`, then locks,
/// snapshots, index, condemned lists, packs.
pub async fn gather(repo: &Repository, lock: &LockGuard) -> Result<PruneInputs> {
    let now = lock.touch().await?;
    let locks = list_locks(repo, now).await?;
    let snaps = repo.snapshots().await?;
    let index_docs = repo.load_index_docs().await?;
    let mut index = MasterIndex::default();
    for (k, d) in &index_docs {
        index.add_doc(k, d)?;
    }
    let refs = referenced_blobs(repo, &snaps, &index).await?;
    let condemned = crate::condemned::load(repo.storage().as_ref(), repo.key()).await?;
    let stored = repo
        .storage()
        .list(DATA_PREFIX)
        .await?
        .into_iter()
        .map(|o| (id_of_key(&o.key).to_string(), o))
        .collect();
    Ok(PruneInputs {
        now,
        locks,
        refs,
        index_docs,
        condemned,
        stored,
        retained: HashMap::new(),
    })
}

/// Of the packs `delete` names (id → key), those whose Object Lock
/// retention runs past the local clock's now, by id.
pub async fn retained_packs(
    lock: &ObjectLock,
    delete: &BTreeMap<String, String>,
) -> Result<HashMap<String, DateTime<Utc>>> {
    let keys: Vec<String> = delete.values().cloned().collect();
    let retained = retained_until(lock, &keys, Utc::now()).await?;
    Ok(delete
        .iter()
        .filter_map(|(id, key)| retained.get(key).map(|until| (id.clone(), *until)))
        .collect())
}
