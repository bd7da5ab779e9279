//! Which WAL objects a prune deletes, as a pure function: [`plan_wal`]
//! takes what the WAL step saw ([`WalInputs`]: every object under `wal/`
//! and `wal-partial/` with its position, the cutoff the kept physical
//! snapshots give, the locks listed after the snapshots were read, the
//! storage time) and returns the keys to delete, in order, with the
//! report. No storage, no clock, no PostgreSQL: a position is a number the
//! service layer derived from the file's name (`WalRules`), the cutoff a
//! number it derived from the snapshots.
//!
//! The rules (`docs/physical.md`, "Retention"; the argument is in
//! `docs/format.md`, "Why prune is safe"):
//! 1. No cutoff (no physical snapshot is kept), or a cutoff that could not
//!    be decided: nothing is deleted. WAL without a base backup is kept
//!    whole.
//! 2. A live lock of another operation that may read WAL (anything but a
//!    logical backup or restore, a forget, an unlock or a copy) holds every
//!    deletion back: a physical restore or base backup in progress may
//!    need WAL that no kept snapshot does (its snapshot forgotten while it
//!    runs, a backup not finished yet).
//! 3. An object without a position (a timeline's `.history` file, a name
//!    that is not a WAL file name) is never deleted.
//! 4. An object at or after the cutoff is kept; `.partial` segments,
//!    backup labels and the streamer's partial versions have their
//!    segment's position, so they follow it.
//! 5. An object before the cutoff is deleted only when it was written
//!    before `now` − grace by the storage clock (`now` is the storage time
//!    at the start of the step, so nothing written during it is deleted).
//!
//! Deletion goes by ascending position: an interrupted prune leaves the
//! archive's first part shortened, never a hole in the middle.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::format::id_of_key;
use crate::lock::LockEntry;

/// Where the WAL kept by prune starts: the start of the oldest kept
/// physical base backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalCutoff {
    /// The segment number (independent of the timeline) of the oldest kept
    /// base backup's start: objects before it are needed by no kept
    /// snapshot.
    pub position: u64,
    /// The segment size the positions are counted in (the service layer's
    /// business; passed back to it for every name).
    pub segment_size: u64,
    /// The snapshot whose start this is.
    pub snapshot: String,
    /// The file name of the first segment kept (for reports).
    pub first_kept: String,
}

/// One stored WAL object, as the WAL step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalObject {
    /// The object's key (`wal/…` or `wal-partial/…`).
    pub key: String,
    pub size: u64,
    /// By the storage clock.
    pub last_modified: DateTime<Utc>,
    /// Its segment's number for the cutoff's segment size; `None` for
    /// what is never deleted by position (history files, unknown names).
    pub position: Option<u64>,
}

/// What the WAL step of a prune saw, in the order it looked.
#[derive(Debug, Clone)]
pub struct WalInputs {
    /// Storage time at the start of the step (prune's own lock, rewritten).
    pub now: DateTime<Utc>,
    /// Every object under `wal/` and `wal-partial/` (listed after `now`).
    pub objects: Vec<WalObject>,
    /// From the snapshots (read after the listing): `Ok(None)` when no
    /// physical snapshot is kept, `Err` saying why no cutoff could be
    /// decided.
    pub cutoff: std::result::Result<Option<WalCutoff>, String>,
    /// Locks listed before the WAL listing and again after the snapshots
    /// were read (both listings; an entry may appear twice).
    pub locks: Vec<LockEntry>,
}

/// The WAL part of a prune's report.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct WalPruneReport {
    /// WAL objects stored (every copy, every partial version) and their
    /// stored bytes, before this prune.
    pub objects: usize,
    pub bytes: u64,
    /// Objects deleted (or, with `--dry-run`, that would be) and their bytes.
    pub deleted: usize,
    pub deleted_bytes: u64,
    /// Objects before the cutoff kept for now (younger than the grace
    /// period, or held back by a running operation).
    pub waiting: usize,
    /// The oldest kept physical snapshot, whose start is the cutoff.
    pub oldest_base_backup: Option<String>,
    /// The first segment kept by position.
    pub kept_from: Option<String>,
    /// Why nothing (or not everything before the cutoff) is deleted.
    pub note: Option<String>,
}

