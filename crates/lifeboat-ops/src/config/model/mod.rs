//! The configuration file's types, as serde reads them: the top level, the
//! repository, the daemon (`serve:`), readiness and objectives. Sources,
//! their quiesce and retention sections, the regions (`regions:`,
//! `traffic:`, `replication:`), `failover:` and the checked URL types have modules of
//! their own. Values are checked where they are read (with
//! their line and column); what spans several keys is checked by
//! `config::validation`.

mod failover;
mod quiesce;
mod regions;
mod retention;
mod sources;
mod urls;
mod wal;

pub use failover::*;
pub use quiesce::*;
pub use regions::*;
pub use sources::*;
pub use urls::*;
pub use wal::*;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::schedules::Schedule;
use super::secrets::SecretRef;
/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub repository: RepositoryConfig,
    /// Backup sources by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Recovery objectives per failure scenario (the seed's RTO/RPO table).
    #[serde(default)]
    pub objectives: Vec<Objective>,
    /// How to reach the Kubernetes cluster (for kube sources, quiescing
    /// Deployments and `kubernetes_secret` references). Unset: `KUBECONFIG`,
    /// `~/.kube/config`, or the in-cluster service account, as kubectl does.
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// The daemon, `lifeboat serve` (docs/daemon.md). Unset: its defaults.
    #[serde(default)]
    pub serve: Option<ServeConfig>,
    /// How `lifeboat readiness` judges evidence, and the attestations of
    /// the checklist's manual items (docs/drills.md).
    #[serde(default)]
    pub readiness: Option<ReadinessConfig>,
    /// The regions by name (docs/regions/topology.md): each one's
    /// PostgreSQL, health checks, Deployments, DNS answer, repository copy
    /// and Redis.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionConfig>,
    /// Who steers the serving name between the regions.
    #[serde(default)]
    pub traffic: Option<TrafficConfig>,
    /// Streaming replication between the regions: the role, the heartbeat.
    #[serde(default)]
    pub replication: Option<ReplicationConfig>,
    /// The failover authority (docs/failover.md): etcd, the lease and fence
    /// timing, the fence, automatic failover and rejoin.
    #[serde(default)]
    pub failover: Option<FailoverConfig>,
    /// WAL streaming by the daemon (docs/physical.md).
    #[serde(default)]
    pub wal: Option<WalConfig>,
    /// Where this configuration was read from (a path or `<string>`), for
    /// messages.
    #[serde(skip)]
    pub origin: String,
    /// The text this configuration was parsed from, exactly as read: stored
    /// with every backup (`lifeboat restore config`). It parsed, so it holds
    /// secret references only (a secret written in place does not parse).
    #[serde(skip)]
    pub text: String,
}

/// The daemon's settings (`serve:`); every one has a default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address of the HTTP server (health, metrics, API), e.g. `0.0.0.0:8080`
    /// (the default) or `127.0.0.1:9000`.
    #[serde(default)]
    pub listen: Option<String>,
    /// The bearer token of the JSON API. Unset: every API request is refused
    /// with 401 (health endpoints and metrics stay open).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// How long the active daemon's lease in the repository lasts without
    /// renewal before a standby takes over. Default `60s`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub lease: Option<TimeDelta>,
    /// On SIGTERM, how long a running backup may take to finish before it is
    /// abandoned (no snapshot is written). Default `5m`; keep the pod's
    /// terminationGracePeriodSeconds longer.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub grace_period: Option<TimeDelta>,
    /// Retention batching: snapshots are forgotten after every backup, but
    /// unreferenced data is pruned at most this often. Default `24h`; `0s`
    /// prunes after every backup that forgot a snapshot.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub prune_interval: Option<TimeDelta>,
    /// Repository checks the daemon runs and records (`lifeboat readiness`
    /// wants a passed one within `readiness.check_max_age`). Unset: none.
    #[serde(default)]
    pub check: Option<ServeCheck>,
    /// The region (a key of `regions:`) this daemon runs in: it writes the
    /// heartbeat while that region's server is the primary, and names itself
    /// as the health checks' vantage point. `--region` / `LIFEBOAT_REGION`
    /// override it. Unset with `regions:` configured: the daemon does no
    /// region work (docs/daemon.md, "Regions").
    #[serde(default)]
    pub region: Option<String>,
}

