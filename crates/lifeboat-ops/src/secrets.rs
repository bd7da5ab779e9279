//! Where the repository secret comes from: `--key-file`, `--password-file`,
//! `LIFEBOAT_PASSWORD`, or the config file's reference — never a flag value.
//! Files holding secrets must not be readable by group or others.
//!
//! Every secret file (the repository's password or key file, a source's or
//! S3's `{file: …}` reference, the API token's) is refused the same way when
//! its mode is too open: exit 2 (usage: the operator's setup must change),
//! never 6, which means the secret itself is wrong.

use std::path::Path;

use crate::error::{Context, Result};
use lifeboat_repo::Secret;
use zeroize::Zeroizing;

use crate::error::usage;

/// What to do about a secret file whose mode is too open, wherever it came
/// from (a Kubernetes Secret volume being the usual surprise).
pub fn too_open_advice(path: &str, mode: u32) -> String {
    format!(
        "it is readable by group or others (mode {mode:04o}); a secret file must be mode 0600 or stricter: \
         run `chmod 600 {path}`. If it is a Kubernetes Secret mounted as a file: those are mode 0644 \
         unless the volume sets `defaultMode: 0400`, and a pod `fsGroup` makes them group-readable \
         whatever defaultMode says; set `defaultMode: 0400` on the Secret volume and no `fsGroup`, \
         or pass the secret as an environment variable from a `secretKeyRef` (or a \
         `kubernetes_secret` reference in the configuration), as deploy/deployment.yaml does"
    )
}

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{}", too_open_advice(path, *mode))]
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
    let bytes = Zeroizing::new(read_secret_bytes(path)?);
    let mut s = String::from_utf8(bytes.to_vec()).map_err(|_| SecretFileError::NotText)?;
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

/// Every secret file problem is a usage error (exit 2): the file or its
/// mode must be fixed; the secret in it was never tried.
fn secret_file_error(what: &str, path: &Path, e: SecretFileError) -> crate::error::Error {
    usage(format!("the {what} {}: {e}", path.display()))
}

/// A passphrase from a file.
pub fn passphrase_from_file(path: &Path) -> Result<Secret> {
    read_secret_text(path)
        .map(Secret::Passphrase)
        .map_err(|e| secret_file_error("password file", path, e))
}

/// A key file: its key when it is in the key-file format, else its contents
/// as a passphrase ([`Secret::key_file`]).
pub fn key_from_file(path: &Path) -> Result<Secret> {
    let bytes = read_secret_bytes(path).map_err(|e| secret_file_error("key file", path, e))?;
    Secret::key_file(bytes).map_err(|e| usage(format!("the key file {}: {e}", path.display())))
}

/// Fewest characters a new passphrase may have without `--weak-passphrase`.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Fewest different characters a new passphrase may have (refuses `aaaaaaaaaaaa`).
pub const MIN_PASSPHRASE_DISTINCT: usize = 5;

/// Refuses a new passphrase that is too short to resist offline guessing,
/// unless `allow_weak` (`--weak-passphrase`). Key files are not checked:
/// they hold 32 random bytes. Length, not a dictionary estimate (zxcvbn):
/// the threat is offline guessing against a copied `keys/`, where length is
/// what decides, and the rule is one an operator can predict (docs/format.md, "Key slots").
pub fn check_new_passphrase(secret: &Secret, allow_weak: bool) -> Result<()> {
    let Some(bytes) = secret.passphrase() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(bytes);
    let chars = text.chars().count();
    let distinct = text
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if allow_weak || (chars >= MIN_PASSPHRASE_CHARS && distinct >= MIN_PASSPHRASE_DISTINCT) {
        return Ok(());
    }
    let from_key_file = matches!(secret, Secret::PassphraseFile(_));
    Err(usage(format!(
        "the new passphrase is too weak: {chars} characters, {distinct} different; it needs at least \
         {MIN_PASSPHRASE_CHARS} characters and {MIN_PASSPHRASE_DISTINCT} different ones, because anyone \
         with a copy of the repository's keys/ can guess offline{}. Use a longer passphrase (four or \
         five random words), a key file (`lifeboat key add --new-key-file PATH`), or pass \
         --weak-passphrase to accept it anyway",
        if from_key_file {
            " (the key file given is not in the Lifeboat key-file format, so it is a passphrase)"
        } else {
            ""
        }
    )))
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
    fn weak_passphrases_need_the_flag() {
        let p = |s: &str| Secret::Passphrase(s.into());
        for weak in [
            "x",
            "short-pw",
            "aaaaaaaaaaaaaaaa",
            "abababababab",
            "12121212121212",
        ] {
            let err = check_new_passphrase(&p(weak), false).unwrap_err();
            assert_eq!(err.code(), crate::error::USAGE);
            assert!(err.to_string().contains("--weak-passphrase"), "{err}");
            assert!(
                !err.to_string().contains(weak),
                "the passphrase is never shown"
            );
            check_new_passphrase(&p(weak), true).unwrap();
        }
        check_new_passphrase(&p("correct horse battery staple"), false).unwrap();
        check_new_passphrase(&p("bench-password"), false).unwrap();
        let kf = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
        check_new_passphrase(&kf, false).unwrap();
        let short_file = Secret::key_file(b"abc\n".to_vec()).unwrap();
        let err = check_new_passphrase(&short_file, false).unwrap_err();
        assert!(err.to_string().contains("key-file format"), "{err}");
    }

    #[test]
    fn a_too_open_file_is_refused_with_the_kubernetes_advice() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "secret\n").unwrap();
        for mode in [0o644, 0o640, 0o440, 0o604] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_secret_text(&f).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
            assert!(err.contains("defaultMode: 0400"), "{err}");
            assert!(err.contains("fsGroup"), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
        }
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_secret_text(&f).unwrap(), "secret");
        let err = passphrase_from_file(dir.path()).unwrap_err();
        assert_eq!(err.code(), crate::error::USAGE);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        for err in [
            passphrase_from_file(&f).unwrap_err(),
            key_from_file(&f).unwrap_err(),
        ] {
            assert_eq!(err.code(), crate::error::USAGE, "{err}");
        }
    }

    #[test]
    fn a_directory_is_not_a_secret_file_whatever_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_secret_bytes(dir.path()).unwrap_err();
        assert!(matches!(err, SecretFileError::NotAFile), "{err}");
        assert!(!err.to_string().contains("chmod"), "{err}");
    }
}
