//! Exit codes. Documented in `docs/exit-codes.md`; scripts rely on them.

use lifeboat_repo::{ErrorClass, RepoError};

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

/// An error the CLI reports with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

pub fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
    CliError {
        code,
        message: message.into(),
    }
    .into()
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    fail(USAGE, message)
}

pub fn code_for_class(class: ErrorClass) -> i32 {
    match class {
        ErrorClass::NotFound => NOT_FOUND,
        ErrorClass::Incompatible => INCOMPATIBLE,
        ErrorClass::Auth => AUTH,
        ErrorClass::Locked => LOCKED,
        ErrorClass::Integrity => INTEGRITY,
        ErrorClass::Usage => USAGE,
        ErrorClass::Storage => STORAGE,
        ErrorClass::Other => FAILURE,
    }
}

/// The exit code for any error that reaches `main`.
pub fn code_for(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.code;
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return code_for_class(r.class());
        }
        if let Some(s) = cause.downcast_ref::<lifeboat_repo::storage::StorageError>() {
            return match s.kind {
                lifeboat_repo::storage::StorageErrorKind::NotFound => NOT_FOUND,
                _ => STORAGE,
            };
        }
    }
    FAILURE
}
