//! Condemned lists (`condemned/`): the packs prune will delete, which new
//! backups must not deduplicate against (`docs/format.md`, "Condemned").
//!
//! Reading and writing them lives here, below both [`crate::repo`] (whose
//! [`Repository::condemned_packs`](crate::repo::Repository::condemned_packs)
//! backups ask) and [`crate::prune`] (which writes them): this module knows
//! storage, keys and the document format, not the repository, so neither of
//! those depends on the other through it.

use std::collections::HashSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{RepoError, Result};
use crate::format::{
    CONDEMNED_PREFIX, DOC_VERSION, open_doc, seal_doc, storage_id, verify_storage_id,
};
use crate::storage::Storage;

/// The document's kind, bound into its encryption.
const KIND: &str = "condemned";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondemnedDoc {
    pub version: u64,
    pub packs: Vec<String>,
    /// The fence: a storage time after which every new operation saw these
    /// packs condemned. Absent in an announcement, written before the fence
    /// was taken (a prune interrupted there leaves one; the next prune
    /// fences its packs anew). Kept when documents are rewritten, so
    /// rewriting does not restart the grace period.
    #[serde(default)]
    pub condemned_at: Option<DateTime<Utc>>,
}

/// A stored condemned document and its key.
#[derive(Debug, Clone)]
pub struct CondemnedEntry {
    pub key: String,
    pub doc: CondemnedDoc,
}

/// Every condemned document. One removed between the listing and its read
/// (a concurrent prune rewrote the lists) is skipped: its packs are in the
/// documents that replaced it, which are stored before it is removed.
pub async fn load(storage: &dyn Storage, key: &MasterKey) -> Result<Vec<CondemnedEntry>> {
    let mut out = Vec::new();
    for o in storage.list(CONDEMNED_PREFIX).await? {
        let bytes = match storage.get(&o.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(RepoError::from(e)),
        };
        verify_storage_id(&o.key, &bytes)?;
        let doc = open_doc::<CondemnedDoc>(key, KIND, &o.key, &bytes)?;
        out.push(CondemnedEntry { key: o.key, doc });
    }
    Ok(out)
}

/// Every pack some condemned document lists.
pub async fn packs(storage: &dyn Storage, key: &MasterKey) -> Result<HashSet<String>> {
    let docs = load(storage, key).await?;
    Ok(docs.into_iter().flat_map(|c| c.doc.packs).collect())
}

/// Stores a condemned document (`condemned_at` `None`: an announcement);
/// returns its key.
pub async fn put(
    storage: &dyn Storage,
    key: &MasterKey,
    packs: Vec<String>,
    condemned_at: Option<DateTime<Utc>>,
) -> Result<String> {
    let doc = CondemnedDoc {
        version: DOC_VERSION,
        packs,
        condemned_at,
    };
    let bytes = seal_doc(key, KIND, &doc)?;
    let object = format!("{CONDEMNED_PREFIX}{}", storage_id(&bytes));
    storage.put(&object, Bytes::from(bytes)).await?;
    Ok(object)
}
