//! `recover postgres`: its flags, the request to
//! `lifeboat_ops::physical::recover` (where the flow lives) and the printed
//! report (text, or `--json`). docs/physical.md, "Recovering a source to a
//! moment".

use clap::{Args, Subcommand};
use lifeboat_ops::physical::recover::{self as ops, RecoverRequest};
use lifeboat_repo::retention::parse_duration;

use crate::context::Ctx;
use crate::output::print_json;
use lifeboat_ops::error::{OK, Result, usage};

#[derive(Subcommand, Debug)]
pub enum RecoverCommand {
    /// Recover a source's server in place to just before a moment (base backup + archived WAL; the data directory replaced, the old one kept aside)
    Postgres(RecoverPostgresArgs),
}

#[derive(Args, Debug)]
pub struct RecoverPostgresArgs {
    /// A configured PostgreSQL source with postgres.pgdata (agent mode)
    #[arg(long)]
    pub source: String,
    /// Recover to just before this moment (RFC 3339, e.g. 2026-12-04T10:47:00Z); a commit at
    /// that moment is not included
    #[arg(long, value_name = "TIME")]
    pub before: String,
    /// Remove the data directories kept aside (this recovery's and earlier ones'),
    /// once recovered and verified
    #[arg(long)]
    pub drop_replaced: bool,
    /// How long recovery may run [default: 6h]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// How long to wait for the WAL up to now to reach the repository [default: 2m]
    #[arg(long, value_name = "DURATION")]
    pub archive_timeout: Option<String>,
    /// The cluster of the writers to quiesce (quiesce.deployments/statefulsets)
    #[command(flatten)]
    pub cluster: crate::cmd_kube::ClusterArgs,
}

fn duration(flag: &str, v: Option<&str>, default: u64) -> Result<std::time::Duration> {
    match v {
        Some(t) => parse_duration(t)
            .map_err(|e| usage(format!("{flag}: {e}")))?
            .to_std()
            .map_err(|_| usage(format!("{flag} must be positive"))),
        None => Ok(std::time::Duration::from_secs(default)),
    }
}

pub async fn run(ctx: &Ctx, c: RecoverCommand) -> Result<i32> {
    let RecoverCommand::Postgres(a) = c;
    let before = chrono::DateTime::parse_from_rfc3339(&a.before)
        .map_err(|e| {
            usage(format!(
                "--before {:?}: {e}; write it as RFC 3339, e.g. 2026-12-04T10:47:00Z",
                a.before
            ))
        })?
        .with_timezone(&chrono::Utc);
    let done = ops::recover(
        ctx,
        RecoverRequest {
            source: a.source,
            before,
            drop_replaced: a.drop_replaced,
            timeout: duration("--timeout", a.timeout.as_deref(), 6 * 3600)?,
            archive_timeout: duration("--archive-timeout", a.archive_timeout.as_deref(), 120)?,
            cluster: a.cluster.options(ctx),
        },
    )
    .await?;
    if ctx.json() {
        print_json(&done)?;
        return Ok(OK);
    }
    println!(
        "recovered source {} to just before {} from base backup {} and the archive: {}",
        done.source,
        done.before.to_rfc3339(),
        &done.snapshot[..8.min(done.snapshot.len())],
        done.reached
    );
    println!(
        "replayed up to {} (last commit {}), timeline {}; {} runs the recovered cluster",
        done.replay_lsn.as_deref().unwrap_or("?"),
        done.replay_time
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "none past the base backup".into()),
        done.timeline
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into()),
        done.pgdata.display()
    );
    for q in &done.queries {
        println!(
            "  query {}: {}",
            q.name,
            q.value.as_deref().unwrap_or("NULL")
        );
    }
    if done.dropped.is_empty() {
        println!(
            "the old data directory is kept in {} (remove it with --drop-replaced on a later recovery, or by hand)",
            done.replaced.display()
        );
    } else {
        for d in &done.dropped {
            println!("removed {}", d.display());
        }
    }
    println!(
        "writers: {}; RTO {:.1} s (writers stopped to writers back); RPO {} (the moment minus the last recovered commit); record {}",
        done.writers,
        done.rto_seconds,
        done.rpo_seconds
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "unknown (no commit replayed past the base backup)".into()),
        done.record
    );
    Ok(OK)
}
