//! `lifeboat region replicate`, `region status` and `region failover --to`
//! through the built binary for a `manager: patroni` region, against real
//! components: Debian's
//! Patroni 3.0.2 (run as the `postgres` user) with Debian's etcd 3.4 as its
//! DCS, standby cluster of a PostgreSQL 15 primary ([`TempCluster`]);
//! everything on loopback ports in temporary directories, stopped on drop.
//! The failover's authority is in the same etcd as Patroni's DCS (under its
//! own prefix).
//!
//! The last test makes a Patroni cluster the PRIMARY region, with
//! `lifeboat serve` beside it as its agent (`failover.fence: revoke_login`,
//! region/managed_fence.rs) and the authority in an etcd of its own, apart
//! from Patroni's DCS: (a) the authority's etcd stops → the agent revokes
//! the application role's LOGIN on the Patroni leader and terminates its
//! session, and Patroni keeps it so; (b) a new agent is SIGKILLed → its
//! watchdog does the same while the region's lease key still exists (no
//! promotion could have come first); (c) eu-west's daemon, a vantage point
//! whose check of us-east fails, decides the automatic failover and
//! promotes eu-west (a standby of the Patroni leader), where the
//! application logs in again.
//!
//! Without `patroni` or `etcd` the test fails and says to run
//! scripts/test.sh. The etcd and Patroni set-up is copied from
//! crates/lifeboat-region/tests/patroni.rs. Conditions are polled with a
//! bound; no timing is asserted.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Ports reserved (lifeboat-test-ports), not bound and released: no race
// with the other test lane.
use common::app_role::{self, AppRole};
use common::managed_fence::{FENCE_BOUND, FenceBed};
use common::{Daemon, Env, free_port};
use lifeboat_postgres::{ConnConfig, Secret, TempCluster};
use serde_json::{Value, json};

const PATRONI: &str = "/usr/bin/patroni";
const REPL_USER: &str = "lifeboat_replication";
const REPL_PASSWORD: &str = "repl-Patroni-7c2a";
const API_USER: &str = "lifeboat-api";
const API_PASSWORD: &str = "api-Patroni-91bd";
const SLOT: &str = "lifeboat_eu_west";
const MEMBER: &str = "eu-west-1";
const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(300);

fn need(program: &str) -> PathBuf {
    let found = if program.starts_with('/') {
        Path::new(program).is_file().then(|| PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "{program} is not installed: this test runs a real Patroni with etcd. Run \
             scripts/test.sh (it installs Debian's patroni and etcd-server), or apt-get install \
             patroni etcd-server"
        )
    })
}

/// uid and gid of the `postgres` user (PostgreSQL refuses to run as root).
fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .expect("no `postgres` user: install PostgreSQL (scripts/test.sh)")
}

fn chown_postgres(p: &Path) {
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
}

/// SIGTERM, a bounded wait for the process to end, then SIGKILL.
fn terminate(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let start = s.len().saturating_sub(6000);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

/// A plain GET through a raw socket (the test's own reading, not the code
/// under test): the status and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn http_json(port: u16, path: &str) -> Option<Value> {
    http_get(port, path).and_then(|(_, b)| serde_json::from_str(&b).ok())
}

// --- etcd ------------------------------------------------------------------------

