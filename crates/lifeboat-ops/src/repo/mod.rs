//! The repository flows: create one, manage its keys, list its snapshots,
//! copy them to a second repository, read back the configuration a backup
//! stored, check it, forget snapshots by retention, prune unreferenced data, remove
//! stale locks, rebuild its index. Each takes a typed request and returns a
//! typed result; the CLI (`crates/lifeboat/src/cmd_repo.rs`) prints it and
//! the daemon (`serve/retention.rs`) logs it.

pub mod check;
pub mod copy;
pub mod forget;
pub mod init;
pub mod keys;
pub mod prune;
pub mod repair;
pub mod snapshots;
pub mod stored_config;
pub mod unlock;
