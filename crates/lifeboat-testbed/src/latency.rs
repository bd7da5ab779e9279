//! Latency on the packets a site sends to the others.
//!
//! Two mechanisms, chosen by trying (the first [`Bed::set_latency`] of a bed):
//! - `tc netem` on the site's `eth0` where the kernel has `sch_netem`;
//! - otherwise (this kind of machine: "qdisc kind is unknown"), user space:
//!   in the core namespace, bridged packets go through iptables
//!   (`net.bridge.bridge-nf-call-iptables=1` there), and a `FORWARD` rule
//!   sends every packet that entered the bridge from the site's port
//!   (`-m physdev --physdev-in p<i>`) to an NFQUEUE; the bed's
//!   `lifeboat-netdelay` program, started in the core *before* the rule,
//!   holds each packet for the delay and then accepts it, in order. The rule
//!   has no `--queue-bypass`: without the program the site's packets are
//!   dropped, never let through undelayed.
//!
//! Why in the core and not on the site's own `OUTPUT`: a packet queued in the
//! sending namespace still belongs to its socket, and TCP's small-queue limit
//! (TSQ) then holds back the socket's next packets until the queued ones are
//! released, which made a 4 MB transfer take minutes at 100 ms; once the
//! packet has crossed the veth into the core, it no longer counts against
//! the socket (netem avoids the same trap by orphaning what it holds).
//!
//! Only the sending site's packets are delayed, so a round trip between a
//! delayed site and an undelayed one takes at least the delay, and between
//! two delayed sites the sum of both.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::time::{Duration, Instant};

use crate::cmd::{argv, run, which};
use crate::faults::iptables;
use crate::procs::SiteProcess;
use crate::site::SITE_IF;
use crate::{Bed, BedError, Site};

/// Which mechanism delays a bed's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyMechanism {
    /// The kernel's `tc qdisc … netem delay`.
    Netem,
    /// iptables NFQUEUE and the `lifeboat-netdelay` program (user space).
    Nfqueue,
}

impl std::fmt::Display for LatencyMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LatencyMechanism::Netem => "tc netem (kernel)",
            LatencyMechanism::Nfqueue => "iptables NFQUEUE + lifeboat-netdelay (user space)",
        })
    }
}

/// One running delay program.
struct Delayer {
    queue: u16,
    // Kept so its handle lives as long as the delay; the registry owns the process.
    _proc: SiteProcess,
    /// Closing it tells the program to release what it holds and exit.
    stdin: ChildStdin,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) mechanism: Option<LatencyMechanism>,
    delays: HashMap<String, Delayer>,
    next_queue: u16,
    bridge_nf: bool,
}

/// Counters of one NFQUEUE in a site (`/proc/net/netfilter/nfnetlink_queue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: u16,
    /// Packets waiting for a verdict now (held by the program).
    pub waiting: u64,
    /// Packets dropped because the queue was full.
    pub queue_dropped: u64,
    /// Packets dropped because the program's socket buffer was full.
    pub user_dropped: u64,
    /// Packets queued since the queue was bound.
    pub queued_total: u64,
}

fn parse_queue_stats(text: &str) -> Vec<QueueStats> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() >= 8).then(|| QueueStats {
                queue: f[0] as u16,
                waiting: f[2],
                queue_dropped: f[5],
                user_dropped: f[6],
                queued_total: f[7],
            })
        })
        .collect()
}

