//! Stream snapshots: any bytes in, the same bytes out.
//!
//! [`backup()`] backs up standard input under a name, or a configured stream
//! source: the output of its `stream.command` when it has one (run by
//! [`crate::stream_command`], as the daemon runs it with
//! [`backup_command`]), else standard input. [`restore()`] writes a stream
//! snapshot's bytes to a new file or to standard output. The CLI
//! (`lifeboat backup stream`, `restore stream`) decides what may go where
//! (no binary data on a terminal, none on `--json`'s standard output) and
//! prints the results.

use std::path::PathBuf;
use std::sync::Arc;

use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::snapshot::SnapshotRef;

use crate::config::{SourceKind, StreamSource};
use crate::context::Ctx;
use crate::error::{Context, Error, FAILURE, Result, fail, usage};
use crate::report::Reporter;
use crate::stream_command::CommandReader;

/// The item name of a command's output in its snapshot.
pub const COMMAND_ITEM: &str = "stdout";
/// The item name of a stream read from standard input.
pub const STDIN_ITEM: &str = "stdin";

/// What to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupFrom {
    /// Standard input, as a snapshot of this source name.
    Stdin(String),
    /// A stream source of the configuration: its `stream.command`'s output,
    /// or standard input when it has no command.
    Source(String),
}

/// What `backup stream` is asked to do.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub from: BackupFrom,
    pub tags: Vec<String>,
}

pub use crate::error::BackupFailure;

/// Backs up what `req` names into the repository of `ctx`. The request is
/// checked (and a configured source looked up) before the repository is
/// opened.
pub async fn backup(ctx: &Ctx, req: BackupRequest) -> Result<SnapshotRef> {
    let (name, command) = match &req.from {
        BackupFrom::Stdin(n) => {
            if n.trim().is_empty() {
                return Err(usage("--name must not be empty"));
            }
            (n.clone(), None)
        }
        BackupFrom::Source(s) => (s.clone(), configured_command(ctx, s)?),
    };
    let repo = ctx.open().await?;
    match &command {
        Some(stream) => backup_command(&repo, &name, stream, req.tags, ctx.reporter(), true)
            .await
            .map_err(Error::from),
        None => backup_stdin(&repo, &name, req.tags, ctx.reporter()).await,
    }
}

/// The configured stream source `name`: its command, or None to read
/// standard input. A source of another kind is refused.
fn configured_command(ctx: &Ctx, name: &str) -> Result<Option<StreamSource>> {
    let Some(config) = &ctx.config else {
        return Err(usage(format!(
            "--source {name} needs a configuration file (--config or ./lifeboat.yaml); use --name {name} to back up standard input"
        )));
    };
    let src = config.source(name).map_err(|e| usage(e.to_string()))?;
    if src.kind != SourceKind::Stream {
        return Err(usage(format!(
            "source {name} is a {} source; back it up with `lifeboat backup {}`",
            src.kind, src.kind
        )));
    }
    Ok(src.stream.clone().filter(|s| !s.command.is_empty()))
}

fn meta(name: &str, tags: Vec<String>) -> SnapshotMeta {
    SnapshotMeta {
        source: name.to_string(),
        kind: "stream".into(),
        tags,
        facts: serde_json::Value::Null,
    }
}

/// Backs up this process's standard input as a snapshot of `name`.
async fn backup_stdin(
    repo: &Repository,
    name: &str,
    tags: Vec<String>,
    reporter: &dyn Reporter,
) -> Result<SnapshotRef> {
    let progress = Arc::new(Progress::default());
    let mut session = BackupSession::start(repo, Arc::clone(&progress)).await?;
    let display = reporter.progress(Arc::clone(&progress), "backup", true);
    if let Err(e) = session.add_stream(STDIN_ITEM, std::io::stdin()).await {
        session.abort().await;
        return Err(e.into());
    }
    let snap = session.commit(meta(name, tags)).await?;
    drop(display);
    Ok(snap)
}

/// Runs `stream.command` and backs up its standard output as a snapshot of
/// `name`. A command that cannot start, exits non-zero or is killed fails
/// the backup (exit 1) with the end of its stderr in the message, and
/// nothing is committed. `echo_stderr`: copy its stderr to ours as it comes
/// (the CLI; the daemon only keeps it for the message).
pub async fn backup_command(
    repo: &Repository,
    name: &str,
    stream: &StreamSource,
    tags: Vec<String>,
    reporter: &dyn Reporter,
    echo_stderr: bool,
) -> Result<SnapshotRef, BackupFailure> {
    let progress = Arc::new(Progress::default());
    let mut session = BackupSession::start(repo, Arc::clone(&progress))
        .await
        .map_err(BackupFailure::repository)?;
    let reader = match CommandReader::spawn(stream, echo_stderr) {
        Ok(r) => r,
        Err(e) => {
            session.abort().await;
            return Err(e.into());
        }
    };
    let failure = reader.failure();
    let display = reporter.progress(Arc::clone(&progress), "backup", true);
    let added = session.add_stream(COMMAND_ITEM, reader).await;
    drop(display);
    if let Err(e) = added {
        session.abort().await;
        let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
        return Err(match failed {
            Some(msg) => fail(
                FAILURE,
                format!("{msg}; nothing was committed to the repository"),
            )
            .into(),
            None => BackupFailure::repository(
                Error::from(e).context("backing up the stream command's output"),
            ),
        });
    }
    session
        .commit(meta(name, tags))
        .await
        .map_err(BackupFailure::repository)
}

/// Where a restored stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// This process's standard output.
    Stdout,
    /// A new file (it must not exist yet; removed again when the restore
    /// fails, so no file looks like a good restore).
    File(PathBuf),
}

/// What `restore stream` is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Snapshot id (or unique prefix), or `latest`.
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this stream name.
    pub name: Option<String>,
    pub output: Output,
}

/// A restored stream.
pub struct RestoreOutcome {
    pub snap: SnapshotRef,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the requested stream snapshot to `req.output`; every blob is
/// verified on the way.
pub async fn restore(ctx: &Ctx, req: RestoreRequest) -> Result<RestoreOutcome> {
    let repo = ctx.open().await?;
    let snap = repo
        .find_snapshot(&req.snapshot, req.name.as_deref())
        .await?;
    let progress = Arc::new(Progress::default());
    let display = ctx
        .reporter()
        .progress(Arc::clone(&progress), "restore", false);
    let bytes = match &req.output {
        Output::File(path) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
            let out = std::io::BufWriter::with_capacity(1 << 20, f);
            let result = restore_item(&repo, &snap, None, out, progress).await;
            if result.is_err() {
                let _ = std::fs::remove_file(path);
            }
            result?
        }
        Output::Stdout => {
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            restore_item(&repo, &snap, None, out, progress).await?
        }
    };
    drop(display);
    Ok(RestoreOutcome { snap, bytes })
}
