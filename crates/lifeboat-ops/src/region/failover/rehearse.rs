//! `lifeboat region rehearse [--to R]` (docs/failover.md, "Rehearsal"): the
//! seed's "annual multi-region failover tests" as a command. A planned
//! switchover to R (default: the first standby region in the
//! configuration's order) and one back, each the ordinary switchover
//! ([`super::run`]), measured by its failover record; each record carries
//! `rehearsal: "there"` or `"back"` (in etcd `<prefix>/failovers/<epoch>`
//! and the repository's `failovers/`), so the evidence is the same record
//! as any other switchover's, marked. Before each leg a heartbeat commits
//! on the primary; after it the new primary must hold that heartbeat: the
//! rows lost, counted independently of the driver's RPO.
//!
//! Readiness's `failover-tests` item ([`failover_tests_item`], pure) reads
//! the newest `back` record: it passes when it is done, lost nothing and is
//! younger than [`REHEARSAL_MAX_AGE`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_dr::readiness::{Item, Kind as ItemKind, Readiness, State};
use lifeboat_region::failover::plan::Kind;
use lifeboat_region::failover::record::FailoverRecord;
use lifeboat_region::heartbeat::{self, Heartbeat};
use serde::Serialize;

use super::authority::{self, failover_config};
use super::{Note, Request as ChangeRequest, run_rehearsal_leg};
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::region::conn::region_conn;
use crate::region::replicate::region;

/// How recent the newest successful rehearsal must be for readiness's
/// `failover-tests` item to pass: the seed asks for *annual* multi-region
/// failover tests, so a year (365 days, leap days ignored).
pub const REHEARSAL_MAX_AGE: TimeDelta = TimeDelta::days(365);

/// What to rehearse.
#[derive(Clone, Debug)]
pub struct Request {
    /// The region to switch over to; `None`: the first standby region.
    pub to: Option<String>,
    pub step_timeout: Duration,
}

/// One switchover of the rehearsal, as measured.
#[derive(Clone, Debug, Serialize)]
pub struct Leg {
    /// `there` or `back`.
    pub leg: &'static str,
    pub from: String,
    pub to: String,
    pub epoch: u64,
    /// The heartbeat committed on `from` just before the switchover.
    pub heartbeat_seq: i64,
    /// The newest heartbeat of `from` that `to` holds afterwards.
    pub heartbeat_seen: Option<i64>,
    /// Heartbeats committed on `from` that `to` lacks (0: nothing lost).
    pub rows_lost: i64,
    pub record: Option<FailoverRecord>,
}

/// What the rehearsal did.
#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub legs: Vec<Leg>,
    /// What the steered name answers afterwards.
    pub dns: Option<String>,
}

/// Runs the rehearsal; `note` gets every step of both switchovers (a leg
/// that fails ends it with the switchover's own error).
pub async fn run<N: FnMut(&'static str, &Note)>(
    ctx: &Ctx,
    req: &Request,
    mut note: N,
) -> Result<Report> {
    let config = crate::region::traffic::config_of(ctx)?;
    failover_config(config)?;
    let store = authority::connect(ctx, config).await?;
    let current = authority::current(&store, config, &authority::operator()).await?;
    let home = current.value.primary.clone();
    let away = match &req.to {
        Some(t) => {
            region(config, t)?;
            if *t == home {
                return Err(Error::usage(format!(
                    "{t} is the primary already: rehearse switches over to a standby and back; \
                     name another region or leave --to out"
                )));
            }
            t.clone()
        }
        None => config
            .regions_in_file_order()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .find(|n| *n != home)
            .ok_or_else(|| {
                Error::usage("only one region is configured: there is nothing to switch over to")
            })?,
    };
    let started_at = Utc::now();
    let mut legs = Vec::new();
    for (leg, from, to) in [("there", &home, &away), ("back", &away, &home)] {
        legs.push(one_leg(ctx, config, req, leg, from, to, &mut note).await?);
    }
    // A switchover leaves the steered name answering the new primary only;
    // both servers now follow the authority, so the active-active answer
    // set comes back (the rule the daemon's steering applies).
    let epoch = legs.last().map(|l| l.epoch).unwrap_or(current.value.epoch);
    super::rejoin::verify(
        &region_conn(ctx, region(config, &home)?).await?,
        &region_conn(ctx, region(config, &away)?).await?,
        &away,
        epoch,
        req.step_timeout,
    )
    .await?;
    let mut dns_note = None;
    super::rejoin::restore_dns(
        ctx,
        config,
        &crate::region::steering::AuthorityView {
            primary: home.clone(),
            epoch,
        },
        &mut |n: &super::rejoin::Note| dns_note = Some(n.text.clone()),
    )
    .await?;
    Ok(Report {
        started_at,
        finished_at: Utc::now(),
        legs,
        dns: dns_note,
    })
}

