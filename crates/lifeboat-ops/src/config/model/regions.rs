//! The multi-region sections (docs/regions/topology.md): `regions:` (each
//! region's PostgreSQL, health checks, Deployments, DNS answer, repository
//! copy and Redis), `traffic:` (who steers DNS between them) and
//! `replication:` (the replication role and the heartbeat).
//!
//! Values that a check spanning several keys may refuse are read as
//! [`Spanned`], so that `config::validation` reports those problems with
//! their line and column like parse errors. Which topologies are impossible
//! is decided by `lifeboat_region::topology::problems` over the plain
//! values [`Config::region_specs`] gives it.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use lifeboat_region::topology::{self, CheckSpec, DnsAnswer, RegionSpec};
use serde::{Deserialize, Serialize};
pub use serde_saphyr::{Location, Spanned};

pub use lifeboat_region::topology::{CheckKind, DeclaredRole, Provider};

use super::S3Config;
use super::urls::{PgUrl, RepoUrl};
use crate::config::schedules::Schedule;
use crate::config::secrets::SecretRef;

/// The objective whose RPO is the replication lag a standby may have.
pub const REGION_FAILURE_SCENARIO: &str = "region-failure";
/// The heartbeat's default interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// The default TTL of the steered records (seconds).
pub const DEFAULT_TTL: u32 = 60;
/// The replication role's default name.
pub const DEFAULT_REPLICATION_USER: &str = "lifeboat_replication";

/// One region (`regions.NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The region's PostgreSQL.
    pub postgres: RegionPostgres,
    /// Endpoints checked with Route 53's semantics; the region is healthy
    /// when all of them are. None: always healthy (as a Route 53 record
    /// without a health check).
    #[serde(default)]
    pub health_checks: Vec<HealthCheckConfig>,
    /// The Deployments that serve in this region.
    #[serde(default)]
    pub deployments: Option<RegionDeployments>,
    /// What the steered name answers for this region; unset: it is not
    /// steered to.
    #[serde(default)]
    pub dns: Option<Spanned<DnsAnswerConfig>>,
    /// A copy of the repository kept in this region (`lifeboat copy`);
    /// unset: the region uses the shared `repository:` only.
    #[serde(default)]
    pub repository: Option<RegionRepository>,
    /// The region's Redis, whose replication `region status` reports (it is
    /// never backed up).
    #[serde(default)]
    pub redis: Option<RedisConfig>,
}

/// How a region's PostgreSQL is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgManager {
    /// A plain instance Lifeboat reaches through `url` (and, in agent mode,
    /// whose data directory and process it controls).
    #[default]
    Postgres,
    /// A Patroni cluster, through its REST API (`patroni:`).
    Patroni,
    /// A CloudNativePG `Cluster` (`cnpg:`).
    Cnpg,
}

impl fmt::Display for PgManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PgManager::Postgres => "postgres",
            PgManager::Patroni => "patroni",
            PgManager::Cnpg => "cnpg",
        })
    }
}

/// `regions.NAME.postgres`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPostgres {
    /// libpq URL without a password, e.g.
    /// `postgresql://kubernaut@postgresql.us-east.kubernaut.io:5432/kubernaut`.
    pub url: PgUrl,
    /// Unset: `PGPASSWORD`, then `~/.pgpass`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// `postgres` (the default), `patroni` or `cnpg`.
    #[serde(default)]
    pub manager: Option<Spanned<PgManager>>,
    /// `primary` or `standby`: what the operator declares. `region status`
    /// observes the real role from the server, which differs after a
    /// failover.
    pub role: Spanned<DeclaredRole>,
    /// A standby's source region (the primary, or a standby for cascading
    /// replication). Required for a standby, refused for the primary.
    #[serde(default)]
    pub replicates_from: Option<Spanned<String>>,
    /// Agent mode: the data directory, where Lifeboat runs beside the
    /// server (same host, or a sidecar in its pod).
    #[serde(default)]
    pub pgdata: Option<Spanned<PathBuf>>,
    /// Agent mode: how the server is started and stopped. Unset: `manager`
    /// for Patroni and CloudNativePG, `pg_ctl` when `pgdata` is given, else
    /// Lifeboat does not start or stop it.
    #[serde(default)]
    pub control: Option<Spanned<ServerControl>>,
    /// With `manager: patroni`.
    #[serde(default)]
    pub patroni: Option<Spanned<PatroniConfig>>,
    /// With `manager: cnpg`.
    #[serde(default)]
    pub cnpg: Option<Spanned<CnpgConfig>>,
}

