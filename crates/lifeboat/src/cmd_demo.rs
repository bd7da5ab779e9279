//! `lifeboat demo`: the whole loop on a throwaway local PostgreSQL, with nothing
//! to configure. Starts a cluster from the installed binaries (as the `postgres`
//! user when run as root), loads a small Kubernaut-like database, runs a writer
//! appending audit events, backs the database up into a temporary repository
//! (random passphrase, never shown), simulates the seed's corruption scenario
//! (a dropped audit partition, scrambled remediation rows), restores with the
//! writer quiesced, verifies the facts and the audit hash chain, and reports
//! the measured time to recover and the data-loss window. Everything lives in
//! temporary directories that are removed at the end, also on Ctrl-C.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::demo_data::{self as fixture, FixtureSpec};
use lifeboat_postgres::facts;
use lifeboat_postgres::tools::{self, Discovery};
use lifeboat_repo::repo::InitOptions;
use lifeboat_repo::storage::object::{S3Settings, open_url_create};
use lifeboat_repo::{Repository, Secret};

use crate::context::Ctx;
use crate::exit::{INTERRUPTED, OK};
use crate::output::{human_bytes, print_json};
use crate::quiesce::{BoxFuture, Quiesced, Quiescer};
use lifeboat_ops::postgres::{PgSource, backup_database, facts_err, restore_archive, tools_err};
use lifeboat_ops::report::Silent;

#[derive(Args, Debug)]
pub struct DemoArgs {}

pub async fn run(ctx: &Ctx, _a: DemoArgs) -> Result<i32> {
    tokio::select! {
        r = demo(ctx) => r,
        _ = tokio::signal::ctrl_c() => {
            Err(crate::exit::fail(
                INTERRUPTED,
                "interrupted: the throwaway PostgreSQL is stopped and the demo's files are removed",
            ))
        }
    }
}

/// The demo's writer: an in-process task appending audit events, paused by the
/// quiescer like a real writer Deployment would be scaled down.
struct DemoWriter {
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
}

