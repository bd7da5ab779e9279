//! `restore postgres SNAPSHOT --table T [--as NEW]` through the built binary
//! against a real PostgreSQL 15 (`TempCluster` with the tiny Kubernaut
//! fixture): beside the live table (nothing live touched, no writer
//! stopped), in place with the writers quiesced by configured commands, a
//! table with a serial column and indexes (no name collides), and the
//! refusals (exit 2, nothing touched). Contents are compared with the
//! test's own hashes (`fixture::content_hashes`), not Lifeboat's facts.

use crate::common;

use common::pg::{backup_json, databases, hashes, names, quiesce_config, read_log, sql};
use common::{Env, rt, setup};

/// `backup postgres --source db` with the configuration `cfg`; the
/// snapshot's id.
fn backup(env: &Env, cfg: &str, extra: &[&str]) -> String {
    let mut a = vec!["--config", cfg, "--source", "db"];
    a.extend_from_slice(extra);
    backup_json(env, &a)["id"].as_str().unwrap().to_string()
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
    let cfg = quiesce_config(&env, &cluster, &log);
    let at_backup = hashes(&rt, &src);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, DAMAGE);
    let damaged = hashes(&rt, &src);
    assert_ne!(damaged, at_backup);
    let dbs = databases(&rt, &cluster);

    let out = env.ok_json(&[
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
    let cfg = quiesce_config(&env, &cluster, &log);
    let at_backup = hashes(&rt, &src);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, DAMAGE);
    let damaged = hashes(&rt, &src);

    let out = env.ok_json(&[
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
    let cfg = quiesce_config(&env, &cluster, &log);
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

/// A schema of two tables (a serial key, a foreign key between them, an
/// index), written before the backup.
const BILLING: &str = "
    CREATE SCHEMA billing;
    CREATE TABLE billing.accounts (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
    CREATE TABLE billing.invoices (id bigserial PRIMARY KEY,
        account_id int NOT NULL REFERENCES billing.accounts (id),
        amount numeric(12, 2) NOT NULL, issued date NOT NULL);
    CREATE INDEX invoices_account_idx ON billing.invoices (account_id);
    INSERT INTO billing.accounts (name) SELECT 'account ' || g FROM generate_series(1, 20) g;
    INSERT INTO billing.invoices (account_id, amount, issued)
        SELECT 1 + g % 20, g * 1.25, date '2026-01-01' + g FROM generate_series(1, 200) g;";

/// The schema's rows changed after the backup (and one public table's).
const BILLING_DAMAGE: &str = "
    DELETE FROM billing.invoices WHERE id % 3 = 0;
    UPDATE billing.invoices SET amount = 0 WHERE id % 3 = 1;
    INSERT INTO billing.accounts (name) VALUES ('added after the backup');
    DELETE FROM goose_db_version WHERE version_id % 2 = 0;";

/// `--schema S --as NEW` restores the whole schema beside the live one
/// (nothing live touched, no writer stopped, no scratch database left);
/// `--schema S` then restores it over the live one with the writers
/// quiesced. Both times every table of the schema equals the snapshot's,
/// row for row, and everything else is as it was.
#[test]
fn a_schema_restored_beside_then_in_place_equals_the_snapshot() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    sql(&rt, &src, BILLING);
    let log = env.path("quiesce.log");
    let cfg = quiesce_config(&env, &cluster, &log);
    let at_backup = hashes(&rt, &src);
    assert_eq!(at_backup["billing.accounts"].rows, 20);
    assert_eq!(at_backup["billing.invoices"].rows, 200);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, BILLING_DAMAGE);
    let damaged = hashes(&rt, &src);
    for t in [
        "billing.accounts",
        "billing.invoices",
        "public.goose_db_version",
    ] {
        assert_ne!(damaged[t], at_backup[t], "{t} was not damaged");
    }
    let dbs = databases(&rt, &cluster);
    let restore = |extra: &[&str]| {
        let mut a = vec![
            "--json",
            "--config",
            cfg.as_str(),
            "restore",
            "postgres",
            id.as_str(),
            "--source",
            "db",
        ];
        a.extend_from_slice(extra);
        env.ok_json(&a)
    };
    // Each restored table's row count, as the result reports it.
    let rows = |out: &serde_json::Value| -> Vec<(String, i64, i64)> {
        out["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .map(|t| {
                (
                    t["to"].as_str().unwrap().to_string(),
                    t["expected_rows"].as_i64().unwrap(),
                    t["rows"].as_i64().unwrap(),
                )
            })
            .collect()
    };

    // Beside.
    let out = restore(&["--schema", "billing", "--as", "billing_restored"]);
    assert_eq!(out["mode"], "beside", "{out}");
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["writers"], "none", "{out}");
    assert_eq!(
        out["schemas"],
        serde_json::json!([["billing", "billing_restored"]]),
        "{out}"
    );
    assert_eq!(
        rows(&out),
        vec![
            ("billing_restored.accounts".to_string(), 20, 20),
            ("billing_restored.invoices".to_string(), 200, 200),
        ],
        "{out}"
    );
    assert_eq!(read_log(&log), "");
    assert_eq!(databases(&rt, &cluster), dbs);
    let after = hashes(&rt, &src);
    let mut want = damaged.clone();
    want.insert(
        "billing_restored.accounts".into(),
        at_backup["billing.accounts"].clone(),
    );
    want.insert(
        "billing_restored.invoices".into(),
        at_backup["billing.invoices"].clone(),
    );
    assert_eq!(after, want, "the live schema changed or the copy differs");
    // The copy's sequences are its own and continue after its rows.
    sql(
        &rt,
        &src,
        "INSERT INTO billing_restored.accounts (name) VALUES ('new in the copy')",
    );
    assert_eq!(
        names(
            &rt,
            &src,
            "SELECT max(id)::text FROM billing_restored.accounts"
        ),
        vec!["21"]
    );
    assert_eq!(
        hashes(&rt, &src)["billing.accounts"],
        damaged["billing.accounts"]
    );

    // In place.
    let out = restore(&["--schema", "billing"]);
    assert_eq!(out["mode"], "in_place", "{out}");
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["writers"], "resumed", "{out}");
    assert_eq!(
        rows(&out),
        vec![
            ("billing.accounts".to_string(), 20, 20),
            ("billing.invoices".to_string(), 200, 200),
        ],
        "{out}"
    );
    assert_eq!(read_log(&log), "pre\npost\n");
    assert_eq!(databases(&rt, &cluster), dbs);
    let after = hashes(&rt, &src);
    for (k, v) in &after {
        let want = if k.starts_with("billing.") {
            &at_backup[k]
        } else if k.starts_with("billing_restored.") {
            v
        } else {
            &damaged[k]
        };
        assert_eq!(v, want, "{k}");
    }
    assert_eq!(
        after.keys().filter(|k| k.starts_with("billing.")).count(),
        2
    );
    // Its foreign key and index came back and hold.
    assert_eq!(
        names(
            &rt,
            &src,
            "SELECT conname::text FROM pg_constraint
              WHERE conrelid = 'billing.invoices'::regclass AND contype = 'f'"
        ),
        vec!["invoices_account_id_fkey"]
    );
    assert_eq!(
        names(
            &rt,
            &src,
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'billing' ORDER BY 1"
        ),
        vec![
            "accounts_name_key",
            "accounts_pkey",
            "invoices_account_idx",
            "invoices_pkey"
        ]
    );
    let bad = rt.block_on(async {
        let c = src.connect().await.unwrap();
        c.batch_execute(
            "INSERT INTO billing.invoices (account_id, amount, issued) VALUES (999, 1, '2026-01-01')",
        )
        .await
        .unwrap_err()
    });
    assert!(
        bad.as_db_error()
            .is_some_and(|e| e.message().contains("foreign key")),
        "{bad:?}"
    );
}

