//! Where the repository secret comes from: `--key-file`, `--password-file`,
//! `LIFEBOAT_PASSWORD`, or the config file's reference — never a flag value.
//! Files holding secrets must not be readable by group or others.

use std::path::Path;

use anyhow::{Context, Result};
use lifeboat_repo::Secret;

use crate::exit::{AUTH, fail, usage};

/// Reads a secret file, refusing one that group or others can read.
pub fn read_secret_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| usage(format!("cannot read the {what} {}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(fail(
            AUTH,
            format!(
                "the {what} {} is readable by group or others (mode {:o}); run `chmod 600 {}` and try again",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        ));
    }
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// A passphrase from a file: one trailing newline is not part of it.
pub fn passphrase_from_file(path: &Path) -> Result<Secret> {
    let bytes = read_secret_file(path, "password file")?;
    let mut s = String::from_utf8(bytes).map_err(|_| {
        usage(format!(
            "the password file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    if s.is_empty() {
        return Err(usage(format!(
            "the password file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::Passphrase(s))
}

pub fn key_from_file(path: &Path) -> Result<Secret> {
    let bytes = read_secret_file(path, "key file")?;
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
