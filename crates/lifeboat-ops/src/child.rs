//! Child processes of the binary (quiesce commands; `stream.command` should
//! come here too): started with a cleared environment holding only what
//! every child inherits (`PATH`, `LANG`, `LC_*`, `TZ`:
//! [`lifeboat_postgres::tools::child_env`], the one list) and the names the
//! configuration gives that command (`env: [KUBECONFIG, HOME]`), with the
//! values of Lifeboat's own environment. So `LIFEBOAT_PASSWORD`, the API
//! token, `AWS_*` and the like never reach a command that did not ask for
//! them by name. Policy: "Child processes" in `docs/postgres.md`.

use std::ffi::OsStr;

/// A `tokio` command for `program` with the environment described above.
pub fn command<S: AsRef<str>>(
    program: impl AsRef<OsStr>,
    env_names: &[S],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear()
        .envs(lifeboat_postgres::tools::child_env(env_names));
    cmd
}

/// Lifeboat's stderr as a child's stdout: a child's output is diagnostics,
/// and stdout belongs to Lifeboat's result (`--json`). Falls back to
/// inheriting stdout if the descriptor cannot be duplicated.
pub fn stderr_as_stdout() -> std::process::Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => std::process::Stdio::from(fd),
        Err(_) => std::process::Stdio::inherit(),
    }
}
