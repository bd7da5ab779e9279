//! Blobs and pack files.
//!
//! A blob is one chunk of content (`data`) or one piece of a chunk list
//! (`tree`), compressed with zstd when that pays, then sealed with the blob's
//! id as associated data. A pack is blobs back to back, then a sealed header
//! listing them, then the header's length as a little-endian `u32`:
//!
//! ```text
//! blob_0 || blob_1 || … || sealed(header JSON) || u32le(len(sealed header))
//! ```
//!
//! The header duplicates what the index says about the pack, so an index can
//! be rebuilt from packs alone and `check --read-data` can cross-check them.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Fault, RepoError, Result};
use crate::format::{DOC_VERSION, hex32, parse_hex32, storage_id};

pub type BlobId = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A chunk of a backed-up stream.
    Data,
    /// A piece of a stream's chunk list (concatenated 32-byte blob ids).
    Tree,
}

/// Where a blob sits in its pack and how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub offset: u64,
    /// Stored (sealed) length.
    pub length: u32,
    /// Length of the plaintext content.
    pub raw_length: u32,
    pub compressed: bool,
}

/// Serialized form of a [`BlobEntry`], in pack headers and index documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRecord {
    pub id: String,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    pub compressed: bool,
}

impl From<&BlobEntry> for BlobRecord {
    fn from(e: &BlobEntry) -> Self {
        BlobRecord {
            id: hex32(&e.id),
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            compressed: e.compressed,
        }
    }
}

impl BlobRecord {
    pub fn to_entry(&self, object: &str) -> Result<BlobEntry> {
        Ok(BlobEntry {
            id: parse_hex32(&self.id)
                .ok_or_else(|| RepoError::corrupt(object, format!("bad blob id {}", self.id)))?,
            kind: self.kind,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            compressed: self.compressed,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackHeader {
    version: u64,
    blobs: Vec<BlobRecord>,
}

fn blob_aad(id: &BlobId) -> Vec<u8> {
    let mut aad = b"lifeboat/blob/".to_vec();
    aad.extend_from_slice(id);
    aad
}

const HEADER_AAD: &[u8] = b"lifeboat/pack-header";

/// A blob ready to be packed.
pub struct EncodedBlob {
    pub id: BlobId,
    pub kind: BlobKind,
    pub raw_length: u32,
    pub compressed: bool,
    pub sealed: Vec<u8>,
}

thread_local! {
    /// One zstd context per thread and level: creating one per blob costs
    /// a few percent of a backup's CPU.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        c.as_mut()?.1.compress(data).ok()
    })
}

fn decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just set").decompress(payload, capacity)
    })
}

/// Whether `data` looks incompressible: the byte entropy of a sample is
/// close to 8 bits. Random, encrypted and already-compressed data is
/// stored as is without spending a zstd pass on it.
fn looks_incompressible(data: &[u8]) -> bool {
    const SAMPLE: usize = 16 * 1024;
    if data.len() < 1024 {
        return false;
    }
    let sample = &data[..data.len().min(SAMPLE)];
    let mut counts = [0u32; 256];
    for &b in sample {
        counts[b as usize] += 1;
    }
    let n = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // A sample of 16 KiB of uniform random bytes measures ≈ 7.99 bits.
    entropy > 7.9
}

/// Compresses (when it saves at least 2 %) and seals one blob.
pub fn encode_blob(
    key: &MasterKey,
    id: BlobId,
    kind: BlobKind,
    data: &[u8],
    zstd_level: i32,
) -> Result<EncodedBlob> {
    let compressed = if zstd_level > 0 && !looks_incompressible(data) {
        compress(data, zstd_level).filter(|c| c.len() < data.len() - data.len() / 50)
    } else {
        None
    };
    let (payload, is_compressed) = match &compressed {
        Some(c) => (&c[..], true),
        None => (data, false),
    };
    Ok(EncodedBlob {
        id,
        kind,
        raw_length: data.len() as u32,
        compressed: is_compressed,
        sealed: key.seal(&blob_aad(&id), payload)?,
    })
}

