//! Drills, status and readiness through the built binary, against real
//! PostgreSQL 15 servers: the source cluster that each test starts, and the
//! throwaway cluster each drill starts for itself. Time is injected (drill
//! records written with an old start time, `--as-of`), never slept.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, Env, PASSWORD, TOKEN, rt, setup, write_token};
use lifeboat_postgres::TempCluster;

/// A config with one postgres source `db`, the seed's database-corruption
/// objective, and `extra_queries` as additional verification queries.
fn write_config(env: &Env, cluster: &TempCluster, extra_queries: &str) -> PathBuf {
    write_config_drilled(env, cluster, extra_queries, "0 4 1 * *")
}

fn write_config_drilled(
    env: &Env,
    cluster: &TempCluster,
    extra_queries: &str,
    drill_schedule: &str,
) -> PathBuf {
    let token = write_token(env);
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  db:
    kind: postgres
    schedule: \"0 0 1 1 *\"
    retention:
      keep_last: 5
    postgres:
      url: \"{url}\"
      verify_queries:
        - name: latest_audit_event
          sql: SELECT max(event_timestamp) FROM audit_events
{extra_queries}
    covers: [database-corruption]
    drill:
      schedule: \"{drill_schedule}\"
objectives:
  - {{scenario: database-corruption, rto: 30m, rpo: 1h, priority: P1}}
serve:
  token: {{file: {token}}}
readiness:
  attestations:
    on-call: {{by: Jane Roe, date: 2026-11-01}}
",
        repo = env.repo,
        url = cluster.url("src"),
        token = token.display()
    );
    let path = env.path("lifeboat.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn json(env: &Env, cfg: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--config", cfg.to_str().unwrap(), "--json"];
    a.extend_from_slice(args);
    let out = env.ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs with --json, expecting exit `code`; returns (stdout JSON, stderr).
fn json_fails(env: &Env, cfg: &Path, args: &[&str], code: i32) -> (serde_json::Value, String) {
    let mut a = vec!["--config", cfg.to_str().unwrap(), "--json"];
    a.extend_from_slice(args);
    let (stdout, stderr) = env.exits_with(&a, code);
    (
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}")),
        stderr,
    )
}

fn item<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {r}"))
}

/// The daemon's drill records (`GET /api/v1/drills`).
fn drills(d: &Daemon) -> serde_json::Value {
    let (code, body) = d.get("/api/v1/drills", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `backup postgres --source db` with the config.
fn backup(env: &Env, cfg: &Path) {
    env.ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "backup",
        "postgres",
        "--source",
        "db",
    ]);
}

/// Must hold 1: a drill of a Kubernaut-like database passes, records RTO and
/// RPO, writes its reports, and its record is listed by a daemon, also after
/// that daemon is restarted.
#[test]
fn drill_passes_records_rto_rpo_and_is_listed_after_a_daemon_restart() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_config(&env, &cluster, "");
    backup(&env, &cfg);

    let report = env.path("drill.md");
    let d = json(
        &env,
        &cfg,
        &[
            "drill",
            "--source",
            "db",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(d["ok"], true, "{d:#}");
    assert_eq!(d["source"], "db");
    let rto = d["rto_seconds"].as_f64().unwrap();
    let rpo = d["rpo_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 1800.0, "rto {rto}");
    assert!((0.0..600.0).contains(&rpo), "rpo {rpo}");
    let steps: Vec<(&str, bool)> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["ok"].as_bool().unwrap()))
        .collect();
    for name in ["scratch", "restore", "verify", "cleanup"] {
        assert!(steps.contains(&(name, true)), "{name} in {steps:?}");
    }
    assert!(
        d["target"]
            .as_str()
            .unwrap()
            .contains("throwaway PostgreSQL 15")
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.contains("passed") && md.contains("| verify | ok |"),
        "{md}"
    );
    // The throwaway cluster is gone: nothing of it is left running.
    assert!(!d["steps"][3]["detail"].as_str().unwrap().is_empty());

    // The text form says the same.
    let id = d["id"].as_str().unwrap().to_string();
    let list = env.ok(&["--config", cfg.to_str().unwrap(), "drills"]);
    assert!(list.contains(&id[..8]) && list.contains("ok"), "{list}");

    let daemon = Daemon::start_active(&env, &cfg, "1");
    let listed = drills(&daemon);
    assert_eq!(listed[0]["id"], id.as_str(), "{listed:#}");
    assert_eq!(listed[0]["rto_seconds"].as_f64(), Some(rto));
    daemon.stop();
    let daemon = Daemon::start_active(&env, &cfg, "2");
    let listed = drills(&daemon);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["ok"], true);
}

