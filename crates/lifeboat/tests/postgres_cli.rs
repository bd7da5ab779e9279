//! `backup postgres`, `restore postgres`, `verify` and `demo` through the built
//! binary, against real PostgreSQL 15 servers that each test starts
//! (`TempCluster`). Comparisons use content hashes computed by the test itself
//! (`fixture::content_hashes`), not Lifeboat's facts.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::pg::{backup_json, chain_ok, corrupt, hashes, quiesce_config, read_log, sql};
use common::{Env, rt, setup};
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::fixture;

fn repo_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Must hold 1 (and 6 on the same server): the fixture round-trips with
/// identical content hashes and a verifying chain, streamed and with --jobs;
/// `verify` accepts the copy and reports a corrupted one with exit 7.
#[test]
fn round_trip_content_hashes_chain_and_verify() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    // As in Kubernaut's real database, the embeddings hold most of the bytes,
    // so that `--jobs 2` spreads their rows (split_restore).
    common::make_embeddings_dominate(&rt, &src);
    let before = hashes(&rt, &src);
    assert!(before.len() >= 8, "fixture has tables: {before:?}");
    let snap = backup_json(&env, &["--db", &cluster.url("src")]);
    let id = snap["id"].as_str().unwrap().to_string();
    let layout = &snap["facts"]["archive"];
    assert!(
        layout["blocks"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["tag"] == "incident_embeddings")),
        "the backup recorded the archive's layout: {layout}"
    );
    assert_eq!(
        snap["facts"]["pg_dump_version"]
            .as_str()
            .map(|s| s.contains("15")),
        Some(true)
    );

    // Streamed; --jobs 2 spreading the largest table's rows over the jobs
    // (split_restore); --jobs 2 with one job per table (plain pg_restore -j).
    for (db, jobs, whole) in [
        ("copy", "1", false),
        ("copy_jobs", "2", false),
        ("copy_whole", "2", true),
    ] {
        let url = cluster.url(db);
        let mut args = vec!["--json", "restore", "postgres", &id, "--target", &url];
        args.extend(["--jobs", jobs]);
        if whole {
            args.push("--whole-tables");
        }
        let out = env.ok_json(&args);
        assert_eq!(out["verified"], true, "{out}");
        let split = out["split_tables"]
            .as_array()
            .expect("split_tables")
            .clone();
        if jobs == "2" && !whole {
            assert_eq!(split, vec!["public.incident_embeddings"], "{out}");
            // The backup recorded the archive's layout, so staging left the
            // embeddings' block out and their rows came from the repository.
            assert_eq!(out["split_rows_from"], "repository", "{out}");
        } else {
            assert!(split.is_empty(), "{out}");
        }
        let cfg = cluster.conn_config(db);
        assert_eq!(hashes(&rt, &cfg), before, "contents of {db} differ");
        assert_eq!(chain_ok(&rt, &cfg), chain_ok(&rt, &src));
    }

    let out = env.ok(&["verify", "latest", "--target", &cluster.url("copy")]);
    assert!(out.contains("matches snapshot"), "{out}");
    corrupt(&rt, &cluster.conn_config("copy"));
    let o = env.run(&["verify", &id, "--target", &cluster.url("copy")]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.starts_with("WHAT") && table.contains("table public.audit_events "),
        "{table}"
    );
    // Restore over the corrupted database repairs it, streamed and split
    // (whose drops are run by Lifeboat: every object exists here).
    // Restoring over an existing database that is not a configured source
    // needs --clean-existing.
    let e = env.fails(
        &["restore", "postgres", &id, "--target", &cluster.url("copy")],
        2,
    );
    assert!(e.contains("--clean-existing"), "{e}");
    env.ok(&[
        "restore",
        "postgres",
        &id,
        "--target",
        &cluster.url("copy"),
        "--clean-existing",
    ]);
    assert_eq!(hashes(&rt, &cluster.conn_config("copy")), before);
    corrupt(&rt, &cluster.conn_config("copy_jobs"));
    let url = cluster.url("copy_jobs");
    let out = env.ok_json(&[
        "--json",
        "restore",
        "postgres",
        &id,
        "--target",
        &url,
        "--jobs",
        "2",
        "--clean-existing",
    ]);
    assert_eq!(
        (&out["verified"], &out["split_rows_from"]),
        (&serde_json::json!(true), &serde_json::json!("repository")),
        "{out}"
    );
    let cfg = cluster.conn_config("copy_jobs");
    assert_eq!(hashes(&rt, &cfg), before);
    assert_eq!(chain_ok(&rt, &cfg), chain_ok(&rt, &src));
}

