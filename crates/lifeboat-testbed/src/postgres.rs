//! PostgreSQL inside a site: `initdb` as the `postgres` OS user (PostgreSQL
//! refuses root) into a directory below the site's, the server started in
//! the site's namespace listening on the site's address, and standbys made
//! with `pg_basebackup` from a server in another site.
//!
//! Like `lifeboat_postgres::TempCluster` (crates/lifeboat-postgres/src/cluster.rs):
//! SCRAM passwords for every connection, argument vectors only (no `pg_ctl`,
//! whose `-o` goes through a shell), the secret in the environment or a file,
//! never in `argv`. Unlike it: the port is fixed (each site has its own
//! address), the server is a process of the bed (killed with its site), and
//! it can be started again after a kill ([`SitePostgres::start`]).
//! `pg_hba.conf` admits password connections, replication included, from the
//! bed's /24.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lifeboat_postgres::{ClusterOptions, ConnConfig, PgHost, Secret};

use crate::cmd::require;
use crate::procs::SiteProcess;
use crate::{BedError, Site};

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// How to make a server.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The bootstrap superuser (also used for replication).
    pub superuser: String,
    pub password: Secret,
    pub port: u16,
    /// `postgresql.conf` settings after the bed's defaults (which are
    /// `listen_addresses` = the site's address, `port`, the socket directory,
    /// `fsync=off`, `max_connections=40`, `shared_buffers=32MB`,
    /// `log_min_messages=warning`, `timezone=UTC`; PostgreSQL's own defaults
    /// already stream: `wal_level=replica`, `max_wal_senders=10`, `hot_standby=on`).
    pub settings: Vec<(String, String)>,
    /// Server binaries; `None`: `LIFEBOAT_PG_BIN`, else the newest
    /// `/usr/lib/postgresql/<major>/bin`.
    pub bin_dir: Option<PathBuf>,
}

impl Default for PgOptions {
    fn default() -> Self {
        let c = ClusterOptions::default();
        PgOptions {
            superuser: c.superuser,
            password: c.password,
            port: 5432,
            settings: Vec::new(),
            bin_dir: c.bin_dir,
        }
    }
}

impl PgOptions {
    /// Adds a `postgresql.conf` setting (e.g. `wal_log_hints`, `on`).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }
}

/// A PostgreSQL server in a site.
pub struct SitePostgres {
    site: Site,
    dir: PathBuf,
    opts: PgOptions,
    bin_dir: PathBuf,
    owner: (u32, u32),
    process: Option<SiteProcess>,
}

