//! The `lifeboat` crate's integration tests that share one test binary
//! (`cargo test --test cli`): each file beside this one is a module. One
//! binary instead of one per file: every test crate is compiled with the
//! release profile, and compiling (optimising) the same dependencies' generic
//! code into 30 binaries cost more CI time than running the tests.
//!
//! The files that start daemons with short leases and fence deadlines or
//! several etcd members are modules of `daemons.rs` (the `daemons` binary),
//! where two of them never run at the same time: their timing must not
//! compete with the other tests for the CPU.
//! `scripts/check-workspace.py` fails when a file in this directory is in
//! neither list (it would never run).

#[path = "../../lifeboat-region/tests/support/bind.rs"]
mod bind;
mod common;
#[path = "../../lifeboat-region/tests/support/etcd.rs"]
mod etcd;

mod children_cli;
mod config_does_something;
mod copy_cli;
mod drill_cli;
mod exit_codes;
mod json_cli;
mod kube_cli;
mod kube_quiesce;
mod physical_daemon;
mod physical_drill;
mod physical_pitr;
mod physical_recover;
mod physical_standby;
mod postgres_cli;
mod promtool;
mod region_cli;
mod region_cnpg;
mod repo_cli;
mod route53_cli;
mod s3_cli;
mod scope_cli;
mod secrets_cli;
mod serve_output;
mod status_page;
mod tables_cli;
mod target_identity;
mod wal_archive;
mod wal_retention;
