//! `lifeboat status` and `lifeboat readiness`: the evidence in the
//! repository judged against the configuration (docs/drills.md).

use chrono::{DateTime, Utc};
use clap::Args;
use lifeboat_dr::readiness::State;
use lifeboat_dr::status::{Verdict, describe_target, human};

use crate::context::Ctx;
use crate::output::print_json;
use lifeboat_ops::assess::{self, Assessment};
use lifeboat_ops::error::{AT_RISK, FAILURE, OK, Result, fail, usage};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Judge as if it were TIME (RFC 3339, e.g. 2026-12-01T00:00:00Z): "what
    /// will the status be if nothing runs until then"
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

fn now(a: &StatusArgs) -> Result<DateTime<Utc>> {
    match &a.as_of {
        None => Ok(Utc::now()),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                usage(format!(
                    "--as-of {s:?}: {e}; give an RFC 3339 time like 2026-12-01T00:00:00Z"
                ))
            }),
    }
}

/// The evidence judged at `--as-of` (or now) against the configuration.
async fn assess_at(ctx: &Ctx, a: &StatusArgs, what: &str) -> Result<(DateTime<Utc>, Assessment)> {
    let at = now(a)?;
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(format!(
            "`lifeboat {what}` judges the configured sources and objectives: pass --config FILE \
             or set LIFEBOAT_CONFIG"
        ))
    })?;
    let repo = ctx.open().await?;
    Ok((at, assess::gather(cfg, &repo, at).await?))
}

