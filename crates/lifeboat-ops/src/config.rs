//! The configuration file: one YAML document (default `./lifeboat.yaml`).
//!
//! ```yaml
//! repository:
//!   url: /var/lib/lifeboat/repo          # the only required setting
//!   password: {env: LIFEBOAT_PASSWORD}
//! sources:
//!   kubernaut-db:
//!     kind: postgres
//!     schedule: "0 * * * *"
//!     retention: {keep_within_hourly: 30d}
//!     postgres: {url: "postgresql://kubernaut@postgresql:5432/kubernaut"}
//! objectives:
//!   - {scenario: database-corruption, rto: 30m, rpo: 1h}
//! ```
//!
//! `examples/kubernaut.yaml` documents every setting. Rules:
//! * Unknown keys are errors, reported with the file, line and column, like
//!   every other parse error; so are values of the wrong type, bad durations
//!   (`30d`, `12h`, `1d12h`), bad cron expressions and unknown time zones,
//!   which are all checked while the file is read.
//! * Accepted settings do something: a retention rule that keeps nothing
//!   (`keep_last: 0`, `keep_within_daily: 0s`, `retention: {}`) and a
//!   schedule with no slot in the next five years (`0 0 31 2 *`) are refused
//!   the same way, with line and column.
//! * Secrets are given only by reference ([`SecretRef`]): an environment
//!   variable, a file (mode 0600), or a Kubernetes Secret. A URL carrying a
//!   password is refused. Resolved secrets are never logged nor shown by
//!   `Debug`.
//! * After parsing, [`Config::validate`] checks what spans several keys: each
//!   source has the section of its kind and none of another, `covers` names a
//!   scenario from `objectives`, scenario names are unique.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, TimeDelta};
use lifeboat_repo::retention::RetentionPolicy;
use serde::{Deserialize, Serialize};

/// Everything that can go wrong with the configuration. Messages name the
/// file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the configuration file {path}: {source}; give the right file with --config or LIFEBOAT_CONFIG"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A syntax, type or value error, with its position in the file.
    #[error("{origin}:{line}:{column}: {message}{}", if .snippet.is_empty() { String::new() } else { format!("\n{}", .snippet) })]
    Parse {
        origin: String,
        line: u64,
        column: u64,
        message: String,
        /// The offending lines, marked (no secret values can be in the file).
        snippet: String,
    },
    /// A parse error whose position the YAML parser could not tell.
    #[error("{origin}: {message}")]
    ParseNoLocation { origin: String, message: String },
    /// Problems spanning several keys, all of them at once.
    #[error("{origin}: invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
    #[error("no source named {name:?} in {origin}; configured sources: {}", if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
    UnknownSource {
        origin: String,
        name: String,
        known: Vec<String>,
    },
    #[error(
        "the environment variable {var} (a secret reference in the configuration) is not set or empty; export it or change the reference"
    )]
    SecretEnvMissing { var: String },
    #[error(
        "the environment variable {var} (a secret reference in the configuration) is not valid UTF-8"
    )]
    SecretEnvNotUnicode { var: String },
    #[error("the secret file {path}: {}", crate::secrets::too_open_advice(path, *mode))]
    SecretFileTooOpen { path: String, mode: u32 },
    #[error("cannot read the secret file {path}: {reason}; check the path in the configuration")]
    SecretFile { path: String, reason: String },
    #[error(
        "the secret reference kubernetes_secret {{name: {name}, key: {key}}} cannot be read: {detail}"
    )]
    KubernetesSecret {
        name: String,
        key: String,
        detail: String,
    },
}

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
    /// Where this configuration was read from (a path or `<string>`), for
    /// messages.
    #[serde(skip)]
    pub origin: String,
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

impl ServeConfig {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(l) = &self.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            problems.push(format!(
                "serve.listen {l:?} is not an address with a port, e.g. 0.0.0.0:8080 or [::]:8080"
            ));
        }
        for (key, d, min) in [
            ("lease", self.lease, TimeDelta::seconds(2)),
            ("grace_period", self.grace_period, TimeDelta::zero()),
            ("prune_interval", self.prune_interval, TimeDelta::zero()),
        ] {
            if d.is_some_and(|d| d < min) {
                problems.push(format!(
                    "serve.{key} must be at least {}",
                    lifeboat_repo::retention::format_duration(min)
                ));
            }
        }
        if let Some(c) = &self.check
            && !(1..=256).contains(&c.read_data_parts)
        {
            problems.push(
                "serve.check.read_data_parts must be between 1 (read everything each run) and 256"
                    .into(),
            );
        }
        problems
    }
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

/// A repository URL, checked for an empty value, a known scheme and the
/// absence of an embedded password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RepoUrl(String);

impl RepoUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `s3`, `gs`, `az` or `file` (also for a plain path).
    pub fn scheme(&self) -> &str {
        match self.0.split_once("://") {
            Some((scheme, _)) => scheme,
            None => "file",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(
                "the repository url is empty; give a path, file:///path or s3://bucket/prefix"
                    .into(),
            );
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            if !matches!(scheme, "file" | "s3" | "gs" | "az") {
                return Err(format!(
                    "unsupported repository scheme {scheme:?}; use a path, file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
                ));
            }
            if scheme != "file" && rest.trim_matches('/').is_empty() {
                return Err(format!("the repository url {s:?} names no bucket"));
            }
            if password_in_authority(rest) {
                return Err("the repository url carries a password; give credentials by reference (repository.s3 or the AWS environment)".into());
            }
        }
        Ok(RepoUrl(s.to_string()))
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RepoUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RepoUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `user:password@` in the authority part of a URL (after `scheme://`).
fn password_in_authority(after_scheme: &str) -> bool {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.contains(':'),
        None => false,
    }
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

/// A reference to a secret: exactly one of `env`, `file` or
/// `kubernetes_secret`. `Debug` shows the reference, never the value. A
/// secret written in place of a reference is refused without repeating it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// `{env: LIFEBOAT_PASSWORD}`
    Env(String),
    /// `{file: /etc/lifeboat/password}`: mode 0600 or stricter; one trailing
    /// newline is not part of the secret.
    File(PathBuf),
    /// `{kubernetes_secret: {name: postgresql-credentials, key: password}}`
    KubernetesSecret(KubernetesSecretRef),
}

/// A key of a Kubernetes Secret; the namespace defaults to the one Lifeboat
/// runs in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSecretRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Errors whose source line may hold a secret: shown without a snippet.
const SECRET_IN_PLACE: &str = "secrets are not written in the configuration";
const PASSWORD_IN_URL: &str = "carries a password";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        const VARIANTS: &[&str] = &["env", "file", "kubernetes_secret"];
        struct V;
        fn inline<E: Error>() -> E {
            E::custom(format!(
                "{SECRET_IN_PLACE}, only referenced: {{env: VAR}}, {{file: PATH}} or \
                 {{kubernetes_secret: {{name: N, key: K}}}}"
            ))
        }
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a secret reference: {env: VAR}, {file: PATH} or {kubernetes_secret: {name: N, key: K}}",
                )
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_i64<E: Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_u64<E: Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_bool<E: Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(
                        "an empty secret reference; give one of env, file or kubernetes_secret",
                    ));
                };
                let r = match key.as_str() {
                    "env" => {
                        let var: String = map.next_value()?;
                        if var.trim().is_empty() {
                            return Err(A::Error::custom("env: names no environment variable"));
                        }
                        SecretRef::Env(var)
                    }
                    "file" => SecretRef::File(map.next_value()?),
                    "kubernetes_secret" => SecretRef::KubernetesSecret(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, VARIANTS)),
                };
                if let Some(more) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "a secret reference has exactly one of env, file or kubernetes_secret, not both {key} and {more}"
                    )));
                }
                Ok(r)
            }
        }
        d.deserialize_any(V)
    }
}

