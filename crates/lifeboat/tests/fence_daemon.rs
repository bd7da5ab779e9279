//! The daemon as the failover agent (issue 20, "Coordination and fencing";
//! docs/failover.md, "The agent"), with real components: a three-member
//! etcd on loopback, us-east's PostgreSQL a `TempCluster` in agent mode
//! (`pgdata`, `control: pg_ctl`), eu-west another `TempCluster` (it need
//! not replicate here), and `lifeboat serve --region us-east`.
//!
//! - (a) the daemon holds us-east's lease; two of the three etcd members
//!   stop → the server is fenced (connections refused) and
//!   `lifeboat_fenced` is 1, and us-east's writers (a Deployment in the
//!   Kubernetes API double, `regions.us-east.deployments`) are scaled to 0
//!   with their count recorded; the majority returns → the daemon takes no
//!   lease while its server is fenced and the authority names it (so the
//!   other regions can fail over), the server is still down.
//! - (b) the daemon alone is SIGKILLed → its watchdog stops the server, and
//!   when the server is first seen down the region's lease key still
//!   exists in etcd: the fence came before any promotion could.
//! - (c) the authority moves to eu-west at a higher epoch (written here
//!   through `AuthorityStore`) while us-east's server is a writable
//!   primary → the daemon fences it.
//! - (d) etcd is down when the daemon starts beside a writable primary →
//!   the server is fenced once a lease taken at the start would have
//!   passed its fence deadline; etcd returns → still no lease (fenced),
//!   the server stays down.
//! - (e) `etcd_lost: keep_if_peers_agree`, eu-west's daemon running too:
//!   every etcd member stops → us-east's server keeps taking writes on
//!   eu-west's daemon's vouches, well past the deadlines that fenced it in
//!   (a); then the test freezes eu-west's daemon as a change of primary
//!   does (its API, `failsafe::peers::freeze`) → us-east's server is
//!   fenced, and the freeze's answer dates the last vouch.
//!
//! Conditions are polled with bounds; no timing is asserted.

use crate::common;
use crate::etcd;

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use common::{Daemon, Env};
use etcd::EtcdCluster;
use lifeboat_postgres::TempCluster;
use lifeboat_region::authority::{AuthorityStore, ChangeReason, EtcdSettings};

const BOUND: Duration = Duration::from_secs(60);

struct Bed {
    rt: tokio::runtime::Runtime,
    etcd: EtcdCluster,
    east: TempCluster,
    _west: TempCluster,
    env: Env,
    cfg: PathBuf,
}

fn cluster() -> TempCluster {
    TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    )
}

fn bed() -> Bed {
    bed_with("", "", "", "")
}

/// The bed with more lines in `failover:` and `serve:` (each line indented
/// by two spaces), in us-east's region (four spaces) and at the top.
fn bed_with(failover_extra: &str, serve_extra: &str, east_extra: &str, top_extra: &str) -> Bed {
    let rt = common::rt();
    let etcd = rt.block_on(EtcdCluster::start(3));
    let east = cluster();
    let west = cluster();
    let mut env = Env::init();
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        east.password().expose().to_string(),
    ));
    env.envs.push((
        "REGION_WEST_PASSWORD".into(),
        west.password().expose().to_string(),
    ));
    let yaml = format!(
        r#"repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{eport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: postgres
      role: primary
      pgdata: {pgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
{east_extra}  eu-west:
    postgres:
      url: postgresql://{wuser}@127.0.0.1:{wport}/postgres
      password: {{env: REGION_WEST_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
failover:
  etcd: {{endpoints: [{endpoints}]}}
  lease_ttl: 6s
  renew_interval: 1s
  fence_guard: 2s
{failover_extra}serve:
  lease: 3s
  region: us-east
{serve_extra}{top_extra}"#,
        repo = env.repo,
        user = east.superuser(),
        eport = east.port(),
        pgdata = east.data_dir().display(),
        bin = east.bin_dir().display(),
        wuser = west.superuser(),
        wport = west.port(),
        endpoints = etcd.endpoints().join(", "),
    );
    let cfg = env.path("fence.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    Bed {
        rt,
        etcd,
        east,
        _west: west,
        env,
        cfg,
    }
}

impl Bed {
    fn store(&self) -> AuthorityStore {
        self.rt
            .block_on(AuthorityStore::connect(EtcdSettings::new(
                self.etcd.endpoints(),
            )))
            .expect("connecting to etcd")
    }

    fn daemon(&self, tag: &str) -> Daemon {
        Daemon::start(&self.env, &self.cfg, tag)
    }

    /// Whether us-east's server accepts TCP connections at all.
    fn east_up(&self) -> bool {
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.east.port()).into(),
            Duration::from_secs(2),
        )
        .is_ok()
    }

    /// us-east's lease key exists (a fresh store each time: etcd may have
    /// just come back).
    fn east_lease(&self) -> Option<i64> {
        let store = self
            .rt
            .block_on(AuthorityStore::connect(EtcdSettings::new(
                self.etcd.endpoints(),
            )))
            .ok()?;
        self.rt
            .block_on(store.lease_of("us-east"))
            .ok()
            .flatten()
            .map(|l| l.lease_id)
    }

    /// Waits until the daemon holds the lease and guards the primary (the
    /// fence deadline is exported).
    fn wait_guarding(&self, d: &Daemon) -> i64 {
        let id = d.poll(BOUND, "us-east's lease in etcd", || self.east_lease());
        d.poll(BOUND, "the daemon to guard the primary", || {
            d.metric("lifeboat_fence_deadline_seconds{region=\"us-east\"}")
                .filter(|v| v.is_finite())
        });
        assert!(self.east_up(), "the primary serves while guarded");
        id
    }
}

