//! Feeding a snapshot's archive to `pg_restore`: streamed with one job;
//! above one from the staged file, plain `pg_restore --jobs` or the split
//! restore (the largest tables' rows spread over the jobs, read from the
//! repository when staging left their blocks out). `touched` is set once
//! something runs against the target: from then on a failure leaves it
//! partial.

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeboat_postgres::RestoreOutcome as PgRestoreOutcome;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::dump::{self, PgRestore, RestoreOptions};
use lifeboat_postgres::facts::{Facts, TableName};
use lifeboat_postgres::split_restore::{self, RowSource};
use lifeboat_postgres::tools::PgTools;
use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::restore::{Part, restore_item, restore_item_part};
use lifeboat_repo::snapshot::SnapshotRef;

use super::errors::dump_err;
use super::restore::plan;
use super::staging::{RemovedInBackground, Staged, blocks_to_leave_out, stage_archive_part};
use crate::error::{Context, Error, Kind, Result};
use crate::report::Reporter;

/// Feeds the snapshot's archive to pg_restore (streamed, or staged to a file
/// in `staging` for `opts.jobs` > 1).
pub async fn restore_archive(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staging: &Path,
    reporter: &dyn Reporter,
) -> Result<PgRestoreOutcome> {
    let opts = opts.clone();
    let touched = AtomicBool::new(false);
    if opts.jobs <= 1 {
        restore_streamed(repo, snap, tools, target, &opts, reporter, &touched).await
    } else {
        let mut staged =
            stage_archive_part(repo, snap, staging, reporter, None, Vec::new()).await?;
        restore_staged(repo, snap, tools, target, &opts, &mut staged, &[], &touched).await
    }
}

/// Restores a snapshot the way `restore postgres` does for `opts.jobs`:
/// streamed with one job; above one staged (the data blocks of the tables
/// worth splitting left out when the snapshot recorded the archive's layout)
/// and those tables' rows spread over the jobs. Drills use it, so that a
/// drill proves the source's production restore path.
#[allow(clippy::too_many_arguments)]
pub async fn restore_snapshot(
    repo: &Repository,
    snap: &SnapshotRef,
    facts: &Facts,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staging: &Path,
    reporter: &dyn Reporter,
) -> Result<PgRestoreOutcome> {
    if opts.jobs <= 1 {
        return restore_archive(repo, snap, tools, target, opts, staging, reporter).await;
    }
    let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
    dump::check_staging_space(staging, size).map_err(dump_err)?;
    let split = plan::tables_to_split(&plan::table_sizes(facts), opts.jobs, false);
    let leave_out = blocks_to_leave_out(facts.archive.as_ref(), &split);
    let mut staged = stage_archive_part(
        repo,
        snap,
        staging,
        reporter,
        facts.archive.clone(),
        leave_out,
    )
    .await?;
    let touched = AtomicBool::new(false);
    let r = restore_staged(
        repo,
        snap,
        tools,
        target,
        opts,
        &mut staged,
        &split,
        &touched,
    )
    .await;
    RemovedInBackground::start(staged.file);
    r
}

/// Streams the snapshot's archive into `pg_restore` (one job); `touched` is
/// set once pg_restore runs.
pub(super) async fn restore_streamed(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    reporter: &dyn Reporter,
    touched: &AtomicBool,
) -> Result<PgRestoreOutcome> {
    let progress = Arc::new(Progress::default());
    let mut pr = PgRestore::spawn_stream(tools, target, opts).map_err(dump_err)?;
    touched.store(true, Ordering::SeqCst);
    let stdin = pr
        .take_stdin()
        .ok_or_else(|| crate::failure!("pg_restore has no stdin"))?;
    let display = reporter.progress(Arc::clone(&progress), "restore", false);
    let fed = restore_item(
        repo,
        snap,
        None,
        BufWriter::with_capacity(1 << 20, stdin),
        progress,
    )
    .await;
    drop(display);
    let waited = pr.wait_async().await;
    match (fed, waited) {
        (Ok(_), Ok(o)) => Ok(o),
        (Err(e), Err(w)) => {
            let e = Error::from(e);
            if e.kind != Kind::Failure {
                Err(e.context(format!("pg_restore also failed: {w}")))
            } else {
                Err(dump_err(w))
            }
        }
        (Ok(_), Err(w)) => Err(dump_err(w)),
        (Err(e), Ok(_)) => Err(Error::from(e).context("reading the archive")),
    }
}

