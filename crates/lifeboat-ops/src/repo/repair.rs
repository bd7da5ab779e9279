//! `lifeboat repair index`: the index rebuilt from the packs' own headers.

use std::sync::Arc;

use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::repair::RepairIndexReport;

use crate::error::{Kind, Result, error};
use crate::report::Reporter;

pub async fn repair_index(repo: &Repository, reporter: &dyn Reporter) -> Result<RepairIndexReport> {
    let progress = Arc::new(Progress::default());
    let display = reporter.progress(
        Arc::clone(&progress),
        "repair index (pack bytes covered)",
        false,
    );
    let r = lifeboat_repo::repair::repair_index(repo, progress).await?;
    drop(display);
    Ok(r)
}

/// Unreadable or missing packs make a rebuilt index an integrity failure
/// (exit 4).
pub fn verdict(r: &RepairIndexReport) -> Result<()> {
    if r.unreadable_packs.is_empty() && r.missing_packs.is_empty() {
        return Ok(());
    }
    Err(error(
        Kind::Integrity,
        format!(
            "the index was rebuilt, but {} packs are unreadable and {} are missing (listed above); `lifeboat check --read-data` names the snapshots affected",
            r.unreadable_packs.len(),
            r.missing_packs.len()
        ),
    ))
}
