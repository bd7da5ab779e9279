//! `region replicate --from R1 --to R2 [--replace]`: the configuration
//! turned into a [`ReplicateRequest`] for `lifeboat_region::replication`
//! (which inspects, plans and runs the steps), its progress events handed to
//! the caller as they come.
//!
//! Only `postgres`-managed targets are seeded here: Lifeboat runs where the
//! target's data directory is (on its host, or as a sidecar in its pod) and
//! starts and stops its server with `pg_ctl` or a systemd unit. Patroni and
//! CloudNativePG targets are their managers' to seed (`standby_cluster`,
//! `replica`/`externalClusters`); that part is not wired into this build.

use std::path::{Path, PathBuf};

use lifeboat_postgres::Secret;
use lifeboat_postgres::conn::PgHost;
use lifeboat_region::replication::target::{ServerControl, StandbyTarget, default_passfile};
use lifeboat_region::replication::{
    Outcome, Progress, ReplicateError, ReplicateRequest, Retry, Role, Server, Timeouts, observe,
};
use serde::Serialize;

use super::conn::region_conn;
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

/// A successful `region replicate`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub outcome: Outcome,
}

/// Seeds `to` as a streaming standby of `from` (see the module docs);
/// `progress` gets every event as it happens.
pub async fn replicate<P: FnMut(&Progress)>(
    ctx: &Ctx,
    req: &Request,
    progress: P,
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
    match to.postgres.manager() {
        PgManager::Postgres => {}
        m @ (PgManager::Patroni | PgManager::Cnpg) => {
            return Err(Error::usage(format!(
                "region {} is managed by {m}: its standby is set up through {m} \
                 (lifeboat_region::managers: Patroni's standby_cluster, CloudNativePG's \
                 replica/externalClusters), which is not wired into this build of Lifeboat yet; \
                 `region replicate` seeds `manager: postgres` regions only",
                req.to
            ))
            .with_hint(
                "set the standby up through the manager for now: docs/regions/managers.md gives \
                 the exact Patroni `standby_cluster` (bootstrap the Patroni cluster from the \
                 primary) and CloudNativePG `replica`/`externalClusters` settings",
            ));
        }
    }
    let primary_conn = region_conn(ctx, from).await?;
    let password = replication_password(ctx, config).await?;
    let target_conn = region_conn(ctx, to).await?;
    let pgdata = to.postgres.pgdata().ok_or_else(|| {
        Error::usage(format!(
            "regions.{}.postgres.pgdata is not set: `region replicate` seeds the standby's data \
             directory and runs where it is (on its host or as a sidecar); set pgdata (and \
             control) for that region",
            req.to
        ))
    })?;
    let primary = Server {
        name: req.from.clone(),
        conn: primary_conn,
    };
    let bin_dir = bin_dir(to, &primary).await?;
    let control = server_control(&req.to, to, pgdata)?;
    let mut settings = vec![("port".to_string(), target_conn.port.to_string())];
    if let PgHost::Unix(dir) = &target_conn.host {
        settings.push((
            "unix_socket_directories".to_string(),
            dir.display().to_string(),
        ));
    }
    let request = ReplicateRequest {
        primary,
        primary_address: None,
        replication_user: config.replication_user().to_string(),
        replication_password: password,
        target: StandbyTarget {
            name: req.to.clone(),
            pgdata: pgdata.to_path_buf(),
            bin_dir,
            os_user: None,
            conn: target_conn,
            control,
            settings,
            passfile: default_passfile(pgdata),
        },
        replace: req.replace,
        timeouts: Timeouts::default(),
        retry: Retry::default(),
    };
    let outcome = lifeboat_region::replication::replicate(&request, progress)
        .await
        .map_err(replicate_error)?;
    Ok(Report {
        from: req.from.clone(),
        to: req.to.clone(),
        outcome,
    })
}

fn region<'a>(config: &'a Config, name: &str) -> Result<&'a RegionConfig> {
    config.region(name).map_err(|e| Error::usage(e.to_string()))
}

async fn replication_password(ctx: &Ctx, config: &Config) -> Result<Secret> {
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

/// The target's server tools: `control.pg_ctl.bin_dir`, else Debian's
/// directory for the primary's major version.
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
            return Err(Error::failure(format!(
                "the primary ({}) is unreachable: {reason}",
                primary.conn.display_url()
            )));
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
    match to.postgres.control() {
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
            "regions.{name}.postgres.control is `manager`: its manager starts and stops the server, \
             which `region replicate` does not drive for `manager: postgres`; use pg_ctl or systemd"
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
