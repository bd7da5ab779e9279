//! Faults: a site killed whole, a site cut off from the others, two sites
//! cut off from each other.

use crate::cmd::{argv, run};
use crate::procs::Kill;
use crate::{Bed, BedError, Site};

impl Bed {
    /// SIGKILL to every process in the site's namespace (whoever started
    /// it), repeated until none is left, then waits (bounded) until every one
    /// is reaped; returns their PIDs. The site's network (its latency
    /// included, which lives in the core) stays; processes can be started in
    /// it again.
    pub async fn kill_site(&self, site: &str) -> Result<Vec<u32>, BedError> {
        let s = self.find_site(site)?;
        let ns = vec![s.netns().to_string()];
        Kill::new(format!("site {site}"), &ns, &self.shared.registry)
            .run()
            .await
    }

    /// Cuts the site off: its bridge port in the core goes down, so it
    /// exchanges no packet with any other site (it keeps running, and
    /// reaches itself). Connections to and from it time out or fail with
    /// "no route to host".
    pub async fn partition(&self, site: &str) -> Result<(), BedError> {
        self.set_port(site, "down").await
    }

    /// Undoes [`Bed::partition`].
    pub async fn heal(&self, site: &str) -> Result<(), BedError> {
        self.set_port(site, "up").await
    }

    async fn set_port(&self, site: &str, state: &str) -> Result<(), BedError> {
        let s = self.find_site(site)?;
        run(&argv([
            self.shared.ip.as_str(),
            "-n",
            &self.core,
            "link",
            "set",
            &s.inner.core_port,
            state,
        ]))
        .await
        .map(|_| ())
    }

    /// Cuts `a` and `b` off from each other only: each drops what arrives
    /// from the other (iptables `INPUT` DROP in both namespaces), so packets
    /// vanish silently as in a real partition.
    pub async fn partition_between(&self, a: &str, b: &str) -> Result<(), BedError> {
        self.between(a, b, "-I").await
    }

    /// Undoes [`Bed::partition_between`].
    pub async fn heal_between(&self, a: &str, b: &str) -> Result<(), BedError> {
        self.between(a, b, "-D").await
    }

    /// Cuts the site off from one TCP port everywhere, its own address
    /// included: what it sends there is dropped (iptables `OUTPUT` DROP in
    /// its namespace), so its connections to that port time out while all
    /// other traffic flows (e.g. a region cut off from etcd's client port
    /// alone, still reaching the other sites' daemons).
    pub async fn cut_port(&self, site: &str, port: u16) -> Result<(), BedError> {
        self.port_rule(site, port, "-I").await
    }

    /// Undoes [`Bed::cut_port`].
    pub async fn heal_port(&self, site: &str, port: u16) -> Result<(), BedError> {
        self.port_rule(site, port, "-D").await
    }

    async fn port_rule(&self, site: &str, port: u16, op: &str) -> Result<(), BedError> {
        let s = self.find_site(site)?;
        let port = port.to_string();
        iptables(
            s,
            &[
                "-w", op, "OUTPUT", "-p", "tcp", "--dport", &port, "-j", "DROP",
            ],
        )
        .await
        .map(|_| ())
    }

    async fn between(&self, a: &str, b: &str, op: &str) -> Result<(), BedError> {
        let (sa, sb) = (self.find_site(a)?, self.find_site(b)?);
        for (here, there) in [(sa, sb), (sb, sa)] {
            let from = there.addr().to_string();
            iptables(here, &["-w", op, "INPUT", "-s", &from, "-j", "DROP"]).await?;
        }
        Ok(())
    }
}

/// `iptables args…` inside the site's namespace.
pub(crate) async fn iptables<S: AsRef<str>>(site: &Site, args: &[S]) -> Result<String, BedError> {
    let ipt = crate::cmd::iptables()?;
    let mut a = argv([
        site.inner.shared.ip.as_str(),
        "netns",
        "exec",
        site.netns(),
        &ipt,
    ]);
    a.extend(args.iter().map(|s| s.as_ref().to_string()));
    run(&a).await
}
