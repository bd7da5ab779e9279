//! Driving `pg_dump` and `pg_restore` as child processes.
//!
//! Both are started with argument vectors and the connection in `PG*` environment
//! variables ([`ConnConfig::apply_to_command`]), never through a shell and never
//! with a password on the command line. Their stderr is drained by a thread into a
//! bounded buffer (so a chatty child never blocks on a full pipe) and becomes the
//! error message when they fail.
//!
//! The archive format is always custom (`-Fc`) and uncompressed (`-Z0`): the
//! repository chunks and compresses it, and compression inside the dump would
//! destroy deduplication between hourly backups.
//!
//! Restore options (decided here, see [`RestoreOptions`]): `--clean --if-exists`
//! always (the restored objects replace the existing ones and a fresh database does
//! not produce errors), ownership and privileges kept by default (a restore into the
//! source server must come back exactly as it was; set `no_owner` for a target
//! server that lacks the source's roles), no `--single-transaction` by default
//! (it needs a lock per object in one transaction, which a database with many
//! partitions can exhaust, and it cannot be combined with `--jobs`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::conn::{ConnConfig, ConnError};
use crate::facts::{DumpScope, quote_ident};
use crate::tools::PgTools;

/// Most stderr kept from a child (the tail is kept; pg_dump's fatal message is last).
const STDERR_LIMIT: usize = 64 * 1024;

/// Errors of running pg_dump / pg_restore and of their helpers.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    #[error(
        "parallel restore (--jobs {0}) needs a seekable archive file; stage the archive to a file first"
    )]
    JobsNeedFile(u32),
    #[error(
        "not enough free space in {dir} to stage the archive: {needed} bytes needed \
         (archive plus margin), {available} available; free space or choose another staging directory"
    )]
    InsufficientSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error(
        "writing a pg_restore --use-list file in the temporary directory: {0}; \
         check that TMPDIR (or /tmp) is writable and has room"
    )]
    ListFile(std::io::Error),
    #[error(
        "reading the table of contents of the staged archive {path}: {source}; \
         check the staging directory (--staging-dir), or restore with --whole-tables"
    )]
    ReadArchive {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checking free space of {dir}: {source}")]
    Statvfs {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {}", crate::conn::pg_message(source))]
    Sql {
        what: String,
        source: tokio_postgres::Error,
    },
}

/// Collects a child's stderr on a thread, keeping at most [`STDERR_LIMIT`] bytes (the tail).
pub(crate) struct StderrSink {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrSink {
    pub(crate) fn start(mut stderr: impl Read + Send + 'static) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut g = b.lock().unwrap_or_else(|p| p.into_inner());
                        g.extend_from_slice(&chunk[..n]);
                        if g.len() > STDERR_LIMIT {
                            let cut = g.len() - STDERR_LIMIT;
                            g.drain(..cut);
                        }
                    }
                }
            }
        });
        StderrSink {
            buf,
            thread: Some(thread),
        }
    }
    pub(crate) fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let g = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&g).trim().to_string()
    }
}

