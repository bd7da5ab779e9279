//! Patroni as a standby region's manager: the region's Patroni cluster
//! becomes a *standby cluster* of the primary region by the dynamic
//! configuration's `standby_cluster` section, written through Patroni's REST
//! API (`PATCH /config`); its leader then becomes the `standby_leader` and
//! streams from the primary.
//!
//! What is pure (tested with tables and with JSON captured from a real
//! Patroni 3.0.2): the settings ([`standby_cluster_settings`],
//! [`StandbyClusterSettings::patch_body`]), the verdict on a cluster view
//! ([`standby_state`]), the refusal of a cluster holding another database
//! ([`check_same_system`]), and parsing `GET /cluster` and `GET /patroni`
//! ([`parse_cluster`], [`parse_node_status`]). The IO edges: [`PatroniApi`]
//! (plain HTTP/1.1 through hyper, optional basic auth, retried with backoff
//! on transport errors, 5xx and Patroni's 409 "the configuration changed
//! meanwhile") and [`wait_streaming`] (a bounded poll of `GET /cluster` and of
//! the primary's `pg_stat_replication`).
//!
//! Facts about Patroni 3.0.2 this relies on (read in its code,
//! `patroni/api.py`, `patroni/ha.py`, `patroni/utils.py`, and seen):
//! - `PATCH /config` merges the body into the configuration in the DCS (a
//!   `null` removes a key) and answers the whole resulting configuration; 409
//!   when another writer changed it between read and write, 503 before the
//!   cluster has a configuration.
//! - A member's `state` in `GET /cluster` is `running` for a running server
//!   in 3.0 (`streaming` only from 3.1 on): the manager's view alone does not
//!   say that WAL arrives. The evidence is the primary's `pg_stat_replication`
//!   row whose `application_name` is the standby leader's member name (Patroni
//!   puts the member name in `primary_conninfo`).
//! - Patroni does not re-clone a data directory when `standby_cluster` is
//!   set on a running cluster: its leader is demoted and restarted following
//!   the remote primary. A cluster bootstrapped by its own `initdb` has
//!   another system identifier and can never stream from the primary; hence
//!   [`check_same_system`] before the `PATCH`. A standby region's Patroni
//!   cluster is bootstrapped from the primary (`bootstrap.dcs.standby_cluster`).
//!
//! The REST API password is a [`Secret`]: sent only in the `Authorization`
//! header, in no log, error or `Debug` output.

use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::AUTHORIZATION;
use lifeboat_postgres::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// --- settings (pure) ------------------------------------------------------------

/// The `standby_cluster` section Lifeboat writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyClusterSettings {
    /// The primary region's PostgreSQL host, as the standby reaches it.
    pub host: String,
    pub port: u16,
    /// The physical replication slot on the primary (created there before).
    pub primary_slot_name: Option<String>,
    /// How a member without data is seeded: always `basebackup` (streamed
    /// from the primary; Lifeboat configures no archive-based method here).
    pub create_replica_methods: Vec<String>,
}

/// Why settings cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the primary's host is empty: give the host the standby region reaches the primary at")]
    EmptyHost,
    #[error("the primary's port is 0: give the port PostgreSQL listens on (usually 5432)")]
    ZeroPort,
    #[error(
        "{0:?} is not a valid replication slot name: PostgreSQL allows 1 to 63 characters of \
         lower-case letters, digits and underscores"
    )]
    BadSlotName(String),
}

/// The `standby_cluster` settings for a standby of the primary at
/// `primary_host:primary_port`, streaming through `slot` when given.
pub fn standby_cluster_settings(
    primary_host: &str,
    primary_port: u16,
    slot: Option<&str>,
) -> Result<StandbyClusterSettings, SettingsError> {
    let host = primary_host.trim();
    if host.is_empty() {
        return Err(SettingsError::EmptyHost);
    }
    if primary_port == 0 {
        return Err(SettingsError::ZeroPort);
    }
    if let Some(s) = slot {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(SettingsError::BadSlotName(s.to_string()));
        }
    }
    Ok(StandbyClusterSettings {
        host: host.to_string(),
        port: primary_port,
        primary_slot_name: slot.map(str::to_string),
        create_replica_methods: vec!["basebackup".to_string()],
    })
}

impl StandbyClusterSettings {
    /// The body of `PATCH /config` for a cluster whose configuration has
    /// no `standby_cluster` yet: without a slot, `primary_slot_name` is
    /// left out (not `null`: Patroni 3.0.2 stores a `null` inside a section
    /// it adds, and then fails to follow with a `NoneType` error, seen in
    /// tests/patroni.rs).
    pub fn patch_body(&self) -> Value {
        self.patch_body_against(&Value::Null)
    }

    /// The body of `PATCH /config` given the current configuration (`GET
    /// /config`): `primary_slot_name` is sent as `null` only to remove a slot
    /// the current `standby_cluster` names (PATCH merges; `null` removes a
    /// key that exists).
    pub fn patch_body_against(&self, current: &Value) -> Value {
        let mut sc = json!({
            "host": self.host,
            "port": self.port,
            "create_replica_methods": self.create_replica_methods,
        });
        match &self.primary_slot_name {
            Some(slot) => sc["primary_slot_name"] = json!(slot),
            None => {
                let has_slot = current
                    .get("standby_cluster")
                    .and_then(|c| c.get("primary_slot_name"))
                    .is_some_and(|v| !v.is_null());
                if has_slot {
                    sc["primary_slot_name"] = Value::Null;
                }
            }
        }
        json!({ "standby_cluster": sc })
    }

    /// What `region replicate` prints: the exact request body.
    pub fn render(&self) -> String {
        format!(
            "PATCH /config\n{}",
            serde_json::to_string_pretty(&self.patch_body()).unwrap_or_default()
        )
    }

    /// Whether a configuration (the answer of `GET`/`PATCH /config`) holds
    /// these settings.
    pub fn is_in(&self, config: &Value) -> bool {
        let Some(sc) = config.get("standby_cluster") else {
            return false;
        };
        let port_ok = match sc.get("port") {
            Some(Value::Number(n)) => n.as_u64() == Some(u64::from(self.port)),
            Some(Value::String(s)) => s.parse::<u16>().ok() == Some(self.port),
            _ => false,
        };
        let slot = sc.get("primary_slot_name").and_then(Value::as_str);
        let methods_ok =
            sc.get("create_replica_methods") == Some(&json!(self.create_replica_methods));
        sc.get("host").and_then(Value::as_str) == Some(self.host.as_str())
            && port_ok
            && methods_ok
            && slot == self.primary_slot_name.as_deref()
    }
}

