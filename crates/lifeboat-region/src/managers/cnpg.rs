//! CloudNativePG as a standby region's manager: the region's `Cluster`
//! (`postgresql.cnpg.io/v1`) becomes a *replica cluster* of the primary
//! region's cluster, as CloudNativePG's "Replica clusters" documentation
//! describes:
//!
//! - `spec.externalClusters[]` gets an entry naming the primary, with
//!   `connectionParameters` (host, port, user, dbname, sslmode) and the
//!   password as a reference to a Kubernetes `Secret` key (never a value);
//! - `spec.replica` says which entry to replicate from, in one of the two
//!   forms CloudNativePG accepts: `{enabled: true, source}` (every version
//!   with replica clusters) or, for the distributed topology (1.24+),
//!   `{primary, source}` where the cluster is a replica because `primary`
//!   names another cluster (`self` defaults to the cluster's own name).
//!
//! [`replica_patch`] is pure: it gives the JSON merge patch (RFC 7386) for
//! the `Cluster`. A merge patch replaces a list whole, so the patch carries
//! every existing `externalClusters` entry with the primary's entry added or
//! replaced by name: pass the cluster's current entries.
//!
//! What this module does not do: apply the patch (the Kubernetes side,
//! lifeboat-kube's `custom` through lifeboat-ops `region::cnpg`, owns API
//! access), or seed the data. Its one IO is [`walsenders_of_user`], the
//! primary's side of the evidence that replication runs.
//! CloudNativePG does not re-clone a running cluster when `replica` is set:
//! demoting a cluster into a replica only works when it came from the same
//! primary (same system identifier); a new standby region's `Cluster` is
//! created with `bootstrap.pg_basebackup.source` (or a recovery from the
//! primary's object store) naming the same external cluster, which
//! [`bootstrap_from`] gives. Checked here only against the structure of
//! CloudNativePG's documentation and, in tests/cnpg.rs, a Kubernetes API test
//! double; no CloudNativePG operator runs on these machines.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How the primary is reached from the standby region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryConnection {
    /// The `externalClusters` entry's name (usually the primary `Cluster`'s name).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The replication user (CloudNativePG's own is `streaming_replica`).
    pub user: String,
    pub dbname: String,
    /// libpq `sslmode` (`verify-full` when the primary's CA is given).
    pub sslmode: String,
    /// The `Secret` holding the password, and its key.
    pub password_secret: SecretKeyRef,
}

/// A reference to one key of a Kubernetes `Secret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// Which form of `spec.replica` to write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaForm {
    /// `{enabled: true, source}`.
    Enabled,
    /// The distributed topology: `{primary, source}`; `primary` is the name
    /// of the primary region's `Cluster`.
    Distributed { primary: String },
}

/// Why no patch can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CnpgError {
    #[error(
        "{0:?} is not a valid externalClusters name: use a DNS label (lower-case letters, \
         digits and '-', at most 63)"
    )]
    BadName(String),
    #[error("the primary's {0} is empty: give it in the region's configuration")]
    Empty(&'static str),
    #[error("the primary's port is 0")]
    ZeroPort,
    #[error(
        "the standby's Cluster {0:?} would replicate from itself: the distributed topology's \
         primary must name the primary region's Cluster"
    )]
    SelfPrimary(String),
    #[error("the existing spec.externalClusters is not a list of objects with a name")]
    BadExisting,
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The `externalClusters` entry for the primary.
pub fn external_cluster(primary: &PrimaryConnection) -> Result<Value, CnpgError> {
    if !dns_label(&primary.name) {
        return Err(CnpgError::BadName(primary.name.clone()));
    }
    for (what, v) in [
        ("host", &primary.host),
        ("user", &primary.user),
        ("dbname", &primary.dbname),
        ("sslmode", &primary.sslmode),
        ("password secret name", &primary.password_secret.name),
        ("password secret key", &primary.password_secret.key),
    ] {
        if v.trim().is_empty() {
            return Err(CnpgError::Empty(what));
        }
    }
    if primary.port == 0 {
        return Err(CnpgError::ZeroPort);
    }
    Ok(json!({
        "name": primary.name,
        "connectionParameters": {
            "host": primary.host,
            // libpq parameters are strings in CloudNativePG's API.
            "port": primary.port.to_string(),
            "user": primary.user,
            "dbname": primary.dbname,
            "sslmode": primary.sslmode,
        },
        "password": {
            "name": primary.password_secret.name,
            "key": primary.password_secret.key,
        },
    }))
}

