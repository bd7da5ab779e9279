//! `backup kube`, `restore kube` and `export kube`. (Being built.)

use std::path::PathBuf;

use clap::Args;

use crate::context::Ctx;

/// Which cluster to talk to.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// kubeconfig file [default: KUBECONFIG, ~/.kube/config, or in-cluster]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use [default: its current context]
    #[arg(long = "kube-context", value_name = "NAME")]
    pub context: Option<String>,
}

/// Which objects: the same filters for backup, restore and export.
#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Namespace (repeatable)
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Kind: plural, singular or Kind, optionally with its group:
    /// configmap, secrets, remediationrequests.kubernaut.ai (repeatable)
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Object name (repeatable)
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Label selector, e.g. app.kubernetes.io/part-of=kubernaut
    #[arg(long = "selector", short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct BackupKubeArgs {
    /// A kube source of the configuration file
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Keep metadata.ownerReferences (stripped by default)
    #[arg(long)]
    pub keep_owner_references: bool,
    /// Keep .status (stripped by default)
    #[arg(long)]
    pub keep_status: bool,
    /// Tags to attach (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct RestoreKubeArgs {
    /// Snapshot id (or unique prefix), or `latest`; not with --from-dir
    #[arg(required_unless_present = "from_dir", conflicts_with = "from_dir")]
    pub snapshot: Option<String>,
    /// The configured source (with `latest`: its latest snapshot)
    #[arg(long)]
    pub source: Option<String>,
    /// Apply a directory written by `lifeboat export kube` instead
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Restore objects of namespace FROM into TO (repeatable)
    #[arg(long = "namespace-map", value_name = "FROM=TO")]
    pub namespace_map: Vec<String>,
    /// Objects that already exist: update them (server-side apply) or skip them
    #[arg(long, value_enum, default_value = "update")]
    pub existing: Existing,
    /// Change nothing; print what would change, as a diff per object
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Update,
    Skip,
}

#[derive(Args, Debug)]
pub struct ExportKubeArgs {
    /// Snapshot id (or unique prefix), or `latest`
    pub snapshot: String,
    /// The configured source (with `latest`: its latest snapshot)
    #[arg(long)]
    pub source: Option<String>,
    /// Directory to write into (created; must be empty if it exists)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Also write Secrets (mode 0600); left out by default
    #[arg(long)]
    pub include_secrets: bool,
    #[command(flatten)]
    pub select: SelectArgs,
}

pub async fn backup(_ctx: &Ctx, _a: BackupKubeArgs) -> anyhow::Result<i32> {
    anyhow::bail!("backup kube is not built yet")
}

pub async fn restore(_ctx: &Ctx, _a: RestoreKubeArgs) -> anyhow::Result<i32> {
    anyhow::bail!("restore kube is not built yet")
}

pub async fn export(_ctx: &Ctx, _a: ExportKubeArgs) -> anyhow::Result<i32> {
    anyhow::bail!("export kube is not built yet")
}