impl std::fmt::Debug for SitePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SitePostgres")
            .field("site", &self.site.name())
            .field("addr", &self.site.addr())
            .field("port", &self.opts.port)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Site {
    /// `initdb` and a started server in this site.
    pub async fn postgres(&self, opts: PgOptions) -> Result<SitePostgres, BedError> {
        let mut pg = SitePostgres::prepare(self, opts)?;
        let pwfile = pg.dir.join("pwfile");
        write_owned(
            &pwfile,
            &format!("{}\n", pg.opts.password.expose()),
            pg.owner,
            0o600,
        )?;
        let out = tokio::process::Command::new(pg.bin_dir.join("initdb"))
            .arg("-D")
            .arg(pg.data_dir())
            .arg("-U")
            .arg(&pg.opts.superuser)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(&pg.dir)
            .uid(pg.owner.0)
            .gid(pg.owner.1)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(BedError::io("running initdb"));
        let _ = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(pg.error(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let net = {
            let o = self.addr().octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        };
        let hba = pg.data_dir().join("pg_hba.conf");
        let mut text =
            std::fs::read_to_string(&hba).map_err(BedError::io("reading pg_hba.conf"))?;
        text.push_str(&format!(
            "host all all {net} scram-sha-256\nhost replication all {net} scram-sha-256\n"
        ));
        std::fs::write(&hba, text).map_err(BedError::io("writing pg_hba.conf"))?;
        pg.write_conf()?;
        pg.start().await?;
        Ok(pg)
    }

    /// A standby in this site of `primary` (in another site): `pg_basebackup
    /// -R` over the bed's network, then started; it streams from `primary`
    /// with the same superuser and password. `settings` of `opts` apply; its
    /// user and password are the primary's.
    pub async fn standby_of(
        &self,
        primary: &SitePostgres,
        opts: PgOptions,
    ) -> Result<SitePostgres, BedError> {
        let opts = PgOptions {
            superuser: primary.opts.superuser.clone(),
            password: primary.opts.password.clone(),
            bin_dir: Some(primary.bin_dir.clone()),
            ..opts
        };
        let mut pg = SitePostgres::prepare(self, opts)?;
        let setpriv = require("setpriv", "util-linux")?;
        let out = self
            .command([setpriv.as_os_str()])
            .args(pg.setpriv_args())
            .arg(pg.bin_dir.join("pg_basebackup"))
            .args(["-h", &primary.site.addr().to_string()])
            .args(["-p", &primary.opts.port.to_string()])
            .arg("-U")
            .arg(&pg.opts.superuser)
            .arg("-D")
            .arg(pg.data_dir())
            .args(["-X", "stream", "-c", "fast", "--no-sync", "-R"])
            .env("PGPASSWORD", pg.opts.password.expose())
            .env("PGCONNECT_TIMEOUT", "10")
            .current_dir(&pg.dir)
            .output()
            .await
            .map_err(BedError::io("running pg_basebackup"))?;
        if !out.status.success() {
            return Err(pg.error(format!(
                "pg_basebackup from {} failed: {}",
                primary.site.name(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        pg.start().await?;
        Ok(pg)
    }
}

impl SitePostgres {
    /// The directory (owned by `postgres`) below the site's.
    fn prepare(site: &Site, opts: PgOptions) -> Result<Self, BedError> {
        require("setpriv", "util-linux")?;
        let bin_dir = match &opts.bin_dir {
            Some(d) => d.clone(),
            None => find_bin_dir()?,
        };
        if !bin_dir.join("postgres").is_file() {
            return Err(BedError::MissingTool {
                tool: "postgres",
                package: "postgresql-15",
            });
        }
        let owner = postgres_owner()?;
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let dir = site.dir().join(format!("pg{n}"));
        for d in [dir.clone(), dir.join("sock")] {
            std::fs::create_dir_all(&d)
                .map_err(BedError::io(format!("creating {}", d.display())))?;
            chown(&d, owner, 0o700)?;
        }
        Ok(SitePostgres {
            site: site.clone(),
            dir,
            opts,
            bin_dir,
            owner,
            process: None,
        })
    }

    /// Appends the bed's settings to `postgresql.conf`, for a server that
    /// another program starts on this data directory or a copy of it (a
    /// failover agent's `pg_ctl start`, a standby seeded by `pg_basebackup`
    /// in another site): it listens on every address of the namespace it
    /// runs in (`*`: each site has one) on the same port, and has no Unix
    /// socket (the sites share the file system, and two servers on one port
    /// would fight over one socket path). The bed's own start passes the
    /// same settings with `-c`, which take precedence.
    fn write_conf(&self) -> Result<(), BedError> {
        let conf = self.data_dir().join("postgresql.conf");
        let mut text =
            std::fs::read_to_string(&conf).map_err(BedError::io("reading postgresql.conf"))?;
        text.push_str("\n# lifeboat-testbed\n");
        for (k, v) in self.settings("*", "") {
            text.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        std::fs::write(&conf, text).map_err(BedError::io("writing postgresql.conf"))
    }

    /// The bed's settings (listening on `listen`, the socket in `socket_dir`,
    /// `''` for none), then the options' own: what the bed's start passes
    /// with `-c` and what [`Self::write_conf`] writes.
    fn settings(&self, listen: &str, socket_dir: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [
            ("listen_addresses", listen.to_string()),
            ("port", self.opts.port.to_string()),
            ("unix_socket_directories", socket_dir.to_string()),
            ("fsync", "off".into()),
            ("max_connections", "40".into()),
            ("shared_buffers", "32MB".into()),
            ("log_min_messages", "warning".into()),
            ("timezone", "UTC".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        out.extend(self.opts.settings.iter().cloned());
        out
    }

    fn setpriv_args(&self) -> Vec<String> {
        vec![
            format!("--reuid={}", self.owner.0),
            format!("--regid={}", self.owner.1),
            "--clear-groups".into(),
            "--".into(),
        ]
    }

    fn error(&self, message: String) -> BedError {
        BedError::Postgres {
            site: self.site.name().to_string(),
            message,
            log: self.log_path(),
        }
    }

    /// Starts the server (again, after [`SitePostgres::stop`] or a killed
    /// site) and waits until it accepts connections (or, as a standby, is
    /// consistent). A server killed with its site starts again only once its
    /// old postmaster is reaped, which [`crate::Bed::kill_site`] waits for.
    pub async fn start(&mut self) -> Result<(), BedError> {
        if self.is_running() {
            return Ok(());
        }
        let setpriv = require("setpriv", "util-linux")?;
        let mut argv = vec![setpriv.display().to_string()];
        argv.extend(self.setpriv_args());
        argv.push(self.bin_dir.join("postgres").display().to_string());
        argv.push("-D".into());
        argv.push(self.data_dir().display().to_string());
        let sock = self.socket_dir().display().to_string();
        for (k, v) in self.settings(&self.site.addr().to_string(), &sock) {
            argv.push("-c".into());
            argv.push(format!("{k}={v}"));
        }
        let log = self.log_path();
        let proc = self
            .site
            .spawn(&format!("postgres {}", self.site.name()), &argv, &log)?;
        self.process = Some(proc.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        let pidfile = self.data_dir().join("postmaster.pid");
        loop {
            // The file of a killed server stays behind, saying "ready": only
            // the new postmaster's own line counts.
            if let Ok(s) = std::fs::read_to_string(&pidfile)
                && s.lines()
                    .next()
                    .is_some_and(|l| l.trim() == proc.pid().to_string())
                && s.lines()
                    .nth(7)
                    .is_some_and(|l| matches!(l.trim(), "ready" | "standby"))
            {
                return Ok(());
            }
            if !proc.is_running() {
                return Err(self.error(format!("the server exited: {}", log_tail(&log))));
            }
            if Instant::now() > deadline {
                return Err(self.error("not ready within 60 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fast shutdown (SIGINT), waiting until the server has exited.
    pub async fn stop(&mut self) -> Result<(), BedError> {
        if let Some(p) = self.process.take() {
            p.signal(libc::SIGINT)?;
            if p.wait_exit(Duration::from_secs(30)).await.is_err() {
                p.kill().await?;
            }
        }
        Ok(())
    }

    /// Whether the server process runs (false after its site was killed).
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p.is_running())
    }
    pub fn process(&self) -> Option<&SiteProcess> {
        self.process.as_ref()
    }
    pub fn site(&self) -> &Site {
        &self.site
    }
    pub fn port(&self) -> u16 {
        self.opts.port
    }
    pub fn superuser(&self) -> &str {
        &self.opts.superuser
    }
    pub fn password(&self) -> &Secret {
        &self.opts.password
    }
    /// Holds `data/`, `sock/` and `postgres.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }
    /// The server's address: the site's address and the port.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.site.addr().into(), self.opts.port)
    }

    /// Connection settings for database `db` over TCP to the site's address
    /// (usable from code that runs in a site: [`Site::run`], or a process
    /// started in one), with the superuser's password.
    pub fn conn_config(&self, db: &str) -> ConnConfig {
        ConnConfig::new(
            PgHost::Tcp(self.site.addr().to_string()),
            self.opts.port,
            &self.opts.superuser,
            db,
        )
        .with_password(self.opts.password.clone())
    }

    /// `postgresql://user@addr:port/db` (no password in it).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{}@{}:{}/{db}",
            self.opts.superuser,
            self.site.addr(),
            self.opts.port
        )
    }

    /// A client connected from site `from` (the socket is in `from`'s
    /// namespace; the connection task runs on the caller's runtime).
    pub async fn connect_from(
        &self,
        from: &Site,
        db: &str,
    ) -> Result<tokio_postgres::Client, BedError> {
        let stream = from.connect(self.socket_addr()).await?;
        let mut cfg = tokio_postgres::Config::new();
        cfg.user(&self.opts.superuser)
            .password(self.opts.password.expose())
            .dbname(db);
        let (client, conn) = cfg
            .connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(|e| self.error(format!("connecting from {}: {e}", from.name())))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    s[s.len().saturating_sub(3000)..].to_string()
}

fn chown(path: &Path, owner: (u32, u32), mode: u32) -> Result<(), BedError> {
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
        .map_err(BedError::io(format!("chown {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(BedError::io(format!("chmod {}", path.display())))
}

fn write_owned(path: &Path, text: &str, owner: (u32, u32), mode: u32) -> Result<(), BedError> {
    std::fs::write(path, text).map_err(BedError::io(format!("writing {}", path.display())))?;
    chown(path, owner, mode)
}

/// uid and gid of the `postgres` OS user (`id -u`/`id -g`).
fn postgres_owner() -> Result<(u32, u32), BedError> {
    let id = |flag: &str| -> Option<u32> {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
    };
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => Err(BedError::MissingTool {
            tool: "the postgres OS user",
            package: "postgresql-15",
        }),
    }
}

/// `LIFEBOAT_PG_BIN`, else the newest `/usr/lib/postgresql/<major>/bin`.
fn find_bin_dir() -> Result<PathBuf, BedError> {
    if let Some(d) = std::env::var_os("LIFEBOAT_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|m| root.join(m.to_string()).join("bin/initdb").exists())
        .max();
    newest
        .map(|m| root.join(m.to_string()).join("bin"))
        .ok_or(BedError::MissingTool {
            tool: "initdb",
            package: "postgresql-15",
        })
}
