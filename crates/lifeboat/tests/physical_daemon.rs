//! Physical base backups on the daemon's schedule (`physical:` of a
//! source, docs/physical.md "Base backups on the daemon's schedule"),
//! against a real PostgreSQL 15 archiving through the built binary
//! (`archive_command = 'lifeboat --config C wal push %p'`, a key file;
//! `tests/common/archive.rs`): `lifeboat serve` with a per-second
//! `physical.schedule` and `retention: {keep_last: 2}` takes base backups
//! (the first at once: no base backup yet is a missed slot), one of them
//! after a row written while it runs; its metrics and `/api/v1/status`
//! agree on the last one; retention keeps two base backups and leaves the
//! source's logical snapshot alone (base backups are counted on their
//! own), and `verify latest` still means that logical snapshot; after
//! SIGTERM, the newest base backup restored with `restore
//! physical … --to-latest` into an empty directory holds the rows written
//! before, during and after the daemon ran (by their values), and
//! `lifeboat status` shows it.

use crate::common;

use std::time::Duration;

use common::archive::{Archive, chown_postgres, labels, one, switch_and_archive};
use common::{Daemon, sample};
use lifeboat_postgres::{ClusterOptions, TempCluster};

/// Every two seconds (croner's seconds field).
const SCHEDULE: &str = "*/2 * * * * *";

fn physical_snapshots(a: &Archive) -> Vec<serde_json::Value> {
    let all = a.ok_json(&["snapshots"]);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "physical")
        .cloned()
        .collect()
}

