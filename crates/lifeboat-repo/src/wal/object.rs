//! The stored form of one WAL object (`docs/format.md`, "WAL objects"):
//!
//! ```text
//! stored = seal(enc, "lifeboat/wal/" || key, body)
//! body   = u32 LE length of header || header JSON || payload
//! header = { "version": 1, "name", "size", "digest", "compressed" }
//! payload = zstd(plaintext) when that is at least 2 % smaller, else plaintext
//! ```
//!
//! The associated data is the object's whole key (timeline, name, epoch), so
//! an object copied under another key does not open. `digest` is the keyed
//! BLAKE3 of the plaintext: the write-once comparison reads it from the
//! stored object's (authenticated) header and compares it with the new
//! file's, and a read checks the decoded bytes against it.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Fault, RepoError, Result};

/// The largest file a WAL object holds: PostgreSQL's largest
/// `wal_segment_size` (1 GiB). History files and labels are far smaller.
pub const MAX_SIZE: u64 = 1024 * 1024 * 1024;

/// What the sealed body says about its plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub version: u64,
    /// The file name, as PostgreSQL named it.
    pub name: String,
    /// Plaintext bytes.
    pub size: u64,
    /// Keyed BLAKE3 of the plaintext, hex.
    pub digest: String,
    pub compressed: bool,
}

fn aad(key: &str) -> Vec<u8> {
    format!("lifeboat/wal/{key}").into_bytes()
}

/// The keyed BLAKE3 of `data`, hex: a header's `digest`.
pub fn digest(master: &MasterKey, data: &[u8]) -> String {
    let mut h = master.hasher();
    h.update(data);
    h.finalize().to_hex().to_string()
}

/// Whether compressing `data` is not worth trying: its first 256 KiB do
/// not shrink by 2 % (a segment of random or encrypted rows; WAL is
/// written front to back, so the head is like the rest, and a segment whose
/// tail is unused zeros starts with real records anyway).
fn sample_incompressible(data: &[u8], zstd_level: i32) -> bool {
    const SAMPLE: usize = 256 * 1024;
    if data.len() <= SAMPLE {
        return false;
    }
    let sample = &data[..SAMPLE];
    zstd::bulk::compress(sample, zstd_level)
        .map(|c| c.len() >= SAMPLE - SAMPLE / 50)
        .unwrap_or(true)
}

/// Encodes `data` (the file `name`) as the object stored under `key`;
/// returns the stored bytes and the header written into them.
pub fn encode(
    master: &MasterKey,
    key: &str,
    name: &str,
    data: &[u8],
    zstd_level: i32,
) -> Result<(Vec<u8>, Header)> {
    let compressed = if zstd_level > 0 && !sample_incompressible(data, zstd_level) {
        zstd::bulk::compress(data, zstd_level)
            .ok()
            .filter(|c| c.len() < data.len() - data.len() / 50)
    } else {
        None
    };
    let header = Header {
        version: 1,
        name: name.to_string(),
        size: data.len() as u64,
        digest: digest(master, data),
        compressed: compressed.is_some(),
    };
    let json = serde_json::to_vec(&header)
        .map_err(|e| RepoError::internal(Fault::Encoding, e.to_string()))?;
    let payload = compressed.as_deref().unwrap_or(data);
    let mut body = Vec::with_capacity(4 + json.len() + payload.len());
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    body.extend_from_slice(&json);
    body.extend_from_slice(payload);
    let sealed = master.seal(&aad(key), &body)?;
    Ok((sealed, header))
}

/// Opens the object stored under `key` and returns its header and body
/// (the payload still compressed), after authentication. Errors name `key`.
fn open(master: &MasterKey, key: &str, stored: &[u8]) -> Result<(Header, Vec<u8>, usize)> {
    let body = master
        .open(&aad(key), stored)
        .map_err(|e| RepoError::corrupt(key, e))?;
    if body.len() < 4 {
        return Err(RepoError::corrupt(
            key,
            "the object is too short to hold a header",
        ));
    }
    let len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let end = 4usize
        .checked_add(len)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| RepoError::corrupt(key, "the header length runs past the object's end"))?;
    let header: Header = crate::format::parse_versioned(key, &body[4..end])?;
    if header.size > MAX_SIZE {
        return Err(RepoError::corrupt(
            key,
            format!(
                "the header says {} bytes, more than any WAL file",
                header.size
            ),
        ));
    }
    Ok((header, body, end))
}

