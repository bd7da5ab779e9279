//! The daemon's region work end to end (issue 19): two regions on loopback,
//! a primary PostgreSQL (us-east) and a standby seeded from it by `lifeboat
//! region replicate` (eu-west), a real BIND 9 serving the steered name, a
//! health endpoint per region that the test switches off and on, and one
//! `lifeboat serve` per region (`LIFEBOAT_REGION`) on one repository.
//!
//! - the heartbeat is written by the primary's region's daemon only, and
//!   the lag metrics agree with `pg_stat_replication` (replay paused: the
//!   byte lag is within what the primary wrote since the standby's replay
//!   position, the heartbeat ages; resumed: both come back); under pgbench
//!   load the daemon reports the standby streaming as pg_stat_replication
//!   does, its byte lag within the WAL written since the load began, and
//!   the catch-up after it;
//! - a region's health endpoint stops answering: after `failure_threshold`
//!   probes both vantage points see it unhealthy, the DNS answer read with
//!   `dig` drops it, `readiness` names it; it answers again: the answer
//!   returns.
//!
//! Conditions are polled with a bound; no timing is asserted.

use crate::bind;
use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::endpoint::Endpoint;
use common::standby::{SeededStandby, empty_owned_dir};
use common::{Daemon, Env};
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;

const REPL_PASSWORD: &str = "repl-Secret-9c2a";
const EAST: &str = "192.0.2.1";
const WEST: &str = "198.51.100.1";
const NAME: &str = "app.kubernaut.test";
const LONG: Duration = Duration::from_secs(90);

