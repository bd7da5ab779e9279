//! `region replicate` and `region status` for a region whose PostgreSQL is
//! a CloudNativePG `Cluster` (`postgres.manager: cnpg`,
//! docs/regions/managers.md), through the Kubernetes API of the region's
//! kubeconfig context.
//!
//! Replicate, in order: the primary is observed (it must say it is one);
//! the replication role is made on it (the postgres path's step; no slot:
//! CloudNativePG's designated primary names none, and an unused slot would
//! keep WAL on the primary forever); the role's password goes into a
//! `Secret` beside the `Cluster` (`<cluster>-lifeboat-replication`, key
//! `password`), which the `externalClusters` entry references; the merge
//! patch (`spec.replica`, `spec.externalClusters`) is computed against the
//! `Cluster`'s current entries and printed; a `Cluster` that does not exist
//! is not created (its instances, storage and image are the operator's to
//! choose): its manifest with `bootstrap.pg_basebackup` is printed instead;
//! a `Cluster` whose `status.systemID` is another database's is refused
//! unless `--replace`, one that is a primary of the same database always;
//! the patch is written unless the `Cluster` holds it already; then the
//! `Cluster` is read back, and the primary's `pg_stat_replication` is read
//! for a walsender of the replication user. CloudNativePG clones and starts
//! asynchronously (minutes to hours), so replicate does not wait: it says
//! whether replication runs now (exit 0) or not yet (exit 10).

use lifeboat_kube::custom::{self, Kind};
use lifeboat_postgres::Secret;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::managers::cnpg::{
    self, PrimaryConnection, ReplicaForm, ReplicaView, SecretKeyRef,
};
use lifeboat_region::managers::patroni::WalSender;
use lifeboat_region::replication::replicate::ensure_role;
use lifeboat_region::replication::{Retry, observe};
use serde::Serialize;
use serde_json::Value;

use super::patroni::primary_host;
use super::replicate::{ManagerEvent, replicate_error};
use crate::config::{CnpgConfig, PgManager, RegionConfig};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// CloudNativePG's `Cluster` kind.
pub fn cluster_kind() -> Kind {
    Kind {
        group: "postgresql.cnpg.io".into(),
        version: "v1".into(),
        kind: "Cluster".into(),
        plural: "clusters".into(),
    }
}

/// The `Secret` (and key) holding the replication role's password for the
/// `Cluster` `cluster`.
pub fn password_secret(cluster: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: format!("{cluster}-lifeboat-replication"),
        key: "password".into(),
    }
}

/// What `region replicate` did to a CloudNativePG region.
#[derive(Debug, Clone, Serialize)]
pub struct CnpgReplicated {
    pub namespace: String,
    pub cluster: String,
    pub context: Option<String>,
    /// The JSON merge patch for the `Cluster`.
    pub patch: Value,
    /// `false`: the `Cluster` held it already; nothing was written.
    pub changed: bool,
    pub secret: SecretKeyRef,
    pub secret_changed: bool,
    pub role: String,
    /// The `Cluster` as read back.
    pub replica: ReplicaView,
    pub system_identifier: Option<String>,
    /// The primary's walsenders of the replication user.
    pub walsenders: Vec<WalSender>,
    /// Whether replication runs now (see [`cnpg::replication_runs`]).
    pub running: bool,
    pub detail: String,
}

pub(crate) fn config_of<'a>(name: &str, r: &'a RegionConfig) -> Result<&'a CnpgConfig> {
    r.postgres.cnpg.as_ref().map(|s| &s.value).ok_or_else(|| {
        Error::usage(format!(
            "regions.{name}.postgres.manager is cnpg but regions.{name}.postgres.cnpg (the \
             Cluster's name, namespace and kubeconfig context) is not set"
        ))
    })
}

pub(crate) async fn client_of(ctx: &Ctx, c: &CnpgConfig) -> Result<lifeboat_kube::Client> {
    let opts = ctx.cluster_options(None, c.context.as_deref());
    Ok(lifeboat_kube::client::connect(&opts).await?)
}

