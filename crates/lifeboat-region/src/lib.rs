//! Lifeboat's multi-region ground (issue 19; the failover authority of the
//! next issue builds on it). Decisions are pure functions over plain values,
//! tested with tables; the IO (PostgreSQL, HTTP/TCP probes, DNS, Route 53,
//! Redis) sits at the edges. The configuration file's `regions:` section is
//! read by `lifeboat-ops::config` (where every other section and the secret
//! references are read); this crate gets plain values from it.
//!
//! - [`topology`]: the regions and their relations, and what makes a topology
//!   impossible.
//! - [`replication`]: PostgreSQL streaming replication: the plan to seed a
//!   standby, its steps, and observing role and lag.
//! - [`heartbeat`]: the heartbeat row in Lifeboat's own `lifeboat` database.
//! - [`failover`]: one change of primary as a pure state machine, the
//!   confirmation of a region's failure (majority and lag guard) and the
//!   failover record (RTO, RPO).
//! - [`health`]: health checks with Route 53's semantics (probes and the
//!   verdict state machine).
//! - [`traffic`]: DNS steering: the answer set for a set of verdicts, and the
//!   providers (RFC 2136 with TSIG, Route 53).
//! - [`redis`]: Redis replication state (`INFO replication`).
//! - [`authority`]: the failover authority in etcd: the authority record and
//!   its epoch (compare-and-swap), region leases, the election, failover
//!   progress and records.
//! - [`managers`]: standby regions whose PostgreSQL a manager runs: Patroni's
//!   `standby_cluster` (REST API) and CloudNativePG's replica `Cluster`.
//! - [`fence`]: fencing a primary that lost its region lease (stop, revoke
//!   LOGIN), the lease guard and the watchdog process.
//! - [`promotion`]: promoting a standby under an epoch (`lifeboat.authority`)
//!   and the planned switchover's PostgreSQL steps.
//! - [`failsafe`]: `failover.etcd_lost: keep_if_peers_agree`: a primary that
//!   lost etcd keeps serving while every other daemon vouches for it.
//! - [`http1`]: one plain HTTP/1.1 POST, for the daemons' calls to each other.

pub mod authority;
pub mod failover;
pub mod failsafe;
pub mod fence;
pub mod health;
pub mod heartbeat;
pub mod http1;
pub mod managers;
pub mod promotion;
pub mod redis;
pub mod replication;
pub mod topology;
pub mod traffic;
