//! A source's `quiesce:` section: the writers stopped while it is restored
//! (workloads to scale, commands to run). Its cross-key checks are in
//! `config::validation`.

use std::fmt;

use chrono::TimeDelta;
use serde::Deserialize;
/// How writers are stopped during a restore and brought back after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiesce {
    /// Deployments scaled to zero through their `scale` subresource, then
    /// back to their replica counts. The count is first recorded in the
    /// annotation `lifeboat.io/original-replicas` on the Deployment, so that
    /// `lifeboat unquiesce` can bring it back after a crash.
    #[serde(default)]
    pub deployments: Vec<String>,
    /// StatefulSets, quiesced like `deployments`.
    #[serde(default)]
    pub statefulsets: Vec<String>,
    /// Their namespace; unset: the kubeconfig context's namespace, or the
    /// one Lifeboat runs in (in a pod).
    #[serde(default)]
    pub namespace: Option<String>,
    /// How long to wait, after scaling to zero, for the writers' pods to be
    /// gone before giving up (the restore then does not start and the
    /// writers are brought back). Default `5m`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub timeout: Option<TimeDelta>,
    /// Commands run instead of (or besides) scaling workloads: `pre` after
    /// the workloads are down, `post` before they are brought back.
    #[serde(default)]
    pub commands: Option<QuiesceCommands>,
    /// Bring writers back even when verification of the restored data fails.
    /// Off by default: a database that failed verification must not take
    /// traffic.
    #[serde(default)]
    pub resume_on_verify_failure: bool,
}

impl Quiesce {
    /// The workloads to scale, as (kind, name) in the order they are stopped:
    /// Deployments, then StatefulSets.
    pub fn workloads(&self) -> Vec<(lifeboat_kube::quiesce::Kind, &str)> {
        use lifeboat_kube::quiesce::Kind;
        self.deployments
            .iter()
            .map(|d| (Kind::Deployment, d.as_str()))
            .chain(
                self.statefulsets
                    .iter()
                    .map(|s| (Kind::StatefulSet, s.as_str())),
            )
            .collect()
    }
}

/// Commands to stop (`pre`) and restart (`post`) writers; each an argument
/// vector run without a shell, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuiesceCommands {
    #[serde(default)]
    pub pre: Vec<QuiesceCommand>,
    #[serde(default)]
    pub post: Vec<QuiesceCommand>,
}

/// One quiesce command: an argument vector (`[systemctl, stop, app]`), or
/// `{command: [kubectl, scale, …], env: [KUBECONFIG, HOME]}` when it needs
/// more of Lifeboat's environment than every child gets (`PATH`, `LANG`,
/// `LC_*`, `TZ`; see "Child processes" in `docs/postgres.md`). `env` holds
/// names only: the values are Lifeboat's own, never written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuiesceCommand {
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

impl From<Vec<String>> for QuiesceCommand {
    fn from(argv: Vec<String>) -> Self {
        QuiesceCommand { argv, env: vec![] }
    }
}

impl QuiesceCommand {
    /// The command as an operator would type it (argument vector joined).
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// The long form of [`QuiesceCommand`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuiesceCommandMap {
    command: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
}

// By hand rather than `#[serde(untagged)]`: an untagged enum's error is "data
// did not match any variant", while this keeps the located error of the form
// that was written (a list, or a map with `command` and `env`).
impl<'de> Deserialize<'de> for QuiesceCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = QuiesceCommand;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an argument vector ([program, arg, …]) or {command: [program, arg, …], env: [NAME, …]}",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                let argv =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(a))?;
                Ok(argv.into())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                let m = QuiesceCommandMap::deserialize(
                    serde::de::value::MapAccessDeserializer::new(a),
                )?;
                Ok(QuiesceCommand {
                    argv: m.command,
                    env: m.env,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use crate::config::testing::*;
    use crate::config::*;

    #[test]
    fn quiesce_workloads_timeout_and_problems() {
        let ok = parse(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      namespace: kubernaut-system
      deployments: [data-storage, context-api]
      statefulsets: [audit-writer]
      timeout: 2m
",
            "test.yaml",
        )
        .unwrap();
        let q = ok.source("db").unwrap().quiesce.clone().unwrap();
        assert_eq!(q.timeout, Some(TimeDelta::minutes(2)));
        use lifeboat_kube::quiesce::Kind;
        assert_eq!(
            q.workloads(),
            [
                (Kind::Deployment, "data-storage"),
                (Kind::Deployment, "context-api"),
                (Kind::StatefulSet, "audit-writer"),
            ]
        );

        assert_refused_with(
            "repository: {url: /r}
sources:
  a:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce: {namespace: ns, timeout: 1m}
  b:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce: {statefulsets: [w, w, \"\"], timeout: 0s}
",
            &[
                "sources.a.quiesce.namespace is set but no deployments or statefulsets",
                "sources.a.quiesce.timeout is set but no deployments or statefulsets",
                "sources.b.quiesce.statefulsets: a name is empty",
                "sources.b.quiesce.statefulsets: \"w\" is listed twice",
                "sources.b.quiesce.timeout must be longer than 0s",
            ],
        );
        let e = parse_err(
            "repository: {url: /r}
sources:
  a:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce: {deployments: [d], timeout: soon}
",
        );
        assert!(e.to_string().contains("test.yaml:6"), "{e}");
    }

    #[test]
    fn quiesce_commands_take_an_env_list_of_names() {
        let ok = parse(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      commands:
        pre: [[systemctl, stop, app]]
        post:
          - [systemctl, start, app]
          - {command: [kubectl, scale, deploy/x, --replicas=1], env: [KUBECONFIG, HOME]}
",
            "test.yaml",
        )
        .unwrap();
        let c = ok
            .source("db")
            .unwrap()
            .quiesce
            .clone()
            .unwrap()
            .commands
            .unwrap();
        assert_eq!(c.pre[0].argv, ["systemctl", "stop", "app"]);
        assert!(c.pre[0].env.is_empty());
        assert_eq!(c.post[1].argv[0], "kubectl");
        assert_eq!(c.post[1].env, ["KUBECONFIG", "HOME"]);
        assert_eq!(c.post[1].display(), "kubectl scale deploy/x --replicas=1");

        let e = parse_err(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      commands:
        post:
          - {command: [a], env: [\"X=1\", \"\", 9LIVES]}
          - {command: [], env: [OK_NAME]}
",
        );
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("expected validation errors, got {e}");
        };
        let all = problems.join("\n");
        assert_eq!(problems.len(), 4, "{all}");
        assert!(
            all.contains("sources.db.quiesce.commands.post[0].env: \"X=1\""),
            "{all}"
        );
        assert!(all.contains("names only"), "{all}");
        assert!(
            all.contains("every command is a non-empty argument vector"),
            "{all}"
        );

        // An unknown key of the long form is located, like every other.
        let e = parse_err(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    quiesce:
      commands:
        post:
          - {argv: [a]}
",
        );
        assert!(e.to_string().contains("test.yaml:9"), "{e}");
    }
}
