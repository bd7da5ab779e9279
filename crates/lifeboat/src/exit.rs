//! Exit codes. Documented in `docs/exit-codes.md`; scripts rely on them.
//!
//! Every error that reaches `main` has a [`Kind`]; the exit code is the
//! kind's ([`Kind::code`]), never chosen separately. The kind comes from a
//! [`CliError`] (made with [`fail`], [`usage`] or [`error`]) or from the
//! classified errors of the repository and storage layers ([`kind_for`]).

use lifeboat_ops::Error as OpsError;
use lifeboat_repo::{ErrorClass, RepoError};

// Some codes are used only by tests since the daemon's runner moved to
// lifeboat_ops (it classifies by `Kind`); h-shell's conversion removes these.
#[allow(unused_imports)]
pub use lifeboat_ops::error::{
    AT_RISK, AUTH, FAILURE, INCOMPATIBLE, INTEGRITY, INTERRUPTED, Kind, LOCKED, NOT_FOUND, OK,
    STORAGE, USAGE, VERIFY_FAILED,
};

/// The service layer's error under the name the commands used for it.
pub type CliError = OpsError;

/// An error of the kind whose code is `code` (kept for callers that speak
/// in codes; prefer [`error`]).
pub fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
    error(Kind::of_code(code), message)
}

/// An error of `kind`.
pub fn error(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    OpsError::new(kind, message).into()
}

/// An error of `kind` with a hint saying what to do. (Flows in
/// `lifeboat_ops` use `lifeboat_ops::error::error_with_hint`; this one is
/// for the binary's remaining commands, none of which needs it today.)
#[allow(dead_code)]
pub fn error_with_hint(
    kind: Kind,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> anyhow::Error {
    OpsError::new(kind, message).with_hint(hint).into()
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    error(Kind::Usage, message)
}

pub fn kind_for_class(class: ErrorClass) -> Kind {
    Kind::of_class(class)
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
