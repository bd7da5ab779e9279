//! Patroni's `standby_cluster` against real components: Debian's Patroni
//! 3.0.2 (`/usr/bin/patroni`, run as the `postgres` user) with Debian's etcd
//! 3.4 (`etcd`, the v3 API) as its DCS, and a PostgreSQL 15 primary
//! ([`TempCluster`]); everything on loopback ports in temporary directories,
//! stopped on drop. Without `patroni` or `etcd` the test fails and says to run
//! scripts/test.sh (which installs Debian's `patroni` and `etcd-server`).
//!
//! What this proves, and what it does not: Patroni 3.0 does not re-clone a
//! running cluster's data when `standby_cluster` is set through `/config`
//! (its leader is restarted following the primary; with another system
//! identifier PostgreSQL refuses to stream), so the standby region's Patroni
//! cluster is bootstrapped from the primary with `bootstrap.dcs.standby_cluster`
//! (streaming without a slot), and Lifeboat's settings are then applied to the
//! running standby cluster through `PATCH /config`: they move it onto the
//! primary's replication slot, which the primary's `pg_replication_slots` and
//! `pg_stat_replication` show. A regular Patroni cluster (own `initdb`) is
//! refused by the system-identifier check before any `PATCH`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_postgres::{ClusterOptions, ConnConfig, PgHost, Secret, TempCluster};
use lifeboat_region::managers::patroni::{
    BasicAuth, NodeRole, PatroniApi, PatroniError, Retry, StandbyState, check_same_system,
    primary_walsenders, standby_cluster_settings, standby_state, wait_streaming,
};
use serde_json::{Value, json};

const PATRONI: &str = "/usr/bin/patroni";
const SLOT: &str = "lifeboat_eu_west";
const WAIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);

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

/// A loopback port no other test process is handed while this one lives.
use lifeboat_test_ports::reserve as free_port;

fn random_hex() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
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

// --- etcd ------------------------------------------------------------------------

// One member of tests/support/etcd.rs (shared with tests/authority.rs).
use crate::etcd;
use etcd::EtcdCluster as Etcd;

// --- Patroni -------------------------------------------------------------------------

struct Patroni {
    child: Child,
    dir: tempfile::TempDir,
    api_port: u16,
    pg_port: u16,
    name: String,
    api_user: String,
    api_password: Secret,
    superuser: String,
    su_password: Secret,
    replication: (String, Secret),
}

impl Patroni {
    /// Starts one Patroni node of cluster `scope`. `standby_of` = the primary's
    /// port: bootstrap as a standby cluster of it (`bootstrap.dcs.standby_cluster`,
    /// no slot); `None`: a regular cluster from Patroni's own `initdb`.
    fn start(
        etcd: &Etcd,
        scope: &str,
        name: &str,
        standby_of: Option<(u16, &str, &Secret)>,
    ) -> Patroni {
        let patroni = need(PATRONI);
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-patroni-")
            .tempdir()
            .unwrap();
        chown_postgres(dir.path());
        let (api_port, pg_port) = (free_port(), free_port());
        let api_password = Secret::new(random_hex());
        let (superuser, su_password, replication) = match standby_of {
            // A standby's roles are the primary's (its data is a copy).
            Some((_, user, pw)) => (user.to_string(), pw.clone(), (user.to_string(), pw.clone())),
            None => (
                "lifeboat".to_string(),
                Secret::new(random_hex()),
                ("replicator".to_string(), Secret::new(random_hex())),
            ),
        };
        let mut dcs = json!({"ttl": 20, "loop_wait": 1, "retry_timeout": 5});
        if let Some((port, _, _)) = standby_of {
            dcs["standby_cluster"] = json!({"host": "127.0.0.1", "port": port,
                "create_replica_methods": ["basebackup"]});
        }
        let d = dir.path().display().to_string();
        let config = json!({
            "scope": scope,
            "name": name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": format!("127.0.0.1:{api_port}"),
                "connect_address": format!("127.0.0.1:{api_port}"),
                "authentication": {"username": "lifeboat-api", "password": api_password.expose()},
            },
            "etcd3": {"hosts": [format!("127.0.0.1:{}", etcd.client_port(0))]},
            "bootstrap": {
                "dcs": dcs,
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "scram-sha-256"}],
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
                    "superuser": {"username": superuser, "password": su_password.expose()},
                    "replication": {"username": &replication.0, "password": replication.1.expose()},
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
        Patroni {
            child,
            dir,
            api_port,
            pg_port,
            name: name.to_string(),
            api_user: "lifeboat-api".into(),
            api_password,
            superuser,
            su_password,
            replication,
        }
    }