const FENCED: &str = "lifeboat_fenced{region=\"us-east\"}";

impl Bed {
    /// Waits until us-east's server refuses connections and the daemon
    /// reports it fenced; its log says `why`.
    fn wait_fenced(&self, d: &Daemon, why: &str) {
        d.poll(
            BOUND,
            "the primary to be fenced (connections refused)",
            || (!self.east_up()).then_some(()),
        );
        d.poll(BOUND, "lifeboat_fenced 1", || {
            d.metric(FENCED).filter(|v| *v == 1.0)
        });
        assert!(
            d.log_text().contains(why),
            "the log says why ({why}): {}",
            d.log_text()
        );
    }
}

#[test]
fn losing_the_etcd_majority_fences_the_primary_and_it_stays_fenced() {
    let _alone = crate::alone::alone(module_path!());
    // A test double of the Kubernetes API (no real API server runs here),
    // holding us-east's writers.
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    let gw = common::gateways::Gateways::start_at(kubeconfig.path(), &["kubernaut-us"], 2);
    let mut b = bed_with(
        "",
        "",
        "    deployments: {namespace: kubernaut-us, items: [{name: gateway, replicas: 2, failover_replicas: 4}]}\n",
        &format!(
            "kubernetes:\n  kubeconfig: {}\n",
            kubeconfig.path().display()
        ),
    );
    b.env
        .envs
        .push(("KUBECONFIG".into(), "/nonexistent/kubeconfig".into()));
    let gateway_replicas = || gw.replicas("kubernaut-us");
    assert_eq!(gateway_replicas(), Some(2));
    let d = b.daemon("a");
    b.wait_guarding(&d);
    // The lease as `region authority` shows it.
    let view = b.env.ok_json(&[
        "--config",
        b.cfg.to_str().unwrap(),
        "--json",
        "region",
        "authority",
    ]);
    let leases = view["leases"].as_array().expect("leases");
    assert!(leases.iter().any(|l| l["region"] == "us-east"), "{view}");
    assert_eq!(view["authority"]["primary"], "us-east", "{view}");
    assert_eq!(d.metric(FENCED), Some(0.0));
    // While etcd answers, the renewals succeed and the server outlives the
    // first fence deadlines (4 s past each renewal: six renewals a second
    // apart pass several): a guard whose renewals hung would have fenced it.
    d.poll(BOUND, "six successful lease renewals", || {
        d.metric("lifeboat_region_lease_renewals_total{region=\"us-east\"}")
            .filter(|n| *n >= 6.0)
    });
    assert!(b.east_up(), "the guarded primary serves while etcd answers");
    assert_eq!(d.metric(FENCED), Some(0.0));
    assert!(
        !d.log_text()
            .contains("not renewed before the fence deadline"),
        "no deadline passed while etcd answered:\n{}",
        d.log_text()
    );

    b.etcd.kill(&[1, 2]);
    b.wait_fenced(&d, "fence deadline");
    // Its writers follow: scaled to 0, the count kept for bringing them back.
    d.poll(BOUND, "us-east's gateway scaled to 0", || {
        (gateway_replicas() == Some(0)).then_some(())
    });
    assert_eq!(
        gw.recorded("kubernaut-us").as_deref(),
        Some("2"),
        "{}",
        gw.get("kubernaut-us")
    );

    // The majority returns; the daemon reads the authority again, which
    // still names us-east, and takes no lease while its server is fenced
    // (a lease would tell the other regions this primary lives, and block
    // their failover); the server stays down.
    b.rt.block_on(b.etcd.restart(&[1, 2]));
    b.rt.block_on(b.etcd.wait_healthy(&[0, 1, 2]));
    d.poll(BOUND, "etcd read again after it returned", || {
        d.metric("lifeboat_authority_reachable")
            .filter(|v| *v == 1.0)
    });
    // (the old lease may live on for a TTL after etcd's new leader is
    // elected: etcd extends leases over a leader change)
    d.poll(BOUND, "no us-east lease, the daemon saying why", || {
        (b.east_lease().is_none() && d.log_text().contains("holding no region lease")).then_some(())
    });
    assert!(
        !b.east_up(),
        "the server was started again after etcd returned"
    );
    assert_eq!(d.metric(FENCED), Some(1.0));
}

