//! `lifeboat region …` through the built binary against real servers:
//! two PostgreSQL 15 servers (a primary `TempCluster` and a standby seeded
//! by `region replicate` into an empty directory), and a real BIND 9 for
//! `region traffic`. Conditions are polled with a bound, never waited for
//! with sleeps; no timing is asserted.

use crate::bind;
use crate::common;

use std::path::{Path, PathBuf};

use chrono::Utc;
use common::Env;
use common::standby::{SeededStandby, empty_owned_dir};
use lifeboat_postgres::TempCluster;
use lifeboat_region::health::Verdict;
use serde_json::Value;

const REPL_PASSWORD: &str = "repl-Secret-5e1d";

fn primary() -> TempCluster {
    TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    )
}

/// Two `postgres`-managed regions: us-east on the primary, eu-west at
/// `standby_port` with its data directory `pgdata`.
fn pg_config(env: &Env, p: &TempCluster, standby_port: u16, pgdata: &Path) -> PathBuf {
    let yaml = format!(
        r#"repository:
  url: {repo}
objectives:
  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: primary
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: {pgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
        sport = standby_port,
        pgdata = pgdata.display(),
        bin = p.bin_dir().display(),
    );
    let path = env.path("regions.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn pg_env(p: &TempCluster) -> Env {
    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    env
}

fn region<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no region {name} in {status}"))
}

#[test]
fn replicate_seeds_a_streaming_standby_that_status_shows() {
    let p = primary();
    let env = pg_env(&p);
    let pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    let port = common::free_port();
    let cfg = pg_config(&env, &p, port, &pgdata);
    let cfg = cfg.to_str().unwrap();
    let standby = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: pgdata.clone(),
    };

    let done = env.ok_json(&[
        "--config",
        cfg,
        "--json",
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]);
    assert_eq!(done["from"], "us-east");
    assert_eq!(done["to"], "eu-west");
    assert_eq!(done["outcome"]["replica"]["state"], "streaming", "{done}");
    assert_eq!(done["outcome"]["replica"]["application_name"], "eu-west");
    assert!(
        done["outcome"]["heartbeat"]["beat"]["seq"]
            .as_i64()
            .is_some(),
        "{done}"
    );
    let events: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"inspected"), "{events:?}");
    assert!(events.contains(&"planned") && events.contains(&"step_finished"));
    assert!(pgdata.join("standby.signal").is_file());
    // The password is in the passfile next to pgdata, never in the data
    // directory's configuration.
    let auto = std::fs::read_to_string(pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("primary_slot_name"), "{auto}");
    assert!(!auto.contains(REPL_PASSWORD));

    // region status: the servers say primary and standby; the standby's lag
    // from both sides and its replayed heartbeat.
    let status = env.ok_json(&["--config", cfg, "--json", "region", "status"]);
    assert_eq!(status["verdict"], "healthy", "{status}");
    let east = region(&status, "us-east");
    assert_eq!(east["observed"]["role"]["kind"], "primary", "{east}");
    assert!(east["lag"].is_null());
    let west = region(&status, "eu-west");
    assert_eq!(west["observed"]["role"]["kind"], "standby", "{west}");
    assert_eq!(
        west["observed"]["identity"]["system_identifier"],
        east["observed"]["identity"]["system_identifier"]
    );
    assert_eq!(west["lag"]["streaming"], true, "{west}");
    assert!(
        west["lag"]["from_primary"]["bytes"].as_u64().is_some(),
        "{west}"
    );
    assert!(west["lag"]["from_standby"].is_object(), "{west}");
    assert_eq!(west["heartbeat"]["beat"]["region"], "us-east", "{west}");
    assert!(west["heartbeat"]["age_seconds"].as_f64().is_some());
    assert_eq!(west["repository"]["state"], "not_configured");
    assert_eq!(status["lag_objective_seconds"], 300);

    // The text form names both roles.
    let text = env.ok(&["--config", cfg, "region", "status"]);
    assert!(text.contains("overall: HEALTHY"), "{text}");

    // The standby stopped: degraded (exit 10), and the reason says which.
    standby.stop();
    let (out, _) = env.exits_with(&["--config", cfg, "--json", "region", "status"], 10);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["verdict"], "degraded", "{status}");
    assert_eq!(status["error"]["kind"], "at_risk");
    let reasons = status["reasons"].to_string();
    assert!(reasons.contains("eu-west"), "{reasons}");
}

