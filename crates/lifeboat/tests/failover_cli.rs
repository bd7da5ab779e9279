//! `lifeboat region switchover | failover | authority` through the built
//! binary against real servers: etcd (one member, the authority), two
//! PostgreSQL 15 servers (us-east a `TempCluster` in agent mode, eu-west a
//! standby seeded by `region replicate`), BIND 9 for the DNS switch and
//! the epoch's TXT record, and the Kubernetes API test double (`kube-double`)
//! for the regions' serving Deployments. What each step did is read back from the
//! servers, never from Lifeboat's own report alone. Conditions are polled
//! with a bound; no timing is asserted.

use crate::bind;
use crate::common;
use crate::etcd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Env;
use common::gateways::Gateways;
use common::pg::{authority_epoch, in_recovery, rows as sql};
use common::standby::{SeededStandby, empty_owned_dir};
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::authority::{AuthorityStore, EtcdSettings};

const REPL_PASSWORD: &str = "repl-Secret-f41l";
const US: &str = "192.0.2.10";
const EU: &str = "192.0.2.20";
/// The namespaces of the regions' serving Deployments in the Kubernetes
/// API test double (one double stands for both regions' clusters).
const US_NS: &str = "kubernaut-us";
const EU_NS: &str = "kubernaut-eu";

#[allow(clippy::too_many_arguments)]
fn config(
    env: &Env,
    file: &str,
    p: &TempCluster,
    standby_port: u16,
    standby_pgdata: &Path,
    etcd: &[String],
    b: &bind::Bind,
) -> PathBuf {
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
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    dns: {{address: {US}}}
    deployments: {{namespace: {US_NS}, items: [{{name: gateway, replicas: 2, failover_replicas: 4}}]}}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: standby
      replicates_from: us-east
      pgdata: {spgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    dns: {{address: {EU}}}
    deployments: {{namespace: {EU_NS}, items: [{{name: gateway, replicas: 2, failover_replicas: 3}}]}}
kubernetes:
  kubeconfig: {kubeconfig}
replication:
  user: lifeboat_replication
  synchronous: true
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
"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
        ppgdata = p.data_dir().display(),
        sport = standby_port,
        spgdata = standby_pgdata.display(),
        bin = p.bin_dir().display(),
        zone = bind::ZONE,
        server = b.server(),
        key = bind::KEY_NAME,
        endpoints = etcd.join(", "),
        kubeconfig = env.path("kubeconfig").display(),
    );
    let path = env.path(file);
    std::fs::write(&path, yaml).unwrap();
    path
}

fn sync_names(rt: &tokio::runtime::Runtime, conn: &ConnConfig) -> String {
    sql(
        rt,
        conn,
        "SELECT current_setting('synchronous_standby_names')",
    )[0]
    .get(0)
}

fn sync_state(rt: &tokio::runtime::Runtime, conn: &ConnConfig, standby: &str) -> Option<String> {
    sql(
        rt,
        conn,
        &format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby}'"),
    )
    .first()
    .map(|r| r.get(0))
}

