//! Prometheus's own tool on what Lifeboat gives Prometheus (issue 19):
//! 1. every alert in `deploy/prometheusrule.yaml` passes `promtool check
//!    rules` and the unit tests in `deploy/tests/` (`promtool test rules`),
//!    and every alert has a case where it fires and one where it does not;
//! 2. a unit test whose alert does not fire fails (the harness can fail);
//! 3. every query of `deploy/grafana-dashboard.json` is valid PromQL;
//! 4. `promtool check metrics` finds nothing to say about a running
//!    daemon's `/metrics`, with backups done and failed, a prune, a drill
//!    and a check behind it (so that every family has its samples).
//!
//! promtool comes with Debian's `prometheus` package, which scripts/test.sh
//! installs; without it these tests fail and say so.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Daemon, Env, free_port, rt, setup, write_token};
use serde_json::Value;

/// The rules file the unit tests in `deploy/tests/` name in `rule_files`.
const RULES_FILE: &str = "prometheusrule.rules.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `promtool` on PATH, or a failure saying how to get it.
fn promtool() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not on PATH: run the tests through scripts/test.sh, which \
                 installs Debian's `prometheus` package (it brings promtool)"
            )
        })
}

/// Runs promtool with `args`, `stdin` on its standard input.
fn run_promtool(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(promtool())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).expect("write to promtool");
    drop(input);
    child.wait_with_output().expect("wait for promtool")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The PrometheusRule's `.spec`: a plain Prometheus rules file.
fn rules_spec() -> Value {
    let rule = yaml(&root().join("deploy/prometheusrule.yaml"));
    assert_eq!(rule["kind"], "PrometheusRule");
    let spec = rule["spec"].clone();
    assert!(spec["groups"].is_array(), "no spec.groups: {rule}");
    spec
}

/// The alert names of a rules file's groups.
fn alerts(spec: &Value) -> Vec<String> {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect()
}

/// `deploy/tests/*.test.yaml`, sorted.
fn unit_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/tests"))
        .expect("deploy/tests/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit tests in deploy/tests/");
    files
}

/// Writes `spec` (JSON is YAML) as the rules file into `dir`.
fn write_rules(dir: &Path, spec: &Value) -> PathBuf {
    let path = dir.join(RULES_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    path
}

/// Per alert name: (cases where it fires, cases where it does not), from
/// the unit test files' `alert_rule_test`s.
fn coverage(files: &[PathBuf]) -> BTreeMap<String, (usize, usize)> {
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in files {
        let t = yaml(f);
        assert_eq!(
            t["rule_files"],
            serde_json::json!([RULES_FILE]),
            "{f:?} must test the PrometheusRule's rules, {RULES_FILE}"
        );
        for case in t["tests"].as_array().unwrap() {
            for a in case["alert_rule_test"].as_array().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap().to_string();
                let fires = a["exp_alerts"].as_array().is_some_and(|x| !x.is_empty());
                let e = seen.entry(name).or_default();
                if fires {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
    }
    seen
}

/// Must hold 1.
#[test]
fn every_alert_passes_check_rules_and_its_unit_tests() {
    let spec = rules_spec();
    let names = alerts(&spec);
    assert!(names.len() >= 8, "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), &spec);

    let o = run_promtool(
        &[
            "check",
            "rules",
            "--lint=all",
            "--lint-fatal",
            rules.to_str().unwrap(),
        ],
        b"",
    );
    assert!(o.status.success(), "promtool check rules: {}", text(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    let count = spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum::<usize>();
    assert!(
        said.contains(&format!("SUCCESS: {count} rules found")),
        "{}",
        text(&o)
    );

    // Each alert tested both ways, and no test names an alert that does not
    // exist (promtool would pass its "does not fire" cases without a word).
    let files = unit_test_files();
    let seen = coverage(&files);
    for name in &names {
        let (fires, quiet) = seen.get(name).copied().unwrap_or_default();
        assert!(fires > 0, "{name}: no unit test where it fires");
        assert!(quiet > 0, "{name}: no unit test where it does not fire");
    }
    for name in seen.keys() {
        assert!(names.contains(name), "the unit tests name {name}, no alert");
    }

    let mut args = vec!["test".to_string(), "rules".to_string()];
    for f in &files {
        let copy = dir.path().join(f.file_name().unwrap());
        std::fs::copy(f, &copy).unwrap();
        args.push(copy.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_promtool(&args, b"");
    assert!(o.status.success(), "promtool test rules: {}", text(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(said.matches("SUCCESS").count(), files.len(), "{}", text(&o));
}

/// Must hold 2: one active daemon, a test that expects the no-active-daemon
/// alert: promtool fails, naming the case.
#[test]
fn a_unit_test_whose_alert_does_not_fire_fails() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), &rules_spec());
    let test = dir.path().join("wrong.test.yaml");
    std::fs::write(
        &test,
        format!(
            "rule_files: [{RULES_FILE}]
evaluation_interval: 1m
tests:
  - name: an active daemon is not missing
    interval: 1m
    input_series:
      - series: 'lifeboat_lease_active{{instance=\"a\"}}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: LifeboatNoActiveDaemon
        exp_alerts:
          - exp_labels: {{severity: critical}}
"
        ),
    )
    .unwrap();
    let o = run_promtool(&["test", "rules", test.to_str().unwrap()], b"");
    assert!(!o.status.success(), "{}", text(&o));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        said.contains("FAILED") && said.contains("an active daemon is not missing"),
        "{}",
        text(&o)
    );
}

/// Must hold 3: the dashboard's queries, as recording rules, pass `promtool
/// check rules` (which parses their PromQL).
#[test]
fn every_dashboard_query_is_valid_promql() {
    let path = root().join("deploy/grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut rules = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            rules.push(serde_json::json!({
                "record": format!("lifeboat:dashboard:panel_{}_{}", p["id"], t["refId"].as_str().unwrap()),
                "expr": t["expr"],
            }));
        }
    }
    assert!(rules.len() >= 10, "{rules:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = write_rules(
        dir.path(),
        &serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}),
    );
    let o = run_promtool(&["check", "rules", file.to_str().unwrap()], b"");
    assert!(o.status.success(), "{}", text(&o));
}

