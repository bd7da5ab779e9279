//! `lifeboat region rejoin R` (docs/failover.md, "Rejoin"): region R, not
//! the authority's primary, becomes a streaming standby of the current
//! primary again, and the steered name answers it again.
//!
//! The facts are read from etcd (the authority) and from the servers (R's
//! role and highest `lifeboat.authority` row, the primary's system
//! identifier and `pg_stat_replication`, R's control file); the plan is
//! `lifeboat_region::promotion::rejoin::plan` (pure); each step here is its
//! IO. A server that accepts writes is stopped at once before anything
//! else (it never takes a write at its old epoch); `pg_rewind` is used when
//! the control file allows it and a fresh clone (`region replicate
//! --replace`, the same path) when it does not or when `pg_rewind` fails.
//! The DNS answer set is then what the daemon's steering decides
//! ([`crate::region::steering::follow_authority`]): every healthy
//! region that is the primary or a standby that replayed the epoch.
//! Then the capacity (`scale.rs`): the rejoined region's Deployments back
//! to what its fence recorded and, when no region is left out any more,
//! the primary region's from their failover counts back to `replicas`; a
//! failure there is reported (step `capacity`, not ok) and does not undo
//! the rejoin.
//! Running the command again is safe: a region already streaming from the
//! primary is only verified and its DNS answer and capacity restored.

use std::time::{Duration, Instant};

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::failover::machine::Progress;
use lifeboat_region::fence::FenceMethod;
use lifeboat_region::promotion::rejoin::{
    self, DirFacts, Method, PlanInput, RejoinPlan, ServerState, Step, has_replayed,
};
use lifeboat_region::promotion::{authority_row, switchover};
use lifeboat_region::replication;
use lifeboat_region::replication::observe::ReplicaRow;
use lifeboat_region::replication::observe::{Role, Server, observe};
use lifeboat_region::replication::plan::slot_name;
use lifeboat_region::replication::replicate::primary_conninfo;
use lifeboat_region::replication::retry::Retry;
use lifeboat_region::replication::target::{StandbyTarget, TargetDir, inspect};
use lifeboat_region::topology::Provider;
use serde::Serialize;

use super::authority::{self, authority_error, failover_config};
use crate::config::{Config, PgManager};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::region::conn::region_conn;
use crate::region::replicate::{self as replicate_op, region, region_target, replication_password};
use crate::region::steering::{self as steer, AuthorityView};

/// What to rejoin.
#[derive(Clone, Debug)]
pub struct Request {
    pub region: String,
    /// Bound on each waiting step (stop, rewind, start, streaming, replay).
    pub step_timeout: Duration,
    /// When this turns true during the last steps (verify, the synchronous
    /// names, DNS), the rejoin ends at once with an error: the server is a
    /// standby by then, and waiting on a primary that the authority has
    /// replaced would only hold the caller (the daemon's `auto_rejoin`)
    /// for up to `step_timeout` per step. Earlier steps (rewind, clone) are
    /// never cut short. `None`: never abandoned.
    pub abandon: Option<tokio::sync::watch::Receiver<bool>>,
    /// Only finish a rejoin whose server steps are done: refused (a usage
    /// error, nothing changed) unless the plan is only verify and DNS,
    /// i.e. the region's server is a standby the primary lists streaming.
    /// The daemon's `auto_rejoin` sets it when it finishes a capacity step
    /// (a standby whose writers are still held down): a standby that does
    /// not stream is never stopped or rewound by it.
    pub finish_only: bool,
}

/// One line of progress.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub step: &'static str,
    pub ok: bool,
    pub text: String,
}

/// What the steered name answers after the rejoin.
#[derive(Clone, Debug, Serialize)]
pub struct DnsRestored {
    pub name: String,
    /// The regions answered.
    pub regions: Vec<String>,
    pub written: bool,
}

/// What a rejoin did and what the servers said afterwards.
#[derive(Debug, Serialize)]
pub struct Report {
    pub region: String,
    pub primary: String,
    pub epoch: u64,
    pub server_before: ServerState,
    pub dir: Option<DirFacts>,
    pub plan: RejoinPlan,
    /// The method that brought it onto the primary's timeline (`None`: it
    /// already streamed); differs from the plan's when `pg_rewind` failed
    /// and a clone was made instead.
    pub method: Option<Method>,
    /// Why the plan's rewind was replaced by a clone.
    pub rewind_failed: Option<String>,
    /// The primary's `pg_stat_replication` row for it.
    pub replica: ReplicaRow,
    /// Its highest `lifeboat.authority` row (replayed).
    pub replayed_epoch: Option<u64>,
    /// With `replication.synchronous`: the primary's
    /// `synchronous_standby_names` as set now (`None`: not configured, or
    /// it already named the standbys).
    pub synchronous_standby_names: Option<String>,
    pub dns: Option<DnsRestored>,
    /// The Deployments scaled back (`None`: no region configures any).
    pub capacity: Option<Capacity>,
}