async fn one_leg<N: FnMut(&'static str, &Note)>(
    ctx: &Ctx,
    config: &Config,
    req: &Request,
    leg: &'static str,
    from: &str,
    to: &str,
    note: &mut N,
) -> Result<Leg> {
    let from_conn = region_conn(ctx, region(config, from)?).await?;
    let client = heartbeat::ensure(&from_conn)
        .await
        .map_err(|e| Error::failure(format!("{from}: {e}")))?;
    let beat = Heartbeat::new(from)
        .beat(&client)
        .await
        .map_err(|e| Error::failure(format!("the heartbeat on {from} did not commit: {e}")))?;
    drop(client);
    let report = run_rehearsal_leg(
        ctx,
        &ChangeRequest {
            to: to.to_string(),
            kind: Kind::Switchover,
            accept_data_loss: false,
            step_timeout: req.step_timeout,
        },
        leg,
        |n| note(leg, n),
    )
    .await
    .map_err(|e| {
        let text = format!("rehearsal leg {leg} ({from} → {to}): {e}");
        Error::failure(text).with_hint(
            "see `lifeboat region authority`; a change blocked after the bump resumes with \
             `lifeboat region switchover --to` the same region",
        )
    })?;
    let to_conn = region_conn(ctx, region(config, to)?).await?;
    let seen = heartbeat::read(&to_conn, Some(from))
        .await
        .map_err(|e| Error::failure(format!("reading {from}'s heartbeat on {to}: {e}")))?
        .map(|s| s.beat.seq);
    let rows_lost = (beat.seq - seen.unwrap_or(0)).max(0);
    if rows_lost > 0 {
        return Err(Error::failure(format!(
            "rehearsal leg {leg} ({from} → {to}) lost data: heartbeat {} committed on {from} \
             before the switchover, {to} holds {:?}",
            beat.seq, seen
        )));
    }
    Ok(Leg {
        leg,
        from: from.to_string(),
        to: to.to_string(),
        epoch: report.epoch,
        heartbeat_seq: beat.seq,
        heartbeat_seen: seen,
        rows_lost,
        record: report.record,
    })
}

/// Whether `r` is a rehearsal's `back` leg that succeeded and lost nothing
/// (its RPO, measured from the heartbeats, is exactly 0).
fn succeeded(r: &FailoverRecord) -> bool {
    r.rehearsal.as_deref() == Some("back")
        && r.kind == Kind::Switchover
        && r.outcome == "done"
        && r.rpo_exact
        && r.rpo_seconds == Some(0.0)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into())
}

/// Readiness's `failover-tests` from the failover records (any order) at
/// `now`; `warnings` (e.g. a region where `pg_rewind` cannot run) are added
/// to its detail without failing it. Pure.
pub fn failover_tests_item(
    records: &[FailoverRecord],
    warnings: &[String],
    now: DateTime<Utc>,
) -> Item {
    let newest = |f: &dyn Fn(&FailoverRecord) -> bool| {
        records.iter().filter(|r| f(r)).max_by_key(|r| r.started_at)
    };
    let last_ok = newest(&succeeded);
    let last_any = newest(&|r| r.rehearsal.is_some());
    let (state, mut detail) = match (last_ok, last_any) {
        (Some(b), _) if now - b.started_at <= REHEARSAL_MAX_AGE => {
            let there = records
                .iter()
                .filter(|r| r.rehearsal.as_deref() == Some("there") && r.epoch + 1 == b.epoch)
                .max_by_key(|r| r.started_at);
            (
                State::Pass,
                format!(
                    "last rehearsal {} ({} days ago): there {} → {} writes after {}, DNS after {}; back {} → {} writes after {}, DNS after {}; 0 rows lost",
                    b.started_at.format("%Y-%m-%d %H:%M UTC"),
                    (now - b.started_at).num_days(),
                    b.to,
                    b.from,
                    secs(there.and_then(|t| t.rto_writes_seconds)),
                    secs(there.and_then(|t| t.rto_dns_seconds)),
                    b.from,
                    b.to,
                    secs(b.rto_writes_seconds),
                    secs(b.rto_dns_seconds),
                ),
            )
        }
        (Some(b), _) => (
            State::Fail,
            format!(
                "the last successful rehearsal was {} ({} days ago), more than {} days: run `lifeboat region rehearse`",
                b.started_at.format("%Y-%m-%d"),
                (now - b.started_at).num_days(),
                REHEARSAL_MAX_AGE.num_days()
            ),
        ),
        (None, Some(r)) => (
            State::Fail,
            format!(
                "no rehearsal has succeeded; the last one ({}, leg {} {} → {}) ended {}: see `lifeboat region authority`, then run `lifeboat region rehearse` again",
                r.started_at.format("%Y-%m-%d %H:%M UTC"),
                r.rehearsal.as_deref().unwrap_or("?"),
                r.from,
                r.to,
                r.outcome
            ),
        ),
        (None, None) => (
            State::Fail,
            "no rehearsal recorded: run `lifeboat region rehearse` (a switchover to a standby and back, measured)".to_string(),
        ),
    };
    for w in warnings {
        detail.push_str(&format!("; warning: {w}"));
    }
    Item {
        id: "failover-tests",
        title: "Annual multi-region failover tests".into(),
        seed: "Annual multi-region failover tests",
        kind: ItemKind::Automated,
        state,
        detail,
    }
}

