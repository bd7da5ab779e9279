//! `wal fetch <name> <dest>` (`restore_command = 'lifeboat wal fetch %f %p'`):
//! the copy of `name` stored under the highest epoch on the name's
//! timeline, found by one listing, decrypted and verified, then written to
//! `dest` atomically (a temporary file beside it, fsync, rename, fsync of
//! the directory). A name not in the archive fails at once (exit 3) with one
//! short line: PostgreSQL asks for files past the end of the archive at the
//! end of every recovery. A damaged copy fails (exit 4) naming its key; a
//! lower epoch's copy is not used instead. A segment with no complete copy
//! but versions from the daemon's streamer (`wal-partial/`) is served from
//! the highest epoch's longest version: the segment as far as it was
//! received, zeros after (docs/format.md, "Partial WAL objects").

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lifeboat_postgres::wal::WalName;
use lifeboat_repo::wal::{self as store, WalKey, partial};
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Error, Kind, Result, error, usage};

/// What to fetch, where to.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// `%f`: the file name PostgreSQL wants.
    pub name: String,
    /// `%p`: where to write it (relative to the data directory).
    pub dest: PathBuf,
}

/// What a fetch wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Fetched {
    pub name: String,
    pub key: String,
    pub epoch: u64,
    pub size: u64,
    /// Served from the streamer's newest version of a segment it had not
    /// finished receiving (`wal-partial/`): PostgreSQL replays its valid
    /// records and stops at the zeros after them.
    pub partial: bool,
    pub seconds: f64,
}

/// Of the stored copies of one name (ascending epochs), the one to read:
/// the highest epoch's, that of the newest authority that wrote it.
pub fn choose(copies: &[WalKey]) -> Option<&WalKey> {
    copies.iter().max_by_key(|k| k.epoch)
}

pub async fn fetch(ctx: &Ctx, req: FetchRequest) -> Result<Fetched> {
    let started = Instant::now();
    let name = WalName::parse(&req.name).map_err(|e| usage(e.to_string()))?;
    let repo = super::open::open(ctx).await?;
    let copies = store::copies(&repo, name.timeline(), &req.name).await?;
    let (key, epoch, data, partial) = match choose(&copies) {
        Some(key) => (key.key(), key.epoch, store::get(&repo, key).await?, false),
        None => {
            // A segment the streamer is still receiving: its newest version.
            let versions = match name.segment() {
                Some(_) => partial::versions(&repo, name.timeline(), &req.name).await?,
                None => Vec::new(),
            };
            let Some(v) = partial::newest(&versions) else {
                return Err(error(
                    Kind::NotFound,
                    format!("{} is not in the archive", req.name),
                ));
            };
            (v.key(), v.epoch, partial::get(&repo, v).await?, true)
        }
    };
    let dest = req.dest.clone();
    let size = data.len() as u64;
    tokio::task::spawn_blocking(move || write_atomically(&dest, &data))
        .await
        .map_err(|e| Error::new(Kind::Failure, e.to_string()))?
        .map_err(|e| {
            Error::new(
                Kind::Failure,
                format!("cannot write {}: {e}", req.dest.display()),
            )
        })?;
    Ok(Fetched {
        name: req.name,
        key,
        epoch,
        size,
        partial,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `data` to `dest` so that `dest` is either untouched or complete and
/// durable: a temporary file in the same directory, fsync, rename over
/// `dest`, fsync of the directory. The temporary file is removed on failure.
pub fn write_atomically(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".lifeboat-wal-fetch-")
        .tempfile_in(&dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_epoch_is_read() {
        let k = |e| WalKey::new(1, "000000010000000000000001", e).unwrap();
        assert_eq!(choose(&[]), None);
        assert_eq!(choose(&[k(0)]), Some(&k(0)));
        assert_eq!(choose(&[k(0), k(2), k(1)]), Some(&k(2)));
    }

    #[test]
    fn atomic_write_replaces_the_destination_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        std::fs::write(&dest, b"old").unwrap();
        write_atomically(&dest, b"new bytes").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new bytes");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["RECOVERYXLOG"]);
        // a directory that does not exist: an error, nothing written
        assert!(write_atomically(&dir.path().join("no/such"), b"x").is_err());
    }
}
