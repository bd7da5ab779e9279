//! Running a restore drill (docs/drills.md): pick a source's latest full
//! snapshot (never a partial one: `Repository::find_snapshot`'s `latest`),
//! restore it somewhere harmless, verify it, measure RTO and RPO,
//! clean up, and store the record in the repository. Used by `lifeboat
//! drill` and by the daemon's drill schedules. The judgement of records
//! (status, readiness) is in the `lifeboat-dr` crate.
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | choosing the source and snapshot, timing, the record |
//! | `postgres.rs` | scratch database, restore, fact verification, cleanup |
//! | `kube.rs` | restore into the drill namespaces (or an offline check), cleanup |

pub mod kube;
pub mod postgres;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use chrono::Utc;
use lifeboat_dr::record::{self, DrillDifference, DrillRecord, DrillStep, Stored};
use lifeboat_kube::client::ClusterOptions;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::tools::Discovery;
use lifeboat_repo::Repository;

use crate::config::SourceKind;
use crate::context::Ctx;
use crate::exit::{NOT_FOUND, fail, usage};
use lifeboat_ops::postgres::{configured_source, conn_err, connection, postgres_facts, url_source};

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
    let started_at = Utc::now();
    let started = Instant::now();
    let (source, mut part) = plan(ctx, req)?;
    // Before anything is touched: a scratch database must not be the source's
    // (asked of both servers) nor hold what the drill did not put there.
    if let Part::Postgres {
        scratch: postgres::Scratch::Url { conn, leftover },
        source: src,
        scratch_is_copy,
        ..
    } = &mut part
    {
        *leftover = postgres::check_scratch(src, conn, *scratch_is_copy).await?;
    }
    // `latest` is the newest *full* snapshot: a partial one (--table,
    // --schema-only, a narrower kube selection) cannot stand for the source.
    let snap = repo
        .find_snapshot("latest", Some(&source))
        .await
        .map_err(|e| {
            fail(
                NOT_FOUND,
                format!("nothing to drill: {e}; run a backup of {source} first"),
            )
        })?;
    let mut out = Outcome {
        started,
        target: String::new(),
        steps: Vec::new(),
        differences: Vec::new(),
        rto_seconds: None,
    };
    let result = match part {
        Part::Postgres {
            discovery,
            scratch,
            jobs,
            ..
        } => match postgres_facts(&snap) {
            Ok(facts) => {
                postgres::drill(repo, &snap, &facts, &discovery, scratch, jobs, &mut out).await
            }
            Err(e) => Err(e.into()),
        },
        Part::Kube { map } => {
            if snap.snapshot.kind != "kube" {
                Err(anyhow::anyhow!(
                    "the latest snapshot of {source} ({}) is a {} snapshot, not kube; back the \
                     source up with `lifeboat backup kube --source {source}` first",
                    snap.short_id(),
                    snap.snapshot.kind
                ))
            } else {
                // Boxed as Send: the compiler cannot prove the kube
                // client's futures Send for every lifetime when spawned.
                let fut: std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<()>> + Send + '_>,
                > = Box::pin(kube::drill(repo, &snap, &map, &req.cluster, &mut out));
                fut.await
            }
        }
    };
    let finished = Utc::now();
    let rec = DrillRecord {
        version: record::RECORD_VERSION,
        source: source.clone(),
        kind: snap.snapshot.kind.clone(),
        snapshot: snap.id.clone(),
        snapshot_time: snap.snapshot.time,
        started: started_at,
        finished,
        ok: result.is_ok(),
        failure: result.as_ref().err().map(|e| format!("{e:#}")),
        rto_seconds: out
            .rto_seconds
            .unwrap_or_else(|| started.elapsed().as_secs_f64()),
        rpo_seconds: ((started_at - snap.snapshot.time).num_milliseconds() as f64 / 1000.0)
            .max(0.0),
        target: out.target,
        trigger: req.trigger.into(),
        hostname: lifeboat_repo::keys::hostname(),
        program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        steps: out.steps,
        differences: out.differences,
    };
    let id = match record::store_drill(repo, &rec).await {
        // A read-only repository (mount, credentials) or a full disk: the
        // drill still proves the restore; only its evidence is not kept.
        Err(lifeboat_repo::RepoError::Storage(e)) if e.write_refused => {
            eprintln!(
                "warning: the drill {} but its record could not be stored ({e}): `lifeboat status` and `readiness` will not see it",
                if rec.ok { "passed" } else { "failed" }
            );
            return Ok(Stored {
                id: "not-recorded".into(),
                record: rec,
            });
        }
        r => r,
    };
    let id = id.map_err(|e| {
        anyhow::Error::from(e).context(format!(
            "the drill {} but its record could not be stored in the repository; check the \
             repository's storage (`lifeboat check`) and run the drill again",
            if rec.ok { "passed" } else { "failed" }
        ))
    })?;
    Ok(Stored { id, record: rec })
}

/// Resolves what to drill before touching anything.
fn plan(ctx: &Ctx, req: &Request) -> Result<(String, Part)> {
    let scratch_url = |explicit: Option<&str>| -> Result<Option<ConnConfig>> {
        explicit
            .map(|u| ConnConfig::parse(u).map_err(|e| conn_err(e).into()))
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
                    jobs: lifeboat_ops::postgres::restore_jobs(req.jobs, None),
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
                    let pg = configured_source(ctx, name)?;
                    let scratch = match (&req.scratch, &drill.scratch) {
                        (Some(u), _) => scratch_url(Some(u))?,
                        (None, Some(s)) => Some(connection(&s.url, s.password.as_ref())?),
                        (None, None) => None,
                    };
                    Ok((
                        name.clone(),
                        Part::Postgres {
                            discovery: pg.discovery,
                            scratch: postgres::Scratch::new(scratch),
                            source: pg.conn,
                            scratch_is_copy: req.scratch_is_copy || drill.scratch_is_copy,
                            jobs: lifeboat_ops::postgres::restore_jobs(req.jobs, Some(src)),
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
