//! The standby's side: where its data directory is, who owns it, how its
//! server is started and stopped, and what the directory holds now.
//!
//! Inspection reads the directory only: `PG_VERSION` and `global/pg_control`
//! make it a cluster, `pg_controldata` says which one (system identifier) and
//! in which state, `postmaster.pid` says whether a postmaster runs on it
//! (a process check that only works in the same PID namespace; the plan also
//! asks the standby's URL, see [`super::plan`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_postgres::conn::ConnConfig;
use serde::Serialize;

use super::observe::SystemId;

/// How the standby's server is started and stopped. Every program runs with
/// an argument vector and Lifeboat's child environment (no shell).
#[derive(Clone, Debug)]
pub enum ServerControl {
    /// `pg_ctl start|stop -D <pgdata>` from the target's `bin_dir`, as the
    /// target's OS user; the server's output goes to `log_file`.
    PgCtl { log_file: PathBuf },
    /// Two argument vectors run as they are (as Lifeboat's user), e.g.
    /// `["systemctl", "start", "postgresql@15-main"]`; each must return once
    /// the server is started (stopped) and exit 0.
    Commands {
        start: Vec<String>,
        stop: Vec<String>,
    },
}

/// The data directory to seed and the server that will run on it.
#[derive(Clone, Debug)]
pub struct StandbyTarget {
    /// The standby's name (its region): the `application_name` it streams
    /// under and the base of its replication slot's name.
    pub name: String,
    pub pgdata: PathBuf,
    /// Directory of `pg_basebackup`, `pg_controldata` and `pg_ctl` (same
    /// major version as the primary).
    pub bin_dir: PathBuf,
    /// OS user owning the data directory and running the server tools;
    /// `None` = `postgres` when Lifeboat runs as root, else Lifeboat's own user.
    pub os_user: Option<String>,
    /// How Lifeboat reaches the standby once it runs (a physical copy has the
    /// primary's roles and passwords).
    pub conn: ConnConfig,
    pub control: ServerControl,
    /// Settings this server needs that differ from the primary's (the base
    /// backup copies the primary's `postgresql.conf` and `postgresql.auto.conf`
    /// when they live in the data directory), e.g. `port`, `listen_addresses`.
    /// Written to `postgresql.auto.conf`.
    pub settings: Vec<(String, String)>,
    /// The password file the standby's WAL receiver reads (`passfile=` in
    /// `primary_conninfo`); keep it outside `pgdata` so that no copy of the
    /// data directory carries the password. See [`default_passfile`].
    pub passfile: PathBuf,
}

/// `<parent of pgdata>/<pgdata's name>.replication.pgpass`: next to the data
/// directory, not in it.
pub fn default_passfile(pgdata: &Path) -> PathBuf {
    let name = pgdata
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pgdata".into());
    pgdata
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!("{name}.replication.pgpass"))
}

/// `postmaster.pid` of a data directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PostmasterPid {
    pub pid: i32,
    /// Start time, seconds since the epoch.
    pub start_epoch: i64,
    pub port: Option<u16>,
    /// `starting`, `stopping`, `ready`, `standby` (PostgreSQL 10+).
    pub status: Option<String>,
    /// Whether a process with that pid exists in our PID namespace.
    pub alive: bool,
}

/// A data directory holding a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterDir {
    /// From `pg_controldata`; `None` when it could not be read.
    pub system_identifier: Option<SystemId>,
    /// `Database cluster state` (`in production`, `shut down`, `in archive recovery`, ...).
    pub state: Option<String>,
    pub standby_signal: bool,
    pub postmaster: Option<PostmasterPid>,
}

/// What the target data directory holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetDir {
    Missing,
    Empty,
    /// Files, but not a PostgreSQL cluster.
    NotACluster {
        entries: usize,
    },
    Cluster(ClusterDir),
}

/// Errors of the target's side.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    User(String),
    #[error("{program} failed ({status}): {output}")]
    Program {
        program: String,
        status: String,
        output: String,
    },
    #[error("{program} did not finish within {seconds} s; {hint}")]
    Timeout {
        program: String,
        seconds: u64,
        hint: String,
    },
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TargetError {
    let path = path.to_path_buf();
    move |source| TargetError::Io { what, path, source }
}

/// Parses `postmaster.pid` (line 1 pid, 3 start time, 4 port, 8 status).
pub fn parse_postmaster_pid(text: &str) -> Option<(i32, i64, Option<u16>, Option<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines.first()?.trim().parse().ok()?;
    let start = lines.get(2)?.trim().parse().ok()?;
    let port = lines.get(3).and_then(|l| l.trim().parse().ok());
    let status = lines
        .get(7)
        .map(|l| l.trim().to_string())
        .filter(|s| !s.is_empty());
    Some((pid, start, port, status))
}

