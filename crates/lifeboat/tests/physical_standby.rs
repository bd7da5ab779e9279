//! Backup from a standby (docs/physical.md, "Backup from a standby"),
//! against real PostgreSQL 15: a primary archiving through the built
//! binary (`archive_command = 'lifeboat --config C wal push %p'`, a key
//! file; `tests/common/archive.rs`) and a streaming hot standby of it
//! (`TempCluster::streaming_standby`). `lifeboat backup physical --db
//! <the standby>` records a backup taken from a standby; rows written on
//! the primary afterwards reach the archive through the primary's
//! `archive_command` only; `restore physical latest --to-latest` into an
//! empty directory recovers from the standby's base backup through the
//! primary's archive and holds the rows written before and after the
//! backup, by their values. The standby archives nothing itself.

use crate::common;

use std::time::Duration;

use common::archive::{Archive, labels, one, switch_and_archive};
use common::poll;
use lifeboat_postgres::{ClusterOptions, TempCluster};

#[test]
fn a_base_backup_of_a_standby_restores_through_the_primarys_archive() {
    let rt = common::rt();
    let mut a = Archive::new();
    let primary = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
            // A backup taken on a standby needs the primary's full-page
            // writes (PostgreSQL refuses it otherwise).
            ("full_page_writes".into(), "on".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    a.password = primary.password().expose().to_string();
    one(
        &rt,
        &primary,
        "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL); SELECT 1",
    );
    let standby = primary
        .streaming_standby(&[])
        .expect("start a streaming standby of the primary");
    assert_eq!(one(&rt, &standby, "SELECT pg_is_in_recovery()"), "t");
    // A row written on the primary once the standby streams, and a
    // checkpoint the standby can make its restartpoint (where its backup
    // starts); the row is on the standby before its backup.
    one(
        &rt,
        &primary,
        "INSERT INTO pitr (label) VALUES ('before') RETURNING id",
    );
    one(&rt, &primary, "CHECKPOINT; SELECT 1");
    poll(
        Duration::from_secs(60),
        "the standby to replay 'before'",
        || {
            let got = one(
                &rt,
                &standby,
                "SELECT coalesce(string_agg(label, ','), '') FROM pitr",
            );
            (got == "before").then_some(())
        },
    );

    let backup = a.ok_json(&["backup", "physical", "--db", &standby.url("postgres")]);
    let facts = &backup["facts"];
    assert_eq!(facts["from_standby"], true, "{backup:#}");
    assert!(
        facts["backup_label"]
            .as_str()
            .unwrap()
            .contains("BACKUP FROM: standby"),
        "{backup:#}"
    );
    assert_eq!(
        facts["system_identifier"],
        one(
            &rt,
            &primary,
            "SELECT system_identifier::text FROM pg_control_system()"
        )
        .as_str(),
        "the standby's base backup is the primary's cluster"
    );

    // Rows on the primary after the backup, archived by the primary.
    one(
        &rt,
        &primary,
        "INSERT INTO pitr (label) VALUES ('after') RETURNING id",
    );
    switch_and_archive(&rt, &primary);
    one(
        &rt,
        &primary,
        "INSERT INTO pitr (label) VALUES ('later') RETURNING id",
    );
    let last = switch_and_archive(&rt, &primary);
    // The standby has archived nothing (archive_mode is not `always` on it,
    // and it was never given an archive_command): every segment in the
    // repository came from the primary.
    assert_eq!(
        one(&rt, &standby, "SELECT archived_count FROM pg_stat_archiver"),
        "0"
    );

    let dir = a.env.path("restored");
    let (code, out, err) = a.run(&[
        "--json",
        "restore",
        "physical",
        "latest",
        "--pgdata",
        dir.to_str().unwrap(),
        "--to-latest",
        // Bounded: a restored standby that waited for its primary instead
        // of promoting would otherwise hold the test for the default 6 h.
        "--timeout",
        "5m",
    ]);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The standby's base backup carried its standby.signal, which the
    // restore removed (with it the server would have waited as a standby).
    assert!(err.contains("standby.signal was removed"), "{err}");
    assert_eq!(v["snapshot"], backup["id"], "{v}");
    assert_eq!(v["last_archived"], last.as_str(), "{v}");
    assert_eq!(labels(&dir, "pitr"), ["before", "after", "later"], "{v}");
    // The standby's signal file came with its base backup and was removed:
    // the directory is a promoted primary.
    assert!(!dir.join("standby.signal").exists());
    assert!(!dir.join("recovery.signal").exists());
    assert_eq!(v["timeline"], 2, "promoted onto a new timeline: {v}");
}
