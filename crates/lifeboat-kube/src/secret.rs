//! Reading one key of a Kubernetes Secret: what a `kubernetes_secret`
//! reference in the configuration resolves to.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::error::{ErrorKind, KubeError};

/// The value of `key` in Secret `namespace/name` (the client's namespace
/// when `None`), as UTF-8 text with one trailing newline removed. Never log
/// the result.
pub async fn read_key(
    client: &kube::Client,
    namespace: Option<&str>,
    name: &str,
    key: &str,
) -> Result<String, KubeError> {
    let ns = namespace.unwrap_or(client.default_namespace()).to_string();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let what = format!("reading Secret {ns}/{name}");
    let secret = crate::retry::call(&what, || api.get_opt(name))
        .await
        .map_err(|e| KubeError::from_failed(&e, &what))?
        .ok_or_else(|| {
            KubeError::new(
                ErrorKind::NotFound,
                format!("{what}: there is no Secret {name} in namespace {ns}"),
            )
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            let mut keys: Vec<String> = secret
                .data
                .as_ref()
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            KubeError::new(
                ErrorKind::NotFound,
                format!(
                    "{what}: it has no key {key:?} (its keys: {})",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
            )
        })?;
    let mut text = String::from_utf8(bytes).map_err(|_| {
        KubeError::new(
            ErrorKind::Invalid,
            format!("{what}: key {key:?} is not UTF-8 text"),
        )
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(KubeError::new(
            ErrorKind::Invalid,
            format!("{what}: key {key:?} is empty"),
        ));
    }
    Ok(text)
}
