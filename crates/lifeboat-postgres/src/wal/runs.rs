//! What an archive listing holds, per timeline: the segments present (the
//! union over every epoch that wrote on the timeline), the first and the
//! last, the gaps between them, and the other files (history, `.partial`,
//! backup labels). Pure: `summarize` takes names with the epoch each was
//! stored under (a number to this module) and returns the summary.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{SegmentName, WalName};

/// A run of missing segments on a timeline, between two present ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The first missing segment.
    pub first: String,
    /// The last missing segment.
    pub last: String,
    /// How many segments are missing.
    pub count: u64,
}

/// The segments one epoch stored on a timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochSummary {
    pub epoch: u64,
    pub segments: u64,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// One timeline of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineSummary {
    pub timeline: u32,
    /// Distinct segments present (one stored under two epochs counts once).
    pub segments: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Missing segments between `first` and `last`, in order.
    pub gaps: Vec<Gap>,
    pub epochs: Vec<EpochSummary>,
    /// Whether the timeline's `NNNNNNNN.history` is stored (every timeline
    /// but 1 has one).
    pub history: bool,
    pub partial: Vec<String>,
    pub backup_labels: Vec<String>,
}

/// Summarizes `files` (name, epoch), for segments of `segment_size` bytes.
pub fn summarize(
    files: impl IntoIterator<Item = (WalName, u64)>,
    segment_size: u64,
) -> Vec<TimelineSummary> {
    #[derive(Default)]
    struct Acc {
        segments: BTreeSet<SegmentName>,
        by_epoch: BTreeMap<u64, BTreeSet<SegmentName>>,
        history: bool,
        partial: BTreeSet<String>,
        labels: BTreeSet<String>,
    }
    let mut timelines: BTreeMap<u32, Acc> = BTreeMap::new();
    for (name, epoch) in files {
        let acc = timelines.entry(name.timeline()).or_default();
        match name {
            WalName::Segment(s) => {
                acc.segments.insert(s);
                acc.by_epoch.entry(epoch).or_default().insert(s);
            }
            WalName::Partial(_) => {
                acc.partial.insert(name.to_string());
            }
            WalName::History { .. } => acc.history = true,
            WalName::BackupLabel { .. } => {
                acc.labels.insert(name.to_string());
            }
        }
    }
    timelines
        .into_iter()
        .map(|(timeline, acc)| TimelineSummary {
            timeline,
            segments: acc.segments.len() as u64,
            first: acc.segments.first().map(|s| s.to_string()),
            last: acc.segments.last().map(|s| s.to_string()),
            gaps: gaps(timeline, &acc.segments, segment_size),
            epochs: acc
                .by_epoch
                .into_iter()
                .map(|(epoch, segs)| EpochSummary {
                    epoch,
                    segments: segs.len() as u64,
                    first: segs.first().map(|s| s.to_string()),
                    last: segs.last().map(|s| s.to_string()),
                })
                .collect(),
            history: acc.history,
            partial: acc.partial.into_iter().collect(),
            backup_labels: acc.labels.into_iter().collect(),
        })
        .collect()
}

