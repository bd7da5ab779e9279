//! The fence of a `manager: cnpg` (CloudNativePG) PRIMARY region
//! (region/managed_fence.rs, region/cnpg_fence.rs; docs/failover.md, "The
//! CloudNativePG fence"), through the built binary.
//!
//! No Kubernetes API server or CloudNativePG operator can run here: the
//! region's `Cluster` is served by the Kubernetes API **test double**
//! (crates/kube-double), and a real PostgreSQL 15 ([`TempCluster`]) stands
//! in for the `Cluster`'s primary that `postgres.url` (for CNPG, the
//! `<cluster>-rw` Service) reaches. The `Cluster` manages the application
//! role declaratively (`spec.managed.roles`, `login: true`): the hazard the
//! agent must report, and the entry its fence turns to `login: false`.
//!
//! `lifeboat serve` beside it is its agent (`failover.fence: revoke_login`)
//! with the authority in an etcd of its own: (a) etcd stops → the agent
//! revokes the application role's LOGIN and terminates its session, and
//! patches `login: false` into the `Cluster` (read back from the double);
//! (b) a new agent is SIGKILLed → its watchdog fences while the region's
//! lease key still exists; (c) eu-west's daemon, a vantage point whose
//! check of us-east fails, decides the automatic failover from the CNPG
//! primary and promotes eu-west (a standby seeded by `region replicate`).
//! What it cannot prove: that a real operator enforces `login: false`.
//! Conditions are polled with a bound; no timing is asserted.

use crate::common;
use crate::etcd;

use std::path::{Path, PathBuf};

use common::app_role::{self, AppRole};
use common::cnpg::cluster_crd;
use common::managed_fence::{FENCE_BOUND, FenceBed};
use common::standby::{SeededStandby, empty_owned_dir};
use common::{Daemon, Env, free_port};
use kube_double::ApiDouble;
use lifeboat_postgres::TempCluster;
use serde_json::{Value, json};

const NS: &str = "db";
const CLUSTER: &str = "pg-us-east";
const APP: &str = "app";
const APP_ROLE: AppRole = AppRole {
    name: APP,
    password: APP_PASSWORD,
};
const APP_PASSWORD: &str = "app-Cnpg-4d7e";
const REPL_PASSWORD: &str = "repl-Cnpg-19bf";

/// The primary region's `Cluster` in the double: the application role
/// managed declaratively with LOGIN.
fn cluster() -> Value {
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": CLUSTER, "namespace": NS},
        "spec": {
            "instances": 3,
            "storage": {"size": "10Gi"},
            "managed": {"roles": [
                {"name": APP, "ensure": "present", "login": true},
                {"name": "reporting", "ensure": "present", "login": true}
            ]},
        },
        "status": {"currentPrimary": "pg-us-east-1", "phase": "Cluster in healthy state"},
    })
}

fn managed_login(api: &ApiDouble, role: &str) -> Option<Value> {
    let c = api.get("postgresql.cnpg.io/v1", "Cluster", Some(NS), CLUSTER)?;
    c.pointer("/spec/managed/roles")?
        .as_array()?
        .iter()
        .find(|r| r["name"] == role)
        .map(|r| r["login"].clone())
}