/// The JSON merge patch making the `Cluster` named `cluster_name` a replica
/// of `primary`. `existing` is the cluster's current
/// `spec.externalClusters` (`None` or `null` when it has none).
pub fn replica_patch(
    cluster_name: &str,
    primary: &PrimaryConnection,
    form: &ReplicaForm,
    existing: Option<&Value>,
) -> Result<Value, CnpgError> {
    let entry = external_cluster(primary)?;
    let mut list: Vec<Value> = match existing {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            if a.iter()
                .any(|e| e.get("name").and_then(Value::as_str).is_none())
            {
                return Err(CnpgError::BadExisting);
            }
            a.clone()
        }
        Some(_) => return Err(CnpgError::BadExisting),
    };
    match list
        .iter_mut()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(primary.name.as_str()))
    {
        Some(e) => *e = entry,
        None => list.push(entry),
    }
    let replica = match form {
        ReplicaForm::Enabled => json!({ "enabled": true, "source": primary.name }),
        ReplicaForm::Distributed { primary: p } => {
            if p == cluster_name {
                return Err(CnpgError::SelfPrimary(cluster_name.to_string()));
            }
            if !dns_label(p) {
                return Err(CnpgError::BadName(p.clone()));
            }
            json!({ "primary": p, "source": primary.name })
        }
    };
    Ok(json!({ "spec": { "replica": replica, "externalClusters": list } }))
}

/// `spec.bootstrap` of a new standby region's `Cluster`: a streamed
/// `pg_basebackup` from the external cluster (set at creation only;
/// CloudNativePG does not change a running cluster's bootstrap).
pub fn bootstrap_from(primary: &PrimaryConnection) -> Value {
    json!({ "pg_basebackup": { "source": primary.name } })
}

/// What a `Cluster` object says about replication: whether `spec.replica`
/// makes it a replica, and from which source; `status.phase` as the
/// operator reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    pub is_replica: bool,
    pub source: Option<String>,
    pub phase: Option<String>,
}

