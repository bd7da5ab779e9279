//! The physical drill (`lifeboat drill --physical`, docs/physical.md,
//! "Drills of physical backups"): the source's latest base backup and the
//! archived WAL after it, recovered to the latest archived point by a
//! throwaway server in a temporary data directory, verified, measured,
//! removed. It is `restore physical --to-latest` (the same code:
//! [`crate::physical::restore`]'s `prepare`, `write`, `recover`,
//! `run_queries`), run where nothing depends on it.
//!
//! Differences from `restore physical`: a gap in the archive is a failed
//! drill (a record with `ok: false` naming the missing segments), not an
//! error without a record, since it is exactly what a drill exists to find;
//! the data directory is a temporary one, removed afterwards — also when
//! the drill fails, and when the drill is abandoned (Ctrl-C of `lifeboat
//! drill`, the daemon's shutdown): dropping it stops the server first, then
//! removes the directory ([`ScratchDir`], `crate::physical::scratch`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_dr::record::{self, DrillRecord, DrillStep};
use lifeboat_postgres::basebackup::Target;
use lifeboat_repo::Repository;

use super::step;
use crate::context::Ctx;
use crate::error::{NOT_FOUND, Result, fail, usage};
use crate::physical::restore::{self as physical, Prepared, RestoreRequest};
use crate::physical::scratch::ScratchDir;
use crate::postgres::{PgSource, url_source};
use crate::report::human_bytes;

/// How long recovery may run in a drill (as `restore physical`'s default).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// What to drill, resolved from the request before anything is touched.
pub struct Plan {
    /// The source name physical snapshots are stored under.
    pub name: String,
    /// Configured (`--source`): its verification queries and `bin_dir`.
    pub configured: bool,
}

/// What the drill found, for the record.
pub struct Drilled {
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    pub target: String,
    pub steps: Vec<DrillStep>,
    /// Start to verified (or to the failure).
    pub rto_seconds: f64,
    /// The last recovered commit's time (`pg_last_xact_replay_timestamp`),
    /// else the base backup's end: what a disaster at the drill's start
    /// would have kept.
    pub recovered_to: DateTime<Utc>,
    pub result: Result<()>,
}

/// `--source NAME` or `--db URL`; the logical drill's other flags are
/// refused (they are about a scratch database).
pub fn plan(
    source: Option<&str>,
    db: Option<&str>,
    logical_flags: bool,
    config: Option<&crate::config::Config>,
) -> Result<Plan> {
    if logical_flags {
        return Err(usage(
            "--scratch, --scratch-is-copy and --jobs are for logical drills; a physical drill \
             recovers into a throwaway data directory of its own",
        ));
    }
    match (source, db) {
        (Some(_), Some(_)) => Err(usage("give --source NAME or --db URL, not both")),
        (None, None) => Err(usage(
            "which source? give --source NAME (a configured source) or --db URL (the URL its \
             base backups were taken with)",
        )),
        (None, Some(url)) => Ok(Plan {
            name: url_source(url)?.name,
            configured: false,
        }),
        (Some(name), None) => {
            let cfg = config.ok_or_else(|| {
                usage(format!(
                    "--source {name} needs a configuration file: pass --config FILE or set \
                     LIFEBOAT_CONFIG, or drill base backups taken with --db URL"
                ))
            })?;
            let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
            if src.kind != crate::config::SourceKind::Postgres {
                return Err(usage(format!(
                    "source {name} is a {} source; physical drills recover PostgreSQL base \
                     backups (`lifeboat backup physical`)",
                    src.kind
                )));
            }
            Ok(Plan {
                name: name.to_string(),
                configured: true,
            })
        }
    }
}

/// The base backup to drill; none is "nothing to drill" (exit 3, as a
/// logical drill without a snapshot).
pub async fn latest(repo: &Repository, name: &str) -> Result<Prepared> {
    let has_physical = repo
        .snapshots()
        .await?
        .iter()
        .any(|s| s.snapshot.source == name && s.snapshot.kind == lifeboat_repo::physical::KIND);
    if !has_physical {
        return Err(fail(
            NOT_FOUND,
            format!(
                "nothing to drill: no physical base backup of {name} in {}; run `lifeboat backup \
                 physical --source {name}` (or --db URL) first",
                repo.location()
            ),
        ));
    }
    physical::prepare(repo, "latest", Some(name), &Target::Latest).await
}

