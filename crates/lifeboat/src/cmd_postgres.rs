//! `backup postgres`, `restore postgres` and `verify`: their flags, the
//! requests they make of the service layer (`lifeboat_ops::postgres`, where
//! the flows live) and how their results are printed (text, or `--json`).

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use lifeboat_ops::postgres::restore::{RestoreReport, Writers, staging_limit_from_env};
use lifeboat_ops::postgres::{
    self as ops, BackupFrom, BackupRequest, RestoreRequest, VerifyRequest,
};
use lifeboat_postgres::facts::{self, FactDiff, Facts};
use lifeboat_repo::snapshot::ScopeView;
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};
use lifeboat_ops::error::{OK, Result, usage};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("from").required(true).args(["source", "db"])))]
pub struct BackupPostgresArgs {
    /// A PostgreSQL source of the configuration file
    #[arg(long)]
    pub source: Option<String>,
    /// Or a database URL, postgresql://user@host:port/db (password from
    /// PGPASSWORD or ~/.pgpass, never in the URL)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Only this table (repeatable; `name` or `schema.name`; a partitioned
    /// table brings its partitions)
    #[arg(long = "table", value_name = "T")]
    pub tables: Vec<String>,
    /// Only the schema, no rows
    #[arg(long)]
    pub schema_only: bool,
    /// Tags to attach (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RestorePostgresArgs {
    /// Snapshot id (or unique prefix), or `latest` (the newest full snapshot; a partial one by id)
    pub snapshot: String,
    /// The configured source: with `latest`, its latest snapshot; without
    /// --target, its database is the target and its quiesce settings apply
    #[arg(long)]
    pub source: Option<String>,
    /// Restore into this database instead (created when missing), e.g. for an
    /// investigation. Whether it is the source's database is asked of the
    /// servers (system identifier, database OID, data directory, start time),
    /// not read from the URL: the source's writers are quiesced only for it
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// With --target: restore over an existing database that holds objects and
    /// is not the configured source (without it such a restore is refused and
    /// what is there is listed)
    #[arg(long)]
    pub clean_existing: bool,
    /// With --target: the configured source is down, so whether the target is
    /// its database cannot be asked; restore into the target as another
    /// database (the writers are not quiesced). Used only when the source's
    /// identity really cannot be read
    #[arg(long)]
    pub source_unreachable: bool,
    /// Parallel jobs [default: the source's restore.jobs, else 1]; above 1 the
    /// archive is staged to a temporary file first (free space is checked);
    /// pg_restore loads one table per job, and only the largest tables (each
    /// at least 1/(N+1) of all table bytes) have their rows spread over the jobs
    #[arg(long = "jobs", value_name = "N")]
    pub jobs_flag: Option<u32>,
    /// With --jobs (or restore.jobs) above 1: one job per table, as plain
    /// `pg_restore --jobs` does, instead of spreading a table's rows over the jobs
    #[arg(long)]
    pub whole_tables: bool,
    /// Where --jobs stages the archive [default: the system temp directory].
    /// LIFEBOAT_STAGING_LIMIT=BYTES caps how much of it staging may use
    #[arg(long, env = "LIFEBOAT_STAGING_DIR", value_name = "DIR")]
    pub staging_dir: Option<PathBuf>,
    /// Do not stop the writers (dangerous: they write into a database being replaced)
    #[arg(long)]
    pub no_quiesce: bool,
    /// Do not check the restored database against the snapshot's facts
    #[arg(long)]
    pub no_verify: bool,
    /// The cluster of the writers to quiesce (quiesce.deployments/statefulsets)
    #[command(flatten)]
    pub cluster: crate::cmd_kube::ClusterArgs,
    /// Restore only this table (repeatable; `name` or `schema.name`), in
    /// place with the writers quiesced, or beside the live one with --as
    #[arg(long = "table", value_name = "T")]
    pub tables: Vec<String>,
    /// Restore only this schema (repeatable), in place or beside with --as
    #[arg(long = "schema", value_name = "S")]
    pub schemas: Vec<String>,
    /// Restore the --table (then --schema) of the same position beside the
    /// live one under this name; nothing live is touched, no writer stopped
    #[arg(long = "as", value_name = "NEW")]
    pub as_names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Snapshot id (or unique prefix), or `latest` (the newest full snapshot)
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this source
    #[arg(long)]
    pub source: Option<String>,
    /// The live database to check, postgresql://user@host:port/db
    #[arg(long, value_name = "URL")]
    pub target: String,
}

// ---------------------------------------------------------------- backup

#[derive(Serialize)]
struct BackupResult<'a> {
    id: &'a str,
    source: &'a str,
    time: chrono::DateTime<chrono::Utc>,
    stats: &'a lifeboat_repo::snapshot::BackupStats,
    facts: &'a Facts,
    scope: ScopeView,
}

impl BackupPostgresArgs {
    fn request(self) -> Result<BackupRequest> {
        let from = match (self.source, self.db) {
            (Some(name), _) => BackupFrom::Source(name),
            (None, Some(url)) => BackupFrom::Url(url),
            (None, None) => return Err(usage("pass --source NAME or --db URL")),
        };
        Ok(BackupRequest {
            from,
            tables: self.tables,
            schema_only: self.schema_only,
            tags: self.tags,
        })
    }
}

