//! Loopback ports for tests that start a server on a port chosen beforehand
//! (etcd, named, moto, Patroni, a `lifeboat serve`), or that need a port
//! nobody listens on.
//!
//! The usual trick, bind port 0 and drop the listener, races: until the
//! server binds, the kernel may hand the same port to anyone else. Two things
//! did take it in CI, which runs two test binaries at once
//! (`scripts/test.sh`'s lanes): the other binary's own "free" port, and the
//! source port of any outgoing connection, which comes from the same
//! ephemeral range. [`reserve`] closes both doors:
//!
//! - it picks ports **below the kernel's ephemeral range**
//!   (`net.ipv4.ip_local_port_range`), which the kernel never hands out for
//!   port 0 nor for an outgoing connection;
//! - it **locks one file per port** (`flock` through [`File::try_lock`]) in
//!   a directory every test process of this user shares, and keeps the lock
//!   until the process exits, so no other test process, and no other call in
//!   this one, gets that port while this process lives. A crashed process's
//!   locks go with it.
//!
//! A port is handed out only if binding it on 127.0.0.1 works right now for
//! both TCP and UDP (named serves both on one port).

use std::fs::{File, OpenOptions};
use std::net::{TcpListener, UdpSocket};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: well above the well-known and registered
/// ports services on a developer's machine tend to listen on.
const LOWEST: u16 = 16384;

/// Fewest ports worth handing out from; a smaller window means a machine
/// whose ephemeral range was moved, and the caller is told so.
const FEWEST: u16 = 2048;

/// The locks of every port this process reserved; held until it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A loopback port that is free for TCP and UDP now, and that no other
/// caller of `reserve` on this machine (same user) gets while this process
/// lives. Panics, naming the cause, when no port can be had.
pub fn reserve() -> u16 {
    let range = window(
        &std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("lifeboat-test-ports: {e}"));
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("lifeboat-test-ports: creating {}: {e}", dir.display()));
    let len = u32::from(range.end - range.start);
    let start = first_offset() % len;
    for i in 0..len {
        let port = range.start + ((start + i) % len) as u16;
        if let Some(lock) = try_reserve(&dir, port) {
            HELD.lock().unwrap_or_else(|p| p.into_inner()).push(lock);
            return port;
        }
    }
    panic!(
        "lifeboat-test-ports: every port in {}..{} is taken or reserved (locks in {})",
        range.start,
        range.end,
        dir.display()
    )
}

/// The ports to hand out, from the contents of `ip_local_port_range`
/// ("low high"): [`LOWEST`] up to the ephemeral range, or above it when the
/// range below is too small.
fn window(ip_local_port_range: &str) -> Result<Range<u16>, String> {
    let mut bounds = ip_local_port_range
        .split_whitespace()
        .map(|s| s.parse::<u16>().ok());
    let (low, high) = match (bounds.next().flatten(), bounds.next().flatten()) {
        (Some(low), Some(high)) if low <= high => (low, high),
        // No /proc (or unreadable): Linux's default range.
        _ => (32768, 60999),
    };
    if low >= LOWEST && low - LOWEST >= FEWEST {
        return Ok(LOWEST..low);
    }
    if high < u16::MAX && u16::MAX - high >= FEWEST {
        return Ok(high + 1..u16::MAX);
    }
    Err(format!(
        "the kernel's ephemeral port range {low}-{high} leaves fewer than {FEWEST} ports \
         outside it from {LOWEST} on; tests need ports the kernel never hands out by itself \
         (set net.ipv4.ip_local_port_range to, say, 32768 60999)"
    ))
}

/// Where the per-port lock files live: one directory per user, the same for
/// every test process whatever its `TMPDIR`.
fn lock_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/tmp/lifeboat-test-ports-{uid}"))
}

/// Where this call starts looking: spread by process and call, so processes
/// started one after another do not all walk the same ports first (a port
/// just released may still have connections in TIME_WAIT).
fn first_offset() -> u32 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos)
        .wrapping_add(call.wrapping_mul(40_503))
}

/// The lock on `port` when no other reservation holds it and it binds on
/// loopback for TCP and UDP now; `None` otherwise.
fn try_reserve(dir: &std::path::Path, port: u16) -> Option<File> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(port.to_string()))
        .ok()?;
    // flock locks belong to the open file: a second open of the same file,
    // in this process or another, cannot take it while this one holds it.
    lock.try_lock().ok()?;
    let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
    let udp = UdpSocket::bind(("127.0.0.1", port)).ok()?;
    drop((tcp, udp));
    Some(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_ephemeral_range_when_there_is_room() {
        assert_eq!(window("32768\t60999\n"), Ok(16384..32768));
        assert_eq!(window("49152 65535"), Ok(16384..49152));
    }

    #[test]
    fn above_it_when_the_room_below_is_too_small() {
        assert_eq!(window("1024 40000"), Ok(40001..65535));
        assert_eq!(window("17000 60000"), Ok(60001..65535));
    }

    #[test]
    fn no_room_anywhere_is_an_error_that_says_what_to_set() {
        let e = window("1024 65000").unwrap_err();
        assert!(e.contains("ip_local_port_range"), "{e}");
    }

    #[test]
    fn unreadable_range_means_linux_default() {
        assert_eq!(window(""), Ok(16384..32768));
        assert_eq!(window("garbage"), Ok(16384..32768));
    }

    #[test]
    fn a_reserved_port_is_never_handed_out_twice_and_is_outside_the_kernel_range() {
        let range = window(
            &std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default(),
        )
        .unwrap();
        let ports: Vec<u16> = (0..200).map(|_| reserve()).collect();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port handed out twice: {ports:?}"
        );
        assert!(
            ports.iter().all(|p| range.contains(p)),
            "{ports:?} not in {range:?}"
        );
    }

    #[test]
    fn a_port_locked_elsewhere_is_skipped() {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let port = reserve();
        // Another open of the lock file (as another process would) cannot lock it.
        assert!(try_reserve(&dir, port).is_none());
    }

    #[test]
    fn a_port_someone_listens_on_is_skipped() {
        let dir = tempfile_dir();
        // A port reserved in the shared directory, so that nobody else
        // binds it between the drop and the second look below.
        let port = reserve();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        assert!(try_reserve(&dir, port).is_none());
        drop(listener);
        assert!(try_reserve(&dir, port).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A private lock directory (std only: this crate has no dependencies).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lifeboat-test-ports-unit-{}-{}",
            std::process::id(),
            first_offset()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
