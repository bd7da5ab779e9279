//! A throwaway PostgreSQL cluster: for tests, for `lifeboat demo` and for benchmarks.
//!
//! This lives in the library (not only in a test-support crate) because the demo
//! ships in the binary and starts one too.
//!
//! [`TempCluster::start`] runs `initdb` into a fresh temporary directory and starts
//! `postgres` on a free port of 127.0.0.1, with its Unix socket inside that
//! directory, password (SCRAM) authentication for every connection (so that a
//! wrong password really fails) and durability switched off for speed. Dropping the
//! value stops the server with an immediate shutdown (SIGQUIT to the postmaster,
//! what `pg_ctl stop -m immediate` does) and deletes the directory.
//!
//! PostgreSQL refuses to run as root. When the current process is root, the
//! directory is given to the `postgres` OS user and `initdb`/`postgres` are started
//! with that uid/gid (std's `Command::uid`/`gid`, which also drops supplementary
//! groups); otherwise they run as the current user. Programs are always started
//! with argument vectors: `pg_ctl start` is avoided because it passes `-o` options
//! through a shell.
//!
//! Many clusters can run at once (each has its own directory, port and socket);
//! a port taken between choosing and binding is retried with another one.
//! A process killed with SIGKILL leaves its cluster running; that is the only leak.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::conn::{ConnConfig, PgHost, Secret};

/// Errors of starting a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) found under {0}; install postgresql-15 (apt-get install postgresql-15)"
    )]
    NoBinaries(String),
    #[error(
        "running as root but there is no 'postgres' OS user to run the server as (PostgreSQL refuses root); create one or install the postgresql package"
    )]
    NoPostgresUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("initdb failed: {0}")]
    Initdb(String),
    #[error("postgres did not start: {0}")]
    Start(String),
    #[error(transparent)]
    Conn(#[from] crate::conn::ConnError),
    #[error("creating database: {0}")]
    Sql(#[from] tokio_postgres::Error),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// How to start the cluster. `Default` gives a superuser `lifeboat` with a random
/// password, the newest installed server binaries, and the fast test settings.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Directory holding `initdb` and `postgres`; `None` = `LIFEBOAT_PG_BIN`, else the
    /// newest `/usr/lib/postgresql/<major>/bin`.
    pub bin_dir: Option<PathBuf>,
    /// Name of the bootstrap superuser.
    pub superuser: String,
    /// Its password (SCRAM authentication is required for every connection).
    pub password: Secret,
    /// Extra `postgresql.conf` settings (override the defaults, e.g. `shared_buffers`).
    pub settings: Vec<(String, String)>,
    /// Where to create the temporary directory (`None` = the system temp dir).
    pub parent_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            bin_dir: None,
            superuser: "lifeboat".into(),
            password: Secret::new(random_password()),
            settings: Vec::new(),
            parent_dir: None,
        }
    }
}

fn random_password() -> String {
    let mut buf = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        buf = (t ^ (std::process::id() as u128) << 64).to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Settings that make a disposable cluster fast; durability is irrelevant for it.
const FAST_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "40"),
    ("shared_buffers", "64MB"),
    ("max_wal_size", "4GB"),
    ("checkpoint_timeout", "30min"),
    ("log_min_messages", "warning"),
    ("log_min_error_statement", "panic"),
    ("timezone", "UTC"),
];

/// A running throwaway cluster; stopped and deleted on drop.
pub struct TempCluster {
    // Order matters for Drop: the server is stopped (in Drop::drop) before `dir` goes.
    child: Child,
    port: u16,
    bin_dir: PathBuf,
    major: u32,
    superuser: String,
    password: Secret,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TempCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempCluster")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("major", &self.major)
            .finish()
    }
}

fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(d) = std::env::var_os("LIFEBOAT_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut majors: Vec<u32> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|m: &u32| root.join(m.to_string()).join("bin/initdb").exists())
        .collect();
    majors.sort();
    majors
        .last()
        .map(|m| root.join(m.to_string()).join("bin"))
        .ok_or_else(|| ClusterError::NoBinaries(root.display().to_string()))
}

/// uid and gid of the `postgres` user when we are root; `None` when not root.
pub(crate) fn run_as() -> Result<Option<(u32, u32)>, ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").map_err(|_| ClusterError::NoPostgresUser)?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call, buf's length is passed.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(ClusterError::NoPostgresUser);
    }
    Ok(Some((pwd.pw_uid, pwd.pw_gid)))
}

/// A port for a throwaway server: one the kernel hands out for port 0, or
/// in test builds (`testing`) one reserved for this process (see
/// `lifeboat-test-ports`: a test that stops the server and starts it again
/// on the same port must find it still free, whatever the other test binary
/// running beside it binds or connects meanwhile).
#[cfg(not(feature = "testing"))]
pub(crate) fn free_port() -> Result<u16, ClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("choosing a free port"))?;
    Ok(l.local_addr()
        .map_err(io_err("choosing a free port"))?
        .port())
}

