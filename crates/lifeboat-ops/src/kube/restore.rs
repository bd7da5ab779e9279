//! `restore kube`: the objects of a snapshot (read whole and verified
//! first) or of a directory written by `export kube`, applied to the
//! cluster. Existing objects are replaced by default (see
//! `lifeboat_kube::objects::restore`); every object is tried, and the
//! result says which failed.

use std::path::PathBuf;
use std::time::Duration;

use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::objects::export::read_tree;
use lifeboat_kube::objects::restore::{
    self as kube_restore, Action, Existing, ObjectResult, RestoreOptions, RestoreReport,
    parse_namespace_map,
};
use lifeboat_repo::snapshot::SnapshotRef;

use super::{Select, configured_source, kube_error, kube_failure, load_snapshot, selection};
use crate::context::Ctx;
use crate::error::{Error, Result, usage};

/// Where the objects come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A snapshot id (or unique prefix), or `latest`.
    Snapshot(String),
    /// A directory written by `lifeboat export kube`.
    Dir(PathBuf),
}

/// What to restore, where, and how.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub origin: Origin,
    /// The configured source (checked to be a kube source): with `latest`,
    /// its latest snapshot. Only picks the snapshot: a source's namespaces
    /// are where it backs up from, not a filter on what to restore.
    pub source: Option<String>,
    pub select: Select,
    /// `FROM=TO` pairs: objects of namespace FROM go into TO.
    pub namespace_map: Vec<String>,
    pub existing: Existing,
    /// Change nothing; report what would change.
    pub dry_run: bool,
    /// Applies in flight at once.
    pub concurrency: usize,
    /// How long to wait for a restored CRD to become Established.
    pub crd_timeout: Duration,
    /// Which cluster (already resolved: flags, then the configuration).
    pub cluster: ClusterOptions,
}

/// What the objects were restored from.
#[derive(Debug, Clone)]
pub enum RestoredFrom {
    Snapshot(Box<SnapshotRef>),
    Dir(PathBuf),
}

/// A restore that ran (every object tried; some may have failed).
pub struct KubeRestore {
    pub from: RestoredFrom,
    pub dry_run: bool,
    /// One result per object, counts per action.
    pub report: RestoreReport,
}

impl KubeRestore {
    /// The failure to report when any object failed (exit 1), naming the
    /// first ten; `None` when every object was applied (or checked).
    pub fn failure(&self) -> Option<Error> {
        let report = &self.report;
        let failed = report.failed();
        if failed == 0 {
            return None;
        }
        let names: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.action == Action::Failed)
            .take(10)
            .map(|r| r.display_ref())
            .collect();
        Some(crate::failure!(
            "{failed} of {} objects failed: {}{}; the others were {}",
            report.results.len(),
            names.join(", "),
            if failed > 10 { ", …" } else { "" },
            if self.dry_run { "checked" } else { "applied" }
        ))
    }
}

/// Restores the objects `req` selects. `on_result` sees each object's
/// result as it comes (the CLI prints them as they happen). Errors: bad
/// filters or namespace map, a snapshot or directory that cannot be read,
/// the cluster unreachable or refusing; a failed object is not an error
/// here but in [`KubeRestore::failure`].
pub async fn restore(
    ctx: &Ctx,
    req: RestoreRequest,
    on_result: impl FnMut(&ObjectResult),
) -> Result<KubeRestore> {
    if let Some(name) = &req.source {
        configured_source(ctx, name)?;
    }
    let opts = RestoreOptions {
        selection: selection(&req.select, None)?,
        namespace_map: parse_namespace_map(&req.namespace_map).map_err(|e| usage(e.to_string()))?,
        existing: req.existing,
        dry_run: req.dry_run,
        concurrency: req.concurrency,
        crd_timeout: req.crd_timeout,
    };
    let (from, records) = match req.origin {
        Origin::Dir(dir) => {
            let records = read_tree(&dir).map_err(|e| usage(format!("{e:#}")))?;
            (RestoredFrom::Dir(dir), records)
        }
        Origin::Snapshot(spec) => {
            let (_repo, snap, records) = load_snapshot(ctx, &spec, req.source.as_deref()).await?;
            (RestoredFrom::Snapshot(Box::new(snap)), records)
        }
    };
    let client = lifeboat_kube::client::connect(&req.cluster)
        .await
        .map_err(kube_failure)?;
    let report = kube_restore::restore(&client, records, &opts, on_result)
        .await
        .map_err(kube_error)?;
    Ok(KubeRestore {
        from,
        dry_run: req.dry_run,
        report,
    })
}