/// The body of `PATCH /config` that makes a standby cluster a regular one
/// again (its standby leader is promoted): `standby_cluster` removed.
pub fn leave_standby_body() -> Value {
    json!({ "standby_cluster": null })
}

/// Whether a dynamic configuration (`GET /config`, or a `PATCH /config`
/// answer) has no `standby_cluster` left: absent, `null`, or empty.
pub fn standby_cluster_removed(config: &Value) -> bool {
    match config.get("standby_cluster") {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

/// The body of `PATCH /config` that makes `slot` one of the cluster's
/// permanent physical slots (`slots:`): Patroni then creates it on its
/// leader and keeps it, where it drops a physical slot it does not know.
/// Needed for every slot Lifeboat makes on a Patroni-managed primary (a
/// standby region streaming from it: `region replicate`, `region rejoin`).
pub fn permanent_slot_body(slot: &str) -> Value {
    json!({ "slots": { slot: { "type": "physical" } } })
}

/// Whether a dynamic configuration lists `slot` as a permanent physical
/// slot.
pub fn holds_permanent_slot(config: &Value, slot: &str) -> bool {
    config
        .get("slots")
        .and_then(|s| s.get(slot))
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        == Some("physical")
}

/// Refuses a Patroni cluster whose database is not the primary's: Patroni
/// would restart it following the primary, and PostgreSQL would refuse to
/// stream ("database system identifier differs"). Both identifiers as the
/// servers report them (`/patroni`'s `database_system_identifier`, the
/// primary's `pg_control_system()`).
pub fn check_same_system(patroni_sysid: &str, primary_sysid: &str) -> Result<(), String> {
    if patroni_sysid.trim() == primary_sysid.trim() {
        Ok(())
    } else {
        Err(format!(
            "the Patroni cluster holds another database (system identifier {patroni_sysid}, \
             the primary's is {primary_sysid}): Patroni does not re-clone a running cluster, so \
             it would never stream. Bootstrap the standby region's Patroni cluster from the \
             primary (bootstrap.dcs.standby_cluster with these settings, on empty data \
             directories), or remove its data and members and let it bootstrap again"
        ))
    }
}

/// What `region replicate` may do with a Patroni cluster, decided from what
/// its node says (`GET /patroni`) and the primary's system identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum TargetVerdict {
    /// It holds the primary's database and is not a primary: write the
    /// settings and wait for streaming.
    Proceed,
    /// It holds another database and `--replace` was given: the settings
    /// are written, but it cannot stream until re-bootstrapped.
    ProceedOtherDatabase { message: String },
    /// It holds another database and `--replace` was not given.
    RefuseOtherDatabase { message: String },
    /// Its node is a primary of the primary's own database: the primary
    /// region itself (a configuration pointing twice at one cluster) or a
    /// second primary; demoting it could stop the only writer. Refused even
    /// with `--replace`.
    RefuseSamePrimary,
    /// Its PostgreSQL reports no system identifier (not running, or still
    /// bootstrapping): nothing can be judged yet.
    Unknown { state: String },
}

/// The verdict on a Patroni node for a standby of the primary whose system
/// identifier is `primary_sysid` (pure).
pub fn target_verdict(node: &NodeStatus, primary_sysid: &str, replace: bool) -> TargetVerdict {
    let Some(sysid) = node.system_identifier.as_deref() else {
        return TargetVerdict::Unknown {
            state: node.state.clone(),
        };
    };
    match check_same_system(sysid, primary_sysid) {
        Ok(()) if node.role == NodeRole::Primary => TargetVerdict::RefuseSamePrimary,
        Ok(()) => TargetVerdict::Proceed,
        Err(message) if replace => TargetVerdict::ProceedOtherDatabase { message },
        Err(message) => TargetVerdict::RefuseOtherDatabase { message },
    }
}

/// The part of a Patroni node's configuration file that bootstraps a
/// standby region's cluster from the primary (pure; printed when the
/// cluster is not there yet or holds another database): the dynamic
/// configuration's `standby_cluster` and the replication credentials its
/// members stream with. The password is named by where it comes from,
/// never written here.
pub fn bootstrap_yaml(settings: &StandbyClusterSettings, replication_user: &str) -> String {
    format!(
        "bootstrap:\n  dcs:\n    standby_cluster:\n      host: {host}\n      port: {port}\n      \
         create_replica_methods: [basebackup]\npostgresql:\n  authentication:\n    \
         replication:\n      username: {replication_user}\n      \
         password: <replication.password of Lifeboat's configuration>\n",
        host = settings.host,
        port = settings.port,
    )
}

// --- what Patroni says (pure parsing) ---------------------------------------------

/// A member's role in `GET /cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Leader,
    StandbyLeader,
    SyncStandby,
    Replica,
    Other(String),
}

impl MemberRole {
    fn from_str(s: &str) -> Self {
        match s {
            // `leader` in every 3.x; `master`/`primary` are GET /patroni's
            // words, accepted here too.
            "leader" | "master" | "primary" => MemberRole::Leader,
            "standby_leader" => MemberRole::StandbyLeader,
            "sync_standby" => MemberRole::SyncStandby,
            "replica" => MemberRole::Replica,
            other => MemberRole::Other(other.to_string()),
        }
    }
}

/// One member of `GET /cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub role: MemberRole,
    /// `running`, `streaming` (3.1+), `starting`, `stopped`, `creating
    /// replica`, `start failed`, ...
    pub state: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub timeline: Option<u64>,
    /// Bytes behind the cluster's leader (Patroni gives none for the leader
    /// itself and `unknown` when it has no position).
    pub lag_bytes: Option<u64>,
}

/// `GET /cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub members: Vec<Member>,
    /// Patroni's maintenance mode (`pause`).
    pub paused: bool,
}

/// The role `GET /patroni` reports for the node answering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// `master` (3.0) or `primary`.
    Primary,
    StandbyLeader,
    Replica,
    Other(String),
}

