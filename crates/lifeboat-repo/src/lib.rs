//! The Lifeboat repository: an encrypted, deduplicating, content-addressed
//! store for backup streams, over a small [`storage::Storage`] trait.
//! It knows nothing of PostgreSQL or Kubernetes.
//!
//! Start at [`repo::Repository`] (open/init), [`backup::BackupSession`]
//! (store streams), [`restore::restore_item`], [`check::check`] and
//! [`prune::prune`]. The on-storage format is specified in `docs/format.md`.

pub mod backup;
pub mod blobs;
pub mod check;
mod chunker;
pub mod condemned;
pub mod copy;
pub mod crypto;
pub mod error;
pub mod format;
pub mod index;
pub mod keys;
pub mod lock;
mod lock_options;
pub mod pack;
pub mod physical;
pub mod progress;
pub mod prune;
pub mod references;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod retain;
pub mod retention;
pub mod snapshot;
pub mod storage;
pub mod subset;
pub mod wal;

pub use error::{BadInput, ErrorClass, Fault, Missing, RepoError, RepoErrorKind, Result};
pub use keys::Secret;
pub use progress::Progress;
pub use repo::{InitOptions, Repository};
