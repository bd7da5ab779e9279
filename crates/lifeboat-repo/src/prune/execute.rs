//! Carrying out a [`PrunePlan`] in the documented order (`docs/format.md`,
//! "Write order and concurrency", step 7), which is what makes an
//! interrupted prune safe: announcement and fence; condemned documents as
//! they now stand (new before old, so a crash leaves a superset); the
//! consolidated index, then the index documents it replaces; the packs;
//! the old condemned documents and the announcement.

use std::collections::HashSet;

use super::plan::PrunePlan;
use crate::condemned;
use crate::error::Result;
use crate::format::INDEX_PREFIX;
use crate::lock::LockGuard;
use crate::repo::Repository;

/// Carries a plan out. Returns whether packs were newly condemned (fenced).
pub async fn execute(repo: &Repository, lock: &LockGuard, plan: &PrunePlan) -> Result<bool> {
    let storage = repo.storage().as_ref();
    let key = repo.key();
    let mut keep = plan.keep.clone();
    let mut written: HashSet<String> = HashSet::new();
    let mut announcement: Option<String> = None;
    // 1. Announce, then fence: the fence is taken after the announcement is
    //    stored, so every operation whose lock is younger saw it.
    if !plan.condemn.is_empty() {
        let packs: Vec<String> = plan.condemn.iter().cloned().collect();
        announcement = Some(condemned::put(storage, key, packs, None).await?);
        let fence = lock.touch().await?;
        keep.entry(fence)
            .or_default()
            .extend(plan.condemn.iter().cloned());
    }
    // 2. The condemned documents as they now stand.
    if plan.rewrite_condemned {
        for (fence, packs) in &keep {
            let packs = packs.iter().cloned().collect();
            written.insert(condemned::put(storage, key, packs, Some(*fence)).await?);
        }
    }
    // Deleting anything without the lock could race another prune (the
    // lock was removed or judged stale): stop instead (`RepoError::LockLost`).
    if !plan.delete.is_empty() || plan.rewrite_condemned {
        lock.confirm().await?;
    }
    // 3. Consolidated index without the deleted packs, then the documents it replaces.
    if let Some(doc) = &plan.index.consolidated {
        repo.put_doc(INDEX_PREFIX, "index", doc).await?;
    }
    for k in &plan.index.replaced {
        storage.delete(k).await?;
    }
    // 4. The packs.
    for pack_key in plan.delete.values() {
        lock.ensure_held()?;
        storage.delete(pack_key).await?;
    }
    // 5. Old condemned documents and the announcement (their surviving
    //    packs were rewritten above).
    if plan.rewrite_condemned {
        for k in plan.old_condemned.iter().chain(&announcement) {
            if !written.contains(k) {
                storage.delete(k).await?;
            }
        }
    }
    Ok(!plan.condemn.is_empty())
}
