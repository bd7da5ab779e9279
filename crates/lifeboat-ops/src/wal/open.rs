//! Opening the repository for WAL work: no lock (WAL objects are
//! write-once, so nothing a prune or another push does can conflict with a
//! push), no Object Lock lookup, and a warning when the secret is a
//! passphrase: then every `wal push` runs Argon2id (64 MiB, 3 passes), which
//! costs more than storing a compressed segment (docs/physical.md).

use lifeboat_repo::{Repository, Secret};

use crate::context::Ctx;
use crate::error::Result;

/// The repository, opened with the context's secret, in append-only mode
/// when configured (the WAL objects' conditional creates are the same
/// either way).
pub async fn open(ctx: &Ctx) -> Result<Repository> {
    let storage = ctx.storage(false).await?;
    let secret = ctx.secret().await?;
    if passphrase(&secret) {
        tracing::warn!(
            "the repository is opened with a passphrase: every WAL file pays an Argon2id run \
             (about 0.1-0.3 s of CPU and 64 MiB); give wal push a key file instead \
             (repository.key_file or LIFEBOAT_KEY_FILE; `lifeboat key add --new-key-file PATH`)"
        );
    }
    Ok(Repository::open(storage, &secret)
        .await?
        .with_append_only(ctx.append_only()))
}

/// Whether opening with `secret` runs the KDF.
fn passphrase(secret: &Secret) -> bool {
    !matches!(secret, Secret::KeyFile(_))
}
