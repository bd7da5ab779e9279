//! The decisions of `restore postgres`, as pure functions (no I/O): how many
//! jobs, what to stage, which tables to split, whether the target is the
//! source (so whether to quiesce), and what to do when the restore or its
//! verification fails. The steps ([`super::steps`]) carry them out; the
//! tables below test them row by row.

use lifeboat_postgres::archive::{ArchiveLayout, DataBlock};
use lifeboat_postgres::facts::{Facts, TableName};
use lifeboat_postgres::identity::Relation;
use lifeboat_postgres::split_restore;
use serde::Serialize;

use crate::error::{Result, usage};

/// `--jobs 0` is refused before anything is read.
pub fn check_jobs_flag(flag: Option<u32>) -> Result<()> {
    if flag == Some(0) {
        return Err(usage("--jobs must be at least 1"));
    }
    Ok(())
}

/// The parallel jobs of a restore: `flag` (--jobs), else the source's
/// `restore.jobs` (`configured`), else 1.
pub fn restore_jobs(flag: Option<u32>, configured: Option<u32>) -> u32 {
    flag.or(configured).unwrap_or(1)
}

/// `--whole-tables` only means something for a parallel restore.
pub fn check_whole_tables(whole_tables: bool, jobs: u32) -> Result<()> {
    if whole_tables && jobs < 2 {
        return Err(usage(
            "--whole-tables is for a parallel restore: pass --jobs N (N > 1) or set the source's restore.jobs",
        ));
    }
    Ok(())
}

/// Each table's size at backup, as the facts recorded it (tables without a
/// recorded size left out).
pub fn table_sizes(facts: &Facts) -> Vec<(TableName, i64)> {
    facts
        .tables
        .iter()
        .filter_map(|t| Some((t.table.clone(), t.size_bytes?)))
        .collect()
}

/// What to split: the tables whose rows a restore with `jobs` spreads over
/// the jobs (each at least 1/(jobs+1) of all table bytes); none with
/// `--whole-tables`.
pub fn tables_to_split(
    sizes: &[(TableName, i64)],
    jobs: u32,
    whole_tables: bool,
) -> Vec<TableName> {
    if whole_tables {
        return Vec::new();
    }
    split_restore::tables_to_split(sizes, jobs)
}

/// What to stage, so that every blob the restore will read is
/// authenticated before the writers stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// One job: the archive is streamed into pg_restore; read it once to
    /// nowhere first.
    Authenticate,
    /// Several jobs: stage the archive to a file, leaving out these data
    /// blocks (authenticated separately; their rows are read from the
    /// repository during the restore).
    File { leave_out: Vec<DataBlock> },
}

pub fn what_to_stage(jobs: u32, layout: Option<&ArchiveLayout>, split: &[TableName]) -> Stage {
    if jobs <= 1 {
        return Stage::Authenticate;
    }
    Stage::File {
        leave_out: super::super::staging::blocks_to_leave_out(layout, split),
    }
}

/// The bytes staging an archive of `size` takes under an operator's cap
/// (`LIFEBOAT_STAGING_LIMIT`): the archive and a margin of a tenth, at least
/// 64 MiB. `Some(needed)` when that is above `limit`.
pub fn over_staging_limit(size: u64, limit: Option<u64>) -> Option<u64> {
    let limit = limit?;
    let needed = size.saturating_add((size / 10).max(64 << 20));
    (needed > limit).then_some(needed)
}

/// What the configured source's server said about itself, beside the
/// target's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceIdentity {
    /// No configured source (a `--db` snapshot restored with --target).
    NoSource,
    /// Both identities read: how the target relates to the source.
    Read(Relation),
    /// The source could not be asked.
    Unreadable,
}

