//! `region replicate --from R1 --to R2 [--replace]`: the configuration
//! turned into the work for the target region's manager, its progress events
//! handed to the caller as they come.
//!
//! - `manager: postgres`: a [`ReplicateRequest`] for
//!   `lifeboat_region::replication` (which inspects, plans and runs the
//!   steps). Lifeboat runs where the target's data directory is (on its host,
//!   or as a sidecar in its pod) and starts and stops its server with
//!   `pg_ctl` or a systemd unit.
//! - `manager: patroni`: Patroni's `standby_cluster` through its REST API
//!   ([`super::patroni`]).
//! - `manager: cnpg`: the `Cluster`'s `replica` and `externalClusters`
//!   through the Kubernetes API ([`super::cnpg`]).

use std::path::{Path, PathBuf};

use lifeboat_postgres::Secret;
use lifeboat_postgres::conn::PgHost;
use lifeboat_region::replication::target::{ServerControl, StandbyTarget, default_passfile};
use lifeboat_region::replication::{
    Outcome, Progress, ReplicateError, ReplicateRequest, Retry, Role, Server, Timeouts, observe,
};
use serde::Serialize;

use super::cnpg::CnpgReplicated;
use super::conn::region_conn;
use super::patroni::PatroniReplicated;
use super::traffic::config_of;
use crate::config::{self, Config, PgManager, RegionConfig};
use crate::context::Ctx;
use crate::error::{Error, Kind, Result};

/// What the CLI asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: String,
    pub to: String,
    pub replace: bool,
}

/// A successful `region replicate`: one of `outcome` (postgres),
/// `patroni` and `cnpg`, by the target's manager.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub manager: PgManager,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patroni: Option<PatroniReplicated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnpg: Option<CnpgReplicated>,
    /// With `replication.synchronous`: the primary's
    /// `synchronous_standby_names` as set now (`None`: not configured, or
    /// it already named them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_standby_names: Option<String>,
}

/// A progress event: the postgres path's, or a manager's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Event {
    Postgres(Progress),
    Manager(ManagerEvent),
}

/// What a manager's replication reports as it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ManagerEvent {
    /// The settings about to be applied: `text` for people, `body` the exact
    /// request (Patroni's `PATCH /config` body, the `Cluster`'s merge patch
    /// or, for a missing `Cluster`, its manifest).
    Settings {
        manager: String,
        target: String,
        text: String,
        body: serde_json::Value,
    },
    /// Something made ready on the primary (the role, the slot) or beside
    /// the target (the password's `Secret`).
    PrimaryPrepared {
        detail: String,
    },
    /// The settings written, or found in place (`changed: false`).
    Applied {
        changed: bool,
        detail: String,
    },
    Waiting {
        detail: String,
    },
    Streaming {
        detail: String,
    },
}

/// Seeds `to` as a streaming standby of `from` (see the module docs);
/// `progress` gets every event as it happens.
pub async fn replicate<P: FnMut(&Event)>(
    ctx: &Ctx,
    req: &Request,
    mut progress: P,
) -> Result<Report> {
    let config = config_of(ctx)?;
    let from = region(config, &req.from)?;
    let to = region(config, &req.to)?;
    if req.from == req.to {
        return Err(Error::usage(format!(
            "--from and --to are both {}: a region cannot replicate from itself",
            req.from
        )));
    }
    let manager = to.postgres.manager();
    if manager != PgManager::Postgres {
        return replicate_managed(ctx, req, from, to, manager, &mut progress).await;
    }
    let primary_conn = region_conn(ctx, from).await?;
    let password = replication_password(ctx, config).await?;
    let primary = Server {
        name: req.from.clone(),
        conn: primary_conn,
    };
    let target = region_target(
        ctx,
        &req.to,
        to,
        &primary,
        "`region replicate` seeds the standby's data directory",
    )
    .await?;
    keep_slot(ctx, req, from, &mut progress).await?;
    let request = ReplicateRequest {
        primary,
        primary_address: None,
        replication_user: config.replication_user().to_string(),
        replication_password: password,
        target,
        replace: req.replace,
        timeouts: Timeouts::default(),
        retry: Retry::default(),
    };
    let primary_conn = request.primary.conn.clone();
    let outcome = lifeboat_region::replication::replicate(&request, |p| {
        progress(&Event::Postgres(p.clone()))
    })
    .await
    .map_err(replicate_error)?;
    let synchronous_standby_names = name_synchronous_standbys(config, &req.from, &primary_conn)
        .await
        .map_err(|e| {
            e.with_hint(format!(
                "{} streams; only naming it in {}'s synchronous_standby_names failed: once the \
                 cause is fixed, `lifeboat region rejoin {}` verifies the standby and names it",
                req.to, req.from, req.to
            ))
        })?;
    Ok(Report {
        from: req.from.clone(),
        to: req.to.clone(),
        manager,
        outcome: Some(outcome),
        patroni: None,
        cnpg: None,
        synchronous_standby_names,
    })
}

