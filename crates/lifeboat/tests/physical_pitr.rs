//! `lifeboat backup physical` and `restore physical` against a real
//! PostgreSQL 15 archiving through the built binary (`archive_command =
//! 'lifeboat --config C wal push %p'`, run by the server as `postgres`,
//! repository opened with a key file), docs/physical.md: point-in-time
//! recovery to a time, an LSN, a transaction id and a named restore point
//! between two commits (the first row there, the second not), to the end of
//! the archive (both), a missing segment (clear errors, non-zero), a
//! non-empty directory (refused, untouched), and a second base backup after
//! a little churn storing only about what changed.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, bin, poll, rt};
use lifeboat_postgres::basebackup::server::RecoveryServer;
use lifeboat_postgres::{ClusterOptions, TempCluster};

struct Archive {
    env: Env,
    config: PathBuf,
    password: String,
}

fn chown_postgres(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(st.success(), "chown -R postgres {}", path.display());
}

impl Archive {
    fn new() -> Archive {
        let env = Env::init();
        let key_file = env.path("wal.key");
        env.ok(&["key", "add", "--new-key-file", key_file.to_str().unwrap()]);
        let config = env.path("lifeboat.yaml");
        std::fs::write(
            &config,
            format!(
                "repository:\n  url: {}\n  key_file: {}\n",
                env.repo,
                key_file.display()
            ),
        )
        .unwrap();
        chown_postgres(env.dir.path());
        Archive {
            env,
            config,
            password: String::new(),
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut c = Command::new(bin());
        c.arg("--config").arg(&self.config).args(args);
        for v in [
            "LIFEBOAT_PASSWORD",
            "LIFEBOAT_REPO",
            "LIFEBOAT_CONFIG",
            "LIFEBOAT_KEY_FILE",
            "LIFEBOAT_PASSWORD_FILE",
        ] {
            c.env_remove(v);
        }
        c.env("PGPASSWORD", &self.password);
        c.current_dir(self.env.dir.path()).stdin(Stdio::null());
        let o = c.output().expect("run lifeboat");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(&a);
        assert_eq!(code, Some(0), "{args:?}\nstdout: {out}\nstderr: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    fn archive_command(&self) -> String {
        format!(
            "{} --config {} wal push %p",
            bin().display(),
            self.config.display()
        )
    }
}

/// Runs `sql` and returns the first column of the first row as text.
fn one(rt: &tokio::runtime::Runtime, cluster: &TempCluster, sql: &str) -> String {
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        let rows = c.simple_query(sql).await.unwrap();
        rows.iter()
            .find_map(|m| match m {
                lifeboat_postgres::basebackup::SimpleQueryMessage::Row(r) => {
                    r.get(0).map(str::to_string)
                }
                _ => None,
            })
            .unwrap_or_default()
    })
}

fn wait_archived(rt: &tokio::runtime::Runtime, cluster: &TempCluster, last: &str) {
    poll(
        Duration::from_secs(120),
        &format!("{last} archived"),
        || {
            let failed = one(rt, cluster, "SELECT failed_count FROM pg_stat_archiver");
            assert_eq!(
                failed,
                "0",
                "archiving failed; server log:\n{}",
                cluster.log_tail()
            );
            let archived = one(
                rt,
                cluster,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            );
            (archived.as_str() >= last).then_some(())
        },
    );
}

