//! Helpers of the configuration's unit tests, shared by the modules of
//! `config/` (each module's tests stay beside what they test).

use std::path::{Path, PathBuf};

use super::{ConfigError, parse};

pub(crate) fn parse_err(text: &str) -> ConfigError {
    parse(text, "test.yaml").expect_err("should be refused")
}

/// The configuration is refused by validation with exactly these
/// problems (each needle found in one of them, and no other problem).
pub(crate) fn assert_refused_with(text: &str, needles: &[&str]) {
    let e = parse_err(text);
    let ConfigError::Invalid { problems, .. } = &e else {
        panic!("expected validation errors, got {e}");
    };
    let all = problems.join("\n");
    for needle in needles {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(problems.len(), needles.len(), "{all}");
}

/// The configuration is refused by validation with exactly these located
/// problems, `(line, column, needle)` in the order reported, and no other.
pub(crate) fn assert_located(text: &str, want: &[(u64, u64, &str)]) {
    let e = parse_err(text);
    let ConfigError::Invalid {
        problems, located, ..
    } = &e
    else {
        panic!("expected validation errors, got {e}");
    };
    assert!(problems.is_empty(), "unlocated problems: {problems:?}\n{e}");
    let got: Vec<(u64, u64, &str)> = located
        .iter()
        .map(|p| (p.line, p.column, p.message.as_str()))
        .collect();
    assert_eq!(got.len(), want.len(), "{e}");
    for ((line, column, message), (wl, wc, needle)) in got.iter().zip(want) {
        assert!(
            message.contains(needle),
            "missing {needle:?} in {message:?}\n{e}"
        );
        assert_eq!((*line, *column), (*wl, *wc), "{message}\n{e}");
    }
}

pub(crate) fn location(e: &ConfigError) -> (u64, u64) {
    match e {
        ConfigError::Parse { line, column, .. } => (*line, *column),
        other => panic!("expected a located parse error, got {other}"),
    }
}

pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}