/// What the WAL step deletes, in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WalPlan {
    pub report: WalPruneReport,
    /// Keys by ascending (position, key).
    pub delete: Vec<String>,
}

/// Operations whose locks never stand for a reader of WAL: logical backups
/// and restores (physical ones lock as `backup physical` and
/// `restore physical`), forget, unlock and copy (which does not copy WAL).
/// Any other operation, including one this version does not know, holds
/// WAL deletion back while it runs.
pub const WAL_INDEPENDENT: &[&str] = &["backup", "restore", "forget", "unlock", "copy"];

/// Decides what the WAL step deletes. `own_lock` is the id of the prune's
/// own lock.
pub fn plan_wal(inputs: &WalInputs, own_lock: &str, grace: Duration) -> WalPlan {
    let mut p = WalPlan::default();
    let r = &mut p.report;
    r.objects = inputs.objects.len();
    r.bytes = inputs.objects.iter().map(|o| o.size).sum();
    if inputs.objects.is_empty() {
        return p;
    }
    let cutoff = match &inputs.cutoff {
        Err(why) => {
            r.note = Some(format!("no WAL was deleted: {why}"));
            return p;
        }
        Ok(None) => {
            r.note = Some(
                "no physical snapshot is kept: WAL without a base backup is kept whole".into(),
            );
            return p;
        }
        Ok(Some(c)) => c,
    };
    r.oldest_base_backup = Some(cutoff.snapshot.clone());
    r.kept_from = Some(cutoff.first_kept.clone());
    let before: Vec<&WalObject> = inputs
        .objects
        .iter()
        .filter(|o| o.position.is_some_and(|n| n < cutoff.position))
        .collect();
    let reader = inputs.locks.iter().find(|l| {
        !l.stale
            && id_of_key(&l.key) != own_lock
            && !WAL_INDEPENDENT.contains(&l.doc.operation.as_str())
    });
    if let Some(l) = reader {
        r.waiting = before.len();
        if !before.is_empty() {
            r.note = Some(format!(
                "{} WAL objects before {} wait for {} (it may be reading WAL that no kept snapshot needs); a later prune deletes them. {}",
                before.len(),
                cutoff.first_kept,
                l.describe(),
                l.if_gone()
            ));
        }
        return p;
    }
    let mut delete: BTreeSet<(u64, &str, u64)> = BTreeSet::new();
    for o in before {
        if o.last_modified >= inputs.now - grace {
            r.waiting += 1;
        } else {
            delete.insert((o.position.unwrap_or_default(), &o.key, o.size));
        }
    }
    if r.waiting > 0 {
        r.note = Some(format!(
            "{} WAL objects before {} are younger than the grace period; a later prune deletes them",
            r.waiting, cutoff.first_kept
        ));
    }
    r.deleted = delete.len();
    r.deleted_bytes = delete.iter().map(|(_, _, s)| s).sum();
    p.delete = delete.into_iter().map(|(_, k, _)| k.to_string()).collect();
    p
}

#[cfg(test)]
mod tests {
    //! One row per rule. Positions are plain numbers here; the service
    //! layer's tables (`lifeboat_ops::wal::retention`) run the same rules
    //! from PostgreSQL's file names and physical snapshots (two timelines,
    //! history files, backup labels, a forgotten snapshot). Times are
    //! minutes on the storage clock.

