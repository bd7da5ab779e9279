//! Reading the tar stream `pg_basebackup -Ft -D -` writes, one entry at a
//! time, without buffering a file: [`TarStream::next_entry`] gives an entry's
//! header, then [`TarStream::read_content`] hands out exactly its bytes.
//!
//! pg_basebackup writes POSIX ustar (`src/port/tar.c`): 512-byte headers,
//! names of at most 99 bytes (with the ustar `prefix` field honoured when a
//! writer uses it), sizes in octal (or GNU base-256 for sizes over 8 GiB,
//! which PostgreSQL's 1 GiB segments never need, read anyway), content
//! padded to 512 bytes, two zero blocks at the end. Pax extended headers
//! (`x`, `g`) and GNU long names (`L`, `K`) are not written by it and are
//! refused, so a stream we do not understand fails the backup instead of
//! being stored wrongly.

use std::io::{self, Read};

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path inside the archive, without a trailing `/` (a directory's
    /// trailing slash is dropped).
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Content bytes (0 for directories and links).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// A symbolic link's target.
    pub link: Option<String>,
}

/// A header that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unreadable tar header: {0}")]
pub struct HeaderError(pub String);

fn field_str(b: &[u8]) -> Result<String, HeaderError> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8(b[..end].to_vec()).map_err(|_| HeaderError("a name is not UTF-8".into()))
}

/// An octal field (NUL/space terminated), or GNU base-256 (high bit set).
fn field_num(b: &[u8], what: &str) -> Result<u64, HeaderError> {
    if b.first().is_some_and(|c| c & 0x80 != 0) {
        let mut v: u64 = u64::from(b[0] & 0x7f);
        for &c in &b[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(c)))
                .ok_or_else(|| HeaderError(format!("{what} overflows")))?;
        }
        return Ok(v);
    }
    let s: String = b
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| HeaderError(format!("{what} {s:?} is not octal")))
}

/// Parses one 512-byte header. `Ok(None)`: a zero block (the end).
pub fn parse_header(h: &[u8; 512]) -> Result<Option<Entry>, HeaderError> {
    if h.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored = field_num(&h[148..156], "checksum")?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err(HeaderError(format!(
            "header checksum {stored} does not match {sum}"
        )));
    }
    let mut path = field_str(&h[0..100])?;
    if &h[257..262] == b"ustar" {
        let prefix = field_str(&h[345..500])?;
        if !prefix.is_empty() {
            path = format!("{prefix}/{path}");
        }
    }
    let kind = match h[156] {
        b'0' | 0 | b'7' => EntryKind::File,
        b'5' => EntryKind::Dir,
        b'2' => EntryKind::Symlink,
        t => {
            return Err(HeaderError(format!(
                "entry {path:?} has type {:?}, which a PostgreSQL base backup does not contain",
                t as char
            )));
        }
    };
    // `./pg_wal/…` (pg_basebackup writes the WAL it fetched so): `.`
    // components are dropped; the archive's root itself (`./`) is an empty
    // path, allowed for a directory only.
    if path.starts_with('/') {
        return Err(HeaderError(format!(
            "entry path {path:?} is not a plain relative path"
        )));
    }
    let path = path
        .trim_end_matches('/')
        .split('/')
        .filter(|c| *c != ".")
        .collect::<Vec<_>>()
        .join("/");
    if (path.is_empty() && h[156] != b'5')
        || path.split('/').any(|c| c == "..")
        || path.contains("//")
    {
        return Err(HeaderError(format!(
            "entry path {path:?} is not a plain relative path"
        )));
    }
    let size = if kind == EntryKind::File {
        field_num(&h[124..136], "size")?
    } else {
        0
    };
    Ok(Some(Entry {
        path,
        kind,
        mode: (field_num(&h[100..108], "mode")? & 0o7777) as u32,
        size,
        mtime: field_num(&h[136..148], "mtime")? as i64,
        link: (kind == EntryKind::Symlink)
            .then(|| field_str(&h[157..257]))
            .transpose()?,
    }))
}

/// A tar stream read entry by entry.
pub struct TarStream<R> {
    inner: R,
    /// Content bytes of the current entry not handed out yet.
    left: u64,
    /// Padding after the current entry's content.
    pad: u64,
    done: bool,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return if got == 0 {
                    Ok(false)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the tar stream ends inside a block",
                    ))
                };
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn skip<R: Read>(r: &mut R, mut n: u64) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    while n > 0 {
        let want = n.min(buf.len() as u64) as usize;
        if !read_full(r, &mut buf[..want])? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            ));
        }
        n -= want as u64;
    }
    Ok(())
}

