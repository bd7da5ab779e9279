//! The user-space delay of `lifeboat-netdelay`: packets an iptables rule
//! sent to an NFQUEUE are held for a fixed delay each, then accepted, in the
//! order they came (one delay for all: first in, first out). Used where the
//! kernel has no `sch_netem` (docs/testbed.md).
//!
//! The queue is bound with a long kernel queue (100 000 packets), without
//! fail-open (a full queue drops rather than lets a packet through
//! undelayed) and copying only packet metadata (the payload is never
//! changed). Receiving is non-blocking; the loop sleeps at most
//! [`TICK`] between looks, so a packet is released at most about a tick
//! late, never early.
//!
//! The program exits when its standard input closes (the bed closes it after
//! removing the rule), once every held packet is released.

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest sleep between two looks at the queue.
pub const TICK: Duration = Duration::from_millis(1);
/// Kernel queue length (packets waiting for a verdict, held ones included).
pub const QUEUE_MAX_LEN: u32 = 100_000;

/// Command line of `lifeboat-netdelay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub queue: u16,
    pub delay: Duration,
    /// Created once the queue is bound (the bed adds the iptables rule then).
    pub ready_file: Option<PathBuf>,
}

pub const USAGE: &str =
    "usage: lifeboat-netdelay --queue N --delay-us MICROSECONDS [--ready-file PATH]";

/// Parses `--queue N --delay-us US [--ready-file PATH]`.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    let mut queue = None;
    let mut delay = None;
    let mut ready_file = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value; {USAGE}"));
        match a.as_str() {
            "--queue" => {
                queue = Some(
                    value()?
                        .parse::<u16>()
                        .map_err(|e| format!("--queue: {e}"))?,
                )
            }
            "--delay-us" => {
                delay = Some(Duration::from_micros(
                    value()?
                        .parse::<u64>()
                        .map_err(|e| format!("--delay-us: {e}"))?,
                ))
            }
            "--ready-file" => ready_file = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(Options {
        queue: queue.ok_or(format!("--queue is required; {USAGE}"))?,
        delay: delay.ok_or(format!("--delay-us is required; {USAGE}"))?,
        ready_file,
    })
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub released: u64,
    pub most_held: usize,
    /// Verdicts the kernel answered with ENOENT: it had already dropped
    /// the packet, as it does with every queued packet whose input or output
    /// device goes down (a partitioned site's bridge port).
    pub vanished: u64,
}

/// Whether `e` is the kernel's answer to a verdict on a packet it no
/// longer holds. The program then goes on: exiting would drop every
/// later packet of its site (the rule has no bypass), cutting off a site
/// whose only fault was sending to one that was partitioned.
fn vanished(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Packets held, each with the time it may go; first in, first out.
pub struct Held<T> {
    delay: Duration,
    packets: VecDeque<(Instant, T)>,
}

impl<T> Held<T> {
    pub fn new(delay: Duration) -> Self {
        Held {
            delay,
            packets: VecDeque::new(),
        }
    }
    /// Holds `p`, which arrived at `now`.
    pub fn push(&mut self, now: Instant, p: T) {
        self.packets.push_back((now + self.delay, p));
    }
    /// The next packet whose time has come at `now`, in arrival order.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.packets.front()?.0 <= now {
            self.packets.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }
    /// How long to sleep at `now`: until the next release, at most `TICK`.
    pub fn sleep(&self, now: Instant) -> Duration {
        self.packets
            .front()
            .map_or(TICK, |(due, _)| due.saturating_duration_since(now))
            .min(TICK)
    }
    pub fn len(&self) -> usize {
        self.packets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

/// Binds the queue and delays its packets until standard input closes.
pub fn run(opts: &Options) -> std::io::Result<Stats> {
    let mut q = nfq::Queue::open()?;
    q.bind(opts.queue)?;
    q.set_copy_range(opts.queue, 0)?;
    q.set_queue_max_len(opts.queue, QUEUE_MAX_LEN)?;
    q.set_fail_open(opts.queue, false)?;
    q.set_recv_gso(opts.queue, true)?;
    q.set_nonblocking(true);
    if let Some(f) = &opts.ready_file {
        std::fs::write(f, b"ready\n")?;
    }
    let closing = Arc::new(AtomicBool::new(false));
    let c = closing.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        c.store(true, Ordering::SeqCst);
    });
    let mut held = Held::new(opts.delay);
    let mut stats = Stats::default();
    loop {
        loop {
            match q.recv() {
                Ok(m) => held.push(Instant::now(), m),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A netlink error for an earlier verdict arrives here.
                Err(e) if vanished(&e) => stats.vanished += 1,
                Err(e) => return Err(e),
            }
        }
        stats.most_held = stats.most_held.max(held.len());
        let now = Instant::now();
        while let Some(mut m) = held.pop_due(now) {
            m.set_verdict(nfq::Verdict::Accept);
            match q.verdict(m) {
                Ok(()) => stats.released += 1,
                Err(e) if vanished(&e) => stats.vanished += 1,
                Err(e) => return Err(e),
            }
        }
        if held.is_empty() && closing.load(Ordering::SeqCst) {
            let _ = q.unbind(opts.queue);
            return Ok(stats);
        }
        std::thread::sleep(held.sleep(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args() {
        assert_eq!(
            parse_args(s(&[
                "--queue",
                "3",
                "--delay-us",
                "100000",
                "--ready-file",
                "/x"
            ])),
            Ok(Options {
                queue: 3,
                delay: Duration::from_millis(100),
                ready_file: Some("/x".into())
            })
        );
        assert!(parse_args(s(&["--queue", "3"])).is_err());
        assert!(parse_args(s(&["--delay-us", "1"])).is_err());
        assert!(parse_args(s(&["--queue", "70000", "--delay-us", "1"])).is_err());
        assert!(parse_args(s(&["--queue"])).is_err());
        assert!(parse_args(s(&["--bogus"])).is_err());
    }

    #[test]
    fn held_in_order_never_early() {
        let t0 = Instant::now();
        let d = Duration::from_millis(100);
        let mut h = Held::new(d);
        h.push(t0, 1);
        h.push(t0 + Duration::from_millis(10), 2);
        h.push(t0 + Duration::from_millis(10), 3);
        assert_eq!(h.pop_due(t0 + Duration::from_millis(99)), None);
        assert_eq!(
            h.sleep(t0 + Duration::from_millis(99)),
            Duration::from_millis(1)
        );
        assert_eq!(h.pop_due(t0 + d), Some(1));
        assert_eq!(h.pop_due(t0 + d), None);
        assert_eq!(h.sleep(t0 + d), TICK);
        let later = t0 + Duration::from_millis(200);
        assert_eq!(h.pop_due(later), Some(2));
        assert_eq!(h.pop_due(later), Some(3));
        assert!(h.is_empty());
        assert_eq!(h.sleep(later), TICK);
    }
}
