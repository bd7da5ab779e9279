//! Retention of WAL (`docs/physical.md`, "Retention"): what PostgreSQL's
//! side of prune's WAL step needs, given to `lifeboat_repo::prune` as
//! [`PgWalRules`].
//!
//! - **The cutoff** ([`cutoff`]): the start segment of the **oldest kept
//!   physical snapshot** (the smallest `start_lsn / wal_segment_size` over
//!   every physical snapshot the prune read, whatever its source or
//!   timeline). Every kept base backup needs the WAL from its own start
//!   on; the oldest one's start is therefore where the needed WAL begins.
//!   No physical snapshot: no cutoff, and prune keeps every WAL object (WAL
//!   without a base backup is kept whole). A physical snapshot whose facts
//!   cannot be read, or snapshots recording different segment sizes: no
//!   cutoff either, with the reason.
//! - **A file's position** ([`position`]): its segment's number
//!   (`XLogSegNo`), independent of the timeline, so that one cutoff applies
//!   to every timeline. A `.partial` segment and a backup label have their
//!   segment's number; a `.history` file has none (never deleted).
//!
//! The same cutoff is where `check` and `status` start looking for gaps
//! ([`super::check`]): what lies before it is no longer needed.

use lifeboat_postgres::wal::{SegmentName, WalName};
use lifeboat_repo::physical::KIND;
use lifeboat_repo::prune::{WalCutoff, WalRules};
use lifeboat_repo::snapshot::SnapshotRef;

use crate::physical::physical_facts;

/// PostgreSQL's rules for prune's WAL step.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgWalRules;

impl WalRules for PgWalRules {
    fn cutoff(&self, snapshots: &[SnapshotRef]) -> Result<Option<WalCutoff>, String> {
        cutoff(snapshots)
    }

    fn position(&self, timeline: u32, name: &str, segment_size: u64) -> Option<u64> {
        position(timeline, name, segment_size)
    }
}

/// Whether `size` is a segment size PostgreSQL allows (a power of two from
/// 1 MiB to 1 GiB).
fn valid_segment_size(size: u64) -> bool {
    size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size)
}

/// The start of the oldest physical snapshot among `snapshots` (see the
/// module); `Ok(None)` without physical snapshots.
pub fn cutoff(snapshots: &[SnapshotRef]) -> Result<Option<WalCutoff>, String> {
    let mut size: Option<(u64, &str)> = None;
    let mut oldest: Option<WalCutoff> = None;
    for s in snapshots.iter().filter(|s| s.snapshot.kind == KIND) {
        let f = physical_facts(s).map_err(|e| {
            format!(
                "physical snapshot {} has facts this version cannot read ({e}), so where its WAL \
                 starts is unknown",
                s.short_id()
            )
        })?;
        let seg = f.wal_segment_size;
        if !valid_segment_size(seg) {
            return Err(format!(
                "physical snapshot {} records a WAL segment size of {seg} bytes, which \
                 PostgreSQL does not allow",
                s.short_id()
            ));
        }
        match size {
            Some((other, id)) if other != seg => {
                return Err(format!(
                    "physical snapshots {id} and {} record different WAL segment sizes ({other} \
                     and {seg} bytes): the archive's positions cannot be compared",
                    s.short_id()
                ));
            }
            _ => size = Some((seg, s.short_id())),
        }
        let position = f.start_lsn.0 / seg;
        let older = oldest
            .as_ref()
            .is_none_or(|o| (position, s.id.as_str()) < (o.position, o.snapshot.as_str()));
        if older {
            oldest = Some(WalCutoff {
                position,
                segment_size: seg,
                snapshot: s.id.clone(),
                first_kept: SegmentName::from_number(f.timeline, position, seg).to_string(),
            });
        }
    }
    Ok(oldest)
}