/// Switches to a new WAL segment and waits until the one just completed
/// is archived; returns its name.
fn switch_and_archive(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> String {
    let name = one(rt, cluster, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_archived(rt, cluster, &name);
    name
}

/// The labels in table `pitr` of a restored data directory, read from a
/// server started on it as a primary (which also proves it starts).
fn labels(dir: &Path) -> Vec<String> {
    let server = RecoveryServer::start(Path::new("/usr/lib/postgresql/15/bin"), dir, &[])
        .expect("start a server on the restored directory");
    let rt = rt();
    let got = poll(Duration::from_secs(60), "the restored server", || {
        rt.block_on(async {
            let c = server
                .conn_config("lifeboat", "postgres")
                .connect()
                .await
                .ok()?;
            let rows = c
                .query("SELECT label FROM pitr ORDER BY id", &[])
                .await
                .ok()?;
            Some(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    });
    let mut server = server;
    assert!(
        server.stop(Duration::from_secs(60)),
        "{}",
        server.log_tail()
    );
    got
}

fn restore(a: &Archive, name: &str, target: &[&str]) -> (Option<i32>, PathBuf, String, String) {
    let dir = a.env.path(name);
    let mut args = vec!["restore", "physical", "--pgdata", dir.to_str().unwrap()];
    args.extend_from_slice(target);
    let (code, out, err) = a.run(&args);
    (code, dir, out, err)
}

fn restored_ok(a: &Archive, name: &str, target: &[&str]) -> (PathBuf, serde_json::Value) {
    let (code, dir, out, err) = restore(a, name, &[&["--json"][..], target].concat());
    assert_eq!(code, Some(0), "{target:?}\nstdout: {out}\nstderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The recovery settings were removed again; recovery.signal is gone.
    let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
    assert!(!auto.contains("restore_command"), "{auto}");
    assert!(!dir.join("recovery.signal").exists());
    (dir, v)
}

#[test]
fn point_in_time_recovery_to_every_kind_of_target() {
    let rt = rt();
    let mut a = Archive::new();
    let cluster = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
            ("full_page_writes".into(), "on".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    a.password = cluster.password().expose().to_string();
    let url = cluster.url("postgres");
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute(
            "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL);
             INSERT INTO pitr (label) VALUES ('base');
             CREATE TABLE filler (id int PRIMARY KEY, pad text NOT NULL);
             INSERT INTO filler SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    });

    // The first base backup.
    let first = a.ok_json(&["backup", "physical", "--db", &url]);
    let first_stored = first["bytes_stored"].as_u64().unwrap();
    let facts = &first["facts"];
    assert_eq!(facts["timeline"], 1);
    assert!(
        facts["backup_label"]
            .as_str()
            .unwrap()
            .contains("START WAL LOCATION")
    );
    assert!(first["bytes_read"].as_u64().unwrap() > 50 << 20, "{first}");

    // A little churn, then a second base backup: it stores about what
    // changed, not the whole cluster again.
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute("UPDATE filler SET pad = upper(pad) WHERE id <= 4000; CHECKPOINT;")
            .await
            .unwrap();
    });
    let second = a.ok_json(&["backup", "physical", "--db", &url]);
    let second_stored = second["bytes_stored"].as_u64().unwrap();
    eprintln!(
        "first base backup: read {} stored {} ({} blobs); second after 1 % churn: read {} new {} stored {} ({} new blobs, {} reused)",
        first["bytes_read"],
        first_stored,
        first["blobs_new"],
        second["bytes_read"],
        second["bytes_new"],
        second_stored,
        second["blobs_new"],
        second["blobs_reused"]
    );
    assert!(
        second_stored * 5 < first_stored,
        "the second base backup stored {second_stored} bytes, the first {first_stored}"
    );

    // Segments after the backup: one of filler only (deleted later), then
    // A, the points between, B.
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute("INSERT INTO filler SELECT g, 'x' FROM generate_series(400001, 401000) g")
            .await
            .unwrap();
    });
    let gap_segment = switch_and_archive(&rt, &cluster);
    let xid_a = rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute("BEGIN").await.unwrap();
        let xid: String = c
            .query_one("SELECT pg_current_xact_id()::text", &[])
            .await
            .unwrap()
            .get(0);
        c.batch_execute("INSERT INTO pitr (label) VALUES ('A'); COMMIT")
            .await
            .unwrap();
        xid
    });
    let between_time = one(
        &rt,
        &cluster,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    // The insert position: with synchronous_commit off (TempCluster), the
    // write position can still be before A's commit record.
    let between_lsn = one(&rt, &cluster, "SELECT pg_current_wal_insert_lsn()::text");
    one(&rt, &cluster, "SELECT pg_create_restore_point('between')");
    // B commits strictly after the noted time (the server's clock moved on).
    poll(Duration::from_secs(10), "the clock to move", || {
        let later = one(
            &rt,
            &cluster,
            &format!("SELECT clock_timestamp() > '{between_time}'::timestamptz"),
        );
        (later == "t").then_some(())
    });
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('B') RETURNING id",
    );
    switch_and_archive(&rt, &cluster);

    let ab = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (name, target) in [
        ("to-time", vec!["--to-time", between_time.as_str()]),
        ("to-lsn", vec!["--to-lsn", between_lsn.as_str()]),
        ("to-xid", vec!["--to-xid", xid_a.as_str()]),
        ("to-name", vec!["--to-name", "between"]),
    ] {
        let (dir, v) = restored_ok(&a, name, &target);
        assert_eq!(labels(&dir), ab(&["base", "A"]), "{name}: {v}");
        assert!(
            v["reached"].as_str().unwrap().contains("recovery stopping"),
            "{v}"
        );
        assert_eq!(
            v["snapshot"], second["id"],
            "{name}: the newest backup reaches it"
        );
    }
    let (dir, v) = restored_ok(&a, "to-latest", &["--to-latest"]);
    assert_eq!(labels(&dir), ab(&["base", "A", "B"]), "{v}");
    assert_eq!(v["timeline"], 2, "promoted onto a new timeline: {v}");

    // A target before the newest base backup's end uses an older one, and
    // one before every backup is refused before anything is written.
    let early = facts["start_time"].as_str().unwrap();
    let (code, dir, _, err) = restore(&a, "too-early", &["--to-time", early]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("can reach"), "{err}");
    assert!(!dir.exists());

    // A non-empty directory is refused and left as it was.
    let busy = a.env.path("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), b"mine").unwrap();
    let (code, _, _, err) = restore(&a, "busy", &["--to-latest"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    assert_eq!(std::fs::read(busy.join("keep")).unwrap(), b"mine");

    // One segment missing from the archive: to the end of the archive is
    // refused before anything is written (the gap is named); to a target
    // past the gap, recovery stops and the restore fails naming the target.
    let object = PathBuf::from(&a.env.repo)
        .join("wal/00000001")
        .join(&gap_segment)
        .join("0");
    std::fs::remove_file(&object).unwrap();
    let (code, dir, _, err) = restore(&a, "gap-latest", &["--to-latest"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains(&gap_segment) && err.contains("gap"), "{err}");
    assert!(!dir.exists());
    let (code, _, _, err) = restore(&a, "gap-name", &["--to-name", "between"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(
        err.contains("recovery ended before reaching restore point \"between\""),
        "{err}"
    );
}
