//! `backup kube`, `restore kube` and `export kube`: the flags, and the
//! printing of what the flows in `lifeboat_ops::kube` did (the same text and
//! `--json` documents as ever). Existing objects are replaced by default
//! (`--existing`, see `lifeboat_kube::objects::restore`).
//! Exit codes: a failed object 1 (after all others were tried), snapshot or
//! kind or object not found 3, credentials or RBAC refused 6, bad flags 2.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::objects::backup::BackupSummary;
use lifeboat_kube::objects::restore::{self as kube_restore, Action, ObjectResult};
use lifeboat_ops::kube::backup::{BackupRequest, KubeBackup};
use lifeboat_ops::kube::export::{ExportRequest, KubeExport};
use lifeboat_ops::kube::restore::{KubeRestore, Origin, RestoreRequest, RestoredFrom};
use lifeboat_ops::kube::{self as ops, Select};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};
use lifeboat_ops::error::{OK, Result, usage};

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

impl ClusterArgs {
    /// The cluster these flags name, else the configuration's
    /// `kubernetes:` section, else what kubectl would infer.
    pub fn options(&self, ctx: &Ctx) -> ClusterOptions {
        ctx.cluster_options(self.kubeconfig.as_deref(), self.context.as_deref())
    }
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

impl From<SelectArgs> for Select {
    fn from(a: SelectArgs) -> Self {
        Select {
            namespaces: a.namespaces,
            kinds: a.kinds,
            names: a.names,
            selector: a.selector,
        }
    }
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
    /// Snapshot id (or unique prefix), or `latest` (the newest full snapshot); not with --from-dir
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
    /// Objects that already exist: replace them with the snapshot's version
    /// (keys added since the backup are removed), update them (merge by
    /// server-side apply: keys added since stay), or skip them
    #[arg(long, value_enum, default_value = "replace")]
    pub existing: Existing,
    /// Change nothing; print what would change: the keys added, changed and
    /// removed, and a diff per object (Secret values masked)
    #[arg(long)]
    pub dry_run: bool,
    /// Applies in flight at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Seconds to wait for a restored CRD to become Established
    #[arg(long, default_value_t = 60)]
    pub crd_timeout: u64,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    Update,
    Skip,
}

#[derive(Args, Debug)]
pub struct ExportKubeArgs {
    /// Snapshot id (or unique prefix), or `latest` (the newest full snapshot)
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

#[derive(Serialize)]
struct BackupResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    stats: &'a lifeboat_repo::snapshot::BackupStats,
    kube: &'a BackupSummary,
}

pub async fn backup(ctx: &Ctx, a: BackupKubeArgs) -> Result<i32> {
    let req = BackupRequest {
        cluster: a.cluster.options(ctx),
        source: a.source,
        select: a.select.into(),
        keep_owner_references: a.keep_owner_references,
        keep_status: a.keep_status,
        tags: a.tags,
    };
    let KubeBackup {
        source: name,
        snap,
        summary,
    } = ops::backup::backup(ctx, None, req)
        .await
        .map_err(|f| f.error)?;
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
    let s = &snap.snapshot.stats;
    if ctx.json() {
        print_json(&BackupResult {
            id: &snap.id,
            source: &name,
            time: snap.snapshot.time,
            stats: s,
            kube: &summary,
        })?;
    } else {
        let kinds: Vec<String> = summary
            .counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!(
            "snapshot {} saved: {} objects ({}) from {}; {} new, {} stored, {:.1} s",
            snap.short_id(),
            summary.objects,
            if kinds.is_empty() {
                "none matched".to_string()
            } else {
                kinds.join(", ")
            },
            summary.namespaces.join(", "),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            s.duration_seconds
        );
        for (why, n) in &summary.skipped {
            println!("  left out: {n} × {why}");
        }
    }
    Ok(OK)
}

fn print_result(r: &ObjectResult, quiet: bool) {
    if quiet && r.action != Action::Failed {
        return;
    }
    match &r.error {
        Some(e) => println!("{:<16} {}: {e}", r.action.as_str(), r.display_ref()),
        None => println!("{:<16} {}", r.action.as_str(), r.display_ref()),
    }
    if let Some(c) = &r.changes {
        println!("    {}", c.summary());
    }
    if let Some(d) = &r.diff {
        for l in d.lines() {
            println!("    {l}");
        }
    }
}

pub async fn restore(ctx: &Ctx, a: RestoreKubeArgs) -> Result<i32> {
    let origin = match (a.from_dir, a.snapshot) {
        (Some(dir), _) => Origin::Dir(dir),
        (None, Some(spec)) => Origin::Snapshot(spec),
        (None, None) => return Err(usage("give a snapshot id, `latest`, or --from-dir DIR")),
    };
    let req = RestoreRequest {
        origin,
        cluster: a.cluster.options(ctx),
        source: a.source,
        select: a.select.into(),
        namespace_map: a.namespace_map,
        existing: match a.existing {
            Existing::Replace => kube_restore::Existing::Replace,
            Existing::Update => kube_restore::Existing::Update,
            Existing::Skip => kube_restore::Existing::Skip,
        },
        dry_run: a.dry_run,
        concurrency: a.concurrency as usize,
        crd_timeout: Duration::from_secs(a.crd_timeout),
    };
    let json = ctx.json();
    let quiet = ctx.global.quiet;
    let done = ops::restore::restore(ctx, req, |r| {
        if !json {
            print_result(r, quiet);
        }
    })
    .await?;
    let KubeRestore {
        from,
        dry_run,
        report,
    } = &done;
    if json {
        print_json(report)?;
    } else {
        let counts: Vec<String> = report
            .counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let what = if *dry_run { "dry run of" } else { "restore of" };
        let origin = match from {
            RestoredFrom::Dir(dir) => format!("directory {}", dir.display()),
            RestoredFrom::Snapshot(snap) => format!("snapshot {}", snap.short_id()),
        };
        eprintln!(
            "{what} {origin}: {} objects: {}",
            report.results.len(),
            if counts.is_empty() {
                "nothing matched the filters".to_string()
            } else {
                counts.join(", ")
            }
        );
    }
    if let Some(e) = done.failure() {
        return Err(e);
    }
    Ok(OK)
}

#[derive(Serialize)]
struct ExportResult {
    snapshot: String,
    dir: String,
    files: u64,
    secrets_left_out: u64,
}

pub async fn export(ctx: &Ctx, a: ExportKubeArgs) -> Result<i32> {
    let req = ExportRequest {
        snapshot: a.snapshot,
        source: a.source,
        dir: a.dir,
        include_secrets: a.include_secrets,
        select: a.select.into(),
    };
    let KubeExport { snap, dir, summary } = ops::export::export(ctx, req).await?;
    if ctx.json() {
        print_json(&ExportResult {
            snapshot: snap.id.clone(),
            dir: dir.display().to_string(),
            files: summary.files,
            secrets_left_out: summary.secrets_left_out,
        })?;
    } else {
        println!(
            "exported {} objects of snapshot {} to {}",
            summary.files,
            snap.short_id(),
            dir.display()
        );
        if summary.secrets_left_out > 0 {
            println!(
                "  {} Secrets left out: --include-secrets writes them (mode 0600)",
                summary.secrets_left_out
            );
        }
    }
    Ok(OK)
}