/// Opens, decompresses and re-hashes one blob. `object` names it in errors
/// (e.g. `data/ab/ab12… blob 3c4d…`). Never returns bytes whose id differs.
pub fn decode_blob(
    key: &MasterKey,
    entry: &BlobEntry,
    sealed: &[u8],
    object: &str,
) -> Result<Vec<u8>> {
    let payload = key
        .open(&blob_aad(&entry.id), sealed)
        .map_err(|e| RepoError::corrupt(object, e))?;
    let data = if entry.compressed {
        decompress(&payload, entry.raw_length as usize)
            .map_err(|e| RepoError::corrupt(object, format!("decompression failed: {e}")))?
    } else {
        payload
    };
    if data.len() != entry.raw_length as usize || key.blob_id(&data) != entry.id {
        return Err(RepoError::corrupt(object, "content does not match its id"));
    }
    Ok(data)
}

/// Accumulates encoded blobs into one pack.
#[derive(Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack: its id (BLAKE3 of its bytes), bytes and contents.
pub struct FinishedPack {
    pub id: String,
    pub bytes: Vec<u8>,
    pub entries: Vec<BlobEntry>,
}

impl PackBuilder {
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
            entries: Vec::new(),
        }
    }

    pub fn add(&mut self, blob: EncodedBlob) {
        self.entries.push(BlobEntry {
            id: blob.id,
            kind: blob.kind,
            offset: self.buf.len() as u64,
            length: blob.sealed.len() as u32,
            raw_length: blob.raw_length,
            compressed: blob.compressed,
        });
        self.buf.extend_from_slice(&blob.sealed);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn finish(mut self, key: &MasterKey) -> Result<FinishedPack> {
        let header = PackHeader {
            version: DOC_VERSION,
            blobs: self.entries.iter().map(BlobRecord::from).collect(),
        };
        let json = serde_json::to_vec(&header)
            .map_err(|e| RepoError::internal(Fault::Encoding, e.to_string()))?;
        let sealed = key.seal(HEADER_AAD, &json)?;
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        Ok(FinishedPack {
            id: storage_id(&self.buf),
            bytes: self.buf,
            entries: self.entries,
        })
    }
}

/// Reads and authenticates a whole pack's header.
pub fn read_header(key: &MasterKey, pack: &[u8], object: &str) -> Result<Vec<BlobEntry>> {
    if pack.len() < 4 {
        return Err(RepoError::corrupt(object, "pack too short"));
    }
    let len_at = pack.len() - 4;
    let hlen = u32::from_le_bytes(pack[len_at..].try_into().expect("4 bytes")) as usize;
    if hlen > len_at {
        return Err(RepoError::corrupt(
            object,
            "pack header length out of range",
        ));
    }
    let sealed = &pack[len_at - hlen..len_at];
    let json = key
        .open(HEADER_AAD, sealed)
        .map_err(|e| RepoError::corrupt(object, format!("pack header: {e}")))?;
    let header: PackHeader = crate::format::parse_versioned(object, &json)?;
    header.blobs.iter().map(|b| b.to_entry(object)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() {
        let key = MasterKey::generate().unwrap();
        let mut pb = PackBuilder::default();
        let texts: Vec<Vec<u8>> = vec![b"a".repeat(10_000), (0..255u8).collect(), Vec::new()];
        for t in &texts {
            let id = key.blob_id(t);
            pb.add(encode_blob(&key, id, BlobKind::Data, t, 3).unwrap());
        }
        let p = pb.finish(&key).unwrap();
        let hdr = read_header(&key, &p.bytes, "p").unwrap();
        assert_eq!(hdr, p.entries);
        assert!(hdr[0].compressed);
        assert!(!hdr[1].compressed);
        for (e, t) in hdr.iter().zip(&texts) {
            let s = &p.bytes[e.offset as usize..e.offset as usize + e.length as usize];
            assert_eq!(&decode_blob(&key, e, s, "p").unwrap(), t);
        }
        let mut bad = p.bytes.clone();
        bad[3] ^= 0x40;
        let e = &hdr[0];
        let s = &bad[e.offset as usize..e.offset as usize + e.length as usize];
        assert!(decode_blob(&key, e, s, "p").is_err());
    }
}