impl SecretRef {
    /// Reads the secret. Never log the result.
    pub fn resolve(&self) -> Result<String, ConfigError> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) | Err(std::env::VarError::NotPresent) => {
                    Err(ConfigError::SecretEnvMissing { var: var.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(ConfigError::SecretEnvNotUnicode { var: var.clone() })
                }
            },
            SecretRef::File(path) => read_secret_file(path),
            SecretRef::KubernetesSecret(k) => {
                crate::kube_secret::read(k.namespace.as_deref(), &k.name, &k.key).map_err(
                    |detail| ConfigError::KubernetesSecret {
                        name: k.name.clone(),
                        key: k.key.clone(),
                        detail,
                    },
                )
            }
        }
    }
}

impl fmt::Display for SecretRef {
    /// `env LIFEBOAT_PASSWORD`, `file /etc/x`, `kubernetes secret ns/name key k`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env {v}"),
            SecretRef::File(p) => write!(f, "file {}", p.display()),
            SecretRef::KubernetesSecret(k) => match &k.namespace {
                Some(ns) => write!(f, "kubernetes secret {ns}/{} key {}", k.name, k.key),
                None => write!(f, "kubernetes secret {} key {}", k.name, k.key),
            },
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    use crate::secrets::{SecretFileError, read_secret_text};
    let shown = path.display().to_string();
    read_secret_text(path).map_err(|e| match e {
        SecretFileError::TooOpen { mode, .. } => {
            ConfigError::SecretFileTooOpen { path: shown, mode }
        }
        other => ConfigError::SecretFile {
            path: shown,
            reason: other.to_string(),
        },
    })
}

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
}

/// `retention:` as written in the file: the fields of [`RetentionPolicy`],
/// each checked where it is written, so that a rule that would keep nothing
/// (`keep_last: 0`, `keep_within_daily: 0s`), which `forget` and the daemon
/// would silently skip, is refused with its line and column like every
/// other value error (the CLI refuses `--keep-last 0` the same way).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    #[serde(default)]
    keep_last: Option<KeepCount>,
    #[serde(default)]
    keep_hourly: Option<KeepCount>,
    #[serde(default)]
    keep_daily: Option<KeepCount>,
    #[serde(default)]
    keep_weekly: Option<KeepCount>,
    #[serde(default)]
    keep_monthly: Option<KeepCount>,
    #[serde(default)]
    keep_yearly: Option<KeepCount>,
    #[serde(default)]
    keep_within: Option<KeepWindow>,
    #[serde(default)]
    keep_within_hourly: Option<KeepWindow>,
    #[serde(default)]
    keep_within_daily: Option<KeepWindow>,
    #[serde(default)]
    keep_within_weekly: Option<KeepWindow>,
    #[serde(default)]
    keep_within_monthly: Option<KeepWindow>,
    #[serde(default)]
    keep_within_yearly: Option<KeepWindow>,
}

/// A retention count, at least 1.
struct KeepCount(u32);

impl<'de> Deserialize<'de> for KeepCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(KeepCount(n)),
            _ => Err(serde::de::Error::custom(format!(
                "a retention count must be at least 1, not {n}: a rule that keeps no snapshot \
                 keeps nothing at all (remove the key, or give e.g. keep_last: 7)"
            ))),
        }
    }
}

/// A retention window, longer than 0s.
struct KeepWindow(TimeDelta);

impl<'de> Deserialize<'de> for KeepWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let w = lifeboat_repo::retention::parse_duration(&s).map_err(serde::de::Error::custom)?;
        if w <= TimeDelta::zero() {
            return Err(serde::de::Error::custom(format!(
                "a retention window must be longer than 0s, not {s:?}: a window of 0s keeps \
                 nothing (remove the key, or give e.g. keep_within_daily: 30d)"
            )));
        }
        Ok(KeepWindow(w))
    }
}

/// `retention:` of a source: [`RetentionSection`], refused when it has no
/// rule at all (an empty section reads like a policy but keeps nothing, and
/// `forget` would then refuse the source).
fn retention_section<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RetentionPolicy>, D::Error> {
    let s = RetentionSection::deserialize(d)?;
    let count = |c: Option<KeepCount>| c.map(|c| c.0);
    let window = |w: Option<KeepWindow>| w.map(|w| w.0);
    let p = RetentionPolicy {
        keep_last: count(s.keep_last),
        keep_hourly: count(s.keep_hourly),
        keep_daily: count(s.keep_daily),
        keep_weekly: count(s.keep_weekly),
        keep_monthly: count(s.keep_monthly),
        keep_yearly: count(s.keep_yearly),
        keep_within: window(s.keep_within),
        keep_within_hourly: window(s.keep_within_hourly),
        keep_within_daily: window(s.keep_within_daily),
        keep_within_weekly: window(s.keep_within_weekly),
        keep_within_monthly: window(s.keep_within_monthly),
        keep_within_yearly: window(s.keep_within_yearly),
    };
    if p.is_empty() {
        return Err(serde::de::Error::custom(
            "the retention section has no rule: give at least one of keep_last, keep_hourly, \
             keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within or \
             keep_within_hourly/daily/weekly/monthly/yearly, or remove retention: to keep everything",
        ));
    }
    Ok(Some(p))
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
}

/// A PostgreSQL connection string, refused when it carries a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PgUrl(String);

impl PgUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the PostgreSQL url is empty".into());
        }
        let has_password = match s.split_once("://") {
            Some((scheme, rest)) => {
                if !matches!(scheme, "postgresql" | "postgres") {
                    return Err(format!(
                        "a PostgreSQL url starts with postgresql://, not {scheme}://"
                    ));
                }
                password_in_authority(rest)
                    || rest
                        .split_once('?')
                        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("password=")))
            }
            // key=value form
            None => s.split_whitespace().any(|kv| kv.starts_with("password=")),
        };
        if has_password {
            return Err(
                "the PostgreSQL url carries a password; remove it and use password: {env: …} or {file: …}".into(),
            );
        }
        Ok(PgUrl(s.to_string()))
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PgUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PgUrl::parse(&s).map_err(serde::de::Error::custom)
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

/// What is wrong with a list of environment variable names passed to a
/// child (`stream.env`): empty names, `=` in a name, duplicates, and
/// Lifeboat's own `LIFEBOAT_*` settings and secrets, which never reach a
/// child.
fn env_names_problems(names: &[String], at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if n.is_empty() || n.contains('=') || n.contains('\0') {
            problems.push(format!("{at}: {n:?} is not an environment variable name"));
        } else if n.starts_with("LIFEBOAT_") {
            problems.push(format!(
                "{at}: {n} is one of Lifeboat's own settings or secrets, which are never passed to a child; remove it"
            ));
        } else if n == "PATH" {
            problems.push(format!("{at}: PATH is always passed; remove it"));
        } else if !seen.insert(n.as_str()) {
            problems.push(format!("{at}: {n} is listed twice"));
        }
    }
    problems
}

/// How writers are stopped during a restore and brought back after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiesce {
    /// Deployments scaled to zero through their `scale` subresource, then
    /// back to their replica counts. The count is first recorded in the
    /// annotation `lifeboat.io/original-replicas` on the Deployment, so that
    /// `lifeboat unquiesce` can bring it back after a crash.
    #[serde(default)]
    pub deployments: Vec<String>,
    /// StatefulSets, quiesced like `deployments`.
    #[serde(default)]
    pub statefulsets: Vec<String>,
    /// Their namespace; unset: the kubeconfig context's namespace, or the
    /// one Lifeboat runs in (in a pod).
    #[serde(default)]
    pub namespace: Option<String>,
    /// How long to wait, after scaling to zero, for the writers' pods to be
    /// gone before giving up (the restore then does not start and the
    /// writers are brought back). Default `5m`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub timeout: Option<TimeDelta>,
    /// Commands run instead of (or besides) scaling workloads: `pre` after
    /// the workloads are down, `post` before they are brought back.
    #[serde(default)]
    pub commands: Option<QuiesceCommands>,
    /// Bring writers back even when verification of the restored data fails.
    /// Off by default: a database that failed verification must not take
    /// traffic.
    #[serde(default)]
    pub resume_on_verify_failure: bool,
}

