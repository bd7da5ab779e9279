//! The configuration file: one YAML document (default `./lifeboat.yaml`).
//!
//! ```yaml
//! repository:
//!   url: /var/lib/lifeboat/repo          # the only required setting
//!   password: {env: LIFEBOAT_PASSWORD}
//! sources:
//!   kubernaut-db:
//!     kind: postgres
//!     schedule: "0 * * * *"
//!     retention: {keep_within_hourly: 30d}
//!     postgres: {url: "postgresql://kubernaut@postgresql:5432/kubernaut"}
//! objectives:
//!   - {scenario: database-corruption, rto: 30m, rpo: 1h}
//! ```
//!
//! `examples/kubernaut.yaml` documents every setting. Rules:
//! * Unknown keys are errors, reported with the file, line and column, like
//!   every other parse error; so are values of the wrong type, bad durations
//!   (`30d`, `12h`, `1d12h`), bad cron expressions and unknown time zones,
//!   which are all checked while the file is read.
//! * Accepted settings do something: a retention rule that keeps nothing
//!   (`keep_last: 0`, `keep_within_daily: 0s`, `retention: {}`) and a
//!   schedule with no slot in the next five years (`0 0 31 2 *`) are refused
//!   the same way, with line and column.
//! * Secrets are given only by reference ([`SecretRef`]): an environment
//!   variable, a file (mode 0600), or a Kubernetes Secret. A URL carrying a
//!   password is refused. Resolved secrets are never logged nor shown by
//!   `Debug`.
//! * After parsing, [`Config::validate`] checks what spans several keys: each
//!   source has the section of its kind and none of another, `covers` names a
//!   scenario from `objectives`, scenario names are unique, the regions form
//!   a possible topology (one primary, standbys that replicate from a
//!   region, Route 53's rules for health checks). Problems about a value
//!   kept with its place (the regions' roles, sources, checks) are reported
//!   with line and column too.
//! * Every secret reference is read when, and each time, it is used
//!   ([`SecretRef::resolve`]); `kubernetes_secret` ones from the cluster a
//!   [`SecretResolver`] (the context's) names, given explicitly. A command
//!   that does not use a reference never reads it; one that cannot be read
//!   fails where it is used.
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | loading and parsing, [`ConfigError`], located parse errors |
//! | `model/` | the file's types: the top level, repository, serve and readiness (`mod.rs`), sources (`sources.rs`), quiesce (`quiesce.rs`), retention (`retention.rs`), regions, traffic and replication with their accessors (`regions.rs`), URLs (`urls.rs`) |
//! | `secrets.rs` | secret references: parsing, resolving at each use, `SecretResolver` (reads `kubernetes_secret` ones) |
//! | `schedules.rs` | cron schedules ("never fires" refused) and time zones |
//! | `validation.rs` | [`Config::validate`]: what spans several keys, one function per section |
//! | `topology.rs` | the part of [`Config::validate`] for `regions:`, `traffic:` and `replication:`: `lifeboat_region::topology`'s verdict and the sections' own checks, located at their line and column |

pub mod model;
pub mod schedules;
pub mod secrets;
#[cfg(test)]
mod testing;
mod topology;
mod validation;

pub use model::*;
pub use schedules::*;
pub use secrets::*;

use std::path::Path;

use secrets::{PASSWORD_IN_URL, SECRET_IN_PLACE};

