//! `lifeboat demo`: the whole loop on a throwaway local PostgreSQL, with
//! nothing to configure, as named steps ([`steps`]): start a cluster from
//! the installed binaries (as the `postgres` user when run as root), load
//! the Kubernaut-like dataset (`lifeboat_postgres::demo_data`), run a
//! writer appending audit events ([`writer`]), back the database up into a
//! temporary repository (random passphrase, never shown), simulate the
//! seed's corruption scenario (a dropped audit partition, scrambled
//! remediation rows), restore with the writer quiesced, verify the facts
//! and the audit hash chain, and measure the time to recover and the
//! data-loss window.
//!
//! Everything lives in temporary directories removed when [`run`] returns,
//! fails, or its future is dropped (Ctrl-C in the CLI). The caller is told
//! each stage as it begins and each step's record as it completes
//! ([`Event`]), and gets the whole [`DemoOutcome`] at the end; the CLI
//! prints both.

mod steps;
mod writer;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lifeboat_postgres::demo_data::{ChainStatus, CorruptionReport, GenerateReport};
use lifeboat_postgres::facts::{FactDiff, Facts};
use lifeboat_repo::snapshot::SnapshotRef;

use crate::error::Result;
use steps::RestoreTarget;

/// The demo's stages, announced as each begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Throwaway cluster and the fixture.
    Cluster,
    /// The temporary repository.
    Repository,
    Backup,
    Corruption,
    /// Quiesced restore and verification.
    Restore,
}

/// What the demo tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Begin(Stage),
    ClusterStarted(&'a ClusterInfo),
    Loaded(&'a GenerateReport),
    BackedUp(&'a BackedUp),
    Corrupted(&'a Corruption),
    Restored(&'a Restored),
}

/// The throwaway cluster.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub major: u32,
    pub port: u16,
    /// Its temporary directory (removed at the end).
    pub dir: PathBuf,
}

/// The demo's snapshot.
#[derive(Debug, Clone)]
pub struct BackedUp {
    pub snapshot: SnapshotRef,
    /// The facts recorded in the dumped snapshot.
    pub facts: Facts,
    /// Rows of `public.audit_events` recorded.
    pub audit_events: i64,
    /// The `audit_chain_head` verification query's value.
    pub chain_head: Option<String>,
}

/// The simulated corruption.
#[derive(Debug, Clone)]
pub struct Corruption {
    pub report: CorruptionReport,
    /// The snapshot's facts that no longer hold.
    pub broken: Vec<FactDiff>,
    /// Age of the snapshot when the corruption happened: what a restore
    /// of it loses.
    pub data_loss_window: Duration,
}

/// The verified restore.
#[derive(Debug, Clone)]
pub struct Restored {
    /// What was checked (`Facts::checked_summary`); every fact held.
    pub facts_checked: String,
    /// The audit hash chain right after the restore (it verified).
    pub chain: ChainStatus,
    /// Quiesce, restore, verify, resume.
    pub time_to_recover: Duration,
}

/// The whole demo, every step's record and the final measurements.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub cluster: ClusterInfo,
    pub loaded: GenerateReport,
    pub backup: BackedUp,
    pub corruption: Corruption,
    pub restored: Restored,
    /// Audit events the writer appended during the demo.
    pub writer_appended_events: u64,
    /// The chain once the writer stopped, after writing into the restored
    /// database.
    pub chain_after: ChainStatus,
    /// The whole demo, cleanup included.
    pub duration: Duration,
}

/// Runs the demo, calling `on_event` as it goes. Fails (exit 1) when the
/// cluster cannot start (no server binaries, no temporary directory), a
/// step fails, or the restore does not verify.
pub async fn run(mut on_event: impl FnMut(Event<'_>)) -> Result<DemoOutcome> {
    let total = Instant::now();
    on_event(Event::Begin(Stage::Cluster));
    let (cluster, conn, info) = steps::start_cluster().await?;
    on_event(Event::ClusterStarted(&info));
    let loaded = steps::load_fixture(&conn).await?;
    on_event(Event::Loaded(&loaded));
    let writer = writer::Writer::start(&conn).await?;

    on_event(Event::Begin(Stage::Repository));
    let (dir, repo) = steps::create_repository().await?;

    on_event(Event::Begin(Stage::Backup));
    let source = steps::source(&conn, cluster.bin_dir());
    let backup = steps::back_up(&repo, &source).await?;
    on_event(Event::BackedUp(&backup));
    // Let the writer append past the snapshot: the data-loss window is real.
    tokio::time::sleep(Duration::from_millis(500)).await;

    on_event(Event::Begin(Stage::Corruption));
    let (admin, corruption) = steps::corrupt(&conn, &backup).await?;
    on_event(Event::Corrupted(&corruption));

    on_event(Event::Begin(Stage::Restore));
    let target = RestoreTarget {
        repo: &repo,
        source: &source,
        backup: &backup,
        admin: &admin,
        staging: dir.path(),
    };
    let (check, restored) = steps::restore_quiesced(target, &writer).await?;
    on_event(Event::Restored(&restored));
    let (writer_appended_events, chain_after) = steps::after_restore(writer, &check).await?;

    drop(check);
    drop(admin);
    cluster.stop();
    drop(dir);
    Ok(DemoOutcome {
        cluster: info,
        loaded,
        backup,
        corruption,
        restored,
        writer_appended_events,
        chain_after,
        duration: total.elapsed(),
    })
}
