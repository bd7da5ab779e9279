//! Reading stored blobs through the index: one blob, fetched and verified
//! ([`read_blob`]), and an item's chunk list, read from its tree blobs
//! ([`chunk_ids`]). Restore, check and prune all start from these; they live
//! apart from `restore` so that check and prune do not depend on it.

use crate::error::{RepoError, Result};
use crate::format::{pack_key, parse_hex32};
use crate::index::MasterIndex;
use crate::pack::{BlobId, decode_blob};
use crate::repo::Repository;
use crate::snapshot::Item;

/// Fetches and verifies one blob (used for tree blobs and small reads).
pub async fn read_blob(repo: &Repository, index: &MasterIndex, id: &BlobId) -> Result<Vec<u8>> {
    let loc = index.get(id).ok_or_else(|| {
        RepoError::corrupt(
            format!("blob {}", hex::encode(id)),
            "not in any index (its pack is missing or was pruned)",
        )
    })?;
    let pack = &index.pack(loc).id;
    let key = pack_key(pack);
    let start = loc.entry.offset;
    let bytes = repo
        .storage()
        .get_range(&key, start..start + loc.entry.length as u64)
        .await
        .map_err(|e| short_pack(&key, e))?;
    decode_blob(
        repo.key(),
        &loc.entry,
        &bytes,
        &format!("{key} blob {}", hex::encode(id)),
    )
}

/// A pack shorter than its index says is damaged data (integrity), not a
/// storage failure: say so, naming the pack.
pub(crate) fn short_pack(key: &str, e: crate::storage::StorageError) -> RepoError {
    if e.kind == crate::storage::StorageErrorKind::Truncated {
        RepoError::corrupt(
            key,
            format!("pack is shorter than its index says ({})", e.message),
        )
    } else {
        e.into()
    }
}

/// The chunk ids of an item, in stream order.
pub async fn chunk_ids(repo: &Repository, index: &MasterIndex, item: &Item) -> Result<Vec<BlobId>> {
    let mut ids = Vec::with_capacity(item.chunks as usize);
    for t in &item.tree {
        let id = parse_hex32(t)
            .ok_or_else(|| RepoError::corrupt(format!("item {}", item.name), "bad tree id"))?;
        let data = read_blob(repo, index, &id).await?;
        if data.len() % 32 != 0 {
            return Err(RepoError::corrupt(
                format!("tree blob {t}"),
                "length is not a multiple of 32",
            ));
        }
        ids.extend(
            data.chunks_exact(32)
                .map(|c| <[u8; 32]>::try_from(c).expect("32 bytes")),
        );
    }
    if ids.len() as u64 != item.chunks {
        return Err(RepoError::corrupt(
            format!("item {}", item.name),
            format!(
                "chunk list has {} entries, the snapshot says {}",
                ids.len(),
                item.chunks
            ),
        ));
    }
    Ok(ids)
}
