//! The resource registry: built-in kinds and kinds served from
//! Established CustomResourceDefinitions, and the discovery documents built
//! from them.

use serde_json::{Value, json};

/// Built-in kinds the double gives behaviour beyond storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    ConfigMap,
    Secret,
    Namespace,
    Pod,
    ServiceAccount,
    Service,
    Deployment,
    StatefulSet,
    Crd,
    Other,
}

/// One version of a resource and what it serves.
#[derive(Debug, Clone)]
pub(crate) struct VersionDef {
    pub name: String,
    pub status: bool,
}

/// A resource type (`group`, `plural`) with what discovery says about it.
#[derive(Debug, Clone)]
pub(crate) struct ResourceDef {
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<VersionDef>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub scale: bool,
    pub builtin: Builtin,
    /// `metadata.generation` is kept (bumped on changes outside metadata
    /// and status), as for workloads, CRDs and custom resources.
    pub generation: bool,
    /// Custom resources are served from a CRD; false for built-ins.
    pub custom: bool,
    /// For custom resources: the CRD is Established (served over HTTP).
    pub established: bool,
    /// Name of the CRD that serves a custom resource.
    pub crd_name: String,
}

impl ResourceDef {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v.name == version)
    }

    pub fn preferred_version(&self) -> &str {
        self.versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    /// Whether `/status` exists (writes to the main resource then leave
    /// `status` alone).
    pub fn status_subresource(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v.name == version && v.status)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    fn verbs(&self) -> Vec<&'static str> {
        match self.builtin {
            Builtin::Namespace => vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            _ => vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
        }
    }

    /// The `APIResource` entries of this type in `version`'s resource list.
    fn api_resources(&self, version: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        out.push(main);
        if self.status_subresource(version) {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.scale {
            out.push(json!({
                "name": format!("{}/scale", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    scale: bool,
    b: Builtin,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        versions: vec![VersionDef {
            name: "v1".into(),
            status,
        }],
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if matches!(
            b,
            Builtin::Pod | Builtin::Service | Builtin::Deployment | Builtin::StatefulSet
        ) {
            vec!["all".into()]
        } else {
            vec![]
        },
        scale,
        builtin: b,
        generation: matches!(b, Builtin::Deployment | Builtin::StatefulSet | Builtin::Crd),
        custom: false,
        established: true,
        crd_name: String::new(),
    }
}

/// The built-in kinds: what Lifeboat reads and writes, plus RBAC (so
/// `deploy/rbac.yaml` can be applied).
pub(crate) fn builtins() -> Vec<ResourceDef> {
    use Builtin::*;
    vec![
        builtin(
            "",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            false,
            ConfigMap,
        ),
        builtin(
            "",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            false,
            Namespace,
        ),
        builtin("", "pods", "Pod", true, &["po"], true, false, Pod),
        builtin("", "secrets", "Secret", true, &[], false, false, Secret),
        builtin(
            "",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            false,
            ServiceAccount,
        ),
        builtin(
            "",
            "services",
            "Service",
            true,
            &["svc"],
            true,
            false,
            Service,
        ),
        builtin(
            "apps",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            true,
            Deployment,
        ),
        builtin(
            "apps",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            true,
            true,
            StatefulSet,
        ),
        builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            false,
            Crd,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "roles",
            "Role",
            true,
            &[],
            false,
            false,
            Other,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            false,
            Other,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            false,
            Other,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            false,
            Other,
        ),
    ]
}

/// Kubernetes' version priority: GA before beta before alpha before
/// anything else; higher numbers first.
pub(crate) fn version_priority(v: &str) -> (u8, u32, u32, String) {
    fn parse(v: &str) -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (prefix, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(prefix) {
                return Some((rank, major, n.parse().ok()?));
            }
        }
        None
    }
    match parse(v) {
        Some((rank, major, minor)) => (3 - rank, u32::MAX - major, u32::MAX - minor, String::new()),
        None => (4, 0, 0, v.to_string()),
    }
}

/// A `ResourceDef` from a CRD object; `None` when the CRD is unusable.
pub(crate) fn from_crd(crd: &Value) -> Option<ResourceDef> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions: Vec<VersionDef> = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .filter_map(|v| {
            Some(VersionDef {
                name: v.get("name")?.as_str()?.to_string(),
                status: v
                    .get("subresources")
                    .and_then(|s| s.get("status"))
                    .is_some(),
            })
        })
        .collect();
    versions.sort_by_key(|v| version_priority(&v.name));
    let established = crd
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    Some(ResourceDef {
        group,
        versions,
        plural,
        singular,
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        scale: false,
        builtin: Builtin::Other,
        generation: true,
        custom: true,
        established,
        crd_name: crd
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// `APIResourceList` of `group`/`version` over the served defs.
pub(crate) fn resource_list(defs: &[&ResourceDef], group: &str, version: &str) -> Value {
    let resources: Vec<Value> = defs
        .iter()
        .filter(|d| d.group == group && d.serves(version))
        .flat_map(|d| d.api_resources(version))
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    })
}

/// `APIGroup` entries for every non-core group among the served defs.
pub(crate) fn api_groups(defs: &[&ResourceDef]) -> Vec<Value> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        let entry = match groups.iter_mut().find(|(g, _)| *g == d.group) {
            Some(e) => e,
            None => {
                groups.push((d.group.clone(), Vec::new()));
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        for v in &d.versions {
            if !entry.1.contains(&v.name) {
                entry.1.push(v.name.clone());
            }
        }
    }
    groups
        .into_iter()
        .map(|(g, mut versions)| {
            versions.sort_by_key(|v| version_priority(v));
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({
                "name": g,
                "versions": vs,
                "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1", "v10"];
        v.sort_by_key(|x| version_priority(x));
        assert_eq!(
            v,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
