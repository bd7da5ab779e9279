//! Automatic region failover by the daemons (issue 20; docs/failover.md,
//! "Automatic failover"), with real components: a three-member etcd on
//! loopback (the authority, the votes, the election), us-east's PostgreSQL
//! 15 (a `TempCluster`, agent mode) and eu-west's streaming standby seeded
//! by `lifeboat region replicate`, BIND 9 serving the steered name, and
//! three `lifeboat serve` processes: us-east (the agent beside the
//! primary), eu-west, and the witness (a vantage point without a
//! database). Fast profile: TCP checks every 1 s, threshold 3; lease_ttl
//! 6 s, renew_interval 1 s, fence_guard 2 s (fence_daemon.rs's timing).
//!
//! In order, on one bed:
//! 1. us-east's checks fail from one vantage point only (eu-west's extra
//!    check of an endpoint the test switches off) → eu-west votes failed,
//!    the witness healthy: one of the two votes needed; nothing changes.
//! 2. eu-west's daemon alone is SIGKILLed → its vote vanishes with its
//!    lease; the witness counts it missing; nothing changes.
//! 3. us-east's daemon and its PostgreSQL are SIGKILLed → the daemon that
//!    wins the election bumps the epoch and stops at a pause point before
//!    promoting (`LIFEBOAT_TEST_FAILOVER_PAUSE`); the test SIGKILLs it there.
//!    The other surviving daemon resumes the change from etcd: eu-west is
//!    promoted, writable, epoch 2 (bumped once) in its `lifeboat.authority`,
//!    DNS answers eu-west with TXT epoch 2, one failover record of kind
//!    automatic in etcd confirmed by eu-west and the witness.
//!
//! Everything is read back from the servers and etcd. Conditions are polled
//! with generous bounds; no timing is asserted (the measured RTO is
//! printed).

use crate::bind;
use crate::common;
use crate::etcd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::endpoint::Endpoint;
use common::pg::{authority_epoch, in_recovery};
use common::standby::{SeededStandby, empty_owned_dir};
use common::{Daemon, Env};
use lifeboat_postgres::TempCluster;
use lifeboat_region::authority::{AuthorityStore, EtcdSettings, VoteRecord};

const REPL_PASSWORD: &str = "repl-Secret-a7f0";
const US: &str = "192.0.2.10";
const EU: &str = "192.0.2.20";
const BOUND: Duration = Duration::from_secs(120);

struct Ports {
    east: u16,
    west: u16,
    switch: u16,
}

