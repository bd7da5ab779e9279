//! The `lifeboat` crate's integration tests that start daemons with short
//! leases and fence deadlines or several etcd members (`cargo test --test
//! daemons`). Their timing must not compete with other tests for the CPU,
//! so every test here starts with `alone(module_path!())`
//! (`crates/lifeboat-region/tests/support/alone.rs`): the tests of one
//! module run together, two modules never overlap. They used to be one
//! test binary each, which cost CI a release-profile compile per file.
//!
//! Every other file of this directory is a module of `main.rs` (the `cli`
//! binary). `scripts/check-workspace.py` fails when a file here is in
//! neither list (it would never run).

#[path = "../../lifeboat-region/tests/support/alone.rs"]
mod alone;
#[path = "../../lifeboat-region/tests/support/bind.rs"]
mod bind;
mod common;
#[path = "../../lifeboat-region/tests/support/etcd.rs"]
mod etcd;

mod copy_daemon;
mod failover_auto;
mod failover_cli;
mod failover_cnpg;
mod failover_faults;
mod fence_cnpg;
mod fence_daemon;
mod fence_watchdog;
mod locks_cli;
mod region_daemon;
mod region_patroni;
mod rejoin_cli;
mod serve_cli;
mod wal_stream;
