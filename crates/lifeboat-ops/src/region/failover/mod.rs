//! `lifeboat region failover --to R`, `region switchover --to R` and
//! `region authority` (docs/failover.md): the driver of
//! `lifeboat_region::failover::machine`. It asks the machine what to do
//! next, has [`steps`] do it, feeds the outcome back, and writes the new
//! state to etcd by compare-and-swap after every step, so a driver killed
//! mid-way leaves a state the next run resumes (running the same command
//! again is how an operator resumes), and two drivers cannot both advance
//! the same change.
//!
//! - [`authority`]: etcd from the configuration, the current record, the
//!   view `region authority` prints.
//! - [`steps`]: each step's IO.
//! - [`promote`]: the promote step by the target's manager (`postgres`,
//!   `patroni`, `cnpg`).
//! - [`dns`]: the DNS switch and its check, `rfc2136` or `route53`.
//! - [`scale`]: the regions' serving Deployments (quiesce, bring back, failover counts).
//! - [`rejoin`]: `region rejoin R`, an old primary made a standby again.
//! - [`rehearse`]: `region rehearse`, a switchover there and back, recorded.

pub mod authority;
mod dns;
pub(crate) mod failsafe;
mod promote;
pub mod rehearse;
pub mod rejoin;
pub(crate) mod scale;
mod steps;

use std::time::Duration;

use chrono::Utc;
use lifeboat_region::authority::{AuthorityError, Versioned};
use lifeboat_region::failover::confirm::Confirmation;
use lifeboat_region::failover::machine::{self, Action, Event, Phase, Progress, Refusal};
use lifeboat_region::failover::plan::{Kind, Plan};
use lifeboat_region::failover::record::FailoverRecord;
use lifeboat_region::heartbeat;
use serde::Serialize;

use crate::config::{Config, PgManager, REGION_FAILURE_SCENARIO};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::region::conn::region_conn;
use crate::region::replicate::region;
use crate::region::traffic::config_of;
use authority::{authority_error, failover_config};
use steps::Steps;

/// Transient failures of one step tried this often before the step counts
/// as failed for good.
const MAX_TRANSIENT_ATTEMPTS: u32 = 5;

/// What to change.
#[derive(Clone, Debug)]
pub struct Request {
    pub to: String,
    pub kind: Kind,
    /// Manual failover past the lag guard.
    pub accept_data_loss: bool,
    /// Bound on each waiting step (the fence, replay, promotion, following).
    pub step_timeout: Duration,
}

/// One line of progress for the operator.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub phase: Phase,
    pub ok: bool,
    pub text: String,
}

/// What happened.
#[derive(Debug, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub kind: Kind,
    pub epoch_before: u64,
    pub epoch: u64,
    /// `done`, `aborted` or `rolled-back`.
    pub outcome: String,
    /// This run continued a change an earlier run left unfinished.
    pub resumed: bool,
    pub progress: Progress,
    pub record: Option<FailoverRecord>,
}

/// What the daemon that confirmed a region failure adds to an automatic
/// change (`Kind::Automatic`).
#[derive(Clone, Debug)]
pub struct Automatic {
    /// Who drives (`daemon@<observer>`), for the authority record.
    pub by: String,
    /// When the deciding daemon's read found the old primary's lease gone
    /// (taken after etcd answered): the fence step counts the safety margin
    /// from here instead of from its own read, so the campaign's time is
    /// not added to the RTO. `None` for a resumed change.
    pub lease_gone_seen: Option<std::time::Instant>,
    /// The first failed check of the confirming votes: RTO counts from here.
    pub failure_at: chrono::DateTime<Utc>,
    pub confirmation: Confirmation,
}

/// Runs (or resumes) a change of primary to `req.to`; `note` gets a line
/// per step. An aborted or rolled-back change is an error naming why, after
/// the notes.
pub async fn run<N: FnMut(&Note)>(ctx: &Ctx, req: &Request, note: N) -> Result<Report> {
    drive(ctx, req, None, None, note).await
}

/// [`run`] for one leg of `region rehearse` ([`rehearse`]): its record
/// carries `rehearsal: leg`.
pub(crate) async fn run_rehearsal_leg<N: FnMut(&Note)>(
    ctx: &Ctx,
    req: &Request,
    leg: &str,
    note: N,
) -> Result<Report> {
    drive(ctx, req, None, Some(leg.to_string()), note).await
}

