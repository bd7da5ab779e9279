//! A PostgreSQL server run on a restored data directory until recovery
//! ends: private socket directory (mode 0700, owned by the server's user),
//! no TCP (`listen_addresses = ''`), a free port number for the socket's
//! name, `trust` for local connections through a temporary `hba_file`
//! (only the server's OS user and root can reach that socket), no
//! archiving (the throwaway run must not push its new timeline into the
//! archive the source writes), logs to a file of ours. Started with an
//! argument vector, never through `pg_ctl`'s shell.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::cluster::{ClusterError, chown, command, free_port, log_tail, run_as};
use crate::conn::{ConnConfig, PgHost};

/// A server recovering a restored data directory.
pub struct RecoveryServer {
    child: Option<Child>,
    run_dir: tempfile::TempDir,
    port: u16,
    data: PathBuf,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        what: what.to_string(),
        source,
    }
}

/// The OS user the server runs as: `postgres` when we are root (its uid
/// and gid), else ourselves (`None`).
pub fn server_owner() -> Result<Option<(u32, u32)>, ClusterError> {
    run_as()
}

/// Gives `path` and everything under it to `owner` (no-op for `None`).
pub fn chown_tree(path: &Path, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
    if owner.is_none() {
        return Ok(());
    }
    chown(path, owner)?;
    let meta = std::fs::symlink_metadata(path).map_err(io_err("reading the restored tree"))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).map_err(io_err("reading the restored tree"))? {
            let e = e.map_err(io_err("reading the restored tree"))?;
            chown_tree(&e.path(), owner)?;
        }
    }
    Ok(())
}

/// Whether the server's operating-system user (`postgres` when we are
/// root) can enter `dir`, as a recovery server on a data directory inside
/// it must: `bin_dir/postgres --version` is run as that user with `dir` as
/// its working directory, so the kernel decides as it will for the server
/// (modes, ACLs, the user's groups as the server gets them).
pub fn check_reachable(bin_dir: &Path, dir: &Path) -> Result<(), ClusterError> {
    let owner = run_as()?;
    command(bin_dir.join("postgres"), owner, dir)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|source| ClusterError::Io {
            what: format!(
                "the server's operating-system user cannot enter {}",
                dir.display()
            ),
            source,
        })
}

/// The server's private run directory (socket, `pg_hba.conf`, log): a new
/// directory in the temporary directory (`TMPDIR`), mode 0700, owned by
/// `owner`.
fn run_dir(owner: Option<(u32, u32)>) -> Result<tempfile::TempDir, ClusterError> {
    let run_dir = tempfile::Builder::new()
        .prefix("lifeboat-recovery-")
        .tempdir()
        .map_err(|source| ClusterError::Io {
            what: format!(
                "creating the recovery server's run directory in TMPDIR {}",
                std::env::temp_dir().display()
            ),
            source,
        })?;
    std::fs::set_permissions(run_dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod the recovery run directory"))?;
    chown(run_dir.path(), owner)?;
    Ok(run_dir)
}

/// Whether a recovery server could be started as far as the temporary
/// directory is concerned, before anything depends on it: its run
/// directory is created in `TMPDIR` as [`RecoveryServer::start`] creates
/// it (so `TMPDIR` exists and this process can write it), the server's
/// operating-system user enters it ([`check_reachable`], so every
/// directory above it is searchable by that user), and it is removed
/// again. `Err` names the directory and what went wrong.
pub fn check_temp_dir(bin_dir: &Path) -> Result<(), ClusterError> {
    let dir = run_dir(run_as()?)?;
    check_reachable(bin_dir, dir.path())?;
    let shown = dir.path().display().to_string();
    dir.close().map_err(|source| ClusterError::Io {
        what: format!("removing {shown}"),
        source,
    })
}

impl RecoveryServer {
    /// Starts `bin_dir/postgres` on `data` with `env` added to its
    /// environment (which is otherwise only `PATH` and `LC_ALL=C`).
    pub fn start(
        bin_dir: &Path,
        data: &Path,
        env: &[(String, String)],
    ) -> Result<Self, ClusterError> {
        let program = bin_dir.join("postgres");
        if !program.exists() {
            return Err(ClusterError::NoBinaries(bin_dir.display().to_string()));
        }
        let owner = run_as()?;
        let run_dir = run_dir(owner)?;
        let hba = run_dir.path().join("pg_hba.conf");
        std::fs::write(&hba, "local all all trust\n").map_err(io_err("writing pg_hba.conf"))?;
        chown(&hba, owner)?;
        let log_path = run_dir.path().join("postgres.log");
        let log = File::create(&log_path).map_err(io_err("creating the server log"))?;
        chown(&log_path, owner)?;
        let log2 = log.try_clone().map_err(io_err("server log"))?;
        let port = free_port()?;
        let mut cmd = command(program, owner, data);
        cmd.arg("-D").arg(data);
        for (k, v) in [
            ("listen_addresses", String::new()),
            ("port", port.to_string()),
            (
                "unix_socket_directories",
                run_dir.path().display().to_string(),
            ),
            ("hba_file", hba.display().to_string()),
            ("archive_mode", "off".into()),
            ("logging_collector", "off".into()),
            ("log_destination", "stderr".into()),
            ("synchronous_standby_names", String::new()),
            ("hot_standby", "on".into()),
        ] {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|source| ClusterError::Io {
                what: format!(
                    "starting postgres on {} as the server's operating-system user (it must be \
                     able to enter every directory above it)",
                    data.display()
                ),
                source,
            })?;
        Ok(Self {
            child: Some(child),
            run_dir,
            port,
            data: data.to_path_buf(),
        })
    }

    /// The server's log so far (whole).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run_dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The last few KB of the log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.run_dir.path().join("postgres.log"))
    }

    /// Connection settings through the private socket, as `user`.
    pub fn conn_config(&self, user: &str, db: &str) -> ConnConfig {
        ConnConfig::new(
            PgHost::Unix(self.run_dir.path().to_path_buf()),
            self.port,
            user,
            db,
        )
    }

    /// Whether the server process has exited (it does on a FATAL).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Stops the server with a fast shutdown (SIGINT: a shutdown
    /// checkpoint, clients disconnected) and waits up to `timeout`, then
    /// kills it. `Ok(true)`: it shut down cleanly.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: a plain signal to our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    return s.success() && !self.data.join("postmaster.pid").exists();
                }
                Ok(None) if std::time::Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => return false,
            }
        }
    }
}

impl Drop for RecoveryServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a plain signal to our own child (immediate shutdown).
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGQUIT);
            }
            let _ = c.wait();
        }
    }
}
