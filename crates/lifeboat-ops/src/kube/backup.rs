//! `backup kube`: the selected objects listed from the cluster and streamed
//! into a new snapshot (through a channel reader: no staging, memory flat
//! with the object count). Called by the CLI and, for a configured source,
//! by the daemon's runner.

use std::io::Read;
use std::sync::Arc;

use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::objects::ITEM_NAME;
use lifeboat_kube::objects::backup::{
    BackupError, BackupOptions, BackupSummary, DEFAULT_PAGE_SIZE,
};
use lifeboat_kube::objects::strip::StripOptions;
use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::snapshot::SnapshotRef;

use super::{
    DEFAULT_SOURCE, SNAPSHOT_KIND, Select, configured_source, kube_error, kube_failure, kube_scope,
    selection,
};
use crate::context::Ctx;

/// What to back up.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// A kube source of the configuration file: its `kube:` section selects,
    /// `select` overrides it. `None`: the ad-hoc source `kube`.
    pub source: Option<String>,
    pub select: Select,
    /// Keep `metadata.ownerReferences` (stripped by default).
    pub keep_owner_references: bool,
    /// Keep `.status` (stripped by default).
    pub keep_status: bool,
    pub tags: Vec<String>,
    /// Which cluster (already resolved: flags, then the configuration).
    pub cluster: ClusterOptions,
}

impl BackupRequest {
    /// A configured source as it stands (what the daemon runs).
    pub fn for_source(name: &str, tags: Vec<String>, cluster: ClusterOptions) -> Self {
        Self {
            source: Some(name.to_string()),
            tags,
            cluster,
            ..Self::default()
        }
    }
}

/// A kube backup that committed its snapshot.
pub struct KubeBackup {
    /// The snapshot's source name (the configured source, else `kube`).
    pub source: String,
    pub snap: SnapshotRef,
    /// What was listed: counts per kind, namespaces, left-out objects,
    /// warnings (the caller reports them).
    pub summary: BackupSummary,
}

pub use crate::error::BackupFailure;

/// Feeds the chunker from the object lister: a `Read` over a channel.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Backs up the objects `req` selects into a new snapshot, printing
/// nothing (progress goes to the context's reporter). `repo`: the
/// repository to write into, or `None` to open the context's (after
/// connecting to the cluster).
pub async fn backup(
    ctx: &Ctx,
    repo: Option<&Repository>,
    req: BackupRequest,
) -> std::result::Result<KubeBackup, BackupFailure> {
    let source = match &req.source {
        Some(name) => Some(configured_source(ctx, name)?),
        None => None,
    };
    let scope = kube_scope(&req.select, source.as_ref())?;
    let opts = BackupOptions {
        selection: selection(&req.select, source.as_ref())?,
        strip: StripOptions {
            keep_owner_references: req.keep_owner_references,
            keep_status: req.keep_status,
        },
        page_size: DEFAULT_PAGE_SIZE,
    };
    let client = lifeboat_kube::client::connect(&req.cluster)
        .await
        .map_err(kube_failure)?;
    let opened;
    let repo = match repo {
        Some(r) => r,
        None => {
            opened = ctx.open().await.map_err(BackupFailure::repository)?;
            &opened
        }
    };
    let progress = Arc::new(Progress::default());
    let mut session = BackupSession::start(repo, Arc::clone(&progress))
        .await
        .map_err(BackupFailure::repository)?;
    let display = ctx
        .reporter()
        .progress(Arc::clone(&progress), "backup kube", false);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let reader = ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let lister = async {
        // The sender is dropped when listing ends, which ends the stream.
        let tx = tx;
        lifeboat_kube::objects::backup::backup(&client, &opts, &tx, |_| {}).await
    };
    let (stored, listed) = tokio::join!(session.add_stream(ITEM_NAME, reader), lister);
    let summary = match (stored, listed) {
        (Ok(_), Ok(summary)) => summary,
        (stored, Err(e)) => {
            session.abort().await;
            // The cluster's error says most (the repository side often
            // failed only because the lister stopped feeding it); else the
            // repository's, else the lister's.
            return Err(match (e, stored) {
                (BackupError::Kube(k), _) => kube_error(k).into(),
                (_, Err(r)) => BackupFailure::repository(r),
                (e @ BackupError::SinkClosed, Ok(_)) => kube_failure(e).into(),
            });
        }
        (Err(r), Ok(_)) => {
            session.abort().await;
            return Err(BackupFailure::repository(r));
        }
    };
    let name = req.source.unwrap_or_else(|| DEFAULT_SOURCE.to_string());
    let snap = session
        .commit_scoped(
            SnapshotMeta {
                source: name.clone(),
                kind: SNAPSHOT_KIND.into(),
                tags: req.tags,
                facts: serde_json::json!({ "kube": &summary }),
            },
            scope,
        )
        .await
        .map_err(BackupFailure::repository)?;
    drop(display);
    Ok(KubeBackup {
        source: name,
        snap,
        summary,
    })
}
