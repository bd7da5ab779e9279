//! `lifeboat`: backup, verified restore and disaster recovery for
//! PostgreSQL-backed Kubernetes platforms. This is the CLI; the repository
//! lives in `lifeboat-repo`. Exit codes: see [`exit`] and `docs/exit-codes.md`.

mod cmd_copy;
mod cmd_demo;
mod cmd_drill;
mod cmd_failover;
mod cmd_kube;
mod cmd_physical;
mod cmd_postgres;
mod cmd_recover;
mod cmd_region;
mod cmd_repo;
mod cmd_serve;
mod cmd_status;
mod cmd_stream;
mod cmd_tables;
mod cmd_unquiesce;
mod cmd_wal;
mod cmd_watchdog;
mod exit;
mod interrupt;
mod output;
mod progress;
mod serve;
mod stderr;
mod table;

use std::path::PathBuf;

// The service layer's shared ground, under the names the commands used when
// it lived here.
pub use lifeboat_ops::config;
use lifeboat_ops::error::Result;
use lifeboat_ops::{context, stream_command};

use clap::{Args, Parser, Subcommand};

/// Backup, verified restore and disaster recovery for PostgreSQL and Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes. The repository secret never comes from a
/// flag value: use `LIFEBOAT_PASSWORD`, `--password-file` or `--key-file`.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Configuration file [default: ./lifeboat.yaml when it exists]
    #[arg(long, global = true, env = "LIFEBOAT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository: a path, file:///path or s3://bucket/prefix
    #[arg(long, global = true, env = "LIFEBOAT_REPO", value_name = "URL")]
    pub repo: Option<String>,
    /// File holding the repository passphrase (mode 0600)
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Key file opening the repository (mode 0600)
    #[arg(long, global = true, env = "LIFEBOAT_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Print exactly one JSON document on stdout: the result, with an
    /// `error` member when the command failed (text goes to stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Wait up to DURATION (e.g. 30m) for a conflicting repository lock,
    /// retrying with backoff, instead of exiting 5 at once
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_RETRY_LOCK",
        value_name = "DURATION"
    )]
    pub retry_lock: Option<String>,
}