#[test]
fn a_primary_whose_daemon_starts_without_etcd_is_fenced_at_the_deadline() {
    let _alone = crate::alone::alone(module_path!());
    let mut b = bed();
    b.etcd.kill(&[0, 1, 2]);
    assert!(b.east_up(), "the primary serves before the daemon starts");
    let d = b.daemon("d");
    // No lease could ever be taken, so nothing covers the server: it is
    // fenced once a lease granted at the daemon's start would have passed
    // its fence deadline (another region could otherwise be promoted past
    // it by a majority the daemon cannot reach).
    b.wait_fenced(&d, "holds no region lease");
    // etcd returns: the authority still names us-east, whose server is
    // fenced: the daemon takes no lease (the other regions may fail over),
    // and the server stays down.
    b.rt.block_on(b.etcd.restart(&[0, 1, 2]));
    b.rt.block_on(b.etcd.wait_healthy(&[0, 1, 2]));
    d.poll(
        BOUND,
        "the daemon reading etcd and holding no lease",
        || {
            (d.metric("lifeboat_authority_reachable") == Some(1.0)
                && d.log_text().contains("holding no region lease"))
            .then_some(())
        },
    );
    assert_eq!(b.east_lease(), None);
    assert!(
        !b.east_up(),
        "the server was started again after etcd returned"
    );
    assert_eq!(d.metric(FENCED), Some(1.0));
}

#[test]
fn a_killed_daemon_leaves_its_watchdog_to_stop_the_server_before_the_lease_expires() {
    let _alone = crate::alone::alone(module_path!());
    let b = bed();
    let d = b.daemon("b");
    let id = b.wait_guarding(&d);
    d.signal(libc::SIGKILL);
    common::poll(BOUND, "the watchdog to stop the server", || {
        (!b.east_up()).then_some(())
    });
    // The server is down and the lease key still exists: no promotion could
    // have happened yet (it waits for the key to be gone).
    assert_eq!(
        b.east_lease(),
        Some(id),
        "the lease expired before the watchdog stopped the server"
    );
    // And the key does go once the lease expires (nobody renews it).
    common::poll(BOUND, "the lease to expire", || {
        b.east_lease().is_none().then_some(())
    });
    assert!(!b.east_up());
}

#[test]
fn a_higher_epoch_naming_another_region_fences_a_writable_primary() {
    let _alone = crate::alone::alone(module_path!());
    let b = bed();
    let d = b.daemon("c");
    b.wait_guarding(&d);
    let store = b.store();
    let current =
        b.rt.block_on(store.authority())
            .unwrap()
            .expect("the daemon initialized the authority");
    assert_eq!(
        (current.value.primary.as_str(), current.value.epoch),
        ("us-east", 1)
    );
    // us-east's server is a writable primary right now.
    let writable: bool = b.rt.block_on(async {
        let c = b.east.conn_config("postgres").connect().await.unwrap();
        !c.query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    });
    assert!(writable);
    let bumped =
        b.rt.block_on(store.bump(&current, "eu-west", "test", ChangeReason::Manual, None))
            .unwrap();
    assert_eq!(bumped.value.epoch, 2);
    d.poll(BOUND, "the stale primary to be fenced", || {
        (!b.east_up()).then_some(())
    });
    d.poll(BOUND, "lifeboat_fenced 1", || {
        d.metric(FENCED).filter(|v| *v == 1.0)
    });
    d.poll(BOUND, "the epoch metric", || {
        d.metric("lifeboat_authority_epoch").filter(|v| *v == 2.0)
    });
}