/// Daemon `own`'s configuration (us-east: the agent beside the CNPG
/// primary; eu-west: a vantage point whose check of us-east, a port nothing
/// listens on, fails as the application's would).
#[allow(clippy::too_many_arguments)]
fn config(
    env: &Env,
    own: &str,
    p: &TempCluster,
    west_port: u16,
    west_pgdata: &Path,
    kubeconfig: &Path,
    authority: &str,
    closed: u16,
) -> PathBuf {
    let east_checks = if own == "eu-west" {
        format!(
            "[{{name: app, type: tcp, host: 127.0.0.1, port: {closed}, request_interval: 1s, failure_threshold: 3}}]"
        )
    } else {
        "[]".into()
    };
    let yaml = format!(
        r#"repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
kubernetes:
  kubeconfig: {kc}
objectives:
  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: cnpg
      role: primary
      cnpg:
        context: kube-double
        namespace: {NS}
        cluster: {CLUSTER}
    health_checks: {east_checks}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{west_port}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: {wpgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks: []
replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
  heartbeat: {{interval: 1s}}
failover:
  etcd: {{endpoints: ["{authority}"]}}
  lease_ttl: 6s
  renew_interval: 1s
  fence_guard: 2s
  safety_margin: 1s
  fence: {{revoke_login: {{roles: [{APP}]}}}}
serve:
  lease: 3s
  region: {own}
"#,
        repo = env.repo,
        kc = kubeconfig.display(),
        user = p.superuser(),
        pport = p.port(),
        wpgdata = west_pgdata.display(),
        bin = p.bin_dir().display(),
    );
    let path = env.path(&format!("cnpg-primary-{own}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_cnpg_primary_is_fenced_by_its_agent_and_its_watchdog_then_fails_over() {
    let _alone = crate::alone::alone(module_path!());
    let rt = common::rt();
    let mut authority = rt.block_on(etcd::EtcdCluster::start(1));
    let authority_url = authority.endpoint(0);
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let primary = p.conn_config("postgres");
    common::pg::sql(
        &rt,
        &primary,
        &format!(
            "CREATE ROLE {APP} LOGIN PASSWORD '{APP_PASSWORD}'; CREATE TABLE app_rows (id int); \
             GRANT ALL ON app_rows TO {APP}"
        ),
    );
    let api = ApiDouble::start_in_thread();
    api.insert(cluster_crd());
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.insert(cluster());

    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    env.envs
        .push(("KUBECONFIG".into(), "/nonexistent/kubeconfig".into()));
    let kubeconfig = env.path("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let west_pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    let _west_server = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: west_pgdata.clone(),
    };
    let (west_port, closed) = (free_port(), free_port());
    let cfg = |own: &str| {
        config(
            &env,
            own,
            &p,
            west_port,
            &west_pgdata,
            &kubeconfig,
            &authority_url,
            closed,
        )
    };
    let (east_cfg, west_cfg) = (cfg("us-east"), cfg("eu-west"));
    env.ok(&[
        "--config",
        west_cfg.to_str().unwrap(),
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]);
    let mut west = primary.clone();
    west.port = west_port;
    assert_eq!(common::pg::in_recovery(&rt, &west), Some(true));

    let bed = FenceBed {
        rt: &rt,
        env: &env,
        authority_url: authority_url.clone(),
        port: p.port(),
        app: &APP_ROLE,
        what: "the CNPG primary",
    };
    let east_lease = || bed.east_lease();
    let guarding = |d: &Daemon| bed.guarding(d);

    // --- (a) the agent loses etcd: the application is locked out ----------
    let d1 = Daemon::start(&env, &east_cfg, "cnpg-east-a");
    guarding(&d1);
    // The managed-roles hazard, said loudly when guarding starts.
    d1.poll(FENCE_BOUND, "the managed-roles hazard in the log", || {
        let log = d1.log_text();
        (log.contains("spec.managed.roles") && log.contains("pg-us-east-1")).then_some(())
    });
    let session = APP_ROLE
        .login(&rt, p.port())
        .expect("the application logs in while guarded");
    assert!(
        app_role::writes(&rt, &session),
        "the guarded primary takes writes"
    );
    authority.kill(&[0]);
    bed.agent_locked_out(&d1, &session);
    // The operator would enforce what the Cluster says: the fence turned
    // the application role's entry to login: false, the other kept.
    d1.poll(
        FENCE_BOUND,
        "login: false on the app role in the Cluster",
        || (managed_login(&api, APP) == Some(json!(false))).then_some(()),
    );
    assert_eq!(managed_login(&api, "reporting"), Some(json!(true)));

    // Between (a) and (b): that agent goes, LOGIN is given back by hand
    // (in the server and the Cluster), etcd returns, a new agent guards.
    drop(d1);
    rt.block_on(lifeboat_region::fence::postgres::restore_login(&primary))
        .unwrap();
    api.insert(cluster());
    rt.block_on(authority.restart(&[0]));
    rt.block_on(authority.wait_healthy(&[0]));
    common::poll(FENCE_BOUND, "the first agent's lease to expire", || {
        east_lease().is_none().then_some(())
    });
    let session = APP_ROLE
        .login(&rt, p.port())
        .expect("the application logs in after the unfence");
    let d2 = Daemon::start(&env, &east_cfg, "cnpg-east-b");
    let id = guarding(&d2);
    assert!(app_role::writes(&rt, &session));

    // --- (b) the agent is SIGKILLed: its watchdog fences -------------------
    bed.watchdog_fences(&d2, id, &session);

    // --- (c) an automatic failover from the fenced CNPG primary -----------
    let d3 = bed.fails_over_to_west(&west_cfg, &west, "cnpg-west");
    bed.app_moved_to(&d3, west_port);
    drop(d3);
}