/// Raises the pipe buffer to 1 MiB (Linux): fewer context switches when the reader
/// is a chunker consuming hundreds of MB/s. Best effort.
pub fn enlarge_pipe(fd: std::os::fd::RawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a pipe fd we own; failure is ignored.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

pub(crate) fn status_text(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(libc::SIGPIPE)) => {
            "killed by SIGPIPE: its output was not read to the end".to_string()
        }
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// A running client tool whose standard output is read (`pg_dump`,
/// `pg_basebackup`): its stdout enlarged and readable ([`Read`]) or taken,
/// its stderr collected by a thread, and [`ToolStream::wait`], where a
/// failure is reported with the tool's own message. Dropping it without
/// `wait` kills the tool.
pub struct ToolStream {
    name: &'static str,
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: StderrSink,
    waited: bool,
}

impl ToolStream {
    /// Spawns `cmd` (its arguments and environment set) with stdin closed
    /// and stdout/stderr piped. `program` names it in a spawn error, `name`
    /// in later ones.
    pub fn spawn(mut cmd: Command, program: &Path, name: &'static str) -> Result<Self, DumpError> {
        cmd.stdin(Stdio::null())
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
        Ok(ToolStream {
            name,
            child,
            stdout,
            stderr,
            waited: false,
        })
    }

    /// Takes the tool's stdout to read it elsewhere.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Process id (e.g. to kill it on cancellation).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the tool (cancellation); `wait` then reports the signal.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the tool to exit. Closes our end of stdout first if still
    /// held (a caller that stopped reading early thereby makes the tool
    /// fail, not hang).
    pub fn wait(&mut self) -> Result<(), DumpError> {
        self.stdout = None;
        self.waited = true;
        let status = self.child.wait().map_err(|e| DumpError::Wait {
            program: self.name.into(),
            source: e,
        })?;
        let stderr = self.stderr.finish();
        if !status.success() {
            return Err(DumpError::Failed {
                program: self.name.into(),
                status: status_text(status),
                stderr,
            });
        }
        if !stderr.is_empty() {
            tracing::warn!(stderr = %stderr, "{} wrote to stderr", self.name);
        }
        Ok(())
    }
}

impl Read for ToolStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stdout {
            Some(s) => s.read(buf),
            None => Ok(0),
        }
    }
}

impl Drop for ToolStream {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `pg_dump -Fc -Z0`. Read the archive from it ([`Read`]) or take its
/// stdout; then call [`PgDump::wait`], which is where failures (with pg_dump's own
/// message) are reported. A stream that ends early is only known to be bad after
/// `wait`. Dropping it without `wait` kills pg_dump.
///
/// For async code: `tokio::process::ChildStdout::from_std(dump.take_stdout()?)`
/// gives an `AsyncRead`, and `wait` belongs in `spawn_blocking`.
pub struct PgDump(ToolStream);

impl PgDump {
    /// Starts pg_dump for `cfg`'s database. `snapshot` is an id from
    /// [`crate::facts::SnapshotSession::snapshot_id`] (the session must still be open
    /// when this is called). Table names in `scope` are passed as exact, quoted
    /// patterns with `--strict-names`, so a table missing by now is an error.
    pub fn spawn(
        tools: &PgTools,
        cfg: &ConnConfig,
        snapshot: Option<&str>,
        scope: &DumpScope,
    ) -> Result<Self, DumpError> {
        let mut cmd = crate::tools::child_command(&tools.pg_dump);
        cfg.apply_to_command(&mut cmd)?;
        cmd.args(["--format=custom", "--compress=0", "--no-password"]);
        if let Some(s) = snapshot {
            cmd.arg(format!("--snapshot={s}"));
        }
        if scope.schema_only {
            cmd.arg("--schema-only");
        }
        if !scope.tables.is_empty() {
            cmd.arg("--strict-names");
            for t in &scope.tables {
                cmd.arg(format!("--table={}", t.quoted()));
            }
        }
        ToolStream::spawn(cmd, &tools.pg_dump, "pg_dump").map(PgDump)
    }

    /// Takes pg_dump's stdout (the archive) to read it elsewhere.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.0.take_stdout()
    }

    /// Process id (e.g. to kill it on cancellation).
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Kills pg_dump (cancellation); `wait` then reports the signal.
    pub fn kill(&mut self) {
        self.0.kill()
    }

    /// Waits for pg_dump to exit (see [`ToolStream::wait`]).
    pub fn wait(mut self) -> Result<(), DumpError> {
        self.0.wait()
    }
}

impl Read for PgDump {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// Options of a restore; see the module docs for why the defaults are what they are.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Parallel jobs; more than 1 needs a file ([`PgRestore::spawn_file`]).
    pub jobs: u32,
    /// `--no-owner`: objects are owned by the restoring user.
    pub no_owner: bool,
    /// `--no-privileges`: GRANT/REVOKE are skipped.
    pub no_privileges: bool,
    /// `--single-transaction`: all or nothing (stream restores only).
    pub single_transaction: bool,
    /// `--exit-on-error`: stop at the first error instead of counting them.
    pub exit_on_error: bool,
    /// `--clean --if-exists` (the default). Off only for the later passes of a
    /// split restore ([`crate::split_restore`]), whose drops were run already.
    pub clean: bool,
    /// `--use-list`: restore only the items of this list file, in its order.
    pub list: Option<PathBuf>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            jobs: 1,
            no_owner: false,
            no_privileges: false,
            single_transaction: false,
            exit_on_error: false,
            clean: true,
            list: None,
        }
    }
}

