//! The `lifeboat-region` crate's integration tests that share one test binary
//! (`cargo test -p lifeboat-region --test region`): each file listed here is a
//! module. One binary instead of one per file: each release-profile test
//! crate costs its own optimisation of the dependencies' generic code,
//! which cost more CI time than running the tests.
//!
//! Lease expiry and fence deadlines (authority, fence) and Patroni's own
//! loop timing (patroni) must not compete with the other tests for the
//! CPU: they are modules of `timing.rs` (the `timing` binary), where two of
//! them never run at the same time.
//! `scripts/check-workspace.py` fails when a file in this directory is in
//! neither list (it would never run).

#[path = "support/bind.rs"]
mod bind;

mod cnpg;
mod dns_rfc2136;
mod health;
mod promotion;
mod redis;
mod replication;
mod route53;
