//! "Never restore over the database being protected" and "drills prove the
//! production path", through the built binary against real PostgreSQL 15
//! servers: whether a drill's scratch or a restore's target is the source is
//! asked of the servers (system identifier, database OID, data directory,
//! start time), never read from how a URL is spelled; an existing database
//! that is not the source is not restored over without `--clean-existing`;
//! a source's `restore.jobs` is what restores and drills use.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, Env, rt, setup};
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;

/// Rows written after the last backup: a restore into this database would
/// lose them. Every call writes one more (version_id 999).
fn write_after_backup(rt: &tokio::runtime::Runtime, db: &ConnConfig) {
    rt.block_on(async {
        let c = db.connect().await.unwrap();
        c.batch_execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)")
            .await
            .unwrap();
    });
}

/// How many rows [`write_after_backup`] wrote are there.
fn rows_written_after_backup(rt: &tokio::runtime::Runtime, db: &ConnConfig) -> i64 {
    rt.block_on(async {
        let c = db.connect().await.unwrap();
        c.query_one(
            "SELECT count(*) FROM goose_db_version WHERE version_id = 999",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    })
}

/// Whether exactly one row written after the backup is there.
fn row_written_after_backup_is_there(rt: &tokio::runtime::Runtime, db: &ConnConfig) -> bool {
    rows_written_after_backup(rt, db) == 1
}

/// The same database as `cluster.url(db)`, spelled `localhost` instead of
/// `127.0.0.1`, with an application name.
fn localhost_url(cluster: &TempCluster, db: &str) -> String {
    format!(
        "postgresql://{}@localhost:{}/{db}?application_name=x",
        cluster.superuser(),
        cluster.port()
    )
}

/// A config with the postgres source `db` (at `url`) whose writers are
/// quiesced by commands appending `pre`/`post` to `quiesce.log`, and `extra`
/// lines under the source.
fn write_config(env: &Env, url: &str, extra: &str) -> (PathBuf, PathBuf) {
    let log = env.path("quiesce.log");
    let cfg = env.path("lifeboat.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: \"{url}\"\n    quiesce:\n      commands:\n        pre: [[sh, -c, \"echo pre >> {l}\"]]\n        post: [[sh, -c, \"echo post >> {l}\"]]\n{extra}",
            repo = env.repo,
            l = log.display()
        ),
    )
    .unwrap();
    (cfg, log)
}