/// `--jobs 2` with names that need quoting: the largest table lives in a
/// schema of its own under a quoted name, a small table of the same name sits
/// in `public`, another table has a foreign key to it, and its text holds
/// tabs, backslashes and newlines (COPY's escapes). The table is split, its
/// rows come from the repository, and everything restores identical, also
/// over itself.
#[test]
fn split_restore_of_quoted_names_in_two_schemas() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let odd = rt.block_on(cluster.create_database("odd")).unwrap();
    sql(
        &rt,
        &odd,
        r#"CREATE SCHEMA "Ops Data";
               CREATE TABLE "Ops Data"."Big Embeddings" (id bigint PRIMARY KEY, note text, v real[]);
               INSERT INTO "Ops Data"."Big Embeddings"
                 SELECT g, E'tab\there \\ back\nnew line ' || g,
                        (SELECT array_agg((random() + s * 0 + g * 0)::real) FROM generate_series(1, 200) s)
                 FROM generate_series(1, 3000) g;
               CREATE INDEX "big note" ON "Ops Data"."Big Embeddings" (note);
               CREATE TABLE public."Big Embeddings" (id int PRIMARY KEY, x text);
               INSERT INTO public."Big Embeddings" SELECT g, 'small ' || g FROM generate_series(1, 10) g;
               CREATE TABLE "Ops Data".refs (id int PRIMARY KEY,
                 big bigint REFERENCES "Ops Data"."Big Embeddings" (id));
               INSERT INTO "Ops Data".refs SELECT g, g FROM generate_series(1, 100) g;"#,
    );
    let before = hashes(&rt, &odd);
    assert_eq!(before.len(), 3, "{before:?}");
    assert_eq!(before["Ops Data.Big Embeddings"].rows, 3000);
    let snap = backup_json(&env, &["--db", &cluster.url("odd")]);
    let id = snap["id"].as_str().unwrap().to_string();
    let url = cluster.url("odd_copy");
    for round in ["into a new database", "over itself"] {
        let out = env.ok_json(&[
            "--json",
            "restore",
            "postgres",
            &id,
            "--target",
            &url,
            "--jobs",
            "2",
            "--clean-existing",
        ]);
        assert_eq!(out["verified"], true, "{round}: {out}");
        assert_eq!(
            out["split_tables"],
            serde_json::json!(["Ops Data.Big Embeddings"]),
            "{round}: {out}"
        );
        assert_eq!(out["split_rows_from"], "repository", "{round}: {out}");
        assert_eq!(
            hashes(&rt, &cluster.conn_config("odd_copy")),
            before,
            "{round}"
        );
    }
    // The index and the foreign key came back.
    rt.block_on(async {
        let c = cluster.conn_config("odd_copy").connect().await.unwrap();
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = 'Ops Data' AND indexname = 'big note'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
        let e = c
            .execute(r#"INSERT INTO "Ops Data".refs VALUES (1000, 99999)"#, &[])
            .await
            .unwrap_err();
        assert!(e.as_db_error().unwrap().message().contains("foreign key"), "{e:?}");
    });
}

