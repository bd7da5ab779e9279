//! Running a restore drill (docs/drills.md): pick a source's latest full
//! snapshot (never a partial one: `Repository::find_snapshot`'s `latest`),
//! restore it somewhere harmless, verify it, measure RTO and RPO,
//! clean up, and store the record in the repository. Called by `lifeboat
//! drill`, by the daemon's drill schedules and by `lifeboat drills`
//! ([`list`]). The judgement of records (status, readiness) is in the
//! `lifeboat-dr` crate.
//!
//! The result is the stored [`DrillRecord`], failed or not: a drill that
//! restored nothing or found differences is a record with `ok: false`, not
//! an `Err`. `Err` means there was nothing to drill (bad request, no such
//! source, no snapshot: exit 2 or 3) or the record could not be stored.
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | choosing the source and snapshot, timing, the record |
//! | `postgres.rs` | scratch database, restore, fact verification, cleanup |
//! | `kube.rs` | restore into the drill namespaces (or an offline check), cleanup |
//! | `physical.rs` | `--physical`: base backup + archived WAL recovered in a throwaway data directory |

pub mod kube;
pub mod physical;
pub mod postgres;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_dr::record::{self, DrillDifference, DrillRecord, DrillStep, Stored};
use lifeboat_kube::client::ClusterOptions;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::tools::Discovery;
use lifeboat_repo::Repository;
use lifeboat_repo::snapshot::SnapshotRef;

use crate::config::SourceKind;
use crate::context::Ctx;
use crate::error::{Error, NOT_FOUND, Result, fail, usage};
use crate::postgres::{configured_source, conn_err, connection, postgres_facts, url_source};

/// What to drill and where.
pub struct Request {
    /// A configured source.
    pub source: Option<String>,
    /// Or a database backed up with `backup postgres --db URL`.
    pub db: Option<String>,
    /// Scratch database URL (overrides the source's `drill.scratch`).
    pub scratch: Option<String>,
    /// The scratch database is a physical copy of the source's server
    /// (`--scratch-is-copy`; or the source's `drill.scratch_is_copy`).
    pub scratch_is_copy: bool,
    /// Parallel restore jobs (`--jobs`); unset: the source's `restore.jobs`, else 1.
    pub jobs: Option<u32>,
    /// Drill the physical base backups and the WAL archive
    /// (`--physical`, [`physical`]) instead of the latest logical snapshot.
    pub physical: bool,
    /// `cli`, `schedule` or `api`, recorded.
    pub trigger: &'static str,
    pub cluster: ClusterOptions,
}

/// What a drill part fills in as it goes.
pub struct Outcome {
    pub started: Instant,
    pub target: String,
    pub steps: Vec<DrillStep>,
    pub differences: Vec<DrillDifference>,
    /// Set when the data was verified (or the drill failed).
    pub rto_seconds: Option<f64>,
}

pub fn step(name: &str, ok: bool, since: Instant, detail: impl Into<String>) -> DrillStep {
    DrillStep {
        name: name.into(),
        ok,
        seconds: since.elapsed().as_secs_f64(),
        detail: detail.into(),
    }
}

// One value per drill: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Part {
    Postgres {
        discovery: Discovery,
        scratch: postgres::Scratch,
        /// The source's database, to compare a scratch database with.
        source: ConnConfig,
        scratch_is_copy: bool,
        jobs: u32,
    },
    Kube {
        map: BTreeMap<String, String>,
    },
}

/// Runs one drill and stores its record, failed or not. `Err` only when
/// there is nothing to drill (no such source, no snapshot) or the record
/// cannot be stored.
pub async fn run(ctx: &Ctx, repo: &Repository, req: &Request) -> Result<Stored<DrillRecord>> {
    if req.physical {
        return run_physical(ctx, repo, req).await;
    }
    let started_at = Utc::now();
    let started = Instant::now();
    let (source, mut part) = plan(ctx, req).await?;
    check_scratch(&mut part).await?;
    let snap = latest_full_snapshot(repo, &source).await?;
    let mut out = Outcome {
        started,
        target: String::new(),
        steps: Vec::new(),
        differences: Vec::new(),
        rto_seconds: None,
    };
    let result = drill_part(repo, &snap, &source, part, &req.cluster, &mut out).await;
    let rec = record(&source, &snap, started_at, out, result, req.trigger);
    store(ctx, repo, rec).await
}