#[test]
fn switchover_then_failover_move_the_primary_dns_and_epoch() {
    let _alone = crate::alone::alone(module_path!());
    let rt = common::rt();
    let etcd = rt.block_on(etcd::EtcdCluster::start(1));
    let b = bind::Bind::start();
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    // us-east's server runs under pg_ctl once it follows eu-west (a
    // switchover): stopped when the test ends, however it ends.
    let _east_guard = SeededStandby::for_cluster(&p, &[]);
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
    let cfg = config(
        &env,
        "failover.yaml",
        &p,
        port,
        &pgdata,
        &etcd.endpoints(),
        &b,
    );
    let cfg = cfg.to_str().unwrap();
    let west = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: pgdata.clone(),
    };
    let east_conn = p.conn_config("postgres");
    let mut west_conn = east_conn.clone();
    west_conn.port = port;

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
    env.ok(&["--config", cfg, "region", "traffic", "apply"]);
    assert_eq!(b.dig(&format!("app.{}", bind::ZONE), "A").len(), 2);
    // replication.synchronous: us-east names eu-west, which the server
    // reports as a quorum (synchronous) standby.
    assert_eq!(sync_names(&rt, &east_conn), "ANY 1 (\"eu-west\")");
    common::poll(Duration::from_secs(30), "eu-west synchronous", || {
        (sync_state(&rt, &east_conn, "eu-west").as_deref() == Some("quorum")).then_some(())
    });
    sql(
        &rt,
        &east_conn,
        "CREATE TABLE orders (id int primary key); INSERT INTO orders SELECT generate_series(1, 100)",
    );

    // --- switchover us-east → eu-west ---------------------------------------
    let doc = env.ok_json(&[
        "--config",
        cfg,
        "--json",
        "region",
        "switchover",
        "--to",
        "eu-west",
    ]);
    let report = &doc["report"];
    assert_eq!(report["outcome"], "done", "{doc}");
    assert_eq!(
        (report["epoch_before"].as_u64(), report["epoch"].as_u64()),
        (Some(1), Some(2))
    );
    let phases: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "quiesce",
            "stop_old",
            "await_replay",
            "bump_epoch",
            "promote",
            "follow_old",
            "switch_dns",
            "scale",
            "verify",
            "record"
        ],
        "{doc}"
    );
    // us-east's writers were quiesced before its server stopped (scaled to
    // 0 through /scale, then back) and run at their count again; eu-west's
    // were not touched.
    let steps = doc["steps"].as_array().unwrap();
    let note = |phase: &str| {
        steps
            .iter()
            .find(|s| s["phase"] == phase)
            .map(|s| s["text"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(note("quiesce").contains("scaled to 0"), "{doc}");
    assert!(note("scale").contains("gateway 0 → 2"), "{doc}");
    assert_eq!(gw.scale_patches(US_NS), 2, "down, then back");
    let g = gw.get(US_NS);
    assert_eq!(g["spec"]["replicas"], 2, "{g}");
    assert!(
        g["metadata"]["annotations"]["lifeboat.io/original-replicas"].is_null(),
        "the recorded count is forgotten once back: {g}"
    );
    assert_eq!(gw.scale_patches(EU_NS), 0);
    // The servers say: eu-west writable with every row, us-east a standby
    // streaming from it (no rewind), the epoch row on both.
    assert_eq!(in_recovery(&rt, &west_conn), Some(false));
    let n: i64 = sql(&rt, &west_conn, "SELECT count(*) FROM orders")[0].get(0);
    assert_eq!(n, 100);
    sql(&rt, &west_conn, "INSERT INTO orders VALUES (101)");
    common::poll(Duration::from_secs(30), "us-east to replay row 101", || {
        (in_recovery(&rt, &east_conn) == Some(true)
            && sql(&rt, &east_conn, "SELECT 1 FROM orders WHERE id = 101").len() == 1)
            .then_some(())
    });
    let streaming = sql(&rt, &east_conn, "SELECT status FROM pg_stat_wal_receiver");
    assert_eq!(streaming[0].get::<_, String>(0), "streaming");
    // The new primary names the old one, now its standby, as synchronous.
    assert_eq!(sync_names(&rt, &west_conn), "ANY 1 (\"us-east\")");
    common::poll(Duration::from_secs(30), "us-east synchronous", || {
        (sync_state(&rt, &west_conn, "us-east").as_deref() == Some("quorum")).then_some(())
    });
    assert_eq!(authority_epoch(&rt, &west_conn), Some(2));
    common::poll(Duration::from_secs(30), "the epoch row on us-east", || {
        (authority_epoch(&rt, &east_conn) == Some(2)).then_some(())
    });
    // DNS answers eu-west only, and its TXT record carries the epoch.
    let name = format!("app.{}", bind::ZONE);
    assert_eq!(b.dig(&name, "A"), vec![EU.to_string()]);
    assert_eq!(
        b.dig(&format!("_lifeboat-authority.{name}"), "TXT"),
        vec!["\"lifeboat epoch=2 primary=eu-west\"".to_string()]
    );
    // The authority and the record, as etcd holds them.
    let auth = env.ok_json(&["--config", cfg, "--json", "region", "authority"]);
    assert_eq!(auth["authority"]["primary"], "eu-west", "{auth}");
    assert_eq!(auth["authority"]["epoch"], 2);
    assert_eq!(auth["progress"]["phase"], "done");
    assert_eq!(auth["failovers"][0]["kind"], "switchover");
    assert_eq!(auth["failovers"][0]["outcome"], "done");
    assert!(
        auth["failovers"][0]["rto_writes_seconds"]
            .as_f64()
            .is_some()
    );

    // `status` shows the regions as the servers and etcd say (its verdict
    // is about backups, which this test does not make: any exit code).
    let out = env.run(&["--config", cfg, "--json", "status"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let regions = &st["regions"];
    assert_eq!(regions["authority"]["primary"], "eu-west", "{regions}");
    assert_eq!(regions["authority"]["epoch"], 2, "{regions}");
    assert_eq!(regions["authority"]["last_change"]["kind"], "switchover");
    assert_eq!(regions["authority"]["last_change"]["outcome"], "done");
    let roles: Vec<(&str, &str)> = regions["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["observed_role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles, [("us-east", "standby"), ("eu-west", "primary")]);
    assert_eq!(regions["warnings"], serde_json::json!([]), "{regions}");

    // --- a failover while the old primary's daemon holds its lease ----------
    let store = rt
        .block_on(AuthorityStore::connect(EtcdSettings::new(etcd.endpoints())))
        .unwrap();
    let lease = rt
        .block_on(store.grant("eu-west", Duration::from_secs(30)))
        .unwrap();
    let refused = env.fails(
        &[
            "--config",
            cfg,
            "region",
            "failover",
            "--to",
            "us-east",
            "--step-timeout",
            "2",
        ],
        1,
    );
    assert!(refused.contains("lease is still held"), "{refused}");
    let auth = env.ok_json(&["--config", cfg, "--json", "region", "authority"]);
    assert_eq!(auth["authority"]["primary"], "eu-west", "{auth}");
    assert_eq!(auth["authority"]["epoch"], 2);
    assert_eq!(auth["progress"]["phase"], "aborted");
    assert_eq!(in_recovery(&rt, &east_conn), Some(true));
    rt.block_on(lease.revoke()).unwrap();

    // --- eu-west lost: manual failover to us-east ---------------------------
    west.stop();
    let doc = env.ok_json(&[
        "--config", cfg, "--json", "region", "failover", "--to", "us-east",
    ]);
    let report = &doc["report"];
    assert_eq!(report["outcome"], "done", "{doc}");
    assert_eq!(report["epoch"], 3);
    assert_eq!(in_recovery(&rt, &east_conn), Some(false));
    // us-east still had its own `ANY 1 ("eu-west")` from before the
    // switchover, and eu-west is gone: the promotion cleared it, so the
    // epoch's row and the application's commits do not wait.
    assert_eq!(sync_names(&rt, &east_conn), "");
    // The new primary region carries all the traffic: its Deployments at
    // their failover counts; the lost region's are left alone.
    assert_eq!(gw.get(US_NS)["spec"]["replicas"], 4, "{doc}");
    assert_eq!(gw.scale_patches(EU_NS), 0);
    sql(&rt, &east_conn, "INSERT INTO orders VALUES (102)");
    let n: i64 = sql(&rt, &east_conn, "SELECT count(*) FROM orders")[0].get(0);
    assert_eq!(n, 102, "every acknowledged row survived");
    assert_eq!(authority_epoch(&rt, &east_conn), Some(3));
    assert_eq!(b.dig(&name, "A"), vec![US.to_string()]);
    assert_eq!(
        b.dig(&format!("_lifeboat-authority.{name}"), "TXT"),
        vec!["\"lifeboat epoch=3 primary=us-east\"".to_string()]
    );
    // us-east had replayed eu-west's verification heartbeat: the RPO is
    // bounded by the failure time (eu-west's own last heartbeat is unknown).
    let rec = &report["record"];
    assert_eq!(rec["rpo_exact"], false, "{rec}");
    assert!(rec["rpo_seconds"].as_f64().is_some(), "{rec}");

    // eu-west's URL spelled to reach us-east's running server (a second name
    // for the same server): refused by what the servers say, nothing written.
    let second_name = config(
        &env,
        "second-name.yaml",
        &p,
        p.port(),
        &pgdata,
        &etcd.endpoints(),
        &b,
    );
    let refused = env.fails(
        &[
            "--config",
            second_name.to_str().unwrap(),
            "region",
            "switchover",
            "--to",
            "eu-west",
        ],
        2,
    );
    assert!(refused.contains("same running server"), "{refused}");

    // The primary already: nothing to change, nothing written.
    let again = env.fails(
        &["--config", cfg, "region", "switchover", "--to", "us-east"],
        2,
    );
    assert!(again.contains("is the primary already"), "{again}");
    let auth = env.ok_json(&["--config", cfg, "--json", "region", "authority"]);
    assert_eq!(auth["authority"]["epoch"], 3);
    let kinds: Vec<&str> = auth["failovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["manual", "switchover"]);
}
