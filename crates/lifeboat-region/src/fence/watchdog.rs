//! The watchdog: a process apart from the agent that stops PostgreSQL when
//! the agent stops vouching for its lease, so that the server never
//! outlives the agent's lease even when the agent itself dies.
//!
//! The agent starts it (`lifeboat fence-watchdog --pgdata DIR`) in a session
//! of its own (killing the agent or its process group does not kill it) and
//! writes to its standard input, one line each:
//!
//! - `deadline <ms>`: the current fence deadline as an absolute reading of
//!   CLOCK_MONOTONIC in milliseconds (rounded down, i.e. earlier). Both
//!   processes run on the same host and read the same clock, so the deadline
//!   does not drift by the time the line spends in the pipe (a relative
//!   "ms left" would). A newer line replaces the older deadline, earlier or
//!   later.
//! - `release`: the agent shuts down cleanly or its region is no longer
//!   primary; the watchdog exits without stopping anything.
//!
//! The watchdog stops PostgreSQL immediately ([`super::postgres::stop_postmaster`]
//! or the stop command) and exits when the deadline passes without a newer
//! line, or when its input ends (EOF: the agent died, the pipe's write end
//! was closed) without a `release` line. Before the first `deadline` line
//! there is no deadline; only EOF or `release` end it. A line it cannot
//! parse is logged and ignored (it neither extends nor shortens the
//! deadline).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt};

/// CLOCK_MONOTONIC now, in milliseconds.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// `at` as a CLOCK_MONOTONIC reading in milliseconds (std's `Instant` is
/// CLOCK_MONOTONIC on Linux; the conversion goes through "now" on both,
/// rounding down).
pub fn instant_to_monotonic_ms(at: Instant) -> u64 {
    let (now_i, now_ms) = (Instant::now(), monotonic_ms());
    if at >= now_i {
        now_ms + (at - now_i).as_millis() as u64
    } else {
        now_ms.saturating_sub((now_i - at).as_nanos().div_ceil(1_000_000) as u64)
    }
}

/// One input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `deadline <CLOCK_MONOTONIC ms>`
    Deadline(u64),
    Release,
    Invalid(String),
}

/// Parses one input line (surrounding blanks ignored).
pub fn parse_line(line: &str) -> Line {
    let l = line.trim();
    if l == "release" {
        return Line::Release;
    }
    if let Some(v) = l.strip_prefix("deadline ")
        && let Ok(ms) = v.trim().parse()
    {
        return Line::Deadline(ms);
    }
    Line::Invalid(l.chars().take(80).collect())
}

/// What the watchdog noticed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Line(Line),
    /// The input ended.
    Eof,
    /// The deadline in force has passed.
    DeadlinePassed,
}

/// Why the watchdog stopped the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The input ended without `release`: the agent died.
    AgentGone,
    /// No newer deadline came before the one in force passed.
    DeadlinePassed,
}

/// What an event leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep watching with this deadline (`None`: none yet).
    Watch(Option<u64>),
    /// Exit without stopping anything.
    Release,
    /// Stop PostgreSQL now, then exit.
    Stop(StopReason),
}

/// The watchdog's decision for `event` while `deadline` is in force (pure).
pub fn decide(deadline: Option<u64>, event: &Event) -> Decision {
    match event {
        Event::Line(Line::Deadline(ms)) => Decision::Watch(Some(*ms)),
        Event::Line(Line::Release) => Decision::Release,
        Event::Line(Line::Invalid(_)) => Decision::Watch(deadline),
        Event::Eof => Decision::Stop(StopReason::AgentGone),
        Event::DeadlinePassed => match deadline {
            Some(_) => Decision::Stop(StopReason::DeadlinePassed),
            None => Decision::Watch(None),
        },
    }
}

/// How the watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Released,
    Stop(StopReason),
}

