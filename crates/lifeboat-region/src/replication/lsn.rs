//! WAL positions: the workspace's one [`Lsn`] type lives in
//! `lifeboat_postgres::lsn` (parsing, printing, serde); here the helper the
//! replication queries use.

pub use lifeboat_postgres::lsn::Lsn;

/// Parses an optional text LSN column (NULL stays `None`; garbage too).
pub(crate) fn opt(s: Option<String>) -> Option<Lsn> {
    s.as_deref().and_then(Lsn::parse)
}
