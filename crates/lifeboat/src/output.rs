//! Shared output helpers: human-readable sizes, and the `--json` document.
//!
//! With `--json`, standard output carries exactly one JSON document, written
//! once by `main` when the command ends ([`finish_json`]): the command's
//! result (handed over with [`print_json`], which keeps it), with an `error`
//! member `{kind, message, hint, exit_code}` when the command failed; or
//! `{"error": {…}}` alone when there is no result. To keep anything else off
//! that stream, [`redirect_stdout_for_json`] points file descriptor 1 at
//! standard error at start-up (human text, stray prints and child processes'
//! output all land there) and keeps the real standard output for the
//! document. See "JSON output" in docs/exit-codes.md.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

use lifeboat_ops::error::{Kind, Result};

pub use lifeboat_ops::report::human_bytes;

/// The `--json` state: the real standard output and the result kept so far.
struct JsonOut {
    /// The process's standard output before fd 1 was pointed at stderr.
    stdout: Option<OwnedFd>,
    result: Option<Value>,
}

static JSON: Mutex<Option<JsonOut>> = Mutex::new(None);

/// `--json`: keeps the real standard output for the document and sends
/// everything else written to fd 1 to standard error. Call once, before
/// anything is printed or any thread started.
pub fn redirect_stdout_for_json() {
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok();
    if stdout.is_some() {
        // SAFETY: dup2 on two descriptors this process owns (0..=2 are open
        // for the whole run); nothing has been written to stdout yet.
        unsafe {
            libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
        }
    }
    *JSON.lock().unwrap_or_else(|e| e.into_inner()) = Some(JsonOut {
        stdout,
        result: None,
    });
}

/// Whether [`redirect_stdout_for_json`] was called (`--json`).
pub fn json_mode() -> bool {
    JSON.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Hands the command's result over. With `--json` it is kept and written
/// by `main` at the end (a later result replaces an earlier one); without,
/// it is printed as pretty JSON on stdout at once.
pub fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let mut guard = JSON.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_mut() {
        Some(out) => out.result = Some(serde_json::to_value(v)?),
        None => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

/// A failure as `--json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JsonError {
    pub kind: Kind,
    pub message: String,
    pub hint: String,
    pub exit_code: i32,
}

/// The one document: the result, with `error` merged in when the command
/// failed. A result that is not an object (a list) is wrapped as
/// `{"result": …, "error": …}` on failure; no result at all gives
/// `{"error": …}`, and a success without one gives `{}`.
pub fn document(result: Option<Value>, error: Option<&JsonError>) -> Value {
    let Some(error) = error else {
        return result.unwrap_or_else(|| Value::Object(Map::new()));
    };
    let error = serde_json::to_value(error).unwrap_or(Value::Null);
    let mut doc = match result {
        Some(Value::Object(m)) => m,
        Some(other) => Map::from_iter([("result".to_string(), other)]),
        None => Map::new(),
    };
    doc.insert("error".into(), error);
    Value::Object(doc)
}

/// Writes the document on the real standard output, once (`--json` only;
/// does nothing otherwise).
pub fn finish_json(error: Option<&JsonError>) {
    let mut guard = JSON.lock().unwrap_or_else(|e| e.into_inner());
    let Some(out) = guard.as_mut() else {
        return;
    };
    let doc = document(out.result.take(), error);
    let Some(fd) = out.stdout.take() else {
        return;
    };
    let mut file = std::fs::File::from(fd);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    if let Err(e) = writeln!(file, "{text}").and_then(|()| file.flush()) {
        eprintln!("error: cannot write the JSON result to standard output: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(1 << 30), "1.0 GiB");
    }

    #[test]
    fn the_error_is_merged_into_the_result() {
        let e = JsonError {
            kind: Kind::Integrity,
            message: "bad".into(),
            hint: "do this".into(),
            exit_code: 4,
        };
        let doc = document(Some(json!({"snapshots": 2})), Some(&e));
        assert_eq!(doc["snapshots"], 2);
        assert_eq!(doc["error"]["kind"], "integrity");
        assert_eq!(doc["error"]["exit_code"], 4);
        let doc = document(Some(json!([1, 2])), Some(&e));
        assert_eq!(doc["result"], json!([1, 2]));
        assert_eq!(doc["error"]["hint"], "do this");
        let doc = document(None, Some(&e));
        assert_eq!(doc.as_object().unwrap().len(), 1);
        assert_eq!(document(None, None), json!({}));
        assert_eq!(document(Some(json!([])), None), json!([]));
    }
}