/// The authenticated header of the object stored under `key` (the
/// write-once comparison needs no decompression).
pub fn header(master: &MasterKey, key: &str, stored: &[u8]) -> Result<Header> {
    open(master, key, stored).map(|(h, _, _)| h)
}

/// Decodes the object stored under `key`: authenticated, decompressed, its
/// size and digest checked, and its name equal to `name`. Never returns
/// bytes that differ from what was stored.
pub fn decode(master: &MasterKey, key: &str, name: &str, stored: &[u8]) -> Result<Vec<u8>> {
    let (header, body, start) = open(master, key, stored)?;
    if header.name != name {
        return Err(RepoError::corrupt(
            key,
            format!("the object holds {}, not {name}", header.name),
        ));
    }
    let payload = &body[start..];
    let size = usize::try_from(header.size)
        .map_err(|_| RepoError::corrupt(key, "the size does not fit in memory"))?;
    let data = if header.compressed {
        zstd::bulk::decompress(payload, size)
            .map_err(|e| RepoError::corrupt(key, format!("decompression failed: {e}")))?
    } else {
        payload.to_vec()
    };
    if data.len() != size {
        return Err(RepoError::corrupt(
            key,
            format!("{} bytes decoded, the header says {size}", data.len()),
        ));
    }
    if digest(master, &data) != header.digest {
        return Err(RepoError::corrupt(
            key,
            "the content does not match its digest",
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_bytes(&[7u8; 64])
    }

    const KEY: &str = "wal/00000001/000000010000000000000001/0";
    const NAME: &str = "000000010000000000000001";

    #[test]
    fn round_trips_compressible_and_random_and_empty() {
        let mut random = vec![0u8; 100_000];
        crate::crypto::random_bytes(&mut random).unwrap();
        for (what, data, level, compressed) in [
            ("zeros", vec![0u8; 1 << 20], 1, true),
            ("zeros, level 0", vec![0u8; 1 << 20], 0, false),
            ("random", random.clone(), 1, false),
            ("empty", Vec::new(), 1, false),
        ] {
            let (stored, header) = encode(&master(), KEY, NAME, &data, level).unwrap();
            assert_eq!(header.compressed, compressed, "{what}");
            assert_eq!(header.size, data.len() as u64);
            assert_eq!(
                decode(&master(), KEY, NAME, &stored).unwrap(),
                data,
                "{what}"
            );
            assert_eq!(super::header(&master(), KEY, &stored).unwrap(), header);
        }
    }

    #[test]
    fn every_damage_is_refused_naming_the_key() {
        let data = b"some WAL bytes, some WAL bytes, some WAL bytes".repeat(100);
        let (stored, _) = encode(&master(), KEY, NAME, &data, 1).unwrap();
        // a flipped bit anywhere
        for i in [0, 12, stored.len() / 2, stored.len() - 1] {
            let mut bad = stored.clone();
            bad[i] ^= 0x10;
            let e = decode(&master(), KEY, NAME, &bad).unwrap_err();
            assert!(e.to_string().contains(KEY), "{e}");
        }
        // truncated
        let e = decode(&master(), KEY, NAME, &stored[..stored.len() - 1]).unwrap_err();
        assert!(e.to_string().contains(KEY), "{e}");
        // moved to another key (another epoch): the associated data differs
        let other = "wal/00000001/000000010000000000000001/1";
        let e = decode(&master(), other, NAME, &stored).unwrap_err();
        assert!(e.to_string().contains(other), "{e}");
        // another key's bytes
        let e = decode(&MasterKey::from_bytes(&[8u8; 64]), KEY, NAME, &stored).unwrap_err();
        assert!(matches!(e, RepoError::Corrupt { .. }), "{e}");
        // the header names another file
        let e = decode(&master(), KEY, "000000010000000000000002", &stored).unwrap_err();
        assert!(
            e.to_string().contains("holds 000000010000000000000001"),
            "{e}"
        );
    }

    #[test]
    fn the_digest_is_keyed() {
        assert_ne!(
            digest(&master(), b"x"),
            digest(&MasterKey::from_bytes(&[8u8; 64]), b"x")
        );
        assert_eq!(digest(&master(), b"x"), digest(&master(), b"x"));
    }
}
