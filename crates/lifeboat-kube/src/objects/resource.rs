//! What kind of object a record is, and the order kinds restore in.

use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};

/// A resource type as the API serves it: enough to build its URLs without
/// discovery (a restore may create a CRD and its objects in one run).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    /// `ConfigMap`
    pub kind: String,
    /// `configmaps`
    pub plural: String,
    pub namespaced: bool,
}

/// Restore order: each class is applied (and CRDs established) before the
/// next, so that what an object needs exists when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Class {
    CustomResourceDefinition,
    Namespace,
    /// Secrets, ConfigMaps, ServiceAccounts: what workloads mount.
    Config,
    /// Other built-in kinds (Deployments, Services, …).
    BuiltIn,
    /// Objects of kinds defined by CRDs.
    Custom,
}

impl Resource {
    pub fn from_api(ar: &ApiResource, namespaced: bool) -> Self {
        Self {
            group: ar.group.clone(),
            version: ar.version.clone(),
            kind: ar.kind.clone(),
            plural: ar.plural.clone(),
            namespaced,
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `remediationrequests.kubernaut.ai`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Lower-case kind, as kubectl prints it: `configmap`.
    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }

    /// Whether the group is one Kubernetes itself serves (core, `apps`,
    /// `*.k8s.io`, …) rather than one a CRD defines.
    pub fn is_builtin(&self) -> bool {
        let g = &self.group;
        g.is_empty() || !g.contains('.') || g.ends_with(".k8s.io")
    }

    pub fn class(&self) -> Class {
        match (self.group.as_str(), self.plural.as_str()) {
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                Class::CustomResourceDefinition
            }
            ("", "namespaces") => Class::Namespace,
            ("", "secrets" | "configmaps" | "serviceaccounts") => Class::Config,
            _ if self.is_builtin() => Class::BuiltIn,
            _ => Class::Custom,
        }
    }

    /// Whether a user's kind spec names this resource: plural, singular or
    /// Kind (any case), each optionally followed by `.group`.
    pub fn matches_spec(&self, spec: &str) -> bool {
        let spec = spec.to_lowercase();
        let (name, group) = match spec.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (spec.clone(), None),
        };
        if let Some(g) = group
            && g != self.group.to_lowercase()
        {
            return false;
        }
        name == self.plural.to_lowercase() || name == self.singular()
    }

    pub fn crd() -> Self {
        Self {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
            namespaced: false,
        }
    }

    pub fn namespace() -> Self {
        Self {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
            namespaced: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: &str, kind: &str, plural: &str) -> Resource {
        Resource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced: true,
        }
    }

    #[test]
    fn classes_order_dependencies_first() {
        assert_eq!(Resource::crd().class(), Class::CustomResourceDefinition);
        assert_eq!(Resource::namespace().class(), Class::Namespace);
        assert_eq!(r("", "Secret", "secrets").class(), Class::Config);
        assert_eq!(
            r("apps", "Deployment", "deployments").class(),
            Class::BuiltIn
        );
        assert_eq!(
            r("networking.k8s.io", "Ingress", "ingresses").class(),
            Class::BuiltIn
        );
        assert_eq!(
            r("kubernaut.ai", "RemediationRequest", "remediationrequests").class(),
            Class::Custom
        );
        assert!(Class::CustomResourceDefinition < Class::Namespace);
        assert!(Class::Config < Class::Custom);
    }

    #[test]
    fn kind_specs() {
        let cm = r("", "ConfigMap", "configmaps");
        for s in ["configmap", "configmaps", "ConfigMap", "CONFIGMAPS"] {
            assert!(cm.matches_spec(s), "{s}");
        }
        assert!(!cm.matches_spec("secrets"));
        let rr = r("kubernaut.ai", "RemediationRequest", "remediationrequests");
        assert!(rr.matches_spec("remediationrequests.kubernaut.ai"));
        assert!(rr.matches_spec("RemediationRequest"));
        assert!(!rr.matches_spec("remediationrequests.other.io"));
        assert_eq!(rr.qualified_plural(), "remediationrequests.kubernaut.ai");
        assert_eq!(rr.api_version(), "kubernaut.ai/v1");
    }
}