    use super::*;
    use crate::lock::{LockDoc, LockMode};

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).unwrap()
    }

    fn lock(operation: &str, stale: bool) -> LockEntry {
        LockEntry {
            key: format!("locks/{operation}-id"),
            doc: LockDoc {
                version: 1,
                mode: LockMode::Shared,
                operation: operation.to_string(),
                hostname: "h".into(),
                username: "u".into(),
                pid: 1,
                created: t(10),
                instance: "other".into(),
                boot_id: None,
                pid_namespace: None,
                start_time: None,
            },
            unreadable: None,
            refreshed: t(99),
            stale_at: t(129),
            stale,
        }
    }

    struct Row {
        name: &'static str,
        /// key, position, last modified (minutes), size
        objects: &'static [(&'static str, Option<u64>, i64, u64)],
        /// Some(position), None: no physical snapshot; Err: undecidable.
        cutoff: std::result::Result<Option<u64>, &'static str>,
        /// other operations' locks: operation, stale
        locks: &'static [(&'static str, bool)],
        grace: i64,
        delete: &'static [&'static str],
        waiting: usize,
        note: bool,
    }

    const NOW: i64 = 100;

    /// Segments 1..=4 of timeline 1 written at minutes 1..=4, a history
    /// file, and a partial version of segment 2.
    const OBJECTS: &[(&str, Option<u64>, i64, u64)] = &[
        ("wal/00000001/seg3/0", Some(3), 3, 30),
        ("wal/00000001/seg1/0", Some(1), 1, 10),
        ("wal/00000001/seg2/0", Some(2), 2, 20),
        ("wal/00000001/seg4/0", Some(4), 4, 40),
        ("wal/00000002/00000002.history/0", None, 0, 1),
        ("wal-partial/00000001/seg2/0/8192", Some(2), 2, 5),
    ];

    const BASE: Row = Row {
        name: "",
        objects: OBJECTS,
        cutoff: Ok(Some(3)),
        locks: &[],
        grace: 60,
        delete: &[
            "wal/00000001/seg1/0",
            "wal-partial/00000001/seg2/0/8192",
            "wal/00000001/seg2/0",
        ],
        waiting: 0,
        note: false,
    };

    fn inputs(row: &Row) -> WalInputs {
        WalInputs {
            now: t(NOW),
            objects: row
                .objects
                .iter()
                .map(|(k, pos, m, size)| WalObject {
                    key: k.to_string(),
                    size: *size,
                    last_modified: t(*m),
                    position: *pos,
                })
                .collect(),
            cutoff: row
                .cutoff
                .map(|c| {
                    c.map(|position| WalCutoff {
                        position,
                        segment_size: 16 << 20,
                        snapshot: "snapB".into(),
                        first_kept: format!("seg{position}"),
                    })
                })
                .map_err(str::to_string),
            locks: row
                .locks
                .iter()
                .map(|(op, stale)| lock(op, *stale))
                .chain([{
                    let mut own = lock("prune", false);
                    own.key = "locks/own".into();
                    own
                }])
                .collect(),
        }
    }

    fn run(rows: &[Row]) {
        for row in rows {
            let p = plan_wal(&inputs(row), "own", Duration::minutes(row.grace));
            assert_eq!(p.delete, row.delete, "{}: deleted", row.name);
            assert_eq!(p.report.deleted, row.delete.len(), "{}", row.name);
            let bytes: u64 = row
                .objects
                .iter()
                .filter(|o| row.delete.contains(&o.0))
                .map(|o| o.3)
                .sum();
            assert_eq!(p.report.deleted_bytes, bytes, "{}: bytes", row.name);
            assert_eq!(p.report.waiting, row.waiting, "{}: waiting", row.name);
            assert_eq!(
                p.report.note.is_some(),
                row.note,
                "{}: {:?}",
                row.name,
                p.report.note
            );
            assert_eq!(p.report.objects, row.objects.len(), "{}", row.name);
        }
    }

    #[test]
    fn before_the_cutoff_and_older_than_the_grace_is_deleted_in_position_order() {
        run(&[
            Row {
                name: "segments and the partial version before the cutoff; history and the rest kept",
                ..BASE
            },
            Row {
                name: "a cutoff at the first segment deletes nothing",
                cutoff: Ok(Some(1)),
                delete: &[],
                ..BASE
            },
            Row {
                name: "a cutoff past everything stored deletes every segment, not the history file",
                cutoff: Ok(Some(9)),
                delete: &[
                    "wal/00000001/seg1/0",
                    "wal-partial/00000001/seg2/0/8192",
                    "wal/00000001/seg2/0",
                    "wal/00000001/seg3/0",
                    "wal/00000001/seg4/0",
                ],
                ..BASE
            },
        ]);
        // Ascending position: segment 1 before the partial version of 2.
        let row = Row {
            cutoff: Ok(Some(9)),
            ..BASE
        };
        let p = plan_wal(&inputs(&row), "own", Duration::minutes(60));
        assert_eq!(p.delete[0], "wal/00000001/seg1/0");
        assert_eq!(p.report.kept_from.as_deref(), Some("seg9"));
        assert_eq!(p.report.oldest_base_backup.as_deref(), Some("snapB"));
    }

    #[test]
    fn without_a_kept_base_backup_wal_is_kept_whole() {
        run(&[
            Row {
                name: "no physical snapshot",
                cutoff: Ok(None),
                delete: &[],
                note: true,
                ..BASE
            },
            Row {
                name: "a cutoff that could not be decided",
                cutoff: Err("unreadable facts"),
                delete: &[],
                note: true,
                ..BASE
            },
            Row {
                name: "no WAL at all: nothing to say",
                objects: &[],
                cutoff: Ok(None),
                delete: &[],
                ..BASE
            },
        ]);
    }

    #[test]
    fn the_grace_period_keeps_young_objects() {
        run(&[
            Row {
                name: "segment 2 and its partial version younger than the grace",
                grace: NOW - 2,
                delete: &["wal/00000001/seg1/0"],
                waiting: 2,
                note: true,
                ..BASE
            },
            Row {
                name: "written exactly at now - grace: young (at-or-after holds back)",
                grace: NOW - 1,
                delete: &[],
                waiting: 3,
                note: true,
                ..BASE
            },
            Row {
                name: "zero grace: everything written before now",
                objects: &[
                    ("wal/00000001/seg1/0", Some(1), NOW, 10),
                    ("wal/00000001/seg0/0", Some(0), NOW - 1, 10),
                ],
                cutoff: Ok(Some(5)),
                grace: 0,
                delete: &["wal/00000001/seg0/0"],
                waiting: 1,
                note: true,
                ..BASE
            },
        ]);
    }

    #[test]
    fn operations_that_may_read_wal_hold_deletion_back() {
        run(&[
            Row {
                name: "a physical restore running",
                locks: &[("restore physical", false)],
                delete: &[],
                waiting: 3,
                note: true,
                ..BASE
            },
            Row {
                name: "a physical backup running",
                locks: &[("backup physical", false)],
                delete: &[],
                waiting: 3,
                note: true,
                ..BASE
            },
            Row {
                name: "an operation this version does not know",
                locks: &[("drill physical", false)],
                delete: &[],
                waiting: 3,
                note: true,
                ..BASE
            },
            Row {
                name: "a stale lock holds nothing",
                locks: &[("restore physical", true)],
                ..BASE
            },
            Row {
                name: "logical backups and restores, forget, unlock, copy do not read WAL",
                locks: &[
                    ("backup", false),
                    ("restore", false),
                    ("forget", false),
                    ("unlock", false),
                    ("copy", false),
                ],
                ..BASE
            },
            Row {
                name: "nothing before the cutoff: nothing waits",
                cutoff: Ok(Some(1)),
                locks: &[("restore physical", false)],
                delete: &[],
                ..BASE
            },
        ]);
    }
}