/// Everything that can go wrong with the configuration. Messages name the
/// file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the configuration file {path}: {source}; give the right file with --config or LIFEBOAT_CONFIG"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A syntax, type or value error, with its position in the file.
    #[error("{origin}:{line}:{column}: {message}{}", if .snippet.is_empty() { String::new() } else { format!("\n{}", .snippet) })]
    Parse {
        origin: String,
        line: u64,
        column: u64,
        message: String,
        /// The offending lines, marked (no secret values can be in the file).
        snippet: String,
    },
    /// A parse error whose position the YAML parser could not tell.
    #[error("{origin}: {message}")]
    ParseNoLocation { origin: String, message: String },
    /// Problems spanning several keys, all of them at once: those with a
    /// place in the file (`located`, each shown as `origin:line:column:
    /// message` and the line, like a parse error), then the others.
    #[error("{}", render_invalid(.origin, .problems, .located))]
    Invalid {
        origin: String,
        problems: Vec<String>,
        located: Vec<LocatedProblem>,
    },
    #[error("no region named {name:?} in {origin}; configured regions: {}", if .known.is_empty() { "none (add a regions: section)".to_string() } else { .known.join(", ") })]
    UnknownRegion {
        origin: String,
        name: String,
        known: Vec<String>,
    },
    #[error("no source named {name:?} in {origin}; configured sources: {}", if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
    UnknownSource {
        origin: String,
        name: String,
        known: Vec<String>,
    },
    #[error(
        "the environment variable {var} (a secret reference in the configuration) is not set or empty; export it or change the reference"
    )]
    SecretEnvMissing { var: String },
    #[error(
        "the environment variable {var} (a secret reference in the configuration) is not valid UTF-8"
    )]
    SecretEnvNotUnicode { var: String },
    #[error("the secret file {path}: {}", crate::secrets::too_open_advice(path, *mode))]
    SecretFileTooOpen { path: String, mode: u32 },
    #[error("cannot read the secret file {path}: {reason}; check the path in the configuration")]
    SecretFile { path: String, reason: String },
    #[error(
        "the secret reference kubernetes_secret {{name: {name}, key: {key}}} cannot be read: {detail}"
    )]
    KubernetesSecret {
        name: String,
        key: String,
        detail: String,
    },
}

/// A problem spanning several keys, at the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedProblem {
    pub line: u64,
    pub column: u64,
    /// The key's path and what is wrong, e.g.
    /// `regions.eu-west.postgres.replicates_from: eu-west replicates from itself; …`.
    pub message: String,
    /// The line, marked at the column (set by [`parse`], which has the
    /// text; the file holds no secret values, it refuses them).
    pub snippet: String,
}

fn render_invalid(origin: &str, problems: &[String], located: &[LocatedProblem]) -> String {
    let mut parts: Vec<String> = located
        .iter()
        .map(|p| {
            let head = format!("{origin}:{}:{}: {}", p.line, p.column, p.message);
            if p.snippet.is_empty() {
                head
            } else {
                format!("{head}\n{}", p.snippet)
            }
        })
        .collect();
    if !problems.is_empty() {
        parts.push(format!(
            "{origin}: invalid configuration:\n{}",
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    parts.join("\n")
}

/// The snippet of a located problem: the line of `text` with a caret under
/// `column` (both counted from 1, the column in characters).
fn snippet(text: &str, origin: &str, line: u64, column: u64) -> String {
    let Some(src) = text.lines().nth(line.saturating_sub(1) as usize) else {
        return String::new();
    };
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    let before: String = src
        .chars()
        .take(column.saturating_sub(1) as usize)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{pad}--> {origin}:{line}:{column}\n{pad} |\n{number} | {src}\n{pad} | {before}^")
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates configuration text; `origin` names it in messages
/// (a path, or e.g. `<string>`).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut config: Config = serde_saphyr::from_str(text).map_err(|e| parse_error(&e, origin))?;
    config.origin = origin.to_string();
    config.text = text.to_string();
    config.validate().map_err(|mut e| {
        if let ConfigError::Invalid { located, .. } = &mut e {
            for p in located {
                p.snippet = snippet(text, origin, p.line, p.column);
            }
        }
        e
    })?;
    Ok(config)
}

fn parse_error(e: &serde_saphyr::Error, origin: &str) -> ConfigError {
    let plain = e
        .without_snippet()
        .render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        });
    // The plain rendering ends with " at line L, column C"; the position is
    // shown in front instead.
    let message = match plain.rfind(" at line ") {
        Some(i) => plain[..i].to_string(),
        None => plain.clone(),
    };
    // A key given twice: the reader's hint is about its own options.
    let message = match message.strip_suffix(", set DuplicateKeyPolicy in Options if acceptable") {
        Some(m) => format!("{m}: this key is given twice; give it once"),
        None => message,
    };
    let snippet = if message.contains(SECRET_IN_PLACE) || message.contains(PASSWORD_IN_URL) {
        // The offending line may hold a secret: do not print it.
        String::new()
    } else {
        let rendered = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(origin),
        });
        // Drop the renderer's own "error: line L column C: message" header.
        match rendered.split_once('\n') {
            Some((first, rest)) if first.starts_with("error:") => rest.to_string(),
            _ => rendered,
        }
    };
    match e.location().filter(|l| l.line() > 0) {
        Some(loc) => ConfigError::Parse {
            origin: origin.to_string(),
            line: loc.line(),
            column: loc.column(),
            message,
            snippet,
        },
        None => ConfigError::ParseNoLocation {
            origin: origin.to_string(),
            message,
        },
    }
}

