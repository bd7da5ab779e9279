//! The layout of a pg_dump custom-format archive (`-Fc`): where its table of
//! contents ends and where each data block lies, learnt while the archive
//! streams into the repository, and the two uses of it at a parallel restore:
//! writing the data offsets into a staged archive's table of contents (what
//! pg_dump itself does when its output is seekable, and which Lifeboat's
//! piped dumps lack), and reading a table's rows straight out of its block.
//!
//! Why by hand: no crate reads this format. Only what is needed is read: the
//! header, the TOC entries (with the version gates of PostgreSQL's
//! `ReadHead`/`ReadToc` for archive versions 1.12–1.16) and the framing of
//! uncompressed data blocks. An archive this does not understand (another
//! version, compression, an unknown block type) gets no layout, and a restore
//! of it takes the path that does not need one.
//!
//! The format, as pg_dump writes it to a pipe:
//! - header: `PGDMP`, version bytes, int size, offset size, format (1 =
//!   custom), compression, creation time, database name, server and pg_dump
//!   versions;
//! - TOC: a count, then per entry its dump id, strings (tag, desc, statements,
//!   namespace, owner, …), dependencies and an offset field: a flag byte (1 =
//!   position not set, 2 = set, 3 = no data) and `offSize` bytes;
//! - data: per entry with data, a block: type byte (1 = table data, 3 =
//!   large objects), dump id, then chunks (`int length`, bytes) ending with a
//!   zero length (for large objects: per object its oid, then chunks; oid 0
//!   ends the block).
//!
//! Integers are a sign byte and `intSize` bytes, least significant first.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// Offset flag: the entry has data, its position is not recorded.
const POS_NOT_SET: u8 = 1;
/// Offset flag: the entry's data block starts at the recorded position.
const POS_SET: u8 = 2;
/// Block types.
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// A table of contents larger than this is not buffered (the archive then has
/// no layout; restores work as without one).
const MAX_TOC_BYTES: usize = 64 << 20;

/// Where an archive's data blocks are, recorded at backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveLayout {
    /// Archive format version, e.g. `1.14`.
    pub version: String,
    pub int_size: u8,
    pub off_size: u8,
    /// Bytes of header and table of contents; the data blocks follow.
    pub toc_end: u64,
    /// Every data block, in archive order.
    pub blocks: Vec<DataBlock>,
}

/// One TOC entry's data block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBlock {
    pub dump_id: i64,
    /// TOC `desc`: `TABLE DATA`, `BLOBS`, `SEQUENCE SET`…
    pub desc: String,
    /// TOC namespace (schema) and tag (a table's name for TABLE DATA).
    pub schema: String,
    pub tag: String,
    /// The entry's `COPY … FROM stdin;` statement, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
    /// Position of the entry's offset field (its flag byte) in the TOC.
    pub offset_field: u64,
    /// The block: from its type byte to just after its end marker.
    pub start: u64,
    pub end: u64,
}

impl ArchiveLayout {
    /// The TABLE DATA block of `schema.tag`.
    pub fn table_data(&self, schema: &str, tag: &str) -> Option<&DataBlock> {
        self.blocks
            .iter()
            .find(|b| b.desc == "TABLE DATA" && b.schema == schema && b.tag == tag)
    }

    /// The bytes to write at `b.offset_field` so that pg_restore seeks
    /// straight to the block.
    fn offset_bytes(&self, b: &DataBlock) -> Vec<u8> {
        let mut v = vec![POS_SET];
        v.extend((0..self.off_size as u32).map(
            |i| {
                if i < 8 { (b.start >> (8 * i)) as u8 } else { 0 }
            },
        ));
        v
    }

    /// Writes every block's position into the TOC of `file`, a staged copy of
    /// the archive this layout was recorded from. Each field is checked to say
    /// "not set" before it is written (a wrong layout fails here rather than
    /// pointing pg_restore at the wrong bytes).
    pub fn write_offsets(&self, file: &std::fs::File) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        for b in &self.blocks {
            let want = self.offset_bytes(b);
            let mut have = vec![0u8; want.len()];
            file.read_exact_at(&mut have, b.offset_field)?;
            if have == want {
                continue;
            }
            if have[0] != POS_NOT_SET {
                return Err(std::io::Error::other(format!(
                    "the archive's layout does not match it: the offset field of dump id {} at byte {} holds flag {}",
                    b.dump_id, b.offset_field, have[0]
                )));
            }
            file.write_all_at(&want, b.offset_field)?;
        }
        Ok(())
    }
}

