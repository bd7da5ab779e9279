//! `deploy/rbac.yaml`: every document deserialises into its k8s-openapi type
//! without losing a field (a typo'd key would be dropped silently by the API
//! server's decoder), the bindings point at what the file defines, nothing is
//! a wildcard or can delete, and the rules grant every request the quiescing
//! protocol makes (and the object backup/restore needs).

use std::path::Path;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn manifests() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).expect("deploy/rbac.yaml");
    serde_saphyr::from_multiple::<Value>(&text).expect("valid YAML")
}

/// Drops nulls and empty objects so that a round trip compares equal.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Deserialises into `T` and checks that serialising back gives the same
/// document: no field was unknown to the type.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let t: T =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e} in {}", doc["kind"]));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        normalize(&back),
        normalize(doc),
        "a field of {} is not part of the API type",
        doc["kind"]
    );
    t
}

fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == group))
            && r.resources
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
            && r.verbs.iter().any(|v| v == verb)
    })
}

#[test]
fn rbac_manifests_are_typed_least_privilege_and_sufficient() {
    let docs = manifests();
    let mut sa = None;
    let mut role = None;
    let mut binding = None;
    let mut cluster_role = None;
    let mut cluster_binding = None;
    for d in &docs {
        match d["kind"].as_str() {
            Some("ServiceAccount") => sa = Some(typed::<ServiceAccount>(d)),
            Some("Role") => role = Some(typed::<Role>(d)),
            Some("RoleBinding") => binding = Some(typed::<RoleBinding>(d)),
            Some("ClusterRole") => cluster_role = Some(typed::<ClusterRole>(d)),
            Some("ClusterRoleBinding") => cluster_binding = Some(typed::<ClusterRoleBinding>(d)),
            other => panic!("unexpected document kind {other:?}"),
        }
    }
    let sa = sa.expect("a ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some("lifeboat"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("kubernaut-system"));
    let role = role.expect("a Role");
    assert_eq!(role.metadata.namespace.as_deref(), Some("kubernaut-system"));
    let binding = binding.expect("a RoleBinding");
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
    let cluster_role = cluster_role.expect("a ClusterRole");
    let cluster_binding = cluster_binding.expect("a ClusterRoleBinding");
    assert_eq!(cluster_binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(cluster_binding.role_ref.name.clone()),
        cluster_role.metadata.name
    );
    for subjects in [&binding.subjects, &cluster_binding.subjects] {
        let s = subjects.as_ref().expect("subjects");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, "ServiceAccount");
        assert_eq!(s[0].name, "lifeboat");
        assert_eq!(s[0].namespace.as_deref(), Some("kubernaut-system"));
    }

    let rules = role.rules.clone().unwrap_or_default();
    let cluster_rules = cluster_role.rules.clone().unwrap_or_default();
    // Least privilege: no wildcards, nothing that deletes or escalates, and
    // Secrets only in the namespaced Role.
    for r in rules.iter().chain(&cluster_rules) {
        let words = r
            .verbs
            .iter()
            .chain(r.resources.iter().flatten())
            .chain(r.api_groups.iter().flatten());
        for w in words {
            assert!(!w.contains('*'), "wildcard in {r:?}");
        }
        for v in &r.verbs {
            assert!(
                !matches!(
                    v.as_str(),
                    "delete" | "deletecollection" | "escalate" | "bind" | "impersonate"
                ),
                "{v} granted in {r:?}"
            );
        }
        assert!(r.non_resource_urls.is_none(), "{r:?}");
    }
    assert!(!allows(&cluster_rules, "", "secrets", "get"));
    assert!(!allows(&cluster_rules, "", "secrets", "list"));

    // Every request the quiescing protocol makes (lifeboat_kube::quiesce).
    for (group, resource, verb) in [
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        ("apps", "statefulsets", "get"),
        ("apps", "statefulsets", "patch"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets/scale", "get"),
        ("apps", "statefulsets/scale", "patch"),
        ("", "pods", "list"),
    ] {
        assert!(
            allows(&rules, group, resource, verb),
            "quiescing needs {verb} on {group}/{resource}"
        );
    }
    // The writers' spec can only change through the scale subresource.
    assert!(!allows(&rules, "apps", "deployments", "update"));
    // Backup and restore of objects.
    for resource in ["configmaps", "secrets"] {
        for verb in ["get", "list", "create", "patch"] {
            assert!(allows(&rules, "", resource, verb), "{verb} {resource}");
        }
    }
    for verb in ["get", "list", "create", "patch"] {
        assert!(
            allows(&rules, "kubernaut.ai", "remediationrequests", verb),
            "{verb} remediationrequests"
        );
    }
    for verb in ["get", "create", "patch"] {
        assert!(allows(
            &cluster_rules,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            verb
        ));
        assert!(allows(&cluster_rules, "", "namespaces", verb));
    }
}
