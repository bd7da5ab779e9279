//! The service layer's error: every flow fails with an [`Error`] that
//! carries its [`Kind`] (one per row of `docs/exit-codes.md`), a message
//! and, optionally, what to do. The kind is decided where the failure is
//! understood — by the flow, or by the `From` conversion of a library's
//! classified error ([`RepoError::class`], the storage error's kind) — and
//! travels with the error; nobody downcasts a chain to find it later.
//!
//! [`Context`] adds what was being done (`.context("reading the index")`)
//! the way `anyhow` does, keeping the kind and the hint of the cause.

use std::fmt;

use lifeboat_repo::storage::StorageError;
use lifeboat_repo::{ErrorClass, RepoError};
use serde::Serialize;

pub const OK: i32 = 0;
/// Anything not covered below.
pub const FAILURE: i32 = 1;
/// Bad flags, bad configuration, bad input.
pub const USAGE: i32 = 2;
/// Repository, snapshot or key not found.
pub const NOT_FOUND: i32 = 3;
/// Stored data failed verification (check found problems, restore refused).
pub const INTEGRITY: i32 = 4;
/// Another process holds a conflicting lock.
pub const LOCKED: i32 = 5;
/// Wrong passphrase or key file.
pub const AUTH: i32 = 6;
/// A restored database differs from the facts recorded at backup; a drill failed.
pub const VERIFY_FAILED: i32 = 7;
/// Storage unreachable, permission denied, disk full.
pub const STORAGE: i32 = 8;
/// The repository was written by a newer Lifeboat.
pub const INCOMPATIBLE: i32 = 9;
/// `status`: a source is at risk (RPO exposure or drills against objectives).
pub const AT_RISK: i32 = 10;
/// `restore postgres` failed or was interrupted after it had begun replacing
/// the target: the target is partial, the writers are left stopped. Wins over
/// the code of the cause (130, 4, 8, …): what matters is the target's state.
pub const PARTIAL: i32 = 11;
/// Interrupted by SIGINT/SIGTERM (for `restore postgres`: before the target
/// was touched).
pub const INTERRUPTED: i32 = 130;

/// What kind of failure an error is: one per row of `docs/exit-codes.md`
/// (but `0`). Shown as `error.kind` in `--json` output (snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Failure,
    Usage,
    NotFound,
    Integrity,
    Locked,
    Auth,
    VerifyFailed,
    Storage,
    Incompatible,
    AtRisk,
    Partial,
    Interrupted,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Failure,
        Kind::Usage,
        Kind::NotFound,
        Kind::Integrity,
        Kind::Locked,
        Kind::Auth,
        Kind::VerifyFailed,
        Kind::Storage,
        Kind::Incompatible,
        Kind::AtRisk,
        Kind::Partial,
        Kind::Interrupted,
    ];

    /// The documented exit code.
    pub fn code(self) -> i32 {
        match self {
            Kind::Failure => FAILURE,
            Kind::Usage => USAGE,
            Kind::NotFound => NOT_FOUND,
            Kind::Integrity => INTEGRITY,
            Kind::Locked => LOCKED,
            Kind::Auth => AUTH,
            Kind::VerifyFailed => VERIFY_FAILED,
            Kind::Storage => STORAGE,
            Kind::Incompatible => INCOMPATIBLE,
            Kind::AtRisk => AT_RISK,
            Kind::Partial => PARTIAL,
            Kind::Interrupted => INTERRUPTED,
        }
    }

    /// The kind of a documented exit code; an undocumented one is `Failure`.
    pub fn of_code(code: i32) -> Kind {
        Kind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .unwrap_or(Kind::Failure)
    }

    /// What to do, when the error itself does not say more: the "what to
    /// do" column of `docs/exit-codes.md`, shortened.
    pub fn default_hint(self) -> &'static str {
        match self {
            Kind::Failure => "read the message",
            Kind::Usage => "fix the command or the configuration (`lifeboat help`)",
            Kind::NotFound => "check --repo, `lifeboat snapshots` and `lifeboat key list`",
            Kind::Integrity => {
                "do not trust the named snapshots; restore another snapshot and keep the repository for investigation"
            }
            Kind::Locked => {
                "wait, or pass --retry-lock DURATION; if the holder is gone, run the `lifeboat unlock --id ID` the message names"
            }
            Kind::Auth => {
                "check LIFEBOAT_PASSWORD, --password-file, --key-file and the secret files' modes"
            }
            Kind::VerifyFailed => "see the differences reported",
            Kind::Storage => "fix the storage; nothing partial was committed",
            Kind::Incompatible => "upgrade Lifeboat",
            Kind::AtRisk => "see the reasons; run the late backup or a drill",
            Kind::Partial => {
                "the target is partial and its writers are left stopped: restore again, then bring the writers back"
            }
            Kind::Interrupted => "run the command again; `lifeboat prune` removes leftovers",
        }
    }

    /// The kind of a repository or storage failure class.
    pub fn of_class(class: ErrorClass) -> Kind {
        match class {
            ErrorClass::NotFound => Kind::NotFound,
            ErrorClass::Incompatible => Kind::Incompatible,
            ErrorClass::Auth => Kind::Auth,
            ErrorClass::Locked => Kind::Locked,
            ErrorClass::Integrity => Kind::Integrity,
            ErrorClass::Usage => Kind::Usage,
            ErrorClass::Storage => Kind::Storage,
            ErrorClass::Other => Kind::Failure,
        }
    }
}

