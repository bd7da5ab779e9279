//! `pg_receivewal` as a child of the daemon: started with an argument
//! vector and the connection in its environment (never a password on its
//! command line), its standard error logged line by line (the last lines
//! kept to say why it ended), and killed with the daemon: it gets SIGTERM
//! when the daemon dies, even by `kill -9` (`PR_SET_PDEATHSIG`), so no
//! orphan keeps the slot busy for the next daemon.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::tools::child_command;
use tokio::io::AsyncBufReadExt;

/// Lines of standard error kept for the log line of its end.
const TAIL: usize = 8;

/// A running `pg_receivewal`.
pub struct Receiver {
    child: tokio::process::Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The command: `program args`, connecting as `conn` says, with
/// `application_name` `lifeboat-wal`.
fn command(
    program: &Path,
    args: &[OsString],
    conn: &ConnConfig,
) -> std::io::Result<tokio::process::Command> {
    use std::os::unix::process::CommandExt;
    let mut cmd = child_command(program);
    conn.apply_to_command(&mut cmd)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    cmd.env("PGAPPNAME", "lifeboat-wal")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    Ok(cmd)
}

/// Runs `program args` to its end (the slot's creation); its standard
/// error when it fails.
pub async fn run_once(
    program: &Path,
    args: &[OsString],
    conn: &ConnConfig,
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = command(program, args, conn).map_err(|e| e.to_string())?;
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("did not finish within {} s", timeout.as_secs()))?
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

impl Receiver {
    /// Starts the stream; its standard error goes to the log (source
    /// `source`) as it comes.
    pub fn start(
        program: &Path,
        args: &[OsString],
        conn: &ConnConfig,
        source: &str,
    ) -> std::io::Result<Receiver> {
        let mut child = command(program, args, conn)?.spawn()?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            let source = source.to_string();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(source = %source, "pg_receivewal: {line}");
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.push_back(line);
                    while t.len() > TAIL {
                        t.pop_front();
                    }
                }
            });
        }
        Ok(Receiver { child, tail })
    }

    /// `Some(why)` once it has ended: its exit status and last lines.
    pub fn ended(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!("{status}; last output: {}", self.tail())),
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    fn tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_empty() {
            "(none)".into()
        } else {
            t.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }

    /// Stops it: SIGTERM (it closes its file and connection cleanly), then
    /// SIGKILL after `patience`.
    pub async fn stop(mut self, patience: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(patience, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