impl Config {
    /// The source called `name`, or an error listing the configured ones.
    pub fn source(&self, name: &str) -> Result<&SourceConfig, ConfigError> {
        self.sources
            .get(name)
            .ok_or_else(|| ConfigError::UnknownSource {
                origin: self.origin.clone(),
                name: name.to_string(),
                known: self.sources.keys().cloned().collect(),
            })
    }

    /// The objective for a scenario, if configured.
    pub fn objective(&self, scenario: &str) -> Option<&Objective> {
        self.objectives.iter().find(|o| o.scenario == scenario)
    }
}

impl Config {
    /// The objectives as `lifeboat-dr` judges them (status, readiness, the
    /// daemon's per-source RPO objective).
    pub fn dr_objectives(&self) -> Vec<lifeboat_dr::objectives::Objective> {
        self.objectives
            .iter()
            .map(|o| lifeboat_dr::objectives::Objective {
                scenario: o.scenario.clone(),
                rto: o.rto,
                rpo: o.rpo,
                priority: o.priority.map(|p| format!("{p:?}")),
                covered_elsewhere: match (&o.covered_by, &o.attested_by, o.attested_at) {
                    (Some(c), Some(b), Some(at)) => {
                        Some(lifeboat_dr::objectives::CoveredElsewhere {
                            covered_by: c.clone(),
                            attested_by: b.clone(),
                            attested_at: at,
                        })
                    }
                    // The configuration refuses a partial statement.
                    _ => None,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeDelta;

    use super::testing::*;
    use super::*;

    #[test]
    fn every_example_parses() {
        let mut seen = 0;
        let mut entries: Vec<_> = std::fs::read_dir(examples_dir())
            .expect("examples/ exists")
            .map(|e| e.expect("readable examples/").path())
            .collect();
        entries.sort();
        for path in entries {
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                continue;
            }
            load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 2, "expected at least two examples, found {seen}");
    }

    #[test]
    fn kubernaut_example_holds_the_seed_settings() {
        let c = load(&examples_dir().join("kubernaut.yaml")).unwrap();
        let db = c.source("kubernaut-db").unwrap();
        assert_eq!(db.kind, SourceKind::Postgres);
        assert_eq!(db.schedule.as_ref().unwrap().as_str(), "0 * * * *");
        assert_eq!(
            db.retention.as_ref().unwrap().keep_within_hourly,
            Some(TimeDelta::days(30))
        );
        let pg = db.postgres.as_ref().unwrap();
        assert_eq!(
            pg.url.as_str(),
            "postgresql://kubernaut@postgresql.kubernaut-system:5432/kubernaut"
        );
        assert_eq!(
            pg.password,
            Some(SecretRef::KubernetesSecret(KubernetesSecretRef {
                name: "postgresql-credentials".into(),
                key: "password".into(),
                namespace: Some("kubernaut-system".into()),
            }))
        );
        assert_eq!(pg.verify_queries.len(), 2);
        let q = db.quiesce.as_ref().unwrap();
        assert_eq!(q.deployments, ["data-storage", "context-api"]);
        assert_eq!(q.namespace.as_deref(), Some("kubernaut-system"));
        assert!(!q.resume_on_verify_failure);
        assert_eq!(db.covers, ["database-corruption", "complete-outage"]);

        let cfg = c.source("kubernaut-config").unwrap();
        assert_eq!(cfg.kind, SourceKind::Kube);
        assert_eq!(cfg.schedule.as_ref().unwrap().as_str(), "0 2 * * *");
        assert_eq!(cfg.timezone, Some(Timezone::UTC));
        assert_eq!(
            cfg.retention.as_ref().unwrap().keep_within_daily,
            Some(TimeDelta::days(90))
        );
        let kube = cfg.kube.as_ref().unwrap();
        assert_eq!(kube.namespaces, ["kubernaut-system"]);
        assert_eq!(kube.kinds, ["configmaps", "secrets"]);

        // The seed's §3.1 table, exactly.
        let table: Vec<(&str, TimeDelta, TimeDelta, Priority)> = c
            .objectives
            .iter()
            .map(|o| (o.scenario.as_str(), o.rto, o.rpo, o.priority.unwrap()))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "single-pod-failure",
                    TimeDelta::minutes(1),
                    TimeDelta::zero(),
                    Priority::P0
                ),
                (
                    "service-failure",
                    TimeDelta::minutes(5),
                    TimeDelta::zero(),
                    Priority::P0
                ),
                (
                    "database-corruption",
                    TimeDelta::minutes(30),
                    TimeDelta::hours(1),
                    Priority::P1
                ),
                (
                    "region-failure",
                    TimeDelta::minutes(15),
                    TimeDelta::minutes(5),
                    Priority::P0
                ),
                (
                    "complete-outage",
                    TimeDelta::hours(2),
                    TimeDelta::hours(1),
                    Priority::P1
                ),
            ]
        );
        assert_eq!(c.repository.prune_grace, Some(TimeDelta::hours(1)));
    }

