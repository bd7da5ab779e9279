//! Exit codes. Documented in `docs/exit-codes.md`; scripts rely on them.
//!
//! Every command returns a [`lifeboat_ops::error::Result`]: its error
//! carries a [`Kind`], decided where the failure was understood, and the
//! exit code is the kind's ([`Kind::code`]), never chosen separately.
//! [`outcome`] turns a command's result into the process's exit code, the
//! error on standard error and the `error` member of `--json`'s document.

use lifeboat_ops::error::{Error, Result};

// Some codes are used only by tests since the daemon's runner moved to
// lifeboat_ops (it classifies by `Kind`); h-shell's conversion removes these.
#[allow(unused_imports)]
pub use lifeboat_ops::error::{
    AUTH, FAILURE, INCOMPATIBLE, INTEGRITY, INTERRUPTED, Kind, LOCKED, NOT_FOUND, OK, STORAGE,
    USAGE, VERIFY_FAILED,
};

use crate::output::JsonError;

/// How a command ended: the exit code and, unless it succeeded, the error as
/// `--json` shows it. A failure is also written on standard error, with
/// what to do when the error says it.
pub fn outcome(result: Result<i32>) -> (i32, Option<JsonError>) {
    match result {
        Ok(OK) => (OK, None),
        // A command that ended with a code but no error: say which kind of
        // failure it was.
        Ok(code) => {
            let kind = Kind::of_code(code);
            let message = format!("the command failed with exit code {code}");
            (code, Some(json_error(kind, message, None)))
        }
        Err(e) => {
            report(&e);
            let hint = e.hint();
            (e.code(), Some(json_error(e.kind, e.message, Some(hint))))
        }
    }
}

/// An error as `--json` shows it; without a hint, the kind's default.
pub fn json_error(kind: Kind, message: String, hint: Option<String>) -> JsonError {
    JsonError {
        kind,
        message,
        hint: hint.unwrap_or_else(|| kind.default_hint().to_string()),
        exit_code: kind.code(),
    }
}

/// The error on stderr, with what to do when the error says it (a kind's
/// default hint is left to `--json` and docs/exit-codes.md).
fn report(e: &Error) {
    eprintln!("error: {}", e.message);
    if let Some(hint) = &e.hint {
        eprintln!("hint: {hint}");
    }
}

// ---------------------------------------------------------------------------
// TEMPORARY (issue 18, phase 2): the anyhow path.
//
// The commands in drill/, cmd_drill.rs, cmd_demo.rs, serve/ and cmd_serve.rs
// still return `anyhow::Result` while other helpers move them into
// `lifeboat_ops`. Until their work is merged, this section keeps them
// compiling and exiting as before: `fail`/`usage` make an anyhow error that
// carries a `lifeboat_ops::Error`, and `main` turns their results into the
// typed error with [`legacy`], which finds the kind by downcasting the
// chain, as `exit.rs` always did. The integrator deletes this whole section
// (and the `legacy(…)` wrappers in main.rs) once those files return
// `lifeboat_ops::error::Result`; nothing else in the binary uses it.
// ---------------------------------------------------------------------------

/// TEMPORARY: an anyhow error of the kind whose code is `code`.
pub fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
    Error::new(Kind::of_code(code), message).into()
}

/// TEMPORARY: an anyhow usage error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Error::usage(message).into()
}

/// TEMPORARY: the exit code of an anyhow error ([`into_error`]'s kind).
pub fn code_for(err: &anyhow::Error) -> i32 {
    kind_for(err).code()
}

/// TEMPORARY: the kind of an anyhow error: the first classified error in its
/// chain (outermost first), else `Failure`.
fn kind_for(err: &anyhow::Error) -> Kind {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Error>() {
            return c.kind;
        }
        if let Some(r) = cause.downcast_ref::<lifeboat_repo::RepoError>() {
            return Kind::of_class(r.class());
        }
        if let Some(s) = cause.downcast_ref::<lifeboat_repo::storage::StorageError>() {
            return Kind::of_class(lifeboat_repo::error::class_of_storage(s));
        }
    }
    Kind::Failure
}

/// TEMPORARY: the typed error of an anyhow error: the kind of the first
/// classified error in its chain, the whole message (its own, then each
/// cause not already in it), the hint of the first `lifeboat_ops::Error` in
/// the chain that has one.
pub fn into_error(err: anyhow::Error) -> Error {
    let hint = err
        .chain()
        .filter_map(|c| c.downcast_ref::<Error>())
        .find_map(|c| c.hint.clone());
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message.push_str(&format!(": {c}"));
        }
    }
    Error {
        kind: kind_for(&err),
        message,
        hint,
    }
}

/// TEMPORARY: an error `main` can report, whichever error type the command
/// returns today (anyhow, or already the typed one).
pub trait LegacyError {
    fn into_ops(self) -> Error;
}

impl LegacyError for anyhow::Error {
    fn into_ops(self) -> Error {
        into_error(self)
    }
}

impl LegacyError for Error {
    fn into_ops(self) -> Error {
        self
    }
}

/// TEMPORARY: a not yet converted command's result as a typed one.
pub fn legacy<T, E: LegacyError>(result: std::result::Result<T, E>) -> Result<T> {
    result.map_err(LegacyError::into_ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_ops::error::AT_RISK;

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
        let e = into_error(e);
        assert_eq!(e.hint(), Kind::Locked.default_hint());
        assert_eq!(e.message, "while pruning: held");
        let e: anyhow::Error =
            lifeboat_ops::error::error_with_hint(Kind::NotFound, "no such source", "list them")
                .into();
        assert_eq!(code_for(&e), NOT_FOUND);
        assert_eq!(into_error(e).hint(), "list them");
    }

    #[test]
    fn a_typed_error_ends_with_its_kind_code_and_hint() {
        let e = Error::new(Kind::Integrity, "bad pack").with_hint("restore another");
        let (code, json) = outcome(Err(e));
        let json = json.expect("an error");
        assert_eq!(code, INTEGRITY);
        assert_eq!(json.kind, Kind::Integrity);
        assert_eq!(json.exit_code, INTEGRITY);
        assert_eq!(json.hint, "restore another");
        let (code, json) = outcome(Err(Error::usage("bad flag")));
        assert_eq!(code, USAGE);
        assert_eq!(json.expect("an error").hint, Kind::Usage.default_hint());
        assert_eq!(outcome(Ok(OK)).0, OK);
        let (code, json) = outcome(Ok(AT_RISK));
        assert_eq!(code, AT_RISK);
        assert_eq!(json.expect("a kind").kind, Kind::AtRisk);
    }

    #[test]
    fn serialized_kinds_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&Kind::VerifyFailed).unwrap(),
            "\"verify_failed\""
        );
    }
}
