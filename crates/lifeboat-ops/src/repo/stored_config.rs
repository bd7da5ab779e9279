//! `lifeboat restore config`: the configuration file a backup ran with, as
//! stored in its snapshot (the item `lifeboat.yaml`: the file's text,
//! secret references only), so that a restore from a copy in another
//! region, with the first region's files gone, has the sources, their
//! URLs and their secret references (`docs/regions/copy.md`).
//!
//! Storing it is the backup's part: [`crate::context::Ctx::open`] hands the
//! file's text to the repository, whose backup sessions add it to every
//! snapshot.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::snapshot::CONFIG_ITEM;
use lifeboat_repo::{Progress, Repository};
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
    let buf = Buf::default();
    restore_item(
        repo,
        &snap,
        Some(CONFIG_ITEM),
        buf.clone(),
        Arc::new(Progress::default()),
    )
    .await?;
    let bytes = std::mem::take(&mut *buf.0.lock().unwrap_or_else(|p| p.into_inner()));
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

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
