//! A backup source (`sources.NAME`) and the sections of its kind:
//! `postgres:`, `kube:`, `stream:`, and its `drill:`, `restore:` and
//! `physical:` (scheduled base backups of a postgres source).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use lifeboat_repo::retention::RetentionPolicy;
use serde::{Deserialize, Serialize};

use super::quiesce::Quiesce;
use super::retention::retention_section;
use super::urls::PgUrl;
use crate::config::schedules::{Schedule, Timezone};
use crate::config::secrets::SecretRef;
/// What a source backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Postgres,
    Kube,
    Stream,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::Kube => "kube",
            SourceKind::Stream => "stream",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backup source. Only the section of its `kind` may be present.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// When the daemon backs it up: a five-field cron expression
    /// (`minute hour day-of-month month day-of-week`), six fields with
    /// seconds first, or `@hourly`, `@daily`.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// The schedule's time zone; UTC when unset.
    #[serde(default)]
    pub timezone: Option<Timezone>,
    /// Which of its snapshots `forget` keeps. No policy: `forget` refuses
    /// this source instead of deleting everything. Every rule written keeps
    /// something: a count of 0, a duration of 0s and an empty section are
    /// refused where they are written ([`RetentionSection`]).
    #[serde(default, deserialize_with = "retention_section")]
    pub retention: Option<RetentionPolicy>,
    #[serde(default)]
    pub postgres: Option<PostgresSource>,
    #[serde(default)]
    pub kube: Option<KubeSource>,
    #[serde(default)]
    pub stream: Option<StreamSource>,
    /// Writers to stop while this source is restored.
    #[serde(default)]
    pub quiesce: Option<Quiesce>,
    /// The `objectives` scenarios this source's backups serve.
    #[serde(default)]
    pub covers: Vec<String>,
    /// Restore drills of this source (docs/drills.md).
    #[serde(default)]
    pub drill: Option<DrillConfig>,
    /// How this source is restored: `restore postgres`, `lifeboat drill` and
    /// the daemon's drills all read it, so a drill proves the production path.
    #[serde(default)]
    pub restore: Option<RestoreConfig>,
    /// Physical base backups of a postgres source on the daemon's own
    /// schedule (docs/physical.md), beside or instead of `schedule`'s
    /// logical ones.
    #[serde(default)]
    pub physical: Option<PhysicalConfig>,
}

/// A postgres source's physical base backups (`physical:`): what `lifeboat
/// backup physical --source NAME` takes, taken by the daemon on
/// `schedule`. Their retention is the source's `retention:`, applied to
/// the physical snapshots on their own (a logical snapshot never uses up a
/// base backup's `keep_last`, nor the other way round).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalConfig {
    /// When the daemon takes a base backup (cron, like `schedule`, in the
    /// source's `timezone`).
    pub schedule: Schedule,
    /// Block size in KiB (`backup physical --block-size`), for the daemon's
    /// and `backup physical --source`'s base backups; unset: 256.
    #[serde(default)]
    pub block_size: Option<BlockSizeKib>,
}

/// A physical backup's block size in KiB: a multiple of 8 from 8 to 4096
/// (refused where it is written, with its line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizeKib(u32);

impl BlockSizeKib {
    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        self.0 * 1024
    }
}

impl<'de> Deserialize<'de> for BlockSizeKib {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(k) if (8..=4096).contains(&k) && k % 8 == 0 => Ok(BlockSizeKib(k)),
            _ => Err(serde::de::Error::custom(format!(
                "physical block_size is in KiB and must be a multiple of 8 from 8 to 4096, not {n} (unset: 256)"
            ))),
        }
    }
}

/// A PostgreSQL source's restore settings (`restore:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// Parallel jobs (`--jobs` overrides it); unset: 1 (streamed, no staging).
    #[serde(default)]
    pub jobs: Option<Jobs>,
}

/// A number of parallel restore jobs, at least 1 (refused where it is
/// written, with its line and column, like every value error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jobs(u32);

impl Jobs {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Jobs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(n) if (1..=256).contains(&n) => Ok(Jobs(n)),
            _ => Err(serde::de::Error::custom(format!(
                "restore jobs must be between 1 and 256, not {n} (1 streams the archive; above 1 stages it and restores in parallel)"
            ))),
        }
    }
}

