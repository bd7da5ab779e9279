//! CloudNativePG's replica cluster, checked against the Kubernetes API
//! **test double** (crates/kube-double), not against CloudNativePG: no
//! operator runs here, so nothing reconciles the `Cluster` and nothing
//! streams. What this proves: the merge patch [`replica_patch`] gives is
//! accepted by a Kubernetes API server's merge-patch semantics through the
//! real `kube` client, lands in `spec.replica` / `spec.externalClusters` as
//! CloudNativePG reads them, keeps the `Cluster`'s other external clusters,
//! and applying it twice changes nothing.

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, Config};
use kube_double::ApiDouble;
use lifeboat_region::managers::cnpg::{
    PrimaryConnection, ReplicaForm, SecretKeyRef, bootstrap_from, replica_patch, replica_view,
};
use serde_json::{Value, json};

async fn client_for(api: &ApiDouble, dir: &tempfile::TempDir) -> Client {
    // Both rustls providers are compiled in (the crate's and kube's `ring`):
    // choose one for the process, as a binary would.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// CloudNativePG's CRD, reduced to what the double needs to serve it.
fn cluster_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusters.postgresql.cnpg.io"},
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

fn primary() -> PrimaryConnection {
    PrimaryConnection {
        name: "pg-us-east".into(),
        host: "pg-us-east-rw.us-east.example".into(),
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

#[tokio::test]
async fn replica_patch_applies_as_a_merge_patch_through_the_kube_client() {
    let api = ApiDouble::start().await;
    api.insert(cluster_crd());
    let dir = tempfile::tempdir().unwrap();
    let client = client_for(&api, &dir).await;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "postgresql.cnpg.io",
        "v1",
        "Cluster",
    ));
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lifeboat"}}));
    let clusters: Api<DynamicObject> = Api::namespaced_with(client, "lifeboat", &ar);
    // The CRD is served once Established (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while clusters.list(&Default::default()).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the Cluster CRD is never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The standby region's Cluster as created: bootstrapped from the primary.
    let archive =
        json!({"name": "archive", "barmanObjectStore": {"destinationPath": "s3://backups/pg"}});
    let created: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "pg-eu-west", "namespace": "lifeboat"},
        "spec": {
            "instances": 2,
            "storage": {"size": "10Gi"},
            "bootstrap": bootstrap_from(&primary()),
            "externalClusters": [archive.clone()],
        }
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &created)
        .await
        .unwrap();
    let before = serde_json::to_value(clusters.get("pg-eu-west").await.unwrap()).unwrap();
    assert!(!replica_view(&before).is_replica);

    for form in [
        ReplicaForm::Enabled,
        ReplicaForm::Distributed {
            primary: "pg-us-east".into(),
        },
    ] {
        let current = serde_json::to_value(clusters.get("pg-eu-west").await.unwrap()).unwrap();
        let patch = replica_patch(
            "pg-eu-west",
            &primary(),
            &form,
            current.pointer("/spec/externalClusters"),
        )
        .unwrap();
        let after = clusters
            .patch("pg-eu-west", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let after = serde_json::to_value(after).unwrap();
        let view = replica_view(&after);
        assert!(view.is_replica, "{form:?}: {after}");
        assert_eq!(view.source.as_deref(), Some("pg-us-east"));
        let ext = after
            .pointer("/spec/externalClusters")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(ext.len(), 2, "{ext:?}");
        assert_eq!(ext[0], archive, "the other external cluster is kept");
        assert_eq!(
            ext[1]["connectionParameters"]["host"],
            "pg-us-east-rw.us-east.example"
        );
        assert_eq!(
            ext[1]["password"],
            json!({"name": "pg-us-east-replication", "key": "password"})
        );
        // The rest of the spec is untouched.
        assert_eq!(after.pointer("/spec/instances"), Some(&json!(2)));
        assert_eq!(
            after.pointer("/spec/bootstrap/pg_basebackup/source"),
            Some(&json!("pg-us-east"))
        );
        match form {
            // Switching forms: the merge patch leaves `enabled` from the
            // first form in place; CloudNativePG reads `primary` first.
            ReplicaForm::Distributed { .. } => {
                assert_eq!(
                    after.pointer("/spec/replica/primary"),
                    Some(&json!("pg-us-east"))
                )
            }
            ReplicaForm::Enabled => {
                assert_eq!(after.pointer("/spec/replica/enabled"), Some(&json!(true)))
            }
        }

        // Idempotent: the same patch again leaves the object as it is.
        let rv = after.pointer("/metadata/resourceVersion").cloned();
        let current = serde_json::to_value(clusters.get("pg-eu-west").await.unwrap()).unwrap();
        let again = replica_patch(
            "pg-eu-west",
            &primary(),
            &form,
            current.pointer("/spec/externalClusters"),
        )
        .unwrap();
        assert_eq!(again, patch);
        let after2 = clusters
            .patch("pg-eu-west", &PatchParams::default(), &Patch::Merge(&again))
            .await
            .unwrap();
        let after2 = serde_json::to_value(after2).unwrap();
        assert_eq!(after2.get("spec"), after.get("spec"));
        let _ = rv;
    }
}