/// A physical drill ([`physical`]): `Err` when there is nothing to drill
/// (no such source, no base backup: exit 2 or 3), no server binaries of the
/// backup's major version (exit 2), or the record cannot be stored; a gap
/// in the archive or a recovery that fails is a failed record.
async fn run_physical(ctx: &Ctx, repo: &Repository, req: &Request) -> Result<Stored<DrillRecord>> {
    let started_at = Utc::now();
    let started = Instant::now();
    let plan = physical::plan(
        req.source.as_deref(),
        req.db.as_deref(),
        req.scratch.is_some() || req.scratch_is_copy || req.jobs.is_some(),
        ctx.config.as_ref(),
    )?;
    // Held from before the base backup is picked until the recovery server
    // has stopped: prune deletes no WAL while it is live (docs/format.md,
    // "Why prune is safe"), as for `restore physical`.
    let lock = lifeboat_repo::lock::acquire_for_reading(
        repo,
        lifeboat_repo::lock::LockMode::Shared,
        "drill physical",
    )
    .await?;
    let drilled = async {
        let prep = physical::latest(repo, &plan.name).await?;
        let (source, bin) = physical::server(ctx, &plan, &prep).await?;
        Ok::<_, crate::Error>(
            physical::drill(ctx, repo, &prep, source.as_ref(), &bin, started).await,
        )
    }
    .await;
    if let Some(lock) = lock {
        let _ = lock.release().await;
    }
    let rec = physical::record(&plan.name, started_at, drilled?, req.trigger);
    store(ctx, repo, rec).await
}

/// The stored drill records, oldest first; only `source`'s when given
/// (`lifeboat drills`).
pub async fn list(repo: &Repository, source: Option<&str>) -> Result<Vec<Stored<DrillRecord>>> {
    Ok(record::drills(repo)
        .await?
        .into_iter()
        .filter(|d| source.is_none_or(|s| d.record.source == s))
        .collect())
}

/// Before anything is touched: a scratch database must not be the source's
/// (asked of both servers) nor hold what the drill did not put there.
async fn check_scratch(part: &mut Part) -> Result<()> {
    if let Part::Postgres {
        scratch: postgres::Scratch::Url { conn, leftover },
        source: src,
        scratch_is_copy,
        ..
    } = part
    {
        *leftover = postgres::check_scratch(src, conn, *scratch_is_copy).await?;
    }
    Ok(())
}

/// `latest` is the newest *full* snapshot: a partial one (--table,
/// --schema-only, a narrower kube selection) cannot stand for the source;
/// nor can a physical base backup, which `--physical` drills: the newest
/// full logical one then.
async fn latest_full_snapshot(repo: &Repository, source: &str) -> Result<SnapshotRef> {
    let snap = repo
        .find_snapshot("latest", Some(source))
        .await
        .map_err(|e| {
            fail(
                NOT_FOUND,
                format!("nothing to drill: {e}; run a backup of {source} first"),
            )
        })?;
    if snap.snapshot.kind != lifeboat_repo::physical::KIND {
        return Ok(snap);
    }
    repo.snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|s| {
            s.snapshot.source == source
                && s.snapshot.kind != lifeboat_repo::physical::KIND
                && s.snapshot.scope().is_full()
        })
        .ok_or_else(|| {
            fail(
                NOT_FOUND,
                format!(
                    "nothing to drill logically: {source} has physical base backups but no full \
                     logical snapshot; drill them with `lifeboat drill --physical --source \
                     {source}`, or run a logical backup first"
                ),
            )
        })
}

/// Restores, verifies and cleans up; fills `out` as it goes. An `Err` is a
/// failed drill: its message becomes the record's failure.
async fn drill_part(
    repo: &Repository,
    snap: &SnapshotRef,
    source: &str,
    part: Part,
    cluster: &ClusterOptions,
    out: &mut Outcome,
) -> Result<()> {
    match part {
        Part::Postgres {
            discovery,
            scratch,
            jobs,
            ..
        } => {
            let facts = postgres_facts(snap)?;
            postgres::drill(repo, snap, &facts, &discovery, scratch, jobs, out).await
        }
        Part::Kube { map } => {
            if snap.snapshot.kind != "kube" {
                return Err(Error::failure(format!(
                    "the latest snapshot of {source} ({}) is a {} snapshot, not kube; back the \
                     source up with `lifeboat backup kube --source {source}` first",
                    snap.short_id(),
                    snap.snapshot.kind
                )));
            }
            // Boxed as Send: the compiler cannot prove the kube client's
            // futures Send for every lifetime when spawned.
            let fut: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> =
                Box::pin(kube::drill(repo, snap, &map, cluster, out));
            fut.await
        }
    }
}