/// Restores a staged archive: with `opts.jobs` > 1 and tables to `split`, by
/// [`split_restore`] (their rows spread over all jobs, read from the
/// repository when staging left their blocks out); otherwise (or when the
/// archive does not fit it) by plain `pg_restore --jobs`. `touched` is set
/// once something runs against the target.
#[allow(clippy::too_many_arguments)]
pub(super) async fn restore_staged(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staged: &mut Staged,
    split: &[TableName],
    touched: &AtomicBool,
) -> Result<PgRestoreOutcome> {
    let path = staged.file.path().to_path_buf();
    if opts.jobs > 1 && !split.is_empty() {
        let (t, p, s) = (tools.clone(), path.clone(), split.to_vec());
        let plan = tokio::task::spawn_blocking(move || split_restore::plan(&t, &p, &s))
            .await
            .context("planning the restore")?
            .map_err(dump_err)?;
        let left_out: std::collections::BTreeSet<i64> =
            staged.left_out.iter().map(|b| b.dump_id).collect();
        if plan.as_ref().is_none_or(|p| p.split_dump_ids() != left_out) {
            staged.fill(repo, snap).await?;
        }
        if let Some(plan) = plan {
            let names: Vec<String> = plan.split_tables().iter().map(|t| t.to_string()).collect();
            tracing::info!(tables = %names.join(", "), jobs = opts.jobs, direct = !staged.left_out.is_empty(), "rows of these tables spread over the jobs");
            touched.store(true, Ordering::SeqCst);
            if staged.left_out.is_empty() {
                return split_restore::restore(
                    tools,
                    target,
                    &path,
                    opts,
                    &plan,
                    RowSource::Archive,
                )
                .await
                .map_err(dump_err);
            }
            return restore_split_from_repository(repo, snap, tools, target, opts, staged, &plan)
                .await;
        }
    } else if !staged.left_out.is_empty() {
        staged.fill(repo, snap).await?;
    }
    let pr = PgRestore::spawn_file(tools, target, &path, opts).map_err(dump_err)?;
    touched.store(true, Ordering::SeqCst);
    pr.wait_async().await.map_err(dump_err)
}

/// A failure feeding the rows, and whether it was writing into a pipe whose
/// reader is gone (then the restore's own error is the cause).
struct FeedError {
    error: Error,
    broken_pipe: bool,
}

impl FeedError {
    fn new<E: std::error::Error + Into<Error> + 'static>(e: E) -> Self {
        let broken_pipe = is_broken_pipe(&e);
        Self {
            error: e.into(),
            broken_pipe,
        }
    }
}

/// Whether `e`, or a cause in its chain, is writing into a pipe whose reader
/// is gone. Asked before `e` becomes an [`Error`] (which keeps the message,
/// not the chain).
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A split restore whose split rows come from the repository: the left-out
/// blocks are read in order into a pipe that the row reader takes them from.
async fn restore_split_from_repository(
    repo: &Repository,
    snap: &SnapshotRef,
    tools: &PgTools,
    target: &ConnConfig,
    opts: &RestoreOptions,
    staged: &Staged,
    plan: &split_restore::Plan,
) -> Result<PgRestoreOutcome> {
    let layout = staged
        .layout
        .clone()
        .expect("blocks are left out only with a layout");
    let (reader, writer) = std::io::pipe().context("creating a pipe for the rows")?;
    {
        use std::os::fd::AsRawFd;
        dump::enlarge_pipe(writer.as_raw_fd());
    }
    let blocks = staged.left_out.clone();
    let feed = async {
        let mut writer = Some(writer);
        for (i, b) in blocks.iter().enumerate() {
            let w = if i + 1 == blocks.len() {
                writer.take().expect("the writer")
            } else {
                writer
                    .as_ref()
                    .expect("the writer")
                    .try_clone()
                    .map_err(FeedError::new)?
            };
            restore_item_part(
                repo,
                snap,
                None,
                &Part::Range(b.start..b.end),
                w,
                Arc::new(Progress::default()),
            )
            .await
            .map_err(|e| {
                let mut f = FeedError::new(e);
                f.error = f.error.context(format!(
                    "reading the rows of {}.{} from the repository",
                    b.schema, b.tag
                ));
                f
            })?;
        }
        Ok::<(), FeedError>(())
    };
    let rows = RowSource::Blocks {
        reader: Box::new(reader),
        layout,
        blocks: staged.left_out.clone(),
    };
    let path = staged.file.path().to_path_buf();
    let (fed, restored) = tokio::join!(
        feed,
        split_restore::restore(tools, target, &path, opts, plan, rows)
    );
    match (fed, restored) {
        (Ok(()), r) => r.map_err(dump_err).map(|mut o| {
            o.split_rows_from = Some("repository".into());
            o
        }),
        // The restore failed and stopped reading the pipe: its error is the
        // cause, the feed's broken pipe only the consequence.
        (Err(e), Err(r)) if e.broken_pipe => Err(dump_err(r)),
        // The repository's error explains the reader's.
        (Err(e), Err(_)) => Err(e.error),
        (Err(e), Ok(_)) => Err(e.error),
    }
}