impl Quiesce {
    /// The workloads to scale, as (kind, name) in the order they are stopped:
    /// Deployments, then StatefulSets.
    pub fn workloads(&self) -> Vec<(lifeboat_kube::quiesce::Kind, &str)> {
        use lifeboat_kube::quiesce::Kind;
        self.deployments
            .iter()
            .map(|d| (Kind::Deployment, d.as_str()))
            .chain(
                self.statefulsets
                    .iter()
                    .map(|s| (Kind::StatefulSet, s.as_str())),
            )
            .collect()
    }

    /// What is wrong with these settings, each problem prefixed with `at`
    /// (e.g. `sources.kubernaut-db`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let no_workloads = self.deployments.is_empty() && self.statefulsets.is_empty();
        if self
            .namespace
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            problems.push(format!(
                "{at}.quiesce.namespace is empty; remove it or name the namespace"
            ));
        } else if self.namespace.is_some() && no_workloads {
            problems.push(format!(
                "{at}.quiesce.namespace is set but no deployments or statefulsets are listed"
            ));
        }
        if let Some(c) = &self.commands {
            let no_program = |c: &QuiesceCommand| c.argv.first().is_none_or(|p| p.is_empty());
            for (which, list) in [("pre", &c.pre), ("post", &c.post)] {
                if list.iter().any(no_program) {
                    problems.push(format!(
                        "{at}.quiesce.commands.{which}: every command is a non-empty argument vector, e.g. [systemctl, stop, app]"
                    ));
                }
                for (i, cmd) in list.iter().enumerate() {
                    for name in &cmd.env {
                        if !is_env_name(name) {
                            problems.push(format!(
                                "{at}.quiesce.commands.{which}[{i}].env: {name:?} is not a variable name; \
                                 list names only (e.g. [KUBECONFIG, HOME]): the values come from \
                                 Lifeboat's own environment"
                            ));
                        }
                    }
                }
            }
        }
        for (key, names) in [
            ("deployments", &self.deployments),
            ("statefulsets", &self.statefulsets),
        ] {
            if names.iter().any(|d| d.trim().is_empty()) {
                problems.push(format!("{at}.quiesce.{key}: a name is empty"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                if !n.trim().is_empty() && !seen.insert(n.as_str()) {
                    problems.push(format!("{at}.quiesce.{key}: {n:?} is listed twice"));
                }
            }
        }
        match self.timeout {
            Some(t) if t <= TimeDelta::zero() => problems.push(format!(
                "{at}.quiesce.timeout must be longer than 0s (e.g. 5m)"
            )),
            Some(_) if no_workloads => problems.push(format!(
                "{at}.quiesce.timeout is set but no deployments or statefulsets are listed"
            )),
            _ => {}
        }
        problems
    }
}

/// Commands to stop (`pre`) and restart (`post`) writers; each an argument
/// vector run without a shell, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuiesceCommands {
    #[serde(default)]
    pub pre: Vec<QuiesceCommand>,
    #[serde(default)]
    pub post: Vec<QuiesceCommand>,
}

/// One quiesce command: an argument vector (`[systemctl, stop, app]`), or
/// `{command: [kubectl, scale, …], env: [KUBECONFIG, HOME]}` when it needs
/// more of Lifeboat's environment than every child gets (`PATH`, `LANG`,
/// `LC_*`, `TZ`; see "Child processes" in `docs/postgres.md`). `env` holds
/// names only: the values are Lifeboat's own, never written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuiesceCommand {
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

impl From<Vec<String>> for QuiesceCommand {
    fn from(argv: Vec<String>) -> Self {
        QuiesceCommand { argv, env: vec![] }
    }
}

impl QuiesceCommand {
    /// The command as an operator would type it (argument vector joined).
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// The long form of [`QuiesceCommand`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuiesceCommandMap {
    command: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
}

// By hand rather than `#[serde(untagged)]`: an untagged enum's error is "data
// did not match any variant", while this keeps the located error of the form
// that was written (a list, or a map with `command` and `env`).
impl<'de> Deserialize<'de> for QuiesceCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = QuiesceCommand;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an argument vector ([program, arg, …]) or {command: [program, arg, …], env: [NAME, …]}",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                let argv =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(a))?;
                Ok(argv.into())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                let m = QuiesceCommandMap::deserialize(
                    serde::de::value::MapAccessDeserializer::new(a),
                )?;
                Ok(QuiesceCommand {
                    argv: m.command,
                    env: m.env,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether `name` is an environment variable name a command may ask for:
/// letters, digits and `_`, not starting with a digit.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
}

/// A scratch database for drills.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchDatabase {
    pub url: PgUrl,
    #[serde(default)]
    pub password: Option<SecretRef>,
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

impl Objective {
    /// `covered_by` is a statement someone answers for: all three keys or
    /// none, none of them blank.
    fn attestation_problems(&self, i: usize) -> Vec<String> {
        let blank = |v: &Option<String>| v.as_deref().is_some_and(|t| t.trim().is_empty());
        let mut p = Vec::new();
        for (key, v) in [
            ("covered_by", &self.covered_by),
            ("attested_by", &self.attested_by),
        ] {
            if blank(v) {
                p.push(format!(
                    "objectives[{i}] ({}): {key} is empty",
                    self.scenario
                ));
            }
        }
        let given = [
            self.covered_by.is_some(),
            self.attested_by.is_some(),
            self.attested_at.is_some(),
        ];
        if given.contains(&true) && given.contains(&false) {
            p.push(format!(
                "objectives[{i}] ({}): covered_by, attested_by and attested_at go together: \
                 say what covers the scenario elsewhere, who attests it and when (YYYY-MM-DD)",
                self.scenario
            ));
        }
        p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}

/// A schedule must have a slot within this many years of now (checked in
/// UTC; a time zone moves slots by hours, not years). 29 February passes.
pub const SCHEDULE_HORIZON_YEARS: i64 = 5;

/// A validated cron expression (five fields, six with seconds first, or
/// `@hourly`-style aliases) that fires within [`SCHEDULE_HORIZON_YEARS`].
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser.parse(expr).map_err(|e| {
            format!(
                "invalid cron expression {expr:?}: {e}; write five fields \
                 (minute hour day-of-month month day-of-week), e.g. \"0 * * * *\" for hourly, \
                 or six with seconds first"
            )
        })?;
        // A schedule that never fires would leave its source (or drill, or
        // check) silently undone: refuse it like every other value error.
        let now = chrono::Utc::now();
        let horizon = now + TimeDelta::days(SCHEDULE_HORIZON_YEARS * 365);
        match cron.find_next_occurrence(&now, false) {
            Ok(t) if t <= horizon => {}
            _ => {
                return Err(format!(
                    "the cron expression {expr:?} has no slot in the next {SCHEDULE_HORIZON_YEARS} years \
                     (a day that does not exist in its month, such as 31 February, never comes); \
                     fix the day and month fields"
                ));
            }
        }
        Ok(Schedule {
            expr: expr.trim().to_string(),
            cron,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.expr
    }

    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expr)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Eq for Schedule {}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expr)
    }
}

/// A schedule's time zone: `UTC`, a fixed offset such as `+02:00`, or an
/// IANA name such as `Europe/Berlin` (the chrono-tz database, built in),
/// whose offset follows daylight saving time. Cron slots are computed in the
/// zone's local time (docs/daemon.md, scheduling policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timezone {
    /// UTC or a fixed offset.
    Fixed(FixedOffset),
    /// An IANA time zone.
    Named(chrono_tz::Tz),
}