/// Must hold 2: a flipped byte in the snapshot's data fails the drill with a
/// reason naming the damaged object; a verification query whose result
/// differs fails it naming the query. Both are recorded as failed drills.
#[test]
fn corrupted_snapshot_and_differing_query_fail_the_drill_naming_them() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    // The scratch server listens on another port than the source: this
    // query's recorded value cannot match a drill's.
    let cfg = write_config(
        &env,
        &cluster,
        "        - name: server_port\n          sql: SELECT current_setting('port')",
    );
    backup(&env, &cfg);
    let (d, stderr) = json_fails(&env, &cfg, &["drill", "--source", "db"], 7);
    assert_eq!(d["ok"], false);
    let failure = d["failure"].as_str().unwrap();
    assert!(failure.contains("query server_port"), "{failure}");
    assert!(stderr.contains("server_port"), "{stderr}");
    assert_eq!(d["differences"][0]["fact"], "query server_port", "{d:#}");

    // Flip one byte in the middle of the largest pack.
    let mut packs: Vec<PathBuf> = common::walk(&Path::new(&env.repo).join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap().clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&pack, bytes).unwrap();
    let pack_id = pack.file_name().unwrap().to_str().unwrap().to_string();

    let (d, _) = json_fails(&env, &cfg, &["drill", "--source", "db"], 7);
    assert_eq!(d["ok"], false);
    let failure = d["failure"].as_str().unwrap();
    assert!(
        failure.contains(&pack_id[..16]),
        "{failure} should name {pack_id}"
    );
    let restore = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "restore")
        .unwrap();
    assert_eq!(restore["ok"], false, "{d:#}");

    // Both failures are on record, and the last one makes the source failing.
    let all = json(&env, &cfg, &["drills"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(all.as_array().unwrap().iter().all(|d| d["ok"] == false));
    let (st, _) = json_fails(&env, &cfg, &["status"], 1);
    assert_eq!(st["sources"][0]["verdict"], "failing", "{st:#}");
    assert!(
        st["reason"].as_str().unwrap().contains(&pack_id[..16]),
        "{st:#}"
    );
}

/// Stores a drill record the way `lifeboat drill` does, with an injected
/// start time: "the last drill was 31 days ago" without waiting a month.
fn store_old_drill(
    rt: &tokio::runtime::Runtime,
    env: &Env,
    snapshot: &serde_json::Value,
    age: chrono::TimeDelta,
) {
    use lifeboat_dr::record::{DrillRecord, RECORD_VERSION, store_drill};
    use lifeboat_repo::{Repository, Secret};
    rt.block_on(async {
        let storage =
            lifeboat_repo::storage::object::open_url(&env.repo, &Default::default()).unwrap();
        let repo = Repository::open(storage, &Secret::Passphrase(PASSWORD.into()))
            .await
            .unwrap();
        let started = chrono::Utc::now() - age;
        let rec = DrillRecord {
            version: RECORD_VERSION,
            source: "db".into(),
            kind: "postgres".into(),
            snapshot: snapshot["id"].as_str().unwrap().into(),
            snapshot_time: started - chrono::TimeDelta::minutes(20),
            started,
            finished: started + chrono::TimeDelta::seconds(40),
            ok: true,
            failure: None,
            rto_seconds: 40.0,
            rpo_seconds: 1200.0,
            target: "throwaway PostgreSQL 15".into(),
            trigger: "cli".into(),
            hostname: "test".into(),
            program: "test".into(),
            steps: vec![],
            differences: vec![],
        };
        store_drill(&repo, &rec).await.unwrap();
    });
}

/// Must hold 3 and 4: readiness fails when the last successful drill is
/// older than 30 days and passes after a fresh one; status goes from ok to at
/// risk when the RPO exposure passes the objective.
#[test]
fn readiness_needs_a_recent_drill_and_status_turns_at_risk_past_the_rpo() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_config(&env, &cluster, "");
    let c = cfg.to_str().unwrap();
    let snap = json(&env, &cfg, &["backup", "postgres", "--source", "db"]);
    env.ok(&["--config", c, "check", "--read-data"]);
    // An active daemon holds the lease: readiness's `daemon-active` item.
    let _daemon = Daemon::start_active(&env, &cfg, "r");
    store_old_drill(&rt, &env, &snap, chrono::TimeDelta::days(31));

    let (r, stderr) = json_fails(&env, &cfg, &["readiness"], 1);
    assert_eq!(r["ready"], false);
    let drills = item(&r, "restore-drills");
    assert_eq!(drills["state"], "fail", "{r:#}");
    assert!(
        drills["detail"].as_str().unwrap().contains("31d 0h old"),
        "{drills}"
    );
    assert!(stderr.contains("restore-drills"), "{stderr}");
    // The other automated items hold, so only the drill is to blame.
    for id in [
        "backups-scheduled",
        "backups-recent",
        "retention",
        "repository-encrypted",
        "repository-checked",
        "daemon-active",
        "objectives",
    ] {
        assert_eq!(item(&r, id)["state"], "pass", "{id}: {r:#}");
    }
    assert_eq!(item(&r, "on-call")["state"], "attested");
    assert_eq!(item(&r, "runbooks")["state"], "unattested");
    assert_eq!(
        item(&r, "multi-region-replication")["state"],
        "not_configured"
    );

    let d = json(&env, &cfg, &["drill", "--source", "db"]);
    assert_eq!(d["ok"], true, "{d:#}");
    let r = json(&env, &cfg, &["readiness"]);
    assert_eq!(r["ready"], true, "{r:#}");
    assert_eq!(item(&r, "restore-drills")["state"], "pass");
    let text = env.ok(&["--config", c, "readiness"]);
    assert!(text.contains("READY"), "{text}");

    // Status: ok now; at risk once the last backup is older than the 1 h RPO.
    let st = json(&env, &cfg, &["status"]);
    assert_eq!(st["verdict"], "ok", "{st:#}");
    assert_eq!(st["sources"][0]["verdict"], "ok");
    let taken = chrono::DateTime::parse_from_rfc3339(snap["time"].as_str().unwrap()).unwrap();
    let later = (taken + chrono::TimeDelta::minutes(61)).to_rfc3339();
    let (st, _) = json_fails(&env, &cfg, &["status", "--as-of", &later], 10);
    assert_eq!(st["verdict"], "at_risk", "{st:#}");
    let reason = st["sources"][0]["reasons"][0].as_str().unwrap();
    assert!(reason.contains("RPO exposure 1h 1m exceeds"), "{reason}");
    let text = env.run(&["--config", c, "status", "--as-of", &later]);
    assert_eq!(text.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&text.stdout).contains("AT RISK"));
}

