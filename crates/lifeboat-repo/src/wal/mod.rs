//! WAL objects: whole files (no chunking, no packs, no index) stored one
//! object each, write-once, under `wal/<timeline>/<name>/<epoch>`
//! (`docs/format.md`, "WAL objects"). This module knows the layout and the
//! write-once rule, not PostgreSQL: a timeline is a number, a name an opaque
//! file name, an epoch a number.
//!
//! - The key carries the timeline and the writer's epoch, so two writers
//!   with different epochs (a fenced former primary and the new primary)
//!   never write the same key.
//! - The name comes before the epoch so that finding every stored copy of
//!   one file is one narrow listing (`wal/<timeline>/<name>/`), whatever the
//!   size of the archive: a restore asks for every segment in turn.
//! - Written without a repository lock and never rewritten: [`put_once`] is
//!   a conditional create; an existing object is accepted only when its
//!   plaintext is the same (by the keyed digest in its authenticated
//!   header). Prune does not look under `wal/` yet; `check` does
//!   (`check.rs`).
//! - The daemon's streamer also stores versions of the segment being
//!   written (`partial.rs`, under `wal-partial/`), each write-once too.

pub mod check;
pub mod object;
pub mod partial;

use bytes::Bytes;

use crate::error::{BadInput, RepoError, Result};
use crate::repo::Repository;
use crate::storage::ObjectInfo;

/// Where WAL objects live.
pub const WAL_PREFIX: &str = "wal/";

/// The key of one WAL object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalKey {
    pub timeline: u32,
    pub name: String,
    pub epoch: u64,
}

/// Whether `name` may be a key's path element: non-empty ASCII letters,
/// digits and dots, not `.`/`..`, at most 64 characters (no `/`, and no `#`,
/// which the local backend's staging files use).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

impl WalKey {
    /// A key for `name` on `timeline` written under `epoch`; refuses a name
    /// that cannot be a path element.
    pub fn new(timeline: u32, name: &str, epoch: u64) -> Result<WalKey> {
        if !valid_name(name) {
            return Err(RepoError::invalid(
                BadInput::Parameter,
                format!("{name:?} cannot name a WAL object (letters, digits and dots only)"),
            ));
        }
        Ok(WalKey {
            timeline,
            name: name.to_string(),
            epoch,
        })
    }

    /// `wal/<timeline: 8 upper-case hex digits>/<name>/<epoch: decimal>`.
    pub fn key(&self) -> String {
        format!("{}{}", name_prefix(self.timeline, &self.name), self.epoch)
    }

    /// The key back from its string; `None` for anything else under `wal/`
    /// (which listings skip).
    pub fn parse(key: &str) -> Option<WalKey> {
        let rest = key.strip_prefix(WAL_PREFIX)?;
        let mut parts = rest.split('/');
        let (tl, name, epoch) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || tl.len() != 8
            || !tl
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            || !valid_name(name)
            || epoch.is_empty()
            || !epoch.bytes().all(|b| b.is_ascii_digit())
            || (epoch.len() > 1 && epoch.starts_with('0'))
        {
            return None;
        }
        Some(WalKey {
            timeline: u32::from_str_radix(tl, 16).ok()?,
            name: name.to_string(),
            epoch: epoch.parse().ok()?,
        })
    }
}

impl std::fmt::Display for WalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// The prefix of every copy of `name` on `timeline`:
/// `wal/<timeline>/<name>/`.
pub fn name_prefix(timeline: u32, name: &str) -> String {
    format!("{WAL_PREFIX}{timeline:08X}/{name}/")
}

/// What [`put_once`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call stored the object.
    Stored { stored_bytes: u64, compressed: bool },
    /// The object was there already with the same plaintext: nothing
    /// written (PostgreSQL archiving a file again after a crash, or a retry
    /// whose first attempt landed). `compressed`: how it was stored.
    AlreadyStored { compressed: bool },
    /// The object is there with different plaintext: nothing written.
    Differs { stored_size: u64 },
}

/// Stores `data` under `key` unless an object is there; an object that is
/// there is compared (its authenticated header's digest and size) and never
/// replaced. Returns once the storage's put has completed (durable: the
/// local backend fsyncs the file and its directory).
pub async fn put_once(repo: &Repository, key: &WalKey, data: &[u8]) -> Result<PutOutcome> {
    put_once_at(repo, &key.key(), &key.name, data).await
}