fn quiesce_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn drill_records(env: &Env) -> Vec<serde_json::Value> {
    let out = env.ok(&["--json", "drills"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The reproduction: `drill --db …127.0.0.1…/src --scratch
/// …localhost…/src` restored with --clean into production and passed. It is
/// refused (exit 2) and production keeps the row written after the backup;
/// the same scratch from the configuration, and from the daemon's scheduled
/// drill, is refused the same way.
#[test]
fn drill_refuses_the_source_under_another_spelling() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    env.ok(&["backup", "postgres", "--db", &cluster.url("src")]);
    write_after_backup(&rt, &src);

    for scratch in [
        format!(
            "postgresql://{}@localhost:{}/src",
            cluster.superuser(),
            cluster.port()
        ),
        localhost_url(&cluster, "src"),
    ] {
        let e = env.fails(
            &["drill", "--db", &cluster.url("src"), "--scratch", &scratch],
            2,
        );
        assert!(
            e.contains("IS the source database") && e.contains("Nothing was changed"),
            "{e}"
        );
        // Declaring a copy does not allow the very same server.
        let e = env.fails(
            &[
                "drill",
                "--db",
                &cluster.url("src"),
                "--scratch",
                &scratch,
                "--scratch-is-copy",
            ],
            2,
        );
        assert!(e.contains("IS the source database"), "{e}");
    }
    assert!(row_written_after_backup_is_there(&rt, &src));
    assert!(drill_records(&env).is_empty(), "a refusal is not a drill");

    // drill.scratch in the configuration, by the CLI and by the daemon.
    let token = common::write_token(&env);
    let (cfg, _) = write_config(
        &env,
        &cluster.url("src"),
        &format!(
            "    drill:\n      schedule: \"* * * * * *\"\n      scratch: {{url: \"{}\"}}\nserve:\n  token: {{file: {}}}\n",
            localhost_url(&cluster, "src"),
            token.display()
        ),
    );
    let c = cfg.to_str().unwrap();
    // This backup holds the first row; a second one is written after it.
    env.ok(&["--config", c, "backup", "postgres", "--source", "db"]);
    write_after_backup(&rt, &src);
    let e = env.fails(&["--config", c, "drill", "--source", "db"], 2);
    assert!(e.contains("IS the source database"), "{e}");
    let daemon = Daemon::start_active(&env, &cfg, "drills");
    daemon.poll(Duration::from_secs(60), "a refused scheduled drill", || {
        daemon
            .log_text()
            .contains("IS the source database")
            .then_some(())
    });
    daemon.stop();
    assert_eq!(rows_written_after_backup(&rt, &src), 2);
    assert!(drill_records(&env).is_empty());
}

/// A restore with `--target` spelled differently (localhost for 127.0.0.1,
/// an extra `?application_name=x`) into the configured source is a restore
/// of the source: its writers are quiesced and brought back.
#[test]
fn restore_into_the_source_spelled_differently_quiesces_the_writers() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let (cfg, log) = write_config(&env, &cluster.url("src"), "");
    let c = cfg.to_str().unwrap();
    env.ok(&["--config", c, "backup", "postgres", "--source", "db"]);
    write_after_backup(&rt, &cluster.conn_config("src"));
    let o = env.run(&[
        "--config",
        c,
        "restore",
        "postgres",
        "latest",
        "--source",
        "db",
        "--target",
        &localhost_url(&cluster, "src"),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(
        quiesce_log(&log),
        "pre\npost\n",
        "writers quiesced: {stderr}"
    );
    assert!(
        stderr.contains("is the database of source db") && stderr.contains("the same running"),
        "{stderr}"
    );
    // It was restored: the row written after the backup is gone.
    assert!(!row_written_after_backup_is_there(
        &rt,
        &cluster.conn_config("src")
    ));
}

/// A physical copy of the source's server (pg_basebackup started on another
/// port: same system identifier and database OID) is refused by a drill
/// unless declared with --scratch-is-copy, and named in a warning by a
/// restore, which does not quiesce the source's writers for it.
#[test]
fn physical_copy_refused_by_drill_unless_declared_and_warned_about_by_restore() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let (cfg, log) = write_config(&env, &cluster.url("src"), "");
    let c = cfg.to_str().unwrap();
    env.ok(&["--config", c, "backup", "postgres", "--source", "db"]);
    let copy = cluster.physical_copy().unwrap();
    write_after_backup(&rt, &copy.conn_config("src"));

    let e = env.fails(
        &[
            "--config",
            c,
            "drill",
            "--source",
            "db",
            "--scratch",
            &copy.url("src"),
        ],
        2,
    );
    assert!(
        e.contains("physical copy") && e.contains("--scratch-is-copy"),
        "{e}"
    );
    assert!(row_written_after_backup_is_there(
        &rt,
        &copy.conn_config("src")
    ));
    let out = env.ok(&[
        "--config",
        c,
        "--json",
        "drill",
        "--source",
        "db",
        "--scratch",
        &copy.url("src"),
        "--scratch-is-copy",
    ]);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["ok"], true, "{d:#}");
    assert!(!row_written_after_backup_is_there(
        &rt,
        &copy.conn_config("src")
    ));

    // Restore: a warning names the copy; the source's writers stay up. The
    // copy holds the source's objects: --clean-existing says to replace them.
    write_after_backup(&rt, &copy.conn_config("src"));
    let target = copy.url("src");
    let args = [
        "--config", c, "restore", "postgres", "latest", "--source", "db", "--target", &target,
    ];
    let e = env.fails(&args, 2);
    assert!(
        e.contains("physical copy") && e.contains("--clean-existing"),
        "{e}"
    );
    assert!(row_written_after_backup_is_there(
        &rt,
        &copy.conn_config("src")
    ));
    let mut args = args.to_vec();
    args.push("--clean-existing");
    let o = env.run(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING: the target")
            && stderr.contains("is a physical copy of source db"),
        "{stderr}"
    );
    assert_eq!(
        quiesce_log(&log),
        "",
        "the source's writers were not stopped"
    );
    assert!(!row_written_after_backup_is_there(
        &rt,
        &copy.conn_config("src")
    ));
}

/// An existing database holding objects that is not the configured source
/// is not restored over without --clean-existing: refused (exit 2) listing
/// what is there, nothing changed. A drill's scratch database likewise,
/// unless an earlier drill created it (its mark); a drill drops what it created.
#[test]
fn existing_databases_are_restored_over_only_when_told() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let snap: serde_json::Value = serde_json::from_str(&env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--db",
        &cluster.url("src"),
    ]))
    .unwrap();
    let id = snap["id"].as_str().unwrap();
    let other = rt.block_on(cluster.create_database("other")).unwrap();
    rt.block_on(async {
        let c = other.connect().await.unwrap();
        // Tables of the snapshot's names, something else in them.
        c.batch_execute(
            "CREATE TABLE goose_db_version (note text); INSERT INTO goose_db_version VALUES ('mine'); \
             CREATE TABLE workflow_catalog (note text)",
        )
            .await
            .unwrap();
    });
    let count_tables = |db: &ConnConfig| -> i64 {
        rt.block_on(async {
            let c = db.connect().await.unwrap();
            c.query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
        })
    };
    let e = env.fails(
        &["restore", "postgres", id, "--target", &cluster.url("other")],
        2,
    );
    assert!(
        e.contains("table public.goose_db_version, table public.workflow_catalog")
            && e.contains("--clean-existing")
            && e.contains("Nothing was changed"),
        "{e}"
    );
    assert_eq!(count_tables(&other), 2, "nothing restored");
    // The drill refuses it as its scratch database too.
    let e = env.fails(
        &[
            "drill",
            "--db",
            &cluster.url("src"),
            "--scratch",
            &cluster.url("other"),
        ],
        2,
    );
    assert!(
        e.contains("holds objects a drill did not put there")
            && e.contains("table public.goose_db_version"),
        "{e}"
    );
    assert_eq!(count_tables(&other), 2);
    env.ok(&[
        "restore",
        "postgres",
        id,
        "--target",
        &cluster.url("other"),
        "--clean-existing",
    ]);
    assert!(count_tables(&other) > 2);

    // A scratch database the drill creates is marked and dropped; one left
    // by a killed drill (marked, half restored) is created afresh and dropped.
    let exists = |db: &str| -> bool {
        rt.block_on(async {
            let c = cluster.conn_config("postgres").connect().await.unwrap();
            c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
                .await
                .unwrap()
                .is_some()
        })
    };
    let out = env.ok(&[
        "--json",
        "drill",
        "--db",
        &cluster.url("src"),
        "--scratch",
        &cluster.url("scratch"),
    ]);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["ok"], true, "{d:#}");
    assert!(!exists("scratch"));
    let left = rt.block_on(cluster.create_database("scratch")).unwrap();
    rt.block_on(async {
        let c = left.connect().await.unwrap();
        c.batch_execute(
            "COMMENT ON DATABASE scratch IS 'lifeboat drill scratch database'; CREATE TABLE half (id int)",
        )
        .await
        .unwrap();
    });
    let out = env.ok(&[
        "--json",
        "drill",
        "--db",
        &cluster.url("src"),
        "--scratch",
        &cluster.url("scratch"),
    ]);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["ok"], true, "{d:#}");
    assert!(
        d["target"]
            .as_str()
            .unwrap()
            .contains("an earlier drill had left it"),
        "{d:#}"
    );
    assert!(!exists("scratch"));
}