/// The daemon drills on the source's drill schedule and exports the drill
/// and restore metrics from the records.
#[test]
fn daemon_runs_scheduled_drills_and_exports_their_metrics() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_config_drilled(&env, &cluster, "", "*/2 * * * * *");
    // ...and checks the repository every 3 s, recording the outcome.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "serve:\n",
        "serve:\n  check: {schedule: \"*/3 * * * * *\"}\n",
    );
    std::fs::write(&cfg, text).unwrap();
    backup(&env, &cfg);
    let daemon = Daemon::start_active(&env, &cfg, "d");
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let (_, m) = daemon.get("/metrics", Some(TOKEN));
        // The counter exists at 0 from the daemon's start: wait for a pass.
        let passed = m
            .lines()
            .find_map(|l| l.strip_prefix("lifeboat_drills_total{source=\"db\",result=\"passed\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if passed >= 1.0 && m.contains("lifeboat_check_last_success_timestamp_seconds ") {
            break m;
        }
        assert!(Instant::now() < deadline, "no scheduled drill passed: {m}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{source=\"db\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    let drills = drills(&daemon);
    let first = drills
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["trigger"] == "schedule")
        .expect("a scheduled drill record");
    assert_eq!(first["ok"], true);
    assert!(value("lifeboat_drill_last_success_timestamp_seconds") > 1.7e9);
    assert!(value("lifeboat_drill_rto_seconds") > 0.0);
    assert!(value("lifeboat_drill_rpo_seconds") >= 0.0);
    assert_eq!(value("lifeboat_drill_success"), 1.0);
    assert!(
        metrics.contains("lifeboat_restore_duration_seconds_count{source=\"db\"}"),
        "{metrics}"
    );
    assert!(value("lifeboat_restore_last_success_timestamp_seconds") > 1.7e9);
    // The daemon's check is on record: readiness sees it.
    let r = json(&env, &cfg, &["readiness"]);
    assert_eq!(item(&r, "repository-checked")["state"], "pass", "{r:#}");
    daemon.stop();
}

