//! The `lifeboat-region` crate's integration tests whose timing must not
//! compete with other tests for the CPU (`cargo test -p lifeboat-region
//! --test timing`): lease expiry and fence deadlines (authority, fence) and
//! Patroni's own loop timing (patroni). Every test starts with
//! `alone(module_path!())` (`support/alone.rs`): the tests of one module run
//! together, two modules never overlap. They used to be one test binary
//! each, which cost CI a release-profile compile per file.
//!
//! Every other file of this directory is a module of `main.rs` (the
//! `region` binary). `scripts/check-workspace.py` fails when a file here is
//! in neither list (it would never run).

#[path = "support/alone.rs"]
mod alone;
#[path = "support/etcd.rs"]
mod etcd;

mod authority;
mod fence;
mod patroni;
