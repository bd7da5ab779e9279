//! `lifeboat unquiesce`: brings writers back after a restore that could not
//! do it itself (killed, node lost, API unreachable at the end).
//!
//! For each Deployment/StatefulSet in the quiesce settings of the chosen
//! sources (`--source NAME`, else every source that has some), the count
//! recorded in `lifeboat.io/original-replicas` is restored through the scale
//! subresource and the annotation removed. A workload without the annotation
//! is left alone, so running this when nothing is quiesced changes nothing.
//! Quiesce `commands` are not run: Lifeboat keeps no record of whether their
//! `pre` ran, so they are printed for the operator instead.
//!
//! Exit 0 when every workload is back (or was never down), 1 when any failed;
//! each workload gets its own line (or JSON entry) either way.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use lifeboat_kube::quiesce::{Notify, ResumeOutcome, Workload, resume_one};
use serde::Serialize;

use crate::cmd_kube::ClusterArgs;
use crate::config::Quiesce;
use crate::context::Ctx;
use crate::exit::{FAILURE, OK, fail, usage};
use crate::output::print_json;

#[derive(Args, Debug)]
pub struct UnquiesceArgs {
    /// Only this configured source [default: every source whose quiesce
    /// settings list deployments or statefulsets]
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// One line of the result.
#[derive(Serialize)]
struct Entry {
    source: String,
    #[serde(flatten)]
    workload: Workload,
    /// `resumed`, `not_quiesced` or `failed`.
    result: &'static str,
    /// Replica count before (resumed) / now (not quiesced).
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<i32>,
    /// Replica count restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    workloads: Vec<Entry>,
    resumed: usize,
    not_quiesced: usize,
    failed: usize,
}

pub async fn run(ctx: &Ctx, a: UnquiesceArgs) -> Result<i32> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(
            "unquiesce reads the workloads from the configuration file: pass --config FILE \
             (the one the restore used) or set LIFEBOAT_CONFIG",
        )
    })?;
    let chosen: Vec<(&str, &Quiesce)> = match &a.source {
        Some(name) => {
            let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
            let q = src.quiesce.as_ref().filter(|q| !q.workloads().is_empty());
            match q {
                Some(q) => vec![(name.as_str(), q)],
                None if has_post_commands(src.quiesce.as_ref()) => {
                    // Commands only: nothing to scale; the result is what to
                    // run by hand (as docs/postgres.md says), exit 0.
                    return print_commands_only(ctx, name, src.quiesce.as_ref());
                }
                None => {
                    return Err(usage(format!(
                        "source {name} quiesces no Kubernetes workloads (no quiesce.deployments or \
                         quiesce.statefulsets in {}){}",
                        cfg.origin,
                        commands_note(name, src.quiesce.as_ref())
                    )));
                }
            }
        }
        None => cfg
            .sources
            .iter()
            .filter_map(|(n, s)| {
                s.quiesce
                    .as_ref()
                    .filter(|q| !q.workloads().is_empty())
                    .map(|q| (n.as_str(), q))
            })
            .collect(),
    };
    if chosen.is_empty() {
        let with_commands: Vec<&str> = cfg
            .sources
            .iter()
            .filter(|(_, s)| has_post_commands(s.quiesce.as_ref()))
            .map(|(n, _)| n.as_str())
            .collect();
        if let [only] = with_commands.as_slice() {
            let q = cfg.sources[*only].quiesce.as_ref();
            return print_commands_only(ctx, only, q);
        }
        if !with_commands.is_empty() {
            return Err(usage(format!(
                "no source in {} lists quiesce.deployments or quiesce.statefulsets; sources {} \
                 quiesce with commands, which unquiesce does not run: pass --source NAME to see \
                 the post commands to run",
                cfg.origin,
                with_commands.join(", ")
            )));
        }
        return Err(usage(format!(
            "nothing to unquiesce: no source in {} lists quiesce.deployments or quiesce.statefulsets",
            cfg.origin
        )));
    }
    if a.source.is_none() {
        for (n, s) in &cfg.sources {
            let note = commands_note(n, s.quiesce.as_ref());
            if !note.is_empty() && !ctx.global.quiet {
                eprintln!("note{note}");
            }
        }
    }

    let opts = ctx.cluster_options(
        a.cluster.kubeconfig.as_deref(),
        a.cluster.context.as_deref(),
    );
    let client = lifeboat_kube::client::connect(&opts).await?;
    let quiet: Notify = Arc::new(|m: &str| tracing::info!("{m}"));
    let mut entries = Vec::new();
    for (source, q) in chosen {
        let ns = q
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        for (kind, name) in q.workloads() {
            let w = Workload::new(kind, ns.clone(), name);
            let r = resume_one(&client, &w, &quiet).await;
            let (result, from, to, error) = match r {
                Ok(ResumeOutcome::Resumed { from, to }) => ("resumed", Some(from), Some(to), None),
                Ok(ResumeOutcome::NotQuiesced { replicas }) => {
                    ("not_quiesced", Some(replicas), None, None)
                }
                Err(e) => ("failed", None, None, Some(e.to_string())),
            };
            let e = Entry {
                source: source.to_string(),
                workload: w,
                result,
                from,
                to,
                error,
            };
            if !ctx.json() {
                println!("{}", line(&e));
            }
            entries.push(e);
        }
    }
    let count = |r: &str| entries.iter().filter(|e| e.result == r).count();
    let report = Report {
        resumed: count("resumed"),
        not_quiesced: count("not_quiesced"),
        failed: count("failed"),
        workloads: entries,
    };
    if ctx.json() {
        print_json(&report)?;
    } else {
        println!(
            "{} brought back, {} not quiesced, {} failed",
            report.resumed, report.not_quiesced, report.failed
        );
    }
    if report.failed > 0 {
        let names: Vec<String> = report
            .workloads
            .iter()
            .filter(|e| e.result == "failed")
            .map(|e| e.workload.to_string())
            .collect();
        return Err(fail(
            FAILURE,
            format!(
                "{} workload(s) could not be brought back: {}; fix the cause named above and run \
                 `lifeboat unquiesce` again (it only touches workloads that are still marked)",
                report.failed,
                names.join(", ")
            ),
        ));
    }
    Ok(OK)
}

