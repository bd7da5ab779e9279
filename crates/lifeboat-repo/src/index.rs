//! Index documents (which blobs live in which pack) and the in-memory
//! [`MasterIndex`] built from all of them.
//!
//! Each backup writes one index document for the packs it wrote, after the
//! packs and before its snapshot. `prune` consolidates index documents when
//! it deletes packs. The same blob may be listed in several packs (two
//! concurrent backups may both store it); any copy will do.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::pack::{BlobEntry, BlobId, BlobRecord};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDoc {
    pub version: u64,
    pub packs: Vec<IndexPack>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexPack {
    pub id: String,
    pub size: u64,
    pub blobs: Vec<BlobRecord>,
}

/// Where to find a blob: its pack (by position in [`MasterIndex::packs`]) and entry.
#[derive(Debug, Clone, Copy)]
pub struct BlobLocation {
    pub pack: u32,
    pub entry: BlobEntry,
}

#[derive(Debug, Clone)]
pub struct PackInfo {
    pub id: String,
    pub size: u64,
    /// The index document that lists it.
    pub index_file: String,
}

/// All index documents, merged.
#[derive(Debug, Default)]
pub struct MasterIndex {
    pub packs: Vec<PackInfo>,
    blobs: HashMap<BlobId, BlobLocation>,
    pack_pos: HashMap<String, u32>,
    /// Index documents merged in, by key.
    pub files: Vec<String>,
}

impl MasterIndex {
    /// Merges one index document stored at `key`.
    pub fn add_doc(&mut self, key: &str, doc: &IndexDoc) -> Result<()> {
        self.files.push(key.to_string());
        for p in &doc.packs {
            if self.pack_pos.contains_key(&p.id) {
                continue;
            }
            let pos = self.packs.len() as u32;
            self.packs.push(PackInfo {
                id: p.id.clone(),
                size: p.size,
                index_file: key.to_string(),
            });
            self.pack_pos.insert(p.id.clone(), pos);
            for b in &p.blobs {
                let entry = b.to_entry(key)?;
                if entry.offset + entry.length as u64 > p.size {
                    return Err(RepoError::corrupt(
                        key,
                        format!("blob {} lies outside pack {}", b.id, p.id),
                    ));
                }
                self.blobs
                    .entry(entry.id)
                    .or_insert(BlobLocation { pack: pos, entry });
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &BlobId) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn pack(&self, loc: &BlobLocation) -> &PackInfo {
        &self.packs[loc.pack as usize]
    }

    pub fn has_pack(&self, id: &str) -> bool {
        self.pack_pos.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Removes every blob held by the given packs, so a backup will not
    /// deduplicate against them (they are condemned and may soon be deleted).
    /// A blob with a copy in a surviving pack is kept at that copy only if
    /// the index happened to pick it; otherwise it will simply be stored again.
    pub fn forget_packs(&mut self, packs: &HashSet<String>) {
        let doomed: HashSet<u32> = packs
            .iter()
            .filter_map(|p| self.pack_pos.get(p).copied())
            .collect();
        if doomed.is_empty() {
            return;
        }
        self.blobs.retain(|_, loc| !doomed.contains(&loc.pack));
    }
}

/// Builds the index document for freshly written packs.
pub fn doc_for_packs(packs: &[(String, u64, Vec<BlobEntry>)]) -> IndexDoc {
    IndexDoc {
        version: crate::format::DOC_VERSION,
        packs: packs
            .iter()
            .map(|(id, size, entries)| IndexPack {
                id: id.clone(),
                size: *size,
                blobs: entries.iter().map(BlobRecord::from).collect(),
            })
            .collect(),
    }
}
