//! `region replicate` for a plainly managed PostgreSQL: inspect, plan (pure,
//! [`super::plan`]), then run the plan's steps, reporting progress.
//!
//! What each step does is in `docs/regions/replication.md`. In short: the
//! replication role gets its password as a SCRAM verifier computed here (the
//! clear text never reaches the server, its logs or `pg_stat_activity`);
//! `pg_basebackup -X stream -S <slot>` writes straight into the data directory
//! as the server's OS user (no staging copy, no `chown` afterwards) and gets
//! the password through its environment; `-R` is not used, because it would
//! write the password into `postgresql.auto.conf` inside the data directory
//! (and every later copy of it): `primary_conninfo` names a password file
//! outside it instead.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_postgres::conn::{ConnConfig, ConnError, PgHost, Secret, pg_message};
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::conf;
use super::observe::{self, Observed, ReplicaRow, Role, Server};
use super::plan::{self, Plan, PlanInput, PrimaryFacts, Refusal, SlotFacts, Step};
use super::retry::Retry;
use super::target::{self, StandbyTarget, TargetDir, TargetError};
use crate::heartbeat::{self, Heartbeat, HeartbeatError, Seen};

/// How long each waiting part may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// `pg_basebackup` as a whole (large databases take hours).
    pub base_backup: Duration,
    pub start: Duration,
    pub stop: Duration,
    /// From the start until the standby streams and has replayed a heartbeat.
    pub streaming: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            base_backup: Duration::from_secs(24 * 3600),
            start: Duration::from_secs(300),
            stop: Duration::from_secs(120),
            streaming: Duration::from_secs(300),
        }
    }
}

/// Everything `replicate` needs.
#[derive(Clone, Debug)]
pub struct ReplicateRequest {
    /// The primary: its region name (the heartbeat's writer) and a superuser
    /// (or `CREATEROLE` + `pg_monitor` + slot-creating) connection.
    pub primary: Server,
    /// Where the standby reaches the primary, when not where Lifeboat does.
    pub primary_address: Option<(PgHost, u16)>,
    pub replication_user: String,
    /// Never logged, never on a command line; given to `pg_basebackup`
    /// through its environment and to the standby through its password file.
    pub replication_password: Secret,
    pub target: StandbyTarget,
    pub replace: bool,
    pub timeouts: Timeouts,
    /// For the idempotent calls to the primary.
    pub retry: Retry,
}

/// Progress events, in order, for the CLI's lines and `--json`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Inspected {
        primary: Box<Observed>,
        target_dir: TargetDir,
        target_server: Role,
    },
    Planned {
        plan: Plan,
    },
    StepStarted {
        step: Step,
        description: &'static str,
    },
    StepFinished {
        step: Step,
        detail: String,
    },
    /// Something waited for changed (e.g. the sender's state).
    Waiting {
        step: Step,
        detail: String,
    },
}

/// What a successful `replicate` leaves.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub plan: Plan,
    pub slot: String,
    /// The standby's `pg_stat_replication` row, `streaming`.
    pub replica: ReplicaRow,
    /// The heartbeat written after the start, as replayed by the standby.
    pub heartbeat: Seen,
}

/// Errors of `replicate`. Messages say what to do next; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("the primary: {0}")]
    PrimaryConn(ConnError),
    #[error("{what} on the primary ({url}): {message}")]
    PrimarySql {
        what: &'static str,
        url: String,
        message: String,
    },
    #[error("{step}: {source}")]
    Target {
        step: &'static str,
        source: TargetError,
    },
    #[error("pg_basebackup failed: {output}{hint}")]
    BaseBackup { output: String, hint: String },
    #[error(
        "the standby did not stream and replay a heartbeat within {seconds} s; last seen: {last}. \
         Look at the standby's server log, its primary_conninfo, and the primary's pg_hba.conf \
         (a 'replication' line for the replication user from the standby's address)"
    )]
    NotStreaming { seconds: u64, last: String },
    #[error(
        "the replication slot {slot} is still in use by the primary's process {pid}; stop the standby \
         that streams through it (or pg_terminate_backend({pid}) on the primary) and rerun"
    )]
    SlotBusy { slot: String, pid: i32 },
    #[error("heartbeat: {0}")]
    Heartbeat(#[from] HeartbeatError),
}