/// `status`'s line for the region-failure objective: the newest finished
/// change of primary (failover, switchover or a rehearsal's leg) with its
/// measured RTO (to DNS, else to writes) and RPO against the objective.
/// `None` without a finished record. Pure.
pub fn region_failure_line(records: &[FailoverRecord]) -> Option<String> {
    let r = records
        .iter()
        .filter(|r| r.outcome == "done")
        .max_by_key(|r| r.started_at)?;
    let what = match r.rehearsal.as_deref() {
        Some(leg) => format!("rehearsal ({leg})"),
        None => r.kind.as_str().to_string(),
    };
    let judged = match (r.met, r.objectives) {
        (Some(true), Some(o)) => format!(
            "within the objective (RTO {}, RPO {})",
            secs(Some(o.rto_seconds)),
            secs(Some(o.rpo_seconds))
        ),
        (Some(false), Some(o)) => format!(
            "MISSED the objective (RTO {}, RPO {})",
            secs(Some(o.rto_seconds)),
            secs(Some(o.rpo_seconds))
        ),
        _ => "not judged (a value or the objective is unknown)".into(),
    };
    Some(format!(
        "last {what} {} → {} at {} (epoch {}): writes after {}, DNS after {}, RPO {}{}; {judged}",
        r.from,
        r.to,
        r.started_at.format("%Y-%m-%d %H:%M UTC"),
        r.epoch,
        secs(r.rto_writes_seconds),
        secs(r.rto_dns_seconds),
        secs(r.rpo_seconds),
        if r.rpo_exact || r.rpo_seconds.is_none() {
            ""
        } else {
            " (upper bound)"
        },
    ))
}

/// Adds [`region_failure_line`] (from etcd's records) to the note of
/// `status`'s region-failure objective; nothing when etcd cannot be read
/// or holds no finished change.
pub async fn annotate_status(st: &mut lifeboat_dr::status::Status, ctx: &Ctx, config: &Config) {
    if config.failover.is_none() {
        return;
    }
    let Ok(store) = authority::connect(ctx, config).await else {
        return;
    };
    let Ok(recs) = store.failover_records::<FailoverRecord>(1000).await else {
        return;
    };
    let recs: Vec<FailoverRecord> = recs.into_iter().map(|(_, r)| r).collect();
    let Some(line) = region_failure_line(&recs) else {
        return;
    };
    for o in st
        .objectives
        .iter_mut()
        .filter(|o| o.objective.scenario == crate::config::REGION_FAILURE_SCENARIO)
    {
        o.note = Some(match &o.note {
            Some(n) => format!("{n}; {line}"),
            None => line.clone(),
        });
    }
}

/// Replaces readiness's `failover-tests` (with `failover:` configured) by
/// [`failover_tests_item`] over the failover records in etcd and the
/// regions' rewind readiness; etcd unreachable fails the item saying so.
pub async fn judge(r: &mut Readiness, ctx: &Ctx, config: &Config, now: DateTime<Utc>) {
    if config.failover.is_none() {
        return;
    }
    let item = match authority::connect(ctx, config).await {
        Ok(store) => match store.failover_records::<FailoverRecord>(1000).await {
            Ok(recs) => {
                let recs: Vec<FailoverRecord> = recs.into_iter().map(|(_, r)| r).collect();
                failover_tests_item(&recs, &rewind_warnings(ctx, config).await, now)
            }
            Err(e) => unreadable(e.to_string()),
        },
        Err(e) => unreadable(e.to_string()),
    };
    if let Some(it) = r.items.iter_mut().find(|i| i.id == "failover-tests") {
        *it = item;
    }
    r.ready = !r.items.iter().any(|it| it.state == State::Fail);
}