/// Parses `pg_controldata` output (run with `LC_ALL=C`): the system
/// identifier and the cluster state.
pub fn parse_controldata(text: &str) -> (Option<SystemId>, Option<String>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    (
        field("Database system identifier").and_then(|v| v.parse().ok().map(SystemId)),
        field("Database cluster state"),
    )
}

/// Reads what `pgdata` holds (see the module docs). Runs `pg_controldata`
/// from `bin_dir` (as is: it reads the control file and needs no server).
pub async fn inspect(pgdata: &Path, bin_dir: &Path) -> Result<TargetDir, TargetError> {
    let entries = match std::fs::read_dir(pgdata) {
        Ok(rd) => rd.count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TargetDir::Missing),
        Err(e) => return Err(io("reading the target data directory", pgdata)(e)),
    };
    if entries == 0 {
        return Ok(TargetDir::Empty);
    }
    if !pgdata.join("PG_VERSION").is_file() || !pgdata.join("global/pg_control").is_file() {
        return Ok(TargetDir::NotACluster { entries });
    }
    let out = lifeboat_postgres::tools::child_command(bin_dir.join("pg_controldata"))
        .env("LC_ALL", "C")
        .arg("-D")
        .arg(pgdata)
        .output();
    let (system_identifier, state) = match out {
        Ok(o) if o.status.success() => parse_controldata(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr), "pg_controldata failed");
            (None, None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "running pg_controldata");
            (None, None)
        }
    };
    let postmaster = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|t| parse_postmaster_pid(&t))
        .map(|(pid, start_epoch, port, status)| PostmasterPid {
            pid,
            start_epoch,
            port,
            status,
            alive: pid > 0 && Path::new(&format!("/proc/{pid}")).exists(),
        });
    Ok(TargetDir::Cluster(ClusterDir {
        system_identifier,
        state,
        standby_signal: pgdata.join("standby.signal").exists(),
        postmaster,
    }))
}

/// uid and gid of the OS user that runs the server tools: `name`, else
/// `postgres` when we are root; `None` = run as ourselves.
pub fn os_user(name: Option<&str>) -> Result<Option<(u32, u32)>, TargetError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let name = match name {
        Some(n) => n,
        None if root => "postgres",
        None => return Ok(None),
    };
    let c = std::ffi::CString::new(name)
        .map_err(|_| TargetError::User(format!("invalid OS user name {name:?}")))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(TargetError::User(format!(
            "there is no OS user {name:?} to run PostgreSQL's tools as (PostgreSQL refuses root); \
             create it or name the data directory's owner in the region's config"
        )));
    }
    Ok(Some((pwd.pw_uid, pwd.pw_gid)))
}

/// A command for a PostgreSQL program, run as `owner` (when given), from `/`,
/// with Lifeboat's child environment and the C locale.
pub(crate) fn pg_command(program: PathBuf, owner: Option<(u32, u32)>) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = lifeboat_postgres::tools::child_command(program);
    cmd.env("LC_ALL", "C").current_dir("/");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Runs `cmd` to completion within `timeout`, returning stdout+stderr on
/// failure as [`TargetError::Program`].
pub(crate) async fn run(
    mut cmd: std::process::Command,
    program: &str,
    timeout: Duration,
    hint: &str,
) -> Result<String, TargetError> {
    cmd.stdin(std::process::Stdio::null());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| TargetError::Timeout {
            program: program.to_string(),
            seconds: timeout.as_secs(),
            hint: hint.to_string(),
        })?
        .map_err(|e| TargetError::Program {
            program: program.to_string(),
            status: "not started".into(),
            output: e.to_string(),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(TargetError::Program {
            program: program.to_string(),
            status: out.status.to_string(),
            output: text.trim().to_string(),
        })
    }
}

