//! The `lifeboat-repo` crate's integration tests that share one test binary
//! (`cargo test -p lifeboat-repo --test repo`): each file listed here is a
//! module. One binary instead of one per file: each release-profile test
//! crate costs its own optimisation of the dependencies' generic code,
//! which cost more CI time than running the tests.
//!
//! The files that run alone (`[[test]]` entries in Cargo.toml): lock lease timing (locks) and a
//! memory bound measured while the restore runs (restore_memory).
//! `scripts/check-workspace.py` fails when a file in this directory is in
//! neither list (it would never run).

mod common;

mod append_only;
mod copy;
mod dedup_in_flight;
mod engine_faults;
mod key_slot_tamper;
mod partial_restore;
mod prune_race;
mod repair_index;
mod storage_s3;
