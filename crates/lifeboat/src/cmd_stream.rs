//! `backup stream` and `restore stream`: any bytes in, the same bytes out.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::restore_item;
use serde::Serialize;

use crate::context::Ctx;
use crate::exit::{OK, usage};
use crate::output::{human_bytes, print_json};
use crate::progress;

#[derive(Args, Debug)]
pub struct BackupStreamArgs {
    /// Name of the stream; it becomes the snapshot's source
    #[arg(long)]
    pub name: String,
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
    if a.name.trim().is_empty() {
        return Err(usage("--name must not be empty"));
    }
    let repo = ctx.open().await?;
    let progress = Arc::new(Progress::default());
    let mut session = BackupSession::start(&repo, Arc::clone(&progress)).await?;
    let display = progress::start(Arc::clone(&progress), "backup", ctx.progress_mode(), true);
    let stdin = std::io::stdin();
    if let Err(e) = session.add_stream("stdin", stdin).await {
        session.abort().await;
        return Err(e.into());
    }
    let snap = session
        .commit(SnapshotMeta {
            source: a.name.clone(),
            kind: "stream".into(),
            tags: a.tags,
            facts: serde_json::Value::Null,
        })
        .await?;
    drop(display);
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
    let display = progress::start(Arc::clone(&progress), "restore", ctx.progress_mode(), false);
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