/// A flow's failure: its kind (hence exit code), the whole message (what was
/// being done, then the cause) and, optionally, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// What to do; `None`: the kind's [`Kind::default_hint`].
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// A failure no row of the table covers more precisely (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(Kind::Failure, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same failure, of another kind (e.g. a cause's failure that, for
    /// this flow, means the target is partial).
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Prefixes what was being done: `"{context}: {message}"`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn code(&self) -> i32 {
        self.kind.code()
    }

    /// What to do: the hint given, else the kind's default.
    pub fn hint(&self) -> String {
        self.hint
            .clone()
            .unwrap_or_else(|| self.kind.default_hint().to_string())
    }

    /// An error of `kind` from any error: its message and each cause in its
    /// `source()` chain not already in it.
    pub fn from_std(kind: Kind, err: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(kind, chain_message(err))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `err`'s message followed by each cause in its chain not already in it.
pub fn chain_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(&format!(": {text}"));
        }
        cause = c.source();
    }
    msg
}

/// A [`Kind::Failure`] error from a format string: `failure!("cannot {x}")`
/// (what `anyhow!` was).
#[macro_export]
macro_rules! failure {
    ($($arg:tt)*) => {
        $crate::error::Error::failure(format!($($arg)*))
    };
}

/// Returns a [`Kind::Failure`] error from a format string (what `bail!` was).
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::failure(format!($($arg)*)).into())
    };
}

/// An error of the kind whose code is `code` (kept for callers that speak
/// in codes; prefer [`error`]).
pub fn fail(code: i32, message: impl Into<String>) -> Error {
    Error::new(Kind::of_code(code), message)
}

/// An error of `kind`.
pub fn error(kind: Kind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}

/// An error of `kind` with a hint saying what to do.
pub fn error_with_hint(kind: Kind, message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::new(kind, message).with_hint(hint)
}

pub fn usage(message: impl Into<String>) -> Error {
    Error::usage(message)
}

impl From<RepoError> for Error {
    fn from(e: RepoError) -> Self {
        Error::from_std(Kind::of_class(e.class()), &e)
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        let kind = Kind::of_class(lifeboat_repo::error::class_of_storage(&e));
        Error::from_std(kind, &e)
    }
}

/// Library errors without a finer class: exit 1, as an unclassified error
/// always was. A flow that knows better maps them itself (e.g. a connection
/// failure to exit 8 with a hint).
macro_rules! failure_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::from_std(Kind::Failure, &e)
            }
        })*
    };
}

failure_from!(
    std::io::Error,
    serde_json::Error,
    lifeboat_kube::error::KubeError,
    lifeboat_kube::quiesce::QuiesceError,
    lifeboat_postgres::conn::ConnError,
    lifeboat_postgres::dump::DumpError,
    lifeboat_postgres::facts::FactsError,
    lifeboat_postgres::cluster::ClusterError,
    tokio::task::JoinError,
);

/// Why a backup failed, and whether the repository's side failed (starting
/// the session, storing, committing) rather than the source (the database,
/// the cluster, the command) or the request: the daemon names the two apart
/// (failure reason `repository`, `storage` or `locked` against `dump`,
/// `command`, `auth`, ...). One type for every kind of source.
#[derive(Debug)]
pub struct BackupFailure {
    pub error: Error,
    /// The repository's operation (starting, storing, committing) failed.
    pub repository: bool,
}

impl BackupFailure {
    /// A failure of the repository's side.
    pub(crate) fn repository(e: impl Into<Error>) -> Self {
        Self {
            error: e.into(),
            repository: true,
        }
    }
}

impl From<Error> for BackupFailure {
    fn from(error: Error) -> Self {
        Self {
            error,
            repository: false,
        }
    }
}

impl From<BackupFailure> for Error {
    fn from(f: BackupFailure) -> Self {
        f.error
    }
}

/// `.context(…)` / `.with_context(|| …)` for results whose error converts
/// into an [`Error`], and for options (a `None` becomes a failure).
pub trait Context<T> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T>;
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T> {
        self.ok_or_else(|| Error::failure(context.to_string()))
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.ok_or_else(|| Error::failure(f().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::of_code(k.code()), k);
        }
        assert_eq!(Kind::of_code(42), Kind::Failure);
    }

    #[test]
    fn the_code_comes_from_the_kind_and_survives_context() {
        let e = fail(LOCKED, "held");
        assert_eq!(e.kind(), Kind::Locked);
        let e: Result<()> = Err(e);
        let e = e.context("while pruning").unwrap_err();
        assert_eq!(e.code(), LOCKED);
        assert_eq!(e.message, "while pruning: held");
        assert_eq!(e.hint(), Kind::Locked.default_hint());
        let e = error_with_hint(Kind::NotFound, "no such source", "list them");
        assert_eq!(e.code(), NOT_FOUND);
        assert_eq!(e.hint(), "list them");
    }

    #[test]
    fn a_repository_error_keeps_its_class() {
        let e: Error = RepoError::Locked("by backup on host a".into()).into();
        assert_eq!(e.kind(), Kind::Locked);
        assert!(e.message.contains("by backup on host a"), "{}", e.message);
    }

    #[test]
    fn an_io_error_is_a_plain_failure_with_its_cause() {
        let r: std::result::Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let e = r.context("writing the staging file").unwrap_err();
        assert_eq!(e.kind(), Kind::Failure);
        assert_eq!(e.message, "writing the staging file: disk on fire");
    }

    #[test]
    fn serialized_kinds_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&Kind::VerifyFailed).unwrap(),
            "\"verify_failed\""
        );
    }
}
