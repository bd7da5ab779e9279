//! `lifeboat copy --to URL`: the context's repository's snapshots (those
//! the filters choose) into a second repository, which is opened with its
//! own secret (`--to-key-file`, `--to-password-file` or
//! `LIFEBOAT_TO_PASSWORD`; never a flag value) and written through a
//! read-back check. The work and its guarantees are
//! `lifeboat_repo::copy`'s; `docs/regions/copy.md` describes both modes.

use std::path::PathBuf;
use std::sync::Arc;

use lifeboat_repo::copy::{Copied, Copier, Filter, Mode};
use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::object::open_url;
use lifeboat_repo::storage::read_back::ReadBack;
use lifeboat_repo::storage::retry::{RetryPolicy, Retrying};
use lifeboat_repo::{Progress, RepoError, Repository, Secret};
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Result, usage};
use crate::secrets;

/// Where a secret for a repository other than the context's comes from:
/// a key file, a passphrase file, or an environment variable (`env`).
#[derive(Debug, Clone, Default)]
pub struct OtherSecret {
    pub key_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
}

impl OtherSecret {
    /// The secret: the key file, else the passphrase file, else `env`.
    /// `flags` names the flags in the error when none is given.
    pub fn read(&self, env: &str, flags: &str) -> Result<Secret> {
        if let Some(p) = &self.key_file {
            return secrets::key_from_file(p);
        }
        if let Some(p) = &self.password_file {
            return secrets::passphrase_from_file(p);
        }
        secrets::passphrase_from_env(env).ok_or_else(|| {
            usage(format!(
                "no secret for {flags}: pass a key file or a passphrase file, or set {env} (secrets are never given as flag values)"
            ))
        })
    }
}

/// Opens the repository at `url` (S3 settings as the context's repository)
/// with `secret`, retrying transient storage failures; `read_back` wraps
/// the storage so that every object written is read back and compared.
pub async fn open_other(
    ctx: &Ctx,
    url: &str,
    secret: &Secret,
    read_back: Option<&mut Option<Arc<ReadBack>>>,
) -> Result<Repository> {
    let s3 = ctx.s3_settings().await?;
    let inner = open_url(url, &s3).map_err(|e| {
        if e.is_not_found() {
            crate::Error::from(RepoError::NotARepository {
                location: url.to_string(),
                detail: "no repository here (the location does not exist). Create the copy target with `lifeboat init --copy-params-from` (or `lifeboat init`) first".into(),
            })
        } else {
            crate::Error::from(e)
        }
    })?;
    let mut storage: Arc<dyn Storage> = Retrying::wrap(inner, RetryPolicy::default());
    if let Some(slot) = read_back {
        let rb = ReadBack::wrap(storage);
        *slot = Some(Arc::clone(&rb));
        storage = rb;
    }
    Ok(Repository::open(storage, secret).await?)
}

#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// The target repository's URL.
    pub to: String,
    pub to_secret: OtherSecret,
    pub filter: Filter,
}

/// A repository as the result names it.
#[derive(Debug, Clone, Serialize)]
pub struct RepoSide {
    pub id: String,
    pub location: String,
}

/// What `lifeboat copy` did (its `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    pub source: RepoSide,
    pub target: RepoSide,
    pub mode: Mode,
    /// Every chosen snapshot, oldest first: copied now or skipped (held already).
    pub snapshots: Vec<Copied>,
    pub copied: usize,
    pub skipped: usize,
    pub blobs_sent: u64,
    pub bytes_sent: u64,
    pub bytes_stored: u64,
    /// Objects written to the target, read back and found equal, and their bytes.
    pub objects_verified: u64,
    pub bytes_verified: u64,
    pub seconds: f64,
}

pub async fn run(ctx: &Ctx, req: CopyRequest) -> Result<CopyOutcome> {
    let started = std::time::Instant::now();
    let source = ctx.open().await?;
    let secret = req.to_secret.read(
        "LIFEBOAT_TO_PASSWORD",
        "the copy target (--to-key-file, --to-password-file)",
    )?;
    let mut read_back = None;
    let target = open_other(ctx, &req.to, &secret, Some(&mut read_back))
        .await
        .map_err(|e| e.context("opening the copy target"))?;
    let mut copier = Copier::prepare(source, target).await?;
    let chosen = copier.choose(&req.filter).await?;
    let mode = copier.mode();
    ctx.reporter().note(&format!(
        "copying {} snapshot(s) from {} to {} ({})",
        chosen.len(),
        copier.source().location(),
        copier.target().location(),
        match mode {
            Mode::SameIds => "same blob ids: only missing blobs are sent",
            Mode::Rechunk => "other parameters: re-chunked and re-encrypted for the target",
        }
    ));
    let mut snapshots = Vec::new();
    for s in &chosen {
        let progress = Arc::new(Progress::default());
        let display = ctx.reporter().progress(
            Arc::clone(&progress),
            &format!("copy {}", s.short_id()),
            false,
        );
        let done = copier.copy(s, &progress).await;
        drop(display);
        let done = done.map_err(|e| {
            crate::Error::from(e).context(format!(
                "copying snapshot {} ({} copied before it stay; run the command again to resume)",
                s.short_id(),
                snapshots.iter().filter(|c: &&Copied| !c.skipped).count()
            ))
        })?;
        snapshots.push(done);
    }
    let (objects_verified, bytes_verified) = read_back.map(|r| r.verified()).unwrap_or((0, 0));
    Ok(CopyOutcome {
        source: RepoSide {
            id: copier.source().config().id.clone(),
            location: copier.source().location(),
        },
        target: RepoSide {
            id: copier.target().config().id.clone(),
            location: copier.target().location(),
        },
        mode,
        copied: snapshots.iter().filter(|c| !c.skipped).count(),
        skipped: snapshots.iter().filter(|c| c.skipped).count(),
        blobs_sent: snapshots.iter().map(|c| c.blobs_sent).sum(),
        bytes_sent: snapshots.iter().map(|c| c.bytes_sent).sum(),
        bytes_stored: snapshots.iter().map(|c| c.bytes_stored).sum(),
        snapshots,
        objects_verified,
        bytes_verified,
        seconds: started.elapsed().as_secs_f64(),
    })
}