/// `GET /patroni`: the answering node's own view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub role: NodeRole,
    pub state: String,
    pub timeline: Option<u64>,
    pub system_identifier: Option<String>,
    /// On a standby: the last WAL position received and replayed (bytes).
    pub received_lsn: Option<u64>,
    pub replayed_lsn: Option<u64>,
    /// On a standby: the commit time of the last replayed transaction.
    pub replayed_timestamp: Option<String>,
    /// On a primary: its current WAL position.
    pub primary_lsn: Option<u64>,
    /// Bytes received but not yet replayed.
    pub replay_lag_bytes: Option<u64>,
    pub patroni_version: Option<String>,
    pub cluster_unlocked: bool,
}

/// A body that is not the JSON Patroni answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Patroni's {what} answer is not what Patroni 3 sends: {message}")]
pub struct ParseError {
    pub what: &'static str,
    pub message: String,
}

fn parse_json(what: &'static str, body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError {
        what,
        message: e.to_string(),
    })
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Parses `GET /cluster`.
pub fn parse_cluster(body: &[u8]) -> Result<ClusterView, ParseError> {
    let v = parse_json("GET /cluster", body)?;
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError {
            what: "GET /cluster",
            message: "no `members` list".into(),
        })?;
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ParseError {
                what: "GET /cluster",
                message: "a member without a `name`".into(),
            })?;
        out.push(Member {
            name: name.to_string(),
            role: MemberRole::from_str(m.get("role").and_then(Value::as_str).unwrap_or("")),
            state: m
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            host: m.get("host").and_then(Value::as_str).map(str::to_string),
            port: u64_of(m.get("port")).and_then(|p| u16::try_from(p).ok()),
            timeline: u64_of(m.get("timeline")),
            lag_bytes: u64_of(m.get("lag")),
        });
    }
    Ok(ClusterView {
        members: out,
        paused: v.get("pause").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Parses `GET /patroni` (answered with 200 or 503 alike: the body is the
/// same status).
pub fn parse_node_status(body: &[u8]) -> Result<NodeStatus, ParseError> {
    let v = parse_json("GET /patroni", body)?;
    let role = match v.get("role").and_then(Value::as_str) {
        Some("master") | Some("primary") => NodeRole::Primary,
        Some("standby_leader") => NodeRole::StandbyLeader,
        Some("replica") => NodeRole::Replica,
        Some(other) => NodeRole::Other(other.to_string()),
        None => {
            return Err(ParseError {
                what: "GET /patroni",
                message: "no `role`".into(),
            });
        }
    };
    let xlog = v.get("xlog");
    let received = u64_of(xlog.and_then(|x| x.get("received_location")));
    let replayed = u64_of(xlog.and_then(|x| x.get("replayed_location")));
    Ok(NodeStatus {
        role,
        state: v
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        timeline: u64_of(v.get("timeline")),
        system_identifier: v
            .get("database_system_identifier")
            .and_then(Value::as_str)
            .map(str::to_string),
        received_lsn: received,
        replayed_lsn: replayed,
        replayed_timestamp: xlog
            .and_then(|x| x.get("replayed_timestamp"))
            .and_then(Value::as_str)
            .map(str::to_string),
        primary_lsn: u64_of(xlog.and_then(|x| x.get("location"))),
        replay_lag_bytes: match (received, replayed) {
            (Some(r), Some(p)) => Some(r.saturating_sub(p)),
            _ => None,
        },
        patroni_version: v
            .get("patroni")
            .and_then(|p| p.get("version"))
            .and_then(Value::as_str)
            .map(str::to_string),
        cluster_unlocked: v
            .get("cluster_unlocked")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// What a cluster view says about the cluster being a running standby.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum StandbyState {
    /// A standby leader whose server runs (`running` in 3.0, `streaming` in
    /// 3.1+). Whether WAL arrives is the primary's `pg_stat_replication`'s
    /// to say.
    Running { standby_leader: String },
    /// The standby leader's server is not running (yet).
    NotRunning {
        standby_leader: String,
        state: String,
    },
    /// The cluster has a regular leader: not a standby cluster (the
    /// `standby_cluster` setting is not in effect).
    RegularLeader { leader: String },
    /// No leader of either kind (bootstrapping, or the lock expired).
    NoLeader,
}

/// The verdict on a `GET /cluster` view.
pub fn standby_state(view: &ClusterView) -> StandbyState {
    if let Some(m) = view
        .members
        .iter()
        .find(|m| m.role == MemberRole::StandbyLeader)
    {
        return if m.state == "running" || m.state == "streaming" {
            StandbyState::Running {
                standby_leader: m.name.clone(),
            }
        } else {
            StandbyState::NotRunning {
                standby_leader: m.name.clone(),
                state: m.state.clone(),
            }
        };
    }
    match view.members.iter().find(|m| m.role == MemberRole::Leader) {
        Some(m) => StandbyState::RegularLeader {
            leader: m.name.clone(),
        },
        None => StandbyState::NoLeader,
    }
}

/// What a cluster view says about a promotion (`standby_cluster` removed
/// through `/config`): Patroni demotes its standby leader's role to
/// nothing and takes the leader key as a regular leader, promoting its
/// server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum PromotionState {
    /// A regular leader whose server runs: the cluster left standby mode.
    /// Whether it takes writes is the server's to say (`pg_is_in_recovery()`
    /// and a commit).
    Promoted { leader: String },
    /// Still a standby cluster: Patroni has not applied the change yet.
    StillStandby { standby_leader: String },
    /// A regular leader whose server does not run (yet).
    LeaderNotRunning { leader: String, state: String },
    /// No leader of either kind (the lock expired, or being taken).
    NoLeader,
    /// Maintenance mode (`pause`): Patroni changes nothing until resumed.
    Paused,
}

/// The verdict on a `GET /cluster` view while a promotion is awaited.
pub fn promotion_state(view: &ClusterView) -> PromotionState {
    if view.paused {
        return PromotionState::Paused;
    }
    match standby_state(view) {
        StandbyState::Running { standby_leader }
        | StandbyState::NotRunning { standby_leader, .. } => {
            PromotionState::StillStandby { standby_leader }
        }
        StandbyState::NoLeader => PromotionState::NoLeader,
        StandbyState::RegularLeader { leader } => {
            let state = view
                .members
                .iter()
                .find(|m| m.name == leader)
                .map(|m| m.state.clone())
                .unwrap_or_default();
            if state == "running" || state == "streaming" {
                PromotionState::Promoted { leader }
            } else {
                PromotionState::LeaderNotRunning { leader, state }
            }
        }
    }
}

// --- the REST API client (IO) ------------------------------------------------------

/// Basic-auth credentials of Patroni's `restapi.authentication`.
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Backoff for idempotent calls: `attempts` tries, the delay doubling from
/// `first_delay` up to `max_delay`.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

/// Errors of the REST API calls and the streaming check.
#[derive(Debug, thiserror::Error)]
pub enum PatroniError {
    #[error(
        "{0:?} is not a Patroni REST API address Lifeboat can use: give http://host:port \
         (https is not supported yet)"
    )]
    BadUrl(String),
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error(
        "Patroni's REST API at {url} did not answer {what} after {attempts} attempt(s): \
         {message}; check that Patroni runs and the address is right"
    )]
    Unreachable {
        url: String,
        what: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "Patroni at {url} refused {what} (HTTP {status}): check the REST API username and \
         password (restapi.authentication) and its allowlist"
    )]
    Denied {
        url: String,
        what: String,
        status: u16,
    },
    #[error("Patroni at {url} answered {what} with HTTP {status}: {body}")]
    Status {
        url: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("Patroni accepted the PATCH but its configuration does not hold the settings: {0}")]
    NotApplied(String),
    #[error("{0}")]
    OtherDatabase(String),
    #[error("the primary's pg_stat_replication could not be read: {0}")]
    Primary(String),
    #[error(
        "the standby cluster did not stream within {waited_s} s: {last}; look at Patroni's log \
         on the standby leader and at the primary's log (pg_hba.conf, the replication role, the \
         slot)"
    )]
    NotStreaming { waited_s: u64, last: String },
}

