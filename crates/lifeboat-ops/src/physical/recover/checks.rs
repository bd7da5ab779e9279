//! Step 1 of `recover postgres` (see [`super`]): everything checked before
//! the writers or the server are touched; every refusal says "nothing was
//! changed". [`server`] needs only the configuration and the server;
//! [`repository`] the repository (under the caller's lock).
//! [`verify_started`] is step 6's check of the started server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lifeboat_postgres::basebackup::SimpleQueryMessage;
use lifeboat_postgres::basebackup::recovery::Target;
use lifeboat_postgres::conn::{ConnConfig, pg_message};
use lifeboat_region::replication::target::{TargetDir, inspect};
use lifeboat_repo::Repository;

use super::RecoverRequest;
use super::plan::{self, DirSays, ServerSays};
use super::swap::{self, Server};
use crate::context::Ctx;
use crate::error::{FAILURE, INTEGRITY, Result, VERIFY_FAILED, fail, usage};
use crate::physical::restore::{self, Prepared, QueryResult};
use crate::postgres::{PgSource, conn_err};

/// The source, its server and its data directory, checked.
pub struct Found {
    pub src: PgSource,
    /// Canonical.
    pub pgdata: PathBuf,
    pub server: Server,
    pub system_identifier: u64,
    /// What proved that the server runs on `pgdata`.
    pub proven_by: &'static str,
}

/// The pid of a postmaster still running on `dir` (a recovery's private
/// server left by a `kill -9` of Lifeboat): its `postmaster.pid` names a
/// live process whose command line names the directory (`name`, its file
/// name, unique by its stamp), so a pid reused after a host crash is not
/// taken for it.
fn recovery_server_on(dir: &std::path::Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    let (pid, ..) = lifeboat_region::replication::target::parse_postmaster_pid(&text)?;
    let pid = u32::try_from(pid).ok().filter(|p| *p > 0)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(name)
        .then_some(pid)
}

