//! `wal push <path>` (`archive_command = 'lifeboat wal push %p'`): the file
//! read whole, compressed and sealed as one object under
//! `wal/<timeline>/<name>/<epoch>`, stored with a conditional create. Exit 0
//! only once the storage's put has returned (durable), or when the same
//! plaintext is already stored; different plaintext under that key is an
//! integrity error and nothing is overwritten.

use std::path::PathBuf;
use std::time::Instant;

use lifeboat_postgres::wal::WalName;
use lifeboat_repo::Repository;
use lifeboat_repo::wal::{self as store, PutOutcome, WalKey};
use serde::Serialize;

use super::epoch::{WriterEpoch, writer_epoch};
use crate::context::Ctx;
use crate::error::{Error, Kind, Result, error_with_hint, usage};

/// What to push.
#[derive(Clone, Debug)]
pub struct PushRequest {
    /// The file (`%p`: relative to the data directory, which is
    /// `archive_command`'s working directory).
    pub path: PathBuf,
    /// `--region`: this server's region, for the epoch (with `failover:`).
    pub region: Option<String>,
}

/// What a push did.
#[derive(Clone, Debug, Serialize)]
pub struct Pushed {
    pub name: String,
    pub key: String,
    pub timeline: u32,
    pub epoch: WriterEpoch,
    /// Plaintext bytes.
    pub size: u64,
    /// `stored`, or `already_stored` (the same bytes were there).
    pub outcome: &'static str,
    /// Bytes written to the storage (0 when already stored).
    pub stored_bytes: u64,
    pub compressed: bool,
    pub seconds: f64,
}

pub async fn push(ctx: &Ctx, req: PushRequest) -> Result<Pushed> {
    let started = Instant::now();
    let file_name = req
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| usage(format!("{} names no file", req.path.display())))?
        .to_string();
    WalName::parse(&file_name).map_err(|e| usage(e.to_string()))?;
    // The repository's opening (a few reads) and the epoch (a query of the
    // server, with failover: configured) do not depend on each other.
    let (repo, epoch, data) = tokio::join!(
        super::open::open(ctx),
        writer_epoch(ctx, req.region.as_deref()),
        read(req.path.clone()),
    );
    let data = data.map_err(|e| {
        Error::new(
            Kind::Failure,
            format!("cannot read {}: {e}", req.path.display()),
        )
    })?;
    let (repo, epoch) = (repo?, epoch?);
    let stored = store(&repo, &file_name, &data, epoch.epoch).await?;
    Ok(Pushed {
        name: file_name,
        key: stored.key.key(),
        timeline: stored.key.timeline,
        epoch,
        size: data.len() as u64,
        outcome: stored.outcome,
        stored_bytes: stored.stored_bytes,
        compressed: stored.compressed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`store`] did.
#[derive(Clone, Debug)]
pub struct Stored {
    pub key: WalKey,
    /// `stored` or `already_stored`.
    pub outcome: &'static str,
    pub stored_bytes: u64,
    pub compressed: bool,
}

/// Stores the WAL file `file_name` (`data`) under `epoch`, write-once: the
/// one code path of `wal push` and the daemon's streamer. Other content
/// already under the key is an integrity error and nothing is overwritten.
pub async fn store(repo: &Repository, file_name: &str, data: &[u8], epoch: u64) -> Result<Stored> {
    let name = WalName::parse(file_name).map_err(|e| usage(e.to_string()))?;
    let key = WalKey::new(name.timeline(), file_name, epoch)?;
    let (outcome, stored_bytes, compressed) = match store::put_once(repo, &key, data).await? {
        PutOutcome::Stored {
            stored_bytes,
            compressed,
        } => ("stored", stored_bytes, compressed),
        PutOutcome::AlreadyStored { compressed } => ("already_stored", 0, compressed),
        PutOutcome::Differs { stored_size } => {
            return Err(differs(&key, data.len() as u64, stored_size));
        }
    };
    Ok(Stored {
        key,
        outcome,
        stored_bytes,
        compressed,
    })
}

/// The whole file, read off the async workers.
async fn read(path: PathBuf) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(std::io::Error::other)?
}

pub(crate) fn differs(key: &WalKey, size: u64, stored_size: u64) -> Error {
    error_with_hint(
        Kind::Integrity,
        format!(
            "the archive already holds {} ({key}, {stored_size} bytes) with different content \
             than this file ({size} bytes): it is not overwritten",
            key.name
        ),
        "two servers archive into this repository under one timeline and epoch (a restored \
         or cloned server still running with archive_command, or two clusters sharing a \
         repository). Stop archiving on the server that should not write here, or give each \
         cluster its own repository; the stored file stays as it is (docs/physical.md)",
    )
}
