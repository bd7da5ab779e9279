//! `deploy/rbac.yaml`: every document deserialises into its k8s-openapi type
//! without losing a field (a typo'd key would be dropped silently by the API
//! server's decoder), the bindings point at what the file defines, nothing is
//! a wildcard, deletion is limited to what a drill creates in kubernaut-test
//! (its ConfigMaps and Secrets, and that namespace by name), every rule is
//! explained by a comment, and the rules grant every request the quiescing
//! protocol makes (and the object backup/restore and drills need).

use crate::common;

use common::typed;

use std::path::Path;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

fn text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    std::fs::read_to_string(&path).expect("deploy/rbac.yaml")
}

fn manifests() -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&text()).expect("valid YAML")
}

fn matches(r: &PolicyRule, group: &str, resource: &str, verb: &str) -> bool {
    r.api_groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == group))
        && r.resources
            .as_ref()
            .is_some_and(|rs| rs.iter().any(|x| x == resource))
        && r.verbs.iter().any(|v| v == verb)
}

/// Whether the rules allow `verb` on every object of the resource (rules
/// limited by resourceNames do not count).
fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules
        .iter()
        .any(|r| r.resource_names.is_none() && matches(r, group, resource, verb))
}

/// Whether the rules allow `verb` on the object `name` of the resource.
fn allows_named(rules: &[PolicyRule], group: &str, resource: &str, verb: &str, name: &str) -> bool {
    rules.iter().any(|r| {
        matches(r, group, resource, verb)
            && r.resource_names
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n == name))
    })
}