#[test]
fn the_daemon_takes_base_backups_on_its_schedule_and_one_restores() {
    let rt = common::rt();
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
    // The daemon's environment (`Archive::run` sets it for the commands).
    a.env.envs.push(("PGPASSWORD".into(), a.password.clone()));
    // One configuration for `wal push` (run by the server), the daemon and
    // the commands below.
    std::fs::write(
        &a.config,
        format!(
            "repository:
  url: {repo}
  key_file: {key}
sources:
  main:
    kind: postgres
    postgres:
      url: \"{url}\"
      verify_queries:
        - name: labels
          sql: SELECT string_agg(label, ',' ORDER BY id) FROM pitr
    retention: {{keep_last: 2}}
    physical: {{schedule: \"{SCHEDULE}\", block_size: 64}}
serve:
  lease: 10s
  grace_period: 2m
  token: {{file: {token}}}
",
            token = common::write_token(&a.env).display(),
            repo = a.env.repo,
            key = a.env.path("wal.key").display(),
            url = cluster.url("postgres"),
        ),
    )
    .unwrap();
    chown_postgres(&a.config);
    one(
        &rt,
        &cluster,
        "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL);
         INSERT INTO pitr (label) VALUES ('base') RETURNING id",
    );
    // A logical snapshot of the same source: retention of the base backups
    // must not count it (nor forget it).
    let logical = a.ok_json(&["backup", "postgres", "--source", "main"]);
    let logical_id = logical["id"].as_str().unwrap().to_string();

    let d = Daemon::start_active(&a.env, &a.config, "physical");
    let backups = |d: &Daemon| d.metric("lifeboat_physical_backups_total{source=\"main\"}");
    d.poll(Duration::from_secs(120), "a first base backup", || {
        backups(&d).filter(|&n| n >= 1.0)
    });
    // A row while the daemon runs; then wait for two more base backups, so
    // that at least one started (and ended) after it was committed.
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('during') RETURNING id",
    );
    let seen = backups(&d).unwrap();
    d.poll(Duration::from_secs(120), "two more base backups", || {
        backups(&d).filter(|&n| n >= seen + 2.0)
    });

    // The metrics and the API agree on the last base backup: read the
    // status, the metrics and the status again until no base backup ended
    // in between.
    let physical_status = |d: &Daemon| -> serde_json::Value {
        let (code, body) = d.get("/api/v1/status", Some(common::TOKEN));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let main = v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "main")
            .cloned()
            .unwrap_or_else(|| panic!("{v:#}"));
        assert_eq!(main["physical_schedule"], SCHEDULE, "{main:#}");
        main["physical"].clone()
    };
    let (scrape, status, last) = d.poll(Duration::from_secs(60), "a quiet moment", || {
        let before = physical_status(&d);
        let scrape = d.get("/metrics", None).1;
        let after = physical_status(&d);
        let id = before["last_success"]["snapshot"].as_str()?;
        (Some(id) == after["last_success"]["snapshot"].as_str()).then_some(())?;
        let t = sample(
            &scrape,
            "lifeboat_physical_backup_last_success_timestamp_seconds{source=\"main\"}",
        )?;
        Some((scrape, after, t))
    });
    let status_time =
        chrono::DateTime::parse_from_rfc3339(status["last_success"]["time"].as_str().unwrap())
            .unwrap();
    assert!(
        (status_time.timestamp_micros() as f64 / 1e6 - last).abs() < 0.001,
        "the API's last base backup ({status:#}) is the metric's ({last})"
    );
    assert!(
        status["last_success"]["duration_seconds"].as_f64().unwrap() > 0.0,
        "{status:#}"
    );
    assert_eq!(
        status["last_failure"],
        serde_json::Value::Null,
        "{status:#}"
    );
    assert!(
        sample(&scrape, "lifeboat_physical_backups_total{source=\"main\"}").unwrap() >= 3.0,
        "{scrape}"
    );
    assert!(
        sample(
            &scrape,
            "lifeboat_physical_schedule_next_run_timestamp_seconds{source=\"main\"}"
        )
        .unwrap()
            > 0.0,
        "an active daemon has a next slot: {scrape}"
    );
    // Base backups are the source's newest snapshots too.
    assert!(
        sample(
            &scrape,
            "lifeboat_backup_last_success_timestamp_seconds{source=\"main\"}"
        )
        .unwrap()
            >= last,
        "{scrape}"
    );
    // No base backup failed, for any reason.
    let failures: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("lifeboat_physical_backup_failures_total{source=\"main\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(
        scrape
            .contains("lifeboat_physical_backup_failures_total{source=\"main\",reason=\"dump\"} 0"),
        "{scrape}"
    );
    assert_eq!(failures, 0.0, "{scrape}\n{}", d.log_text());
    // Retention ran after the base backups (it runs after each one's
    // success is counted): the older ones were forgotten.
    d.poll(
        Duration::from_secs(60),
        "retention to forget a base backup",
        || {
            d.metric("lifeboat_retention_forgotten_total{source=\"main\"}")
                .filter(|&n| n >= 1.0)
        },
    );

    // The first base backup was a missed slot (no base backup yet), the
    // others the schedule's; each logged.
    let log = d.log_text();
    assert!(
        log.contains("backing up once now") && log.contains("physical backup succeeded"),
        "{log}"
    );

    // SIGTERM: a running base backup may finish; then nothing changes.
    assert_eq!(d.stop(), Some(0));
    let kept = physical_snapshots(&a);
    assert_eq!(kept.len(), 2, "keep_last 2 of the base backups: {kept:#?}");
    for s in &kept {
        assert_eq!(s["source"], "main", "{s}");
        // The newest two are the schedule's (the missed slot's was first).
        assert_eq!(
            s["tags"],
            serde_json::json!(["lifeboat-serve:schedule"]),
            "{s}"
        );
    }
    let all = a.ok_json(&["snapshots"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == logical_id.as_str()),
        "the logical snapshot is kept beside the base backups: {all:#}"
    );
    let newest = kept
        .iter()
        .max_by_key(|s| chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap())
        .unwrap();
    let newest_id = newest["id"].as_str().unwrap().to_string();

    // `latest` of a logical command is the newest logical snapshot, not
    // one of the newer base backups of the same source.
    let (code, out, err) = a.run(&[
        "--json",
        "verify",
        "latest",
        "--source",
        "main",
        "--target",
        &cluster.url("postgres"),
    ]);
    let verified: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{e}: {code:?}\nstdout: {out}\nstderr: {err}"));
    assert_eq!(
        verified["snapshot"],
        logical_id.as_str(),
        "{verified}\n{err}"
    );

    // A row after the daemon stopped, archived.
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('after') RETURNING id",
    );
    switch_and_archive(&rt, &cluster);

    // `lifeboat status` shows the newest base backup and the schedule.
    let (_, out, err) = a.run(&["--json", "status"]);
    let st: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let main = st["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "main")
        .unwrap();
    assert_eq!(
        main["last_physical_backup"]["snapshot"],
        newest_id.as_str(),
        "{main:#}"
    );
    assert_eq!(main["physical_snapshots"], 2, "{main:#}");
    assert_eq!(main["physical_schedule"], SCHEDULE, "{main:#}");
    let (_, text, _) = a.run(&["status"]);
    assert!(
        text.contains("physical: last base backup") && text.contains(&newest_id[..8]),
        "{text}"
    );

    // The newest base backup the daemon took, recovered to the end of the
    // archive into an empty directory: every row, by its value.
    let dir = a.env.path("restored");
    let v = a.ok_json(&[
        "restore",
        "physical",
        &newest_id,
        "--source",
        "main",
        "--pgdata",
        dir.to_str().unwrap(),
        "--to-latest",
    ]);
    assert_eq!(v["snapshot"], newest_id.as_str(), "{v}");
    assert_eq!(v["queries"][0]["value"], "base,during,after", "{v}");
    assert_eq!(labels(&dir, "pitr"), ["base", "during", "after"], "{v}");
}