/// A TOC entry, as far as the layout needs it.
#[derive(Debug)]
struct TocEntry {
    dump_id: i64,
    desc: String,
    schema: String,
    tag: String,
    copy: Option<String>,
    offset_field: u64,
    has_data: bool,
}

/// Why a buffer could not be parsed.
#[derive(Debug, PartialEq)]
enum TocError {
    /// More bytes are needed.
    Short,
    /// Not an archive this module reads.
    Unsupported(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    int_size: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, TocError> {
        let b = *self.buf.get(self.pos).ok_or(TocError::Short)?;
        self.pos += 1;
        Ok(b)
    }
    fn take(&mut self, n: usize) -> Result<&[u8], TocError> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(TocError::Short)?;
        self.pos += n;
        Ok(s)
    }
    fn int(&mut self) -> Result<i64, TocError> {
        let sign = self.byte()?;
        let n = self.int_size;
        Ok(int_value(sign, self.take(n)?))
    }
    fn string(&mut self) -> Result<Option<String>, TocError> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let s = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }
}

/// An archive integer: a sign byte and little-endian magnitude bytes.
fn int_value(sign: u8, bytes: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (i, b) in bytes.iter().enumerate().take(8) {
        v |= (*b as i64) << (8 * i);
    }
    if sign != 0 { -v } else { v }
}

/// The parsed header and TOC of `buf`, and the TOC's end.
struct Toc {
    version: (u8, u8),
    int_size: u8,
    off_size: u8,
    entries: Vec<TocEntry>,
    end: usize,
}

fn parse_toc(buf: &[u8]) -> Result<Toc, TocError> {
    let mut c = Cursor {
        buf,
        pos: 0,
        int_size: 4,
    };
    if c.take(5)? != b"PGDMP" {
        return Err(TocError::Unsupported("not a pg_dump archive".into()));
    }
    let (vmaj, vmin, _vrev) = (c.byte()?, c.byte()?, c.byte()?);
    if vmaj != 1 || !(12..=16).contains(&vmin) {
        return Err(TocError::Unsupported(format!(
            "archive version {vmaj}.{vmin}"
        )));
    }
    let int_size = c.byte()?;
    let off_size = c.byte()?;
    if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
        return Err(TocError::Unsupported(format!(
            "integer size {int_size}, offset size {off_size}"
        )));
    }
    c.int_size = int_size as usize;
    if c.byte()? != 1 {
        return Err(TocError::Unsupported("not the custom format".into()));
    }
    let compressed = if vmin >= 15 {
        c.byte()? != 0
    } else {
        c.int()? != 0
    };
    if compressed {
        return Err(TocError::Unsupported("compressed archive".into()));
    }
    for _ in 0..7 {
        c.int()?; // creation time
    }
    c.string()?; // database
    c.string()?; // server version
    c.string()?; // pg_dump version
    let count = c.int()?;
    if count < 0 {
        return Err(TocError::Unsupported("negative TOC size".into()));
    }
    let mut entries = Vec::new();
    for _ in 0..count {
        let dump_id = c.int()?;
        let had_dumper = c.int()? != 0;
        c.string()?; // table oid
        c.string()?; // oid
        let tag = c.string()?.unwrap_or_default();
        let desc = c.string()?.unwrap_or_default();
        c.int()?; // section
        c.string()?; // defn
        c.string()?; // drop statement
        let copy = c.string()?;
        let schema = c.string()?.unwrap_or_default();
        c.string()?; // tablespace
        if vmin >= 14 {
            c.string()?; // table access method
        }
        if vmin >= 16 {
            c.int()?; // relkind
        }
        c.string()?; // owner
        c.string()?; // "with oids"
        while c.string()?.is_some() {} // dependencies
        let offset_field = c.pos as u64;
        let flag = c.byte()?;
        c.take(off_size as usize)?;
        entries.push(TocEntry {
            dump_id,
            desc,
            schema,
            tag,
            copy: copy.filter(|s| !s.is_empty()),
            offset_field,
            has_data: had_dumper && flag != 3,
        });
    }
    Ok(Toc {
        version: (vmaj, vmin),
        int_size,
        off_size,
        entries,
        end: c.pos,
    })
}

