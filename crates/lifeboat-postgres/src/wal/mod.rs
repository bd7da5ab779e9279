//! PostgreSQL's WAL file names, as `archive_command` (`%p`, `%f`) and
//! `restore_command` hand them over, parsed and ordered. Pure: no IO.
//!
//! The archive holds four kinds of file (PostgreSQL 15, `xlog_internal.h`):
//!
//! | kind | name | example |
//! |---|---|---|
//! | segment | timeline, log, segment: 24 upper-case hex digits | `000000010000000A000000FE` |
//! | partial segment | a segment's name + `.partial` (the last, unfinished segment of the old timeline, archived by a promoted standby) | `000000010000000A000000FE.partial` |
//! | timeline history | timeline, 8 hex digits + `.history` | `00000002.history` |
//! | backup history ("backup label") | a segment's name + `.` + 8 hex digits of the start offset + `.backup` | `000000010000000000000003.00000028.backup` |
//!
//! Every kind names its timeline, so where a file lives in the archive (its
//! timeline) follows from its name alone. Segments are ordered by
//! (timeline, log, segment); the number of segments per "log" is
//! `0x1_0000_0000 / wal_segment_size` (256 for the default 16 MiB).

pub mod receive;
pub mod runs;

use std::fmt;

/// The default `wal_segment_size`: 16 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// One file name of the WAL archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WalName {
    Segment(SegmentName),
    Partial(SegmentName),
    History { timeline: u32 },
    BackupLabel { segment: SegmentName, offset: u32 },
}

/// Timeline, log and segment of a WAL segment, in name order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentName {
    pub timeline: u32,
    pub log: u32,
    pub seg: u32,
}

/// Why a name is not a WAL archive name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a WAL file name PostgreSQL archives (a segment such as \
     000000010000000000000001, a .partial segment, a timeline's NNNNNNNN.history \
     or a .backup label): {why}"
)]
pub struct WalNameError {
    pub name: String,
    pub why: &'static str,
}

/// The kind of a [`WalName`], for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalKind {
    Segment,
    Partial,
    History,
    BackupLabel,
}