/// The configured source (when `--source`) and the server binaries of the
/// backup's major version; missing binaries are a usage error (exit 2)
/// before anything is written.
pub async fn server(
    ctx: &Ctx,
    plan: &Plan,
    prep: &Prepared,
) -> Result<(Option<PgSource>, PathBuf)> {
    let name = plan.configured.then_some(plan.name.as_str());
    physical::server_for(ctx, name, &prep.facts).await
}

/// Runs the drill: archive, restore, recover, verify, cleanup. Every
/// failure is a step of the returned [`Drilled`], never an `Err`.
pub async fn drill(
    ctx: &Ctx,
    repo: &Repository,
    prep: &Prepared,
    source: Option<&PgSource>,
    bin: &Path,
    started: Instant,
) -> Drilled {
    let major = lifeboat_postgres::tools::server_major(prep.facts.server_version_num);
    let mut d = Drilled {
        snapshot: prep.snap.id.clone(),
        snapshot_time: prep.snap.snapshot.time,
        target: format!(
            "throwaway PostgreSQL {major} on a temporary data directory (private socket, removed \
             afterwards)"
        ),
        steps: Vec::new(),
        rto_seconds: 0.0,
        recovered_to: prep.facts.stop_time,
        result: Ok(()),
    };
    // The archive first: a gap fails the drill before anything is written.
    let t = Instant::now();
    if let Some(gap) = prep.gap() {
        let msg = format!(
            "{gap}: recovery to the latest archived point would stop at the gap, silently \
             losing what was archived after it. Find the missing segments (`lifeboat check` \
             lists the gaps) or take a new base backup"
        );
        d.steps.push(step("archive", false, t, msg.clone()));
        d.rto_seconds = started.elapsed().as_secs_f64();
        d.result = Err(fail(crate::error::VERIFY_FAILED, msg));
        return d;
    }
    d.steps.push(step("archive", true, t, archive_detail(prep)));
    let mut scratch = match ScratchDir::create() {
        Ok(s) => s,
        Err(e) => {
            d.steps.push(step("restore", false, t, e.message.clone()));
            d.rto_seconds = started.elapsed().as_secs_f64();
            d.result = Err(e);
            return d;
        }
    };
    let result = restore_recover_verify(ctx, repo, prep, source, bin, &mut scratch, &mut d).await;
    d.rto_seconds = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let detail = scratch.remove().await;
    d.steps.push(step("cleanup", true, t, detail));
    d.result = result;
    d
}

/// What the archive step says: the base backup and how far the archive
/// reaches past it.
fn archive_detail(p: &Prepared) -> String {
    let f = &p.facts;
    let base = format!(
        "base backup {} ({}, consistent at {})",
        p.snap.short_id(),
        f.server_version,
        f.stop_lsn
    );
    match &p.last_archived {
        Some(last) => format!(
            "{base}; the archive is continuous after it up to {last} on timeline {}",
            f.timeline
        ),
        None => format!(
            "{base}; no segment archived after it on timeline {}: recovery ends at the base \
             backup's end",
            f.timeline
        ),
    }
}

