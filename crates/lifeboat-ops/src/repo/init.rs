//! `lifeboat init`: a new repository at the context's location, opened by
//! the context's secret (a passphrase must pass the strength rule unless the
//! caller accepts a weak one).

use lifeboat_repo::repo::ChunkerParams;
use lifeboat_repo::{InitOptions, Repository};
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Result, usage};
use crate::repo::copy::{OtherSecret, open_other};
use crate::secrets;

#[derive(Debug, Clone)]
pub struct InitRequest {
    /// Label for the first key slot.
    pub label: Option<String>,
    /// Accept a passphrase the strength rule refuses.
    pub weak_passphrase: bool,
    /// Average chunk size in bytes (min is a quarter, max eight times, at
    /// most 16 MiB); `None`: the default chunker.
    pub chunk_avg: Option<u32>,
    /// Target pack size in MiB; `None`: the default.
    pub pack_mib: Option<u64>,
    /// zstd level for stored data, fixed for the repository's life.
    pub zstd_level: i32,
    /// `--copy-params-from URL`: the repository whose blob ids and chunker
    /// parameters the new one shares, opened with `from_secret`.
    pub copy_params_from: Option<String>,
    pub from_secret: OtherSecret,
}

/// The repository created (the `--json` document of `lifeboat init`).
#[derive(Debug, Clone, Serialize)]
pub struct Initialized {
    pub id: String,
    pub location: String,
    pub chunker: ChunkerParams,
    pub zstd_level: i32,
    /// The repository whose blob ids and chunker parameters it shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_from: Option<String>,
}

pub async fn init(ctx: &Ctx, req: InitRequest) -> Result<Initialized> {
    let secret = ctx.secret().await?;
    secrets::check_new_passphrase(&secret, req.weak_passphrase)?;
    let storage = ctx.storage(true).await?;
    let mut opts = InitOptions {
        key_label: req.label,
        ..Default::default()
    };
    if let Some(avg) = req.chunk_avg {
        opts.chunker = ChunkerParams {
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg.saturating_mul(8).min(16 * 1024 * 1024),
        };
    }
    if let Some(p) = req.pack_mib {
        opts.pack_size = p * 1024 * 1024;
    }
    opts.zstd_level = req.zstd_level;
    let (repo, params_from) = match &req.copy_params_from {
        None => (Repository::init(storage, &secret, opts).await?, None),
        Some(url) => {
            if req.chunk_avg.is_some() {
                return Err(usage(
                    "--chunk-avg and --copy-params-from exclude each other: the chunker parameters are the source repository's",
                ));
            }
            let from_secret = req.from_secret.read(
                "LIFEBOAT_FROM_PASSWORD",
                "--copy-params-from (--from-key-file, --from-password-file)",
            )?;
            let from = open_other(ctx, url, &from_secret, None)
                .await
                .map_err(|e| e.context("opening the repository given to --copy-params-from"))?;
            let repo = Repository::init_with_params_of(storage, &secret, opts, &from).await?;
            (repo, Some(from.config().id.clone()))
        }
    };
    Ok(Initialized {
        id: repo.config().id.clone(),
        location: repo.location(),
        chunker: repo.config().chunker,
        zstd_level: repo.config().zstd_level,
        params_from,
    })
}