/// The daemon's automatic failover: like [`run`] with `Kind::Automatic`,
/// and an unfinished automatic change in etcd is resumed whatever its
/// target (the next holder of the election finishes what the last one
/// left, without anyone typing its `--to`). `auto` is used only when a
/// new change starts.
pub async fn run_automatic<N: FnMut(&Note)>(
    ctx: &Ctx,
    req: &Request,
    auto: &Automatic,
    note: N,
) -> Result<Report> {
    drive(ctx, req, Some(auto), None, note).await
}

async fn drive<N: FnMut(&Note)>(
    ctx: &Ctx,
    req: &Request,
    auto: Option<&Automatic>,
    rehearsal: Option<String>,
    mut note: N,
) -> Result<Report> {
    let config = config_of(ctx)?;
    let fo = failover_config(config)?;
    region(config, &req.to)?;
    let store = authority::connect(ctx, config).await?;
    let by = auto
        .map(|a| a.by.clone())
        .unwrap_or_else(authority::operator);
    let current = authority::current(&store, config, &by).await?;
    let existing: Option<Versioned<Progress>> = store.progress().await.map_err(authority_error)?;
    let (mut progress, mut revision, resumed) = match existing {
        Some(v) if !v.value.phase.is_terminal() => {
            let p = &v.value.plan;
            let automatic_resume = auto.is_some() && p.kind == Kind::Automatic;
            if !automatic_resume
                && (p.to != req.to
                    || auto.is_some()
                    || (p.kind == Kind::Switchover) != (req.kind == Kind::Switchover))
            {
                return Err(Error::usage(format!(
                    "a {} from {} to {} is under way (phase {}); finish it first by running `lifeboat region {} --to {}` again",
                    p.kind.as_str(),
                    p.from,
                    p.to,
                    v.value.phase.as_str(),
                    if p.kind == Kind::Switchover {
                        "switchover"
                    } else {
                        "failover"
                    },
                    p.to
                )));
            }
            (v.value, v.mod_revision, true)
        }
        previous => {
            let from = current.value.primary.clone();
            check_request(ctx, config, req, &from).await?;
            let now = Utc::now();
            let plan = Plan {
                kind: req.kind,
                from,
                to: req.to.clone(),
                epoch_before: current.value.epoch,
                accept_data_loss: req.accept_data_loss,
                failure_at: auto.map_or(now, |a| a.failure_at.min(now)),
                started_by: by.clone(),
                started_at: now,
            };
            let mut p = Progress::start(plan);
            p.confirmation = auto.map(|a| a.confirmation.clone());
            let rev = store
                .put_progress(previous.map(|v| v.mod_revision), &p)
                .await
                .map_err(progress_error)?;
            (p, rev, false)
        }
    };
    if progress.blocked.is_some() {
        // Running the command again is the operator's resume.
        progress = machine::apply(&progress, &Event::Resume, Utc::now()).map_err(refusal)?;
        revision = store
            .put_progress(Some(revision), &progress)
            .await
            .map_err(progress_error)?;
    }
    let dns = dns::DnsSwitch::from_config(ctx, config).await?;
    let mut steps = Steps {
        ctx,
        config,
        failover: fo,
        store: &store,
        by,
        step_timeout: req.step_timeout,
        evidence: Default::default(),
        record: None,
        dns,
        rehearsal,
        lease_gone_seen: if resumed {
            None
        } else {
            auto.and_then(|a| a.lease_gone_seen)
        },
    };
    let mut unchanged_reads = 0;
    loop {
        test_pause(progress.phase).await;
        let action = machine::action(&progress);
        match &action {
            Action::Nothing => break,
            Action::WaitForOperator { reason } => {
                return Err(Error::failure(format!(
                    "the {} to {} is blocked in phase {} after the epoch changed: {reason}",
                    progress.plan.kind.as_str(),
                    progress.plan.to,
                    progress.phase.as_str()
                ))
                .with_hint(
                    "fix the cause, then run the same command again: it resumes from this phase \
                     (the change cannot be undone once the epoch is bumped)",
                ));
            }
            _ => {}
        }
        let phase = progress.phase;
        let (mut event, text) = steps.perform(&action, &progress).await;
        if let Event::Failed { transient, detail } = &event
            && *transient
            && progress.attempts + 1 >= MAX_TRANSIENT_ATTEMPTS
        {
            event = Event::Failed {
                transient: false,
                detail: format!("{detail} (after {MAX_TRANSIENT_ATTEMPTS} attempts)"),
            };
        }
        let next = match machine::apply(&progress, &event, Utc::now()) {
            Ok(next) => next,
            Err(r) if matches!(event, Event::AuthorityIs { .. }) && unchanged_reads < 3 => {
                // The authority is still what the plan started from: send the
                // compare-and-swap again.
                unchanged_reads += 1;
                tracing::info!(refusal = %r, "the authority is unchanged; bumping again");
                continue;
            }
            Err(r) => return Err(refusal(r)),
        };
        match &event {
            Event::Failed { detail, .. } => note(&Note {
                phase,
                ok: false,
                text: detail.clone(),
            }),
            _ => note(&Note {
                phase,
                ok: true,
                text,
            }),
        }
        revision = store
            .put_progress(Some(revision), &next)
            .await
            .map_err(progress_error)?;
        let retry = matches!(
            event,
            Event::Failed {
                transient: true,
                ..
            }
        );
        progress = next;
        if retry {
            tokio::time::sleep(Duration::from_millis(250) * 2u32.pow(progress.attempts.min(4)))
                .await;
        }
    }
    let plan = progress.plan.clone();
    match progress.phase {
        Phase::Done => Ok(Report {
            from: plan.from.clone(),
            to: plan.to.clone(),
            kind: plan.kind,
            epoch_before: plan.epoch_before,
            epoch: plan.epoch_after(),
            outcome: "done".into(),
            resumed,
            record: steps.record.take(),
            progress,
        }),
        phase => Err(Error::failure(format!(
            "the {} from {} to {} ended {}: {}; the authority stays {} at epoch {}",
            plan.kind.as_str(),
            plan.from,
            plan.to,
            phase.as_str(),
            progress
                .ended_because
                .as_deref()
                .unwrap_or("no reason recorded"),
            plan.from,
            plan.epoch_before
        ))),
    }
}