/// Whether the target is the source's database (so that its writers must
/// stop) is asked of both servers. When either cannot say — the role may
/// not execute `pg_control_system()` on the target or on the source, or
/// the source's server is down — the table restore is refused with exit 2
/// (docs/exit-codes.md, "PostgreSQL commands": identity not readable)
/// before anything is touched: no writer stopped, no table changed, no
/// scratch database, in place and beside alike.
#[test]
fn unreadable_server_identity_refuses_and_changes_nothing() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let log = env.path("quiesce.log");
    let cfg = quiesce_config(&env, &cluster, &log);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, DAMAGE);

    // A role that may log in and read the tables, on a server whose
    // pg_control_system() is not executable by PUBLIC (a hardened server).
    let password = cluster.password().expose().replace('\'', "''");
    sql(
        &rt,
        &src,
        &format!(
            "CREATE ROLE restorer LOGIN PASSWORD '{password}';
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO restorer;
             REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC;"
        ),
    );
    assert_eq!(
        names(
            &rt,
            &src,
            "SELECT has_function_privilege('restorer', 'pg_control_system()', 'EXECUTE')::text"
        ),
        vec!["false"]
    );
    let restorer = format!("postgresql://restorer@127.0.0.1:{}/src", cluster.port());
    let dead = format!(
        "postgresql://{}@127.0.0.1:{}/src",
        cluster.superuser(),
        common::free_port()
    );
    let source_as_restorer = common::pg::quiesce_config_at(&env, "restorer.yaml", &restorer, &log);
    let source_down = common::pg::quiesce_config_at(&env, "down.yaml", &dead, &log);
    let superuser = cluster.url("src");
    // (what cannot be read, configuration, target, what the message says)
    let cases = [
        (
            "the target's",
            cfg.as_str(),
            restorer.as_str(),
            "permission denied for function pg_control_system",
        ),
        (
            "the source's",
            source_as_restorer.as_str(),
            superuser.as_str(),
            "permission denied for function pg_control_system",
        ),
        (
            "the source's (down)",
            source_down.as_str(),
            superuser.as_str(),
            "cannot reach",
        ),
    ];
    let before = hashes(&rt, &src);
    let dbs = databases(&rt, &cluster);
    for (what, config, target, says) in cases {
        for chosen in [
            &["--table", "remediation_history"][..],
            &["--table", "goose_db_version", "--as", "goose_copy"][..],
        ] {
            let mut args = vec![
                "--config",
                config,
                "restore",
                "postgres",
                id.as_str(),
                "--source",
                "db",
                "--target",
                target,
            ];
            args.extend_from_slice(chosen);
            let (_, err) = env.exits_with(&args, 2);
            assert!(
                err.contains("cannot tell whether")
                    && err.contains("server identity")
                    && err.contains("nothing was changed")
                    && err.contains(says),
                "{what} {chosen:?}: {err}"
            );
            assert_eq!(
                hashes(&rt, &src),
                before,
                "{what} {chosen:?} changed the source"
            );
            assert_eq!(read_log(&log), "", "{what} {chosen:?} stopped the writers");
            assert_eq!(
                databases(&rt, &cluster),
                dbs,
                "{what} {chosen:?} left a database"
            );
        }
    }
}

