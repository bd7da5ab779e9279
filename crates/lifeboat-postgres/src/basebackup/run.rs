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

use crate::conn::ConnConfig;
use crate::dump::{DumpError, ToolStream};

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
pub struct PgBaseBackup(ToolStream);

impl PgBaseBackup {
    pub fn spawn(program: &Path, cfg: &ConnConfig, label: &str) -> Result<Self, DumpError> {
        let mut cmd = crate::tools::child_command(program);
        cfg.apply_to_command(&mut cmd)?;
        cmd.args(arguments(label));
        ToolStream::spawn(cmd, program, "pg_basebackup").map(PgBaseBackup)
    }

    /// Waits for it to exit (see [`ToolStream::wait`]).
    pub fn wait(&mut self) -> Result<(), DumpError> {
        self.0.wait()
    }
}

impl Read for PgBaseBackup {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
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