/// The record of a drill that ran (passed or failed).
fn record(
    source: &str,
    snap: &SnapshotRef,
    started_at: DateTime<Utc>,
    out: Outcome,
    result: Result<()>,
    trigger: &str,
) -> DrillRecord {
    DrillRecord {
        version: record::RECORD_VERSION,
        source: source.to_string(),
        kind: snap.snapshot.kind.clone(),
        snapshot: snap.id.clone(),
        snapshot_time: snap.snapshot.time,
        started: started_at,
        finished: Utc::now(),
        ok: result.is_ok(),
        failure: result.err().map(|e| e.message),
        rto_seconds: out
            .rto_seconds
            .unwrap_or_else(|| out.started.elapsed().as_secs_f64()),
        rpo_seconds: ((started_at - snap.snapshot.time).num_milliseconds() as f64 / 1000.0)
            .max(0.0),
        target: out.target,
        trigger: trigger.into(),
        hostname: lifeboat_repo::keys::hostname(),
        program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        steps: out.steps,
        differences: out.differences,
    }
}

/// Stores the record in the repository. A repository that refuses writes
/// (read-only mount or credentials, a full disk) does not fail the drill,
/// which still proved the restore: the record comes back as `not-recorded`
/// and the reporter says its evidence was not kept.
async fn store(ctx: &Ctx, repo: &Repository, rec: DrillRecord) -> Result<Stored<DrillRecord>> {
    let outcome = if rec.ok { "passed" } else { "failed" };
    match record::store_drill(repo, &rec).await {
        Ok(id) => Ok(Stored { id, record: rec }),
        Err(lifeboat_repo::RepoError::Storage(e)) if e.write_refused => {
            ctx.reporter().note(&format!(
                "warning: the drill {outcome} but its record could not be stored ({e}): `lifeboat status` and `readiness` will not see it"
            ));
            Ok(Stored {
                id: "not-recorded".into(),
                record: rec,
            })
        }
        Err(e) => Err(Error::from(e).context(format!(
            "the drill {outcome} but its record could not be stored in the repository; check the \
             repository's storage (`lifeboat check`) and run the drill again"
        ))),
    }
}

/// Resolves what to drill before touching anything.
async fn plan(ctx: &Ctx, req: &Request) -> Result<(String, Part)> {
    let scratch_url = |explicit: Option<&str>| -> Result<Option<ConnConfig>> {
        explicit
            .map(|u| ConnConfig::parse(u).map_err(conn_err))
            .transpose()
    };
    match (&req.source, &req.db) {
        (Some(_), Some(_)) => Err(usage("give --source NAME or --db URL, not both")),
        (None, None) => Err(usage(
            "which source? give --source NAME (a configured source) or --db URL",
        )),
        (None, Some(url)) => {
            let src = url_source(url)?;
            let scratch = scratch_url(req.scratch.as_deref())?;
            Ok((
                src.name,
                Part::Postgres {
                    discovery: src.discovery,
                    scratch: postgres::Scratch::new(scratch),
                    source: src.conn,
                    scratch_is_copy: req.scratch_is_copy,
                    jobs: crate::postgres::restore_jobs(req.jobs, None),
                },
            ))
        }
        (Some(name), None) => {
            let cfg = ctx.config.as_ref().ok_or_else(|| {
                usage(format!(
                    "--source {name} needs a configuration file: pass --config FILE or set \
                         LIFEBOAT_CONFIG, or drill a database backed up with --db URL"
                ))
            })?;
            let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
            let drill = src.drill.clone().unwrap_or_default();
            match src.kind {
                SourceKind::Postgres => {
                    let pg = configured_source(ctx, name).await?;
                    let scratch = match (&req.scratch, &drill.scratch) {
                        (Some(u), _) => scratch_url(Some(u))?,
                        (None, Some(s)) => {
                            Some(connection(ctx, &s.url, s.password.as_ref()).await?)
                        }
                        (None, None) => None,
                    };
                    Ok((
                        name.clone(),
                        Part::Postgres {
                            discovery: pg.discovery,
                            scratch: postgres::Scratch::new(scratch),
                            source: pg.conn,
                            scratch_is_copy: req.scratch_is_copy || drill.scratch_is_copy,
                            jobs: crate::postgres::restore_jobs(req.jobs, Some(src)),
                        },
                    ))
                }
                SourceKind::Kube => {
                    if req.scratch.is_some() || req.scratch_is_copy || req.jobs.is_some() {
                        return Err(usage(format!(
                            "--scratch, --scratch-is-copy and --jobs are for PostgreSQL drills; \
                             source {name} is a kube source (its drill namespaces come from \
                             drill.namespace_map)"
                        )));
                    }
                    if drill.namespace_map.is_empty() {
                        return Err(usage(format!(
                            "source {name} has no drill.namespace_map: a kube drill restores into \
                             drill namespaces (e.g. kubernaut-system: kubernaut-test), never into \
                             the namespaces it protects"
                        )));
                    }
                    Ok((
                        name.clone(),
                        Part::Kube {
                            map: drill.namespace_map,
                        },
                    ))
                }
                other => Err(usage(format!(
                    "source {name} is a {other} source; drills restore postgres and kube sources"
                ))),
            }
        }
    }
}
