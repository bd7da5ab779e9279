//! Connection settings for one PostgreSQL database, and how the password is found.
//!
//! A [`ConnConfig`] is parsed from a libpq URL (`postgresql://user@host:port/db`,
//! also the `key=value` form) but **never carries a password from the URL**: a URL
//! ends up in configuration files, process listings and logs, so a password in it
//! is refused. The password comes, in this order, from
//! 1. an explicit [`Secret`] that the caller resolved (config reference, Kubernetes Secret),
//! 2. the `PGPASSWORD` environment variable,
//! 3. the password file (`PGPASSFILE`, else `~/.pgpass`), looked up exactly like libpq
//!    does it, including libpq's rule that a file readable by group or others is ignored.
//!
//! tokio-postgres reads none of these sources itself, which is why the lookup lives here.
//! Child processes (`pg_dump`, `pg_restore`, `psql`) get the connection through `PG*`
//! environment variables ([`ConnConfig::apply_to_command`]); nothing secret is ever put
//! on their command line.
//!
//! Connections are made without TLS for now (`sslmode=require` is refused with a
//! clear error); in-cluster PostgreSQL services are usually plain TCP.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Default connect timeout; an unreachable server should fail fast and clearly.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket directories that libpq treats as "localhost" when matching `.pgpass`
/// entries (upstream default `/tmp`, Debian's `/var/run/postgresql`).
const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// Environment variables that would silently change what a child libpq program
/// connects to; they are removed before ours are set.
const CONFLICTING_ENV: &[&str] = &[
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGHOSTADDR",
    "PGOPTIONS",
    "PGTARGETSESSIONATTRS",
    "PGREQUIRESSL",
];

/// A secret string (password). Its `Debug` output is redacted so it cannot leak
/// through logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value; call only where it is handed to the server or a child process.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the server lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgHost {
    /// Host name or IP address (TCP).
    Tcp(String),
    /// Directory holding the Unix-domain socket `.s.PGSQL.<port>`.
    Unix(PathBuf),
}

impl fmt::Display for PgHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgHost::Tcp(h) => f.write_str(h),
            PgHost::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where the password used for a connection came from (for diagnostics; never the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Explicit,
    EnvPgPassword,
    PassFile(PathBuf),
}

/// Errors of this module. Messages name the server and user, never the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid PostgreSQL connection URL: {0}")]
    InvalidUrl(String),
    #[error(
        "the connection URL contains a password, which is not accepted (URLs end up in \
         process lists, configs and logs); remove it and use PGPASSWORD, ~/.pgpass or a \
         secret reference in the configuration"
    )]
    PasswordInUrl,
    #[error("cannot reach PostgreSQL at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("authentication failed for user \"{user}\" at {target}: {reason}")]
    AuthFailed {
        user: String,
        target: String,
        reason: String,
    },
    #[error("database \"{database}\" does not exist on {target}")]
    DatabaseMissing { database: String, target: String },
    #[error("reading password file {path}: {source}")]
    PassFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connecting to {target}: {source}")]
    Other {
        target: String,
        source: tokio_postgres::Error,
    },
}

/// Connection parameters of one database (see the module docs for the password rules).
#[derive(Clone, Debug)]
pub struct ConnConfig {
    pub host: PgHost,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub application_name: String,
    pub connect_timeout: Duration,
    password: Option<Secret>,
    passfile: Option<PathBuf>,
}

impl ConnConfig {
    /// A configuration from its parts, without a password (see [`Self::with_password`]).
    pub fn new(
        host: PgHost,
        port: u16,
        user: impl Into<String>,
        dbname: impl Into<String>,
    ) -> Self {
        ConnConfig {
            host,
            port,
            user: user.into(),
            dbname: dbname.into(),
            application_name: "lifeboat".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            password: None,
            passfile: None,
        }
    }

