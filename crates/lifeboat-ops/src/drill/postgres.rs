//! The PostgreSQL part of a drill: restore the snapshot into a scratch
//! database (a given server, or a throwaway local cluster of the snapshot's
//! major version), verify every recorded fact, clean up.
//!
//! A given scratch database is first compared with the source by what both
//! servers say ([`check_scratch`]): the source's database itself is refused
//! always, a physical copy of it unless declared (`--scratch-is-copy`,
//! `drill.scratch_is_copy`), and an existing database holding objects the
//! drill did not put there is refused too. A database the drill creates is
//! marked ([`SCRATCH_MARK`], its comment) so that one left behind by a killed
//! drill is recognised, dropped and created afresh by the next.

use std::time::Instant;

use lifeboat_dr::record::DrillDifference;
use lifeboat_postgres::cluster::{ClusterOptions, TempCluster};
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::dump::{self, RestoreOptions};
use lifeboat_postgres::facts::{self, Facts};
use lifeboat_postgres::identity::{self, Relation};
use lifeboat_postgres::tools::{self, Discovery};
use lifeboat_repo::Repository;
use lifeboat_repo::snapshot::SnapshotRef;

use super::{Outcome, step};
use crate::error::{Context, Error, FAILURE, Kind, Result, USAGE, fail};
use crate::postgres::{conn_err, dump_err, facts_err, identity_err, tools_err};
use crate::report::human_bytes;

/// The comment a drill puts on the scratch database it creates.
pub const SCRATCH_MARK: &str = "lifeboat drill scratch database";

/// Where the scratch restore goes.
pub enum Scratch {
    /// A database on a server the operator named (`--scratch`, `drill.scratch`).
    Url {
        conn: ConnConfig,
        /// It exists, marked as a scratch database an earlier drill created
        /// and did not drop: dropped and created afresh.
        leftover: bool,
    },
    /// A throwaway local cluster, started for the drill and removed after it.
    Throwaway,
}

impl Scratch {
    /// A given database, else a throwaway cluster.
    pub fn new(url: Option<ConnConfig>) -> Self {
        match url {
            Some(conn) => Scratch::Url {
                conn,
                leftover: false,
            },
            None => Scratch::Throwaway,
        }
    }
}

/// Refuses a scratch database that is the source's database (same system
/// identifier and database OID: the source itself or a physical copy; a copy
/// only when `is_copy` says so, the very same running server never), and an
/// existing one that holds objects the drill did not put there. Nothing is
/// changed. `Ok(true)`: it is a scratch database an earlier drill left.
pub async fn check_scratch(
    source: &ConnConfig,
    scratch: &ConnConfig,
    is_copy: bool,
) -> Result<bool> {
    let shown = scratch.display_url();
    let (src, tgt) = tokio::join!(identity::read(source), identity::read(scratch));
    let tgt = tgt.map_err(|e| identity_err(e, &format!("the scratch database {shown}")))?;
    let src = src.map_err(|e| {
        fail(
            USAGE,
            format!(
                "cannot tell whether the scratch database {shown} is the source database {}: \
                 reading the source's identity failed: {e}. A drill asks both servers who they \
                 are before it restores with --clean; nothing was changed. Drill into a \
                 throwaway PostgreSQL (no --scratch or drill.scratch), or again when the source \
                 answers",
                source.display_url()
            ),
        )
    })?;
    let relation = identity::relation(&src, &tgt);
    match &relation {
        Relation::SameServer { .. } => {
            return Err(fail(
                USAGE,
                format!(
                    "the scratch database {shown} IS the source database {} (the same running \
                     server says {}): a drill restores with --clean and would replace it. \
                     Nothing was changed. Give a database name that does not exist (the drill \
                     creates it and drops it afterwards), or another server",
                    source.display_url(),
                    tgt.describe()
                ),
            ));
        }
        Relation::Copy { differs } if !is_copy => {
            return Err(fail(
                USAGE,
                format!(
                    "the scratch database {shown} is the source database {} or a physical copy \
                     of it ({}; {} differ, so it is not the running source server itself): a \
                     drill restores with --clean and would replace it. Nothing was changed. If \
                     it is a copy kept for drills (a standby promoted for them, a server rebuilt \
                     from a base backup), say so with --scratch-is-copy (config: \
                     drill.scratch_is_copy: true); otherwise give another database",
                    source.display_url(),
                    tgt.describe(),
                    differs.join(" and ")
                ),
            ));
        }
        // A declared copy of the source is full of the source's objects: the
        // drill replaces them, that is what the copy is for.
        Relation::Copy { .. } => return Ok(false),
        Relation::OtherDatabase | Relation::Unrelated => {}
    }
    if tgt.database_oid.is_none() {
        return Ok(false);
    }
    let client = scratch.connect().await.map_err(conn_err)?;
    let q = |e: &dyn std::fmt::Display| {
        fail(
            FAILURE,
            format!("looking at the scratch database {shown}: {e}"),
        )
    };
    let mark = identity::database_comment(&client)
        .await
        .map_err(|e| q(&lifeboat_postgres::conn::pg_message(&e)))?;
    if mark.as_deref() == Some(SCRATCH_MARK) {
        return Ok(true);
    }
    let contents = identity::user_objects(&client, 10)
        .await
        .map_err(|e| q(&lifeboat_postgres::conn::pg_message(&e)))?;
    if !contents.is_empty() {
        return Err(fail(
            USAGE,
            format!(
                "the scratch database {shown} exists and holds objects a drill did not put \
                 there: {}. A drill restores with --clean into its scratch database and would \
                 replace those of the same names; nothing was changed. Give a database name that \
                 does not exist (the drill creates it, marks it and drops it afterwards), an \
                 empty database, or drop this one",
                contents.listing()
            ),
        ));
    }
    Ok(false)
}

