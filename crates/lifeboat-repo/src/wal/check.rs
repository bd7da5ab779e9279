//! The WAL part of `check`: every object under `wal/` and `wal-partial/`
//! counted and, with `--read-data`, read back whole and verified
//! (authenticated with its key, decompressed, size and keyed digest
//! checked). A damaged object is a problem naming its key. Gaps in the
//! archive need PostgreSQL's segment numbering, which this crate does not
//! know: the service layer adds them (`lifeboat_ops::wal::check`).
//!
//! WAL objects are written without a lock; a check that runs while the
//! streamer deletes an older partial version skips one that vanished
//! between the listing and the read.

use std::sync::Arc;

use crate::error::{RepoError, Result};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::subset::DataSubset;

use super::partial::{self, PartialKey};
use super::{WAL_PREFIX, WalKey};

/// What the WAL part of a check found.
#[derive(Debug, Default, Clone)]
pub struct WalCheck {
    /// Objects under `wal/` and `wal-partial/` (every copy, every version).
    pub objects: usize,
    /// Of them, the ones read and verified.
    pub verified: usize,
    /// Stored bytes read.
    pub bytes_verified: u64,
    /// (object key, what is wrong).
    pub problems: Vec<(String, String)>,
}

/// Counts the WAL objects and, with `read_data`, verifies each (with
/// `subset`, those whose key's BLAKE3 falls in it, as packs by their id).
pub async fn check_objects(
    repo: &Repository,
    read_data: bool,
    subset: Option<DataSubset>,
    progress: &Arc<Progress>,
) -> Result<WalCheck> {
    let mut out = WalCheck::default();
    let complete = repo.storage().list(WAL_PREFIX).await?;
    let partials = partial::list(repo).await?;
    out.objects = complete.len() + partials.len();
    for o in &complete {
        if WalKey::parse(&o.key).is_none() {
            out.problems.push((
                o.key.clone(),
                "not a WAL object key (wal/<timeline>/<name>/<epoch>); readers ignore it".into(),
            ));
        }
    }
    if !read_data {
        return Ok(out);
    }
    let chosen =
        |key: &str| subset.is_none_or(|s| s.contains(&blake3::hash(key.as_bytes()).to_hex()));
    for o in &complete {
        let Some(k) = WalKey::parse(&o.key) else {
            continue;
        };
        if !chosen(&o.key) {
            continue;
        }
        let r = super::get(repo, &k).await;
        record(&mut out, &o.key, o.size, r, progress);
    }
    for (k, o) in &partials {
        if !chosen(&o.key) {
            continue;
        }
        let r = partial::get(repo, k).await;
        record(&mut out, &PartialKey::key(k), o.size, r, progress);
    }
    Ok(out)
}

fn record(out: &mut WalCheck, key: &str, size: u64, r: Result<Vec<u8>>, progress: &Arc<Progress>) {
    match r {
        Ok(_) => {
            out.verified += 1;
            out.bytes_verified += size;
            Progress::add(&progress.bytes_read, size);
        }
        // Deleted since the listing (an older partial version).
        Err(RepoError::Storage(e)) if e.is_not_found() => {}
        Err(RepoError::Corrupt { object, detail }) => out.problems.push((object, detail)),
        Err(e) => out.problems.push((key.to_string(), e.to_string())),
    }
}