fn hex8(s: &str) -> Option<u32> {
    if s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

impl SegmentName {
    /// A bare segment name: 24 upper-case hex digits.
    pub fn parse(s: &str) -> Option<SegmentName> {
        if s.len() != 24 || !s.is_ascii() {
            return None;
        }
        Some(SegmentName {
            timeline: hex8(&s[0..8])?,
            log: hex8(&s[8..16])?,
            seg: hex8(&s[16..24])?,
        })
    }

    /// The segment's position on its timeline, counting from 0 (PostgreSQL's
    /// `XLogSegNo`) for segments of `segment_size` bytes.
    pub fn number(&self, segment_size: u64) -> u64 {
        u64::from(self.log) * segs_per_log(segment_size) + u64::from(self.seg)
    }

    /// The segment at position `number` on `timeline`.
    pub fn from_number(timeline: u32, number: u64, segment_size: u64) -> SegmentName {
        let per = segs_per_log(segment_size);
        SegmentName {
            timeline,
            log: u32::try_from(number / per).unwrap_or(u32::MAX),
            seg: u32::try_from(number % per).unwrap_or(u32::MAX),
        }
    }
}

/// Segments per "log" file number: `0x1_0000_0000 / segment_size` (at
/// least 1; PostgreSQL allows 1 MiB to 1 GiB, powers of two).
pub fn segs_per_log(segment_size: u64) -> u64 {
    (0x1_0000_0000u64 / segment_size.max(1)).max(1)
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

impl WalName {
    /// Parses a file name (not a path) as PostgreSQL writes it: upper-case
    /// hex only, nothing before or after.
    pub fn parse(name: &str) -> Result<WalName, WalNameError> {
        let err = |why| WalNameError {
            name: name.to_string(),
            why,
        };
        if !name.is_ascii() {
            return Err(err("not ASCII"));
        }
        if let Some(tl) = name.strip_suffix(".history") {
            let timeline =
                hex8(tl).ok_or_else(|| err("a history file is 8 hex digits + .history"))?;
            return Ok(WalName::History { timeline });
        }
        if let Some(seg) = name.strip_suffix(".partial") {
            let s = SegmentName::parse(seg)
                .ok_or_else(|| err("a .partial file is a 24-hex-digit segment name + .partial"))?;
            return Ok(WalName::Partial(s));
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, offset) = rest
                .split_once('.')
                .ok_or_else(|| err("a backup label is SEGMENT.OFFSET.backup"))?;
            let segment = SegmentName::parse(seg)
                .ok_or_else(|| err("a backup label starts with a 24-hex-digit segment name"))?;
            let offset =
                hex8(offset).ok_or_else(|| err("a backup label's offset is 8 hex digits"))?;
            return Ok(WalName::BackupLabel { segment, offset });
        }
        SegmentName::parse(name)
            .map(WalName::Segment)
            .ok_or_else(|| err("a segment name is 24 upper-case hex digits"))
    }

    /// The timeline the name belongs to (where it lives in the archive).
    pub fn timeline(&self) -> u32 {
        match self {
            WalName::Segment(s) | WalName::Partial(s) => s.timeline,
            WalName::BackupLabel { segment, .. } => segment.timeline,
            WalName::History { timeline } => *timeline,
        }
    }

    pub fn kind(&self) -> WalKind {
        match self {
            WalName::Segment(_) => WalKind::Segment,
            WalName::Partial(_) => WalKind::Partial,
            WalName::History { .. } => WalKind::History,
            WalName::BackupLabel { .. } => WalKind::BackupLabel,
        }
    }

    /// The full segment, for a segment name (not a partial one).
    pub fn segment(&self) -> Option<SegmentName> {
        match self {
            WalName::Segment(s) => Some(*s),
            _ => None,
        }
    }
}

impl fmt::Display for WalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalName::Segment(s) => write!(f, "{s}"),
            WalName::Partial(s) => write!(f, "{s}.partial"),
            WalName::History { timeline } => write!(f, "{timeline:08X}.history"),
            WalName::BackupLabel { segment, offset } => write!(f, "{segment}.{offset:08X}.backup"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(timeline: u32, log: u32, seg: u32) -> SegmentName {
        SegmentName { timeline, log, seg }
    }

    #[test]
    fn names_parse_and_print_back() {
        let table: &[(&str, WalName, u32, WalKind)] = &[
            (
                "000000010000000000000001",
                WalName::Segment(seg(1, 0, 1)),
                1,
                WalKind::Segment,
            ),
            (
                "000000020000000A000000FE",
                WalName::Segment(seg(2, 10, 254)),
                2,
                WalKind::Segment,
            ),
            (
                "FFFFFFFFFFFFFFFFFFFFFFFF",
                WalName::Segment(seg(u32::MAX, u32::MAX, u32::MAX)),
                u32::MAX,
                WalKind::Segment,
            ),
            (
                "000000010000000000000005.partial",
                WalName::Partial(seg(1, 0, 5)),
                1,
                WalKind::Partial,
            ),
            (
                "00000002.history",
                WalName::History { timeline: 2 },
                2,
                WalKind::History,
            ),
            (
                "0000000A.history",
                WalName::History { timeline: 10 },
                10,
                WalKind::History,
            ),
            (
                "000000010000000000000003.00000028.backup",
                WalName::BackupLabel {
                    segment: seg(1, 0, 3),
                    offset: 0x28,
                },
                1,
                WalKind::BackupLabel,
            ),
        ];
        for (text, want, timeline, kind) in table {
            let got = WalName::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&got, want, "{text}");
            assert_eq!(got.timeline(), *timeline, "{text}");
            assert_eq!(got.kind(), *kind, "{text}");
            assert_eq!(got.to_string(), *text, "{text} prints back");
        }
    }

    #[test]
    fn not_wal_names_are_refused() {
        for bad in [
            "",
            "00000001000000000000000",         // 23 digits
            "0000000100000000000000011",       // 25 digits
            "000000010000000000000001a",       // lower-case tail
            "00000001000000000000000a",        // lower case
            "000000010000000G00000001",        // not hex
            "../00000001000000000000001",      // a path
            "pg_wal/000000010000000000000001", // a path
            "0000002.history",                 // 7 digits
            "00000002.HISTORY",
            "000000010000000000000001.partial.partial",
            "000000010000000000000003.backup", // no offset
            "000000010000000000000003.0000028.backup",
            "000000010000000000000001.ready",
            "archive_status",
            "00000001000000000000000\u{e9}",
        ] {
            assert!(WalName::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn segment_numbers_follow_the_segment_size() {
        let table: &[(SegmentName, u64, u64)] = &[
            (seg(1, 0, 0), DEFAULT_SEGMENT_SIZE, 0),
            (seg(1, 0, 0xFF), DEFAULT_SEGMENT_SIZE, 255),
            (seg(1, 1, 0), DEFAULT_SEGMENT_SIZE, 256),
            (seg(1, 2, 3), DEFAULT_SEGMENT_SIZE, 515),
            (seg(1, 1, 0), 1024 * 1024 * 1024, 4),
            (seg(1, 1, 0), 1024 * 1024, 4096),
        ];
        for (s, size, n) in table {
            assert_eq!(s.number(*size), *n, "{s} at {size}");
            assert_eq!(SegmentName::from_number(s.timeline, *n, *size), *s);
        }
    }

    #[test]
    fn names_order_by_timeline_then_position() {
        let mut names = [
            WalName::parse("000000020000000000000001").unwrap(),
            WalName::parse("000000010000000100000000").unwrap(),
            WalName::parse("0000000100000000000000FF").unwrap(),
        ];
        names.sort_by_key(|n| n.segment());
        let printed: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            printed,
            [
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000020000000000000001"
            ]
        );
    }
}