impl RegionPostgres {
    pub fn manager(&self) -> PgManager {
        self.manager.as_ref().map(|m| m.value).unwrap_or_default()
    }

    pub fn role(&self) -> DeclaredRole {
        self.role.value
    }

    pub fn replicates_from(&self) -> Option<&str> {
        self.replicates_from.as_ref().map(|s| s.value.as_str())
    }

    pub fn pgdata(&self) -> Option<&std::path::Path> {
        self.pgdata.as_ref().map(|p| p.value.as_path())
    }

    /// How the server is started and stopped: as configured, else
    /// `manager` for Patroni and CloudNativePG, `pg_ctl` (found on the
    /// usual paths) with a `pgdata`, else `None`: not by Lifeboat.
    pub fn control(&self) -> Option<ServerControl> {
        if let Some(c) = &self.control {
            return Some(c.value.clone());
        }
        match self.manager() {
            PgManager::Patroni | PgManager::Cnpg => Some(ServerControl::Manager),
            PgManager::Postgres if self.pgdata.is_some() => {
                Some(ServerControl::PgCtl(PgCtlControl::default()))
            }
            PgManager::Postgres => None,
        }
    }
}

/// How an agent starts and stops its PostgreSQL: `pg_ctl` (or
/// `{pg_ctl: {bin_dir: …}}`), `{systemd: {unit: …}}` or `manager`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerControl {
    /// `pg_ctl -D <pgdata> start|stop` as the data directory's owner.
    PgCtl(PgCtlControl),
    /// `systemctl start|stop <unit>`.
    Systemd(SystemdControl),
    /// Through the manager's API (Patroni, CloudNativePG).
    Manager,
}

impl<'de> Deserialize<'de> for ServerControl {
    /// `pg_ctl` and `manager` as a word; `{pg_ctl: {bin_dir: …}}` (or
    /// `{pg_ctl: }`) and `{systemd: {unit: …}}` as a map of one key.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        const EXPECTED: &str =
            "pg_ctl, {pg_ctl: {bin_dir: DIR}}, {systemd: {unit: UNIT}} or manager";
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ServerControl;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<ServerControl, E> {
                match v {
                    "pg_ctl" => Ok(ServerControl::PgCtl(PgCtlControl::default())),
                    "manager" => Ok(ServerControl::Manager),
                    "systemd" => Err(E::custom(
                        "systemd needs the unit: {systemd: {unit: postgresql@16-main.service}}",
                    )),
                    other => Err(E::custom(format!(
                        "unknown control {other:?}; use {EXPECTED}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerControl, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(format!(
                        "an empty control; use {EXPECTED}"
                    )));
                };
                let c = match key.as_str() {
                    "pg_ctl" => ServerControl::PgCtl(
                        map.next_value::<Option<PgCtlControl>>()?
                            .unwrap_or_default(),
                    ),
                    "systemd" => ServerControl::Systemd(map.next_value()?),
                    "manager" => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        ServerControl::Manager
                    }
                    other => {
                        return Err(A::Error::custom(format!(
                            "unknown control {other:?}; use {EXPECTED}"
                        )));
                    }
                };
                if let Some(more) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "give one control, not both {key} and {more}"
                    )));
                }
                Ok(c)
            }
        }
        d.deserialize_any(V)
    }
}

/// `control: {pg_ctl: {}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgCtlControl {
    /// Where `pg_ctl` (and `pg_basebackup`) are; unset: found like the
    /// other client tools.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
}