fn psql(
    what: &'static str,
    conn: &ConnConfig,
) -> impl FnOnce(tokio_postgres::Error) -> ReplicateError {
    let url = conn.display_url();
    move |e| ReplicateError::PrimarySql {
        what,
        url,
        message: pg_message(&e),
    }
}

fn tgt(step: &'static str) -> impl FnOnce(TargetError) -> ReplicateError {
    move |source| ReplicateError::Target { step, source }
}

/// Reads what [`plan::plan`] needs from the primary.
pub async fn primary_facts(
    client: &Client,
    conn: &ConnConfig,
    name: &str,
    slot: &str,
) -> Result<PrimaryFacts, ReplicateError> {
    let observed = observe::observe_client(name, client)
        .await
        .map_err(psql("observing the primary", conn))?;
    let r = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('max_wal_senders')::int8, \
                    (SELECT count(*) FROM pg_stat_replication), \
                    current_setting('max_replication_slots')::int8, \
                    (SELECT count(*) FROM pg_replication_slots), \
                    (SELECT slot_type = 'physical' FROM pg_replication_slots WHERE slot_name = $1), \
                    (SELECT active FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .await
        .map_err(psql("reading the replication settings", conn))?;
    let physical: Option<bool> = r.get(5);
    let active: Option<bool> = r.get(6);
    Ok(PrimaryFacts {
        observed,
        wal_level: r.get(0),
        max_wal_senders: r.get(1),
        wal_senders_in_use: r.get(2),
        max_replication_slots: r.get(3),
        slots_in_use: r.get(4),
        slot_name: slot.to_string(),
        slot: physical.map(|physical| SlotFacts {
            physical,
            active: active.unwrap_or(false),
        }),
    })
}

/// Inspects, plans and runs the plan; see the module docs.
pub async fn replicate<P: FnMut(&Progress)>(
    req: &ReplicateRequest,
    mut progress: P,
) -> Result<Outcome, ReplicateError> {
    let t = &req.target;
    let slot = plan::slot_name(&t.name);
    let primary = observe::connect(&req.primary.conn, req.retry)
        .await
        .map_err(ReplicateError::PrimaryConn)?;
    let facts = primary_facts(&primary, &req.primary.conn, &req.primary.name, &slot).await?;
    // Not held through the steps: a base backup can take hours.
    drop(primary);
    let target_dir = target::inspect(&t.pgdata, &t.bin_dir)
        .await
        .map_err(tgt("inspecting the target data directory"))?;
    let target_server = observe::observe(
        &Server {
            name: t.name.clone(),
            conn: t.conn.clone(),
        },
        Retry::ONCE,
    )
    .await;
    progress(&Progress::Inspected {
        primary: Box::new(facts.observed.clone()),
        target_dir: target_dir.clone(),
        target_server: target_server.role.clone(),
    });
    let plan = plan::plan(&PlanInput {
        primary: &facts,
        target_dir: &target_dir,
        target_server: &target_server,
        replace: req.replace,
    })?;
    progress(&Progress::Planned { plan: plan.clone() });

    let mut outcome = None;
    for &step in &plan.steps {
        progress(&Progress::StepStarted {
            step,
            description: step.describe(),
        });
        let detail = match step {
            Step::StopTarget => {
                t.stop(req.timeouts.stop)
                    .await
                    .map_err(tgt("stopping the target's server"))?;
                "stopped".to_string()
            }
            Step::ClearTarget => {
                clear_dir(&t.pgdata).map_err(tgt("clearing the target data directory"))?
            }
            Step::CreateRole => {
                ensure_role(
                    &req.primary.conn,
                    &req.replication_user,
                    &req.replication_password,
                    req.retry,
                )
                .await?
            }
            Step::CreateSlot => {
                ensure_slot(&req.primary.conn, &slot, req.retry, req.timeouts.stop).await?
            }
            Step::BaseBackup => base_backup(req, &slot).await?,
            Step::WriteStandbyConfig => write_standby_config(req, &slot)
                .map_err(tgt("writing the standby's configuration"))?,
            Step::StartTarget => {
                t.start(req.timeouts.start)
                    .await
                    .map_err(tgt("starting the standby"))?;
                "started".to_string()
            }
            Step::WaitStreaming => {
                let o = wait_streaming(req, &mut progress).await?;
                let d = format!(
                    "state {} from {}, heartbeat {} replayed ({:.3} s old)",
                    o.0.state,
                    o.0.client_addr.as_deref().unwrap_or("local socket"),
                    o.1.beat.seq,
                    o.1.age_seconds
                );
                outcome = Some(o);
                d
            }
        };
        progress(&Progress::StepFinished { step, detail });
    }
    let (replica, heartbeat) = outcome.ok_or_else(|| ReplicateError::NotStreaming {
        seconds: 0,
        last: "the plan had no wait step".into(),
    })?;
    Ok(Outcome {
        plan,
        slot,
        replica,
        heartbeat,
    })
}

/// Removes everything inside `dir` (the directory itself stays: it may be a
/// mount point). Refuses `/` and relative paths.
fn clear_dir(dir: &Path) -> Result<String, TargetError> {
    if !dir.is_absolute() || dir.parent().is_none() {
        return Err(TargetError::User(format!(
            "refusing to clear {}: the data directory must be an absolute path below /",
            dir.display()
        )));
    }
    let mut n = 0;
    for e in std::fs::read_dir(dir).map_err(target::io("reading", dir))? {
        let e = e.map_err(target::io("reading", dir))?;
        let p = e.path();
        let is_dir = e.file_type().map_err(target::io("reading", &p))?.is_dir();
        if is_dir {
            std::fs::remove_dir_all(&p).map_err(target::io("removing", &p))?;
        } else {
            std::fs::remove_file(&p).map_err(target::io("removing", &p))?;
        }
        n += 1;
    }
    Ok(format!("{n} entries removed"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A failed attempt of an idempotent call to the primary.
enum Attempt {
    Conn(ConnError),
    Sql(&'static str, tokio_postgres::Error),
}

impl Attempt {
    /// Network trouble (not an answer of the server): worth another attempt
    /// on a new connection.
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Conn(e) => {
                matches!(e, ConnError::Unreachable { .. } | ConnError::Other { .. })
            }
            Attempt::Sql(_, e) => e.as_db_error().is_none(),
        }
    }

    fn into_error(self, conn: &ConnConfig) -> ReplicateError {
        match self {
            Attempt::Conn(e) => ReplicateError::PrimaryConn(e),
            Attempt::Sql(what, e) => psql(what, conn)(e),
        }
    }
}

/// Runs `op` on a fresh connection to the primary, again (on a new
/// connection) after network failures, as `retry` allows. `op` must be idempotent.
async fn on_primary<T, F, Fut>(conn: &ConnConfig, retry: Retry, op: F) -> Result<T, ReplicateError>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    retry
        .run(
            || async {
                let client = conn.connect().await.map_err(Attempt::Conn)?;
                op(client).await
            },
            Attempt::is_transient,
        )
        .await
        .map_err(|e| e.into_error(conn))
}

/// `CREATE ROLE ... REPLICATION LOGIN PASSWORD '<SCRAM verifier>'`, or
/// `ALTER ROLE` with the same when it exists (so the password is the given
/// one), on the primary behind `conn`. The step of the plan, and the
/// primary's side of a Patroni or CloudNativePG standby (lifeboat-ops
/// `region::patroni`, `region::cnpg`). Idempotent.
pub async fn ensure_role(
    conn: &ConnConfig,
    user: &str,
    password: &Secret,
    retry: Retry,
) -> Result<String, ReplicateError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let attrs = format!(
        "REPLICATION LOGIN PASSWORD '{}'",
        verifier.replace('\'', "''")
    );
    let name = quote_ident(user);
    on_primary(conn, retry, |client| {
        let (attrs, name) = (&attrs, &name);
        async move {
            let exists = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
                .await
                .map_err(|e| Attempt::Sql("looking up the replication role", e))?
                .is_some();
            if !exists {
                match client
                    .batch_execute(&format!("CREATE ROLE {name} WITH {attrs}"))
                    .await
                {
                    Ok(()) => return Ok(format!("role {user} created")),
                    Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => {}
                    Err(e) => return Err(Attempt::Sql("creating the replication role", e)),
                }
            }
            client
                .batch_execute(&format!("ALTER ROLE {name} WITH {attrs}"))
                .await
                .map_err(|e| Attempt::Sql("updating the replication role", e))?;
            Ok(format!("role {user} exists, password and attributes set"))
        }
    })
    .await
}

/// A physical slot reserving WAL from now on, kept when it exists; waits up
/// to `release` for a standby that was just stopped to let go of it.
async fn ensure_slot(
    conn: &ConnConfig,
    slot: &str,
    retry: Retry,
    release: Duration,
) -> Result<String, ReplicateError> {
    let what = "creating the replication slot";
    let created = create_slot(conn, slot, retry).await?;
    let deadline = Instant::now() + release;
    loop {
        let pid: Option<i32> = on_primary(conn, retry, |client| async move {
            client
                .query_opt(
                    "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active",
                    &[&slot],
                )
                .await
                .map(|r| r.and_then(|r| r.get(0)))
                .map_err(|e| Attempt::Sql(what, e))
        })
        .await?;
        match pid {
            None => break,
            Some(pid) if Instant::now() >= deadline => {
                return Err(ReplicateError::SlotBusy {
                    slot: slot.to_string(),
                    pid,
                });
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(if created {
        format!("slot {slot} created")
    } else {
        format!("slot {slot} exists")
    })
}

/// Creates the physical slot `slot` (reserving WAL from now on) unless it
/// exists; `true` when it was created. The primary's side of a Patroni
/// standby cluster too (lifeboat-ops `region::patroni`), where the slot may
/// be in use by the standby leader already. Idempotent.
pub async fn create_slot(
    conn: &ConnConfig,
    slot: &str,
    retry: Retry,
) -> Result<bool, ReplicateError> {
    let what = "creating the replication slot";
    on_primary(conn, retry, |client| async move {
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| Attempt::Sql(what, e))?
            .is_some();
        if exists {
            return Ok(false);
        }
        match client
            .execute(
                "SELECT pg_create_physical_replication_slot($1, true)",
                &[&slot],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => Ok(false),
            Err(e) => Err(Attempt::Sql(what, e)),
        }
    })
    .await
}

/// The standby's view of where the primary is.
fn primary_address(req: &ReplicateRequest) -> (PgHost, u16) {
    req.primary_address
        .clone()
        .unwrap_or_else(|| (req.primary.conn.host.clone(), req.primary.conn.port))
}

/// What to tell the operator about a failed `pg_basebackup`.
pub fn basebackup_hint(stderr: &str, user: &str) -> String {
    let s = stderr.to_ascii_lowercase();
    if s.contains("pg_hba.conf") {
        format!(
            " (the primary's pg_hba.conf has no 'replication' line for user {user} from this host: add \
             'host replication {user} <standby address>/32 scram-sha-256' and reload the primary)"
        )
    } else if s.contains("password authentication failed") {
        format!(" (the password of the replication role {user} is not the one given)")
    } else if s.contains("max_wal_senders") {
        " (raise max_wal_senders on the primary and restart it)".into()
    } else if s.contains("replication slot") && s.contains("active") {
        " (another connection uses the replication slot)".into()
    } else if s.contains("incompatible server version") {
        " (use the pg_basebackup of the primary's major version: set the region's bin_dir)".into()
    } else {
        String::new()
    }
}

/// `pg_basebackup` straight into the data directory, as its owner.
async fn base_backup(req: &ReplicateRequest, slot: &str) -> Result<String, ReplicateError> {
    let t = &req.target;
    let owner = target::os_user(t.os_user.as_deref()).map_err(tgt("seeding"))?;
    let prep = || -> Result<(), TargetError> {
        std::fs::create_dir_all(&t.pgdata).map_err(target::io("creating", &t.pgdata))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&t.pgdata, Some(uid), Some(gid))
                .map_err(target::io("chown", &t.pgdata))?;
        }
        std::fs::set_permissions(&t.pgdata, std::fs::Permissions::from_mode(0o700))
            .map_err(target::io("chmod", &t.pgdata))
    };
    prep().map_err(tgt("preparing the target data directory"))?;
    let (host, port) = primary_address(req);
    let mut conn = ConnConfig::new(host, port, &req.replication_user, "replication")
        .with_password(req.replication_password.clone());
    conn.application_name = "lifeboat basebackup".into();
    let mut cmd = target::pg_command(t.bin_dir.join("pg_basebackup"), owner);
    conn.apply_to_command(&mut cmd)
        .map_err(ReplicateError::PrimaryConn)?;
    cmd.arg("-D")
        .arg(&t.pgdata)
        .args(["-X", "stream", "-S", slot, "-c", "fast", "--no-password"]);
    match target::run(
        cmd,
        "pg_basebackup",
        req.timeouts.base_backup,
        "raise the base backup timeout",
    )
    .await
    {
        Ok(_) => Ok(format!("seeded {}", t.pgdata.display())),
        Err(TargetError::Program { output, .. }) => Err(ReplicateError::BaseBackup {
            hint: basebackup_hint(&output, &req.replication_user),
            output,
        }),
        Err(e) => Err(tgt("seeding")(e)),
    }
}

/// `primary_conninfo` for the standby (no password: `passfile=`).
pub fn primary_conninfo(
    host: &PgHost,
    port: u16,
    user: &str,
    application_name: &str,
    passfile: &Path,
) -> String {
    let host = match host {
        PgHost::Tcp(h) => h.clone(),
        PgHost::Unix(p) => p.display().to_string(),
    };
    format!(
        "host={} port={port} user={} application_name={} passfile={}",
        conf::conninfo_quote(&host),
        conf::conninfo_quote(user),
        conf::conninfo_quote(application_name),
        conf::conninfo_quote(&passfile.display().to_string()),
    )
}

pub(crate) fn write_owned(
    path: &Path,
    text: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), TargetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(target::io("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(target::io("chmod", path))?;
    f.write_all(text.as_bytes())
        .map_err(target::io("writing", path))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(target::io("chown", path))?;
    }
    Ok(())
}

/// The password file, `standby.signal` and `postgresql.auto.conf`.
fn write_standby_config(req: &ReplicateRequest, slot: &str) -> Result<String, TargetError> {
    let t = &req.target;
    let owner = target::os_user(t.os_user.as_deref())?;
    write_owned(
        &t.passfile,
        &conf::pgpass_line(&req.replication_user, req.replication_password.expose()),
        owner,
    )?;
    write_owned(&t.pgdata.join("standby.signal"), "", owner)?;
    let (host, port) = primary_address(req);
    let mut settings = vec![
        (
            "primary_conninfo".to_string(),
            primary_conninfo(&host, port, &req.replication_user, &t.name, &t.passfile),
        ),
        ("primary_slot_name".to_string(), slot.to_string()),
    ];
    settings.extend(t.settings.iter().cloned());
    let auto = t.pgdata.join("postgresql.auto.conf");
    let existing = match std::fs::read_to_string(&auto) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(target::io("reading", &auto)(e)),
    };
    write_owned(&auto, &conf::rewrite_auto_conf(&existing, &settings), owner)?;
    Ok(format!(
        "standby.signal, primary_conninfo (password in {}), primary_slot_name {slot}",
        t.passfile.display()
    ))
}

