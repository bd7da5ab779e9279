//! `lifeboat region failover --to` a `manager: cnpg` region through the
//! built binary: etcd (one member, the authority), a PostgreSQL 15 primary
//! and a streaming standby ([`TempCluster`]), and the Kubernetes API
//! **test double** (crates/kube-double) serving the standby region's
//! `Cluster`. No CloudNativePG operator runs here: the test plays it. Once
//! the `Cluster`'s spec says it is no longer a replica, the "operator"
//! promotes the standby (`pg_promote()`); it reports the promotion in the
//! `Cluster`'s status only when the test says so.
//!
//! What this proves: the merge patch as the API server received it and the
//! `Cluster` as stored after it (its other settings kept); that the promote
//! step waits for the status (the server is writable, yet no epoch row is
//! written while the status does not report the promotion, and the change
//! blocks with the status's reason); that running the command again once
//! the status reports it resumes without patching again, and writes the
//! epoch's row; etcd's record. What it cannot prove: that a real
//! CloudNativePG operator promotes on this patch and reports it in these
//! status fields (docs/failover.md, "Managers").

use crate::common;
use crate::etcd;

use std::time::{Duration, Instant};

use common::Env;
use common::cnpg::{cluster_crd, record_writes};
use common::pg::{authority_epoch, in_recovery};
use kube_double::ApiDouble;
use lifeboat_postgres::TempCluster;
use lifeboat_region::authority::{AuthorityStore, EtcdSettings};
use serde_json::{Value, json};

const NS: &str = "db";
const CLUSTER: &str = "pg-eu-west";
const CLUSTER_PATH: &str = "/apis/postgresql.cnpg.io/v1/namespaces/db/clusters/pg-eu-west";

/// The standby region's `Cluster` as `region replicate` leaves it, with
/// `status`.
fn cluster(spec_replica: Value, status: Value) -> Value {
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": CLUSTER, "namespace": NS},
        "spec": {
            "instances": 2,
            "storage": {"size": "10Gi"},
            "replica": spec_replica,
            "externalClusters": [{"name": "us-east", "connectionParameters": {"host": "10.0.0.1"}}],
        },
        "status": status,
    })
}

fn get_cluster(api: &ApiDouble) -> Value {
    api.get("postgresql.cnpg.io/v1", "Cluster", Some(NS), CLUSTER)
        .expect("the Cluster")
}

