//! One run of a source: its backup, in-process through the same code as
//! `lifeboat backup …` (a physical run: `backup physical`,
//! [`super::physical`]), then its retention. On SIGTERM a running backup may
//! finish within the grace period; after that it is abandoned: the backup
//! future is dropped before its snapshot is written (pg_dump is killed, the
//! session's packs are left for prune), so no partial snapshot can exist,
//! and its lock in the repository is removed (other runs keep theirs).
//! Before each backup the repository is verified (marker and config id).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_postgres::conn::ConnError;
use lifeboat_repo::snapshot::SnapshotRef;
use serde::Serialize;

use super::{Daemon, LastFailure, LastSuccess, RunKind, SourceState, Trigger, metrics, retention};
use crate::config::SourceKind;
use crate::error::{Error, Kind, Result};
use crate::failure;

/// Every failure reason label (registered at zero per source).
pub const REASONS: &[&str] = &[
    "unreachable",
    "auth",
    "database_missing",
    "config",
    "dump",
    "repository",
    "storage",
    "locked",
    "kubernetes",
    "command",
    "retention",
    "other",
];

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        snapshot: String,
        time: DateTime<Utc>,
        duration_seconds: f64,
        bytes_read: u64,
        bytes_stored: u64,
    },
    Failed {
        reason: String,
        message: String,
    },
    /// SIGTERM and the grace period ran out: no snapshot was written.
    Abandoned,
}

/// A failure with its metric label.
pub(super) struct RunError {
    pub(super) reason: &'static str,
    pub(super) error: Error,
}

pub(super) fn reason_for_conn(e: &ConnError) -> &'static str {
    match e {
        ConnError::Unreachable { .. } => "unreachable",
        ConnError::AuthFailed { .. } => "auth",
        ConnError::DatabaseMissing { .. } => "database_missing",
        ConnError::InvalidUrl(_) | ConnError::PasswordInUrl | ConnError::PassFile { .. } => {
            "config"
        }
        ConnError::Other { .. } => "unreachable",
    }
}

/// The failure reason of a flow's error, by its kind.
pub(super) fn reason_for_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Usage => "config",
        Kind::Auth => "auth",
        Kind::NotFound => "database_missing",
        Kind::Storage => "storage",
        Kind::Locked => "locked",
        Kind::Integrity | Kind::Incompatible => "repository",
        _ => "dump",
    }
}

/// The failure reason of the repository's own failure, by its kind.
pub(super) fn repository_reason(kind: Kind) -> &'static str {
    match kind {
        Kind::Storage => "storage",
        Kind::Locked => "locked",
        _ => "repository",
    }
}

/// Backs up `src` (the lock of `kind` is held by the caller) and records
/// the outcome in the status and metrics of `kind`.
pub async fn run(d: &Daemon, src: &SourceState, kind: RunKind, trigger: Trigger) -> Outcome {
    let started_at = Utc::now();
    let started = Instant::now();
    src.update_run(kind, |s| *s.running_since = Some(started_at));
    metrics::run_running(kind, &src.name, true);
    tracing::info!(source = %src.name, trigger = trigger.as_str(), "{} started", kind.noun());
    let mut shutdown = d.shutdown.subscribe();
    // Boxed so that abandoning it drops it (pg_dump or pg_basebackup
    // killed, session gone) before this process's locks are removed.
    let mut work = Box::pin(backup(d, src, kind, trigger));
    let result = tokio::select! {
        r = &mut work => Some(r),
        _ = super::stopped(&mut shutdown) => {
            tracing::info!(
                source = %src.name,
                grace_seconds = d.settings.grace.as_secs(),
                "SIGTERM during a {}: letting it finish within the grace period",
                kind.noun()
            );
            tokio::time::timeout(d.settings.grace, &mut work).await.ok()
        }
    };
    let duration = started.elapsed().as_secs_f64();
    let outcome = match result {
        None => {
            // Dropping the backup drops its lock guard, which deletes that
            // lock (and only it: other sources' runs keep theirs); wait for
            // the deletion so prune is not held up by a backup that is gone.
            drop(work);
            lifeboat_repo::lock::settle_releases(Duration::from_secs(10)).await;
            tracing::warn!(
                source = %src.name,
                duration_seconds = duration,
                "{} abandoned at the end of the grace period: no snapshot was written; prune removes its data",
                kind.noun()
            );
            Outcome::Abandoned
        }
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            let message = e.error.to_string();
            let now = Utc::now();
            metrics::run_failed(kind, &src.name, e.reason, now);
            src.update_run(kind, |s| {
                *s.last_failure = Some(LastFailure {
                    time: now,
                    reason: e.reason.to_string(),
                    message: message.clone(),
                })
            });
            tracing::error!(
                source = %src.name,
                reason = e.reason,
                duration_seconds = duration,
                error = %message,
                "{} failed",
                kind.noun()
            );
            Outcome::Failed {
                reason: e.reason.to_string(),
                message,
            }
        }
    };
    src.update_run(kind, |s| *s.running_since = None);
    metrics::run_running(kind, &src.name, false);
    outcome
}

