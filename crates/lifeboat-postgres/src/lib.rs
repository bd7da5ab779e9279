//! PostgreSQL side of Lifeboat: finding the client tools, connecting, taking facts
//! in the dumped snapshot, driving pg_dump/pg_restore, and the throwaway clusters
//! and Kubernaut-like fixtures used by tests, the demo and benchmarks.
//!
//! Nothing here knows about the repository: a dump is a byte stream
//! ([`dump::PgDump`] implements `std::io::Read`), a restore a sink
//! ([`dump::PgRestore`] implements `std::io::Write`), and [`facts::Facts`] is a
//! serde document to be stored with the snapshot.

pub mod archive;
pub mod catalog;
pub mod cluster;
pub mod conn;
pub mod dump;
pub mod facts;
pub mod fixture;
pub mod identity;
pub mod selective;
pub mod split_restore;
pub mod tools;

pub use cluster::{ClusterOptions, TempCluster};
pub use conn::{ConnConfig, ConnError, PgHost, Secret};
pub use dump::{PgDump, PgRestore, RestoreOptions, RestoreOutcome};
pub use facts::{DumpScope, FactDiff, Facts, SnapshotSession, TableName, VerificationQuery};
/// The client `ConnConfig::connect` returns, so callers need no tokio-postgres dependency.
pub use tokio_postgres::Client;
pub use tools::{Discovery, PgTools};
