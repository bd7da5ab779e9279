//! `lifeboat copy`: snapshots from one repository into a second one (the
//! copy in another region, `docs/regions/copy.md`).
//!
//! Two modes, chosen by the two repositories' keys ([`Mode::of`]):
//! - [`Mode::SameIds`]: the target was made with `init --copy-params-from`
//!   (same id key and chunker parameters, its own encryption key): blob ids
//!   are equal, so only blobs the target lacks move, re-sealed for the
//!   target ([`transfer`]).
//! - [`Mode::Rechunk`]: any other target: each item is restored from the
//!   source and backed up through the target's chunker ([`rechunk`]).
//!
//! Both verify what they read (every blob authenticated with the source key
//! and re-hashed against its id; a re-chunked stream also against its
//! digest and size) and index every pack as it lands, so a killed copy
//! resumes without sending again what landed; the snapshot document comes
//! last, so a snapshot in the target is complete. Writing through
//! [`ReadBack`](crate::storage::read_back::ReadBack) (the caller's choice,
//! `lifeboat copy` always does) reads every written object back.
//!
//! A target receives copies from one source only ([`origin`]); whether it
//! may is decided before anything is written ([`plan::origin_verdict`]).
//! A snapshot the target holds already (same time, source, facts…:
//! [`plan::same_backup`]) is skipped. WAL archives and physical snapshots,
//! once they exist, are further kinds of objects to send after the blobs
//! and before the snapshot document; the verdict, the resumption and the
//! verification stay as they are.

pub mod origin;
pub mod plan;
mod rechunk;
mod transfer;

use std::sync::Arc;

use serde::Serialize;

use crate::error::{BadInput, RepoError, Result};
use crate::lock::{LockMode, acquire, acquire_for_reading};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;

pub use plan::{Filter, Refusal};
pub use transfer::Sent;

/// How blobs reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Same blob ids: only missing blobs move, re-sealed.
    SameIds,
    /// Other ids: streams re-chunked and re-encrypted for the target.
    Rechunk,
}

impl Mode {
    pub fn of(source: &Repository, target: &Repository) -> Mode {
        if source.shares_params_with(target) {
            Mode::SameIds
        } else {
            Mode::Rechunk
        }
    }
}

/// One source snapshot's copy.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    /// The snapshot's id in the source and in the target.
    pub source_id: String,
    pub target_id: String,
    /// The target held it already: nothing was sent.
    pub skipped: bool,
    pub blobs_sent: u64,
    /// Plaintext bytes of the blobs sent.
    pub bytes_sent: u64,
    /// Bytes stored in the target (packs).
    pub bytes_stored: u64,
}

/// A copy between two open repositories, checked before anything is
/// written ([`Copier::prepare`]).
pub struct Copier {
    source: Repository,
    target: Repository,
    mode: Mode,
    origin: plan::Origin,
    target_snaps: Vec<SnapshotRef>,
}

impl Copier {
    /// Reads the target's record and snapshots and decides whether it may
    /// receive copies from `source`: a refusal is [`RepoError::Invalid`]
    /// ([`BadInput::Location`]) and nothing was written to the target.
    pub async fn prepare(source: Repository, target: Repository) -> Result<Copier> {
        let recorded = origin::read(&target).await?;
        let target_snaps = target.snapshots().await?;
        let source_id = source.config().id.clone();
        let verdict = plan::origin_verdict(
            &source_id,
            &target.config().id,
            recorded.as_deref(),
            target_snaps.len(),
        );
        let origin = verdict.map_err(|r| {
            RepoError::invalid(
                BadInput::Location,
                r.message(&source_id, &target.location()),
            )
        })?;
        Ok(Copier {
            mode: Mode::of(&source, &target),
            source,
            target,
            origin,
            target_snaps,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn source(&self) -> &Repository {
        &self.source
    }

    pub fn target(&self) -> &Repository {
        &self.target
    }

    /// The source snapshots `filter` chooses, oldest first. Ids that match
    /// no snapshot (or several) are an error.
    pub async fn choose(&self, filter: &Filter) -> Result<Vec<SnapshotRef>> {
        let all = self.source.snapshots().await?;
        let bad = plan::unmatched_ids(&all, &filter.ids);
        if !bad.is_empty() {
            return Err(RepoError::not_found(
                crate::error::Missing::Snapshot,
                format!(
                    "no single snapshot in {} matches {} (give at least 4 hex digits of an id that `lifeboat snapshots` lists, enough to match one)",
                    self.source.location(),
                    bad.join(", ")
                ),
            ));
        }
        Ok(plan::select(&all, filter).into_iter().cloned().collect())
    }

    /// Copies one snapshot (skipped when the target holds it already).
    /// Records the source in the target before its first write.
    pub async fn copy(&mut self, snap: &SnapshotRef, progress: &Arc<Progress>) -> Result<Copied> {
        if let Some(t) = plan::copied_already(&snap.snapshot, &self.target_snaps) {
            return Ok(Copied {
                source_id: snap.id.clone(),
                target_id: t.id.clone(),
                skipped: true,
                blobs_sent: 0,
                bytes_sent: 0,
                bytes_stored: 0,
            });
        }
        if self.origin == plan::Origin::Record {
            origin::record(&self.target, &self.source.config().id).await?;
            self.origin = plan::Origin::Known;
        }
        let source_lock = acquire_for_reading(&self.source, LockMode::Shared, "copy").await?;
        let result = match self.mode {
            Mode::SameIds => self.copy_same_ids(snap, progress).await,
            Mode::Rechunk => {
                rechunk::copy_rechunked(&self.source, &self.target, snap, progress).await
            }
        };
        if let Some(l) = source_lock {
            let _ = l.release().await;
        }
        let (target_id, sent) = result?;
        self.target_snaps.push(SnapshotRef {
            id: target_id.clone(),
            snapshot: snap.snapshot.clone(),
        });
        Ok(Copied {
            source_id: snap.id.clone(),
            target_id,
            skipped: false,
            blobs_sent: sent.blobs,
            bytes_sent: sent.bytes,
            bytes_stored: sent.stored,
        })
    }

    async fn copy_same_ids(
        &self,
        snap: &SnapshotRef,
        progress: &Arc<Progress>,
    ) -> Result<(String, Sent)> {
        let lock = acquire(&self.target, LockMode::Shared, "copy").await?;
        let result = async {
            let source_index = self.source.load_index().await?;
            let mut target_index = self.target.load_index().await?;
            target_index.forget_packs(&self.target.condemned_packs().await?);
            transfer::copy_same_ids(
                &self.source,
                &source_index,
                &self.target,
                &mut target_index,
                &lock,
                snap,
                progress,
            )
            .await
        }
        .await;
        if let Err(e) = lock.release().await {
            tracing::warn!("could not remove the copy's lock: {e}");
        }
        result
    }
}
