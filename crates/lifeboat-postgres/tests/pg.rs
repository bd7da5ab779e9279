//! Tests against real PostgreSQL servers started by `TempCluster` (one per test).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::{ConnConfig, ConnError, PgHost, Secret};
use lifeboat_postgres::dump::{self, DumpError, PgDump, PgRestore, RestoreOptions};
use lifeboat_postgres::facts::{
    self, DiffKind, DumpScope, Facts, FactsError, SnapshotSession, TableKind,
};
use lifeboat_postgres::fixture::{self, FixtureSpec};
use lifeboat_postgres::split_restore::{self, RowSource};
use lifeboat_postgres::tools::{self, Discovery, PgTools, ToolsError};

fn tools_for(cluster: &TempCluster) -> PgTools {
    tools::discover(cluster.major(), &Discovery::default()).expect("pg tools for the test server")
}

/// Runs a dump of `scope` in `session`'s snapshot, collecting facts while pg_dump
/// streams (as the backup will), and returns (archive, facts).
async fn dump_with_facts(
    tools: &PgTools,
    cfg: &ConnConfig,
    session: &SnapshotSession,
    scope: &DumpScope,
) -> (Vec<u8>, Facts) {
    let mut dump =
        PgDump::spawn(tools, cfg, Some(session.snapshot_id()), scope).expect("spawn pg_dump");
    let mut out = dump.take_stdout().expect("stdout");
    let reader = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).map(|_| buf)
    });
    let facts = session
        .facts(scope, &fixture::kubernaut_verification_queries())
        .await
        .expect("facts");
    let archive = reader.await.unwrap().expect("read archive");
    tokio::task::spawn_blocking(move || dump.wait())
        .await
        .unwrap()
        .expect("pg_dump ok");
    (archive, facts)
}

async fn restore_stream(tools: &PgTools, cfg: &ConnConfig, archive: Vec<u8>) {
    let tools = tools.clone();
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let mut r = PgRestore::spawn_stream(&tools, &cfg, &RestoreOptions::default())
            .expect("spawn pg_restore");
        let w = r.write_all(&archive);
        let res = r.wait();
        w.expect("write archive");
        res.expect("pg_restore ok");
    })
    .await
    .unwrap();
}

async fn hashes(cfg: &ConnConfig) -> BTreeMap<String, fixture::TableHash> {
    let c = cfg.connect().await.unwrap();
    fixture::content_hashes(&c).await.unwrap()
}

