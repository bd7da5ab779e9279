//! How far the archive is behind the server, from positions alone (pure):
//! the archived position ([`archived_position`]) and the newest time at
//! which the archive held everything the server had written
//! ([`Samples::through`]), the recovery point the metrics and the alert
//! use.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

/// The archived position: the end of the newest complete segment stored,
/// or, past it, the partial version's start plus its valid length, or the
/// position the receiver had reported written before that version was read
/// (`written_before`, the walsender's `write_lsn`: the file held at least
/// that much; it covers a record whose last bytes are zeros, which the
/// valid length cannot see). `partial`: (segment start, valid length,
/// segment size).
pub fn archived_position(
    complete_end: Option<u64>,
    partial: Option<(u64, u64, u64)>,
    written_before: Option<u64>,
) -> Option<u64> {
    let from_partial = partial.map(|(start, len, size)| {
        let by_len = start + len;
        match written_before {
            Some(w) if w >= start => by_len.max(w.min(start + size)),
            _ => by_len,
        }
    });
    match (complete_end, from_partial) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The server's position sampled over time (time, LSN), oldest first.
#[derive(Debug, Default)]
pub struct Samples {
    samples: VecDeque<(DateTime<Utc>, u64)>,
}

/// Samples kept at most (at one a second: a few minutes).
const KEEP: usize = 600;

impl Samples {
    pub fn push(&mut self, t: DateTime<Utc>, lsn: u64) {
        self.samples.push_back((t, lsn));
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
    }

    /// The newest sample time whose position the archive reached; older
    /// samples are dropped.
    pub fn through(&mut self, archived: u64) -> Option<DateTime<Utc>> {
        let i = self.samples.iter().rposition(|&(_, lsn)| lsn <= archived)?;
        let t = self.samples[i].0;
        self.samples.drain(..i);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archived_position() {
        let m = 16 << 20;
        let table = [
            (None, None, None, None),
            (Some(m), None, None, Some(m)),
            (Some(m), Some((m, 0x100, m)), None, Some(m + 0x100)),
            // the receiver had written further than the non-zero bytes show
            (
                Some(m),
                Some((m, 0x100, m)),
                Some(m + 0x108),
                Some(m + 0x108),
            ),
            // a position reported in an older segment does not count
            (Some(m), Some((m, 0x100, m)), Some(m - 8), Some(m + 0x100)),
            // nor past the segment's end
            (None, Some((m, 0x100, m)), Some(5 * m), Some(2 * m)),
            // a leftover partial behind the newest complete segment
            (Some(3 * m), Some((m, 0x100, m)), None, Some(3 * m)),
        ];
        for (complete, partial, written, want) in table {
            assert_eq!(
                archived_position(complete, partial, written),
                want,
                "{complete:?} {partial:?} {written:?}"
            );
        }
    }

    #[test]
    fn through_is_the_newest_sample_reached() {
        let t0 = Utc::now();
        let t = |s| t0 + chrono::TimeDelta::seconds(s);
        let mut s = Samples::default();
        assert_eq!(s.through(100), None);
        s.push(t(0), 100);
        s.push(t(1), 200);
        s.push(t(2), 300);
        assert_eq!(s.through(50), None);
        assert_eq!(s.through(250), Some(t(1)));
        // an idle server: the same position sampled again is reached
        s.push(t(3), 300);
        assert_eq!(s.through(300), Some(t(3)));
        assert_eq!(s.through(300), Some(t(3)));
    }
}
