//! Connecting to the Kubernetes API: an explicit kubeconfig (and context),
//! else `KUBECONFIG` / `~/.kube/config`, else the in-cluster service account.

use std::path::Path;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

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

/// A client for the cluster `opts` names.
pub async fn connect(opts: &ClusterOptions) -> Result<kube::Client> {
    install_tls_provider();
    let mut config = match (&opts.kubeconfig, &opts.context) {
        (Some(path), context) => from_file(path, context.clone()).await?,
        (None, Some(context)) => kube::Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        })
        .await
        .with_context(|| format!("loading context {context:?} from the kubeconfig"))?,
        (None, None) => kube::Config::infer().await.context(
            "no Kubernetes cluster configured: set KUBECONFIG, pass --kubeconfig, or run in a pod with a service account",
        )?,
    };
    // kube's own retry layer (429/503/504, up to 15 times with delays up to
    // 1000 s, for every method, POST included, and silent) is replaced by
    // `crate::retry`: idempotent calls only, bounded in total time, logged.
    config.default_retry = false;
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

async fn from_file(path: &Path, context: Option<String>) -> Result<kube::Config> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(
        kc,
        &KubeConfigOptions {
            context,
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("using kubeconfig {}", path.display()))
}