impl Quiescer for DemoWriter {
    fn describe(&self) -> String {
        "the demo's audit writer".into()
    }
    fn stop(&mut self) -> BoxFuture<'_, lifeboat_ops::Result<()>> {
        Box::pin(async move {
            self.idle.store(false, Ordering::SeqCst);
            self.paused.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !self.idle.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    lifeboat_ops::bail!("the demo writer did not stop within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        })
    }
    fn resume(&mut self) -> BoxFuture<'_, lifeboat_ops::Result<()>> {
        self.paused.store(false, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn manual_resume_hint(&self) -> String {
        "nothing to do (the demo's writer ends with the demo)".into()
    }
}

fn random_passphrase() -> Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Connects and compares the database with a snapshot's facts; the
/// connection is returned for further checks (the hash chain).
async fn differences(
    conn: &lifeboat_postgres::ConnConfig,
    recorded: &facts::Facts,
) -> Result<(lifeboat_postgres::Client, Vec<facts::FactDiff>)> {
    let mut client = conn
        .connect()
        .await
        .map_err(lifeboat_ops::postgres::conn_err)?;
    let diffs = facts::verify(recorded, &mut client)
        .await
        .map_err(facts_err)?;
    Ok((client, diffs))
}

fn step(quiet: bool, s: impl AsRef<str>) {
    if !quiet {
        println!("{}", s.as_ref());
    }
}

async fn demo(ctx: &Ctx) -> Result<i32> {
    let quiet = ctx.global.quiet;
    let total = Instant::now();
    step(
        quiet,
        "Lifeboat demo: back up a Kubernaut-like database, corrupt it, restore it, verify it.",
    );
    step(quiet, "[1/6] starting a throwaway PostgreSQL");
    let cluster = TempCluster::start().context(
        "starting a throwaway PostgreSQL (the demo needs the server binaries: apt-get install postgresql)",
    )?;
    step(
        quiet,
        format!(
            "      PostgreSQL {} on 127.0.0.1:{} in {}",
            cluster.major(),
            cluster.port(),
            cluster.dir().display()
        ),
    );
    let conn = cluster
        .create_database("kubernaut")
        .await
        .context("creating the demo database")?;
    let gen_report = fixture::generate(&conn, &FixtureSpec::tiny())
        .await
        .context("loading the Kubernaut-like data")?;
    step(
        quiet,
        format!(
            "      loaded {} audit events in {} monthly partitions (hash-chained), {} embeddings, {} remediations ({})",
            gen_report.audit_events,
            gen_report.partitions.len(),
            gen_report.embeddings,
            gen_report.remediations,
            human_bytes(gen_report.database_size_bytes.max(0) as u64)
        ),
    );

    // A writer appending audit events, as Kubernaut's data-storage service would.
    let paused = Arc::new(AtomicBool::new(false));
    let idle = Arc::new(AtomicBool::new(false));
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer_client = conn
        .connect()
        .await
        .map_err(lifeboat_ops::postgres::conn_err)?;
    let writer = {
        let (paused, idle, stop) = (paused.clone(), idle.clone(), stop_writer.clone());
        tokio::spawn(async move {
            let mut written = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if paused.load(Ordering::SeqCst) {
                    idle.store(true, Ordering::SeqCst);
                } else if fixture::append_audit_events(&writer_client, 2)
                    .await
                    .is_ok()
                {
                    written += 2;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            written
        })
    };

    step(
        quiet,
        "[2/6] creating a repository in a temporary directory (random passphrase)",
    );
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = dir.path().join("repo").display().to_string();
    let storage = open_url_create(&url, &S3Settings::default())?;
    let repo = Repository::init(
        storage,
        &Secret::Passphrase(random_passphrase()?),
        InitOptions::default(),
    )
    .await?;

    step(
        quiet,
        "[3/6] backing up (pg_dump streamed into the repository, facts taken in the same snapshot)",
    );
    let source = PgSource {
        name: "kubernaut-db".into(),
        conn: conn.clone(),
        discovery: Discovery {
            configured_dir: Some(cluster.bin_dir().to_path_buf()),
            ..Discovery::default()
        },
        queries: fixture::kubernaut_verification_queries(),
        config: None,
    };
    let done = backup_database(&repo, &source, &[], false, vec!["demo".into()], &Silent)
        .await
        .map_err(lifeboat_ops::Error::from)?;
    let audit_rows = done.facts.rows_of("public", "audit_events").unwrap_or(0);
    step(
        quiet,
        format!(
            "      snapshot {}: {} dump, {} stored, {} tables, {audit_rows} audit events, chain head {}",
            done.snap.short_id(),
            human_bytes(done.snap.snapshot.stats.bytes_read),
            human_bytes(done.snap.snapshot.stats.bytes_stored),
            done.facts.tables.len(),
            done.facts
                .queries
                .iter()
                .find(|q| q.name == "audit_chain_head")
                .and_then(|q| q.value.as_deref())
                .map(|h| &h[..h.len().min(12)])
                .unwrap_or("-")
        ),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    step(
        quiet,
        "[4/6] simulating the seed's corruption: an audit partition dropped, remediation rows scrambled",
    );
    let admin = conn
        .connect()
        .await
        .map_err(lifeboat_ops::postgres::conn_err)?;
    let corrupted_at = chrono::Utc::now();
    let corruption = fixture::corrupt(&admin)
        .await
        .context("corrupting the demo database")?;
    let loss_window = (corrupted_at - done.facts.taken_at)
        .to_std()
        .unwrap_or_default();
    let (_, diffs) = differences(&conn, &done.facts).await?;
    let broken_facts = diffs.len();
    step(
        quiet,
        format!(
            "      dropped {} ({} events), scrambled {} remediation rows; {} facts no longer hold:",
            corruption.dropped_partition.as_deref().unwrap_or("-"),
            corruption.dropped_events,
            corruption.scrambled_rows,
            diffs.len()
        ),
    );
    if !quiet {
        for l in facts::diff_table(&diffs).lines() {
            println!("        {l}");
        }
    }

    step(
        quiet,
        "[5/6] restoring: writer quiesced, pg_restore --clean from the repository, facts verified",
    );
    let started = Instant::now();
    let guard = Quiesced::stop(Box::new(DemoWriter {
        paused: paused.clone(),
        idle: idle.clone(),
    }))
    .await?;
    let server = admin
        .query_one("SELECT current_setting('server_version_num')::int8", &[])
        .await
        .context("reading the server version")?;
    let pg_tools = tools::discover(tools::server_major(server.get(0)), &source.discovery)
        .map_err(tools_err)?;
    restore_archive(
        &repo,
        &done.snap,
        &pg_tools,
        &conn,
        &lifeboat_postgres::dump::RestoreOptions::default(),
        dir.path(),
        &Silent,
    )
    .await?;
    let (check, diffs) = differences(&conn, &done.facts).await?;
    let chain = fixture::verify_hash_chain(&check)
        .await
        .context("verifying the hash chain")?;
    if !diffs.is_empty() || !chain.is_ok() {
        let _ = guard.leave_down();
        bail!(
            "the demo's restore did not verify ({} differences, {} broken chain links):\n{}",
            diffs.len(),
            chain.broken,
            facts::diff_table(&diffs)
        );
    }
    guard.resume().await?;
    let rto = started.elapsed();
    step(
        quiet,
        format!(
            "      every fact holds ({}); hash chain verifies ({} events); writer resumed",
            done.facts.checked_summary(),
            chain.events
        ),
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_writer.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap_or(0);
    let chain_after = fixture::verify_hash_chain(&check)
        .await
        .context("verifying the hash chain")?;

    step(quiet, "[6/6] result");
    step(
        quiet,
        format!(
            "      time to recover (quiesce, restore, verify, resume): {:.1} s",
            rto.as_secs_f64()
        ),
    );
    step(
        quiet,
        format!(
            "      data-loss window: {:.1} s (age of the snapshot when the corruption happened; \
             with hourly backups at most 1 h)",
            loss_window.as_secs_f64()
        ),
    );
    step(
        quiet,
        format!(
            "      the writer appended {written} audit events during the demo; after the restore the chain still verifies ({} events, {} broken)",
            chain_after.events, chain_after.broken
        ),
    );
    drop(check);
    drop(admin);
    cluster.stop();
    drop(dir);
    step(
        quiet,
        format!(
            "done in {:.1} s; the throwaway PostgreSQL and the repository were removed",
            total.elapsed().as_secs_f64()
        ),
    );
    if ctx.json() {
        print_json(&serde_json::json!({
            "snapshot": done.snap.id,
            "tables": done.facts.tables.len(),
            "queries": done.facts.queries.len(),
            "facts_broken_by_corruption": broken_facts,
            "restored_and_verified": true,
            "hash_chain_events": chain_after.events,
            "hash_chain_broken": chain_after.broken,
            "writer_appended_events": written,
            "time_to_recover_seconds": rto.as_secs_f64(),
            "data_loss_window_seconds": loss_window.as_secs_f64(),
            "duration_seconds": total.elapsed().as_secs_f64(),
        }))?;
    }
    Ok(OK)
}