/// The names in `pgdata`'s parent directory (none when it cannot be read).
fn sibling_names(pgdata: &std::path::Path) -> Vec<String> {
    pgdata
        .parent()
        .and_then(|p| std::fs::read_dir(p).ok())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What the repository holds for the recovery.
pub struct Ready {
    pub prep: Prepared,
    /// Server binaries of the base backup's major version.
    pub bin: PathBuf,
    /// The segment holding the WAL up to the check, in the archive.
    pub archived_through: String,
}

fn nothing(e: impl std::fmt::Display) -> crate::Error {
    usage(format!("{e}; nothing was changed"))
}

/// The moment, the source's agent settings and its server.
pub async fn server(ctx: &Ctx, req: &RecoverRequest) -> Result<Found> {
    plan::check_moment(req.before, chrono::Utc::now()).map_err(nothing)?;
    let name = &req.source;
    let src = crate::postgres::configured_source(ctx, name).await?;
    let pg = src
        .config
        .as_ref()
        .and_then(|c| c.postgres.as_ref())
        .ok_or_else(|| nothing(format!("source {name} has no postgres: section")))?;
    let pgdata = pg.pgdata.clone().ok_or_else(|| {
        nothing(format!(
            "sources.{name}.postgres.pgdata is not set: `recover postgres` replaces the server's \
             data directory and runs where it is (on its host, or as a sidecar in its pod); set \
             pgdata (and control, unless pg_ctl) for that source"
        ))
    })?;
    let control = crate::region::replicate::control_for(
        &format!("sources.{name}.postgres.control"),
        pg.control(),
        &pgdata,
    )?;
    // What a killed earlier recovery left comes first: with pgdata renamed
    // away, every other check would only say the directory is missing.
    if let Some(parent) = pgdata.parent() {
        let names = sibling_names(&pgdata);
        let running: Vec<(String, u32)> = names
            .iter()
            .filter(|n| plan::is_recovering(&pgdata, n))
            .filter_map(|n| Some((n.clone(), recovery_server_on(&parent.join(n), n)?)))
            .collect();
        if let Some(why) = plan::interrupted(&pgdata, pgdata.exists(), &names, &running) {
            return Err(usage(why));
        }
    }
    let pgdata = std::fs::canonicalize(&pgdata)
        .map_err(|e| nothing(format!("pgdata {}: {e}", pgdata.display())))?;
    let client = match src.conn.connect().await {
        Ok(c) => c,
        Err(e) => {
            // Killed after the swap, before the server started: pgdata
            // holds the recovered cluster (no postmaster.pid: the recovery
            // server shut it down), the old one is beside it.
            let stopped = !pgdata.join("postmaster.pid").exists();
            let names = if stopped {
                sibling_names(&pgdata)
            } else {
                Vec::new()
            };
            return Err(
                match plan::not_started(&pgdata, &names, name, &e.to_string()) {
                    Some(why) => usage(why),
                    None => conn_err(e),
                },
            );
        }
    };
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), \
                    (SELECT setting FROM pg_settings WHERE name = 'data_directory'), \
                    extract(epoch FROM pg_postmaster_start_time())::int8, \
                    pg_is_in_recovery(), current_setting('server_version_num')::int4",
            &[],
        )
        .await
        .map_err(|e| {
            fail(
                FAILURE,
                format!("asking the source's server who it is: {}", pg_message(&e)),
            )
        })?;
    drop(client);
    let says = ServerSays {
        system_identifier: row.get::<_, i64>(0) as u64,
        data_directory: row
            .get::<_, Option<String>>(1)
            .map(|d| std::fs::canonicalize(&d).unwrap_or_else(|_| PathBuf::from(d))),
        start_epoch: row.get(2),
    };
    let in_recovery: bool = row.get(3);
    let version: i32 = row.get(4);
    let bin = match &pg.control() {
        Some(crate::config::ServerControl::PgCtl(c)) if c.bin_dir.is_some() => {
            c.bin_dir.clone().unwrap_or_default()
        }
        _ => src.discovery.configured_dir.clone().unwrap_or_else(|| {
            let major = lifeboat_postgres::tools::server_major(version.into());
            PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
        }),
    };
    let dir = match inspect(&pgdata, &bin).await.map_err(nothing)? {
        TargetDir::Cluster(c) => DirSays {
            system_identifier: c.system_identifier.map(|s| s.0),
            postmaster_start: c.postmaster.filter(|p| p.alive).map(|p| p.start_epoch),
        },
        _ => DirSays {
            system_identifier: None,
            postmaster_start: None,
        },
    };
    let proven_by = plan::is_source_dir(&pgdata, &says, &dir).map_err(nothing)?;
    if in_recovery {
        return Err(nothing(
            "the source's server is a standby (in recovery): recover its primary, or rebuild \
             this standby from the recovered primary (`lifeboat region replicate`)",
        ));
    }
    let server = Server::new(name, &pgdata, bin, src.conn.clone(), control);
    Ok(Found {
        src,
        pgdata,
        server,
        system_identifier: says.system_identifier,
        proven_by,
    })
}

/// The archive up to now, the base backup that reaches the moment, the
/// binaries to recover with and the room beside the data directory.
pub async fn repository(
    ctx: &Ctx,
    req: &RecoverRequest,
    repo: &Repository,
    found: &Found,
) -> Result<Ready> {
    let ready = base_and_archive(
        ctx,
        req,
        repo,
        &found.src,
        &found.src.conn,
        found.system_identifier,
    )
    .await?;
    swap::check_room(&found.pgdata, ready.prep.facts.file_bytes)?;
    check_temp_dir(&ready.bin)?;
    Ok(ready)
}

/// The recovery server's socket and log go in a directory it makes in
/// `TMPDIR` (`RecoveryServer::start`): a `TMPDIR` that is missing, that
/// this process cannot write or that the server's user cannot enter would
/// fail the recovery only once the server is stopped (in place), or once
/// the base backup is written into the side directory (`--database`).
/// Checked the way the server will use it, before anything is.
pub(super) fn check_temp_dir(bin: &std::path::Path) -> Result<()> {
    lifeboat_postgres::basebackup::server::check_temp_dir(bin).map_err(|e| {
        usage(format!(
            "{e}: the recovery server, run as the server's operating-system user, keeps its \
             socket and log in a directory made in TMPDIR {}. Nothing was changed; set TMPDIR \
             to an existing directory this process can write and that user can enter (every \
             directory above it searchable by it), e.g. TMPDIR=/tmp",
            std::env::temp_dir().display()
        ))
    })
}