/// Refuses what cannot work before anything is written: the target is the
/// primary already, a change the regions' managers cannot take
/// ([`manager_guard`]), a standby past the lag guard.
async fn check_request(ctx: &Ctx, config: &Config, req: &Request, from: &str) -> Result<()> {
    if req.to == from {
        return Err(Error::usage(format!(
            "{from} is the primary already (per the authority in etcd): nothing to change"
        )));
    }
    let from_region = region(config, from)?;
    let from_manager = from_region.postgres.manager();
    let to_manager = region(config, &req.to)?.postgres.manager();
    let from_fenced = crate::region::managed_fence::managed_fenced(
        from_region,
        config.failover.as_ref().and_then(|f| f.fence.as_ref()),
    );
    manager_guard(
        req.kind,
        from,
        from_manager,
        from_fenced,
        &req.to,
        to_manager,
    )?;
    // An automatic change follows a failure that a majority of vantage
    // points confirmed: the old primary is not looked at (a partitioned
    // one would cost OLD_PRIMARY_BOUND of the RTO for nothing; a second
    // name of it would be unreachable too, or answer as a primary, and be
    // refused below).
    let look_at_old = req.kind != Kind::Automatic;
    same_server_guard(ctx, config, from, &req.to, look_at_old, from_manager).await?;
    if req.kind == Kind::Manual && !req.accept_data_loss {
        lag_guard(ctx, config, from, &req.to).await?;
    }
    Ok(())
}

