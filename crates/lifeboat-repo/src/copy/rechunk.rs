//! Copying a snapshot into a target with its own blob ids (any repository
//! not made with `init --copy-params-from`): each item is restored from the
//! source (every blob authenticated and re-hashed, the stream checked
//! against its digest and size) and streamed through the target's chunker
//! in a backup session that indexes every pack as it lands. An interrupted
//! copy leaves those packs indexed; the next run re-reads the source but
//! the target's deduplication sends only the chunks it lacks.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::backup::BackupSession;
use crate::error::Result;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::restore::restore_item;
use crate::snapshot::SnapshotRef;

use super::transfer::Sent;

/// Buffers in flight between the restore and the backup side.
const PIPE_DEPTH: usize = 16;

/// Copies `snap` into `target`, re-chunked; returns the new snapshot's id.
pub(super) async fn copy_rechunked(
    source: &Repository,
    target: &Repository,
    snap: &SnapshotRef,
    progress: &Arc<Progress>,
) -> Result<(String, Sent)> {
    let bytes_before = Progress::get(&progress.bytes_new);
    let mut session = BackupSession::start_as(target, Arc::clone(progress), "copy").await?;
    session.index_every_pack();
    for item in &snap.snapshot.items {
        let (tx, rx) = sync_channel::<Vec<u8>>(PIPE_DEPTH);
        let read = restore_item(
            source,
            snap,
            Some(&item.name),
            PipeWriter(tx),
            Arc::new(Progress::default()),
        );
        let write = session.add_stream(
            &item.name,
            PipeReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            },
        );
        let (read, written) = tokio::join!(read, write);
        // The restore's error first: a failed read ends the stream early,
        // which the backup side would take for its end.
        if let Err(e) = read.and(written.map(|_| ())) {
            session.abort().await;
            return Err(e);
        }
    }
    let (packs, blobs, stored) = session.packs_stored();
    let sent = Sent {
        blobs,
        bytes: Progress::get(&progress.bytes_new) - bytes_before,
        packs,
        stored,
    };
    let snap = session.commit_copy(&snap.snapshot).await?;
    Ok((snap.id, sent))
}

/// The restore side of the pipe: each write is one buffer sent on.
struct PipeWriter(SyncSender<Vec<u8>>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "copy stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The backup side: reads the buffers in order; the end of the stream is
/// the restore side dropping its writer.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
