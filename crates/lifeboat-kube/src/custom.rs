//! One namespaced object read and changed by name, as JSON: reading a
//! custom resource (CloudNativePG's `Cluster`), writing a JSON merge patch
//! (RFC 7386) to it, and keeping one key of a `Secret` at a value (server-side
//! apply). Used by lifeboat-ops `region::cnpg`; every call is idempotent and
//! retried under [`crate::retry`].

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::error::KubeError;
use crate::retry;

/// The field manager Lifeboat's writes are recorded under.
pub const FIELD_MANAGER: &str = "lifeboat";

/// A namespaced kind by group, version, kind and plural, e.g.
/// `postgresql.cnpg.io`, `v1`, `Cluster`, `clusters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
}

impl Kind {
    fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&self.group, &self.version, &self.kind),
            &self.plural,
        )
    }

    fn api(&self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource())
    }

    fn what(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name} in {namespace}", self.plural)
    }
}

fn to_value(o: DynamicObject, what: &str) -> Result<Value, KubeError> {
    serde_json::to_value(o).map_err(|e| {
        KubeError::new(
            crate::error::ErrorKind::Other,
            format!("{what}: the object does not serialise: {e}"),
        )
    })
}

/// The object, or `None` when it does not exist.
pub async fn get(
    client: &kube::Client,
    kind: &Kind,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    let what = format!("reading {}", kind.what(namespace, name));
    let api = kind.api(client, namespace);
    let got = retry::call(&what, || api.get_opt(name))
        .await
        .map_err(|f| KubeError::from_failed(&f, &what))?;
    got.map(|o| to_value(o, &what)).transpose()
}

/// Applies `patch` as a JSON merge patch and returns the object the server
/// answered. Setting values is idempotent, so it is retried like a read.
pub async fn merge_patch(
    client: &kube::Client,
    kind: &Kind,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<Value, KubeError> {
    let what = format!("patching {}", kind.what(namespace, name));
    let api = kind.api(client, namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let patch = Patch::Merge(patch);
    let o = retry::call(&what, || api.patch(name, &params, &patch))
        .await
        .map_err(|f| KubeError::from_failed(&f, &what))?;
    to_value(o, &what)
}

/// Makes key `key` of Secret `namespace/name` hold `value` (server-side
/// apply, created when missing); `true` when it changed. The value is in no
/// log or error.
pub async fn set_secret_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Result<bool, KubeError> {
    let what = format!("writing key {key} of secret {name} in {namespace}");
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let current = retry::call(&what, || api.get_opt(name))
        .await
        .map_err(|f| KubeError::from_failed(&f, &what))?;
    let same = current
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .is_some_and(|v| v.0 == value.as_bytes());
    if same {
        return Ok(false);
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "lifeboat"}},
        "type": "Opaque",
        "stringData": {key: value},
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    retry::call(&what, || api.patch(name, &params, &patch))
        .await
        .map_err(|f| KubeError::from_failed(&f, &what))?;
    Ok(true)
}
