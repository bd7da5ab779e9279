//! The decisions of `restore physical`, pure and table-tested: which base
//! backup can reach a target ([`reaches`], [`choose`]) and whether the
//! archive is continuous past it ([`archive_gaps`]).

use chrono::{DateTime, Utc};
use lifeboat_postgres::basebackup::{Lsn, Target};

use super::PhysicalFacts;

/// A physical snapshot with its facts.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub facts: PhysicalFacts,
}

/// Whether recovery from a base backup with `f` can reach `target`: the
/// backup must be consistent before the target. For a time, its recorded
/// stop time (the server's clock after the backup ended) is at or before
/// the target; for an LSN, its stop LSN; for a transaction id, the next
/// id after the backup is at or below the target's (so the transaction
/// committed after the backup). A restore point's position is not known
/// before recovery: every backup qualifies (recovery then fails clearly
/// if the point lies before the chosen backup).
pub fn reaches(f: &PhysicalFacts, target: &Target) -> bool {
    match target {
        Target::Latest | Target::Name(_) => true,
        Target::Time(t) => f.stop_time <= *t,
        Target::Lsn(l) => f.stop_lsn <= *l,
        Target::Xid(x) => f.next_xid <= *x,
    }
}

/// Why a base backup cannot reach the target, for the error message.
pub fn why_not(f: &PhysicalFacts, target: &Target) -> String {
    match target {
        Target::Time(_) => format!("it ended at {}", f.stop_time.to_rfc3339()),
        Target::Lsn(_) => format!("it is consistent only at {}", f.stop_lsn),
        Target::Xid(_) => format!("transactions from {} on committed after it", f.next_xid),
        Target::Latest | Target::Name(_) => String::new(),
    }
}

/// The newest candidate (by stop time) that reaches `target`; `Err` says
/// why none does.
pub fn choose<'a>(cands: &'a [Candidate], target: &Target) -> Result<&'a Candidate, String> {
    if cands.is_empty() {
        return Err("there is no physical snapshot (run `lifeboat backup physical` first)".into());
    }
    let mut sorted: Vec<&Candidate> = cands.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.facts.stop_time));
    sorted
        .iter()
        .find(|c| reaches(&c.facts, target))
        .copied()
        .ok_or_else(|| {
            let oldest = sorted.last().expect("not empty");
            format!(
                "no physical snapshot can reach {target}: the oldest, {}, cannot ({})",
                &oldest.id[..8.min(oldest.id.len())],
                why_not(&oldest.facts, target)
            )
        })
}

/// The archive past a base backup: `present` are the segment numbers
/// stored for its timeline, `after` the number of the segment holding its
/// stop LSN (that WAL is inside the backup). Returns the last segment
/// stored after it (`None`: none) and the numbers missing between (at
/// most `limit` of them listed).
pub fn archive_gaps(present: &[u64], after: u64, limit: usize) -> (Option<u64>, Vec<u64>) {
    let mut later: Vec<u64> = present.iter().copied().filter(|&n| n > after).collect();
    later.sort_unstable();
    later.dedup();
    let Some(&last) = later.last() else {
        return (None, Vec::new());
    };
    let mut missing = Vec::new();
    let mut expect = after + 1;
    for n in later {
        while expect < n && missing.len() < limit {
            missing.push(expect);
            expect += 1;
        }
        expect = n + 1;
    }
    (Some(last), missing)
}

/// The first archived segment when the archive (segment numbers
/// `present`, one timeline) holds segments but not `start` and starts
/// after it: a base backup starting in `start` cannot be recovered from
/// it. `None` otherwise (empty, or holding `start` or earlier).
pub fn archive_starts_after(present: &[u64], start: u64) -> Option<u64> {
    let first = present.iter().copied().min()?;
    (first > start && !present.contains(&start)).then_some(first)
}

/// The timeline a recovery to the end of the archive follows from a base
/// backup on `backup`: PostgreSQL's `recovery_target_timeline = latest`
/// takes the newest timeline whose history file is archived (and refuses to
/// start when that timeline does not descend from the backup's); with no
/// newer history file, the backup's own.
pub fn newest_timeline(backup: u32, histories: impl IntoIterator<Item = u32>) -> u32 {
    histories
        .into_iter()
        .filter(|&t| t > backup)
        .max()
        .unwrap_or(backup)
}