/// Must hold 2: with a writer inserting during the backup, the recorded counts
/// equal the restored counts exactly.
#[test]
fn writer_during_backup_counts_match_restored() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, src) = (stop.clone(), written.clone(), src.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = src.connect().await.unwrap();
                while !stop.load(Ordering::SeqCst) {
                    fixture::append_audit_events(&c, 5).await.unwrap();
                    c.execute(
                        "INSERT INTO remediation_history (workflow_id, status, details) \
                         SELECT workflow_id, 'running', details FROM remediation_history LIMIT 1",
                        &[],
                    )
                    .await
                    .ok();
                    written.fetch_add(5, Ordering::SeqCst);
                }
            })
        })
    };
    while written.load(Ordering::SeqCst) < 50 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let during_start = written.load(Ordering::SeqCst);
    let snap = backup_json(&env, &["--db", &cluster.url("src")]);
    let during_end = written.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(
        during_end > during_start,
        "the writer must have written during the backup"
    );
    let id = snap["id"].as_str().unwrap();
    env.ok(&["restore", "postgres", id, "--target", &cluster.url("copy")]);
    let restored = hashes(&rt, &cluster.conn_config("copy"));
    let source_now = hashes(&rt, &src);
    let tables = snap["facts"]["tables"].as_array().unwrap();
    let mut checked = 0;
    for t in tables {
        let Some(rows) = t["rows"].as_i64() else {
            continue;
        };
        let name = format!(
            "{}.{}",
            t["table"]["schema"].as_str().unwrap(),
            t["table"]["name"].as_str().unwrap()
        );
        if let Some(h) = restored.get(&name) {
            assert_eq!(h.rows, rows, "{name}: recorded {rows}, restored {}", h.rows);
            checked += 1;
        }
    }
    assert!(checked >= 8, "checked {checked} tables");
    let recorded_audit = snap["facts"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"]["name"] == "audit_events")
        .and_then(|t| t["rows"].as_i64())
        .unwrap();
    let live_audit: i64 = source_now
        .iter()
        .filter(|(k, _)| k.starts_with("public.audit_events_"))
        .map(|(_, h)| h.rows)
        .sum();
    assert!(
        live_audit > recorded_audit,
        "the source kept growing after the snapshot ({live_audit} vs {recorded_audit})"
    );
    chain_ok(&rt, &cluster.conn_config("copy"));
}

