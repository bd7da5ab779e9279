//! Deleting one object by reference: how a drill removes what it created.

use kube::api::{Api, DeleteParams, DynamicObject};

use super::Resource;
use crate::error::KubeError;

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The server accepted the delete.
    Deleted,
    /// There was nothing to delete (404): gone already.
    AlreadyGone,
}

/// Deletes `name` of `resource`, in `namespace` when the kind is
/// namespaced (cluster-scoped kinds ignore it). One request, not retried: a
/// caller cleaning up reports a failure rather than waiting on it. An error
/// is classified by [`KubeError::from_kube`] with `what` (e.g. `could not
/// delete configmap ns/a`) in front.
pub async fn delete(
    client: &kube::Client,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    what: &str,
) -> Result<Deleted, KubeError> {
    let ar = resource.api_resource();
    let api: Api<DynamicObject> = match (resource.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (true, None) => Api::default_namespaced_with(client.clone(), &ar),
        (false, _) => Api::all_with(client.clone(), &ar),
    };
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(Deleted::Deleted),
        Err(e) if KubeError::status_code(&e) == Some(404) => Ok(Deleted::AlreadyGone),
        Err(e) => Err(KubeError::from_kube(&e, what)),
    }
}
