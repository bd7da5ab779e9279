//! Disaster-recovery evidence and judgement: drill and check records kept in
//! the repository, recovery objectives, the status verdict and the
//! production-readiness checklist. Everything but [`record`]'s storage calls
//! is a pure function of its inputs (time included), so every verdict is
//! table-tested. Running a drill (restoring into a scratch database or
//! namespace) needs the PostgreSQL and Kubernetes drivers and lives in the
//! binary (`crates/lifeboat/src/drill/`); later failover logic lands here.

pub mod kinds;
pub mod objectives;
pub mod readiness;
pub mod record;
pub mod regions;
pub mod status;
pub mod wal;
