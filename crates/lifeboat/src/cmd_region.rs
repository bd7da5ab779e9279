//! `lifeboat region status | replicate | traffic apply | traffic status`
//! (`failover`, `switchover`, `authority`, `rejoin` and `rehearse` are
//! `cmd_failover`'s):
//! flags, the call into `lifeboat_ops::region`, the printed tables and
//! `--json` documents (docs/regions.md).

use clap::{Args, Subcommand};
use lifeboat_dr::status::human;
use lifeboat_ops::error::{AT_RISK, FAILURE, OK, Result, fail};
use lifeboat_ops::region::replicate::{Event, ManagerEvent};
use lifeboat_ops::region::status::{
    ManagerView, Overall, RegionStatus, RepositoryCopy, StatusReport,
};
use lifeboat_ops::region::{replicate, route53, status, traffic};
use lifeboat_region::replication::{Progress, Role};
use serde::Serialize;

use crate::context::Ctx;
use crate::output::print_json;

#[derive(Subcommand, Debug)]
pub enum RegionCommand {
    /// Every region as its servers say: role, lag, heartbeat, health, repository copy, Redis
    /// (exit 0 healthy, 10 degraded, 1 broken)
    Status,
    /// Make a region's PostgreSQL a streaming standby of another's: seed it (`manager: postgres`),
    /// or print and apply Patroni's `standby_cluster` / CloudNativePG's `replica` and
    /// `externalClusters`
    Replicate(ReplicateArgs),
    /// DNS steering between the regions
    #[command(subcommand)]
    Traffic(TrafficCommand),
    /// Promote a standby region after its primary region failed: waits until the old primary's
    /// etcd lease is gone (it is fenced), bumps the epoch, promotes, switches DNS, verifies,
    /// records RTO and RPO. Running it again resumes an unfinished one (docs/failover.md)
    Failover(crate::cmd_failover::FailoverArgs),
    /// Planned change of primary with no data loss: the old primary stops cleanly, the standby
    /// replays all of it and is promoted, the old primary follows it (docs/failover.md)
    Switchover(crate::cmd_failover::SwitchoverArgs),
    /// The failover authority in etcd: primary, epoch, live leases, a change under way, the
    /// last failover records
    Authority(crate::cmd_failover::AuthorityArgs),
    /// Make a region that is not the authority's primary (an old primary back after a failover)
    /// a streaming standby of the primary again: fenced first if it takes writes, pg_rewind or a
    /// fresh clone, verified, DNS answers restored (docs/failover.md)
    Rejoin(crate::cmd_failover::RejoinArgs),
    /// Rehearse a region failover: a switchover to a standby and back, each measured and
    /// recorded; readiness's failover-tests reads it (docs/failover.md)
    Rehearse(crate::cmd_failover::RehearseArgs),
}

#[derive(Args, Debug)]
pub struct ReplicateArgs {
    /// The primary's region
    #[arg(long, value_name = "REGION")]
    pub from: String,
    /// The region that becomes the standby (its data directory, Patroni cluster or `Cluster`)
    #[arg(long, value_name = "REGION")]
    pub to: String,
    /// Replace a target that holds another cluster (never the primary's): its data directory;
    /// for Patroni and CloudNativePG, write the settings anyway (they cannot re-clone it)
    #[arg(long)]
    pub replace: bool,
}