impl Bed {
    /// Delays every packet `site` sends to the other sites by `delay`
    /// (`Duration::ZERO` removes the delay); returns the mechanism used.
    /// Changing a delay starts a new delay program on a new queue and
    /// switches the rule to it in one step (packets held by the old one are
    /// still released at their old time).
    pub async fn set_latency(
        &self,
        site: &str,
        delay: Duration,
    ) -> Result<LatencyMechanism, BedError> {
        let s = self.find_site(site)?.clone();
        let mut st = self.latency.lock().await;
        if st.mechanism != Some(LatencyMechanism::Nfqueue) {
            match netem(&s, delay).await {
                Ok(()) => {
                    st.mechanism = Some(LatencyMechanism::Netem);
                    return Ok(LatencyMechanism::Netem);
                }
                Err(e) if st.mechanism.is_none() && no_netem(&e) => {
                    st.mechanism = Some(LatencyMechanism::Nfqueue);
                }
                Err(e) => return Err(e),
            }
        }
        self.nfqueue_delay(&s, delay, &mut st).await?;
        Ok(LatencyMechanism::Nfqueue)
    }

    /// The counters of the NFQUEUE that delays `site`'s packets (`None`
    /// unless the user-space delay runs for it): how tests show that no
    /// packet was dropped.
    pub async fn queue_stats(&self, site: &str) -> Result<Option<QueueStats>, BedError> {
        self.find_site(site)?;
        let Some(queue) = self.latency.lock().await.delays.get(site).map(|d| d.queue) else {
            return Ok(None);
        };
        // /proc/thread-self: this thread's namespace (/proc/self is the process's).
        let text = self.core_site.in_netns(|| {
            std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue")
        })?;
        Ok(text
            .map(|t| parse_queue_stats(&t))
            .unwrap_or_default()
            .into_iter()
            .find(|q| q.queue == queue))
    }

    /// Lets the core's iptables see bridged packets (once per bed).
    fn bridge_netfilter(&self, st: &mut State) -> Result<(), BedError> {
        if st.bridge_nf {
            return Ok(());
        }
        let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
        self.core_site
            .in_netns(|| std::fs::write(path, b"1"))?
            .map_err(BedError::io(format!(
                "enabling {path} in the core namespace (the kernel needs br_netfilter)"
            )))?;
        st.bridge_nf = true;
        Ok(())
    }

    async fn nfqueue_delay(
        &self,
        s: &Site,
        delay: Duration,
        st: &mut State,
    ) -> Result<(), BedError> {
        let bin = self.netdelay_path()?;
        crate::cmd::iptables()?;
        self.bridge_netfilter(st)?;
        let core = &self.core_site;
        let port = s.inner.core_port.as_str();
        // The old program stays in `st` until its successor is in place, so a
        // failure here leaves the old delay working.
        let old = if delay.is_zero() {
            st.delays.remove(s.name())
        } else {
            st.next_queue += 1;
            let queue = st.next_queue;
            let ready = core.dir().join(format!("netdelay-{queue}.ready"));
            let log = core.dir().join(format!("netdelay-{}.log", s.name()));
            let args = argv([
                bin.display().to_string(),
                "--queue".into(),
                queue.to_string(),
                "--delay-us".into(),
                delay.as_micros().to_string(),
                "--ready-file".into(),
                ready.display().to_string(),
            ]);
            let name = format!("lifeboat-netdelay {}", s.name());
            let (proc, stdin) = core.spawn_inner(&name, &args, &[], &log, true)?;
            wait_ready(&proc, &ready, &log).await?;
            iptables(core, &rule("-I", port, queue)).await?;
            let stdin = stdin.ok_or_else(|| BedError::Io {
                what: "the delay program's stdin".into(),
                source: std::io::Error::other("not piped"),
            })?;
            st.delays.insert(
                s.name().to_string(),
                Delayer {
                    queue,
                    _proc: proc,
                    stdin,
                },
            )
        };
        if let Some(old) = old {
            iptables(core, &rule("-D", port, old.queue)).await?;
            drop(old.stdin);
        }
        Ok(())
    }

