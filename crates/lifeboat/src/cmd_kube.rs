//! `backup kube`, `restore kube` and `export kube`: Kubernetes objects in the
//! repository (see `lifeboat_kube::objects` for the stored form).
//!
//! Backup streams the listed objects straight into a backup session (no
//! staging, memory flat with the object count). Restore and export read the
//! snapshot's item whole and verified before anything is applied or written.
//! Existing objects are replaced by default (`--existing`, see
//! `lifeboat_kube::objects::restore`).
//! Exit codes: a failed object 1 (after all others were tried), snapshot or
//! kind or object not found 3, credentials or RBAC refused 6, bad flags 2.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lifeboat_kube::error::{ErrorKind, KubeError};
use lifeboat_kube::objects::backup::{
    BackupError, BackupOptions, BackupSummary, DEFAULT_PAGE_SIZE,
};
use lifeboat_kube::objects::export::{read_tree, write_tree};
use lifeboat_kube::objects::restore::{
    self as kube_restore, Action, ObjectResult, RestoreOptions, parse_namespace_map,
};
use lifeboat_kube::objects::select::{LabelSelector, Selection};
use lifeboat_kube::objects::strip::StripOptions;
use lifeboat_kube::objects::{ITEM_NAME, Record, parse_item};
use lifeboat_repo::Repository;
use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::snapshot::{Scope, SnapshotRef};
use serde::Serialize;

use crate::config::{KubeSource, SourceKind};
use crate::context::Ctx;
use crate::exit::{AUTH, FAILURE, NOT_FOUND, OK, USAGE, fail, usage};
use crate::output::{human_bytes, print_json};

/// `kind` of kube snapshots.
pub const SNAPSHOT_KIND: &str = "kube";
/// Source name of a backup made from flags alone.
pub const DEFAULT_SOURCE: &str = "kube";

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

/// Maps Kubernetes errors to exit codes and plain messages.
fn kube_err(k: KubeError) -> anyhow::Error {
    let code = match k.kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Denied => AUTH,
        ErrorKind::Invalid => USAGE,
        ErrorKind::Unreachable | ErrorKind::Other => FAILURE,
    };
    fail(code, k.message.clone())
}

/// The `kube:` section of a configured source.
fn configured_source(ctx: &Ctx, name: &str) -> Result<KubeSource> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(format!(
            "--source {name} needs a configuration file: pass --config FILE or set LIFEBOAT_CONFIG"
        ))
    })?;
    let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
    if src.kind != SourceKind::Kube {
        return Err(usage(format!(
            "source {name} is a {} source, not kube",
            src.kind
        )));
    }
    Ok(src.kube.clone().unwrap_or_default())
}

fn selection(a: &SelectArgs, source: Option<&KubeSource>) -> Result<Selection> {
    let labels = match a
        .selector
        .as_deref()
        .or(source.and_then(|s| s.label_selector.as_deref()))
    {
        Some(text) => Some(LabelSelector::parse(text).map_err(|e| usage(e.to_string()))?),
        None => None,
    };
    let pick = |flag: &Vec<String>, conf: Option<&Vec<String>>| -> Vec<String> {
        if flag.is_empty() {
            conf.cloned().unwrap_or_default()
        } else {
            flag.clone()
        }
    };
    Ok(Selection {
        namespaces: pick(&a.namespaces, source.map(|s| &s.namespaces)),
        kinds: pick(&a.kinds, source.map(|s| &s.kinds)),
        names: a.names.clone(),
        labels,
    })
}

/// The snapshot's scope: full when the flags select what the configured
/// source itself selects (its `kube:` section), else the selection the flags
/// made. A backup without `--source` is full: its flags are all there is to
/// the ad-hoc source `kube` (and `restore kube latest` keeps meaning the
/// newest of them); its selection is in its facts.
fn kube_scope(a: &SelectArgs, source: Option<&KubeSource>) -> Result<Scope> {
    let Some(source) = source else {
        return Ok(Scope::full());
    };
    let source = Some(source);
    let of = |s: Selection| {
        Scope {
            namespaces: s.namespaces,
            kinds: s.kinds,
            names: s.names,
            selector: s.labels.map(|l| l.text),
            ..Scope::default()
        }
        .normalized()
    };
    let chosen = of(selection(a, source)?);
    let own = of(selection(&SelectArgs::default(), source)?);
    Ok(if chosen == own { Scope::full() } else { chosen })
}

