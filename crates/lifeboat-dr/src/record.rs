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
/// Recovery records: `recover postgres` (docs/physical.md).
pub const RECOVERIES_PREFIX: &str = "recoveries/";
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
    /// The kind of the snapshot drilled: `postgres` or `kube` (a logical
    /// drill), `physical` (`drill --physical`: a base backup and the
    /// archived WAL recovered by a throwaway server). Records written before
    /// physical drills existed are all logical; a physical drill needs no
    /// other member, so releases that know only logical drills still read
    /// its record (all members are version 1's).
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

/// The outcome of one `lifeboat recover postgres`: a source's server
/// recovered to just before a moment (its data directory replaced), or a
/// recovery that failed and put the old data directory back. Measured like
/// a drill (RTO, RPO), but a real recovery: status and readiness do not
/// count it as a drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRecord {
    pub version: u64,
    pub source: String,
    /// `replace`: the server's data directory was replaced; `database`:
    /// one database was recovered on a side server and restored logically
    /// into the source (`recover postgres --database`).
    pub mode: String,
    /// The database moved back (mode `database`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The base backup recovered from.
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    /// The moment asked for (`--before`): recovery stops before the first
    /// commit at or after it.
    pub target: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub ok: bool,
    /// Why it failed, and what was put back.
    #[serde(default)]
    pub failure: Option<String>,
    /// From the writers' stop to the writers back (to the failure's end,
    /// for a failed recovery).
    pub rto_seconds: f64,
    /// The target minus the last commit the recovered server replayed:
    /// how far before the moment asked the recovered data ends. `None`
    /// when no transaction was replayed past the base backup.
    #[serde(default)]
    pub rpo_seconds: Option<f64>,
    /// The last replayed commit's time and WAL position, the timeline the
    /// server runs on now.
    #[serde(default)]
    pub replay_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub replay_lsn: Option<String>,
    #[serde(default)]
    pub timeline: Option<u32>,
    /// The data directory, and where its old content was kept aside (empty
    /// when the recovery failed and it was put back). Mode `database`: the
    /// side server's temporary data directory (removed), and no `replaced`.
    pub pgdata: String,
    #[serde(default)]
    pub replaced: Option<String>,
    pub hostname: String,
    pub program: String,
    pub steps: Vec<DrillStep>,
}

/// Stores a recovery record; returns its id.
pub async fn store_recovery(repo: &Repository, rec: &RecoveryRecord) -> Result<String, RepoError> {
    repo.put_doc(RECOVERIES_PREFIX, "recovery", rec).await
}

/// Every recovery record, oldest first.
pub async fn recoveries(repo: &Repository) -> Result<Vec<Stored<RecoveryRecord>>, RepoError> {
    let mut out: Vec<Stored<RecoveryRecord>> = list(repo, RECOVERIES_PREFIX, "recovery").await?;
    out.sort_by(|a, b| {
        a.record
            .started
            .cmp(&b.record.started)
            .then(a.id.cmp(&b.id))
    });
    Ok(out)
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

/// Which restore path a drill proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillKind {
    /// A logical snapshot (`pg_dump`'s archive, Kubernetes objects)
    /// restored and its recorded facts verified.
    Logical,
    /// A physical base backup restored and recovered with the archived WAL
    /// to the latest archived point (`drill --physical`).
    Physical,
}

impl DrillKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillKind::Logical => "logical",
            DrillKind::Physical => "physical",
        }
    }
}

impl std::fmt::Display for DrillKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The snapshot kind of a physical base backup (`lifeboat_repo::physical::KIND`).
pub const PHYSICAL_KIND: &str = "physical";

impl DrillRecord {
    pub fn short_snapshot(&self) -> &str {
        &self.snapshot[..self.snapshot.len().min(8)]
    }

    /// Logical or physical, from the drilled snapshot's kind.
    pub fn drill_kind(&self) -> DrillKind {
        if self.kind == PHYSICAL_KIND {
            DrillKind::Physical
        } else {
            DrillKind::Logical
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as Lifeboat stored it before physical drills existed
    /// (every member of version 1, `differences` and `failure` present).
    const OLD_RECORD: &str = r#"{"version":1,"source":"kubernaut-db","kind":"postgres",
        "snapshot":"7c1e0f5a9b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a",
        "snapshot_time":"2026-11-30T02:00:04Z","started":"2026-12-01T03:00:00Z",
        "finished":"2026-12-01T03:01:35Z","ok":true,"failure":null,"rto_seconds":95.2,
        "rpo_seconds":90596.0,"target":"throwaway PostgreSQL 15 (127.0.0.1:41234)",
        "trigger":"schedule","hostname":"lifeboat-0","program":"lifeboat 0.1.0",
        "steps":[{"name":"restore","ok":true,"seconds":80.1,"detail":"pg_restore of 1.2 GiB"}],
        "differences":[]}"#;

    #[test]
    fn a_record_written_before_physical_drills_reads_as_logical() {
        let r: DrillRecord = serde_json::from_str(OLD_RECORD).unwrap();
        assert_eq!(r.drill_kind(), DrillKind::Logical);
        assert_eq!(r.kind, "postgres");
        let kube = OLD_RECORD.replace(r#""kind":"postgres""#, r#""kind":"kube""#);
        let r: DrillRecord = serde_json::from_str(&kube).unwrap();
        assert_eq!(r.drill_kind(), DrillKind::Logical);
        // The oldest records had no `failure` and no `differences`.
        let bare = OLD_RECORD
            .replace(r#""failure":null,"#, "")
            .replace(r#","differences":[]"#, "");
        let r: DrillRecord = serde_json::from_str(&bare).unwrap();
        assert!(r.failure.is_none() && r.differences.is_empty());
    }

    #[test]
    fn a_physical_record_has_only_the_members_older_releases_know() {
        let mut r: DrillRecord = serde_json::from_str(OLD_RECORD).unwrap();
        r.kind = PHYSICAL_KIND.into();
        assert_eq!(r.drill_kind(), DrillKind::Physical);
        let written = serde_json::to_value(&r).unwrap();
        let old: serde_json::Value = serde_json::from_str(OLD_RECORD).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        // A release that knows only logical drills (deny_unknown_fields)
        // reads it: the same members, a kind it keeps as text.
        assert_eq!(keys(&written), keys(&old));
        let back: DrillRecord = serde_json::from_value(written).unwrap();
        assert_eq!(back, r);
    }
}
