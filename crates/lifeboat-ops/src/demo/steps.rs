//! The demo's steps, in the order [`super::run`] calls them. Each returns
//! what it made (a cluster, a repository, a snapshot, a client) and the
//! typed record the caller is shown.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_postgres::demo_data::{self as fixture, FixtureError, FixtureSpec, GenerateReport};
use lifeboat_postgres::dump::RestoreOptions;
use lifeboat_postgres::facts::{self, FactDiff, Facts};
use lifeboat_postgres::tools::{self, Discovery};
use lifeboat_postgres::{Client, ConnConfig, TempCluster};
use lifeboat_repo::repo::InitOptions;
use lifeboat_repo::storage::object::{S3Settings, open_url_create};
use lifeboat_repo::{Repository, Secret};
use tempfile::TempDir;

use super::writer::Writer;
use super::{BackedUp, ClusterInfo, Corruption, Restored};
use crate::error::{Context, Error, Kind, Result};
use crate::postgres::{PgSource, backup_database, conn_err, facts_err, restore_archive, tools_err};
use crate::quiesce::Quiesced;
use crate::report::Silent;

/// The demo's database and its source name in the repository.
const DATABASE: &str = "kubernaut";
const SOURCE: &str = "kubernaut-db";

/// A fixture failure, saying what was being done (exit 1).
fn fixture_err(what: &'static str) -> impl FnOnce(FixtureError) -> Error {
    move |e| Error::from_std(Kind::Failure, &e).context(what)
}

/// Step "throwaway cluster": a PostgreSQL from the installed binaries (as
/// the `postgres` user when run as root) with an empty demo database.
pub async fn start_cluster() -> Result<(TempCluster, ConnConfig, ClusterInfo)> {
    let cluster = TempCluster::start().context(
        "starting a throwaway PostgreSQL (the demo needs the server binaries: apt-get install postgresql)",
    )?;
    let info = ClusterInfo {
        major: cluster.major(),
        port: cluster.port(),
        dir: cluster.dir().to_path_buf(),
    };
    let conn = cluster
        .create_database(DATABASE)
        .await
        .context("creating the demo database")?;
    Ok((cluster, conn, info))
}

/// Step "fixture": the Kubernaut-like dataset (`lifeboat_postgres::demo_data`).
pub async fn load_fixture(conn: &ConnConfig) -> Result<GenerateReport> {
    fixture::generate(conn, &FixtureSpec::tiny())
        .await
        .map_err(fixture_err("loading the Kubernaut-like data"))
}

/// 32 random bytes, hex: the throwaway repository's passphrase, never shown.
/// (Read from the kernel's generator: one read needs no crate.)
fn random_passphrase() -> Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Step "repository": a new repository in a temporary directory (removed
/// when the returned directory is dropped), with a random passphrase.
pub async fn create_repository() -> Result<(TempDir, Repository)> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = dir.path().join("repo").display().to_string();
    let storage = open_url_create(&url, &S3Settings::default())?;
    let repo = Repository::init(
        storage,
        &Secret::Passphrase(random_passphrase()?),
        InitOptions::default(),
    )
    .await?;
    Ok((dir, repo))
}

/// The demo database as a source: the cluster's own client tools, the
/// Kubernaut verification queries (the audit chain's head among them).
pub fn source(conn: &ConnConfig, bin_dir: &Path) -> PgSource {
    PgSource {
        name: SOURCE.into(),
        conn: conn.clone(),
        discovery: Discovery {
            configured_dir: Some(bin_dir.to_path_buf()),
            ..Discovery::default()
        },
        queries: fixture::kubernaut_verification_queries(),
        config: None,
    }
}

/// Step "backup": pg_dump streamed into the repository, facts taken in the
/// same snapshot (the production path, `backup_database`).
pub async fn back_up(repo: &Repository, source: &PgSource) -> Result<BackedUp> {
    let done = backup_database(repo, source, &[], false, vec!["demo".into()], &Silent).await?;
    let audit_events = done.facts.rows_of("public", "audit_events").unwrap_or(0);
    let chain_head = done
        .facts
        .queries
        .iter()
        .find(|q| q.name == "audit_chain_head")
        .and_then(|q| q.value.clone());
    Ok(BackedUp {
        snapshot: done.snap,
        facts: done.facts,
        audit_events,
        chain_head,
    })
}

