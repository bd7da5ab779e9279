//! `lifeboat unquiesce`: brings writers back after a restore that could not
//! do it itself (killed, node lost, API unreachable at the end).
//!
//! For each Deployment/StatefulSet in the quiesce settings of the chosen
//! sources (one named source, else every source that has some), the count
//! recorded in `lifeboat.io/original-replicas` is restored through the scale
//! subresource and the annotation removed. A workload without the annotation
//! is left alone, so running this when nothing is quiesced changes nothing.
//! Quiesce `commands` are not run: Lifeboat keeps no record of whether their
//! `pre` ran, so they are returned (or noted) for the operator instead.
//!
//! Steps: [`choose`] the sources (pure, from the configuration), note the
//! commands of the others, connect, [`resume`] each workload, tally.

use std::sync::Arc;

use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::quiesce::{Notify, ResumeOutcome, Workload, resume_one};
use serde::Serialize;

use super::kube_failure;
use crate::config::{Config, Quiesce};
use crate::context::Ctx;
use crate::error::{Error, Result, usage};

/// Which sources' workloads, and which cluster.
#[derive(Debug, Clone, Default)]
pub struct UnquiesceRequest {
    /// Only this configured source; `None`: every source whose quiesce
    /// settings list deployments or statefulsets.
    pub source: Option<String>,
    /// Which cluster (already resolved: flags, then the configuration).
    pub cluster: ClusterOptions,
}

/// What became of one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// Scaled back to its recorded count, the annotation removed.
    Resumed,
    /// No annotation: left as it is.
    NotQuiesced,
    Failed,
}

/// One workload's result.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub source: String,
    #[serde(flatten)]
    pub workload: Workload,
    pub result: Resume,
    /// Replica count before (resumed) / now (not quiesced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<i32>,
    /// Replica count restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every workload's result, and the counts.
#[derive(Debug, Serialize)]
pub struct Report {
    pub workloads: Vec<Entry>,
    pub resumed: usize,
    pub not_quiesced: usize,
    pub failed: usize,
}

impl Report {
    fn tally(entries: Vec<Entry>) -> Self {
        let count = |r: Resume| entries.iter().filter(|e| e.result == r).count();
        Report {
            resumed: count(Resume::Resumed),
            not_quiesced: count(Resume::NotQuiesced),
            failed: count(Resume::Failed),
            workloads: entries,
        }
    }

    /// The failure to report when any workload could not be brought back
    /// (exit 1); `None` when all are back or were never down.
    pub fn failure(&self) -> Option<Error> {
        if self.failed == 0 {
            return None;
        }
        let names: Vec<String> = self
            .workloads
            .iter()
            .filter(|e| e.result == Resume::Failed)
            .map(|e| e.workload.to_string())
            .collect();
        Some(crate::failure!(
            "{} workload(s) could not be brought back: {}; fix the cause named above and run \
             `lifeboat unquiesce` again (it only touches workloads that are still marked)",
            self.failed,
            names.join(", ")
        ))
    }
}

/// A source quiesced by commands only: its `post` commands, which Lifeboat
/// does not run (it keeps no record of whether `pre` ran), to run by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandsOnly {
    pub source: String,
    /// Always empty (the same shape as a [`Report`]).
    pub workloads: [(); 0],
    /// `quiesce.commands.post`, each an argument vector.
    pub post_commands: Vec<Vec<String>>,
}

/// What `unquiesce` did.
#[derive(Debug)]
pub enum Unquiesced {
    Workloads(Report),
    /// Nothing to scale: the commands to run by hand.
    CommandsOnly(CommandsOnly),
}

/// Which sources to act on.
#[derive(Debug, PartialEq)]
pub enum Choice<'a> {
    /// These sources' workloads (each with its quiesce settings).
    Workloads(Vec<(&'a str, &'a Quiesce)>),
    CommandsOnly(CommandsOnly),
}

