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

/// A `<segment>.partial` that `pg_receivewal` was killed while creating.
/// It pads a new `.partial` with zeros to the full segment size before it
/// writes any WAL into it, so a file of another size (a kill, `kill -9` of
/// the daemon, a full disk, mid-padding) holds only zeros; but
/// `pg_receivewal` refuses to start on it ("has N bytes, should be 0 or
/// 16777216"), every time, and streaming would stall for good. Such a
/// file whose bytes are all zeros is emptied (0 bytes, which it accepts and
/// pads again); one holding anything else is left and named, for a person.
/// Returns the names emptied; errors name the file.
pub fn repair_short_partials(dir: &Path, segment_size: u64) -> Result<Vec<String>, String> {
    let mut emptied = Vec::new();
    for name in names(dir).map_err(|e| format!("listing {}: {e}", dir.display()))? {
        if !name.ends_with(".partial") {
            continue;
        }
        let path = dir.join(&name);
        let len = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        if len == 0 || len == segment_size {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.iter().any(|b| *b != 0) {
            return Err(format!(
                "{} has {len} bytes (pg_receivewal wants 0 or {segment_size}) and holds data, \
                 so Lifeboat leaves it and pg_receivewal will not start: move it out of the \
                 spool and keep it (its WAL may be in no other copy), then see `lifeboat wal \
                 list` for what the archive holds",
                path.display()
            ));
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.set_len(0)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("emptying {}: {e}", path.display()))?;
        emptied.push(name);
    }
    Ok(emptied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_cut_short_while_padded_is_emptied_and_one_with_data_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 16 << 20;
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("000000010000000000000004.partial", &vec![0u8; 7_880_704]);
        write("000000010000000000000003", &[1u8; 10]);
        write("000000010000000000000002.partial", &[]);
        assert_eq!(
            repair_short_partials(dir.path(), seg).unwrap(),
            ["000000010000000000000004.partial"]
        );
        let len = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert_eq!(len("000000010000000000000004.partial"), 0);
        assert_eq!(
            len("000000010000000000000003"),
            10,
            "not a .partial: untouched"
        );
        // Nothing more to do.
        assert!(repair_short_partials(dir.path(), seg).unwrap().is_empty());
        // A short one holding WAL bytes: named, left as it is.
        write("000000010000000000000005.partial", &[0, 7, 0]);
        let e = repair_short_partials(dir.path(), seg).unwrap_err();
        assert!(
            e.contains("000000010000000000000005.partial") && e.contains("holds data"),
            "{e}"
        );
        assert_eq!(len("000000010000000000000005.partial"), 3);
    }

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
