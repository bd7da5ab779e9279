//! The bed's one error type.

use std::path::PathBuf;

/// Errors of building, faulting or tearing down a bed. Each message says
/// what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BedError {
    #[error(
        "the test bed needs root (it creates network namespaces); run the tests as root, as CI does"
    )]
    NotRoot,
    #[error(
        "`{tool}` not found (Debian package `{package}`); run scripts/test.sh, which installs it"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error(
        "the delay program lifeboat-netdelay was not found (looked at {looked}); build it with `cargo build --profile ci -p lifeboat-testbed` (the profile scripts/test.sh builds the workspace with) or set LIFEBOAT_NETDELAY_BIN"
    )]
    NoNetdelay { looked: String },
    #[error("{argv} failed ({status}): {stderr}")]
    Command {
        argv: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("invalid bed spec: {0}")]
    Spec(String),
    #[error("no site named {0:?} in this bed")]
    NoSuchSite(String),
    #[error("{what} did not happen within {secs} s{detail}")]
    Timeout {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("PostgreSQL in site {site}: {message}; its log is {log}")]
    Postgres {
        site: String,
        message: String,
        log: PathBuf,
    },
    #[error("etcd: {0}")]
    Etcd(String),
}

impl BedError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BedError {
        let what = what.into();
        move |source| BedError::Io { what, source }
    }
}
