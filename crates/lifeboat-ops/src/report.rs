//! How a flow tells the person (or the log) what it is doing, without
//! knowing whether it runs in the CLI on a terminal, under `--json`, in the
//! daemon or in a test. The CLI shows a live bar or a line every ten
//! seconds (`crates/lifeboat/src/progress.rs`); the daemon logs; tests use
//! [`Silent`].

use std::sync::Arc;

use lifeboat_repo::backup::Progress;

/// Something that shows progress until dropped (a bar, a logging thread).
pub type ProgressDisplay = Box<dyn Send>;

pub trait Reporter: Send + Sync {
    /// One line of narration for the human ("created database x", "the
    /// writers were brought back"). The CLI prints it on standard error.
    fn note(&self, line: &str);

    /// Shows `progress` under `label` until the returned value is dropped.
    /// `with_dedup` adds the backup-only counters (new, stored, dedup).
    fn progress(&self, progress: Arc<Progress>, label: &str, with_dedup: bool) -> ProgressDisplay;
}

/// Shows nothing (tests, `--quiet` inside a flow that must not print).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn note(&self, _line: &str) {}

    fn progress(&self, _p: Arc<Progress>, _label: &str, _with_dedup: bool) -> ProgressDisplay {
        Box::new(())
    }
}

/// Notes as `tracing` events, no progress display: the daemon's reporter.
#[derive(Debug, Default, Clone, Copy)]
pub struct Log;

impl Reporter for Log {
    fn note(&self, line: &str) {
        tracing::info!("{line}");
    }

    fn progress(&self, _p: Arc<Progress>, _label: &str, _with_dedup: bool) -> ProgressDisplay {
        Box::new(())
    }
}

/// Human-readable size in binary units ("1.5 MiB").
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
