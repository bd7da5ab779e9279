//! `recover postgres`: its flags, the request to
//! `lifeboat_ops::physical::recover` (where the flow lives) and the printed
//! report (text, or `--json`). docs/physical.md, "Recovering a source to a
//! moment".

use clap::{Args, Subcommand};
use lifeboat_dr::status::human;
use lifeboat_ops::physical::recover::{self as ops, RecoverRequest};
use lifeboat_repo::retention::parse_duration;

use crate::context::Ctx;
use crate::output::print_json;
use lifeboat_ops::error::{OK, Result, usage};

#[derive(Subcommand, Debug)]
pub enum RecoverCommand {
    /// Recover a source to just before a moment (base backup + archived WAL): its whole server in place (the data directory replaced, the old one kept aside), or with --database only its database, through a side server
    Postgres(RecoverPostgresArgs),
    /// List the recovery records stored in the repository (oldest first): what was recovered, to
    /// which moment, the result, RTO and RPO, where the old data directory was kept
    List(RecoverListArgs),
}

#[derive(Args, Debug)]
pub struct RecoverListArgs {
    /// Only this source's recoveries
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

#[derive(Args, Debug)]
pub struct RecoverPostgresArgs {
    /// A configured PostgreSQL source (with postgres.pgdata for the in-place recovery: agent mode)
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
    /// Recover only this database (the source's own, named again): the cluster is recovered on a
    /// throwaway side server and the database restored into the source with restore postgres's
    /// steps; the server's other databases are untouched and it keeps running
    #[arg(long, value_name = "DB", conflicts_with = "drop_replaced")]
    pub database: Option<String>,
    /// With --database: the directory the side server's temporary data directory is created in
    /// (room for the base backup's files) [default: TMPDIR]
    #[arg(long, value_name = "DIR", requires = "database")]
    pub side_dir: Option<std::path::PathBuf>,
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
    let a = match c {
        RecoverCommand::Postgres(a) => a,
        RecoverCommand::List(a) => return list(ctx, a).await,
    };
    let before = chrono::DateTime::parse_from_rfc3339(&a.before)
        .map_err(|e| {
            usage(format!(
                "--before {:?}: {e}; write it as RFC 3339, e.g. 2026-12-04T10:47:00Z",
                a.before
            ))
        })?
        .with_timezone(&chrono::Utc);
    let req = RecoverRequest {
        source: a.source,
        before,
        drop_replaced: a.drop_replaced,
        timeout: duration("--timeout", a.timeout.as_deref(), 6 * 3600)?,
        archive_timeout: duration("--archive-timeout", a.archive_timeout.as_deref(), 120)?,
        cluster: a.cluster.options(ctx),
        database: a.database,
        side_dir: a.side_dir,
    };
    if req.database.is_some() {
        return database(ctx, req).await;
    }
    let done = ops::recover(ctx, req).await?;
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

/// `--database DB`: the one database through a side server.
async fn database(ctx: &Ctx, req: RecoverRequest) -> Result<i32> {
    let done = ops::recover_database(ctx, req).await?;
    if ctx.json() {
        print_json(&done)?;
        return Ok(OK);
    }
    println!(
        "recovered database {} of source {} to just before {} (base backup {} and the archive, \
         on a side server: {}); the server's other databases were not touched",
        done.database,
        done.source,
        done.before.to_rfc3339(),
        &done.snapshot[..8.min(done.snapshot.len())],
        done.reached
    );
    println!(
        "replayed up to {} (last commit {}); the database was dumped into snapshot {} and \
         restored into the source, verified",
        done.replay_lsn.as_deref().unwrap_or("?"),
        done.replay_time
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "none past the base backup".into()),
        &done.dump_snapshot[..8.min(done.dump_snapshot.len())]
    );
    for q in &done.queries {
        println!(
            "  query {}: {}",
            q.name,
            q.value.as_deref().unwrap_or("NULL")
        );
    }
    println!(
        "writers: {}; RTO {:.1} s (writers stopped to writers back; the side server took {:.1} s \
         before, while they ran); RPO {}; record {}",
        match done.writers {
            lifeboat_ops::postgres::restore::Writers::Resumed => "resumed",
            _ => "none configured",
        },
        done.rto_seconds,
        done.restore_seconds + done.recovery_seconds + done.dump_seconds,
        done.rpo_seconds
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "unknown (no commit replayed past the base backup)".into()),
        done.record
    );
    Ok(OK)
}

/// `recover list`: one line per recovery record, or the records as JSON.
async fn list(ctx: &Ctx, a: RecoverListArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let all = ops::list(&repo, a.source.as_deref()).await?;
    if ctx.json() {
        print_json(&all)?;
        return Ok(OK);
    }
    if all.is_empty() {
        println!(
            "no recoveries recorded{}; `lifeboat recover postgres --source NAME --before TIME` \
             records one",
            a.source
                .as_deref()
                .map(|s| format!(" for source {s}"))
                .unwrap_or_default()
        );
        return Ok(OK);
    }
    use crate::table::{Align::*, Table};
    let mut t = Table::new(&[
        ("id", Left),
        ("started (UTC)", Left),
        ("source", Left),
        ("what", Left),
        ("before (UTC)", Left),
        ("result", Left),
        ("RTO", Right),
        ("RPO", Right),
        ("timeline", Right),
        ("kept aside / failure", Left),
    ]);
    for r in &all {
        let rec = &r.record;
        let what = match (rec.mode.as_str(), rec.database.as_deref()) {
            ("database", Some(db)) => format!("database {db}"),
            ("replace", _) => "whole server".to_string(),
            (mode, _) => mode.to_string(),
        };
        let last = match (&rec.failure, &rec.replaced) {
            // One line per recovery: a multi-line reason joined.
            (Some(f), _) => f.replace('\n', " "),
            (None, Some(kept)) => kept.clone(),
            (None, None) => String::new(),
        };
        t.row(vec![
            r.id[..8.min(r.id.len())].to_string(),
            rec.started.format("%Y-%m-%d %H:%M:%S").to_string(),
            rec.source.clone(),
            what,
            rec.target.format("%Y-%m-%d %H:%M:%S").to_string(),
            if rec.ok { "ok" } else { "FAILED" }.to_string(),
            human(rec.rto_seconds),
            rec.rpo_seconds.map(human).unwrap_or_else(|| "?".into()),
            rec.timeline.map(|t| t.to_string()).unwrap_or_default(),
            last,
        ]);
    }
    print!("{}", t.render());
    Ok(OK)
}