/// When the configured source cannot be asked who it is (it is down), a
/// restore into another --target is refused, saying what to do; with
/// --source-unreachable it restores there as another database, writers not
/// quiesced.
#[test]
fn source_down_needs_source_unreachable() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let snap: serde_json::Value = serde_json::from_str(&env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--db",
        &cluster.url("src"),
    ]))
    .unwrap();
    let id = snap["id"].as_str().unwrap();
    // The snapshot's source name is its display URL; configure that name
    // with a server nobody listens on.
    let name = snap["source"].as_str().unwrap().to_string();
    let dead = format!(
        "postgresql://lifeboat@127.0.0.1:{}/src",
        common::free_port()
    );
    let log = env.path("quiesce.log");
    let cfg = env.path("down.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\nsources:\n  \"{name}\":\n    kind: postgres\n    postgres:\n      url: \"{dead}\"\n    quiesce:\n      commands:\n        pre: [[sh, -c, \"echo pre >> {l}\"]]\n        post: [[sh, -c, \"echo post >> {l}\"]]\n",
            repo = env.repo,
            l = log.display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let target = cluster.url("rebuilt");
    let e = env.fails(
        &[
            "--config", c, "restore", "postgres", id, "--target", &target,
        ],
        2,
    );
    assert!(
        e.contains("cannot tell whether the target")
            && e.contains("cannot reach")
            && e.contains("--source-unreachable"),
        "{e}"
    );
    let o = env.run(&[
        "--config",
        c,
        "restore",
        "postgres",
        id,
        "--target",
        &target,
        "--source-unreachable",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("WARNING: --source-unreachable"), "{stderr}");
    assert_eq!(quiesce_log(&log), "");
}

/// A source's `restore: {jobs: 2}` is the restore path of `restore
/// postgres` and of its drills (CLI and daemon): staged, the largest table's
/// rows spread over the jobs; `--jobs` overrides it.
#[test]
fn restore_jobs_of_the_source_are_used_by_restores_and_drills() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    // As in Kubernaut's database, the embeddings hold most of the bytes, so
    // that 2 jobs spread their rows.
    common::make_embeddings_dominate(&rt, &cluster.conn_config("src"));
    let (cfg, _) = write_config(&env, &cluster.url("src"), "    restore: {jobs: 2}\n");
    let c = cfg.to_str().unwrap();
    env.ok(&["--config", c, "backup", "postgres", "--source", "db"]);

    let out = env.ok(&[
        "--config",
        c,
        "--json",
        "restore",
        "postgres",
        "latest",
        "--source",
        "db",
        "--target",
        &cluster.url("r2"),
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["split_tables"],
        serde_json::json!(["public.incident_embeddings"]),
        "{r:#}"
    );
    assert!(r["staging_seconds"].is_number(), "{r:#}");
    let out = env.ok(&[
        "--config",
        c,
        "--json",
        "restore",
        "postgres",
        "latest",
        "--source",
        "db",
        "--target",
        &cluster.url("r1"),
        "--jobs",
        "1",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["split_tables"], serde_json::json!([]), "{r:#}");
    assert!(r.get("staging_seconds").is_none(), "{r:#}");

    let restore_step = |d: &serde_json::Value| -> String {
        d["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "restore")
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let d: serde_json::Value =
        serde_json::from_str(&env.ok(&["--config", c, "--json", "drill", "--source", "db"]))
            .unwrap();
    assert_eq!(d["ok"], true, "{d:#}");
    let step = restore_step(&d);
    assert!(
        step.contains("2 jobs (staged)")
            && step.contains("rows of public.incident_embeddings spread over the jobs"),
        "{step}"
    );
    let d: serde_json::Value = serde_json::from_str(&env.ok(&[
        "--config", c, "--json", "drill", "--source", "db", "--jobs", "1",
    ]))
    .unwrap();
    assert!(restore_step(&d).contains("1 job (streamed)"), "{d:#}");
}