    /// The `lifeboat-netdelay` program (see [`crate::BedSpec::netdelay_bin`]).
    fn netdelay_path(&self) -> Result<PathBuf, BedError> {
        let mut candidates = Vec::new();
        if let Some(p) = &self.netdelay_bin {
            candidates.push(p.clone());
        }
        if let Some(p) = std::env::var_os("LIFEBOAT_NETDELAY_BIN") {
            candidates.push(PathBuf::from(p));
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            candidates.push(dir.join("lifeboat-netdelay"));
            candidates.push(dir.join("../lifeboat-netdelay"));
        }
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| BedError::NoNetdelay {
                looked: candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The core's `FORWARD` rule that queues what enters the bridge from `port`
/// (`-I` inserts it first, `-D` deletes it).
fn rule(op: &str, port: &str, queue: u16) -> Vec<String> {
    let mut r = vec!["-w".to_string(), op.to_string(), "FORWARD".to_string()];
    if op == "-I" {
        r.push("1".into());
    }
    let q = queue.to_string();
    r.extend(
        [
            "-m",
            "physdev",
            "--physdev-in",
            port,
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q,
        ]
        .map(String::from),
    );
    r
}

/// Waits until the program says it is bound to its queue (its ready file).
async fn wait_ready(
    proc: &SiteProcess,
    ready: &std::path::Path,
    log: &std::path::Path,
) -> Result<(), BedError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ready.exists() {
            return Ok(());
        }
        let tail = || std::fs::read_to_string(log).unwrap_or_default();
        if !proc.is_running() {
            return Err(BedError::Io {
                what: "starting lifeboat-netdelay".into(),
                source: std::io::Error::other(format!("it exited: {}", tail())),
            });
        }
        if Instant::now() > deadline {
            return Err(BedError::Timeout {
                what: "lifeboat-netdelay binding its queue".into(),
                secs: 10,
                detail: format!("; its log: {}", tail()),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `tc qdisc replace … netem delay` (or its removal for a zero delay).
async fn netem(site: &Site, delay: Duration) -> Result<(), BedError> {
    let Some(tc) = which("tc") else {
        return Err(BedError::MissingTool {
            tool: "tc",
            package: "iproute2",
        });
    };
    let tc = tc.display().to_string();
    let base = argv([
        site.inner.shared.ip.as_str(),
        "netns",
        "exec",
        site.netns(),
        &tc,
        "qdisc",
    ]);
    let us = format!("{}us", delay.as_micros());
    let mut add = base.clone();
    add.extend(argv([
        "replace", "dev", SITE_IF, "root", "netem", "delay", &us, "limit", "100000",
    ]));
    run(&add).await?;
    if delay.is_zero() {
        let mut del = base;
        del.extend(argv(["del", "dev", SITE_IF, "root"]));
        run(&del).await?;
    }
    Ok(())
}

/// Whether the error says that this kernel has no netem (or there is no `tc`).
fn no_netem(e: &BedError) -> bool {
    match e {
        BedError::Command { stderr, .. } => stderr.contains("unknown"),
        BedError::MissingTool { tool, .. } => *tool == "tc",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_stats_parsed() {
        let text = "    3 123456     2 2 128     0     5    77 1\n    4  99     0 2 128     1     0    10 1\n";
        assert_eq!(
            parse_queue_stats(text),
            vec![
                QueueStats {
                    queue: 3,
                    waiting: 2,
                    queue_dropped: 0,
                    user_dropped: 5,
                    queued_total: 77
                },
                QueueStats {
                    queue: 4,
                    waiting: 0,
                    queue_dropped: 1,
                    user_dropped: 0,
                    queued_total: 10
                },
            ]
        );
        assert!(parse_queue_stats("").is_empty());
    }

    #[test]
    fn netem_missing_recognised() {
        let e = BedError::Command {
            argv: "tc".into(),
            status: "exit status: 2".into(),
            stderr: "Error: Specified qdisc kind is unknown.".into(),
        };
        assert!(no_netem(&e));
        let other = BedError::Command {
            argv: "tc".into(),
            status: "exit status: 2".into(),
            stderr: "Cannot find device \"eth0\"".into(),
        };
        assert!(!no_netem(&other));
    }
}
