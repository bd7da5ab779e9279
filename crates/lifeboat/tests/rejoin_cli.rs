//! `lifeboat region rejoin` and `region rehearse` through the built binary
//! against real servers: etcd (one member), two PostgreSQL 15 servers
//! (us-east a `TempCluster` in agent mode, eu-west a standby seeded by
//! `region replicate`) and BIND 9. After a manual failover to eu-west the
//! old primary comes back; `rejoin` makes it a standby of eu-west (by
//! `pg_rewind` with `wal_log_hints` on, by a fresh clone without it or
//! checksums), and `rehearse` switches over and back. Every result is read
//! back from the servers (roles, rows, `pg_stat_replication`, the epoch
//! rows), from BIND and from etcd, never from Lifeboat's report alone.
//! With `failover.auto_rejoin` the old primary's own daemon does the same
//! on its own. Conditions are polled with a bound; no timing is asserted.

use crate::bind;
use crate::common;
use crate::etcd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Env;
use common::gateways::Gateways;
use common::pg::{authority_epoch, in_recovery, rows as sql};
use common::standby::{SeededStandby, empty_owned_dir};
use kube_double::Fault;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::{ClusterOptions, TempCluster};
use lifeboat_region::replication::target::os_user;

const REPL_PASSWORD: &str = "repl-Secret-r3j0in";
const US: &str = "192.0.2.10";
const EU: &str = "192.0.2.20";
/// The regions' namespaces in the Kubernetes API test double.
const US_NS: &str = "kubernaut-us";
const EU_NS: &str = "kubernaut-eu";

/// The configuration; with `daemon`, the one for a daemon in eu-west: TCP
/// health checks on both servers, `serve.region: eu-west`, and eu-west not
/// in agent mode (no `pgdata`), so the daemon neither guards nor fences it.
#[allow(clippy::too_many_arguments)]
fn config(
    env: &Env,
    p: &TempCluster,
    standby_port: u16,
    standby_pgdata: &Path,
    etcd: &[String],
    b: &bind::Bind,
    daemon: bool,
) -> PathBuf {
    let check = |port: u16| {
        format!(
            "\n    health_checks: [{{name: pg, type: tcp, host: 127.0.0.1, port: {port}, request_interval: 1s, failure_threshold: 2}}]"
        )
    };
    // The regions' serving Deployments (in the Kubernetes API test double,
    // `Gateways`) for the rejoin's capacity step; the eu-west daemon's
    // configuration has none.
    let deployments = |ns: &str, failover: u32| {
        if daemon {
            String::new()
        } else {
            format!(
                "\n    deployments: {{namespace: {ns}, items: [{{name: gateway, replicas: 2, failover_replicas: {failover}}}]}}"
            )
        }
    };
    let (east_deployments, west_deployments) = (deployments(US_NS, 4), deployments(EU_NS, 3));
    let kubernetes = if daemon {
        String::new()
    } else {
        format!("kubernetes:\n  kubeconfig: {}\n", Gateways::kubeconfig(env))
    };
    let west_agent = if daemon {
        String::new()
    } else {
        format!(
            "\n      pgdata: {}\n      control: {{pg_ctl: {{bin_dir: {}}}}}",
            standby_pgdata.display(),
            p.bin_dir().display()
        )
    };
    let (east_check, west_check, serve) = if daemon {
        (
            check(p.port()),
            check(standby_port),
            "serve:\n  region: eu-west\n  lease: 3s\n",
        )
    } else {
        (String::new(), String::new(), "")
    };
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
      role: primary
      pgdata: {ppgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}{east_check}
    dns: {{address: {US}}}{east_deployments}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: standby
      replicates_from: us-east{west_agent}{west_check}
    dns: {{address: {EU}}}{west_deployments}
{kubernetes}replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
traffic:
  provider: rfc2136
  name: app.{zone}
  ttl: 30
  rfc2136:
    server: "{server}"
    zone: {zone}
    tsig: {{name: {key}, secret: {{env: REGION_TSIG_SECRET}}}}
failover:
  etcd: {{endpoints: [{endpoints}]}}
  safety_margin: 1s
{serve}"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
        ppgdata = p.data_dir().display(),
        sport = standby_port,
        bin = p.bin_dir().display(),
        zone = bind::ZONE,
        server = b.server(),
        key = bind::KEY_NAME,
        endpoints = etcd.join(", "),
    );
    let path = env.path(if daemon { "daemon.yaml" } else { "rejoin.yaml" });
    std::fs::write(&path, yaml).unwrap();
    path
}

fn count(rt: &tokio::runtime::Runtime, conn: &ConnConfig, q: &str) -> i64 {
    sql(rt, conn, q)[0].get(0)
}