/// Watches `input` until a decision ends it. A deadline already in the past
/// when it arrives ends the watch at once.
pub async fn watch<R: AsyncBufRead + Unpin>(input: R) -> Verdict {
    let mut lines = input.lines();
    let mut deadline: Option<u64> = None;
    loop {
        let wait = deadline.map(|d| Duration::from_millis(d.saturating_sub(monotonic_ms())));
        let event = tokio::select! {
            biased;
            // next_line is cancel-safe: a partly read line is kept for the next call
            line = lines.next_line() => match line {
                Ok(Some(l)) => Event::Line(parse_line(&l)),
                Ok(None) => Event::Eof,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the watchdog's input");
                    Event::Eof
                }
            },
            _ = sleep_or_never(wait) => {
                // a sleep can end a little early on a coarse timer: recheck the clock
                if deadline.is_some_and(|d| monotonic_ms() < d) {
                    continue;
                }
                Event::DeadlinePassed
            }
        };
        if let Event::Line(Line::Invalid(l)) = &event {
            tracing::warn!(line = %l, "the watchdog ignores a line it cannot parse");
        }
        match decide(deadline, &event) {
            Decision::Watch(d) => deadline = d,
            Decision::Release => return Verdict::Released,
            Decision::Stop(r) => return Verdict::Stop(r),
        }
    }
}

/// The watchdog's standard input as an async line source: a non-blocking
/// pipe reader when it is a pipe (a read pending at exit does not hold the
/// process up), a file read on tokio's blocking pool otherwise (`/dev/null`,
/// a terminal); `None` when standard input is closed.
pub fn stdin_reader() -> Option<Box<dyn AsyncBufRead + Unpin + Send>> {
    use std::os::fd::AsFd;
    let file = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)?;
    let reader: Box<dyn AsyncBufRead + Unpin + Send> =
        match tokio::net::unix::pipe::Receiver::from_file(file.try_clone().ok()?) {
            Ok(r) => Box::new(tokio::io::BufReader::new(r)),
            Err(_) => Box::new(tokio::io::BufReader::new(tokio::fs::File::from_std(file))),
        };
    Some(reader)
}

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Errors of feeding the watchdog.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("starting the fence watchdog {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error(
        "the fence watchdog's input is closed ({source}): it has exited, and may have stopped \
         PostgreSQL; fence, then start a new watchdog before serving again"
    )]
    Gone { source: std::io::Error },
}

/// Starting the watchdog.
pub struct Watchdog;