/// A PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// libpq URL without a password, e.g.
    /// `postgresql://kubernaut@postgresql.kubernaut-system:5432/kubernaut`.
    pub url: PgUrl,
    /// Unset: `PGPASSWORD`, then `~/.pgpass`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Where `pg_dump`/`pg_restore` are, when not found automatically.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// Queries whose one-row results are recorded at backup and checked
    /// after every restore.
    #[serde(default)]
    pub verify_queries: Vec<VerifyQuery>,
    /// Agent mode: the server's data directory, where Lifeboat runs beside
    /// it (same host, or a sidecar in its pod). `recover postgres` replaces
    /// it (docs/physical.md, "Recovering a source to a moment").
    #[serde(default)]
    pub pgdata: Option<PathBuf>,
    /// Agent mode: how the server is started and stopped, as for a region
    /// (`pg_ctl`, `{pg_ctl: {bin_dir: DIR}}`, `{systemd: {unit: UNIT}}`).
    /// Unset with `pgdata`: `pg_ctl`.
    #[serde(default)]
    pub control: Option<super::regions::ServerControl>,
}

impl PostgresSource {
    /// How the server is started and stopped: as configured, else `pg_ctl`
    /// when `pgdata` is set, else `None` (Lifeboat does not).
    pub fn control(&self) -> Option<super::regions::ServerControl> {
        match (&self.control, &self.pgdata) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(_)) => Some(super::regions::ServerControl::PgCtl(Default::default())),
            (None, None) => None,
        }
    }
}

/// A verification query: it must return at most one row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    pub name: String,
    pub sql: String,
}

/// Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSource {
    /// Namespaces to back up; empty: the namespace Lifeboat runs in.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Resource kinds, plural and lower case (`configmaps`, `secrets`,
    /// `remediationrequests.kubernaut.ai`); empty: ConfigMaps, Secrets and
    /// custom resources.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// A Kubernetes label selector, e.g. `app.kubernetes.io/part-of=kubernaut`.
    #[serde(default)]
    pub label_selector: Option<String>,
}

/// A stream produced by a command, backed up as its standard output
/// (`crate::stream_command`): by the daemon on the source's schedule or
/// through its API, and by `lifeboat backup stream --source NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSource {
    /// Argument vector (no shell), e.g. `[tar, -C, /data, -cf, -, .]`. A
    /// non-zero exit or a signal fails the backup; no snapshot is written.
    #[serde(default)]
    pub command: Vec<String>,
    /// Names of environment variables passed to the command from Lifeboat's
    /// environment (when set there), besides `PATH`; it gets nothing else.
    #[serde(default)]
    pub env: Vec<String>,
}

/// A source's restore drills (`drill:`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// When the daemon drills it (cron, like `schedule`, in the source's
    /// `timezone`); unset: only `lifeboat drill` runs it.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// PostgreSQL sources: the database to restore into. Unset: a throwaway
    /// local PostgreSQL of the snapshot's major version.
    #[serde(default)]
    pub scratch: Option<ScratchDatabase>,
    /// The scratch database is a physical copy of the source's server (a
    /// standby promoted for drills, a server rebuilt from a base backup): it
    /// shares the source's system identifier and database OID, which a drill
    /// otherwise refuses. Never allows the very same running server.
    #[serde(default)]
    pub scratch_is_copy: bool,
    /// Kube sources: source namespace → drill namespace. Required for kube
    /// sources: a drill never restores into the namespaces it protects.
    #[serde(default)]
    pub namespace_map: BTreeMap<String, String>,
    /// `[logical]`, `[physical]` or both: what the daemon's `schedule`
    /// drills (in that order) and what `status` and `readiness` expect
    /// (docs/drills.md). Unset: the schedule drills logically, and the
    /// expected kinds follow the source's backups.
    #[serde(default)]
    pub kinds: Option<Vec<lifeboat_dr::record::DrillKind>>,
}

/// A scratch database for drills.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchDatabase {
    pub url: PgUrl,
    #[serde(default)]
    pub password: Option<SecretRef>,
}
