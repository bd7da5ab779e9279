//! WAL positions (`pg_lsn`), printed and parsed as PostgreSQL does: `X/Y`,
//! the high and low 32 bits in upper-case hexadecimal.
//!
//! Queries cast `pg_lsn` values to `text` and parse them here, so the parsing
//! is a pure, tested function and no driver type leaks into the observations.
//! The one LSN type of the workspace: base backups, WAL streaming and the
//! regions' replication all use it.

use std::fmt;
use std::str::FromStr;

/// A WAL position: a byte offset in the WAL stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `16/B374D848` (two hexadecimal halves of at most 8 digits).
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return None;
        }
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }

    /// Bytes from `older` to `self`; 0 when `older` is ahead (a standby's
    /// report can be newer than a primary position read a moment earlier).
    pub fn bytes_since(self, older: Lsn) -> u64 {
        self.0.saturating_sub(older.0)
    }

    /// The WAL segment file holding this location on `timeline`, for
    /// segments of `segment_bytes` (PostgreSQL's `XLogFileName`).
    pub fn segment_name(self, timeline: u32, segment_bytes: u64) -> String {
        let per_id = 0x1_0000_0000u64 / segment_bytes;
        let seg = self.0 / segment_bytes;
        format!("{timeline:08X}{:08X}{:08X}", seg / per_id, seg % per_id)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Lsn::parse(s).ok_or_else(|| format!("{s:?} is not a WAL location (like 0/16B3748)"))
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0/0", Some(0)),
            ("0/3000060", Some(0x300_0060)),
            ("16/B374D848", Some(0x16_B374_D848)),
            ("FFFFFFFF/FFFFFFFF", Some(u64::MAX)),
            (" 1/0 ", Some(1 << 32)),
            ("1", None),
            ("/1", None),
            ("1/", None),
            ("1/2/3", None),
            ("G/0", None),
            ("x/1", None),
            ("100000000/0", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(Lsn::parse(text).map(|l| l.0), *want, "{text:?}");
            assert_eq!(text.parse::<Lsn>().ok().map(|l| l.0), *want, "{text:?}");
        }
    }

    #[test]
    fn display_round_trips_and_diff_saturates() {
        for v in [0u64, 0x300_0060, 0x16_B374_D848, u64::MAX] {
            assert_eq!(Lsn::parse(&Lsn(v).to_string()), Some(Lsn(v)));
        }
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn(10).bytes_since(Lsn(4)), 6);
        assert_eq!(Lsn(4).bytes_since(Lsn(10)), 0);
        let j = serde_json::to_string(&Lsn(0x300_0060)).unwrap();
        assert_eq!(j, "\"0/3000060\"");
        assert_eq!(serde_json::from_str::<Lsn>(&j).unwrap(), Lsn(0x300_0060));
        assert!(serde_json::from_str::<Lsn>("\"nope\"").is_err());
    }
}
