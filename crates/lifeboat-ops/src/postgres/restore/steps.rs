//! The steps of `restore postgres` (see [`super`]), each doing what
//! [`super::plan`] decided.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lifeboat_postgres::RestoreOutcome as PgRestoreOutcome;
use lifeboat_postgres::conn::{self as pgconn, ConnConfig};
use lifeboat_postgres::dump::{self, DumpError, RestoreOptions};
use lifeboat_postgres::facts::{self, Facts, TableName};
use lifeboat_postgres::tools::{self, PgTools};
use lifeboat_repo::Repository;
use lifeboat_repo::restore::Part;
use lifeboat_repo::snapshot::SnapshotRef;

use super::plan::{self, OnRestoreFailure, OnVerifyFailure, Stage, Writers};
use super::{RestoreOutcome, RestoreReport, RestoreRequest, TargetChoice};
use crate::context::Ctx;
use crate::error::{Context, Error, FAILURE, INTERRUPTED, Kind, PARTIAL, Result, fail, usage};
use crate::postgres::errors::{conn_err, dump_err, facts_err, tools_err};
use crate::postgres::load::{restore_staged, restore_streamed};
use crate::postgres::source::{POSTGRES_KIND, PgSource, postgres_facts, snapshot_source};
use crate::postgres::staging::{RemovedInBackground, Staged, authenticate, stage_archive_part};
use crate::quiesce::{self, NoQuiesce, Quiesced, Quiescer};
use crate::report::Silent;

// ------------------------------------------------------------ interruptions

/// SIGTERM and Ctrl-C, watched by every step that waits.
pub struct Signals {
    term: Option<tokio::signal::unix::Signal>,
}

/// Which signal ended a step.
#[derive(Debug, Clone, Copy)]
pub enum Interruption {
    Term,
    CtrlC,
}