/// Must hold 3: `--table` and `--schema-only` restore exactly what they hold.
#[test]
fn table_and_schema_only_snapshots_restore_exactly_that() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let before = hashes(&rt, &cluster.conn_config("src"));

    let tables = backup_json(
        &env,
        &[
            "--db",
            &cluster.url("src"),
            "--table",
            "remediation_history",
            "--table",
            "audit_events",
        ],
    );
    let schema = backup_json(&env, &["--db", &cluster.url("src"), "--schema-only"]);

    // Schema only: every table, no rows.
    env.ok(&[
        "restore",
        "postgres",
        schema["id"].as_str().unwrap(),
        "--target",
        &cluster.url("scoped"),
    ]);
    let got = hashes(&rt, &cluster.conn_config("scoped"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(got.values().all(|h| h.rows == 0), "{got:?}");

    // Tables (a --table dump holds no extensions or functions, so it goes into a
    // database that has the schema): those tables come back, nothing else does.
    env.ok(&[
        "restore",
        "postgres",
        tables["id"].as_str().unwrap(),
        "--target",
        &cluster.url("scoped"),
        "--clean-existing",
    ]);
    let got = hashes(&rt, &cluster.conn_config("scoped"));
    let mut filled = 0;
    for (k, h) in &got {
        if k == "public.remediation_history" || k.starts_with("public.audit_events_") {
            assert_eq!(h, &before[k], "{k}");
            filled += 1;
        } else {
            assert_eq!(h.rows, 0, "{k} must stay empty");
        }
    }
    assert!(filled >= 3);
    assert!(before["public.incident_embeddings"].rows > 0);
}

/// Flips one byte inside the stored (sealed) blob that holds byte `at` of
/// the snapshot's archive: only a read of that very blob meets the damage.
/// Returns the pack's id.
fn damage_blob_at(rt: &tokio::runtime::Runtime, env: &Env, snapshot: &str, at: u64) -> String {
    use lifeboat_repo::{Repository, Secret};
    rt.block_on(async {
        let storage =
            lifeboat_repo::storage::object::open_url(&env.repo, &Default::default()).unwrap();
        let repo = Repository::open(storage, &Secret::Passphrase(common::PASSWORD.into()))
            .await
            .unwrap();
        let snap = repo.find_snapshot(snapshot, None).await.unwrap();
        let index = repo.load_index().await.unwrap();
        let item = &snap.snapshot.items[0];
        let ids = lifeboat_repo::restore::chunk_ids(&repo, &index, item)
            .await
            .unwrap();
        let mut pos = 0u64;
        for id in ids {
            let loc = index.get(&id).unwrap();
            let end = pos + loc.entry.raw_length as u64;
            if at < end {
                let pack = index.pack(loc).id.clone();
                let path = Path::new(&env.repo).join(lifeboat_repo::format::pack_key(&pack));
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[(loc.entry.offset + loc.entry.length as u64 / 2) as usize] ^= 0x5a;
                std::fs::write(&path, bytes).unwrap();
                return pack;
            }
            pos = end;
        }
        panic!("byte {at} is beyond the archive ({pos} bytes)");
    })
}

/// Issue 16: a snapshot with one damaged blob, restored over the populated
/// source, changes nothing: every blob is authenticated before the first
/// destructive statement, streamed (default jobs) and with `--jobs 2`, whose
/// split table's rows are otherwise read from the repository after the
/// writers stopped. Exit 4, "nothing was changed", the writers never stopped,
/// every table as it was.
#[test]
fn damaged_pack_restored_over_the_source_changes_nothing() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    // A table big enough to be split with --jobs 2 (at least a third of all
    // table bytes), of random floats: no blob of it is shared with another.
    sql(
        &rt,
        &src,
        "CREATE TABLE big_rows (id bigint PRIMARY KEY, v real[]);
             INSERT INTO big_rows SELECT g,
               (SELECT array_agg((random() + s * 0 + g * 0)::real) FROM generate_series(1, 200) s)
             FROM generate_series(1, 6000) g;",
    );
    let log = env.path("quiesce.log");
    let cfg = quiesce_config(&env, &cluster, &log);
    let snap = backup_json(&env, &["--config", &cfg, "--source", "db"]);
    let id = snap["id"].as_str().unwrap().to_string();
    // Undamaged, --jobs 2 splits big_rows and reads its rows from the
    // repository (what makes the damage below reach a split restore late).
    let url = cluster.url("copy");
    let out = env.ok_json(&[
        "--json", "restore", "postgres", &id, "--target", &url, "--jobs", "2",
    ]);
    assert_eq!(
        out["split_tables"],
        serde_json::json!(["public.big_rows"]),
        "{out}"
    );
    assert_eq!(out["split_rows_from"], "repository", "{out}");

    let block = snap["facts"]["archive"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["tag"] == "big_rows")
        .expect("big_rows's data block in the layout")
        .clone();
    let (start, end) = (
        block["start"].as_u64().unwrap(),
        block["end"].as_u64().unwrap(),
    );
    let pack = damage_blob_at(&rt, &env, &id, start + (end - start) / 2);

    let before = hashes(&rt, &src);
    // --jobs 2 first: on the old code each mode on its own emptied tables.
    for jobs in ["2", "1"] {
        let o = env.run(&[
            "--config", &cfg, "restore", "postgres", &id, "--source", "db", "--jobs", jobs,
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            hashes(&rt, &src),
            before,
            "--jobs {jobs}: the source changed: {stderr}"
        );
        assert_eq!(o.status.code(), Some(4), "--jobs {jobs}: {stderr}");
        assert!(
            stderr.contains("nothing was changed")
                && stderr.contains("the writers were not stopped")
                && stderr.contains(&pack[..16]),
            "--jobs {jobs}: {stderr}"
        );
        assert_eq!(
            read_log(&log),
            "",
            "--jobs {jobs}: the writers were stopped"
        );
    }
    chain_ok(&rt, &src);
}

/// Issue 16: a restore interrupted after it had begun replacing the target
/// (SIGINT, then SIGTERM, while pg_restore waits on a lock) exits 11, says
/// the target is partial, and leaves the writers stopped (the command
/// quiescer's `post` is not run). A second restore then succeeds and brings
/// them back.
#[test]
fn interrupted_restore_leaves_target_partial_and_writers_stopped() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    let before = hashes(&rt, &src);
    let log = env.path("quiesce.log");
    let cfg_arg = quiesce_config(&env, &cluster, &log);
    env.ok(&["--config", &cfg_arg, "backup", "postgres", "--source", "db"]);
    corrupt(&rt, &src);

    let mut expected_log = String::new();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // Hold a lock that pg_restore --clean must wait for.
        let locker = rt.block_on(src.connect()).unwrap();
        rt.block_on(
            locker.batch_execute("BEGIN; LOCK TABLE remediation_history IN ACCESS EXCLUSIVE MODE"),
        )
        .unwrap();
        let mut child = env
            .cmd(&[
                "--config", &cfg_arg, "restore", "postgres", "latest", "--source", "db",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // pg_stat_activity is cached per transaction: watch from another session.
        let watcher = rt.block_on(src.connect()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waiting: i64 = rt
                .block_on(watcher.query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                    &[],
                ))
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!(
                    "pg_restore never blocked on the lock: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            assert!(child.try_wait().unwrap().is_none(), "restore ended early");
            std::thread::sleep(Duration::from_millis(50));
        }
        expected_log.push_str("pre\n");
        assert_eq!(read_log(&log), expected_log);
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(11), "signal {signal}: {stderr}");
        assert!(
            stderr.contains("the target is partial")
                && stderr.contains("THE WRITERS ARE LEFT STOPPED")
                && !stderr.contains("nothing partial was committed"),
            "signal {signal}: {stderr}"
        );
        assert_eq!(
            read_log(&log),
            expected_log,
            "signal {signal}: the writers were brought back onto a partial database"
        );
        rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
        drop(locker);
    }

    let out = env.ok(&[
        "--config", &cfg_arg, "restore", "postgres", "latest", "--source", "db",
    ]);
    assert!(out.contains("every fact verified"), "{out}");
    expected_log.push_str("pre\npost\n");
    assert_eq!(read_log(&log), expected_log);
    assert_eq!(hashes(&rt, &src), before);
    chain_ok(&rt, &src);
}