#[test]
fn with_the_failsafe_a_primary_that_lost_etcd_serves_while_vouched_for_and_a_freeze_fences_it() {
    let _alone = crate::alone::alone(module_path!());
    let (east_port, west_port) = (common::free_port(), common::free_port());
    let mut b = bed_with(
        &format!(
            "  etcd_lost:\n    keep_if_peers_agree:\n      peers: {{us-east: 'http://127.0.0.1:{east_port}', eu-west: 'http://127.0.0.1:{west_port}'}}\n"
        ),
        "  token: {env: SERVE_TOKEN}\n",
        "",
        "",
    );
    let token = "failsafe-test-token";
    b.env.envs.push(("SERVE_TOKEN".into(), token.into()));
    let east = Daemon::start_on(&b.env, &b.cfg, "east", east_port, &[]);
    let west = Daemon::start_on(&b.env, &b.cfg, "west", west_port, &["--region", "eu-west"]);
    b.wait_guarding(&east);
    west.poll(BOUND, "eu-west's daemon reading the authority", || {
        west.metric("lifeboat_authority_reachable")
            .filter(|v| *v == 1.0)
    });

    b.etcd.kill(&[0, 1, 2]);
    east.poll(BOUND, "the failsafe to carry us-east", || {
        east.metric("lifeboat_failsafe_active{region=\"us-east\"}")
            .filter(|v| *v == 1.0)
    });
    // Ten vouched renewals a second apart: past several fence deadlines
    // (4 s after the last etcd renewal) that fenced the server in (a).
    west.poll(BOUND, "ten vouches from eu-west's daemon", || {
        (west
            .log_text()
            .matches("failsafe: vouched for the primary")
            .count()
            >= 10)
            .then_some(())
    });
    let write = |b: &Bed| {
        b.rt.block_on(async {
            let c = b
                .east
                .conn_config("postgres")
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            c.batch_execute("CREATE TABLE IF NOT EXISTS failsafe_t (at timestamptz); INSERT INTO failsafe_t VALUES (now())")
                .await
                .map_err(|e| e.to_string())
        })
    };
    write(&b).expect("the primary kept by the failsafe takes writes");
    assert_eq!(east.metric(FENCED), Some(0.0));
    assert!(
        !east
            .log_text()
            .contains("not renewed before the fence deadline"),
        "{}",
        east.log_text()
    );

    // A change of primary freezes every other daemon for the old primary.
    let answers = b.rt.block_on(lifeboat_region::failsafe::peers::freeze(
        &[lifeboat_region::failsafe::peers::Peer {
            name: "eu-west".into(),
            url: format!("http://127.0.0.1:{west_port}"),
        }],
        &lifeboat_postgres::Secret::new(token),
        &lifeboat_region::failsafe::FreezeRequest {
            region: "us-east".into(),
            epoch: 1,
        },
        Duration::from_secs(5),
    ));
    let age = answers[0]
        .1
        .as_ref()
        .expect("eu-west's daemon answers the freeze")
        .last_vouch_age_ms;
    assert!(
        age.is_some_and(|ms| ms < 6_000),
        "the freeze dates a vouch within the lease TTL: {age:?}"
    );
    b.wait_fenced(&east, "froze the failsafe");
    assert!(write(&b).is_err(), "the fenced server took a write");
    // A wrong token is refused, not vouched for.
    let refused = b.rt.block_on(lifeboat_region::failsafe::peers::vouch(
        &[lifeboat_region::failsafe::peers::Peer {
            name: "eu-west".into(),
            url: format!("http://127.0.0.1:{west_port}"),
        }],
        &lifeboat_postgres::Secret::new("not-the-token"),
        &lifeboat_region::failsafe::VouchRequest {
            region: "us-east".into(),
            epoch: 1,
        },
        Duration::from_secs(5),
    ));
    let e = refused[0]
        .1
        .as_ref()
        .expect_err("a wrong token was answered");
    assert!(e.contains("401"), "{e}");
}