/// Reads a `Cluster` object (as the Kubernetes API answers it).
pub fn replica_view(cluster: &Value) -> ReplicaView {
    let name = cluster
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let replica = cluster.pointer("/spec/replica");
    let enabled = replica
        .and_then(|r| r.get("enabled"))
        .and_then(Value::as_bool);
    let primary = replica
        .and_then(|r| r.get("primary"))
        .and_then(Value::as_str);
    let self_name = replica
        .and_then(|r| r.get("self"))
        .and_then(Value::as_str)
        .unwrap_or(name);
    // CloudNativePG: with `primary` set, the cluster is a replica unless it
    // names itself; `enabled` alone otherwise.
    let is_replica = match primary {
        Some(p) => p != self_name,
        None => enabled == Some(true),
    };
    ReplicaView {
        is_replica,
        source: replica
            .and_then(|r| r.get("source"))
            .and_then(Value::as_str)
            .map(str::to_string),
        phase: cluster
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// The JSON merge patch that promotes a replica `Cluster` (a change of
/// primary to its region), in the form its `spec.replica` is written in:
///
/// - the distributed topology (1.24+, `spec.replica.primary` set): `primary`
///   becomes the cluster's own name (`spec.replica.self`, else
///   `metadata.name`). No `promotionToken` is given: it comes from the old
///   primary's `status.demotionToken`, which a lost primary region cannot
///   give, so CloudNativePG promotes without that check (its documented
///   way when the primary cluster is gone; what WAL was not received is lost);
/// - `{enabled: true, source}` (the form `region replicate` writes):
///   `enabled: false`, which makes the designated primary the primary.
///
/// `source` and `externalClusters` are kept (a rejoin points the old
/// region at this one). `None`: the `Cluster` is not a replica already.
pub fn promote_patch(cluster: &Value) -> Option<Value> {
    let replica = cluster.pointer("/spec/replica")?;
    if !replica_view(cluster).is_replica {
        return None;
    }
    if replica.get("primary").and_then(Value::as_str).is_some() {
        let self_name = replica
            .get("self")
            .and_then(Value::as_str)
            .or_else(|| cluster.pointer("/metadata/name").and_then(Value::as_str))?;
        return Some(json!({ "spec": { "replica": { "primary": self_name } } }));
    }
    Some(json!({ "spec": { "replica": { "enabled": false } } }))
}

/// CloudNativePG's words for a cluster at rest (`status.phase`).
pub const HEALTHY_PHASE: &str = "Cluster in healthy state";

/// Whether the `Cluster`'s status reports its promotion done: `spec.replica`
/// no longer makes it a replica, the operator names a current primary
/// (`status.currentPrimary`), no switchover is under way (the target
/// primary is the current one) and the phase is the healthy one. `Ok`
/// names the primary instance; `Err` says what is not there yet. The
/// status is the operator's report; that the server takes writes is
/// proven on the server itself (out of recovery, a commit).
pub fn promoted_per_status(cluster: &Value) -> Result<String, String> {
    if replica_view(cluster).is_replica {
        return Err("spec.replica still makes it a replica cluster".into());
    }
    let text = |p: &str| {
        cluster
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(current) = text("/status/currentPrimary") else {
        return Err("the operator names no primary instance yet (status.currentPrimary)".into());
    };
    if let Some(target) = text("/status/targetPrimary")
        && target != current
    {
        return Err(format!(
            "the operator is moving the primary from {current} to {target} (status.targetPrimary)"
        ));
    }
    match text("/status/phase") {
        Some(HEALTHY_PHASE) => Ok(current.to_string()),
        other => Err(format!(
            "the operator reports phase {:?}, not {HEALTHY_PHASE:?}",
            other.unwrap_or("none")
        )),
    }
}

/// The `externalClusters` entry name for a primary region: its `Cluster`'s
/// name when it is a CloudNativePG cluster, else the region's name as a DNS
/// label (lower case, other characters as `-`, at most 63).
pub fn external_name(region: &str, primary_cluster: Option<&str>) -> String {
    if let Some(c) = primary_cluster {
        return c.to_string();
    }
    let mut s: String = region
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(63);
    s.trim_matches('-').to_string()
}

/// Whether the `Cluster` already holds what `patch` (from [`replica_patch`])
/// sets: `spec.replica` with the same values (other keys of it kept) and
/// the same `spec.externalClusters`. Then nothing is written.
pub fn holds(cluster: &Value, patch: &Value) -> bool {
    let want_replica = patch.pointer("/spec/replica");
    let have_replica = cluster.pointer("/spec/replica");
    let replica_ok = match (want_replica, have_replica) {
        (Some(Value::Object(w)), Some(Value::Object(h))) => {
            w.iter().all(|(k, v)| h.get(k) == Some(v))
        }
        (None, _) => true,
        _ => false,
    };
    replica_ok
        && patch.pointer("/spec/externalClusters") == cluster.pointer("/spec/externalClusters")
}

/// The system identifier CloudNativePG reports for the `Cluster`
/// (`status.systemID`, set by recent operators once an instance ran), as a
/// string.
pub fn system_id(cluster: &Value) -> Option<String> {
    match cluster.pointer("/status/systemID")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A `Cluster` manifest for a standby region's new cluster (printed, never
/// created by Lifeboat: instances, storage and the image are the
/// operator's to choose): the bootstrap from the primary, `replica` and
/// `externalClusters`.
pub fn new_cluster_manifest(
    namespace: &str,
    name: &str,
    patch: &Value,
    primary: &PrimaryConnection,
) -> Value {
    let mut spec = patch.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["instances"] = json!(1);
    spec["storage"] = json!({"size": "<size>"});
    spec["bootstrap"] = bootstrap_from(primary);
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// Whether replication runs as far as Lifeboat can see (pure): the
/// `Cluster` is a replica of `source`, and the primary has a `streaming`
/// walsender for the replication user (`walsenders_streaming`).
pub fn replication_runs(
    view: &ReplicaView,
    source: &str,
    walsenders_streaming: usize,
) -> Result<(), String> {
    if !view.is_replica {
        return Err("the Cluster is not a replica cluster (spec.replica)".into());
    }
    if view.source.as_deref() != Some(source) {
        return Err(format!(
            "the Cluster replicates from {:?}, not {source:?}",
            view.source
        ));
    }
    if walsenders_streaming == 0 {
        return Err(format!(
            "the primary streams to no standby as the replication user yet (CloudNativePG phase: {})",
            view.phase.as_deref().unwrap_or("not reported")
        ));
    }
    Ok(())
}

/// The primary's walsenders connected as `user` (CloudNativePG's designated
/// primary streams as the `externalClusters` entry's user, with an
/// `application_name` of its own choosing), with their slots. IO: the one
/// query `region replicate` and `region status` read for a `cnpg` standby.
pub async fn walsenders_of_user(
    primary: &tokio_postgres::Client,
    user: &str,
) -> Result<Vec<super::patroni::WalSender>, tokio_postgres::Error> {
    let rows = primary
        .query(
            "SELECT r.application_name, r.state, host(r.client_addr), s.slot_name::text \
             FROM pg_stat_replication r \
             LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid \
             WHERE r.usename = $1",
            &[&user],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| super::patroni::WalSender {
            application_name: r.get(0),
            state: r.get::<_, Option<String>>(1).unwrap_or_default(),
            client_addr: r.get(2),
            slot_name: r.get(3),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary() -> PrimaryConnection {
        PrimaryConnection {
            name: "pg-us-east".into(),
            host: "pg-us-east-rw.lifeboat.svc".into(),
            port: 5432,
            user: "streaming_replica".into(),
            dbname: "postgres".into(),
            sslmode: "verify-full".into(),
            password_secret: SecretKeyRef {
                name: "pg-us-east-replication".into(),
                key: "password".into(),
            },
        }
    }

    fn entry() -> Value {
        json!({"name": "pg-us-east",
            "connectionParameters": {"host": "pg-us-east-rw.lifeboat.svc", "port": "5432",
                "user": "streaming_replica", "dbname": "postgres", "sslmode": "verify-full"},
            "password": {"name": "pg-us-east-replication", "key": "password"}})
    }

    #[test]
    fn patch_table() {
        let other = json!({"name": "archive", "barmanObjectStore": {"destinationPath": "s3://x"}});
        let stale = json!({"name": "pg-us-east", "connectionParameters": {"host": "old"}});
        let cases: Vec<(ReplicaForm, Option<Value>, Result<Value, CnpgError>)> = vec![
            (
                ReplicaForm::Enabled,
                None,
                Ok(
                    json!({"spec": {"replica": {"enabled": true, "source": "pg-us-east"},
                    "externalClusters": [entry()]}}),
                ),
            ),
            (
                ReplicaForm::Enabled,
                Some(Value::Null),
                Ok(
                    json!({"spec": {"replica": {"enabled": true, "source": "pg-us-east"},
                    "externalClusters": [entry()]}}),
                ),
            ),
            (
                ReplicaForm::Distributed {
                    primary: "pg-us-east".into(),
                },
                Some(json!([other.clone()])),
                Ok(
                    json!({"spec": {"replica": {"primary": "pg-us-east", "source": "pg-us-east"},
                    "externalClusters": [other.clone(), entry()]}}),
                ),
            ),
            (
                ReplicaForm::Enabled,
                Some(json!([stale, other.clone()])),
                Ok(
                    json!({"spec": {"replica": {"enabled": true, "source": "pg-us-east"},
                    "externalClusters": [entry(), other.clone()]}}),
                ),
            ),
            (
                ReplicaForm::Distributed {
                    primary: "pg-eu-west".into(),
                },
                None,
                Err(CnpgError::SelfPrimary("pg-eu-west".into())),
            ),
            (
                ReplicaForm::Enabled,
                Some(json!({"name": "x"})),
                Err(CnpgError::BadExisting),
            ),
            (
                ReplicaForm::Enabled,
                Some(json!([{"host": "x"}])),
                Err(CnpgError::BadExisting),
            ),
        ];
        for (form, existing, want) in cases {
            assert_eq!(
                replica_patch("pg-eu-west", &primary(), &form, existing.as_ref()),
                want,
                "{form:?} {existing:?}"
            );
        }
    }

    #[test]
    fn entry_validation_table() {
        let with = |f: &dyn Fn(&mut PrimaryConnection)| {
            let mut p = primary();
            f(&mut p);
            external_cluster(&p)
        };
        assert_eq!(with(&|_| {}), Ok(entry()));
        assert_eq!(
            with(&|p| p.name = "Pg_US".into()),
            Err(CnpgError::BadName("Pg_US".into()))
        );
        assert_eq!(
            with(&|p| p.name = "-a".into()),
            Err(CnpgError::BadName("-a".into()))
        );
        assert_eq!(
            with(&|p| p.host = " ".into()),
            Err(CnpgError::Empty("host"))
        );
        assert_eq!(
            with(&|p| p.password_secret.key = "".into()),
            Err(CnpgError::Empty("password secret key"))
        );
        assert_eq!(with(&|p| p.port = 0), Err(CnpgError::ZeroPort));
    }

    #[test]
    fn replica_view_table() {
        let cases = [
            (
                json!({"metadata": {"name": "b"}, "spec": {"replica": {"enabled": true, "source": "a"}}, "status": {"phase": "Cluster in healthy state"}}),
                ReplicaView {
                    is_replica: true,
                    source: Some("a".into()),
                    phase: Some("Cluster in healthy state".into()),
                },
            ),
            (
                json!({"metadata": {"name": "b"}, "spec": {"replica": {"primary": "a", "source": "a"}}}),
                ReplicaView {
                    is_replica: true,
                    source: Some("a".into()),
                    phase: None,
                },
            ),
            (
                json!({"metadata": {"name": "a"}, "spec": {"replica": {"primary": "a", "source": "b"}}}),
                ReplicaView {
                    is_replica: false,
                    source: Some("b".into()),
                    phase: None,
                },
            ),
            (
                json!({"metadata": {"name": "x"}, "spec": {"replica": {"self": "a", "primary": "a", "source": "b"}}}),
                ReplicaView {
                    is_replica: false,
                    source: Some("b".into()),
                    phase: None,
                },
            ),
            (
                json!({"metadata": {"name": "b"}, "spec": {"replica": {"enabled": false, "source": "a"}}}),
                ReplicaView {
                    is_replica: false,
                    source: Some("a".into()),
                    phase: None,
                },
            ),
            (
                json!({"metadata": {"name": "b"}, "spec": {}}),
                ReplicaView {
                    is_replica: false,
                    source: None,
                    phase: None,
                },
            ),
        ];
        for (c, want) in cases {
            assert_eq!(replica_view(&c), want, "{c}");
        }
    }

    #[test]
    fn bootstrap_names_the_external_cluster() {
        assert_eq!(
            bootstrap_from(&primary()),
            json!({"pg_basebackup": {"source": "pg-us-east"}})
        );
    }

    #[test]
    fn external_name_table() {
        for (region, cluster, want) in [
            ("us-east", None, "us-east"),
            ("US_East.1", None, "us-east-1"),
            ("-x-", None, "x"),
            ("us-east", Some("pg-main"), "pg-main"),
        ] {
            assert_eq!(external_name(region, cluster), want, "{region}");
        }
    }

    #[test]
    fn holds_table() {
        let patch = replica_patch("pg-eu-west", &primary(), &ReplicaForm::Enabled, None).unwrap();
        let cluster = |spec: Value| json!({"metadata": {"name": "pg-eu-west"}, "spec": spec});
        let cases = [
            (cluster(json!({})), false),
            (
                cluster(json!({"replica": {"enabled": true, "source": "pg-us-east"}})),
                false,
            ),
            (
                cluster(
                    json!({"replica": {"enabled": true, "source": "pg-us-east"}, "externalClusters": [entry()]}),
                ),
                true,
            ),
            (
                cluster(
                    json!({"replica": {"enabled": true, "source": "pg-us-east", "promotionToken": "x"},
                    "externalClusters": [entry()], "instances": 3}),
                ),
                true,
            ),
            (
                cluster(
                    json!({"replica": {"enabled": false, "source": "pg-us-east"}, "externalClusters": [entry()]}),
                ),
                false,
            ),
            (
                cluster(json!({"replica": {"enabled": true, "source": "pg-us-east"},
                    "externalClusters": [entry(), {"name": "other"}]})),
                false,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(holds(&c, &patch), want, "{c}");
        }
    }

    #[test]
    fn system_id_and_runs_table() {
        assert_eq!(
            system_id(&json!({"status": {"systemID": "7450000000000000001"}})).as_deref(),
            Some("7450000000000000001")
        );
        assert_eq!(system_id(&json!({"status": {"systemID": ""}})), None);
        assert_eq!(system_id(&json!({"status": {}})), None);
        let view = |is_replica, source: Option<&str>| ReplicaView {
            is_replica,
            source: source.map(String::from),
            phase: Some("Cluster in healthy state".into()),
        };
        assert!(replication_runs(&view(true, Some("a")), "a", 1).is_ok());
        assert!(
            replication_runs(&view(true, Some("a")), "a", 0)
                .unwrap_err()
                .contains("healthy state")
        );
        assert!(replication_runs(&view(false, Some("a")), "a", 1).is_err());
        assert!(replication_runs(&view(true, Some("b")), "a", 1).is_err());
    }

    #[test]
    fn new_cluster_manifest_bootstraps_from_the_source() {
        let patch = replica_patch("pg-eu-west", &primary(), &ReplicaForm::Enabled, None).unwrap();
        let m = new_cluster_manifest("db", "pg-eu-west", &patch, &primary());
        assert_eq!(
            m["spec"]["bootstrap"],
            json!({"pg_basebackup": {"source": "pg-us-east"}})
        );
        assert_eq!(m["spec"]["replica"], patch["spec"]["replica"]);
        assert_eq!(m["spec"]["externalClusters"], json!([entry()]));
        assert_eq!(
            m["metadata"],
            json!({"name": "pg-eu-west", "namespace": "db"})
        );
    }

    #[test]
    fn promote_patch_table() {
        let cluster = |replica: Value| json!({"metadata": {"name": "pg-eu"}, "spec": {"instances": 2, "replica": replica}});
        let cases = [
            // The form `region replicate` writes.
            (
                cluster(json!({"enabled": true, "source": "pg-us"})),
                Some(json!({"spec": {"replica": {"enabled": false}}})),
            ),
            // The distributed topology: primary becomes the cluster itself.
            (
                cluster(json!({"primary": "pg-us", "source": "pg-us"})),
                Some(json!({"spec": {"replica": {"primary": "pg-eu"}}})),
            ),
            // ... or the name `self` gives it.
            (
                cluster(json!({"primary": "pg-us", "self": "eu", "source": "pg-us"})),
                Some(json!({"spec": {"replica": {"primary": "eu"}}})),
            ),
            // Already promoted, in either form: nothing to write.
            (cluster(json!({"enabled": false, "source": "pg-us"})), None),
            (
                cluster(json!({"primary": "pg-eu", "source": "pg-us"})),
                None,
            ),
            (json!({"metadata": {"name": "pg-eu"}, "spec": {}}), None),
        ];
        for (c, want) in cases {
            let got = promote_patch(&c);
            assert_eq!(got, want, "{c}");
            // What the patch sets, merged, is a primary per spec.
            if let Some(p) = got {
                let mut merged = c.clone();
                for (k, v) in p.pointer("/spec/replica").unwrap().as_object().unwrap() {
                    merged["spec"]["replica"][k] = v.clone();
                }
                assert!(!replica_view(&merged).is_replica, "{merged}");
            }
        }
    }

    #[test]
    fn promoted_per_status_table() {
        let c = |replica: Value, status: Value| json!({"metadata": {"name": "pg-eu"}, "spec": {"replica": replica}, "status": status});
        let off = json!({"enabled": false, "source": "pg-us"});
        let healthy = |cur: &str, target: &str| json!({"currentPrimary": cur, "targetPrimary": target, "phase": HEALTHY_PHASE});
        let cases = [
            (c(off.clone(), healthy("pg-eu-1", "pg-eu-1")), Ok("pg-eu-1")),
            (
                c(
                    off.clone(),
                    json!({"currentPrimary": "pg-eu-1", "phase": HEALTHY_PHASE}),
                ),
                Ok("pg-eu-1"),
            ),
            (
                c(
                    json!({"enabled": true, "source": "pg-us"}),
                    healthy("pg-eu-1", "pg-eu-1"),
                ),
                Err("replica"),
            ),
            (c(off.clone(), json!({})), Err("status.currentPrimary")),
            (
                c(off.clone(), healthy("pg-eu-1", "pg-eu-2")),
                Err("targetPrimary"),
            ),
            (
                c(
                    off.clone(),
                    json!({"currentPrimary": "pg-eu-1", "phase": "Failing over"}),
                ),
                Err("Failing over"),
            ),
        ];
        for (cluster, want) in cases {
            match (promoted_per_status(&cluster), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w),
                (Err(got), Err(w)) => assert!(got.contains(w), "{got}"),
                (got, w) => panic!("{cluster}: {got:?}, wanted {w:?}"),
            }
        }
    }
}
