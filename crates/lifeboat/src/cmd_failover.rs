//! `lifeboat region failover | switchover | authority | rejoin | rehearse`:
//! flags, the call into
//! `lifeboat_ops::region::failover`, one line per step, and the `--json`
//! documents (docs/failover.md).

use std::time::Duration;

use clap::Args;
use lifeboat_ops::error::{OK, Result};
use lifeboat_ops::region::failover::{self, Note, Request, authority, rehearse, rejoin};
use lifeboat_region::failover::plan::Kind;
use serde::Serialize;

use crate::context::Ctx;
use crate::output::print_json;

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// The standby region to promote
    #[arg(long, value_name = "REGION")]
    pub to: String,
    /// Promote even when the standby's newest replayed heartbeat is older than the
    /// region-failure RPO objective (its missing writes are lost)
    #[arg(long)]
    pub accept_data_loss: bool,
    /// Bound on each waiting step (the old primary's lease, the promotion), in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub step_timeout: u64,
}

#[derive(Args, Debug)]
pub struct SwitchoverArgs {
    /// The standby region that becomes the primary
    #[arg(long, value_name = "REGION")]
    pub to: String,
    /// Bound on each waiting step (the clean stop, the replay, the promotion), in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub step_timeout: u64,
}

#[derive(Args, Debug)]
pub struct AuthorityArgs {
    /// How many of the newest failover records to show
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub records: usize,
}

pub async fn failover(ctx: &Ctx, a: FailoverArgs) -> Result<i32> {
    change(
        ctx,
        Request {
            to: a.to,
            kind: Kind::Manual,
            accept_data_loss: a.accept_data_loss,
            step_timeout: Duration::from_secs(a.step_timeout.max(1)),
        },
    )
    .await
}

pub async fn switchover(ctx: &Ctx, a: SwitchoverArgs) -> Result<i32> {
    change(
        ctx,
        Request {
            to: a.to,
            kind: Kind::Switchover,
            accept_data_loss: false,
            step_timeout: Duration::from_secs(a.step_timeout.max(1)),
        },
    )
    .await
}

#[derive(Serialize)]
struct ChangeDoc {
    report: failover::Report,
    steps: Vec<Note>,
}

async fn change(ctx: &Ctx, req: Request) -> Result<i32> {
    let json = ctx.json();
    let quiet = ctx.global.quiet;
    let mut steps = Vec::new();
    let result = failover::run(ctx, &req, |n| {
        if json {
            if let Ok(line) = serde_json::to_string(n) {
                eprintln!("{line}");
            }
            steps.push(n.clone());
        } else if !quiet {
            println!(
                "{:<13} {} {}",
                n.phase.as_str(),
                if n.ok { "ok  " } else { "FAIL" },
                n.text
            );
        }
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if json {
                print_json(&serde_json::json!({ "steps": steps }))?;
            }
            return Err(e);
        }
    };
    if json {
        print_json(&ChangeDoc { report, steps })?;
        return Ok(OK);
    }
    let r = &report;
    println!(
        "{} {} → {}: epoch {} → {}{}",
        r.kind.as_str(),
        r.from,
        r.to,
        r.epoch_before,
        r.epoch,
        if r.resumed { " (resumed)" } else { "" }
    );
    if let Some(rec) = &r.record {
        let secs = |v: Option<f64>| v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into());
        println!(
            "writes accepted after {}, DNS after {}; RPO {}{}",
            secs(rec.rto_writes_seconds),
            secs(rec.rto_dns_seconds),
            secs(rec.rpo_seconds),
            if rec.rpo_exact || rec.rpo_seconds.is_none() {
                ""
            } else {
                " (upper bound)"
            }
        );
    }
    Ok(OK)
}