impl From<Global> for context::Options {
    fn from(g: Global) -> Self {
        Self {
            config: g.config,
            repo: g.repo,
            password_file: g.password_file,
            key_file: g.key_file,
            json: g.json,
            quiet: g.quiet,
            retry_lock: g.retry_lock,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a repository
    Init(cmd_repo::InitArgs),
    /// Manage the keys that open the repository
    #[command(subcommand)]
    Key(cmd_repo::KeyCommand),
    /// Back up data into the repository
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore data from the repository
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Write a snapshot out as files
    #[command(subcommand)]
    Export(ExportCommand),
    /// Bring quiesced writers back to their recorded replica counts (after a crashed restore)
    Unquiesce(cmd_unquiesce::UnquiesceArgs),
    /// List snapshots
    Snapshots(cmd_repo::SnapshotsArgs),
    /// Copy snapshots to a second repository (incremental, verified, resumable)
    Copy(cmd_copy::CopyArgs),
    /// Verify the repository's integrity
    Check(cmd_repo::CheckArgs),
    /// Apply retention: remove snapshots the policy does not keep
    Forget(cmd_repo::ForgetArgs),
    /// Delete data no snapshot references (safe beside running backups)
    Prune(cmd_repo::PruneArgs),
    /// Remove stale locks
    Unlock(cmd_repo::UnlockArgs),
    /// Repair the repository's metadata from its data
    #[command(subcommand)]
    Repair(cmd_repo::RepairCommand),
    /// Check a live database against a PostgreSQL snapshot's facts (exit 7 when they differ)
    Verify(cmd_postgres::VerifyArgs),
    /// The whole loop on a throwaway local PostgreSQL: backup, corruption, restore, verify
    Demo(cmd_demo::DemoArgs),
    /// The daemon: schedules, retention, metrics, JSON API (docs/daemon.md)
    Serve(cmd_serve::ServeArgs),
    /// Restore the latest snapshot into a scratch target, verify, measure RTO/RPO, record it
    Drill(cmd_drill::DrillArgs),
    /// List the drill records stored in the repository
    Drills(cmd_drill::DrillsArgs),
    /// Per source: RPO exposure and drill RTO against the objectives, with a verdict
    Status(cmd_status::StatusArgs),
    /// The production checklist, evaluated (exit 1 when an automated item fails)
    Readiness(cmd_status::StatusArgs),
    /// Regions: status, replication, traffic steering (docs/regions.md)
    #[command(subcommand)]
    Region(cmd_region::RegionCommand),
    /// WAL archiving: archive_command and restore_command (docs/physical.md)
    #[command(subcommand)]
    Wal(cmd_wal::WalCommand),
    /// Point-in-time recovery of a source's server (in place, or one database) and its records (docs/physical.md)
    #[command(subcommand)]
    Recover(cmd_recover::RecoverCommand),
    /// Internal: started and fed by the agent beside a primary (docs/failover-fence.md)
    #[command(hide = true)]
    FenceWatchdog(cmd_watchdog::WatchdogArgs),
}

impl Command {
    /// Commands that decide for themselves what a Ctrl-C means (they select
    /// on [`interrupt::requested`]): `main` does not end them at the first
    /// Ctrl-C. `restore postgres` must tell an untouched target (writers
    /// brought back, exit 130) from a partial one (writers left stopped, exit
    /// 11), which `main` cannot know.
    fn handles_interrupts(&self) -> bool {
        matches!(
            self,
            Command::Restore(RestoreCommand::Postgres(_))
                | Command::Recover(cmd_recover::RecoverCommand::Postgres(_))
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Back up standard input (any bytes) as a snapshot
    Stream(cmd_stream::BackupStreamArgs),
    /// Back up a PostgreSQL database (pg_dump streamed, facts recorded)
    Postgres(cmd_postgres::BackupPostgresArgs),
    /// Back up Kubernetes objects: ConfigMaps, Secrets, custom resources and their CRDs
    Kube(cmd_kube::BackupKubeArgs),
    /// Physical base backup of a PostgreSQL cluster (pg_basebackup streamed, fixed-size blocks)
    Physical(cmd_physical::BackupPhysicalArgs),
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Write a stream snapshot to standard output (or --output)
    Stream(cmd_stream::RestoreStreamArgs),
    /// Restore a PostgreSQL snapshot: quiesce, pg_restore, verify, resume
    Postgres(cmd_postgres::RestorePostgresArgs),
    /// Apply a Kubernetes snapshot (or an exported directory) to a cluster
    Kube(cmd_kube::RestoreKubeArgs),
    /// Write out the configuration file a snapshot's backup ran with
    Config(cmd_copy::RestoreConfigArgs),
    /// Point-in-time recovery of a physical base backup into an empty directory, verified
    Physical(cmd_physical::RestorePhysicalArgs),
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write a Kubernetes snapshot as kubectl-style YAML files
    Kube(cmd_kube::ExportKubeArgs),
}

fn main() {
    let cli = parse_args();
    set_up_process(&cli);
    let runtime = start_runtime();
    let (code, error) = runtime.block_on(run_until_done(cli));
    // Locks of operations dropped above (Ctrl-C) are deleted by tasks that
    // a runtime shutdown would cancel: let them finish first.
    runtime.block_on(lifeboat_repo::lock::settle_releases(
        std::time::Duration::from_secs(10),
    ));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    // `--json`: the one document, written last (the result kept by
    // `output::print_json`, the error merged in).
    output::finish_json(error.as_ref());
    std::process::exit(code);
}

/// The command line; or the process ends: exit 2 with clap's message for a
/// command line that does not parse (and, with `--json`, a document saying
/// so), 0 after `--help` or `--version`.
fn parse_args() -> Cli {
    let e = match Cli::try_parse() {
        Ok(c) => return c,
        Err(e) => e,
    };
    let code = if e.use_stderr() {
        exit::USAGE
    } else {
        exit::OK
    };
    let _ = e.print();
    if code != exit::OK && std::env::args_os().any(|a| a == "--json") {
        // Even a command line that does not parse answers `--json` with a
        // document (help and version output stay text).
        output::redirect_stdout_for_json();
        let message = first_line(&e.to_string()).unwrap_or_else(|| e.kind().to_string());
        output::finish_json(Some(&exit::json_error(
            exit::Kind::Usage,
            message,
            Some("fix the command line; `lifeboat help` lists the commands and flags".into()),
        )));
    }
    std::process::exit(code);
}

fn first_line(s: &str) -> Option<String> {
    s.lines()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("error: ").to_string())
}

/// What the process sets up before any thread starts: `--json`'s standard
/// output, the allocator, TLS and logging.
fn set_up_process(cli: &Cli) {
    if cli.global.json {
        output::redirect_stdout_for_json();
    }
    limit_malloc_arenas();
    if matches!(cli.command, Command::Backup(_)) {
        release_large_buffers_to_the_os();
    }
    lifeboat_kube::client::install_tls_provider();
    init_logging(matches!(cli.command, Command::Serve(_)));
}

/// The async runtime; or the process ends with exit 1.
fn start_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            eprintln!("error: {message}");
            output::finish_json(Some(&exit::json_error(exit::Kind::Failure, message, None)));
            std::process::exit(exit::FAILURE);
        }
    }
}

