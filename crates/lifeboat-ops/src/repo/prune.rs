//! `lifeboat prune` (and `forget --prune`): data no snapshot references
//! deleted, through `lifeboat_repo::prune`, after a grace period; and the
//! WAL no kept physical snapshot needs (`crate::wal::retention`).

use std::time::Duration;

use lifeboat_repo::Repository;
use lifeboat_repo::prune::{PruneOptions, PruneReport};
use lifeboat_repo::retention::parse_duration;

use crate::context::Ctx;
use crate::error::{Result, usage};

/// The grace period when neither `--grace` nor the configuration gives one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// The grace period: `flag` (`--grace`, a duration like `1h`), else the
/// configuration's `repository.prune_grace`, else [`DEFAULT_GRACE`].
pub fn grace(ctx: &Ctx, flag: Option<&str>) -> Result<Duration> {
    let Some(s) = flag else {
        return Ok(ctx.prune_grace().unwrap_or(DEFAULT_GRACE));
    };
    let d = parse_duration(s).map_err(|e| usage(format!("--grace: {e}")))?;
    d.to_std()
        .map_err(|_| usage("--grace must not be negative"))
}

pub async fn prune(repo: &Repository, grace: Duration, dry_run: bool) -> Result<PruneReport> {
    let opts = PruneOptions { grace, dry_run };
    let rules = crate::wal::retention::PgWalRules;
    Ok(lifeboat_repo::prune::prune_with_wal(repo, &opts, Some(&rules)).await?)
}