/// The dump ids of the TABLE DATA entries in the TOC that `archive` starts
/// with, by (schema, table). The names are read exactly, unlike pg_restore's
/// `--list` lines, which print them unquoted (there a space in a name cannot
/// be told from the one before the table's name). `None`: not an archive
/// this module reads, or a TOC larger than it buffers.
pub fn table_data_ids(
    mut archive: impl Read,
) -> std::io::Result<Option<std::collections::BTreeMap<(String, String), i64>>> {
    let mut buf = Vec::new();
    loop {
        match parse_toc(&buf) {
            Ok(toc) => {
                return Ok(Some(
                    toc.entries
                        .into_iter()
                        .filter(|e| e.desc == "TABLE DATA")
                        .map(|e| ((e.schema, e.tag), e.dump_id))
                        .collect(),
                ));
            }
            Err(TocError::Unsupported(_)) => return Ok(None),
            Err(TocError::Short) if buf.len() >= MAX_TOC_BYTES => return Ok(None),
            Err(TocError::Short) => {}
        }
        // Doubling what is read keeps the re-parsing linear overall.
        let want = buf.len().max(64 << 10) as u64;
        if archive.by_ref().take(want).read_to_end(&mut buf)? == 0 {
            return Ok(None);
        }
    }
}

/// Where the scanner is in the data section.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Buffering the header and TOC.
    Toc,
    /// Between blocks: next is a block type byte (or the end of the archive).
    BlockType,
    /// Reading a block's dump id.
    BlockId { blobs: bool },
    /// Reading a large object's oid (0 ends the block).
    BlobOid,
    /// Reading a chunk length (0 ends the block, or the object).
    ChunkLen { blobs: bool },
    /// Skipping a chunk's bytes.
    ChunkData { left: u64, blobs: bool },
    /// The archive is not one this module reads.
    Failed,
}

/// Learns an archive's [`ArchiveLayout`] from its bytes as they stream past,
/// in whatever pieces they come. Costs a few comparisons per chunk (pg_dump
/// writes one chunk per row): payload bytes are skipped, not looked at.
pub struct LayoutScanner {
    state: State,
    /// The header and TOC while [`State::Toc`]; afterwards a partial integer.
    pending: Vec<u8>,
    /// Stream position of the next byte.
    pos: u64,
    toc: Option<Toc>,
    blocks: Vec<DataBlock>,
    /// The block being read: its TOC entry index and start.
    current: Option<(usize, u64)>,
    failure: Option<String>,
}

