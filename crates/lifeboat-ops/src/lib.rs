//! Lifeboat's service layer. Every flow — back up a source, restore,
//! drill, check, forget and prune, status and readiness, the demo's steps —
//! lives here with typed inputs, typed results and a typed [`error::Error`],
//! so the CLI (`crates/lifeboat`), the daemon, drills and tests call the
//! same code in-process. The binary parses arguments, loads the
//! configuration, calls a flow and prints or serves the result.
//!
//! Shared ground:
//! - [`context::Ctx`]: where the repository is and how to open it, the
//!   configuration, and the [`report::Reporter`] flows narrate to.
//! - [`config`]: the configuration file (model, secrets, schedules, validation).
//! - [`error`]: kinds (one per exit code), messages, hints.

pub mod assess;
pub mod child;
pub mod config;
pub mod context;
pub mod daemon;
pub mod demo;
pub mod drill;
pub mod error;
pub mod interrupt;
pub mod kube;
pub mod lease;
pub mod physical;
pub mod postgres;
pub mod quiesce;
pub mod region;
pub mod repo;
pub mod report;
pub mod secrets;
pub mod stream;
pub mod stream_command;
pub mod table_restore;
pub mod wal;

pub use error::{Error, Kind, Result};
