//! An etcd cluster across sites: one member per named site (Debian's
//! `/usr/bin/etcd`, 3.4), client URL `http://<site addr>:2379` (and
//! `127.0.0.1:2379` inside the site), peer URL `http://<site addr>:2380`.
//!
//! Timing: etcd's rule of thumb is a heartbeat interval of about the round
//! trip between members and an election timeout of about ten heartbeats.
//! Round trips here are the sum of the two sites' injected delays
//! ([`crate::Bed::set_latency`]). [`EtcdOptions::for_rtt`] applies the rule;
//! the tests run 100 ms/1 s with no latency and with 100 ms on one site
//! (round trips of 100 ms to it), and 150 ms/1.5 s suits the seed's 50–150 ms
//! between regions.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procs::SiteProcess;
use crate::{Bed, BedError, Site};

/// Member settings.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// `--heartbeat-interval` (etcd's default 100 ms).
    pub heartbeat: Duration,
    /// `--election-timeout` (etcd's default 1 s).
    pub election: Duration,
    pub client_port: u16,
    pub peer_port: u16,
    /// How long [`Bed::etcd`] waits for every member to report healthy.
    pub start_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            client_port: 2379,
            peer_port: 2380,
            start_timeout: Duration::from_secs(60),
        }
    }
}

impl EtcdOptions {
    /// Heartbeat = the largest round trip between members (at least 100 ms),
    /// election timeout = 10 heartbeats.
    pub fn for_rtt(rtt: Duration) -> Self {
        let heartbeat = rtt.max(Duration::from_millis(100));
        EtcdOptions {
            heartbeat,
            election: heartbeat * 10,
            ..Default::default()
        }
    }
}

/// One member.
pub struct EtcdMember {
    site: Site,
    argv: Vec<String>,
    log: std::path::PathBuf,
    process: Option<SiteProcess>,
    client_url: String,
}

impl EtcdMember {
    pub fn site(&self) -> &Site {
        &self.site
    }
    pub fn client_url(&self) -> &str {
        &self.client_url
    }
    pub fn process(&self) -> Option<&SiteProcess> {
        self.process.as_ref()
    }
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p.is_running())
    }
    fn start(&mut self) -> Result<(), BedError> {
        let p = self
            .site
            .spawn(&format!("etcd {}", self.site.name()), &self.argv, &self.log)?;
        self.process = Some(p);
        Ok(())
    }
}

/// The cluster: its members, in the order of the sites given.
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    opts: EtcdOptions,
}

impl Bed {
    /// Starts one etcd member in each of `sites` and waits until every one
    /// answers `/health` with `true` (a leader is elected), asked from inside
    /// its own site.
    pub async fn etcd(&self, sites: &[&str], opts: EtcdOptions) -> Result<EtcdCluster, BedError> {
        let etcd = crate::cmd::require("etcd", "etcd-server")?;
        let sites: Vec<Site> = sites
            .iter()
            .map(|s| self.find_site(s).cloned())
            .collect::<Result<_, _>>()?;
        let peer = |s: &Site| format!("http://{}:{}", s.addr(), opts.peer_port);
        let initial = sites
            .iter()
            .map(|s| format!("{}={}", s.name(), peer(s)))
            .collect::<Vec<_>>()
            .join(",");
        if let Some(s) = sites.iter().find(|s| s.dir().join("etcd").exists()) {
            return Err(BedError::Etcd(format!(
                "site {} already has an etcd member (one cluster per bed); restart it with EtcdCluster::restart",
                s.name()
            )));
        }
        let mut members = Vec::new();
        for s in &sites {
            let client_url = format!("http://{}:{}", s.addr(), opts.client_port);
            let listen = format!("{client_url},http://127.0.0.1:{}", opts.client_port);
            let argv = vec![
                etcd.display().to_string(),
                format!("--name={}", s.name()),
                format!("--data-dir={}", s.dir().join("etcd").display()),
                format!("--listen-client-urls={listen}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={}", peer(s)),
                format!("--initial-advertise-peer-urls={}", peer(s)),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token={}etcd", self.prefix()),
                format!("--heartbeat-interval={}", opts.heartbeat.as_millis()),
                format!("--election-timeout={}", opts.election.as_millis()),
                // etcd 3.4's default is off (3.5 turns it on): without it a
                // member cut off by a partition keeps raising its term and,
                // once healed, deposes the working leader; the election
                // that follows left the cluster without a leader for 4 s,
                // past a fast-profile primary's fence deadline (found by
                // the fault suite; docs/failover.md, "etcd's own timing").
                "--pre-vote=true".into(),
                "--logger=zap".into(),
                "--log-level=warn".into(),
            ];
            let mut m = EtcdMember {
                site: s.clone(),
                argv,
                log: s.dir().join("etcd.log"),
                process: None,
                client_url,
            };
            m.start()?;
            members.push(m);
        }
        let cluster = EtcdCluster { members, opts };
        cluster.wait_healthy(cluster.opts.start_timeout).await?;
        Ok(cluster)
    }
}

impl EtcdCluster {
    pub fn members(&self) -> &[EtcdMember] {
        &self.members
    }
    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }
    /// The member in `site`.
    pub fn member(&self, site: &str) -> Result<&EtcdMember, BedError> {
        self.members
            .iter()
            .find(|m| m.site.name() == site)
            .ok_or_else(|| BedError::NoSuchSite(site.to_string()))
    }
    /// Starts the member of `site` again (after its site was killed): it
    /// rejoins with the data it has.
    pub fn restart(&mut self, site: &str) -> Result<(), BedError> {
        let m = self
            .members
            .iter_mut()
            .find(|m| m.site.name() == site)
            .ok_or_else(|| BedError::NoSuchSite(site.to_string()))?;
        if !m.is_running() {
            m.start()?;
        }
        Ok(())
    }

    /// Waits until every running member reports healthy.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), BedError> {
        let deadline = Instant::now() + timeout;
        for m in self.members.iter().filter(|m| m.is_running()) {
            loop {
                let last = health(&m.site, m.site.addr(), self.opts.client_port).await;
                if matches!(last, Ok(true)) {
                    break;
                }
                if !m.is_running() {
                    return Err(BedError::Etcd(format!(
                        "the member in {} exited; its log is {}",
                        m.site.name(),
                        m.log.display()
                    )));
                }
                if Instant::now() > deadline {
                    return Err(BedError::Timeout {
                        what: format!("etcd member in {} reporting healthy", m.site.name()),
                        secs: timeout.as_secs(),
                        detail: format!("; last answer {last:?}; its log is {}", m.log.display()),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// `GET /health` from inside `site`: whether the member says `"health":"true"`.
async fn health(site: &Site, addr: std::net::Ipv4Addr, port: u16) -> Result<bool, BedError> {
    let body = site
        .run(move || async move {
            let get = async {
                let mut s = tokio::net::TcpStream::connect((addr, port)).await?;
                s.write_all(format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
                    .await?;
                let mut out = String::new();
                s.read_to_string(&mut out).await?;
                Ok::<_, std::io::Error>(out)
            };
            tokio::time::timeout(Duration::from_secs(3), get).await
        })
        .await?;
    match body {
        Ok(Ok(text)) => Ok(text.replace(' ', "").contains("\"health\":\"true\"")),
        Ok(Err(e)) => Err(BedError::Io {
            what: "asking etcd /health".into(),
            source: e,
        }),
        Err(_) => Ok(false),
    }
}
