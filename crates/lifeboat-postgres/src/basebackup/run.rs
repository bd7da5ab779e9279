//! Running `pg_basebackup` with its tar stream on standard output.
//!
//! The argument vector (no shell): `-D - -Ft -X fetch --checkpoint=fast
//! --no-password --label=L --manifest-checksums=CRC32C`. `-X fetch` puts
//! the WAL from the backup's start to its end into `pg_wal/` of the same
//! tar stream, so a base backup is self-contained: it reaches consistency
//! with no archive at all. With `-D -` PostgreSQL 13+ appends the
//! `backup_manifest` to that stream as its last entry. The connection
//! comes from [`ConnConfig::apply_to_command`] (password only in the
//! child's environment). Data checksums, when the cluster has them, are
//! verified by the server while it sends the files (pg_basebackup's
//! default; a failure makes it exit non-zero, which fails the backup).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};

use crate::conn::ConnConfig;
use crate::dump::{DumpError, StderrSink, enlarge_pipe, status_text};

/// The `pg_basebackup` next to the chosen client tools.
pub fn program(tools_dir: &Path) -> PathBuf {
    tools_dir.join("pg_basebackup")
}

/// The arguments (after the program) of a base backup streamed as tar.
pub fn arguments(label: &str) -> Vec<String> {
    vec![
        "-D".into(),
        "-".into(),
        "--format=tar".into(),
        "--wal-method=fetch".into(),
        "--checkpoint=fast".into(),
        "--no-password".into(),
        format!("--label={label}"),
        "--manifest-checksums=CRC32C".into(),
    ]
}

/// A running `pg_basebackup`: read its tar stream ([`Read`]), then
/// [`PgBaseBackup::wait`], where a failure is reported with its stderr.
/// Dropping it without `wait` kills it.
pub struct PgBaseBackup {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: StderrSink,
    waited: bool,
}

impl PgBaseBackup {
    pub fn spawn(program: &Path, cfg: &ConnConfig, label: &str) -> Result<Self, DumpError> {
        let mut cmd = crate::tools::child_command(program);
        cfg.apply_to_command(&mut cmd)?;
        cmd.args(arguments(label))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| DumpError::Spawn {
            program: program.to_path_buf(),
            source: e,
        })?;
        let stdout = child.stdout.take();
        if let Some(s) = &stdout {
            use std::os::fd::AsRawFd;
            enlarge_pipe(s.as_raw_fd());
        }
        let stderr = StderrSink::start(child.stderr.take().expect("stderr is piped"));
        Ok(Self {
            child,
            stdout,
            stderr,
            waited: false,
        })
    }

    /// Waits for it to exit; its stderr is the error's text.
    pub fn wait(&mut self) -> Result<(), DumpError> {
        self.stdout = None;
        self.waited = true;
        let status = self.child.wait().map_err(|e| DumpError::Wait {
            program: "pg_basebackup".into(),
            source: e,
        })?;
        let stderr = self.stderr.finish();
        if !status.success() {
            return Err(DumpError::Failed {
                program: "pg_basebackup".into(),
                status: status_text(status),
                stderr,
            });
        }
        if !stderr.is_empty() {
            tracing::warn!(stderr = %stderr, "pg_basebackup wrote to stderr");
        }
        Ok(())
    }
}

impl Read for PgBaseBackup {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stdout {
            Some(s) => s.read(buf),
            None => Ok(0),
        }
    }
}

impl Drop for PgBaseBackup {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arguments_stream_a_self_contained_tar() {
        let a = super::arguments("lifeboat 2026");
        assert_eq!(&a[..2], ["-D", "-"]);
        assert!(a.contains(&"--wal-method=fetch".to_string()));
        assert!(a.contains(&"--format=tar".to_string()));
        assert!(a.contains(&"--label=lifeboat 2026".to_string()));
    }
}