fn unreadable(e: String) -> Item {
    let mut it = failover_tests_item(&[], &[], Utc::now());
    it.detail = format!("the failover records in etcd cannot be read: {e}");
    it
}

/// One line per region whose server has neither `wal_log_hints` nor data
/// checksums (a rejoin after a failover must then clone it afresh).
pub async fn rewind_warnings(ctx: &Ctx, config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, r) in config.regions_in_file_order() {
        let Ok(conn) = region_conn(ctx, r).await else {
            continue;
        };
        let Ok(c) = lifeboat_region::replication::observe::connect(
            &conn,
            lifeboat_region::replication::retry::Retry::ONCE,
        )
        .await
        else {
            continue;
        };
        if let Ok(rr) = lifeboat_region::promotion::rewind_possible(&c).await
            && !rr.possible()
        {
            out.push(rewind_warning(name));
        }
    }
    out
}

/// The warning for a region where `pg_rewind` cannot run.
pub fn rewind_warning(region: &str) -> String {
    format!(
        "{region}'s server has neither wal_log_hints nor data checksums: after a failover it \
         rejoins by a full clone, not pg_rewind (set wal_log_hints = on and restart it)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lifeboat_region::failover::record::RpoEvidence;

    fn at(days: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap() + TimeDelta::days(days)
    }

    fn rec(
        epoch: u64,
        leg: Option<&str>,
        outcome: &str,
        rpo: Option<f64>,
        day: i64,
    ) -> FailoverRecord {
        FailoverRecord {
            epoch,
            kind: Kind::Switchover,
            from: if leg == Some("back") {
                "eu-west"
            } else {
                "us-east"
            }
            .into(),
            to: if leg == Some("back") {
                "us-east"
            } else {
                "eu-west"
            }
            .into(),
            outcome: outcome.into(),
            ended_because: None,
            failure_at: at(day),
            started_at: at(day),
            steps: Vec::new(),
            writable_at: None,
            dns_at: None,
            rto_writes_seconds: Some(1.5),
            rto_dns_seconds: Some(2.0),
            rpo_seconds: rpo,
            rpo_exact: rpo.is_some(),
            evidence: RpoEvidence::default(),
            objectives: None,
            confirmation: None,
            met: None,
            rehearsal: leg.map(String::from),
        }
    }

    // A table of inputs and expectations, spelt out in place.
    #[allow(clippy::type_complexity)]
    #[test]
    fn failover_tests_table() {
        let now = at(400);
        let cases: Vec<(&str, Vec<FailoverRecord>, State, &str)> = vec![
            (
                "nothing recorded",
                vec![],
                State::Fail,
                "no rehearsal recorded",
            ),
            (
                "only an ordinary switchover: not a rehearsal",
                vec![rec(2, None, "done", Some(0.0), 399)],
                State::Fail,
                "no rehearsal recorded",
            ),
            (
                "a fresh rehearsal, both legs done, nothing lost",
                vec![
                    rec(2, Some("there"), "done", Some(0.0), 399),
                    rec(3, Some("back"), "done", Some(0.0), 399),
                ],
                State::Pass,
                "1 days ago",
            ),
            (
                "the back leg rolled back",
                vec![
                    rec(2, Some("there"), "done", Some(0.0), 399),
                    rec(3, Some("back"), "rolled-back", None, 399),
                ],
                State::Fail,
                "no rehearsal has succeeded",
            ),
            (
                "a rehearsal that lost data does not count",
                vec![rec(3, Some("back"), "done", Some(0.4), 399)],
                State::Fail,
                "no rehearsal has succeeded",
            ),
            (
                "the last success is older than a year",
                vec![rec(3, Some("back"), "done", Some(0.0), 20)],
                State::Fail,
                "more than 365 days",
            ),
            (
                "365 days exactly still passes",
                vec![rec(3, Some("back"), "done", Some(0.0), 35)],
                State::Pass,
                "365 days ago",
            ),
        ];
        for (what, recs, state, text) in cases {
            let it = failover_tests_item(&recs, &[], now);
            assert_eq!(it.state, state, "{what}: {}", it.detail);
            assert!(it.detail.contains(text), "{what}: {}", it.detail);
        }
        let line = region_failure_line(&[
            rec(3, Some("there"), "done", Some(0.0), 399),
            rec(4, None, "rolled-back", None, 399),
        ])
        .unwrap();
        assert!(
            line.starts_with("last rehearsal (there) us-east → eu-west"),
            "{line}"
        );
        assert_eq!(region_failure_line(&[]), None);
        let it = failover_tests_item(&[], &[rewind_warning("us-east")], now);
        assert!(
            it.detail.contains("warning: us-east's server has neither"),
            "{}",
            it.detail
        );
    }
}