    fn api(&self) -> PatroniApi {
        PatroniApi::new(
            &format!("http://127.0.0.1:{}", self.api_port),
            Some(BasicAuth {
                username: self.api_user.clone(),
                password: self.api_password.clone(),
            }),
        )
        .unwrap()
        .with_retry(Retry {
            attempts: 4,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        })
    }

    fn log(&self) -> String {
        tail(&self.dir.path().join("patroni.log"))
    }

    fn pg(&self, db: &str) -> ConnConfig {
        ConnConfig::new(
            PgHost::Tcp("127.0.0.1".into()),
            self.pg_port,
            &self.superuser,
            db,
        )
        .with_password(self.su_password.clone())
    }

    /// Raw GET of the REST API (to capture what Patroni answers).
    async fn raw(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.api_port))
            .await
            .unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or(text)
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

async fn one_text(c: &tokio_postgres::Client, sql: &str) -> Option<String> {
    c.query_opt(sql, &[])
        .await
        .unwrap()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_cluster_applied_through_patch_config_streams_through_the_slot() {
    let _alone = crate::alone::alone(module_path!());
    need(PATRONI);
    let etcd = Etcd::start(1).await;
    let primary =
        tokio::task::spawn_blocking(|| TempCluster::start_with(ClusterOptions::default()))
            .await
            .unwrap()
            .expect("start the primary");
    let pc = primary.conn_config("postgres").connect().await.unwrap();
    pc.batch_execute(&format!(
        "SELECT pg_create_physical_replication_slot('{SLOT}'); \
         CREATE TABLE facts (k text PRIMARY KEY, v text); \
         INSERT INTO facts VALUES ('before', 'seeded');"
    ))
    .await
    .unwrap();
    let primary_sysid = one_text(
        &pc,
        "SELECT system_identifier::text FROM pg_control_system()",
    )
    .await
    .unwrap();

    // The standby region's Patroni cluster, bootstrapped from the primary.
    let node = Patroni::start(
        &etcd,
        "lifeboat-eu-west",
        "eu-west-1",
        Some((primary.port(), primary.superuser(), primary.password())),
    );
    let api = node.api();
    let first = wait_streaming(&api, &pc, None, WAIT, POLL).await;
    let first = first.unwrap_or_else(|e| {
        panic!(
            "the bootstrapped standby cluster does not stream: {e}\nPatroni log:\n{}\nprimary log:\n{}",
            node.log(),
            primary.log_tail()
        )
    });
    assert_eq!(first.standby_leader, node.name);
    assert_eq!(
        first.walsender.slot_name, None,
        "bootstrapped without a slot"
    );
    let slot_active = || async {
        one_text(
            &pc,
            &format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'"),
        )
        .await
    };
    assert_eq!(slot_active().await.as_deref(), Some("false"));

    // What Patroni 3.0.2 answers (captured for the parser's unit tests).
    eprintln!("GET /cluster: {}", node.raw("/cluster").await);
    eprintln!("GET /patroni: {}", node.raw("/patroni").await);
    eprintln!("GET /config: {}", node.raw("/config").await);

    // The read side: the node's own status and the safety check.
    let status = api.node_status().await.unwrap();
    assert_eq!(status.role, NodeRole::StandbyLeader, "{status:?}");
    assert_eq!(status.state, "running");
    assert!(status.received_lsn.is_some(), "{status:?}");
    let sysid = status
        .system_identifier
        .clone()
        .expect("Patroni reports the system identifier");
    check_same_system(&sysid, &primary_sysid).expect("the standby holds the primary's database");

    // Wrong REST API credentials: refused, and the password is in no error.
    let wrong = PatroniApi::new(
        &format!("http://127.0.0.1:{}", node.api_port),
        Some(BasicAuth {
            username: "lifeboat-api".into(),
            password: Secret::new("not-the-password-xyz"),
        }),
    )
    .unwrap();
    let settings = standby_cluster_settings("127.0.0.1", primary.port(), Some(SLOT)).unwrap();
    match wrong.apply_standby_cluster(&settings).await {
        Err(e @ PatroniError::Denied { status: 401, .. }) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains("not-the-password-xyz"), "{text}");
        }
        other => panic!("expected 401 Denied, got {other:?}"),
    }
    assert_eq!(
        slot_active().await.as_deref(),
        Some("false"),
        "a refused PATCH changed nothing"
    );

    // Lifeboat's settings through PATCH /config on the running standby cluster.
    eprintln!("{}", settings.render());
    let config = api.apply_standby_cluster(&settings).await.unwrap();
    assert_eq!(config["standby_cluster"]["primary_slot_name"], json!(SLOT));
    let evidence = wait_streaming(&api, &pc, Some(SLOT), WAIT, POLL)
        .await
        .unwrap_or_else(|e| panic!("{e}\nPatroni log:\n{}", node.log()));
    assert_eq!(evidence.standby_leader, node.name);
    assert_eq!(evidence.walsender.state, "streaming");
    assert_eq!(evidence.walsender.slot_name.as_deref(), Some(SLOT));
    assert_eq!(slot_active().await.as_deref(), Some("true"));
    let senders = primary_walsenders(&pc, "eu-west-1").await.unwrap();
    assert_eq!(senders.len(), 1, "{senders:?}");

    // Idempotent: the same settings again change nothing and still hold.
    let again = api.apply_standby_cluster(&settings).await.unwrap();
    assert_eq!(again["standby_cluster"], config["standby_cluster"]);
    assert!(matches!(
        standby_state(&api.cluster().await.unwrap()),
        StandbyState::Running { .. }
    ));

    // Data written on the primary now arrives on the standby leader.
    pc.execute("INSERT INTO facts VALUES ('after', 'streamed')", &[])
        .await
        .unwrap();
    let sc = node.pg("postgres").connect().await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let got = one_text(&sc, "SELECT v FROM facts WHERE k = 'after'").await;
        if got.as_deref() == Some("streamed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the row never arrived on the standby"
        );
        tokio::time::sleep(POLL).await;
    }
    let in_recovery = one_text(&sc, "SELECT pg_is_in_recovery()::text").await;
    assert_eq!(in_recovery.as_deref(), Some("true"));
    drop(sc);
    drop(node);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_patroni_cluster_with_its_own_initdb_is_refused_before_any_patch() {
    let _alone = crate::alone::alone(module_path!());
    need(PATRONI);
    let etcd = Etcd::start(1).await;
    let primary = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .unwrap()
        .expect("start the primary");
    let pc = primary.conn_config("postgres").connect().await.unwrap();
    let primary_sysid = one_text(
        &pc,
        "SELECT system_identifier::text FROM pg_control_system()",
    )
    .await
    .unwrap();
    let node = Patroni::start(&etcd, "lifeboat-other", "other-1", None);
    let api = node.api();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match api.node_status().await {
            Ok(s) if s.role == NodeRole::Primary && s.state == "running" => break s,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the regular Patroni cluster never became primary: {other:?}\n{}",
                    node.log()
                );
                tokio::time::sleep(POLL).await;
            }
        }
    };
    eprintln!(
        "GET /patroni (regular leader): {}",
        node.raw("/patroni").await
    );
    eprintln!("GET /cluster (regular): {}", node.raw("/cluster").await);
    // `/patroni` says "master" a moment before the leader key is in etcd
    // (`cluster_unlocked: true`, and `/cluster` still lists a replica): wait
    // for the DCS view too, bounded.
    loop {
        let state = standby_state(&api.cluster().await.unwrap());
        if matches!(state, StandbyState::RegularLeader { .. }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the regular Patroni cluster never showed a leader in /cluster: {state:?}\n{}",
            node.log()
        );
        tokio::time::sleep(POLL).await;
    }
    // `/patroni` may leave out `database_system_identifier` in its first
    // answers after the bootstrap: read it until it is there, bounded.
    let mut status = status;
    let sysid = loop {
        if let Some(id) = status.system_identifier.clone() {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "/patroni never reported database_system_identifier: {status:?}\n{}",
            node.log()
        );
        tokio::time::sleep(POLL).await;
        status = api.node_status().await.unwrap();
    };
    let refusal = check_same_system(&sysid, &primary_sysid).unwrap_err();
    assert!(refusal.contains(&sysid), "{refusal}");
    // Nothing was patched: the cluster is still a regular one.
    let config: Value = api.config().await.unwrap();
    assert!(config.get("standby_cluster").is_none(), "{config}");
}

