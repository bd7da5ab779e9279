//! `lifeboat fence-watchdog` (hidden): the process an agent beside a
//! primary starts and feeds, which fences PostgreSQL when the agent dies or
//! stops feeding it past the fence deadline. The protocol on standard input
//! and the decisions are `lifeboat_region::fence::watchdog`'s; this file
//! only reads the flags and carries out the fence: with `--pgdata`, the
//! postmaster stopped (or the stop command); with `--region R` (older
//! name `--patroni-region`; started as `lifeboat --config FILE
//! fence-watchdog …`), the agent's own fence of a Patroni or CloudNativePG
//! primary (`lifeboat_ops::region::managed_fence`): LOGIN of
//! `failover.fence.revoke_login.roles` revoked on R's primary and
//! their sessions terminated, with the connection and secrets read from the
//! configuration as the agent reads them (never from the command line).
//!
//! Exit 0 after `release` (nothing fenced) and after fencing the server;
//! 1 when the fence failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lifeboat_ops::config::FenceConfig;
use lifeboat_ops::context::Ctx;
use lifeboat_ops::error::{Error, OK, Result};
use lifeboat_region::fence::postgres::{PostmasterStop, stop_postmaster};
use lifeboat_region::fence::watchdog::{StopReason, Verdict, stdin_reader, watch};

#[derive(Args, Debug)]
pub struct WatchdogArgs {
    /// The primary's data directory (its postmaster.pid names the postmaster)
    #[arg(long, required_unless_present = "region", conflicts_with = "region")]
    pub pgdata: Option<PathBuf>,
    /// Fence this `manager: patroni` or `manager: cnpg` region of the
    /// configuration instead: revoke_login on its primary (the Patroni
    /// leader; for CloudNativePG, through postgres.url, the -rw Service).
    /// `--patroni-region` is an older name for it
    #[arg(long, value_name = "REGION", alias = "patroni-region")]
    pub region: Option<String>,
    /// The epoch the primary served under (recorded with revoked roles)
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
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

pub async fn run(ctx: &Ctx, a: WatchdogArgs) -> Result<i32> {
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
    let timeout = Duration::from_secs(a.stop_timeout_secs.max(1));
    let pgdata = match (&a.pgdata, &a.region) {
        (Some(p), _) => p.clone(),
        (None, Some(region)) => return fence_managed(ctx, region, a.epoch, why, timeout).await,
        (None, None) => {
            return Err(Error::usage(
                "give --pgdata or --region: the watchdog has nothing to fence",
            ));
        }
    };
    note(&format!(
        "fence watchdog: {why}: stopping PostgreSQL ({})",
        pgdata.display()
    ));
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
    match stop_postmaster(&pgdata, timeout).await {
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

/// `--region`: the agent's fence of a managed (Patroni or CloudNativePG)
/// primary, from the configuration.
async fn fence_managed(
    ctx: &Ctx,
    region: &str,
    epoch: u64,
    why: &str,
    timeout: Duration,
) -> Result<i32> {
    note(&format!(
        "fence watchdog: {why}: revoking the application's LOGIN on {region}'s primary"
    ));
    let failed = |m: String| Error::failure(format!("fence watchdog: {m}"));
    let config = ctx.config.as_ref().ok_or_else(|| {
        failed(
            "no configuration (--config): nothing says what to fence; fence the region by hand"
                .into(),
        )
    })?;
    let roles = match config.failover.as_ref().and_then(|f| f.fence.as_ref()) {
        Some(FenceConfig::RevokeLogin { roles }) => roles.clone(),
        _ => {
            return Err(failed(format!(
                "failover.fence is not revoke_login: {region}'s primary cannot be fenced; fence it by hand"
            )));
        }
    };
    let r = config.region(region).map_err(|e| failed(e.to_string()))?;
    let report = lifeboat_ops::region::managed_fence::fence(ctx, region, r, &roles, epoch, timeout)
        .await
        .map_err(failed)?;
    note(&format!(
        "fence watchdog: LOGIN revoked for {:?} on {region}'s primary, {} session(s) terminated",
        report.roles_revoked, report.sessions_terminated
    ));
    Ok(OK)
}