impl Timezone {
    pub const UTC: Timezone =
        Timezone::Fixed(FixedOffset::east_opt(0).expect("0 is a valid offset"));

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if matches!(s, "UTC" | "utc" | "Etc/UTC" | "Z" | "GMT" | "Etc/GMT") {
            return Ok(Timezone::UTC);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => {
                return s.parse::<chrono_tz::Tz>().map(Timezone::Named).map_err(|_| {
                    format!(
                        "unknown time zone {s:?}; use an IANA name like Europe/Berlin (case matters), UTC, or a fixed offset like +02:00"
                    )
                });
            }
        };
        let bad_offset = || {
            format!(
                "invalid time zone offset {s:?}; use a fixed offset like +02:00 (at most ±14:00), UTC, or an IANA name like Europe/Berlin"
            )
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (h, m): (i32, i32) = match (h.parse(), m.parse()) {
            (Ok(h), Ok(m)) if h <= 14 && m < 60 => (h, m),
            _ => return Err(bad_offset()),
        };
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(Timezone::Fixed)
            .ok_or_else(bad_offset)
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timezone::Fixed(o) if o.local_minus_utc() == 0 => f.write_str("UTC"),
            Timezone::Fixed(o) => write!(f, "{o}"),
            Timezone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timezone::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates configuration text; `origin` names it in messages
/// (a path, or e.g. `<string>`).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut config: Config = serde_saphyr::from_str(text).map_err(|e| parse_error(&e, origin))?;
    config.origin = origin.to_string();
    config.validate()?;
    Ok(config)
}

fn parse_error(e: &serde_saphyr::Error, origin: &str) -> ConfigError {
    let plain = e
        .without_snippet()
        .render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        });
    // The plain rendering ends with " at line L, column C"; the position is
    // shown in front instead.
    let message = match plain.rfind(" at line ") {
        Some(i) => plain[..i].to_string(),
        None => plain.clone(),
    };
    let snippet = if message.contains(SECRET_IN_PLACE) || message.contains(PASSWORD_IN_URL) {
        // The offending line may hold a secret: do not print it.
        String::new()
    } else {
        let rendered = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(origin),
        });
        // Drop the renderer's own "error: line L column C: message" header.
        match rendered.split_once('\n') {
            Some((first, rest)) if first.starts_with("error:") => rest.to_string(),
            _ => rendered,
        }
    };
    match e.location().filter(|l| l.line() > 0) {
        Some(loc) => ConfigError::Parse {
            origin: origin.to_string(),
            line: loc.line(),
            column: loc.column(),
            message,
            snippet,
        },
        None => ConfigError::ParseNoLocation {
            origin: origin.to_string(),
            message,
        },
    }
}