    /// Parses a libpq URL or `key=value` string. As in libpq, the host defaults to
    /// `PGHOST` or the local socket directory, the user to `PGUSER`, the port to
    /// 5432 and the database to the user name. A URL that carries
    /// a password is refused ([`ConnError::PasswordInUrl`]).
    pub fn parse(url: &str) -> Result<Self, ConnError> {
        let cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| ConnError::InvalidUrl(format!("{e}")))?;
        if cfg.get_password().is_some() {
            return Err(ConnError::PasswordInUrl);
        }
        if cfg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(ConnError::InvalidUrl(
                "sslmode=require is not supported yet (connections are made without TLS)".into(),
            ));
        }
        let host = match cfg.get_hosts() {
            // libpq's default: PGHOST, else the local socket directory (Debian's).
            [] => match std::env::var("PGHOST") {
                Ok(h) if h.starts_with('/') => PgHost::Unix(PathBuf::from(h)),
                Ok(h) if !h.is_empty() => PgHost::Tcp(h),
                _ => PgHost::Unix(PathBuf::from("/var/run/postgresql")),
            },
            [tokio_postgres::config::Host::Tcp(h)] => PgHost::Tcp(h.clone()),
            [tokio_postgres::config::Host::Unix(p)] => PgHost::Unix(p.clone()),
            _ => {
                return Err(ConnError::InvalidUrl(
                    "more than one host is not supported; name the primary".into(),
                ));
            }
        };
        let port = match cfg.get_ports() {
            [] => 5432,
            [p] => *p,
            _ => return Err(ConnError::InvalidUrl("more than one port given".into())),
        };
        let user = match cfg.get_user() {
            Some(u) => u.to_string(),
            None => std::env::var("PGUSER").map_err(|_| {
                ConnError::InvalidUrl("no user given (and PGUSER is not set)".into())
            })?,
        };
        let dbname = cfg
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        let mut out = ConnConfig::new(host, port, user, dbname);
        if let Some(app) = cfg.get_application_name() {
            out.application_name = app.to_string();
        }
        if let Some(t) = cfg.get_connect_timeout() {
            out.connect_timeout = *t;
        }
        Ok(out)
    }

    /// Sets the explicit password (highest precedence).
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Uses this password file instead of `PGPASSFILE` / `~/.pgpass` (same rules).
    pub fn with_passfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.passfile = Some(path.into());
        self
    }

    /// The same server and credentials, another database (e.g. `postgres` for
    /// maintenance, or a restore target).
    pub fn with_dbname(&self, dbname: impl Into<String>) -> Self {
        let mut c = self.clone();
        c.dbname = dbname.into();
        c
    }

    /// `postgresql://user@host:port/db` without any password, for messages and logs.
    pub fn display_url(&self) -> String {
        match &self.host {
            PgHost::Tcp(h) if h.contains(':') => {
                format!(
                    "postgresql://{}@[{}]:{}/{}",
                    self.user, h, self.port, self.dbname
                )
            }
            PgHost::Tcp(h) => format!(
                "postgresql://{}@{}:{}/{}",
                self.user, h, self.port, self.dbname
            ),
            PgHost::Unix(p) => format!(
                "postgresql://{}@{}:{}/{}",
                self.user,
                p.display().to_string().replace('/', "%2F"),
                self.port,
                self.dbname
            ),
        }
    }

    fn target(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }

    /// Finds the password by the precedence in the module docs; `None` when no source
    /// has one (the server may not need one: trust or peer authentication).
    pub fn resolve_password(&self) -> Result<Option<(Secret, PasswordSource)>, ConnError> {
        if let Some(p) = &self.password {
            return Ok(Some((p.clone(), PasswordSource::Explicit)));
        }
        if let Ok(p) = std::env::var("PGPASSWORD")
            && !p.is_empty()
        {
            return Ok(Some((Secret(p), PasswordSource::EnvPgPassword)));
        }
        let Some(path) = self.passfile.clone().or_else(passfile_path) else {
            return Ok(None);
        };
        let host = match &self.host {
            PgHost::Tcp(h) => h.clone(),
            PgHost::Unix(p) => {
                let s = p.display().to_string();
                if DEFAULT_SOCKET_DIRS.contains(&s.trim_end_matches('/')) {
                    "localhost".to_string()
                } else {
                    s
                }
            }
        };
        Ok(
            pgpass_lookup(&path, &host, self.port, &self.dbname, &self.user)?
                .map(|s| (s, PasswordSource::PassFile(path))),
        )
    }

    /// Connects and spawns the connection task on the current tokio runtime.
    /// Errors are classified: unreachable server, failed authentication, missing database.
    pub async fn connect(&self) -> Result<Client, ConnError> {
        let mut cfg = tokio_postgres::Config::new();
        match &self.host {
            PgHost::Tcp(h) => cfg.host(h),
            PgHost::Unix(p) => cfg.host_path(p),
        };
        cfg.port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout);
        if let Some((pw, _)) = self.resolve_password()? {
            cfg.password(pw.expose());
        }
        match cfg.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "postgres connection ended with an error");
                    }
                });
                Ok(client)
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    fn classify(&self, e: tokio_postgres::Error) -> ConnError {
        let target = self.target();
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                return ConnError::AuthFailed {
                    user: self.user.clone(),
                    target,
                    reason: db.message().to_string(),
                };
            }
            if *code == SqlState::INVALID_CATALOG_NAME {
                return ConnError::DatabaseMissing {
                    database: self.dbname.clone(),
                    target,
                };
            }
            return ConnError::Other { target, source: e };
        }
        let text = e.to_string();
        let cause = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        if cause.contains("password missing") || text.contains("password missing") {
            return ConnError::AuthFailed {
                user: self.user.clone(),
                target,
                reason: "the server asks for a password and none was found (explicit secret, \
                         PGPASSWORD, password file)"
                    .into(),
            };
        }
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return ConnError::Unreachable {
                    target,
                    reason: io.to_string(),
                };
            }
            src = s.source();
        }
        if text.contains("timeout") || text.contains("error connecting") {
            return ConnError::Unreachable {
                target,
                reason: text,
            };
        }
        ConnError::Other { target, source: e }
    }

    /// The environment a libpq child program needs to reach this database:
    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`
    /// and, when one was found, `PGPASSWORD`. The password is passed only this way
    /// (a process's environment is readable only by its owner and root, unlike argv).
    pub fn child_env(&self) -> Result<Vec<(OsString, OsString)>, ConnError> {
        let host: OsString = match &self.host {
            PgHost::Tcp(h) => h.into(),
            PgHost::Unix(p) => p.clone().into_os_string(),
        };
        let mut env: Vec<(OsString, OsString)> = vec![
            ("PGHOST".into(), host),
            ("PGPORT".into(), self.port.to_string().into()),
            ("PGUSER".into(), self.user.clone().into()),
            ("PGDATABASE".into(), self.dbname.clone().into()),
            ("PGAPPNAME".into(), self.application_name.clone().into()),
            (
                "PGCONNECT_TIMEOUT".into(),
                self.connect_timeout.as_secs().max(2).to_string().into(),
            ),
        ];
        if let Some((pw, _)) = self.resolve_password()? {
            env.push(("PGPASSWORD".into(), pw.expose().into()));
        }
        Ok(env)
    }

    /// Prepares `cmd` (a libpq program) to connect to this database: removes `PG*`
    /// variables that would redirect it and sets those of [`Self::child_env`].
    pub fn apply_to_command(&self, cmd: &mut std::process::Command) -> Result<(), ConnError> {
        for k in CONFLICTING_ENV {
            cmd.env_remove(k);
        }
        cmd.env_remove("PGPASSWORD");
        for (k, v) in self.child_env()? {
            cmd.env(k, v);
        }
        Ok(())
    }
}

/// `server_version_num` of the server behind `client` (e.g. 150014), for choosing
/// client tools with [`crate::tools::server_major`] and [`crate::tools::discover`].
pub async fn server_version_num(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT current_setting('server_version_num')::int8", &[])
        .await?
        .get(0))
}

/// The most useful text of a tokio-postgres error: the server's message with its
/// detail and hint when it is a database error, else the error's own text.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut s = format!("{}: {}", d.severity(), d.message());
            if let Some(x) = d.detail() {
                s.push_str(&format!(" (detail: {x})"));
            }
            if let Some(x) = d.hint() {
                s.push_str(&format!(" (hint: {x})"));
            }
            s
        }
        None => e.to_string(),
    }
}

fn passfile_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// Looks up a password in a libpq password file (`host:port:database:user:password`,
/// `*` matches anything, `\:` and `\\` escape, `#` starts a comment line).
///
/// Like libpq: a missing file is no error; a file that is not a regular file, or
/// whose mode gives any access to group or others (anything beyond 0600), is
/// ignored with a warning. The first matching line wins.
pub fn pgpass_lookup(
    path: &Path,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Result<Option<Secret>, ConnError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConnError::PassFile {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    if !meta.is_file() {
        tracing::warn!(path = %path.display(), "password file is not a plain file; ignored");
        return Ok(None);
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "password file has group or world access; permissions should be u=rw (0600) or less; ignored"
        );
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConnError::PassFile {
        path: path.to_path_buf(),
        source: e,
    })?;
    let port = port.to_string();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(fields) = split_pgpass_line(line) else {
            continue;
        };
        let want = [host, port.as_str(), database, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Ok(Some(Secret(fields[4].clone())));
        }
    }
    Ok(None)
}