fn line(e: &Entry) -> String {
    let what = match (e.result, e.from, e.to, &e.error) {
        ("resumed", Some(from), Some(to), _) if from == to => {
            format!("already at its recorded {to} replicas; annotation removed")
        }
        ("resumed", Some(from), Some(to), _) => {
            format!("brought back: scaled from {from} to {to} replicas, annotation removed")
        }
        ("not_quiesced", Some(n), _, _) => format!(
            "not quiesced (no {} annotation): left at {n} replicas",
            lifeboat_kube::quiesce::ORIGINAL_REPLICAS
        ),
        (_, _, _, Some(err)) => format!("FAILED: {err}"),
        _ => e.result.to_string(),
    };
    format!("{} (source {}): {what}", e.workload, e.source)
}

fn has_post_commands(q: Option<&Quiesce>) -> bool {
    q.and_then(|q| q.commands.as_ref())
        .is_some_and(|c| !c.post.is_empty())
}

/// The result for a source quiesced by commands only: its `post` commands,
/// which Lifeboat does not run (it keeps no record of whether `pre` ran).
#[derive(Serialize)]
struct CommandsOnly<'a> {
    source: &'a str,
    workloads: [(); 0],
    /// `quiesce.commands.post`, each an argument vector, to run by hand.
    post_commands: Vec<&'a [String]>,
}

fn print_commands_only(ctx: &Ctx, name: &str, q: Option<&Quiesce>) -> Result<i32> {
    let post: Vec<&[String]> = q
        .and_then(|q| q.commands.as_ref())
        .map(|c| c.post.iter().map(|c| c.argv.as_slice()).collect())
        .unwrap_or_default();
    if ctx.json() {
        print_json(&CommandsOnly {
            source: name,
            workloads: [],
            post_commands: post,
        })?;
    } else {
        println!(
            "source {name} is quiesced by commands only, which unquiesce does not run (Lifeboat \
             keeps no record of whether their pre commands ran); if its restore did not finish, \
             bring the writers back yourself with:"
        );
        for c in post {
            println!("  {}", c.join(" "));
        }
    }
    Ok(OK)
}

/// `: source NAME also quiesces with commands …` when it has commands.
fn commands_note(name: &str, q: Option<&Quiesce>) -> String {
    let Some(c) = q.and_then(|q| q.commands.as_ref()) else {
        return String::new();
    };
    if c.post.is_empty() {
        return String::new();
    }
    let cmds: Vec<String> = c.post.iter().map(|c| c.display()).collect();
    format!(
        ": source {name} also quiesces with commands, which unquiesce does not run; if its \
         restore did not finish, run them yourself: {}",
        cmds.join(" && ")
    )
}
