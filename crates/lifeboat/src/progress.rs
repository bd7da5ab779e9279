//! Progress for long work: a live bar on a terminal, a log line every ten
//! seconds otherwise, nothing with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lifeboat_repo::backup::Progress;

use lifeboat_ops::report::{ProgressDisplay, Reporter};

use crate::output::human_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Bar,
    Log,
}

impl Mode {
    pub fn choose(quiet: bool) -> Self {
        if quiet {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Log
        }
    }
}

/// The CLI's [`Reporter`]: notes on standard error, progress per [`Mode`].
pub struct CliReporter {
    mode: Mode,
}

impl CliReporter {
    /// `silent`: `--quiet` or `--json` (no progress; notes still go to
    /// standard error, which `--json` keeps free of the document).
    pub fn new(silent: bool) -> Self {
        Self {
            mode: Mode::choose(silent),
        }
    }
}

impl Reporter for CliReporter {
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }

    fn progress(&self, progress: Arc<Progress>, label: &str, with_dedup: bool) -> ProgressDisplay {
        Box::new(start(progress, label, self.mode, with_dedup))
    }
}

pub struct Display {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn line(p: &Progress, started: Instant, with_dedup: bool) -> String {
    let read = Progress::get(&p.bytes_read);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = read as f64 / secs;
    let mut s = format!("{} ({}/s)", human_bytes(read), human_bytes(rate as u64));
    if with_dedup {
        let new = Progress::get(&p.bytes_new);
        let stored = Progress::get(&p.bytes_stored);
        let dedup = if read > 0 {
            100.0 * (1.0 - new as f64 / read as f64)
        } else {
            0.0
        };
        s.push_str(&format!(
            ", new {}, stored {}, dedup {dedup:.1}%",
            human_bytes(new),
            human_bytes(stored)
        ));
    }
    s
}

/// Starts showing `progress`. `with_dedup` adds the backup-only counters.
pub fn start(progress: Arc<Progress>, label: &str, mode: Mode, with_dedup: bool) -> Display {
    let stop = Arc::new(AtomicBool::new(false));
    if mode == Mode::Off {
        return Display { stop, thread: None };
    }
    let label = label.to_string();
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        match mode {
            Mode::Bar => {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {prefix} {elapsed_precise} {wide_msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.set_prefix(label);
                while !stop2.load(Ordering::Relaxed) {
                    bar.set_message(line(&progress, started, with_dedup));
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(200));
                }
                bar.finish_and_clear();
            }
            Mode::Log => {
                let mut last = Instant::now();
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= Duration::from_secs(10) {
                        last = Instant::now();
                        eprintln!("{label}: {}", line(&progress, started, with_dedup));
                    }
                }
            }
            Mode::Off => {}
        }
    });
    Display {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