impl Watchdog {
    /// Starts `argv` (e.g. `[lifeboat, fence-watchdog, --pgdata, DIR]`) in a
    /// session of its own, with a pipe to its standard input.
    pub fn spawn(argv: &[OsString]) -> Result<Feeder, WatchdogError> {
        use std::os::unix::process::CommandExt;
        let Some((program, args)) = argv.split_first() else {
            return Err(WatchdogError::Spawn {
                program: String::new(),
                source: std::io::Error::other("empty argument vector"),
            });
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .current_dir("/");
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut cmd = tokio::process::Command::from(cmd);
        // The watchdog must outlive us: never killed when the handle drops.
        cmd.kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|source| WatchdogError::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
        let stdin = child.stdin.take();
        Ok(Feeder { child, stdin })
    }
}

/// The agent's end of the watchdog's pipe. Dropping it without
/// [`Feeder::release`] closes the pipe: the watchdog stops PostgreSQL
/// (that is what the agent's death looks like).
pub struct Feeder {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
}

impl Feeder {
    /// The watchdog's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn write(&mut self, line: &str) -> Result<(), WatchdogError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(WatchdogError::Gone {
                source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
            });
        };
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|source| WatchdogError::Gone { source })?;
        stdin
            .flush()
            .await
            .map_err(|source| WatchdogError::Gone { source })
    }

    /// Sends the current fence deadline.
    pub async fn feed(&mut self, deadline: Instant) -> Result<(), WatchdogError> {
        let line = format!("deadline {}\n", instant_to_monotonic_ms(deadline));
        self.write(&line).await
    }

    /// Tells the watchdog to exit without stopping anything, closes the pipe
    /// and waits (up to `wait`) for it to exit; its exit status when it did.
    pub async fn release(
        mut self,
        wait: Duration,
    ) -> Result<Option<std::process::ExitStatus>, WatchdogError> {
        self.write("release\n").await?;
        drop(self.stdin.take());
        Ok(tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok))
    }

    /// Waits (up to `wait`) for the watchdog to exit.
    pub async fn wait_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Closes the pipe without `release` (what the agent's death does).
    pub fn close(&mut self) {
        drop(self.stdin.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases = [
            ("deadline 123456", Line::Deadline(123456)),
            ("  deadline 7 \n", Line::Deadline(7)),
            ("release", Line::Release),
            ("release\r\n", Line::Release),
            ("deadline", Line::Invalid("deadline".into())),
            ("deadline -5", Line::Invalid("deadline -5".into())),
            ("deadline 1.5", Line::Invalid("deadline 1.5".into())),
            ("", Line::Invalid(String::new())),
            ("releasee", Line::Invalid("releasee".into())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_line(text), want, "{text:?}");
        }
    }

    #[test]
    fn decide_table() {
        use Decision::*;
        let cases = [
            (None, Event::Line(Line::Deadline(10)), Watch(Some(10))),
            (Some(50), Event::Line(Line::Deadline(10)), Watch(Some(10))),
            (Some(10), Event::Line(Line::Deadline(50)), Watch(Some(50))),
            (Some(10), Event::Line(Line::Release), Release),
            (None, Event::Line(Line::Release), Release),
            (
                Some(10),
                Event::Line(Line::Invalid("x".into())),
                Watch(Some(10)),
            ),
            (None, Event::Line(Line::Invalid("x".into())), Watch(None)),
            (Some(10), Event::Eof, Stop(StopReason::AgentGone)),
            (None, Event::Eof, Stop(StopReason::AgentGone)),
            (
                Some(10),
                Event::DeadlinePassed,
                Stop(StopReason::DeadlinePassed),
            ),
            (None, Event::DeadlinePassed, Watch(None)),
        ];
        for (deadline, event, want) in cases {
            assert_eq!(decide(deadline, &event), want, "{deadline:?} {event:?}");
        }
    }

    #[test]
    fn instants_convert_to_the_same_clock() {
        // the conversion reads two clocks one after the other: allow a
        // generous slack for a preempted thread (no timing is measured here)
        let now = Instant::now();
        let ms = instant_to_monotonic_ms(now);
        assert!(ms <= monotonic_ms());
        let later = instant_to_monotonic_ms(now + Duration::from_secs(100));
        assert!(later.abs_diff(ms + 100_000) <= 1_000, "{ms} {later}");
        let earlier = instant_to_monotonic_ms(now - Duration::from_millis(1500));
        assert!((earlier + 1_500).abs_diff(ms) <= 1_000, "{ms} {earlier}");
    }

    #[tokio::test]
    async fn watch_ends_as_the_input_says() {
        let far = monotonic_ms() + 3_600_000;
        let input = format!("deadline {far}\nnonsense\nrelease\n");
        assert_eq!(watch(input.as_bytes()).await, Verdict::Released);
        let input = format!("deadline {far}\n");
        assert_eq!(
            watch(input.as_bytes()).await,
            Verdict::Stop(StopReason::AgentGone)
        );
        assert_eq!(watch(&b""[..]).await, Verdict::Stop(StopReason::AgentGone));
    }

    #[tokio::test]
    async fn a_passed_deadline_stops_while_the_input_stays_open() {
        // the write end stays open (held here) and says nothing more
        let (reader, mut writer) = tokio::io::duplex(64);
        let past = monotonic_ms().saturating_sub(1);
        writer
            .write_all(format!("deadline {past}\n").as_bytes())
            .await
            .unwrap();
        let verdict = watch(tokio::io::BufReader::new(reader)).await;
        assert_eq!(verdict, Verdict::Stop(StopReason::DeadlinePassed));
        drop(writer);
    }
}
