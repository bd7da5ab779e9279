//! The archive on local disk for a parallel restore: staged to a temporary
//! file (the data blocks of the tables worth splitting left out as holes
//! when the snapshot recorded the archive's layout), the layout's block
//! positions written into the staged TOC, and deleted in the background
//! afterwards. Also the read-to-nowhere that authenticates what a streamed
//! restore will read, before anything is stopped.

use std::path::Path;
use std::sync::Arc;

use lifeboat_postgres::archive::{ArchiveLayout, DataBlock};
use lifeboat_postgres::facts::TableName;
use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::restore::{Part, restore_item_part, restore_item_part_to_file};
use lifeboat_repo::snapshot::SnapshotRef;

use crate::error::{Context, Result};
use crate::report::Reporter;

/// A staged archive.
pub struct Staged {
    pub file: tempfile::NamedTempFile,
    /// The archive's layout, when the snapshot recorded one: the TOC of the
    /// staged file then holds every data block's position.
    pub(super) layout: Option<ArchiveLayout>,
    /// Data blocks left out (holes in the file): their rows are loaded from the
    /// repository during the restore.
    pub(super) left_out: Vec<DataBlock>,
}

/// Stages the archive, except for the data blocks `leave_out` (which needs a
/// `layout`), and writes the layout's block positions into the staged TOC so
/// that pg_restore seeks to its blocks instead of scanning for them (and can
/// never read a hole).
pub(super) async fn stage_archive_part(
    repo: &Repository,
    snap: &SnapshotRef,
    staging: &Path,
    reporter: &dyn Reporter,
    layout: Option<ArchiveLayout>,
    leave_out: Vec<DataBlock>,
) -> Result<Staged> {
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-restore-")
        .suffix(".pgdump")
        .tempfile_in(staging)
        .with_context(|| format!("creating a staging file in {}", staging.display()))?;
    let f = tmp.reopen()?;
    let part = if leave_out.is_empty() {
        Part::All
    } else {
        let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
        f.set_len(size)
            .with_context(|| format!("sizing the staging file in {}", staging.display()))?;
        Part::Except(leave_out.iter().map(|b| b.start..b.end).collect())
    };
    let progress = Arc::new(Progress::default());
    let display = reporter.progress(Arc::clone(&progress), "staging", false);
    let r = restore_item_part_to_file(repo, snap, None, &part, f, progress).await;
    drop(display);
    r.with_context(|| format!("staging the archive in {}", staging.display()))?;
    let staged = Staged {
        file: tmp,
        layout,
        left_out: leave_out,
    };
    staged.write_offsets()?;
    Ok(staged)
}

impl Staged {
    fn write_offsets(&self) -> Result<()> {
        if let Some(l) = &self.layout {
            l.write_offsets(self.file.as_file())
                .context("writing the data offsets into the staged archive")?;
        }
        Ok(())
    }

    /// Writes the left-out blocks into the file after all (the restore could
    /// not load them itself).
    pub(super) async fn fill(&mut self, repo: &Repository, snap: &SnapshotRef) -> Result<()> {
        for b in std::mem::take(&mut self.left_out) {
            let f = self.file.reopen()?;
            restore_item_part_to_file(
                repo,
                snap,
                None,
                &Part::Range(b.start..b.end),
                f,
                Arc::new(Progress::default()),
            )
            .await
            .context("staging the rest of the archive")?;
        }
        // A blob that straddles the TOC's end may have been written again.
        self.write_offsets()
    }
}

/// The data blocks of `split` tables that a split restore can load straight
/// from the repository: all of them, or none (then everything is staged).
/// Pure: decided from the layout the snapshot recorded.
pub fn blocks_to_leave_out(layout: Option<&ArchiveLayout>, split: &[TableName]) -> Vec<DataBlock> {
    let Some(l) = layout else {
        return Vec::new();
    };
    let blocks: Vec<DataBlock> = split
        .iter()
        .filter_map(|t| l.table_data(&t.schema, &t.name).cloned())
        .filter(|b| b.copy.is_some())
        .collect();
    if blocks.len() == split.len() {
        blocks
    } else {
        Vec::new()
    }
}

/// Reads and authenticates `parts` of the snapshot's archive without writing
/// them anywhere: every blob is fetched, authenticated and checked against
/// its id, and the chunk list against the snapshot, exactly as a restore
/// does, so that a restore of these parts afterwards cannot meet a damaged
/// or missing blob (unless the repository changes in between). Costs one
/// more read of these parts; no disk.
pub(super) async fn authenticate(
    repo: &Repository,
    snap: &SnapshotRef,
    parts: &[Part],
    reporter: &dyn Reporter,
) -> Result<u64> {
    let progress = Arc::new(Progress::default());
    let display = reporter.progress(Arc::clone(&progress), "authenticating", false);
    let mut n = 0;
    for p in parts {
        n += restore_item_part(repo, snap, None, p, std::io::sink(), Arc::clone(&progress)).await?;
    }
    drop(display);
    Ok(n)
}

/// Deletes a staged file on its own thread; dropping the guard waits for it,
/// so the file is gone when the command ends, whichever way it ends.
pub struct RemovedInBackground(Option<std::thread::JoinHandle<()>>);

impl RemovedInBackground {
    pub fn start(file: tempfile::NamedTempFile) -> Self {
        let path = file.path().to_path_buf();
        match std::thread::Builder::new()
            .name("lifeboat-unlink".into())
            .spawn(move || drop(file))
        {
            Ok(h) => Self(Some(h)),
            Err(e) => {
                // The closure (and so the file) is dropped with the error.
                tracing::warn!(path = %path.display(), error = %e, "could not start a thread to delete the staged archive; deleted inline");
                Self(None)
            }
        }
    }
}

impl Drop for RemovedInBackground {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}
