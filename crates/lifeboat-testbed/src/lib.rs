//! A multi-region test bed on one machine: every *site* (a region such as
//! `us-east`, or the `witness`) is a network namespace this crate creates,
//! joined by veth pairs to a bridge in a bed-private "core" namespace, so
//! nothing touches the host's interfaces or addresses. On top of that:
//!
//! - processes started inside a site ([`Site::command`], [`Site::spawn`]) and
//!   in-process code whose sockets live in a site ([`Site::run`],
//!   [`Site::connect`]);
//! - faults: a site killed whole ([`Bed::kill_site`]), partitioned from the
//!   others ([`Bed::partition`], [`Bed::partition_between`]), and latency on
//!   its outgoing packets ([`Bed::set_latency`]: `tc netem` where the kernel
//!   has it, else NFQUEUE and this crate's `lifeboat-netdelay` program);
//! - PostgreSQL ([`Site::postgres`], [`Site::standby_of`]) and an etcd
//!   cluster with one member per site ([`Bed::etcd`]).
//!
//! Needs root (network namespaces). Everything the bed started dies with it:
//! [`Bed::destroy`] or `Drop` kill every process in its namespaces and delete
//! them; a bed left behind by a crashed test process is removed by the next
//! [`Bed::create`]. docs/testbed.md describes the layout and the cleanup by hand.
//!
//! A test-only crate: other crates use it as a dev-dependency
//! (scripts/check-workspace.py's `TEST_ONLY`).

mod bed;
mod cmd;
mod error;
pub mod etcd;
mod faults;
mod latency;
pub mod netdelay;
pub mod postgres;
mod procs;
mod site;

pub use bed::{Bed, BedSpec, sweep_lock};
pub use error::BedError;
pub use etcd::{EtcdCluster, EtcdMember, EtcdOptions};
pub use latency::{LatencyMechanism, QueueStats};
pub use postgres::{PgOptions, SitePostgres};
pub use procs::SiteProcess;
pub use site::Site;
