//! Retention of WAL by `prune` (docs/physical.md, "Retention") against a
//! real PostgreSQL 15 archiving through the built binary: segments
//! archived, base backup A, more segments, base backup B, a row after B.
//! `prune --dry-run` names what would go and deletes nothing; `prune` with
//! A kept deletes exactly the segments before A's start (nothing A needs);
//! `forget --keep-last 1 --prune` (A forgotten) deletes those before B's
//! start, keeps B's start segment, its backup label and everything after;
//! `check --read-data` passes with no gap; `restore physical latest
//! --to-latest` from B recovers the row written after B; a timeline's
//! history file pushed afterwards survives the next prune.

use crate::common;

use std::path::Path;

use common::archive::{Archive, labels, one, switch_and_archive};
use common::rt;
use lifeboat_postgres::basebackup::Lsn;
use lifeboat_postgres::{ClusterOptions, TempCluster};

/// The names stored under `wal/<timeline>/`, sorted (a name's
/// directory may stay behind, empty, once its object is deleted).
fn stored(a: &Archive, timeline: u32) -> Vec<String> {
    let dir = Path::new(&a.env.repo).join(format!("wal/{timeline:08X}"));
    let mut v: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap())
            .filter(|e| std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Writes row `label`, switches to a new WAL segment and waits until the
/// one just completed is archived.
fn row_and_switch(rt: &tokio::runtime::Runtime, cluster: &TempCluster, label: &str) {
    one(
        rt,
        cluster,
        &format!("INSERT INTO kept (label) VALUES ('{label}') RETURNING id"),
    );
    switch_and_archive(rt, cluster);
}

/// The name of the segment a base backup's WAL starts in.
fn start_segment(backup: &serde_json::Value) -> String {
    let f = &backup["facts"];
    let lsn = Lsn::parse(f["start_lsn"].as_str().unwrap()).unwrap();
    let tl = f["timeline"].as_u64().unwrap() as u32;
    lsn.segment_name(tl, f["wal_segment_size"].as_u64().unwrap())
}

/// Stored names whose segment (their first 24 characters) is before `seg`.
fn before(names: &[String], seg: &str) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.len() >= 24 && &n[..24] < seg)
        .cloned()
        .collect()
}

#[test]
fn prune_deletes_the_wal_no_kept_base_backup_needs() {
    let rt = rt();
    let mut a = Archive::new();
    let cluster = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    a.password = cluster.password().expose().to_string();
    let url = cluster.url("postgres");
    one(
        &rt,
        &cluster,
        "CREATE TABLE kept (id serial PRIMARY KEY, label text NOT NULL)",
    );
    for label in ["w1", "w2", "w3"] {
        row_and_switch(&rt, &cluster, label);
    }
    let backup_a = a.ok_json(&["backup", "physical", "--db", &url]);
    let a_start = start_segment(&backup_a);
    for label in ["w4", "w5"] {
        row_and_switch(&rt, &cluster, label);
    }
    let backup_b = a.ok_json(&["backup", "physical", "--db", &url]);
    let b_start = start_segment(&backup_b);
    row_and_switch(&rt, &cluster, "after-B");
    assert!(a_start < b_start, "{a_start} {b_start}");

    let all = stored(&a, 1);
    let before_a = before(&all, &a_start);
    let between = before(&all, &b_start)
        .into_iter()
        .filter(|n| !before_a.contains(n))
        .collect::<Vec<_>>();
    assert!(
        before_a.len() >= 3,
        "segments archived before A: {before_a:?}"
    );
    assert!(
        between.iter().any(|n| n.ends_with(".backup")),
        "A's backup label is in the archive: {all:?}"
    );
    assert!(all.contains(&b_start), "B's start is archived: {all:?}");

    // Dry run: names what would go, deletes nothing.
    let dry = a.ok_json(&["prune", "--dry-run", "--grace", "0s"]);
    assert_eq!(dry["wal"]["deleted"], before_a.len(), "{dry}");
    assert_eq!(dry["wal"]["kept_from"], a_start.as_str(), "{dry}");
    assert_eq!(dry["wal"]["oldest_base_backup"], backup_a["id"], "{dry}");
    assert_eq!(stored(&a, 1), all);

    // A kept: only what lies before A's start goes; everything A needs stays.
    let human = a.ok(&["prune", "--grace", "0s"]);
    assert!(
        human.contains(&format!(
            "WAL: deleted {} of {} objects",
            before_a.len(),
            all.len()
        )) && human.contains(&a_start),
        "{human}"
    );
    let after_first: Vec<String> = all
        .iter()
        .filter(|n| !before_a.contains(n))
        .cloned()
        .collect();
    assert_eq!(stored(&a, 1), after_first);

    // A forgotten (B is the newest): the segments before B's start go, A's
    // label with them; B's start, its label and everything after stay.
    let forgot = a.ok_json(&["forget", "--keep-last", "1", "--prune", "--grace", "0s"]);
    assert_eq!(forgot["groups"][0]["forget"][0], backup_a["id"], "{forgot}");
    let w = &forgot["prune"]["wal"];
    assert_eq!(w["deleted"], between.len(), "{forgot}");
    assert_eq!(w["kept_from"], b_start.as_str(), "{forgot}");
    assert!(w["deleted_bytes"].as_u64().unwrap() > 0, "{forgot}");
    let left = stored(&a, 1);
    assert!(before(&left, &b_start).is_empty(), "{left:?}");
    assert!(left.contains(&b_start), "{left:?}");
    assert!(
        left.iter()
            .any(|n| n.starts_with(&b_start) && n.ends_with(".backup")),
        "B's backup label stays: {left:?}"
    );
    assert_eq!(
        left,
        after_first
            .iter()
            .filter(|n| !between.contains(n))
            .cloned()
            .collect::<Vec<_>>()
    );

    // The archive now starts at B's start: no gap for check or status.
    let out = a.ok(&["check", "--read-data"]);
    assert!(!out.contains("gap"), "{out}");
    let listing = a.ok_json(&["wal", "list"]);
    assert_eq!(
        listing["timelines"][0]["first"],
        b_start.as_str(),
        "{listing}"
    );
    assert_eq!(
        listing["timelines"][0]["gaps"].as_array().unwrap().len(),
        0,
        "{listing}"
    );

    // B still recovers to the end of the archive.
    let dir = a.env.path("restored");
    let v = a.ok_json(&[
        "restore",
        "physical",
        "latest",
        "--to-latest",
        "--pgdata",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(v["snapshot"], backup_b["id"], "{v}");
    assert_eq!(
        labels(&dir, "kept"),
        ["w1", "w2", "w3", "w4", "w5", "after-B"],
        "{v}"
    );

    // The promoted timeline's history file, pushed as docs/physical.md
    // says, is never deleted by position.
    let history = dir.join("pg_wal/00000002.history");
    a.ok(&["wal", "push", history.to_str().unwrap()]);
    let again = a.ok_json(&["prune", "--grace", "0s"]);
    assert_eq!(again["wal"]["deleted"], 0, "{again}");
    assert_eq!(stored(&a, 2), ["00000002.history"]);
    assert_eq!(stored(&a, 1), left);
    let out = a.ok(&["check", "--read-data"]);
    assert!(!out.contains("gap"), "{out}");
}