async fn connect(ctx: &Ctx, c: &ClusterArgs) -> Result<lifeboat_kube::Client> {
    let opts = ctx.cluster_options(c.kubeconfig.as_deref(), c.context.as_deref());
    Ok(lifeboat_kube::client::connect(&opts).await?)
}

/// Feeds the chunker from the object lister: a `Read` over a channel.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[derive(Serialize)]
struct BackupResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    stats: &'a lifeboat_repo::snapshot::BackupStats,
    kube: &'a BackupSummary,
}

/// A kube backup that committed its snapshot.
pub struct KubeBackup {
    /// The snapshot's source name (the configured source, else `kube`).
    pub source: String,
    pub snap: SnapshotRef,
    /// What was listed: counts per kind, namespaces, left-out objects,
    /// warnings.
    pub summary: BackupSummary,
}

/// Backs up the objects `a` selects (its `--source`'s `kube:` section,
/// overridden by its flags) into a new snapshot, printing nothing: the
/// caller reports `summary.warnings` and the result. `repo`: the repository
/// to write into, or `None` to open the context's (after connecting to the
/// cluster). Errors carry their exit codes (`kube_err`).
pub async fn backup_snapshot(
    ctx: &Ctx,
    repo: Option<&Repository>,
    a: BackupKubeArgs,
    mode: crate::progress::Mode,
) -> Result<KubeBackup> {
    let source = match &a.source {
        Some(name) => Some(configured_source(ctx, name)?),
        None => None,
    };
    let scope = kube_scope(&a.select, source.as_ref())?;
    let opts = BackupOptions {
        selection: selection(&a.select, source.as_ref())?,
        strip: StripOptions {
            keep_owner_references: a.keep_owner_references,
            keep_status: a.keep_status,
        },
        page_size: DEFAULT_PAGE_SIZE,
    };
    let client = connect(ctx, &a.cluster).await?;
    let opened;
    let repo = match repo {
        Some(r) => r,
        None => {
            opened = ctx.open().await?;
            &opened
        }
    };
    let progress = Arc::new(Progress::default());
    let mut session = BackupSession::start(repo, Arc::clone(&progress)).await?;
    let display = crate::progress::start(Arc::clone(&progress), "backup kube", mode, false);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let reader = ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let lister = async {
        // The sender is dropped when listing ends, which ends the stream.
        let tx = tx;
        lifeboat_kube::objects::backup::backup(&client, &opts, &tx, |_| {}).await
    };
    let (stored, listed) = tokio::join!(session.add_stream(ITEM_NAME, reader), lister);
    let summary = match (stored, listed) {
        (Ok(_), Ok(summary)) => summary,
        (_, Err(BackupError::Kube(e))) => {
            session.abort().await;
            return Err(kube_err(e));
        }
        (Err(e), _) => {
            session.abort().await;
            return Err(e.into());
        }
        (Ok(_), Err(e)) => {
            session.abort().await;
            return Err(e.into());
        }
    };
    let name = a.source.unwrap_or_else(|| DEFAULT_SOURCE.to_string());
    let snap = session
        .commit_scoped(
            SnapshotMeta {
                source: name.clone(),
                kind: SNAPSHOT_KIND.into(),
                tags: a.tags,
                facts: serde_json::json!({ "kube": &summary }),
            },
            scope,
        )
        .await?;
    drop(display);
    Ok(KubeBackup {
        source: name,
        snap,
        summary,
    })
}