impl Default for LayoutScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl LayoutScanner {
    pub fn new() -> Self {
        LayoutScanner {
            state: State::Toc,
            pending: Vec::new(),
            pos: 0,
            toc: None,
            blocks: Vec::new(),
            current: None,
            failure: None,
        }
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            tracing::debug!(why = %why, "no archive layout");
            self.failure = Some(why);
        }
        self.state = State::Failed;
        self.pending = Vec::new();
    }

    /// Takes the next bytes of the archive.
    pub fn observe(&mut self, mut data: &[u8]) {
        if let State::Toc = self.state {
            self.pending.extend_from_slice(data);
            match parse_toc(&self.pending) {
                Ok(toc) => {
                    let end = toc.end;
                    let rest = std::mem::take(&mut self.pending).split_off(end);
                    self.pos = end as u64;
                    self.toc = Some(toc);
                    self.state = State::BlockType;
                    self.observe(&rest);
                }
                Err(TocError::Short) if self.pending.len() <= MAX_TOC_BYTES => {}
                Err(TocError::Short) => self.fail("the table of contents is too large".into()),
                Err(TocError::Unsupported(why)) => self.fail(why),
            }
            return;
        }
        let int_len = match &self.toc {
            Some(t) => 1 + t.int_size as usize,
            None => return,
        };
        while !data.is_empty() {
            match self.state {
                State::Failed | State::Toc => return,
                State::ChunkData { left, blobs } => {
                    let n = (left.min(data.len() as u64)) as usize;
                    data = &data[n..];
                    self.pos += n as u64;
                    self.state = if left == n as u64 {
                        State::ChunkLen { blobs }
                    } else {
                        State::ChunkData {
                            left: left - n as u64,
                            blobs,
                        }
                    };
                }
                State::BlockType => {
                    let t = data[0];
                    let blobs = match t {
                        BLK_DATA => false,
                        BLK_BLOBS => true,
                        other => return self.fail(format!("data block type {other}")),
                    };
                    self.current = Some((usize::MAX, self.pos));
                    data = &data[1..];
                    self.pos += 1;
                    self.state = State::BlockId { blobs };
                }
                State::BlockId { .. } | State::BlobOid | State::ChunkLen { .. } => {
                    // An integer, perhaps split over pieces.
                    let need = int_len - self.pending.len();
                    let n = need.min(data.len());
                    self.pending.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.pos += n as u64;
                    if self.pending.len() < int_len {
                        return;
                    }
                    let v = int_value(self.pending[0], &self.pending[1..]);
                    self.pending.clear();
                    self.integer(v);
                }
            }
        }
    }

    /// Acts on an integer read in the current state.
    fn integer(&mut self, v: i64) {
        match self.state {
            State::BlockId { blobs } => {
                let toc = self.toc.as_ref().expect("past the TOC");
                let Some(i) = toc.entries.iter().position(|e| e.dump_id == v) else {
                    return self.fail(format!("a data block of unknown dump id {v}"));
                };
                if let Some(c) = self.current.as_mut() {
                    c.0 = i;
                }
                self.state = if blobs {
                    State::BlobOid
                } else {
                    State::ChunkLen { blobs }
                };
            }
            State::BlobOid if v == 0 => self.end_block(),
            State::BlobOid => self.state = State::ChunkLen { blobs: true },
            State::ChunkLen { blobs } if v == 0 => {
                if blobs {
                    self.state = State::BlobOid;
                } else {
                    self.end_block();
                }
            }
            State::ChunkLen { .. } if v < 0 => self.fail(format!("chunk length {v}")),
            State::ChunkLen { blobs } => {
                self.state = State::ChunkData {
                    left: v as u64,
                    blobs,
                }
            }
            _ => unreachable!("integer read in state {:?}", self.state),
        }
    }

    fn end_block(&mut self) {
        let toc = self.toc.as_ref().expect("past the TOC");
        let (i, start) = self.current.take().expect("inside a block");
        let e = &toc.entries[i];
        self.blocks.push(DataBlock {
            dump_id: e.dump_id,
            desc: e.desc.clone(),
            schema: e.schema.clone(),
            tag: e.tag.clone(),
            copy: e.copy.clone(),
            offset_field: e.offset_field,
            start,
            end: self.pos,
        });
        self.state = State::BlockType;
    }

    /// The layout, when the archive ended between blocks and every TOC entry
    /// with data had its block; `None` otherwise (the reason is logged).
    pub fn finish(mut self) -> Option<ArchiveLayout> {
        if !matches!(self.state, State::BlockType) || !self.pending.is_empty() {
            if self.failure.is_none() {
                self.fail(format!(
                    "the archive ended inside its {}",
                    if self.toc.is_none() {
                        "table of contents"
                    } else {
                        "data"
                    }
                ));
            }
            return None;
        }
        let toc = self.toc.take()?;
        let missing = toc
            .entries
            .iter()
            .filter(|e| e.has_data && !self.blocks.iter().any(|b| b.dump_id == e.dump_id))
            .count();
        if missing > 0 {
            self.fail(format!(
                "{missing} TOC entries with data have no data block"
            ));
            return None;
        }
        Some(ArchiveLayout {
            version: format!("{}.{}", toc.version.0, toc.version.1),
            int_size: toc.int_size,
            off_size: toc.off_size,
            toc_end: toc.end as u64,
            blocks: self.blocks,
        })
    }
}

/// What [`read_table_data`] reports.
pub enum DataEvent<'a> {
    /// Some of the block's COPY text (rows, or parts of rows).
    Rows(&'a [u8]),
    /// The block ended.
    End,
}

