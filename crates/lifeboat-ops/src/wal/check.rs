//! The archive's continuity, for `check` and `status`: from one listing of
//! `wal/` and `wal-partial/`, the gaps per timeline (a segment missing
//! between the first and the last stored on the timeline; the streamer's
//! partial versions count as present, so a missing segment just before the
//! one being received is a gap too), timelines above 1 without their
//! `.history` file, and the newest segment with its age. Nothing is
//! decrypted here; `check --read-data` verifies every object
//! (`lifeboat_repo::wal::check`). Gaps are counted in 16 MiB segments
//! (PostgreSQL's default `wal_segment_size`).

use chrono::{DateTime, Utc};
use lifeboat_dr::wal::WalOverview;
use lifeboat_postgres::wal::runs::{TimelineSummary, summarize};
use lifeboat_postgres::wal::{DEFAULT_SEGMENT_SIZE, SegmentName, WalName};
use lifeboat_repo::Repository;
use lifeboat_repo::check::{CheckReport, Problem};
use lifeboat_repo::wal::{self as store, partial};

use crate::error::Result;

/// The archive as one listing shows it.
#[derive(Debug, Clone)]
pub struct Archive {
    pub overview: WalOverview,
    /// Gaps and missing history files, each naming what is missing.
    pub problems: Vec<Problem>,
}

/// Lists the archive and judges its continuity at `now`; `None` when the
/// repository holds no WAL object.
pub async fn archive(repo: &Repository, now: DateTime<Utc>) -> Result<Option<Archive>> {
    let complete = store::list(repo).await?;
    let partials = partial::list(repo).await?;
    if complete.is_empty() && partials.is_empty() {
        return Ok(None);
    }
    let mut names = Vec::new();
    // (segment, partial?, stored at)
    let mut newest: Option<(SegmentName, bool, DateTime<Utc>)> = None;
    let mut consider = |s: SegmentName, is_partial: bool, t: DateTime<Utc>| match &newest {
        Some((n, _, nt)) if (*n, *nt) >= (s, t) => {}
        _ => newest = Some((s, is_partial, t)),
    };
    for (k, info) in &complete {
        if let Ok(n) = WalName::parse(&k.name)
            && n.timeline() == k.timeline
        {
            if let Some(s) = n.segment() {
                consider(s, false, info.last_modified);
            }
            names.push((n, k.epoch));
        }
    }
    for (k, info) in &partials {
        if let Some(s) = SegmentName::parse(&k.segment).filter(|s| s.timeline == k.timeline) {
            consider(s, true, info.last_modified);
            names.push((WalName::Segment(s), k.epoch));
        }
    }
    let timelines = summarize(names, DEFAULT_SEGMENT_SIZE);
    Ok(Some(judge(
        &timelines,
        (complete.len() + partials.len()) as u64,
        newest,
        now,
    )))
}

/// Adds the archive's gaps and missing history files to a `check`'s
/// report (the CLI's and the daemon's), so they count as its problems.
pub async fn add_to_report(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    if let Some(a) = archive(repo, Utc::now()).await? {
        report.errors.extend(a.problems);
    }
    Ok(())
}

/// The overview and the problems from the summarized timelines. Pure.
pub fn judge(
    timelines: &[TimelineSummary],
    objects: u64,
    newest: Option<(SegmentName, bool, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Archive {
    let mut problems = Vec::new();
    let mut gaps = Vec::new();
    let mut missing_history = Vec::new();
    for t in timelines {
        for g in &t.gaps {
            let text = if g.count == 1 {
                format!("timeline {}: {} (1 segment)", t.timeline, g.first)
            } else {
                format!(
                    "timeline {}: {}..{} ({} segments)",
                    t.timeline, g.first, g.last, g.count
                )
            };
            problems.push(Problem {
                object: format!("wal/{:08X}/{}", t.timeline, g.first),
                detail: format!(
                    "a gap in the WAL archive: {text} missing between {} and {}; a recovery \
                     through it stops there. Find out why it was not archived (the server's \
                     log, pg_stat_archiver) and take a new base backup after it",
                    t.first.as_deref().unwrap_or("?"),
                    t.last.as_deref().unwrap_or("?")
                ),
            });
            gaps.push(text);
        }
        if t.timeline > 1 && !t.history && t.segments > 0 {
            missing_history.push(t.timeline);
            problems.push(Problem {
                object: format!("wal/{:08X}/{:08X}.history", t.timeline, t.timeline),
                detail: format!(
                    "timeline {} has segments in the archive but no history file: a recovery \
                     cannot follow the switch to it. Push it from the promoted server's \
                     pg_wal (lifeboat wal push pg_wal/{:08X}.history)",
                    t.timeline, t.timeline
                ),
            });
        }
    }
    let overview = WalOverview {
        objects,
        newest_segment: newest.map(|(s, _, _)| s.to_string()),
        newest_partial: newest.is_some_and(|(_, p, _)| p),
        newest_time: newest.map(|(_, _, t)| t),
        newest_age_seconds: newest
            .map(|(_, _, t)| ((now - t).num_milliseconds() as f64 / 1000.0).max(0.0)),
        gaps,
        missing_history,
    };
    Archive { overview, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> WalName {
        WalName::parse(s).unwrap()
    }

    #[test]
    fn gaps_and_missing_history_are_named() {
        let now = Utc::now();
        struct Case {
            files: Vec<&'static str>,
            problems: Vec<&'static str>,
        }
        let cases = [
            Case {
                files: vec!["000000010000000000000001", "000000010000000000000002"],
                problems: vec![],
            },
            Case {
                files: vec!["000000010000000000000001", "000000010000000000000003"],
                problems: vec!["wal/00000001/000000010000000000000002"],
            },
            Case {
                files: vec![
                    "000000010000000000000001",
                    "000000010000000000000005",
                    "000000020000000000000005",
                ],
                problems: vec![
                    "wal/00000001/000000010000000000000002",
                    "wal/00000002/00000002.history",
                ],
            },
            Case {
                files: vec!["00000002.history", "000000020000000000000005"],
                problems: vec![],
            },
        ];
        for c in cases {
            let names = c.files.iter().map(|f| (n(f), 0));
            let tl = summarize(names, DEFAULT_SEGMENT_SIZE);
            let a = judge(&tl, c.files.len() as u64, None, now);
            let got: Vec<&str> = a.problems.iter().map(|p| p.object.as_str()).collect();
            assert_eq!(got, c.problems, "{:?}", c.files);
            assert_eq!(
                a.overview.gaps.len() + a.overview.missing_history.len(),
                c.problems.len()
            );
        }
        let tl = summarize(
            [
                (n("000000010000000000000001"), 0),
                (n("000000010000000000000005"), 0),
            ],
            DEFAULT_SEGMENT_SIZE,
        );
        let a = judge(&tl, 2, None, now);
        assert_eq!(
            a.overview.gaps,
            ["timeline 1: 000000010000000000000002..000000010000000000000004 (3 segments)"]
        );
    }

    #[test]
    fn the_newest_and_its_age() {
        let now = Utc::now();
        let s = SegmentName::parse("000000010000000000000009").unwrap();
        let a = judge(
            &[],
            1,
            Some((s, true, now - chrono::TimeDelta::seconds(3))),
            now,
        );
        assert_eq!(
            a.overview.newest_segment.as_deref(),
            Some("000000010000000000000009")
        );
        assert!(a.overview.newest_partial);
        assert_eq!(a.overview.newest_age_seconds, Some(3.0));
    }
}
