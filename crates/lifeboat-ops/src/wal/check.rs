//! The archive's continuity, for `check` and `status`: from one listing of
//! `wal/` and `wal-partial/`, the gaps per timeline (a segment missing
//! between the first and the last stored on the timeline; the streamer's
//! partial versions count as present, so a missing segment just before the
//! one being received is a gap too), timelines above 1 without their
//! `.history` file, and the newest segment with its age. Nothing is
//! decrypted here; `check --read-data` verifies every object
//! (`lifeboat_repo::wal::check`). Gaps are counted in segments of the
//! physical snapshots' `wal_segment_size`, 16 MiB (PostgreSQL's default)
//! without one.
//!
//! **Where the archive starts.** Prune deletes the WAL before the oldest
//! kept physical snapshot's start segment ([`super::retention`]), so gaps
//! are looked for from that segment on: a gap before it is no loss (no
//! kept base backup can use that WAL), and once prune has run the range is
//! simply gone. On the oldest base backup's own timeline the archive must
//! hold its start segment: a timeline whose first stored segment comes
//! after it is missing that stretch (a gap). Without a physical snapshot
//! the archive starts at its first stored segment on every timeline, as
//! before.

use chrono::{DateTime, Utc};
use lifeboat_dr::wal::WalOverview;
use lifeboat_postgres::wal::runs::{Gap, TimelineSummary, summarize};
use lifeboat_postgres::wal::{DEFAULT_SEGMENT_SIZE, SegmentName, WalName};
use lifeboat_repo::Repository;
use lifeboat_repo::check::{CheckReport, Problem};
use lifeboat_repo::prune::WalCutoff;
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
    // Where the archive starts: the oldest kept base backup's start. A
    // cutoff that cannot be decided (unreadable facts or snapshots) starts
    // nowhere special: every gap is reported, as prune deletes nothing then.
    let start = match repo.snapshots().await {
        Ok(snaps) => super::retention::cutoff(&snaps).ok().flatten(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the snapshots: WAL gaps are counted from each timeline's first segment");
            None
        }
    };
    let size = start
        .as_ref()
        .map_or(DEFAULT_SEGMENT_SIZE, |c| c.segment_size);
    let timelines = summarize(names, size);
    Ok(Some(judge(
        &timelines,
        (complete.len() + partials.len()) as u64,
        newest,
        now,
        start.as_ref(),
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

/// The overview and the problems from the summarized timelines, the
/// archive starting at `start` (the oldest kept base backup's start
/// segment; `None`: at each timeline's first stored segment). Pure.
pub fn judge(
    timelines: &[TimelineSummary],
    objects: u64,
    newest: Option<(SegmentName, bool, DateTime<Utc>)>,
    now: DateTime<Utc>,
    start: Option<&WalCutoff>,
) -> Archive {
    let mut problems = Vec::new();
    let mut gaps = Vec::new();
    let mut missing_history = Vec::new();
    let size = start.map_or(DEFAULT_SEGMENT_SIZE, |c| c.segment_size);
    for t in timelines {
        let leading = start.and_then(|c| leading_gap(t, c));
        if let (Some(g), Some(c)) = (&leading, start) {
            let text = gap_text(t.timeline, g);
            problems.push(Problem {
                object: format!("wal/{:08X}/{}", t.timeline, g.first),
                detail: format!(
                    "a gap in the WAL archive: {text} missing: the oldest kept base backup \
                     (snapshot {}) starts in {} but the archive on its timeline starts at {}; \
                     that base backup cannot be recovered. Find out why it was not archived \
                     (the server's log, pg_stat_archiver) and take a new base backup",
                    &c.snapshot[..c.snapshot.len().min(8)],
                    c.first_kept,
                    t.first.as_deref().unwrap_or("?")
                ),
            });
            gaps.push(text);
        }
        for g in t
            .gaps
            .iter()
            .filter_map(|g| since(g, t.timeline, start, size))
        {
            let g = &g;
            let text = gap_text(t.timeline, g);
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

/// `timeline 1: A..B (n segments)`, or `timeline 1: A (1 segment)`.
fn gap_text(timeline: u32, g: &Gap) -> String {
    if g.count == 1 {
        format!("timeline {timeline}: {} (1 segment)", g.first)
    } else {
        format!(
            "timeline {timeline}: {}..{} ({} segments)",
            g.first, g.last, g.count
        )
    }
}

/// The part of `g` at or after the archive's start (all of it without a
/// start); `None` when it lies wholly before.
fn since(g: &Gap, timeline: u32, start: Option<&WalCutoff>, size: u64) -> Option<Gap> {
    let Some(c) = start else {
        return Some(g.clone());
    };
    let first = SegmentName::parse(&g.first)?.number(size);
    let last = SegmentName::parse(&g.last)?.number(size);
    if last < c.position {
        return None;
    }
    let first = first.max(c.position);
    Some(Gap {
        first: SegmentName::from_number(timeline, first, size).to_string(),
        last: g.last.clone(),
        count: last - first + 1,
    })
}

/// On the oldest base backup's timeline, the segments from its start up
/// to the first one stored, when the first stored comes after the start.
fn leading_gap(t: &TimelineSummary, c: &WalCutoff) -> Option<Gap> {
    let begins = SegmentName::parse(&c.first_kept)?;
    if begins.timeline != t.timeline {
        return None;
    }
    let first = SegmentName::parse(t.first.as_deref()?)?.number(c.segment_size);
    (first > c.position).then(|| Gap {
        first: c.first_kept.clone(),
        last: SegmentName::from_number(t.timeline, first - 1, c.segment_size).to_string(),
        count: first - c.position,
    })
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
            let a = judge(&tl, c.files.len() as u64, None, now, None);
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
        let a = judge(&tl, 2, None, now, None);
        assert_eq!(
            a.overview.gaps,
            ["timeline 1: 000000010000000000000002..000000010000000000000004 (3 segments)"]
        );
    }

    #[test]
    fn the_archive_starts_at_the_oldest_kept_base_backup() {
        let now = Utc::now();
        let start = |name: &str| WalCutoff {
            position: SegmentName::parse(name)
                .unwrap()
                .number(DEFAULT_SEGMENT_SIZE),
            segment_size: DEFAULT_SEGMENT_SIZE,
            snapshot: "0123456789abcdef".into(),
            first_kept: name.into(),
        };
        struct Case {
            what: &'static str,
            files: Vec<&'static str>,
            start: Option<&'static str>,
            gaps: Vec<&'static str>,
        }
        let cases = [
            Case {
                what: "gaps before the start are no loss",
                files: vec![
                    "000000010000000000000001",
                    "000000010000000000000003",
                    "000000010000000000000005",
                    "000000010000000000000006",
                ],
                start: Some("000000010000000000000005"),
                gaps: vec![],
            },
            Case {
                what: "without a base backup they are gaps",
                files: vec![
                    "000000010000000000000001",
                    "000000010000000000000003",
                    "000000010000000000000005",
                ],
                start: None,
                gaps: vec![
                    "timeline 1: 000000010000000000000002 (1 segment)",
                    "timeline 1: 000000010000000000000004 (1 segment)",
                ],
            },
            Case {
                what: "a gap over the start counts from the start",
                files: vec!["000000010000000000000001", "000000010000000000000008"],
                start: Some("000000010000000000000005"),
                gaps: vec![
                    "timeline 1: 000000010000000000000005..000000010000000000000007 (3 segments)",
                ],
            },
            Case {
                what: "pruned: the archive begins at the start, no gap",
                files: vec!["000000010000000000000005", "000000010000000000000006"],
                start: Some("000000010000000000000005"),
                gaps: vec![],
            },
            Case {
                what: "the base backup's own start segment is missing",
                files: vec!["000000010000000000000007", "000000010000000000000008"],
                start: Some("000000010000000000000005"),
                gaps: vec![
                    "timeline 1: 000000010000000000000005..000000010000000000000006 (2 segments)",
                ],
            },
            Case {
                what: "another timeline starting later is not held to the start",
                files: vec![
                    "000000010000000000000005",
                    "00000002.history",
                    "000000020000000000000009",
                    "00000002000000000000000B",
                ],
                start: Some("000000010000000000000005"),
                gaps: vec!["timeline 2: 00000002000000000000000A (1 segment)"],
            },
            Case {
                what: "a start on timeline 2 ignores timeline 1's old gaps",
                files: vec![
                    "000000010000000000000001",
                    "000000010000000000000003",
                    "00000002.history",
                    "000000020000000000000007",
                ],
                start: Some("000000020000000000000007"),
                gaps: vec![],
            },
        ];
        for c in cases {
            let names = c.files.iter().map(|f| (n(f), 0));
            let tl = summarize(names, DEFAULT_SEGMENT_SIZE);
            let s = c.start.map(start);
            let a = judge(&tl, c.files.len() as u64, None, now, s.as_ref());
            assert_eq!(a.overview.gaps, c.gaps, "{}", c.what);
            assert_eq!(a.problems.len(), c.gaps.len(), "{}", c.what);
        }
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
            None,
        );
        assert_eq!(
            a.overview.newest_segment.as_deref(),
            Some("000000010000000000000009")
        );
        assert!(a.overview.newest_partial);
        assert_eq!(a.overview.newest_age_seconds, Some(3.0));
    }
}
