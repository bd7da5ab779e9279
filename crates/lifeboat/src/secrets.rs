//! Where the repository secret comes from: `--key-file`, `--password-file`,
//! `LIFEBOAT_PASSWORD`, or the config file's reference — never a flag value.
//! Files holding secrets must not be readable by group or others.

use std::path::Path;

use anyhow::{Context, Result};
use lifeboat_repo::Secret;

use crate::exit::{AUTH, fail, usage};

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error(
        "it is readable by group or others (mode {mode:o}); run `chmod 600 {path}` and try again"
    )]
    TooOpen { path: String, mode: u32 },
    /// A directory, device or pipe: advising on its mode would mislead.
    #[error("it is not a regular file; give the path of the file that holds the secret")]
    NotAFile,
    #[error("{0}")]
    Unreadable(String),
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("it is empty")]
    Empty,
}

/// Reads a secret file, refusing one that group or others can read.
pub fn read_secret_bytes(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| SecretFileError::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile);
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    std::fs::read(path).map_err(|e| SecretFileError::Unreadable(e.to_string()))
}

/// A secret held as text in a file: one trailing newline is not part of it.
pub fn read_secret_text(path: &Path) -> Result<String, SecretFileError> {
    let mut s =
        String::from_utf8(read_secret_bytes(path)?).map_err(|_| SecretFileError::NotText)?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    if s.is_empty() {
        return Err(SecretFileError::Empty);
    }
    Ok(s)
}

fn secret_file_error(what: &str, path: &Path, e: SecretFileError) -> anyhow::Error {
    let msg = format!("the {what} {}: {e}", path.display());
    match e {
        SecretFileError::TooOpen { .. } => fail(AUTH, msg),
        _ => usage(msg),
    }
}

/// A passphrase from a file.
pub fn passphrase_from_file(path: &Path) -> Result<Secret> {
    read_secret_text(path)
        .map(Secret::Passphrase)
        .map_err(|e| secret_file_error("password file", path, e))
}

pub fn key_from_file(path: &Path) -> Result<Secret> {
    let bytes = read_secret_bytes(path).map_err(|e| secret_file_error("key file", path, e))?;
    Secret::key_file(bytes).map_err(|e| fail(AUTH, format!("{}: {e}", path.display())))
}

/// Writes a new secret file with mode 0600, refusing to overwrite.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// The passphrase in an environment variable, if set and non-empty.
pub fn passphrase_from_env(var: &str) -> Option<Secret> {
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::Passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_not_a_secret_file_whatever_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_secret_bytes(dir.path()).unwrap_err();
        assert!(matches!(err, SecretFileError::NotAFile), "{err}");
        assert!(!err.to_string().contains("chmod"), "{err}");
    }
}