/// Runs the command to its exit code (and `--json` error). The first Ctrl-C
/// ends it, unless it decides for itself what a Ctrl-C means
/// ([`Command::handles_interrupts`]).
async fn run_until_done(cli: Cli) -> (i32, Option<output::JsonError>) {
    interrupt::listen();
    let handles_interrupts = cli.command.handles_interrupts();
    let command = async { exit::outcome(run(cli).await) };
    if handles_interrupts {
        return command.await;
    }
    tokio::select! {
        outcome = command => outcome,
        _ = interrupt::requested() => {
            stream_command::kill_running();
            let message = "interrupted: nothing partial was committed; `lifeboat prune` removes any leftover data";
            eprintln!("{message}");
            (exit::INTERRUPTED, Some(exit::json_error(exit::Kind::Interrupted, message.into(), None)))
        }
    }
}

/// One glibc malloc arena for the whole process. By default each thread
/// that allocates may get an arena of its own (up to 8 per core), and a
/// restore's decoded blobs, allocated on tokio's blocking threads and freed
/// on the writer thread, left every arena holding its own high-water mark:
/// restoring a 2.1 GiB dump into PostgreSQL peaked at 163–172 MiB with the
/// default, 107–128 MiB with two arenas and 88–101 MiB with one, at the same
/// speed; backup speed did not change either (docs/benchmarks-postgres.md).
/// Small allocations still come from glibc's per-thread caches. A global
/// allocator was tried instead: with mimalloc, `restore stream` of the same
/// snapshot held 850–930 MiB (glibc default: 146–172 MiB).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called once at start-up
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Lets glibc return freed large buffers (16 MiB packs) to the OS at once
/// instead of keeping them in its arenas: the steady-state RSS of a backup
/// drops from ~70 MiB to ~20–46 MiB (its peak is unchanged). Backups only:
/// for a restore, mapping and faulting in every 4 MiB read buffer anew cost
/// twice the system time and 18 % of the wall time (measured on 512 MiB,
/// same peak RSS either way).
fn release_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called once at start-up
    // before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// The daemon logs at info, as JSON lines when stderr is not a terminal.