/// What [`ensure_primary_slot`] did.
#[derive(Debug, Clone)]
pub(crate) struct PrimarySlot {
    /// Whether the slot was created now (`false`: it existed).
    pub created: bool,
    /// What was done, one line per part.
    pub notes: Vec<String>,
}

/// Makes sure the standby's slot `slot` exists on the server of the
/// primary region `from_name` (`conn`): the one owner of that step, for
/// `region replicate --from` to a Patroni target and `region rejoin`. With a
/// Patroni primary the slot is first made one of the cluster's permanent
/// slots ([`super::patroni::keep_slot_on`], REST calls retried with
/// backoff), since Patroni drops a physical slot it does not know; then it
/// is created unless it exists (retried). Idempotent.
///
/// `region replicate` to a `postgres` target runs only the Patroni part
/// ([`keep_slot`]): `lifeboat_region::replication::replicate` creates the
/// slot itself after checking the primary's settings, and waits for a
/// stopped standby to let go of it.
pub(crate) async fn ensure_primary_slot(
    ctx: &Ctx,
    from_name: &str,
    from: &RegionConfig,
    conn: &lifeboat_postgres::conn::ConnConfig,
    slot: &str,
) -> Result<PrimarySlot> {
    let mut notes = Vec::new();
    if let Some(kept) = super::patroni::keep_slot_on(ctx, from_name, from, slot).await? {
        notes.push(kept);
    }
    let created =
        lifeboat_region::replication::replicate::create_slot(conn, slot, Retry::default())
            .await
            .map_err(|e| {
                replicate_error(e).context(format!("creating the slot {slot} on {from_name}"))
            })?;
    notes.push(format!(
        "slot {slot} {} on {from_name}",
        if created { "created" } else { "exists" }
    ));
    Ok(PrimarySlot { created, notes })
}

/// A Patroni primary region keeps the standby's slot only when it is one
/// of its permanent slots ([`super::patroni::keep_slot_on`]): made so
/// before the slot is created (the part of [`ensure_primary_slot`] that
/// comes before `lifeboat_region::replication::replicate`).
async fn keep_slot<P: FnMut(&Event)>(
    ctx: &Ctx,
    req: &Request,
    from: &RegionConfig,
    progress: &mut P,
) -> Result<()> {
    let slot = lifeboat_region::replication::plan::slot_name(&req.to);
    if let Some(detail) = super::patroni::keep_slot_on(ctx, &req.from, from, &slot).await? {
        progress(&Event::Manager(ManagerEvent::PrimaryPrepared { detail }));
    }
    Ok(())
}

/// With `replication.synchronous`: names every other region in the
/// primary `primary`'s `synchronous_standby_names` once a standby follows
/// it; the value set, or `None` (not configured, or already so).
pub(crate) async fn name_synchronous_standbys(
    config: &Config,
    primary: &str,
    conn: &lifeboat_postgres::conn::ConnConfig,
) -> Result<Option<String>> {
    if !config.replication_synchronous() {
        return Ok(None);
    }
    lifeboat_region::replication::synchronous::name_standbys(
        conn,
        &config.synchronous_standbys(primary),
    )
    .await
    .map_err(replicate_error)
}

