//! `pg_receivewal`, as the daemon's streamer runs it (docs/physical.md,
//! "Streaming"): its argument vectors, and LSN arithmetic over segment
//! names. Pure: the daemon starts the program and reads the spool.
//!
//! Two runs: `--create-slot --if-not-exists` (creates the physical slot
//! and exits), then the stream itself with `--slot`, which starts where the
//! slot (or the newest file in the spool) says, at a segment's start.
//! `--no-loop`: a lost connection ends the program and the daemon restarts
//! it with its own backoff and logging. `--status-interval 1`: the server
//! learns within a second how far the spool has been written (the daemon
//! reads that position back as the walsender's `write_lsn`).

use std::ffi::OsString;
use std::path::Path;

use super::{SegmentName, segs_per_log};

/// The arguments that create `slot` if it does not exist (and exit).
pub fn create_slot_args(slot: &str) -> Vec<OsString> {
    [
        "--create-slot",
        "--if-not-exists",
        "--slot",
        slot,
        "--no-password",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// The arguments of the stream into `spool` through `slot`; the connection
/// comes from the `PG*` environment.
pub fn stream_args(spool: &Path, slot: &str, synchronous: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--directory".into(),
        spool.as_os_str().to_owned(),
        "--slot".into(),
        slot.into(),
        "--no-loop".into(),
        "--no-password".into(),
        "--status-interval".into(),
        "1".into(),
        "--verbose".into(),
    ];
    if synchronous {
        a.push("--synchronous".into());
    }
    a
}

/// The LSN where `seg` begins, for segments of `segment_size` bytes.
pub fn segment_start(seg: &SegmentName, segment_size: u64) -> u64 {
    (u64::from(seg.log) * segs_per_log(segment_size) + u64::from(seg.seg)) * segment_size
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::DEFAULT_SEGMENT_SIZE;

    #[test]
    fn segments_start_where_their_names_say() {
        let s = |n| SegmentName::parse(n).unwrap();
        assert_eq!(
            segment_start(&s("000000010000000000000001"), DEFAULT_SEGMENT_SIZE),
            0x100_0000
        );
        assert_eq!(
            segment_start(&s("0000000100000016000000B3"), DEFAULT_SEGMENT_SIZE),
            0x16_B300_0000
        );
        assert_eq!(
            segment_start(&s("000000020000000100000000"), DEFAULT_SEGMENT_SIZE),
            0x1_0000_0000
        );
    }

    #[test]
    fn argument_vectors() {
        let a = stream_args(Path::new("/spool/main"), "lifeboat_main", false);
        let text: Vec<String> = a.iter().map(|s| s.to_string_lossy().into()).collect();
        assert_eq!(
            text,
            [
                "--directory",
                "/spool/main",
                "--slot",
                "lifeboat_main",
                "--no-loop",
                "--no-password",
                "--status-interval",
                "1",
                "--verbose"
            ]
        );
        assert!(stream_args(Path::new("/s"), "x", true).contains(&OsString::from("--synchronous")));
        assert_eq!(
            create_slot_args("x")[..2],
            ["--create-slot", "--if-not-exists"]
        );
    }
}
