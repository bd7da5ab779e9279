//! Versions of the segment the daemon's streamer is still receiving
//! (`docs/format.md`, "Partial WAL objects"): the streamer stores the
//! unfinished segment every few seconds so that the archive is seconds
//! behind the server, not a segment behind.
//!
//! The unfinished segment is mutable, complete segments are write-once: so
//! its versions live apart, under
//! `wal-partial/<timeline>/<segment>/<epoch>/<length>`, and each version is
//! itself written once (a conditional create, like `wal/`). `length` is
//! [`valid_length`] of the file: the file (segment-sized, zero after what
//! was received) is determined by it, since WAL already written never
//! changes, so two writes of one version hold the same bytes and a version
//! with other bytes is refused like a complete segment would be. A reader
//! takes the highest epoch's longest version, and only when no complete
//! segment of that name is stored. The streamer deletes a segment's older
//! versions once a newer one (or the complete segment) is stored; in
//! append-only mode they stay (deletes are refused) and readers still take
//! the longest.

use crate::error::{BadInput, RepoError, Result};
use crate::repo::Repository;
use crate::storage::ObjectInfo;

use super::{PutOutcome, valid_name};

/// Where the versions live.
pub const PARTIAL_PREFIX: &str = "wal-partial/";

/// The key of one version of an unfinished segment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartialKey {
    pub timeline: u32,
    /// The segment's name (as a complete segment would be named).
    pub segment: String,
    pub epoch: u64,
    /// [`valid_length`] of the stored file.
    pub length: u64,
}

/// The length of `data` up to its last non-zero byte, rounded up to 8 bytes
/// (WAL records are 8-byte aligned), at most `data.len()`. A segment file
/// is written front to back over zeros, so this grows with what was
/// received, and the file is its first `valid_length` bytes followed by
/// zeros.
pub fn valid_length(data: &[u8]) -> u64 {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    (end.div_ceil(8) * 8).min(data.len()) as u64
}

impl PartialKey {
    pub fn new(timeline: u32, segment: &str, epoch: u64, length: u64) -> Result<PartialKey> {
        if !valid_name(segment) {
            return Err(RepoError::invalid(
                BadInput::Parameter,
                format!("{segment:?} cannot name a WAL object (letters, digits and dots only)"),
            ));
        }
        Ok(PartialKey {
            timeline,
            segment: segment.to_string(),
            epoch,
            length,
        })
    }

    /// `wal-partial/<timeline: 8 hex>/<segment>/<epoch>/<length>` (decimal
    /// numbers without leading zeros).
    pub fn key(&self) -> String {
        format!(
            "{}{}/{}",
            segment_prefix(self.timeline, &self.segment),
            self.epoch,
            self.length
        )
    }

    /// The key back from its string; `None` for anything else.
    pub fn parse(key: &str) -> Option<PartialKey> {
        let rest = key.strip_prefix(PARTIAL_PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [tl, segment, epoch, length] = parts.as_slice() else {
            return None;
        };
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s.len() == 1 || !s.starts_with('0')))
            .then(|| s.parse().ok())
            .flatten()
        };
        if tl.len() != 8
            || !tl
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            || !valid_name(segment)
        {
            return None;
        }
        Some(PartialKey {
            timeline: u32::from_str_radix(tl, 16).ok()?,
            segment: segment.to_string(),
            epoch: number(epoch)?,
            length: number(length)?,
        })
    }
}

impl std::fmt::Display for PartialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// `wal-partial/<timeline>/<segment>/`: every version of one segment.
pub fn segment_prefix(timeline: u32, segment: &str) -> String {
    format!("{PARTIAL_PREFIX}{timeline:08X}/{segment}/")
}

/// Stores one version (write-once: an existing key with the same bytes is
/// [`PutOutcome::AlreadyStored`], with other bytes [`PutOutcome::Differs`]).
pub async fn put(repo: &Repository, key: &PartialKey, data: &[u8]) -> Result<PutOutcome> {
    super::put_once_at(repo, &key.key(), &key.segment, data).await
}

/// The file of one version, verified like a complete segment.
pub async fn get(repo: &Repository, key: &PartialKey) -> Result<Vec<u8>> {
    super::get_at(repo, key.key(), key.segment.clone()).await
}

/// Every stored version of `segment` on `timeline`, ascending.
pub async fn versions(repo: &Repository, timeline: u32, segment: &str) -> Result<Vec<PartialKey>> {
    if !valid_name(segment) {
        return Ok(Vec::new());
    }
    let listed = repo
        .storage()
        .list(&segment_prefix(timeline, segment))
        .await?;
    let mut keys: Vec<PartialKey> = listed
        .iter()
        .filter_map(|o| PartialKey::parse(&o.key))
        .filter(|k| k.timeline == timeline && k.segment == segment)
        .collect();
    keys.sort();
    Ok(keys)
}

/// Every version in the repository (one listing), with its listing entry.
pub async fn list(repo: &Repository) -> Result<Vec<(PartialKey, ObjectInfo)>> {
    let listed = repo.storage().list(PARTIAL_PREFIX).await?;
    let mut out: Vec<(PartialKey, ObjectInfo)> = listed
        .into_iter()
        .filter_map(|o| PartialKey::parse(&o.key).map(|k| (k, o)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The version a reader takes: the highest epoch's, then the longest.
pub fn newest(versions: &[PartialKey]) -> Option<&PartialKey> {
    versions.iter().max_by_key(|k| (k.epoch, k.length))
}

/// Deletes one version (the streamer, once a newer one is stored).
pub async fn delete(repo: &Repository, key: &PartialKey) -> Result<()> {
    repo.storage().delete(&key.key()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_and_parse_back() {
        let k = PartialKey::new(1, "000000010000000000000005", 2, 1_234_568).unwrap();
        assert_eq!(
            k.key(),
            "wal-partial/00000001/000000010000000000000005/2/1234568"
        );
        assert_eq!(PartialKey::parse(&k.key()), Some(k));
        let zero = PartialKey::new(0xA, "0000000A0000000000000001", 0, 0).unwrap();
        assert_eq!(PartialKey::parse(&zero.key()), Some(zero));
        for bad in [
            "wal-partial/00000001/000000010000000000000005/2",
            "wal-partial/00000001/000000010000000000000005/2/01",
            "wal-partial/00000001/000000010000000000000005/x/1",
            "wal-partial/0000001/000000010000000000000005/2/1",
            "wal-partial/00000001/000000010000000000000005/2/1/x",
            "wal/00000001/000000010000000000000005/2",
            "wal-partial/00000001/a#b/2/1",
        ] {
            assert_eq!(PartialKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_valid_length_ends_at_the_last_nonzero_byte_rounded_to_8() {
        let table: &[(&[u8], u64)] = &[
            (&[], 0),
            (&[0; 32], 0),
            (&[1], 1),
            (&[1, 0, 0], 3),
            (&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8),
            (&[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0], 16),
            (&[7; 16], 16),
        ];
        for (data, want) in table {
            assert_eq!(valid_length(data), *want, "{data:?}");
        }
    }

    #[test]
    fn the_newest_is_the_highest_epochs_longest() {
        let k = |e, l| PartialKey::new(1, "000000010000000000000005", e, l).unwrap();
        assert_eq!(newest(&[]), None);
        assert_eq!(newest(&[k(0, 8), k(0, 64), k(0, 16)]), Some(&k(0, 64)));
        assert_eq!(newest(&[k(0, 800), k(1, 16)]), Some(&k(1, 16)));
    }
}
