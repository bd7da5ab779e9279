//! Physical base backups and point-in-time recovery, PostgreSQL's side
//! (docs/physical.md): running `pg_basebackup` with its tar stream on
//! standard output ([`run`]), reading that stream entry by entry
//! ([`tar`]), what `backup_label` and `backup_manifest` say ([`label`]),
//! recovery settings for a target and the server log's verdict
//! ([`recovery`], pure), and a server run on a restored data directory
//! until it has recovered ([`server`]). Nothing here knows the repository.

pub mod label;
pub mod recovery;
pub mod run;
pub mod server;
pub mod tar;

pub use label::{BackupLabel, Lsn, WalRange, manifest_wal_range, parse_backup_label};
pub use recovery::{LogVerdict, Target};
/// The SQL client's error, for callers without a tokio-postgres dependency.
pub use tokio_postgres::Error as SqlError;
pub use tokio_postgres::SimpleQueryMessage;