/// Whether the target of `--target` is the source's database, and so
/// whether the source's writers are quiesced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetVerdict {
    /// The same database on the same running server: quiesce as configured.
    /// `unreachable_flag_unneeded`: --source-unreachable was given anyway.
    Source {
        data_directory_compared: bool,
        unreachable_flag_unneeded: bool,
    },
    /// Another database: nothing quiesced. `warn` says why that may
    /// surprise; `check_contents`: it exists without --clean-existing, so
    /// what it holds must be looked at before restoring over it.
    Other {
        warn: Option<OtherWarning>,
        check_contents: bool,
    },
    /// Whether it is the source cannot be told: refused (nothing changed).
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherWarning {
    /// A physical copy of the source's database, not the running source.
    Copy { differs: Vec<&'static str> },
    /// --source-unreachable and the source did not answer.
    SourceUnreachable,
}

pub fn target_verdict(
    source: SourceIdentity,
    source_unreachable: bool,
    target_exists: bool,
    clean_existing: bool,
) -> TargetVerdict {
    let check_contents = target_exists && !clean_existing;
    let other = |warn| TargetVerdict::Other {
        warn,
        check_contents,
    };
    match source {
        SourceIdentity::NoSource => other(None),
        SourceIdentity::Read(Relation::SameServer {
            data_directory_compared,
        }) => TargetVerdict::Source {
            data_directory_compared,
            unreachable_flag_unneeded: source_unreachable,
        },
        SourceIdentity::Read(Relation::Copy { differs }) => {
            other(Some(OtherWarning::Copy { differs }))
        }
        SourceIdentity::Read(Relation::OtherDatabase | Relation::Unrelated) => other(None),
        SourceIdentity::Unreadable if source_unreachable => {
            other(Some(OtherWarning::SourceUnreachable))
        }
        SourceIdentity::Unreadable => TargetVerdict::Refused,
    }
}

/// What happens to the writers during the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiesce {
    /// --no-quiesce: nothing is stopped (with a warning).
    Skip,
    /// The target's quiesce settings (none: nothing to stop).
    AsConfigured,
}

pub fn whether_to_quiesce(no_quiesce: bool) -> Quiesce {
    if no_quiesce {
        Quiesce::Skip
    } else {
        Quiesce::AsConfigured
    }
}

/// What became of the writers, as `--json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Writers {
    Resumed,
    /// Verification failed and they were left down.
    LeftStopped,
    /// Nothing configured stops writers of this target.
    None,
    /// --no-quiesce.
    NotStopped,
}

/// The writers' state once the restore succeeded: resumed when some were
/// stopped.
pub fn writers_after(has_writers: bool, no_quiesce: bool) -> Writers {
    match (has_writers, no_quiesce) {
        (true, _) => Writers::Resumed,
        (false, true) => Writers::NotStopped,
        (false, false) => Writers::None,
    }
}

/// What to do when pg_restore (or the split restore) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRestoreFailure {
    /// It had touched the target: "the target is partial" (exit 11), the
    /// writers left stopped.
    Partial,
    /// Nothing of the target was touched: bring the writers back and fail
    /// with the cause (an interruption: exit 130, saying nothing was restored).
    ResumeWriters,
}

pub fn on_restore_failure(touched: bool) -> OnRestoreFailure {
    if touched {
        OnRestoreFailure::Partial
    } else {
        OnRestoreFailure::ResumeWriters
    }
}

/// Whether a failed restore's error should say that a snapshot of selected
/// tables lacks what they depend on (not for an interruption).
pub fn mention_dependencies(selected_tables: bool, interrupted: bool) -> bool {
    selected_tables && !interrupted
}

/// What to do when the restored database differs from the snapshot's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnVerifyFailure {
    /// --no-quiesce: nothing was stopped; say to keep traffic away.
    NotStopped,
    /// No quiesce settings stop anything; say to keep traffic away.
    NoneConfigured,
    /// `quiesce.resume_on_verify_failure`: bring them back anyway.
    Resume,
    /// Leave them stopped: the database must not take traffic.
    LeaveStopped,
}

