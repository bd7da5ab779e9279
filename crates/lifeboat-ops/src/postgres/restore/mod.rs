//! `restore postgres` as a sequence of named steps:
//!
//! 1. [`steps::load`]: the snapshot, its facts and the configured source;
//! 2. [`target::choose_target`]: where it goes, and whether that is the
//!    source's database (then its writers are quiesced);
//! 3. [`steps::plan`]: the jobs, what to stage, which tables to split;
//! 4. [`steps::prepare`]: while the writers are up, the target created when
//!    missing, its client tools found, and every blob the restore will read
//!    authenticated (staged for `--jobs`, read to nowhere otherwise): a
//!    damaged snapshot fails here and changes nothing;
//! 5. [`steps::quiesce`]: the writers stopped;
//! 6. [`steps::restore`]: pg_restore, streamed, from the staged file, or
//!    split; a failure after the target was touched is "the target is
//!    partial" (exit 11, writers left stopped);
//! 7. [`steps::verify`]: every fact checked, then the writers resumed or
//!    left down.
//!
//! The decisions are pure functions in [`plan`], table-tested. Ctrl-C and
//! SIGTERM are watched at every step that waits ([`steps::Signals`]).

pub mod plan;
pub mod steps;
pub mod target;

use std::path::PathBuf;

use lifeboat_postgres::facts::FactDiff;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Error, Result, VERIFY_FAILED, fail};

pub use plan::Writers;
pub use target::{TargetChoice, choose_target};

/// What `restore postgres` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Snapshot id (or unique prefix), or `latest`.
    pub snapshot: String,
    /// The configured source: with `latest`, its latest snapshot; without
    /// `target`, its database is the target and its quiesce settings apply.
    pub source: Option<String>,
    /// Restore into this database instead (created when missing).
    pub target: Option<String>,
    /// Restore over an existing database holding objects that is not the source.
    pub clean_existing: bool,
    /// The source is down: restore into `target` as another database.
    pub source_unreachable: bool,
    /// Parallel jobs (--jobs); `None`: the source's `restore.jobs`, else 1.
    pub jobs: Option<u32>,
    /// One job per table instead of spreading a table's rows over the jobs.
    pub whole_tables: bool,
    /// Where a parallel restore stages the archive (default: the temp dir).
    pub staging_dir: Option<PathBuf>,
    /// An operator's cap on what staging may use (`LIFEBOAT_STAGING_LIMIT`).
    pub staging_limit: Option<u64>,
    /// Do not stop the writers.
    pub no_quiesce: bool,
    /// Do not check the restored database against the snapshot's facts.
    pub no_verify: bool,
    /// The cluster of the writers to quiesce.
    pub cluster: lifeboat_kube::client::ClusterOptions,
}

/// `LIFEBOAT_STAGING_LIMIT=BYTES`, when set to a number.
pub fn staging_limit_from_env() -> Option<u64> {
    std::env::var("LIFEBOAT_STAGING_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// What a restore did: `--json` shows it as it is.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub source: String,
    pub target: String,
    pub created_database: bool,
    /// Staging the archive for --jobs > 1 (and authenticating the blocks it
    /// leaves out), before the writers were stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_seconds: Option<f64>,
    /// A single stream: reading and authenticating the whole archive once,
    /// before the writers were stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_seconds: Option<f64>,
    /// From the writers stopped to the database restored (not verified yet).
    pub restore_seconds: f64,
    /// Tables whose rows were spread over the --jobs (empty: plain pg_restore).
    pub split_tables: Vec<String>,
    /// `repository` (their data blocks were not staged) or `staged archive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_rows_from: Option<String>,
    pub verified: Option<bool>,
    pub differences: Vec<FactDiff>,
    /// Facts this snapshot did not record (an older Lifeboat took it), so the
    /// verification could not check them (`Facts::not_recorded`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_recorded: Vec<&'static str>,
    pub writers: Writers,
}

/// A finished restore: its report and, when verification found
/// differences, what became of the writers (the restore then failed: see
/// [`RestoreOutcome::error`]).
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub report: RestoreReport,
    /// Verification failed: what was done about the writers, said for the
    /// person (the tail of [`RestoreOutcome::error`]).
    pub verification_failed: Option<String>,
}

impl RestoreOutcome {
    /// The failure of a restore whose database differs from the snapshot
    /// (exit 7); `None` when it was verified (or not checked).
    pub fn error(&self) -> Option<Error> {
        let writers = self.verification_failed.as_ref()?;
        Some(fail(
            VERIFY_FAILED,
            format!(
                "the restored database differs from snapshot {} in {} fact(s) (table above); {writers}",
                &self.report.snapshot[..self.report.snapshot.len().min(8)],
                self.report.differences.len()
            ),
        ))
    }
}

/// Restores a PostgreSQL snapshot: the steps above, in order.
pub async fn restore(ctx: &Ctx, req: RestoreRequest) -> Result<RestoreOutcome> {
    plan::check_jobs_flag(req.jobs)?;
    // Install the SIGTERM handler first so a termination runs our cleanup.
    let mut signals = steps::Signals::install();
    let loaded = steps::load(ctx, &req).await?;
    let chosen = choose_target(ctx, &req, &loaded.snap, loaded.source.as_ref()).await?;
    let plan = steps::plan(&req, &loaded, chosen.jobs)?;
    let prepared = steps::prepare(ctx, &loaded, &chosen, &plan, &mut signals).await?;
    let quiesced = steps::quiesce(ctx, &req, &loaded, &chosen, &mut signals).await?;
    let restored = steps::restore(
        ctx,
        &loaded,
        &chosen.target,
        &plan,
        prepared,
        quiesced,
        &mut signals,
    )
    .await?;
    steps::verify(ctx, &req, &loaded, &chosen.target, restored, &mut signals).await
}