/// `control: {systemd: {unit: …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdControl {
    /// e.g. `postgresql@15-main.service`.
    pub unit: String,
}

/// `postgres.patroni`: the Patroni REST API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatroniConfig {
    /// e.g. `http://patroni.us-east.kubernaut.io:8008`; no password in it.
    pub url: HttpUrl,
    /// Basic authentication of the API's unsafe endpoints
    /// (`restapi.authentication`), when Patroni requires it.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretRef>,
}

/// `postgres.cnpg`: a CloudNativePG `Cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnpgConfig {
    /// The kubeconfig context of the region's cluster; unset: the one of
    /// `kubernetes:`.
    #[serde(default)]
    pub context: Option<String>,
    pub namespace: String,
    /// The `Cluster`'s name.
    pub cluster: String,
}

/// One health check (`regions.NAME.health_checks[i]`), with Route 53's
/// semantics and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Unique within the region; names the check in metrics and status.
    pub name: Spanned<String>,
    /// `http`, `https` (certificate not validated, like Route 53) or `tcp`.
    #[serde(rename = "type")]
    pub kind: Spanned<CheckKind>,
    /// An IP address or a DNS name.
    pub host: CheckHost,
    /// Unset: 80 for http, 443 for https; tcp needs one.
    #[serde(default)]
    pub port: Option<Spanned<Port>>,
    /// http(s): the path requested, e.g. `/healthz`. Unset: `/`.
    #[serde(default)]
    pub resource_path: Option<Spanned<String>>,
    /// http(s): the response is healthy only if its first 5,120 bytes
    /// contain this (at most 255 characters).
    #[serde(default)]
    pub search_string: Option<Spanned<String>>,
    /// Default 30s; with Route 53 only 10s or 30s.
    #[serde(default)]
    pub request_interval: Option<Spanned<Interval>>,
    /// Consecutive results that flip the verdict either way, 1 to 10;
    /// default 3.
    #[serde(default)]
    pub failure_threshold: Option<Spanned<u32>>,
}

impl HealthCheckConfig {
    /// The check as a plain value, defaults applied (port 0 when a tcp
    /// check has none; the topology check refuses it).
    pub fn spec(&self) -> CheckSpec {
        let kind = self.kind.value;
        CheckSpec {
            name: self.name.value.clone(),
            kind,
            host: self.host.0.clone(),
            port: self
                .port
                .as_ref()
                .map(|p| p.value.0)
                .or(kind.default_port())
                .unwrap_or(0),
            path: match (&self.resource_path, kind) {
                (Some(p), _) => Some(p.value.clone()),
                (None, CheckKind::Tcp) => None,
                (None, _) => Some("/".to_string()),
            },
            search: self.search_string.as_ref().map(|s| s.value.clone()),
            interval: self
                .request_interval
                .as_ref()
                .map(|i| i.value.as_std())
                .unwrap_or(topology::DEFAULT_INTERVAL),
            threshold: self
                .failure_threshold
                .as_ref()
                .map(|t| t.value)
                .unwrap_or(topology::DEFAULT_THRESHOLD),
        }
    }
}

/// A duration written like `30s` or `1m` (whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub TimeDelta);

impl Interval {
    /// As a `std` duration; negative ones as zero.
    pub fn as_std(self) -> Duration {
        self.0.to_std().unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lifeboat_repo::retention::duration::deserialize(d).map(Interval)
    }
}

/// A TCP port, 1 to 65535 (refused where it is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(serde::de::Error::custom(format!(
                "port {n} is not between 1 and 65535"
            ))),
        }
    }
}

/// A Route 53 weight, 0 to 255 (refused where it is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight(pub u8);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u8::try_from(n).map(Weight).map_err(|_| {
            serde::de::Error::custom(format!(
                "weight {n} is not between 0 and 255 (Route 53's range; 0 sends no traffic while another region has weight)"
            ))
        })
    }
}

/// A health check's host: an IP address or a DNS name (no scheme, no
/// port: those are `type` and `port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CheckHost(String);