/// Brings back the workloads of the sources `req` names. `on_entry` sees
/// each workload's result as it comes (the CLI prints a line each). A
/// workload that could not be brought back is not an error here but in
/// [`Report::failure`]; errors: no configuration, nothing to unquiesce, an
/// unknown source (2), the cluster unreachable (1).
pub async fn unquiesce(
    ctx: &Ctx,
    req: UnquiesceRequest,
    on_entry: impl FnMut(&Entry),
) -> Result<Unquiesced> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(
            "unquiesce reads the workloads from the configuration file: pass --config FILE \
             (the one the restore used) or set LIFEBOAT_CONFIG",
        )
    })?;
    let chosen = match choose(cfg, req.source.as_deref())? {
        Choice::Workloads(chosen) => chosen,
        Choice::CommandsOnly(c) => return Ok(Unquiesced::CommandsOnly(c)),
    };
    if req.source.is_none() && !ctx.global.quiet {
        for (n, s) in &cfg.sources {
            let note = commands_note(n, s.quiesce.as_ref());
            if !note.is_empty() {
                ctx.reporter().note(&format!("note{note}"));
            }
        }
    }
    let client = lifeboat_kube::client::connect(&req.cluster)
        .await
        .map_err(kube_failure)?;
    let default_ns = client.default_namespace().to_string();
    let entries = resume_all(&chosen, &default_ns, on_entry, |w| {
        let client = client.clone();
        async move {
            let quiet: Notify = Arc::new(|m: &str| tracing::info!("{m}"));
            resume_one(&client, &w, &quiet)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    Ok(Unquiesced::Workloads(Report::tally(entries)))
}

/// Resumes every workload of `chosen` in order (namespace: the quiesce
/// settings', else `default_ns`), one at a time.
async fn resume_all<F, Fut>(
    chosen: &[(&str, &Quiesce)],
    default_ns: &str,
    mut on_entry: impl FnMut(&Entry),
    resume_workload: F,
) -> Vec<Entry>
where
    F: Fn(Workload) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<ResumeOutcome, String>>,
{
    let mut entries = Vec::new();
    for (source, q) in chosen {
        let ns = q.namespace.as_deref().unwrap_or(default_ns);
        for (kind, name) in q.workloads() {
            let w = Workload::new(kind, ns, name);
            let outcome = resume_workload(w.clone()).await;
            let e = entry(source, w, outcome);
            on_entry(&e);
            entries.push(e);
        }
    }
    entries
}

/// One workload's result from what resuming it did.
fn entry(
    source: &str,
    workload: Workload,
    outcome: std::result::Result<ResumeOutcome, String>,
) -> Entry {
    let (result, from, to, error) = match outcome {
        Ok(ResumeOutcome::Resumed { from, to }) => (Resume::Resumed, Some(from), Some(to), None),
        Ok(ResumeOutcome::NotQuiesced { replicas }) => {
            (Resume::NotQuiesced, Some(replicas), None, None)
        }
        Err(e) => (Resume::Failed, None, None, Some(e)),
    };
    Entry {
        source: source.to_string(),
        workload,
        result,
        from,
        to,
        error,
    }
}

/// Which sources: the named one (its workloads, else its post commands,
/// else a usage error), or every source with workloads (else the one
/// source with post commands, else a usage error saying why not).
pub fn choose<'a>(cfg: &'a Config, source: Option<&'a str>) -> Result<Choice<'a>> {
    match source {
        Some(name) => choose_named(cfg, name),
        None => choose_all(cfg),
    }
}

fn choose_named<'a>(cfg: &'a Config, name: &'a str) -> Result<Choice<'a>> {
    let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
    match src.quiesce.as_ref().filter(|q| !q.workloads().is_empty()) {
        Some(q) => Ok(Choice::Workloads(vec![(name, q)])),
        // Commands only: nothing to scale; the result is what to run by
        // hand (as docs/postgres.md says), exit 0.
        None if has_post_commands(src.quiesce.as_ref()) => Ok(Choice::CommandsOnly(commands_only(
            name,
            src.quiesce.as_ref(),
        ))),
        None => Err(usage(format!(
            "source {name} quiesces no Kubernetes workloads (no quiesce.deployments or \
             quiesce.statefulsets in {}){}",
            cfg.origin,
            commands_note(name, src.quiesce.as_ref())
        ))),
    }
}

fn choose_all(cfg: &Config) -> Result<Choice<'_>> {
    let chosen: Vec<(&str, &Quiesce)> = cfg
        .sources
        .iter()
        .filter_map(|(n, s)| {
            s.quiesce
                .as_ref()
                .filter(|q| !q.workloads().is_empty())
                .map(|q| (n.as_str(), q))
        })
        .collect();
    if !chosen.is_empty() {
        return Ok(Choice::Workloads(chosen));
    }
    let with_commands: Vec<&str> = cfg
        .sources
        .iter()
        .filter(|(_, s)| has_post_commands(s.quiesce.as_ref()))
        .map(|(n, _)| n.as_str())
        .collect();
    if let [only] = with_commands.as_slice() {
        let q = cfg.sources[*only].quiesce.as_ref();
        return Ok(Choice::CommandsOnly(commands_only(only, q)));
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
    Err(usage(format!(
        "nothing to unquiesce: no source in {} lists quiesce.deployments or quiesce.statefulsets",
        cfg.origin
    )))
}

fn has_post_commands(q: Option<&Quiesce>) -> bool {
    q.and_then(|q| q.commands.as_ref())
        .is_some_and(|c| !c.post.is_empty())
}

fn commands_only(name: &str, q: Option<&Quiesce>) -> CommandsOnly {
    CommandsOnly {
        source: name.to_string(),
        workloads: [],
        post_commands: q
            .and_then(|q| q.commands.as_ref())
            .map(|c| c.post.iter().map(|c| c.argv.clone()).collect())
            .unwrap_or_default(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const REPO: &str = "repository:\n  url: /tmp/r\n";

    fn config(sources: &str) -> Config {
        crate::config::parse(&format!("{REPO}sources:\n{sources}"), "test.yaml").unwrap()
    }

    const DEPLOYS: &str = "  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/app\"}\n    quiesce: {deployments: [api], namespace: ns}\n";
    const COMMANDS: &str = "  files:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/files\"}\n    quiesce: {commands: {pre: [[stop, it]], post: [[start, it]]}}\n";
    const PLAIN: &str =
        "  other:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/other\"}\n";

    fn names(c: &Choice<'_>) -> Vec<String> {
        match c {
            Choice::Workloads(w) => w.iter().map(|(n, _)| n.to_string()).collect(),
            Choice::CommandsOnly(c) => vec![format!("commands:{}", c.source)],
        }
    }

    /// (sources, --source, chosen or the usage error's words)
    #[test]
    fn which_sources_are_unquiesced() {
        let both = format!("{DEPLOYS}{COMMANDS}");
        let two_commands = format!("{COMMANDS}{}", COMMANDS.replace("files", "more"));
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            std::result::Result<Vec<&'a str>, &'a str>,
        );
        let cases: [Case<'_>; 9] = [
            (DEPLOYS, None, Ok(vec!["db"])),
            (DEPLOYS, Some("db"), Ok(vec!["db"])),
            (&both, None, Ok(vec!["db"])),
            (&both, Some("files"), Ok(vec!["commands:files"])),
            (COMMANDS, None, Ok(vec!["commands:files"])),
            (
                &two_commands,
                None,
                Err("pass --source NAME to see the post commands"),
            ),
            (PLAIN, None, Err("nothing to unquiesce")),
            (
                PLAIN,
                Some("other"),
                Err("quiesces no Kubernetes workloads"),
            ),
            (DEPLOYS, Some("nope"), Err("nope")),
        ];
        for (sources, source, want) in cases {
            let cfg = config(sources);
            let got = choose(&cfg, source);
            match (got, want) {
                (Ok(c), Ok(want)) => assert_eq!(names(&c), want, "{sources} {source:?}"),
                (Err(e), Err(words)) => {
                    assert_eq!(e.kind(), Kind::Usage);
                    assert!(e.message.contains(words), "{}", e.message);
                }
                (got, want) => panic!("{sources} {source:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn commands_only_carries_the_post_commands_as_argument_vectors() {
        let cfg = config(COMMANDS);
        let Choice::CommandsOnly(c) = choose(&cfg, Some("files")).unwrap() else {
            panic!("not commands only")
        };
        assert_eq!(
            c.post_commands,
            vec![vec!["start".to_string(), "it".into()]]
        );
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"source": "files", "workloads": [], "post_commands": [["start", "it"]]})
        );
    }

    #[tokio::test]
    async fn every_workload_gets_an_entry_and_failures_are_counted() {
        let cfg = config(DEPLOYS.replace("[api]", "[api, web]").as_str());
        let Choice::Workloads(chosen) = choose(&cfg, None).unwrap() else {
            panic!("no workloads")
        };
        let mut seen = Vec::new();
        let entries = resume_all(
            &chosen,
            "default",
            |e| seen.push(e.workload.name.clone()),
            |w| async move {
                match w.name.as_str() {
                    "api" => Ok(ResumeOutcome::Resumed { from: 0, to: 3 }),
                    _ => Err("403 forbidden".to_string()),
                }
            },
        )
        .await;
        assert_eq!(seen, ["api", "web"]);
        assert_eq!(entries[0].workload.namespace, "ns");
        let report = Report::tally(entries);
        assert_eq!(
            (report.resumed, report.not_quiesced, report.failed),
            (1, 0, 1)
        );
        let e = report.failure().unwrap();
        assert_eq!(e.kind(), Kind::Failure);
        assert!(
            e.message
                .contains("1 workload(s) could not be brought back"),
            "{}",
            e.message
        );
        let v = serde_json::to_value(&report.workloads[1]).unwrap();
        assert_eq!(v["result"], "failed");
        assert_eq!(v["error"], "403 forbidden");
    }
}
