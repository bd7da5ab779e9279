//! Fencing PostgreSQL, undoing it, and proving it from outside.
//!
//! - [`FenceMethod::Stop`]: SIGQUIT to the postmaster named in the data
//!   directory's `postmaster.pid` (what `pg_ctl stop -m immediate` does,
//!   without a program to start first), when the server is controlled with
//!   `pg_ctl`; the configured stop command otherwise. Immediate, because the
//!   deadline matters more than a clean shutdown (crash recovery at the next
//!   start replays the WAL; nothing committed is lost). Then waits, bounded,
//!   until the postmaster is gone. A process that has exited but was not yet
//!   reaped (a zombie: here a killed process is reaped a second or two late)
//!   counts as gone: it serves nothing.
//! - [`FenceMethod::RevokeLogin`]: in one transaction `ALTER ROLE … NOLOGIN`
//!   for each listed role that can log in, remembered in
//!   `lifeboat.fence(role, revoked_at, epoch)` in the `lifeboat` database;
//!   then `pg_terminate_backend` of every session of those roles until none
//!   is left. [`unfence`] restores LOGIN for exactly the remembered roles: a
//!   role that was NOLOGIN before stays so.
//!
//! [`probe_fenced`] proves the fence by what the server answers: for Stop,
//! no connection is accepted (refused, no socket); for RevokeLogin, a login
//! as each role is refused with SQLSTATE 28000.

use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_postgres::conn::{ConnConfig, ConnError, PgHost, pg_message};
use lifeboat_postgres::facts::quote_ident;
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::method::FenceMethod;
use crate::heartbeat;
use crate::replication::target::{self, ServerControl, StandbyTarget, TargetError};

/// Errors of fencing and unfencing.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("{what} on {url}: {message}")]
    Sql {
        what: &'static str,
        url: String,
        message: String,
    },
    #[error(
        "the fence would revoke LOGIN of {role}, the role Lifeboat itself connects as: Lifeboat \
         could not undo it; connect as another role (a superuser) or leave {role} out of the \
         fence's roles"
    )]
    OwnRole { role: String },
    #[error(
        "cannot signal the postmaster {pid} of {pgdata}: {reason}; run Lifeboat as root or as \
         the data directory's owner"
    )]
    Signal {
        pid: i32,
        pgdata: String,
        reason: String,
    },
    #[error(
        "the postmaster {pid} of {pgdata} is still running {waited:?} after SIGQUIT and SIGKILL; \
         stop it by hand (kill -KILL {pid}) and check the host"
    )]
    StillRunning {
        pid: i32,
        pgdata: String,
        waited: Duration,
    },
    #[error(
        "{count} session(s) of {roles:?} still connected {waited:?} after pg_terminate_backend; \
         look at pg_stat_activity and terminate them by hand"
    )]
    SessionsLeft {
        roles: Vec<String>,
        count: i64,
        waited: Duration,
    },
}

impl FenceError {
    /// Whether retrying the fence may help (the server was not reached).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FenceError::Conn(ConnError::Unreachable { .. } | ConnError::Other { .. })
                | FenceError::SessionsLeft { .. }
        )
    }
}

fn sql(what: &'static str, conn: &ConnConfig) -> impl FnOnce(tokio_postgres::Error) -> FenceError {
    let url = conn.display_url();
    move |e| FenceError::Sql {
        what,
        url,
        message: pg_message(&e),
    }
}

/// What a fence did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FenceReport {
    pub method: FenceMethod,
    /// The server was stopped by this call (Stop; false when it was not running).
    pub stopped: bool,
    /// Roles whose LOGIN Lifeboat has revoked (now or by an earlier fence).
    pub roles_revoked: Vec<String>,
    /// Listed roles that were NOLOGIN before Lifeboat touched them (left alone).
    pub roles_already_nologin: Vec<String>,
    /// Listed roles that do not exist on the server.
    pub roles_missing: Vec<String>,
    pub sessions_terminated: u64,
    #[serde(serialize_with = "secs")]
    pub took: Duration,
}

