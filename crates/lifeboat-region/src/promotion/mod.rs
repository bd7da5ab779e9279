//! Promotion under an epoch, and the planned switchover's PostgreSQL steps.
//!
//! - [`authority_row`]: `lifeboat.authority`, the epoch as the promoted
//!   server records it (a stale promoter is refused by the data too).
//! - [`promote`]: `pg_promote()`, wait until writable, write the epoch row;
//!   idempotent for a resumed failover.
//! - [`switchover`]: stop the old primary cleanly, wait until the standby
//!   replayed its shutdown checkpoint, and make the old primary follow the
//!   new one without a rewind.
//! - [`rejoin`]: an old primary made a standby of the current one
//!   (`pg_rewind` or a fresh clone), planned purely.
//!
//! Documentation: `docs/failover-fence.md`.

pub mod authority_row;
pub mod promote;
pub mod rejoin;
pub mod switchover;

pub use authority_row::{AuthorityError, AuthorityRow, read_epoch, write_epoch};
pub use promote::{PromoteError, Promoted, promote};
pub use switchover::{
    FinalLsn, SwitchoverError, follow, rewind_possible, stop_clean, wait_replayed,
};
