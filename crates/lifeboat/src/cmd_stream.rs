//! `backup stream` and `restore stream`: any bytes in, the same bytes out.
//! Their flags, the requests they make of the service layer
//! (`lifeboat_ops::stream`, where the flows live) and how their results are
//! printed. What may go where is decided here: no binary data on a terminal,
//! none on the standard output that carries `--json`'s document.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use lifeboat_ops::error::{OK, Result, usage};
use lifeboat_ops::stream::{self as ops, BackupFrom, BackupRequest, Output, RestoreRequest};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};

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

impl BackupStreamArgs {
    fn request(self) -> Result<BackupRequest> {
        let from = match (self.name, self.source) {
            (Some(n), _) => BackupFrom::Stdin(n),
            (None, Some(s)) => BackupFrom::Source(s),
            (None, None) => return Err(usage("give --name NAME or --source NAME")),
        };
        Ok(BackupRequest {
            from,
            tags: self.tags,
        })
    }
}

pub async fn backup(ctx: &Ctx, a: BackupStreamArgs) -> Result<i32> {
    let snap = ops::backup(ctx, a.request()?).await?;
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
    let req = RestoreRequest {
        snapshot: a.snapshot,
        name: a.name,
        output: a.output.clone().map_or(Output::Stdout, Output::File),
    };
    let done = ops::restore(ctx, req).await?;
    if ctx.json() {
        print_json(&RestoreResult {
            id: &done.snap.id,
            source: &done.snap.snapshot.source,
            time: done.snap.snapshot.time,
            bytes: done.bytes,
            output: a.output.as_deref(),
        })?;
    }
    if !ctx.global.quiet {
        eprintln!(
            "restored {} from snapshot {}",
            human_bytes(done.bytes),
            done.snap.short_id()
        );
    }
    Ok(OK)
}
