//! Redis replication state against real redis-server processes (Debian's
//! `redis-server`, installed by scripts/test.sh): a primary and a replica
//! (`replicaof`) on free loopback ports, each in its own temporary
//! directory, both with a password (in their config files, never on a
//! command line).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_postgres::Secret;
use lifeboat_region::redis::{
    LinkStatus, RedisEndpoint, RedisError, ReplicationInfo, Role, info_replication, offset_lag,
};

const PASSWORD: &str = "test-redis-pw-5f1c9e";
const TIMEOUT: Duration = Duration::from_secs(5);

fn redis_server() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("redis-server not found on PATH or in /usr/bin: run scripts/test.sh, which installs Debian's redis-server")
    })
}

/// A loopback port no other test process is handed while this one lives.
use lifeboat_test_ports::reserve as free_port;

/// A redis-server child, killed when dropped.
struct Instance {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Instance {
    fn start(dir: &Path, extra: &str) -> Instance {
        let port = free_port();
        let log = dir.join("redis.log");
        let conf = dir.join("redis.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\nsave \"\"\nappendonly no\ndaemonize no\n\
             requirepass {PASSWORD}\n{extra}",
            dir.display(),
            log.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(redis_server())
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        Instance {
            child: Some(child),
            port,
            log,
        }
    }

    fn endpoint(&self, password: Option<&str>) -> RedisEndpoint {
        RedisEndpoint {
            host: "127.0.0.1".into(),
            port: self.port,
            username: None,
            password: password.map(Secret::new),
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `endpoint` until `done` holds (at most 60 s; a bound, not a timing).
async fn wait_until(
    what: &str,
    endpoint: &RedisEndpoint,
    logs: &[&Instance],
    done: impl Fn(&ReplicationInfo) -> bool,
) -> ReplicationInfo {
    let start = Instant::now();
    loop {
        let seen = info_replication(endpoint, TIMEOUT).await;
        if let Ok(info) = &seen
            && done(info)
        {
            return info.clone();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let logs: Vec<String> = logs.iter().map(|i| i.log()).collect();
            panic!(
                "{what}: not within 60 s; last seen {seen:?}\nlogs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn primary_and_replica_report_their_replication_and_the_link_going_down() {
    let (pdir, rdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut primary = Instance::start(pdir.path(), "");
    let p_ep = primary.endpoint(Some(PASSWORD));
    wait_until("primary up", &p_ep, &[&primary], |_| true).await;
    let replica = Instance::start(
        rdir.path(),
        &format!(
            "replicaof 127.0.0.1 {}\nmasterauth {PASSWORD}\n",
            primary.port
        ),
    );
    let r_ep = replica.endpoint(Some(PASSWORD));

    let r = wait_until("replica link up", &r_ep, &[&primary, &replica], |i| {
        i.master_link_status == Some(LinkStatus::Up)
    })
    .await;
    assert_eq!(r.role, Role::Replica);
    assert_eq!(r.master_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.master_port, Some(primary.port));

    // Writes move the offsets; the replica catches up.
    {
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            "127.0.0.1".into(),
            primary.port,
        ))
        .unwrap()
        .set_redis_settings(redis::RedisConnectionInfo::default().set_password(PASSWORD));
        let mut conn = redis::Client::open(info)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for i in 0..100 {
            let () = redis::cmd("SET")
                .arg(format!("key{i}"))
                .arg("x".repeat(100))
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    let p = wait_until(
        "primary sees the replica online",
        &p_ep,
        &[&primary, &replica],
        |i| {
            i.master_repl_offset > 10_000 && i.replicas.first().is_some_and(|r| r.state == "online")
        },
    )
    .await;
    assert_eq!(p.role, Role::Primary);
    assert_eq!(p.connected_replicas, 1);
    assert_eq!(p.replicas.len(), 1);
    assert_eq!(
        (p.replicas[0].ip.as_str(), p.replicas[0].port),
        ("127.0.0.1", replica.port)
    );
    let target = p.master_repl_offset;
    let r = wait_until("replica caught up", &r_ep, &[&primary, &replica], |i| {
        i.replica_repl_offset.is_some_and(|o| o >= target)
    })
    .await;
    assert_eq!(r.master_replid, p.master_replid);
    assert_eq!(offset_lag(&p, &r), Some(0));
    assert!(
        r.describe()
            .starts_with(&format!("replica of 127.0.0.1:{}, link up", primary.port)),
        "{}",
        r.describe()
    );

    // A wrong password and none at all are refused credentials, and the
    // message does not carry what was sent.
    for pw in [Some("not-the-password-123"), None] {
        match info_replication(&primary.endpoint(pw), TIMEOUT).await {
            Err(e @ RedisError::Auth { .. }) => {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains("not-the-password-123"), "{shown}");
                assert!(!shown.contains(PASSWORD), "{shown}");
            }
            other => panic!("password {pw:?}: expected an authentication error, got {other:?}"),
        }
    }

    // The primary stops: the replica reports the link down.
    primary.stop();
    let r = wait_until("replica link down", &r_ep, &[&replica], |i| {
        i.master_link_status == Some(LinkStatus::Down)
    })
    .await;
    assert_eq!(r.role, Role::Replica);
    assert!(r.describe().contains("link down"), "{}", r.describe());
    // And the primary is unreachable, after the retries.
    match info_replication(&p_ep, TIMEOUT).await {
        Err(RedisError::Unreachable { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected unreachable, got {other:?}"),
    }
}