/// Replicates `from` (a primary, `primary`) into the CloudNativePG region
/// `to`; see the module docs.
#[allow(clippy::too_many_arguments)]
pub async fn replicate<P: FnMut(ManagerEvent)>(
    ctx: &Ctx,
    from: &str,
    from_region: &RegionConfig,
    primary: &ConnConfig,
    primary_sysid: &str,
    to: &str,
    to_region: &RegionConfig,
    user: &str,
    password: &Secret,
    replace: bool,
    progress: &mut P,
) -> Result<CnpgReplicated> {
    let retry = Retry::default();
    let c = config_of(to, to_region)?;
    let (host, port) = primary_host(from, primary)?;
    let source_cluster = match from_region.postgres.manager() {
        PgManager::Cnpg => config_of(from, from_region)
            .ok()
            .map(|f| f.cluster.as_str()),
        _ => None,
    };
    let secret = password_secret(&c.cluster);
    let source = PrimaryConnection {
        name: cnpg::external_name(from, source_cluster),
        host,
        port,
        user: user.to_string(),
        dbname: "postgres".into(),
        sslmode: "prefer".into(),
        password_secret: secret.clone(),
    };
    let kind = cluster_kind();
    let client = client_of(ctx, c).await?;
    let existing = custom::get(&client, &kind, &c.namespace, &c.cluster).await?;
    let current_entries = existing
        .as_ref()
        .and_then(|e| e.pointer("/spec/externalClusters"));
    let patch = cnpg::replica_patch(&c.cluster, &source, &ReplicaForm::Enabled, current_entries)
        .map_err(|e| Error::usage(e.to_string()))?;
    let Some(existing) = existing else {
        let manifest = cnpg::new_cluster_manifest(&c.namespace, &c.cluster, &patch, &source);
        progress(ManagerEvent::Settings {
            manager: "cnpg".into(),
            target: format!("clusters/{} in {}", c.cluster, c.namespace),
            text: format!(
                "new Cluster (bootstrap from the primary)\n{}",
                serde_json::to_string_pretty(&manifest).unwrap_or_default()
            ),
            body: manifest,
        });
        return Err(Error::usage(format!(
            "refused: the Cluster {} does not exist in namespace {}{}: Lifeboat does not \
             create it (its instances, storage and image are yours to choose)",
            c.cluster,
            c.namespace,
            c.context
                .as_deref()
                .map(|x| format!(" of context {x}"))
                .unwrap_or_default()
        ))
        .with_hint(format!(
            "create it from the manifest printed above (spec.bootstrap.pg_basebackup clones the \
             primary; the Secret {} with key {} must hold replication.password, which `region \
             replicate` writes once the Cluster exists), then rerun `region replicate`",
            secret.name, secret.key
        )));
    };
    progress(ManagerEvent::Settings {
        manager: "cnpg".into(),
        target: format!("clusters/{} in {}", c.cluster, c.namespace),
        text: format!(
            "merge patch\n{}",
            serde_json::to_string_pretty(&patch).unwrap_or_default()
        ),
        body: patch.clone(),
    });

    let view = cnpg::replica_view(&existing);
    let sysid = cnpg::system_id(&existing);
    let other_database = match &sysid {
        Some(s) if s == primary_sysid && !view.is_replica => {
            return Err(Error::usage(format!(
                "refused: the Cluster {} is a primary of the primary's own database (system \
                 identifier {s}): it is region {from}'s cluster itself or a second primary, and \
                 making it a replica cluster would demote it",
                c.cluster
            ))
            .with_hint(format!(
                "check regions.{to}.postgres.cnpg; nothing was changed"
            )));
        }
        Some(s) if s != primary_sysid => {
            let m = format!(
                "the Cluster {} holds another database (status.systemID {s}, the primary's is \
                 {primary_sysid}): CloudNativePG does not re-clone a running cluster, so it \
                 would never stream",
                c.cluster
            );
            if !replace {
                return Err(Error::usage(format!("refused: {m}")).with_hint(
                    "recreate the Cluster with spec.bootstrap.pg_basebackup from the primary (the \
                     manifest `region replicate` prints for a missing Cluster), or pass --replace \
                     to write the settings anyway; nothing was changed",
                ));
            }
            Some(m)
        }
        _ => None,
    };

    let role = ensure_role(primary, user, password, retry)
        .await
        .map_err(replicate_error)?;
    progress(ManagerEvent::PrimaryPrepared {
        detail: role.clone(),
    });
    let secret_changed = custom::set_secret_key(
        &client,
        &c.namespace,
        &secret.name,
        &secret.key,
        password.expose(),
    )
    .await?;
    progress(ManagerEvent::PrimaryPrepared {
        detail: format!(
            "secret {} in {}: {}",
            secret.name,
            c.namespace,
            if secret_changed {
                "written"
            } else {
                "holds the password already"
            }
        ),
    });
    let changed = !cnpg::holds(&existing, &patch);
    let after = if changed {
        custom::merge_patch(&client, &kind, &c.namespace, &c.cluster, &patch).await?
    } else {
        existing
    };
    progress(ManagerEvent::Applied {
        changed,
        detail: if changed {
            "merge patch written to the Cluster".to_string()
        } else {
            "the Cluster holds these settings already; nothing written".to_string()
        },
    });
    if let Some(m) = other_database {
        return Err(Error::failure(format!(
            "the settings were written (--replace), but {m}"
        )));
    }
    // Read back what the operator reports now.
    let read_back = custom::get(&client, &kind, &c.namespace, &c.cluster)
        .await?
        .unwrap_or(after);
    let replica = cnpg::replica_view(&read_back);
    let walsenders = walsenders(primary, user).await?;
    let streaming = walsenders.iter().filter(|w| w.state == "streaming").count();
    let verdict = cnpg::replication_runs(&replica, &source.name, streaming);
    let detail = match &verdict {
        Ok(()) => format!(
            "the Cluster is a replica of {} (phase {}) and the primary streams to {streaming} \
             walsender(s) of {user}",
            source.name,
            replica.phase.as_deref().unwrap_or("not reported")
        ),
        Err(e) => e.clone(),
    };
    Ok(CnpgReplicated {
        namespace: c.namespace.clone(),
        cluster: c.cluster.clone(),
        context: c.context.clone(),
        patch,
        changed,
        secret,
        secret_changed,
        role,
        replica,
        system_identifier: cnpg::system_id(&read_back),
        walsenders,
        running: verdict.is_ok(),
        detail,
    })
}