/// A configuration that is not Kubernaut's: source `orders`, its own
/// retention and objectives, and a P0 region-failure objective that no source
/// covers.
fn write_orders_config(env: &Env, cluster: &TempCluster, region: &str) -> PathBuf {
    let token = write_token(env);
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  orders:
    kind: postgres
    schedule: \"15 3 * * *\"
    retention: {{keep_last: 7}}
    postgres:
      url: \"{url}\"
    covers: [bad-migration]
objectives:
  - {{scenario: bad-migration, rto: 20m, rpo: 2h, priority: P1}}
  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0{region}}}
serve:
  token: {{file: {token}}}
readiness:
  drill_max_age: 14d
  check_max_age: 2d
",
        repo = env.repo,
        url = cluster.url("src"),
        token = token.display()
    );
    let path = env.path("orders.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Issue 17: `status` said "ok, every source is ok" while the P0
/// region-failure objective was covered by nothing. Now that makes it at
/// risk (exit 10) with that reason, in JSON and text; once the configuration
/// records what covers it elsewhere, who attested it and when, status is ok
/// and shows the attestation.
#[test]
fn an_unmeasured_objective_is_at_risk_until_attested_as_covered_elsewhere() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_orders_config(&env, &cluster, "");
    let c = cfg.to_str().unwrap();
    env.ok(&["--config", c, "backup", "postgres", "--source", "orders"]);
    let d = json(&env, &cfg, &["drill", "--source", "orders"]);
    assert_eq!(d["ok"], true, "{d:#}");

    let (st, stderr) = json_fails(&env, &cfg, &["status"], 10);
    assert_eq!(st["verdict"], "at_risk", "{st:#}");
    // The source itself is fine: the objective alone is the reason.
    assert_eq!(st["sources"][0]["verdict"], "ok", "{st:#}");
    let reason = st["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("objective region-failure (P0) is covered by nothing Lifeboat measures"),
        "{reason}"
    );
    assert!(stderr.contains("region-failure"), "{stderr}");
    let region = &st["objectives"][1];
    assert_eq!(region["scenario"], "region-failure");
    assert_eq!(region["covered_elsewhere"], serde_json::Value::Null);
    assert!(region["risk"].is_string(), "{region:#}");
    assert_eq!(st["objectives"][0]["met"], true, "{st:#}");
    let text = env.run(&["--config", c, "status"]);
    assert_eq!(text.status.code(), Some(10));
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("AT RISK: objective region-failure (P0)"),
        "{out}"
    );
    assert!(!out.contains("every source is ok"), "{out}");

    // Attested as covered elsewhere: ok, and the attestation is shown.
    let cfg = write_orders_config(
        &env,
        &cluster,
        ", covered_by: \"CloudNativePG replica cluster in eu-west\", attested_by: alice, attested_at: 2026-11-30",
    );
    let c = cfg.to_str().unwrap();
    let st = json(&env, &cfg, &["status"]);
    assert_eq!(st["verdict"], "ok", "{st:#}");
    let region = &st["objectives"][1];
    assert_eq!(
        region["covered_elsewhere"],
        serde_json::json!({
            "covered_by": "CloudNativePG replica cluster in eu-west",
            "attested_by": "alice",
            "attested_at": "2026-11-30"
        }),
        "{region:#}"
    );
    assert_eq!(region["risk"], serde_json::Value::Null);
    let out = env.ok(&["--config", c, "status"]);
    assert!(
        out.contains(
            "covered elsewhere: CloudNativePG replica cluster in eu-west (attested by alice on 2026-11-30)"
        ),
        "{out}"
    );

    // An incomplete statement is refused at start, like every config error.
    let bad = write_orders_config(&env, &cluster, ", covered_by: \"someone\"");
    let err = env.fails(&["--config", bad.to_str().unwrap(), "status"], 2);
    assert!(
        err.contains("covered_by, attested_by and attested_at go together"),
        "{err}"
    );
}

