//! Snapshots say what they are: a partial snapshot (`backup postgres
//! --table`) is shown as such and never stands for its source's latest
//! backup — not for `latest`, status, drills or retention. Through the built
//! binary against a real PostgreSQL 15 server; time is injected (`--as-of`).

use crate::common;

use std::path::{Path, PathBuf};

use common::{Env, rt, setup};
use lifeboat_postgres::TempCluster;

/// One postgres source `db` with an hourly RPO objective.
fn write_config(env: &Env, cluster: &TempCluster) -> PathBuf {
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  db:
    kind: postgres
    schedule: \"0 0 1 1 *\"
    retention:
      keep_last: 5
    postgres:
      url: \"{url}\"
    covers: [database-corruption]
objectives:
  - {{scenario: database-corruption, rto: 30m, rpo: 1h, priority: P1}}
",
        repo = env.repo,
        url = cluster.url("src"),
    );
    let path = env.path("lifeboat.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn args<'a>(cfg: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--config", cfg.to_str().unwrap()];
    a.extend_from_slice(rest);
    a
}

fn parse(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `backup postgres --source db [extra…] --json`: the snapshot's id.
fn backup(env: &Env, cfg: &Path, extra: &[&str]) -> String {
    let mut a = vec!["--json", "backup", "postgres", "--source", "db"];
    a.extend_from_slice(extra);
    let out = parse(&env.ok(&args(cfg, &a)));
    out["id"].as_str().unwrap().to_string()
}

fn snapshots(env: &Env, cfg: &Path) -> Vec<serde_json::Value> {
    parse(&env.ok(&args(cfg, &["--json", "snapshots"])))
        .as_array()
        .unwrap()
        .clone()
}

/// The reproduction of issue 16: a full backup, then a `--table` backup of
/// the same source. Status measures the RPO from the full one, a drill
/// drills the full one, `latest` is the full one, and `forget --keep-last 1`
/// keeps the newest full snapshot and the newest partial one.
#[test]
fn a_table_snapshot_never_stands_for_its_source() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_config(&env, &cluster);
    let c = cfg.to_str().unwrap();

    let full = backup(&env, &cfg, &[]);
    let partial = backup(&env, &cfg, &["--table", "remediation_history"]);

    let rows = snapshots(&env, &cfg);
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let f = row(&full);

    // Status: the last backup is the full snapshot, and its age the exposure.
    let taken = chrono::DateTime::parse_from_rfc3339(f["time"].as_str().unwrap()).unwrap();
    let later = (taken + chrono::TimeDelta::minutes(30)).to_rfc3339();
    // No drill yet: at risk (10), for that reason only.
    let (st, _) = env.exits_with(&args(&cfg, &["--json", "status", "--as-of", &later]), 10);
    let src = &parse(&st)["sources"][0];
    assert_eq!(src["last_backup"]["snapshot"], full.as_str(), "{src:#}");
    assert_eq!(src["rpo_exposure_seconds"], 1800.0, "{src:#}");
    assert_eq!(src["partial_snapshots"], 1);

    // `latest` is the newest full snapshot: verify and drill take it.
    let v = parse(&env.ok(&args(
        &cfg,
        &[
            "--json",
            "verify",
            "latest",
            "--source",
            "db",
            "--target",
            &cluster.url("src"),
        ],
    )));
    assert_eq!(v["snapshot"], full.as_str(), "{v:#}");
    let d = parse(&env.ok(&args(&cfg, &["--json", "drill", "--source", "db"])));
    assert_eq!(d["ok"], true, "{d:#}");
    assert_eq!(d["snapshot"], full.as_str(), "{d:#}");
    let out = env.run(&["--config", c, "drill", "--source", "db"]);
    assert_eq!(out.status.code(), Some(0));
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("latest full"), "{said}");

    // Retention counts each scope apart: the full snapshot survives.
    let fg = parse(&env.ok(&args(
        &cfg,
        &["--json", "forget", "--source", "db", "--keep-last", "1"],
    )));
    let groups = fg["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{fg:#}");
    assert_eq!(groups[0]["scope"], "full");
    assert_eq!(groups[0]["forget"], serde_json::json!([]));
    assert_eq!(groups[1]["scope"], "tables: public.remediation_history");
    assert_eq!(groups[1]["forget"], serde_json::json!([]));
    let mut left: Vec<String> = snapshots(&env, &cfg)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    left.sort();
    let mut want = vec![full.clone(), partial.clone()];
    want.sort();
    assert_eq!(left, want);

    // `snapshots --json` carries each snapshot's scope; the table says it.
    assert_eq!(f["scope"]["full"], true, "{f:#}");
    assert_eq!(f["scope"]["label"], "full");
    assert_eq!(f["scope"]["tables"], serde_json::json!([]));
    assert_eq!(f["kind"], "postgres", "existing members stay");
    let p = row(&partial);
    assert_eq!(p["scope"]["full"], false, "{p:#}");
    assert_eq!(p["scope"]["label"], "tables: public.remediation_history");
    assert_eq!(
        p["scope"]["tables"],
        serde_json::json!([{"schema": "public", "name": "remediation_history"}])
    );
    assert_eq!(p["scope"]["schema_only"], false);
    let text = env.ok(&["--config", c, "snapshots"]);
    assert!(text.contains("SCOPE"), "{text}");
    assert!(
        text.contains("tables: public.remediation_history"),
        "{text}"
    );
    assert!(text.contains("1 of them partial"), "{text}");
}