impl Config {
    /// Checks what spans several keys; every problem is reported at once.
    /// [`parse`] and [`load`] call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let repo = &self.repository;
        if repo.s3.is_some() && repo.url.scheme() != "s3" {
            problems.push(format!(
                "repository.s3 is set but repository.url {} is not an s3:// URL",
                repo.url
            ));
        }
        if repo.password.is_some() && repo.key_file.is_some() {
            problems.push("repository: give either password or key_file, not both".to_string());
        }
        if repo.prune_grace.is_some_and(|d| d < TimeDelta::zero()) {
            problems.push("repository.prune_grace must not be negative".to_string());
        }
        if let Some(ol) = &repo.object_lock {
            if repo.url.scheme() != "s3" {
                problems.push(format!(
                    "repository.object_lock is set but repository.url {} is not an s3:// URL (Object Lock is an S3 feature)",
                    repo.url
                ));
            }
            if ol.days == 0 || ol.days > 36_500 {
                problems
                    .push("repository.object_lock.days must be between 1 and 36500".to_string());
            }
        }
        if let Some(serve) = &self.serve {
            problems.extend(serve.problems());
        }
        if let Some(r) = &self.readiness {
            for id in r.attestations.keys() {
                let manual = lifeboat_dr::readiness::MANUAL.iter().map(|m| m.0);
                if !manual.clone().any(|m| m == id) {
                    problems.push(format!(
                        "readiness.attestations.{id}: no manual checklist item has this id; the ids are {}",
                        manual.collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            for (k, v) in [
                ("drill_max_age", r.drill_max_age),
                ("check_max_age", r.check_max_age),
            ] {
                if v.is_some_and(|d| d <= TimeDelta::zero()) {
                    problems.push(format!("readiness.{k} must be positive"));
                }
            }
        }

        let mut scenarios = std::collections::BTreeSet::new();
        for (i, o) in self.objectives.iter().enumerate() {
            if o.scenario.trim().is_empty() {
                problems.push(format!("objectives[{i}]: the scenario name is empty"));
            } else if !scenarios.insert(o.scenario.as_str()) {
                problems.push(format!(
                    "objectives[{i}]: scenario {:?} is listed twice",
                    o.scenario
                ));
            }
            problems.extend(o.attestation_problems(i));
            let covering: Vec<&str> = self
                .sources
                .iter()
                .filter(|(_, s)| s.covers.contains(&o.scenario))
                .map(|(n, _)| n.as_str())
                .collect();
            if o.covered_by.is_some() && !covering.is_empty() && o.rpo > TimeDelta::zero() {
                problems.push(format!(
                    "objectives[{i}] ({}): covered_by is for what Lifeboat cannot measure, but \
                     sources {} cover this scenario and their backups and drills measure it: \
                     remove covered_by, or the scenario from their covers",
                    o.scenario,
                    covering.join(", ")
                ));
            }
        }

        for (name, s) in &self.sources {
            let at = format!("sources.{name}");
            if name.trim().is_empty() {
                problems.push("sources: a source has an empty name".to_string());
            }
            let sections = [
                (SourceKind::Postgres, s.postgres.is_some()),
                (SourceKind::Kube, s.kube.is_some()),
                (SourceKind::Stream, s.stream.is_some()),
            ];
            for (kind, present) in sections {
                if present && kind != s.kind {
                    problems.push(format!(
                        "{at}: kind is {} but it has a {kind}: section; remove it or change the kind",
                        s.kind
                    ));
                }
            }
            match s.kind {
                SourceKind::Postgres if s.postgres.is_none() => problems.push(format!(
                    "{at}: kind is postgres but there is no postgres: section (with at least url:)"
                )),
                SourceKind::Kube if s.kube.is_none() => problems.push(format!(
                    "{at}: kind is kube but there is no kube: section (namespaces, kinds, label_selector)"
                )),
                _ => {}
            }
            if let Some(pg) = &s.postgres {
                let mut names = std::collections::BTreeSet::new();
                for q in &pg.verify_queries {
                    if q.name.trim().is_empty() || q.sql.trim().is_empty() {
                        problems.push(format!(
                            "{at}.postgres.verify_queries: every query needs a name and sql"
                        ));
                    } else if !names.insert(q.name.as_str()) {
                        problems.push(format!(
                            "{at}.postgres.verify_queries: the name {:?} is used twice",
                            q.name
                        ));
                    }
                }
            }
            if let Some(d) = &s.drill {
                match s.kind {
                    SourceKind::Postgres if !d.namespace_map.is_empty() => problems.push(format!(
                        "{at}.drill.namespace_map is for kube sources; a postgres drill restores into drill.scratch or a throwaway PostgreSQL"
                    )),
                    SourceKind::Kube if d.scratch.is_some() || d.scratch_is_copy => problems.push(format!(
                        "{at}.drill.scratch is a database; a kube drill restores into drill.namespace_map"
                    )),
                    SourceKind::Kube if d.namespace_map.is_empty() => problems.push(format!(
                        "{at}.drill: a kube drill needs namespace_map (e.g. {{kubernaut-system: kubernaut-test}}): it never restores into the namespaces it protects"
                    )),
                    SourceKind::Stream => problems.push(format!(
                        "{at}.drill: stream sources cannot be drilled (there is nothing to restore them into and verify)"
                    )),
                    _ => {}
                }
                for (from, to) in &d.namespace_map {
                    if from == to {
                        problems.push(format!(
                            "{at}.drill.namespace_map maps {from} to itself: a drill must not restore into the namespace it protects"
                        ));
                    }
                }
            }
            if s.restore.is_some() && s.kind != SourceKind::Postgres {
                problems.push(format!(
                    "{at}.restore (jobs) is for postgres sources; remove it from this {} source",
                    s.kind
                ));
            }
            if let Some(d) = &s.drill
                && d.scratch_is_copy
                && d.scratch.is_none()
                && s.kind == SourceKind::Postgres
            {
                problems.push(format!(
                    "{at}.drill.scratch_is_copy is set but there is no drill.scratch: a drill without one restores into a throwaway PostgreSQL"
                ));
            }
            let no_program = |argv: &Vec<String>| argv.first().is_none_or(|p| p.is_empty());
            if s.stream.as_ref().is_some_and(|st| no_program(&st.command)) {
                problems.push(format!(
                    "{at}.stream.command: give the program and its arguments, e.g. [tar, -cf, -, /data]"
                ));
            }
            if let Some(st) = &s.stream {
                problems.extend(env_names_problems(&st.env, &format!("{at}.stream.env")));
            }
            let drill_schedule = s.drill.as_ref().is_some_and(|d| d.schedule.is_some());
            if s.timezone.is_some() && s.schedule.is_none() && !drill_schedule {
                problems.push(format!(
                    "{at}.timezone is set but the source has no schedule or drill.schedule for it to apply to; remove it or add the schedule"
                ));
            }
            if s.kind == SourceKind::Stream
                && s.schedule.is_some()
                && s.stream.as_ref().is_none_or(|st| st.command.is_empty())
            {
                problems.push(format!(
                    "{at}.schedule: the daemon backs up a stream source by running its stream.command, and there is none; give stream.command, or remove the schedule and feed it with `lifeboat backup stream --source {name}`"
                ));
            }
            if let Some(q) = &s.quiesce {
                problems.extend(q.problems(&at));
            }
            for c in &s.covers {
                if !scenarios.contains(c.as_str()) {
                    problems.push(format!(
                        "{at}.covers: no objective has scenario {c:?}; add it to objectives or fix the name{}",
                        if scenarios.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (known: {})",
                                scenarios.iter().copied().collect::<Vec<_>>().join(", ")
                            )
                        }
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: self.origin.clone(),
                problems,
            })
        }
    }

    /// The source called `name`, or an error listing the configured ones.
    pub fn source(&self, name: &str) -> Result<&SourceConfig, ConfigError> {
        self.sources
            .get(name)
            .ok_or_else(|| ConfigError::UnknownSource {
                origin: self.origin.clone(),
                name: name.to_string(),
                known: self.sources.keys().cloned().collect(),
            })
    }

    /// The objective for a scenario, if configured.
    pub fn objective(&self, scenario: &str) -> Option<&Objective> {
        self.objectives.iter().find(|o| o.scenario == scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> ConfigError {
        parse(text, "test.yaml").expect_err("should be refused")
    }

    /// The configuration is refused by validation with exactly these
    /// problems (each needle found in one of them, and no other problem).
    fn assert_refused_with(text: &str, needles: &[&str]) {
        let e = parse_err(text);
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("expected validation errors, got {e}");
        };
        let all = problems.join("\n");
        for needle in needles {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), needles.len(), "{all}");
    }

    fn location(e: &ConfigError) -> (u64, u64) {
        match e {
            ConfigError::Parse { line, column, .. } => (*line, *column),
            other => panic!("expected a located parse error, got {other}"),
        }
    }

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    #[test]
    fn every_example_parses() {
        let mut seen = 0;
        let mut entries: Vec<_> = std::fs::read_dir(examples_dir())
            .expect("examples/ exists")
            .map(|e| e.expect("readable examples/").path())
            .collect();
        entries.sort();
        for path in entries {
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                continue;
            }
            load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 2, "expected at least two examples, found {seen}");
    }

    #[test]
    fn serve_section() {
        let c = load(&examples_dir().join("kubernaut.yaml")).unwrap();
        let s = c
            .serve
            .as_ref()
            .expect("kubernaut.yaml has a serve: section");
        assert_eq!(s.listen.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(s.token, Some(SecretRef::Env("LIFEBOAT_API_TOKEN".into())));
        assert_eq!(s.lease, Some(TimeDelta::seconds(60)));
        assert_eq!(s.prune_interval, Some(TimeDelta::hours(24)));
        let e = parse_err("repository: {url: /r}\nserve: {listen: localhost, lease: 1s}\n");
        let all = e.to_string();
        assert!(all.contains("serve.listen \"localhost\""), "{all}");
        assert!(all.contains("serve.lease must be at least 2s"), "{all}");
        let e = parse_err("repository: {url: /r}\nserve:\n  lisen: 0.0.0.0:1\n");
        assert_eq!(location(&e).0, 3, "{e}");
        let e = parse_err("repository: {url: /r}\nserve: {token: hunter2}\n");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn kubernaut_example_holds_the_seed_settings() {
        let c = load(&examples_dir().join("kubernaut.yaml")).unwrap();
        let db = c.source("kubernaut-db").unwrap();
        assert_eq!(db.kind, SourceKind::Postgres);
        assert_eq!(db.schedule.as_ref().unwrap().as_str(), "0 * * * *");
        assert_eq!(
            db.retention.as_ref().unwrap().keep_within_hourly,
            Some(TimeDelta::days(30))
        );
        let pg = db.postgres.as_ref().unwrap();
        assert_eq!(
            pg.url.as_str(),
            "postgresql://kubernaut@postgresql.kubernaut-system:5432/kubernaut"
        );
        assert_eq!(
            pg.password,
            Some(SecretRef::KubernetesSecret(KubernetesSecretRef {
                name: "postgresql-credentials".into(),
                key: "password".into(),
                namespace: Some("kubernaut-system".into()),
            }))
        );
        assert_eq!(pg.verify_queries.len(), 2);
        let q = db.quiesce.as_ref().unwrap();
        assert_eq!(q.deployments, ["data-storage", "context-api"]);
        assert_eq!(q.namespace.as_deref(), Some("kubernaut-system"));
        assert!(!q.resume_on_verify_failure);
        assert_eq!(db.covers, ["database-corruption", "complete-outage"]);

        let cfg = c.source("kubernaut-config").unwrap();
        assert_eq!(cfg.kind, SourceKind::Kube);
        assert_eq!(cfg.schedule.as_ref().unwrap().as_str(), "0 2 * * *");
        assert_eq!(cfg.timezone, Some(Timezone::UTC));
        assert_eq!(
            cfg.retention.as_ref().unwrap().keep_within_daily,
            Some(TimeDelta::days(90))
        );
        let kube = cfg.kube.as_ref().unwrap();
        assert_eq!(kube.namespaces, ["kubernaut-system"]);
        assert_eq!(kube.kinds, ["configmaps", "secrets"]);

        // The seed's §3.1 table, exactly.
        let table: Vec<(&str, TimeDelta, TimeDelta, Priority)> = c
            .objectives
            .iter()
            .map(|o| (o.scenario.as_str(), o.rto, o.rpo, o.priority.unwrap()))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "single-pod-failure",
                    TimeDelta::minutes(1),
                    TimeDelta::zero(),
                    Priority::P0
                ),
                (
                    "service-failure",
                    TimeDelta::minutes(5),
                    TimeDelta::zero(),
                    Priority::P0
                ),
                (
                    "database-corruption",
                    TimeDelta::minutes(30),
                    TimeDelta::hours(1),
                    Priority::P1
                ),
                (
                    "region-failure",
                    TimeDelta::minutes(15),
                    TimeDelta::minutes(5),
                    Priority::P0
                ),
                (
                    "complete-outage",
                    TimeDelta::hours(2),
                    TimeDelta::hours(1),
                    Priority::P1
                ),
            ]
        );
        assert_eq!(c.repository.prune_grace, Some(TimeDelta::hours(1)));
    }

    #[test]
    fn minimal_needs_only_the_url() {
        let c = parse("repository:\n  url: /var/lib/lifeboat/repo\n", "<string>").unwrap();
        assert_eq!(c.repository.url.as_str(), "/var/lib/lifeboat/repo");
        assert_eq!(c.repository.url.scheme(), "file");
        assert!(c.sources.is_empty() && c.objectives.is_empty());
        assert_eq!(c.origin, "<string>");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = "repository:\n  url: /r\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: postgresql://u@h/d\n      pasword: {env: X}\n";
        let e = parse_err(text);
        assert_eq!(location(&e), (8, 7));
        let msg = e.to_string();
        assert!(msg.starts_with("test.yaml:8:7: "), "{msg}");
        assert!(msg.contains("pasword"), "{msg}");
        assert!(msg.contains("--> test.yaml:8:7"), "{msg}");
        assert!(msg.contains("8 |       pasword: {env: X}"), "{msg}");
        assert_eq!(msg.matches("unknown field").count(), 2, "{msg}");

        let e = parse_err("repository:\n  url: /r\n  colour: blue\n");
        assert_eq!(location(&e), (3, 3));
        let e = parse_err("repository: {url: /r}\nextra: 1\n");
        assert_eq!(location(&e), (2, 1));
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {namespaces: kubernaut-system}\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    retention: {keep_last: many}\n    kube: {}\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        let e = parse_err("repository: {url: /r}\nsources:\n  db:\n    kind: mysql\n");
        assert_eq!(location(&e), (4, 11), "{e}");
        assert!(e.to_string().contains("mysql"), "{e}");
    }

    #[test]
    fn missing_url_is_refused() {
        let e = parse_err("repository:\n  password: {env: LIFEBOAT_PASSWORD}\n");
        assert!(e.to_string().contains("url"), "{e}");
        assert!(e.to_string().starts_with("test.yaml"), "{e}");
        let e = parse_err("sources: {}\n");
        assert!(e.to_string().contains("repository"), "{e}");
        let e = parse_err("repository: {url: \"\"}\n");
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn bad_values_name_line_and_column() {
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: stream\n    schedule: \"0 25 * * *\"\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        assert!(e.to_string().contains("invalid cron expression"), "{e}");
        // Years are not accepted; seconds only as a sixth, leading field.
        for bad in ["0 0 0 * * * 2026", "60 * * * * *", "not cron", ""] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "0 * * * *",
            "0 2 * * *",
            "*/15 * * * 1-5",
            "@hourly",
            "@daily",
            "*/2 * * * * *",
            "30 0 * * * *",
        ] {
            Schedule::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    retention:\n      keep_within_daily: 90 days ago\n",
        );
        assert_eq!(location(&e).0, 7, "{e}");
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = parse_err("repository: {url: /r, prune_grace: soon}\n");
        assert_eq!(location(&e).0, 1, "{e}");
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Bxrlin\n",
        );
        assert_eq!(location(&e).0, 6, "{e}");
        assert!(e.to_string().contains("unknown time zone"), "{e}");
        let e = parse_err("repository: {url: \"ftp://x/y\"}\n");
        assert!(
            e.to_string().contains("unsupported repository scheme"),
            "{e}"
        );
    }