/// Checks the recovered server's replay position against the target:
/// for a time, the last replayed commit is not after it; for an LSN
/// (inclusive), replay went at least to it; for the end of the archive,
/// replay reached the last archived segment (`last_start`: its first
/// LSN). Transaction ids and restore points are checked by the server's
/// log line ([`lifeboat_postgres::basebackup::recovery::judge_log`]).
pub fn check_replay(
    target: &Target,
    inclusive: bool,
    replay_lsn: Option<Lsn>,
    replay_time: Option<DateTime<Utc>>,
    last_start: Option<Lsn>,
) -> Result<(), String> {
    match target {
        Target::Time(t) => match replay_time {
            Some(r) if r > *t => Err(format!(
                "the last replayed transaction committed at {}, after the target {}",
                r.to_rfc3339(),
                t.to_rfc3339()
            )),
            _ => Ok(()),
        },
        Target::Lsn(l) if inclusive => match replay_lsn {
            Some(r) if r >= *l => Ok(()),
            r => Err(format!(
                "replay ended at {}, before the target {l}",
                r.map(|r| r.to_string())
                    .unwrap_or_else(|| "an unknown position".into())
            )),
        },
        Target::Latest => match (last_start, replay_lsn) {
            (None, _) => Ok(()),
            (Some(s), Some(r)) if r >= s => Ok(()),
            (Some(s), r) => Err(format!(
                "replay ended at {}, before the last archived segment (from {s}): the archive \
                 was not replayed to its end",
                r.map(|r| r.to_string())
                    .unwrap_or_else(|| "an unknown position".into())
            )),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_archive_that_starts_after_the_backup_is_told() {
        assert_eq!(archive_starts_after(&[], 3), None, "nothing archived yet");
        assert_eq!(archive_starts_after(&[3, 4], 3), None);
        assert_eq!(
            archive_starts_after(&[1, 2, 5], 3),
            None,
            "a gap: check's job"
        );
        assert_eq!(archive_starts_after(&[4, 5], 3), Some(4));
        assert_eq!(archive_starts_after(&[5, 4], 3), Some(4));
    }

    #[test]
    fn recovery_follows_the_newest_archived_timeline() {
        assert_eq!(newest_timeline(1, []), 1);
        assert_eq!(newest_timeline(1, [2]), 2);
        assert_eq!(newest_timeline(1, [3, 2]), 3);
        // Older timelines' history files do not move a backup back.
        assert_eq!(newest_timeline(3, [2]), 3);
        assert_eq!(newest_timeline(2, [2, 1]), 2);
    }

    use super::*;

    fn facts(stop: &str, lsn: u64, xid: u64) -> PhysicalFacts {
        let stop: DateTime<Utc> = stop.parse().unwrap();
        PhysicalFacts {
            version: 1,
            system_identifier: "1".into(),
            server_version: "15".into(),
            server_version_num: 150000,
            timeline: 1,
            start_lsn: Lsn(lsn - 0x100),
            stop_lsn: Lsn(lsn),
            start_time: stop,
            stop_time: stop,
            next_xid: xid,
            wal_segment_size: 16 << 20,
            data_checksums: false,
            superuser: "postgres".into(),
            from_standby: false,
            backup_label: String::new(),
            pg_basebackup_version: String::new(),
            files: 0,
            file_bytes: 0,
            block_size: 8192,
        }
    }

    fn cands() -> Vec<Candidate> {
        vec![
            Candidate {
                id: "aaaaaaaa01".into(),
                facts: facts("2026-12-06T10:00:00Z", 0x2000100, 700),
            },
            Candidate {
                id: "bbbbbbbb02".into(),
                facts: facts("2026-12-06T11:00:00Z", 0x5000100, 900),
            },
        ]
    }

    #[test]
    fn chooses_the_newest_backup_before_the_target() {
        let t = |s: &str| Target::Time(s.parse().unwrap());
        let c = cands();
        let table: Vec<(Target, Result<&str, &str>)> = vec![
            (Target::Latest, Ok("bbbbbbbb02")),
            (Target::Name("x".into()), Ok("bbbbbbbb02")),
            (t("2026-12-06T11:30:00Z"), Ok("bbbbbbbb02")),
            (t("2026-12-06T11:00:00Z"), Ok("bbbbbbbb02")),
            (t("2026-12-06T10:59:59Z"), Ok("aaaaaaaa01")),
            (
                t("2026-12-06T09:00:00Z"),
                Err("ended at 2026-12-06T10:00:00"),
            ),
            (Target::Lsn(Lsn(0x5000100)), Ok("bbbbbbbb02")),
            (Target::Lsn(Lsn(0x4000000)), Ok("aaaaaaaa01")),
            (
                Target::Lsn(Lsn(0x1000000)),
                Err("consistent only at 0/2000100"),
            ),
            (Target::Xid(950), Ok("bbbbbbbb02")),
            (Target::Xid(800), Ok("aaaaaaaa01")),
            (Target::Xid(5), Err("from 700 on")),
        ];
        for (target, want) in table {
            match (choose(&c, &target), want) {
                (Ok(got), Ok(id)) => assert_eq!(got.id, id, "{target}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{target}: {e}"),
                (got, want) => panic!("{target}: {:?} vs {want:?}", got.map(|c| &c.id)),
            }
        }
        assert!(
            choose(&[], &Target::Latest)
                .unwrap_err()
                .contains("no physical")
        );
    }

    #[test]
    #[allow(clippy::type_complexity)] // one table row: the inputs and the answer
    fn finds_gaps_after_the_backup() {
        let table: Vec<(Vec<u64>, u64, Option<u64>, Vec<u64>)> = vec![
            (vec![], 3, None, vec![]),
            (vec![1, 2, 3], 3, None, vec![]),
            (vec![2, 3, 4, 5, 6], 3, Some(6), vec![]),
            (vec![4, 6, 7], 3, Some(7), vec![5]),
            (vec![5, 9], 3, Some(9), vec![4, 6, 7, 8]),
            (vec![7, 6, 6], 3, Some(7), vec![4, 5]),
        ];
        for (present, after, last, missing) in table {
            assert_eq!(
                archive_gaps(&present, after, 10),
                (last, missing),
                "{present:?} after {after}"
            );
        }
        assert_eq!(archive_gaps(&[100], 0, 3).1, vec![1, 2, 3]);
    }

    #[test]
    #[allow(clippy::type_complexity)] // one table row: the inputs and the answer
    fn replay_positions() {
        let t: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        let before: DateTime<Utc> = "2026-12-06T09:59:59Z".parse().unwrap();
        let after: DateTime<Utc> = "2026-12-06T10:00:01Z".parse().unwrap();
        let table: Vec<(
            Target,
            bool,
            Option<Lsn>,
            Option<DateTime<Utc>>,
            Option<Lsn>,
            bool,
        )> = vec![
            (Target::Time(t), true, None, Some(before), None, true),
            (Target::Time(t), true, None, Some(t), None, true),
            (Target::Time(t), true, None, Some(after), None, false),
            (Target::Time(t), true, None, None, None, true),
            (
                Target::Lsn(Lsn(100)),
                true,
                Some(Lsn(120)),
                None,
                None,
                true,
            ),
            (
                Target::Lsn(Lsn(100)),
                true,
                Some(Lsn(90)),
                None,
                None,
                false,
            ),
            (Target::Lsn(Lsn(100)), true, None, None, None, false),
            (
                Target::Lsn(Lsn(100)),
                false,
                Some(Lsn(90)),
                None,
                None,
                true,
            ),
            (
                Target::Latest,
                true,
                Some(Lsn(0x5000100)),
                None,
                Some(Lsn(0x5000000)),
                true,
            ),
            (
                Target::Latest,
                true,
                Some(Lsn(0x4FFFFFF)),
                None,
                Some(Lsn(0x5000000)),
                false,
            ),
            (
                Target::Latest,
                true,
                None,
                None,
                Some(Lsn(0x5000000)),
                false,
            ),
            (Target::Latest, true, None, None, None, true),
            (Target::Xid(5), true, None, Some(after), None, true),
        ];
        for (target, inclusive, lsn, time, last, ok) in table {
            let r = check_replay(&target, inclusive, lsn, time, last);
            assert_eq!(r.is_ok(), ok, "{target} {lsn:?} {time:?} {last:?}: {r:?}");
        }
    }
}
