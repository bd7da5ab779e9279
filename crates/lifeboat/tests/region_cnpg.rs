//! `lifeboat region replicate` and `region status` through the built binary
//! for a `manager: cnpg` region, against the Kubernetes API **test double**
//! (crates/kube-double) and a real PostgreSQL 15 primary ([`TempCluster`]).
//! No CloudNativePG operator runs here: nothing reconciles the `Cluster`,
//! so nothing streams. What this proves: the merge patch and the password's
//! `Secret` as the API server received them, the `Cluster` as stored after
//! it (its other settings kept), a second run writing nothing, the refusals
//! (a missing `Cluster`, one holding another database) writing nothing, and
//! `replicate` saying that replication does not run (exit 10) because the
//! primary streams to no standby of the replication role.

use crate::common;

use std::path::PathBuf;

use common::Env;
use common::cnpg::{cluster_crd, record_writes};
use kube_double::ApiDouble;
use lifeboat_postgres::TempCluster;
use serde_json::{Value, json};

const NS: &str = "db";
const REPL_USER: &str = "lifeboat_replication";
const REPL_PASSWORD: &str = "repl-Cnpg-4f0e";

fn cluster(name: &str, status: Value) -> Value {
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "instances": 2,
            "storage": {"size": "10Gi"},
            "externalClusters": [
                {"name": "archive", "barmanObjectStore": {"destinationPath": "s3://backups/pg"}}
            ],
        },
        "status": status,
    })
}