/// Ctrl-C while the chosen table is being replaced in place: the restore's
/// one transaction never commits (pg_restore is killed while it waits for a
/// lock, the test's pause point: no sleeps), the writers are brought back,
/// exit 130, and the table is as it was. The same restore then succeeds.
#[test]
fn a_table_restore_interrupted_in_place_changes_nothing_and_resumes_the_writers() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let log = env.path("quiesce.log");
    let cfg = quiesce_config(&env, &cluster, &log);
    let at_backup = hashes(&rt, &src);
    let id = backup(&env, &cfg, &[]);
    sql(&rt, &src, DAMAGE);
    let damaged = hashes(&rt, &src);
    let dbs = databases(&rt, &cluster);
    let args: &[&str] = &[
        "--config",
        &cfg,
        "restore",
        "postgres",
        &id,
        "--source",
        "db",
        "--table",
        "remediation_history",
    ];

    // Hold a lock that pg_restore --clean must wait for.
    let locker = rt.block_on(src.connect()).unwrap();
    rt.block_on(
        locker.batch_execute("BEGIN; LOCK TABLE remediation_history IN ACCESS EXCLUSIVE MODE"),
    )
    .unwrap();
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Other client sessions of the source's database, as seen from a
    // session of its own (pg_stat_activity is cached per transaction).
    let watcher = rt.block_on(src.connect()).unwrap();
    let sessions = |condition: &str| -> i64 {
        rt.block_on(watcher.query_one(
            &format!(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = 'src' AND backend_type = 'client backend'
                    AND pid <> pg_backend_pid() AND {condition}"
            ),
            &[],
        ))
        .unwrap()
        .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while sessions("wait_event_type = 'Lock'") == 0 {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "pg_restore never blocked on the lock: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_log(&log), "pre\n", "the writers were not stopped");
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted during the restore")
            && stderr.contains("nothing was changed")
            && stderr.contains("the writers were brought back"),
        "{stderr}"
    );
    assert_eq!(
        read_log(&log),
        "pre\npost\n",
        "the writers were not brought back"
    );

    // Let the killed pg_restore's session have its lock: finding its client
    // gone, it rolls back. Then nothing may have changed.
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
    drop(locker);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sessions("true") > 0 {
        assert!(
            Instant::now() < deadline,
            "the interrupted pg_restore's session is still there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(hashes(&rt, &src), damaged);
    assert_eq!(databases(&rt, &cluster), dbs);

    // The same restore, not interrupted, brings the table back.
    let mut json = vec!["--json"];
    json.extend_from_slice(args);
    let out = env.ok_json(&json);
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["writers"], "resumed", "{out}");
    assert_eq!(read_log(&log), "pre\npost\npre\npost\n");
    assert_eq!(
        hashes(&rt, &src)["public.remediation_history"],
        at_backup["public.remediation_history"]
    );
}
