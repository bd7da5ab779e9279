//! `lifeboat drill` (and `lifeboat drills`, the stored history): the flags,
//! and the printing (text, `--json`, `--report FILE.md`) of what the flow in
//! `lifeboat_ops::drill` did.

use std::path::PathBuf;

use clap::Args;
use lifeboat_dr::record::{DrillKind, DrillRecord, Stored};
use lifeboat_dr::status::human;
use lifeboat_ops::drill::{self, Request};
use lifeboat_ops::error::{Context, Error, Kind, OK, Result};
use serde::Serialize;

use crate::cmd_kube::ClusterArgs;
use crate::context::Ctx;

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// A configured source (postgres or kube)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// A database backed up with `backup postgres --db URL` (password from PGPASSWORD or .pgpass)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Restore into this database instead of a throwaway local PostgreSQL
    /// (created when missing, dropped afterwards if the drill created it)
    #[arg(long, value_name = "URL")]
    pub scratch: Option<String>,
    /// The scratch database is a physical copy of the source's server (a
    /// standby promoted for drills, a server rebuilt from a base backup):
    /// same system identifier and database, which a drill otherwise refuses.
    /// Never allows the very same running server
    #[arg(long)]
    pub scratch_is_copy: bool,
    /// Parallel restore jobs [default: the source's restore.jobs, else 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// Drill the physical backups instead: the latest base backup and the
    /// archived WAL after it, recovered to the latest archived point in a
    /// throwaway data directory (docs/physical.md)
    #[arg(long)]
    pub physical: bool,
    /// Also write the report as Markdown to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct DrillsArgs {
    /// Only this source's drills
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

pub async fn run(ctx: &Ctx, a: DrillArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let req = Request {
        source: a.source.clone(),
        db: a.db.clone(),
        scratch: a.scratch.clone(),
        scratch_is_copy: a.scratch_is_copy,
        jobs: a.jobs,
        physical: a.physical,
        trigger: "cli",
        cluster: ctx.cluster_options(
            a.cluster.kubeconfig.as_deref(),
            a.cluster.context.as_deref(),
        ),
    };
    if !ctx.global.quiet && !ctx.json() {
        let what = a.source.as_deref().or(a.db.as_deref()).unwrap_or("?");
        if a.physical {
            eprintln!(
                "drilling the latest base backup of {what} and the WAL archived after it: \
                 recover to the latest archived point in a throwaway data directory, verify, \
                 measure, remove it"
            );
        } else {
            eprintln!(
                "drilling the latest full snapshot of {what} (partial ones, e.g. --table \
                 backups, are never drilled): restore into a scratch target, verify, measure, \
                 clean up"
            );
        }
    }
    let done = drill::run(ctx, &repo, &req).await?;
    if let Some(path) = &a.report {
        std::fs::write(path, markdown(&done))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if ctx.json() {
        print_json(&done)?;
    } else {
        print!("{}", text(&done));
    }
    if done.record.ok {
        return Ok(OK);
    }
    // A person reads the reason once: in the text report, the failed
    // step's line (or its `failure:` line), so the error only says where.
    // With --json the document on stdout is for programs and the error on
    // stderr is the one human-readable account, so it carries the reason.
    let r = &done.record;
    let at = match failed_step(r) {
        Some(step) => format!(" in its {step} step"),
        None => String::new(),
    };
    let reason = if ctx.json() {
        format!(": {}", r.failure.as_deref().unwrap_or("no reason recorded"))
    } else {
        " (the reason is above)".to_string()
    };
    Err(Error::new(
        Kind::VerifyFailed,
        format!("the drill of {}{at} FAILED{reason}", r.source),
    ))
}

pub async fn list(ctx: &Ctx, a: DrillsArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let all = drill::list(&repo, a.source.as_deref()).await?;
    if ctx.json() {
        print_json(&all)?;
        return Ok(OK);
    }
    if all.is_empty() {
        println!("no drills recorded; run `lifeboat drill --source NAME`");
        return Ok(OK);
    }
    use crate::table::{Align::*, Table};
    let mut t = Table::new(&[
        ("id", Left),
        ("started (UTC)", Left),
        ("source", Left),
        ("kind", Left),
        ("snapshot", Left),
        ("result", Left),
        ("RTO", Right),
        ("RPO", Right),
        ("failure", Left),
    ]);
    for d in &all {
        let r = &d.record;
        t.row(vec![
            d.id[..8.min(d.id.len())].to_string(),
            r.started.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.source.clone(),
            r.drill_kind().to_string(),
            r.short_snapshot().to_string(),
            if r.ok { "ok" } else { "FAILED" }.to_string(),
            human(r.rto_seconds),
            human(r.rpo_seconds),
            // One line per drill: a multi-line reason joined.
            r.failure.as_deref().unwrap_or("").replace('\n', " "),
        ]);
    }
    print!("{}", t.render());
    Ok(OK)
}

/// What the RPO of a drill of this kind measures.
fn rpo_meaning(r: &DrillRecord) -> &'static str {
    match r.drill_kind() {
        DrillKind::Logical => "snapshot age at start",
        DrillKind::Physical => "last recovered commit's age at start",
    }
}