/// A running `pg_restore --clean --if-exists` into `cfg`'s database. For a stream
/// restore write the archive into it ([`Write`] or [`PgRestore::take_stdin`]), then
/// call [`PgRestore::wait`]. If a write fails (pg_restore died: broken pipe),
/// `wait` has the real reason. pg_restore exits non-zero when any statement
/// failed ("errors ignored on restore: N"); that is an error here. Dropping it
/// without `wait` kills pg_restore.
pub struct PgRestore {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: StderrSink,
    waited: bool,
}

impl PgRestore {
    fn command(
        tools: &PgTools,
        cfg: &ConnConfig,
        opts: &RestoreOptions,
    ) -> Result<Command, DumpError> {
        let mut cmd = crate::tools::child_command(&tools.pg_restore);
        cfg.apply_to_command(&mut cmd)?;
        // -d with the database name only (no credentials in it); the rest is in PG*.
        cmd.arg("--dbname").arg(&cfg.dbname);
        cmd.arg("--no-password");
        if opts.clean {
            cmd.args(["--clean", "--if-exists"]);
        }
        if let Some(list) = &opts.list {
            cmd.arg("--use-list").arg(list);
        }
        if opts.no_owner {
            cmd.arg("--no-owner");
        }
        if opts.no_privileges {
            cmd.arg("--no-privileges");
        }
        if opts.exit_on_error {
            cmd.arg("--exit-on-error");
        }
        Ok(cmd)
    }

