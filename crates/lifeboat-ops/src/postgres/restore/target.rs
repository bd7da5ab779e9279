//! Step "choose target": where the restore goes and whether that is the
//! configured source's database, by what both servers say
//! ([`identity`]): the target is the source (its writers quiesced) when
//! system identifier, database OID, data directory and postmaster start
//! time match ([`plan::target_verdict`]). A physical copy of the source is
//! named in a warning and restored like any other database. An existing
//! database holding objects that is not the source needs
//! `--clean-existing`. Nothing is changed here.

use lifeboat_postgres::conn::{self as pgconn, ConnConfig};
use lifeboat_postgres::identity;
use lifeboat_postgres::tools::Discovery;
use lifeboat_repo::snapshot::SnapshotRef;

use super::RestoreRequest;
use super::plan::{self, OtherWarning, SourceIdentity, TargetVerdict};
use crate::context::Ctx;
use crate::error::{FAILURE, Result, USAGE, fail, usage};
use crate::postgres::errors::{conn_err, identity_err};
use crate::postgres::source::PgSource;

/// Where a restore goes, as [`choose_target`] decided it.
pub struct TargetChoice {
    pub target: ConnConfig,
    pub discovery: Discovery,
    /// The source's quiesce settings, when the target is the source's database.
    pub quiesce: Option<crate::config::Quiesce>,
    /// The parallel jobs in effect: --jobs, else the source's restore.jobs, else 1.
    pub jobs: u32,
}

pub async fn choose_target(
    ctx: &Ctx,
    req: &RestoreRequest,
    snap: &SnapshotRef,
    source: Option<&PgSource>,
) -> Result<TargetChoice> {
    let jobs = crate::postgres::restore_jobs(req.jobs, source.and_then(|s| s.config.as_ref()));
    plan::check_whole_tables(req.whole_tables, jobs)?;
    let source_quiesce = |s: &PgSource| s.config.as_ref().and_then(|c| c.quiesce.clone());
    let url = match (&req.target, source) {
        (Some(url), _) => url,
        (None, Some(s)) => {
            return Ok(TargetChoice {
                target: s.conn.clone(),
                discovery: s.discovery.clone(),
                quiesce: source_quiesce(s),
                jobs,
            });
        }
        (None, None) => {
            return Err(usage(format!(
                "where to restore snapshot {}? pass --target postgresql://user@host:port/db, or \
                 --source NAME of a configured PostgreSQL source",
                snap.short_id()
            )));
        }
    };
    let target = ConnConfig::parse(url).map_err(conn_err)?;
    let shown = target.display_url();
    let discovery = source.map(|s| s.discovery.clone()).unwrap_or_default();
    let (src_id, tgt_id) = match source {
        Some(s) => {
            let (a, b) = tokio::join!(identity::read(&s.conn), identity::read(&target));
            (Some(a), b)
        }
        None => (None, identity::read(&target).await),
    };
    let tgt_id = tgt_id.map_err(|e| identity_err(e, &format!("the target {shown}")))?;
    let (identity, src_error) = match src_id {
        None => (SourceIdentity::NoSource, None),
        Some(Ok(src_id)) => (
            SourceIdentity::Read(identity::relation(&src_id, &tgt_id)),
            None,
        ),
        Some(Err(e)) => (SourceIdentity::Unreadable, Some(e)),
    };
    let verdict = plan::target_verdict(
        identity,
        req.source_unreachable,
        tgt_id.database_oid.is_some(),
        req.clean_existing,
    );
    let name = source.map(|s| s.name.as_str()).unwrap_or_default();
    let src_error = src_error.map(|e| e.to_string()).unwrap_or_default();
    let check_contents = match verdict {
        TargetVerdict::Source {
            data_directory_compared,
            unreachable_flag_unneeded,
        } => {
            if !ctx.global.quiet {
                ctx.reporter().note(&format!(
                    "the target {shown} is the database of source {name} ({}, the same running \
                     server{}): its writers are quiesced as configured",
                    tgt_id.describe(),
                    if data_directory_compared {
                        ""
                    } else {
                        " by its start time; data_directory is not readable by this user \
                         (grant pg_read_all_settings to compare it too)"
                    }
                ));
            }
            if unreachable_flag_unneeded {
                ctx.reporter().note(&format!(
                    "note: --source-unreachable was not needed: source {name} answered"
                ));
            }
            return Ok(TargetChoice {
                target,
                discovery,
                quiesce: source.and_then(source_quiesce),
                jobs,
            });
        }
        TargetVerdict::Refused => {
            return Err(fail(
                USAGE,
                format!(
                    "cannot tell whether the target {shown} is the database of source {name}: \
                     reading the source's identity failed: {src_error}. Nothing was changed. If the \
                     source is down, pass --source-unreachable to restore into the target as \
                     another database (writers not quiesced); to restore the source itself, \
                     use --source {name} without --target"
                ),
            ));
        }
        TargetVerdict::Other {
            warn,
            check_contents,
        } => {
            match warn {
                Some(OtherWarning::Copy { differs }) => ctx.reporter().note(&format!(
                    "WARNING: the target {shown} is a physical copy of source {name}'s database ({}; \
                     {} differ): it is not the running source, so the source's writers are NOT \
                     quiesced",
                    tgt_id.describe(),
                    differs.join(" and ")
                )),
                Some(OtherWarning::SourceUnreachable) => ctx.reporter().note(&format!(
                    "WARNING: --source-unreachable: source {name} cannot be asked who it is ({src_error}); the \
                     target {shown} is restored as another database and the writers are NOT quiesced"
                )),
                None => {}
            }
            check_contents
        }
    };
    if check_contents {
        refuse_if_it_holds_objects(&target, source.is_none()).await?;
    }
    Ok(TargetChoice {
        target,
        discovery,
        quiesce: None,
        jobs,
    })
}

/// An existing database that is not the source, restored over without
/// `--clean-existing`: refused when it holds objects, listing some.
async fn refuse_if_it_holds_objects(target: &ConnConfig, no_source: bool) -> Result<()> {
    let shown = target.display_url();
    let client = target.connect().await.map_err(conn_err)?;
    let contents = identity::user_objects(&client, 10).await.map_err(|e| {
        fail(
            FAILURE,
            format!("listing what {shown} holds: {}", pgconn::pg_message(&e)),
        )
    })?;
    if contents.is_empty() {
        return Ok(());
    }
    Err(fail(
        USAGE,
        format!(
            "the target {shown} is an existing database that is not the configured \
             source{} and it holds {}: restoring replaces every object of the snapshot \
             there. Nothing was changed. Pass --clean-existing to restore over it, or \
             give a database that does not exist yet (it is created)",
            if no_source {
                " (no configured source: a --db backup restored with --target)"
            } else {
                ""
            },
            contents.listing()
        ),
    ))
}
