//! PostgreSQL side of Lifeboat: finding the client tools, connecting, taking facts
//! in the dumped snapshot, driving pg_dump/pg_restore, the throwaway clusters,
//! the demo's Kubernaut-like dataset ([`demo_data`]) and, with the `testing`
//! feature, the fixtures tests and benchmarks add to it ([`fixture`]).
//!
//! Nothing here knows about the repository: a dump is a byte stream
//! ([`dump::PgDump`] implements `std::io::Read`), a restore a sink
//! ([`dump::PgRestore`] implements `std::io::Write`), and [`facts::Facts`] is a
//! serde document to be stored with the snapshot.

pub mod archive;
pub mod basebackup;
pub mod cluster;
pub mod conn;
pub mod demo_data;
pub mod dump;
pub mod facts;
/// Test and benchmark fixtures over [`demo_data`]: the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod fixture;
pub mod identity;
pub mod lsn;
pub mod selective;
pub mod split_restore;
pub mod tools;
pub mod wal;

pub use cluster::{ClusterOptions, TempCluster};
pub use conn::{ConnConfig, ConnError, PgHost, Secret};
pub use dump::{PgDump, PgRestore, RestoreOptions, RestoreOutcome};
/// The facts read from the catalogs: a part of [`facts`], also reachable here.
pub use facts::catalog;
pub use facts::{DumpScope, FactDiff, Facts, SnapshotSession, TableName, VerificationQuery};
/// The client `ConnConfig::connect` returns, so callers need no tokio-postgres dependency.
pub use tokio_postgres::Client;
pub use tools::{Discovery, PgTools};