impl CheckHost {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CheckHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if s.parse::<IpAddr>().is_ok() {
            return Ok(CheckHost(s.to_string()));
        }
        if s.contains("://") {
            return Err(serde::de::Error::custom(format!(
                "host {s:?} is a URL; give only the name or address (the scheme is the check's type, the path its resource_path)"
            )));
        }
        DnsName::parse(s)
            .map(|n| CheckHost(n.0))
            .map_err(serde::de::Error::custom)
    }
}

/// A DNS name (`gateway.kubernaut.io`, a trailing dot allowed): labels of
/// letters, digits, `-` and `_`, at most 63 characters each, 253 in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DnsName(String);

impl DnsName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without a trailing dot, lower case, for comparisons.
    pub fn normalized(&self) -> String {
        self.0.trim_end_matches('.').to_ascii_lowercase()
    }

    fn parse(s: &str) -> Result<Self, String> {
        let bare = s.strip_suffix('.').unwrap_or(s);
        let ok = !bare.is_empty()
            && bare.len() <= 253
            && bare.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if ok {
            Ok(DnsName(s.to_string()))
        } else if s.contains(':') && !s.contains("::") {
            Err(format!(
                "{s:?} is not a DNS name or an IP address; give the port in port:, not after the name"
            ))
        } else {
            Err(format!(
                "{s:?} is not a DNS name or an IP address (labels of letters, digits and -, separated by dots)"
            ))
        }
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DnsName::parse(s.trim()).map_err(serde::de::Error::custom)
    }
}

/// `regions.NAME.deployments`: the Deployments that serve in the region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionDeployments {
    /// The kubeconfig context of the region's cluster; unset: the one of
    /// `kubernetes:`.
    #[serde(default)]
    pub context: Option<String>,
    pub namespace: String,
    pub items: Vec<DeploymentItem>,
}

/// A Deployment and its replica counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentItem {
    pub name: String,
    /// Serving replicas in normal operation.
    pub replicas: u32,
    /// Replicas while this region carries the other regions' traffic
    /// after a failover; unset: `replicas`.
    #[serde(default)]
    pub failover_replicas: Option<u32>,
}

impl DeploymentItem {
    pub fn failover_replicas(&self) -> u32 {
        self.failover_replicas.unwrap_or(self.replicas)
    }
}

/// `regions.NAME.dns`: exactly one of `address` and `target`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsAnswerConfig {
    /// An IPv4 (A) or IPv6 (AAAA) address.
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// A name the steered name points to (CNAME), e.g.
    /// `gateway.us-east.kubernaut.io`; Route 53 only.
    #[serde(default)]
    pub target: Option<DnsName>,
    /// The share of answers (Route 53 weight, 0 to 255); default 100.
    #[serde(default)]
    pub weight: Option<Weight>,
}

impl DnsAnswerConfig {
    /// The answer (`None` when neither or both are given: refused by
    /// validation).
    pub fn answer(&self) -> Option<DnsAnswer> {
        match (&self.address, &self.target) {
            (Some(a), None) => Some(DnsAnswer::Address(*a)),
            (None, Some(t)) => Some(DnsAnswer::Target(t.as_str().to_string())),
            _ => None,
        }
    }

    pub fn weight(&self) -> u8 {
        self.weight.map_or(topology::DEFAULT_WEIGHT, |w| w.0)
    }
}

/// `regions.NAME.repository`: a second repository in this region that the
/// daemon copies snapshots into (`lifeboat copy`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionRepository {
    /// Like `repository.url`.
    pub url: RepoUrl,
    /// The passphrase of one of its key slots; unset (with `key_file`
    /// unset too): the same secret as `repository:`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// A raw key file (mode 0600) instead of a passphrase.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// S3 settings; only with an `s3://` URL.
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// When the daemon copies new snapshots into it (cron, UTC). Unset:
    /// hourly, within the complete-outage RPO of the seed (1h).
    #[serde(default)]
    pub schedule: Option<Schedule>,
}