impl FenceReport {
    /// The report of a fence with `method` before it did anything.
    fn nothing_yet(method: FenceMethod) -> FenceReport {
        FenceReport {
            method,
            stopped: false,
            roles_revoked: Vec::new(),
            roles_already_nologin: Vec::new(),
            roles_missing: Vec::new(),
            sessions_terminated: 0,
            took: Duration::ZERO,
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What stopping the postmaster found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PostmasterStop {
    /// No postmaster runs on the directory (no `postmaster.pid`, or a stale one).
    NotRunning,
    /// Stopped; `escalated` when SIGQUIT did not end it in time and SIGKILL did.
    Stopped { pid: i32, escalated: bool },
}

/// Whether process `pid` runs (exists and is not a zombie), from `/proc`.
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // state is the first field after the command name's closing paren
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` is the postmaster of `pgdata`: the postmaster's working
/// directory is its data directory. `None` when that cannot be read (another
/// user's process and we are not root).
fn is_postmaster_of(pid: i32, pgdata: &Path) -> Option<bool> {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let want = std::fs::canonicalize(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    Some(cwd == want)
}

async fn wait_gone(pid: i32, bound: Duration) -> bool {
    let until = Instant::now() + bound;
    loop {
        if !process_running(pid) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(pid: i32, sig: libc::c_int, pgdata: &Path) -> Result<(), FenceError> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(FenceError::Signal {
        pid,
        pgdata: pgdata.display().to_string(),
        reason: e.to_string(),
    })
}

/// Stops the postmaster of `pgdata` at once: SIGQUIT (immediate shutdown),
/// then waits up to `timeout` until it is gone; if it is not, SIGKILL (its
/// backends end when they see the postmaster die) and waits 5 s more.
/// Never signals a process that is not that directory's postmaster (a stale
/// `postmaster.pid` whose PID was reused).
pub async fn stop_postmaster(
    pgdata: &Path,
    timeout: Duration,
) -> Result<PostmasterStop, FenceError> {
    let Some(pid) = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|t| target::parse_postmaster_pid(&t))
        .map(|(pid, ..)| pid)
        .filter(|pid| *pid > 0)
    else {
        return Ok(PostmasterStop::NotRunning);
    };
    if !process_running(pid) || is_postmaster_of(pid, pgdata) == Some(false) {
        return Ok(PostmasterStop::NotRunning);
    }
    signal(pid, libc::SIGQUIT, pgdata)?;
    if wait_gone(pid, timeout).await {
        return Ok(PostmasterStop::Stopped {
            pid,
            escalated: false,
        });
    }
    tracing::warn!(
        pid,
        "the postmaster did not stop after SIGQUIT; sending SIGKILL"
    );
    signal(pid, libc::SIGKILL, pgdata)?;
    if wait_gone(pid, Duration::from_secs(5)).await {
        return Ok(PostmasterStop::Stopped {
            pid,
            escalated: true,
        });
    }
    Err(FenceError::StillRunning {
        pid,
        pgdata: pgdata.display().to_string(),
        waited: timeout + Duration::from_secs(5),
    })
}

/// Fences the server of `target` with `method`. `epoch` is the epoch the
/// primary served under (recorded with revoked roles). Idempotent: fencing
/// a fenced server succeeds and changes nothing.
pub async fn fence(
    target: &StandbyTarget,
    method: &FenceMethod,
    epoch: u64,
    timeout: Duration,
) -> Result<FenceReport, FenceError> {
    let started = Instant::now();
    let mut report = FenceReport::nothing_yet(method.clone());
    match method {
        FenceMethod::Stop => report.stopped = stop_server(target, timeout).await?,
        FenceMethod::RevokeLogin { roles } => {
            revoke_login(&target.conn, roles, epoch, timeout, &mut report).await?
        }
    }
    report.took = started.elapsed();
    Ok(report)
}

/// The RevokeLogin fence on the server behind `conn`, which Lifeboat need
/// not run (no data directory: a Patroni cluster's leader, reached through
/// its connect address). The same SQL as [`fence`] with
/// [`FenceMethod::RevokeLogin`]; fails on a server in recovery (a replica
/// cannot run `ALTER ROLE`: reach the leader).
pub async fn revoke_login_on(
    conn: &ConnConfig,
    roles: &[String],
    epoch: u64,
    timeout: Duration,
) -> Result<FenceReport, FenceError> {
    let started = Instant::now();
    let mut report = FenceReport::nothing_yet(FenceMethod::RevokeLogin {
        roles: roles.to_vec(),
    });
    revoke_login(conn, roles, epoch, timeout, &mut report).await?;
    report.took = started.elapsed();
    Ok(report)
}

/// Stop: the postmaster by signal (pg_ctl control; `pg_ctl stop -m
/// immediate` as the owner when we may not signal it), the stop command
/// otherwise. `true` when a running server was stopped.
async fn stop_server(target: &StandbyTarget, timeout: Duration) -> Result<bool, FenceError> {
    match &target.control {
        ServerControl::PgCtl { .. } => match stop_postmaster(&target.pgdata, timeout).await {
            Ok(PostmasterStop::NotRunning) => Ok(false),
            Ok(PostmasterStop::Stopped { .. }) => Ok(true),
            Err(FenceError::Signal { .. }) => {
                let owner = target::os_user(target.os_user.as_deref())?;
                let mut cmd = target::pg_command(target.bin_dir.join("pg_ctl"), owner);
                cmd.arg("stop")
                    .arg("-D")
                    .arg(&target.pgdata)
                    .args(["-m", "immediate", "-w", "-t"])
                    .arg(timeout.as_secs().max(1).to_string());
                target::run(
                    cmd,
                    "pg_ctl stop -m immediate",
                    timeout + Duration::from_secs(5),
                    "stop the server by hand",
                )
                .await?;
                Ok(true)
            }
            Err(e) => Err(e),
        },
        ServerControl::Commands { .. } => {
            target.stop(timeout).await?;
            Ok(true)
        }
    }
}

const FENCE_DDL: &str = "CREATE SCHEMA IF NOT EXISTS lifeboat; \
     CREATE TABLE IF NOT EXISTS lifeboat.fence ( \
         role text PRIMARY KEY, revoked_at timestamptz NOT NULL, epoch bigint NOT NULL)";

async fn revoke_login(
    conn: &ConnConfig,
    roles: &[String],
    epoch: u64,
    timeout: Duration,
    report: &mut FenceReport,
) -> Result<(), FenceError> {
    if let Some(own) = roles.iter().find(|r| **r == conn.user) {
        return Err(FenceError::OwnRole { role: own.clone() });
    }
    let db = heartbeat::lifeboat_db(conn);
    let mut client = heartbeat::ensure(conn).await.map_err(|e| match e {
        heartbeat::HeartbeatError::Conn(c) => FenceError::Conn(c),
        other => FenceError::Sql {
            what: "opening the lifeboat database",
            url: db.display_url(),
            message: other.to_string(),
        },
    })?;
    client
        .batch_execute(FENCE_DDL)
        .await
        .map_err(sql("creating lifeboat.fence", &db))?;
    let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
    let tx = client
        .transaction()
        .await
        .map_err(sql("beginning the fence", &db))?;
    for role in roles {
        let can_login: Option<bool> = tx
            .query_opt(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                &[role],
            )
            .await
            .map_err(sql("reading the role", &db))?
            .map(|r| r.get(0));
        match can_login {
            None => report.roles_missing.push(role.clone()),
            Some(true) => {
                tx.batch_execute(&format!("ALTER ROLE {} NOLOGIN", quote_ident(role)))
                    .await
                    .map_err(sql("revoking LOGIN", &db))?;
                tx.execute(
                    "INSERT INTO lifeboat.fence (role, revoked_at, epoch) \
                     VALUES ($1, clock_timestamp(), $2) ON CONFLICT (role) DO NOTHING",
                    &[role, &epoch],
                )
                .await
                .map_err(sql("recording the revoked role", &db))?;
                report.roles_revoked.push(role.clone());
            }
            Some(false) => {
                let ours = tx
                    .query_opt("SELECT 1 FROM lifeboat.fence WHERE role = $1", &[role])
                    .await
                    .map_err(sql("reading lifeboat.fence", &db))?
                    .is_some();
                if ours {
                    report.roles_revoked.push(role.clone());
                } else {
                    report.roles_already_nologin.push(role.clone());
                }
            }
        }
    }
    tx.commit()
        .await
        .map_err(sql("committing the fence", &db))?;
    report.sessions_terminated = terminate_sessions(&client, &db, roles, timeout).await?;
    Ok(())
}

/// Terminates every session of `roles` (other than our own) until none is
/// left, at most `timeout`; the number of sessions terminated.
async fn terminate_sessions(
    client: &Client,
    db: &ConnConfig,
    roles: &[String],
    timeout: Duration,
) -> Result<u64, FenceError> {
    let until = Instant::now() + timeout;
    let mut terminated = 0u64;
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE usename::text = ANY($1) AND pid <> pg_backend_pid()",
                &[&roles],
            )
            .await
            .map_err(sql("terminating sessions", db))?
            .get(0);
        terminated += u64::try_from(n).unwrap_or(0);
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE usename::text = ANY($1) AND pid <> pg_backend_pid()",
                &[&roles],
            )
            .await
            .map_err(sql("counting sessions", db))?
            .get(0);
        if left == 0 {
            return Ok(terminated);
        }
        if Instant::now() >= until {
            return Err(FenceError::SessionsLeft {
                roles: roles.to_vec(),
                count: left,
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What [`unfence`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnfenceReport {
    /// Stop: the server was started.
    pub started: bool,
    /// RevokeLogin: roles whose LOGIN was given back.
    pub roles_restored: Vec<String>,
}

/// Undoes a fence (the caller decides that this server may serve again: it
/// holds the lease and the authority's epoch). Stop: starts the server,
/// after waiting (bounded) until a postmaster that died without removing
/// `postmaster.pid` is reaped (PostgreSQL refuses to start while that PID
/// exists). RevokeLogin: `ALTER ROLE … LOGIN` for exactly the roles in
/// `lifeboat.fence`, whose rows are then deleted (a role that was NOLOGIN
/// before the fence is not there). Idempotent.
pub async fn unfence(
    target: &StandbyTarget,
    method: &FenceMethod,
    timeout: Duration,
) -> Result<UnfenceReport, FenceError> {
    match method {
        FenceMethod::Stop => {
            if let Some((pid, ..)) = std::fs::read_to_string(target.pgdata.join("postmaster.pid"))
                .ok()
                .and_then(|t| target::parse_postmaster_pid(&t))
            {
                if process_running(pid) && is_postmaster_of(pid, &target.pgdata) != Some(false) {
                    // already running
                    return Ok(UnfenceReport {
                        started: false,
                        roles_restored: Vec::new(),
                    });
                }
                let until = Instant::now() + Duration::from_secs(10);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            target.start(timeout).await?;
            Ok(UnfenceReport {
                started: true,
                roles_restored: Vec::new(),
            })
        }
        FenceMethod::RevokeLogin { .. } => Ok(UnfenceReport {
            started: false,
            roles_restored: restore_login(&target.conn).await?,
        }),
    }
}

/// `ALTER ROLE … LOGIN` for the roles `lifeboat.fence` lists on the server
/// behind `server`, deleting their rows, in one transaction. Also what a
/// promoted standby runs when the revocation had replicated to it before
/// the partition.
pub async fn restore_login(server: &ConnConfig) -> Result<Vec<String>, FenceError> {
    let db = heartbeat::lifeboat_db(server);
    let mut client = match db.connect().await {
        Ok(c) => c,
        Err(ConnError::DatabaseMissing { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let tx = client
        .transaction()
        .await
        .map_err(sql("beginning the unfence", &db))?;
    let rows = match tx
        .query(
            "SELECT role FROM lifeboat.fence ORDER BY role FOR UPDATE",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(Vec::new()),
        Err(e) => return Err(sql("reading lifeboat.fence", &db)(e)),
    };
    let mut restored = Vec::new();
    for row in rows {
        let role: String = row.get(0);
        let exists = tx
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(sql("reading the role", &db))?
            .is_some();
        if exists {
            tx.batch_execute(&format!("ALTER ROLE {} LOGIN", quote_ident(&role)))
                .await
                .map_err(sql("restoring LOGIN", &db))?;
            restored.push(role.clone());
        }
        tx.execute("DELETE FROM lifeboat.fence WHERE role = $1", &[&role])
            .await
            .map_err(sql("clearing lifeboat.fence", &db))?;
    }
    tx.commit()
        .await
        .map_err(sql("committing the unfence", &db))?;
    Ok(restored)
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// Stop: nothing accepted the connection (refused, or no socket).
    NoServer { target: String, reason: String },
    /// Stop: a server answered (accepted, or refused with this SQLSTATE).
    ServerAnswered {
        target: String,
        sqlstate: Option<String>,
        message: String,
    },
    /// Stop: the connection failed otherwise (timeout, ...): proves nothing.
    Inconclusive { target: String, reason: String },
    /// RevokeLogin: the server refused the login with SQLSTATE 28000.
    LoginRefused { role: String, message: String },
    /// RevokeLogin: the login was accepted (not fenced).
    LoginAccepted { role: String },
    /// RevokeLogin: the login failed for another reason (wrong password,
    /// 28P01; unreachable): proves nothing.
    LoginFailed {
        role: String,
        sqlstate: Option<String>,
        message: String,
    },
    /// RevokeLogin, no credentials given for the role: what the server's
    /// catalog says (`rolcanlogin`, open sessions).
    Catalog {
        role: String,
        can_login: Option<bool>,
        sessions: i64,
    },
}

impl Evidence {
    /// Whether this piece shows the fence holding.
    pub fn holds(&self) -> bool {
        match self {
            Evidence::NoServer { .. } | Evidence::LoginRefused { .. } => true,
            Evidence::Catalog {
                can_login,
                sessions,
                ..
            } => *can_login != Some(true) && *sessions == 0,
            _ => false,
        }
    }
}

/// The fence as seen from outside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FenceProbe {
    /// Every piece of evidence holds.
    pub fenced: bool,
    pub evidence: Vec<Evidence>,
}

/// Connects with `conn` as it is and returns the driver's error (with the
/// server's SQLSTATE) rather than [`ConnError`]'s classification.
async fn try_login(conn: &ConnConfig) -> Result<Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    match &conn.host {
        PgHost::Tcp(h) => cfg.host(h),
        PgHost::Unix(p) => cfg.host_path(p),
    };
    cfg.port(conn.port)
        .user(&conn.user)
        .dbname(&conn.dbname)
        .application_name("lifeboat fence probe")
        .connect_timeout(conn.connect_timeout);
    if let Ok(Some((pw, _))) = conn.resolve_password() {
        cfg.password(pw.expose());
    }
    let (client, connection) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn io_kind(e: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        src = s.source();
    }
    None
}

/// Proves the fence from outside. Stop: a connection to `target.conn` is
/// not accepted by anything (refused, or no socket file). RevokeLogin: for
/// each role with credentials in `logins` (a `ConnConfig` whose `user` is
/// the role), a login is refused with SQLSTATE 28000; for a role without
/// credentials the server's catalog must say NOLOGIN and no session (read
/// through `target.conn`). Run it on the server's host: from elsewhere a
/// partition also looks like "no server".
pub async fn probe_fenced(
    target: &StandbyTarget,
    method: &FenceMethod,
    logins: &[ConnConfig],
) -> Result<FenceProbe, FenceError> {
    let mut evidence = Vec::new();
    match method {
        FenceMethod::Stop => {
            let t = target.conn.display_url();
            evidence.push(match try_login(&target.conn).await {
                Ok(_) => Evidence::ServerAnswered {
                    target: t,
                    sqlstate: None,
                    message: "connection accepted".into(),
                },
                Err(e) => match e.as_db_error() {
                    Some(db) => Evidence::ServerAnswered {
                        target: t,
                        sqlstate: Some(db.code().code().to_string()),
                        message: db.message().to_string(),
                    },
                    None => match io_kind(&e) {
                        Some(
                            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound,
                        ) => Evidence::NoServer {
                            target: t,
                            reason: e.to_string(),
                        },
                        _ => Evidence::Inconclusive {
                            target: t,
                            reason: e.to_string(),
                        },
                    },
                },
            });
        }
        FenceMethod::RevokeLogin { roles } => {
            for role in roles {
                let piece = match logins.iter().find(|c| c.user == *role) {
                    Some(conn) => match try_login(conn).await {
                        Ok(_) => Evidence::LoginAccepted { role: role.clone() },
                        Err(e) => match e.as_db_error() {
                            Some(db)
                                if *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                            {
                                Evidence::LoginRefused {
                                    role: role.clone(),
                                    message: db.message().to_string(),
                                }
                            }
                            Some(db) => Evidence::LoginFailed {
                                role: role.clone(),
                                sqlstate: Some(db.code().code().to_string()),
                                message: db.message().to_string(),
                            },
                            None => Evidence::LoginFailed {
                                role: role.clone(),
                                sqlstate: None,
                                message: e.to_string(),
                            },
                        },
                    },
                    None => catalog_evidence(&target.conn, role).await?,
                };
                evidence.push(piece);
            }
        }
    }
    Ok(FenceProbe {
        fenced: !evidence.is_empty() && evidence.iter().all(Evidence::holds),
        evidence,
    })
}

async fn catalog_evidence(server: &ConnConfig, role: &str) -> Result<Evidence, FenceError> {
    let client = server.connect().await?;
    let row = client
        .query_one(
            "SELECT (SELECT rolcanlogin FROM pg_roles WHERE rolname = $1), \
                    (SELECT count(*) FROM pg_stat_activity WHERE usename::text = $1)",
            &[&role],
        )
        .await
        .map_err(sql("reading the role", server))?;
    Ok(Evidence::Catalog {
        role: role.to_string(),
        can_login: row.get(0),
        sessions: row.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_processes_are_seen_and_zombies_are_not() {
        assert!(process_running(std::process::id() as i32));
        assert!(!process_running(i32::MAX));
        // a child that exited and was not reaped yet: a zombie
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let until = Instant::now() + Duration::from_secs(10);
        while process_running(pid) {
            assert!(Instant::now() < until, "`true` did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "reaped too early"
        );
        child.wait().unwrap();
    }

    #[test]
    fn evidence_table() {
        let cases = [
            (
                Evidence::NoServer {
                    target: "t".into(),
                    reason: "refused".into(),
                },
                true,
            ),
            (
                Evidence::ServerAnswered {
                    target: "t".into(),
                    sqlstate: Some("57P03".into()),
                    message: "shutting down".into(),
                },
                false,
            ),
            (
                Evidence::LoginRefused {
                    role: "app".into(),
                    message: "not permitted".into(),
                },
                true,
            ),
            (Evidence::LoginAccepted { role: "app".into() }, false),
            (
                Evidence::LoginFailed {
                    role: "app".into(),
                    sqlstate: Some("28P01".into()),
                    message: "password".into(),
                },
                false,
            ),
            (
                Evidence::Catalog {
                    role: "app".into(),
                    can_login: Some(false),
                    sessions: 0,
                },
                true,
            ),
            (
                Evidence::Catalog {
                    role: "app".into(),
                    can_login: Some(false),
                    sessions: 1,
                },
                false,
            ),
            (
                Evidence::Catalog {
                    role: "gone".into(),
                    can_login: None,
                    sessions: 0,
                },
                true,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.holds(), want, "{e:?}");
        }
    }
}