/// Reads one TABLE DATA block (`block`'s bytes, from its type byte) and hands
/// its COPY text (rows only, without the end-of-data line) to `f` as it comes. Stops early, without error, when `f`
/// returns false.
pub fn read_table_data(
    mut r: impl Read,
    layout: &ArchiveLayout,
    block: &DataBlock,
    mut f: impl FnMut(DataEvent<'_>) -> bool,
) -> Result<(), String> {
    let isz = layout.int_size as usize;
    let mut int = vec![0u8; 1 + isz];
    let mut read_int = |r: &mut dyn Read| -> Result<i64, String> {
        r.read_exact(&mut int).map_err(|e| e.to_string())?;
        Ok(int_value(int[0], &int[1..]))
    };
    let mut t = [0u8; 1];
    r.read_exact(&mut t).map_err(|e| e.to_string())?;
    let id = read_int(&mut r)?;
    if t[0] != BLK_DATA || id != block.dump_id {
        return Err(format!(
            "expected the data block of dump id {} and found type {} id {id}",
            block.dump_id, t[0]
        ));
    }
    let mut buf = Vec::with_capacity(256 << 10);
    let mut at_row_start = true;
    loop {
        let len = read_int(&mut r)?;
        if len == 0 {
            f(DataEvent::End);
            return Ok(());
        }
        if len < 0 {
            return Err(format!("chunk length {len} in dump id {}", block.dump_id));
        }
        buf.resize(len as usize, 0);
        r.read_exact(&mut buf)
            .map_err(|e| format!("reading the rows of {}.{}: {e}", block.schema, block.tag))?;
        // pg_dump ends a table's COPY text with the end-of-data line `\.`
        // (and two blank lines) as a chunk of its own; a row cannot be `\.`
        // (a backslash in data is doubled). Loaders end the COPY themselves.
        if at_row_start && buf.starts_with(b"\\.\n") && buf[3..].iter().all(|&c| c == b'\n') {
            continue;
        }
        at_row_start = buf.last() == Some(&b'\n');
        if !f(DataEvent::Rows(&buf)) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small archive in pg_dump's piped custom format, version 1.14.
    fn archive() -> (Vec<u8>, Vec<u64>) {
        fn int(v: &mut Vec<u8>, n: i64) {
            v.push(if n < 0 { 1 } else { 0 });
            v.extend((n.unsigned_abs() as u32).to_le_bytes());
        }
        fn s(v: &mut Vec<u8>, x: Option<&str>) {
            match x {
                None => int(v, -1),
                Some(x) => {
                    int(v, x.len() as i64);
                    v.extend(x.as_bytes());
                }
            }
        }
        let mut v = b"PGDMP".to_vec();
        v.extend([1, 14, 0, 4, 8, 1]);
        int(&mut v, 0); // compression
        for _ in 0..7 {
            int(&mut v, 1);
        }
        s(&mut v, Some("db"));
        s(&mut v, Some("15.1"));
        s(&mut v, Some("15.1"));
        int(&mut v, 3);
        let mut fields = Vec::new();
        for (id, tag, desc, copy, data) in [
            (1, "t", "TABLE", None, false),
            (
                2,
                "t",
                "TABLE DATA",
                Some("COPY public.t (a) FROM stdin;\n"),
                true,
            ),
            (3, "", "BLOBS", None, true),
        ] {
            int(&mut v, id);
            int(&mut v, data as i64);
            s(&mut v, Some("0"));
            s(&mut v, Some("0"));
            s(&mut v, Some(tag));
            s(&mut v, Some(desc));
            int(&mut v, 2);
            s(&mut v, Some(""));
            s(&mut v, None);
            s(&mut v, copy);
            s(&mut v, Some("public"));
            s(&mut v, None);
            s(&mut v, None);
            s(&mut v, Some("owner"));
            s(&mut v, Some("false"));
            s(&mut v, Some("7"));
            s(&mut v, None);
            fields.push(v.len() as u64);
            v.push(if data { POS_NOT_SET } else { 3 });
            v.extend([0u8; 8]);
        }
        let mut starts = vec![v.len() as u64];
        v.push(BLK_DATA);
        int(&mut v, 2);
        for row in ["1\n", "2\n", "3\n", "\\.\n\n\n"] {
            int(&mut v, row.len() as i64);
            v.extend(row.as_bytes());
        }
        int(&mut v, 0);
        starts.push(v.len() as u64);
        v.push(BLK_BLOBS);
        int(&mut v, 3);
        int(&mut v, 16400); // oid
        int(&mut v, 3);
        v.extend(b"abc");
        int(&mut v, 0);
        int(&mut v, 0); // end of objects
        starts.push(v.len() as u64);
        starts.extend(fields);
        (v, starts)
    }

    #[test]
    fn table_data_ids_read_the_toc_only() {
        let (a, marks) = archive();
        let ids = table_data_ids(&a[..marks[0] as usize])
            .unwrap()
            .expect("the TOC alone is enough");
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec![(("public".to_string(), "t".to_string()), 2)]
        );
        assert_eq!(table_data_ids(&a[..marks[0] as usize - 1]).unwrap(), None);
        assert_eq!(table_data_ids(&b"PGDMX not an archive"[..]).unwrap(), None);
    }

    #[test]
    fn scans_in_any_pieces() {
        let (a, marks) = archive();
        for piece in [1usize, 2, 3, 7, 64, a.len()] {
            let mut s = LayoutScanner::new();
            for c in a.chunks(piece) {
                s.observe(c);
            }
            let l = s
                .finish()
                .unwrap_or_else(|| panic!("a layout with pieces of {piece}"));
            assert_eq!(l.blocks.len(), 2);
            let t = l.table_data("public", "t").expect("t's data");
            assert_eq!((t.start, t.end), (marks[0], marks[1]));
            assert_eq!(t.copy.as_deref(), Some("COPY public.t (a) FROM stdin;\n"));
            assert_eq!(t.offset_field, marks[4]);
            assert_eq!((l.blocks[1].start, l.blocks[1].end), (marks[1], marks[2]));
            assert_eq!(l.blocks[1].desc, "BLOBS");
        }
    }

    #[test]
    fn an_archive_cut_short_or_damaged_has_no_layout() {
        let (a, marks) = archive();
        let mut s = LayoutScanner::new();
        s.observe(&a[..a.len() - 3]);
        assert!(s.finish().is_none(), "ended inside a block");
        let mut s = LayoutScanner::new();
        s.observe(&a[..marks[1] as usize]);
        assert!(s.finish().is_none(), "an entry's block is missing");
        let mut bad = a.clone();
        bad[marks[0] as usize] = 9;
        let mut s = LayoutScanner::new();
        s.observe(&bad);
        assert!(s.finish().is_none(), "unknown block type");
        let mut s = LayoutScanner::new();
        s.observe(b"not an archive at all");
        assert!(s.finish().is_none());
    }

    #[test]
    fn writes_offsets_and_reads_rows_back() {
        let (a, marks) = archive();
        let mut s = LayoutScanner::new();
        s.observe(&a);
        let l = s.finish().expect("layout");
        let mut f = tempfile::tempfile().expect("temp file");
        std::io::Write::write_all(&mut f, &a).expect("write");
        l.write_offsets(&f).expect("offsets");
        l.write_offsets(&f).expect("writing them again is a no-op");
        let mut patched = Vec::new();
        use std::io::{Read as _, Seek as _};
        f.rewind().expect("rewind");
        f.read_to_end(&mut patched).expect("read");
        let at = marks[4] as usize;
        assert_eq!(patched[at], POS_SET);
        assert_eq!(
            u64::from_le_bytes(patched[at + 1..at + 9].try_into().expect("8")),
            marks[0]
        );
        let t = l.table_data("public", "t").expect("t").clone();
        let mut rows = Vec::new();
        let mut ended = false;
        read_table_data(&a[t.start as usize..t.end as usize], &l, &t, |e| {
            match e {
                DataEvent::Rows(r) => rows.extend_from_slice(r),
                DataEvent::End => ended = true,
            }
            true
        })
        .expect("rows");
        assert_eq!((rows.as_slice(), ended), (&b"1\n2\n3\n"[..], true));
        // A field that is already set to something else is refused.
        let mut wrong = l.clone();
        wrong.blocks[0].offset_field = 0; // the archive's magic
        assert!(wrong.write_offsets(&f).is_err());
    }
}
