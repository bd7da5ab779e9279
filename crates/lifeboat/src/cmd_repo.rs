//! Repository-level commands: init, key, snapshots, check, forget, prune,
//! unlock, repair. The flags, and the printing of what the flows in
//! `lifeboat_ops::repo` return.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use lifeboat_ops::repo::check::CheckRequest;
use lifeboat_ops::repo::forget::{ForgetOutcome, ForgetRequest, configured_policies};
use lifeboat_ops::repo::init::InitRequest;
use lifeboat_ops::repo::keys::AddKeyRequest;
use lifeboat_ops::repo::snapshots::SnapshotRow;
use lifeboat_ops::repo::{self as flows, prune::grace};
use lifeboat_repo::InitOptions;
use lifeboat_repo::prune::PruneReport;
use lifeboat_repo::retention::{
    FULL_SCOPE, PHYSICAL_GROUP, RetentionPolicy, format_duration, parse_duration,
};

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};
use lifeboat_ops::error::{OK, Result, usage};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Label for the first key slot
    #[arg(long)]
    pub label: Option<String>,
    /// Accept a passphrase shorter than 12 characters (or with fewer than 5 different ones)
    #[arg(long)]
    pub weak_passphrase: bool,
    /// Average chunk size in bytes (min is a quarter, max eight times)
    #[arg(long, hide = true)]
    pub chunk_avg: Option<u32>,
    /// Target pack size in MiB
    #[arg(long, hide = true)]
    pub pack_mib: Option<u64>,
    /// zstd level for stored data, 0 (off) to 19; fixed for the repository's life
    #[arg(long, value_name = "LEVEL", default_value_t = InitOptions::default().zstd_level,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub zstd_level: i32,
    /// Share this repository's blob ids and chunker parameters (not its
    /// encryption key): a target for `lifeboat copy` that receives only the
    /// blobs it lacks
    #[arg(long, value_name = "URL")]
    pub copy_params_from: Option<String>,
    /// Key file opening the --copy-params-from repository (mode 0600)
    #[arg(long, value_name = "FILE", env = "LIFEBOAT_FROM_KEY_FILE")]
    pub from_key_file: Option<PathBuf>,
    /// File holding the --copy-params-from repository's passphrase (mode 0600); or set LIFEBOAT_FROM_PASSWORD
    #[arg(long, value_name = "FILE", env = "LIFEBOAT_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key slot: a passphrase (LIFEBOAT_NEW_PASSWORD or --new-password-file) or a key file
    Add(KeyAddArgs),
    /// List key slots
    List,
    /// Remove a key slot (never the last one; the one in use only with --force)
    Remove {
        /// Key slot id or unique prefix (see `lifeboat key list`)
        id: String,
        /// Remove it even when it is the key in use (the one that opened the
        /// repository for this command): only when you hold another key
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct KeyAddArgs {
    /// File holding the new passphrase (mode 0600)
    #[arg(long, conflicts_with = "new_key_file")]
    pub new_password_file: Option<PathBuf>,
    /// Key file for the new slot; generated (mode 0600) when it does not exist
    #[arg(long)]
    pub new_key_file: Option<PathBuf>,
    /// A label for the slot (who or what it is for)
    #[arg(long)]
    pub label: Option<String>,
    /// Accept a new passphrase shorter than 12 characters (or with fewer than 5 different ones)
    #[arg(long)]
    pub weak_passphrase: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots of this source
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also download, decrypt and re-hash every pack
    #[arg(long)]
    pub read_data: bool,
    /// Like --read-data, for part N of M of the packs (e.g. 1/7), or a random
    /// percentage of them (e.g. 10%): the same N/M each time reads the same part
    #[arg(long, value_name = "N/M|P%")]
    pub read_data_subset: Option<lifeboat_repo::subset::DataSubset>,
}

#[derive(Args, Debug, Default)]
pub struct RetentionFlags {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this duration of the newest (e.g. 7d)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep one snapshot per hour within this duration (e.g. 30d)
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    /// Keep one snapshot per day within this duration (e.g. 90d)
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
}

impl RetentionFlags {
    /// The policy the flags describe, or None when no flag was given.
    pub fn policy(&self) -> Result<Option<RetentionPolicy>> {
        let d = |s: &Option<String>, flag: &str| -> Result<_> {
            s.as_deref()
                .map(|v| parse_duration(v).map_err(|e| usage(format!("--{flag}: {e}"))))
                .transpose()
        };
        let p = RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: d(&self.keep_within, "keep-within")?,
            keep_within_hourly: d(&self.keep_within_hourly, "keep-within-hourly")?,
            keep_within_daily: d(&self.keep_within_daily, "keep-within-daily")?,
            keep_within_weekly: d(&self.keep_within_weekly, "keep-within-weekly")?,
            keep_within_monthly: d(&self.keep_within_monthly, "keep-within-monthly")?,
            ..Default::default()
        };
        let any = self.keep_last.is_some()
            || self.keep_hourly.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
            || self.keep_within.is_some()
            || self.keep_within_hourly.is_some()
            || self.keep_within_daily.is_some()
            || self.keep_within_weekly.is_some()
            || self.keep_within_monthly.is_some();
        Ok(any.then_some(p))
    }
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Only this source's snapshots
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub keep: RetentionFlags,
    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Prune afterwards
    #[arg(long)]
    pub prune: bool,
    /// Grace period for the prune (see `lifeboat prune --help`) [default: config's prune_grace, else 1h]
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Data unreferenced for less than this is kept (protects operations
    /// whose locks went stale). Condemned data is deleted by a later prune
    /// once the grace period has passed; 0s deletes in one run when no
    /// older operation is running [default: config's prune_grace, else 1h]
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// Show what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs' own headers (after an index document
    /// was lost or damaged); safe to interrupt, backups may run meanwhile
    Index,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones (only when you know no Lifeboat process runs)
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Remove this one lock (its id, as a lock's description names it),
    /// stale or not: a holder known to be gone, on another host or in
    /// another container, whose lock has not gone stale yet
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

impl From<InitArgs> for InitRequest {
    fn from(a: InitArgs) -> Self {
        InitRequest {
            label: a.label,
            weak_passphrase: a.weak_passphrase,
            chunk_avg: a.chunk_avg,
            pack_mib: a.pack_mib,
            zstd_level: a.zstd_level,
            copy_params_from: a.copy_params_from,
            from_secret: lifeboat_ops::repo::copy::OtherSecret {
                key_file: a.from_key_file,
                password_file: a.from_password_file,
            },
        }
    }
}

pub async fn init(ctx: &Ctx, a: InitArgs) -> Result<i32> {
    let r = flows::init::init(ctx, a.into()).await?;
    if ctx.json() {
        print_json(&r)?;
    } else {
        println!(
            "created repository {} at {}\nkeep the passphrase or key file safe: without it the data cannot be read",
            r.id, r.location
        );
        if let Some(from) = &r.params_from {
            println!(
                "it shares the blob ids and chunker parameters of repository {from}: `lifeboat copy` sends it only the blobs it lacks"
            );
        }
    }
    Ok(OK)
}

pub async fn key(ctx: &Ctx, k: KeyCommand) -> Result<i32> {
    let repo = ctx.open().await?;
    match k {
        KeyCommand::Add(a) => {
            let req = AddKeyRequest {
                new_password_file: a.new_password_file,
                new_key_file: a.new_key_file,
                label: a.label,
                weak_passphrase: a.weak_passphrase,
            };
            let added = flows::keys::add(&repo, req).await?;
            if ctx.json() {
                print_json(&added)?;
            } else {
                print_key_added(&added);
            }
        }
        KeyCommand::List => {
            let keys = flows::keys::list(&repo).await?;
            if ctx.json() {
                print_json(&keys)?;
            } else {
                print_keys(keys);
            }
        }
        KeyCommand::Remove { id, force } => {
            let r = flows::keys::remove(&repo, &id, force).await?;
            if r.was_in_use {
                eprintln!(
                    "warning: removed key {}, the key in use: the secret this command was run with no longer opens the repository",
                    r.removed
                );
            }
            if ctx.json() {
                print_json(&r)?;
            } else {
                println!("removed key {}", r.removed);
            }
        }
    }
    Ok(OK)
}

fn print_key_added(added: &flows::keys::KeyAdded) {
    println!("added key {} ({})", added.id, added.kind);
    if added.key_file_as_passphrase
        && let Some(p) = &added.key_file
    {
        println!(
            "{} is not in the Lifeboat key-file format (first line `{}`): its contents were added as a passphrase (through Argon2id)",
            p.display(),
            lifeboat_repo::keys::KEY_FILE_HEADER
        );
    }
    if added.generated_key_file
        && let Some(p) = &added.key_file
    {
        println!("generated key file {} (mode 0600)", p.display());
    }
}

fn print_keys(keys: Vec<lifeboat_repo::repo::KeyInfo>) {
    use crate::table::{Align::*, Table};
    let mut t = Table::new(&[
        ("ID", Left),
        ("KIND", Left),
        ("CREATED", Left),
        ("HOST", Left),
        ("LABEL", Left),
    ]);
    for k in keys {
        t.row(vec![
            format!("{}{}", if k.current { "*" } else { " " }, k.id),
            k.kind.to_string(),
            k.created.format("%Y-%m-%d %H:%M").to_string(),
            k.hostname.clone(),
            k.label.unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
}

pub async fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let snaps = flows::snapshots::list(&repo, a.source.as_deref()).await?;
    if ctx.json() {
        let rows: Vec<SnapshotRow> = snaps.iter().map(SnapshotRow::from).collect();
        print_json(&rows)?;
        return Ok(OK);
    }
    use crate::table::{Align::*, Table};
    let mut t = Table::new(&[
        ("ID", Left),
        ("TIME (UTC)", Left),
        ("SOURCE", Left),
        ("KIND", Left),
        ("SIZE", Right),
        ("ADDED", Right),
        ("SCOPE", Left),
    ]);
    let mut partial = 0;
    for s in &snaps {
        let scope = s.snapshot.scope();
        partial += usize::from(!scope.is_full());
        t.row(vec![
            s.short_id().to_string(),
            s.snapshot.time.format("%Y-%m-%d %H:%M:%S").to_string(),
            s.snapshot.source.clone(),
            s.snapshot.kind.clone(),
            human_bytes(flows::snapshots::size(s)),
            human_bytes(s.snapshot.stats.bytes_stored),
            scope.to_string(),
        ]);
    }
    print!("{}", t.render());
    println!("{} snapshots", snaps.len());
    if partial > 0 {
        println!(
            "{partial} of them partial: `latest`, status, drills and retention's counts go by \
             the full snapshots; restore a partial one by its id"
        );
    }
    Ok(OK)
}

pub async fn check(ctx: &Ctx, a: CheckArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let req = CheckRequest {
        read_data: a.read_data,
        read_data_subset: a.read_data_subset,
    };
    let report = flows::check::check(&repo, req, ctx.reporter()).await?;
    if ctx.json() {
        print_json(&report)?;
    } else {
        print_check(&report, &a);
    }
    flows::check::verdict(&report)?;
    if !ctx.json() {
        println!("no errors found");
    }
    Ok(OK)
}

fn print_check(report: &lifeboat_repo::check::CheckReport, a: &CheckArgs) {
    println!(
        "checked {} snapshots, {} index files, {} packs, {} blobs{}",
        report.snapshots,
        report.index_files,
        report.packs,
        report.blobs,
        if let Some(part) = a.read_data_subset {
            format!(
                ", read and verified {} (subset {part} of the packs)",
                human_bytes(report.bytes_verified)
            )
        } else if a.read_data {
            format!(", read and verified {}", human_bytes(report.bytes_verified))
        } else {
            " (structure only; --read-data verifies every byte)".into()
        }
    );
    if report.wal_objects > 0 {
        println!(
            "WAL: {} objects{}",
            report.wal_objects,
            if report.read_data {
                format!(", {} read and verified", report.wal_verified)
            } else {
                String::new()
            }
        );
    }
    if report.unindexed_blobs > 0 {
        println!(
            "note: snapshots need {} blobs that no index lists ({} packs are in no index): an index document is missing or damaged. Run `lifeboat repair index` to rebuild the index from the packs' headers; do not prune before (prune refuses)",
            report.unindexed_blobs, report.unindexed_packs
        );
    } else if report.unindexed_packs > 0 {
        println!(
            "note: {} packs are not in any index and no snapshot needs them (left by an interrupted backup); `lifeboat prune` removes them",
            report.unindexed_packs
        );
    }
    if report.condemned_packs > 0 {
        println!(
            "note: {} packs are condemned by prune and await deletion",
            report.condemned_packs
        );
    }
    for p in &report.errors {
        println!("ERROR {}: {}", p.object, p.detail);
    }
}

pub async fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<i32> {
    let grace = grace(ctx, a.grace.as_deref())?;
    let req = ForgetRequest {
        policy: a.keep.policy()?,
        per_source: configured_policies(ctx.config.as_ref()),
        source: a.source,
        dry_run: a.dry_run,
    };
    let done = flows::forget::run(ctx, &req, a.prune.then_some(grace)).await?;
    if ctx.json() {
        print_json(&serde_json::json!({
            "dry_run": req.dry_run,
            "groups": done.forgotten.groups,
            "prune": done.prune,
        }))?;
    } else {
        print_forget(&done, req.dry_run, grace);
    }
    Ok(OK)
}

fn print_forget(done: &ForgetOutcome, dry_run: bool, grace: std::time::Duration) {
    for g in &done.forgotten.groups {
        if g.scope == FULL_SCOPE {
            println!("source {} ({}):", g.source, g.policy);
        } else if g.scope == PHYSICAL_GROUP {
            println!(
                "source {}, physical base backups counted on their own ({}):",
                g.source, g.policy
            );
        } else {
            println!(
                "source {}, partial snapshots ({}) counted on their own ({}):",
                g.source, g.scope, g.policy
            );
        }
        for (id, reasons) in &g.keep {
            println!("  keep   {}  {}", &id[..8], reasons.join(", "));
        }
        for id in &g.forget {
            println!(
                "  {} {}",
                if dry_run { "would forget" } else { "forget" },
                &id[..8]
            );
        }
    }
    for s in &done.forgotten.skipped {
        println!("source {s}: no retention policy configured, every snapshot kept");
    }
    if let Some(r) = &done.prune {
        print_prune(r, grace);
    }
}

fn print_prune(r: &PruneReport, grace: std::time::Duration) {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    println!(
        "{} snapshots, {} packs: {verb} {} packs ({}), {} of them left by interrupted backups",
        r.snapshots,
        r.packs_total,
        r.deleted_packs,
        human_bytes(r.deleted_bytes),
        r.deleted_leftovers
    );
    if r.condemned > 0 {
        println!("condemned {} newly unreferenced packs", r.condemned);
    }
    if r.rescued > 0 {
        println!(
            "{} condemned packs are referenced again and were kept",
            r.rescued
        );
    }
    if r.waiting > 0 {
        println!(
            "{} packs wait for the grace period ({}), running operations or S3 Object Lock retention; a later prune deletes them",
            r.waiting,
            format_duration(chrono::Duration::from_std(grace).unwrap_or_default())
        );
    }
    for w in &r.waiting_reasons {
        println!("  {w}");
    }
    if r.unused_bytes_in_live_packs > 0 {
        println!(
            "{} of unreferenced data remains inside packs that are still partly in use",
            human_bytes(r.unused_bytes_in_live_packs)
        );
    }
    if r.wal.objects > 0 {
        println!("{}", wal_line(&r.wal, verb));
    }
}

/// Prune's WAL step in one line.
fn wal_line(w: &lifeboat_repo::prune::WalPruneReport, verb: &str) -> String {
    let mut line = match (&w.kept_from, &w.oldest_base_backup) {
        (Some(from), Some(snap)) => format!(
            "WAL: {verb} {} of {} objects ({}) before {from}, where the oldest kept base backup ({}) starts",
            w.deleted,
            w.objects,
            human_bytes(w.deleted_bytes),
            &snap[..snap.len().min(8)]
        ),
        _ => format!("WAL: {} objects kept", w.objects),
    };
    if let Some(note) = &w.note {
        line.push_str("; ");
        line.push_str(note);
    }
    line
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    let grace = grace(ctx, a.grace.as_deref())?;
    let repo = ctx.open().await?;
    let r = flows::prune::prune(&repo, grace, a.dry_run).await?;
    if ctx.json() {
        print_json(&r)?;
    } else {
        print_prune(&r, grace);
    }
    Ok(OK)
}

pub async fn repair(ctx: &Ctx, r: RepairCommand) -> Result<i32> {
    match r {
        RepairCommand::Index => repair_index(ctx).await,
    }
}

async fn repair_index(ctx: &Ctx) -> Result<i32> {
    let repo = ctx.open().await?;
    let r = flows::repair::repair_index(&repo, ctx.reporter()).await?;
    if ctx.json() {
        print_json(&r)?;
    } else {
        println!(
            "read the headers of {} packs: indexed {} blobs in {} new index documents, removed {} old ones; {} packs were in no index before",
            r.packs, r.blobs, r.index_files_written, r.index_files_removed, r.packs_newly_indexed
        );
        for k in &r.unreadable_index_files {
            println!("warning: old index document could not be read and was replaced: {k}");
        }
        for p in &r.unreadable_packs {
            println!(
                "ERROR {}: header unreadable ({}); kept its old index entries if there were any",
                p.pack, p.detail
            );
        }
        for p in &r.missing_packs {
            println!("ERROR pack {p}: listed by the old index but missing from storage; dropped");
        }
        println!("run `lifeboat check` to confirm every snapshot's data is indexed");
    }
    flows::repair::verdict(&r)?;
    Ok(OK)
}

pub async fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let removed = match &a.id {
        Some(id) => vec![flows::unlock::unlock_id(&repo, id).await?],
        None => flows::unlock::unlock(&repo, a.all).await?,
    };
    if ctx.json() {
        let v: Vec<String> = removed.iter().map(|l| l.describe()).collect();
        print_json(&v)?;
    } else if removed.is_empty() {
        println!("no stale locks");
    } else {
        for l in &removed {
            println!("removed {}", l.describe());
        }
    }
    Ok(OK)
}
