//! Removing what the API server manages from an object before it is stored,
//! so that a restore applies only what a person or controller declared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What to keep that is stripped by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripOptions {
    /// Keep `metadata.ownerReferences` (their uids point at objects of the
    /// old cluster; a restore elsewhere usually must not carry them).
    pub keep_owner_references: bool,
    /// Keep `status`.
    pub keep_status: bool,
}

/// Fields of `metadata` the server sets; never restorable as they were.
pub const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "managedFields",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Label the API server puts on every Namespace, equal to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Counts of stripped fields by path (`metadata.uid`: 204), recorded in the
/// snapshot.
pub type Stripped = BTreeMap<String, u64>;

/// Strips `obj` in place and counts what went into `stripped`.
pub fn strip(obj: &mut Value, opts: StripOptions, stripped: &mut Stripped) {
    let is_namespace = obj.get("kind").and_then(|k| k.as_str()) == Some("Namespace")
        && obj.get("apiVersion").and_then(|k| k.as_str()) == Some("v1");
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if !opts.keep_status && map.remove("status").is_some() {
        *stripped.entry("status".into()).or_default() += 1;
    }
    if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for field in SERVER_METADATA {
            if meta.remove(*field).is_some() {
                *stripped.entry(format!("metadata.{field}")).or_default() += 1;
            }
        }
        // The server labels every Namespace with its own name; a restore
        // under another name (--namespace-map) must not carry the old one.
        if is_namespace
            && let Some(labels) = meta.get_mut("labels").and_then(|l| l.as_object_mut())
            && labels.remove(NAMESPACE_NAME_LABEL).is_some()
        {
            *stripped
                .entry(format!("metadata.labels.{NAMESPACE_NAME_LABEL}"))
                .or_default() += 1;
        }
        if !opts.keep_owner_references && meta.remove("ownerReferences").is_some() {
            *stripped
                .entry("metadata.ownerReferences".into())
                .or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_server_fields_and_counts_them() {
        let mut o = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "7",
                         "creationTimestamp": "t", "managedFields": [], "labels": {"x": "y"},
                         "ownerReferences": [{"uid": "o"}]},
            "data": {"k": "v"}, "status": {"phase": "x"}
        });
        let mut s = Stripped::new();
        strip(&mut o, StripOptions::default(), &mut s);
        assert_eq!(
            o,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "namespace": "n", "labels": {"x": "y"}},
                   "data": {"k": "v"}})
        );
        assert_eq!(s["metadata.uid"], 1);
        assert_eq!(s["metadata.ownerReferences"], 1);
        assert_eq!(s["status"], 1);

        let mut o = json!({"metadata": {"name": "a", "ownerReferences": []}, "status": {}});
        strip(
            &mut o,
            StripOptions {
                keep_owner_references: true,
                keep_status: true,
            },
            &mut s,
        );
        assert_eq!(
            o,
            json!({"metadata": {"name": "a", "ownerReferences": []}, "status": {}})
        );

        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kubernaut-system",
                         "labels": {"kubernetes.io/metadata.name": "kubernaut-system", "team": "sre"}}});
        strip(&mut ns, StripOptions::default(), &mut s);
        assert_eq!(ns["metadata"]["labels"], json!({"team": "sre"}));
    }
}