fn config(
    env: &Env,
    p: &TempCluster,
    standby_port: u16,
    pgdata: &Path,
    bind: &bind::Bind,
    east: &Endpoint,
    west: &Endpoint,
) -> PathBuf {
    let check = |port: u16| {
        format!(
            "[{{name: web, type: http, host: 127.0.0.1, port: {port}, resource_path: /healthz, request_interval: 1s, failure_threshold: 2}}]"
        )
    };
    let yaml = format!(
        r#"repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
objectives:
  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: primary
    health_checks: {east_check}
    dns: {{address: {EAST}}}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: {pgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks: {west_check}
    dns: {{address: {WEST}}}
traffic:
  provider: rfc2136
  name: {NAME}
  ttl: 5
  rfc2136:
    server: "{dns}"
    zone: {zone}
    tsig: {{name: {key}, secret: {{env: REGION_TSIG_SECRET}}}}
replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
  heartbeat: {{interval: 1s}}
serve:
  lease: 3s
"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
        sport = standby_port,
        pgdata = pgdata.display(),
        bin = p.bin_dir().display(),
        east_check = check(east.port),
        west_check = check(west.port),
        dns = bind.server(),
        zone = bind::ZONE,
        key = bind::KEY_NAME,
    );
    let path = env.path("regions.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The value of the series `series` (name with labels, exactly) in a scrape.
fn rt() -> tokio::runtime::Runtime {
    common::rt()
}

/// One value from the first row of `q` on `conn`, as text.
fn query(rt: &tokio::runtime::Runtime, conn: &ConnConfig, q: &str) -> Option<String> {
    rt.block_on(async {
        let c = conn.connect().await.unwrap();
        c.query_one(q, &[]).await.unwrap().get(0)
    })
}

/// `a - b` for two LSNs in text form (`0/3000060`).
fn lsn_diff(a: &str, b: &str) -> i64 {
    let parse = |s: &str| {
        let (hi, lo) = s.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32 | u64::from_str_radix(lo, 16).unwrap()) as i64
    };
    parse(a) - parse(b)
}

fn readiness(env: &Env, cfg: &str) -> serde_json::Value {
    let out = env.run(&["--config", cfg, "--json", "readiness"]);
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn item(r: &serde_json::Value, id: &str) -> (String, String) {
    let it = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {r}"));
    (
        it["state"].as_str().unwrap().to_string(),
        it["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn two_regions_heartbeat_lag_health_and_dns_steering() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let bind = bind::Bind::start();
    let east = Endpoint::start();
    let west = Endpoint::start();
    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    env.envs
        .push(("REGION_TSIG_SECRET".into(), bind.secret().to_string()));
    let pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    let standby_port = common::free_port();
    let cfg = config(&env, &p, standby_port, &pgdata, &bind, &east, &west);
    let cfg = cfg.to_str().unwrap();
    let _standby = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: pgdata.clone(),
    };
    env.ok(&[
        "--config",
        cfg,
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]);
    let primary = p.conn_config("postgres");
    let standby = {
        let mut c = primary.clone();
        c.port = standby_port;
        c
    };

    // An unknown region is refused at start, naming the configured ones.
    let (_, stderr) = env.exits_with(&["--config", cfg, "serve", "--region", "ap-south"], 2);
    assert!(
        stderr.contains("ap-south") && stderr.contains("eu-west"),
        "{stderr}"
    );

    // One daemon per region, told its region by LIFEBOAT_REGION.
    env.envs.push(("LIFEBOAT_REGION".into(), "us-east".into()));
    let d_east = Daemon::start(&env, Path::new(cfg), "us-east");
    env.envs.pop();
    env.envs.push(("LIFEBOAT_REGION".into(), "eu-west".into()));
    let d_west = Daemon::start(&env, Path::new(cfg), "eu-west");
    env.envs.pop();

    // The heartbeat: written by the primary's region's daemon, replayed on
    // the standby; the standby's daemon writes none (its server is a standby).
    let hb = "lifeboat_heartbeat_writes_total{region=\"us-east\"}";
    d_east.poll(LONG, "heartbeats written", || {
        d_east.metric(hb).filter(|v| *v >= 3.0)
    });
    let seq: i64 = rt.block_on(async {
        let c = standby.with_dbname("lifeboat").connect().await.unwrap();
        c.query_one(
            "SELECT seq FROM lifeboat.heartbeat WHERE region = 'us-east'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert!(seq >= 1);
    assert_eq!(
        d_west.metric("lifeboat_heartbeat_writes_total{region=\"eu-west\"}"),
        Some(0.0)
    );
    assert_eq!(
        d_west.metric("lifeboat_region_primary{region=\"us-east\"}"),
        Some(1.0)
    );

    // Lag seen by both daemons, streaming as pg_stat_replication says.
    for d in [&d_east, &d_west] {
        d.poll(LONG, "eu-west streaming with a heartbeat age", || {
            let s = d.metric("lifeboat_replication_streaming{region=\"eu-west\"}")?;
            let age = d.metric("lifeboat_replication_heartbeat_age_seconds{region=\"eu-west\"}")?;
            let bytes = d.metric("lifeboat_replication_lag_bytes{region=\"eu-west\"}")?;
            (s == 1.0 && age.is_finite() && bytes.is_finite()).then_some(())
        });
    }
    let state = query(
        &rt,
        &primary,
        "SELECT state FROM pg_stat_replication WHERE application_name = 'eu-west'",
    );
    assert_eq!(state.as_deref(), Some("streaming"));
    assert!(
        d_east
            .metric("lifeboat_replication_lag_seconds{region=\"us-east\"}")
            .is_none()
    );

    // Replay paused on the standby: the byte lag the daemon reports is
    // within the WAL the primary wrote past the frozen replay position, and
    // the replayed heartbeat ages; pg_stat_replication shows that position.
    query(&rt, &standby, "SELECT pg_wal_replay_pause()::text");
    let frozen = query(&rt, &standby, "SELECT pg_last_wal_replay_lsn()::text").unwrap();
    let (bytes, age) = d_east.poll(LONG, "lag while replay is paused", || {
        let b = d_east.metric("lifeboat_replication_lag_bytes{region=\"eu-west\"}")?;
        let a = d_east.metric("lifeboat_replication_heartbeat_age_seconds{region=\"eu-west\"}")?;
        (b > 0.0 && a >= 3.0).then_some((b, a))
    });
    let current = query(&rt, &primary, "SELECT pg_current_wal_lsn()::text").unwrap();
    assert!(
        bytes as i64 <= lsn_diff(&current, &frozen),
        "reported {bytes} bytes behind, but the primary wrote only {} bytes past the replay position {frozen}",
        lsn_diff(&current, &frozen)
    );
    let seen = query(
        &rt,
        &primary,
        "SELECT replay_lsn::text FROM pg_stat_replication WHERE application_name = 'eu-west'",
    )
    .unwrap();
    assert_eq!(
        lsn_diff(&seen, &frozen),
        0,
        "pg_stat_replication: {seen}, standby: {frozen}"
    );
    // Readiness sees the same standby: streaming, within the 5m objective.
    let (st, detail) = item(&readiness(&env, cfg), "multi-region-replication");
    assert_eq!(st, "pass", "{detail}");
    assert!(detail.contains("eu-west: streaming"), "{detail}");

    query(&rt, &standby, "SELECT pg_wal_replay_resume()::text");
    d_east.poll(LONG, "the standby to catch up", || {
        let now_age =
            d_east.metric("lifeboat_replication_heartbeat_age_seconds{region=\"eu-west\"}")?;
        let replayed = query(
            &rt,
            &primary,
            "SELECT replay_lsn::text FROM pg_stat_replication WHERE application_name = 'eu-west'",
        )?;
        (now_age < age && lsn_diff(&replayed, &current) >= 0).then_some(())
    });

    // Under pgbench load on the primary: the daemon reports the standby
    // streaming whenever pg_stat_replication does, its byte lag never
    // exceeds the WAL written since the load began (the standby had
    // replayed everything before it), and once pgbench ends and
    // pg_stat_replication shows the standby caught up, the daemon's next
    // observation says so too.
    let start = query(&rt, &primary, "SELECT pg_current_wal_lsn()::text").unwrap();
    let pgbench = |args: &[&str]| {
        let mut c = std::process::Command::new(p.bin_dir().join("pgbench"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &p.port().to_string(),
            "-U",
            p.superuser(),
        ])
        .args(args)
        .arg("postgres")
        .env("PGPASSWORD", p.password().expose())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        c
    };
    let init = pgbench(&["-i", "-s", "5", "-q"]).output().unwrap();
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut load = pgbench(&["-c", "2", "-j", "2", "-t", "3000", "-N"])
        .spawn()
        .unwrap();
    let mut samples = 0;
    while load.try_wait().unwrap().is_none() || samples == 0 {
        let scrape = d_east
            .try_get("/metrics", None)
            .map(|(_, text)| text)
            .unwrap_or_default();
        let streaming = common::sample(
            &scrape,
            "lifeboat_replication_streaming{region=\"eu-west\"}",
        );
        let bytes = common::sample(
            &scrape,
            "lifeboat_replication_lag_bytes{region=\"eu-west\"}",
        );
        let state = query(
            &rt,
            &primary,
            "SELECT state FROM pg_stat_replication WHERE application_name = 'eu-west'",
        );
        let now = query(&rt, &primary, "SELECT pg_current_wal_lsn()::text").unwrap();
        if state.as_deref() == Some("streaming") {
            assert_eq!(streaming, Some(1.0), "pg_stat_replication says streaming");
        }
        let Some(bytes) = bytes else {
            panic!("no lag in bytes for eu-west under load; scrape:\n{scrape}");
        };
        assert!(
            bytes >= 0.0 && bytes as i64 <= lsn_diff(&now, &start),
            "under load the daemon reports {bytes} bytes behind, but only {} were written since the load began at {start}",
            lsn_diff(&now, &start)
        );
        samples += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = load.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let end = query(&rt, &primary, "SELECT pg_current_wal_lsn()::text").unwrap();
    assert!(
        lsn_diff(&end, &start) > 1_000_000,
        "pgbench wrote WAL: {start} .. {end}"
    );
    d_east.poll(LONG, "the standby to catch up after pgbench", || {
        let replayed = query(
            &rt,
            &primary,
            "SELECT replay_lsn::text FROM pg_stat_replication WHERE application_name = 'eu-west'",
        )?;
        (lsn_diff(&replayed, &end) >= 0).then_some(())
    });
    d_east.poll(LONG, "the daemon to see the catch-up", || {
        let bytes = d_east.metric("lifeboat_replication_lag_bytes{region=\"eu-west\"}")?;
        let now = query(&rt, &primary, "SELECT pg_current_wal_lsn()::text")?;
        (bytes as i64 <= lsn_diff(&now, &end)).then_some(())
    });

    // DNS: both regions healthy, both answered.
    let both = {
        let mut v = vec![EAST.to_string(), WEST.to_string()];
        v.sort();
        v
    };
    d_east.poll(LONG, "DNS to answer both regions", || {
        (bind.dig(NAME, "A") == both).then_some(())
    });
    // Readiness: once both vantage points have published their views.
    d_east.poll(LONG, "readiness's global-load-balancer to pass", || {
        let (st, _) = item(&readiness(&env, cfg), "global-load-balancer");
        (st == "pass").then_some(())
    });

    // eu-west's endpoint stops answering: both vantage points see it
    // unhealthy after failure_threshold probes, and DNS drops it.
    west.set(false);
    for (d, observer) in [(&d_east, "us-east"), (&d_west, "eu-west")] {
        d.poll(LONG, "eu-west unhealthy", || {
            let s =
                format!("lifeboat_region_healthy{{region=\"eu-west\",observer=\"{observer}\"}}");
            (d.metric(&s)? == 0.0).then_some(())
        });
        assert_eq!(
            d.metric(&format!(
                "lifeboat_region_healthy{{region=\"us-east\",observer=\"{observer}\"}}"
            )),
            Some(1.0)
        );
    }
    d_east.poll(LONG, "DNS to drop eu-west", || {
        (bind.dig(NAME, "A") == [EAST.to_string()]).then_some(())
    });
    let (st, detail) = item(&readiness(&env, cfg), "global-load-balancer");
    assert_eq!(st, "pass", "{detail}");
    assert!(detail.contains("left out: eu-west unhealthy"), "{detail}");
    let steered = d_east.log_text() + &d_west.log_text();
    assert!(steered.contains("traffic steered"), "{steered}");
    let failures = d_east.metric("lifeboat_health_check_failures_total{region=\"eu-west\",check=\"web\",observer=\"us-east\"}",
    )
    .unwrap();
    assert!(failures >= 2.0, "{failures}");

    // It answers again: DNS answers it again.
    west.set(true);
    d_east.poll(LONG, "DNS to answer eu-west again", || {
        (bind.dig(NAME, "A") == both).then_some(())
    });
    let (st, detail) = item(&readiness(&env, cfg), "global-load-balancer");
    assert_eq!(st, "pass", "{detail}");
    assert!(!detail.contains("left out"), "{detail}");
    for d in [&d_east, &d_west] {
        d.poll(LONG, "the answer gauge", || {
            (d.metric("lifeboat_traffic_answer{region=\"eu-west\"}")? == 1.0).then_some(())
        });
    }
    drop(d_east);
    drop(d_west);
}

/// The daemon's steering takes a fixed TSIG secret without a restart: with a
/// secret BIND rejects, nothing is written and the failure is counted; once
/// the file holds the right one, the next period steers.
#[test]
fn a_tsig_secret_fixed_in_its_file_is_taken_without_a_restart() {
    let _alone = crate::alone::alone(module_path!());
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let bind = bind::Bind::start();
    let east = Endpoint::start();
    let west = Endpoint::start();
    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    let secret_file = env.path("tsig.secret");
    let write_secret = |s: &str| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&secret_file)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    };
    // Valid base64 of 32 bytes, but not the key BIND holds: BADSIG.
    write_secret("c29tZSBvdGhlciBzZWNyZXQgb2YgdGhpcnR5LXR3byE=");
    let check = |port: u16| {
        format!(
            "[{{name: web, type: http, host: 127.0.0.1, port: {port}, resource_path: /healthz, request_interval: 1s, failure_threshold: 2}}]"
        )
    };
    let yaml = format!(
        r#"repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: primary
    health_checks: {east_check}
    dns: {{address: {EAST}}}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
    health_checks: {west_check}
    dns: {{address: {WEST}}}
traffic:
  provider: rfc2136
  name: {NAME}
  ttl: 5
  rfc2136:
    server: "{dns}"
    zone: {zone}
    tsig: {{name: {key}, secret: {{file: {secret}}}}}
serve:
  lease: 3s
"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
        sport = common::free_port(),
        east_check = check(east.port),
        west_check = check(west.port),
        dns = bind.server(),
        zone = bind::ZONE,
        key = bind::KEY_NAME,
        secret = secret_file.display(),
    );
    let cfg = env.path("regions.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    env.envs.push(("LIFEBOAT_REGION".into(), "us-east".into()));
    let d = Daemon::start(&env, &cfg, "us-east");

    d.poll(LONG, "a steering attempt the server rejects", || {
        let f = d.metric("lifeboat_traffic_apply_failures_total")?;
        (f >= 1.0).then_some(())
    });
    assert!(
        bind.dig(NAME, "A").is_empty(),
        "nothing may be written with a rejected key"
    );
    assert!(
        d.log_text().contains("BADSIG"),
        "the log says why: {}",
        d.log_text()
    );

    write_secret(bind.secret());
    let both = {
        let mut v = vec![EAST.to_string(), WEST.to_string()];
        v.sort();
        v
    };
    d.poll(
        LONG,
        "DNS to answer both regions with the fixed secret",
        || (bind.dig(NAME, "A") == both).then_some(()),
    );
    assert!(
        !d.log_text().contains(bind.secret()),
        "the secret never appears in the log"
    );
}