/// A Patroni node's REST API: `http://host:port`, optional basic auth.
#[derive(Clone, Debug)]
pub struct PatroniApi {
    host: String,
    port: u16,
    credentials: Option<BasicAuth>,
    /// Per request (connect, send, read the body).
    timeout: Duration,
    retry: Retry,
}

impl PatroniApi {
    /// `url` is `http://host:port` (a trailing `/` is allowed).
    pub fn new(url: &str, credentials: Option<BasicAuth>) -> Result<Self, PatroniError> {
        let bad = || PatroniError::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
            return Err(bad());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (authority, 8008),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(PatroniApi {
            host: host.to_string(),
            port,
            credentials,
            timeout: Duration::from_secs(10),
            retry: Retry::default(),
        })
    }

    /// Replaces the per-request timeout (a fence has seconds, not tens).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the backoff (tests use short ones).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    /// One request; `Err` is a transport failure (retried by the caller).
    async fn once(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Bytes), String> {
        let mut headers = Vec::new();
        if let Some(c) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                c.username,
                c.password.expose()
            ));
            headers.push((AUTHORIZATION, format!("Basic {token}")));
        }
        crate::http1::request(
            (&self.host, self.port),
            method,
            path,
            &headers,
            body.map(<[u8]>::to_vec),
            self.timeout,
        )
        .await
    }

    /// A request retried with backoff on transport errors, 5xx and 409.
    /// Only for idempotent requests (GET, and PATCHes that set values).
    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Bytes, PatroniError> {
        let what = format!("{method} {path}");
        let mut delay = self.retry.first_delay;
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.once(method.clone(), path, body).await {
                Ok((status, bytes)) if (200..300).contains(&status) => return Ok(bytes),
                Ok((status @ (401 | 403), _)) => {
                    return Err(PatroniError::Denied {
                        url: self.url(),
                        what,
                        status,
                    });
                }
                Ok((status, bytes)) if status >= 500 || status == 409 => {
                    last = format!("HTTP {status}: {}", excerpt(&bytes));
                }
                // GET /patroni answers 503 with a full status too, but that
                // is >= 500 and retried above; the caller of `node_status`
                // reads 503 bodies itself.
                Ok((status, bytes)) => {
                    return Err(PatroniError::Status {
                        url: self.url(),
                        what,
                        status,
                        body: excerpt(&bytes),
                    });
                }
                Err(e) => last = e,
            }
            if attempt < attempts {
                tracing::debug!(url = %self.url(), %what, attempt, error = %last, "Patroni REST API call failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.retry.max_delay);
            }
        }
        Err(PatroniError::Unreachable {
            url: self.url(),
            what,
            attempts,
            message: last,
        })
    }

    /// `GET /config`: the dynamic configuration in the DCS.
    pub async fn config(&self) -> Result<Value, PatroniError> {
        let body = self.call(hyper::Method::GET, "/config", None).await?;
        Ok(parse_json("GET /config", &body)?)
    }

    /// `GET /cluster`.
    pub async fn cluster(&self) -> Result<ClusterView, PatroniError> {
        let body = self.call(hyper::Method::GET, "/cluster", None).await?;
        Ok(parse_cluster(&body)?)
    }

    /// `GET /patroni`. Patroni answers 503 with the same status body when
    /// its server is not running; that is a status, not an error.
    pub async fn node_status(&self) -> Result<NodeStatus, PatroniError> {
        let mut delay = self.retry.first_delay;
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.once(hyper::Method::GET, "/patroni", None).await {
                Ok((status, bytes)) if status == 200 || status == 503 => {
                    if let Ok(s) = parse_node_status(&bytes) {
                        return Ok(s);
                    }
                    last = format!("HTTP {status}: {}", excerpt(&bytes));
                }
                Ok((status @ (401 | 403), _)) => {
                    return Err(PatroniError::Denied {
                        url: self.url(),
                        what: "GET /patroni".into(),
                        status,
                    });
                }
                Ok((status, bytes)) => last = format!("HTTP {status}: {}", excerpt(&bytes)),
                Err(e) => last = e,
            }
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.retry.max_delay);
            }
        }
        Err(PatroniError::Unreachable {
            url: self.url(),
            what: "GET /patroni".into(),
            attempts,
            message: last,
        })
    }

    /// Writes `settings` as the cluster's `standby_cluster` (`PATCH
    /// /config`) and checks that the answered configuration holds them.
    /// Idempotent: the same settings again change nothing. Returns the
    /// configuration Patroni answered.
    pub async fn apply_standby_cluster(
        &self,
        settings: &StandbyClusterSettings,
    ) -> Result<Value, PatroniError> {
        let current = self.config().await?;
        let body = serde_json::to_vec(&settings.patch_body_against(&current)).unwrap_or_default();
        tracing::info!(url = %self.url(), host = %settings.host, port = settings.port,
            slot = ?settings.primary_slot_name, "writing standby_cluster to Patroni's /config");
        let answer = self
            .call(hyper::Method::PATCH, "/config", Some(&body))
            .await?;
        let config = parse_json("PATCH /config", &answer)?;
        if !settings.is_in(&config) {
            return Err(PatroniError::NotApplied(format!(
                "standby_cluster is {}",
                config.get("standby_cluster").unwrap_or(&Value::Null)
            )));
        }
        Ok(config)
    }
}

