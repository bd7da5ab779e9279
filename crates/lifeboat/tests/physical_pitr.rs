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

use std::path::PathBuf;
use std::time::Duration;

use common::archive::{Archive, labels, one, switch_and_archive};
use common::{poll, rt};
use lifeboat_postgres::{ClusterOptions, TempCluster};

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
        assert_eq!(labels(&dir, "pitr"), ab(&["base", "A"]), "{name}: {v}");
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
    assert_eq!(labels(&dir, "pitr"), ab(&["base", "A", "B"]), "{v}");
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