#[derive(Subcommand, Debug)]
pub enum TrafficCommand {
    /// Make DNS steer as configured (idempotent): rfc2136 answers with the healthy regions;
    /// route53 gets every region's weighted record and health check
    Apply(ApplyArgs),
    /// What DNS answers now, next to what health says it should (route53: every record and check)
    Status,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Show the changes without writing them
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(ctx: &Ctx, c: RegionCommand) -> Result<i32> {
    match c {
        RegionCommand::Status => region_status(ctx).await,
        RegionCommand::Replicate(a) => region_replicate(ctx, a).await,
        RegionCommand::Traffic(TrafficCommand::Apply(a)) => traffic_apply(ctx, a).await,
        RegionCommand::Traffic(TrafficCommand::Status) => traffic_status(ctx).await,
        RegionCommand::Failover(a) => crate::cmd_failover::failover(ctx, a).await,
        RegionCommand::Switchover(a) => crate::cmd_failover::switchover(ctx, a).await,
        RegionCommand::Authority(a) => crate::cmd_failover::authority(ctx, a).await,
        RegionCommand::Rejoin(a) => crate::cmd_failover::rejoin(ctx, a).await,
        RegionCommand::Rehearse(a) => crate::cmd_failover::rehearse(ctx, a).await,
    }
}

async fn region_status(ctx: &Ctx) -> Result<i32> {
    let report = status::status(ctx).await?;
    if ctx.json() {
        print_json(&report)?;
    } else {
        print_status(&report);
    }
    let reasons = report.reasons.join("; ");
    match report.verdict {
        Overall::Healthy => Ok(OK),
        Overall::Degraded => Err(fail(AT_RISK, format!("degraded: {reasons}"))),
        Overall::Broken => Err(fail(FAILURE, format!("broken: {reasons}"))),
    }
}

fn role_text(r: &RegionStatus) -> String {
    match r.role() {
        Role::Primary => "primary".into(),
        Role::Standby => "standby".into(),
        Role::Unreachable { .. } => "unreachable".into(),
    }
}

fn opt_secs(s: Option<f64>) -> String {
    s.map(human).unwrap_or_else(|| "-".into())
}

fn print_status(report: &StatusReport) {
    use crate::table::{Align::*, Table};
    let mut t = Table::new(&[
        ("region", Left),
        ("declared", Left),
        ("observed", Left),
        ("streaming", Left),
        ("lag bytes", Right),
        ("lag", Right),
        ("heartbeat age", Right),
        ("manager", Left),
        ("health", Left),
        ("repository copy", Left),
        ("redis", Left),
    ]);
    for r in &report.regions {
        let lag = r.lag.as_ref();
        let health = match r.consensus.healthy {
            Some(true) => "healthy".to_string(),
            Some(false) => format!("UNHEALTHY ({})", r.consensus.unhealthy_observers.join(", ")),
            None => "no fresh verdict".to_string(),
        };
        let copy = match &r.repository {
            RepositoryCopy::NotConfigured => "not configured".to_string(),
            RepositoryCopy::Opened {
                age_seconds: Some(a),
                ..
            } => format!("newest {} old", human(*a as f64)),
            RepositoryCopy::Opened { .. } => "no snapshot yet".to_string(),
            RepositoryCopy::Unreadable { .. } => "unreadable".to_string(),
        };
        let redis = match &r.redis {
            None => "-".to_string(),
            Some(s) => s.summary.clone().unwrap_or_else(|| "unreadable".into()),
        };
        t.row(vec![
            r.name.clone(),
            r.declared_role.clone(),
            role_text(r),
            lag.map(|l| if l.streaming { "yes" } else { "NO" })
                .unwrap_or("-")
                .to_string(),
            lag.and_then(|l| l.bytes())
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into()),
            opt_secs(lag.and_then(|l| l.seconds())),
            opt_secs(r.heartbeat.as_ref().map(|h| h.age_seconds)),
            r.manager_view
                .as_ref()
                .map(|m| m.summary())
                .unwrap_or_else(|| "-".into()),
            health,
            copy,
            redis,
        ]);
        if let Role::Unreachable { reason, .. } = r.role() {
            t.note(format!("    - {}: {reason}", r.name));
        }
        if let RepositoryCopy::Unreadable { url, error } = &r.repository {
            t.note(format!("    - repository copy {url}: {error}"));
        }
        if let Some(e) = r.manager_view.as_ref().and_then(|m| m.error()) {
            t.note(format!("    - {}: {e}", r.manager));
        }
        if let Some(ManagerView::Patroni(p)) = &r.manager_view
            && let Some(c) = &p.cluster
        {
            for m in &c.members {
                t.note(format!(
                    "    - patroni member {}: {:?} {}{}",
                    m.name,
                    m.role,
                    m.state,
                    m.lag_bytes
                        .map(|b| format!(", {b} bytes behind"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(e) = r.redis.as_ref().and_then(|s| s.error.as_ref()) {
            t.note(format!("    - redis: {e}"));
        }
        for v in &r.health {
            t.note(format!(
                "    - seen by {}: {}{}",
                v.observer,
                if v.healthy { "healthy" } else { "unhealthy" },
                if v.unhealthy_checks.is_empty() {
                    String::new()
                } else {
                    format!(" (failing: {})", v.unhealthy_checks.join(", "))
                }
            ));
        }
    }
    print!("{}", t.render());
    if report.observers.is_empty() {
        println!("\nno vantage point has published health verdicts (no daemon runs health checks)");
    }
    if let Some(o) = report.lag_objective_seconds {
        println!("lag objective (region-failure RPO): {}", human(o as f64));
    }
    println!(
        "\noverall: {} as of {}",
        report.verdict.as_str().to_uppercase(),
        report.at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for r in &report.reasons {
        println!("  - {r}");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
}

#[derive(Serialize)]
struct ReplicateDoc {
    #[serde(flatten)]
    report: replicate::Report,
    events: Vec<Event>,
}

async fn region_replicate(ctx: &Ctx, a: ReplicateArgs) -> Result<i32> {
    let req = replicate::Request {
        from: a.from,
        to: a.to,
        replace: a.replace,
    };
    let json = ctx.json();
    let quiet = ctx.global.quiet;
    let mut events = Vec::new();
    let result = replicate::replicate(ctx, &req, |p| {
        if json {
            // Machine-readable progress on stderr, one event a line; the
            // document on stdout carries them all at the end.
            if let Ok(line) = serde_json::to_string(p) {
                eprintln!("{line}");
            }
            events.push(p.clone());
        } else if !quiet {
            println!("{}", describe_event(p));
        }
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if json {
                // The events (the settings printed) with the error.
                print_json(&serde_json::json!({ "events": events }))?;
            }
            return Err(e);
        }
    };
    let not_yet = report
        .cnpg
        .as_ref()
        .filter(|c| !c.running)
        .map(|c| c.detail.clone());
    if json {
        print_json(&ReplicateDoc { report, events })?;
    } else {
        println!("{}", summary(&report));
    }
    match not_yet {
        // CloudNativePG clones and starts on its own time: the settings are
        // in place, replication is not seen yet (docs/exit-codes.md).
        Some(detail) => Err(fail(
            AT_RISK,
            format!(
                "the settings are applied, but replication does not run yet: {detail}; follow \
                 it with `lifeboat region status`"
            ),
        )),
        None => Ok(OK),
    }
}

fn summary(report: &replicate::Report) -> String {
    if let Some(o) = &report.outcome {
        return format!(
            "{} streams from {} through slot {} (heartbeat replayed, {:.3} s old){}",
            report.to,
            report.from,
            o.slot,
            o.heartbeat.age_seconds,
            report
                .synchronous_standby_names
                .as_ref()
                .map(|n| format!("; {}'s synchronous_standby_names = {n}", report.from))
                .unwrap_or_default()
        );
    }
    if let Some(p) = &report.patroni {
        return format!(
            "{} (Patroni, standby leader {}) streams from {} through slot {} (heartbeat replayed, \
             {:.3} s old); standby_cluster {}",
            report.to,
            p.streaming.standby_leader,
            report.from,
            p.slot,
            p.heartbeat.age_seconds,
            if p.changed { "written" } else { "unchanged" }
        );
    }
    if let Some(c) = &report.cnpg {
        return format!(
            "{} (CloudNativePG Cluster {}/{}): settings {}; {}",
            report.to,
            c.namespace,
            c.cluster,
            if c.changed { "written" } else { "unchanged" },
            c.detail
        );
    }
    format!("{} replicates from {}", report.to, report.from)
}

fn describe_event(e: &Event) -> String {
    match e {
        Event::Postgres(p) => describe(p),
        Event::Manager(m) => match m {
            ManagerEvent::Settings {
                manager,
                target,
                text,
                ..
            } => format!("{manager} settings for {target}:\n{text}"),
            ManagerEvent::PrimaryPrepared { detail } => format!("  {detail}"),
            ManagerEvent::Applied { detail, .. } => format!("  {detail}"),
            ManagerEvent::Waiting { detail } => format!("  {detail} ..."),
            ManagerEvent::Streaming { detail } => format!("  {detail}"),
        },
    }
}

fn describe(p: &Progress) -> String {
    match p {
        Progress::Inspected {
            target_dir,
            target_server,
            ..
        } => format!(
            "inspected: target directory {}, target server {}",
            serde_json::to_value(target_dir)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from))
                .unwrap_or_else(|| "?".into()),
            match target_server {
                Role::Primary => "a primary".to_string(),
                Role::Standby => "a standby".to_string(),
                Role::Unreachable { .. } => "not running".to_string(),
            }
        ),
        Progress::Planned { plan } => format!(
            "plan: {}",
            plan.steps
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Progress::StepStarted { description, .. } => format!("  {description} ..."),
        Progress::StepFinished { step, detail } => format!("  {step:?}: {detail}"),
        Progress::Waiting { step, detail } => format!("  {step:?}: {detail}"),
    }
}

async fn traffic_apply(ctx: &Ctx, a: ApplyArgs) -> Result<i32> {
    let r = traffic::apply(ctx, a.dry_run).await?;
    if ctx.json() {
        print_json(&r)?;
        return Ok(OK);
    }
    match &r {
        traffic::ApplyReport::Rfc2136(r) => print_rfc2136_apply(r),
        traffic::ApplyReport::Route53(r) => print_route53_apply(r),
    }
    Ok(OK)
}

fn print_rfc2136_apply(r: &traffic::Rfc2136Apply) {
    let ap = &r.applied;
    println!(
        "{} {}: answers now {}",
        ap.provider,
        r.name,
        answers(&ap.before)
    );
    println!(
        "health says: {} (regions {})",
        answers(&ap.desired.answers),
        ap.desired.regions.join(", ")
    );
    if ap.changes.is_empty() {
        println!("nothing to change");
    } else {
        for c in &ap.changes {
            println!("  {}{c}", if ap.written { "" } else { "would " });
        }
        println!(
            "{}",
            if ap.written {
                "written"
            } else {
                "not written (--dry-run)"
            }
        );
    }
}

fn print_route53_apply(r: &route53::ApplyReport) {
    println!(
        "route53 {} in hosted zone {} ({}):",
        r.name, r.zone.id, r.zone.name
    );
    for rec in &r.records {
        println!("  {rec}");
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    if r.changes.is_empty() {
        println!("nothing to change: Route 53 holds these records and health checks");
    } else if r.dry_run {
        for c in &r.changes {
            println!("  would {c}");
        }
        println!("not written (--dry-run)");
    } else {
        for d in &r.done {
            println!("  {d}");
        }
        println!("written; Route 53 reports the change INSYNC");
    }
}

fn answers(set: &lifeboat_region::traffic::AnswerSet) -> String {
    if set.is_empty() {
        return "nothing".into();
    }
    set.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn traffic_status(ctx: &Ctx) -> Result<i32> {
    let r = traffic::status(ctx).await?;
    if ctx.json() {
        print_json(&r)?;
        return Ok(OK);
    }
    match &r {
        traffic::StatusReport::Rfc2136(r) => print_rfc2136_status(r),
        traffic::StatusReport::Route53(r) => print_route53_status(r),
    }
    Ok(OK)
}

fn print_rfc2136_status(r: &traffic::Rfc2136Status) {
    println!("{} {}", r.provider, r.name);
    println!("  DNS answers now:    {}", answers(&r.current));
    println!(
        "  health says:        {} (regions {}{})",
        answers(&r.desired.answers),
        r.desired.regions.join(", "),
        if r.desired.all_unhealthy {
            "; every region unhealthy: all answer"
        } else {
            ""
        }
    );
    if r.health.none_published {
        println!(
            "  no vantage point has published health verdicts: every region counts as healthy"
        );
    }
    println!("  in sync: {}", if r.in_sync { "yes" } else { "NO" });
}

fn print_route53_status(r: &route53::StatusReport) {
    println!(
        "route53 {} in hosted zone {} ({})",
        r.name, r.zone.id, r.zone.name
    );
    for rec in &r.records {
        let k = &rec.key;
        match &rec.present {
            None => println!(
                "  [{}] {} {}: MISSING",
                k.set_identifier, k.name, k.record_type
            ),
            Some(p) => {
                println!("  [{}] {p}", k.set_identifier);
                match &rec.health_check {
                    None => println!("      no health check"),
                    Some(c) => println!(
                        "      health check {}: {} ({} checker reports{})",
                        c.id,
                        c.settings
                            .as_ref()
                            .map_or_else(|| "MISSING".to_string(), ToString::to_string),
                        c.observations.len(),
                        match c.healthy {
                            Some(true) => ", healthy",
                            Some(false) => ", UNHEALTHY",
                            None => "",
                        }
                    ),
                }
            }
        }
    }
    println!("  Route 53 answers:   {}", answers(&r.current));
    println!(
        "  health says:        {} (regions {}{})",
        answers(&r.desired.answers),
        r.desired.regions.join(", "),
        if r.desired.all_unhealthy {
            "; every region unhealthy: all answer"
        } else {
            ""
        }
    );
    if r.health.none_published {
        println!(
            "  no vantage point has published health verdicts: every region counts as healthy"
        );
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    if r.in_sync {
        println!("  in sync: yes (every record and health check as configured)");
    } else {
        println!("  in sync: NO; `lifeboat region traffic apply` would:");
        for p in &r.pending {
            println!("    {p}");
        }
    }
}