impl<R: Read> TarStream<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            pad: 0,
            done: false,
        }
    }

    /// The next entry's header (the rest of the previous entry's content is
    /// skipped), or `None` after the end-of-archive block. A stream that
    /// ends without that block is an error: a truncated backup.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        skip(&mut self.inner, self.left + self.pad)?;
        self.left = 0;
        self.pad = 0;
        let mut h = [0u8; 512];
        if !read_full(&mut self.inner, &mut h)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends without its end-of-archive block (pg_basebackup stopped early?)",
            ));
        }
        match parse_header(&h).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
            None => {
                self.done = true;
                // Whatever follows (the second zero block, padding) is read
                // to the end so that the writer never sees a broken pipe.
                io::copy(&mut self.inner, &mut io::sink())?;
                Ok(None)
            }
            Some(e) => {
                self.left = e.size;
                self.pad = (512 - e.size % 512) % 512;
                Ok(Some(e))
            }
        }
    }

    /// Reads the current entry's content; 0 at its end.
    pub fn read_content(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }

    /// The underlying reader (to wait for the process behind it).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ustar header as PostgreSQL's `tarCreateHeader` writes it.
    pub(crate) fn header(path: &str, kind: u8, mode: u32, size: u64, link: &str) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(format!("{:011o}\0", 1_700_000_000u64).as_bytes());
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    pub(crate) fn archive(entries: &[(&str, u8, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, mode, data) in entries {
            let link = if *kind == b'2' {
                std::str::from_utf8(data).unwrap()
            } else {
                ""
            };
            let size = if *kind == b'0' { data.len() as u64 } else { 0 };
            out.extend_from_slice(&header(path, *kind, *mode, size, link));
            if *kind == b'0' {
                out.extend_from_slice(data);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn headers() {
        let h = header("base/1/1259", b'0', 0o600, 8192, "");
        let e = parse_header(&h).unwrap().unwrap();
        assert_eq!(
            e,
            Entry {
                path: "base/1/1259".into(),
                kind: EntryKind::File,
                mode: 0o600,
                size: 8192,
                mtime: 1_700_000_000,
                link: None
            }
        );
        let d = parse_header(&header("base/", b'5', 0o700, 0, ""))
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.path.as_str(), d.kind, d.size),
            ("base", EntryKind::Dir, 0)
        );
        let l = parse_header(&header("pg_tblspc/16385", b'2', 0o777, 0, "/srv/ts"))
            .unwrap()
            .unwrap();
        assert_eq!(l.link.as_deref(), Some("/srv/ts"));
        assert_eq!(parse_header(&[0u8; 512]).unwrap(), None);
    }

    #[test]
    fn refused_headers() {
        let mut bad_sum = header("a", b'0', 0o600, 1, "");
        bad_sum[0] = b'b';
        for (h, what) in [
            (bad_sum, "checksum"),
            (header("x", b'x', 0o600, 0, ""), "type"),
            (
                header("../etc/passwd", b'0', 0o600, 0, ""),
                "plain relative",
            ),
            (header("/etc/passwd", b'0', 0o600, 0, ""), "plain relative"),
            (header("a//b", b'0', 0o600, 0, ""), "plain relative"),
        ] {
            let e = parse_header(&h).unwrap_err();
            assert!(e.0.contains(what), "{what}: {e}");
        }
    }

    #[test]
    fn streams_entries_and_content() {
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let a = archive(&[
            ("global", b'5', 0o700, b""),
            ("global/pg_control", b'0', 0o600, &big),
            ("PG_VERSION", b'0', 0o600, b"15\n"),
            ("empty", b'0', 0o600, b""),
        ]);
        let mut t = TarStream::new(&a[..]);
        assert_eq!(t.next_entry().unwrap().unwrap().kind, EntryKind::Dir);
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!(e.size, 10_000);
        let mut got = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            let n = t.read_content(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, big);
        // PG_VERSION's content is skipped when not read.
        assert_eq!(t.next_entry().unwrap().unwrap().path, "PG_VERSION");
        assert_eq!(t.next_entry().unwrap().unwrap().size, 0);
        assert!(t.next_entry().unwrap().is_none());
        assert!(t.next_entry().unwrap().is_none());
    }

    #[test]
    fn truncated_streams_fail() {
        let a = archive(&[("PG_VERSION", b'0', 0o600, b"15\n")]);
        // Without the end blocks, and inside the content.
        for cut in [512 + 512, 600, 100] {
            let mut t = TarStream::new(&a[..cut]);
            let r = (|| -> io::Result<()> {
                while t.next_entry()?.is_some() {}
                Ok(())
            })();
            assert!(r.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn base256_sizes() {
        let mut b = [0u8; 12];
        b[0] = 0x80;
        b[11] = 1;
        b[10] = 2;
        assert_eq!(field_num(&b, "size").unwrap(), 513);
        assert_eq!(field_num(b"00000001750\0", "size").unwrap(), 1000);
    }
}