    #[test]
    fn timezones() {
        // UTC, under its usual spellings.
        for utc in ["UTC", "Etc/UTC", "GMT", "Z"] {
            assert_eq!(Timezone::parse(utc), Ok(Timezone::UTC), "{utc}");
        }
        assert_eq!(Timezone::UTC.to_string(), "UTC");
        // Fixed offsets.
        let fixed = |s: &str| match Timezone::parse(s) {
            Ok(Timezone::Fixed(o)) => o.local_minus_utc(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(fixed("+02:00"), 7200);
        assert_eq!(fixed("-05:30"), -19800);
        assert_eq!(fixed("+00:00"), 0);
        assert_eq!(Timezone::parse("+02:00").unwrap().to_string(), "+02:00");
        assert!(Timezone::parse("+25:00").is_err());
        assert!(Timezone::parse("+02:75").is_err());
        // IANA names.
        assert_eq!(
            Timezone::parse("Europe/Berlin"),
            Ok(Timezone::Named(chrono_tz::Europe::Berlin))
        );
        assert_eq!(
            Timezone::parse(" America/New_York "),
            Ok(Timezone::Named(chrono_tz::America::New_York))
        );
        assert_eq!(
            Timezone::parse("Europe/Berlin").unwrap().to_string(),
            "Europe/Berlin"
        );
        // Unknown names.
        for bad in ["Mars/Olympus_Mons", "Europe/Berlinn", "CEST", ""] {
            let e = Timezone::parse(bad).unwrap_err();
            assert!(e.contains("unknown time zone"), "{bad}: {e}");
        }
    }

    #[test]
    fn timezones_in_the_file() {
        let zone = |tz: &str| {
            let text = format!(
                "repository: {{url: /r}}\nsources:\n  db:\n    kind: kube\n    kube: {{}}\n    schedule: \"0 2 * * *\"\n    timezone: {tz}\n"
            );
            parse(&text, "<string>")
                .unwrap_or_else(|e| panic!("{tz}: {e}"))
                .source("db")
                .unwrap()
                .timezone
        };
        assert_eq!(
            zone("Europe/Berlin"),
            Some(Timezone::Named(chrono_tz::Europe::Berlin))
        );
        assert_eq!(
            zone("\"+02:00\""),
            Some(Timezone::Fixed(FixedOffset::east_opt(7200).unwrap()))
        );
        assert_eq!(zone("UTC"), Some(Timezone::UTC));
        // An unknown name is refused with its line and column.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Atlantis\n",
        );
        assert_eq!(location(&e), (6, 15), "{e}");
        assert!(
            e.to_string()
                .contains("unknown time zone \"Europe/Atlantis\""),
            "{e}"
        );
    }

    #[test]
    fn secrets_only_by_reference() {
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://kubernaut:hunter2@db/kubernaut\"}\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        assert!(e.to_string().contains("carries a password"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        for url in ["postgresql://u@h/d?password=x", "host=h user=u password=x"] {
            assert!(PgUrl::parse(url).is_err(), "{url}");
        }
        for url in [
            "postgresql://u@h:5432/d",
            "postgresql:///d?host=/run/postgresql",
            "host=h user=u dbname=d",
        ] {
            PgUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        // A plain string is not a secret reference.
        for value in ["hunter2", "12345", "\"quoted secret\""] {
            let e = parse_err(&format!("repository: {{url: /r, password: {value}}}\n"));
            assert_eq!(location(&e).0, 1, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("only referenced"), "{msg}");
            assert!(!msg.contains(value.trim_matches('"')), "{msg}");
        }
        let e = parse_err("repository:\n  url: /r\n  password: {env: \"\"}\n");
        assert_eq!(location(&e).0, 3, "{e}");
        // Exactly one kind of reference.
        let e = parse_err("repository:\n  url: /r\n  password: {env: A, file: /b}\n");
        assert_eq!(location(&e).0, 3, "{e}");
        assert!(e.to_string().contains("exactly one"), "{e}");
        let e = parse_err("repository:\n  url: /r\n  password: {vault: x}\n");
        assert_eq!(location(&e).0, 3, "{e}");
        assert!(e.to_string().contains("vault"), "{e}");
        let e = parse_err(
            "repository:\n  url: /r\n  password:\n    kubernetes_secret: {name: n, key: k, nmespace: x}\n",
        );
        assert_eq!(location(&e), (4, 42), "{e}");
    }

    #[test]
    fn secret_references_parse() {
        let c = parse(
            "repository:\n  url: s3://bucket/prefix\n  password: {file: /etc/lifeboat/pw}\n  s3:\n    endpoint: http://127.0.0.1:9000\n    region: us-east-1\n    allow_http: true\n    access_key_id: {env: AWS_ACCESS_KEY_ID}\n    secret_access_key: {kubernetes_secret: {name: s3, key: secret}}\n",
            "<string>",
        )
        .unwrap();
        assert_eq!(
            c.repository.password,
            Some(SecretRef::File("/etc/lifeboat/pw".into()))
        );
        let s3 = c.repository.s3.unwrap();
        assert!(s3.allow_http);
        assert_eq!(
            s3.access_key_id,
            Some(SecretRef::Env("AWS_ACCESS_KEY_ID".into()))
        );
        assert_eq!(
            s3.secret_access_key.unwrap().to_string(),
            "kubernetes secret s3 key secret"
        );
    }

    #[test]
    fn secret_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = SecretRef::File(path.clone());
        let e = r.resolve().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        assert!(msg.contains("644"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(r.resolve().unwrap(), "s3cret");
        // Only one trailing newline is stripped.
        std::fs::write(&path, "a b\n\n").unwrap();
        assert_eq!(r.resolve().unwrap(), "a b\n");
        std::fs::write(&path, "").unwrap();
        assert!(r.resolve().unwrap_err().to_string().contains("empty"));
        let missing = SecretRef::File(dir.path().join("nope"));
        assert!(missing.resolve().unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn secret_env_and_kubernetes() {
        let var = "LIFEBOAT_CONFIG_TEST_SECRET_THAT_IS_NOT_SET";
        let e = SecretRef::Env(var.into()).resolve().unwrap_err();
        assert!(e.to_string().contains(var), "{e}");
        // PATH is always set; it stands in for a set variable.
        assert!(SecretRef::Env("PATH".into()).resolve().is_ok());
        let e = SecretRef::KubernetesSecret(KubernetesSecretRef {
            name: "postgresql-credentials".into(),
            key: "password".into(),
            namespace: None,
        })
        .resolve()
        .unwrap_err();
        // Outside a running program (no runtime) it cannot be read, and says
        // which reference; reading through the API is tested end to end in
        // tests/kube_cli.rs.
        let msg = e.to_string();
        assert!(
            msg.contains("postgresql-credentials") && msg.contains("cannot be read"),
            "{e}"
        );
    }

    #[test]
    fn drill_and_readiness_sections_are_checked() {
        let text = "\
repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    drill: {schedule: \"0 4 1 * *\", namespace_map: {a: b}}
  cfg:
    kind: kube
    kube: {}
    drill: {namespace_map: {kubernaut-system: kubernaut-system}}
  nomap:
    kind: kube
    kube: {}
    drill: {schedule: \"0 4 1 * *\"}
  s:
    kind: stream
    stream: {command: [cat]}
    drill: {}
readiness:
  drill_max_age: 0s
  attestations:
    on-call: {by: Jane Roe, date: 2026-11-01}
    oncall: {by: Jane Roe, date: 2026-11-01}
";
        assert_refused_with(
            text,
            &[
                "sources.db.drill.namespace_map is for kube sources",
                "sources.cfg.drill.namespace_map maps kubernaut-system to itself",
                "sources.nomap.drill: a kube drill needs namespace_map",
                "sources.s.drill: stream sources cannot be drilled",
                "readiness.drill_max_age must be positive",
                "readiness.attestations.oncall: no manual checklist item has this id; the ids are services-healthy, dr-plan, on-call",
            ],
        );
        // A date that is not YYYY-MM-DD is located like every parse error.
        let e = parse_err(
            "repository: {url: /r}\nreadiness:\n  attestations:\n    on-call: {by: J, date: yesterday}\n",
        );
        assert!(e.to_string().contains("test.yaml:4:"), "{e}");
    }

    /// `covered_by` on an objective: a statement with a name and a date,
    /// for what Lifeboat cannot measure; anything else is refused.
    #[test]
    fn objective_attestations_are_complete_and_only_where_nothing_measures() {
        let ok = parse(
            "repository: {url: /r}
objectives:
  - {scenario: single-pod-failure, rto: 1m, rpo: 0s, priority: P0,
     covered_by: \"Kubernetes restarts pods\", attested_by: alice, attested_at: 2026-11-30}
  - {scenario: region-failure, rto: 15m, rpo: 5m}
",
            "test.yaml",
        )
        .unwrap();
        let o = &ok.objectives[0];
        assert_eq!(o.covered_by.as_deref(), Some("Kubernetes restarts pods"));
        assert_eq!(o.attested_by.as_deref(), Some("alice"));
        assert_eq!(o.attested_at, chrono::NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(ok.objectives[1].covered_by, None);

        assert_refused_with(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    covers: [database-corruption]
objectives:
  - {scenario: single-pod-failure, rto: 1m, rpo: 0s, covered_by: \"Kubernetes\"}
  - {scenario: service-failure, rto: 5m, rpo: 0s, covered_by: \" \", attested_by: bob, attested_at: 2026-11-30}
  - {scenario: database-corruption, rto: 30m, rpo: 1h, covered_by: x, attested_by: bob, attested_at: 2026-11-30}
",
            &[
            "objectives[0] (single-pod-failure): covered_by, attested_by and attested_at go together",
            "objectives[1] (service-failure): covered_by is empty",
            "objectives[2] (database-corruption): covered_by is for what Lifeboat cannot measure, but sources db cover this scenario",
        ],
        );
        // A date that is not YYYY-MM-DD is located like every parse error.
        let e = parse_err(
            "repository: {url: /r}\nobjectives:\n  - {scenario: a, rto: 1m, rpo: 0s, covered_by: k, attested_by: b,\n     attested_at: soon}\n",
        );
        assert!(e.to_string().contains("test.yaml:4:"), "{e}");
    }

    #[test]
    fn restore_jobs_and_scratch_is_copy() {
        let ok = parse(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    restore: {jobs: 4}\n    drill: {scratch: {url: \"postgresql://u@copy/d\"}, scratch_is_copy: true}\n",
            "test.yaml",
        )
        .unwrap();
        let db = &ok.sources["db"];
        assert_eq!(db.restore.and_then(|r| r.jobs).map(Jobs::get), Some(4));
        assert!(db.drill.as_ref().unwrap().scratch_is_copy);
        // 0 jobs: located at the value.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    restore:\n      jobs: 0\n",
        );
        assert_eq!(location(&e).0, 7, "{e}");
        assert!(e.to_string().contains("between 1 and 256, not 0"), "{e}");
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    restore: {jobs: 2, parallel: 3}\n",
        );
        assert_eq!(location(&e).0, 6, "{e}");
        // restore: on a kube source; scratch_is_copy without a scratch.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  k:\n    kind: kube\n    kube: {}\n    restore: {jobs: 2}\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    drill: {scratch_is_copy: true}\n",
        );
        let all = e.to_string();
        assert!(
            all.contains("sources.k.restore (jobs) is for postgres sources")
                && all.contains(
                    "sources.db.drill.scratch_is_copy is set but there is no drill.scratch"
                ),
            "{all}"
        );
    }

    #[test]
    fn cross_checks_are_reported_together() {
        let text = "\
repository: {url: /r, s3: {region: eu-west-1}}
objectives:
  - {scenario: database-corruption, rto: 30m, rpo: 1h}
  - {scenario: database-corruption, rto: 1h, rpo: 1h}
sources:
  a:
    kind: postgres
  b:
    kind: kube
    kube: {}
    postgres: {url: \"postgresql://u@h/d\"}
    covers: [region-failur]
  c:
    kind: stream
    stream: {command: []}
    quiesce: {commands: {pre: [[]]}}
";
        let e = parse_err(text);
        let ConfigError::Invalid { origin, problems } = &e else {
            panic!("expected validation errors, got {e}");
        };
        assert_eq!(origin, "test.yaml");
        let all = problems.join("\n");
        for needle in [
            "repository.s3 is set but",
            "listed twice",
            "sources.a: kind is postgres but there is no postgres: section",
            "sources.b: kind is kube but it has a postgres: section",
            "sources.b.covers: no objective has scenario \"region-failur\"",
            "sources.c.stream.command",
            "sources.c.quiesce.commands.pre",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");
    }

    /// Issue 17: retention rules that keep nothing and schedules that never
    /// fire are refused where they are written, with line and column.
    #[test]
    fn retention_that_keeps_nothing_is_refused_where_it_is_written() {
        let source = |retention: &str| {
            format!(
                "repository: {{url: /r}}\nsources:\n  db:\n    kind: kube\n    kube: {{}}\n    retention:\n{retention}"
            )
        };
        for (rule, column, needle) in [
            ("keep_last: 0", 18, "at least 1, not 0"),
            ("keep_daily: 0", 19, "at least 1, not 0"),
            ("keep_yearly: -1", 20, "at least 1, not -1"),
            ("keep_within: 0s", 20, "longer than 0s, not \"0s\""),
            ("keep_within_daily: 0d", 26, "longer than 0s"),
            ("keep_within_yearly: 0m", 27, "longer than 0s"),
        ] {
            let e = parse_err(&source(&format!("      keep_hourly: 24\n      {rule}\n")));
            assert_eq!(location(&e), (8, column), "{rule}: {e}");
            assert!(e.to_string().contains(needle), "{rule}: {e}");
            assert!(e.to_string().starts_with("test.yaml:8:"), "{rule}: {e}");
        }
        // An empty section is no policy either.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    retention: {}\n",
        );
        assert_eq!(location(&e).0, 6, "{e}");
        assert!(e.to_string().contains("has no rule"), "{e}");
        // Unknown keys are still refused, with the known ones listed.
        let e = parse_err(&source("      keep_lats: 3\n"));
        assert_eq!(location(&e).0, 7, "{e}");
        assert!(e.to_string().contains("keep_last"), "{e}");
        // Every rule, at its smallest useful value, is accepted.
        let c = parse(
            &source(
                "      keep_last: 1\n      keep_hourly: 1\n      keep_daily: 1\n      keep_weekly: 1\n      keep_monthly: 1\n      keep_yearly: 1\n      keep_within: 1s\n      keep_within_hourly: 1h\n      keep_within_daily: 1d\n      keep_within_weekly: 1w\n      keep_within_monthly: 30d\n      keep_within_yearly: 1y\n",
            ),
            "test.yaml",
        )
        .unwrap();
        let p = c.sources["db"].retention.clone().unwrap();
        assert_eq!(p.keep_last, Some(1));
        assert_eq!(p.keep_yearly, Some(1));
        assert_eq!(p.keep_within, Some(TimeDelta::seconds(1)));
        assert_eq!(p.keep_within_yearly, Some(TimeDelta::days(365)));
    }

    #[test]
    fn schedules_that_never_fire_are_refused_where_they_are_written() {
        for (text, line, column) in [
            (
                "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    schedule: \"0 0 31 2 *\"\n",
                6,
                15,
            ),
            (
                "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    drill:\n      namespace_map: {a: b}\n      schedule: \"0 4 30 2 *\"\n",
                8,
                17,
            ),
            (
                "repository: {url: /r}\nserve:\n  check: {schedule: \"0 5 31 4 *\"}\n",
                3,
                21,
            ),
            (
                "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    schedule: \"0 0 0 31 11 *\"\n",
                6,
                15,
            ),
        ] {
            let e = parse_err(text);
            assert_eq!(location(&e), (line, column), "{text}: {e}");
            assert!(
                e.to_string().contains("has no slot in the next 5 years"),
                "{text}: {e}"
            );
        }
        // 29 February comes at least every 8 years; within 5 from now it
        // always does before 2096. Rare but real schedules pass.
        for ok in ["0 0 29 2 *", "0 4 1 1 *", "@yearly", "0 0 31 * *"] {
            Schedule::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // A time zone without a schedule to apply to does nothing either.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Berlin\n",
        );
        assert!(
            e.to_string()
                .contains("sources.db.timezone is set but the source has no schedule"),
            "{e}"
        );
        // A drill schedule is enough.
        parse(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Berlin\n    drill: {schedule: \"0 4 1 * *\", namespace_map: {a: b}}\n",
            "test.yaml",
        )
        .unwrap();
    }

    #[test]
    fn unknown_source_lists_the_known_ones() {
        let c = load(&examples_dir().join("kubernaut.yaml")).unwrap();
        let e = c.source("kubernaut").unwrap_err().to_string();
        assert!(e.contains("kubernaut-config, kubernaut-db"), "{e}");
        assert!(e.contains("kubernaut.yaml"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let e = load(Path::new("/nonexistent/lifeboat.yaml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/lifeboat.yaml"), "{e}");
        assert!(e.to_string().contains("--config"), "{e}");
    }

    #[test]
    fn quiesce_workloads_timeout_and_problems() {
        let ok = parse(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      namespace: kubernaut-system
      deployments: [data-storage, context-api]
      statefulsets: [audit-writer]
      timeout: 2m
",
            "test.yaml",
        )
        .unwrap();
        let q = ok.source("db").unwrap().quiesce.clone().unwrap();
        assert_eq!(q.timeout, Some(TimeDelta::minutes(2)));
        use lifeboat_kube::quiesce::Kind;
        assert_eq!(
            q.workloads(),
            [
                (Kind::Deployment, "data-storage"),
                (Kind::Deployment, "context-api"),
                (Kind::StatefulSet, "audit-writer"),
            ]
        );

        assert_refused_with(
            "repository: {url: /r}
sources:
  a:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce: {namespace: ns, timeout: 1m}
  b:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce: {statefulsets: [w, w, \"\"], timeout: 0s}
",
            &[
                "sources.a.quiesce.namespace is set but no deployments or statefulsets",
                "sources.a.quiesce.timeout is set but no deployments or statefulsets",
                "sources.b.quiesce.statefulsets: a name is empty",
                "sources.b.quiesce.statefulsets: \"w\" is listed twice",
                "sources.b.quiesce.timeout must be longer than 0s",
            ],
        );
        let e = parse_err(
            "repository: {url: /r}
sources:
  a:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce: {deployments: [d], timeout: soon}
",
        );
        assert!(e.to_string().contains("test.yaml:6"), "{e}");
    }

    #[test]
    fn quiesce_commands_take_an_env_list_of_names() {
        let ok = parse(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      commands:
        pre: [[systemctl, stop, app]]
        post:
          - [systemctl, start, app]
          - {command: [kubectl, scale, deploy/x, --replicas=1], env: [KUBECONFIG, HOME]}
",
            "test.yaml",
        )
        .unwrap();
        let c = ok
            .source("db")
            .unwrap()
            .quiesce
            .clone()
            .unwrap()
            .commands
            .unwrap();
        assert_eq!(c.pre[0].argv, ["systemctl", "stop", "app"]);
        assert!(c.pre[0].env.is_empty());
        assert_eq!(c.post[1].argv[0], "kubectl");
        assert_eq!(c.post[1].env, ["KUBECONFIG", "HOME"]);
        assert_eq!(c.post[1].display(), "kubectl scale deploy/x --replicas=1");

        let e = parse_err(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      commands:
        post:
          - {command: [a], env: [\"X=1\", \"\", 9LIVES]}
          - {command: [], env: [OK_NAME]}
",
        );
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("expected validation errors, got {e}");
        };
        let all = problems.join("\n");
        assert_eq!(problems.len(), 4, "{all}");
        assert!(
            all.contains("sources.db.quiesce.commands.post[0].env: \"X=1\""),
            "{all}"
        );
        assert!(all.contains("names only"), "{all}");
        assert!(
            all.contains("every command is a non-empty argument vector"),
            "{all}"
        );

        // An unknown key of the long form is located, like every other.
        let e = parse_err(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      commands:
        post:
          - {argv: [a]}
",
        );
        assert!(e.to_string().contains("test.yaml:9"), "{e}");
    }
}