impl StandbyTarget {
    /// Starts the server (waiting until it accepts connections, for `pg_ctl`).
    pub async fn start(&self, timeout: Duration) -> Result<(), TargetError> {
        match &self.control {
            ServerControl::PgCtl { log_file } => {
                let owner = os_user(self.os_user.as_deref())?;
                let mut cmd = pg_command(self.bin_dir.join("pg_ctl"), owner);
                cmd.arg("start")
                    .arg("-D")
                    .arg(&self.pgdata)
                    .arg("-l")
                    .arg(log_file)
                    .arg("-w")
                    .arg("-t")
                    .arg(timeout.as_secs().max(1).to_string());
                run(
                    cmd,
                    "pg_ctl start",
                    timeout + Duration::from_secs(5),
                    &format!("see the server log {}", log_file.display()),
                )
                .await
                .map(|_| ())
                .map_err(|e| with_log(e, log_file))
            }
            ServerControl::Commands { start, .. } => run_vector(start, "start", timeout).await,
        }
    }

    /// Stops the server (fast shutdown for `pg_ctl`).
    pub async fn stop(&self, timeout: Duration) -> Result<(), TargetError> {
        match &self.control {
            ServerControl::PgCtl { .. } => {
                let owner = os_user(self.os_user.as_deref())?;
                let mut cmd = pg_command(self.bin_dir.join("pg_ctl"), owner);
                cmd.arg("stop")
                    .arg("-D")
                    .arg(&self.pgdata)
                    .args(["-m", "fast", "-w", "-t"])
                    .arg(timeout.as_secs().max(1).to_string());
                run(
                    cmd,
                    "pg_ctl stop",
                    timeout + Duration::from_secs(5),
                    "stop the server by hand and rerun",
                )
                .await
                .map(|_| ())
            }
            ServerControl::Commands { stop, .. } => run_vector(stop, "stop", timeout).await,
        }
    }
}

fn with_log(e: TargetError, log_file: &Path) -> TargetError {
    match e {
        TargetError::Program {
            program,
            status,
            output,
        } => {
            let tail = std::fs::read_to_string(log_file)
                .map(|t| {
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(15)..].join("\n")
                })
                .unwrap_or_default();
            TargetError::Program {
                program,
                status,
                output: format!(
                    "{output}\nserver log {} (last lines):\n{tail}",
                    log_file.display()
                ),
            }
        }
        other => other,
    }
}

async fn run_vector(argv: &[String], what: &str, timeout: Duration) -> Result<(), TargetError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(TargetError::User(format!(
            "no {what} command configured for the standby's server"
        )));
    };
    let mut cmd = lifeboat_postgres::tools::child_command(program);
    cmd.args(args);
    run(
        cmd,
        program,
        timeout,
        &format!("the {what} command did not return"),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postmaster_pid_table() {
        let full = "4242\n/var/lib/postgresql/15/main\n1796540000\n5433\n/tmp\n127.0.0.1\n  1234567     98304\nready   \n";
        assert_eq!(
            parse_postmaster_pid(full),
            Some((4242, 1796540000, Some(5433), Some("ready".into())))
        );
        // an old or half-written file: what is there
        assert_eq!(
            parse_postmaster_pid("17\n/d\n1796540000\n"),
            Some((17, 1796540000, None, None))
        );
        assert_eq!(parse_postmaster_pid("17\n/d\n"), None);
        assert_eq!(parse_postmaster_pid("garbage"), None);
    }

    #[test]
    fn controldata_table() {
        let text = "pg_control version number:            1300\n\
                    Catalog version number:               202209061\n\
                    Database system identifier:           7445071219013867590\n\
                    Database cluster state:               shut down in recovery\n\
                    pg_control last modified:             Sun Dec  6 07:00:00 2026\n";
        assert_eq!(
            parse_controldata(text),
            (
                Some(SystemId(7445071219013867590)),
                Some("shut down in recovery".into())
            )
        );
        assert_eq!(parse_controldata("nothing useful"), (None, None));
    }

    #[test]
    fn passfile_is_next_to_pgdata() {
        assert_eq!(
            default_passfile(Path::new("/var/lib/postgresql/15/main")),
            PathBuf::from("/var/lib/postgresql/15/main.replication.pgpass")
        );
        assert_eq!(
            default_passfile(Path::new("/pgdata")),
            PathBuf::from("/pgdata.replication.pgpass")
        );
    }

    #[tokio::test]
    async fn inspect_distinguishes_missing_empty_and_foreign() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("data");
        let bin = Path::new("/nonexistent");
        assert_eq!(inspect(&p, bin).await.unwrap(), TargetDir::Missing);
        std::fs::create_dir(&p).unwrap();
        assert_eq!(inspect(&p, bin).await.unwrap(), TargetDir::Empty);
        std::fs::write(p.join("notes.txt"), "mine").unwrap();
        assert_eq!(
            inspect(&p, bin).await.unwrap(),
            TargetDir::NotACluster { entries: 1 }
        );
    }
}
