//! The CloudNativePG side of the managed-primary fence
//! (`region::managed_fence`, docs/failover.md "The CloudNativePG fence"):
//! the `Cluster`'s declarative role management.
//!
//! CloudNativePG reconciles the roles listed in the `Cluster`'s
//! `spec.managed.roles` back to what each entry says: a fence role listed
//! there with `login: true` would be let in again by the operator after the
//! fence revoked its LOGIN (an entry without `login` is counted too: what
//! the operator does with it is its default, not Lifeboat's to rely on).
//! So:
//! - when the agent starts guarding a `manager: cnpg` primary it reads the
//!   `Cluster` ([`check`]): a fence role the `Cluster` manages is an error
//!   in the log (the readiness of the fence is at risk), and the
//!   `Cluster`'s `status.currentPrimary` is logged;
//! - the fence itself, after `ALTER ROLE … NOLOGIN` on the primary, sets
//!   `login: false` on those entries in the `Cluster` ([`patch_roles`]),
//!   which is then what the operator enforces. Best effort and bounded: the
//!   Kubernetes API may be beyond the same partition that cost the lease,
//!   and the role change on the primary is the fence; the patch only keeps
//!   the operator from undoing it. The patch rewrites the whole
//!   `spec.managed.roles` list (a merge patch replaces lists), read just
//!   before, with only `login` changed on the fence roles.

use std::time::Duration;

use lifeboat_kube::custom;
use serde_json::Value;

use super::cnpg::{client_of, cluster_kind, config_of};
use crate::config::RegionConfig;
use crate::context::Ctx;

/// How long reading or patching the `Cluster` may take around a fence.
const KUBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The fence roles that `cluster` (a `Cluster` object) manages
/// declaratively in `spec.managed.roles` with `login` not `false` (pure):
/// the operator would give them LOGIN back.
pub fn managed_login_roles(cluster: &Value, roles: &[String]) -> Vec<String> {
    managed_roles(cluster)
        .iter()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?;
            let login_off = e.get("login").and_then(Value::as_bool) == Some(false);
            (roles.iter().any(|r| r == name) && !login_off).then(|| name.to_string())
        })
        .collect()
}

fn managed_roles(cluster: &Value) -> Vec<Value> {
    cluster
        .pointer("/spec/managed/roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The merge patch that sets `login: false` on the fence roles among
/// `spec.managed.roles`, the other entries unchanged; `None` when no fence
/// role needs it (pure).
pub fn login_false_patch(cluster: &Value, roles: &[String]) -> Option<Value> {
    if managed_login_roles(cluster, roles).is_empty() {
        return None;
    }
    let entries: Vec<Value> = managed_roles(cluster)
        .into_iter()
        .map(|mut e| {
            let fenced = e
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| roles.iter().any(|r| r == n));
            if fenced && let Some(o) = e.as_object_mut() {
                o.insert("login".into(), Value::Bool(false));
            }
            e
        })
        .collect();
    Some(serde_json::json!({"spec": {"managed": {"roles": entries}}}))
}

/// Reads region `name`'s `Cluster`, bounded.
async fn read(ctx: &Ctx, name: &str, r: &RegionConfig) -> Result<Value, String> {
    let c = config_of(name, r).map_err(|e| e.to_string())?;
    let got = tokio::time::timeout(KUBE_TIMEOUT, async {
        let client = client_of(ctx, c).await.map_err(|e| e.to_string())?;
        custom::get(&client, &cluster_kind(), &c.namespace, &c.cluster)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| format!("the Kubernetes API did not answer within {KUBE_TIMEOUT:?}"))??;
    got.ok_or_else(|| {
        format!(
            "no Cluster {} in namespace {} (regions.{name}.postgres.cnpg)",
            c.cluster, c.namespace
        )
    })
}

/// When the agent starts guarding: logs the `Cluster`'s current primary,
/// and, loudly, the fence roles the operator manages with LOGIN (which it
/// would give back after the fence unless the fence's patch gets through).
/// Returns those roles (empty when none, or when the `Cluster` is
/// unreadable, which is a warning).
pub async fn check(ctx: &Ctx, name: &str, r: &RegionConfig, roles: &[String]) -> Vec<String> {
    let cluster = match read(ctx, name, r).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(region = name, error = %e, "cannot read the CloudNativePG Cluster to check its managed roles against failover.fence.revoke_login.roles");
            return Vec::new();
        }
    };
    let primary = cluster
        .pointer("/status/currentPrimary")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    tracing::info!(
        region = name,
        current_primary = primary,
        "guarding the CloudNativePG primary: the fence revokes LOGIN through postgres.url (the Cluster's -rw Service follows the current primary)"
    );
    let managed = managed_login_roles(&cluster, roles);
    if !managed.is_empty() {
        tracing::error!(region = name, roles = ?managed, "fence roles are in the CloudNativePG Cluster's spec.managed.roles with login not false: the operator would give them LOGIN back after the fence; the fence patches login: false into the Cluster, which needs the Kubernetes API then; set login: false there yourself when fencing, or manage these roles outside the Cluster (docs/failover.md, \"The CloudNativePG fence\")");
    }
    managed
}

/// After the fence: `login: false` on the fence roles the `Cluster`
/// manages (see the module docs). Never fails the fence: an error is
/// logged and returned for the report.
pub async fn patch_roles(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    roles: &[String],
) -> Result<Vec<String>, String> {
    let c = config_of(name, r).map_err(|e| e.to_string())?;
    let cluster = read(ctx, name, r).await?;
    let Some(patch) = login_false_patch(&cluster, roles) else {
        return Ok(Vec::new());
    };
    let patched = managed_login_roles(&cluster, roles);
    tokio::time::timeout(KUBE_TIMEOUT, async {
        let client = client_of(ctx, c).await.map_err(|e| e.to_string())?;
        custom::merge_patch(&client, &cluster_kind(), &c.namespace, &c.cluster, &patch)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| format!("the Kubernetes API did not answer within {KUBE_TIMEOUT:?}"))??;
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(roles: Value) -> Value {
        json!({"spec": {"managed": {"roles": roles}}})
    }

    #[test]
    fn fence_roles_managed_with_login_are_the_hazard() {
        let roles = vec!["app".to_string(), "report".to_string()];
        let cases = [
            (json!([{"name": "app", "login": true}]), vec!["app"]),
            (json!([{"name": "app"}]), vec!["app"]),
            (json!([{"name": "app", "login": false}]), vec![]),
            (json!([{"name": "other", "login": true}]), vec![]),
            (
                json!([{"name": "report", "login": true}, {"name": "app", "login": true}]),
                vec!["report", "app"],
            ),
        ];
        for (r, want) in cases {
            assert_eq!(
                managed_login_roles(&cluster(r.clone()), &roles),
                want,
                "{r}"
            );
        }
        assert!(managed_login_roles(&json!({"spec": {}}), &roles).is_empty());
    }

    #[test]
    fn the_patch_turns_login_off_on_fence_roles_only() {
        let roles = vec!["app".to_string()];
        let c = cluster(json!([
            {"name": "app", "login": true, "ensure": "present"},
            {"name": "admin", "login": true}
        ]));
        assert_eq!(
            login_false_patch(&c, &roles),
            Some(json!({"spec": {"managed": {"roles": [
                {"name": "app", "login": false, "ensure": "present"},
                {"name": "admin", "login": true}
            ]}}}))
        );
        let done = cluster(json!([{"name": "app", "login": false}]));
        assert_eq!(login_false_patch(&done, &roles), None);
    }
}
