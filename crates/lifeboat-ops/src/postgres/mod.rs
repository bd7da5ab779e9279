//! The PostgreSQL flows: `backup postgres` ([`backup()`]), `restore
//! postgres` ([`restore()`], a sequence of named steps with its decisions in
//! [`restore::plan`]) and `verify` ([`verify()`]), plus what drills and the
//! demo share with them: the source ([`source`]), the error mappers
//! ([`errors`]), staging ([`staging`]) and feeding pg_restore ([`load`]).
//!
//! Exit codes for PostgreSQL problems: authentication failure 6, database
//! missing 3, bad URL / unknown table / missing client tools 2, facts that do
//! not hold 7, not enough staging space 8, a partial target 11, everything
//! else 1.

pub mod backup;
pub mod errors;
pub mod load;
pub mod restore;
pub mod source;
pub mod staging;
pub mod verify;

pub use backup::{
    BackupFailure, BackupFrom, BackupOutcome, BackupRequest, backup, backup_database, backup_source,
};
pub use errors::{conn_err, dump_err, facts_err, identity_err, tools_err};
pub use load::{restore_archive, restore_snapshot};
pub use restore::{RestoreOutcome, RestoreReport, RestoreRequest, restore};
pub use source::{PgSource, configured_source, connection, postgres_facts, url_source};
pub use verify::{VerifyOutcome, VerifyRequest, verify};

use crate::config::SourceConfig;

/// Name of the one item of a PostgreSQL snapshot.
pub const DUMP_ITEM: &str = "pg_dump.custom";

/// The parallel jobs of a restore of `source`: `flag` (--jobs), else the
/// source's `restore.jobs`, else 1.
pub fn restore_jobs(flag: Option<u32>, source: Option<&SourceConfig>) -> u32 {
    restore::plan::restore_jobs(flag, source.and_then(|s| s.restore?.jobs.map(|j| j.get())))
}