/// `regions.NAME.redis`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port` or `rediss://…`, no password in it.
    pub url: RedisUrl,
    #[serde(default)]
    pub password: Option<SecretRef>,
}

/// `traffic:`: the name steered between the regions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// `route53` or `rfc2136`; its section is required.
    pub provider: Spanned<Provider>,
    /// The steered name, e.g. `gateway.kubernaut.io`.
    pub name: Spanned<DnsName>,
    /// The records' TTL in seconds; default 60.
    #[serde(default)]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub route53: Option<Spanned<Route53Config>>,
    #[serde(default)]
    pub rfc2136: Option<Spanned<Rfc2136Config>>,
}

impl TrafficConfig {
    pub fn provider(&self) -> Provider {
        self.provider.value
    }

    pub fn name(&self) -> &DnsName {
        &self.name.value
    }

    pub fn ttl(&self) -> u32 {
        self.ttl.unwrap_or(DEFAULT_TTL)
    }
}

/// `traffic.route53`. Credentials come from the standard AWS chain
/// (environment, profile, web identity, instance role).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53Config {
    /// e.g. `Z0123456789ABCDEFGHIJ`.
    pub hosted_zone_id: String,
    /// Another endpoint than AWS's (a test server such as moto).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `traffic.rfc2136`: dynamic updates to an authoritative server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rfc2136Config {
    /// `host:port` of the primary authoritative server, e.g.
    /// `ns1.kubernaut.io:53` or `[2001:db8::53]:53`.
    pub server: String,
    /// The zone updated; `traffic.name` must be in it.
    pub zone: DnsName,
    pub tsig: TsigConfig,
}

/// A TSIG key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigConfig {
    /// The key's name as the server knows it.
    pub name: String,
    #[serde(default)]
    pub algorithm: TsigAlgorithm,
    /// The key, base64 as `tsig-keygen` prints it.
    pub secret: SecretRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
pub enum TsigAlgorithm {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// `replication:`: settings of every region's streaming replication.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// The role standbys connect as; created on the primary by `region
    /// replicate`. Default `lifeboat_replication`.
    #[serde(default)]
    pub user: Option<String>,
    /// Its password; unset: none (pg_hba `trust` or `cert`, or `~/.pgpass`).
    #[serde(default)]
    pub password: Option<SecretRef>,
    #[serde(default)]
    pub heartbeat: Option<HeartbeatConfig>,
    /// The primary names every other region in `synchronous_standby_names`
    /// (`ANY 1 (…)`): a commit returns once one standby has flushed it.
    /// Set on the primary whenever a standby has come to follow it (region
    /// replicate, rejoin, switchover); every promotion clears it on the
    /// promoted server. Default false (docs/failover.md, "Synchronous
    /// replication").
    #[serde(default)]
    pub synchronous: bool,
}

/// `replication.heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// How often the daemon writes the heartbeat row on the primary;
    /// default 1s.
    #[serde(default)]
    pub interval: Option<Spanned<Interval>>,
}

/// A Redis URL (`redis://` or `rediss://`), refused with a password in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::urls::checked_url(&s, &["redis", "rediss"], "Redis")
            .map(RedisUrl)
            .map_err(serde::de::Error::custom)
    }
}

/// An HTTP(S) URL, refused with a password in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::urls::checked_url(&s, &["http", "https"], "HTTP")
            .map(HttpUrl)
            .map_err(serde::de::Error::custom)
    }
}

impl RegionConfig {
    /// The region's health checks as plain values, defaults applied.
    pub fn check_specs(&self) -> Vec<CheckSpec> {
        self.health_checks.iter().map(|c| c.spec()).collect()
    }

    /// What DNS answers for it, if it is steered to.
    pub fn answer(&self) -> Option<DnsAnswer> {
        self.dns.as_ref().and_then(|d| d.value.answer())
    }

    /// Its weight (default 100).
    pub fn weight(&self) -> u8 {
        self.dns
            .as_ref()
            .map(|d| d.value.weight())
            .unwrap_or(topology::DEFAULT_WEIGHT)
    }