/// us-east: the primary; eu-west: the `Cluster` `cluster` in the double's
/// context (its PostgreSQL URL reaches nothing: only the API is there).
fn config(env: &Env, p: &TempCluster, kubeconfig: &std::path::Path, cluster: &str) -> PathBuf {
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
      url: postgresql://{user}@127.0.0.1:{dead}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: cnpg
      role: standby
      replicates_from: us-east
      cnpg:
        context: kube-double
        namespace: {NS}
        cluster: {cluster}
replication:
  user: {REPL_USER}
  password: {{env: REGION_REPL_PASSWORD}}
"#,
        repo = env.repo,
        kc = kubeconfig.display(),
        user = p.superuser(),
        pport = p.port(),
        dead = common::free_port(),
    );
    let path = env.path(&format!("{cluster}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn replicate_args(cfg: &str) -> Vec<&str> {
    vec![
        "--config",
        cfg,
        "--json",
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]
}

#[test]
fn replicate_patches_the_cluster_through_the_kubernetes_api_and_refuses_what_it_must() {
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let api = ApiDouble::start_in_thread();
    api.insert(cluster_crd());
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.insert(cluster(
        "pg-eu-west",
        json!({"phase": "Cluster in healthy state"}),
    ));
    // What the API server received: every write's path and body.
    let writes = record_writes(&api);

    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    let kubeconfig = env.path("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let cfg = config(&env, &p, &kubeconfig, "pg-eu-west");
    let cfg = cfg.to_str().unwrap();

    // 1. Applied; no operator, so replication does not run: exit 10.
    let (out, err) = env.exits_with(&replicate_args(cfg), 10);
    assert!(!out.contains(REPL_PASSWORD) && !err.contains(REPL_PASSWORD));
    let doc: Value = serde_json::from_str(&out).unwrap();
    let c = &doc["cnpg"];
    assert_eq!(doc["manager"], "cnpg", "{doc}");
    assert_eq!(c["changed"], true, "{doc}");
    assert_eq!(c["secret_changed"], true, "{doc}");
    assert_eq!(c["running"], false, "{doc}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("streams to no standby"),
        "{doc}"
    );
    assert!(doc["error"].is_object(), "{doc}");
    let entry = json!({
        "name": "us-east",
        "connectionParameters": {"host": "127.0.0.1", "port": p.port().to_string(),
            "user": REPL_USER, "dbname": "postgres", "sslmode": "prefer"},
        "password": {"name": "pg-eu-west-lifeboat-replication", "key": "password"},
    });
    let want_patch = json!({"spec": {
        "replica": {"enabled": true, "source": "us-east"},
        "externalClusters": [
            {"name": "archive", "barmanObjectStore": {"destinationPath": "s3://backups/pg"}},
            entry,
        ],
    }});
    assert_eq!(c["patch"], want_patch);
    let cluster_patches = |writes: &[(String, String, Value)]| -> Vec<Value> {
        writes
            .iter()
            .filter(|(m, path, _)| m == "PATCH" && path.ends_with("/clusters/pg-eu-west"))
            .map(|(_, _, b)| b.clone())
            .collect()
    };
    let received = writes.lock().unwrap().clone();
    assert_eq!(
        cluster_patches(&received),
        vec![want_patch.clone()],
        "{received:?}"
    );
    // The Cluster as stored: a replica of us-east, its other settings kept.
    let stored = api
        .get("postgresql.cnpg.io/v1", "Cluster", Some(NS), "pg-eu-west")
        .unwrap();
    assert_eq!(stored["spec"]["replica"], want_patch["spec"]["replica"]);
    assert_eq!(
        stored["spec"]["externalClusters"],
        want_patch["spec"]["externalClusters"]
    );
    assert_eq!(stored["spec"]["instances"], 2);
    // The password is in the Secret the entry names, nowhere else.
    let secret = api
        .get("v1", "Secret", Some(NS), "pg-eu-west-lifeboat-replication")
        .expect("the replication password's Secret");
    use base64::Engine as _;
    let pw = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["password"].as_str().unwrap())
        .unwrap();
    assert_eq!(pw, REPL_PASSWORD.as_bytes());
    // The role exists on the primary; no slot was made for CloudNativePG.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (role, slots) = rt.block_on(async {
        let c = p.conn_config("postgres").connect().await.unwrap();
        let role: bool = c
            .query_one(
                "SELECT rolreplication FROM pg_roles WHERE rolname = $1",
                &[&REPL_USER],
            )
            .await
            .unwrap()
            .get(0);
        let slots: i64 = c
            .query_one("SELECT count(*) FROM pg_replication_slots", &[])
            .await
            .unwrap()
            .get(0);
        (role, slots)
    });
    assert!(role);
    assert_eq!(slots, 0);

    // 2. Again: nothing written.
    let before = writes.lock().unwrap().len();
    let (out, _) = env.exits_with(&replicate_args(cfg), 10);
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["cnpg"]["changed"], false, "{again}");
    assert_eq!(again["cnpg"]["secret_changed"], false, "{again}");
    let after: Vec<_> = writes.lock().unwrap()[before..].to_vec();
    assert!(after.is_empty(), "a second run wrote {after:?}");

    // 3. region status: the Cluster's replica status next to the server's
    // (unreachable here: degraded, exit 10).
    let (out, _) = env.exits_with(&["--config", cfg, "--json", "region", "status"], 10);
    let status: Value = serde_json::from_str(&out).unwrap();
    let eu = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "eu-west")
        .unwrap();
    assert_eq!(eu["manager_view"]["manager"], "cnpg", "{eu}");
    assert_eq!(eu["manager_view"]["replica"]["is_replica"], true, "{eu}");
    assert_eq!(eu["manager_view"]["replica"]["source"], "us-east");
    assert_eq!(
        eu["manager_view"]["replica"]["phase"],
        "Cluster in healthy state"
    );
    let (text, _) = env.exits_with(&["--config", cfg, "region", "status"], 10);
    assert!(
        text.contains("cnpg: replica of us-east (Cluster in healthy state)"),
        "{text}"
    );

    // 4. A Cluster holding another database (status.systemID): refused,
    // nothing written; a missing Cluster: its manifest printed, refused.
    api.insert(cluster(
        "pg-other",
        json!({"phase": "Cluster in healthy state", "systemID": "7000000000000000001"}),
    ));
    let other = config(&env, &p, &kubeconfig, "pg-other");
    let before = writes.lock().unwrap().len();
    let err = env.fails(&replicate_args(other.to_str().unwrap()), 2);
    assert!(err.contains("holds another database"), "{err}");
    let missing = config(&env, &p, &kubeconfig, "pg-missing");
    let (out, err) = env.exits_with(&replicate_args(missing.to_str().unwrap()), 2);
    assert!(err.contains("does not exist"), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let settings = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "settings")
        .cloned()
        .unwrap_or_else(|| panic!("no settings event: {doc}"));
    assert_eq!(
        settings["body"]["spec"]["bootstrap"],
        json!({"pg_basebackup": {"source": "us-east"}})
    );
    let after: Vec<_> = writes.lock().unwrap()[before..].to_vec();
    assert!(after.is_empty(), "a refusal wrote {after:?}");
    assert!(
        api.get("postgresql.cnpg.io/v1", "Cluster", Some(NS), "pg-missing")
            .is_none()
    );
}
