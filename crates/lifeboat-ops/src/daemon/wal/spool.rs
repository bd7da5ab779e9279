//! The spool directory `pg_receivewal` writes into: which files are ready
//! to store (complete segments and history files, which it renames into
//! place only once complete and fsynced), which one is still being
//! received (`<segment>.partial`), and the rest (`*.tmp`, anything else),
//! left alone. [`plan`] is pure; the IO helpers read and remove files.

use std::path::Path;

use lifeboat_postgres::wal::{SegmentName, WalName};

/// What the streamer does with the spool's files now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Complete files to store and then remove: history files first (a
    /// reader needs a timeline's history before its segments), then
    /// segments in WAL order.
    pub complete: Vec<String>,
    /// Segments still being received (file `<segment>.partial`), in WAL
    /// order: the last is the current one; earlier ones are an old
    /// timeline's end, left when the server switched timelines.
    pub partial: Vec<SegmentName>,
}

/// Sorts the spool's file names into a [`Plan`].
pub fn plan(names: &[String]) -> Plan {
    let mut histories = Vec::new();
    let mut segments = Vec::new();
    let mut partial = Vec::new();
    for n in names {
        match WalName::parse(n) {
            Ok(WalName::History { timeline }) => histories.push((timeline, n.clone())),
            Ok(WalName::Segment(s)) => segments.push((s, n.clone())),
            Ok(WalName::Partial(s)) => partial.push(s),
            _ => {}
        }
    }
    histories.sort();
    segments.sort();
    partial.sort();
    Plan {
        complete: histories
            .into_iter()
            .map(|(_, n)| n)
            .chain(segments.into_iter().map(|(_, n)| n))
            .collect(),
        partial,
    }
}

/// The file names in `dir`.
pub fn names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    Ok(out)
}

/// Removes a stored file and makes the removal durable.
pub fn remove(dir: &Path, name: &str) -> std::io::Result<()> {
    std::fs::remove_file(dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Creates the spool directory (mode 0700: it holds the database's WAL).
pub fn create(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_into_the_plan() {
        let names: Vec<String> = [
            "000000020000000000000007.partial",
            "000000010000000000000006.partial",
            "000000010000000000000005",
            "000000010000000000000004",
            "00000002.history",
            "00000002.history.tmp",
            "000000010000000000000008.tmp",
            "lost+found",
            "000000010000000000000003.00000028.backup",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = plan(&names);
        assert_eq!(
            p.complete,
            [
                "00000002.history",
                "000000010000000000000004",
                "000000010000000000000005"
            ]
        );
        let partial: Vec<String> = p.partial.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            partial,
            ["000000010000000000000006", "000000020000000000000007"]
        );
        assert_eq!(plan(&[]), Plan::default());
    }
}
