//! Reading keys of Kubernetes Secrets: what `kubernetes_secret` references
//! in the configuration resolve to. [`read_key`] reads one; [`read_keys`]
//! resolves all of a configuration's references in one call with one
//! client, reading each Secret once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::error::{ErrorKind, KubeError};

/// One reference: key `key` of Secret `namespace/name` (the client's
/// namespace when `namespace` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretKeyRef {
    pub namespace: Option<String>,
    pub name: String,
    pub key: String,
}

/// The value of `key` in Secret `namespace/name` (the client's namespace
/// when `None`), as UTF-8 text with one trailing newline removed. Never log
/// the result.
pub async fn read_key(
    client: &kube::Client,
    namespace: Option<&str>,
    name: &str,
    key: &str,
) -> Result<String, KubeError> {
    let ns = namespace.unwrap_or(client.default_namespace());
    let what = what(ns, name);
    let secret = get(client, ns, name, &what).await?;
    key_text(&secret, key, &what)
}

/// The value of every reference, in the order given; each result is what
/// [`read_key`] would return for it (so a caller can name the reference
/// that failed). Each Secret is read once however many of its keys are
/// asked for; a Secret that could not be read fails each of its
/// references with the same error. Never log the values.
///
/// All or nothing: `read_keys(..).await.into_iter().collect::<Result<Vec<_>, _>>()`.
pub async fn read_keys(
    client: &kube::Client,
    refs: &[SecretKeyRef],
) -> Vec<Result<String, KubeError>> {
    let mut secrets: BTreeMap<(&str, &str), Result<Secret, KubeError>> = BTreeMap::new();
    for r in refs {
        let ns = r.namespace.as_deref().unwrap_or(client.default_namespace());
        if let std::collections::btree_map::Entry::Vacant(slot) =
            secrets.entry((ns, r.name.as_str()))
        {
            slot.insert(get(client, ns, &r.name, &what(ns, &r.name)).await);
        }
    }
    refs.iter()
        .map(|r| {
            let ns = r.namespace.as_deref().unwrap_or(client.default_namespace());
            match &secrets[&(ns, r.name.as_str())] {
                Ok(secret) => key_text(secret, &r.key, &what(ns, &r.name)),
                Err(e) => Err(KubeError::new(e.kind, e.message.clone())),
            }
        })
        .collect()
}

fn what(ns: &str, name: &str) -> String {
    format!("reading Secret {ns}/{name}")
}

/// Reads Secret `ns/name`, retrying transient failures; absent is
/// [`ErrorKind::NotFound`].
async fn get(client: &kube::Client, ns: &str, name: &str, what: &str) -> Result<Secret, KubeError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    crate::retry::call(what, || api.get_opt(name))
        .await
        .map_err(|e| KubeError::from_failed(&e, what))?
        .ok_or_else(|| {
            KubeError::new(
                ErrorKind::NotFound,
                format!("{what}: there is no Secret {name} in namespace {ns}"),
            )
        })
}

/// `key` of `secret` as text: from `data`, else `stringData`; one trailing
/// newline (`\n` or `\r\n`) removed; missing, not UTF-8 or empty is an
/// error naming the key.
fn key_text(secret: &Secret, key: &str, what: &str) -> Result<String, KubeError> {
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