pub async fn backup(ctx: &Ctx, a: BackupPostgresArgs) -> Result<i32> {
    let done = ops::backup(ctx, a.request()?).await?;
    let s = &done.snap.snapshot.stats;
    if ctx.json() {
        print_json(&BackupResult {
            id: &done.snap.id,
            source: &done.snap.snapshot.source,
            time: done.snap.snapshot.time,
            stats: s,
            facts: &done.facts,
            scope: ScopeView::from(&done.snap.snapshot.scope()),
        })?;
    } else {
        let rows: i64 = done
            .facts
            .tables
            .iter()
            .filter(|t| t.parent.is_none())
            .filter_map(|t| t.rows)
            .sum();
        println!(
            "snapshot {} saved: database {} ({}, {} tables, {rows} rows), dump {} read, {} new, {} stored, {:.1} s",
            done.snap.short_id(),
            done.facts.database,
            done.facts.server_version,
            done.facts.tables.len(),
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            s.duration_seconds,
        );
        let scope = done.snap.snapshot.scope();
        if !scope.is_full() {
            println!(
                "partial snapshot ({scope}): restore it by its id; `latest`, status, drills and \
                 retention go by the full snapshots of {}",
                done.snap.snapshot.source
            );
        }
    }
    Ok(OK)
}

// ---------------------------------------------------------------- restore

impl RestorePostgresArgs {
    fn request(self, ctx: &Ctx) -> RestoreRequest {
        RestoreRequest {
            cluster: ctx.cluster_options(
                self.cluster.kubeconfig.as_deref(),
                self.cluster.context.as_deref(),
            ),
            snapshot: self.snapshot,
            source: self.source,
            target: self.target,
            clean_existing: self.clean_existing,
            source_unreachable: self.source_unreachable,
            jobs: self.jobs_flag,
            whole_tables: self.whole_tables,
            staging_dir: self.staging_dir,
            staging_limit: staging_limit_from_env(),
            no_quiesce: self.no_quiesce,
            no_verify: self.no_verify,
        }
    }
}

impl RestorePostgresArgs {
    /// Whether chosen tables or schemas are to be restored (`--table`,
    /// `--schema`, `--as`): `main` sends those to `cmd_tables::restore`.
    pub fn names_tables(&self) -> bool {
        !self.tables.is_empty() || !self.schemas.is_empty() || !self.as_names.is_empty()
    }
}

/// A whole-database restore (see [`RestorePostgresArgs::names_tables`] for
/// the other kind).
pub async fn restore(ctx: &Ctx, a: RestorePostgresArgs) -> Result<i32> {
    let outcome = ops::restore(ctx, a.request(ctx)).await?;
    if let Some(e) = outcome.error() {
        if ctx.json() {
            print_json(&outcome.report)?;
        } else {
            print!("{}", facts::diff_table(&outcome.report.differences));
        }
        return Err(e);
    }
    report_restore(ctx, &outcome.report)?;
    Ok(OK)
}

fn report_restore(ctx: &Ctx, r: &RestoreReport) -> Result<()> {
    if ctx.json() {
        return print_json(r);
    }
    let verified = match r.verified {
        Some(true) if r.not_recorded.is_empty() => "every fact verified".to_string(),
        Some(true) => format!(
            "every fact verified (not recorded in this snapshot, so not checked: {})",
            r.not_recorded.join(", ")
        ),
        Some(false) => "verification FAILED".to_string(),
        None => "not verified".to_string(),
    };
    let writers = match r.writers {
        Writers::None => "no writers configured",
        Writers::NotStopped => "writers not stopped (--no-quiesce)",
        Writers::LeftStopped => "writers left stopped",
        Writers::Resumed => "writers resumed",
    };
    println!(
        "restored snapshot {} into {} in {:.1} s; {verified}; {writers}",
        &r.snapshot[..r.snapshot.len().min(8)],
        r.target,
        r.restore_seconds,
    );
    if !r.split_tables.is_empty() && !ctx.global.quiet {
        eprintln!(
            "the rows of {} were spread over the jobs (--whole-tables: one job per table)",
            r.split_tables.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- verify

#[derive(Serialize)]
struct VerifyResult<'a> {
    snapshot: &'a str,
    target: &'a str,
    ok: bool,
    differences: &'a [FactDiff],
    /// Facts the snapshot did not record (an older Lifeboat took it): not checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_recorded: Vec<&'static str>,
}

pub async fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let v = ops::verify(
        ctx,
        VerifyRequest {
            snapshot: a.snapshot,
            source: a.source,
            target: a.target,
        },
    )
    .await?;
    if ctx.json() {
        print_json(&VerifyResult {
            snapshot: &v.snap.id,
            target: &v.target,
            ok: v.ok(),
            differences: &v.differences,
            not_recorded: v.facts.not_recorded(),
        })?;
    } else if v.ok() {
        println!(
            "{} matches snapshot {}: {}",
            v.target,
            v.snap.short_id(),
            v.facts.checked_summary()
        );
    } else {
        print!("{}", facts::diff_table(&v.differences));
    }
    match v.error() {
        Some(e) => Err(e),
        None => Ok(OK),
    }
}
