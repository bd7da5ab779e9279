//! A site of the bed: one network namespace with one address, and what runs
//! in it.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::Arc;

use crate::BedError;
use crate::procs::{Registry, SiteProcess};

/// What every site of one bed shares.
pub(crate) struct Shared {
    pub(crate) registry: Arc<Registry>,
    /// The bed's directory (logs, data directories), world-traversable so
    /// that `postgres` can reach its data directory below it.
    pub(crate) dir: PathBuf,
    /// Absolute path of `ip`.
    pub(crate) ip: String,
}

pub(crate) struct SiteInner {
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) addr: Ipv4Addr,
    /// The veth end in the core namespace (its bridge port).
    pub(crate) core_port: String,
    pub(crate) shared: Arc<Shared>,
}

/// A site (a region or the witness). Cheap to clone; all clones are the
/// same site. Inside the namespace the site's interface is `eth0` with
/// [`Site::addr`]/24, and `lo` is up.
#[derive(Clone)]
pub struct Site {
    pub(crate) inner: Arc<SiteInner>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.inner.name)
            .field("netns", &self.inner.netns)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// The interface of every site inside its namespace.
pub(crate) const SITE_IF: &str = "eth0";

impl Site {
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// The network namespace's name (`ip netns exec <this> …`).
    pub fn netns(&self) -> &str {
        &self.inner.netns
    }
    /// The site's one address (on `eth0`, a /24 shared by the bed's sites).
    pub fn addr(&self) -> Ipv4Addr {
        self.inner.addr
    }
    /// A directory of this site's own (logs, data), inside the bed's directory.
    pub fn dir(&self) -> PathBuf {
        self.inner.shared.dir.join(&self.inner.name)
    }

    /// `argv` run inside the namespace (`ip netns exec <netns> argv…`), with
    /// `kill_on_drop`. Not in the bed's registry, but still killed with the
    /// site or the bed, since those kill every process in the namespace.
    pub fn command<I, S>(&self, argv: I) -> tokio::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = tokio::process::Command::new(&self.inner.shared.ip);
        cmd.args(["netns", "exec", &self.inner.netns])
            .args(argv)
            .kill_on_drop(true);
        cmd
    }

    /// Starts `argv` inside the namespace as a process of the bed (it dies
    /// with the site or the bed), stdout and stderr appended to `log_file`.
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        name: &str,
        argv: &[S],
        log_file: &Path,
    ) -> Result<SiteProcess, BedError> {
        Ok(self.spawn_inner(name, argv, &[], log_file, false)?.0)
    }

    /// [`Site::spawn`] with extra environment variables (how a secret is
    /// passed: never in `argv`).
    pub fn spawn_with_env<S: AsRef<OsStr>>(
        &self,
        name: &str,
        argv: &[S],
        env: &[(&str, &str)],
        log_file: &Path,
    ) -> Result<SiteProcess, BedError> {
        Ok(self.spawn_inner(name, argv, env, log_file, false)?.0)
    }

    pub(crate) fn spawn_inner<S: AsRef<OsStr>>(
        &self,
        name: &str,
        argv: &[S],
        env: &[(&str, &str)],
        log_file: &Path,
        stdin: bool,
    ) -> Result<(SiteProcess, Option<ChildStdin>), BedError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_file)
            .map_err(BedError::io(format!("opening {}", log_file.display())))?;
        let log2 = log.try_clone().map_err(BedError::io("log file"))?;
        let mut cmd = std::process::Command::new(&self.inner.shared.ip);
        cmd.args(["netns", "exec", &self.inner.netns])
            .args(argv)
            .envs(env.iter().copied())
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(log)
            .stderr(log2);
        let mut child = cmd
            .spawn()
            .map_err(BedError::io(format!("starting {name} in {}", self.name())))?;
        let pipe = child.stdin.take();
        let registry = self.inner.shared.registry.clone();
        let pid = registry.add(child, name, self.name());
        Ok((SiteProcess::new(pid, name, self.name(), registry), pipe))
    }

    /// Every process in the namespace now (what `ip netns pids` prints).
    pub fn pids(&self) -> Vec<u32> {
        crate::procs::netns_pids(&self.inner.netns)
    }

    /// Runs `f` on a new thread that has entered the namespace; sockets it
    /// creates belong to the site (they keep that after the thread ends).
    pub fn in_netns<F, T>(&self, f: F) -> Result<T, BedError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let path = format!("/run/netns/{}", self.inner.netns);
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs async code inside the namespace: a new thread enters it and runs
    /// `f()` on a current-thread tokio runtime of its own, so everything it
    /// connects or binds (tokio-postgres, HTTP clients, the code under test)
    /// is in the site.
    pub async fn run<F, Fut, T>(&self, f: F) -> Result<T, BedError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.inner.netns);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("netns-{}", self.inner.name))
            .spawn(move || {
                let result = enter(&path).and_then(|()| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(BedError::io("building a runtime in the namespace"))?;
                    Ok(rt.block_on(f()))
                });
                let _ = tx.send(result);
            })
            .map_err(BedError::io("starting a thread in the namespace"))?;
        rx.await.unwrap_or_else(|_| {
            Err(BedError::Io {
                what: format!("code run in site {}", self.inner.name),
                source: std::io::Error::other("it panicked"),
            })
        })
    }

    /// A TCP connection from this site to `addr` (the socket is created in
    /// the namespace, then connected on the caller's runtime).
    pub async fn connect(&self, addr: SocketAddr) -> Result<tokio::net::TcpStream, BedError> {
        let socket = self
            .in_netns(tokio::net::TcpSocket::new_v4)?
            .map_err(BedError::io("creating a socket"))?;
        socket.connect(addr).await.map_err(BedError::io(format!(
            "connecting from {} to {addr}",
            self.name()
        )))
    }

    /// A listening socket on the site's address and `port` (0: any), for
    /// servers the test runs in-process.
    pub fn listen(&self, port: u16) -> Result<tokio::net::TcpListener, BedError> {
        let addr = self.addr();
        let l = self
            .in_netns(|| std::net::TcpListener::bind((addr, port)))?
            .map_err(BedError::io(format!("binding {addr}:{port}")))?;
        l.set_nonblocking(true)
            .map_err(BedError::io("set_nonblocking"))?;
        tokio::net::TcpListener::from_std(l).map_err(BedError::io("registering a listener"))
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) -> Result<(), BedError> {
    let f = File::open(path).map_err(BedError::io(format!("opening {path}")))?;
    // SAFETY: setns(2) on a valid fd we own; it only changes this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(BedError::Io {
            what: format!("entering {path}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