/// Must hold 5: bad input gets a clear error, a non-zero exit and leaves the
/// repository unchanged. (A pg_dump older than the server cannot be arranged
/// here: only PostgreSQL 15 is installed, and discovery prefers the exact
/// major; lifeboat-postgres tests discovery itself.)
#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let rt = rt();
    let (cluster, mut env) = setup(&rt);
    let snap = backup_json(&env, &["--db", &cluster.url("src")]);
    let id = snap["id"].as_str().unwrap().to_string();
    let stream = env.backup_bytes("not-a-db", b"just bytes");
    let stream_id = stream["id"].as_str().unwrap().to_string();
    let files = repo_files(Path::new(&env.repo));

    // Nonexistent table.
    let e = env.fails(
        &[
            "backup",
            "postgres",
            "--db",
            &cluster.url("src"),
            "--table",
            "no_such_table",
        ],
        2,
    );
    assert!(
        e.contains("no_such_table") && e.contains("does not exist"),
        "{e}"
    );
    // Unreachable server (a port nobody listens on).
    let port = lifeboat_test_ports::reserve();
    let e = env.fails(
        &[
            "backup",
            "postgres",
            "--db",
            &format!("postgresql://lifeboat@127.0.0.1:{port}/src"),
        ],
        1,
    );
    assert!(
        e.contains("cannot reach") && e.contains("check host and port"),
        "{e}"
    );
    // Restoring a non-PostgreSQL snapshot as PostgreSQL.
    let e = env.fails(
        &[
            "restore",
            "postgres",
            &stream_id,
            "--target",
            &cluster.url("x"),
        ],
        2,
    );
    assert!(
        e.contains("not a PostgreSQL one") && e.contains("restore stream"),
        "{e}"
    );
    // Not enough staging space for --jobs.
    let mut small = Env::new();
    small.repo = env.repo.clone();
    small.envs = env.envs.clone();
    small
        .envs
        .push(("LIFEBOAT_STAGING_LIMIT".into(), "1048576".into()));
    let e = small.fails(
        &[
            "restore",
            "postgres",
            &id,
            "--target",
            &cluster.url("staged"),
            "--jobs",
            "2",
        ],
        8,
    );
    assert!(
        e.contains("not enough free space") && e.contains("without --jobs"),
        "{e}"
    );
    // Wrong password.
    env.envs.retain(|(k, _)| k != "PGPASSWORD");
    env.envs.push(("PGPASSWORD".into(), "wrong".into()));
    let e = env.fails(&["backup", "postgres", "--db", &cluster.url("src")], 6);
    assert!(
        e.contains("authentication failed") && e.contains("PGPASSWORD"),
        "{e}"
    );

    assert_eq!(
        repo_files(Path::new(&env.repo)),
        files,
        "repository changed"
    );
}