    /// The region as a plain value.
    pub fn spec(&self, name: &str) -> RegionSpec {
        RegionSpec {
            name: name.to_string(),
            role: self.postgres.role(),
            replicates_from: self.postgres.replicates_from().map(String::from),
            checks: self.check_specs(),
            answer: self.answer(),
            weight: self.weight(),
        }
    }

    /// Where the region's `postgres.role` is written: the place problems
    /// about the region as a whole point at.
    pub(crate) fn location(&self) -> Location {
        self.postgres.role.referenced
    }
}

impl super::Config {
    /// The regions, by name (empty without a `regions:` section).
    pub fn regions(&self) -> &std::collections::BTreeMap<String, RegionConfig> {
        &self.regions
    }

    /// The region called `name`, or an error listing the configured ones.
    pub fn region(&self, name: &str) -> Result<&RegionConfig, crate::config::ConfigError> {
        self.regions
            .get(name)
            .ok_or_else(|| crate::config::ConfigError::UnknownRegion {
                origin: self.origin.clone(),
                name: name.to_string(),
                known: self.regions.keys().cloned().collect(),
            })
    }

    /// The region declared primary (validation allows one at most; none
    /// without regions).
    pub fn primary_region(&self) -> Option<&str> {
        self.regions
            .iter()
            .find(|(_, r)| r.postgres.role() == DeclaredRole::Primary)
            .map(|(n, _)| n.as_str())
    }

    /// The regions that replicate from `region`, in the file's order.
    pub fn standbys_of(&self, region: &str) -> Vec<&str> {
        self.regions_in_file_order()
            .into_iter()
            .filter(|(_, r)| r.postgres.replicates_from() == Some(region))
            .map(|(n, _)| n)
            .collect()
    }

    /// The regions in the order the file lists them.
    pub fn regions_in_file_order(&self) -> Vec<(&str, &RegionConfig)> {
        let mut v: Vec<(&str, &RegionConfig)> =
            self.regions.iter().map(|(n, r)| (n.as_str(), r)).collect();
        v.sort_by_key(|(_, r)| {
            let l = r.location();
            (l.line(), l.column())
        });
        v
    }

    /// Every region as a plain value, in the file's order.
    pub fn region_specs(&self) -> Vec<RegionSpec> {
        self.regions_in_file_order()
            .into_iter()
            .map(|(n, r)| r.spec(n))
            .collect()
    }

    /// Who steers traffic, if anyone.
    pub fn traffic_provider(&self) -> Option<Provider> {
        self.traffic.as_ref().map(|t| t.provider())
    }

    /// How often the heartbeat is written (default 1s).
    pub fn heartbeat_interval(&self) -> Duration {
        self.replication
            .as_ref()
            .and_then(|r| r.heartbeat.as_ref())
            .and_then(|h| h.interval.as_ref())
            .map(|i| i.value.as_std())
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL)
    }

    /// The replication role's name (default `lifeboat_replication`).
    /// `replication.synchronous`.
    pub fn replication_synchronous(&self) -> bool {
        self.replication.as_ref().is_some_and(|r| r.synchronous)
    }

    /// The standbys a primary in `primary` names when
    /// `replication.synchronous` is on: every other region.
    pub fn synchronous_standbys(&self, primary: &str) -> Vec<&str> {
        self.regions
            .keys()
            .map(String::as_str)
            .filter(|n| *n != primary)
            .collect()
    }

    pub fn replication_user(&self) -> &str {
        self.replication
            .as_ref()
            .and_then(|r| r.user.as_deref())
            .unwrap_or(DEFAULT_REPLICATION_USER)
    }

    /// The replication lag a standby may have: the RPO of the
    /// `region-failure` objective (the seed's 5m); `None` without it (lag
    /// is then reported but not judged).
    pub fn lag_objective(&self) -> Option<TimeDelta> {
        self.objective(REGION_FAILURE_SCENARIO).map(|o| o.rpo)
    }
}
