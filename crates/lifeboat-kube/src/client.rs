//! Connecting to the Kubernetes API: an explicit kubeconfig (and context),
//! else `KUBECONFIG` / `~/.kube/config`, else the in-cluster service account.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Cause, ErrorKind, KubeError};

/// Where to find the cluster. All `None`: infer as `kubectl` does.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// A kubeconfig file to use instead of `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// A context in the kubeconfig other than its current one.
    pub context: Option<String>,
}

/// Makes aws-lc-rs rustls's process-wide TLS provider (the one
/// `object_store` uses too). Builds that enable both of rustls's providers
/// (feature unification across the workspace) cannot pick one by themselves
/// and panic at the first TLS connection otherwise. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client for the cluster `opts` names. Failing to find or read a
/// configuration is [`ErrorKind::Other`], with the kubeconfig error as the
/// cause.
pub async fn connect(opts: &ClusterOptions) -> Result<kube::Client, KubeError> {
    install_tls_provider();
    let mut config = match (&opts.kubeconfig, &opts.context) {
        (Some(path), context) => from_file(path, context.clone()).await?,
        (None, Some(context)) => kube::Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        })
        .await
        .map_err(other(format!(
            "loading context {context:?} from the kubeconfig"
        )))?,
        (None, None) => kube::Config::infer().await.map_err(other(
            "no Kubernetes cluster configured: set KUBECONFIG, pass --kubeconfig, or run in a pod with a service account".to_string(),
        ))?,
    };
    // kube's own retry layer (429/503/504, up to 15 times with delays up to
    // 1000 s, for every method, POST included, and silent) is replaced by
    // `crate::retry`: idempotent calls only, bounded in total time, logged.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(other("creating the Kubernetes client".to_string()))
}

/// Maps a configuration error to [`ErrorKind::Other`] under `context`.
fn other<E: Into<Cause>>(context: String) -> impl FnOnce(E) -> KubeError {
    move |e| KubeError::with_cause(ErrorKind::Other, context, e)
}

async fn from_file(path: &Path, context: Option<String>) -> Result<kube::Config, KubeError> {
    let kc = Kubeconfig::read_from(path)
        .map_err(other(format!("reading kubeconfig {}", path.display())))?;
    kube::Config::from_custom_kubeconfig(
        kc,
        &KubeConfigOptions {
            context,
            ..Default::default()
        },
    )
    .await
    .map_err(other(format!("using kubeconfig {}", path.display())))
}

/// Whether the API server answers: one request for its version, not
/// retried, for callers that fall back to working offline when no cluster
/// is there. The error's message is the client's own (`kube::Error`'s
/// text), its kind classified as [`KubeError::from_kube`] does.
pub async fn reachable(client: &kube::Client) -> Result<(), KubeError> {
    client
        .apiserver_version()
        .await
        .map(|_| ())
        .map_err(|e| KubeError::new(KubeError::kind_of(&e), e.to_string()))
}