/// Only partial snapshots: the source has no backup. Nothing to drill,
/// `latest` names none (and says to give an id), status fails; a second
/// partial snapshot of the same scope is what `forget --keep-last 1` forgets.
#[test]
fn only_partial_snapshots_are_no_backup_of_the_source() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_config(&env, &cluster);

    // A partitioned table: its scope names it, not its partitions.
    let older = backup(&env, &cfg, &["--table", "audit_events"]);
    let newer = backup(&env, &cfg, &["--table", "audit_events"]);
    let rows = snapshots(&env, &cfg);
    assert_eq!(
        rows[1]["scope"]["label"], "tables: public.audit_events",
        "{rows:#?}"
    );
    let err = env.fails(&args(&cfg, &["drill", "--source", "db"]), 3);
    assert!(err.contains("no full snapshot"), "{err}");
    assert!(err.contains("give a snapshot's id"), "{err}");
    let err = env.fails(
        &args(
            &cfg,
            &[
                "verify",
                "latest",
                "--source",
                "db",
                "--target",
                &cluster.url("src"),
            ],
        ),
        3,
    );
    assert!(err.contains("no full snapshot"), "{err}");
    // By id, a partial snapshot is used.
    let v = parse(&env.ok(&args(
        &cfg,
        &["--json", "verify", &newer, "--target", &cluster.url("src")],
    )));
    assert_eq!(v["snapshot"], newer.as_str(), "{v:#}");

    let (st, _) = env.exits_with(&args(&cfg, &["--json", "status"]), 1);
    let st = parse(&st);
    assert!(st["sources"][0]["last_backup"].is_null(), "{st:#}");
    let reason = st["sources"][0]["reasons"][0].as_str().unwrap();
    assert!(reason.contains("no full backup"), "{reason}");

    let fg = parse(&env.ok(&args(
        &cfg,
        &["--json", "forget", "--source", "db", "--keep-last", "1"],
    )));
    assert_eq!(fg["groups"][0]["scope"], "tables: public.audit_events");
    assert_eq!(
        fg["groups"][0]["forget"],
        serde_json::json!([older]),
        "{fg:#}"
    );
    let left: Vec<String> = snapshots(&env, &cfg)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, [newer]);
}

/// A kube source's snapshot made with flags narrower than its `kube:`
/// section is partial: shown with its selection, never drilled as `latest`,
/// counted apart by retention. (The API server is the `kube-double` test
/// double.)
#[test]
fn a_narrower_kube_selection_is_a_partial_snapshot() {
    use kube_double::ApiDouble;
    use serde_json::json;
    const NS: &str = "kubernaut-system";
    let env = Env::init();
    let api = ApiDouble::start_in_thread();
    let kubeconfig = env.path("c.kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rego-policies", "namespace": NS}, "data": {"a": "1"}}));
    api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hmac", "namespace": NS}, "type": "Opaque", "data": {"k": "dg=="}}));
    let cfg = env.path("kube.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
kubernetes:
  kubeconfig: {kc}
sources:
  cfg:
    kind: kube
    kube: {{namespaces: [{NS}], kinds: [configmaps, secrets]}}
    drill:
      namespace_map: {{{NS}: kubernaut-test}}
",
            repo = env.repo,
            kc = kubeconfig.display()
        ),
    )
    .unwrap();
    let kube_backup = |extra: &[&str]| -> String {
        let mut a = vec!["--json", "backup", "kube", "--source", "cfg"];
        a.extend_from_slice(extra);
        parse(&env.ok(&args(&cfg, &a)))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let full = kube_backup(&[]);
    // The source's own selection given as flags is still the whole source.
    let same = kube_backup(&[
        "--namespace",
        NS,
        "--kind",
        "secrets",
        "--kind",
        "configmaps",
    ]);
    let partial = kube_backup(&["--kind", "configmaps"]);

    let rows = snapshots(&env, &cfg);
    let scope = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap()["scope"].clone();
    assert_eq!(scope(&full)["full"], true);
    assert_eq!(scope(&same)["full"], true);
    let p = scope(&partial);
    assert_eq!(p["full"], false, "{p:#}");
    assert_eq!(p["kinds"], json!(["configmaps"]));
    assert_eq!(p["namespaces"], json!([NS]));
    assert_eq!(p["label"], format!("namespaces: {NS}; kinds: configmaps"));

    let d = parse(&env.ok(&args(&cfg, &["--json", "drill", "--source", "cfg"])));
    assert_eq!(d["snapshot"], same.as_str(), "{d:#}");

    let fg = parse(&env.ok(&args(
        &cfg,
        &["--json", "forget", "--source", "cfg", "--keep-last", "1"],
    )));
    assert_eq!(fg["groups"][0]["forget"], json!([full]), "{fg:#}");
    assert_eq!(fg["groups"][1]["forget"], json!([]), "{fg:#}");
    assert_eq!(snapshots(&env, &cfg).len(), 2);
}
