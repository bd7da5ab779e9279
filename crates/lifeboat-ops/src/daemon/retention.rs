//! Retention in the daemon: a source's policy is applied (forget) after each
//! of its successful backups, logical or physical; prune, which reads every
//! index and rewrites nothing but deletes packs (and the WAL no kept base
//! backup needs), runs at most once per `serve.prune_interval` and only
//! when something was forgotten since the last one.

use std::time::Instant;

use chrono::Utc;
use lifeboat_repo::Repository;
use lifeboat_repo::format::DATA_PREFIX;
use lifeboat_repo::retention::{PHYSICAL_GROUP, RetentionPolicy};

use super::{Daemon, RunKind, SourceState, metrics};
use crate::error::Result;
use crate::repo::forget::ForgetRequest;

/// When prune last ran and whether anything was forgotten since.
#[derive(Debug, Default)]
pub struct PruneState {
    last: Option<Instant>,
    pending: bool,
}

/// What one source's forget left.
pub struct Forgot {
    pub ids: Vec<String>,
    /// Snapshots of the source kept, of every kind.
    pub kept: usize,
    /// Of those, physical base backups.
    pub kept_physical: usize,
}

/// Applies `policy` to `source`'s snapshots, each scope on its own (a
/// partial snapshot never uses up the full ones' counts) and its base
/// backups on their own: the forget flow of `lifeboat forget`
/// ([`crate::repo::forget`]).
pub async fn forget(repo: &Repository, source: &str, policy: &RetentionPolicy) -> Result<Forgot> {
    let req = ForgetRequest {
        source: Some(source.to_string()),
        policy: Some(policy.clone()),
        ..Default::default()
    };
    let done = crate::repo::forget::forget(repo, &req, Utc::now()).await?;
    Ok(Forgot {
        ids: done.forgotten_ids(),
        kept: done.kept(),
        kept_physical: done
            .groups
            .iter()
            .filter(|g| g.scope == PHYSICAL_GROUP)
            .map(|g| g.keep.len())
            .sum(),
    })
}

/// The retention step after a successful run of `kind` of `src`: the
/// source's policy over all its snapshots (each group on its own, so it is
/// the same whichever kind ran), then prune when due, which also deletes
/// the WAL no kept base backup needs.
pub async fn after_backup(d: &Daemon, src: &SourceState, kind: RunKind) -> Result<()> {
    // Append-only: the backup credentials cannot forget or prune; the
    // administrator does (docs/append-only.md).
    let retention = src.retention.as_ref().filter(|_| !d.repo.append_only());
    if src.retention.is_some() && d.repo.append_only() {
        tracing::info!(
            source = %src.name,
            "append-only repository: retention is not applied here; run forget and prune with the administrator's configuration"
        );
    }
    if let Some(policy) = retention {
        // One forget at a time (under the prune state's lock): a source's
        // backup and its base backup ending together plan the same groups,
        // and must not both delete the same snapshot.
        let mut prune = d.prune.lock().await;
        let Forgot {
            ids: gone,
            kept,
            kept_physical,
        } = forget(&d.repo, &src.name, policy).await?;
        metrics::snapshots(&src.name, kept);
        src.update(|s| {
            s.snapshots = kept - kept_physical;
            if let Some(p) = s.physical.as_mut() {
                p.snapshots = kept_physical;
            }
        });
        if !gone.is_empty() {
            metrics::forgotten(&src.name, gone.len());
            tracing::info!(
                source = %src.name,
                forgotten = %gone.join(", "),
                kept,
                policy = %policy,
                "retention applied"
            );
            prune.pending = true;
        }
    } else {
        src.update_run(kind, |r| *r.snapshots += 1);
        let s = src.status();
        let n = s.snapshots + s.physical.map_or(0, |p| p.snapshots);
        metrics::snapshots(&src.name, n);
    }
    maybe_prune(d).await;
    Ok(())
}

/// Prunes when something was forgotten and the interval has passed.
pub async fn maybe_prune(d: &Daemon) {
    let mut st = d.prune.lock().await;
    if !st.pending
        || d.shutting_down()
        || st
            .last
            .is_some_and(|l| l.elapsed() < d.settings.prune_interval)
    {
        return;
    }
    let started = Instant::now();
    // The flow of `lifeboat prune`.
    match crate::repo::prune::prune(&d.repo, d.settings.prune_grace, false).await {
        Ok(r) => {
            st.last = Some(Instant::now());
            st.pending = false;
            metrics::pruned(Utc::now());
            tracing::info!(
                deleted_packs = r.deleted_packs,
                deleted_bytes = r.deleted_bytes,
                condemned = r.condemned,
                waiting = r.waiting,
                duration_seconds = started.elapsed().as_secs_f64(),
                "prune done"
            );
            measure_repository(&d.repo).await;
        }
        Err(e) => {
            metrics::prune_failed();
            tracing::warn!(error = %e, "prune failed; it is tried again after the next backup that forgets a snapshot");
        }
    }
}

/// Sets `lifeboat_repository_size_bytes` from a listing of the packs.
pub async fn measure_repository(repo: &Repository) {
    match repo.storage().list(DATA_PREFIX).await {
        Ok(objs) => metrics::repository_size(objs.iter().map(|o| o.size).sum()),
        Err(e) => tracing::warn!(error = %e, "cannot list the repository's packs to measure it"),
    }
}