pub async fn authority(ctx: &Ctx, a: AuthorityArgs) -> Result<i32> {
    let view = authority::view(ctx, a.records).await?;
    if ctx.json() {
        print_json(&view)?;
        return Ok(OK);
    }
    println!("etcd {} (prefix {})", view.endpoints, view.prefix);
    match &view.authority {
        Some(r) => println!(
            "primary {} at epoch {} (since {}, {} by {})",
            r.primary,
            r.epoch,
            r.changed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.reason,
            r.changed_by
        ),
        None => println!(
            "no authority record yet (the first daemon or failover command creates it from the declared primary)"
        ),
    }
    if view.leases.is_empty() {
        println!("leases: none live");
    }
    for l in &view.leases {
        println!(
            "lease {:<12} {:>4} s left  {}",
            l.region,
            l.ttl_remaining_seconds,
            l.holder
                .as_ref()
                .map(|h| h.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    if let Some(p) = &view.progress {
        println!(
            "{} {} → {}: phase {}{}",
            p.plan.kind.as_str(),
            p.plan.from,
            p.plan.to,
            p.phase.as_str(),
            p.blocked
                .as_ref()
                .map(|b| format!(" — BLOCKED: {b}"))
                .unwrap_or_default()
        );
    }
    if let Some(d) = &view.decision {
        println!(
            "decision {} on {} at epoch {} ({}, {}): {}",
            d.decision,
            d.primary,
            d.epoch,
            d.decided_by,
            d.at.format("%Y-%m-%d %H:%M:%S UTC"),
            d.detail
        );
    }
    for f in &view.failovers {
        println!(
            "epoch {:>3} {:<10} {} → {} {:<11} writes {} DNS {} RPO {}{}",
            f.epoch,
            f.kind.as_str(),
            f.from,
            f.to,
            f.outcome,
            f.rto_writes_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(|| "-".into()),
            f.rto_dns_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(|| "-".into()),
            f.rpo_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(|| "-".into()),
            f.rehearsal
                .as_ref()
                .map(|l| format!(" (rehearsal, {l})"))
                .unwrap_or_default(),
        );
    }
    Ok(OK)
}

#[derive(Args, Debug)]
pub struct RejoinArgs {
    /// The region to make a standby of the authority's primary
    #[arg(value_name = "REGION")]
    pub region: String,
    /// Bound on each waiting step (stop, pg_rewind, start, streaming, replay), in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub step_timeout: u64,
}

#[derive(Args, Debug)]
pub struct RehearseArgs {
    /// The standby region to switch over to and back from (default: the first standby)
    #[arg(long, value_name = "REGION")]
    pub to: Option<String>,
    /// Bound on each waiting step of both switchovers, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub step_timeout: u64,
}

#[derive(Serialize)]
struct RejoinDoc {
    report: rejoin::Report,
    steps: Vec<rejoin::Note>,
}

pub async fn rejoin(ctx: &Ctx, a: RejoinArgs) -> Result<i32> {
    let json = ctx.json();
    let quiet = ctx.global.quiet;
    let mut steps = Vec::new();
    let result = rejoin::run(
        ctx,
        &rejoin::Request {
            region: a.region,
            step_timeout: Duration::from_secs(a.step_timeout.max(1)),
            abandon: None,
            finish_only: false,
        },
        |n| {
            if json {
                if let Ok(line) = serde_json::to_string(n) {
                    eprintln!("{line}");
                }
                steps.push(n.clone());
            } else if !quiet {
                println!(
                    "{:<12} {} {}",
                    n.step,
                    if n.ok { "ok  " } else { "FAIL" },
                    n.text
                );
            }
        },
    )
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if json {
                print_json(&serde_json::json!({ "steps": steps }))?;
            }
            return Err(e);
        }
    };
    // The server steps done but the capacity step failed: the report is
    // printed, and the command exits 1 with what finishes the step.
    let capacity_failed = report.capacity_error();
    if json {
        print_json(&RejoinDoc { report, steps })?;
        return capacity_failed.map_or(Ok(OK), Err);
    }
    let r = &report;
    println!(
        "{} rejoined as a standby of {} (epoch {}) by {}{}",
        r.region,
        r.primary,
        r.epoch,
        match r.method {
            Some(rejoin_method) => format!("{rejoin_method:?}").to_lowercase(),
            None => "nothing (it already streamed)".into(),
        },
        if capacity_failed.is_some() {
            "; but its capacity step FAILED: the Deployments are not back (see the error)"
        } else {
            ""
        }
    );
    capacity_failed.map_or(Ok(OK), Err)
}

#[derive(Serialize)]
struct RehearseDoc {
    report: rehearse::Report,
    steps: Vec<LegNote>,
}

#[derive(Clone, Serialize)]
struct LegNote {
    leg: &'static str,
    #[serde(flatten)]
    note: Note,
}

pub async fn rehearse(ctx: &Ctx, a: RehearseArgs) -> Result<i32> {
    let json = ctx.json();
    let quiet = ctx.global.quiet;
    let mut steps = Vec::new();
    let result = rehearse::run(
        ctx,
        &rehearse::Request {
            to: a.to,
            step_timeout: Duration::from_secs(a.step_timeout.max(1)),
        },
        |leg, n| {
            if json {
                let ln = LegNote {
                    leg,
                    note: n.clone(),
                };
                if let Ok(line) = serde_json::to_string(&ln) {
                    eprintln!("{line}");
                }
                steps.push(ln);
            } else if !quiet {
                println!(
                    "{leg:<5} {:<13} {} {}",
                    n.phase.as_str(),
                    if n.ok { "ok  " } else { "FAIL" },
                    n.text
                );
            }
        },
    )
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if json {
                print_json(&serde_json::json!({ "steps": steps }))?;
            }
            return Err(e);
        }
    };
    if json {
        print_json(&RehearseDoc { report, steps })?;
        return Ok(OK);
    }
    let secs = |v: Option<f64>| v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into());
    for l in &report.legs {
        println!(
            "{:<5} {} → {} epoch {}: writes after {}, DNS after {}; {} rows lost (heartbeat {} seen as {})",
            l.leg,
            l.from,
            l.to,
            l.epoch,
            secs(l.record.as_ref().and_then(|r| r.rto_writes_seconds)),
            secs(l.record.as_ref().and_then(|r| r.rto_dns_seconds)),
            l.rows_lost,
            l.heartbeat_seq,
            l.heartbeat_seen
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(OK)
}