#[test]
fn a_standby_url_that_reaches_the_primary_is_refused_and_nothing_is_written() {
    let p = primary();
    let env = pg_env(&p);
    let pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    // eu-west's URL is the primary's own port.
    let cfg = pg_config(&env, &p, p.port(), &pgdata);
    let cfg = cfg.to_str().unwrap();
    let (out, err) = env.exits_with(
        &[
            "--config",
            cfg,
            "--json",
            "region",
            "replicate",
            "--from",
            "us-east",
            "--to",
            "eu-west",
        ],
        2,
    );
    assert!(err.contains("reaches the primary itself"), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert!(
        std::fs::read_dir(&pgdata).unwrap().next().is_none(),
        "the target directory was written to"
    );
    assert!(!lifeboat_region::replication::target::default_passfile(&pgdata).exists());
    // The primary got no replication slot.
    let rt = common::rt();
    let slots: i64 = rt.block_on(async {
        let c = p.conn_config("postgres").connect().await.unwrap();
        c.query_one("SELECT count(*) FROM pg_replication_slots", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(slots, 0);
}

/// A Patroni target is driven through Patroni (tests/region_patroni.rs);
/// without the replication role's password it is refused before anything.
#[test]
fn a_patroni_target_without_the_replication_password_is_refused() {
    let p = primary();
    let env = pg_env(&p);
    let yaml = format!(
        r#"repository:
  url: {repo}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{port}/postgres
      role: primary
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{port}/postgres
      manager: patroni
      patroni: {{url: "http://127.0.0.1:8008"}}
      role: standby
      replicates_from: us-east
"#,
        repo = env.repo,
        user = p.superuser(),
        port = p.port()
    );
    std::fs::write(env.path("p.yaml"), yaml).unwrap();
    let cfg = env.path("p.yaml");
    let err = env.fails(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "region",
            "replicate",
            "--from",
            "us-east",
            "--to",
            "eu-west",
        ],
        2,
    );
    assert!(err.contains("replication.password is not set"), "{err}");
}

// ---- traffic ----

fn traffic_config(env: &Env, b: &bind::Bind, key: &str) -> PathBuf {
    let yaml = format!(
        r#"repository:
  url: {repo}
regions:
  us-east:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:1/postgres
      role: primary
    dns: {{address: 192.0.2.10}}
  eu-west:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:1/postgres
      role: standby
      replicates_from: us-east
    dns: {{address: 192.0.2.20}}
traffic:
  provider: rfc2136
  name: app.{zone}
  ttl: 30
  rfc2136:
    server: "{server}"
    zone: {zone}
    tsig: {{name: {key}, secret: {{env: REGION_TSIG_SECRET}}}}
"#,
        repo = env.repo,
        zone = bind::ZONE,
        server = b.server(),
    );
    let path = env.path(&format!("traffic-{key}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn verdict(region: &str, observer: &str, healthy: bool) -> Verdict {
    let now = Utc::now();
    Verdict {
        region: region.into(),
        check: "gateway".into(),
        healthy,
        since: now,
        observed_at: now,
        observer: observer.into(),
        last_outcome: None,
    }
}

/// Publishes `verdicts` as `observer`'s view, as a daemon does.
fn publish(env: &Env, observer: &str, verdicts: &[Verdict]) {
    let rt = common::rt();
    rt.block_on(async {
        let storage = lifeboat_repo::storage::object::open_url(
            &env.repo,
            &lifeboat_repo::storage::object::S3Settings::default(),
        )
        .unwrap();
        let repo = lifeboat_repo::Repository::open(
            storage,
            &lifeboat_repo::Secret::Passphrase(common::PASSWORD.into()),
        )
        .await
        .unwrap();
        lifeboat_ops::region::verdicts::publish(&repo, observer, verdicts)
            .await
            .unwrap();
    });
}

#[test]
fn traffic_apply_follows_published_verdicts_in_bind() {
    let b = bind::Bind::start();
    let mut env = Env::init();
    env.envs
        .push(("REGION_TSIG_SECRET".into(), b.secret().to_string()));
    let cfg = traffic_config(&env, &b, bind::KEY_NAME);
    let cfg = cfg.to_str().unwrap();
    let name = format!("app.{}", bind::ZONE);

    // Nobody published: every region counts as healthy, and it says so.
    let o = env.run(&["--config", cfg, "--json", "region", "traffic", "apply"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["health"]["none_published"], true, "{doc}");
    assert_eq!(doc["applied"]["written"], true, "{doc}");
    assert_eq!(b.dig(&name, "A"), ["192.0.2.10", "192.0.2.20"]);

    // A vantage point sees eu-west unhealthy: the answer drops it.
    publish(
        &env,
        "us-east",
        &[
            verdict("us-east", "us-east", true),
            verdict("eu-west", "us-east", false),
        ],
    );
    let dry = env.ok_json(&[
        "--config",
        cfg,
        "--json",
        "region",
        "traffic",
        "apply",
        "--dry-run",
    ]);
    assert_eq!(dry["applied"]["written"], false, "{dry}");
    assert_eq!(b.dig(&name, "A"), ["192.0.2.10", "192.0.2.20"]);
    let st = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "status"]);
    assert_eq!(st["in_sync"], false, "{st}");

    let doc = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "apply"]);
    assert_eq!(
        doc["applied"]["desired"]["regions"],
        serde_json::json!(["us-east"])
    );
    assert_eq!(b.dig(&name, "A"), ["192.0.2.10"]);
    let st = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "status"]);
    assert_eq!(st["in_sync"], true, "{st}");
    assert_eq!(st["current"].as_array().unwrap().len(), 1, "{st}");

    // Applying again changes nothing (idempotent).
    let serial = b.serial();
    let doc = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "apply"]);
    assert_eq!(doc["applied"]["changes"], serde_json::json!([]), "{doc}");
    assert_eq!(b.serial(), serial);

    // It comes back: the answer returns.
    publish(
        &env,
        "us-east",
        &[
            verdict("us-east", "us-east", true),
            verdict("eu-west", "us-east", true),
        ],
    );
    env.ok(&["--config", cfg, "region", "traffic", "apply"]);
    assert_eq!(b.dig(&name, "A"), ["192.0.2.10", "192.0.2.20"]);
}

#[test]
fn a_tsig_key_bind_rejects_is_a_clear_error_and_nothing_is_written() {
    let b = bind::Bind::start();
    let mut env = Env::init();
    // Same key name, another secret: BIND answers BADSIG.
    env.envs.push((
        "REGION_TSIG_SECRET".into(),
        "c2VjcmV0LXRoYXQtYmluZC1kb2VzLW5vdC1rbm93LTEyMzQ1Njc4OTA=".into(),
    ));
    let cfg = traffic_config(&env, &b, bind::KEY_NAME);
    let serial = b.serial();
    let before = b.dig(&format!("app.{}", bind::ZONE), "A");
    let (out, err) = env.exits_with(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "region",
            "traffic",
            "apply",
        ],
        6,
    );
    assert!(err.contains("rejected Lifeboat's credentials"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "the secret leaked: {err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["kind"], "auth");
    assert_eq!(b.serial(), serial);
    assert_eq!(b.dig(&format!("app.{}", bind::ZONE), "A"), before);
}