/// Restores and verifies; fills `out` as it goes. An error is a failed
/// drill (its message becomes the record's failure). The steps: prepare the
/// scratch target, restore, verify, clean up (always, once the target was
/// prepared).
pub async fn drill(
    repo: &Repository,
    snap: &SnapshotRef,
    facts: &Facts,
    discovery: &Discovery,
    scratch: Scratch,
    jobs: u32,
    out: &mut Outcome,
) -> Result<()> {
    let major = tools::server_major(facts.server_version_num);
    let pg_tools = tools::discover(major, discovery).map_err(tools_err)?;
    let target = prepare(scratch, facts, &pg_tools, major, out).await?;
    let restored = restore(repo, snap, facts, &pg_tools, &target.conn, jobs, out).await;
    let verified = match restored {
        Ok(()) => verify(&target.conn, facts, out).await,
        Err(e) => Err(e),
    };
    out.rto_seconds = Some(out.started.elapsed().as_secs_f64());
    let t = Instant::now();
    let detail = cleanup(target).await;
    out.steps.push(step("cleanup", true, t, detail));
    verified
}

/// The scratch target, ready to restore into, and what to undo afterwards.
struct Target {
    conn: ConnConfig,
    /// The throwaway cluster; kept (and so its directory) alive until the
    /// drill is over.
    cluster: Option<TempCluster>,
    /// The drill created the given scratch database: it drops it.
    created_db: bool,
}

/// The "scratch" step: a given database (dropped first when an earlier drill
/// left it, created and marked when missing) or a throwaway cluster.
async fn prepare(
    scratch: Scratch,
    facts: &Facts,
    pg_tools: &tools::PgTools,
    major: u32,
    out: &mut Outcome,
) -> Result<Target> {
    let t = Instant::now();
    let target = match scratch {
        Scratch::Url { conn, leftover } => given_database(conn, leftover, out).await?,
        Scratch::Throwaway => throwaway_cluster(facts, pg_tools, major, out).await?,
    };
    out.steps.push(step(
        "scratch",
        true,
        t,
        format!("restoring into {}", out.target),
    ));
    Ok(target)
}

async fn given_database(conn: ConnConfig, leftover: bool, out: &mut Outcome) -> Result<Target> {
    if leftover {
        // Half restored by a drill that did not finish: start afresh.
        drop_database(&conn).await?;
    }
    let created_db = dump::create_database_if_missing(&conn, "postgres")
        .await
        .map_err(dump_err)?;
    if created_db {
        mark_scratch(&conn).await?;
    }
    out.target = format!("{}{}", conn.display_url(), given_note(created_db, leftover));
    Ok(Target {
        conn,
        cluster: None,
        created_db,
    })
}

/// What the target line adds about a given scratch database.
fn given_note(created: bool, leftover: bool) -> &'static str {
    match (created, leftover) {
        (true, true) => " (created again: an earlier drill had left it)",
        (true, false) => " (created)",
        _ => "",
    }
}

async fn throwaway_cluster(
    facts: &Facts,
    pg_tools: &tools::PgTools,
    major: u32,
    out: &mut Outcome,
) -> Result<Target> {
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
    Ok(Target {
        conn,
        cluster: Some(c),
        created_db: false,
    })
}