async fn new_fixture(cluster: &TempCluster, db: &str) -> ConnConfig {
    let cfg = cluster.create_database(db).await.unwrap();
    fixture::generate(&cfg, &FixtureSpec::tiny()).await.unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_clear() {
    let cluster = TempCluster::start().unwrap();
    let good = cluster.conn_config("postgres");
    good.connect()
        .await
        .expect("connect with the right password");

    let wrong = ConnConfig::new(
        PgHost::Tcp("127.0.0.1".into()),
        cluster.port(),
        "lifeboat",
        "postgres",
    )
    .with_password(Secret::new("not-the-password"));
    let e = wrong.connect().await.unwrap_err();
    assert!(matches!(e, ConnError::AuthFailed { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("authentication failed for user \"lifeboat\""),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-password"));

    let missing = cluster.conn_config("no_such_db");
    let e = missing.connect().await.unwrap_err();
    assert!(matches!(e, ConnError::DatabaseMissing { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("database \"no_such_db\" does not exist"),
        "{e}"
    );

    // A port nobody listens on.
    let port = lifeboat_test_ports::reserve();
    let nowhere = ConnConfig::parse(&format!("postgresql://lifeboat@127.0.0.1:{port}/postgres"))
        .unwrap()
        .with_password(Secret::new("x"));
    let e = nowhere.connect().await.unwrap_err();
    assert!(matches!(e, ConnError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot reach PostgreSQL at 127.0.0.1:{port}/postgres"
        )),
        "{e}"
    );

    // Unix socket in the cluster directory works too.
    let sock = ConnConfig::new(
        PgHost::Unix(cluster.socket_dir()),
        cluster.port(),
        "lifeboat",
        "postgres",
    )
    .with_password(cluster.password().clone());
    sock.connect().await.expect("unix socket");

    // A password file: used when there is no explicit password, ignored when
    // readable by others (libpq's rule), and it reaches pg_dump too.
    if std::env::var_os("PGPASSWORD").is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("pgpass");
        std::fs::write(
            &pf,
            format!(
                "127.0.0.1:{}:*:lifeboat:{}\n",
                cluster.port(),
                cluster.password().expose()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let via_file = ConnConfig::parse(&cluster.url("postgres"))
            .unwrap()
            .with_passfile(&pf);
        via_file
            .connect()
            .await
            .expect("password from the password file");
        let tools = tools_for(&cluster);
        let scope = DumpScope {
            tables: vec![],
            schema_only: true,
        };
        let mut d = PgDump::spawn(&tools, &via_file, None, &scope).unwrap();
        let mut archive = Vec::new();
        d.read_to_end(&mut archive).unwrap();
        d.wait().expect("pg_dump gets the password from us");
        assert!(archive.starts_with(b"PGDMP"));
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = via_file.connect().await.unwrap_err();
        assert!(matches!(e, ConnError::AuthFailed { .. }), "{e:?}");
        assert!(e.to_string().contains("none was found"), "{e}");
    }

    // pg_dump with a wrong password: the error carries pg_dump's message.
    let tools = tools_for(&cluster);
    let wrong_db = wrong.with_dbname("postgres");
    let d = PgDump::spawn(&tools, &wrong_db, None, &DumpScope::full()).unwrap();
    let e = d.wait().unwrap_err();
    assert!(
        e.to_string().contains("password authentication failed"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_missing_target_database() {
    let cluster = TempCluster::start().unwrap();
    let target = cluster.conn_config("Drill Target \"1\"");
    assert!(matches!(
        target.connect().await,
        Err(ConnError::DatabaseMissing { .. })
    ));
    assert!(
        dump::create_database_if_missing(&target, "postgres")
            .await
            .unwrap()
    );
    assert!(
        !dump::create_database_if_missing(&target, "postgres")
            .await
            .unwrap()
    );
    let c = target.connect().await.unwrap();
    let row = c.query_one("SELECT current_database()::text, pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = current_database()", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "Drill Target \"1\"");
    assert_eq!(row.get::<_, String>(1), "UTF8");
}

fn fake_tools(dir: &Path, major: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    for t in ["pg_dump", "pg_restore"] {
        let p = dir.join(t);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho '{t} (PostgreSQL) {major}.3'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn discovery_prefers_exact_major_and_refuses_older() {
    // The real system: PostgreSQL 15 client tools in the Debian layout.
    let t = tools::discover(15, &Discovery::default()).unwrap();
    assert_eq!(t.version.major, 15);
    assert_eq!(t.dir, Path::new("/usr/lib/postgresql/15/bin"));
    assert!(t.psql.is_some());

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("lib");
    fake_tools(&root.join("14/bin"), 14);
    fake_tools(&root.join("17/bin"), 17);
    let path_dir = tmp.path().join("path");
    fake_tools(&path_dir, 16);
    let conf = tmp.path().join("conf");
    fake_tools(&conf, 18);

    // Exact major on PATH beats a newer one in the versioned layout.
    let d = Discovery {
        versioned_root: root.clone(),
        path: Some(path_dir.clone().into_os_string()),
        configured_dir: Some(conf.clone()),
    };
    assert_eq!(tools::discover(16, &d).unwrap().dir, path_dir);
    // Exact major in the configured dir.
    assert_eq!(tools::discover(18, &d).unwrap().dir, conf);
    // Versioned layout first.
    assert_eq!(tools::discover(14, &d).unwrap().dir, root.join("14/bin"));
    // No exact one: the lowest newer one.
    assert_eq!(tools::discover(15, &d).unwrap().version.major, 16);

    // Only older tools: refused with what to install.
    let old = Discovery {
        versioned_root: root.clone(),
        path: None,
        configured_dir: None,
    };
    let e = tools::discover(19, &old).unwrap_err();
    assert!(matches!(e, ToolsError::TooOld { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("install postgresql-client-19: apt-get install postgresql-client-19"),
        "{msg}"
    );
    assert!(msg.contains("pg_dump 17"), "{msg}");

    let none = Discovery {
        versioned_root: tmp.path().join("nothing"),
        path: None,
        configured_dir: None,
    };
    let e = tools::discover(16, &none).unwrap_err();
    assert!(matches!(e, ToolsError::NotFound { .. }));
    assert!(
        e.to_string()
            .contains("apt-get install postgresql-client-16"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_round_trip_is_identical() {
    let cluster = TempCluster::start().unwrap();
    let t0 = Instant::now();
    let src = new_fixture(&cluster, "kubernaut").await;
    eprintln!("tiny fixture generated in {:?}", t0.elapsed());
    let tools = tools_for(&cluster);
    let c = src.connect().await.unwrap();

    // The fixture is what KUBERNAUT.md describes.
    let chain = fixture::verify_hash_chain(&c).await.unwrap();
    assert!(chain.is_ok(), "{chain:?}");
    assert_eq!(chain.events, 3000);
    let ext: Vec<String> = c
        .query("SELECT extname::text FROM pg_extension ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ext.contains(&"pgcrypto".to_string()) && ext.contains(&"uuid-ossp".to_string()));
    let e = c
        .execute("UPDATE audit_events SET actor_id = 'x' WHERE true", &[])
        .await
        .unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("immutable"));
    let e = c
        .execute("DELETE FROM audit_events WHERE legal_hold", &[])
        .await
        .unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("legal hold"));
    let e = c
        .execute("INSERT INTO audit_events (event_timestamp, event_date, event_type, event_category, event_action, event_outcome, actor_type, actor_id, resource_type, resource_id, correlation_id) VALUES ('1990-01-01', '1990-01-01', 't','c','a','o','s','i','r','r','c')", &[])
        .await
        .unwrap_err();
    assert!(
        e.as_db_error().unwrap().message().contains("no partition"),
        "{e:?}"
    );
    let dim: i32 = c
        .query_one(
            "SELECT min(array_length(embedding, 1)) FROM incident_embeddings",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dim, 1536);

    let session = SnapshotSession::begin(&src).await.unwrap();
    let (archive, mut facts) = dump_with_facts(&tools, &src, &session, &DumpScope::full()).await;
    session.finish().await.unwrap();
    facts.pg_dump_version = Some(tools.version.text.clone());
    eprintln!("archive {} bytes", archive.len());
    assert!(archive.starts_with(b"PGDMP"));

    // Facts are what they should be.
    assert_eq!(facts.rows_of("public", "audit_events"), Some(3000));
    let parent = facts
        .tables
        .iter()
        .find(|t| t.table.name == "audit_events")
        .unwrap();
    assert_eq!(parent.kind, TableKind::Partitioned);
    let parts: i64 = facts
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Partition)
        .map(|t| t.rows.unwrap())
        .sum();
    assert_eq!(parts, 3000);
    assert!(
        facts
            .tables
            .iter()
            .any(|t| t.parent.as_ref().is_some_and(|p| p.name == "audit_events"))
    );
    assert_eq!(facts.server_version_num / 10000, 15);
    assert!(facts.database_size_bytes > 0);
    assert_eq!(facts.queries.len(), 2);
    assert!(facts.queries.iter().all(|q| q.value.is_some()));
    // Facts survive serde.
    let json = serde_json::to_string(&facts).unwrap();
    assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), facts);

    // Single-stream restore into a new database.
    let target = cluster.create_database("restored").await.unwrap();
    restore_stream(&tools, &target, archive.clone()).await;
    let before = hashes(&src).await;
    assert!(before.len() >= 8, "{before:?}");
    assert_eq!(hashes(&target).await, before);
    let mut tc = target.connect().await.unwrap();
    assert!(fixture::verify_hash_chain(&tc).await.unwrap().is_ok());
    let diffs = facts::verify(&facts, &mut tc).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
    // Triggers came back too.
    assert!(
        tc.execute("UPDATE audit_events SET actor_id = 'x' WHERE true", &[])
            .await
            .is_err()
    );

    // Restoring again over the restored database (--clean --if-exists) works.
    restore_stream(&tools, &target, archive.clone()).await;
    assert_eq!(hashes(&target).await, before);

    // Parallel restore from a staged file.
    let stage = tempfile::tempdir().unwrap();
    dump::check_staging_space(stage.path(), archive.len() as u64).unwrap();
    let file = stage.path().join("archive.dump");
    std::fs::write(&file, &archive).unwrap();
    let target2 = cluster.create_database("restored_jobs").await.unwrap();
    let opts = RestoreOptions {
        jobs: 2,
        ..Default::default()
    };
    let (t2, tl, f, o) = (target2.clone(), tools.clone(), file.clone(), opts.clone());
    tokio::task::spawn_blocking(move || PgRestore::spawn_file(&tl, &t2, &f, &o).unwrap().wait())
        .await
        .unwrap()
        .expect("parallel restore");
    assert_eq!(hashes(&target2).await, before);

    // A split restore of a snapshot without a recorded layout: the split
    // table's rows come from `pg_restore --data-only` of the staged file
    // (RowSource::Archive), the path older snapshots take.
    let split = vec![facts::TableName::new("public", "incident_embeddings")];
    let (tl, f, s) = (tools.clone(), file.clone(), split.clone());
    let plan = tokio::task::spawn_blocking(move || split_restore::plan(&tl, &f, &s))
        .await
        .unwrap()
        .expect("planning a split restore")
        .expect("the fixture's archive fits a split restore");
    assert_eq!(plan.split_tables(), &split[..]);
    let target3 = cluster.create_database("restored_split").await.unwrap();
    let outcome = split_restore::restore(&tools, &target3, &file, &opts, &plan, RowSource::Archive)
        .await
        .expect("split restore from the staged archive");
    assert_eq!(outcome.split_tables, vec!["public.incident_embeddings"]);
    assert_eq!(hashes(&target3).await, before);
    let mut tc3 = target3.connect().await.unwrap();
    assert!(fixture::verify_hash_chain(&tc3).await.unwrap().is_ok());
    let diffs = facts::verify(&facts, &mut tc3).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));

    // Corruption is detected by verify, with a readable table.
    let cc = src.connect().await.unwrap();
    let rep = fixture::corrupt(&cc).await.unwrap();
    assert!(rep.dropped_partition.is_some() && rep.dropped_events > 0 && rep.scrambled_rows > 0);
    let mut cc = src.connect().await.unwrap();
    assert!(!fixture::verify_hash_chain(&cc).await.unwrap().is_ok());
    let diffs = facts::verify(&facts, &mut cc).await.unwrap();
    let table = facts::diff_table(&diffs);
    eprintln!("{table}");
    assert!(
        diffs.iter().any(|d| d.kind == DiffKind::MissingTable),
        "{table}"
    );
    assert!(
        diffs
            .iter()
            .any(|d| d.kind == DiffKind::RowCount && d.subject == "table public.audit_events"),
        "{table}"
    );
    // Scrambled rows keep the count; the content hash catches them.
    assert_ne!(
        hashes(&src).await["public.remediation_history"],
        before["public.remediation_history"]
    );
    // Restore repairs it.
    restore_stream(&tools, &src, archive).await;
    assert_eq!(hashes(&src).await, before);
    let mut cc = src.connect().await.unwrap();
    assert!(facts::verify(&facts, &mut cc).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_match_the_dump_with_a_concurrent_writer() {
    let cluster = TempCluster::start().unwrap();
    let src = new_fixture(&cluster, "kubernaut").await;
    let tools = tools_for(&cluster);

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, cfg) = (stop.clone(), written.clone(), src.clone());
        tokio::spawn(async move {
            let c = cfg.connect().await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                fixture::append_audit_events(&c, 7).await.unwrap();
                c.execute(
                    "INSERT INTO remediation_history (signal_name, namespace, target_resource, workflow_id, status, started_at, details) VALUES ('s','n','t','w','running', now(), '{}')",
                    &[],
                )
                .await
                .unwrap();
                written.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Let the writer get going, then back up while it writes.
    while written.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let session = SnapshotSession::begin(&src).await.unwrap();
    let at_begin = written.load(Ordering::Relaxed);
    let (archive, facts) = dump_with_facts(&tools, &src, &session, &DumpScope::full()).await;
    // Keep writing a little longer after the dump, then stop.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    session.finish().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let total = written.load(Ordering::Relaxed);
    eprintln!("writer rounds: {at_begin} before the snapshot, {total} in all");
    assert!(
        total > at_begin + 3,
        "the writer must have written during the backup"
    );

    // The source has moved on: its counts differ from the facts …
    let mut sc = src.connect().await.unwrap();
    let moved = facts::verify(&facts, &mut sc).await.unwrap();
    assert!(
        moved.iter().any(|d| d.kind == DiffKind::RowCount),
        "source should have more rows now"
    );
    assert!(
        fixture::verify_hash_chain(&sc).await.unwrap().is_ok(),
        "concurrent appends keep the chain"
    );

    // … while the restored copy has exactly the recorded counts.
    let target = cluster.create_database("restored").await.unwrap();
    restore_stream(&tools, &target, archive).await;
    let mut tc = target.connect().await.unwrap();
    let diffs = facts::verify(&facts, &mut tc).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
    let n: i64 = tc
        .query_one("SELECT count(*) FROM audit_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(Some(n), facts.rows_of("public", "audit_events"));
    assert!(n > 3000);
    assert!(fixture::verify_hash_chain(&tc).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_schema_only_dumps_hold_exactly_their_scope() {
    let cluster = TempCluster::start().unwrap();
    let src = new_fixture(&cluster, "kubernaut").await;
    let tools = tools_for(&cluster);
    let before = hashes(&src).await;

    // --schema-only: every table, no rows.
    let session = SnapshotSession::begin(&src).await.unwrap();
    let scope = session.resolve_scope(&[], true).await.unwrap();
    let (schema_archive, facts) = dump_with_facts(&tools, &src, &session, &scope).await;
    session.finish().await.unwrap();
    assert!(facts.tables.iter().all(|t| t.rows.is_none()));
    let target = cluster.create_database("restored").await.unwrap();
    restore_stream(&tools, &target, schema_archive).await;
    let got = hashes(&target).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(got.values().all(|h| h.rows == 0), "{got:?}");
    let mut tc = target.connect().await.unwrap();
    let diffs = facts::verify(&facts, &mut tc).await.unwrap();
    // The verification queries were answered by full tables; on empty ones they differ.
    assert!(
        !diffs.is_empty() && diffs.iter().all(|d| d.kind == DiffKind::QueryResult),
        "{}",
        facts::diff_table(&diffs)
    );

    // --table of a partitioned table brings its partitions and nothing else. A
    // table archive holds tables (with their indexes, constraints, triggers and
    // rows), not the functions and extensions they use: it restores into a database
    // that has those, here the schema-only restore above.
    let session = SnapshotSession::begin(&src).await.unwrap();
    let scope = session
        .resolve_scope(
            &["audit_events".into(), "public.workflow_catalog".into()],
            false,
        )
        .await
        .unwrap();
    assert!(scope.tables.len() > 3, "{scope:?}");
    let (archive, facts) = dump_with_facts(&tools, &src, &session, &scope).await;
    // Unknown tables are refused before anything is dumped; the session stays usable.
    let e = session
        .resolve_scope(&["no_such_table".into()], false)
        .await
        .unwrap_err();
    assert!(matches!(e, FactsError::NoSuchTable(_)), "{e:?}");
    let e = session
        .resolve_scope(&["a.b.c.d".into()], false)
        .await
        .unwrap_err();
    assert!(matches!(e, FactsError::NoSuchTable(_)), "{e:?}");
    session
        .facts(&scope, &[])
        .await
        .expect("session survives a bad name");
    session.finish().await.unwrap();
    assert!(facts.tables.iter().all(|t| t.table.name.starts_with("audit_events") || t.table.name == "workflow_catalog"));

    restore_stream(&tools, &target, archive).await;
    let got = hashes(&target).await;
    for (k, v) in &before {
        if k.starts_with("public.audit_events") || k == "public.workflow_catalog" {
            assert_eq!(&got[k], v, "{k}");
        } else {
            assert_eq!(got[k].rows, 0, "{k} must stay empty");
        }
    }
    let mut tc = target.connect().await.unwrap();
    let diffs = facts::verify(&facts, &mut tc).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
    assert!(fixture::verify_hash_chain(&tc).await.unwrap().is_ok());
    assert!(
        tc.execute("UPDATE audit_events SET actor_id = 'x' WHERE true", &[])
            .await
            .is_err(),
        "triggers restored"
    );

    // pg_dump itself refuses a table that does not exist (its message is passed on).
    let scope = DumpScope {
        tables: vec![facts::TableName::new("public", "nope")],
        schema_only: false,
    };
    let d = PgDump::spawn(&tools, &src, None, &scope).unwrap();
    let e = d.wait().unwrap_err();
    assert!(matches!(e, DumpError::Failed { .. }));
    assert!(
        e.to_string().contains("no matching tables were found"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_errors_are_reported() {
    let cluster = TempCluster::start().unwrap();
    let tools = tools_for(&cluster);
    let target = cluster.create_database("t").await.unwrap();
    // Garbage instead of an archive.
    let (tl, tg) = (tools.clone(), target.clone());
    let e = tokio::task::spawn_blocking(move || {
        let mut r = PgRestore::spawn_stream(&tl, &tg, &RestoreOptions::default()).unwrap();
        let _ = r.write_all(b"this is not a pg_dump archive");
        r.wait()
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.to_string().contains("pg_restore failed"), "{e}");
    assert!(
        e.to_string()
            .contains("input file does not appear to be a valid archive"),
        "{e}"
    );
    // --jobs needs a file.
    let opts = RestoreOptions {
        jobs: 2,
        ..Default::default()
    };
    assert!(matches!(
        PgRestore::spawn_stream(&tools, &target, &opts),
        Err(DumpError::JobsNeedFile(2))
    ));
    // Not enough space for staging.
    let e = dump::check_staging_space(Path::new("/"), u64::MAX / 2).unwrap_err();
    assert!(matches!(e, DumpError::InsufficientSpace { .. }));
    assert!(e.to_string().contains("not enough free space"), "{e}");
    assert!(dump::free_space(Path::new("/tmp")).unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_restore_can_be_repeated() {
    let cluster = TempCluster::start().unwrap();
    let src = new_fixture(&cluster, "kubernaut").await;
    let tools = tools_for(&cluster);
    let session = SnapshotSession::begin(&src).await.unwrap();
    let (archive, facts) = dump_with_facts(&tools, &src, &session, &DumpScope::full()).await;
    session.finish().await.unwrap();

    let target = cluster.create_database("target").await.unwrap();
    // First restore it fully, so the second one runs over existing objects.
    restore_stream(&tools, &target, archive.clone()).await;
    // Kill a restore halfway through its input.
    let (tl, tg, half) = (
        tools.clone(),
        target.clone(),
        archive[..archive.len() / 2].to_vec(),
    );
    let e = tokio::task::spawn_blocking(move || {
        let mut r = PgRestore::spawn_stream(&tl, &tg, &RestoreOptions::default()).unwrap();
        r.write_all(&half).unwrap();
        r.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        r.kill();
        r.wait()
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.to_string().contains("killed by signal 9"), "{e}");
    let mut tc = target.connect().await.unwrap();
    assert!(
        !facts::verify(&facts, &mut tc).await.unwrap().is_empty(),
        "a half restore must not verify"
    );
    drop(tc);
    // Restoring again succeeds and verifies.
    restore_stream(&tools, &target, archive).await;
    let mut tc = target.connect().await.unwrap();
    let diffs = facts::verify(&facts, &mut tc).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
    assert_eq!(hashes(&target).await, hashes(&src).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_adds_about_one_percent() {
    let cluster = TempCluster::start().unwrap();
    let src = new_fixture(&cluster, "kubernaut").await;
    let c = src.connect().await.unwrap();
    let rep = fixture::churn(&c, 0.01).await.unwrap();
    assert_eq!(rep.audit_events_added, 30);
    assert!(rep.embeddings_added >= 1);
    let n: i64 = c
        .query_one("SELECT count(*) FROM audit_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3030);
    assert!(fixture::verify_hash_chain(&c).await.unwrap().is_ok());
}

/// The layout learnt from a piped dump (what a backup streams) puts every data
/// block where pg_dump itself records it when its output is seekable, and a
/// table's rows read from its block are the table's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_layout_matches_pg_dump_s_own_offsets() {
    use lifeboat_postgres::archive::{DataEvent, LayoutScanner, read_table_data};
    use std::os::unix::fs::FileExt;

    let cluster = TempCluster::start().unwrap();
    let src = new_fixture(&cluster, "kubernaut").await;
    let c = src.connect().await.unwrap();
    // A large object too: its block has its own framing.
    c.batch_execute("SELECT lo_from_bytea(0, convert_to(repeat('lifeboat ', 5000), 'UTF8'))")
        .await
        .unwrap();
    let tools = tools_for(&cluster);
    let session = SnapshotSession::begin(&src).await.unwrap();
    let (piped, facts) = dump_with_facts(&tools, &src, &session, &DumpScope::full()).await;

    // pg_dump's own seekable archive, of the same snapshot: two dumps at
    // different moments may number their objects differently (pg_dump gives
    // every object in the catalogs a dump id, the ones it leaves out too),
    // and did once under load: the TOCs parted at the ENCODING entry's id.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seekable.dump");
    let mut cmd = std::process::Command::new(&tools.pg_dump);
    src.apply_to_command(&mut cmd).unwrap();
    let st = cmd
        .arg(format!("--snapshot={}", session.snapshot_id()))
        .args(["--format=custom", "--compress=0", "--no-password", "--file"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    session.finish().await.unwrap();
    let seekable = std::fs::File::open(&file).unwrap();

    let mut scanner = LayoutScanner::new();
    for piece in piped.chunks(4093) {
        scanner.observe(piece);
    }
    let layout = scanner.finish().expect("a layout");
    assert!(
        layout.blocks.iter().any(|b| b.desc == "BLOBS"),
        "{layout:?}"
    );
    assert!(layout.blocks.len() >= 8, "{layout:?}");
    for b in &layout.blocks {
        let mut field = [0u8; 9];
        seekable.read_exact_at(&mut field, b.offset_field).unwrap();
        assert_eq!(field[0], 2, "pg_dump recorded the position of {}", b.tag);
        let pos = u64::from_le_bytes(field[1..].try_into().unwrap());
        assert_eq!(pos, b.start, "block of {} {}", b.desc, b.tag);
    }
    // Rows of a table, read from its block.
    let t = facts
        .tables
        .iter()
        .find(|t| t.table.name == "incident_embeddings")
        .unwrap();
    let b = layout.table_data("public", "incident_embeddings").unwrap();
    let mut rows = 0i64;
    read_table_data(&piped[b.start as usize..b.end as usize], &layout, b, |e| {
        if let DataEvent::Rows(r) = e {
            rows += r.iter().filter(|&&c| c == b'\n').count() as i64;
        }
        true
    })
    .unwrap();
    let exact: i64 = c
        .query_one("SELECT count(*) FROM incident_embeddings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((rows, t.rows), (exact, Some(exact)));
    // Writing the offsets into the piped archive's TOC gives pg_dump's.
    let patched = dir.path().join("patched.dump");
    std::fs::write(&patched, &piped).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&patched)
        .unwrap();
    layout.write_offsets(&f).unwrap();
    let toc = layout.toc_end as usize;
    let (mut a, mut s) = (vec![0u8; toc], vec![0u8; toc]);
    f.read_exact_at(&mut a, 0).unwrap();
    seekable.read_exact_at(&mut s, 0).unwrap();
    // The header's creation time differs (bytes 12..47); the TOCs are equal.
    // On a failure, say where the TOCs part and what each holds there (as
    // bytes: the strings around them look alike), not only "differ".
    if let Some(at) = (47..toc).find(|&i| a[i] != s[i]) {
        let around = |v: &[u8]| {
            let from = at.saturating_sub(64);
            format!(
                "{:?}; the byte at {at}: {:#04x}",
                String::from_utf8_lossy(&v[from..(at + 64).min(toc)]),
                v[at]
            )
        };
        panic!(
            "patched TOC differs from pg_dump's seekable TOC at byte {at} of {toc}:\n patched: {}\nseekable: {}",
            around(&a),
            around(&s)
        );
    }
}

/// What counting rows cannot see: the catalog facts (large objects, sequence
/// positions, definitions) are recorded in the dumped snapshot, an untouched
/// restore matches them, and losing each kind — a large object, a trigger, a
/// view's definition, a function, a sequence set back — is a difference that
/// names the object. An extra function in a whole-database restore is one
/// too. Facts of an older snapshot (without these members) still verify and
/// say what they did not record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_facts_name_what_a_restore_lost() {
    let cluster = TempCluster::start().unwrap();
    let src = new_fixture(&cluster, "kubernaut").await;
    src.connect()
        .await
        .unwrap()
        .batch_execute(fixture::CATALOG_OBJECTS_SQL)
        .await
        .unwrap();
    let tools = tools_for(&cluster);
    let session = SnapshotSession::begin(&src).await.unwrap();
    let (archive, facts) = dump_with_facts(&tools, &src, &session, &DumpScope::full()).await;
    session.finish().await.unwrap();

    let lo = facts
        .large_objects
        .as_ref()
        .expect("large objects recorded");
    assert_eq!(lo.count, 1, "{lo:?}");
    assert!(lo.total_bytes.unwrap() > 1000, "{lo:?}");
    assert!(lo.unreadable.is_none(), "{lo:?}");
    let seqs = facts.sequences.as_ref().expect("sequences recorded");
    let goose = seqs
        .iter()
        .find(|s| s.sequence.name == "goose_db_version_id_seq")
        .expect("the serial's sequence");
    assert_eq!((goose.last_value, goose.is_called), (25, true));
    assert_eq!(
        goose.owned_by.as_ref().map(|t| t.name.as_str()),
        Some("goose_db_version")
    );
    let schema = facts.schema.as_ref().expect("schema recorded");
    let names: Vec<String> = schema
        .iter()
        .map(|o| format!("{} {}", o.kind.label(), o.name))
        .collect();
    for want in [
        "function public.workflow_success_rate(p_workflow_id text)",
        "function public.audit_events_immutable()",
        "view public.schema_version",
        "trigger audit_events_immutable on public.audit_events",
        "constraint workflow_catalog_pkey on public.workflow_catalog",
        "index public.audit_events_timestamp_idx on public.audit_events",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:#?}");
    }
    // Extension members and objects PostgreSQL derives are left out.
    assert!(
        !names
            .iter()
            .any(|n| n.contains("uuid_generate_v4") || n.contains("digest(")),
        "{names:#?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("trigger") && n.contains("audit_events_20")),
        "cloned partition triggers: {names:#?}"
    );
    assert!(facts.not_recorded().is_empty());
    let json = serde_json::to_string(&facts).unwrap();
    assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), facts);

    let target = cluster.create_database("restored").await.unwrap();
    restore_stream(&tools, &target, archive.clone()).await;
    let mut tc = target.connect().await.unwrap();
    let diffs = facts::verify(&facts, &mut tc).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));

    let cases = [
        (
            "SELECT lo_unlink(oid) FROM pg_largeobject_metadata",
            DiffKind::LargeObject,
            format!("large object {}", lo.objects.as_ref().unwrap()[0].oid),
            "missing",
        ),
        (
            "DROP TRIGGER audit_events_immutable ON audit_events",
            DiffKind::MissingObject,
            "trigger audit_events_immutable on public.audit_events".to_string(),
            "missing",
        ),
        (
            "CREATE OR REPLACE VIEW schema_version AS SELECT max(version_id) AS version_id, \
             count(*) AS migrations FROM goose_db_version",
            DiffKind::ChangedObject,
            "view public.schema_version".to_string(),
            "changed",
        ),
        (
            "DROP FUNCTION workflow_success_rate(text)",
            DiffKind::MissingObject,
            "function public.workflow_success_rate(p_workflow_id text)".to_string(),
            "missing",
        ),
        (
            "SELECT setval('goose_db_version_id_seq', 5)",
            DiffKind::Sequence,
            "sequence public.goose_db_version_id_seq".to_string(),
            "next value 6",
        ),
        (
            "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            DiffKind::UnexpectedObject,
            "function public.intruder()".to_string(),
            "present",
        ),
    ];
    for (sql, kind, subject, actual) in cases {
        tc.batch_execute(sql).await.unwrap();
        let diffs = facts::verify(&facts, &mut tc).await.unwrap();
        let table = facts::diff_table(&diffs);
        eprintln!("after {sql}:\n{table}");
        assert_eq!(diffs.len(), 1, "{sql}:\n{table}");
        assert_eq!(diffs[0].kind, kind, "{table}");
        assert_eq!(diffs[0].subject, subject, "{table}");
        assert!(diffs[0].actual.starts_with(actual), "{table}");
        assert!(table.contains(&subject), "{table}");

        // Older facts, without the catalog members, do not see it (and say so).
        if kind != DiffKind::UnexpectedObject {
            let mut old: serde_json::Value = serde_json::to_value(&facts).unwrap();
            for k in ["large_objects", "sequences", "schema"] {
                old.as_object_mut().unwrap().remove(k);
            }
            let old: Facts = serde_json::from_value(old).unwrap();
            assert_eq!(
                old.not_recorded(),
                vec!["large objects", "sequences", "schema definitions"]
            );
            assert!(old.checked_summary().contains("not recorded"));
            let diffs = facts::verify(&old, &mut tc).await.unwrap();
            assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
        } else {
            tc.batch_execute("DROP FUNCTION public.intruder()")
                .await
                .unwrap();
        }
        // Restoring again puts it back.
        restore_stream(&tools, &target, archive.clone()).await;
        let diffs = facts::verify(&facts, &mut tc).await.unwrap();
        assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
    }

    // A live database may be ahead of its sequences' recorded positions.
    let sc = src.connect().await.unwrap();
    sc.batch_execute(
        "SELECT nextval('goose_db_version_id_seq'); SELECT nextval('goose_db_version_id_seq')",
    )
    .await
    .unwrap();
    drop(sc);
    let mut sc = src.connect().await.unwrap();
    let diffs = facts::verify(&facts, &mut sc).await.unwrap();
    assert!(diffs.is_empty(), "{}", facts::diff_table(&diffs));
}