/// The restore, recover and verify steps. The recovered server is left in
/// `scratch`'s keeping, which stops it before removing the directory.
async fn restore_recover_verify(
    ctx: &Ctx,
    repo: &Repository,
    prep: &Prepared,
    source: Option<&PgSource>,
    bin: &Path,
    scratch: &mut ScratchDir,
    d: &mut Drilled,
) -> Result<()> {
    let pgdata = scratch.pgdata();
    let t = Instant::now();
    let written = physical::write(
        ctx,
        repo,
        prep,
        &pgdata,
        &Target::Latest,
        true,
        &crate::report::Silent,
    )
    .await;
    let written = match written {
        Ok(w) => {
            let detail = format!(
                "{} entries, {} written from base backup {}, every block verified",
                w.files,
                human_bytes(w.bytes),
                prep.snap.short_id()
            );
            d.steps.push(step("restore", true, t, detail));
            w
        }
        Err(e) => {
            d.steps.push(step("restore", false, t, e.message.clone()));
            return Err(e);
        }
    };
    let t = Instant::now();
    let req = RestoreRequest {
        snapshot: prep.snap.id.clone(),
        source: source.map(|s| s.name.clone()),
        pgdata: pgdata.clone(),
        target: Target::Latest,
        inclusive: true,
        timeout: RECOVERY_TIMEOUT,
    };
    let recovered = physical::recover(
        bin,
        &pgdata,
        &written.env,
        &prep.facts,
        &req,
        prep.last_archived.as_deref(),
        ctx.reporter(),
    )
    .await;
    let (server, outcome) = match recovered {
        Ok(r) => r,
        Err(e) => {
            d.steps.push(step("recover", false, t, e.message.clone()));
            return Err(e);
        }
    };
    // The server stays in the scratch directory's keeping: stopped before
    // the directory is removed, however the drill ends.
    let server = scratch.keep(server);
    if let Some(when) = outcome.replay_time {
        d.recovered_to = when;
    }
    d.steps
        .push(step("recover", true, t, recover_detail(&outcome)));
    let t = Instant::now();
    let Some(src) = source else {
        d.steps.push(step(
            "verify",
            true,
            t,
            "recovered and promoted; no verification queries (a --db drill has no configured \
             source)",
        ));
        return Ok(());
    };
    match physical::run_queries(server, &prep.facts, src).await {
        Ok(q) => {
            d.steps
                .push(step("verify", true, t, verify_detail(&src.name, &q)));
            Ok(())
        }
        Err(e) => {
            d.steps.push(step("verify", false, t, e.message.clone()));
            Err(e)
        }
    }
}

/// What the recover step says: PostgreSQL's line, where replay ended and
/// that it is the archive's last segment.
fn recover_detail(o: &physical::RestoreOutcome) -> String {
    let mut s = format!(
        "{}; replayed up to {}",
        o.reached,
        o.replay_lsn.as_deref().unwrap_or("?")
    );
    if let Some(t) = o.replay_time {
        s += &format!(" (last commit {})", t.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    match &o.last_archived {
        Some(last) => s += &format!(", into the last archived segment {last}"),
        None => s += ", the base backup's end (nothing archived after it)",
    }
    if let Some(tl) = o.timeline {
        s += &format!("; promoted onto timeline {tl}");
    }
    s
}

fn verify_detail(source: &str, q: &[physical::QueryResult]) -> String {
    if q.is_empty() {
        return format!(
            "recovered and promoted; source {source} has no postgres.verify_queries to run"
        );
    }
    let values: Vec<String> = q
        .iter()
        .map(|r| format!("{} = {}", r.name, r.value.as_deref().unwrap_or("NULL")))
        .collect();
    format!(
        "{} verification quer{} ran on the recovered server: {}",
        q.len(),
        if q.len() == 1 { "y" } else { "ies" },
        values.join("; ")
    )
}

/// The record of a physical drill. RPO: the drill's start minus the last
/// recovered commit (or the base backup's end): what a disaster at the
/// drill's start would have lost, as far as the archive shows.
pub fn record(source: &str, started_at: DateTime<Utc>, d: Drilled, trigger: &str) -> DrillRecord {
    DrillRecord {
        version: record::RECORD_VERSION,
        source: source.to_string(),
        kind: record::PHYSICAL_KIND.to_string(),
        snapshot: d.snapshot,
        snapshot_time: d.snapshot_time,
        started: started_at,
        finished: Utc::now(),
        ok: d.result.is_ok(),
        failure: d.result.err().map(|e| e.message),
        rto_seconds: d.rto_seconds,
        rpo_seconds: ((started_at - d.recovered_to).num_milliseconds() as f64 / 1000.0).max(0.0),
        target: d.target,
        trigger: trigger.into(),
        hostname: lifeboat_repo::keys::hostname(),
        program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        steps: d.steps,
        differences: Vec::new(),
    }
}
