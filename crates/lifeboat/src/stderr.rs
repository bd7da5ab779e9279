//! Lifeboat's stderr for logs, safe when nobody reads it any more.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader is gone (`lifeboat
//! serve 2>&1 | head -1`) fails with EPIPE; `eprintln!` then panics, and so
//! does tracing-subscriber when it reports its own write errors with
//! `eprintln!`. A daemon must not die, or skip releasing its lease, because
//! its log reader went away. [`Stderr`] swallows EPIPE and, the first time it
//! meets one, points file descriptor 2 at `/dev/null`, so every later write
//! to stderr (`eprintln!` included) succeeds into nothing instead of
//! panicking. Written by hand: it is a dozen lines over `libc::dup2`.

use std::io::{self, Write};

/// A `Write` to the process's stderr that treats a broken pipe as success
/// (see the module docs). Use as tracing's writer: `.with_writer(|| Stderr)`.
pub struct Stderr;

/// Points fd 2 at `/dev/null` (once the reader is gone nothing can be said).
fn silence() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 2 of two valid descriptors; `null` is closed
        // after, fd 2 keeps its own reference to /dev/null.
        unsafe {
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}

fn broken(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match io::stderr().write(buf) {
            Err(e) if broken(&e) => {
                silence();
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match io::stderr().lock().write_all(buf) {
            Err(e) if broken(&e) => {
                silence();
                Ok(())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match io::stderr().flush() {
            Err(e) if broken(&e) => Ok(()),
            r => r,
        }
    }
}