/// Issue 17: `repository-encrypted` passed unconditionally. It reads the
/// evidence: the slot that opened the repository, and the modes of the key
/// slots of a local repository and of the secret files the configuration
/// names. A key slot or the API token file that others can read fails it,
/// named.
#[test]
fn repository_encrypted_reads_key_slots_and_secret_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let cfg = write_orders_config(&env, &cluster, "");
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let keys = Path::new(&env.repo).join("keys");
    let slots: Vec<PathBuf> = common::walk(&keys);
    assert_eq!(slots.len(), 1, "{slots:?}");
    // Private key slots (as `init` creates them on local storage).
    chmod(&keys, 0o700);
    chmod(&slots[0], 0o600);
    let encrypted = |code: i32| {
        let (r, _) = json_fails(&env, &cfg, &["readiness"], code);
        item(&r, "repository-encrypted").clone()
    };
    // Readiness fails for other reasons (no daemon, no check): exit 1.
    let it = encrypted(1);
    assert_eq!(it["state"], "pass", "{it:#}");
    let detail = it["detail"].as_str().unwrap();
    assert!(detail.contains("AES-256-GCM"), "{detail}");
    assert!(detail.contains("(passphrase) of 1"), "{detail}");
    assert!(detail.contains("every key slot's MAC verifies"), "{detail}");
    assert!(
        !it["seed"].as_str().unwrap().starts_with("Security audit"),
        "{it:#}"
    );

    // A key slot others can read: the wrapped master key is open to guessing.
    chmod(&slots[0], 0o644);
    let it = encrypted(1);
    assert_eq!(it["state"], "fail", "{it:#}");
    let detail = it["detail"].as_str().unwrap();
    let slot = slots[0].display().to_string();
    assert!(detail.contains(&format!("{slot} is mode 0644")), "{detail}");
    chmod(&slots[0], 0o600);

    // The API token file, group-readable.
    chmod(&env.path("api-token"), 0o640);
    let it = encrypted(1);
    assert_eq!(it["state"], "fail", "{it:#}");
    let detail = it["detail"].as_str().unwrap();
    assert!(detail.contains("serve.token"), "{detail}");
    assert!(detail.contains("is mode 0640"), "{detail}");
    chmod(&env.path("api-token"), 0o600);
    assert_eq!(encrypted(1)["state"], "pass");

    // The manual items a machine cannot judge stay with a person.
    let (r, _) = json_fails(&env, &cfg, &["readiness"], 1);
    assert_eq!(item(&r, "security-audit")["state"], "unattested");
    assert_eq!(item(&r, "monitoring-alerting")["state"], "unattested");
    assert_eq!(item(&r, "daemon-active")["state"], "fail");
}

/// Issue 17: a drill checks the catalog facts too (large objects, sequences,
/// definitions), not only row counts and queries. A drill into a fresh scratch
/// database passes and says what it checked; one into an existing scratch
/// database that holds a leftover large object (which pg_restore keeps, and
/// no row count sees) fails with 7, naming it.
#[test]
fn drill_checks_large_objects_sequences_and_definitions() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    rt.block_on(async {
        cluster
            .conn_config("src")
            .connect()
            .await
            .unwrap()
            .batch_execute(lifeboat_postgres::fixture::CATALOG_OBJECTS_SQL)
            .await
            .unwrap();
    });
    let cfg = write_config(&env, &cluster, "");
    backup(&env, &cfg);

    let fresh = cluster.url("drill_fresh");
    let d = json(
        &env,
        &cfg,
        &["drill", "--source", "db", "--scratch", &fresh],
    );
    assert_eq!(d["ok"], true, "{d:#}");
    let verify = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "verify")
        .unwrap();
    let detail = verify["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 large objects")
            && detail.contains("2 sequences")
            && detail.contains("schema objects"),
        "{detail}"
    );

    rt.block_on(async {
        let c = cluster.create_database("drill_leftover").await.unwrap();
        c.connect()
            .await
            .unwrap()
            .batch_execute("SELECT lo_from_bytea(0, '\\x00ff'::bytea)")
            .await
            .unwrap();
    });
    let (d, stderr) = json_fails(
        &env,
        &cfg,
        &[
            "drill",
            "--source",
            "db",
            "--scratch",
            &cluster.url("drill_leftover"),
        ],
        7,
    );
    assert_eq!(d["ok"], false, "{d:#}");
    let failure = d["failure"].as_str().unwrap();
    assert!(failure.contains("large object "), "{failure}");
    assert!(stderr.contains("large object "), "{stderr}");
    assert!(
        d["differences"][0]["fact"]
            .as_str()
            .is_some_and(|f| f.starts_with("large object ")),
        "{d:#}"
    );
}
