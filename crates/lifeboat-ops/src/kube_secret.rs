//! Resolving `kubernetes_secret` references of the configuration from the
//! cluster. Configuration secrets are read from synchronous code, so the
//! async read runs on the current (multi-thread) runtime via
//! `block_in_place`. Which cluster: set once by the context from flags and
//! the config's `kubernetes:` section.

use std::sync::OnceLock;

use lifeboat_kube::client::ClusterOptions;

static CLUSTER: OnceLock<ClusterOptions> = OnceLock::new();

/// Which cluster `kubernetes_secret` references are read from (first call wins).
pub fn set_cluster(opts: ClusterOptions) {
    let _ = CLUSTER.set(opts);
}

/// Reads `key` of Secret `namespace/name`. Err is a message for the user.
pub fn read(namespace: Option<&str>, name: &str, key: &str) -> Result<String, String> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        "kubernetes_secret references are read inside the running program only".to_string()
    })?;
    let opts = CLUSTER.get().cloned().unwrap_or_default();
    tokio::task::block_in_place(|| {
        handle.block_on(async {
            let client = lifeboat_kube::client::connect(&opts)
                .await
                .map_err(|e| format!("{e:#}"))?;
            lifeboat_kube::secret::read_key(&client, namespace, name, key)
                .await
                .map_err(|e| e.message)
        })
    })
}