/// The backup and its retention; no shutdown handling here.
async fn backup(
    d: &Daemon,
    src: &SourceState,
    kind: RunKind,
    trigger: Trigger,
) -> Result<Outcome, RunError> {
    // The repository must still be the one opened at start-up: a directory
    // moved away must fail the run, not receive a snapshot without marker,
    // keys or config.
    d.repo.verify_identity().await.map_err(|e| RunError {
        reason: "repository",
        error: Error::from(e)
            .context("the repository is not where the daemon opened it; no backup was made"),
    })?;
    let tags = vec![format!("lifeboat-serve:{}", trigger.as_str())];
    let snap = match (kind, src.kind) {
        (RunKind::Physical, _) => super::physical::backup(d, src, tags).await?,
        (RunKind::Backup, SourceKind::Postgres) => backup_postgres(d, &src.name, tags).await?,
        (RunKind::Backup, SourceKind::Kube) => backup_kube(d, &src.name, tags).await?,
        (RunKind::Backup, SourceKind::Stream) => backup_stream(d, &src.name, tags).await?,
    };
    let s = &snap.snapshot.stats;
    metrics::run_succeeded(
        kind,
        &src.name,
        snap.snapshot.time,
        s.duration_seconds,
        s.bytes_read,
        s.bytes_stored,
    );
    src.update_run(kind, |st| {
        *st.last_success = Some(LastSuccess {
            snapshot: snap.id.clone(),
            time: snap.snapshot.time,
            duration_seconds: Some(s.duration_seconds),
        })
    });
    tracing::info!(
        source = %src.name,
        snapshot = %snap.id,
        duration_seconds = s.duration_seconds,
        bytes_read = s.bytes_read,
        bytes_stored = s.bytes_stored,
        trigger = trigger.as_str(),
        "{} succeeded",
        kind.noun()
    );
    if let Err(e) = retention::after_backup(d, src, kind).await {
        let now = Utc::now();
        metrics::run_failed(kind, &src.name, "retention", now);
        tracing::error!(source = %src.name, error = %e, "retention failed after a successful {}; snapshots pile up until it works", kind.noun());
        src.update_run(kind, |st| {
            *st.last_failure = Some(LastFailure {
                time: now,
                reason: "retention".into(),
                message: e.to_string(),
            })
        });
    }
    Ok(Outcome::Succeeded {
        snapshot: snap.id.clone(),
        time: snap.snapshot.time,
        duration_seconds: s.duration_seconds,
        bytes_read: s.bytes_read,
        bytes_stored: s.bytes_stored,
    })
}

async fn backup_postgres(
    d: &Daemon,
    name: &str,
    tags: Vec<String>,
) -> Result<lifeboat_repo::snapshot::SnapshotRef, RunError> {
    use crate::postgres::{self as pg, BackupFrom, BackupRequest};
    let req = BackupRequest {
        from: BackupFrom::Source(name.to_string()),
        tables: Vec::new(),
        schema_only: false,
        tags,
    };
    let source = pg::configured_source(&d.ctx, name)
        .await
        .map_err(|error| RunError {
            reason: "config",
            error,
        })?;
    // Connect once first, so that a database that is down is named as such.
    match source.conn.connect().await {
        Ok(c) => drop(c),
        Err(e) => {
            return Err(RunError {
                reason: reason_for_conn(&e),
                error: pg::conn_err(e),
            });
        }
    }
    pg::backup_source(&d.repo, &source, req, &crate::report::Silent)
        .await
        .map(|done| done.snap)
        .map_err(|f| RunError {
            reason: backup_reason(&f),
            error: f.error,
        })
}

