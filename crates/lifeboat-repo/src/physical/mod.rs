//! Physical snapshots (`kind: "physical"`): a PostgreSQL data directory as
//! two items (docs/format.md, "Physical snapshots"):
//!
//! - [`DATA_ITEM`]: the contents of every regular file, in the file list's
//!   order, each **padded with zeros to a multiple of the block size**,
//!   cut by a fixed-size chunker ([`block_chunker`]: min = avg = max =
//!   block size). So every block of every file is one blob at a fixed
//!   offset of its file: a changed 8 KiB page costs one block, not a
//!   content-defined chunk whose boundaries moved, and the blobs go into
//!   the ordinary packs and index (dedup, compression, encryption, check,
//!   prune and copy unchanged). The padding is zeros, which zstd stores in
//!   a few bytes.
//! - [`FILES_ITEM`]: the [`FileList`] (JSON): every entry's path, kind,
//!   mode, size (unpadded) and link target, and the block size.
//!
//! A restore streams [`DATA_ITEM`] through [`DirWriter`], which cuts it
//! back into files by the list's sizes (and checks that every padding
//! byte is zero). A copy into a repository of other chunker parameters
//! re-chunks the stream: still restorable (the list works by sizes, not
//! by blob), only the block alignment is lost in the copy.

mod writer;

use serde::{Deserialize, Serialize};

use crate::error::{BadInput, RepoError, Result};
use crate::repo::ChunkerParams;

pub use writer::DirWriter;

/// The snapshot kind.
pub const KIND: &str = "physical";
/// The item holding the files' contents (padded to blocks).
pub const DATA_ITEM: &str = "pgdata";
/// The item holding the [`FileList`].
pub const FILES_ITEM: &str = "pgdata.files";
/// The default block size: 256 KiB (docs/physical.md, "Blocks": the
/// smallest size whose in-memory index for 1 TiB stays under 1 GiB).
pub const DEFAULT_BLOCK: u32 = 256 * 1024;

/// A fixed-size chunker of `block` bytes (a multiple of 8 KiB, 8 KiB to
/// 4 MiB: the repository's chunker limits).
pub fn block_chunker(block: u32) -> Result<ChunkerParams> {
    if block < 8192 || !block.is_multiple_of(8192) || block > 4 * 1024 * 1024 {
        return Err(RepoError::invalid(
            BadInput::Parameter,
            format!("block size {block} is not a multiple of 8 KiB between 8 KiB and 4 MiB"),
        ));
    }
    let p = ChunkerParams {
        min_size: block,
        avg_size: block,
        max_size: block,
    };
    p.validate()?;
    Ok(p)
}

/// Bytes a file of `size` occupies in [`DATA_ITEM`].
pub fn padded(size: u64, block: u32) -> u64 {
    size.div_ceil(u64::from(block)) * u64::from(block)
}

/// What an entry of the data directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One entry of the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path (no `..`, no leading `/`).
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Content bytes of a file (0 otherwise).
    #[serde(default)]
    pub size: u64,
    /// A symbolic link's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The [`FILES_ITEM`] document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileList {
    pub version: u64,
    /// Block size [`DATA_ITEM`] was padded to.
    pub block_size: u32,
    pub entries: Vec<FileEntry>,
}

impl FileList {
    pub fn new(block_size: u32) -> Self {
        Self {
            version: 1,
            block_size,
            entries: Vec::new(),
        }
    }

    /// Parses and checks a stored list: known version, a valid block size,
    /// plain relative paths.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct V {
            version: u64,
        }
        let v: V = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(what, format!("file list: {e}")))?;
        if v.version > 1 {
            return Err(RepoError::NewerFormat {
                what: format!("{what} (file list)"),
                found: v.version,
                supported: 1,
            });
        }
        let list: FileList = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(what, format!("file list: {e}")))?;
        block_chunker(list.block_size).map_err(|e| RepoError::corrupt(what, e.to_string()))?;
        if let Some(bad) = list.entries.iter().find(|e| !plain_path(&e.path)) {
            return Err(RepoError::corrupt(
                what,
                format!("file list names {:?}, not a plain relative path", bad.path),
            ));
        }
        Ok(list)
    }

    /// Content bytes of all files (unpadded).
    pub fn file_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Bytes of [`DATA_ITEM`] (padded).
    pub fn stream_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| padded(e.size, self.block_size))
            .sum()
    }
}

/// A relative path without empty, `.` or `..` components.
pub fn plain_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes() {
        for ok in [8192u32, 32768, 65536, 131072, 262144, 4 << 20] {
            let p = block_chunker(ok).unwrap();
            assert_eq!((p.min_size, p.max_size), (ok, ok));
        }
        for bad in [0u32, 4096, 8193, 12288 + 1, 8 << 20] {
            assert!(block_chunker(bad).is_err(), "{bad}");
        }
        assert_eq!(padded(0, 8192), 0);
        assert_eq!(padded(1, 8192), 8192);
        assert_eq!(padded(8192, 8192), 8192);
        assert_eq!(padded(8193, 8192), 16384);
    }

    #[test]
    fn lists_round_trip_and_refuse_bad_paths() {
        let mut l = FileList::new(65536);
        l.entries.push(FileEntry {
            path: "base/1/1259".into(),
            kind: EntryKind::File,
            mode: 0o600,
            size: 70_000,
            link: None,
        });
        l.entries.push(FileEntry {
            path: "base".into(),
            kind: EntryKind::Dir,
            mode: 0o700,
            size: 0,
            link: None,
        });
        let bytes = serde_json::to_vec(&l).unwrap();
        assert_eq!(FileList::parse(&bytes, "x").unwrap(), l);
        assert_eq!(l.stream_bytes(), 131072);
        assert_eq!(l.file_bytes(), 70_000);
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let mut m = l.clone();
            m.entries[0].path = bad.into();
            let e = FileList::parse(&serde_json::to_vec(&m).unwrap(), "x").unwrap_err();
            assert!(e.to_string().contains("plain relative"), "{bad}: {e}");
        }
        let newer = br#"{"version": 2, "block_size": 8192, "entries": []}"#;
        assert!(
            FileList::parse(newer, "x")
                .unwrap_err()
                .to_string()
                .contains("upgrade")
        );
        let bad_block = br#"{"version": 1, "block_size": 1000, "entries": []}"#;
        assert!(FileList::parse(bad_block, "x").is_err());
    }
}