/// Runs a rejoin of `req.region`; `note` gets a line per step.
pub async fn run<N: FnMut(&Note)>(ctx: &Ctx, req: &Request, mut note: N) -> Result<Report> {
    let config = crate::region::traffic::config_of(ctx)?;
    failover_config(config)?;
    let r_cfg = region(config, &req.region)?;
    let store = authority::connect(ctx, config).await?;
    let current = authority::current(&store, config, &authority::operator()).await?;
    let (primary, epoch) = (current.value.primary.clone(), current.value.epoch);
    if let Some(p) = store
        .progress::<Progress>()
        .await
        .map_err(authority_error)?
        && !p.value.phase.is_terminal()
    {
        return Err(Error::usage(format!(
            "a {} from {} to {} is under way (phase {}): rejoin once it is done",
            p.value.plan.kind.as_str(),
            p.value.plan.from,
            p.value.plan.to,
            p.value.phase.as_str()
        ))
        .with_hint("see `lifeboat region authority`"));
    }
    if req.region == primary {
        return Err(Error::usage(
            rejoin::Refusal::IsPrimary {
                region: primary,
                epoch,
            }
            .to_string(),
        ));
    }
    // The primary may be a Patroni cluster (the slot is then one of its
    // permanent slots); the region rejoined is driven by Lifeboat itself.
    for name in [primary.as_str(), req.region.as_str()] {
        let m = region(config, name)?.postgres.manager();
        if m != PgManager::Postgres && !(name == primary && m == PgManager::Patroni) {
            return Err(Error::usage(format!(
                "regions.{name}.postgres.manager is {m}: rejoin makes `manager: postgres` regions \
                 standbys (of a postgres or Patroni primary); rejoining a Patroni or \
                 CloudNativePG region, or to a CloudNativePG primary, is not built"
            ))
            .with_hint(format!(
                "make {} a standby of {primary} with its manager (Patroni: `standby_cluster` in \
                 its /config; CloudNativePG: the Cluster's `replica` section), or a fresh copy \
                 of {primary}'s data then `lifeboat region replicate --from {primary} --to {} \
                 --replace`",
                req.region, req.region
            )));
        }
    }
    let primary_conn = region_conn(ctx, region(config, &primary)?).await?;
    let primary_server = Server {
        name: primary.clone(),
        conn: primary_conn.clone(),
    };
    let p_obs = observe(&primary_server, Retry::default()).await;
    let primary_sysid = match (&p_obs.role, &p_obs.identity) {
        (Role::Primary, Some(id)) => id.clone(),
        (role, _) => {
            return Err(Error::failure(format!(
                "the authority's primary {primary} (epoch {epoch}) does not answer as a primary \
                 ({role:?}): there is nothing to rejoin to"
            ))
            .with_hint(format!(
                "check `lifeboat region status`; if {primary} is lost, fail over first"
            )));
        }
    };
    let target = region_target(
        ctx,
        &req.region,
        r_cfg,
        &primary_server,
        "a rejoin rewinds or clones its data directory",
    )
    .await?;
    let r_obs = observe(
        &Server {
            name: req.region.clone(),
            conn: target.conn.clone(),
        },
        Retry::ONCE,
    )
    .await;
    if let Some(id) = &r_obs.identity
        && id.same_server(&primary_sysid)
    {
        return Err(Error::usage(format!(
            "regions.{}.postgres.url reaches the primary's running server ({primary}): fix the \
             configuration; nothing was changed",
            req.region
        )));
    }
    let row = server_epoch(&target.conn).await;
    let server = match &r_obs.role {
        Role::Primary => ServerState::Writable { epoch: row },
        Role::Standby => ServerState::Standby {
            streaming: streaming_row(&primary_conn, &req.region).await.is_some(),
            epoch: row,
        },
        Role::Unreachable { .. } => ServerState::Down {
            running: matches!(
                inspect(&target.pgdata, &target.bin_dir).await,
                Ok(TargetDir::Cluster(d)) if d.postmaster.as_ref().is_some_and(|p| p.alive)
            ),
        },
    };
    let dir = rejoin::dir_facts(&target).await.map_err(|e| {
        Error::failure(format!(
            "reading {}'s data directory {}: {e}",
            req.region,
            target.pgdata.display()
        ))
    })?;
    let plan = rejoin::plan(&PlanInput {
        region: &req.region,
        primary: &primary,
        epoch,
        server,
        dir,
        primary_system_identifier: Some(primary_sysid.system_identifier),
    })
    .map_err(|r| Error::usage(r.to_string()))?;
    if req.finish_only
        && plan
            .steps
            .iter()
            .any(|s| !matches!(s, Step::Verify | Step::RestoreDns))
    {
        return Err(Error::usage(format!(
            "{} is not a standby streaming from {primary} (epoch {epoch}): {}; only its \
             capacity step was to be finished, so nothing was changed",
            req.region, plan.why
        ))
        .with_hint(format!(
            "see `lifeboat region status`; `lifeboat region rejoin {}` makes it a standby",
            req.region
        )));
    }
    note(&Note {
        step: "plan",
        ok: true,
        text: format!(
            "{} → standby of {primary} (epoch {epoch}): {}; steps {}",
            req.region,
            plan.why,
            plan.steps
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    let mut method = plan.method;
    let mut rewind_failed = None;
    let t = req.step_timeout;
    let mut steps = plan.steps.clone();
    let mut i = 0;
    let mut slot_kept = false;
    while i < steps.len() {
        let step = steps[i];
        i += 1;
        // The primary's side first (its slot, and with Patroni one of its
        // permanent slots): when that fails (Patroni's REST API down), the
        // data directory is not touched yet and a rerun starts over from a
        // stopped server, the path every rejoin knows. A clone does the
        // same in `region replicate`.
        if matches!(step, Step::Rewind | Step::Follow) && !slot_kept {
            let text = keep_slot(ctx, config, &req.region, (&primary, &primary_conn)).await?;
            note(&Note {
                step: "slot",
                ok: true,
                text,
            });
            slot_kept = true;
        }
        let text = match step {
            Step::Fence => {
                let served = match server {
                    ServerState::Writable { epoch } => epoch.unwrap_or(0),
                    _ => 0,
                };
                let rep = lifeboat_region::fence::fence(&target, &FenceMethod::Stop, served, t)
                    .await
                    .map_err(|e| {
                        Error::failure(format!("fencing {}: {e}", req.region)).with_hint(
                            "stop its server by hand (it must not take writes), then run rejoin again",
                        )
                    })?;
                match server {
                    ServerState::Writable { epoch: e } => format!(
                        "{} answered as a writable primary (its newest epoch row: {}); the \
                         authority is at epoch {epoch}: stopped at once{}",
                        req.region,
                        e.map(|e| e.to_string()).unwrap_or_else(|| "none".into()),
                        if rep.stopped {
                            ""
                        } else {
                            " (it was not running)"
                        }
                    ),
                    _ => format!(
                        "a postmaster ran on {} without answering: stopped at once",
                        target.pgdata.display()
                    ),
                }
            }
            Step::Stop => {
                if let Err(e) = target.stop(t).await {
                    tracing::warn!(error = %e, "a clean stop failed; stopping at once");
                    lifeboat_region::fence::fence(&target, &FenceMethod::Stop, 0, t)
                        .await
                        .map_err(|e| Error::failure(format!("stopping {}: {e}", req.region)))?;
                }
                format!(
                    "{} was a standby not streaming from {primary}: stopped",
                    req.region
                )
            }
            Step::Rewind => match rejoin::rewind(&target, &primary_conn, t).await {
                Ok(last) => format!("pg_rewind from {primary}: {last}"),
                Err(e) => {
                    let why = e.to_string();
                    note(&Note {
                        step: "rewind",
                        ok: false,
                        text: format!("pg_rewind failed ({why}); making a fresh clone instead"),
                    });
                    rewind_failed = Some(why);
                    method = Some(Method::Clone);
                    // Follow is the clone's own last part.
                    steps.retain(|s| *s != Step::Follow);
                    steps.insert(i, Step::Clone);
                    continue;
                }
            },
            Step::Follow => follow(ctx, config, &target, (&primary, &primary_conn), t).await?,
            Step::Clone => clone(ctx, &primary, &req.region, &mut note).await?,
            Step::Verify => String::new(),
            Step::RestoreDns => String::new(),
        };
        if matches!(step, Step::Verify | Step::RestoreDns) {
            break;
        }
        note(&Note {
            step: step.as_str(),
            ok: true,
            text,
        });
    }
    // Verify and DNS, read back from the servers; abandoned when the
    // caller says the authority moved on meanwhile (see `Request::abandon`).
    let last_steps = async {
        let (replica, replayed_epoch) =
            verify(&primary_conn, &target.conn, &req.region, epoch, t).await?;
        note(&Note {
            step: "verify",
            ok: true,
            text: format!(
                "{primary} lists {} {} ({}); it replayed epoch {}",
                req.region,
                replica.state,
                replica
                    .replay_lsn
                    .map(|l| format!("replayed to {l}"))
                    .unwrap_or_else(|| "replay position unknown".into()),
                replayed_epoch
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "1 (no row needed)".into())
            ),
        });
        let synchronous_standby_names =
            replicate_op::name_synchronous_standbys(config, &primary, &primary_conn).await?;
        if let Some(names) = &synchronous_standby_names {
            note(&Note {
                step: "synchronous",
                ok: true,
                text: format!("{primary}'s synchronous_standby_names = {names}"),
            });
        }
        let dns = restore_dns(
            ctx,
            config,
            &AuthorityView {
                primary: primary.clone(),
                epoch,
            },
            &mut note,
        )
        .await?;
        let capacity = restore_capacity(
            ctx,
            config,
            &AuthorityView {
                primary: primary.clone(),
                epoch,
            },
            &req.region,
            &mut note,
        )
        .await;
        Ok::<_, Error>((
            replica,
            replayed_epoch,
            synchronous_standby_names,
            dns,
            capacity,
        ))
    };
    let (replica, replayed_epoch, synchronous_standby_names, dns, capacity) = match req
        .abandon
        .clone()
    {
        None => last_steps.await?,
        Some(mut abandon) => tokio::select! {
            done = last_steps => done?,
            _ = abandon.wait_for(|a| *a) => {
                return Err(Error::failure(format!(
                    "{} follows {primary} as a standby, but the rejoin's last steps (verify, \
                     DNS) were abandoned: the authority moved on from epoch {epoch} while they ran",
                    req.region
                ))
                .with_hint(format!(
                    "rejoin it under the current authority: the daemon's auto_rejoin does, or \
                     run `lifeboat region rejoin {}`",
                    req.region
                )));
            }
        },
    };
    Ok(Report {
        region: req.region.clone(),
        primary,
        epoch,
        server_before: server,
        dir,
        plan,
        method,
        rewind_failed,
        replica,
        replayed_epoch,
        synchronous_standby_names,
        dns,
        capacity,
    })
}

/// What the rejoin did to the regions' Deployments (`None`: no region
/// configures any).
#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// Whether every call succeeded.
    pub ok: bool,
    /// One line per region scaled, or why not.
    pub notes: Vec<String>,
    /// When not ok: what finishes the step later (the rejoin's data steps
    /// stand either way).
    pub to_finish: Option<String>,
}

impl Report {
    /// The error a rejoin whose server steps are done but whose capacity
    /// step failed ends with (exit 1, the report printed with it): the
    /// region is a standby, its writers or the primary's are not where
    /// active-active wants them. `None`: nothing failed.
    pub fn capacity_error(&self) -> Option<Error> {
        let c = self.capacity.as_ref().filter(|c| !c.ok)?;
        Some(
            Error::failure(format!(
                "{} is a streaming standby of {} (epoch {}): the rejoin's server steps are done \
                 and stand, but its capacity step failed: {}",
                self.region,
                self.primary,
                self.epoch,
                c.notes.join("; ")
            ))
            .with_hint(c.to_finish.clone().unwrap_or_default()),
        )
    }
}

/// The regions other than the primary that may not take traffic yet under
/// `authority` (pure): not a standby that replayed its epoch. Empty: every
/// region is back, active-active again.
pub(crate) fn left_out(
    regions: &[String],
    authority: &AuthorityView,
    servers: &std::collections::BTreeMap<String, steer::ServerFacts>,
) -> Vec<String> {
    regions
        .iter()
        .filter(|r| !steer::eligible(r, authority, servers.get(*r)))
        .cloned()
        .collect()
}

/// Whether the primary region's Deployments may go from their failover
/// counts back to `replicas` (pure): only when no region is left out and
/// the rejoined region's writers are back. Scaling the primary down while
/// the rejoined region's writers are still at 0 (its Kubernetes API did not
/// answer) would leave less capacity than before the rejoin. `Err`: why
/// the primary keeps its failover counts.
pub(crate) fn primary_to_normal(
    rejoined: &str,
    left_out: &[String],
    rejoined_back: bool,
) -> std::result::Result<(), String> {
    let mut why = Vec::new();
    if !rejoined_back {
        why.push(format!("{rejoined}'s writers are not back"));
    }
    if !left_out.is_empty() {
        why.push(format!(
            "{} not back yet: rejoin {} too",
            left_out.join(", "),
            if left_out.len() == 1 { "it" } else { "them" }
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// The rejoined region's Deployments back to the counts its fence
/// recorded; the primary region's back to `replicas` once no region is
/// left out and those are back ([`primary_to_normal`]). Failures are
/// reported, not returned: the server's rejoin stands (the command then
/// exits 1, [`Report::capacity_error`]).
async fn restore_capacity<N: FnMut(&Note)>(
    ctx: &Ctx,
    config: &Config,
    authority: &AuthorityView,
    rejoined: &str,
    note: &mut N,
) -> Option<Capacity> {
    if !super::scale::any_deployments(config) {
        return None;
    }
    let mut notes = Vec::new();
    let mut ok = true;
    let mut push = |r: super::scale::ScaleResult, notes: &mut Vec<String>| match r {
        Ok(n) => notes.push(n),
        Err((_, e)) => {
            ok = false;
            notes.push(e);
        }
    };
    let back = super::scale::bring_back(ctx, config, rejoined).await;
    let rejoined_back = back.is_ok();
    push(back, &mut notes);
    let regions: Vec<String> = config
        .regions_in_file_order()
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let servers = steer::server_facts(ctx, config, &regions).await;
    let out = left_out(&regions, authority, &servers);
    match primary_to_normal(rejoined, &out, rejoined_back) {
        Ok(()) => push(
            super::scale::scale_to_normal(ctx, config, &authority.primary).await,
            &mut notes,
        ),
        Err(why) => notes.push(format!(
            "{}: left at its failover counts ({why})",
            authority.primary
        )),
    }
    let to_finish = (!ok).then(|| {
        format!(
            "once the Kubernetes API answers again, run `lifeboat region rejoin {rejoined}` \
             again: {rejoined} streams already, so it only verifies it, restores DNS and \
             finishes the capacity step (idempotent); or scale the Deployments by hand \
             (`regions.{rejoined}.deployments` to the count in their {} annotation, then \
             `regions.{}.deployments` to their `replicas`)",
            lifeboat_kube::quiesce::ORIGINAL_REPLICAS,
            authority.primary
        )
    });
    note(&Note {
        step: "capacity",
        ok,
        text: match &to_finish {
            None => notes.join("; "),
            Some(t) => format!(
                "{} (the rejoin's server steps stand; {t})",
                notes.join("; ")
            ),
        },
    });
    Some(Capacity {
        ok,
        notes,
        to_finish,
    })
}

/// The highest `lifeboat.authority` row on the server behind `conn`
/// (`None`: none, or not read).
async fn server_epoch(conn: &ConnConfig) -> Option<u64> {
    let c =
        replication::observe::connect(&lifeboat_region::heartbeat::lifeboat_db(conn), Retry::ONCE)
            .await
            .ok()?;
    authority_row::read_epoch(&c)
        .await
        .ok()
        .flatten()
        .map(|r| r.epoch)
}

/// The primary's `pg_stat_replication` row serving `region`, `streaming`.
async fn streaming_row(primary: &ConnConfig, region: &str) -> Option<ReplicaRow> {
    let c = replication::observe::connect(primary, Retry::ONCE)
        .await
        .ok()?;
    replication::observe::replica_rows(&c)
        .await
        .ok()?
        .into_iter()
        .find(|r| r.serves(region) && r.state == "streaming")
}

/// After a rewind: the slot on the primary, the password file, then
/// `standby.signal` + `primary_conninfo` (no password) and start, until its
/// WAL receiver streams.
async fn follow(
    ctx: &Ctx,
    config: &Config,
    target: &StandbyTarget,
    (primary_name, primary): (&str, &ConnConfig),
    timeout: Duration,
) -> Result<String> {
    let user = config.replication_user().to_string();
    let password = replication_password(ctx, config).await?;
    // Made before the rewind ([`keep_slot`]).
    let slot = slot_name(&target.name);
    switchover::write_passfile(target, &user, &password)
        .map_err(|e| Error::failure(e.to_string()))?;
    let conninfo = primary_conninfo(
        &primary.host,
        primary.port,
        &user,
        &target.name,
        &target.passfile,
    );
    let w = switchover::follow(target, &conninfo, Some(&slot), timeout)
        .await
        .map_err(|e| Error::failure(e.to_string()))?;
    Ok(format!(
        "{} started as a standby of {primary_name}; its WAL receiver is {} (slot {slot}, \
         timeline {})",
        target.name,
        w.status,
        w.received_tli
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into()),
    ))
}

/// `region`'s slot on the primary: with a Patroni primary first one of its
/// cluster's permanent slots (`PATCH /config`, retried with backoff), then
/// created (idempotent). Says what was done.
async fn keep_slot(
    ctx: &Ctx,
    config: &Config,
    region_name: &str,
    (primary_name, primary): (&str, &ConnConfig),
) -> Result<String> {
    let slot = slot_name(region_name);
    let rerun = |e: Error| {
        let hint = e.hint.clone().unwrap_or_default();
        e.with_hint(format!(
            "{hint}{}nothing on {region_name}'s data directory was changed yet (its server is \
             left stopped): once that is fixed, run `lifeboat region rejoin {region_name}` again",
            if hint.is_empty() { "" } else { "; " }
        ))
    };
    let kept = replicate_op::ensure_primary_slot(
        ctx,
        primary_name,
        region(config, primary_name)?,
        primary,
        &slot,
    )
    .await
    .map_err(rerun)?;
    Ok(kept.notes.join("; "))
}

/// A fresh clone: `region replicate --from primary --to region --replace`.
async fn clone<N: FnMut(&Note)>(
    ctx: &Ctx,
    primary: &str,
    region: &str,
    note: &mut N,
) -> Result<String> {
    let out = replicate_op::replicate(
        ctx,
        &replicate_op::Request {
            from: primary.to_string(),
            to: region.to_string(),
            replace: true,
        },
        |e| {
            if let replicate_op::Event::Postgres(replication::Progress::StepFinished {
                step,
                detail,
            }) = e
            {
                note(&Note {
                    step: "clone",
                    ok: true,
                    text: format!("{}: {detail}", step.describe()),
                });
            }
        },
    )
    .await?;
    Ok(match out.outcome {
        Some(o) => format!(
            "{region} seeded from {primary} and streaming (slot {}, heartbeat {} replayed)",
            o.slot, o.heartbeat.beat.seq
        ),
        None => format!("{region} seeded from {primary}"),
    })
}

/// Polls (bounded) until the primary lists `region` streaming and its
/// server has replayed the epoch's row.
pub(crate) async fn verify(
    primary: &ConnConfig,
    standby: &ConnConfig,
    region: &str,
    epoch: u64,
    timeout: Duration,
) -> Result<(ReplicaRow, Option<u64>)> {
    let started = Instant::now();
    loop {
        let row = streaming_row(primary, region).await;
        let replayed = server_epoch(standby).await;
        let in_recovery = match replication::observe::connect(standby, Retry::ONCE).await {
            Ok(c) => c
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false),
            Err(_) => false,
        };
        if let Some(r) = &row
            && in_recovery
            && has_replayed(replayed, epoch)
        {
            return Ok((r.clone(), replayed));
        }
        if started.elapsed() >= timeout {
            return Err(Error::failure(format!(
                "{region} does not stream from the primary with epoch {epoch} replayed after {}s \
                 (streaming: {}, in recovery: {in_recovery}, newest epoch row: {replayed:?})",
                timeout.as_secs(),
                row.is_some()
            ))
            .with_hint(format!(
                "look at {region}'s server log; run `lifeboat region rejoin {region}` again"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `route53`: every steered region the authority allows (the primary, and
/// standbys that replayed its epoch) gets its configured weight back, the
/// others weight 0; Route 53's own health checks then decide among them.
/// Refused when Route 53 does not publish the authority's epoch.
async fn restore_route53<N: FnMut(&Note)>(
    ctx: &Ctx,
    config: &Config,
    authority: &AuthorityView,
    note: &mut N,
) -> Result<Option<DnsRestored>> {
    use crate::region::route53 as r53;
    use lifeboat_region::traffic::route53::Route53Provider;
    let desired = r53::desired_records(config)?.records;
    let name = r53::route53_traffic(config)?.name().normalized();
    let mut steered: Vec<String> = desired.iter().map(|r| r.set_identifier.clone()).collect();
    steered.sort();
    steered.dedup();
    let servers = steer::server_facts(ctx, config, &steered).await;
    let answering: Vec<String> = steered
        .into_iter()
        .filter(|r| steer::eligible(r, authority, servers.get(r)))
        .collect();
    let provider = Route53Provider::connect(&r53::settings(config)?).await;
    let written = provider
        .restore_weights(
            &desired,
            &name,
            &authority.primary,
            authority.epoch,
            &answering,
        )
        .await
        .map_err(|e| restore_route53_error(&e, &name, authority))?;
    let out = DnsRestored {
        name,
        regions: answering,
        written: !written.is_empty(),
    };
    note(&Note {
        step: "restore_dns",
        ok: true,
        text: format!(
            "route53: {} weighted to {} as configured{}",
            out.name,
            out.regions.join(", "),
            if out.written { "" } else { " (already so)" }
        ),
    });
    Ok(Some(out))
}

/// The error of the `route53` DNS step (pure): the message carries what
/// Route 53 said or why the write was refused (the TXT publishing another
/// epoch or primary than `authority`'s), and the way on is the same
/// command again, never `region traffic apply` (which writes the
/// configured weights whatever the epoch). Refused credentials or
/// permissions and an unreachable endpoint keep their own hints.
fn restore_route53_error(
    e: &lifeboat_region::traffic::route53::Route53Error,
    name: &str,
    authority: &AuthorityView,
) -> Error {
    use lifeboat_region::traffic::route53::Route53Error as E;
    let err = crate::region::route53::route53_error(
        e,
        format!("restoring the weights of {name} in Route 53: {e}"),
    );
    match e {
        E::CredentialsRefused { .. }
        | E::AccessDenied { .. }
        | E::NoCredentials { .. }
        | E::Transport { .. } => err,
        _ => err.with_hint(format!(
            "the weights are restored only while Route 53's TXT publishes epoch {} for {}: see \
             `lifeboat region authority` and `lifeboat region traffic status`, then run the same \
             command again (not `region traffic apply`, which writes the configured weights \
             whatever the epoch)",
            authority.epoch, authority.primary
        )),
    }
}

/// Makes the steered name answer what the daemon's steering decides now
/// (health from the published verdicts, narrowed by the authority); with
/// `route53` the configured weights of the regions the authority allows
/// ([`restore_route53`]); without `traffic:` it says so and writes nothing.
pub(crate) async fn restore_dns<N: FnMut(&Note)>(
    ctx: &Ctx,
    config: &Config,
    authority: &AuthorityView,
    note: &mut N,
) -> Result<Option<DnsRestored>> {
    match config.traffic_provider() {
        None => {
            note(&Note {
                step: "restore_dns",
                ok: true,
                text: "no traffic: section: DNS left as it is".into(),
            });
            return Ok(None);
        }
        Some(Provider::Route53) => return restore_route53(ctx, config, authority, note).await,
        Some(Provider::Rfc2136) => {}
    }
    let views = match ctx.open().await {
        Ok(repo) => crate::region::verdicts::read_all(&repo)
            .await
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the repository for the published health verdicts; every region counts as healthy");
            Vec::new()
        }
    };
    let health = crate::region::traffic::health_basis(config, &views, chrono::Utc::now());
    let steered: Vec<String> = config
        .regions_in_file_order()
        .into_iter()
        .filter(|(_, r)| r.answer().is_some())
        .map(|(n, _)| n.to_string())
        .collect();
    let servers = steer::server_facts(ctx, config, &steered).await;
    let verdicts = steer::follow_authority(&health.verdicts, &steered, authority, &servers)
        .ok_or_else(|| {
            Error::failure(format!(
                "no steered region is {} or a standby that replayed epoch {}: DNS left as it is",
                authority.primary, authority.epoch
            ))
        })?;
    let provider = crate::region::traffic::provider(ctx, config).await?;
    let applied = provider
        .apply(&verdicts, false)
        .await
        .map_err(crate::region::traffic::traffic_error)?;
    let out = DnsRestored {
        name: provider.record_name().to_string(),
        regions: applied.desired.regions.clone(),
        written: applied.written,
    };
    note(&Note {
        step: "restore_dns",
        ok: true,
        text: format!(
            "{} answers {}{}",
            out.name,
            out.regions.join(", "),
            if out.written { "" } else { " (already so)" }
        ),
    });
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use steer::ServerFacts::{Primary, Standby, Unknown};

    #[test]
    fn a_refused_route53_restore_says_why_and_to_run_the_command_again() {
        use crate::error::Kind;
        use lifeboat_region::traffic::route53::Route53Error as E;
        let authority = AuthorityView {
            primary: "eu-west".into(),
            epoch: 2,
        };
        let refused = E::Unexpected(
            "Route 53 publishes epoch 1 for us-east, not epoch 2 for eu-west: the weights are \
             restored only under the epoch DNS publishes"
                .into(),
        );
        let transport = E::Transport {
            operation: "ListResourceRecordSets",
            detail: "connection refused".into(),
        };
        let denied = E::AccessDenied {
            operation: "ChangeResourceRecordSets",
            code: "AccessDenied".into(),
            message: "not allowed".into(),
        };
        // (cause, kind, text in the message, text in the hint, text never in the hint)
        let cases: [(E, Kind, &str, &str, &str); 3] = [
            (
                refused,
                Kind::Failure,
                "publishes epoch 1 for us-east, not epoch 2 for eu-west",
                "publishes epoch 2 for eu-west",
                "then apply again",
            ),
            (
                transport,
                Kind::Failure,
                "connection refused",
                "reachable",
                "epoch 2",
            ),
            (denied, Kind::Auth, "not allowed", "IAM policy", "epoch 2"),
        ];
        for (cause, kind, message, hint, not_hint) in cases {
            let e = restore_route53_error(&cause, "app.example.com", &authority);
            assert_eq!(e.kind(), kind, "{cause}");
            assert!(
                e.message
                    .starts_with("restoring the weights of app.example.com in Route 53: ")
                    && e.message.contains(message),
                "{}",
                e.message
            );
            assert!(e.hint().contains(hint), "{cause}: {}", e.hint());
            assert!(!e.hint().contains(not_hint), "{cause}: {}", e.hint());
        }
    }

    #[test]
    fn the_primary_keeps_its_failover_counts_until_every_region_and_its_writers_are_back() {
        let out = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (left out, the rejoined region's writers back) → to normal?
        for (left, back, want) in [
            (out(&[]), true, Ok(())),
            (
                out(&[]),
                false,
                Err("us-east's writers are not back".to_string()),
            ),
            (
                out(&["ap-south"]),
                true,
                Err("ap-south not back yet: rejoin it too".to_string()),
            ),
            (
                out(&["ap-south", "sa-east"]),
                false,
                Err(
                    "us-east's writers are not back; ap-south, sa-east not back yet: rejoin \
                     them too"
                        .to_string(),
                ),
            ),
        ] {
            assert_eq!(
                primary_to_normal("us-east", &left, back),
                want,
                "{left:?} {back}"
            );
        }
    }

    #[test]
    fn a_region_is_left_out_until_it_replayed_the_epoch() {
        let authority = AuthorityView {
            primary: "eu-west".into(),
            epoch: 3,
        };
        let regions: Vec<String> = ["us-east", "eu-west", "ap-south"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let facts = |east, south| {
            BTreeMap::from([
                ("us-east".to_string(), east),
                ("eu-west".to_string(), Primary { epoch: Some(3) }),
                ("ap-south".to_string(), south),
            ])
        };
        let back = Standby { epoch: Some(3) };
        assert!(left_out(&regions, &authority, &facts(back, back)).is_empty());
        for (east, why) in [
            (Standby { epoch: Some(2) }, "an older epoch replayed"),
            (Standby { epoch: None }, "no epoch row replayed"),
            (Primary { epoch: Some(2) }, "a stale primary"),
            (Unknown, "not reached"),
        ] {
            assert_eq!(
                left_out(&regions, &authority, &facts(east, back)),
                ["us-east"],
                "{why}"
            );
        }
        assert_eq!(
            left_out(&regions, &authority, &facts(Unknown, Unknown)),
            ["us-east", "ap-south"]
        );
        // A region with no facts at all (not asked) is not back either.
        assert_eq!(
            left_out(&regions, &authority, &BTreeMap::new()),
            ["us-east", "ap-south"]
        );
    }
}