/// What both modes check in the repository: a base backup of `system`
/// that reaches the moment, the WAL up to now archived (a segment switch
/// on the server `conn` reaches, waited for), no gap past the base backup,
/// and the server binaries of its major version (`src`'s `bin_dir`).
pub async fn base_and_archive(
    ctx: &Ctx,
    req: &RecoverRequest,
    repo: &Repository,
    src: &PgSource,
    conn: &ConnConfig,
    system: u64,
) -> Result<Ready> {
    let system = system.to_string();
    let target = Target::Time(req.before);
    // A base backup first (no WAL switched on a server that cannot be
    // recovered), then the archive up to now, then the base backup and the
    // archive past it again, as listed after the switch.
    restore::prepare_for(repo, "latest", None, Some(&system), &target).await?;
    let archived_through = switch_and_wait(repo, conn, req.archive_timeout).await?;
    let prep = restore::prepare_for(repo, "latest", None, Some(&system), &target).await?;
    if let Some(gap) = prep.gap() {
        return Err(fail(
            INTEGRITY,
            format!(
                "{gap}: recovery would stop at the gap, perhaps before the moment. Nothing was \
                 changed; find the missing segments"
            ),
        ));
    }
    let (_, bin) = restore::server_for(ctx, Some(&src.name), &prep.facts).await?;
    Ok(Ready {
        prep,
        bin,
        archived_through,
    })
}

/// Switches the server to a new WAL segment and waits until the one it
/// completed is in the repository (`archive_command`'s `wal push`, or the
/// daemon's streaming): then the archive holds every commit up to now, so
/// up to the moment too. Its name.
async fn switch_and_wait(
    repo: &Repository,
    conn: &ConnConfig,
    timeout: Duration,
) -> Result<String> {
    let client = conn.connect().await.map_err(conn_err)?;
    // At a segment boundary (nothing written since the last switch)
    // pg_walfile_name names the segment before it: the one just completed.
    let name: String = client
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .await
        .map_err(|e| {
            fail(
                FAILURE,
                format!(
                    "switching the source's WAL segment (pg_switch_wal needs superuser or a \
                     grant): {}; nothing was changed",
                    pg_message(&e)
                ),
            )
        })?
        .get(0);
    drop(client);
    let deadline = Instant::now() + timeout;
    loop {
        let listed = lifeboat_repo::wal::list(repo).await?;
        if listed.iter().any(|(k, _)| k.name == name) {
            return Ok(name);
        }
        if Instant::now() > deadline {
            return Err(fail(
                FAILURE,
                format!(
                    "segment {name}, which holds the source's WAL up to now, did not reach the \
                     repository within {} s: is archive_command (`lifeboat wal push %p`) or the \
                     daemon's WAL streaming set up for this repository, and working? Nothing was \
                     changed",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The started server: a primary of the same system, and the source's
/// verification queries (a failing one is a failed recovery, exit 7).
pub async fn verify_started(src: &PgSource, system: u64) -> Result<Vec<QueryResult>> {
    let mut attempt = 0;
    let client = loop {
        attempt += 1;
        match src.conn.connect().await {
            Ok(c) => break c,
            Err(e) if attempt >= 10 => {
                return Err(fail(
                    VERIFY_FAILED,
                    format!("connecting to the recovered server: {e}"),
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), pg_is_in_recovery()",
            &[],
        )
        .await
        .map_err(|e| {
            fail(
                VERIFY_FAILED,
                format!("asking the recovered server: {}", pg_message(&e)),
            )
        })?;
    let (id, in_recovery): (i64, bool) = (row.get(0), row.get(1));
    if id as u64 != system || in_recovery {
        return Err(fail(
            VERIFY_FAILED,
            format!(
                "the started server is system {id}{}, not the recovered primary of system {system}",
                if in_recovery { " in recovery" } else { "" }
            ),
        ));
    }
    let mut out = Vec::new();
    for q in &src.queries {
        let rows = client.simple_query(&q.sql).await.map_err(|e| {
            fail(
                VERIFY_FAILED,
                format!("verification query {}: {}", q.name, pg_message(&e)),
            )
        })?;
        let value = rows.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        out.push(QueryResult {
            name: q.name.clone(),
            value,
        });
    }
    Ok(out)
}
