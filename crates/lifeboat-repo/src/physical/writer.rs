//! Cutting a restored [`DATA_ITEM`](super::DATA_ITEM) stream back into the
//! files of its [`FileList`]: directories and links are made first (in
//! list order, parents before children as tar gives them), then each
//! regular file is created (`create_new`: nothing existing is ever
//! overwritten) with its mode and filled with its `size` bytes; the
//! padding after it must be zeros (anything else is an integrity failure:
//! the stream is not the one the list describes). Files are fsynced when
//! complete, directories at [`DirWriter::finish`].

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{EntryKind, FileList, padded};

struct State {
    root: PathBuf,
    block: u32,
    /// Regular files, in stream order: (path, mode, size).
    files: Vec<(String, u32, u64)>,
    next: usize,
    current: Option<File>,
    /// Content bytes of the current file still to write.
    left: u64,
    /// Padding bytes after it still to skip.
    pad: u64,
    written: u64,
}

/// A [`Write`] that lays the stream out as files under a root; cloneable
/// handle (the restore takes one by value, the caller keeps another to
/// call [`DirWriter::finish`]).
#[derive(Clone)]
pub struct DirWriter(Arc<Mutex<State>>);

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl DirWriter {
    /// Makes `list`'s directories and symbolic links under `root` (which
    /// must exist) and returns the writer for its files' contents.
    pub fn create(root: &Path, list: &FileList) -> io::Result<Self> {
        for e in &list.entries {
            let path = root.join(&e.path);
            match e.kind {
                EntryKind::Dir => DirBuilder::new().mode(e.mode & 0o7777).create(&path)?,
                EntryKind::Symlink => {
                    let target = e
                        .link
                        .as_deref()
                        .ok_or_else(|| bad(format!("link {} has no target", e.path)))?;
                    std::os::unix::fs::symlink(target, &path)?
                }
                EntryKind::File => {}
            }
        }
        let files = list
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| (e.path.clone(), e.mode & 0o7777, e.size))
            .collect();
        Ok(Self(Arc::new(Mutex::new(State {
            root: root.to_path_buf(),
            block: list.block_size,
            files,
            next: 0,
            current: None,
            left: 0,
            pad: 0,
            written: 0,
        }))))
    }

    /// After the stream: every file must be complete (files of 0 bytes at
    /// the end are created here); directories are fsynced. Returns the
    /// content bytes written.
    pub fn finish(&self) -> io::Result<u64> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.close_current()?;
        while s.left == 0 && s.pad == 0 && s.next < s.files.len() {
            s.open_next()?;
            s.close_current()?;
        }
        if s.left != 0 || s.pad != 0 || s.next < s.files.len() {
            return Err(bad(format!(
                "the data stream ended before the file list did ({} of {} files complete)",
                s.next.saturating_sub(1),
                s.files.len()
            )));
        }
        let mut dirs: Vec<PathBuf> = s
            .files
            .iter()
            .filter_map(|(p, _, _)| s.root.join(p).parent().map(Path::to_path_buf))
            .collect();
        dirs.push(s.root.clone());
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            File::open(&d)?.sync_all()?;
        }
        Ok(s.written)
    }
}

impl State {
    fn close_current(&mut self) -> io::Result<()> {
        if let Some(f) = self.current.take() {
            f.sync_all()?;
        }
        Ok(())
    }

    fn open_next(&mut self) -> io::Result<()> {
        let (path, mode, size) = self.files[self.next].clone();
        self.next += 1;
        let full = self.root.join(&path);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&full)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", full.display())))?;
        // The mode given to open is reduced by the umask: set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        self.current = Some(f);
        self.left = size;
        self.pad = padded(size, self.block) - size;
        Ok(())
    }
}

