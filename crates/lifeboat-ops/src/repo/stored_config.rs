//! `lifeboat restore config`: the configuration file a backup ran with, as
//! stored in its snapshot (the item `lifeboat.yaml`: the file's text,
//! secret references only), so that a restore from a copy in another
//! region, with the first region's files gone, has the sources, their
//! URLs and their secret references (`docs/regions/copy.md`).
//!
//! Storing it is the backup's part: [`crate::context::Ctx::open`] hands the
//! file's text to the repository, whose backup sessions add it to every
//! snapshot.

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use lifeboat_repo::restore::read_item;
use lifeboat_repo::snapshot::CONFIG_ITEM;
use serde::Serialize;

use crate::error::{Result, fail};

/// A snapshot's stored configuration (`--json`: without the text when it
/// is written to a file).
#[derive(Debug, Clone, Serialize)]
pub struct StoredConfig {
    pub snapshot: String,
    pub time: DateTime<Utc>,
    pub source: String,
    pub text: String,
}

/// The configuration stored with snapshot `spec` (`latest` or an id) of
/// `source` (any when `None`); not found (exit 3) for a snapshot written
/// without one (by a release before this, or without a configuration file).
pub async fn read(repo: &Repository, spec: &str, source: Option<&str>) -> Result<StoredConfig> {
    let snap = repo.find_snapshot(spec, source).await?;
    if !snap.snapshot.items.iter().any(|i| i.name == CONFIG_ITEM) {
        return Err(fail(
            crate::error::NOT_FOUND,
            format!(
                "snapshot {} holds no configuration: it was taken without a configuration file (or by a Lifeboat that did not store it); pick a snapshot taken with --config",
                snap.short_id()
            ),
        ));
    }
    let bytes = read_item(repo, &snap, Some(CONFIG_ITEM)).await?;
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(
            crate::error::INTEGRITY,
            format!(
                "snapshot {}: its stored configuration is not UTF-8 text",
                snap.short_id()
            ),
        )
    })?;
    Ok(StoredConfig {
        snapshot: snap.id.clone(),
        time: snap.snapshot.time,
        source: snap.snapshot.source.clone(),
        text,
    })
}