/// The failure reason of a PostgreSQL backup: the repository's failures by
/// their kind, the others by their exit code.
fn backup_reason(f: &crate::postgres::BackupFailure) -> &'static str {
    if f.repository {
        return repository_reason(f.error.kind());
    }
    reason_for_kind(f.error.kind())
}

/// Stream sources: their `stream.command` run as `lifeboat backup stream
/// --source NAME` runs it (argument vector, minimal environment), its
/// standard output backed up. A non-zero exit or a signal fails the run with
/// reason `command` and the end of the command's stderr in the message; no
/// snapshot is committed. A source without a command cannot be scheduled
/// (refused at load); one triggered through the API fails with `config`.
async fn backup_stream(d: &Daemon, name: &str, tags: Vec<String>) -> Result<SnapshotRef, RunError> {
    let stream = d
        .ctx
        .config
        .as_ref()
        .and_then(|c| c.sources.get(name))
        .and_then(|s| s.stream.clone())
        .filter(|s| !s.command.is_empty())
        .ok_or_else(|| RunError {
            reason: "config",
            error: failure!(
                "stream source {name} has no stream.command, so the daemon has nothing to run; give one, or back it up with `lifeboat backup stream --source {name}` from standard input"
            ),
        })?;
    crate::stream::backup_command(&d.repo, name, &stream, tags, &crate::report::Silent, false)
        .await
        .map_err(|f| RunError {
            // The repository's failures by their kind, the others as
            // `reason_for_kind` names them (exit 1 is the command's own).
            reason: if f.repository {
                repository_reason(f.error.kind())
            } else {
                command_reason(f.error.kind())
            },
            error: f.error,
        })
}

/// The reason of the command's failure: its kind's, where a failure
/// (exit 1) is the command's.
fn command_reason(kind: Kind) -> &'static str {
    match reason_for_kind(kind) {
        "dump" => "command",
        r => r,
    }
}

/// Kubernetes sources: the CLI's `backup kube --source NAME`, in-process
/// and printing nothing; its warnings are logged.
async fn backup_kube(
    d: &Daemon,
    name: &str,
    tags: Vec<String>,
) -> Result<lifeboat_repo::snapshot::SnapshotRef, RunError> {
    let req = crate::kube::backup::BackupRequest::for_source(
        name,
        tags,
        d.ctx.cluster_options(None, None),
    );
    let done = crate::kube::backup::backup(&d.ctx, Some(&d.repo), req)
        .await
        .map_err(|f| RunError {
            // The repository's failures by their kind, the others (the
            // cluster's, the configuration's) by their kind too.
            reason: match f.repository {
                true => repository_reason(f.error.kind()),
                false => match reason_for_kind(f.error.kind()) {
                    "dump" => "kubernetes",
                    r => r,
                },
            },
            error: f.error,
        })?;
    for w in &done.summary.warnings {
        tracing::warn!(source = %name, warning = %w, "Kubernetes backup warning");
    }
    Ok(done.snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_a_registered_label() {
        let conn = [
            ConnError::Unreachable {
                target: "db:5432".into(),
                reason: "refused".into(),
            },
            ConnError::AuthFailed {
                user: "u".into(),
                target: "db".into(),
                reason: "bad".into(),
            },
            ConnError::DatabaseMissing {
                database: "d".into(),
                target: "db".into(),
            },
            ConnError::PasswordInUrl,
        ];
        let got: Vec<&str> = conn.iter().map(reason_for_conn).collect();
        assert_eq!(got, ["unreachable", "auth", "database_missing", "config"]);
        for kind in Kind::ALL {
            let r = reason_for_kind(kind);
            assert!(REASONS.contains(&r), "{r}");
            assert!(REASONS.contains(&command_reason(kind)));
            assert!(REASONS.contains(&repository_reason(kind)));
        }
        let e = crate::error::usage("bad reference");
        assert_eq!(command_reason(e.kind()), "config");
        let e = Error::from(lifeboat_repo::RepoError::Locked("x".into()));
        assert_eq!(repository_reason(e.kind()), "locked");
    }
}
