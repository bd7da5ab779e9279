//! The WAL archive as `status` shows it (issue 21): the newest segment
//! stored (complete, or the streamer's version of the one being received),
//! its age, and the gaps and missing history files `check` also reports.
//! Plain data gathered by `lifeboat-ops::wal::check`; [`warnings`] is the
//! pure judgement, `status::with_wal` puts it into the status.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The archive (`None` in the status when the repository holds no WAL).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalOverview {
    /// WAL objects stored (every copy and partial version).
    pub objects: u64,
    /// The newest segment by position (highest timeline, then position).
    pub newest_segment: Option<String>,
    /// Whether that is the streamer's partial version (still being
    /// received), not a complete segment.
    pub newest_partial: bool,
    /// When it was stored (the storage's clock).
    pub newest_time: Option<DateTime<Utc>>,
    pub newest_age_seconds: Option<f64>,
    /// Each gap, e.g. `timeline 1: 000000010000000000000004..000000010000000000000006 (3 segments)`.
    pub gaps: Vec<String>,
    /// Timelines above 1 with segments but no `NNNNNNNN.history`.
    pub missing_history: Vec<u32>,
}

/// What an operator must look at: every gap and missing history file (a
/// recovery through them stops there).
pub fn warnings(w: &WalOverview) -> Vec<String> {
    let mut out: Vec<String> = w
        .gaps
        .iter()
        .map(|g| format!("the archive misses {g}: recovery cannot pass it"))
        .collect();
    out.extend(
        w.missing_history.iter().map(|t| {
            format!("the archive has timeline {t} but not its history file {t:08X}.history")
        }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview(gaps: Vec<&str>, missing: Vec<u32>) -> WalOverview {
        WalOverview {
            objects: 3,
            newest_segment: Some("000000010000000000000007".into()),
            newest_partial: false,
            newest_time: None,
            newest_age_seconds: Some(2.0),
            gaps: gaps.into_iter().map(String::from).collect(),
            missing_history: missing,
        }
    }

    #[test]
    fn gaps_and_missing_history_are_warnings() {
        let table: &[(WalOverview, usize)] = &[
            (overview(vec![], vec![]), 0),
            (overview(vec!["timeline 1: a..b (2 segments)"], vec![]), 1),
            (overview(vec!["x", "y"], vec![2]), 3),
        ];
        for (o, n) in table {
            let w = warnings(o);
            assert_eq!(w.len(), *n, "{w:?}");
        }
        let w = warnings(&overview(vec![], vec![2]));
        assert_eq!(
            w,
            ["the archive has timeline 2 but not its history file 00000002.history"]
        );
    }
}
