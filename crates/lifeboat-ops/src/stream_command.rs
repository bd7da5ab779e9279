//! A stream source's `stream.command`: the program whose standard output is
//! the source's data.
//!
//! The command is an argument vector run without a shell, with standard
//! input from `/dev/null`, in Lifeboat's working directory, and with a
//! minimal environment: the allow-list every child gets (`PATH`, `LANG`,
//! `LC_*`, `TZ`: docs/postgres.md, "Child processes") and the variables the
//! source names in `stream.env`, taken from Lifeboat's environment when set
//! there; nothing else, so the repository passphrase (`LIFEBOAT_PASSWORD`),
//! the API token and cloud credentials never reach it. This is the same rule
//! as for quiesce commands (`quiesce.commands`, with their own `env:`).
//!
//! [`CommandReader`] is its standard output as a [`Read`] for
//! `BackupSession::add_stream`: at the end of the output it waits for the
//! command, and a non-zero exit or a signal turns the end into a read error
//! (so the session is aborted and no snapshot is committed), with the tail
//! of the command's stderr in the message. Dropping the reader before that
//! (the backup abandoned) kills the command.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::Result;

use crate::config::StreamSource;

/// How much of the command's stderr is kept for messages (the tail: a
/// program's fatal message is usually last).
const STDERR_TAIL: usize = 4 * 1024;

/// The command's environment: the allow-list every child of Lifeboat gets
/// (`PATH`, `LANG`, `LC_*`, `TZ`: `lifeboat_postgres::tools::child_env`,
/// docs/postgres.md "Child processes") and the named variables that are set
/// in this process's environment (an unset one is left out).
pub fn environment(names: &[String]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    lifeboat_postgres::tools::child_env(names)
}

/// The running command; read its standard output.
pub struct CommandReader {
    argv: Vec<String>,
    child: Option<Child>,
    stdout: Option<ChildStdout>,
    stderr: Option<StderrTail>,
    /// Why the command failed, once known (also the read error's message).
    failure: Arc<Mutex<Option<String>>>,
    echo_stderr: bool,
}

impl CommandReader {
    /// Starts `stream.command`. With `echo_stderr` its stderr is also copied
    /// to Lifeboat's stderr as it comes (the CLI); otherwise it is only kept
    /// for the messages (the daemon logs it).
    pub fn spawn(stream: &StreamSource, echo_stderr: bool) -> Result<Self> {
        let Some((program, args)) = stream.command.split_first() else {
            return Err(crate::error::usage(
                "stream.command is empty; give the program and its arguments",
            ));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(environment(&stream.env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so that killing it also ends what it
        // started (`sh -c "… | …"`), and so that it can be ended from the
        // interrupt path, where no destructor runs ([`kill_running`]).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "; check the program name (it is looked up in PATH) or give its absolute path"
            } else {
                ""
            };
            crate::error::fail(
                crate::error::FAILURE,
                format!(
                    "cannot start the stream command {:?}: {e}{hint}",
                    stream.command
                ),
            )
        })?;
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child.id());
        let stdout = child.stdout.take();
        let stderr = child
            .stderr
            .take()
            .map(|s| StderrTail::start(s, echo_stderr));
        Ok(CommandReader {
            argv: stream.command.clone(),
            child: Some(child),
            stdout,
            stderr,
            failure: Arc::new(Mutex::new(None)),
            echo_stderr,
        })
    }

    /// Where the failure is put when the command fails; read it after the
    /// backup session's error to say what the command said.
    pub fn failure(&self) -> Arc<Mutex<Option<String>>> {
        Arc::clone(&self.failure)
    }

    /// Waits for the command after its output ended.
    fn finish(&mut self) -> std::result::Result<(), String> {
        self.stdout = None;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the stream command {:?}: {e}", self.argv))?;
        let tail = self.stderr.take().map(|s| s.finish()).unwrap_or_default();
        if status.success() {
            if !tail.is_empty() && !self.echo_stderr {
                tracing::info!(command = ?self.argv, stderr = %tail, "the stream command wrote to stderr");
            }
            return Ok(());
        }
        Err(format!(
            "the stream command {:?} failed ({}){}",
            self.argv,
            status_text(status),
            if tail.is_empty() {
                "; it wrote nothing to stderr".to_string()
            } else {
                format!("; the end of its stderr: {tail}")
            }
        ))
    }
}

impl Read for CommandReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(out) = self.stdout.as_mut() else {
            return Ok(0);
        };
        let n = out.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Err(msg) = self.finish()
        {
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
            return Err(std::io::Error::other(msg));
        }
        Ok(n)
    }
}

impl Drop for CommandReader {
    /// Not read to the end (the backup failed or was abandoned): the command
    /// is killed and reaped, never left running.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.kill();
            let _ = c.wait();
            forget_group(c.id());
        }
    }
}

