//! Physical base backups and point-in-time recovery (docs/physical.md):
//! `backup physical` ([`backup()`]: `pg_basebackup`'s tar stream laid out
//! into fixed-size blocks, [`stream`]) and `restore physical`
//! ([`restore()`]: a base backup chosen for the target by [`plan`], its
//! files written, recovery settings, a private server run until it has
//! recovered and promoted, the outcome verified, the server stopped) and
//! `recover postgres` ([`recover::recover`]: a source's server recovered in
//! place to just before a moment, its data directory swapped).

pub mod backup;
pub mod plan;
pub mod recover;
pub mod restore;
pub mod scratch;
pub mod stream;

use chrono::{DateTime, Utc};
use lifeboat_postgres::basebackup::Lsn;
use lifeboat_repo::snapshot::SnapshotRef;
use serde::{Deserialize, Serialize};

use crate::error::{Context, INCOMPATIBLE, Result, fail, usage};

/// What the WAL archive holds, for the decisions about a base backup
/// (`backup physical`'s warning, `restore physical`'s end of the archive):
/// every segment stored, complete or (the one being streamed) as partial
/// versions, and the timelines whose history file is stored. Two listings
/// (`wal/`, `wal-partial/`); nothing is decrypted.
pub(crate) struct ArchivedWal {
    /// (timeline, segment number in `segment_size` units).
    segments: Vec<(u32, u64)>,
    histories: Vec<u32>,
}

impl ArchivedWal {
    pub(crate) async fn list(repo: &lifeboat_repo::Repository, segment_size: u64) -> Result<Self> {
        use lifeboat_postgres::wal::SegmentName;
        let complete = lifeboat_repo::wal::list(repo).await?;
        let partial = lifeboat_repo::wal::partial::list(repo).await?;
        let histories = complete
            .iter()
            .filter(|(k, _)| k.name.ends_with(".history"))
            .map(|(k, _)| k.timeline)
            .collect();
        let segments = complete
            .iter()
            .filter_map(|(k, _)| Some((k.timeline, SegmentName::parse(&k.name)?)))
            .chain(
                partial
                    .iter()
                    .filter_map(|(k, _)| Some((k.timeline, SegmentName::parse(&k.segment)?))),
            )
            .map(|(tl, s)| (tl, s.number(segment_size)))
            .collect();
        Ok(Self {
            segments,
            histories,
        })
    }

    /// The segment numbers stored on `timeline` (unsorted; a segment stored
    /// under two epochs or also as partial versions counts more than once).
    pub(crate) fn on(&self, timeline: u32) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|(tl, _)| *tl == timeline)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The timelines whose history file is stored.
    pub(crate) fn histories(&self) -> impl Iterator<Item = u32> + '_ {
        self.histories.iter().copied()
    }
}

pub use backup::{BackupOutcome, BackupRequest, backup};
pub use restore::{RestoreOutcome, RestoreRequest, restore};

/// What a physical snapshot records about its base backup (its `facts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalFacts {
    pub version: u64,
    /// `pg_control_system().system_identifier`: which cluster this is.
    pub system_identifier: String,
    pub server_version: String,
    pub server_version_num: i64,
    /// The timeline the backup started on (`START TIMELINE`).
    pub timeline: u32,
    /// Where its WAL starts (`START WAL LOCATION`) and where it is
    /// consistent (the manifest's `End-LSN`).
    pub start_lsn: Lsn,
    pub stop_lsn: Lsn,
    /// The server's clock before `pg_basebackup` started and after it
    /// ended: the backup is consistent at some moment in between, so a
    /// recovery target at or after `stop_time` is reachable from it.
    pub start_time: DateTime<Utc>,
    pub stop_time: DateTime<Utc>,
    /// The server's next transaction id (`pg_snapshot_xmax`, with epoch)
    /// after the backup ended: a transaction with this id or a later one
    /// committed after the backup's consistency point.
    pub next_xid: u64,
    /// Bytes of a WAL segment (`wal_segment_size`).
    pub wal_segment_size: u64,
    pub data_checksums: bool,
    /// The bootstrap superuser (role OID 10), used to connect to the
    /// recovering server.
    pub superuser: String,
    /// Taken from a standby (`BACKUP FROM: standby`).
    pub from_standby: bool,
    /// The `backup_label` pg_basebackup wrote.
    pub backup_label: String,
    pub pg_basebackup_version: String,
    /// Entries of the data directory, and their content bytes (unpadded).
    pub files: u64,
    pub file_bytes: u64,
    pub block_size: u32,
}

/// Version of [`PhysicalFacts`] written.
pub const FACTS_VERSION: u64 = 1;

/// The facts of a physical snapshot; another kind is a usage error.
pub fn physical_facts(snap: &SnapshotRef) -> Result<PhysicalFacts> {
    let kind = snap.snapshot.kind.as_str();
    if kind != lifeboat_repo::physical::KIND {
        return Err(usage(format!(
            "snapshot {} is a {kind} snapshot (source {}), not a physical one; nothing was \
             changed. Pick a physical snapshot from `lifeboat snapshots`",
            snap.short_id(),
            snap.snapshot.source,
        )));
    }
    let version = snap.snapshot.facts.get("version").and_then(|v| v.as_u64());
    if version.is_some_and(|v| v > FACTS_VERSION) {
        return Err(fail(
            INCOMPATIBLE,
            format!(
                "snapshot {} records physical facts of version {}, newer than this Lifeboat \
                 reads; upgrade Lifeboat",
                snap.short_id(),
                version.unwrap_or_default()
            ),
        ));
    }
    serde_json::from_value(snap.snapshot.facts.clone()).with_context(|| {
        format!(
            "snapshot {} carries unreadable physical facts",
            snap.short_id()
        )
    })
}