/// A configuration whose daemon, within a minute, has every family with
/// samples: `db` backs up every 2 s (keep-last-2, so retention forgets and
/// prune runs) and drills every 5 s, `down` fails every second (a closed
/// port), the repository is checked every 3 s.
fn write_config(env: &Env, db_url: &str) -> PathBuf {
    let token = write_token(env);
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
  prune_grace: 0s
sources:
  db:
    kind: postgres
    schedule: \"*/2 * * * * *\"
    retention: {{keep_last: 2}}
    postgres:
      url: \"{db_url}\"
    covers: [database-corruption]
    drill:
      schedule: \"*/5 * * * * *\"
  down:
    kind: postgres
    schedule: \"* * * * * *\"
    retention: {{keep_last: 2}}
    postgres:
      url: \"postgresql://lifeboat@127.0.0.1:{closed}/nothing\"
objectives:
  - {{scenario: database-corruption, rto: 30m, rpo: 1h, priority: P1}}
serve:
  token: {{file: {token}}}
  prune_interval: 0s
  check: {{schedule: \"*/3 * * * * *\"}}
",
        repo = env.repo,
        closed = free_port(),
        token = token.display()
    );
    let path = env.path("serve.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Must hold 4.
#[test]
fn check_metrics_finds_nothing_to_say_about_the_daemons_metrics() {
    // Fail before starting anything when promtool is missing.
    promtool();
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let config = write_config(&env, &cluster.url("src"));
    let d = Daemon::start_active(&env, &config, "promtool");
    let wanted = [
        "lifeboat_backup_duration_seconds_count{source=\"db\"} ",
        "lifeboat_backup_last_failure_timestamp_seconds{source=\"down\"} ",
        "lifeboat_retention_forgotten_total{source=\"db\"} ",
        "lifeboat_prune_last_success_timestamp_seconds ",
        "lifeboat_drill_last_success_timestamp_seconds{source=\"db\"} ",
        "lifeboat_restore_duration_seconds_count{source=\"db\"} ",
        "lifeboat_check_last_success_timestamp_seconds ",
    ];
    let metrics = d.poll(
        Duration::from_secs(240),
        "a backup, a failure, retention, a prune, a drill and a check",
        || {
            let (code, body) = d.get("/metrics", None);
            assert_eq!(code, 200, "{body}");
            // Counted, not only present: a backup and a forgotten snapshot.
            let counted = |prefix: &str| {
                body.lines()
                    .filter_map(|l| l.strip_prefix(prefix))
                    .any(|v| v.parse::<f64>().is_ok_and(|v| v >= 1.0))
            };
            let all = wanted.iter().all(|w| body.contains(w))
                && counted("lifeboat_backup_duration_seconds_count{source=\"db\"} ")
                && counted("lifeboat_retention_forgotten_total{source=\"db\"} ");
            all.then_some(body)
        },
    );
    d.stop();

    let o = run_promtool(&["check", "metrics"], metrics.as_bytes());
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics has something to say: {}\n/metrics:\n{metrics}",
        text(&o)
    );

    // The same check does speak up: a counter without `_total` and a family
    // without HELP, appended to the daemon's output.
    let bad = format!("{metrics}\n# TYPE lifeboat_bad_count counter\nlifeboat_bad_count 1\n");
    let o = run_promtool(&["check", "metrics"], bad.as_bytes());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        said.contains("lifeboat_bad_count") && said.contains("_total"),
        "{}",
        text(&o)
    );
}
