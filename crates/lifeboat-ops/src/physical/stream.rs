//! `pg_basebackup`'s tar stream as the physical snapshot's data stream:
//! each regular file's content followed by zeros up to a multiple of the
//! block size (`lifeboat_repo::physical`), nothing else; every entry
//! (files, directories, links) recorded in the [`FileList`] as it passes,
//! and `backup_label` and `backup_manifest` kept aside for the facts.
//! Nothing is staged on disk: the reader pulls from the pipe as the
//! repository's chunker pulls from it.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use lifeboat_postgres::basebackup::run::PgBaseBackup;
use lifeboat_postgres::basebackup::tar::{EntryKind as TarKind, TarStream};
use lifeboat_repo::physical::{EntryKind, FileEntry, FileList, padded};

/// What the stream learned, read after it ended.
#[derive(Debug, Default)]
pub struct Collected {
    pub list: Option<FileList>,
    pub backup_label: Option<Vec<u8>>,
    pub backup_manifest: Option<Vec<u8>>,
    /// pg_basebackup's failure (its stderr), when it failed.
    pub failure: Option<String>,
}

/// Files kept aside whole (their content also goes into the stream).
const KEPT: [&str; 2] = ["backup_label", "backup_manifest"];
/// Largest kept file (a manifest lists every file: ~150 bytes each).
const KEPT_LIMIT: u64 = 256 << 20;

/// The data stream over a running `pg_basebackup`'s tar output.
pub struct PaddedTar<R: Read = PgBaseBackup> {
    tar: Option<TarStream<R>>,
    list: FileList,
    block: u32,
    /// Zero bytes still to emit after the current file.
    pad: u64,
    in_file: bool,
    kept: Option<(String, Vec<u8>)>,
    out: Arc<Mutex<Collected>>,
    /// Called at the end of the tar stream: waits for the process.
    finish: Box<dyn FnMut(R) -> Result<(), String> + Send>,
}

impl<R: Read> PaddedTar<R> {
    pub fn new(
        inner: R,
        block: u32,
        out: Arc<Mutex<Collected>>,
        finish: Box<dyn FnMut(R) -> Result<(), String> + Send>,
    ) -> Self {
        Self {
            tar: Some(TarStream::new(inner)),
            list: FileList::new(block),
            block,
            pad: 0,
            in_file: false,
            kept: None,
            out,
            finish,
        }
    }

    fn end(&mut self) -> io::Result<()> {
        let tar = self.tar.take().expect("present until the end");
        let result = (self.finish)(tar.into_inner());
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                out.list = Some(std::mem::replace(&mut self.list, FileList::new(self.block)));
                Ok(())
            }
            Err(msg) => {
                out.failure = Some(msg.clone());
                Err(io::Error::other(msg))
            }
        }
    }

    fn keep_done(&mut self) {
        if let Some((name, bytes)) = self.kept.take() {
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            match name.as_str() {
                "backup_label" => out.backup_label = Some(bytes),
                _ => out.backup_manifest = Some(bytes),
            }
        }
    }
}

impl<R: Read> Read for PaddedTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.tar.is_none() {
                return Ok(0);
            }
            if self.in_file {
                let Some(tar) = self.tar.as_mut() else {
                    return Ok(0);
                };
                let n = tar.read_content(buf)?;
                if n > 0 {
                    if let Some((_, k)) = self.kept.as_mut() {
                        k.extend_from_slice(&buf[..n]);
                    }
                    return Ok(n);
                }
                self.in_file = false;
                self.keep_done();
            }
            if self.pad > 0 {
                let n = (self.pad.min(buf.len() as u64)) as usize;
                buf[..n].fill(0);
                self.pad -= n as u64;
                return Ok(n);
            }
            let Some(tar) = self.tar.as_mut() else {
                return Ok(0);
            };
            let Some(e) = tar.next_entry()? else {
                self.end()?;
                return Ok(0);
            };
            if e.path.is_empty() {
                // The archive's root directory (`./`): DIR itself.
                continue;
            }
            let kind = match e.kind {
                TarKind::File => EntryKind::File,
                TarKind::Dir => EntryKind::Dir,
                TarKind::Symlink => EntryKind::Symlink,
            };
            if kind == EntryKind::File {
                self.in_file = true;
                self.pad = padded(e.size, self.block) - e.size;
                if KEPT.contains(&e.path.as_str()) && e.size <= KEPT_LIMIT {
                    self.kept = Some((e.path.clone(), Vec::with_capacity(e.size as usize)));
                }
            }
            self.list.entries.push(FileEntry {
                path: e.path,
                kind,
                mode: e.mode,
                size: e.size,
                link: e.link,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar archive as pg_basebackup writes one (see the tar module's tests).
    fn archive(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, data) in entries {
            let mut h = [0u8; 512];
            h[..path.len()].copy_from_slice(path.as_bytes());
            let mode = if *kind == b'5' { 0o700 } else { 0o600 };
            h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
            let size = if *kind == b'0' { data.len() } else { 0 };
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = *kind;
            h[257..263].copy_from_slice(b"ustar\0");
            h[148..156].copy_from_slice(b"        ");
            let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&h);
            if *kind == b'0' {
                out.extend_from_slice(data);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn pads_files_to_blocks_and_lists_entries() {
        let rel: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8 + 1).collect();
        let a = archive(&[
            ("base", b'5', b""),
            ("base/1259", b'0', &rel),
            (
                "backup_label",
                b'0',
                b"START WAL LOCATION: 0/2000028 (file x)\n",
            ),
            ("empty", b'0', b""),
            ("backup_manifest", b'0', b"{}"),
        ]);
        let out = Arc::new(Mutex::new(Collected::default()));
        let mut r = PaddedTar::new(&a[..], 8192, out.clone(), Box::new(|_| Ok(())));
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        let c = out.lock().unwrap();
        let list = c.list.as_ref().unwrap();
        assert_eq!(list.entries.len(), 5);
        assert_eq!(got.len() as u64, list.stream_bytes());
        assert_eq!(got.len(), 24576 + 8192 + 8192);
        assert_eq!(&got[..20_000], &rel[..]);
        assert!(got[20_000..24576].iter().all(|&b| b == 0));
        assert!(got[24576..].starts_with(b"START WAL"));
        assert_eq!(c.backup_manifest.as_deref(), Some(&b"{}"[..]));
        assert!(c.backup_label.as_ref().unwrap().starts_with(b"START WAL"));
    }

    #[test]
    fn a_failed_pg_basebackup_fails_the_stream() {
        let a = archive(&[("PG_VERSION", b'0', b"15\n")]);
        let out = Arc::new(Mutex::new(Collected::default()));
        let mut r = PaddedTar::new(
            &a[..],
            8192,
            out.clone(),
            Box::new(|_| Err("pg_basebackup failed: checksum verification failure".into())),
        );
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert!(e.to_string().contains("checksum"));
        assert!(out.lock().unwrap().list.is_none());
        // A stream cut short (no end-of-archive blocks) fails too.
        let out = Arc::new(Mutex::new(Collected::default()));
        let mut r = PaddedTar::new(&a[..600], 8192, out, Box::new(|_| Ok(())));
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