impl Signals {
    /// Watches SIGTERM from now on (Ctrl-C is watched process-wide by
    /// [`crate::interrupt`]).
    pub fn install() -> Self {
        Self {
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Resolves when SIGTERM or Ctrl-C arrives.
    pub async fn next(&mut self) -> Interruption {
        let term = async {
            match &mut self.term {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => Interruption::Term,
            _ = crate::interrupt::requested() => Interruption::CtrlC,
        }
    }
}

impl Interruption {
    /// Exit 130 with the message for this signal.
    fn error(self, term: &str, ctrl_c: &str) -> Error {
        fail(
            INTERRUPTED,
            match self {
                Interruption::Term => term,
                Interruption::CtrlC => ctrl_c,
            },
        )
    }
}

// ------------------------------------------------------------ load

/// The snapshot to restore and where it came from.
pub struct Loaded {
    pub repo: Repository,
    pub snap: SnapshotRef,
    pub facts: Facts,
    /// The configured source: --source, else the snapshot's source if configured.
    pub src_name: Option<String>,
    pub source: Option<PgSource>,
}

/// Step "load": opens the repository, finds the snapshot and its facts.
pub async fn load(ctx: &Ctx, req: &RestoreRequest) -> Result<Loaded> {
    let repo = ctx.open().await?;
    let snap = repo
        // `latest`: the newest logical snapshot, not a newer base backup.
        .find_snapshot_of(&req.snapshot, req.source.as_deref(), Some(POSTGRES_KIND))
        .await?;
    let facts = postgres_facts(&snap)?;
    let (src_name, source) = snapshot_source(ctx, req.source.as_deref(), &snap).await?;
    Ok(Loaded {
        repo,
        snap,
        facts,
        src_name,
        source,
    })
}

// ------------------------------------------------------------ plan

/// How the restore runs.
pub struct RestorePlan {
    pub jobs: u32,
    pub split: Vec<TableName>,
    pub stage: Stage,
    pub staging: PathBuf,
}

/// Step "plan": the decisions of [`plan`], and for a staged restore the
/// free space (and the operator's cap) checked.
pub fn plan(req: &RestoreRequest, loaded: &Loaded, jobs: u32) -> Result<RestorePlan> {
    let staging = req.staging_dir.clone().unwrap_or_else(std::env::temp_dir);
    if jobs > 1 {
        let size = loaded
            .snap
            .snapshot
            .items
            .first()
            .map(|i| i.size)
            .unwrap_or(0);
        dump::check_staging_space(&staging, size).map_err(dump_err)?;
        if let Some(needed) = plan::over_staging_limit(size, req.staging_limit) {
            return Err(dump_err(DumpError::InsufficientSpace {
                dir: staging.clone(),
                needed,
                available: req.staging_limit.unwrap_or_default(),
            }));
        }
    }
    let split = plan::tables_to_split(&plan::table_sizes(&loaded.facts), jobs, req.whole_tables);
    let stage = plan::what_to_stage(jobs, loaded.facts.archive.as_ref(), &split);
    Ok(RestorePlan {
        jobs,
        split,
        stage,
        staging,
    })
}

// ------------------------------------------------------------ prepare

/// The target ready and the snapshot's data proven.
pub struct Prepared {
    pub created: bool,
    pub tools: PgTools,
    /// The staged archive (several jobs).
    pub staged: Option<Staged>,
    /// Seconds staging or authenticating took.
    pub proven_seconds: f64,
}

/// Step "stage": the target and the tools for its server, and the
/// snapshot's data proven, at the same time, while the writers are still
/// up. Every blob the restore will read is authenticated here, before
/// anything is stopped or replaced: --jobs > 1 stages the archive
/// (authenticating what it writes) and authenticates the blocks it leaves
/// out (their rows are read from the repository during the restore); a
/// single stream is read and authenticated once without being written
/// anywhere. A damaged snapshot fails here and changes nothing.
pub async fn prepare(
    ctx: &Ctx,
    loaded: &Loaded,
    chosen: &TargetChoice,
    plan: &RestorePlan,
    signals: &mut Signals,
) -> Result<Prepared> {
    let (repo, snap, target) = (&loaded.repo, &loaded.snap, &chosen.target);
    let ready = async {
        let created = dump::create_database_if_missing(target, "postgres")
            .await
            .map_err(dump_err)?;
        let client = target.connect().await.map_err(conn_err)?;
        let num = pgconn::server_version_num(&client)
            .await
            .map_err(|e| fail(FAILURE, pgconn::pg_message(&e)))?;
        drop(client);
        let tools =
            tools::discover(tools::server_major(num), &chosen.discovery).map_err(tools_err)?;
        Ok::<_, Error>((created, tools))
    };
    let stage = async {
        let started = Instant::now();
        let staged = match &plan.stage {
            Stage::File { leave_out } => {
                let ranges: Vec<Part> = leave_out
                    .iter()
                    .map(|b| Part::Range(b.start..b.end))
                    .collect();
                let (staged, _) = tokio::try_join!(
                    stage_archive_part(
                        repo,
                        snap,
                        &plan.staging,
                        ctx.reporter(),
                        loaded.facts.archive.clone(),
                        leave_out.clone(),
                    ),
                    // One progress display at a time: staging's.
                    authenticate(repo, snap, &ranges, &Silent),
                )?;
                Some(staged)
            }
            Stage::Authenticate => {
                authenticate(repo, snap, &[Part::All], ctx.reporter()).await?;
                None
            }
        };
        Ok::<_, Error>((staged, started.elapsed().as_secs_f64()))
    };
    let stage = async {
        stage.await.map_err(|e| {
            e.context(format!(
                "reading snapshot {} before touching the target failed; nothing was changed and \
                 the writers were not stopped",
                snap.short_id()
            ))
        })
    };
    let ((created, tools), (staged, proven_seconds)) = tokio::select! {
        r = async { tokio::try_join!(ready, stage) } => r?,
        i = signals.next() => return Err(i.error(
            "terminated (SIGTERM) while preparing the restore: nothing was restored and the writers were not stopped",
            "interrupted while preparing the restore: nothing was restored and the writers were not stopped",
        )),
    };
    if created && !ctx.global.quiet {
        ctx.reporter()
            .note(&format!("created database {}", target.display_url()));
    }
    if !ctx.global.quiet {
        let what = if staged.is_some() {
            "staged the archive"
        } else {
            "authenticated the archive"
        };
        ctx.reporter().note(&format!(
            "{what} in {proven_seconds:.1} s (writers not stopped yet)"
        ));
    }
    Ok(Prepared {
        created,
        tools,
        staged,
        proven_seconds,
    })
}

// ------------------------------------------------------------ quiesce

/// The writers stopped (or not).
pub struct Quiescing {
    pub guard: Quiesced,
    /// Whether any writers are stopped (and so resumed or left stopped): not
    /// with --no-quiesce, nor without quiesce settings that stop something.
    pub has_writers: bool,
    pub resume_on_verify_failure: bool,
}

/// Step "quiesce": stops the writers the target's settings name. Stopping
/// may wait minutes for pods to go: it stays interruptible, and a cancelled
/// stop is undone by the guard it created.
pub async fn quiesce(
    ctx: &Ctx,
    req: &RestoreRequest,
    loaded: &Loaded,
    chosen: &TargetChoice,
    signals: &mut Signals,
) -> Result<Quiescing> {
    let (snap, facts) = (&loaded.snap, &loaded.facts);
    let quiescer: Box<dyn Quiescer> = match plan::whether_to_quiesce(req.no_quiesce) {
        plan::Quiesce::Skip => {
            ctx.reporter().note(
                "WARNING: --no-quiesce: writers are NOT stopped; they keep writing into a database \
                 that is being replaced, and verification may fail because of them",
            );
            Box::new(NoQuiesce)
        }
        plan::Quiesce::AsConfigured => quiesce::from_config(
            chosen.quiesce.as_ref(),
            loaded.src_name.as_deref().unwrap_or(&snap.snapshot.source),
            req.cluster.clone(),
            quiesce::stderr_notify(ctx.global.quiet),
        )
        .map_err(|e| usage(e.to_string()))?,
    };
    let resume_on_verify_failure = chosen
        .quiesce
        .as_ref()
        .is_some_and(|q| q.resume_on_verify_failure);
    let has_writers = quiescer.stops_writers();
    if !ctx.global.quiet {
        ctx.reporter().note(&format!(
            "restoring snapshot {} ({} of {}, taken {}) into {}; writers: {}",
            snap.short_id(),
            facts.database,
            snap.snapshot.source,
            facts.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
            chosen.target.display_url(),
            quiescer.describe()
        ));
    }
    if !ctx.global.quiet && has_writers {
        ctx.reporter().note(&format!(
            "if this restore is killed, bring the writers back yourself: {}",
            quiescer.manual_resume_hint()
        ));
    }
    let guard = tokio::select! {
        r = Quiesced::stop(quiescer) => r?,
        i = signals.next() => return Err(i.error(
            "terminated (SIGTERM) while stopping the writers: nothing was restored",
            "interrupted while stopping the writers: nothing was restored",
        )),
    };
    Ok(Quiescing {
        guard,
        has_writers,
        resume_on_verify_failure,
    })
}

// ------------------------------------------------------------ restore

/// The target restored, not verified yet.
pub struct Restored {
    pub outcome: PgRestoreOutcome,
    pub created: bool,
    pub proven_seconds: f64,
    /// Set when the archive was staged (else authenticated).
    pub staging_seconds: Option<f64>,
    pub restore_seconds: f64,
    pub quiescing: Quiescing,
    /// Deletes the staged file beside the verification; waited for at the end.
    pub removal: Option<RemovedInBackground>,
}

/// Step "restore": pg_restore (streamed, from the staged file, or split).
/// A failure after it began replacing the target leaves it partial.
pub async fn restore(
    ctx: &Ctx,
    loaded: &Loaded,
    target: &ConnConfig,
    plan: &RestorePlan,
    prepared: Prepared,
    quiescing: Quiescing,
    signals: &mut Signals,
) -> Result<Restored> {
    let (repo, snap) = (&loaded.repo, &loaded.snap);
    let Prepared {
        created,
        tools,
        mut staged,
        proven_seconds,
    } = prepared;
    let started = Instant::now();
    let opts = RestoreOptions {
        jobs: plan.jobs,
        ..RestoreOptions::default()
    };
    // Set once pg_restore (or the split restore) has started: from then on
    // the target is no longer what it was, and a failure leaves it partial.
    let touched = AtomicBool::new(false);
    let run = async {
        match &mut staged {
            Some(file) => {
                restore_staged(
                    repo,
                    snap,
                    &tools,
                    target,
                    &opts,
                    file,
                    &plan.split,
                    &touched,
                )
                .await
            }
            None => {
                restore_streamed(repo, snap, &tools, target, &opts, ctx.reporter(), &touched).await
            }
        }
    };
    let outcome = tokio::select! {
        r = run => r,
        i = signals.next() => Err(i.error(
            "terminated (SIGTERM) during the restore; pg_restore was stopped",
            "interrupted (Ctrl-C) during the restore; pg_restore was stopped",
        )),
    };
    // pg_restore is done with the staged file. Deleting a file of gigabytes
    // takes the kernel a while (0.5 s for 2.5 GB here): do it beside the
    // verification; the guard waits for it when the restore returns.
    let (staging_seconds, removal) = match staged {
        Some(staged) => (
            Some(proven_seconds),
            Some(RemovedInBackground::start(staged.file)),
        ),
        None => (None, None),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let touched = touched.load(Ordering::SeqCst);
            return Err(failed(ctx, &loaded.facts, target, e, touched, quiescing).await);
        }
    };
    for t in &outcome.tolerated_errors {
        tracing::info!(error = %t.message, "tolerated while dropping old objects");
    }
    Ok(Restored {
        outcome,
        created,
        proven_seconds,
        staging_seconds,
        restore_seconds: started.elapsed().as_secs_f64(),
        quiescing,
        removal,
    })
}

/// The error of a failed restore, the writers dealt with as
/// [`plan::on_restore_failure`] says.
async fn failed(
    ctx: &Ctx,
    facts: &Facts,
    target: &ConnConfig,
    e: Error,
    touched: bool,
    q: Quiescing,
) -> Error {
    let interrupted = e.kind == Kind::Interrupted;
    let e = if plan::mention_dependencies(!facts.scope.tables.is_empty(), interrupted) {
        e.context(
            "this snapshot holds only selected tables, not the extensions, functions and \
             types they depend on: restore it into a database that has the schema (for \
             example restore a --schema-only snapshot there first)",
        )
    } else {
        e
    };
    match plan::on_restore_failure(touched) {
        OnRestoreFailure::Partial => partial(
            format!("the restore stopped before it finished: {e}"),
            q.guard,
            target,
            q.has_writers,
        ),
        OnRestoreFailure::ResumeWriters => {
            // Nothing of the target was touched yet: as before the stop.
            let e = if interrupted {
                fail(
                    INTERRUPTED,
                    format!("{e}: it had not touched the target yet, nothing was restored"),
                )
            } else {
                e
            };
            match q.guard.resume().await {
                Ok(()) => ctx
                    .reporter()
                    .note("the restore failed; the writers were brought back"),
                Err(r) => ctx.reporter().note(&format!(
                    "error: the restore failed and bringing the writers back failed too: {r}"
                )),
            }
            e
        }
    }
}

/// The error of a restore that failed or was interrupted after it had begun
/// replacing the target: says so, leaves the writers stopped (they must not
/// write into a partial database), exit [`PARTIAL`] whatever the cause's
/// code.
fn partial(what: String, guard: Quiesced, target: &ConnConfig, has_writers: bool) -> Error {
    let hint = guard.leave_down();
    let writers = if has_writers {
        format!(
            "THE WRITERS ARE LEFT STOPPED: the database must not take traffic. Run the restore \
             again (or restore another snapshot) and bring them back yourself only once it is \
             whole ({hint})"
        )
    } else {
        "Run the restore again (or restore another snapshot) before anything uses it".to_string()
    };
    fail(
        PARTIAL,
        format!(
            "the target is partial: {} was being replaced and {what}. {writers}",
            target.display_url()
        ),
    )
}

// ------------------------------------------------------------ verify

/// Step "verify" and "resume or leave down": every recorded fact checked
/// against the restored database; the writers brought back when it holds,
/// else dealt with as [`plan::on_verify_failure`] says.
pub async fn verify(
    ctx: &Ctx,
    req: &RestoreRequest,
    loaded: &Loaded,
    target: &ConnConfig,
    r: Restored,
    signals: &mut Signals,
) -> Result<RestoreOutcome> {
    let (snap, facts) = (&loaded.snap, &loaded.facts);
    let Restored {
        outcome,
        created,
        proven_seconds,
        staging_seconds,
        restore_seconds,
        quiescing: q,
        removal: _removal,
    } = r;
    let mut report = RestoreReport {
        snapshot: snap.id.clone(),
        source: snap.snapshot.source.clone(),
        target: target.display_url(),
        created_database: created,
        authentication_seconds: staging_seconds.is_none().then_some(proven_seconds),
        staging_seconds,
        restore_seconds,
        split_tables: outcome.split_tables.clone(),
        split_rows_from: outcome.split_rows_from.clone(),
        verified: None,
        differences: Vec::new(),
        not_recorded: Vec::new(),
        writers: plan::writers_after(q.has_writers, req.no_quiesce),
    };
    let done = |report| RestoreOutcome {
        report,
        verification_failed: None,
    };
    if req.no_verify {
        ctx.reporter().note(
            "WARNING: --no-verify: the restored database was NOT checked against the snapshot's facts",
        );
        q.guard
            .resume()
            .await
            .context("bringing the writers back")?;
        return Ok(done(report));
    }
    let checked = tokio::select! {
        r = async {
            let mut client = target.connect().await.map_err(conn_err)?;
            facts::verify(facts, &mut client).await.map_err(facts_err)
        } => r,
        i = signals.next() => Err(i.error(
            "terminated (SIGTERM) while verifying",
            "interrupted (Ctrl-C) while verifying",
        )),
    };
    let diffs = match checked {
        Ok(d) => d,
        Err(e) => {
            return Err(partial(
                format!(
                    "pg_restore finished, but the restored database could not be checked against \
                     the snapshot's facts, so it is not known to be whole: {e}"
                ),
                q.guard,
                target,
                q.has_writers,
            ));
        }
    };
    report.verified = Some(diffs.is_empty());
    report.not_recorded = facts.not_recorded();
    if diffs.is_empty() {
        q.guard.resume().await.context(
            "the database was restored and verified, but bringing the writers back failed",
        )?;
        return Ok(done(report));
    }
    report.differences = diffs;
    let writers_msg = match plan::on_verify_failure(
        q.has_writers,
        req.no_quiesce,
        q.resume_on_verify_failure,
    ) {
        OnVerifyFailure::NotStopped => "the writers were not stopped (--no-quiesce); keep traffic \
             away from it until it is restored again"
            .to_string(),
        OnVerifyFailure::NoneConfigured => "no writers are configured to stop (no quiesce \
             settings for this target); keep traffic away from it until it is restored again"
            .to_string(),
        OnVerifyFailure::Resume => {
            report.writers = Writers::Resumed;
            match q.guard.resume().await {
                Ok(()) => "the writers were brought back anyway (quiesce.resume_on_verify_failure)"
                    .to_string(),
                Err(e) => format!("bringing the writers back failed: {e}"),
            }
        }
        OnVerifyFailure::LeaveStopped => {
            report.writers = Writers::LeftStopped;
            let hint = q.guard.leave_down();
            format!(
                "THE WRITERS ARE LEFT STOPPED: the restored database does not match the snapshot and must \
                 not take traffic. Investigate, restore another snapshot, or bring them back yourself ({hint})"
            )
        }
    };
    Ok(RestoreOutcome {
        report,
        verification_failed: Some(writers_msg),
    })
}