/// Must hold 6: `--target` to a new database on another server, creating it.
#[test]
fn target_new_database_on_another_server() {
    let rt = rt();
    let (cluster, mut env) = setup(&rt);
    let before = hashes(&rt, &cluster.conn_config("src"));
    let snap = backup_json(&env, &["--db", &cluster.url("src")]);
    let other = TempCluster::start().unwrap();
    env.envs.retain(|(k, _)| k != "PGPASSWORD");
    env.envs
        .push(("PGPASSWORD".into(), other.password().expose().to_string()));
    let o = env.run(&[
        "restore",
        "postgres",
        snap["id"].as_str().unwrap(),
        "--target",
        &other.url("investigation"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("created database"));
    let cfg = other.conn_config("investigation");
    assert_eq!(hashes(&rt, &cfg), before);
    chain_ok(&rt, &cfg);
}

/// Must hold 7: the demo runs and exits 0.
#[test]
fn demo_exits_zero() {
    let env = Env::new();
    let o = env.run(&["demo"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("every fact holds") && out.contains("time to recover"),
        "{out}"
    );
}

/// Issue 17: row counts alone would call a database whole that lost a large
/// object, a trigger, a view's definition, a function or a sequence's
/// position. Each such loss in a restored copy makes `verify` exit 7 naming
/// the object; restoring repairs it. A restore into a database holding a
/// stray function and large object (kept by `--clean-existing`, which drops
/// only what the snapshot has) fails its verification (7) naming both. A
/// snapshot whose facts lack these members (an older Lifeboat's) still
/// verifies, and the report says what was not recorded.
#[test]
fn verify_and_restore_name_lost_catalog_objects() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    add_catalog_objects(&rt, &cluster.conn_config("src"));
    let snap = backup_json(&env, &["--db", &cluster.url("src")]);
    let id = snap["id"].as_str().unwrap().to_string();
    let facts = &snap["facts"];
    assert_eq!(facts["large_objects"]["count"], 1, "{facts}");
    assert!(
        facts["sequences"].as_array().is_some_and(|s| s.len() == 2),
        "{facts}"
    );
    assert!(
        facts["schema"].as_array().is_some_and(|s| s.len() > 10),
        "{facts}"
    );

    let url = cluster.url("copy");
    let out: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "restore", "postgres", &id, "--target", &url]))
            .unwrap();
    assert_eq!(out["verified"], true, "{out}");
    assert!(out.get("not_recorded").is_none(), "{out}");
    let out = env.ok(&["verify", &id, "--target", &url]);
    assert!(
        out.contains("matches snapshot")
            && out.contains("1 large objects")
            && out.contains("2 sequences"),
        "{out}"
    );
    assert!(!out.contains("not recorded"), "{out}");

    let copy = cluster.conn_config("copy");
    let lo_oid = facts["large_objects"]["objects"][0]["oid"]
        .as_u64()
        .unwrap();
    let cases = [
        (
            "SELECT lo_unlink(oid) FROM pg_largeobject_metadata".to_string(),
            format!("large object {lo_oid}"),
        ),
        (
            "DROP TRIGGER audit_events_prevent_legal_hold_delete ON audit_events".into(),
            "trigger audit_events_prevent_legal_hold_delete on public.audit_events".into(),
        ),
        (
            "CREATE OR REPLACE VIEW schema_version AS SELECT max(version_id) AS version_id, \
             count(*) AS migrations FROM goose_db_version"
                .into(),
            "view public.schema_version".into(),
        ),
        (
            "DROP FUNCTION workflow_success_rate(text)".into(),
            "function public.workflow_success_rate(p_workflow_id text)".into(),
        ),
        (
            "SELECT setval('remediation_history_id_seq', 5)".into(),
            "sequence public.remediation_history_id_seq".into(),
        ),
    ];
    for (sql, subject) in &cases {
        common::pg::sql(&rt, &copy, sql);
        let o = env.run(&["verify", &id, "--target", &url]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(7), "{sql}\n{stdout}\n{stderr}");
        assert!(
            stdout.contains(subject.as_str()),
            "{sql}: {subject} not named:\n{stdout}"
        );
        assert!(stderr.contains("differs from snapshot"), "{stderr}");
        let o: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
            &env.run(&["--json", "verify", &id, "--target", &url]).stdout,
        ))
        .unwrap();
        assert_eq!(o["differences"][0]["subject"], subject.as_str(), "{o}");
        env.ok(&[
            "restore",
            "postgres",
            &id,
            "--target",
            &url,
            "--clean-existing",
        ]);
        env.ok(&["verify", &id, "--target", &url]);
    }

    // Strays in the target survive `--clean-existing`: the restore's own
    // verification names them (7; no writers configured).
    let stray = cluster.url("stray");
    rt.block_on(async {
        let c = cluster.create_database("stray").await.unwrap();
        c.connect()
            .await
            .unwrap()
            .batch_execute(
                "CREATE FUNCTION public.stray() RETURNS int LANGUAGE sql AS 'SELECT 1';
                 SELECT lo_from_bytea(0, '\\x00ff'::bytea)",
            )
            .await
            .unwrap();
    });
    let o = env.run(&[
        "restore",
        "postgres",
        &id,
        "--target",
        &stray,
        "--clean-existing",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("function public.stray()"), "{stdout}");
    assert!(stdout.contains("large object "), "{stdout}");

    // A snapshot of the same dump whose facts lack the new members.
    let old = store_with_facts_stripped(&rt, &env, &id, &["large_objects", "sequences", "schema"]);
    sql(&rt, &copy, "DROP FUNCTION workflow_success_rate(text)");
    let out = env.ok(&["verify", &old, "--target", &url]);
    assert!(
        out.contains("matches snapshot")
            && out.contains("not recorded in this snapshot")
            && out.contains("schema definitions"),
        "{out}"
    );
    let out = env.ok(&[
        "restore",
        "postgres",
        &old,
        "--target",
        &url,
        "--clean-existing",
    ]);
    assert!(
        out.contains("every fact verified (not recorded in this snapshot"),
        "{out}"
    );
}

