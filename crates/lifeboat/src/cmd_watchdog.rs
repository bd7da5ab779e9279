//! `lifeboat fence-watchdog` (hidden): the process an agent beside a
//! primary starts and feeds, which stops PostgreSQL when the agent dies or
//! stops feeding it past the fence deadline. The protocol on standard input
//! and the decisions are `lifeboat_region::fence::watchdog`'s; this file
//! only reads the flags and carries out the stop.
//!
//! Exit 0 after `release` (nothing stopped) and after stopping the server;
//! 1 when stopping it failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lifeboat_ops::error::{Error, OK, Result};
use lifeboat_region::fence::postgres::{PostmasterStop, stop_postmaster};
use lifeboat_region::fence::watchdog::{StopReason, Verdict, stdin_reader, watch};

#[derive(Args, Debug)]
pub struct WatchdogArgs {
    /// The primary's data directory (its postmaster.pid names the postmaster)
    #[arg(long)]
    pub pgdata: PathBuf,
    /// How long to wait for the postmaster to go after SIGQUIT before SIGKILL
    #[arg(long, default_value_t = 10)]
    pub stop_timeout_secs: u64,
    /// Stop the server with this command instead of signalling the
    /// postmaster (a service manager's unit); the rest of the command line
    /// is its argument vector, e.g. `--stop-command systemctl kill -s SIGQUIT postgresql@15-main`
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARGV")]
    pub stop_command: Vec<String>,
}

/// A line on standard error that never panics: the agent that shared our
/// stderr may be gone, and nothing may keep the watchdog from its stop.
fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub async fn run(a: WatchdogArgs) -> Result<i32> {
    // No standard input at all: nobody can ever feed or release us, which
    // is the agent being gone.
    let verdict = match stdin_reader() {
        Some(input) => watch(input).await,
        None => Verdict::Stop(StopReason::AgentGone),
    };
    let reason = match verdict {
        Verdict::Released => {
            note("fence watchdog released: PostgreSQL left running");
            return Ok(OK);
        }
        Verdict::Stop(r) => r,
    };
    let why = match reason {
        StopReason::AgentGone => "the agent's pipe closed without release (the agent is gone)",
        StopReason::DeadlinePassed => "the fence deadline passed without a newer one",
    };
    note(&format!(
        "fence watchdog: {why}: stopping PostgreSQL ({})",
        a.pgdata.display()
    ));
    let timeout = Duration::from_secs(a.stop_timeout_secs.max(1));
    if let Some((program, args)) = a.stop_command.split_first() {
        let out = tokio::time::timeout(
            timeout,
            tokio::process::Command::from({
                let mut c = lifeboat_postgres::tools::child_command(program);
                c.args(args).stdin(std::process::Stdio::null());
                c
            })
            .output(),
        )
        .await
        .map_err(|_| Error::failure(format!("the stop command {program} did not return within {timeout:?}; stop PostgreSQL by hand")))?
        .map_err(|e| Error::failure(format!("running the stop command {program}: {e}; stop PostgreSQL by hand")))?;
        if !out.status.success() {
            return Err(Error::failure(format!(
                "the stop command {program} failed ({}): {}; stop PostgreSQL by hand",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        note(&format!("fence watchdog: stop command {program} done"));
        return Ok(OK);
    }
    match stop_postmaster(&a.pgdata, timeout).await {
        Ok(PostmasterStop::NotRunning) => {
            note("fence watchdog: no postmaster was running");
            Ok(OK)
        }
        Ok(PostmasterStop::Stopped { pid, escalated }) => {
            note(&format!(
                "fence watchdog: postmaster {pid} stopped{}",
                if escalated { " (SIGKILL)" } else { "" }
            ));
            Ok(OK)
        }
        Err(e) => Err(Error::failure(e.to_string())),
    }
}