/// Writes a heartbeat on the primary, then polls until the standby's sender
/// is `streaming` and the standby has replayed that heartbeat.
async fn wait_streaming<P: FnMut(&Progress)>(
    req: &ReplicateRequest,
    progress: &mut P,
) -> Result<(ReplicaRow, Seen), ReplicateError> {
    let primary = &observe::connect(&req.primary.conn, req.retry)
        .await
        .map_err(ReplicateError::PrimaryConn)?;
    let hb_client = req
        .retry
        .run(
            || heartbeat::ensure(&req.primary.conn),
            HeartbeatError::is_transient,
        )
        .await?;
    let beat = Heartbeat::new(&req.primary.name)
        .beat(&hb_client)
        .await
        .map_err(psql(
            "writing a heartbeat",
            &heartbeat::lifeboat_db(&req.primary.conn),
        ))?;
    let deadline = Instant::now() + req.timeouts.streaming;
    let mut last = String::new();
    loop {
        let rows = observe::replica_rows(primary)
            .await
            .map_err(psql("reading pg_stat_replication", &req.primary.conn))?;
        let row = rows
            .into_iter()
            .find(|r| r.application_name == req.target.name);
        let seen = heartbeat::read(&req.target.conn, Some(&req.primary.name)).await;
        let detail = format!(
            "sender: {}; heartbeat {} on the standby: {}",
            row.as_ref()
                .map(|r| r.state.clone())
                .unwrap_or_else(|| "no pg_stat_replication row yet".into()),
            beat.seq,
            match &seen {
                Ok(Some(s)) if s.beat.seq >= beat.seq => "replayed".to_string(),
                Ok(Some(s)) => format!("not yet (newest {})", s.beat.seq),
                Ok(None) => "none yet".into(),
                Err(e) => format!("not readable ({e})"),
            }
        );
        if let (Some(r), Ok(Some(s))) = (&row, &seen)
            && r.state == "streaming"
            && s.beat.seq >= beat.seq
        {
            return Ok((r.clone(), s.clone()));
        }
        if detail != last {
            progress(&Progress::Waiting {
                step: Step::WaitStreaming,
                detail: detail.clone(),
            });
            last = detail;
        }
        if Instant::now() >= deadline {
            return Err(ReplicateError::NotStreaming {
                seconds: req.timeouts.streaming.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_has_no_password_and_quotes() {
        let c = primary_conninfo(
            &PgHost::Tcp("10.0.0.1".into()),
            5432,
            "lifeboat_replication",
            "eu-west",
            Path::new("/var/lib/postgresql/15/main.replication.pgpass"),
        );
        assert_eq!(
            c,
            "host='10.0.0.1' port=5432 user='lifeboat_replication' application_name='eu-west' \
             passfile='/var/lib/postgresql/15/main.replication.pgpass'"
        );
        let c = primary_conninfo(
            &PgHost::Unix("/run/pg's".into()),
            5433,
            "r",
            "x",
            Path::new("/p"),
        );
        assert!(c.starts_with("host='/run/pg\\'s' port=5433"), "{c}");
    }

    #[test]
    fn basebackup_hints() {
        let cases = [
            (
                "FATAL:  no pg_hba.conf entry for replication connection from host \"10.1.1.1\"",
                "pg_hba.conf has no 'replication' line",
            ),
            (
                "FATAL:  password authentication failed for user \"rep\"",
                "is not the one given",
            ),
            (
                "FATAL:  number of requested standby connections exceeds max_wal_senders",
                "raise max_wal_senders",
            ),
            (
                "pg_basebackup: error: incompatible server version 16.1",
                "major version",
            ),
            ("something else", ""),
        ];
        for (stderr, want) in cases {
            let h = basebackup_hint(stderr, "rep");
            assert!(h.contains(want), "{stderr}: {h}");
            assert_eq!(h.is_empty(), want.is_empty(), "{stderr}");
        }
    }

    #[test]
    fn clear_dir_refuses_root_and_relative() {
        assert!(clear_dir(Path::new("/")).is_err());
        assert!(clear_dir(Path::new("data")).is_err());
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("base")).unwrap();
        std::fs::write(d.path().join("base/1"), "x").unwrap();
        std::fs::write(d.path().join("PG_VERSION"), "15").unwrap();
        assert_eq!(clear_dir(d.path()).unwrap(), "2 entries removed");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