fn init_logging(daemon: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG").unwrap_or_else(|_| {
        // kube's client logs every failed request at ERROR; Lifeboat reports
        // those errors itself, with what to do.
        tracing_subscriber::EnvFilter::new(if daemon {
            "info,kube_client=off"
        } else {
            "warn,kube_client=off"
        })
    });
    // Colour only for a person at a terminal; a file or a log collector gets
    // plain text. Writes go through `stderr::Stderr`, which survives a closed
    // pipe (see there); tracing's own report of a failed write would be an
    // `eprintln!`, which panics on that pipe, so it is off.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if daemon && !terminal {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(|| stderr::Stderr)
            .log_internal_errors(false)
            .with_target(false)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| stderr::Stderr)
        .log_internal_errors(false)
        .with_ansi(terminal)
        .with_target(false)
        .init();
}

/// Loads the context and dispatches the command.
async fn run(cli: Cli) -> Result<i32> {
    let reporter = std::sync::Arc::new(progress::CliReporter::new(
        cli.global.quiet || cli.global.json,
    ));
    let ctx = context::Ctx::new(cli.global.into(), reporter).await?;
    match cli.command {
        Command::Init(a) => cmd_repo::init(&ctx, a).await,
        Command::Key(k) => cmd_repo::key(&ctx, k).await,
        Command::Backup(BackupCommand::Stream(a)) => cmd_stream::backup(&ctx, a).await,
        Command::Restore(RestoreCommand::Stream(a)) => cmd_stream::restore(&ctx, a).await,
        Command::Snapshots(a) => cmd_repo::snapshots(&ctx, a).await,
        Command::Copy(a) => cmd_copy::run(&ctx, a).await,
        Command::Restore(RestoreCommand::Config(a)) => cmd_copy::restore_config(&ctx, a).await,
        Command::Check(a) => cmd_repo::check(&ctx, a).await,
        Command::Forget(a) => cmd_repo::forget(&ctx, a).await,
        Command::Prune(a) => cmd_repo::prune(&ctx, a).await,
        Command::Unlock(a) => cmd_repo::unlock(&ctx, a).await,
        Command::Repair(r) => cmd_repo::repair(&ctx, r).await,
        Command::Backup(BackupCommand::Postgres(a)) => cmd_postgres::backup(&ctx, a).await,
        // --table/--schema/--as: the chosen tables, not the whole database.
        Command::Restore(RestoreCommand::Postgres(a)) if a.names_tables() => {
            cmd_tables::restore(&ctx, a).await
        }
        Command::Restore(RestoreCommand::Postgres(a)) => cmd_postgres::restore(&ctx, a).await,
        Command::Verify(a) => cmd_postgres::verify(&ctx, a).await,
        Command::Demo(a) => cmd_demo::run(&ctx, a).await,
        Command::Backup(BackupCommand::Kube(a)) => cmd_kube::backup(&ctx, a).await,
        Command::Backup(BackupCommand::Physical(a)) => cmd_physical::backup(&ctx, a).await,
        Command::Restore(RestoreCommand::Physical(a)) => cmd_physical::restore(&ctx, a).await,
        Command::Restore(RestoreCommand::Kube(a)) => cmd_kube::restore(&ctx, a).await,
        Command::Export(ExportCommand::Kube(a)) => cmd_kube::export(&ctx, a).await,
        Command::Unquiesce(a) => cmd_unquiesce::run(&ctx, a).await,
        Command::Serve(a) => cmd_serve::run(&ctx, a).await,
        Command::Drill(a) => cmd_drill::run(&ctx, a).await,
        Command::Drills(a) => cmd_drill::list(&ctx, a).await,
        Command::Status(a) => cmd_status::status(&ctx, a).await,
        Command::Readiness(a) => cmd_status::readiness(&ctx, a).await,
        Command::Region(r) => cmd_region::run(&ctx, r).await,
        Command::Wal(w) => cmd_wal::run(&ctx, w).await,
        Command::Recover(c) => cmd_recover::run(&ctx, c).await,
        Command::FenceWatchdog(a) => cmd_watchdog::run(&ctx, a).await,
    }
}