/// The "restore" step: the same restore path as `restore postgres` of this
/// source, with its restore.jobs (staged, large tables' rows spread over the
/// jobs). The scratch server does not have the source's roles: objects are
/// owned by the restoring user and grants are skipped.
async fn restore(
    repo: &Repository,
    snap: &SnapshotRef,
    facts: &Facts,
    pg_tools: &tools::PgTools,
    target: &ConnConfig,
    jobs: u32,
    out: &mut Outcome,
) -> Result<()> {
    let t = Instant::now();
    let opts = RestoreOptions {
        no_owner: true,
        no_privileges: true,
        jobs,
        ..RestoreOptions::default()
    };
    let staging = std::env::temp_dir();
    let restored = crate::postgres::restore_snapshot(
        repo,
        snap,
        facts,
        pg_tools,
        target,
        &opts,
        &staging,
        &crate::report::Silent,
    )
    .await;
    match restored {
        Ok(o) => {
            let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
            let detail = restore_detail(size, snap.short_id(), jobs, &o.split_tables);
            out.steps.push(step("restore", true, t, detail));
            Ok(())
        }
        Err(e) => {
            out.steps.push(step("restore", false, t, e.message.clone()));
            Err(e)
        }
    }
}

/// What the restore step says it did.
fn restore_detail(size: u64, snapshot: &str, jobs: u32, split_tables: &[String]) -> String {
    format!(
        "pg_restore of {} from snapshot {snapshot}, {}{}",
        human_bytes(size),
        if jobs > 1 {
            format!("{jobs} jobs (staged)")
        } else {
            "1 job (streamed)".to_string()
        },
        if split_tables.is_empty() {
            String::new()
        } else {
            format!("; rows of {} spread over the jobs", split_tables.join(", "))
        }
    )
}

/// The "cleanup" step: stops the throwaway cluster, or drops the scratch
/// database the drill created, or leaves one that existed before. Says what
/// was done; a failure to drop does not fail the drill (the data was
/// already proven restorable).
async fn cleanup(target: Target) -> String {
    let Target {
        conn,
        cluster,
        created_db,
    } = target;
    match cluster {
        Some(c) => {
            tokio::task::spawn_blocking(move || c.stop()).await.ok();
            "the throwaway cluster was stopped and removed".to_string()
        }
        None if created_db => match drop_database(&conn).await {
            Ok(()) => format!("dropped the scratch database {}", conn.display_url()),
            Err(e) => format!(
                "could not drop the scratch database {}: {e}",
                conn.display_url()
            ),
        },
        None => format!(
            "left {} in place (it existed before the drill)",
            conn.display_url()
        ),
    }
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
                "every fact matches the snapshot: {}",
                facts.checked_summary()
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
    Err(Error::failure(msg))
}

/// Marks a scratch database the drill created ([`SCRATCH_MARK`]).
async fn mark_scratch(target: &ConnConfig) -> Result<()> {
    let client = target.connect().await.map_err(conn_err)?;
    client
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS '{SCRATCH_MARK}'",
            facts::quote_ident(&target.dbname)
        ))
        .await
        .map_err(|e| {
            Error::from_std(Kind::Failure, &e).context(format!(
                "marking {} as a drill's scratch database",
                target.display_url()
            ))
        })
}

/// Drops a scratch database the drill created (connected to `postgres`).
async fn drop_database(target: &ConnConfig) -> Result<()> {
    let admin = target.with_dbname("postgres");
    let client = admin.connect().await.map_err(conn_err)?;
    let name = facts::quote_ident(&target.dbname);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map_err(|e| {
            Error::from_std(Kind::Failure, &e).context(format!("dropping {}", target.display_url()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_line_says_whether_the_drill_created_the_scratch_database() {
        for (created, leftover, note) in [
            (true, true, " (created again: an earlier drill had left it)"),
            (true, false, " (created)"),
            (false, false, ""),
            (false, true, ""),
        ] {
            assert_eq!(given_note(created, leftover), note, "{created} {leftover}");
        }
    }

    #[test]
    fn the_restore_step_names_size_snapshot_jobs_and_split_tables() {
        assert_eq!(
            restore_detail(2048, "ab12cd34", 1, &[]),
            "pg_restore of 2.0 KiB from snapshot ab12cd34, 1 job (streamed)"
        );
        assert_eq!(
            restore_detail(
                10,
                "ab12cd34",
                4,
                &["public.orders".into(), "public.items".into()]
            ),
            "pg_restore of 10 B from snapshot ab12cd34, 4 jobs (staged); rows of \
             public.orders, public.items spread over the jobs"
        );
    }
}