#[test]
fn failover_to_a_cnpg_region_patches_the_cluster_and_waits_for_its_status() {
    let _alone = crate::alone::alone(module_path!());
    let rt = common::rt();
    let etcd = rt.block_on(etcd::EtcdCluster::start(1));
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let standby = p.streaming_standby(&[]).expect("a streaming standby");
    let west = standby.conn_config("postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    while in_recovery(&rt, &west) != Some(true) {
        assert!(Instant::now() < deadline, "the standby never answered");
        std::thread::sleep(Duration::from_millis(200));
    }

    let api = ApiDouble::start_in_thread();
    api.insert(cluster_crd());
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    // A replica cluster whose operator has not reported a primary instance
    // ready yet.
    let replica = json!({"enabled": true, "source": "us-east"});
    api.insert(cluster(
        replica.clone(),
        json!({"currentPrimary": "pg-eu-west-1", "targetPrimary": "pg-eu-west-1",
               "phase": "Setting up primary"}),
    ));
    // What the API server received: every write's method, path and body.
    let writes = record_writes(&api);

    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), "repl-Cnpg-77aa".into()));
    env.envs
        .push(("KUBECONFIG".into(), "/nonexistent/kubeconfig".into()));
    let kubeconfig = env.path("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let yaml = format!(
        r#"repository:
  url: {repo}
kubernetes:
  kubeconfig: {kc}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: primary
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: cnpg
      role: standby
      replicates_from: us-east
      cnpg:
        context: kube-double
        namespace: {NS}
        cluster: {CLUSTER}
replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
failover:
  etcd: {{endpoints: [{endpoints}]}}
  safety_margin: 1s
"#,
        repo = env.repo,
        kc = kubeconfig.display(),
        user = p.superuser(),
        pport = p.port(),
        sport = standby.port(),
        endpoints = etcd.endpoints().join(", "),
    );
    let cfg = env.path("cnpg-failover.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let failover = [
        "--config",
        cfg,
        "region",
        "failover",
        "--to",
        "eu-west",
        "--accept-data-loss",
        "--step-timeout",
        "2",
    ];

    // us-east lost.
    p.stop();

    // 1. The "operator" promotes the server once the spec says so, but does
    // not report it: the change blocks in the promote step after the epoch
    // was bumped, with the status's reason, and no epoch row is written.
    let promoted_by_operator = std::thread::scope(|s| {
        let operator = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let c = get_cluster(&api);
                if c.pointer("/spec/replica/enabled") == Some(&json!(false)) {
                    rt.block_on(async {
                        let client = west.connect().await.expect("connect to the standby");
                        client
                            .query_one("SELECT pg_promote(true, 60)", &[])
                            .await
                            .expect("pg_promote()");
                    });
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let blocked = env.fails(&failover, 1);
        assert!(
            blocked.contains("blocked in phase promote")
                && blocked.contains("does not report its promotion")
                && blocked.contains("Setting up primary"),
            "{blocked}"
        );
        operator.join().unwrap()
    });
    assert!(promoted_by_operator, "Lifeboat never patched spec.replica");
    assert_eq!(in_recovery(&rt, &west), Some(false));
    assert_eq!(
        authority_epoch(&rt, &west),
        None,
        "the epoch's row was written before the status reported the promotion"
    );
    let patches: Vec<(String, String, Value)> = writes.lock().unwrap().clone();
    assert_eq!(
        patches,
        vec![(
            "PATCH".to_string(),
            CLUSTER_PATH.to_string(),
            json!({"spec": {"replica": {"enabled": false}}})
        )],
        "the API server received exactly the promotion's merge patch"
    );
    // The Cluster as stored: no longer a replica, its other settings kept.
    let stored = get_cluster(&api);
    assert_eq!(
        stored["spec"]["replica"],
        json!({"enabled": false, "source": "us-east"}),
        "{stored}"
    );
    assert_eq!(stored["spec"]["instances"], 2, "{stored}");
    assert_eq!(stored["spec"]["externalClusters"][0]["name"], "us-east");
    let auth = env.ok_json(&["--config", cfg, "--json", "region", "authority"]);
    assert_eq!(auth["authority"]["primary"], "eu-west", "{auth}");
    assert_eq!(auth["authority"]["epoch"], 2, "{auth}");
    assert_eq!(auth["progress"]["phase"], "promote", "{auth}");

    // 2. The operator reports the promotion; the same command resumes the
    // change: nothing patched again, the epoch's row written, done.
    let mut reported = get_cluster(&api);
    reported["status"] = json!({"currentPrimary": "pg-eu-west-1",
        "targetPrimary": "pg-eu-west-1", "phase": "Cluster in healthy state"});
    api.insert(reported);
    writes.lock().unwrap().clear();
    let mut json_args = vec!["--config", cfg, "--json"];
    json_args.extend_from_slice(&failover[2..]);
    let doc = env.ok_json(&json_args);
    assert_eq!(doc["report"]["outcome"], "done", "{doc}");
    assert_eq!(doc["report"]["resumed"], true, "{doc}");
    assert_eq!(doc["report"]["epoch"], 2, "{doc}");
    let promote = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["phase"] == "promote" && n["ok"] == true)
        .unwrap_or_else(|| panic!("no promote step in {doc}"));
    assert!(
        promote["text"]
            .as_str()
            .unwrap()
            .contains("pg-eu-west-1 as its primary"),
        "{promote}"
    );
    assert!(
        writes.lock().unwrap().is_empty(),
        "the resumed change wrote to the API again: {:?}",
        writes.lock().unwrap()
    );
    // Read back from the server and etcd.
    assert_eq!(authority_epoch(&rt, &west), Some(2));
    common::pg::sql(
        &rt,
        &west,
        "CREATE TABLE after_failover (id int); INSERT INTO after_failover VALUES (1)",
    );
    let record = rt.block_on(async {
        let store = AuthorityStore::connect(EtcdSettings::new(etcd.endpoints()))
            .await
            .unwrap();
        store
            .authority()
            .await
            .unwrap()
            .expect("an authority record")
    });
    assert_eq!(record.value.primary, "eu-west");
    assert_eq!(record.value.epoch, 2);
    drop(standby);
}
