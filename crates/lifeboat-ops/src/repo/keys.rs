//! `lifeboat key add|list|remove`: the key slots that open the repository.

use std::path::PathBuf;

use lifeboat_repo::repo::KeyInfo;
use lifeboat_repo::{Repository, Secret};
use serde::Serialize;

use crate::error::{Result, usage};
use crate::secrets;

/// Where the new slot's secret comes from: `new_key_file` (read, or
/// generated with mode 0600 when it does not exist), else
/// `new_password_file`, else `LIFEBOAT_NEW_PASSWORD`.
#[derive(Debug, Clone, Default)]
pub struct AddKeyRequest {
    pub new_password_file: Option<PathBuf>,
    pub new_key_file: Option<PathBuf>,
    /// Who or what the slot is for.
    pub label: Option<String>,
    /// Accept a passphrase the strength rule refuses.
    pub weak_passphrase: bool,
}

/// The slot added (the `--json` document of `lifeboat key add`).
#[derive(Debug, Clone, Serialize)]
pub struct KeyAdded {
    pub id: String,
    /// `passphrase`, `key-file`, … (`Secret::kind`).
    pub kind: String,
    pub generated_key_file: bool,
    /// The `--new-key-file` given, when it was generated, or when it was
    /// not in the key-file format and its contents were added as a
    /// passphrase (through Argon2id): both worth telling the person.
    #[serde(skip)]
    pub key_file: Option<PathBuf>,
    /// The key file was read as a passphrase.
    #[serde(skip)]
    pub key_file_as_passphrase: bool,
}

pub async fn add(repo: &Repository, req: AddKeyRequest) -> Result<KeyAdded> {
    let (secret, generated) = new_secret(&req)?;
    secrets::check_new_passphrase(&secret, req.weak_passphrase)?;
    let id = repo.add_key(&secret, req.label).await?;
    Ok(KeyAdded {
        id,
        kind: secret.kind().to_string(),
        generated_key_file: generated,
        key_file_as_passphrase: matches!(secret, Secret::PassphraseFile(_)),
        key_file: req.new_key_file,
    })
}

/// The new slot's secret, and whether its key file was generated here.
fn new_secret(req: &AddKeyRequest) -> Result<(Secret, bool)> {
    if let Some(path) = &req.new_key_file {
        if path.exists() {
            return Ok((secrets::key_from_file(path)?, false));
        }
        let contents = Secret::generate_key_file()?;
        secrets::write_secret_file(path, &contents)?;
        return Ok((Secret::key_file(contents)?, true));
    }
    if let Some(path) = &req.new_password_file {
        return Ok((secrets::passphrase_from_file(path)?, false));
    }
    if let Some(s) = secrets::passphrase_from_env("LIFEBOAT_NEW_PASSWORD") {
        return Ok((s, false));
    }
    Err(usage(
        "no new secret: set LIFEBOAT_NEW_PASSWORD, or pass --new-password-file FILE or --new-key-file FILE",
    ))
}

pub async fn list(repo: &Repository) -> Result<Vec<KeyInfo>> {
    Ok(repo.list_keys().await?)
}

/// The slot removed (the `--json` document of `lifeboat key remove`).
#[derive(Debug, Clone, Serialize)]
pub struct KeyRemoved {
    pub removed: String,
    /// It was the key in use: the secret this command ran with no longer
    /// opens the repository.
    #[serde(skip)]
    pub was_in_use: bool,
}

/// Removes the slot `id` (or unique prefix); never the last one, the one in
/// use only with `force`.
pub async fn remove(repo: &Repository, id: &str, force: bool) -> Result<KeyRemoved> {
    let removed = repo.remove_key(id, force).await?;
    Ok(KeyRemoved {
        was_in_use: removed == repo.key_id(),
        removed,
    })
}