/// Why the check above exists, shown on the real thing: `standby_cluster`
/// PATCHed onto a running regular cluster (what Lifeboat refuses to do) makes
/// Patroni demote its leader to a `standby_leader` following the primary, but
/// it keeps its own data (no re-clone: the system identifier stays), and
/// PostgreSQL's walreceiver refuses the primary's different system
/// identifier, so nothing streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patching_a_regular_cluster_demotes_it_without_recloning_and_it_never_streams() {
    let _alone = crate::alone::alone(module_path!());
    need(PATRONI);
    let etcd = Etcd::start(1).await;
    let primary = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .unwrap()
        .expect("start the primary");
    let pc = primary.conn_config("postgres").connect().await.unwrap();
    let node = Patroni::start(&etcd, "lifeboat-converted", "converted-1", None);
    // The primary knows the converted cluster's replication role, so the
    // refusal seen below is the system identifier's, not authentication's.
    pc.batch_execute(&format!(
        "CREATE ROLE {} REPLICATION LOGIN PASSWORD '{}'",
        node.replication.0,
        node.replication.1.expose()
    ))
    .await
    .unwrap();
    let api = node.api();
    let deadline = Instant::now() + WAIT;
    // Patroni reports `database_system_identifier` a moment after the
    // server runs: wait for it, as after the demotion below.
    let before = loop {
        match api.node_status().await {
            Ok(s)
                if s.role == NodeRole::Primary
                    && s.state == "running"
                    && s.system_identifier.is_some() =>
            {
                break s;
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "never primary: {other:?}\n{}",
                    node.log()
                );
                tokio::time::sleep(POLL).await;
            }
        }
    };
    let settings = standby_cluster_settings("127.0.0.1", primary.port(), None).unwrap();
    api.apply_standby_cluster(&settings).await.unwrap();
    // Patroni demotes the leader and restarts it as the standby leader.
    let deadline = Instant::now() + WAIT;
    loop {
        let view = api.cluster().await.unwrap();
        let status = api.node_status().await.unwrap();
        // Patroni reports `database_system_identifier` only once it has read
        // it again after the restart: wait for it rather than compare a gap.
        if matches!(standby_state(&view), StandbyState::Running { .. })
            && status.role == NodeRole::StandbyLeader
            && status.system_identifier.is_some()
        {
            assert_eq!(
                status.system_identifier, before.system_identifier,
                "re-cloned?"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never became the standby leader:\n{}",
            node.log()
        );
        tokio::time::sleep(POLL).await;
    }
    // The walreceiver is refused; Lifeboat's check reports it as not streaming.
    let deadline = Instant::now() + WAIT;
    while !node.log().contains("database system identifier differs") {
        assert!(
            Instant::now() < deadline,
            "no identifier refusal in the log:\n{}",
            node.log()
        );
        tokio::time::sleep(POLL).await;
    }
    match wait_streaming(&api, &pc, None, Duration::from_secs(5), POLL).await {
        Err(PatroniError::NotStreaming { last, .. }) => {
            assert!(last.contains("converted-1"), "{last}")
        }
        other => panic!("expected NotStreaming, got {other:?}"),
    }
    assert!(
        primary_walsenders(&pc, "converted-1")
            .await
            .unwrap()
            .is_empty(),
        "the primary streams to a cluster holding another database?"
    );
}
