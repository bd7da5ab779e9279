//! The failover authority in etcd (issue 20): which region is primary and
//! the **epoch**, every region daemon's lease, the election among the
//! daemons, and the state of a running failover — kept in an etcd cluster
//! (v3 API, Debian's 3.4 and later) through the `etcd-client` crate.
//!
//! # Key layout
//!
//! Everything lives under one prefix (`/lifeboat` by default; one prefix per
//! Lifeboat cluster sharing an etcd):
//!
//! | key                                   | value (JSON)                        | written by |
//! |---------------------------------------|-------------------------------------|------------|
//! | `<prefix>/authority`                  | [`AuthorityRecord`]                 | [`AuthorityStore::initialize`], [`AuthorityStore::bump`] |
//! | `<prefix>/leases/<region>`            | [`LeaseHolder`], attached to the region's lease | [`AuthorityStore::grant`] |
//! | `<prefix>/election/<lease id in hex>` | the candidate's name (etcd's election API) | [`AuthorityStore::campaign`] |
//! | `<prefix>/failover`                   | the running failover's progress (the caller's type) | [`AuthorityStore::put_progress`] |
//! | `<prefix>/failovers/<epoch, 20 digits>` | one failover record per epoch (the caller's type) | [`AuthorityStore::put_failover_record`] |
//! | `<prefix>/votes/<observer>`           | [`VoteRecord`], attached to the observer's region lease | [`AuthorityStore::put_vote`] |
//! | `<prefix>/decision`                   | the latest failover decision (the caller's type) | [`AuthorityStore::put_decision`] |
//!
//! # Compare-and-swap rules
//!
//! - The authority record is created once (`create_revision == 0`) with
//!   epoch 1, and from then on changed only by one transaction comparing its
//!   `mod_revision` with the version the caller read (and, for a failover,
//!   that the old primary's lease key does not exist). So two daemons that
//!   read the same version cannot both bump it: one wins, the other gets
//!   [`AuthorityError::Conflict`] with what made its compare fail.
//! - A write whose outcome is unknown (a timeout after it was sent, a leader
//!   change) is never re-sent blindly: the key is read back; the write was
//!   ours iff the value there is exactly the one we wrote (for the authority:
//!   epoch, primary, `changed_by` and `changed_at`); if the key still has the
//!   version we compared with, the identical transaction is sent again (both
//!   compare against the same version, so at most one of them can apply).
//! - A region's lease key is created only when absent (or already held by the
//!   same lease): a second daemon for one region is refused with
//!   [`AuthorityError::RegionTaken`].
//! - The failover progress is created only when absent and then changed or
//!   cleared only against the `mod_revision` last read; failover records are
//!   create-only.
//!
//! # Reads and etcd unavailable
//!
//! Every read is linearizable (etcd's default; this module never asks for a
//! serializable read), and every request carries etcd's "require leader"
//! flag: a member cut off from the majority answers "no leader" instead of a
//! stale authority. Idempotent calls are retried with backoff within
//! [`EtcdSettings::request_timeout`], each attempt cut after a third of it
//! (a member whose leader just died holds a request until etcd's own, longer
//! timeout; the next attempt reaches the new leader); then they fail with
//! [`AuthorityError::Unavailable`], which says which endpoints were tried.
//! Without a majority of etcd members nothing here can succeed, so no
//! promotion can happen: that is the point.
//!
//! - [`settings`]: endpoints, TLS, credentials, timeouts, and their checks.
//! - [`record`]: the authority record, lease and version types.
//! - [`keys`]: the key layout above as functions.
//! - [`error`]: [`AuthorityError`] and how etcd's answers map onto it.
//! - [`store`]: the connection, the authority record, failover progress and
//!   records; leases ([`lease`]) and the election ([`election`]) are methods
//!   of the same store.
//! - [`votes`]: the vantage points' votes on the primary region and the
//!   latest failover decision (automatic failover).

mod call;
pub mod election;
pub mod error;
pub mod keys;
pub mod leader;
pub mod lease;
mod members;
pub mod record;
pub mod settings;
pub mod store;
pub mod votes;

pub use election::Leadership;
pub use error::AuthorityError;
pub use keys::Keys;
pub use leader::{LeaderKeeper, Placement};
pub use lease::RegionLease;
pub use record::{AuthorityRecord, ChangeReason, LeaseHolder, LeaseInfo, Versioned};
pub use settings::{EtcdSettings, EtcdTls};
pub use store::AuthorityStore;
pub use votes::{DecisionRecord, VoteRecord};
