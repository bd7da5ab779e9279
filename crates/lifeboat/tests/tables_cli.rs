//! `restore postgres SNAPSHOT --table T [--as NEW]` through the built binary
//! against a real PostgreSQL 15 (`TempCluster` with the tiny Kubernaut
//! fixture): beside the live table (nothing live touched, no writer
//! stopped), in place with the writers quiesced by configured commands, a
//! table with a serial column and indexes (no name collides), and the
//! refusals (exit 2, nothing touched). Contents are compared with the
//! test's own hashes (`fixture::content_hashes`), not Lifeboat's facts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Env, rt, setup};
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::fixture::{self, TableHash};

fn hashes(rt: &tokio::runtime::Runtime, cfg: &ConnConfig) -> BTreeMap<String, TableHash> {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        fixture::content_hashes(&c).await.unwrap()
    })
}

fn sql(rt: &tokio::runtime::Runtime, cfg: &ConnConfig, q: &str) {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        c.batch_execute(q).await.unwrap();
    })
}

/// Names of one column of a query's rows, as text.
fn names(rt: &tokio::runtime::Runtime, cfg: &ConnConfig, q: &str) -> Vec<String> {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        c.query(q, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    })
}

/// The databases of the cluster (no scratch database may be left).
fn databases(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> Vec<String> {
    names(
        rt,
        &cluster.conn_config("postgres"),
        "SELECT datname::text FROM pg_database WHERE NOT datistemplate ORDER BY 1",
    )
}

/// A configuration with source `db` (the cluster's `src`) quiesced by
/// commands that append `pre` and `post` to `log` (as in postgres_cli.rs).
fn config(env: &Env, cluster: &TempCluster, log: &Path) -> String {
    let config = env.path("lifeboat.yaml");
    std::fs::write(
        &config,
        format!(
            "repository:\n  url: {repo}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: {url}\n    quiesce:\n      commands:\n        pre: [[sh, -c, \"echo pre >> {l}\"]]\n        post: [[sh, -c, \"echo post >> {l}\"]]\n",
            repo = env.repo,
            url = cluster.url("src"),
            l = log.display(),
        ),
    )
    .unwrap();
    config.display().to_string()
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn backup(env: &Env, cfg: &str, extra: &[&str]) -> String {
    let mut a = vec![
        "--json", "--config", cfg, "backup", "postgres", "--source", "db",
    ];
    a.extend_from_slice(extra);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&a)).expect("backup json");
    v["id"].as_str().unwrap().to_string()
}

/// Rows changed after the backup: some deleted, some updated, some added.
const DAMAGE: &str = "
    DELETE FROM goose_db_version WHERE version_id % 3 = 0;
    INSERT INTO goose_db_version (version_id, is_applied) VALUES (1000, false);
    DELETE FROM remediation_history WHERE id % 4 = 0;
    UPDATE remediation_history SET status = 'tampered' WHERE id % 4 = 1;";

#[test]
fn a_table_restored_beside_leaves_the_live_one_and_equals_the_snapshot() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let log = env.path("quiesce.log");
    let cfg = config(&env, &cluster, &log);
    let at_backup = hashes(&rt, &src);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, DAMAGE);
    let damaged = hashes(&rt, &src);
    assert_ne!(damaged, at_backup);
    let dbs = databases(&rt, &cluster);

    let out = env.ok(&[
        "--json",
        "--config",
        &cfg,
        "restore",
        "postgres",
        &id,
        "--source",
        "db",
        "--table",
        "goose_db_version",
        "--as",
        "goose_restored",
        "--table",
        "public.remediation_history",
        "--as",
        "remediation_history_restored",
    ]);
    let out: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(out["mode"], "beside", "{out}");
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["writers"], "none", "{out}");
    assert_eq!(out["tables"][0]["to"], "public.goose_restored", "{out}");
    // No writer stopped, no scratch database left.
    assert_eq!(read_log(&log), "");
    assert_eq!(databases(&rt, &cluster), dbs);

    let after = hashes(&rt, &src);
    // The live tables are as they were (damaged); the copies are the snapshot's.
    for (k, v) in &damaged {
        assert_eq!(after.get(k), Some(v), "{k} changed");
    }
    assert_eq!(
        after["public.goose_restored"],
        at_backup["public.goose_db_version"]
    );
    assert_eq!(
        after["public.remediation_history_restored"],
        at_backup["public.remediation_history"]
    );
    // Serial column and indexes: the copy has its own, named after it, and
    // the live table keeps its own.
    let idx = |t: &str| {
        names(
            &rt,
            &src,
            &format!("SELECT indexname::text FROM pg_indexes WHERE tablename = '{t}' ORDER BY 1"),
        )
    };
    assert_eq!(
        idx("remediation_history"),
        vec![
            "remediation_history_details_gin",
            "remediation_history_pkey",
            "remediation_history_started_idx"
        ]
    );
    assert_eq!(
        idx("remediation_history_restored"),
        vec![
            "remediation_history_restored_details_gin",
            "remediation_history_restored_pkey",
            "remediation_history_restored_started_idx"
        ]
    );
    let default = names(
        &rt,
        &src,
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
          WHERE d.adrelid = 'remediation_history_restored'::regclass AND d.adnum = 1",
    );
    assert_eq!(
        default,
        vec!["nextval('remediation_history_restored_id_seq'::regclass)"]
    );
    // The copy's sequence continues after its rows; the live one's is its own.
    sql(
        &rt,
        &src,
        "INSERT INTO remediation_history_restored (signal_name, namespace, target_resource, workflow_id, status, started_at, details)
         VALUES ('s', 'n', 'r', 'w', 'new', now(), '{}')",
    );

    // Restoring beside again under a name now taken: refused, nothing touched.
    let before = hashes(&rt, &src);
    let (_, err) = env.exits_with(
        &[
            "--config",
            &cfg,
            "restore",
            "postgres",
            &id,
            "--source",
            "db",
            "--table",
            "goose_db_version",
            "--as",
            "goose_restored",
        ],
        2,
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(hashes(&rt, &src), before);
    assert_eq!(databases(&rt, &cluster), dbs);
}