/// Connects and compares the database with a snapshot's facts; the
/// connection is returned for further checks (the hash chain).
async fn differences(conn: &ConnConfig, recorded: &Facts) -> Result<(Client, Vec<FactDiff>)> {
    let mut client = conn.connect().await.map_err(conn_err)?;
    let diffs = facts::verify(recorded, &mut client)
        .await
        .map_err(facts_err)?;
    Ok((client, diffs))
}

/// Step "corruption": the seed's scenario (an audit partition dropped,
/// remediation rows scrambled), then which of the snapshot's facts no
/// longer hold. Returns the admin connection (the restore reads the
/// server's version on it).
pub async fn corrupt(conn: &ConnConfig, backup: &BackedUp) -> Result<(Client, Corruption)> {
    let admin = conn.connect().await.map_err(conn_err)?;
    let corrupted_at = chrono::Utc::now();
    let report = fixture::corrupt(&admin)
        .await
        .map_err(fixture_err("corrupting the demo database"))?;
    let data_loss_window = (corrupted_at - backup.facts.taken_at)
        .to_std()
        .unwrap_or_default();
    let (_, broken) = differences(conn, &backup.facts).await?;
    Ok((
        admin,
        Corruption {
            report,
            broken,
            data_loss_window,
        },
    ))
}

/// What [`restore_quiesced`] needs besides the writer.
pub struct RestoreTarget<'a> {
    pub repo: &'a Repository,
    pub source: &'a PgSource,
    pub backup: &'a BackedUp,
    /// The admin connection, for the server's version.
    pub admin: &'a Client,
    /// Where staging would go (the demo's temporary directory).
    pub staging: &'a Path,
}

/// Step "quiesced restore and verification": the writer paused, pg_restore
/// --clean from the repository, the facts and the audit hash chain
/// verified, the writer resumed. A restore that does not verify leaves the
/// writer paused and fails (exit 1) with the differences. The time to
/// recover runs from the pause to the resume. Returns the connection the
/// chain was verified on.
pub async fn restore_quiesced(t: RestoreTarget<'_>, writer: &Writer) -> Result<(Client, Restored)> {
    let started = Instant::now();
    let guard = Quiesced::stop(writer.quiescer()).await?;
    let server = t
        .admin
        .query_one("SELECT current_setting('server_version_num')::int8", &[])
        .await
        .map_err(|e| Error::from_std(Kind::Failure, &e).context("reading the server version"))?;
    let pg_tools = tools::discover(tools::server_major(server.get(0)), &t.source.discovery)
        .map_err(tools_err)?;
    restore_archive(
        t.repo,
        &t.backup.snapshot,
        &pg_tools,
        &t.source.conn,
        &RestoreOptions::default(),
        t.staging,
        &Silent,
    )
    .await?;
    let (check, diffs) = differences(&t.source.conn, &t.backup.facts).await?;
    let chain = fixture::verify_hash_chain(&check)
        .await
        .map_err(fixture_err("verifying the hash chain"))?;
    if !diffs.is_empty() || !chain.is_ok() {
        let _ = guard.leave_down();
        crate::bail!(
            "the demo's restore did not verify ({} differences, {} broken chain links):\n{}",
            diffs.len(),
            chain.broken,
            facts::diff_table(&diffs)
        );
    }
    guard.resume().await?;
    let time_to_recover = started.elapsed();
    Ok((
        check,
        Restored {
            facts_checked: t.backup.facts.checked_summary(),
            chain,
            time_to_recover,
        },
    ))
}

/// Step "after the restore": the writer stopped (after a moment of
/// writing into the restored database), the chain verified once more.
pub async fn after_restore(writer: Writer, check: &Client) -> Result<(u64, fixture::ChainStatus)> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = writer.finish().await;
    let chain = fixture::verify_hash_chain(check)
        .await
        .map_err(fixture_err("verifying the hash chain"))?;
    Ok((written, chain))
}