/// `serve.check`: when the daemon checks the repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeCheck {
    /// Cron, in UTC, e.g. `"0 5 * * 0"` (Sundays 05:00).
    pub schedule: Schedule,
    /// Read and authenticate every pack (`check --read-data`). Default true.
    #[serde(default = "yes")]
    pub read_data: bool,
    /// With `read_data`: each run reads the next part of this many
    /// (`check --read-data-subset N/M`, N cycling), so a run holds prune
    /// off for a part of the time and every pack is read once per cycle
    /// of this many runs; 1 reads everything every run. Default 4.
    #[serde(default = "default_read_data_parts")]
    pub read_data_parts: u32,
}

pub const DEFAULT_READ_DATA_PARTS: u32 = 4;

fn default_read_data_parts() -> u32 {
    DEFAULT_READ_DATA_PARTS
}

fn yes() -> bool {
    true
}

/// How to reach the Kubernetes cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than its current one.
    #[serde(default)]
    pub context: Option<String>,
}

/// Where the repository is and how to open it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// A path, `file:///path`, `s3://bucket/prefix`, `gs://…` or `az://…`.
    pub url: RepoUrl,
    /// The passphrase of a key slot.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// A raw key file (mode 0600) instead of a passphrase.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// S3 settings; only with an `s3://` URL. Unset values come from the
    /// standard AWS environment.
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// How long `prune` leaves unreferenced data alone, so that it never
    /// deletes what a running backup is about to reference.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub prune_grace: Option<TimeDelta>,
    /// Append-only mode (docs/append-only.md): nothing is deleted or
    /// overwritten outside `locks/` and `serve/`; forget, prune, repair
    /// index and key remove refuse. For backup credentials that cannot
    /// delete; the administrator runs forget and prune with another config.
    #[serde(default)]
    pub append_only: bool,
    /// S3 Object Lock retention, used when the bucket has Object Lock
    /// enabled. Unset: the bucket's default retention, else GOVERNANCE for
    /// 35 days.
    #[serde(default)]
    pub object_lock: Option<ObjectLockConfig>,
}

/// `repository.object_lock`: the retention Lifeboat sets on what each
/// snapshot needs (docs/append-only.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLockConfig {
    /// `governance` (the default) or `compliance`.
    #[serde(default)]
    pub mode: Option<lifeboat_repo::storage::object_lock::RetentionMode>,
    /// Days every snapshot's data stays retained at least, from its backup:
    /// at least the time the retention policy keeps a snapshot that an
    /// attack should not be able to destroy.
    pub days: u32,
}

/// S3-compatible storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000` for MinIO or moto; AWS when unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint (test servers only).
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub access_key_id: Option<SecretRef>,
    #[serde(default)]
    pub secret_access_key: Option<SecretRef>,
}

/// `readiness:`: evidence ages and attestations.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessConfig {
    /// A successful drill older than this fails the checklist (default 30d).
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub drill_max_age: Option<TimeDelta>,
    /// A passed `check` older than this fails the checklist (default 7d).
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub check_max_age: Option<TimeDelta>,
    /// Manual checklist items a person attests, by item id (`on-call`,
    /// `runbooks`, `security-audit`, …; see `lifeboat readiness`).
    #[serde(default)]
    pub attestations: BTreeMap<String, AttestationConfig>,
}

/// Who attested a manual checklist item, and when.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationConfig {
    pub by: String,
    /// `YYYY-MM-DD`.
    pub date: chrono::NaiveDate,
    #[serde(default)]
    pub note: Option<String>,
}

/// A recovery objective for one failure scenario.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// e.g. `database-corruption`; sources name it in `covers`.
    pub scenario: String,
    /// Recovery time objective: longest acceptable time to recover.
    #[serde(with = "lifeboat_repo::retention::duration")]
    pub rto: TimeDelta,
    /// Recovery point objective: longest acceptable data-loss window
    /// (`0s`: none).
    #[serde(with = "lifeboat_repo::retention::duration")]
    pub rpo: TimeDelta,
    #[serde(default)]
    pub priority: Option<Priority>,
    /// What covers this scenario outside Lifeboat ("Kubernetes restarts the
    /// pod"), for a scenario no source covers or with RPO 0. Without it
    /// such an objective puts `lifeboat status` at risk. Needs
    /// `attested_by` and `attested_at`.
    #[serde(default)]
    pub covered_by: Option<String>,
    /// Who attests `covered_by`.
    #[serde(default)]
    pub attested_by: Option<String>,
    /// When (`YYYY-MM-DD`).
    #[serde(default)]
    pub attested_at: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}
