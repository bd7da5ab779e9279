//! Replication for regions whose PostgreSQL is run by a manager rather than
//! by Lifeboat (issue 19, "Replication"): the settings each manager uses to
//! make a region's cluster a standby of the primary region, and reading the
//! manager's own view of role, state and lag back.
//!
//! - [`patroni`]: Patroni's `standby_cluster` through its REST API
//!   (`PATCH /config`), `GET /cluster` and `GET /patroni`, and the primary's
//!   `pg_stat_replication` as the evidence that the standby streams.
//! - [`cnpg`]: CloudNativePG's replica cluster: the `Cluster` merge patch
//!   (`spec.replica`, `spec.externalClusters`) as a pure function; applying it
//!   through the Kubernetes API belongs to the Kubernetes side (lifeboat-kube
//!   / lifeboat-ops).
//!
//! docs/regions/managers.md says what was tried against a real manager and
//! what only against an API test double.

pub mod cnpg;
pub mod patroni;
