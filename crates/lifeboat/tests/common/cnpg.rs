//! CloudNativePG in the Kubernetes API test double (no real API server or
//! operator can run here): its CRD, and a recorder of what the API server
//! received. Used by region_cnpg.rs and failover_cnpg.rs.

use std::sync::{Arc, Mutex};

use kube_double::ApiDouble;
use serde_json::{Value, json};

/// CloudNativePG's CRD, reduced to what the double needs to serve it.
pub fn cluster_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusters.postgresql.cnpg.io"},
        // Inserted Established, so its resources are served at once: the
        // double's insert accepts custom resources of a CRD that is not
        // Established yet, so waiting on an insert cannot tell when GETs
        // are served (CI once ran the CLI before the double's 200 ms).
        "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "True"}
        ]},
        "spec": {
            "group": "postgresql.cnpg.io",
            "names": {"plural": "clusters", "singular": "cluster", "kind": "Cluster", "listKind": "ClusterList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}
            }]
        }
    })
}

/// Every write the API server receives from now on (method, path, body;
/// GETs left out), through the double's fault hook (which then injects
/// no fault).
pub type Writes = Arc<Mutex<Vec<(String, String, Value)>>>;

pub fn record_writes(api: &ApiDouble) -> Writes {
    let writes: Writes = Arc::default();
    let w = writes.clone();
    api.set_fault(move |r| {
        if r.method != "GET" {
            w.lock().unwrap().push((
                r.method.clone(),
                r.path.clone(),
                r.body.clone().unwrap_or(Value::Null),
            ));
        }
        None
    });
    writes
}