/// A Patroni or CloudNativePG target: the primary must say it is one; then
/// the manager's module does the rest.
async fn replicate_managed<P: FnMut(&Event)>(
    ctx: &Ctx,
    req: &Request,
    from: &RegionConfig,
    to: &RegionConfig,
    manager: PgManager,
    progress: &mut P,
) -> Result<Report> {
    let config = config_of(ctx)?;
    let primary_conn = region_conn(ctx, from).await?;
    let password = replication_password(ctx, config).await?;
    let observed = observe(
        &Server {
            name: req.from.clone(),
            conn: primary_conn.clone(),
        },
        Retry::default(),
    )
    .await;
    let sysid = match (&observed.role, &observed.identity) {
        (Role::Primary, Some(id)) => id.system_identifier.to_string(),
        (Role::Unreachable { reason, .. }, _) => {
            return Err(Error::failure(format!(
                "the primary ({}) is unreachable: {reason}",
                primary_conn.display_url()
            )));
        }
        _ => {
            return Err(Error::usage(format!(
                "refused: region {}'s server ({}) is not a primary (it is in recovery): a \
                 standby replicates from the primary; nothing was changed",
                req.from,
                primary_conn.display_url()
            )));
        }
    };
    let user = config.replication_user().to_string();
    let mut emit = |e: ManagerEvent| progress(&Event::Manager(e));
    let mut report = Report {
        synchronous_standby_names: None,
        from: req.from.clone(),
        to: req.to.clone(),
        manager,
        outcome: None,
        patroni: None,
        cnpg: None,
    };
    match manager {
        PgManager::Patroni => {
            report.patroni = Some(
                super::patroni::replicate(
                    ctx,
                    &req.from,
                    from,
                    &primary_conn,
                    &sysid,
                    &req.to,
                    to,
                    &user,
                    &password,
                    req.replace,
                    &mut emit,
                )
                .await?,
            );
        }
        PgManager::Cnpg => {
            report.cnpg = Some(
                super::cnpg::replicate(
                    ctx,
                    &req.from,
                    from,
                    &primary_conn,
                    &sysid,
                    &req.to,
                    to,
                    &user,
                    &password,
                    req.replace,
                    &mut emit,
                )
                .await?,
            );
        }
        PgManager::Postgres => {
            return Err(Error::failure(
                "a postgres-managed target is seeded by the postgres path, not by a manager",
            ));
        }
    }
    Ok(report)
}

/// Region `name`'s server as a [`StandbyTarget`] (agent mode: its data
/// directory and how it is started and stopped), for the flows that stop,
/// start or reconfigure it; `why` says which flow needs `pgdata` when it is
/// not set. `reference` is any server of the cluster, asked for its major
/// version when `control.pg_ctl.bin_dir` is not set.
pub(crate) async fn region_target(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    reference: &Server,
    why: &str,
) -> Result<StandbyTarget> {
    let conn = region_conn(ctx, r).await?;
    let pgdata = r.postgres.pgdata().ok_or_else(|| {
        Error::usage(format!(
            "regions.{name}.postgres.pgdata is not set: {why} and runs where it is (on its host \
             or as a sidecar); set pgdata (and control) for that region"
        ))
    })?;
    let bin_dir = bin_dir(r, reference).await?;
    let control = server_control(name, r, pgdata)?;
    let mut settings = vec![("port".to_string(), conn.port.to_string())];
    if let PgHost::Unix(dir) = &conn.host {
        settings.push((
            "unix_socket_directories".to_string(),
            dir.display().to_string(),
        ));
    }
    Ok(StandbyTarget {
        name: name.to_string(),
        pgdata: pgdata.to_path_buf(),
        bin_dir,
        os_user: None,
        conn,
        control,
        settings,
        passfile: default_passfile(pgdata),
    })
}

pub(crate) fn region<'a>(config: &'a Config, name: &str) -> Result<&'a RegionConfig> {
    config.region(name).map_err(|e| Error::usage(e.to_string()))
}

