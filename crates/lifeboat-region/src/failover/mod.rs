//! Region failover as data (issue 20): what a failover is, the order of its
//! steps, when a region's failure is confirmed, and what a finished failover
//! measured. Everything here is pure and table-tested; the IO each step needs
//! (etcd through [`crate::authority`], PostgreSQL through [`crate::fence`]
//! and [`crate::promotion`], DNS through [`crate::traffic`], Kubernetes) is
//! done by the driver in `lifeboat-ops`, which feeds the outcomes back in as
//! [`machine::Event`]s.
//!
//! - [`plan`]: the kind of change of primary (automatic, manual, planned
//!   switchover) and its fixed facts.
//! - [`machine`]: the phases of one change of primary, the events that move
//!   it, and the single transition function. A `Progress` value is what is
//!   kept in etcd between steps, so a daemon killed mid-failover leaves a
//!   state the next holder of the election finishes without repeating a
//!   step harmfully.
//! - [`confirm`]: whether the primary region has failed (a majority of the
//!   vantage points outside it, and its lease gone) and which standby may be
//!   promoted (the lag guard).
//! - [`record`]: the failover record: each step's time, RTO and RPO.

pub mod confirm;
pub mod machine;
pub mod plan;
pub mod record;