#[test]
fn rbac_manifests_are_typed_least_privilege_and_sufficient() {
    let docs = manifests();
    let mut sa = None;
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    let mut cluster_role = None;
    let mut cluster_binding = None;
    for d in &docs {
        match d["kind"].as_str() {
            Some("ServiceAccount") => sa = Some(typed::<ServiceAccount>(d, "deploy/rbac.yaml")),
            Some("Role") => roles.push(typed::<Role>(d, "deploy/rbac.yaml")),
            Some("RoleBinding") => bindings.push(typed::<RoleBinding>(d, "deploy/rbac.yaml")),
            Some("ClusterRole") => cluster_role = Some(typed::<ClusterRole>(d, "deploy/rbac.yaml")),
            Some("ClusterRoleBinding") => {
                cluster_binding = Some(typed::<ClusterRoleBinding>(d, "deploy/rbac.yaml"))
            }
            other => panic!("unexpected document kind {other:?}"),
        }
    }
    let sa = sa.expect("a ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some("lifeboat"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("kubernaut-system"));
    assert_eq!(
        roles.len(),
        2,
        "the Role of kubernaut-system and the drill's"
    );
    let role_in = |ns: &str| -> Role {
        let found: Vec<&Role> = roles
            .iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
            .collect();
        assert_eq!(found.len(), 1, "one Role in {ns}");
        found[0].clone()
    };
    let role = role_in("kubernaut-system");
    let drill_role = role_in("kubernaut-test");
    // Every Role is bound, in its namespace, to the ServiceAccount.
    assert_eq!(bindings.len(), roles.len());
    for r in &roles {
        let ns = r.metadata.namespace.as_deref();
        let b: Vec<&RoleBinding> = bindings
            .iter()
            .filter(|b| b.metadata.namespace.as_deref() == ns)
            .collect();
        assert_eq!(b.len(), 1, "one RoleBinding in {ns:?}");
        assert_eq!(b[0].role_ref.kind, "Role");
        assert_eq!(Some(b[0].role_ref.name.clone()), r.metadata.name);
    }
    let cluster_role = cluster_role.expect("a ClusterRole");
    let cluster_binding = cluster_binding.expect("a ClusterRoleBinding");
    assert_eq!(cluster_binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(cluster_binding.role_ref.name.clone()),
        cluster_role.metadata.name
    );
    for subjects in bindings
        .iter()
        .map(|b| &b.subjects)
        .chain([&cluster_binding.subjects])
    {
        let s = subjects.as_ref().expect("subjects");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, "ServiceAccount");
        assert_eq!(s[0].name, "lifeboat");
        assert_eq!(s[0].namespace.as_deref(), Some("kubernaut-system"));
    }

    let rules = role.rules.clone().unwrap_or_default();
    let drill_rules = drill_role.rules.clone().unwrap_or_default();
    let cluster_rules = cluster_role.rules.clone().unwrap_or_default();
    // Least privilege: no wildcards, nothing that escalates, and Secrets only
    // in the namespaced Roles.
    for r in rules.iter().chain(&drill_rules).chain(&cluster_rules) {
        let words = r
            .verbs
            .iter()
            .chain(r.resources.iter().flatten())
            .chain(r.api_groups.iter().flatten())
            .chain(r.resource_names.iter().flatten());
        for w in words {
            assert!(!w.contains('*'), "wildcard in {r:?}");
        }
        for v in &r.verbs {
            assert!(
                !matches!(
                    v.as_str(),
                    "deletecollection" | "escalate" | "bind" | "impersonate"
                ),
                "{v} granted in {r:?}"
            );
        }
        assert!(r.non_resource_urls.is_none(), "{r:?}");
    }
    // Deleting: nothing in kubernaut-system; in the drill namespace only
    // ConfigMaps and Secrets; cluster-wide only the namespace kubernaut-test.
    for r in &rules {
        assert!(!r.verbs.iter().any(|v| v == "delete"), "delete in {r:?}");
    }
    for r in drill_rules
        .iter()
        .filter(|r| r.verbs.iter().any(|v| v == "delete"))
    {
        assert_eq!(r.api_groups.as_deref(), Some(&[String::new()][..]), "{r:?}");
        for res in r.resources.iter().flatten() {
            assert!(matches!(res.as_str(), "configmaps" | "secrets"), "{r:?}");
        }
    }
    for r in cluster_rules
        .iter()
        .filter(|r| r.verbs.iter().any(|v| v == "delete"))
    {
        assert_eq!(r.verbs, ["delete"], "{r:?}");
        assert_eq!(
            r.resources.as_deref(),
            Some(&["namespaces".to_string()][..])
        );
        assert_eq!(
            r.resource_names.as_deref(),
            Some(&["kubernaut-test".to_string()][..]),
            "{r:?}"
        );
    }
    assert!(!allows(&cluster_rules, "", "namespaces", "delete"));
    assert!(!allows_named(
        &cluster_rules,
        "",
        "namespaces",
        "delete",
        "kubernaut-system"
    ));
    assert!(allows_named(
        &cluster_rules,
        "",
        "namespaces",
        "delete",
        "kubernaut-test"
    ));
    // What a drill does in kubernaut-test, and nothing it does not.
    for resource in ["configmaps", "secrets"] {
        for verb in ["get", "create", "patch", "update", "delete"] {
            assert!(
                allows(&drill_rules, "", resource, verb),
                "a drill needs {verb} on {resource} in kubernaut-test"
            );
        }
        assert!(!allows(&drill_rules, "", resource, "list"));
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
    // Backup and restore of objects (update: the PUT that replaces an
    // existing object, `restore kube --existing replace`).
    for resource in ["configmaps", "secrets"] {
        for verb in ["get", "list", "create", "patch", "update"] {
            assert!(allows(&rules, "", resource, verb), "{verb} {resource}");
        }
    }
    for verb in ["get", "list", "create", "patch", "update"] {
        assert!(
            allows(&rules, "kubernaut.ai", "remediationrequests", verb),
            "{verb} remediationrequests"
        );
    }
    for verb in ["get", "create", "patch", "update"] {
        assert!(allows(
            &cluster_rules,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            verb
        ));
        assert!(allows(&cluster_rules, "", "namespaces", verb));
    }
}

/// Every rule says what it is for: the line before each `- apiGroups:` is a
/// comment.
#[test]
fn every_rbac_rule_carries_a_comment() {
    let text = text();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            n += 1;
            let before = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&"");
            assert!(
                before.trim_start().starts_with('#'),
                "rule at line {} of deploy/rbac.yaml has no comment",
                i + 1
            );
        }
    }
    assert!(n >= 8, "{n} rules found");
}