pub async fn backup(ctx: &Ctx, a: BackupKubeArgs) -> Result<i32> {
    let KubeBackup {
        source: name,
        snap,
        summary,
    } = backup_snapshot(ctx, None, a, crate::progress::mode(ctx)).await?;
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

/// A `Write` into shared memory, for reading an item whole.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("buffer lock poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The kube snapshot `spec` names, and its records (verified as read).
async fn load_snapshot(
    ctx: &Ctx,
    spec: &str,
    source: Option<&str>,
) -> Result<(Repository, SnapshotRef, Vec<Record>)> {
    let repo = ctx.open().await?;
    let snap = repo.find_snapshot(spec, source).await?;
    if snap.snapshot.kind != SNAPSHOT_KIND {
        return Err(usage(format!(
            "snapshot {} is a {} snapshot, not kube (see `lifeboat snapshots`)",
            snap.short_id(),
            snap.snapshot.kind
        )));
    }
    let records = read_records(&repo, &snap).await?;
    Ok((repo, snap, records))
}

/// The objects of a kube snapshot, every blob verified as it is read.
pub(crate) async fn read_records(repo: &Repository, snap: &SnapshotRef) -> Result<Vec<Record>> {
    let buf = SharedBuf::default();
    restore_item(
        repo,
        snap,
        Some(ITEM_NAME),
        buf.clone(),
        Arc::new(Progress::default()),
    )
    .await?;
    let bytes = std::mem::take(
        &mut *buf
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?,
    );
    parse_item(&bytes).with_context(|| format!("reading snapshot {}", snap.short_id()))
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
    // `--source` only picks the snapshot (checked to be a kube source here).
    // Restore filters come from flags only: a source's namespaces are where
    // it backs up from, not a filter on what to restore.
    if let Some(name) = &a.source {
        configured_source(ctx, name)?;
    }
    let opts = RestoreOptions {
        selection: selection(&a.select, None)?,
        namespace_map: parse_namespace_map(&a.namespace_map).map_err(|e| usage(e.to_string()))?,
        existing: match a.existing {
            Existing::Replace => kube_restore::Existing::Replace,
            Existing::Update => kube_restore::Existing::Update,
            Existing::Skip => kube_restore::Existing::Skip,
        },
        dry_run: a.dry_run,
        concurrency: a.concurrency as usize,
        crd_timeout: Duration::from_secs(a.crd_timeout),
    };
    let (origin, records) = match (&a.from_dir, &a.snapshot) {
        (Some(dir), _) => (
            format!("directory {}", dir.display()),
            read_tree(dir).map_err(|e| usage(format!("{e:#}")))?,
        ),
        (None, Some(spec)) => {
            let (_repo, snap, records) = load_snapshot(ctx, spec, a.source.as_deref()).await?;
            (format!("snapshot {}", snap.short_id()), records)
        }
        (None, None) => return Err(usage("give a snapshot id, `latest`, or --from-dir DIR")),
    };
    let client = connect(ctx, &a.cluster).await?;
    let json = ctx.json();
    let quiet = ctx.global.quiet;
    let report = kube_restore::restore(&client, records, &opts, |r| {
        if !json {
            print_result(r, quiet);
        }
    })
    .await
    .map_err(kube_err)?;
    let failed = report.failed();
    if json {
        print_json(&report)?;
    } else {
        let counts: Vec<String> = report
            .counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let what = if a.dry_run {
            "dry run of"
        } else {
            "restore of"
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
    if failed > 0 {
        let names: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.action == Action::Failed)
            .take(10)
            .map(|r| r.display_ref())
            .collect();
        return Err(fail(
            FAILURE,
            format!(
                "{failed} of {} objects failed: {}{}; the others were {}",
                report.results.len(),
                names.join(", "),
                if failed > 10 { ", …" } else { "" },
                if a.dry_run { "checked" } else { "applied" }
            ),
        ));
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
    let sel = selection(&a.select, None)?;
    let (_repo, snap, records) = load_snapshot(ctx, &a.snapshot, a.source.as_deref()).await?;
    let records: Vec<Record> = records.into_iter().filter(|r| sel.matches(r)).collect();
    let provenance = serde_json::json!({
        "snapshot": snap.id,
        "source": snap.snapshot.source,
        "time": snap.snapshot.time,
        "exported_by": format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        "secrets_included": a.include_secrets,
    });
    let summary = write_tree(&a.dir, &records, a.include_secrets, &provenance)
        .map_err(|e| usage(format!("{e:#}")))?;
    if ctx.json() {
        print_json(&ExportResult {
            snapshot: snap.id.clone(),
            dir: a.dir.display().to_string(),
            files: summary.files,
            secrets_left_out: summary.secrets_left_out,
        })?;
    } else {
        println!(
            "exported {} objects of snapshot {} to {}",
            summary.files,
            snap.short_id(),
            a.dir.display()
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