fn text(d: &Stored<DrillRecord>) -> String {
    let r = &d.record;
    let (what, drilled) = match r.drill_kind() {
        DrillKind::Logical => ("drill", format!("latest full {} snapshot", r.kind)),
        DrillKind::Physical => (
            "physical drill",
            "latest base backup and the archived WAL, from base backup".to_string(),
        ),
    };
    let mut s = format!(
        "{what} {} of {} ({drilled} {}, taken {}): {}\n",
        &d.id[..8.min(d.id.len())],
        r.source,
        r.short_snapshot(),
        r.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
        if r.ok { "PASSED" } else { "FAILED" }
    );
    s += &format!("  target: {}\n", r.target);
    for st in &r.steps {
        s += &format!(
            "  {:<4} {:<13} {:>8}  {}\n",
            if st.ok { "ok" } else { "FAIL" },
            st.name,
            format!("{:.1}s", st.seconds),
            // A multi-line detail (pg_restore's message) stays under its step.
            st.detail
                .trim_end()
                .replace('\n', "\n                               ")
        );
    }
    for diff in &r.differences {
        s += &format!(
            "  differs: {}: expected {}, got {}\n",
            diff.fact, diff.expected, diff.actual
        );
    }
    s += &format!(
        "  RTO (start to verified): {}   RPO ({}): {}\n",
        human(r.rto_seconds),
        rpo_meaning(r),
        human(r.rpo_seconds)
    );
    // The failure is usually a failed step's detail, already printed above.
    if let Some(f) = &r.failure
        && !r.steps.iter().any(|st| !st.ok && st.detail == *f)
    {
        s += &format!("  failure: {f}\n");
    }
    s += "  recorded in the repository (`lifeboat drills`)\n";
    s
}

/// Hands the result to `--json` output (`crate::output::print_json`), as
/// this module's error type.
fn print_json<T: Serialize>(v: &T) -> Result<()> {
    crate::output::print_json(v).map_err(|e| Error::failure(format!("{e:#}")))
}

/// The name of the step whose failure failed the drill.
fn failed_step(r: &DrillRecord) -> Option<&str> {
    r.steps.iter().find(|st| !st.ok).map(|st| st.name.as_str())
}

/// The report as Markdown, for tickets and audit trails.
pub fn markdown(d: &Stored<DrillRecord>) -> String {
    let r = &d.record;
    let mut s = format!(
        "# {} drill of `{}`: {}\n\n",
        match r.drill_kind() {
            DrillKind::Logical => "Restore",
            DrillKind::Physical => "Physical restore",
        },
        r.source,
        if r.ok { "passed" } else { "FAILED" }
    );
    s += "| | |\n|---|---|\n";
    let rpo_label = format!("RPO ({})", rpo_meaning(r));
    for (k, v) in [
        ("Drill", d.id.clone()),
        ("Snapshot", format!("`{}` ({})", r.snapshot, r.kind)),
        (
            "Snapshot taken",
            r.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ),
        (
            "Started",
            r.started.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ),
        ("Target", r.target.clone()),
        ("RTO (start to verified)", human(r.rto_seconds)),
        (rpo_label.as_str(), human(r.rpo_seconds)),
        ("Trigger", r.trigger.clone()),
        ("Host", r.hostname.clone()),
        ("Program", r.program.clone()),
    ] {
        s += &format!("| {k} | {} |\n", v.replace('|', "\\|"));
    }
    if let Some(f) = &r.failure {
        s += &format!("\n**Failure:** {}\n", f.replace('\n', " "));
    }
    s += "\n## Steps\n\n| step | result | seconds | detail |\n|---|---|---:|---|\n";
    for st in &r.steps {
        s += &format!(
            "| {} | {} | {:.1} | {} |\n",
            st.name,
            if st.ok { "ok" } else { "FAILED" },
            st.seconds,
            st.detail.replace('|', "\\|")
        );
    }
    if !r.differences.is_empty() {
        s += "\n## Differences\n\n| fact | expected | actual |\n|---|---|---|\n";
        for diff in &r.differences {
            s += &format!("| {} | {} | {} |\n", diff.fact, diff.expected, diff.actual);
        }
    }
    s
}