/// What the regions' managers allow (docs/failover.md, "Managers"):
///
/// - the target may be `postgres`, `patroni` or `cnpg` for a failover
///   (the promote step dispatches on it);
/// - a switchover stops the old primary cleanly, waits for the target to
///   replay its last record, and makes the old primary follow from its data
///   directory (or restarts it, rolling back): steps Lifeboat does for
///   servers it runs itself, so both regions must be `manager: postgres`;
/// - an old primary that Lifeboat does not run (`patroni`, `cnpg`) has no
///   fence of Lifeboat's, except with `failover.fence: revoke_login`
///   (`from_fenced`: its agent revokes the application's LOGIN on the
///   Patroni leader or the CloudNativePG primary, `region::managed_fence`): the daemon
///   cannot stop a server its manager restarts, so without that fence its
///   lease expiring proves nothing about it. An automatic failover from an
///   unfenced one is refused (it could leave two writable primaries); a
///   manual one is the operator's word that it is fenced, and is refused
///   still when the old primary answers as a primary
///   ([`same_server_guard`]).
pub(crate) fn manager_guard(
    kind: Kind,
    from: &str,
    from_manager: PgManager,
    from_fenced: bool,
    to: &str,
    to_manager: PgManager,
) -> Result<()> {
    if kind == Kind::Switchover {
        for (name, m) in [(from, from_manager), (to, to_manager)] {
            if m != PgManager::Postgres {
                return Err(Error::usage(format!(
                    "regions.{name}.postgres.manager is {m}: a switchover stops the old primary \
                     cleanly, waits until the new one replayed its last record and makes the old \
                     one follow from its data directory, which Lifeboat does for `manager: \
                     postgres` regions only (a switchover to or from Patroni or CloudNativePG is \
                     not built)"
                ))
                .with_hint(format!(
                    "stop {from}'s writers and its server yourself (Patroni: `patronictl pause`, \
                     then stop PostgreSQL on every member; CloudNativePG: hibernate the Cluster), \
                     then run `lifeboat region failover --to {to}`"
                )));
            }
        }
        return Ok(());
    }
    if from_manager != PgManager::Postgres && !from_fenced && kind == Kind::Automatic {
        let patroni = match from_manager {
            PgManager::Patroni => {
                " (for a Patroni primary, set failover.fence to {revoke_login: {roles: [...]}} \
                 with the application's roles: its agent then fences the Patroni leader)"
            }
            PgManager::Cnpg => {
                " (for a CloudNativePG primary, set failover.fence to {revoke_login: {roles: \
                 [...]}} with the application's roles: its agent then fences the Cluster's \
                 primary through postgres.url, the -rw Service)"
            }
            PgManager::Postgres => "",
        };
        return Err(Error::usage(format!(
            "regions.{from}.postgres.manager is {from_manager}: Lifeboat's agent cannot fence a \
             {from_manager} cluster (its manager restarts what the agent stops), so its lease \
             expiring does not prove it stopped taking writes; an automatic failover from it \
             is refused, as it could leave {from} writable beside {to}"
        ))
        .with_hint(format!(
            "fence {from} yourself (Patroni: `patronictl pause`, then stop PostgreSQL on every \
             member; CloudNativePG: hibernate the Cluster), then run `lifeboat region failover \
             --to {to}`{patroni}"
        )));
    }
    Ok(())
}

/// How long the same-server guard waits for the old primary to answer.
const OLD_PRIMARY_BOUND: Duration = Duration::from_secs(2);

