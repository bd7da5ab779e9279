//! Exit codes. Documented in `docs/exit-codes.md`; scripts rely on them.
//!
//! Every command returns a [`lifeboat_ops::error::Result`]: its error
//! carries a [`Kind`], decided where the failure was understood, and the
//! exit code is the kind's ([`Kind::code`]), never chosen separately.
//! [`outcome`] turns a command's result into the process's exit code, the
//! error on standard error and the `error` member of `--json`'s document.

use lifeboat_ops::error::{Error, Result};

pub use lifeboat_ops::error::{FAILURE, INTERRUPTED, Kind, OK, USAGE};

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

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_ops::error::{AT_RISK, INTEGRITY, LOCKED, NOT_FOUND};

    #[test]
    fn codes_and_kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::of_code(k.code()), k);
        }
        assert_eq!(Kind::of_code(42), Kind::Failure);
    }

    #[test]
    fn the_code_comes_from_the_kind() {
        let e = Error::new(Kind::Locked, "held");
        assert_eq!(e.kind, Kind::Locked);
        assert_eq!(e.code(), LOCKED);
        let e = e.context("while pruning");
        assert_eq!(e.code(), LOCKED);
        assert_eq!(e.hint(), Kind::Locked.default_hint());
        assert_eq!(e.message, "while pruning: held");
        let e = lifeboat_ops::error::error_with_hint(Kind::NotFound, "no such source", "list them");
        assert_eq!(e.code(), NOT_FOUND);
        assert_eq!(e.hint(), "list them");
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
