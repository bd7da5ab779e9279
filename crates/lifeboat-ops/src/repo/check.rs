//! `lifeboat check`: the repository's structure, optionally every pack's
//! bytes (or a part of them), verified; the outcome recorded in the
//! repository as evidence for `lifeboat readiness`.

use std::sync::Arc;

use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::check::CheckReport;
use lifeboat_repo::subset::DataSubset;

use crate::error::{Kind, Result, error};
use crate::report::Reporter;

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckRequest {
    /// Download, decrypt and re-hash every pack.
    pub read_data: bool,
    /// Like `read_data`, for a part of the packs.
    pub read_data_subset: Option<DataSubset>,
}

/// Checks `repo` and records the outcome. A record that cannot be stored is
/// a warning to `reporter`, not a failure. Problems found are in the report
/// ([`verdict`] turns them into the error); the check itself failing is the
/// error.
pub async fn check(
    repo: &Repository,
    req: CheckRequest,
    reporter: &dyn Reporter,
) -> Result<CheckReport> {
    let progress = Arc::new(Progress::default());
    let display = reporter.progress(Arc::clone(&progress), "check", false);
    let read_data = req.read_data || req.read_data_subset.is_some();
    let mut report =
        lifeboat_repo::check::check_subset(repo, read_data, req.read_data_subset, progress).await?;
    crate::wal::check::add_to_report(repo, &mut report).await?;
    drop(display);
    let mut rec = lifeboat_dr::record::CheckRecord::of(&report, read_data);
    rec.read_data_subset = req.read_data_subset.map(|s| s.to_string());
    if let Err(e) = lifeboat_dr::record::store_check(repo, &rec).await {
        reporter.note(&format!(
            "warning: the check's result could not be recorded in the repository: {e}"
        ));
    }
    Ok(report)
}

/// A report with problems is an integrity failure (exit 4).
pub fn verdict(report: &CheckReport) -> Result<()> {
    if report.ok() {
        return Ok(());
    }
    Err(error(
        Kind::Integrity,
        format!(
            "check found {} problems (listed above); do not trust the affected snapshots. Restore from another snapshot or repository",
            report.errors.len()
        ),
    ))
}
