//! Exit codes. Documented in `docs/exit-codes.md`; scripts rely on them.
//!
//! Every error that reaches `main` has a [`Kind`]; the exit code is the
//! kind's ([`Kind::code`]), never chosen separately. The kind comes from a
//! [`CliError`] (made with [`fail`], [`usage`] or [`error`]) or from the
//! classified errors of the repository and storage layers ([`kind_for`]).

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
                "wait, or pass --retry-lock DURATION; if the holder is gone run `lifeboat unlock`"
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
}

/// An error the CLI reports with a specific kind (hence exit code) and,
/// optionally, a hint saying what to do.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    /// What to do; `None`: the kind's [`Kind::default_hint`].
    pub hint: Option<String>,
}

/// An error of the kind whose code is `code` (kept for callers that speak
/// in codes; prefer [`error`]).
pub fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
    error(Kind::of_code(code), message)
}

/// An error of `kind`.
pub fn error(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    CliError {
        kind,
        message: message.into(),
        hint: None,
    }
    .into()
}

/// An error of `kind` with a hint saying what to do.
pub fn error_with_hint(
    kind: Kind,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> anyhow::Error {
    CliError {
        kind,
        message: message.into(),
        hint: Some(hint.into()),
    }
    .into()
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    error(Kind::Usage, message)
}

pub fn kind_for_class(class: ErrorClass) -> Kind {
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

/// The kind of any error that reaches `main`: the first classified error
/// in its chain (outermost first), else `Failure`.
pub fn kind_for(err: &anyhow::Error) -> Kind {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.kind;
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return kind_for_class(r.class());
        }
        if let Some(s) = cause.downcast_ref::<lifeboat_repo::storage::StorageError>() {
            return kind_for_class(lifeboat_repo::error::class_of_storage(s));
        }
    }
    Kind::Failure
}

/// The exit code for any error that reaches `main`: its kind's.
pub fn code_for(err: &anyhow::Error) -> i32 {
    kind_for(err).code()
}

/// What to do about `err`: the hint of the first [`CliError`] in its chain
/// that has one, else its kind's default.
pub fn hint_for(err: &anyhow::Error) -> String {
    err.chain()
        .filter_map(|c| c.downcast_ref::<CliError>())
        .find_map(|c| c.hint.clone())
        .unwrap_or_else(|| kind_for(err).default_hint().to_string())
}

/// The whole message of `err`: its own, then each cause not already in it.
pub fn message_for(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(&format!(": {c}"));
        }
    }
    msg
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
    fn the_code_comes_from_the_kind() {
        let e = fail(LOCKED, "held");
        assert_eq!(kind_for(&e), Kind::Locked);
        assert_eq!(code_for(&e), LOCKED);
        let e = e.context("while pruning");
        assert_eq!(code_for(&e), LOCKED);
        assert_eq!(hint_for(&e), Kind::Locked.default_hint());
        let e = error_with_hint(Kind::NotFound, "no such source", "list them");
        assert_eq!(code_for(&e), NOT_FOUND);
        assert_eq!(hint_for(&e), "list them");
    }

    #[test]
    fn serialized_kinds_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&Kind::VerifyFailed).unwrap(),
            "\"verify_failed\""
        );
    }
}