impl PatroniApi {
    /// Makes `slot` a permanent physical slot of the cluster
    /// ([`permanent_slot_body`]) unless `/config` lists it already, and
    /// checks the answered configuration. Idempotent; returns whether it
    /// wrote.
    pub async fn keep_slot(&self, slot: &str) -> Result<bool, PatroniError> {
        let current = self.config().await?;
        if holds_permanent_slot(&current, slot) {
            return Ok(false);
        }
        let body = serde_json::to_vec(&permanent_slot_body(slot)).unwrap_or_default();
        tracing::info!(url = %self.url(), slot, "adding a permanent slot to Patroni's /config");
        let answer = self
            .call(hyper::Method::PATCH, "/config", Some(&body))
            .await?;
        let config = parse_json("PATCH /config", &answer)?;
        if !holds_permanent_slot(&config, slot) {
            return Err(PatroniError::NotApplied(format!(
                "slots is {}",
                config.get("slots").unwrap_or(&Value::Null)
            )));
        }
        Ok(true)
    }

    /// Makes the standby cluster a regular one: `PATCH /config` with
    /// [`leave_standby_body`] unless `/config` has no `standby_cluster`
    /// already, and checks that the answered configuration has none.
    /// Idempotent (a resumed promotion writes nothing). Returns whether it
    /// wrote, and the configuration.
    pub async fn leave_standby(&self) -> Result<(bool, Value), PatroniError> {
        let current = self.config().await?;
        if standby_cluster_removed(&current) {
            return Ok((false, current));
        }
        let body = serde_json::to_vec(&leave_standby_body()).unwrap_or_default();
        tracing::info!(url = %self.url(), "removing standby_cluster from Patroni's /config (promotion)");
        let answer = self
            .call(hyper::Method::PATCH, "/config", Some(&body))
            .await?;
        let config = parse_json("PATCH /config", &answer)?;
        if !standby_cluster_removed(&config) {
            return Err(PatroniError::NotApplied(format!(
                "standby_cluster is still {}",
                config.get("standby_cluster").unwrap_or(&Value::Null)
            )));
        }
        Ok((true, config))
    }
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

// --- the evidence: the primary streams to the standby leader (IO) -------------------

/// The primary's `pg_stat_replication` row of one walsender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalSender {
    pub application_name: String,
    pub state: String,
    pub client_addr: Option<String>,
    /// The slot it streams through, if any (`pg_replication_slots.active_pid`).
    pub slot_name: Option<String>,
}

/// The primary's walsenders whose `application_name` is `name`.
pub async fn primary_walsenders(
    primary: &tokio_postgres::Client,
    name: &str,
) -> Result<Vec<WalSender>, PatroniError> {
    let rows = primary
        .query(
            "SELECT r.application_name, r.state, host(r.client_addr), s.slot_name::text \
             FROM pg_stat_replication r \
             LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid \
             WHERE r.application_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| PatroniError::Primary(e.to_string()))?;
    Ok(rows
        .iter()
        .map(|r| WalSender {
            application_name: r.get(0),
            state: r.get::<_, Option<String>>(1).unwrap_or_default(),
            client_addr: r.get(2),
            slot_name: r.get(3),
        })
        .collect())
}

/// What [`wait_streaming`] saw when replication ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingEvidence {
    /// The standby leader (Patroni's view: role `standby_leader`, running).
    pub standby_leader: String,
    /// The primary's walsender for it, state `streaming`.
    pub walsender: WalSender,
}