pub fn on_verify_failure(
    has_writers: bool,
    no_quiesce: bool,
    resume_on_verify_failure: bool,
) -> OnVerifyFailure {
    match (has_writers, no_quiesce, resume_on_verify_failure) {
        (false, true, _) => OnVerifyFailure::NotStopped,
        (false, false, _) => OnVerifyFailure::NoneConfigured,
        (true, _, true) => OnVerifyFailure::Resume,
        (true, _, false) => OnVerifyFailure::LeaveStopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new("public", name)
    }

    #[test]
    fn jobs_come_from_the_flag_then_the_source_then_one() {
        let rows: &[(Option<u32>, Option<u32>, u32)] = &[
            (None, None, 1),
            (Some(4), None, 4),
            (None, Some(3), 3),
            (Some(2), Some(8), 2),
            (Some(1), Some(8), 1),
        ];
        for &(flag, configured, want) in rows {
            assert_eq!(
                restore_jobs(flag, configured),
                want,
                "{flag:?} {configured:?}"
            );
        }
    }

    #[test]
    fn zero_jobs_and_whole_tables_without_parallelism_are_refused() {
        let rows: &[(Option<u32>, bool)] = &[(None, true), (Some(1), true), (Some(0), false)];
        for &(flag, ok) in rows {
            assert_eq!(check_jobs_flag(flag).is_ok(), ok, "{flag:?}");
        }
        let rows: &[(bool, u32, bool)] = &[
            (false, 1, true),
            (false, 4, true),
            (true, 1, false),
            (true, 2, true),
        ];
        for &(whole, jobs, ok) in rows {
            let r = check_whole_tables(whole, jobs);
            assert_eq!(r.is_ok(), ok, "{whole} {jobs}");
            if let Err(e) = r {
                assert_eq!(e.kind(), crate::Kind::Usage);
            }
        }
    }

    #[test]
    fn the_tables_to_split_are_the_large_ones_unless_whole_tables() {
        let sizes = vec![(t("big"), 600), (t("mid"), 300), (t("small"), 100)];
        let rows: Vec<(u32, bool, Vec<TableName>)> = vec![
            (1, false, vec![]),
            // Two jobs: a third of 1000 bytes or more.
            (2, false, vec![t("big")]),
            // Three jobs: a quarter.
            (3, false, vec![t("big"), t("mid")]),
            (9, false, vec![t("big"), t("mid"), t("small")]),
            (4, true, vec![]),
        ];
        for (jobs, whole, want) in rows {
            assert_eq!(tables_to_split(&sizes, jobs, whole), want, "{jobs} {whole}");
        }
        assert!(tables_to_split(&[], 4, false).is_empty());
    }

    fn block(id: i64, tag: &str, copy: bool, start: u64) -> DataBlock {
        DataBlock {
            dump_id: id,
            desc: "TABLE DATA".into(),
            schema: "public".into(),
            tag: tag.into(),
            copy: copy.then(|| format!("COPY public.{tag} FROM stdin;")),
            offset_field: 0,
            start,
            end: start + 10,
        }
    }

    #[test]
    fn staging_leaves_out_the_split_tables_blocks_only_when_all_can_be_read_directly() {
        let layout = ArchiveLayout {
            version: "1.14".into(),
            int_size: 4,
            off_size: 8,
            toc_end: 100,
            blocks: vec![
                block(1, "big", true, 100),
                block(2, "mid", true, 110),
                block(3, "nocopy", false, 120),
            ],
        };
        let rows: Vec<(u32, Option<&ArchiveLayout>, Vec<TableName>, Stage)> = vec![
            (1, Some(&layout), vec![t("big")], Stage::Authenticate),
            (
                2,
                Some(&layout),
                vec![t("big")],
                Stage::File {
                    leave_out: vec![block(1, "big", true, 100)],
                },
            ),
            (
                3,
                Some(&layout),
                vec![t("big"), t("mid")],
                Stage::File {
                    leave_out: vec![block(1, "big", true, 100), block(2, "mid", true, 110)],
                },
            ),
            // One split table without a COPY block: everything is staged.
            (
                3,
                Some(&layout),
                vec![t("big"), t("nocopy")],
                Stage::File { leave_out: vec![] },
            ),
            // A table the layout does not know: everything is staged.
            (
                2,
                Some(&layout),
                vec![t("gone")],
                Stage::File { leave_out: vec![] },
            ),
            // No layout recorded (an older snapshot): everything is staged.
            (2, None, vec![t("big")], Stage::File { leave_out: vec![] }),
            (2, Some(&layout), vec![], Stage::File { leave_out: vec![] }),
        ];
        for (jobs, layout, split, want) in rows {
            assert_eq!(
                what_to_stage(jobs, layout, &split),
                want,
                "{jobs} {split:?}"
            );
        }
    }

    #[test]
    fn the_staging_limit_counts_a_margin() {
        const MIB: u64 = 1 << 20;
        let rows: &[(u64, Option<u64>, Option<u64>)] = &[
            (10 * MIB, None, None),
            (10 * MIB, Some(74 * MIB), None),
            (10 * MIB, Some(74 * MIB - 1), Some(74 * MIB)),
            (1000 * MIB, Some(1100 * MIB), None),
            (1000 * MIB, Some(1099 * MIB), Some(1100 * MIB)),
            (u64::MAX, Some(u64::MAX - 1), Some(u64::MAX)),
        ];
        for &(size, limit, want) in rows {
            assert_eq!(over_staging_limit(size, limit), want, "{size} {limit:?}");
        }
    }

    #[test]
    fn the_target_is_the_source_only_on_the_same_running_server() {
        use OtherWarning::*;
        let same = |dc| {
            SourceIdentity::Read(Relation::SameServer {
                data_directory_compared: dc,
            })
        };
        let copy = || {
            SourceIdentity::Read(Relation::Copy {
                differs: vec!["start time"],
            })
        };
        let other = |warn, check_contents| TargetVerdict::Other {
            warn,
            check_contents,
        };
        // (source identity, --source-unreachable, target exists, --clean-existing) -> verdict
        let rows: Vec<(SourceIdentity, bool, bool, bool, TargetVerdict)> = vec![
            (
                same(true),
                false,
                true,
                false,
                TargetVerdict::Source {
                    data_directory_compared: true,
                    unreachable_flag_unneeded: false,
                },
            ),
            (
                same(false),
                true,
                true,
                false,
                TargetVerdict::Source {
                    data_directory_compared: false,
                    unreachable_flag_unneeded: true,
                },
            ),
            (
                copy(),
                false,
                true,
                false,
                other(
                    Some(Copy {
                        differs: vec!["start time"],
                    }),
                    true,
                ),
            ),
            (
                copy(),
                false,
                true,
                true,
                other(
                    Some(Copy {
                        differs: vec!["start time"],
                    }),
                    false,
                ),
            ),
            (
                SourceIdentity::Read(Relation::OtherDatabase),
                false,
                false,
                false,
                other(None, false),
            ),
            (
                SourceIdentity::Read(Relation::Unrelated),
                false,
                true,
                false,
                other(None, true),
            ),
            (
                SourceIdentity::NoSource,
                false,
                true,
                false,
                other(None, true),
            ),
            (
                SourceIdentity::NoSource,
                false,
                false,
                false,
                other(None, false),
            ),
            (
                SourceIdentity::Unreadable,
                true,
                true,
                false,
                other(Some(SourceUnreachable), true),
            ),
            (
                SourceIdentity::Unreadable,
                false,
                true,
                true,
                TargetVerdict::Refused,
            ),
        ];
        for (src, unreachable, exists, clean, want) in rows {
            let label = format!("{src:?} {unreachable} {exists} {clean}");
            assert_eq!(
                target_verdict(src, unreachable, exists, clean),
                want,
                "{label}"
            );
        }
    }

    #[test]
    fn quiescing_and_the_writers_reported_after_success() {
        assert_eq!(whether_to_quiesce(true), Quiesce::Skip);
        assert_eq!(whether_to_quiesce(false), Quiesce::AsConfigured);
        let rows: &[(bool, bool, Writers)] = &[
            (true, false, Writers::Resumed),
            (false, true, Writers::NotStopped),
            (false, false, Writers::None),
        ];
        for &(has, noq, want) in rows {
            assert_eq!(writers_after(has, noq), want, "{has} {noq}");
        }
        assert_eq!(
            serde_json::to_string(&Writers::LeftStopped).unwrap(),
            "\"left_stopped\""
        );
        assert_eq!(
            serde_json::to_string(&Writers::NotStopped).unwrap(),
            "\"not_stopped\""
        );
    }

    #[test]
    fn a_failed_restore_is_partial_once_it_touched_the_target() {
        assert_eq!(on_restore_failure(true), OnRestoreFailure::Partial);
        assert_eq!(on_restore_failure(false), OnRestoreFailure::ResumeWriters);
        let rows: &[(bool, bool, bool)] = &[
            (true, false, true),
            (true, true, false),
            (false, false, false),
            (false, true, false),
        ];
        for &(selected, interrupted, want) in rows {
            assert_eq!(
                mention_dependencies(selected, interrupted),
                want,
                "{selected} {interrupted}"
            );
        }
    }

    #[test]
    fn a_failed_verification_leaves_the_writers_stopped_unless_configured() {
        // (has writers, --no-quiesce, resume_on_verify_failure) -> action
        let rows: &[(bool, bool, bool, OnVerifyFailure)] = &[
            (false, true, false, OnVerifyFailure::NotStopped),
            (false, true, true, OnVerifyFailure::NotStopped),
            (false, false, false, OnVerifyFailure::NoneConfigured),
            (false, false, true, OnVerifyFailure::NoneConfigured),
            (true, false, true, OnVerifyFailure::Resume),
            (true, false, false, OnVerifyFailure::LeaveStopped),
        ];
        for &(has, noq, resume, want) in rows {
            assert_eq!(
                on_verify_failure(has, noq, resume),
                want,
                "{has} {noq} {resume}"
            );
        }
    }
}