/// Splits one `.pgpass` line into its five fields, unescaping `\x` to `x`.
/// A literal `*` written as `\*` is kept unescaped as `*` (libpq behaves the same).
fn split_pgpass_line(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::with_capacity(5);
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_urls_and_refuses_passwords() {
        let c = ConnConfig::parse("postgresql://kubernaut@db.example:6543/kubernaut").unwrap();
        assert_eq!(c.host, PgHost::Tcp("db.example".into()));
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "kubernaut");
        assert_eq!(c.dbname, "kubernaut");
        let c = ConnConfig::parse("postgresql://u@localhost").unwrap();
        assert_eq!((c.port, c.dbname.as_str()), (5432, "u"));
        let c = ConnConfig::parse("postgresql://u@%2Fvar%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(c.host, PgHost::Unix("/var/run/postgresql".into()));
        assert_eq!(
            c.display_url(),
            "postgresql://u@%2Fvar%2Frun%2Fpostgresql:5432/db"
        );
        assert!(matches!(
            ConnConfig::parse("postgresql://u:hunter2@h/db"),
            Err(ConnError::PasswordInUrl)
        ));
        assert!(
            !format!(
                "{:?}",
                ConnConfig::parse("postgresql://u@h/db")
                    .unwrap()
                    .with_password(Secret::new("hunter2"))
            )
            .contains("hunter2")
        );
        assert!(matches!(
            ConnConfig::parse("mysql://x"),
            Err(ConnError::InvalidUrl(_))
        ));
    }

    #[test]
    fn pgpass_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgpass");
        std::fs::write(
            &p,
            "# comment\nother:5432:*:u:nope\nh\\:x:5432:db:u:with\\:colon\n*:*:*:u:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let get = |h: &str| pgpass_lookup(&p, h, 5432, "db", "u").unwrap().map(|s| s.0);
        assert_eq!(get("other").as_deref(), Some("nope"));
        assert_eq!(get("h:x").as_deref(), Some("with:colon"));
        assert_eq!(get("anything").as_deref(), Some("fallback"));
        assert_eq!(pgpass_lookup(&p, "x", 1, "db", "nobody").unwrap(), None);
        // group/world readable: ignored like libpq does
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(get("other"), None);
        assert_eq!(
            pgpass_lookup(&dir.path().join("missing"), "h", 1, "d", "u").unwrap(),
            None
        );
    }
}