/// What the servers say, not how their URLs are spelled: the target must
/// answer as a standby (in recovery), and must not be the primary's running
/// server under a second name (same system identifier and postmaster start).
async fn same_server_guard(
    ctx: &Ctx,
    config: &Config,
    from: &str,
    to: &str,
    look_at_old: bool,
    from_manager: PgManager,
) -> Result<()> {
    use lifeboat_region::replication::observe::{Role, Server, observe};
    use lifeboat_region::replication::retry::Retry;
    let target_server = Server {
        name: to.to_string(),
        conn: region_conn(ctx, region(config, to)?).await?,
    };
    // Both observed at once: a partitioned old primary costs its bound
    // beside the target's observation, not after it.
    let old_look = async {
        if !look_at_old {
            return None;
        }
        let old_conn = region_conn(ctx, region(config, from).ok()?).await.ok()?;
        // One attempt, cut at OLD_PRIMARY_BOUND: in a failover the old
        // primary is usually gone, and retrying it cost 1.5 s of the RTO
        // (bench/failover.sh); a partitioned one does not even refuse, and
        // its connect timeout (10 s) cost 10 s (the fault suite). Missing a
        // second name here is still caught below: a target that reaches the
        // running primary answers as a primary and is refused.
        tokio::time::timeout(
            OLD_PRIMARY_BOUND,
            observe(
                &Server {
                    name: from.to_string(),
                    conn: old_conn,
                },
                Retry {
                    attempts: 1,
                    ..Retry::default()
                },
            ),
        )
        .await
        .ok()
    };
    let (target, old) = tokio::join!(observe(&target_server, Retry::default()), old_look);
    if let Some(old) = &old
        && let (Some(a), Some(b)) = (&old.identity, &target.identity)
        && a.same_server(b)
    {
        return Err(Error::usage(format!(
            "regions.{to}.postgres.url reaches the same running server as {from}'s (system \
             identifier {}, same postmaster): promoting it would change nothing but the \
             authority; fix the configuration",
            a.system_identifier
        )));
    }
    if from_manager != PgManager::Postgres
        && let Some(old) = &old
        && old.role == Role::Primary
    {
        return Err(Error::usage(format!(
            "{from}'s server answers as a writable primary, and Lifeboat cannot fence it \
             (manager: {from_manager}): promoting {to} now would make two primaries"
        ))
        .with_hint(format!(
            "stop {from}'s writers and fence its server yourself (Patroni: `patronictl pause`, \
             then stop PostgreSQL on every member; CloudNativePG: hibernate the Cluster), then run \
             the command again"
        )));
    }
    match &target.role {
        Role::Standby => Ok(()),
        Role::Primary => Err(Error::usage(format!(
            "{to}'s server answers as a primary, not a standby of {from}: it cannot be promoted; \
             check `lifeboat region status`"
        ))),
        Role::Unreachable { reason, .. } => Err(Error::failure(format!(
            "{to}'s server cannot be reached ({reason}): nothing to promote"
        ))
        .with_hint(format!(
            "start it or fix regions.{to}.postgres.url, then run the command again"
        ))),
    }
}

/// The lag guard for a manual failover: the standby's newest replayed
/// heartbeat from the old primary must be younger than the region-failure
/// RPO objective (default 5 min), or the operator accepts the loss.
async fn lag_guard(ctx: &Ctx, config: &Config, from: &str, to: &str) -> Result<()> {
    let rpo = config
        .objective(REGION_FAILURE_SCENARIO)
        .and_then(|o| o.rpo.to_std().ok())
        .unwrap_or(Duration::from_secs(300));
    let conn = region_conn(ctx, region(config, to)?).await?;
    let seen = heartbeat::read(&conn, Some(from)).await.map_err(|e| {
        Error::failure(format!(
            "cannot read {to}'s newest replayed heartbeat from {from} ({e}), so its data loss is unknown"
        ))
        .with_hint(format!(
            "to promote {to} anyway and accept the loss, add --accept-data-loss"
        ))
    })?;
    let age = seen
        .as_ref()
        .map(|s| (Utc::now() - s.beat.at).num_seconds());
    match age {
        Some(a) if a >= 0 && (a as u64) <= rpo.as_secs() => Ok(()),
        _ => Err(Error::usage(format!(
            "{to}'s newest replayed heartbeat from {from} is {}, beyond the region-failure RPO objective of {}s: promoting it would lose more than the objective allows",
            match age {
                Some(a) => format!("{a}s old"),
                None => "missing".into(),
            },
            rpo.as_secs()
        ))
        .with_hint(format!(
            "run `lifeboat region failover --to {to} --accept-data-loss` to promote it anyway"
        ))),
    }
}

fn refusal(r: Refusal) -> Error {
    Error::failure(format!("the failover state machine refused a step: {r}"))
}

fn progress_error(e: AuthorityError) -> Error {
    match e {
        AuthorityError::ProgressConflict { .. } => Error::failure(format!(
            "another process changed the failover's progress in etcd ({e}); it is driving this change"
        ))
        .with_hint("see `lifeboat region authority`; run the command again to resume once it stopped"),
        e => authority_error(e),
    }
}