    #[test]
    fn minimal_needs_only_the_url() {
        let c = parse("repository:\n  url: /var/lib/lifeboat/repo\n", "<string>").unwrap();
        assert_eq!(c.repository.url.as_str(), "/var/lib/lifeboat/repo");
        assert_eq!(c.repository.url.scheme(), "file");
        assert!(c.sources.is_empty() && c.objectives.is_empty());
        assert_eq!(c.origin, "<string>");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = "repository:\n  url: /r\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: postgresql://u@h/d\n      pasword: {env: X}\n";
        let e = parse_err(text);
        assert_eq!(location(&e), (8, 7));
        let msg = e.to_string();
        assert!(msg.starts_with("test.yaml:8:7: "), "{msg}");
        assert!(msg.contains("pasword"), "{msg}");
        assert!(msg.contains("--> test.yaml:8:7"), "{msg}");
        assert!(msg.contains("8 |       pasword: {env: X}"), "{msg}");
        assert_eq!(msg.matches("unknown field").count(), 2, "{msg}");

        let e = parse_err("repository:\n  url: /r\n  colour: blue\n");
        assert_eq!(location(&e), (3, 3));
        let e = parse_err("repository: {url: /r}\nextra: 1\n");
        assert_eq!(location(&e), (2, 1));
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {namespaces: kubernaut-system}\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    retention: {keep_last: many}\n    kube: {}\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        let e = parse_err("repository: {url: /r}\nsources:\n  db:\n    kind: mysql\n");
        assert_eq!(location(&e), (4, 11), "{e}");
        assert!(e.to_string().contains("mysql"), "{e}");
    }

    #[test]
    fn missing_url_is_refused() {
        let e = parse_err("repository:\n  password: {env: LIFEBOAT_PASSWORD}\n");
        assert!(e.to_string().contains("url"), "{e}");
        assert!(e.to_string().starts_with("test.yaml"), "{e}");
        let e = parse_err("sources: {}\n");
        assert!(e.to_string().contains("repository"), "{e}");
        let e = parse_err("repository: {url: \"\"}\n");
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn bad_values_name_line_and_column() {
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: stream\n    schedule: \"0 25 * * *\"\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        assert!(e.to_string().contains("invalid cron expression"), "{e}");
        // Years are not accepted; seconds only as a sixth, leading field.
        for bad in ["0 0 0 * * * 2026", "60 * * * * *", "not cron", ""] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "0 * * * *",
            "0 2 * * *",
            "*/15 * * * 1-5",
            "@hourly",
            "@daily",
            "*/2 * * * * *",
            "30 0 * * * *",
        ] {
            Schedule::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    retention:\n      keep_within_daily: 90 days ago\n",
        );
        assert_eq!(location(&e).0, 7, "{e}");
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = parse_err("repository: {url: /r, prune_grace: soon}\n");
        assert_eq!(location(&e).0, 1, "{e}");
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Bxrlin\n",
        );
        assert_eq!(location(&e).0, 6, "{e}");
        assert!(e.to_string().contains("unknown time zone"), "{e}");
        let e = parse_err("repository: {url: \"ftp://x/y\"}\n");
        assert!(
            e.to_string().contains("unsupported repository scheme"),
            "{e}"
        );
    }

    #[test]
    fn unknown_source_lists_the_known_ones() {
        let c = load(&examples_dir().join("kubernaut.yaml")).unwrap();
        let e = c.source("kubernaut").unwrap_err().to_string();
        assert!(e.contains("kubernaut-config, kubernaut-db"), "{e}");
        assert!(e.contains("kubernaut.yaml"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let e = load(Path::new("/nonexistent/lifeboat.yaml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/lifeboat.yaml"), "{e}");
        assert!(e.to_string().contains("--config"), "{e}");
    }
}
