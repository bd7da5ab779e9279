//! `lifeboat copy` (snapshots to a second repository) and `lifeboat restore
//! config` (the configuration a snapshot stored): flags, the call into
//! `lifeboat_ops::repo::{copy, stored_config}`, the printed lines and
//! `--json` documents. `docs/regions/copy.md`.

use std::path::PathBuf;

use clap::Args;
use lifeboat_ops::error::{OK, Result, usage};
use lifeboat_ops::repo::copy::{CopyRequest, OtherSecret};
use lifeboat_ops::repo::{copy, stored_config};
use lifeboat_repo::copy::{Filter, Mode};

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The target repository (a path, file:///path or s3://bucket/prefix):
    /// made with `lifeboat init --copy-params-from` (only missing blobs are
    /// sent) or any repository that receives copies from this one only
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Key file opening the target (mode 0600)
    #[arg(long, value_name = "FILE", env = "LIFEBOAT_TO_KEY_FILE")]
    pub to_key_file: Option<PathBuf>,
    /// File holding the target's passphrase (mode 0600); or set LIFEBOAT_TO_PASSWORD
    #[arg(long, value_name = "FILE", env = "LIFEBOAT_TO_PASSWORD_FILE")]
    pub to_password_file: Option<PathBuf>,
    /// Only snapshots of this source
    #[arg(long)]
    pub source: Option<String>,
    /// Only snapshots of this kind (postgres, kube, stream)
    #[arg(long)]
    pub kind: Option<String>,
    /// Only the N newest snapshots of each source (after the other filters)
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Only these snapshots (ids or unique prefixes)
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
}

pub async fn run(ctx: &Ctx, a: CopyArgs) -> Result<i32> {
    if a.latest == Some(0) {
        return Err(usage("--latest must be at least 1"));
    }
    let req = CopyRequest {
        to: a.to,
        to_secret: OtherSecret {
            key_file: a.to_key_file,
            password_file: a.to_password_file,
        },
        filter: Filter {
            source: a.source,
            kind: a.kind,
            latest: a.latest,
            ids: a.ids,
        },
    };
    let r = copy::run(ctx, req).await?;
    if ctx.json() {
        print_json(&r)?;
        return Ok(OK);
    }
    for s in &r.snapshots {
        if s.skipped {
            println!(
                "{} held already as {}",
                short(&s.source_id),
                short(&s.target_id)
            );
        } else {
            println!(
                "{} copied as {}: {} blobs, {} sent",
                short(&s.source_id),
                short(&s.target_id),
                s.blobs_sent,
                human_bytes(s.bytes_sent)
            );
        }
    }
    println!(
        "copied {} snapshot(s), {} held already, to {} ({}); {} objects read back and verified",
        r.copied,
        r.skipped,
        r.target.location,
        match r.mode {
            Mode::SameIds => "same blob ids",
            Mode::Rechunk => "re-chunked",
        },
        r.objects_verified
    );
    Ok(OK)
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

#[derive(Args, Debug)]
pub struct RestoreConfigArgs {
    /// Snapshot id (or unique prefix), or `latest`
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Only snapshots of this source (for `latest`)
    #[arg(long)]
    pub source: Option<String>,
    /// Write the configuration to FILE (created, mode 0600; must not exist) instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn restore_config(ctx: &Ctx, a: RestoreConfigArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let c = stored_config::read(&repo, &a.snapshot, a.source.as_deref()).await?;
    if let Some(path) = &a.output {
        write_new(path, &c.text)?;
        if ctx.json() {
            print_json(&serde_json::json!({
                "snapshot": c.snapshot, "time": c.time, "source": c.source, "output": path,
            }))?;
        } else {
            eprintln!(
                "wrote the configuration of snapshot {} ({}) to {}",
                short(&c.snapshot),
                c.time.format("%Y-%m-%d %H:%M:%S UTC"),
                path.display()
            );
        }
    } else if ctx.json() {
        print_json(&c)?;
    } else {
        print!("{}", c.text);
    }
    Ok(OK)
}

/// Creates `path` (mode 0600), refusing an existing file.
fn write_new(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            usage(format!(
                "cannot create {}: {e} (it must not exist)",
                path.display()
            ))
        })?;
    f.write_all(text.as_bytes())
        .map_err(|e| lifeboat_ops::Error::failure(format!("writing {}: {e}", path.display())))
}
