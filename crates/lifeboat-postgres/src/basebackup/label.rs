//! What a base backup says about itself: the `backup_label` file
//! (start LSN, checkpoint, timeline, start time, `BACKUP FROM`) and the
//! `backup_manifest`'s `WAL-Ranges` (the WAL from the start to the end
//! LSN, the point where the backup is consistent). Pure parsing.

pub use crate::lsn::Lsn;

/// The fields of a `backup_label` Lifeboat uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel {
    pub start_lsn: Lsn,
    /// The segment named on the `START WAL LOCATION` line.
    pub start_segment: String,
    pub checkpoint_lsn: Lsn,
    pub start_timeline: u32,
    /// `START TIME`, as written (`2026-12-06 21:40:03 UTC`).
    pub start_time: String,
    /// `primary` or `standby`.
    pub backup_from: String,
    pub label: String,
}

/// Parses a `backup_label` (PostgreSQL 15's lines; unknown lines ignored).
pub fn parse_backup_label(text: &str) -> Result<BackupLabel, String> {
    let mut start = None;
    let mut checkpoint = None;
    let mut timeline = None;
    let mut start_time = None;
    let mut from = None;
    let mut label = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        match key {
            // "0/2000028 (file 000000010000000000000002)"
            "START WAL LOCATION" => {
                let (lsn, rest) = value.split_once(' ').unwrap_or((value, ""));
                let seg = rest
                    .trim()
                    .strip_prefix("(file ")
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap_or("")
                    .to_string();
                start = Some((lsn.parse::<Lsn>()?, seg));
            }
            "CHECKPOINT LOCATION" => checkpoint = Some(value.trim().parse::<Lsn>()?),
            "START TIMELINE" => {
                timeline = Some(
                    value
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| format!("START TIMELINE {value:?} is not a number"))?,
                )
            }
            "START TIME" => start_time = Some(value.trim().to_string()),
            "BACKUP FROM" => from = Some(value.trim().to_string()),
            "LABEL" => label = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let missing = |what: &str| format!("backup_label has no {what} line");
    let (start_lsn, start_segment) = start.ok_or_else(|| missing("START WAL LOCATION"))?;
    Ok(BackupLabel {
        start_lsn,
        start_segment,
        checkpoint_lsn: checkpoint.ok_or_else(|| missing("CHECKPOINT LOCATION"))?,
        start_timeline: timeline.ok_or_else(|| missing("START TIMELINE"))?,
        start_time: start_time.ok_or_else(|| missing("START TIME"))?,
        backup_from: from.unwrap_or_else(|| "primary".into()),
        label: label.unwrap_or_default(),
    })
}

/// The WAL a base backup needs: from `start` to `end` (the consistency
/// point) on `timeline` (the manifest's last range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRange {
    pub timeline: u32,
    pub start: Lsn,
    pub end: Lsn,
}

/// The last `WAL-Ranges` entry of a `backup_manifest` (JSON).
pub fn manifest_wal_range(manifest: &[u8]) -> Result<WalRange, String> {
    #[derive(serde::Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "Start-LSN")]
        start: Lsn,
        #[serde(rename = "End-LSN")]
        end: Lsn,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(rename = "WAL-Ranges")]
        ranges: Vec<Range>,
    }
    let m: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("backup_manifest is not readable: {e}"))?;
    let r = m
        .ranges
        .last()
        .ok_or("backup_manifest lists no WAL range")?;
    Ok(WalRange {
        timeline: r.timeline,
        start: r.start,
        end: r.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns() {
        for (text, v) in [
            ("0/0", 0u64),
            ("0/16B3748", 0x16B3748),
            ("1/0", 1 << 32),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
        ] {
            let l: Lsn = text.parse().unwrap();
            assert_eq!(l.0, v, "{text}");
            assert_eq!(l.to_string(), text);
        }
        for bad in ["", "0", "/1", "1/", "x/1", "123456789/0", "0/1/2"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
        assert!("0/2000028".parse::<Lsn>().unwrap() < "1/0".parse().unwrap());
    }

    #[test]
    fn segment_names() {
        let seg = 16u64 << 20;
        assert_eq!(
            Lsn(0x2000028).segment_name(1, seg),
            "000000010000000000000002"
        );
        assert_eq!(
            "1/FF000000".parse::<Lsn>().unwrap().segment_name(3, seg),
            "0000000300000001000000FF"
        );
        assert_eq!(
            "2/1000000"
                .parse::<Lsn>()
                .unwrap()
                .segment_name(1, 64 << 20),
            "000000010000000200000000"
        );
    }

    const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-06 21:40:03 UTC
LABEL: lifeboat
START TIMELINE: 1
";

    #[test]
    fn labels() {
        let l = parse_backup_label(LABEL).unwrap();
        assert_eq!(l.start_lsn, Lsn(0x2000028));
        assert_eq!(l.start_segment, "000000010000000000000002");
        assert_eq!(l.checkpoint_lsn, Lsn(0x2000060));
        assert_eq!(l.start_timeline, 1);
        assert_eq!(l.start_time, "2026-12-06 21:40:03 UTC");
        assert_eq!(l.backup_from, "primary");
        assert_eq!(l.label, "lifeboat");
        let without = LABEL.replace("START TIMELINE: 1\n", "");
        assert!(
            parse_backup_label(&without)
                .unwrap_err()
                .contains("START TIMELINE")
        );
        assert!(parse_backup_label("START WAL LOCATION: zz (file x)\n").is_err());
    }

    #[test]
    fn manifests() {
        let m = br#"{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
"Manifest-Checksum": "x"}"#;
        assert_eq!(
            manifest_wal_range(m).unwrap(),
            WalRange {
                timeline: 1,
                start: Lsn(0x2000028),
                end: Lsn(0x2000100)
            }
        );
        assert!(manifest_wal_range(br#"{"WAL-Ranges": []}"#).is_err());
        assert!(manifest_wal_range(b"not json").is_err());
    }
}