/// Polls until Patroni shows a running standby leader and the primary's
/// `pg_stat_replication` shows a `streaming` walsender for it (through
/// `expect_slot` when given), or `within` passes.
pub async fn wait_streaming(
    api: &PatroniApi,
    primary: &tokio_postgres::Client,
    expect_slot: Option<&str>,
    within: Duration,
    poll: Duration,
) -> Result<StreamingEvidence, PatroniError> {
    let start = Instant::now();
    let mut last;
    loop {
        last = match api.cluster().await {
            Err(e) => e.to_string(),
            Ok(view) => match standby_state(&view) {
                StandbyState::Running { standby_leader } => {
                    let senders = primary_walsenders(primary, &standby_leader).await?;
                    match senders.iter().find(|w| {
                        w.state == "streaming"
                            && expect_slot.is_none_or(|s| w.slot_name.as_deref() == Some(s))
                    }) {
                        Some(w) => {
                            return Ok(StreamingEvidence {
                                standby_leader,
                                walsender: w.clone(),
                            });
                        }
                        None => format!(
                            "standby leader {standby_leader} runs, but the primary's \
                             walsenders for it are {senders:?}{}",
                            expect_slot
                                .map(|s| format!(" (expected slot {s})"))
                                .unwrap_or_default()
                        ),
                    }
                }
                other => format!("Patroni's cluster view: {other:?}"),
            },
        };
        if start.elapsed() >= within {
            return Err(PatroniError::NotStreaming {
                waited_s: start.elapsed().as_secs(),
                last,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_permanent_slot_is_read_back_from_the_configuration() {
        let slot = "lifeboat_us_east";
        let body = permanent_slot_body(slot);
        assert!(holds_permanent_slot(&body, slot));
        assert!(!holds_permanent_slot(&body, "lifeboat_eu_west"));
        for config in [
            json!({}),
            json!({"slots": null}),
            json!({"slots": {"lifeboat_us_east": null}}),
            json!({"slots": {"lifeboat_us_east": {"type": "logical", "database": "x", "plugin": "y"}}}),
        ] {
            assert!(!holds_permanent_slot(&config, slot), "{config}");
        }
        let merged = json!({"ttl": 30, "slots": {"other": {"type": "physical"}, "lifeboat_us_east": {"type": "physical"}}});
        assert!(holds_permanent_slot(&merged, slot));
    }

    use super::*;

    #[test]
    fn settings_table() {
        let ok = |h: &str, p, s: Option<&str>| standby_cluster_settings(h, p, s);
        let cases: Vec<(
            Result<StandbyClusterSettings, SettingsError>,
            Result<Value, SettingsError>,
        )> = vec![
            (
                ok("pg.us-east.internal", 5432, Some("lifeboat_eu_west")),
                Ok(
                    json!({"standby_cluster": {"host": "pg.us-east.internal", "port": 5432,
                    "primary_slot_name": "lifeboat_eu_west", "create_replica_methods": ["basebackup"]}}),
                ),
            ),
            (
                ok(" 10.0.0.5 ", 6432, None),
                Ok(json!({"standby_cluster": {"host": "10.0.0.5", "port": 6432,
                    "create_replica_methods": ["basebackup"]}})),
            ),
            (ok("", 5432, None), Err(SettingsError::EmptyHost)),
            (ok("  ", 5432, None), Err(SettingsError::EmptyHost)),
            (ok("h", 0, None), Err(SettingsError::ZeroPort)),
            (
                ok("h", 5432, Some("Bad-Slot")),
                Err(SettingsError::BadSlotName("Bad-Slot".into())),
            ),
            (
                ok("h", 5432, Some("")),
                Err(SettingsError::BadSlotName("".into())),
            ),
            (
                ok("h", 5432, Some(&"a".repeat(64))),
                Err(SettingsError::BadSlotName("a".repeat(64))),
            ),
            (
                ok("h", 1, Some(&"a".repeat(63))),
                Ok(json!({"standby_cluster": {"host": "h", "port": 1,
                    "primary_slot_name": "a".repeat(63), "create_replica_methods": ["basebackup"]}})),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.map(|s| s.patch_body()), want);
        }
    }

    #[test]
    fn patch_body_against_table() {
        let slot = standby_cluster_settings("h", 5432, Some("s")).unwrap();
        let none = standby_cluster_settings("h", 5432, None).unwrap();
        let base = json!({"host": "h", "port": 5432, "create_replica_methods": ["basebackup"]});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            json!({"standby_cluster": b})
        };
        let cases = [
            (
                &slot,
                json!({"ttl": 30}),
                with("primary_slot_name", json!("s")),
            ),
            (
                &slot,
                json!({"standby_cluster": {"primary_slot_name": "old"}}),
                with("primary_slot_name", json!("s")),
            ),
            (
                &none,
                json!({"ttl": 30}),
                json!({"standby_cluster": base.clone()}),
            ),
            (
                &none,
                json!({"standby_cluster": {"host": "x"}}),
                json!({"standby_cluster": base.clone()}),
            ),
            (
                &none,
                json!({"standby_cluster": {"primary_slot_name": null}}),
                json!({"standby_cluster": base.clone()}),
            ),
            (
                &none,
                json!({"standby_cluster": {"primary_slot_name": "old"}}),
                with("primary_slot_name", Value::Null),
            ),
        ];
        for (settings, current, want) in cases {
            assert_eq!(settings.patch_body_against(&current), want, "{current}");
        }
    }

    #[test]
    fn render_is_the_request_body() {
        let s = standby_cluster_settings("pg.us-east", 5432, Some("slot_a")).unwrap();
        let r = s.render();
        assert!(r.starts_with("PATCH /config\n"), "{r}");
        let body: Value = serde_json::from_str(r.trim_start_matches("PATCH /config\n")).unwrap();
        assert_eq!(body, s.patch_body());
    }

    #[test]
    fn is_in_table() {
        let s = standby_cluster_settings("h", 5432, Some("slot_a")).unwrap();
        let no_slot = standby_cluster_settings("h", 5432, None).unwrap();
        let m = json!(["basebackup"]);
        let cases = [
            (
                &s,
                json!({"standby_cluster": {"host": "h", "port": 5432, "primary_slot_name": "slot_a", "create_replica_methods": m}}),
                true,
            ),
            (
                &s,
                json!({"standby_cluster": {"host": "h", "port": "5432", "primary_slot_name": "slot_a", "create_replica_methods": m}}),
                true,
            ),
            (
                &s,
                json!({"standby_cluster": {"host": "h", "port": 5432, "primary_slot_name": "slot_a"}}),
                false,
            ),
            (
                &s,
                json!({"standby_cluster": {"host": "h", "port": 5433, "primary_slot_name": "slot_a", "create_replica_methods": m}}),
                false,
            ),
            (
                &s,
                json!({"standby_cluster": {"host": "x", "port": 5432, "primary_slot_name": "slot_a", "create_replica_methods": m}}),
                false,
            ),
            (
                &s,
                json!({"standby_cluster": {"host": "h", "port": 5432, "create_replica_methods": m}}),
                false,
            ),
            (&s, json!({"ttl": 30}), false),
            (
                &no_slot,
                json!({"standby_cluster": {"host": "h", "port": 5432, "create_replica_methods": m}}),
                true,
            ),
            (
                &no_slot,
                json!({"standby_cluster": {"host": "h", "port": 5432, "primary_slot_name": "x", "create_replica_methods": m}}),
                false,
            ),
        ];
        for (settings, config, want) in cases {
            assert_eq!(settings.is_in(&config), want, "{config}");
        }
    }

    #[test]
    fn target_verdict_table() {
        let node = |role: NodeRole, sysid: Option<&str>| NodeStatus {
            role,
            state: "running".into(),
            timeline: Some(1),
            system_identifier: sysid.map(String::from),
            received_lsn: None,
            replayed_lsn: None,
            replayed_timestamp: None,
            primary_lsn: None,
            replay_lag_bytes: None,
            patroni_version: None,
            cluster_unlocked: false,
        };
        const P: &str = "7450000000000000001";
        const O: &str = "7450000000000000002";
        // (node, --replace, the verdict's kind); the other-database verdicts
        // must name the Patroni cluster's identifier.
        let cases = [
            (node(NodeRole::StandbyLeader, Some(P)), false, "proceed"),
            (node(NodeRole::Replica, Some(P)), true, "proceed"),
            (node(NodeRole::Primary, Some(P)), false, "same_primary"),
            (node(NodeRole::Primary, Some(P)), true, "same_primary"),
            (node(NodeRole::Primary, Some(O)), false, "refuse_other"),
            (node(NodeRole::Primary, Some(O)), true, "proceed_other"),
            (
                node(NodeRole::StandbyLeader, Some(O)),
                false,
                "refuse_other",
            ),
            (node(NodeRole::Replica, None), true, "unknown"),
        ];
        for (n, replace, want) in cases {
            let got = target_verdict(&n, P, replace);
            let kind = match &got {
                TargetVerdict::Proceed => "proceed",
                TargetVerdict::RefuseSamePrimary => "same_primary",
                TargetVerdict::RefuseOtherDatabase { message } => {
                    assert!(message.contains(O), "{message}");
                    "refuse_other"
                }
                TargetVerdict::ProceedOtherDatabase { message } => {
                    assert!(message.contains(O), "{message}");
                    "proceed_other"
                }
                TargetVerdict::Unknown { state } => {
                    assert_eq!(state, "running");
                    "unknown"
                }
            };
            assert_eq!(kind, want, "{n:?} replace={replace}: {got:?}");
        }
    }

    #[test]
    fn bootstrap_yaml_names_settings_not_the_password() {
        let s = standby_cluster_settings("10.0.0.5", 6432, Some("lifeboat_eu_west")).unwrap();
        let y = bootstrap_yaml(&s, "lifeboat_replication");
        assert!(
            y.contains("host: 10.0.0.5\n") && y.contains("port: 6432\n"),
            "{y}"
        );
        assert!(y.contains("username: lifeboat_replication"), "{y}");
        assert!(y.contains("create_replica_methods: [basebackup]"), "{y}");
        assert!(!y.contains("primary_slot_name"), "{y}");
    }

    #[test]
    fn leave_standby_removes_the_section() {
        assert_eq!(leave_standby_body(), json!({"standby_cluster": null}));
    }

    #[test]
    fn same_system_table() {
        assert!(check_same_system("7310000000000000001", "7310000000000000001").is_ok());
        assert!(check_same_system("7310000000000000001\n", " 7310000000000000001").is_ok());
        let e = check_same_system("7310000000000000002", "7310000000000000001").unwrap_err();
        assert!(
            e.contains("7310000000000000002") && e.contains("bootstrap"),
            "{e}"
        );
    }

    /// Captured from Debian's Patroni 3.0.2 in crates/lifeboat-region/tests/patroni.rs
    /// (a standby cluster of one member streaming from a PostgreSQL 15 primary).
    const CLUSTER_STANDBY: &str = r#"{"members": [{"name": "eu-west-1", "role": "standby_leader", "state": "running", "api_url": "http://127.0.0.1:41937/patroni", "host": "127.0.0.1", "port": 40121, "timeline": 1}]}"#;
    /// A regular cluster of two members (the form of Patroni 3.0.2's
    /// `cluster_as_json`: the leader has no `lag`).
    const CLUSTER_REGULAR: &str = r#"{"members": [{"name": "a", "role": "leader", "state": "running", "api_url": "http://10.0.0.1:8008/patroni", "host": "10.0.0.1", "port": 5432, "timeline": 3}, {"name": "b", "role": "replica", "state": "running", "api_url": "http://10.0.0.2:8008/patroni", "host": "10.0.0.2", "port": 5432, "timeline": 3, "lag": 4096}, {"name": "c", "role": "replica", "state": "starting", "api_url": "http://10.0.0.3:8008/patroni", "host": "10.0.0.3", "port": 5432, "lag": "unknown"}], "pause": true}"#;

    #[test]
    fn parse_cluster_and_verdict_table() {
        let standby = parse_cluster(CLUSTER_STANDBY.as_bytes()).unwrap();
        assert_eq!(
            standby.members,
            vec![Member {
                name: "eu-west-1".into(),
                role: MemberRole::StandbyLeader,
                state: "running".into(),
                host: Some("127.0.0.1".into()),
                port: Some(40121),
                timeline: Some(1),
                lag_bytes: None,
            }]
        );
        let regular = parse_cluster(CLUSTER_REGULAR.as_bytes()).unwrap();
        assert!(regular.paused);
        assert_eq!(regular.members[1].lag_bytes, Some(4096));
        assert_eq!(regular.members[2].lag_bytes, None);
        assert_eq!(regular.members[2].timeline, None);

        let member = |role, state: &str| Member {
            name: "m".into(),
            role,
            state: state.into(),
            host: None,
            port: None,
            timeline: None,
            lag_bytes: None,
        };
        let view = |members| ClusterView {
            members,
            paused: false,
        };
        let cases = [
            (
                standby,
                StandbyState::Running {
                    standby_leader: "eu-west-1".into(),
                },
            ),
            (regular, StandbyState::RegularLeader { leader: "a".into() }),
            (
                view(vec![member(MemberRole::StandbyLeader, "streaming")]),
                StandbyState::Running {
                    standby_leader: "m".into(),
                },
            ),
            (
                view(vec![member(MemberRole::StandbyLeader, "starting")]),
                StandbyState::NotRunning {
                    standby_leader: "m".into(),
                    state: "starting".into(),
                },
            ),
            (
                view(vec![member(MemberRole::Replica, "running")]),
                StandbyState::NoLeader,
            ),
            (view(vec![]), StandbyState::NoLeader),
        ];
        for (v, want) in cases {
            assert_eq!(standby_state(&v), want);
        }
        assert!(parse_cluster(b"{}").is_err());
        assert!(parse_cluster(br#"{"members": [{"role": "leader"}]}"#).is_err());
        assert!(parse_cluster(b"<html>").is_err());
    }

    /// `GET /patroni` of Debian's Patroni 3.0.2: a standby leader (captured in
    /// tests/patroni.rs) and a primary (the form of `get_postgresql_status`).
    const NODE_STANDBY: &str = r#"{"state": "running", "postmaster_start_time": "2026-12-06 08:10:01.123456+00:00", "role": "standby_leader", "server_version": 150010, "xlog": {"received_location": 50331992, "replayed_location": 50331800, "replayed_timestamp": "2026-12-06 08:10:05.5+00:00", "paused": false}, "timeline": 1, "dcs_last_seen": 1796544605, "database_system_identifier": "7450000000000000001", "patroni": {"version": "3.0.2", "scope": "lifeboat-eu-west"}}"#;
    const NODE_PRIMARY: &str = r#"{"state": "running", "postmaster_start_time": "2026-12-06 08:00:00+00:00", "role": "master", "server_version": 150010, "xlog": {"location": 67108864}, "timeline": 2, "replication": [{"usename": "replicator", "application_name": "b", "client_addr": "10.0.0.2", "state": "streaming", "sync_state": "async", "sync_priority": 0}], "dcs_last_seen": 1796544605, "database_system_identifier": "7450000000000000001", "patroni": {"version": "3.0.2", "scope": "x"}}"#;
    const NODE_STOPPED: &str = r#"{"state": "stopped", "role": "replica", "cluster_unlocked": true, "dcs_last_seen": 1796544605, "patroni": {"version": "3.0.2", "scope": "x"}}"#;

    #[test]
    fn parse_node_status_table() {
        let s = parse_node_status(NODE_STANDBY.as_bytes()).unwrap();
        assert_eq!(s.role, NodeRole::StandbyLeader);
        assert_eq!(s.received_lsn, Some(50331992));
        assert_eq!(s.replay_lag_bytes, Some(192));
        assert_eq!(s.system_identifier.as_deref(), Some("7450000000000000001"));
        assert_eq!(s.patroni_version.as_deref(), Some("3.0.2"));
        assert!(!s.cluster_unlocked);
        let p = parse_node_status(NODE_PRIMARY.as_bytes()).unwrap();
        assert_eq!(
            (p.role, p.primary_lsn, p.timeline, p.received_lsn),
            (NodeRole::Primary, Some(67108864), Some(2), None)
        );
        let st = parse_node_status(NODE_STOPPED.as_bytes()).unwrap();
        assert_eq!(
            (st.role, st.state.as_str(), st.cluster_unlocked),
            (NodeRole::Replica, "stopped", true)
        );
        assert!(parse_node_status(b"{}").is_err());
    }

    #[test]
    fn api_url_table() {
        let cases = [
            ("http://127.0.0.1:8008", Some(("127.0.0.1", 8008))),
            (
                "http://patroni.eu-west:8009/",
                Some(("patroni.eu-west", 8009)),
            ),
            ("http://patroni", Some(("patroni", 8008))),
            ("http://[::1]:8008", Some(("::1", 8008))),
            ("https://patroni:8008", None),
            ("http://patroni:8008/config", None),
            ("http://user:pw@patroni:8008", None),
            ("http://:8008", None),
            ("http://h:0", None),
            ("http://h:x", None),
            ("patroni:8008", None),
        ];
        for (url, want) in cases {
            let got = PatroniApi::new(url, None)
                .ok()
                .map(|a| (a.host.clone(), a.port));
            assert_eq!(got, want.map(|(h, p)| (h.to_string(), p)), "{url}");
        }
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = BasicAuth {
            username: "lifeboat".into(),
            password: Secret::new("hunter2-secret"),
        };
        let api = PatroniApi::new("http://h:1", Some(c.clone())).unwrap();
        for s in [format!("{c:?}"), format!("{api:?}")] {
            assert!(!s.contains("hunter2"), "{s}");
        }
    }

    #[test]
    fn standby_cluster_removed_table() {
        let cases = [
            (json!({"ttl": 30}), true),
            (json!({"standby_cluster": null}), true),
            (json!({"standby_cluster": {}}), true),
            (
                json!({"standby_cluster": {"host": "h", "port": 5432}}),
                false,
            ),
            (json!({"standby_cluster": "x"}), false),
        ];
        for (config, want) in cases {
            assert_eq!(standby_cluster_removed(&config), want, "{config}");
        }
    }

    #[test]
    fn promotion_state_table() {
        let member = |name: &str, role, state: &str| Member {
            name: name.into(),
            role,
            state: state.into(),
            host: None,
            port: None,
            timeline: None,
            lag_bytes: None,
        };
        let view = |members, paused| ClusterView { members, paused };
        let cases = [
            (
                view(vec![member("a", MemberRole::Leader, "running")], false),
                PromotionState::Promoted { leader: "a".into() },
            ),
            (
                view(
                    vec![
                        member("a", MemberRole::Replica, "running"),
                        member("b", MemberRole::Leader, "streaming"),
                    ],
                    false,
                ),
                PromotionState::Promoted { leader: "b".into() },
            ),
            (
                view(
                    vec![member("a", MemberRole::StandbyLeader, "running")],
                    false,
                ),
                PromotionState::StillStandby {
                    standby_leader: "a".into(),
                },
            ),
            (
                view(
                    vec![member("a", MemberRole::StandbyLeader, "stopped")],
                    false,
                ),
                PromotionState::StillStandby {
                    standby_leader: "a".into(),
                },
            ),
            (
                view(vec![member("a", MemberRole::Leader, "starting")], false),
                PromotionState::LeaderNotRunning {
                    leader: "a".into(),
                    state: "starting".into(),
                },
            ),
            (
                view(vec![member("a", MemberRole::Replica, "running")], false),
                PromotionState::NoLeader,
            ),
            (view(vec![], false), PromotionState::NoLeader),
            (
                view(vec![member("a", MemberRole::Leader, "running")], true),
                PromotionState::Paused,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(promotion_state(&v), want, "{v:?}");
        }
        // `master` (GET /patroni's word) counts as a leader in a cluster view.
        let v =
            parse_cluster(br#"{"members": [{"name": "a", "role": "master", "state": "running"}]}"#)
                .unwrap();
        assert_eq!(
            promotion_state(&v),
            PromotionState::Promoted { leader: "a".into() }
        );
    }
}