/// `count` that waits out a table not replayed yet (`None`).
fn count_opt(rt: &tokio::runtime::Runtime, conn: &ConnConfig, q: &str) -> Option<i64> {
    rt.block_on(async {
        let c = conn.connect().await.ok()?;
        c.query_one(q, &[]).await.ok().map(|r| r.get(0))
    })
}

/// `application_name`s the primary lists `streaming` in pg_stat_replication.
fn streaming_to(rt: &tokio::runtime::Runtime, primary: &ConnConfig) -> Vec<String> {
    sql(
        rt,
        primary,
        "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1",
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// `pg_ctl start|stop` on `pgdata` as the server's OS user.
fn pg_ctl(bin: &Path, pgdata: &Path, args: &[&str]) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin.join("pg_ctl"));
    cmd.args(args).arg("-D").arg(pgdata).current_dir("/");
    if let Ok(Some((uid, gid))) = os_user(None) {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const LONG: Duration = Duration::from_secs(90);

/// Whether the steering logged that it leaves `left_out` out (the
/// authority's rule; logged when the set changes).
fn left_out_logged(d: &common::Daemon, left_out: &str) -> bool {
    d.log_lines()
        .iter()
        .any(|l| l["fields"]["left_out"].as_str() == Some(left_out))
}

fn readiness_item(env: &Env, cfg: &str, id: &str) -> (String, String) {
    let out = env.run(&["--config", cfg, "--json", "readiness"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let it = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {r}"))
        .clone();
    (
        it["state"].as_str().unwrap().to_string(),
        it["detail"].as_str().unwrap().to_string(),
    )
}

/// Two regions after a manual failover from us-east to eu-west: us-east
/// stopped at once (its region lost), eu-west the primary at epoch 2 with
/// rows 101..=110 written after the failover.
struct Bed {
    // Fields drop in this order: the servers run under pg_ctl are stopped
    // before the TempCluster removes us-east's directory.
    _west_guard: SeededStandby,
    _east_guard: SeededStandby,
    rt: tokio::runtime::Runtime,
    _etcd: etcd::EtcdCluster,
    b: bind::Bind,
    p: TempCluster,
    env: Env,
    gw: Gateways,
    cfg: PathBuf,
    daemon_cfg: PathBuf,
    east: ConnConfig,
    west: ConnConfig,
}

impl Bed {
    fn cfg(&self) -> &str {
        self.cfg.to_str().unwrap()
    }

    fn name(&self) -> String {
        format!("app.{}", bind::ZONE)
    }

    fn dig_a(&self) -> Vec<String> {
        let mut v = self.b.dig(&self.name(), "A");
        v.sort();
        v
    }

    /// us-east started by hand on its data directory (under pg_ctl).
    fn start_east_by_hand(&self) {
        let log = self.p.dir().join("by-hand.log");
        pg_ctl(
            self.p.bin_dir(),
            &self.p.data_dir(),
            &["start", "-w", "-l", log.to_str().unwrap()],
        );
    }
}

fn failed_over(wal_log_hints: bool) -> Bed {
    let rt = common::rt();
    let etcd = rt.block_on(etcd::EtcdCluster::start(1));
    let b = bind::Bind::start();
    let mut settings = vec![("full_page_writes".to_string(), "on".to_string())];
    if wal_log_hints {
        settings.push(("wal_log_hints".into(), "on".into()));
    }
    let p = TempCluster::start_with(ClusterOptions {
        settings,
        ..Default::default()
    })
    .expect("starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing");
    // A start under pg_ctl (the old primary started by hand, the rejoin)
    // uses the same settings.
    let east_guard = SeededStandby::for_cluster(
        &p,
        &[("wal_log_hints", if wal_log_hints { "on" } else { "off" })],
    );
    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    env.envs
        .push(("REGION_TSIG_SECRET".into(), b.secret().to_string()));
    let gw = Gateways::start(&mut env, &[US_NS, EU_NS], 2);
    let pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    let port = common::free_port();
    let cfg = config(&env, &p, port, &pgdata, &etcd.endpoints(), &b, false);
    let daemon_cfg = config(&env, &p, port, &pgdata, &etcd.endpoints(), &b, true);
    let west_guard = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: pgdata.clone(),
    };
    let east = p.conn_config("postgres");
    let mut west = east.clone();
    west.port = port;
    let c = cfg.to_str().unwrap();
    env.ok(&[
        "--config",
        c,
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]);
    env.ok(&["--config", c, "region", "traffic", "apply"]);
    sql(
        &rt,
        &east,
        "CREATE TABLE orders (id int primary key); INSERT INTO orders SELECT generate_series(1, 100)",
    );
    common::poll(Duration::from_secs(30), "eu-west to replay row 100", || {
        (count_opt(&rt, &west, "SELECT count(*) FROM orders") == Some(100)).then_some(())
    });
    // us-east's region is lost: its server stops at once.
    pg_ctl(
        p.bin_dir(),
        &p.data_dir(),
        &["stop", "-m", "immediate", "-w"],
    );
    let doc = env.ok_json(&[
        "--config", c, "--json", "region", "failover", "--to", "eu-west",
    ]);
    assert_eq!(doc["report"]["outcome"], "done", "{doc}");
    assert_eq!(doc["report"]["epoch"], 2);
    assert_eq!(in_recovery(&rt, &west), Some(false));
    // eu-west carries all the traffic: its gateway at its failover count.
    assert_eq!(gw.replicas(EU_NS), Some(3));
    sql(
        &rt,
        &west,
        "INSERT INTO orders SELECT generate_series(101, 110)",
    );
    let bed = Bed {
        rt,
        _etcd: etcd,
        b,
        p,
        env,
        gw,
        cfg,
        daemon_cfg,
        east,
        west,
        _west_guard: west_guard,
        _east_guard: east_guard,
    };
    assert_eq!(bed.dig_a(), vec![EU.to_string()]);
    bed
}

fn steps_of(doc: &serde_json::Value) -> Vec<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn returning_old_primary_is_fenced_rewound_and_rejoined_then_rehearsal() {
    let _alone = crate::alone::alone(module_path!());
    let bed = failed_over(true);
    let (rt, cfg) = (&bed.rt, bed.cfg());

    // A daemon in eu-west steers DNS, following the authority.
    let d = common::Daemon::start(&bed.env, &bed.daemon_cfg, "west");
    d.poll(LONG, "the steering to leave us-east out (down)", || {
        left_out_logged(&d, "us-east (not reached)").then_some(())
    });

    // The old primary comes back by hand: writable at the old epoch, and a
    // write lands on it that eu-west never saw (the timelines diverge).
    bed.start_east_by_hand();
    assert_eq!(in_recovery(rt, &bed.east), Some(false));
    sql(rt, &bed.east, "INSERT INTO orders VALUES (9999)");
    // Its TCP check passes, but the steering round that saw it writable at
    // an older epoch leaves it out: DNS still answers eu-west only.
    d.poll(LONG, "a steering round seeing us-east writable", || {
        left_out_logged(&d, "us-east (a writable primary, newest epoch row none)").then_some(())
    });
    assert_eq!(bed.dig_a(), vec![EU.to_string()]);
    assert_eq!(
        d.metric("lifeboat_traffic_answer{region=\"us-east\"}"),
        Some(0.0)
    );

    // The current primary cannot rejoin: refused, nothing changed.
    let refused = bed
        .env
        .fails(&["--config", cfg, "region", "rejoin", "eu-west"], 2);
    assert!(refused.contains("is the authority's primary"), "{refused}");
    assert_eq!(in_recovery(rt, &bed.west), Some(false));

    // us-east's writers as its fence left them (the agent beside it was
    // lost with the region here, so the test puts them there).
    bed.gw.as_fenced(US_NS, 2);
    // us-east's Kubernetes API fails during the rejoin: every request for
    // its namespace answers 503, retried within a 1 s budget.
    let us_path = format!("/namespaces/{US_NS}/");
    bed.gw
        .api
        .set_fault(move |r| r.path.contains(&us_path).then(Fault::unavailable));
    let out = bed
        .env
        .cmd(&["--config", cfg, "--json", "region", "rejoin", "us-east"])
        .env("LIFEBOAT_KUBE_RETRY_BUDGET", "1s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &doc["report"];
    assert_eq!(
        steps_of(&doc),
        [
            "plan",
            "fence",
            "slot",
            "rewind",
            "follow",
            "verify",
            "restore_dns",
            "capacity"
        ],
        "{doc}"
    );
    // The capacity step failed, saying which cluster and what to run; the
    // error names the region and says its server steps stand.
    assert_eq!(report["capacity"]["ok"], false, "{doc}");
    let notes = report["capacity"]["notes"].to_string();
    assert!(
        notes.contains("us-east's Kubernetes cluster") && notes.contains("503"),
        "{doc}"
    );
    assert!(
        report["capacity"]["to_finish"]
            .as_str()
            .unwrap()
            .contains("run `lifeboat region rejoin us-east` again"),
        "{doc}"
    );
    let error = &doc["error"];
    assert_eq!(error["exit_code"], 1, "{doc}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("us-east is a streaming standby of eu-west (epoch 2)"),
        "{doc}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("lifeboat region rejoin us-east"),
        "{doc}"
    );
    // Retried: more than one faulted answer per call.
    let faulted = bed
        .gw
        .api
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!(faulted > 1, "{faulted} faulted answers");
    // Nothing scaled: us-east's gateway still at 0 with its record, and
    // eu-west kept at its failover count (us-east's writers are not back).
    assert_eq!(bed.gw.replicas(US_NS), Some(0), "{doc}");
    assert_eq!(bed.gw.recorded(US_NS).as_deref(), Some("2"), "{doc}");
    assert_eq!(bed.gw.replicas(EU_NS), Some(3), "{doc}");
    assert!(
        report["capacity"]["notes"]
            .to_string()
            .contains("eu-west: left at its failover counts (us-east's writers are not back)"),
        "{doc}"
    );
    // The server steps stand: us-east is a standby streaming from eu-west
    // (read back in full below).
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    // A rerun while the API still fails fails the same way (no retry
    // budget this time), and the human output says so too.
    let (stdout, stderr) = {
        let o = bed
            .env
            .cmd(&["--config", cfg, "region", "rejoin", "us-east"])
            .env("LIFEBOAT_KUBE_RETRY_BUDGET", "0")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(stdout.contains("capacity     FAIL"), "{stdout}");
    assert!(
        stdout.contains("its capacity step FAILED")
            && stderr.contains("lifeboat region rejoin us-east"),
        "{stdout}\n{stderr}"
    );
    // The API answers again: the documented command finishes the step.
    bed.gw.api.clear_faults();
    let finished = bed
        .env
        .ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    assert_eq!(
        steps_of(&finished),
        ["plan", "verify", "restore_dns", "capacity"],
        "{finished}"
    );
    // Active-active again: us-east's writers back to the count its fence
    // recorded, eu-west's from its failover count back to its normal one.
    assert_eq!(finished["report"]["capacity"]["ok"], true, "{finished}");
    assert!(finished.get("error").is_none(), "{finished}");
    assert_eq!(bed.gw.replicas(US_NS), Some(2), "{finished}");
    assert_eq!(bed.gw.recorded(US_NS), None, "{finished}");
    assert_eq!(bed.gw.replicas(EU_NS), Some(2), "{finished}");
    assert_eq!(report["method"], "rewind", "{doc}");
    assert_eq!(report["server_before"]["kind"], "writable", "{doc}");
    assert_eq!(report["dir"]["rewind"]["wal_log_hints"], true, "{doc}");

    // The servers say: us-east is a standby streaming from eu-west, holds
    // every row eu-west has (those written after the failover too) and not
    // the write it took at the old epoch; it replayed epoch 2's row.
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    let receiver = sql(rt, &bed.east, "SELECT status FROM pg_stat_wal_receiver");
    assert_eq!(receiver[0].get::<_, String>(0), "streaming");
    sql(rt, &bed.west, "INSERT INTO orders VALUES (111)");
    common::poll(Duration::from_secs(30), "us-east to replay row 111", || {
        (count_opt(rt, &bed.east, "SELECT count(*) FROM orders WHERE id = 111") == Some(1))
            .then_some(())
    });
    assert_eq!(count(rt, &bed.east, "SELECT count(*) FROM orders"), 111);
    assert_eq!(
        count(rt, &bed.east, "SELECT count(*) FROM orders WHERE id = 9999"),
        0
    );
    assert_eq!(authority_epoch(rt, &bed.east), Some(2));
    // DNS answers both regions again (rejoin's own update, or the daemon's
    // next round when the published health of us-east, checked while it was
    // stopped for the rewind, had not recovered yet); TXT still epoch 2.
    common::poll(LONG, "DNS to answer both regions", || {
        (bed.dig_a() == vec![US.to_string(), EU.to_string()]).then_some(())
    });
    assert_eq!(
        bed.b
            .dig(&format!("_lifeboat-authority.{}", bed.name()), "TXT"),
        vec!["\"lifeboat epoch=2 primary=eu-west\"".to_string()]
    );

    // The daemon's own steering answers it again now that it replayed epoch 2.
    d.poll(LONG, "the daemon to answer us-east again", || {
        (d.metric("lifeboat_traffic_answer{region=\"us-east\"}") == Some(1.0)).then_some(())
    });
    d.poll(LONG, "the steering to leave nobody out", || {
        left_out_logged(&d, "").then_some(())
    });
    drop(d);

    // Again: it already streams; only verified, nothing rewound.
    let (us_patches, eu_patches) = (bed.gw.scale_patches(US_NS), bed.gw.scale_patches(EU_NS));
    let again = bed
        .env
        .ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    assert_eq!(
        steps_of(&again),
        ["plan", "verify", "restore_dns", "capacity"],
        "{again}"
    );
    assert_eq!(bed.gw.replicas(US_NS), Some(2));
    assert_eq!(bed.gw.replicas(EU_NS), Some(2));
    // Idempotent: the capacity step wrote nothing this time.
    assert_eq!(bed.gw.scale_patches(US_NS), us_patches, "{again}");
    assert_eq!(bed.gw.scale_patches(EU_NS), eu_patches, "{again}");
    assert!(again["report"]["method"].is_null(), "{again}");

    // --- rehearsal ------------------------------------------------------------
    let (state, detail) = readiness_item(&bed.env, cfg, "failover-tests");
    assert_eq!(state, "fail", "{detail}");
    assert!(detail.contains("no rehearsal recorded"), "{detail}");

    sql(rt, &bed.west, "INSERT INTO orders VALUES (112)");
    let doc = bed
        .env
        .ok_json(&["--config", cfg, "--json", "region", "rehearse"]);
    let legs = doc["report"]["legs"].as_array().unwrap();
    let dirs: Vec<(String, String, u64, i64)> = legs
        .iter()
        .map(|l| {
            (
                l["from"].as_str().unwrap().to_string(),
                l["to"].as_str().unwrap().to_string(),
                l["epoch"].as_u64().unwrap(),
                l["rows_lost"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dirs,
        vec![
            ("eu-west".to_string(), "us-east".to_string(), 3, 0),
            ("us-east".to_string(), "eu-west".to_string(), 4, 0)
        ],
        "{doc}"
    );
    // Read back: eu-west the primary again, us-east its streaming standby,
    // both hold epoch 4's row and every row; DNS answers both, TXT epoch 4.
    assert_eq!(in_recovery(rt, &bed.west), Some(false));
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(authority_epoch(rt, &bed.west), Some(4));
    common::poll(Duration::from_secs(30), "us-east to replay epoch 4", || {
        (authority_epoch(rt, &bed.east) == Some(4)).then_some(())
    });
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    assert_eq!(count(rt, &bed.west, "SELECT count(*) FROM orders"), 112);
    assert_eq!(bed.dig_a(), vec![US.to_string(), EU.to_string()]);
    assert_eq!(
        bed.b
            .dig(&format!("_lifeboat-authority.{}", bed.name()), "TXT"),
        vec!["\"lifeboat epoch=4 primary=eu-west\"".to_string()]
    );
    // The records in etcd: two switchovers marked as the rehearsal's legs.
    let auth = bed
        .env
        .ok_json(&["--config", cfg, "--json", "region", "authority"]);
    let recs: Vec<(u64, String, String, String)> = auth["failovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["epoch"].as_u64().unwrap(),
                f["kind"].as_str().unwrap().to_string(),
                f["outcome"].as_str().unwrap().to_string(),
                f["rehearsal"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(
        recs,
        vec![
            (4, "switchover".into(), "done".into(), "back".into()),
            (3, "switchover".into(), "done".into(), "there".into()),
            (2, "manual".into(), "done".into(), "-".into()),
        ],
        "{auth}"
    );
    let (state, detail) = readiness_item(&bed.env, cfg, "failover-tests");
    assert_eq!(state, "pass", "{detail}");
    assert!(detail.contains("0 days ago"), "{detail}");
    // status's region-failure objective shows the last measured change.
    let out = bed.env.run(&["--config", cfg, "--json", "status"]);
    // The JSON document first (status exits non-zero while at risk).
    let st: serde_json::Value = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no JSON from status: {:?}", out))
        .unwrap();
    let rf = st["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scenario"] == "region-failure")
        .unwrap_or_else(|| panic!("{st}"));
    let note = rf["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("last rehearsal (back) us-east → eu-west") && note.contains("(epoch 4)"),
        "{rf}"
    );
}

#[test]
fn without_wal_log_hints_or_checksums_the_old_primary_is_cloned() {
    let _alone = crate::alone::alone(module_path!());
    let bed = failed_over(false);
    let (rt, cfg) = (&bed.rt, bed.cfg());
    // us-east stays down (its region came back but nobody started it).
    let doc = bed
        .env
        .ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    let report = &doc["report"];
    assert_eq!(report["method"], "clone", "{doc}");
    assert_eq!(report["server_before"]["kind"], "down", "{doc}");
    assert_eq!(report["dir"]["rewind"]["wal_log_hints"], false, "{doc}");
    assert_eq!(report["dir"]["rewind"]["data_checksums"], false, "{doc}");
    let steps = steps_of(&doc);
    assert_eq!(steps.first().map(String::as_str), Some("plan"));
    assert!(!steps.iter().any(|s| s == "rewind"), "{doc}");
    assert!(steps.iter().any(|s| s == "clone"), "{doc}");
    assert_eq!(
        &steps[steps.len() - 3..],
        ["verify", "restore_dns", "capacity"]
    );
    // Never fenced by an agent here: us-east's writers left as they were;
    // eu-west's back from its failover count.
    assert_eq!(bed.gw.replicas(US_NS), Some(2));
    assert_eq!(bed.gw.replicas(EU_NS), Some(2));

    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    assert_eq!(count(rt, &bed.east, "SELECT count(*) FROM orders"), 110);
    assert_eq!(authority_epoch(rt, &bed.east), Some(2));
    assert_eq!(bed.dig_a(), vec![US.to_string(), EU.to_string()]);
    // Readiness warns that a rejoin here is a full clone.
    let (_, detail) = readiness_item(&bed.env, cfg, "failover-tests");
    assert!(
        detail.contains("neither wal_log_hints nor data checksums"),
        "{detail}"
    );
}

/// `failover.auto_rejoin`: the old primary's own daemon, started beside it
/// when it comes back writable at the old epoch, fences it and makes it a
/// standby of eu-west without an operator; read back from the servers.
#[test]
fn with_auto_rejoin_the_old_primarys_daemon_rejoins_it() {
    let _alone = crate::alone::alone(module_path!());
    let bed = failed_over(true);
    let rt = &bed.rt;
    // The rejoin configuration (both regions in agent mode) as us-east's
    // daemon's, with auto_rejoin on.
    let yaml = std::fs::read_to_string(&bed.cfg)
        .unwrap()
        .replace("failover:\n", "failover:\n  auto_rejoin: true\n")
        + "serve:\n  region: us-east\n  lease: 3s\n";
    let cfg = bed.env.path("auto-rejoin.yaml");
    std::fs::write(&cfg, yaml).unwrap();

    // The old primary comes back by hand, writable at the old epoch, and
    // takes a write eu-west never saw.
    bed.start_east_by_hand();
    assert_eq!(in_recovery(rt, &bed.east), Some(false));
    sql(rt, &bed.east, "INSERT INTO orders VALUES (9999)");

    let d = common::Daemon::start(&bed.env, &cfg, "east");
    d.poll(LONG, "a rejoin by the daemon that succeeded", || {
        d.metric("lifeboat_region_auto_rejoins_total{region=\"us-east\",result=\"ok\"}")
            .filter(|v| *v >= 1.0)
    });
    let log = d.log_text();
    assert!(
        log.contains("fencing it now"),
        "the stale primary was fenced first: {log}"
    );
    assert!(log.contains("auto_rejoin"), "{log}");
    assert_eq!(
        d.metric("lifeboat_region_auto_rejoins_total{region=\"us-east\",result=\"failed\"}"),
        Some(0.0)
    );
    // A standby under the current epoch now, no longer the fenced primary.
    assert_eq!(d.metric("lifeboat_fenced{region=\"us-east\"}"), Some(0.0));
    // The fence scaled us-east's writers to 0 and the rejoin, which waits
    // for that, brought them back; eu-west's are back from their failover
    // count: active-active again.
    assert!(log.contains("scaled to 0"), "{log}");
    assert_eq!(bed.gw.replicas(US_NS), Some(2), "{log}");
    assert_eq!(bed.gw.recorded(US_NS), None);
    assert_eq!(bed.gw.replicas(EU_NS), Some(2), "{log}");

    // The servers say: us-east streams from eu-west, holds what eu-west
    // wrote after the failover and not its own write at the old epoch.
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    sql(rt, &bed.west, "INSERT INTO orders VALUES (111)");
    common::poll(Duration::from_secs(30), "us-east to replay row 111", || {
        (count_opt(rt, &bed.east, "SELECT count(*) FROM orders WHERE id = 111") == Some(1))
            .then_some(())
    });
    assert_eq!(count(rt, &bed.east, "SELECT count(*) FROM orders"), 111);
    assert_eq!(
        count(rt, &bed.east, "SELECT count(*) FROM orders WHERE id = 9999"),
        0
    );
    assert_eq!(authority_epoch(rt, &bed.east), Some(2));
    // Nothing more happens to a standby that streams: no second rejoin.
    assert!(
        d.metric("lifeboat_region_auto_rejoins_total{region=\"us-east\",result=\"ok\"}")
            == Some(1.0),
        "{}",
        d.log_text()
    );
}

/// The rejoin steps `d` logged were only a finishing rejoin's (plan,
/// verify, DNS, capacity): the standby was neither stopped nor rewound.
fn finished_only(d: &common::Daemon) {
    let steps: Vec<String> = d
        .log_lines()
        .iter()
        .filter_map(|l| l["fields"]["step"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        steps,
        ["plan", "verify", "restore_dns", "capacity"],
        "{}",
        d.log_text()
    );
}

/// Two more of `d`'s looks read `ns`'s gateway and send no scale PATCH
/// (no other rejoin, nothing to finish). A look starts only once the one
/// before has ended, so after two reads the first look has ended.
fn later_looks_change_nothing(gw: &Gateways, d: &common::Daemon, ns: &str) {
    let gateway = format!("/apis/apps/v1/namespaces/{ns}/deployments/gateway");
    let reads = || {
        gw.api
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == gateway)
            .count()
    };
    let (before, patches) = (reads(), gw.scale_patches(ns));
    d.poll(LONG, "two looks after the capacity step", || {
        (reads() >= before + 2).then_some(())
    });
    assert_eq!(gw.scale_patches(ns), patches, "{}", d.log_text());
}

/// After [`failed_over`]: us-east's writers as its fence left them (its
/// region was lost whole, so its agent did not run), a config for us-east's
/// daemon with `auto_rejoin`, Kubernetes calls retried within 1 s (not
/// 30 s), and every scale PATCH of `ns`'s gateway answered 503 until the
/// test clears the faults.
fn auto_rejoin_with_scale_faults(ns: &str) -> (Bed, PathBuf) {
    let mut bed = failed_over(true);
    bed.env
        .envs
        .push(("LIFEBOAT_KUBE_RETRY_BUDGET".into(), "1s".into()));
    let yaml = std::fs::read_to_string(&bed.cfg)
        .unwrap()
        .replace("failover:\n", "failover:\n  auto_rejoin: true\n")
        + "serve:\n  region: us-east\n  lease: 3s\n";
    let cfg = bed.env.path("auto-rejoin.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    bed.gw.as_fenced(US_NS, 2);
    let scale = format!("/apis/apps/v1/namespaces/{ns}/deployments/gateway/scale");
    bed.gw
        .api
        .set_fault(move |r| (r.method == "PATCH" && r.path == scale).then(Fault::unavailable));
    (bed, cfg)
}

/// `failover.auto_rejoin` scales the primary region's writers back from
/// their failover counts when a rejoin's last scaling failed, also after
/// its daemon restarted: whether it is still to be done is read from the
/// failover's mark on them (`lifeboat.io/failover-scaled`), not
/// remembered. Every scale PATCH of eu-west's namespace answers 503 while
/// the first daemon rejoins us-east: its own writers come back, eu-west's
/// stay at 3; the next daemon, with the faults cleared, scales eu-west's
/// back to 2 without stopping or rewinding the standby.
#[test]
fn auto_rejoin_scales_the_primary_region_back_when_its_rejoin_could_not() {
    let _alone = crate::alone::alone(module_path!());
    let (bed, cfg) = auto_rejoin_with_scale_faults(EU_NS);
    let rt = &bed.rt;
    // The failover marked eu-west's gateway before scaling it up.
    let mark = |ns: &str| {
        bed.gw.get(ns)["metadata"]["annotations"]["lifeboat.io/failover-scaled"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(bed.gw.replicas(EU_NS), Some(3));
    assert_eq!(mark(EU_NS).as_deref(), Some("2"), "{}", bed.gw.get(EU_NS));
    assert_eq!(mark(US_NS), None);
    let metric = |d: &common::Daemon, result: &str| {
        d.metric(&format!(
            "lifeboat_region_auto_rejoins_total{{region=\"us-east\",result=\"{result}\"}}"
        ))
    };

    let d = common::Daemon::start(&bed.env, &cfg, "east");
    d.poll(LONG, "a rejoin whose capacity step failed", || {
        metric(&d, "capacity_failed").filter(|v| *v >= 1.0)
    });
    // us-east's writers came back; eu-west's are still at their failover
    // count, marked.
    assert_eq!(bed.gw.replicas(US_NS), Some(2), "{}", d.log_text());
    assert_eq!(bed.gw.recorded(US_NS), None);
    assert_eq!(bed.gw.replicas(EU_NS), Some(3));
    assert_eq!(mark(EU_NS).as_deref(), Some("2"));
    // A look reads eu-west's mark (nothing of us-east's is held down) and
    // tries the capacity step again, which fails again.
    d.poll(LONG, "the capacity step tried again", || {
        metric(&d, "capacity_failed").filter(|v| *v >= 2.0)
    });
    assert_eq!(metric(&d, "ok"), Some(0.0), "{}", d.log_text());
    assert_eq!(
        d.metric("lifeboat_region_writers_held_down{region=\"us-east\"}"),
        Some(0.0)
    );
    assert_eq!(bed.gw.replicas(EU_NS), Some(3));
    assert_eq!(d.stop(), Some(0));

    bed.gw.api.clear_faults();
    let d = common::Daemon::start(&bed.env, &cfg, "east-again");
    d.poll(LONG, "the capacity step finished by the new daemon", || {
        metric(&d, "ok").filter(|v| *v >= 1.0)
    });
    let log = d.log_text();
    assert!(log.contains("finishing it"), "{log}");
    finished_only(&d);
    // The Kubernetes API says: eu-west's gateway back at its normal count,
    // its mark gone; us-east's untouched.
    assert_eq!(bed.gw.replicas(EU_NS), Some(2), "{log}");
    assert_eq!(mark(EU_NS), None, "{}", bed.gw.get(EU_NS));
    assert_eq!(bed.gw.replicas(US_NS), Some(2));
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    // Later looks read eu-west's gateway again and find nothing to do.
    later_looks_change_nothing(&bed.gw, &d, EU_NS);
    assert_eq!(metric(&d, "ok"), Some(1.0), "{}", d.log_text());
}

/// `failover.auto_rejoin` finishes a rejoin's capacity step that failed,
/// also after its daemon restarted: whether it is still to be done is read
/// from the region's writers (their `lifeboat.io/original-replicas`), not
/// remembered. us-east's server is left down after the failover (its
/// region lost whole: the test puts its writers as its fence left them);
/// its daemon rejoins it while every scale PATCH of us-east's namespace
/// answers 503, so the server steps stand and the capacity step fails;
/// the daemon is stopped, the faults cleared, and the next daemon brings
/// the writers back without stopping or rewinding the standby.
#[test]
fn auto_rejoin_finishes_a_failed_capacity_step_after_its_daemon_restarts() {
    let _alone = crate::alone::alone(module_path!());
    let (bed, cfg) = auto_rejoin_with_scale_faults(US_NS);
    let rt = &bed.rt;
    let held = "lifeboat_region_writers_held_down{region=\"us-east\"}";
    let metric = |d: &common::Daemon, result: &str| {
        d.metric(&format!(
            "lifeboat_region_auto_rejoins_total{{region=\"us-east\",result=\"{result}\"}}"
        ))
    };

    let d = common::Daemon::start(&bed.env, &cfg, "east");
    assert!(d.metric(held).is_some_and(f64::is_nan), "not read yet");
    d.poll(LONG, "a rejoin whose capacity step failed", || {
        metric(&d, "capacity_failed").filter(|v| *v >= 1.0)
    });
    // The server steps stand: us-east streams from eu-west at epoch 2.
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    assert_eq!(authority_epoch(rt, &bed.east), Some(2));
    // The next look reads the gateway still held down (its reads answer)
    // and tries the capacity step again, which fails again.
    d.poll(LONG, "a look finding us-east's gateway held down", || {
        d.metric(held).filter(|v| *v == 1.0)
    });
    d.poll(LONG, "the capacity step tried again", || {
        metric(&d, "capacity_failed").filter(|v| *v >= 2.0)
    });
    assert_eq!(metric(&d, "ok"), Some(0.0), "{}", d.log_text());
    assert_eq!(bed.gw.replicas(US_NS), Some(0));
    assert_eq!(bed.gw.recorded(US_NS).as_deref(), Some("2"));
    // eu-west keeps its failover count while us-east's writers are down.
    assert_eq!(bed.gw.replicas(EU_NS), Some(3));
    assert_eq!(d.stop(), Some(0));

    // The Kubernetes API answers again; a new daemon, which remembers
    // nothing of the failed step, finishes it.
    bed.gw.api.clear_faults();
    let d = common::Daemon::start(&bed.env, &cfg, "east-again");
    d.poll(LONG, "the capacity step finished by the new daemon", || {
        metric(&d, "ok").filter(|v| *v >= 1.0)
    });
    d.poll(LONG, "a look finding nothing held down", || {
        d.metric(held).filter(|v| *v == 0.0)
    });
    let log = d.log_text();
    assert!(log.contains("finishing it"), "{log}");
    assert!(log.contains("none: it already streamed"), "{log}");
    // Its rejoin's steps: only verify, DNS and capacity; the standby was
    // neither stopped nor rewound.
    finished_only(&d);
    // The Kubernetes API says: us-east's gateway back at its recorded
    // count, the record gone; eu-west's back from its failover count.
    assert_eq!(bed.gw.replicas(US_NS), Some(2), "{log}");
    assert_eq!(bed.gw.recorded(US_NS), None);
    assert_eq!(bed.gw.replicas(EU_NS), Some(2), "{log}");
    // The servers say: us-east still streams from eu-west.
    assert_eq!(in_recovery(rt, &bed.east), Some(true));
    assert_eq!(streaming_to(rt, &bed.west), vec!["us-east".to_string()]);
    // Later looks read the gateway again and find nothing to do.
    later_looks_change_nothing(&bed.gw, &d, US_NS);
    assert_eq!(d.metric(held), Some(0.0));
    assert_eq!(metric(&d, "ok"), Some(1.0), "{}", d.log_text());
    assert_eq!(metric(&d, "failed"), Some(0.0), "{}", d.log_text());
}