struct Etcd {
    child: Child,
    client_port: u16,
    dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let etcd = need("etcd");
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-etcd-")
            .tempdir()
            .unwrap();
        let (client_port, peer_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(etcd)
            .arg("--name=lifeboat")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=lifeboat={peer}"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        let mut e = Etcd {
            child,
            client_port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = e.child.try_wait() {
                panic!(
                    "etcd exited ({status}); log:\n{}",
                    tail(&e.dir.path().join("etcd.log"))
                );
            }
            if matches!(http_get(client_port, "/health"), Some((200, _))) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy within 60 s; log:\n{}",
                tail(&e.dir.path().join("etcd.log"))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

// --- Patroni -------------------------------------------------------------------------

/// One Patroni node: of a standby cluster bootstrapped from the primary as
/// `region replicate` prints it (`bootstrap.dcs.standby_cluster` without a
/// slot, the replication role's credentials in
/// `postgresql.authentication.replication`), or of a cluster of its own
/// (initdb; the superuser and replication role made by Patroni).
struct Patroni {
    child: Child,
    dir: tempfile::TempDir,
}

impl Patroni {
    fn start(
        etcd: &Etcd,
        api_port: u16,
        pg_port: u16,
        primary_port: u16,
        superuser: (&str, &Secret),
    ) -> Patroni {
        Patroni::start_node(
            etcd,
            ("lifeboat-eu-west", MEMBER),
            api_port,
            pg_port,
            Some(primary_port),
            superuser,
        )
    }

    /// A node named `scope_name.1` in cluster `scope_name.0`; a standby
    /// cluster of the server at `standby_of` when given, else a cluster
    /// whose first member bootstraps it with initdb (and leads it).
    fn start_node(
        etcd: &Etcd,
        scope_name: (&str, &str),
        api_port: u16,
        pg_port: u16,
        standby_of: Option<u16>,
        superuser: (&str, &Secret),
    ) -> Patroni {
        let patroni = need(PATRONI);
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-patroni-")
            .tempdir()
            .unwrap();
        chown_postgres(dir.path());
        let d = dir.path().display().to_string();
        let mut dcs = json!({"ttl": 20, "loop_wait": 1, "retry_timeout": 5});
        if let Some(primary_port) = standby_of {
            dcs["standby_cluster"] = json!({"host": "127.0.0.1", "port": primary_port,
                "create_replica_methods": ["basebackup"]});
        }
        let config = json!({
            "scope": scope_name.0,
            "name": scope_name.1,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": format!("127.0.0.1:{api_port}"),
                "connect_address": format!("127.0.0.1:{api_port}"),
                "authentication": {"username": API_USER, "password": API_PASSWORD},
            },
            "etcd3": {"hosts": [format!("127.0.0.1:{}", etcd.client_port)]},
            "bootstrap": {
                "dcs": dcs,
                "pg_hba": [
                    "local all all scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                    "host replication all 127.0.0.1/32 scram-sha-256",
                ],
            },
            "postgresql": {
                "listen": format!("127.0.0.1:{pg_port}"),
                "connect_address": format!("127.0.0.1:{pg_port}"),
                "data_dir": format!("{d}/data"),
                "bin_dir": "/usr/lib/postgresql/15/bin",
                "pgpass": format!("{d}/pgpass"),
                "authentication": {
                    // A standby's roles are the primary's (its data is a copy).
                    "superuser": {"username": superuser.0, "password": superuser.1.expose()},
                    "replication": {"username": REPL_USER, "password": REPL_PASSWORD},
                },
                "parameters": {
                    "unix_socket_directories": d,
                    "fsync": "off",
                    "synchronous_commit": "off",
                    "shared_buffers": "32MB",
                },
                "basebackup": [{"checkpoint": "fast"}],
            },
        });
        // JSON is YAML: Patroni reads it as its YAML configuration.
        let config_path = dir.path().join("patroni.yml");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        std::fs::set_permissions(
            &config_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        chown_postgres(&config_path);
        let log = std::fs::File::create(dir.path().join("patroni.log")).unwrap();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(patroni)
                .arg(&config_path)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", dir.path())
                .env("LC_ALL", "C.UTF-8")
                .current_dir(dir.path())
                .uid(uid)
                .gid(gid)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start patroni")
        };
        Patroni { child, dir }
    }

    fn log(&self) -> String {
        tail(&self.dir.path().join("patroni.log"))
    }
}

impl Drop for Patroni {
    fn drop(&mut self) {
        // Patroni stops its PostgreSQL on SIGTERM.
        terminate(&mut self.child, Duration::from_secs(30));
        let data = self.dir.path().join("data");
        if data.join("postmaster.pid").exists() {
            let (uid, gid) = postgres_ids();
            use std::os::unix::process::CommandExt;
            let _ = Command::new("/usr/lib/postgresql/15/bin/pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&data)
                .uid(uid)
                .gid(gid)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

// --- the primary, read by the test ---------------------------------------------------

fn one_text(rt: &tokio::runtime::Runtime, conn: &ConnConfig, sql: &str) -> Option<String> {
    rt.block_on(async {
        let c = conn.connect().await.expect("connect to the primary");
        c.query_opt(sql, &[])
            .await
            .unwrap()
            .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
    })
}

fn config_yaml(env: &Env, p: &TempCluster, api_port: u16, pg_port: u16) -> PathBuf {
    config_yaml_with(env, p, api_port, pg_port, "", false)
}

/// [`config_yaml`] with `extra` appended (a `failover:` section) and, when
/// `east_agent`, us-east in agent mode (its `pgdata`, started and stopped
/// with `pg_ctl`: a rejoin rebuilds it).
fn config_yaml_with(
    env: &Env,
    p: &TempCluster,
    api_port: u16,
    pg_port: u16,
    extra: &str,
    east_agent: bool,
) -> PathBuf {
    let agent = if east_agent {
        format!(
            "\n      pgdata: {}\n      control: {{pg_ctl: {{bin_dir: {}}}}}",
            p.data_dir().display(),
            p.bin_dir().display()
        )
    } else {
        String::new()
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
      role: primary{agent}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pg_port}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      manager: patroni
      role: standby
      replicates_from: us-east
      patroni:
        url: http://127.0.0.1:{api_port}
        username: {API_USER}
        password: {{env: PATRONI_API_PASSWORD}}
replication:
  user: {REPL_USER}
  password: {{env: REGION_REPL_PASSWORD}}
{extra}"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
    );
    let path = env.path("regions.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
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
fn replicate_makes_a_patroni_cluster_a_standby_cluster_idempotently_and_status_shows_it() {
    let _alone = crate::alone::alone(module_path!());
    need(PATRONI);
    need("etcd");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let pc = p.conn_config("postgres");
    let mut env = Env::init();
    for (k, v) in [
        ("REGION_PG_PASSWORD", p.password().expose()),
        ("REGION_REPL_PASSWORD", REPL_PASSWORD),
        ("PATRONI_API_PASSWORD", API_PASSWORD),
    ] {
        env.envs.push((k.into(), v.into()));
    }
    let (api_port, pg_port) = (free_port(), free_port());
    let cfg = config_yaml(&env, &p, api_port, pg_port);
    let cfg = cfg.to_str().unwrap();
    let replicate = [
        "--config",
        cfg,
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ];
    let replicate_json = [
        "--config",
        cfg,
        "--json",
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ];

    // 1. No Patroni cluster yet: the settings are printed, the replication
    // role is made on the primary, and the error says how to bootstrap the
    // cluster from the primary; no slot yet.
    let (out, err) = env.exits_with(&replicate, 1);
    assert!(out.contains("PATCH /config"), "{out}");
    assert!(out.contains(SLOT), "{out}");
    assert!(
        err.contains("bootstrap:") && err.contains("standby_cluster:"),
        "{err}"
    );
    assert!(err.contains(&format!("username: {REPL_USER}")), "{err}");
    assert!(!err.contains(REPL_PASSWORD) && !out.contains(REPL_PASSWORD));
    assert!(!err.contains(API_PASSWORD) && !out.contains(API_PASSWORD));
    assert_eq!(
        one_text(
            &rt,
            &pc,
            &format!("SELECT rolreplication::text FROM pg_roles WHERE rolname = '{REPL_USER}'")
        )
        .as_deref(),
        Some("true")
    );
    let slot_active = || {
        one_text(
            &rt,
            &pc,
            &format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'"),
        )
    };
    assert_eq!(slot_active(), None);

    // 2. The standby region's Patroni cluster, bootstrapped as printed
    // (streaming as the replication role, no slot yet).
    let node = Patroni::start(
        &etcd,
        api_port,
        pg_port,
        p.port(),
        (p.superuser(), p.password()),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let s = http_json(api_port, "/patroni");
        if s.as_ref()
            .is_some_and(|s| s["role"] == "standby_leader" && s["state"] == "running")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Patroni never became a running standby leader: {s:?}\n{}\nprimary log:\n{}",
            node.log(),
            p.log_tail()
        );
        std::thread::sleep(POLL);
    }

    // 3. replicate: the settings written through PATCH /config, the slot
    // made, the standby leader streaming through it, a heartbeat replayed.
    let done = env.ok_json(&replicate_json);
    assert_eq!(done["manager"], "patroni", "{done}");
    let pr = &done["patroni"];
    assert_eq!(pr["changed"], true, "{done}");
    assert_eq!(pr["slot"], SLOT);
    assert_eq!(pr["streaming"]["standby_leader"], MEMBER, "{done}");
    assert_eq!(pr["streaming"]["walsender"]["state"], "streaming");
    assert_eq!(pr["streaming"]["walsender"]["slot_name"], SLOT);
    assert!(pr["heartbeat"]["beat"]["seq"].as_i64().is_some(), "{done}");
    let events: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"settings"), "{events:?}");
    assert!(events.contains(&"applied") && events.contains(&"streaming"));
    // Read back from Patroni itself.
    let config = http_json(api_port, "/config").expect("GET /config");
    let want = json!({"host": "127.0.0.1", "port": p.port(), "primary_slot_name": SLOT,
        "create_replica_methods": ["basebackup"]});
    assert_eq!(config["standby_cluster"], want, "{config}");
    assert_eq!(pr["standby_cluster"], want);
    // The primary's own view: the member streams through the slot.
    assert_eq!(
        one_text(
            &rt,
            &pc,
            &format!(
                "SELECT r.state || ' ' || s.slot_name FROM pg_stat_replication r \
                 JOIN pg_replication_slots s ON s.active_pid = r.pid \
                 WHERE r.application_name = '{MEMBER}' AND r.usename = '{REPL_USER}'"
            )
        )
        .as_deref(),
        Some(format!("streaming {SLOT}").as_str())
    );
    assert_eq!(slot_active().as_deref(), Some("true"));

    // 4. Again: nothing to change, still streaming.
    let again = env.ok_json(&replicate_json);
    assert_eq!(again["patroni"]["changed"], false, "{again}");
    assert_eq!(
        http_json(api_port, "/config").unwrap()["standby_cluster"],
        want
    );
    let applied = again["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "applied")
        .cloned()
        .unwrap();
    assert_eq!(applied["changed"], false, "{again}");

    // 5. region status: the server says standby, Patroni says standby
    // leader of a standby cluster; the lag is found under the member name.
    let status = env.ok_json(&["--config", cfg, "--json", "region", "status"]);
    let eu = region(&status, "eu-west");
    assert_eq!(eu["observed"]["role"]["kind"], "standby", "{eu}");
    let mv = &eu["manager_view"];
    assert_eq!(mv["manager"], "patroni", "{eu}");
    assert_eq!(mv["node"]["role"], "standby_leader", "{eu}");
    assert_eq!(mv["standby"]["verdict"], "running", "{eu}");
    assert_eq!(mv["standby"]["standby_leader"], MEMBER);
    assert_eq!(mv["standby_cluster"]["primary_slot_name"], SLOT);
    assert_eq!(eu["lag"]["streaming"], true, "{eu}");
    assert_eq!(region(&status, "us-east")["manager_view"], Value::Null);
    let text = env.ok(&["--config", cfg, "region", "status"]);
    assert!(
        text.contains("patroni: standby_leader (standby cluster, leader eu-west-1)"),
        "{text}"
    );
    drop(node);
    drop(etcd);
}

/// Waits until the Patroni node at `api_port` is a running standby leader.
fn await_standby_leader(api_port: u16, node: &Patroni, p: &TempCluster) {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = http_json(api_port, "/patroni");
        if s.as_ref()
            .is_some_and(|s| s["role"] == "standby_leader" && s["state"] == "running")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Patroni never became a running standby leader: {s:?}\n{}\nprimary log:\n{}",
            node.log(),
            p.log_tail()
        );
        std::thread::sleep(POLL);
    }
}

/// A manual failover to the Patroni region once the primary is stopped:
/// the cluster leaves standby mode (`standby_cluster` gone from Patroni's
/// `/config`, its member the leader, `GET /patroni` says primary), the
/// server takes writes and carries the new epoch in `lifeboat.authority`,
/// and etcd's authority record names the region at that epoch. Before it,
/// a switchover to the Patroni region is refused with nothing written.
#[test]
fn failover_to_a_patroni_region_promotes_its_standby_cluster() {
    let _alone = crate::alone::alone(module_path!());
    need(PATRONI);
    need("etcd");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let endpoint = format!("http://127.0.0.1:{}", etcd.client_port);
    let p = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    // us-east's server runs under pg_ctl once rejoined: stopped when the
    // test ends, however it ends.
    let east_guard = common::standby::SeededStandby::for_cluster(&p, &[]);
    let mut env = Env::init();
    for (k, v) in [
        ("REGION_PG_PASSWORD", p.password().expose()),
        ("REGION_REPL_PASSWORD", REPL_PASSWORD),
        ("PATRONI_API_PASSWORD", API_PASSWORD),
    ] {
        env.envs.push((k.into(), v.into()));
    }
    let (api_port, pg_port) = (free_port(), free_port());
    let failover =
        format!("failover:\n  etcd: {{endpoints: [\"{endpoint}\"]}}\n  safety_margin: 1s\n");
    let cfg = config_yaml_with(&env, &p, api_port, pg_port, &failover, true);
    let cfg = cfg.to_str().unwrap();
    // No Patroni cluster yet: replicate makes the replication role it
    // bootstraps with (and says how), as in the test above.
    env.exits_with(
        &[
            "--config",
            cfg,
            "region",
            "replicate",
            "--from",
            "us-east",
            "--to",
            "eu-west",
        ],
        1,
    );
    let node = Patroni::start(
        &etcd,
        api_port,
        pg_port,
        p.port(),
        (p.superuser(), p.password()),
    );
    await_standby_leader(api_port, &node, &p);
    env.ok_json(&[
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
    let mut west = p.conn_config("postgres");
    west.port = pg_port;
    assert_eq!(common::pg::in_recovery(&rt, &west), Some(true));

    // A switchover to a Patroni region is not built: refused, nothing written.
    let refused = env.fails(
        &["--config", cfg, "region", "switchover", "--to", "eu-west"],
        2,
    );
    assert!(
        refused.contains("manager is patroni") && refused.contains("region failover --to eu-west"),
        "{refused}"
    );
    let auth = env.ok_json(&["--config", cfg, "--json", "region", "authority"]);
    assert_eq!(auth["authority"]["primary"], "us-east", "{auth}");
    assert_eq!(auth["authority"]["epoch"], 1, "{auth}");
    assert!(
        !http_json(api_port, "/config").unwrap()["standby_cluster"].is_null(),
        "the refused switchover changed Patroni's configuration"
    );

    // us-east lost: its server stops at once (its directory stays, for the
    // rejoin below), then a manual failover to eu-west.
    let east = p.conn_config("postgres");
    east_guard.stop_now();
    let doc = env.ok_json(&[
        "--config", cfg, "--json", "region", "failover", "--to", "eu-west",
    ]);
    let report = &doc["report"];
    assert_eq!(report["outcome"], "done", "{doc}\n{}", node.log());
    assert_eq!(report["epoch"], 2, "{doc}");

    // Read back from Patroni: no standby_cluster, its member leads and its
    // node says primary.
    let config = http_json(api_port, "/config").expect("GET /config");
    assert!(config["standby_cluster"].is_null(), "{config}");
    let cluster = http_json(api_port, "/cluster").expect("GET /cluster");
    let leader = cluster["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "leader")
        .unwrap_or_else(|| panic!("no leader in {cluster}"));
    assert_eq!(leader["name"], MEMBER, "{cluster}");
    assert_eq!(leader["state"], "running", "{cluster}");
    let own = http_json(api_port, "/patroni").expect("GET /patroni");
    assert!(own["role"] == "master" || own["role"] == "primary", "{own}");
    // Read back from the server: out of recovery, it takes writes, and the
    // epoch's row is there.
    assert_eq!(common::pg::in_recovery(&rt, &west), Some(false));
    common::pg::sql(
        &rt,
        &west,
        "CREATE TABLE after_failover (id int); INSERT INTO after_failover VALUES (1)",
    );
    assert_eq!(common::pg::authority_epoch(&rt, &west), Some(2));
    let row_region = rt.block_on(async {
        let c = west.with_dbname("lifeboat").connect().await.unwrap();
        c.query_one("SELECT region FROM lifeboat.authority WHERE epoch = 2", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    });
    assert_eq!(row_region, "eu-west");
    // Read back from etcd: the authority names eu-west at epoch 2.
    let record = rt.block_on(async {
        let store = lifeboat_region::authority::AuthorityStore::connect(
            lifeboat_region::authority::EtcdSettings::new(vec![endpoint.clone()]),
        )
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
    let auth = env.ok_json(&["--config", cfg, "--json", "region", "authority"]);
    let kinds: Vec<&str> = auth["failovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["manual"], "{auth}");
    // The promote step says what Patroni was asked.
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
            .contains("standby_cluster removed from /config"),
        "{promote}"
    );

    // Again: the primary already, nothing to change.
    let again = env.fails(
        &["--config", cfg, "region", "failover", "--to", "eu-west"],
        2,
    );
    assert!(again.contains("is the primary already"), "{again}");

    // --- us-east returns: rejoined as a standby of the Patroni primary ------
    // Neither wal_log_hints nor checksums on us-east: a fresh clone from
    // eu-west's leader, through a slot that Patroni is told to keep.
    // First with eu-west's Patroni REST API not answering (its URL a closed
    // loopback port): the idempotent call is retried, then the rejoin fails
    // naming the URL and what to do, before anything is changed.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let down_cfg = env.path("regions-patroni-down.yaml");
    std::fs::write(
        &down_cfg,
        std::fs::read_to_string(cfg)
            .unwrap()
            .replace(&format!("http://127.0.0.1:{api_port}"), &closed),
    )
    .unwrap();
    let (_, stderr) = env.exits_with(
        &[
            "--config",
            down_cfg.to_str().unwrap(),
            "region",
            "rejoin",
            "us-east",
        ],
        1,
    );
    assert!(
        stderr.contains(&format!("Patroni's REST API at {closed}"))
            && stderr.contains("after 5 attempt(s)")
            && stderr.contains("run the same command again"),
        "{stderr}"
    );
    // Nothing half-done: us-east still down on its own data, no slot for it
    // in Patroni's /config or on eu-west's server.
    assert_eq!(common::pg::in_recovery(&rt, &east), None);
    assert!(p.data_dir().join("PG_VERSION").exists());
    assert!(
        http_json(api_port, "/config").unwrap()["slots"]["lifeboat_us_east"].is_null(),
        "{:?}",
        http_json(api_port, "/config")
    );
    assert_eq!(
        one_text(
            &rt,
            &west,
            "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = 'lifeboat_us_east'"
        )
        .as_deref(),
        Some("0")
    );
    // Patroni's API reachable again: the same command finishes the rejoin.
    let doc = env.ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    let report = &doc["report"];
    assert_eq!(report["method"], "clone", "{doc}");
    assert_eq!(report["server_before"]["kind"], "down", "{doc}");
    let config = http_json(api_port, "/config").expect("GET /config");
    assert_eq!(
        config["slots"]["lifeboat_us_east"]["type"], "physical",
        "the slot is one of Patroni's permanent slots: {config}"
    );
    // The servers say: us-east in recovery, eu-west's walsender streams to
    // it through that slot, a row written on eu-west is replayed there, and
    // so was epoch 2's row.
    assert_eq!(common::pg::in_recovery(&rt, &east), Some(true));
    let through_slot = || {
        one_text(
            &rt,
            &west,
            "SELECT r.state FROM pg_stat_replication r JOIN pg_replication_slots s \
             ON s.active_pid = r.pid WHERE s.slot_name = 'lifeboat_us_east'",
        )
    };
    let deadline = Instant::now() + WAIT;
    while through_slot().as_deref() != Some("streaming") {
        assert!(
            Instant::now() < deadline,
            "eu-west never streamed to us-east through lifeboat_us_east: {:?}\n{}",
            through_slot(),
            node.log()
        );
        std::thread::sleep(POLL);
    }
    common::pg::sql(&rt, &west, "INSERT INTO after_failover VALUES (2)");
    let deadline = Instant::now() + WAIT;
    while one_text(&rt, &east, "SELECT count(*)::text FROM after_failover").as_deref() != Some("2")
    {
        assert!(Instant::now() < deadline, "us-east never replayed row 2");
        std::thread::sleep(POLL);
    }
    assert_eq!(common::pg::authority_epoch(&rt, &east), Some(2));
    // Again: it already streams; only verified, Patroni's /config untouched.
    let again = env.ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    assert!(again["report"]["method"].is_null(), "{again}");
    assert_eq!(
        http_json(api_port, "/config").unwrap()["slots"],
        config["slots"]
    );
    drop(node);
    drop(etcd);
}

// --- a Patroni primary fenced by its agent and its watchdog -----------------

const ADMIN: &str = "lifeboat_admin";
const ADMIN_PASSWORD: &str = "admin-Patroni-3f81";
const APP: &str = "app";
const APP_ROLE: AppRole = AppRole {
    name: APP,
    password: APP_PASSWORD,
};
const APP_PASSWORD: &str = "app-Patroni-5e1f";

/// The configuration of daemon `own` (us-east: the agent beside the
/// Patroni primary; eu-west: a vantage point whose check of us-east, a
/// port nothing listens on, fails as the application's would).
#[allow(clippy::too_many_arguments)]
fn primary_patroni_config(
    env: &Env,
    own: &str,
    api_port: u16,
    pg_port: u16,
    west_port: u16,
    west_pgdata: &Path,
    bin: &Path,
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
objectives:
  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}}
regions:
  us-east:
    postgres:
      url: postgresql://{ADMIN}@127.0.0.1:{pg_port}/postgres
      password: {{env: EAST_PG_PASSWORD}}
      manager: patroni
      role: primary
      patroni:
        url: http://127.0.0.1:{api_port}
        username: {API_USER}
        password: {{env: PATRONI_API_PASSWORD}}
    health_checks: {east_checks}
  eu-west:
    postgres:
      url: postgresql://{ADMIN}@127.0.0.1:{wport}/postgres
      password: {{env: EAST_PG_PASSWORD}}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: {wpgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks: []
replication:
  user: {REPL_USER}
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
        wport = west_port,
        wpgdata = west_pgdata.display(),
        bin = bin.display(),
    );
    let path = env.path(&format!("patroni-primary-{own}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_patroni_primary_is_fenced_on_its_leader_by_its_agent_and_its_watchdog_then_fails_over() {
    let _alone = crate::alone::alone(module_path!());
    need(PATRONI);
    need("etcd");
    let rt = common::rt();
    // Patroni's DCS and the authority apart: the agent loses the one, the
    // Patroni cluster keeps the other (and its leader).
    let dcs = Etcd::start();
    let mut authority = rt.block_on(crate::etcd::EtcdCluster::start(1));
    let authority_url = authority.endpoint(0);
    let (api_port, pg_port, closed) = (free_port(), free_port(), free_port());
    let admin_password = Secret::new(ADMIN_PASSWORD.to_string());
    let node = Patroni::start_node(
        &dcs,
        ("lifeboat-us-east", "us-east-1"),
        api_port,
        pg_port,
        None,
        (ADMIN, &admin_password),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let s = http_json(api_port, "/patroni");
        if s.as_ref().is_some_and(|s| {
            (s["role"] == "master" || s["role"] == "primary") && s["state"] == "running"
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Patroni never led its own cluster: {s:?}\n{}",
            node.log()
        );
        std::thread::sleep(POLL);
    }
    let leader = ConnConfig::new(
        lifeboat_postgres::conn::PgHost::Tcp("127.0.0.1".into()),
        pg_port,
        ADMIN,
        "postgres",
    )
    .with_password(admin_password.clone());
    common::pg::sql(
        &rt,
        &leader,
        &format!(
            "CREATE ROLE {APP} LOGIN PASSWORD '{APP_PASSWORD}'; CREATE TABLE app_rows (id int); \
             GRANT ALL ON app_rows TO {APP}"
        ),
    );
    // eu-west: a plain PostgreSQL only for its binaries' directory; its
    // server is a standby of the Patroni leader seeded by `region replicate`.
    let west_bins = TempCluster::start().expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    );
    let mut env = Env::init();
    for (k, v) in [
        ("EAST_PG_PASSWORD", ADMIN_PASSWORD),
        ("REGION_REPL_PASSWORD", REPL_PASSWORD),
        ("PATRONI_API_PASSWORD", API_PASSWORD),
    ] {
        env.envs.push((k.into(), v.into()));
    }
    let west_pgdata = common::standby::empty_owned_dir(&env.path("eu-west"), "data");
    let _west_server = common::standby::SeededStandby {
        bin: west_bins.bin_dir().to_path_buf(),
        pgdata: west_pgdata.clone(),
    };
    // The standby's own port (not the binaries' cluster's).
    let west_port = free_port();
    let cfg = |own: &str| {
        primary_patroni_config(
            &env,
            own,
            api_port,
            pg_port,
            west_port,
            &west_pgdata,
            west_bins.bin_dir(),
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
    let mut west = leader.clone();
    west.port = west_port;
    assert_eq!(common::pg::in_recovery(&rt, &west), Some(true));

    let bed = FenceBed {
        rt: &rt,
        env: &env,
        authority_url: authority_url.clone(),
        port: pg_port,
        app: &APP_ROLE,
        what: "the Patroni primary",
    };
    let east_lease = || bed.east_lease();
    let guarding = |d: &Daemon| bed.guarding(d);

    // --- (a) the agent loses etcd: the leader locks the application out ---
    let d1 = Daemon::start(&env, &east_cfg, "patroni-east-a");
    guarding(&d1);
    let session = APP_ROLE
        .login(&rt, pg_port)
        .expect("the application logs in while guarded");
    assert!(
        app_role::writes(&rt, &session),
        "the guarded primary takes the application's writes"
    );
    authority.kill(&[0]);
    bed.agent_locked_out(&d1, &session);
    // Patroni does not undo it: after several more of its HA loops
    // (loop_wait 1 s; `dcs_last_seen` moves on with each) its server still
    // runs and leads, and the role still may not log in.
    let seen = |s: &Value| s["dcs_last_seen"].as_u64();
    let s = http_json(api_port, "/patroni").expect("GET /patroni");
    let fenced_seen = seen(&s).unwrap_or_else(|| panic!("no dcs_last_seen in GET /patroni: {s}"));
    common::poll(FENCE_BOUND, "three more Patroni HA loops", || {
        http_json(api_port, "/patroni").filter(|s| seen(s).is_some_and(|t| t >= fenced_seen + 3))
    });
    let s = http_json(api_port, "/patroni").expect("GET /patroni");
    assert!(
        (s["role"] == "master" || s["role"] == "primary") && s["state"] == "running",
        "{s}"
    );
    assert_eq!(
        APP_ROLE.login(&rt, pg_port).err(),
        Some(Some("28000".into()))
    );
    // The NOLOGIN is WAL: eu-west's standby replays it too.
    common::poll(FENCE_BOUND, "the NOLOGIN replayed on eu-west", || {
        (common::pg::names(
            &rt,
            &west,
            &format!("SELECT rolcanlogin::text FROM pg_roles WHERE rolname = '{APP}'"),
        ) == ["false"])
        .then_some(())
    });

    // Between (a) and (b): that agent goes (its watchdog was released by
    // the fence), the application's LOGIN is given back by hand, the
    // authority's etcd returns, and a new agent guards the primary.
    drop(d1);
    rt.block_on(lifeboat_region::fence::postgres::restore_login(&leader))
        .unwrap();
    rt.block_on(authority.restart(&[0]));
    rt.block_on(authority.wait_healthy(&[0]));
    // The old lease goes first (etcd extends leases over its restart): a
    // daemon that started while it lived would get none before its fence
    // deadline, and fence the server (fence_daemon.rs, (d)).
    common::poll(FENCE_BOUND, "the first agent's lease to expire", || {
        east_lease().is_none().then_some(())
    });
    let session = APP_ROLE
        .login(&rt, pg_port)
        .expect("the application logs in again after the unfence");
    let d2 = Daemon::start(&env, &east_cfg, "patroni-east-b");
    let id = guarding(&d2);
    assert!(app_role::writes(&rt, &session));

    // --- (b) the agent is SIGKILLed: its watchdog fences the leader -------
    bed.watchdog_fences(&d2, id, &session);

    // --- (c) a failover from the fenced Patroni primary is decided and done
    let d3 = bed.fails_over_to_west(&west_cfg, &west, "patroni-west");
    d3.poll(WAIT, "the automatic failover recorded", || {
        let view = env.ok_json(&[
            "--config",
            west_cfg.to_str().unwrap(),
            "--json",
            "region",
            "authority",
        ]);
        let kinds: Vec<String> = view["failovers"]
            .as_array()?
            .iter()
            .filter_map(|f| f["kind"].as_str().map(str::to_string))
            .collect();
        (kinds == ["automatic"]).then_some(())
    });
    // The promotion gave the application its LOGIN back on eu-west (the
    // NOLOGIN had replicated there), and it writes.
    // The old primary stays fenced.
    bed.app_moved_to(&d3, west_port);
    drop(d3);
    drop(node);
    drop(dcs);
}
