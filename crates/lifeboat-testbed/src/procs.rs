//! The processes of a bed: the registry of the ones it started (so they die
//! with it), the processes inside a namespace (whoever started them), and
//! killing them until they are reaped.
//!
//! "Reaped" matters: PostgreSQL refuses to start while the PID in its
//! `postmaster.pid` still exists, and on this kind of machine a killed
//! process vanishes from `/proc` a second or two after SIGKILL. So a kill here
//! waits, bounded, until every killed PID is gone from `/proc`.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::BedError;

/// How long a kill may take before it is reported as failed.
pub(crate) const KILL_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

struct Tracked {
    pid: u32,
    name: String,
    site: String,
    child: Child,
    status: Option<ExitStatus>,
}

/// Every process a bed started, whatever the site.
#[derive(Default)]
pub(crate) struct Registry {
    procs: Mutex<Vec<Tracked>>,
}

impl Registry {
    pub(crate) fn add(&self, child: Child, name: &str, site: &str) -> u32 {
        let pid = child.id();
        self.lock().push(Tracked {
            pid,
            name: name.to_string(),
            site: site.to_string(),
            child,
            status: None,
        });
        pid
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Tracked>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Collects the exit status of every exited child (so none stays a zombie).
    pub(crate) fn reap(&self) {
        for t in self.lock().iter_mut().filter(|t| t.status.is_none()) {
            if let Ok(Some(st)) = t.child.try_wait() {
                t.status = Some(st);
            }
        }
    }

    fn status(&self, pid: u32) -> Option<ExitStatus> {
        self.reap();
        self.lock()
            .iter()
            .find(|t| t.pid == pid)
            .and_then(|t| t.status)
    }

    /// SIGKILL to every tracked process still running, and reaps it.
    pub(crate) fn kill_remaining(&self) {
        for t in self.lock().iter_mut().filter(|t| t.status.is_none()) {
            let _ = t.child.kill();
            t.status = t.child.wait().ok();
        }
    }

    /// Names of the running processes (for messages).
    pub(crate) fn describe(&self, pids: &[u32]) -> String {
        let procs = self.lock();
        pids.iter()
            .map(|p| match procs.iter().find(|t| t.pid == *p) {
                Some(t) => format!("{p} ({} in {})", t.name, t.site),
                None => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A process the bed started in a site ([`crate::Site::spawn`]). Cloning it
/// clones the handle; the process itself belongs to the bed and dies with it.
#[derive(Clone)]
pub struct SiteProcess {
    pid: u32,
    name: String,
    site: String,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for SiteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteProcess")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("site", &self.site)
            .finish()
    }
}

impl SiteProcess {
    pub(crate) fn new(pid: u32, name: &str, site: &str, registry: Arc<Registry>) -> Self {
        SiteProcess {
            pid,
            name: name.to_string(),
            site: site.to_string(),
            registry,
        }
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn site(&self) -> &str {
        &self.site
    }
    /// Its exit status once it has exited (reaps it).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.registry.status(self.pid)
    }
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }
    /// Sends `signal` (e.g. `libc::SIGTERM`) unless it has exited already.
    pub fn signal(&self, signal: i32) -> Result<(), BedError> {
        if !self.is_running() {
            return Ok(());
        }
        send(self.pid, signal);
        Ok(())
    }
    /// Waits until it has exited and is reaped; `Timeout` after `timeout`.
    pub async fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, BedError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exit_status()
                && gone(self.pid)
            {
                return Ok(st);
            }
            if Instant::now() > deadline {
                return Err(BedError::Timeout {
                    what: format!("exit of {} (pid {}) in {}", self.name, self.pid, self.site),
                    secs: timeout.as_secs(),
                    detail: String::new(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
    /// SIGKILL, then waits (bounded) until it is reaped.
    pub async fn kill(&self) -> Result<ExitStatus, BedError> {
        self.signal(libc::SIGKILL)?;
        self.wait_exit(KILL_TIMEOUT).await
    }
}

fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a plain pid and signal number; errors (ESRCH) are fine.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// PIDs of the processes whose network namespace is `/run/netns/<netns>`
/// (what `ip netns pids` prints). Zombies have no namespace and are not listed.
pub(crate) fn netns_pids(netns: &str) -> Vec<u32> {
    let Ok(ns) = std::fs::metadata(format!("/run/netns/{netns}")) else {
        return Vec::new();
    };
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
        })
        .collect()
}

/// State letter and parent PID from `/proc/<pid>/stat`.
fn pid_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is reaped. A zombie whose parent is this process but that
/// the bed did not start (e.g. a `tokio::process::Child` a test holds) counts
/// as gone: only its holder can reap it.
fn gone(pid: u32) -> bool {
    match pid_state(pid) {
        None => true,
        Some(('Z', ppid)) => ppid == std::process::id(),
        Some(_) => false,
    }
}

/// One round of a kill: SIGKILL to every process in `namespaces`; returns
/// the PIDs signalled.
fn kill_round(namespaces: &[String]) -> Vec<u32> {
    let pids: Vec<u32> = namespaces.iter().flat_map(|ns| netns_pids(ns)).collect();
    for p in &pids {
        send(*p, libc::SIGKILL);
    }
    pids
}

/// Progress of a kill of everything in some namespaces.
pub(crate) struct Kill<'a> {
    namespaces: &'a [String],
    registry: &'a Registry,
    killed: BTreeSet<u32>,
    deadline: Instant,
    what: String,
}

impl<'a> Kill<'a> {
    pub(crate) fn new(what: String, namespaces: &'a [String], registry: &'a Registry) -> Self {
        Kill {
            namespaces,
            registry,
            killed: BTreeSet::new(),
            deadline: Instant::now() + KILL_TIMEOUT,
            what,
        }
    }

    /// Signals what is left and reaps; `Ok(true)` when nothing is left
    /// in the namespaces and every killed PID is reaped.
    fn step(&mut self) -> Result<bool, BedError> {
        let signalled = kill_round(self.namespaces);
        self.killed.extend(&signalled);
        self.registry.reap();
        let left: Vec<u32> = self.killed.iter().copied().filter(|p| !gone(*p)).collect();
        if signalled.is_empty() && left.is_empty() {
            return Ok(true);
        }
        if Instant::now() > self.deadline {
            return Err(BedError::Timeout {
                what: format!("reaping the processes of {}", self.what),
                secs: KILL_TIMEOUT.as_secs(),
                detail: format!("; still there: {}", self.registry.describe(&left)),
            });
        }
        Ok(false)
    }

    pub(crate) fn run_blocking(mut self) -> Result<Vec<u32>, BedError> {
        while !self.step()? {
            std::thread::sleep(POLL);
        }
        Ok(self.killed.into_iter().collect())
    }

    pub(crate) async fn run(mut self) -> Result<Vec<u32>, BedError> {
        while !self.step()? {
            tokio::time::sleep(POLL).await;
        }
        Ok(self.killed.into_iter().collect())
    }
}