/// Stores a copy of snapshot `id` (same archive) whose facts lack `members`,
/// as a Lifeboat from before they were recorded would have; returns its id.
fn store_with_facts_stripped(
    rt: &tokio::runtime::Runtime,
    env: &Env,
    id: &str,
    members: &[&str],
) -> String {
    use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
    use lifeboat_repo::{Repository, Secret};
    rt.block_on(async {
        let storage =
            lifeboat_repo::storage::object::open_url(&env.repo, &Default::default()).unwrap();
        let repo = Repository::open(storage, &Secret::Passphrase(common::PASSWORD.into()))
            .await
            .unwrap();
        let snap = repo.find_snapshot(id, None).await.unwrap();
        let file = env.path("old-archive.dump");
        let w = std::fs::File::create(&file).unwrap();
        lifeboat_repo::restore::restore_item(&repo, &snap, None, w, Arc::new(Progress::default()))
            .await
            .unwrap();
        let mut facts = snap.snapshot.facts.clone();
        for m in members {
            facts.as_object_mut().unwrap().remove(*m);
        }
        let mut bs = BackupSession::start(&repo, Arc::new(Progress::default()))
            .await
            .unwrap();
        bs.add_stream(
            &snap.snapshot.items[0].name,
            std::fs::File::open(&file).unwrap(),
        )
        .await
        .unwrap();
        let new = bs
            .commit(SnapshotMeta {
                source: snap.snapshot.source.clone(),
                kind: "postgres".into(),
                tags: vec![],
                facts,
            })
            .await
            .unwrap();
        new.id
    })
}

/// Adds the fixture's function, view and large object (`CATALOG_OBJECTS_SQL`).
fn add_catalog_objects(rt: &tokio::runtime::Runtime, cfg: &ConnConfig) {
    sql(rt, cfg, fixture::CATALOG_OBJECTS_SQL);
}

/// A restore with `--clean-existing` over a database that already holds the
/// snapshot's objects plus objects that depend on them (a function, a view
/// over a table, a large object, the fixture's triggers) replaces them, split
/// (`--jobs 2`) and streamed, and the result verifies.
#[test]
fn clean_restore_over_dependent_views_functions_and_large_objects() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let src = cluster.conn_config("src");
    common::make_embeddings_dominate(&rt, &src);
    add_catalog_objects(&rt, &src);
    let before = hashes(&rt, &src);
    let snap = backup_json(&env, &["--db", &cluster.url("src")]);
    let id = snap["id"].as_str().unwrap().to_string();
    let url = cluster.url("src");
    for jobs in ["2", "1"] {
        let out = env.ok_json(&[
            "--json",
            "restore",
            "postgres",
            &id,
            "--target",
            &url,
            "--jobs",
            jobs,
            "--clean-existing",
        ]);
        assert_eq!(out["verified"], true, "--jobs {jobs}: {out}");
        if jobs == "2" {
            assert_eq!(
                out["split_tables"],
                serde_json::json!(["public.incident_embeddings"]),
                "{out}"
            );
        }
        assert_eq!(hashes(&rt, &src), before, "contents after --jobs {jobs}");
        chain_ok(&rt, &src);
        let o = env.run(&["verify", &id, "--target", &url]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "verify after --jobs {jobs}: {o:?}"
        );
    }
}