/// [`put_once`] under any object key (`partial.rs` uses it for the
/// streamer's versions of the current segment).
pub(crate) async fn put_once_at(
    repo: &Repository,
    k: &str,
    name: &str,
    data: &[u8],
) -> Result<PutOutcome> {
    let k = k.to_string();
    let (stored, header) = object::encode(repo.key(), &k, name, data, repo.config().zstd_level)?;
    let stored_bytes = stored.len() as u64;
    if repo.storage().put_new(&k, Bytes::from(stored)).await? {
        return Ok(PutOutcome::Stored {
            stored_bytes,
            compressed: header.compressed,
        });
    }
    let existing = repo.storage().get(&k).await?;
    let theirs = object::header(repo.key(), &k, &existing)?;
    if theirs.digest == header.digest && theirs.size == header.size && theirs.name == header.name {
        Ok(PutOutcome::AlreadyStored {
            compressed: theirs.compressed,
        })
    } else {
        Ok(PutOutcome::Differs {
            stored_size: theirs.size,
        })
    }
}

/// The plaintext stored under `key`, verified (authenticated, size and
/// digest checked); a damaged object is [`RepoError::Corrupt`] naming it.
pub async fn get(repo: &Repository, key: &WalKey) -> Result<Vec<u8>> {
    get_at(repo, key.key(), key.name.clone()).await
}

/// [`get`] of the object under `k`, which holds the file `name`.
pub(crate) async fn get_at(repo: &Repository, k: String, name: String) -> Result<Vec<u8>> {
    let stored = repo.storage().get(&k).await?;
    let master = repo.key().clone();
    tokio::task::spawn_blocking(move || object::decode(&master, &k, &name, &stored))
        .await
        .map_err(|e| RepoError::internal(crate::error::Fault::Task, e.to_string()))?
}

/// Every stored copy of `name` on `timeline` (one per epoch that wrote it),
/// by one listing of `wal/<timeline>/<name>/`, in ascending epoch order.
pub async fn copies(repo: &Repository, timeline: u32, name: &str) -> Result<Vec<WalKey>> {
    if !valid_name(name) {
        return Ok(Vec::new());
    }
    let listed = repo.storage().list(&name_prefix(timeline, name)).await?;
    let mut keys: Vec<WalKey> = listed
        .iter()
        .filter_map(|o| WalKey::parse(&o.key))
        .filter(|k| k.timeline == timeline && k.name == name)
        .collect();
    keys.sort();
    Ok(keys)
}

/// Every WAL object (one listing of `wal/`), with its listing entry; keys
/// that are not WAL keys are left out.
pub async fn list(repo: &Repository) -> Result<Vec<(WalKey, ObjectInfo)>> {
    let listed = repo.storage().list(WAL_PREFIX).await?;
    let mut out: Vec<(WalKey, ObjectInfo)> = listed
        .into_iter()
        .filter_map(|o| WalKey::parse(&o.key).map(|k| (k, o)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_and_parse_back() {
        let table = [
            (
                1,
                "000000010000000000000001",
                0,
                "wal/00000001/000000010000000000000001/0",
            ),
            (
                0xA,
                "0000000A.history",
                3,
                "wal/0000000A/0000000A.history/3",
            ),
            (
                2,
                "000000010000000000000005.partial",
                12,
                "wal/00000002/000000010000000000000005.partial/12",
            ),
            (
                u32::MAX,
                "x",
                u64::MAX,
                "wal/FFFFFFFF/x/18446744073709551615",
            ),
        ];
        for (tl, name, epoch, text) in table {
            let k = WalKey::new(tl, name, epoch).unwrap();
            assert_eq!(k.key(), text);
            assert_eq!(WalKey::parse(text), Some(k));
        }
    }

    #[test]
    fn other_keys_are_not_wal_keys() {
        for bad in [
            "wal/",
            "wal/00000001/",
            "wal/00000001/name",
            "wal/00000001/name/",
            "wal/00000001/name/01",
            "wal/00000001/name/x",
            "wal/0000001/name/0",
            "wal/0000000a/name/0",
            "wal/00000001/name/0/extra",
            "wal/00000001/na#me/0",
            "wal/00000001/name/0#123",
            "data/ab/abcd",
            "walx/00000001/name/0",
        ] {
            assert_eq!(WalKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_that_are_not_path_elements_are_refused() {
        for bad in ["", ".", "..", "a/b", "a#1", "a b", "ä", &"x".repeat(65)] {
            assert!(WalKey::new(1, bad, 0).is_err(), "{bad:?}");
        }
    }
}
