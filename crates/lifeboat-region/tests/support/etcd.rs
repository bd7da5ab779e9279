//! A real etcd cluster for tests: Debian's `etcd` (3.4, `/usr/bin/etcd`),
//! one or three members on free loopback ports, each with its data
//! directory in one temporary directory, fast heartbeat and election
//! timeouts (100 ms / 1000 ms). Members can be stopped (SIGKILL, reaped),
//! started again on their data, and asked who leads. Every member is killed
//! and reaped on drop. [`EtcdCluster::start_tls`] serves clients over TLS
//! only, with client certificates required (`--client-cert-auth`), from a CA
//! made by Debian's `openssl` in the temporary directory ([`TestPki`]).
//! Health is read from each member's plain-HTTP metrics listener.
//!
//! Include it with `#[path = "support/etcd.rs"] mod etcd;`.
//!
//! Without `etcd` (or `openssl` for TLS) the test fails and says to run
//! scripts/test.sh, which installs Debian's `etcd-server` and `openssl`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on a member (or the cluster) becoming healthy.
const START_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    program: PathBuf,
    token: String,
    members: Vec<Member>,
    pki: Option<TestPki>,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` and `/metrics` (`--listen-metrics-urls`).
    metrics_port: u16,
    child: Option<Child>,
}

/// PEM files of a test CA, the members' server certificate (for 127.0.0.1
/// and localhost) and a client certificate, all signed by the CA; and a
/// second CA that signed nothing here.
#[derive(Clone, Debug)]
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): run scripts/test.sh, which installs Debian's openssl")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPki {
    /// Makes the CA and certificates in `dir` with `openssl`.
    pub fn make(dir: &Path) -> TestPki {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let subj = format!("/CN=lifeboat test {ca}");
            let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
            args.extend(["-days", "2", "-subj", &subj, "-keyout", &key, "-out", &pem]);
            openssl(dir, &args);
        }
        for (name, usage) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth",
            ),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            let ext = format!("{name}.ext");
            std::fs::write(dir.join(&ext), usage).unwrap();
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            let subj = format!("/CN=lifeboat-{name}");
            let mut args = vec!["req"];
            args.extend(ec);
            args.extend(["-subj", &subj, "-keyout", &key, "-out", &csr]);
            openssl(dir, &args);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                    "-out",
                    &pem,
                ],
            );
        }
        TestPki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
        }
    }
}

/// The `etcd` binary, or a panic saying how to install it.
pub fn etcd_program() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("etcd"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "etcd is not installed: these tests run a real etcd cluster. Run scripts/test.sh (it \
             installs Debian's etcd-server), or apt-get install etcd-server"
        )
    })
}

/// `n` distinct loopback ports reserved for this process (see
/// `lifeboat_test_ports`: the other test lane cannot take them before etcd
/// binds them).
fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| lifeboat_test_ports::reserve()).collect()
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let start = s.len().saturating_sub(4000);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

impl EtcdCluster {
    /// Starts `n` members (1 or 3, say) and waits until each is healthy
    /// (has a leader and answers a quorum read).
    pub async fn start(n: usize) -> EtcdCluster {
        Self::start_with(n, false).await
    }

    /// `n` members serving clients over TLS only, client certificates
    /// required; see [`EtcdCluster::pki`].
    pub async fn start_tls(n: usize) -> EtcdCluster {
        Self::start_with(n, true).await
    }

    async fn start_with(n: usize, tls: bool) -> EtcdCluster {
        assert!(n >= 1, "an etcd cluster has at least one member");
        let program = etcd_program();
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-etcd-")
            .tempdir()
            .expect("a temporary directory");
        let token = format!(
            "lifeboat-test-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let ports = free_ports(3 * n);
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                metrics_port: ports[3 * i + 2],
                child: None,
            })
            .collect();
        let pki = tls.then(|| TestPki::make(dir.path()));
        let mut c = EtcdCluster {
            dir,
            program,
            token,
            members,
            pki,
        };
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_healthy(&(0..n).collect::<Vec<_>>()).await;
        c
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// The certificates of a cluster started with [`EtcdCluster::start_tls`].
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    pub fn client_port(&self, i: usize) -> u16 {
        self.members[i].client_port
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Where member `i` logs.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.data", self.members[i].name))
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i` (on its data directory when it has one: the
    /// `--initial-*` flags are then ignored by etcd).
    fn spawn(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} runs already");
        let log = std::fs::File::create(self.log_path(i)).expect("create the etcd log");
        let client = self.endpoint(i);
        let m = &self.members[i];
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut command = Command::new(&self.program);
        if let Some(pki) = &self.pki {
            command
                .arg(format!("--cert-file={}", pki.server_cert.display()))
                .arg(format!("--key-file={}", pki.server_key.display()))
                .arg(format!("--trusted-ca-file={}", pki.ca.display()))
                .arg("--client-cert-auth");
        }
        let child = command
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", self.data_dir(i).display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                m.metrics_port
            ))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster()))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg("--initial-cluster-state=new")
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=1000")
            // As recommended (docs/failover.md, "etcd's own timing"); 3.4's default is off.
            .arg("--pre-vote=true")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Whether member `i`'s process runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Kills the given members at once (SIGKILL to each before waiting for
    /// any, so the survivors see them go together) and reaps them.
    pub fn kill(&mut self, which: &[usize]) {
        for &i in which {
            if let Some(child) = self.members[i].child.as_mut() {
                let _ = child.kill();
            }
        }
        for &i in which {
            if let Some(mut child) = self.members[i].child.take() {
                // Reaped late on some machines: wait() blocks until it is.
                let _ = child.wait();
            }
        }
    }

    /// Stops member `i` (killed and reaped; its data stays).
    pub fn stop(&mut self, i: usize) {
        self.kill(&[i]);
    }

    /// Starts the given stopped members again on their data and waits until
    /// each is healthy.
    pub async fn restart(&mut self, which: &[usize]) {
        for &i in which {
            self.spawn(i);
        }
        self.wait_healthy(which).await;
    }

    /// Waits (bounded) until each of `which` answers `/health` with true.
    pub async fn wait_healthy(&mut self, which: &[usize]) {
        let deadline = Instant::now() + START_WAIT;
        for &i in which {
            loop {
                if let Some(child) = self.members[i].child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!(
                        "etcd member {i} exited ({status}); log:\n{}",
                        tail(&self.log_path(i))
                    );
                }
                if healthy(self.members[i].metrics_port).await {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {i} not healthy within {START_WAIT:?}; log:\n{}",
                    tail(&self.log_path(i))
                );
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// The index of the member that leads, as the running members report
    /// it (`None` when none of them knows a leader).
    pub async fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let Ok(mut client) = etcd_client::Client::connect([self.endpoint(i)], None).await
            else {
                continue;
            };
            let Ok(Ok(status)) =
                tokio::time::timeout(Duration::from_secs(2), client.status()).await
            else {
                continue;
            };
            let leader_id = status.leader();
            if leader_id == 0 {
                continue;
            }
            let Ok(Ok(members)) =
                tokio::time::timeout(Duration::from_secs(2), client.member_list()).await
            else {
                continue;
            };
            let name = members
                .members()
                .iter()
                .find(|m| m.id() == leader_id)
                .map(|m| m.name().to_string());
            if let Some(name) = name {
                return self.members.iter().position(|m| m.name == name);
            }
        }
        None
    }

    /// Waits (bounded) until the running members agree on a leader.
    pub async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(l) = self.leader().await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no etcd leader within {START_WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.kill(&all);
    }
}

/// `GET /health` answers `"health":"true"` (a raw request: the test's own
/// check, not the code under test).
async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.starts_with("HTTP/1.1 200") && text.contains("\"health\":\"true\"")
}
