//! WAL archiving into the repository (`docs/physical.md`): `wal push` for
//! PostgreSQL's `archive_command`, `wal fetch` for its `restore_command`,
//! `wal list` for operators and tests. Each file is one object
//! (`lifeboat_repo::wal`), written once, without a repository lock and
//! without a KDF run when the repository is opened with a key file.

pub mod check;
pub mod epoch;
pub mod fetch;
pub mod list;
pub mod open;
pub mod push;
pub mod retention;

pub use fetch::{FetchRequest, Fetched, fetch};
pub use list::{ListRequest, WalListing, list};
pub use push::{PushRequest, Pushed, Stored, push, store};
