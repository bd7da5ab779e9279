//! `backup stream` and `restore stream`: any bytes in, the same bytes out.
//!
//! `backup stream --name NAME` reads standard input. `backup stream
//! --source NAME` backs up a configured stream source: the output of its
//! `stream.command` when it has one (run as the daemon runs it,
//! `crate::stream_command`), else standard input.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::snapshot::SnapshotRef;
use serde::Serialize;

use crate::config::{SourceKind, StreamSource};
use crate::context::Ctx;
use crate::exit::{FAILURE, OK, fail, usage};
use crate::output::{human_bytes, print_json};
use crate::progress;
use crate::stream_command::CommandReader;

#[derive(Args, Debug)]
pub struct BackupStreamArgs {
    /// Name of the stream, read from standard input; it becomes the
    /// snapshot's source
    #[arg(long, required_unless_present = "source", conflicts_with = "source")]
    pub name: Option<String>,
    /// A stream source of the configuration: its stream.command's output is
    /// backed up (standard input when it has no command)
    #[arg(long)]
    pub source: Option<String>,
    /// Tags to attach (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RestoreStreamArgs {
    /// Snapshot id (or unique prefix), or `latest`
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this stream name
    #[arg(long)]
    pub name: Option<String>,
    /// Write here instead of standard output
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Serialize)]
struct BackupResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    stats: &'a lifeboat_repo::snapshot::BackupStats,
}

#[derive(Serialize)]
struct RestoreResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    /// Bytes written.
    bytes: u64,
    output: Option<&'a std::path::Path>,
}

pub async fn backup(ctx: &Ctx, a: BackupStreamArgs) -> Result<i32> {
    let (name, command) = match (&a.name, &a.source) {
        (Some(n), _) => {
            if n.trim().is_empty() {
                return Err(usage("--name must not be empty"));
            }
            (n.clone(), None)
        }
        (None, Some(s)) => (s.clone(), configured_command(ctx, s)?),
        (None, None) => return Err(usage("give --name NAME or --source NAME")),
    };
    let repo = ctx.open().await?;
    let snap = match &command {
        Some(stream) => {
            backup_command(
                &repo,
                &name,
                stream,
                a.tags,
                crate::progress::mode(ctx),
                true,
            )
            .await?
        }
        None => {
            let progress = Arc::new(Progress::default());
            let mut session = BackupSession::start(&repo, Arc::clone(&progress)).await?;
            let display = progress::start(
                Arc::clone(&progress),
                "backup",
                crate::progress::mode(ctx),
                true,
            );
            if let Err(e) = session.add_stream("stdin", std::io::stdin()).await {
                session.abort().await;
                return Err(e.into());
            }
            let snap = session.commit(meta(&name, a.tags)).await?;
            drop(display);
            snap
        }
    };
    let s = &snap.snapshot.stats;
    if ctx.json() {
        print_json(&BackupResult {
            id: &snap.id,
            source: &snap.snapshot.source,
            time: snap.snapshot.time,
            stats: s,
        })?;
    } else {
        let rate = s.bytes_read as f64 / s.duration_seconds.max(0.001);
        println!(
            "snapshot {} saved: {} read, {} new, {} stored, {:.1} s ({}/s)",
            snap.short_id(),
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            s.duration_seconds,
            human_bytes(rate as u64)
        );
    }
    Ok(OK)
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

/// Runs `stream.command` and backs up its standard output as a snapshot of
/// `name`. A command that exits non-zero or is killed fails the backup
/// (exit 1) with the end of its stderr in the message, and nothing is
/// committed. `echo_stderr`: copy its stderr to ours as it comes (the CLI;
/// the daemon only logs it).
pub(crate) async fn backup_command(
    repo: &Repository,
    name: &str,
    stream: &StreamSource,
    tags: Vec<String>,
    mode: progress::Mode,
    echo_stderr: bool,
) -> Result<SnapshotRef> {
    let progress = Arc::new(Progress::default());
    let mut session = BackupSession::start(repo, Arc::clone(&progress)).await?;
    let reader = match CommandReader::spawn(stream, echo_stderr) {
        Ok(r) => r,
        Err(e) => {
            session.abort().await;
            return Err(e.into());
        }
    };
    let failure = reader.failure();
    let display = progress::start(Arc::clone(&progress), "backup", mode, true);
    let added = session.add_stream(COMMAND_ITEM, reader).await;
    drop(display);
    if let Err(e) = added {
        session.abort().await;
        let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
        return Err(match failed {
            Some(msg) => fail(
                FAILURE,
                format!("{msg}; nothing was committed to the repository"),
            ),
            None => anyhow::Error::from(e).context("backing up the stream command's output"),
        });
    }
    Ok(session.commit(meta(name, tags)).await?)
}

/// The item name of a command's output in its snapshot (`stdin` for a
/// stream read from standard input).
const COMMAND_ITEM: &str = "stdout";

pub async fn restore(ctx: &Ctx, a: RestoreStreamArgs) -> Result<i32> {
    // With --json, standard output holds the JSON document (docs/cli.md,
    // "JSON output" in docs/exit-codes.md): the data must go to a file.
    if a.output.is_none() && ctx.json() {
        return Err(usage(
            "restore stream --json needs --output FILE: standard output carries the JSON result, not the data",
        ));
    }
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(usage(
            "refusing to write a binary stream to a terminal: redirect standard output or pass --output FILE",
        ));
    }
    let repo = ctx.open().await?;
    let snap = repo.find_snapshot(&a.snapshot, a.name.as_deref()).await?;
    let progress = Arc::new(Progress::default());
    let display = progress::start(
        Arc::clone(&progress),
        "restore",
        crate::progress::mode(ctx),
        false,
    );
    let n = match &a.output {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
            let result = restore_item(
                &repo,
                &snap,
                None,
                std::io::BufWriter::with_capacity(1 << 20, f),
                progress,
            )
            .await;
            if result.is_err() {
                // Leave no file that looks like a good restore.
                let _ = std::fs::remove_file(path);
            }
            result?
        }
        None => {
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            restore_item(&repo, &snap, None, out, progress).await?
        }
    };
    drop(display);
    if ctx.json() {
        print_json(&RestoreResult {
            id: &snap.id,
            source: &snap.snapshot.source,
            time: snap.snapshot.time,
            bytes: n,
            output: a.output.as_deref(),
        })?;
    }
    if !ctx.global.quiet {
        eprintln!(
            "restored {} from snapshot {}",
            human_bytes(n),
            snap.short_id()
        );
    }
    Ok(OK)
}
