//! What every command needs: where the repository is, how to open it, how
//! to show progress. Flags win over the environment, which wins over the
//! configuration file.

use std::sync::Arc;

use anyhow::Result;
use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::object::{S3Settings, open_url, open_url_create};
use lifeboat_repo::storage::retry::{RetryPolicy, Retrying};
use lifeboat_repo::{Repository, Secret};

use crate::Global;
use crate::exit::usage;
use crate::progress;
use crate::secrets;

pub struct Ctx {
    pub global: Global,
}

impl Ctx {
    pub fn new(global: Global) -> Result<Self> {
        Ok(Self { global })
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    pub fn progress_mode(&self) -> progress::Mode {
        progress::Mode::choose(self.global.quiet || self.global.json)
    }

    pub fn repo_url(&self) -> Result<String> {
        self.global.repo.clone().ok_or_else(|| {
            usage("no repository given: pass --repo URL, set LIFEBOAT_REPO, or set repository.url in the config file")
        })
    }

    pub fn s3_settings(&self) -> Result<S3Settings> {
        Ok(S3Settings::default())
    }

    /// The repository secret, from the first of: --key-file, --password-file,
    /// LIFEBOAT_PASSWORD.
    pub fn secret(&self) -> Result<Secret> {
        if let Some(p) = &self.global.key_file {
            return secrets::key_from_file(p);
        }
        if let Some(p) = &self.global.password_file {
            return secrets::passphrase_from_file(p);
        }
        if let Some(s) = secrets::passphrase_from_env("LIFEBOAT_PASSWORD") {
            return Ok(s);
        }
        Err(usage(
            "no repository secret: set LIFEBOAT_PASSWORD, or pass --password-file FILE or --key-file FILE",
        ))
    }

    pub fn storage(&self, create: bool) -> Result<Arc<dyn Storage>> {
        let url = self.repo_url()?;
        let s3 = self.s3_settings()?;
        let inner = if create {
            open_url_create(&url, &s3)?
        } else {
            open_url(&url, &s3)?
        };
        Ok(Retrying::wrap(inner, RetryPolicy::default()))
    }

    pub async fn open(&self) -> Result<Repository> {
        let storage = match self.storage(false) {
            Ok(s) => s,
            Err(e) => return Err(not_found_as_repo(e)),
        };
        let secret = self.secret()?;
        Ok(Repository::open(storage, &secret).await?)
    }
}

/// A missing local directory is "no repository here", said plainly.
fn not_found_as_repo(e: anyhow::Error) -> anyhow::Error {
    if let Some(s) = e.downcast_ref::<lifeboat_repo::storage::StorageError>()
        && s.is_not_found()
    {
        return lifeboat_repo::RepoError::NotARepository {
            location: s.key.clone(),
            detail: "no repository here (the location does not exist). Check the --repo URL, or create one with `lifeboat init`".into(),
        }
        .into();
    }
    e
}