impl Write for DirWriter {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while !buf.is_empty() {
            if s.left > 0 {
                let n = (s.left.min(buf.len() as u64)) as usize;
                s.current
                    .as_mut()
                    .expect("a file is open while it has bytes left")
                    .write_all(&buf[..n])?;
                s.left -= n as u64;
                s.written += n as u64;
                buf = &buf[n..];
            } else if s.pad > 0 {
                let n = (s.pad.min(buf.len() as u64)) as usize;
                if buf[..n].iter().any(|&b| b != 0) {
                    let name = s.files[s.next - 1].0.clone();
                    return Err(bad(format!(
                        "the padding after {name} is not zeros: the data stream does not match its file list"
                    )));
                }
                s.pad -= n as u64;
                buf = &buf[n..];
            } else {
                s.close_current()?;
                if s.next >= s.files.len() {
                    return Err(bad(
                        "the data stream is longer than its file list says".into()
                    ));
                }
                s.open_next()?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FileEntry, FileList};
    use super::*;

    fn list(block: u32, files: &[(&str, EntryKind, u32, u64)]) -> FileList {
        let mut l = FileList::new(block);
        for (p, k, m, s) in files {
            l.entries.push(FileEntry {
                path: p.to_string(),
                kind: *k,
                mode: *m,
                size: *s,
                link: (*k == EntryKind::Symlink).then(|| "/target".to_string()),
            });
        }
        l
    }

    fn stream(block: u32, contents: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in contents {
            out.extend_from_slice(c);
            out.resize(
                out.len() + (padded(c.len() as u64, block) as usize - c.len()),
                0,
            );
        }
        out
    }

    #[test]
    fn lays_out_files_in_any_write_sizes() {
        let a: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8 + 1).collect();
        let b = b"15\n".to_vec();
        let l = list(
            8192,
            &[
                ("base", EntryKind::Dir, 0o700, 0),
                ("base/a", EntryKind::File, 0o600, a.len() as u64),
                ("empty", EntryKind::File, 0o640, 0),
                ("PG_VERSION", EntryKind::File, 0o600, 3),
                ("link", EntryKind::Symlink, 0o777, 0),
                ("empty2", EntryKind::File, 0o600, 0),
            ],
        );
        let data = stream(8192, &[&a, b"", &b, b""]);
        assert_eq!(data.len() as u64, l.stream_bytes());
        for piece in [1usize, 7, 8192, 100_000] {
            let dir = tempfile::tempdir().unwrap();
            let w = DirWriter::create(dir.path(), &l).unwrap();
            let mut w2 = w.clone();
            for c in data.chunks(piece) {
                w2.write_all(c).unwrap();
            }
            assert_eq!(w.finish().unwrap(), a.len() as u64 + 3);
            assert_eq!(std::fs::read(dir.path().join("base/a")).unwrap(), a);
            assert_eq!(std::fs::read(dir.path().join("PG_VERSION")).unwrap(), b);
            assert_eq!(std::fs::read(dir.path().join("empty2")).unwrap(), b"");
            let mode = |p: &str| {
                std::fs::metadata(dir.path().join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777
            };
            assert_eq!(
                (mode("base"), mode("base/a"), mode("empty")),
                (0o700, 0o600, 0o640)
            );
            assert_eq!(
                std::fs::read_link(dir.path().join("link")).unwrap(),
                Path::new("/target")
            );
        }
    }

    #[test]
    fn refuses_streams_that_do_not_match() {
        let l = list(8192, &[("a", EntryKind::File, 0o600, 10)]);
        // Non-zero padding.
        let mut data = stream(8192, &[b"0123456789"]);
        data[100] = 1;
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWriter::create(dir.path(), &l).unwrap();
        assert!(
            w.write_all(&data)
                .unwrap_err()
                .to_string()
                .contains("not zeros")
        );
        // Too long.
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWriter::create(dir.path(), &l).unwrap();
        let mut data = stream(8192, &[b"0123456789"]);
        data.push(0);
        assert!(
            w.write_all(&data)
                .unwrap_err()
                .to_string()
                .contains("longer")
        );
        // Too short.
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWriter::create(dir.path(), &l).unwrap();
        w.write_all(b"01234").unwrap();
        assert!(w.finish().unwrap_err().to_string().contains("ended before"));
        // An existing file is never overwritten.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"keep").unwrap();
        let mut w = DirWriter::create(dir.path(), &l).unwrap();
        assert!(w.write_all(&stream(8192, &[b"0123456789"])).is_err());
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"keep");
    }
}