    fn start(tools: &PgTools, mut cmd: Command, stdin: Stdio) -> Result<Self, DumpError> {
        cmd.stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| DumpError::Spawn {
            program: tools.pg_restore.clone(),
            source: e,
        })?;
        let stdin = child.stdin.take();
        if let Some(s) = &stdin {
            use std::os::fd::AsRawFd;
            enlarge_pipe(s.as_raw_fd());
        }
        let stderr = StderrSink::start(child.stderr.take().expect("stderr is piped"));
        Ok(PgRestore {
            child,
            stdin,
            stderr,
            waited: false,
        })
    }

    /// Restores a single stream written to this value (one job).
    pub fn spawn_stream(
        tools: &PgTools,
        cfg: &ConnConfig,
        opts: &RestoreOptions,
    ) -> Result<Self, DumpError> {
        if opts.jobs > 1 {
            return Err(DumpError::JobsNeedFile(opts.jobs));
        }
        let mut cmd = Self::command(tools, cfg, opts)?;
        if opts.single_transaction {
            cmd.arg("--single-transaction");
        }
        Self::start(tools, cmd, Stdio::piped())
    }

    /// Restores from a staged archive file, with `--jobs` when `opts.jobs > 1`.
    pub fn spawn_file(
        tools: &PgTools,
        cfg: &ConnConfig,
        archive: &Path,
        opts: &RestoreOptions,
    ) -> Result<Self, DumpError> {
        let mut cmd = Self::command(tools, cfg, opts)?;
        if opts.jobs > 1 {
            cmd.arg(format!("--jobs={}", opts.jobs));
        } else if opts.single_transaction {
            cmd.arg("--single-transaction");
        }
        cmd.arg(archive);
        Self::start(tools, cmd, Stdio::null())
    }

    /// [`PgRestore::wait`] on a blocking thread. If the returned future is
    /// dropped (a restore cancelled by Ctrl-C/SIGTERM), pg_restore is killed
    /// instead of being left to run.
    pub async fn wait_async(self) -> Result<RestoreOutcome, DumpError> {
        let mut guard = KillOnDrop::new(self.id());
        let r = tokio::task::spawn_blocking(move || self.wait())
            .await
            .unwrap_or_else(|e| {
                Err(DumpError::Wait {
                    program: "pg_restore".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        guard.disarm();
        r
    }

    /// Takes pg_restore's stdin to write the archive elsewhere (drop it to signal the end).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Closes stdin (end of archive) and waits for pg_restore. Returns the errors
    /// that were tolerated (see [`classify_restore_errors`]); any other error fails.
    pub fn wait(mut self) -> Result<RestoreOutcome, DumpError> {
        self.stdin = None;
        self.waited = true;
        let status = self.child.wait().map_err(|e| DumpError::Wait {
            program: "pg_restore".into(),
            source: e,
        })?;
        let stderr = self.stderr.finish();
        if status.success() {
            if !stderr.is_empty() {
                tracing::warn!(stderr = %stderr, "pg_restore wrote to stderr");
            }
            return Ok(RestoreOutcome::default());
        }
        let errors = classify_restore_errors(&stderr);
        if status.code() == Some(1) && !errors.is_empty() && errors.iter().all(|e| e.clean_phase) {
            for e in &errors {
                tracing::info!(error = %e.message, command = %e.command, "tolerated pg_restore error while dropping old objects");
            }
            return Ok(RestoreOutcome {
                tolerated_errors: errors,
                ..RestoreOutcome::default()
            });
        }
        Err(DumpError::Failed {
            program: "pg_restore".into(),
            status: status_text(status),
            stderr,
        })
    }
}

/// Kills a child process by pid when dropped armed: the guard of a future
/// that waits for a child elsewhere (a blocking thread, a reader), so that
/// cancelling the future does not leave the child running. Disarm it once
/// the child was waited for (its pid may be reused after that).
pub(crate) struct KillOnDrop(Option<u32>);

impl KillOnDrop {
    pub(crate) fn new(pid: u32) -> Self {
        KillOnDrop(Some(pid))
    }
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: kill(2) to our own child, not reaped yet (armed guard).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// What a successful restore put up with.
#[derive(Clone, Debug, Default)]
pub struct RestoreOutcome {
    /// Errors of the `--clean` phase that did not matter (see [`classify_restore_errors`]).
    pub tolerated_errors: Vec<RestoreErrorEntry>,
    /// Tables whose rows were spread over the jobs ([`crate::split_restore`]).
    pub split_tables: Vec<String>,
    /// Where those rows were read from: `repository` (staging left their
    /// blocks out) or `staged archive`.
    pub split_rows_from: Option<String>,
}

/// One "could not execute query" error reported by pg_restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreErrorEntry {
    /// The server's message, e.g. `ERROR:  cannot drop inherited constraint …`.
    pub message: String,
    /// The statement (`Command was: …`); empty when pg_restore printed none.
    pub command: String,
    /// Whether the statement is one of `--clean`'s drops.
    pub clean_phase: bool,
}

/// Splits pg_restore's stderr into its error entries and marks those raised by
/// `--clean`'s `DROP … IF EXISTS` / `ALTER … DROP …` statements.
///
/// Why tolerate those: pg_restore `--clean` drops the constraints of each partition
/// before those of its parent, and PostgreSQL refuses to drop a partition's
/// inherited primary key ("cannot drop inherited constraint"); the parent's drop
/// removes them a moment later, and the restore itself is fine, but pg_restore
/// exits 1. A drop that failed for a real reason leaves the old object in place,
/// so the following CREATE or COPY fails, and that error is not tolerated (nor is
/// anything without a statement, like a lost connection). Facts verification after
/// the restore is the final check either way.
pub fn classify_restore_errors(stderr: &str) -> Vec<RestoreErrorEntry> {
    let mut out: Vec<RestoreErrorEntry> = Vec::new();
    let mut in_command = false;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("pg_restore: error: ") {
            in_command = false;
            let message = rest
                .strip_prefix("could not execute query: ")
                .unwrap_or(rest);
            out.push(RestoreErrorEntry {
                message: message.to_string(),
                command: String::new(),
                clean_phase: false,
            });
        } else if let Some(cmd) = line.strip_prefix("Command was: ") {
            if let Some(e) = out.last_mut() {
                e.command = cmd.to_string();
                in_command = true;
            }
        } else if line.starts_with("pg_restore: ") {
            in_command = false;
        } else if in_command {
            if let Some(e) = out.last_mut() {
                e.command.push('\n');
                e.command.push_str(line);
            }
        } else if let Some(e) = out.last_mut() {
            // continuation of the message (DETAIL/HINT/LINE lines)
            e.message.push('\n');
            e.message.push_str(line);
        }
    }
    for e in &mut out {
        let c = e.command.trim_start().to_ascii_uppercase();
        e.clean_phase = c.starts_with("DROP ") || (c.starts_with("ALTER ") && c.contains(" DROP "));
    }
    out
}

impl Write for PgRestore {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "pg_restore stdin closed",
            )),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PgRestore {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Bytes available to an unprivileged user on the filesystem holding `dir` (statvfs).
pub fn free_space(dir: &Path) -> Result<u64, DumpError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| DumpError::Statvfs {
        dir: dir.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"),
    })?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(DumpError::Statvfs {
            dir: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Fails unless `dir` has room for `archive_bytes` plus a margin (10 % and at least
/// 64 MiB: the filesystem is shared, and running out mid-staging is worse than
/// refusing up front).
pub fn check_staging_space(dir: &Path, archive_bytes: u64) -> Result<(), DumpError> {
    let needed = archive_bytes.saturating_add((archive_bytes / 10).max(64 << 20));
    let available = free_space(dir)?;
    if available < needed {
        return Err(DumpError::InsufficientSpace {
            dir: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Creates `cfg.dbname` when it does not exist, connecting to `maintenance_db`
/// (usually `postgres`) on the same server. The database is created from
/// `template0` (what pg_dump's docs prescribe for restores: `template1` may hold
/// local additions that would clash) with the given encoding, if any.
/// Returns whether it was created.
pub async fn create_database_if_missing(
    cfg: &ConnConfig,
    maintenance_db: &str,
) -> Result<bool, DumpError> {
    create_database_with(cfg, maintenance_db, None).await
}

/// [`create_database_if_missing`] with an explicit encoding (e.g. the source's,
/// from [`crate::facts::Facts::encoding`]).
pub async fn create_database_with(
    cfg: &ConnConfig,
    maintenance_db: &str,
    encoding: Option<&str>,
) -> Result<bool, DumpError> {
    let admin = cfg.with_dbname(maintenance_db).connect().await?;
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&cfg.dbname],
        )
        .await
        .map_err(|e| DumpError::Sql {
            what: "looking up the target database".into(),
            source: e,
        })?
        .is_some();
    if exists {
        return Ok(false);
    }
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE template0",
        quote_ident(&cfg.dbname)
    );
    if let Some(enc) = encoding {
        // Encoding names are identifiers-like words; quote as a string literal.
        sql.push_str(&format!(" ENCODING '{}'", enc.replace('\'', "''")));
    }
    match admin.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        // Lost a race with another creator: fine.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
            Ok(false)
        }
        Err(e) => Err(DumpError::Sql {
            what: format!("creating database {}", cfg.dbname),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_restore_errors() {
        let stderr = "pg_restore: error: could not execute query: ERROR:  cannot drop inherited constraint \"p_pkey\" of relation \"p\"\n\
Command was: ALTER TABLE IF EXISTS ONLY public.p DROP CONSTRAINT IF EXISTS p_pkey;\n\
pg_restore: warning: errors ignored on restore: 1";
        let e = classify_restore_errors(stderr);
        assert_eq!(e.len(), 1);
        assert!(e[0].clean_phase);
        assert!(e[0].message.contains("cannot drop inherited constraint"));
        let stderr = "pg_restore: error: could not execute query: ERROR:  relation \"t\" already exists\n\
Command was: CREATE TABLE public.t (\n    a integer\n);\n\
pg_restore: error: connection to server failed";
        let e = classify_restore_errors(stderr);
        assert_eq!(e.len(), 2);
        assert!(!e[0].clean_phase && e[0].command.contains("a integer"));
        assert!(!e[1].clean_phase);
    }
}