async fn walsenders(primary: &ConnConfig, user: &str) -> Result<Vec<WalSender>> {
    let client = observe::connect(primary, Retry::default())
        .await
        .map_err(|e| Error::failure(format!("the primary: {e}")))?;
    cnpg::walsenders_of_user(&client, user)
        .await
        .map_err(|e| Error::failure(format!("reading the primary's pg_stat_replication: {e}")))
}

/// `region status`'s view of a CloudNativePG region.
#[derive(Debug, Clone, Serialize)]
pub struct CnpgView {
    pub namespace: String,
    pub cluster: String,
    pub context: Option<String>,
    /// `spec.replica` and `status.phase` as read.
    pub replica: Option<ReplicaView>,
    pub system_identifier: Option<String>,
    pub error: Option<String>,
}

impl CnpgView {
    pub fn summary(&self) -> String {
        match &self.replica {
            Some(r) => format!(
                "cnpg: {}{} ({})",
                if r.is_replica { "replica" } else { "primary" },
                r.source
                    .as_deref()
                    .filter(|_| r.is_replica)
                    .map(|s| format!(" of {s}"))
                    .unwrap_or_default(),
                r.phase.as_deref().unwrap_or("no phase reported")
            ),
            None => "cnpg: unreadable".into(),
        }
    }
}

/// Reads the region's `Cluster`; never fails (errors are in the view).
pub async fn view(ctx: &Ctx, name: &str, r: &RegionConfig) -> Option<CnpgView> {
    let c = r.postgres.cnpg.as_ref().map(|s| &s.value)?;
    let mut v = CnpgView {
        namespace: c.namespace.clone(),
        cluster: c.cluster.clone(),
        context: c.context.clone(),
        replica: None,
        system_identifier: None,
        error: None,
    };
    let got = match client_of(ctx, c).await {
        Ok(client) => custom::get(&client, &cluster_kind(), &c.namespace, &c.cluster)
            .await
            .map_err(Error::from),
        Err(e) => Err(e),
    };
    match got {
        Ok(Some(obj)) => {
            v.replica = Some(cnpg::replica_view(&obj));
            v.system_identifier = cnpg::system_id(&obj);
        }
        Ok(None) => {
            v.error = Some(format!(
                "regions.{name}: no Cluster {} in namespace {}",
                c.cluster, c.namespace
            ))
        }
        Err(e) => v.error = Some(e.to_string()),
    }
    Some(v)
}