/// A pause point for tests of a driver killed mid-change: with
/// `LIFEBOAT_TEST_FAILOVER_PAUSE=<phase>:<file>` the driver, about to act
/// in `<phase>` (e.g. `promote`: the epoch is bumped, nothing promoted),
/// writes its pid to `<file>.reached` and waits while `<file>` exists.
/// Unset (always, outside tests) it costs one environment lookup.
async fn test_pause(phase: Phase) {
    let Ok(spec) = std::env::var("LIFEBOAT_TEST_FAILOVER_PAUSE") else {
        return;
    };
    let Some((at, file)) = spec.split_once(':') else {
        return;
    };
    if at != phase.as_str() || !std::path::Path::new(file).exists() {
        return;
    }
    let _ = std::fs::write(format!("{file}.reached"), std::process::id().to_string());
    tracing::warn!(
        phase = at,
        file,
        "test pause point reached (LIFEBOAT_TEST_FAILOVER_PAUSE): waiting while the file exists"
    );
    while std::path::Path::new(file).exists() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PgManager::{Cnpg, Patroni, Postgres};

    /// What each kind of change allows for each pair of managers, with
    /// and without a fence of Lifeboat's for a managed old primary.
    #[test]
    fn manager_guard_table() {
        // (kind, from, from fenced, to, refusal's words)
        let cases = [
            // Failover to any manager, from a postgres primary.
            (Kind::Manual, Postgres, false, Postgres, None),
            (Kind::Manual, Postgres, false, Patroni, None),
            (Kind::Manual, Postgres, false, Cnpg, None),
            (Kind::Automatic, Postgres, false, Patroni, None),
            (Kind::Automatic, Postgres, false, Cnpg, None),
            // A manual failover from a managed primary: the operator fenced it
            // (a running one is refused by the same-server guard).
            (Kind::Manual, Patroni, false, Postgres, None),
            (Kind::Manual, Cnpg, false, Patroni, None),
            // Automatic from a primary Lifeboat cannot fence: refused, and
            // for Patroni the hint names the fence that would allow it.
            (
                Kind::Automatic,
                Patroni,
                false,
                Postgres,
                Some("cannot fence"),
            ),
            (
                Kind::Automatic,
                Patroni,
                false,
                Postgres,
                Some("revoke_login"),
            ),
            (Kind::Automatic, Cnpg, false, Cnpg, Some("cannot fence")),
            (Kind::Automatic, Cnpg, false, Postgres, Some("cannot fence")),
            (
                Kind::Automatic,
                Cnpg,
                false,
                Postgres,
                Some("CloudNativePG primary, set failover.fence to {revoke_login"),
            ),
            // Automatic from a Patroni or CloudNativePG primary its agent
            // fences (revoke_login on its primary): allowed, to any manager.
            (Kind::Automatic, Patroni, true, Postgres, None),
            (Kind::Automatic, Patroni, true, Patroni, None),
            (Kind::Automatic, Cnpg, true, Postgres, None),
            (Kind::Automatic, Cnpg, true, Cnpg, None),
            (Kind::Automatic, Cnpg, true, Patroni, None),
            // Switchover: postgres on both sides only, fence or not.
            (Kind::Switchover, Postgres, false, Postgres, None),
            (
                Kind::Switchover,
                Postgres,
                false,
                Patroni,
                Some("eu-west.postgres.manager is patroni"),
            ),
            (
                Kind::Switchover,
                Patroni,
                true,
                Postgres,
                Some("us-east.postgres.manager is patroni"),
            ),
            (
                Kind::Switchover,
                Cnpg,
                false,
                Postgres,
                Some("us-east.postgres.manager is cnpg"),
            ),
        ];
        for (kind, from, fenced, to, want) in cases {
            let got = manager_guard(kind, "us-east", from, fenced, "eu-west", to);
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => {
                    let text = format!("{e} {}", e.hint.as_deref().unwrap_or(""));
                    assert!(text.contains(w), "{kind:?} {from} → {to}: {text}");
                    assert!(
                        text.contains("lifeboat region failover --to eu-west"),
                        "says what to do: {text}"
                    );
                    assert_eq!(e.kind.code(), 2, "a usage refusal: {text}");
                }
                (got, want) => {
                    panic!("{kind:?} {from} (fenced {fenced}) → {to}: {got:?}, wanted {want:?}")
                }
            }
        }
        // Each managed primary's hint names its own manager's fence.
        let e = manager_guard(Kind::Automatic, "us-east", Cnpg, false, "eu-west", Postgres)
            .unwrap_err();
        assert!(!e.hint.unwrap_or_default().contains("Patroni leader)"));
    }
}