/// The segment number of the file `name` stored on `timeline` (see the
/// module); `None` for history files, names that are not WAL file names,
/// and names whose own timeline is not the one they are stored under.
pub fn position(timeline: u32, name: &str, segment_size: u64) -> Option<u64> {
    let n = WalName::parse(name)
        .ok()
        .filter(|n| n.timeline() == timeline)?;
    match n {
        WalName::Segment(s) | WalName::Partial(s) => Some(s.number(segment_size)),
        WalName::BackupLabel { segment, .. } => Some(segment.number(segment_size)),
        WalName::History { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    //! The rules of `docs/physical.md` ("Retention") from PostgreSQL's own
    //! names and physical snapshots, through prune's planner
    //! (`lifeboat_repo::prune::plan_wal`): which stored objects a prune
    //! deletes.

    use chrono::{DateTime, Duration, Utc};
    use lifeboat_postgres::basebackup::Lsn;
    use lifeboat_repo::prune::{WalInputs, WalObject, plan_wal};
    use lifeboat_repo::snapshot::{BackupStats, Snapshot};

    use super::*;
    use crate::physical::PhysicalFacts;

    const SEG: u64 = 16 << 20;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).unwrap()
    }

    /// A physical snapshot `id` whose base backup started in segment
    /// `start` of `timeline`.
    fn physical(id: &str, timeline: u32, start: u64, seg: u64) -> SnapshotRef {
        let f = PhysicalFacts {
            version: 1,
            system_identifier: "1".into(),
            server_version: "15".into(),
            server_version_num: 150000,
            timeline,
            start_lsn: Lsn(start * seg + 0x28),
            stop_lsn: Lsn(start * seg + 0x1000),
            start_time: t(0),
            stop_time: t(0),
            next_xid: 1,
            wal_segment_size: seg,
            data_checksums: false,
            superuser: "postgres".into(),
            from_standby: false,
            backup_label: String::new(),
            pg_basebackup_version: String::new(),
            files: 0,
            file_bytes: 0,
            block_size: 8192,
        };
        snapshot(id, KIND, serde_json::to_value(f).unwrap())
    }

    fn snapshot(id: &str, kind: &str, facts: serde_json::Value) -> SnapshotRef {
        SnapshotRef {
            id: id.to_string(),
            snapshot: Snapshot {
                version: 1,
                time: t(0),
                hostname: "h".into(),
                username: "u".into(),
                source: "main".into(),
                kind: kind.to_string(),
                tags: vec![],
                items: vec![],
                stats: BackupStats::default(),
                facts,
                program: "test".into(),
                scope: None,
            },
        }
    }

    /// An archive of two timelines: timeline 1 has segments 1 to 6, its
    /// `.partial` 6 (the promoted standby's), a backup label in segment 3
    /// and one in 5; timeline 2 (switched in segment 6) its history file
    /// and segments 6 to 8, with partial versions of 9 (the streamer's).
    /// Everything written at minute 10 unless said.
    const ARCHIVE: &[(&str, i64)] = &[
        ("wal/00000001/000000010000000000000001/0", 10),
        ("wal/00000001/000000010000000000000002/0", 10),
        ("wal/00000001/000000010000000000000003/0", 10),
        (
            "wal/00000001/000000010000000000000003.00000028.backup/0",
            10,
        ),
        ("wal/00000001/000000010000000000000004/0", 10),
        ("wal/00000001/000000010000000000000005/0", 10),
        (
            "wal/00000001/000000010000000000000005.00000028.backup/0",
            10,
        ),
        ("wal/00000001/000000010000000000000006/0", 10),
        ("wal/00000001/000000010000000000000006.partial/1", 10),
        ("wal/00000002/00000002.history/1", 10),
        ("wal/00000002/000000020000000000000006/1", 10),
        ("wal/00000002/000000020000000000000007/1", 10),
        ("wal/00000002/000000020000000000000008/1", 10),
        ("wal-partial/00000002/000000020000000000000009/1/8192", 10),
        ("wal-partial/00000002/000000020000000000000009/1/16384", 10),
        ("wal/00000001/not-a-wal-name/0", 10),
    ];

    /// The (timeline, name) of a stored key.
    fn parts(key: &str) -> (u32, &str) {
        let mut p = key.split('/').skip(1);
        let tl = u32::from_str_radix(p.next().unwrap(), 16).unwrap();
        (tl, p.next().unwrap())
    }

    /// What a prune at minute 100 with `grace` minutes deletes, given the
    /// snapshots it read and the archive (with times).
    fn deleted(snaps: &[SnapshotRef], archive: &[(&str, i64)], grace: i64) -> Vec<String> {
        let cut = cutoff(snaps);
        let size = cut
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .map(|c| c.segment_size);
        let inputs = WalInputs {
            now: t(100),
            objects: archive
                .iter()
                .map(|(k, m)| {
                    let (tl, name) = parts(k);
                    WalObject {
                        key: k.to_string(),
                        size: 100,
                        last_modified: t(*m),
                        position: size.and_then(|s| PgWalRules.position(tl, name, s)),
                    }
                })
                .collect(),
            cutoff: cut,
            locks: vec![],
        };
        let mut d = plan_wal(&inputs, "own", Duration::minutes(grace)).delete;
        d.sort();
        d
    }

    fn keys(prefixes: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ARCHIVE
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_oldest_kept_base_backup_decides_on_every_timeline() {
        struct Case {
            what: &'static str,
            snaps: Vec<SnapshotRef>,
            grace: i64,
            archive: &'static [(&'static str, i64)],
            delete: Vec<String>,
        }
        let a = physical("aaaa", 1, 3, SEG);
        let b = physical("bbbb", 2, 7, SEG);
        let logical = snapshot("cccc", "postgres", serde_json::json!({"rows": 1}));
        let cases = [
            Case {
                what: "A (timeline 1, segment 3) and B kept: before 3 goes, A's label stays",
                snaps: vec![a.clone(), b.clone(), logical.clone()],
                grace: 60,
                archive: ARCHIVE,
                delete: keys(&[
                    "wal/00000001/000000010000000000000001/",
                    "wal/00000001/000000010000000000000002/",
                ]),
            },
            Case {
                what: "A forgotten: B (timeline 2, segment 7) is the oldest; both timelines \
                       before 7 go (partial 6 and the labels too), history and unknown names stay",
                snaps: vec![b.clone(), logical.clone()],
                grace: 60,
                archive: ARCHIVE,
                delete: keys(&[
                    "wal/00000001/0000000100000000000000",
                    "wal/00000002/000000020000000000000006/",
                ]),
            },
            Case {
                what: "only logical snapshots: WAL kept whole",
                snaps: vec![logical.clone()],
                grace: 60,
                archive: ARCHIVE,
                delete: vec![],
            },
            Case {
                what: "no snapshot at all: WAL kept whole",
                snaps: vec![],
                grace: 0,
                archive: ARCHIVE,
                delete: vec![],
            },
            Case {
                what: "a base backup in segment 10: the streamer's partial versions of 9 go too",
                snaps: vec![physical("dddd", 2, 10, SEG)],
                grace: 60,
                archive: ARCHIVE,
                delete: keys(&[
                    "wal/00000001/0000000100000000000000",
                    "wal/00000002/0000000200",
                    "wal-partial/",
                ]),
            },
            Case {
                what: "the grace period: segment 2 was written a minute ago",
                snaps: vec![a.clone()],
                grace: 60,
                archive: &[
                    ("wal/00000001/000000010000000000000001/0", 10),
                    ("wal/00000001/000000010000000000000002/0", 99),
                    ("wal/00000001/000000010000000000000003/0", 10),
                ],
                delete: vec!["wal/00000001/000000010000000000000001/0".into()],
            },
            Case {
                what: "unreadable physical facts: nothing deleted",
                snaps: vec![
                    b.clone(),
                    snapshot("eeee", KIND, serde_json::json!({"version": 1})),
                ],
                grace: 0,
                archive: ARCHIVE,
                delete: vec![],
            },
            Case {
                what: "different segment sizes: nothing deleted",
                snaps: vec![b.clone(), physical("ffff", 1, 3, 64 << 20)],
                grace: 0,
                archive: ARCHIVE,
                delete: vec![],
            },
        ];
        for c in cases {
            assert_eq!(
                deleted(&c.snaps, c.archive, c.grace),
                c.delete,
                "{}",
                c.what
            );
        }
    }

    #[test]
    fn the_cutoff_names_the_oldest_start() {
        let c = cutoff(&[
            physical("bbbb", 2, 7, SEG),
            physical("aaaa", 1, 0x1_05, SEG),
            physical("zzzz", 1, 3, SEG),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.position, 3);
        assert_eq!(c.snapshot, "zzzz");
        assert_eq!(c.first_kept, "000000010000000000000003");
        let big = cutoff(&[physical("aaaa", 1, 0x1_05, SEG)])
            .unwrap()
            .unwrap();
        assert_eq!(big.first_kept, "000000010000000100000005");
        assert_eq!(cutoff(&[]), Ok(None));
    }

    #[test]
    fn positions_of_names() {
        let table: &[(u32, &str, Option<u64>)] = &[
            (1, "000000010000000000000003", Some(3)),
            (2, "000000020000000100000003", Some(0x103)),
            (1, "000000010000000000000003.partial", Some(3)),
            (1, "000000010000000000000003.00000028.backup", Some(3)),
            (2, "00000002.history", None),
            (1, "000000020000000000000003", None),
            (1, "not-a-wal-name", None),
        ];
        for (tl, name, want) in table {
            assert_eq!(position(*tl, name, SEG), *want, "{name}");
        }
        assert_eq!(position(1, "000000010000000100000003", 64 << 20), Some(67));
    }
}