/// Process groups of stream commands still running, for [`kill_running`].
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn kill_group(pgid: u32) {
    // SAFETY: killpg only sends a signal; the group is the command's own
    // (process_group(0) at spawn), never Lifeboat's.
    unsafe {
        libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
    }
}

fn forget_group(pgid: u32) {
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|&g| g != pgid);
}

/// Kills every stream command still running, with what it started. `main`
/// calls it when a Ctrl-C ends a command: it exits without running the
/// readers' destructors.
pub fn kill_running() {
    for pgid in RUNNING.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        kill_group(pgid);
    }
}

fn status_text(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// Drains the command's stderr on a thread (a chatty command never blocks
/// on a full pipe), keeping the last [`STDERR_TAIL`] bytes.
struct StderrTail {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    fn start(mut from: impl Read + Send + 'static, echo: bool) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::clone(&buf);
        let thread = std::thread::Builder::new()
            .name("lifeboat-stream-stderr".into())
            .spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match from.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if echo {
                                use std::io::Write;
                                let _ = std::io::stderr().write_all(&chunk[..n]);
                            }
                            let mut g = b.lock().unwrap_or_else(|p| p.into_inner());
                            g.extend_from_slice(&chunk[..n]);
                            if g.len() > STDERR_TAIL {
                                let cut = g.len() - STDERR_TAIL;
                                g.drain(..cut);
                            }
                        }
                    }
                }
            })
            .ok();
        StderrTail { buf, thread }
    }

    fn finish(mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let g = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&g).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    /// `kill_running` ends every command of the process: the tests that
    /// start commands take turns, so one test's interrupt is not another's.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }
    use super::*;

    fn source(argv: &[&str], env: &[&str]) -> StreamSource {
        StreamSource {
            command: argv.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn read_all(r: &mut CommandReader) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    /// A command abandoned midway, or ended by the interrupt path, is killed
    /// with what it started: `sh`'s background `sleep` does not outlive it.
    #[test]
    fn an_abandoned_command_is_killed_with_its_children() {
        let _serial = serial();
        use std::io::BufRead;
        for via_interrupt in [false, true] {
            let mut r = CommandReader::spawn(
                &source(&["sh", "-c", "sleep 30 & echo $!; wait"], &[]),
                false,
            )
            .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&mut r)
                .read_line(&mut line)
                .unwrap();
            let grandchild: u32 = line.trim().parse().unwrap();
            if via_interrupt {
                kill_running();
            }
            drop(r);
            // Killed by SIGKILL; reaped by whoever inherited it: gone or a
            // zombie within moments, never still sleeping.
            let alive = (0..100).all(|_| {
                let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
                let running = stat.is_ok_and(|s| !s.contains(") Z "));
                if running {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                running
            });
            assert!(!alive, "sleep {grandchild} outlived its stream command");
        }
    }

    #[test]
    fn stdout_is_the_stream_and_the_environment_is_minimal() {
        let _serial = serial();
        // HOME is set in every test environment; PATH always.
        assert!(std::env::var_os("HOME").is_some());
        let mut r = CommandReader::spawn(
            &source(&["sh", "-c", "printf 'a b'; env | sort"], &["HOME"]),
            false,
        )
        .unwrap();
        let out = String::from_utf8(read_all(&mut r).unwrap()).unwrap();
        let vars: Vec<&str> = out
            .strip_prefix("a b")
            .unwrap()
            .lines()
            .map(|l| l.split_once('=').unwrap().0)
            .filter(|v| *v != "PWD" && *v != "SHLVL" && *v != "_")
            // The allow-list every child gets when Lifeboat has them.
            .filter(|v| *v != "LANG" && *v != "TZ" && !v.starts_with("LC_"))
            .collect();
        assert_eq!(vars, ["HOME", "PATH"], "{out}");
    }

    #[test]
    fn a_failing_command_fails_the_read_with_its_stderr_tail() {
        let _serial = serial();
        let mut r = CommandReader::spawn(
            &source(
                &["sh", "-c", "echo partial; echo 'no such table' >&2; exit 3"],
                &[],
            ),
            false,
        )
        .unwrap();
        let failure = r.failure();
        let e = read_all(&mut r).unwrap_err().to_string();
        assert!(
            e.contains("exit code 3") && e.contains("no such table"),
            "{e}"
        );
        assert_eq!(failure.lock().unwrap().as_deref(), Some(e.as_str()));
        // Killed by a signal.
        let mut r = CommandReader::spawn(&source(&["sh", "-c", "kill -9 $$"], &[]), false).unwrap();
        let e = read_all(&mut r).unwrap_err().to_string();
        assert!(e.contains("killed by signal 9"), "{e}");
        // A program that does not exist.
        let e = CommandReader::spawn(&source(&["lifeboat-no-such-program"], &[]), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("lifeboat-no-such-program") && e.contains("PATH"),
            "{e}"
        );
    }
}