#[test]
fn a_table_restored_in_place_with_its_writers_quiesced_gets_its_rows_back() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let log = env.path("quiesce.log");
    let cfg = config(&env, &cluster, &log);
    let at_backup = hashes(&rt, &src);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, DAMAGE);
    let damaged = hashes(&rt, &src);

    let out = env.ok(&[
        "--json",
        "--config",
        &cfg,
        "restore",
        "postgres",
        &id,
        "--source",
        "db",
        "--table",
        "remediation_history",
    ]);
    let out: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(out["mode"], "in_place", "{out}");
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["writers"], "resumed", "{out}");
    assert_eq!(read_log(&log), "pre\npost\n");
    let after = hashes(&rt, &src);
    // The chosen table is the snapshot's again; the others are untouched.
    assert_eq!(
        after["public.remediation_history"],
        at_backup["public.remediation_history"]
    );
    assert_eq!(
        after["public.goose_db_version"],
        damaged["public.goose_db_version"]
    );
    for (k, v) in &damaged {
        if k != "public.remediation_history" {
            assert_eq!(after.get(k), Some(v), "{k} changed");
        }
    }
    // Its indexes and sequence are back under their own names and work.
    let idx = names(
        &rt,
        &src,
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'remediation_history' ORDER BY 1",
    );
    assert_eq!(idx.len(), 3, "{idx:?}");
    sql(
        &rt,
        &src,
        "INSERT INTO remediation_history (signal_name, namespace, target_resource, workflow_id, status, started_at, details)
         VALUES ('s', 'n', 'r', 'w', 'new', now(), '{}')",
    );
}

#[test]
fn refusals_exit_2_and_touch_nothing() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let log = env.path("quiesce.log");
    let cfg = config(&env, &cluster, &log);
    let full = backup(&env, &cfg, &[]);
    let partial = backup(&env, &cfg, &["--table", "workflow_catalog"]);
    sql(&rt, &src, DAMAGE);
    let before = hashes(&rt, &src);
    let dbs = databases(&rt, &cluster);
    let base = |snap: &str| -> Vec<String> {
        [
            "--config", &cfg, "restore", "postgres", snap, "--source", "db",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            &full,
            vec!["--table", "no_such_table"],
            "has no table no_such_table",
        ),
        (
            &full,
            vec!["--table", "goose_db_version", "--as", "workflow_catalog"],
            "already exists",
        ),
        (
            &full,
            vec![
                "--table",
                "goose_db_version",
                "--table",
                "workflow_catalog",
                "--as",
                "x",
            ],
            "one --as per --table",
        ),
        (
            &partial,
            vec!["--table", "goose_db_version"],
            "partial snapshot",
        ),
        (&full, vec!["--schema", "nope"], "holds no schema nope"),
    ];
    for (snap, extra, says) in cases {
        let mut args = base(snap);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, err) = env.exits_with(&args, 2);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert_eq!(hashes(&rt, &src), before, "{extra:?} changed the source");
        assert_eq!(read_log(&log), "", "{extra:?} stopped the writers");
        assert_eq!(databases(&rt, &cluster), dbs, "{extra:?} left a database");
    }
}