/// See the other `free_port`.
#[cfg(feature = "testing")]
pub(crate) fn free_port() -> Result<u16, ClusterError> {
    Ok(lifeboat_test_ports::reserve())
}

/// initdb, pg_ctl and postgres of a throwaway cluster: stricter than
/// [`crate::tools::child_command`] (no inherited `LANG`/`LC_*`/`TZ` either, so
/// every throwaway cluster is the same: C locale, a fixed `PATH`).
pub(crate) fn command(program: PathBuf, owner: Option<(u32, u32)>, cwd: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = crate::tools::child_command(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(cwd);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

pub(crate) fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(io_err(format!("chown {}", path.display())))?;
    }
    Ok(())
}

pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4000)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

impl TempCluster {
    /// Starts a cluster with [`ClusterOptions::default`]. Blocks for about 1–3 s
    /// (initdb dominates); call it via `spawn_blocking` from latency-sensitive async code.
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with the given options.
    pub fn start_with(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let bin_dir = match &opts.bin_dir {
            Some(d) => d.clone(),
            None => find_bin_dir()?,
        };
        if !bin_dir.join("initdb").exists() || !bin_dir.join("postgres").exists() {
            return Err(ClusterError::NoBinaries(bin_dir.display().to_string()));
        }
        let owner = run_as()?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("lifeboat-pg-");
        let dir = match &opts.parent_dir {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(io_err("creating the cluster directory"))?;
        chown(dir.path(), owner)?;

        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", opts.password.expose()))
            .map_err(io_err("writing the password file"))?;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod password file"))?;
        chown(&pwfile, owner)?;

        let data = dir.path().join("data");
        let out = command(bin_dir.join("initdb"), owner, dir.path())
            .arg("-D")
            .arg(&data)
            .arg("-U")
            .arg(&opts.superuser)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(io_err("running initdb"))?;
        let _ = std::fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(ClusterError::Initdb(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).map_err(io_err("creating the socket directory"))?;
        chown(&sock, owner)?;
        let major = std::fs::read_to_string(data.join("PG_VERSION"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);

        Self::launch(
            dir,
            bin_dir,
            owner,
            major,
            opts.superuser,
            opts.password,
            &opts.settings,
        )
    }

    /// Starts `postgres` on `dir/data` on a free port (retried when the port
    /// was taken meanwhile), with the socket in `dir/sock`.
    fn launch(
        dir: tempfile::TempDir,
        bin_dir: PathBuf,
        owner: Option<(u32, u32)>,
        major: u32,
        superuser: String,
        password: Secret,
        extra: &[(String, String)],
    ) -> Result<Self, ClusterError> {
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        let log_path = dir.path().join("postgres.log");
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            let log = File::create(&log_path).map_err(io_err("creating the server log"))?;
            let log2 = log.try_clone().map_err(io_err("server log"))?;
            let mut cmd = command(bin_dir.join("postgres"), owner, dir.path());
            cmd.arg("-D").arg(&data);
            let mut settings: Vec<(String, String)> = FAST_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            settings.push(("listen_addresses".into(), "127.0.0.1".into()));
            settings.push(("port".into(), port.to_string()));
            settings.push(("unix_socket_directories".into(), sock.display().to_string()));
            settings.extend(extra.iter().cloned());
            for (k, v) in &settings {
                cmd.arg("-c").arg(format!("{k}={v}"));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2))
                .spawn()
                .map_err(io_err("starting postgres"))?;
            match wait_ready(&mut child, &data, Duration::from_secs(60)) {
                Ok(()) => {
                    return Ok(TempCluster {
                        child,
                        port,
                        bin_dir,
                        major,
                        superuser,
                        password,
                        dir,
                    });
                }
                Err(exited) => {
                    let tail = log_tail(&log_path);
                    if !exited {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(ClusterError::Start(format!(
                            "not ready within 60 s; log:\n{tail}"
                        )));
                    }
                    last_err = tail;
                    if !last_err.contains("could not bind") && !last_err.contains("already in use")
                    {
                        break;
                    }
                }
            }
        }
        Err(ClusterError::Start(last_err))
    }

    /// A physical copy of this cluster, as a standby or a server rebuilt from
    /// a base backup is: `pg_basebackup` of the running server, started as a
    /// primary of its own on another port. It shares this cluster's
    /// `system_identifier` and database OIDs, and has the same superuser and
    /// password. For tests of "is this the same database?".
    pub fn physical_copy(&self) -> Result<Self, ClusterError> {
        let owner = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-pg-copy-")
            .tempdir()
            .map_err(io_err("creating the copy's directory"))?;
        chown(dir.path(), owner)?;
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).map_err(io_err("creating the socket directory"))?;
        chown(&sock, owner)?;
        let out = command(self.bin_dir.join("pg_basebackup"), owner, dir.path())
            .env("PGPASSWORD", self.password.expose())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U"])
            .arg(&self.superuser)
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-X", "stream", "-c", "fast", "--no-sync"])
            .output()
            .map_err(io_err("running pg_basebackup"))?;
        if !out.status.success() {
            return Err(ClusterError::Start(format!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Self::launch(
            dir,
            self.bin_dir.clone(),
            owner,
            self.major,
            self.superuser.clone(),
            self.password.clone(),
            &[],
        )
    }

    /// A streaming standby of this cluster: `pg_basebackup` of the running
    /// server, `standby.signal`, and `primary_conninfo` naming this server
    /// with a password file of the standby's own (mode 0600; the password
    /// is in no command line), started on another port as a hot standby
    /// with `extra` settings; returned once it accepts read-only
    /// connections (PostgreSQL 15 then says `ready` in `postmaster.pid`,
    /// as a primary does). Same superuser and password. For tests of what
    /// a standby does (backups taken from it). This cluster must allow
    /// replication connections from 127.0.0.1 (initdb's default).
    pub fn streaming_standby(&self, extra: &[(String, String)]) -> Result<Self, ClusterError> {
        let owner = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-pg-standby-")
            .tempdir()
            .map_err(io_err("creating the standby's directory"))?;
        chown(dir.path(), owner)?;
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).map_err(io_err("creating the socket directory"))?;
        chown(&sock, owner)?;
        let passfile = dir.path().join("pgpass");
        std::fs::write(
            &passfile,
            format!(
                "127.0.0.1:{}:*:{}:{}\n",
                self.port,
                self.superuser,
                self.password.expose()
            ),
        )
        .map_err(io_err("writing the standby's password file"))?;
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod the standby's password file"))?;
        chown(&passfile, owner)?;
        let data = dir.path().join("data");
        let out = command(self.bin_dir.join("pg_basebackup"), owner, dir.path())
            .env("PGPASSFILE", &passfile)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U"])
            .arg(&self.superuser)
            .arg("-D")
            .arg(&data)
            .args(["-X", "stream", "-c", "fast", "--no-sync", "--no-password"])
            .output()
            .map_err(io_err("running pg_basebackup"))?;
        if !out.status.success() {
            return Err(ClusterError::Start(format!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let signal = data.join("standby.signal");
        std::fs::write(&signal, b"").map_err(io_err("writing standby.signal"))?;
        chown(&signal, owner)?;
        let conninfo = format!(
            "host=127.0.0.1 port={} user={} passfile={} application_name=standby",
            self.port,
            self.superuser,
            passfile.display()
        );
        let auto = data.join("postgresql.auto.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&auto)
            .map_err(io_err("opening postgresql.auto.conf"))?;
        f.write_all(
            format!("\nprimary_conninfo = '{}'\n", conninfo.replace('\'', "''")).as_bytes(),
        )
        .map_err(io_err("writing primary_conninfo"))?;
        chown(&auto, owner)?;
        Self::launch(
            dir,
            self.bin_dir.clone(),
            owner,
            self.major,
            self.superuser.clone(),
            self.password.clone(),
            extra,
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    /// The temporary directory (holds `data/`, `sock/`, `postgres.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }
    /// Directory of the server binaries (also holds matching pg_dump/pg_restore/psql).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }
    /// Major version of the server.
    pub fn major(&self) -> u32 {
        self.major
    }
    pub fn superuser(&self) -> &str {
        &self.superuser
    }
    pub fn password(&self) -> &Secret {
        &self.password
    }
    /// The last few KB of the server log (for test failure messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("postgres.log"))
    }

    /// Connection settings for database `db` over TCP, with the superuser's
    /// password as the explicit secret.
    pub fn conn_config(&self, db: &str) -> ConnConfig {
        ConnConfig::new(
            PgHost::Tcp("127.0.0.1".into()),
            self.port,
            &self.superuser,
            db,
        )
        .with_password(self.password.clone())
    }

    /// `postgresql://user@127.0.0.1:port/db` (no password in it).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{}@127.0.0.1:{}/{}",
            self.superuser, self.port, db
        )
    }

    /// Creates database `name` (no-op when it exists) and returns its settings.
    pub async fn create_database(&self, name: &str) -> Result<ConnConfig, ClusterError> {
        let cfg = self.conn_config(name);
        crate::dump::create_database_if_missing(&cfg, "postgres")
            .await
            .map_err(|e| ClusterError::Start(e.to_string()))?;
        Ok(cfg)
    }

    /// Stops the server now (immediate shutdown) and removes the directory.
    pub fn stop(self) {
        drop(self)
    }
}

/// Polls `postmaster.pid` until its status line says `ready`. `Err(true)` when the
/// server exited, `Err(false)` on timeout.
fn wait_ready(child: &mut Child, data: &Path, timeout: Duration) -> Result<(), bool> {
    let deadline = Instant::now() + timeout;
    let pidfile = data.join("postmaster.pid");
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(true);
        }
        if let Ok(s) = std::fs::read_to_string(&pidfile)
            && s.lines().nth(7).is_some_and(|l| l.trim() == "ready")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain signal to our own child.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