fn gaps(timeline: u32, segments: &BTreeSet<SegmentName>, segment_size: u64) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut prev: Option<u64> = None;
    for s in segments {
        let n = s.number(segment_size);
        if let Some(p) = prev
            && n > p + 1
        {
            out.push(Gap {
                first: SegmentName::from_number(timeline, p + 1, segment_size).to_string(),
                last: SegmentName::from_number(timeline, n - 1, segment_size).to_string(),
                count: n - p - 1,
            });
        }
        prev = Some(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::DEFAULT_SEGMENT_SIZE;

    fn n(s: &str) -> WalName {
        WalName::parse(s).unwrap()
    }

    /// A timeline's (number, segments, first, last, gaps as (first, last, count)).
    type Want = (
        u32,
        u64,
        Option<&'static str>,
        Option<&'static str>,
        Vec<(&'static str, &'static str, u64)>,
    );

    #[test]
    fn gaps_and_epochs_per_timeline() {
        struct Case {
            what: &'static str,
            files: Vec<(&'static str, u64)>,
            want: Vec<Want>,
        }
        let cases = [
            Case {
                what: "empty",
                files: vec![],
                want: vec![],
            },
            Case {
                what: "contiguous across a log boundary",
                files: vec![
                    ("0000000100000000000000FE", 0),
                    ("0000000100000000000000FF", 0),
                    ("000000010000000100000000", 0),
                ],
                want: vec![(
                    1,
                    3,
                    Some("0000000100000000000000FE"),
                    Some("000000010000000100000000"),
                    vec![],
                )],
            },
            Case {
                what: "one missing and three missing",
                files: vec![
                    ("000000010000000000000001", 0),
                    ("000000010000000000000003", 0),
                    ("000000010000000000000007", 0),
                ],
                want: vec![(
                    1,
                    3,
                    Some("000000010000000000000001"),
                    Some("000000010000000000000007"),
                    vec![
                        ("000000010000000000000002", "000000010000000000000002", 1),
                        ("000000010000000000000004", "000000010000000000000006", 3),
                    ],
                )],
            },
            Case {
                what: "a gap across a log boundary",
                files: vec![
                    ("0000000100000000000000FE", 0),
                    ("000000010000000100000001", 0),
                ],
                want: vec![(
                    1,
                    2,
                    Some("0000000100000000000000FE"),
                    Some("000000010000000100000001"),
                    vec![("0000000100000000000000FF", "000000010000000100000000", 2)],
                )],
            },
            Case {
                what: "the same segment under two epochs counts once, no gap",
                files: vec![
                    ("000000010000000000000001", 0),
                    ("000000010000000000000002", 0),
                    ("000000010000000000000002", 1),
                    ("000000010000000000000003", 1),
                ],
                want: vec![(
                    1,
                    3,
                    Some("000000010000000000000001"),
                    Some("000000010000000000000003"),
                    vec![],
                )],
            },
            Case {
                what: "two timelines, the second starting at the switch point",
                files: vec![
                    ("000000010000000000000001", 0),
                    ("000000010000000000000002", 0),
                    ("000000010000000000000003.partial", 1),
                    ("00000002.history", 2),
                    ("000000020000000000000003", 2),
                    ("000000020000000000000004", 2),
                ],
                want: vec![
                    (
                        1,
                        2,
                        Some("000000010000000000000001"),
                        Some("000000010000000000000002"),
                        vec![],
                    ),
                    (
                        2,
                        2,
                        Some("000000020000000000000003"),
                        Some("000000020000000000000004"),
                        vec![],
                    ),
                ],
            },
            Case {
                what: "only a history file",
                files: vec![("00000003.history", 0)],
                want: vec![(3, 0, None, None, vec![])],
            },
        ];
        for c in cases {
            let got = summarize(
                c.files.iter().map(|(s, e)| (n(s), *e)),
                DEFAULT_SEGMENT_SIZE,
            );
            let got: Vec<_> = got
                .iter()
                .map(|t| {
                    (
                        t.timeline,
                        t.segments,
                        t.first.clone(),
                        t.last.clone(),
                        t.gaps
                            .iter()
                            .map(|g| (g.first.clone(), g.last.clone(), g.count))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            let want: Vec<_> = c
                .want
                .iter()
                .map(|(tl, segs, f, l, g)| {
                    (
                        *tl,
                        *segs,
                        f.map(str::to_string),
                        l.map(str::to_string),
                        g.iter()
                            .map(|(a, b, k)| (a.to_string(), b.to_string(), *k))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{}", c.what);
        }
    }

    #[test]
    fn other_files_and_epochs_are_listed() {
        let files = [
            ("000000010000000000000001", 0),
            ("000000010000000000000002", 1),
            ("000000010000000000000002", 0),
            ("000000010000000000000002.00000028.backup", 0),
            ("000000010000000000000003.partial", 2),
        ];
        let got = summarize(files.iter().map(|(s, e)| (n(s), *e)), DEFAULT_SEGMENT_SIZE);
        assert_eq!(got.len(), 1);
        let t = &got[0];
        assert!(!t.history);
        assert_eq!(t.partial, ["000000010000000000000003.partial"]);
        assert_eq!(
            t.backup_labels,
            ["000000010000000000000002.00000028.backup"]
        );
        let epochs: Vec<(u64, u64)> = t.epochs.iter().map(|e| (e.epoch, e.segments)).collect();
        assert_eq!(epochs, [(0, 2), (1, 1)]);
    }
}
