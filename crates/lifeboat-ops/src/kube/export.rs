//! `export kube`: the objects of a snapshot (read whole and verified) as a
//! kubectl-style YAML tree with a provenance file; Secrets only when asked.

use std::path::PathBuf;

use lifeboat_kube::objects::Record;
use lifeboat_kube::objects::export::{ExportSummary, write_tree};
use lifeboat_repo::snapshot::SnapshotRef;

use super::{Select, load_snapshot, selection};
use crate::context::Ctx;
use crate::error::{Result, usage};

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Snapshot id (or unique prefix), or `latest`.
    pub snapshot: String,
    /// The configured source (with `latest`: its latest snapshot).
    pub source: Option<String>,
    /// Directory to write into (created; must be empty if it exists).
    pub dir: PathBuf,
    /// Also write Secrets (mode 0600).
    pub include_secrets: bool,
    pub select: Select,
}

/// An export that wrote its tree.
pub struct KubeExport {
    pub snap: SnapshotRef,
    pub dir: PathBuf,
    /// Files written, Secrets left out.
    pub summary: ExportSummary,
}

pub async fn export(ctx: &Ctx, req: ExportRequest) -> Result<KubeExport> {
    let sel = selection(&req.select, None)?;
    let (_repo, snap, records) = load_snapshot(ctx, &req.snapshot, req.source.as_deref()).await?;
    let records: Vec<Record> = records.into_iter().filter(|r| sel.matches(r)).collect();
    let provenance = serde_json::json!({
        "snapshot": snap.id,
        "source": snap.snapshot.source,
        "time": snap.snapshot.time,
        "exported_by": format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        "secrets_included": req.include_secrets,
    });
    let summary = write_tree(&req.dir, &records, req.include_secrets, &provenance)
        .map_err(|e| usage(format!("{e:#}")))?;
    Ok(KubeExport {
        snap,
        dir: req.dir,
        summary,
    })
}