pub(crate) async fn replication_password(ctx: &Ctx, config: &Config) -> Result<Secret> {
    let r = config
        .replication
        .as_ref()
        .and_then(|r| r.password.as_ref())
        .ok_or_else(|| {
            Error::usage(
                "replication.password is not set: the standby authenticates to the primary as \
                 the replication role with it; add `replication: {password: {env: …}}`",
            )
        })?;
    let p = ctx
        .resolve(r)
        .await
        .map_err(|e| e.context("replication.password"))?;
    Ok(Secret::new(p))
}

/// The major version a data directory was made by (its `PG_VERSION` file).
fn data_dir_major(pgdata: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(pgdata.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The target's server tools: `control.pg_ctl.bin_dir`, else Debian's
/// directory for the primary's major version (read from the target's own
/// data directory, `PG_VERSION`, when the primary does not answer: the
/// agent describes its own stopped server with itself as the reference).
async fn bin_dir(to: &RegionConfig, primary: &Server) -> Result<PathBuf> {
    if let Some(config::ServerControl::PgCtl(c)) = to.postgres.control()
        && let Some(d) = c.bin_dir
    {
        return Ok(d);
    }
    let observed = observe(primary, Retry::default()).await;
    let major = match (&observed.role, &observed.identity) {
        (Role::Primary | Role::Standby, Some(id)) => {
            lifeboat_postgres::tools::server_major(id.server_version_num)
        }
        (Role::Unreachable { reason, .. }, _) => {
            match to.postgres.pgdata().and_then(data_dir_major) {
                Some(major) => major,
                None => {
                    return Err(Error::failure(format!(
                        "the primary ({}) is unreachable: {reason}",
                        primary.conn.display_url()
                    )));
                }
            }
        }
        _ => {
            return Err(Error::failure(format!(
                "the primary ({}) did not say its version",
                primary.conn.display_url()
            )));
        }
    };
    let d = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if d.join("pg_basebackup").is_file() {
        Ok(d)
    } else {
        Err(Error::usage(format!(
            "no PostgreSQL {major} server tools in {} (the primary runs {major}); install \
             postgresql-{major} or set control: {{pg_ctl: {{bin_dir: …}}}} for the target region",
            d.display()
        )))
    }
}

fn server_control(name: &str, to: &RegionConfig, pgdata: &Path) -> Result<ServerControl> {
    control_for(
        &format!("regions.{name}.postgres.control"),
        to.postgres.control(),
        pgdata,
    )
}

/// The configured control of the server on `pgdata` (`at` names the
/// setting in messages): `pg_ctl` (its log `<pgdata>.log` beside the
/// directory) or the systemd unit's `systemctl start|stop`; `manager` is
/// refused (usage).
pub(crate) fn control_for(
    at: &str,
    control: Option<config::ServerControl>,
    pgdata: &Path,
) -> Result<ServerControl> {
    match control {
        Some(config::ServerControl::PgCtl(_)) | None => {
            let file = pgdata
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pgdata".into());
            Ok(ServerControl::PgCtl {
                log_file: pgdata
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join(format!("{file}.log")),
            })
        }
        Some(config::ServerControl::Systemd(s)) => Ok(ServerControl::Commands {
            start: vec!["systemctl".into(), "start".into(), s.unit.clone()],
            stop: vec!["systemctl".into(), "stop".into(), s.unit.clone()],
        }),
        Some(config::ServerControl::Manager) => Err(Error::usage(format!(
            "{at} is `manager`: its manager starts and stops the server, which Lifeboat does \
             not drive for `manager: postgres`; use pg_ctl or systemd"
        ))),
    }
}

/// A refusal (the target is the primary, holds another cluster without
/// `--replace`, the primary lacks settings) is a refused target: usage
/// (exit 2), nothing changed. The rest exit 1.
pub fn replicate_error(e: ReplicateError) -> Error {
    let kind = match &e {
        ReplicateError::Refused(_) => Kind::Usage,
        _ => Kind::Failure,
    };
    let hint = match &e {
        ReplicateError::Refused(_) => Some("nothing was changed on either server"),
        _ => None,
    };
    let err = Error::new(kind, e.to_string());
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}