/// One daemon's configuration: the same regions for all; eu-west's has a
/// second check of us-east (the switch), so only it can see us-east fail
/// while its server runs.
fn config(
    env: &Env,
    own: &str,
    p: &TempCluster,
    ports: &Ports,
    standby_pgdata: &Path,
    etcd: &[String],
    b: &bind::Bind,
) -> PathBuf {
    let tcp = |name: &str, port: u16| {
        format!(
            "{{name: {name}, type: tcp, host: 127.0.0.1, port: {port}, request_interval: 1s, failure_threshold: 3}}"
        )
    };
    // us-east's daemon does not check its own region: the published view
    // of a region's daemon about itself stays fresh for max_view_age after
    // it died with its region, and the steering loops (issue 19) would
    // count it healthy and put it back into DNS (steering that follows the
    // authority after a failover is rejoin's work).
    let east_checks = match own {
        "eu-west" => format!(
            "[{}, {}]",
            tcp("pg", ports.east),
            tcp("gateway", ports.switch)
        ),
        "us-east" => "[]".to_string(),
        _ => format!("[{}]", tcp("pg", ports.east)),
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
      url: postgresql://{user}@127.0.0.1:{eport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: primary
      pgdata: {epgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks: {east_checks}
    dns: {{address: {US}}}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{wport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: {wpgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks: [{west_check}]
    dns: {{address: {EU}}}
replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
  heartbeat: {{interval: 1s}}
traffic:
  provider: rfc2136
  name: app.{zone}
  ttl: 5
  rfc2136:
    server: "{server}"
    zone: {zone}
    tsig: {{name: {key}, secret: {{env: REGION_TSIG_SECRET}}}}
failover:
  etcd: {{endpoints: [{endpoints}]}}
  lease_ttl: 6s
  renew_interval: 1s
  fence_guard: 2s
  safety_margin: 1s
  witnesses: [witness]
serve:
  lease: 3s
  region: {own}
"#,
        repo = env.repo,
        user = p.superuser(),
        eport = ports.east,
        epgdata = p.data_dir().display(),
        wport = ports.west,
        wpgdata = standby_pgdata.display(),
        bin = p.bin_dir().display(),
        west_check = tcp("pg", ports.west),
        zone = bind::ZONE,
        server = b.server(),
        key = bind::KEY_NAME,
        endpoints = etcd.join(", "),
    );
    let path = env.path(&format!("{own}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

struct Etcd<'a> {
    rt: &'a tokio::runtime::Runtime,
    endpoints: Vec<String>,
}

impl Etcd<'_> {
    fn store(&self) -> Option<AuthorityStore> {
        self.rt
            .block_on(AuthorityStore::connect(EtcdSettings::new(
                self.endpoints.clone(),
            )))
            .ok()
    }

    fn votes(&self) -> Vec<VoteRecord> {
        self.store()
            .and_then(|s| self.rt.block_on(s.votes()).ok())
            .unwrap_or_default()
    }

    fn vote(&self, observer: &str) -> Option<VoteRecord> {
        self.votes().into_iter().find(|v| v.observer == observer)
    }

    /// (primary, epoch) of the authority record.
    fn authority(&self) -> Option<(String, u64)> {
        let s = self.store()?;
        let v = self.rt.block_on(s.authority()).ok()??;
        Some((v.value.primary, v.value.epoch))
    }

    fn progress(&self) -> Option<serde_json::Value> {
        let s = self.store()?;
        self.rt
            .block_on(s.progress::<serde_json::Value>())
            .ok()?
            .map(|v| v.value)
    }
}

/// Starts a daemon that stops before promoting while `pause` exists
/// (`LIFEBOAT_TEST_FAILOVER_PAUSE`, a pause point of the driver).
fn start_pausable(env: &mut Env, cfg: &Path, tag: &str, pause: &Path) -> Daemon {
    env.envs.push((
        "LIFEBOAT_TEST_FAILOVER_PAUSE".into(),
        format!("promote:{}", pause.display()),
    ));
    let d = Daemon::start(env, cfg, tag);
    env.envs.pop();
    d
}

/// The file a paused driver writes its pid to.
fn reached(pause: &Path) -> PathBuf {
    PathBuf::from(format!("{}.reached", pause.display()))
}

/// The postmaster's pid from its data directory.
fn postmaster_pid(pgdata: &Path) -> i32 {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).expect("postmaster.pid");
    text.lines().next().unwrap().trim().parse().unwrap()
}

#[test]
fn the_daemons_confirm_a_region_failure_and_fail_over() {
    let _alone = crate::alone::alone(module_path!());
    let rt = common::rt();
    let cluster = rt.block_on(etcd::EtcdCluster::start(3));
    let etcd = Etcd {
        rt: &rt,
        endpoints: cluster.endpoints(),
    };
    let b = bind::Bind::start();
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let switch = Endpoint::start();
    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    env.envs
        .push(("REGION_TSIG_SECRET".into(), b.secret().to_string()));
    let pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    let ports = Ports {
        east: p.port(),
        west: common::free_port(),
        switch: switch.port,
    };
    let cfg = |own: &str| config(&env, own, &p, &ports, &pgdata, &etcd.endpoints, &b);
    let (east_cfg, west_cfg, witness_cfg) = (cfg("us-east"), cfg("eu-west"), cfg("witness"));
    let _west_server = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: pgdata.clone(),
    };
    let east_conn = p.conn_config("postgres");
    let mut west_conn = east_conn.clone();
    west_conn.port = ports.west;
    let w = witness_cfg.to_str().unwrap();
    env.ok(&[
        "--config",
        w,
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]);
    env.ok(&["--config", w, "region", "traffic", "apply"]);
    let name = format!("app.{}", bind::ZONE);
    assert_eq!(b.dig(&name, "A").len(), 2);

    let d_east = Daemon::start(&env, &east_cfg, "us-east");
    let mut d_west = Daemon::start(&env, &west_cfg, "eu-west");
    // Both surviving daemons stop before promoting while their pause file
    // exists (step 3 creates the files; until then they do not pause).
    let pause_west = env.path("pause-eu-west");
    let pause_witness = env.path("pause-witness");
    let d_witness = start_pausable(&mut env, &witness_cfg, "witness", &pause_witness);
    // Every vantage point votes, us-east healthy, at epoch 1.
    d_witness.poll(BOUND, "three healthy votes on us-east", || {
        let votes = etcd.votes();
        (votes.len() == 3
            && votes
                .iter()
                .all(|v| v.primary == "us-east" && v.epoch == 1 && !v.failed))
        .then_some(())
    });
    // The witness holds its own lease like a region's daemon.
    let view = env.ok_json(&["--config", w, "--json", "region", "authority"]);
    let leases: Vec<&str> = view["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["region"].as_str().unwrap())
        .collect();
    assert!(leases.contains(&"witness"), "{view}");
    // The standby replays heartbeats from us-east: the lag guard has them.
    d_west.poll(BOUND, "a replayed heartbeat on eu-west", || {
        d_west
            .metric("lifeboat_replication_heartbeat_age_seconds{region=\"eu-west\"}")
            .filter(|v| v.is_finite())
    });

    // --- 1. us-east fails from one vantage point only: no failover -----------
    switch.set(false);
    d_west.poll(BOUND, "eu-west to vote us-east failed", || {
        etcd.vote("eu-west")
            .filter(|v| v.failed && v.failed_checks == ["gateway"])
    });
    d_witness.poll(BOUND, "the witness's decision: healthy, 1 of 2", || {
        let view = env.ok_json(&["--config", w, "--json", "region", "authority"]);
        let d = &view["decision"];
        (d["decision"] == "healthy" && d["failed_votes"] == 1 && d["needed"] == 2).then_some(())
    });
    d_witness.poll(BOUND, "the witness to count one failed vote", || {
        d_witness
            .metric("lifeboat_failover_votes{vote=\"failed\"}")
            .filter(|v| *v == 1.0)
    });
    assert_eq!(
        d_witness.metric("lifeboat_failover_decision{decision=\"healthy\"}"),
        Some(1.0)
    );
    d_witness.poll(BOUND, "the witness's own vote: us-east healthy", || {
        etcd.vote("witness").filter(|v| !v.failed)
    });
    assert_eq!(etcd.authority(), Some(("us-east".into(), 1)));
    assert_eq!(etcd.progress(), None, "no change of primary was started");
    assert_eq!(in_recovery(&rt, &east_conn), Some(false));
    assert_eq!(in_recovery(&rt, &west_conn), Some(true));
    switch.set(true);
    d_west.poll(BOUND, "eu-west to vote us-east healthy again", || {
        etcd.vote("eu-west").filter(|v| !v.failed)
    });

    // --- 2. the standby region's daemon alone dies: no failover --------------
    d_west.signal(libc::SIGKILL);
    d_west.wait(Duration::from_secs(30));
    d_witness.poll(BOUND, "eu-west's vote to vanish with its lease", || {
        etcd.vote("eu-west").is_none().then_some(())
    });
    d_witness.poll(BOUND, "the witness to count eu-west's vote missing", || {
        d_witness
            .metric("lifeboat_failover_votes{vote=\"missing\"}")
            .filter(|v| *v == 1.0)
    });
    assert_eq!(
        d_witness.metric("lifeboat_failover_decision{decision=\"healthy\"}"),
        Some(1.0)
    );
    assert_eq!(etcd.authority(), Some(("us-east".into(), 1)));
    assert_eq!(etcd.progress(), None);
    assert_eq!(in_recovery(&rt, &east_conn), Some(false));
    assert_eq!(
        in_recovery(&rt, &west_conn),
        Some(true),
        "eu-west's server runs on"
    );
    let d_west = start_pausable(&mut env, &west_cfg, "eu-west-2", &pause_west);
    d_west.poll(BOUND, "eu-west's vote again", || {
        etcd.vote("eu-west").filter(|v| !v.failed)
    });
    d_west.poll(BOUND, "a replayed heartbeat on eu-west", || {
        d_west
            .metric("lifeboat_replication_heartbeat_age_seconds{region=\"eu-west\"}")
            .filter(|v| v.is_finite())
    });

    // --- 3. us-east lost: its daemon and PostgreSQL SIGKILLed ----------------
    std::fs::write(&pause_west, b"").unwrap();
    std::fs::write(&pause_witness, b"").unwrap();
    let postmaster = postmaster_pid(&p.data_dir());
    let fault = Instant::now();
    d_east.signal(libc::SIGKILL);
    // SAFETY: kill(2) on the PostgreSQL server this test started.
    unsafe {
        libc::kill(postmaster, libc::SIGKILL);
    }

    // 3a. Whichever daemon leads stops before promoting, the epoch bumped;
    // it is SIGKILLed there. The other one must finish the change without
    // bumping the epoch again.
    let leader_is_west = d_witness.poll(BOUND, "the leader to stop before promoting", || {
        if reached(&pause_west).exists() {
            Some(true)
        } else {
            reached(&pause_witness).exists().then_some(false)
        }
    });
    assert_eq!(
        etcd.authority(),
        Some(("eu-west".into(), 2)),
        "the epoch is bumped before the promotion"
    );
    assert_eq!(
        in_recovery(&rt, &west_conn),
        Some(true),
        "nothing is promoted at the pause point"
    );
    let (mut leader, survivor, survivor_pause) = if leader_is_west {
        (d_west, d_witness, &pause_witness)
    } else {
        (d_witness, d_west, &pause_west)
    };
    eprintln!(
        "the leader ({}) stopped before promoting: killing it",
        if leader_is_west { "eu-west" } else { "witness" }
    );
    leader.signal(libc::SIGKILL);
    leader.wait(Duration::from_secs(30));
    std::fs::remove_file(survivor_pause).unwrap();
    let d_west = &survivor;
    let d_witness = &survivor;
    let writable = d_west.poll(BOUND, "eu-west to be promoted", || {
        (in_recovery(&rt, &west_conn) == Some(false)).then(|| fault.elapsed())
    });
    d_west.poll(BOUND, "epoch 2 in eu-west's lifeboat.authority", || {
        (authority_epoch(&rt, &west_conn) == Some(2)).then_some(())
    });
    let dns = d_west.poll(BOUND, "DNS to answer eu-west only", || {
        (b.dig(&name, "A") == vec![EU.to_string()]).then(|| fault.elapsed())
    });
    assert_eq!(
        b.dig(&format!("_lifeboat-authority.{name}"), "TXT"),
        vec!["\"lifeboat epoch=2 primary=eu-west\"".to_string()]
    );
    assert_eq!(etcd.authority(), Some(("eu-west".into(), 2)));
    // eu-west takes writes.
    rt.block_on(async {
        let c = west_conn.connect().await.unwrap();
        c.batch_execute(
            "CREATE TABLE after_failover (id int); INSERT INTO after_failover VALUES (1)",
        )
        .await
        .unwrap();
    });
    // The record in etcd: automatic, done, confirmed by both vantage points.
    // The record is written before the progress is marked done.
    let view = d_west.poll(BOUND, "the failover record and its progress done", || {
        let view = env.ok_json(&["--config", w, "--json", "region", "authority"]);
        (view["failovers"][0]["epoch"] == 2 && view["progress"]["phase"] == "done").then_some(view)
    });
    let rec = &view["failovers"][0];
    assert_eq!(rec["kind"], "automatic", "{view}");
    assert_eq!(rec["outcome"], "done", "{view}");
    assert_eq!(
        (rec["from"].as_str(), rec["to"].as_str()),
        (Some("us-east"), Some("eu-west"))
    );
    let mut by: Vec<&str> = rec["confirmation"]["confirmed_by"]
        .as_array()
        .unwrap_or_else(|| panic!("no confirmation in {rec}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    by.sort();
    assert_eq!(by, ["eu-west", "witness"], "{rec}");
    assert_eq!(view["authority"]["reason"], "failover", "{view}");
    assert_eq!(view["progress"]["phase"], "done", "{view}");
    // Resumed, not repeated: one epoch bump, one promotion, one record.
    let phases: Vec<&str> = rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases.iter().filter(|p| **p == "bump_epoch").count(),
        1,
        "{rec}"
    );
    assert_eq!(view["failovers"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(authority_epoch(&rt, &west_conn), Some(2));
    // The metrics of whoever is asked agree with the record.
    d_witness.poll(BOUND, "lifeboat_failovers_total 1", || {
        d_witness
            .metric("lifeboat_failovers_total")
            .filter(|v| *v == 1.0)
    });
    let rto = rec["rto_dns_seconds"]
        .as_f64()
        .or(rec["rto_writes_seconds"].as_f64());
    eprintln!(
        "measured from the SIGKILL: eu-west writable after {:.1} s, DNS answering it after {:.1} s; \
         the record says RTO writes {:?} s, DNS {:?} s (from its failure_at), RPO {:?} s",
        writable.as_secs_f64(),
        dns.as_secs_f64(),
        rec["rto_writes_seconds"].as_f64(),
        rto,
        rec["rpo_seconds"].as_f64()
    );
}