/// Exit 0 when ok, 1 when a source is failing, 10 when at risk.
pub async fn status(ctx: &Ctx, a: StatusArgs) -> Result<i32> {
    let (at, found) = assess_at(ctx, &a, "status").await?;
    let st = &found.status;
    if ctx.json() {
        print_json(st)?;
    } else {
        use crate::table::{Align::*, Table};
        let mut t = Table::new(&[
            ("source", Left),
            ("verdict", Left),
            ("last backup (UTC)", Left),
            ("RPO now", Right),
            ("RPO objective", Right),
            ("last drill", Left),
            ("RTO", Right),
            ("RTO objective", Right),
        ]);
        for s in &st.sources {
            let drill = match &s.last_drill {
                Some(d) => format!(
                    "{} {}",
                    d.started.format("%Y-%m-%d %H:%M"),
                    if d.ok { "ok" } else { "FAILED" }
                ),
                None => "never".into(),
            };
            t.row(vec![
                s.source.clone(),
                s.verdict.as_str().to_string(),
                s.last_backup
                    .as_ref()
                    .map(|b| b.time.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "never".into()),
                s.rpo_exposure_seconds.map(human).unwrap_or("-".into()),
                describe_target(&s.objectives.rpo),
                drill,
                s.last_drill
                    .as_ref()
                    .map(|d| human(d.rto_seconds))
                    .unwrap_or("-".into()),
                describe_target(&s.objectives.rto),
            ]);
            if let Some(line) = physical_line(s) {
                t.note(format!("    {line}"));
            }
            for r in &s.reasons {
                t.note(format!("    - {r}"));
            }
        }
        print!("{}", t.render());
        print_objectives(st);
        if let Some(r) = &st.regions {
            print_regions(r);
        }
        if let Some(w) = &st.wal {
            println!("\n{}", wal_line(w));
        }
        println!(
            "\noverall: {} ({}) as of {}",
            st.verdict.as_str().to_uppercase(),
            st.reason,
            at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    match st.verdict {
        Verdict::Ok => Ok(OK),
        Verdict::AtRisk => Err(fail(AT_RISK, format!("at risk: {}", st.reason))),
        Verdict::Failing => Err(fail(FAILURE, format!("failing: {}", st.reason))),
    }
}

/// A source's physical base backups in one line, when it has some or
/// `physical.schedule`: the newest (UTC), its age, how many, the schedule.
fn physical_line(s: &lifeboat_dr::status::SourceStatus) -> Option<String> {
    let schedule = s
        .physical_schedule
        .as_ref()
        .map(|c| format!(", schedule {c}"))
        .unwrap_or_default();
    match &s.last_physical_backup {
        Some(b) => Some(format!(
            "physical: last base backup {} ({} ago, {}), {} base backup(s){schedule}",
            b.time.format("%Y-%m-%d %H:%M:%S"),
            human(b.age_seconds),
            &b.snapshot[..b.snapshot.len().min(8)],
            s.physical_snapshots
        )),
        None if s.physical_schedule.is_some() => {
            Some(format!("physical: no base backup yet{schedule}"))
        }
        None => None,
    }
}

/// The WAL archive in one line: newest segment, its age, gaps.
fn wal_line(w: &lifeboat_dr::wal::WalOverview) -> String {
    let newest = match (&w.newest_segment, w.newest_age_seconds) {
        (Some(s), Some(age)) => format!(
            "newest {s}{} stored {} ago",
            if w.newest_partial { " (partial)" } else { "" },
            human(age)
        ),
        _ => "no segment".into(),
    };
    let problems = w.gaps.len() + w.missing_history.len();
    let gaps = if problems == 0 {
        "no gaps".to_string()
    } else {
        let mut all: Vec<String> = w.gaps.clone();
        all.extend(
            w.missing_history
                .iter()
                .map(|t| format!("timeline {t}: no history file")),
        );
        format!("GAPS: {}", all.join("; "))
    };
    format!("WAL archive: {} objects, {newest}, {gaps}", w.objects)
}

/// The objectives table: each scenario met, missed, not measured (and so
/// at risk), or attested as covered elsewhere, by whom and when.
fn print_objectives(st: &lifeboat_dr::status::Status) {
    if st.objectives.is_empty() {
        println!("\nno objectives are configured (objectives: scenario, rto, rpo)");
        return;
    }
    println!(
        "\n{:<24} {:<8} {:>10} {:>12} {:<20} state",
        "objective", "priority", "RTO", "RPO", "covered by"
    );
    for o in &st.objectives {
        let state = match (o.met, &o.objective.covered_elsewhere, &o.risk) {
            (Some(true), _, _) => "met".to_string(),
            (_, Some(c), None) => format!("covered elsewhere: {}", c.describe()),
            (_, _, Some(r)) => format!("AT RISK: {r}"),
            (_, _, None) => o.note.clone().unwrap_or_else(|| "not measured".into()),
        };
        // A note beside a verdict (the region-failure objective's last
        // failover or rehearsal) is shown too.
        let state = match (&o.note, o.met == Some(true) || o.risk.is_some()) {
            (Some(n), true) => format!("{state} — {n}"),
            _ => state,
        };
        let rpo = o.objective.rpo.num_seconds();
        println!(
            "{:<24} {:<8} {:>10} {:>12} {:<20} {state}",
            o.objective.scenario,
            o.objective.priority.as_deref().unwrap_or("-"),
            human(o.objective.rto.num_seconds() as f64),
            if rpo <= 0 {
                "0".to_string()
            } else {
                human(rpo as f64)
            },
            if o.sources.is_empty() {
                "-".to_string()
            } else {
                o.sources.join(", ")
            },
        );
    }
}

/// The regions: each server's role and lag, the authority and the last
/// change of primary against its objective, and the warnings.
fn print_regions(o: &lifeboat_dr::regions::RegionsOverview) {
    use crate::table::{Align::*, Table};
    let secs = |v: Option<f64>| v.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
    let primary = o.authority.as_ref().and_then(|a| a.primary.as_deref());
    println!();
    let mut t = Table::new(&[
        ("region", Left),
        ("authority", Left),
        ("server", Left),
        ("streaming", Left),
        ("lag", Right),
        ("heartbeat age", Right),
    ]);
    for r in &o.regions {
        let authority = match primary {
            Some(p) if p == r.name => "primary".to_string(),
            Some(_) => "standby".to_string(),
            None => format!("{} (declared)", r.declared_role),
        };
        t.row(vec![
            r.name.clone(),
            authority,
            r.observed_role.clone(),
            if r.observed_role == "standby" {
                if r.streaming { "yes" } else { "NO" }.to_string()
            } else {
                "-".to_string()
            },
            secs(r.lag_seconds),
            secs(r.heartbeat_age_seconds),
        ]);
        if let Some(why) = &r.reason {
            t.note(format!("    - {}: {why}", r.name));
        }
    }
    print!("{}", t.render());
    if let Some(a) = &o.authority {
        match (&a.error, &a.primary, a.epoch) {
            (Some(e), _, _) => println!("authority: etcd cannot be read: {e}"),
            (None, Some(p), Some(epoch)) => {
                let leases: Vec<String> = a
                    .leases
                    .iter()
                    .map(|l| format!("{} ({}s left)", l.region, l.ttl_remaining_seconds))
                    .collect();
                println!(
                    "authority: primary {p}, epoch {epoch}; leases: {}",
                    if leases.is_empty() {
                        "none".to_string()
                    } else {
                        leases.join(", ")
                    }
                );
            }
            _ => println!(
                "authority: not initialized in etcd yet (the first daemon or command writes it)"
            ),
        }
        if let Some(l) = &a.last_change {
            let against = |v: Option<f64>, o: Option<f64>| match (v, o) {
                (Some(v), Some(o)) => format!("{v:.1}s of {}", human(o)),
                (Some(v), None) => format!("{v:.1}s"),
                _ => "unknown".into(),
            };
            println!(
                "last change: {} {} -> {} (epoch {}) {} at {}: RTO {}, RPO {}{}{}",
                l.kind,
                l.from,
                l.to,
                l.epoch,
                l.outcome,
                l.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                against(l.rto_seconds, l.rto_objective_seconds),
                against(l.rpo_seconds, l.rpo_objective_seconds),
                if l.rpo_exact { "" } else { " (upper bound)" },
                match l.met {
                    Some(true) => ", objective met",
                    Some(false) => ", objective MISSED",
                    None => "",
                }
            );
        }
    }
    for w in &o.warnings {
        println!("WARNING: {w}");
    }
}

pub async fn readiness(ctx: &Ctx, a: StatusArgs) -> Result<i32> {
    let (at, found) = assess_at(ctx, &a, "readiness").await?;
    let r = &found.readiness;
    if ctx.json() {
        print_json(r)?;
    } else {
        let id_width = r
            .items
            .iter()
            .map(|i| i.id.chars().count())
            .max()
            .unwrap_or(0);
        for it in &r.items {
            println!(
                "[{:<14}] {:<id_width$} {}",
                it.state.as_str(),
                it.id,
                it.title
            );
            if !it.detail.is_empty() {
                println!("{:>18} {}", "", it.detail);
            }
        }
        let failed = r.items.iter().filter(|i| i.state == State::Fail).count();
        let manual = r
            .items
            .iter()
            .filter(|i| i.state == State::Unattested)
            .count();
        println!(
            "\n{} as of {}: {failed} automated item(s) failing, {manual} manual item(s) not attested",
            if r.ready { "READY" } else { "NOT READY" },
            at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    if r.ready {
        Ok(OK)
    } else {
        let ids: Vec<&str> = r
            .items
            .iter()
            .filter(|i| i.state == State::Fail)
            .map(|i| i.id)
            .collect();
        Err(fail(
            FAILURE,
            format!("not ready: failing item(s) {}", ids.join(", ")),
        ))
    }
}
