//! The PostgreSQL part of a drill: restore the snapshot into a scratch
//! database (a given server, or a throwaway local cluster of the snapshot's
//! major version), verify every recorded fact, clean up.

use std::time::Instant;

use anyhow::{Context, Result};
use lifeboat_dr::record::DrillDifference;
use lifeboat_postgres::cluster::{ClusterOptions, TempCluster};
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::dump::{self, RestoreOptions};
use lifeboat_postgres::facts::{self, Facts};
use lifeboat_postgres::tools::{self, Discovery};
use lifeboat_repo::Repository;
use lifeboat_repo::snapshot::SnapshotRef;

use super::{Outcome, step};
use crate::cmd_postgres::{conn_err, facts_err, tools_err};
use crate::progress;

/// Where the scratch restore goes.
pub enum Scratch {
    /// A database on a server the operator named (`--scratch`, `drill.scratch`).
    Url(ConnConfig),
    /// A throwaway local cluster, started for the drill and removed after it.
    Throwaway,
}

/// Restores and verifies; fills `out` as it goes. An error is a failed
/// drill (its message becomes the record's failure).
pub async fn drill(
    repo: &Repository,
    snap: &SnapshotRef,
    facts: &Facts,
    discovery: &Discovery,
    scratch: Scratch,
    out: &mut Outcome,
) -> Result<()> {
    let major = tools::server_major(facts.server_version_num);
    let pg_tools = tools::discover(major, discovery).map_err(tools_err)?;
    // Keep the cluster (and so its directory) alive until the drill is over.
    let mut cluster: Option<TempCluster> = None;
    let mut created_db = false;
    let t = Instant::now();
    let target = match scratch {
        Scratch::Url(c) => {
            created_db = dump::create_database_if_missing(&c, "postgres")
                .await
                .map_err(crate::cmd_postgres::dump_err)?;
            out.target = format!(
                "{}{}",
                c.display_url(),
                if created_db { " (created)" } else { "" }
            );
            c
        }
        Scratch::Throwaway => {
            let opts = ClusterOptions {
                // The server binaries beside the matching pg_restore; else
                // the newest installed server (a newer server reads older dumps).
                bin_dir: Some(pg_tools.dir.clone()).filter(|d| d.join("initdb").exists()),
                ..ClusterOptions::default()
            };
            let c = tokio::task::spawn_blocking(move || TempCluster::start_with(opts))
                .await?
                .with_context(|| {
                    format!(
                        "starting a throwaway PostgreSQL {major} for the drill (install the \
                         postgresql-{major} server package, or pass --scratch URL)"
                    )
                })?;
            // Same database name as the source: verification queries such
            // as current_database() must see what the backup saw.
            let conn = c.create_database(&facts.database).await?;
            out.target = format!("throwaway PostgreSQL {major} (127.0.0.1:{})", c.port());
            cluster = Some(c);
            conn
        }
    };
    out.steps.push(step(
        "scratch",
        true,
        t,
        format!("restoring into {}", out.target),
    ));

    let t = Instant::now();
    // The scratch server does not have the source's roles: objects are
    // owned by the restoring user and grants are skipped.
    let opts = RestoreOptions {
        no_owner: true,
        no_privileges: true,
        ..RestoreOptions::default()
    };
    let staging = std::env::temp_dir();
    let restored = crate::cmd_postgres::restore_archive(
        repo,
        snap,
        &pg_tools,
        &target,
        &opts,
        &staging,
        progress::Mode::Off,
    )
    .await;
    let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
    match &restored {
        Ok(_) => out.steps.push(step(
            "restore",
            true,
            t,
            format!(
                "pg_restore of {} from snapshot {}",
                crate::output::human_bytes(size),
                snap.short_id()
            ),
        )),
        Err(e) => out.steps.push(step("restore", false, t, format!("{e:#}"))),
    }
    let verified = match restored {
        Ok(_) => verify(&target, facts, out).await,
        Err(e) => Err(e),
    };
    out.rto_seconds = Some(out.started.elapsed().as_secs_f64());

    let t = Instant::now();
    let cleanup = match cluster {
        Some(c) => {
            tokio::task::spawn_blocking(move || c.stop()).await.ok();
            "the throwaway cluster was stopped and removed".to_string()
        }
        None if created_db => match drop_database(&target).await {
            Ok(()) => format!("dropped the scratch database {}", target.display_url()),
            Err(e) => format!(
                "could not drop the scratch database {}: {e:#}",
                target.display_url()
            ),
        },
        None => format!(
            "left {} in place (it existed before the drill)",
            target.display_url()
        ),
    };
    out.steps.push(step("cleanup", true, t, cleanup));
    verified
}

async fn verify(target: &ConnConfig, facts: &Facts, out: &mut Outcome) -> Result<()> {
    let t = Instant::now();
    let mut client = target.connect().await.map_err(conn_err)?;
    let diffs = facts::verify(facts, &mut client).await.map_err(facts_err)?;
    if diffs.is_empty() {
        out.steps.push(step(
            "verify",
            true,
            t,
            format!(
                "{} tables' row counts and {} verification queries match the snapshot",
                facts.tables.len(),
                facts.queries.len()
            ),
        ));
        return Ok(());
    }
    out.differences = diffs
        .iter()
        .map(|d| DrillDifference {
            fact: d.subject.clone(),
            expected: d.expected.clone(),
            actual: d.actual.clone(),
        })
        .collect();
    let listed: Vec<String> = diffs
        .iter()
        .take(5)
        .map(|d| format!("{} (expected {}, got {})", d.subject, d.expected, d.actual))
        .collect();
    let msg = format!(
        "{} fact(s) differ after the restore: {}{}",
        diffs.len(),
        listed.join("; "),
        if diffs.len() > 5 { "; …" } else { "" }
    );
    out.steps.push(step("verify", false, t, msg.clone()));
    Err(anyhow::anyhow!(msg))
}

/// Drops a scratch database the drill created (connected to `postgres`).
async fn drop_database(target: &ConnConfig) -> Result<()> {
    let admin = target.with_dbname("postgres");
    let client = admin.connect().await.map_err(conn_err)?;
    let name = facts::quote_ident(&target.dbname);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping {}", target.display_url()))?;
    Ok(())
}
