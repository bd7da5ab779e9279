//! `lifeboat unquiesce`: the flags, and the printing of what
//! `lifeboat_ops::kube::unquiesce` did: one line (or JSON entry) per
//! workload as it is brought back, then the counts; for a source quiesced
//! by commands only, the post commands to run by hand.
//!
//! Exit 0 when every workload is back (or was never down), 1 when any failed.

use clap::Args;
use lifeboat_ops::kube::unquiesce::{
    CommandsOnly, Entry, Resume, UnquiesceRequest, Unquiesced, unquiesce,
};

use crate::cmd_kube::ClusterArgs;
use crate::context::Ctx;
use crate::output::print_json;
use lifeboat_ops::error::{OK, Result};

#[derive(Args, Debug)]
pub struct UnquiesceArgs {
    /// Only this configured source [default: every source whose quiesce
    /// settings list deployments or statefulsets]
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(ctx: &Ctx, a: UnquiesceArgs) -> Result<i32> {
    let req = UnquiesceRequest {
        cluster: a.cluster.options(ctx),
        source: a.source,
    };
    let json = ctx.json();
    let done = unquiesce(ctx, req, |e| {
        if !json {
            println!("{}", line(e));
        }
    })
    .await?;
    let report = match done {
        Unquiesced::CommandsOnly(c) => return print_commands_only(ctx, &c),
        Unquiesced::Workloads(report) => report,
    };
    if json {
        print_json(&report)?;
    } else {
        println!(
            "{} brought back, {} not quiesced, {} failed",
            report.resumed, report.not_quiesced, report.failed
        );
    }
    if let Some(e) = report.failure() {
        return Err(e);
    }
    Ok(OK)
}

fn line(e: &Entry) -> String {
    let what = match (e.result, e.from, e.to, &e.error) {
        (Resume::Resumed, Some(from), Some(to), _) if from == to => {
            format!("already at its recorded {to} replicas; annotation removed")
        }
        (Resume::Resumed, Some(from), Some(to), _) => {
            format!("brought back: scaled from {from} to {to} replicas, annotation removed")
        }
        (Resume::NotQuiesced, Some(n), _, _) => format!(
            "not quiesced (no {} annotation): left at {n} replicas",
            lifeboat_kube::quiesce::ORIGINAL_REPLICAS
        ),
        (_, _, _, Some(err)) => format!("FAILED: {err}"),
        (r, ..) => match r {
            Resume::Resumed => "resumed",
            Resume::NotQuiesced => "not_quiesced",
            Resume::Failed => "failed",
        }
        .to_string(),
    };
    format!("{} (source {}): {what}", e.workload, e.source)
}

fn print_commands_only(ctx: &Ctx, c: &CommandsOnly) -> Result<i32> {
    if ctx.json() {
        print_json(c)?;
    } else {
        println!(
            "source {} is quiesced by commands only, which unquiesce does not run (Lifeboat \
             keeps no record of whether their pre commands ran); if its restore did not finish, \
             bring the writers back yourself with:",
            c.source
        );
        for cmd in &c.post_commands {
            println!("  {}", cmd.join(" "));
        }
    }
    Ok(OK)
}
