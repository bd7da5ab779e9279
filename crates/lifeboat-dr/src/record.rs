//! Evidence kept in the repository: drill records (`drills/<id>`) and check
//! records (`checks/<id>`). They are sealed documents like snapshots
//! (docs/format.md), so the history of proofs travels with the backups and
//! cannot be read or forged without the repository key.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lifeboat_repo::{RepoError, Repository};
use serde::{Deserialize, Serialize};

pub const DRILLS_PREFIX: &str = "drills/";
pub const CHECKS_PREFIX: &str = "checks/";
/// Failover and switchover records (docs/failover.md).
pub const FAILOVERS_PREFIX: &str = "failovers/";
/// The version written into new records (docs/format.md, "Documents").
pub const RECORD_VERSION: u64 = 1;
const CONCURRENCY: usize = 16;

/// One step of a drill (restore, verify, kube objects, cleanup).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillStep {
    pub name: String,
    pub ok: bool,
    pub seconds: f64,
    /// What happened, in one line (e.g. "52 tables, 2 queries verified").
    pub detail: String,
}

/// A fact that differed between the snapshot and the scratch restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillDifference {
    /// e.g. `rows of public.audit_events` or `query latest_audit_event`.
    pub fact: String,
    pub expected: String,
    pub actual: String,
}

/// The outcome of one drill: did the latest snapshot restore and verify,
/// how long it took (RTO) and how old it was (RPO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRecord {
    pub version: u64,
    pub source: String,
    /// `postgres` or `kube`.
    pub kind: String,
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub ok: bool,
    /// Why it failed, naming the object, fact or query at fault.
    #[serde(default)]
    pub failure: Option<String>,
    /// Time to recover: from the drill's start until the data was verified
    /// (until the failure, for a failed drill).
    pub rto_seconds: f64,
    /// Data-loss window: the snapshot's age when the drill started.
    pub rpo_seconds: f64,
    /// Where it restored to (no credentials), e.g. "throwaway PostgreSQL 15".
    pub target: String,
    /// `cli`, `schedule` or `api`.
    pub trigger: String,
    pub hostname: String,
    pub program: String,
    pub steps: Vec<DrillStep>,
    #[serde(default)]
    pub differences: Vec<DrillDifference>,
}

/// The outcome of one `lifeboat check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRecord {
    pub version: u64,
    pub time: DateTime<Utc>,
    /// Whether every pack was read and every blob authenticated.
    pub read_data: bool,
    pub ok: bool,
    /// How many problems were found (0 when ok).
    pub problems: usize,
    pub hostname: String,
    pub program: String,
    /// With `read_data`: the part of the packs read (`N/M` or `P%`,
    /// `check --read-data-subset`); absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data_subset: Option<String>,
}

/// A stored record with its id (the storage name, hex).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored<T> {
    pub id: String,
    #[serde(flatten)]
    pub record: T,
}

impl CheckRecord {
    /// The record of a check that just ended.
    pub fn of(report: &lifeboat_repo::check::CheckReport, read_data: bool) -> Self {
        CheckRecord {
            version: RECORD_VERSION,
            time: Utc::now(),
            read_data,
            ok: report.ok(),
            problems: report.errors.len(),
            hostname: lifeboat_repo::keys::hostname(),
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            read_data_subset: None,
        }
    }
}

impl DrillRecord {
    pub fn short_snapshot(&self) -> &str {
        &self.snapshot[..self.snapshot.len().min(8)]
    }
}

/// Stores a drill record; returns its id.
pub async fn store_drill(repo: &Repository, rec: &DrillRecord) -> Result<String, RepoError> {
    repo.put_doc(DRILLS_PREFIX, "drill", rec).await
}

/// Stores a check record; returns its id.
pub async fn store_check(repo: &Repository, rec: &CheckRecord) -> Result<String, RepoError> {
    repo.put_doc(CHECKS_PREFIX, "check", rec).await
}

/// Stores a failover record (its type is `lifeboat-region`'s, which this
/// crate does not depend on); returns its id.
pub async fn store_failover<T: serde::Serialize>(
    repo: &Repository,
    rec: &T,
) -> Result<String, RepoError> {
    repo.put_doc(FAILOVERS_PREFIX, "failover", rec).await
}

/// Every failover record, in storage order.
pub async fn failovers<T: serde::de::DeserializeOwned>(
    repo: &Repository,
) -> Result<Vec<Stored<T>>, RepoError> {
    list(repo, FAILOVERS_PREFIX, "failover").await
}

/// Every drill record, oldest first. A damaged record is an error naming it.
pub async fn drills(repo: &Repository) -> Result<Vec<Stored<DrillRecord>>, RepoError> {
    let mut out: Vec<Stored<DrillRecord>> = list(repo, DRILLS_PREFIX, "drill").await?;
    out.sort_by(|a, b| {
        a.record
            .started
            .cmp(&b.record.started)
            .then(a.id.cmp(&b.id))
    });
    Ok(out)
}

/// Every check record, oldest first.
pub async fn checks(repo: &Repository) -> Result<Vec<Stored<CheckRecord>>, RepoError> {
    let mut out: Vec<Stored<CheckRecord>> = list(repo, CHECKS_PREFIX, "check").await?;
    out.sort_by(|a, b| a.record.time.cmp(&b.record.time).then(a.id.cmp(&b.id)));
    Ok(out)
}

async fn list<T>(repo: &Repository, prefix: &str, kind: &str) -> Result<Vec<Stored<T>>, RepoError>
where
    T: serde::de::DeserializeOwned,
{
    let objs = repo.storage().list(prefix).await?;
    let found: Vec<Option<Stored<T>>> =
        futures::stream::iter(objs.into_iter().map(|o| async move {
            // get_doc verifies the name, authenticates, and refuses newer versions.
            let record: T = match repo.get_doc(&o.key, kind).await {
                Ok(r) => r,
                // Removed between the listing and the read.
                Err(RepoError::Storage(e)) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            let id = o.key.rsplit('/').next().unwrap_or(&o.key).to_string();
            Ok(Some(Stored { id, record }))
        }))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}
