//! With `failover:`: the authority's changes of primary as metrics, read
//! from etcd every [`EVERY`] by every region's daemon (each reads the same
//! records, so any one instance's series suffice): a change under way or
//! blocked, and the newest ended change of each kind with its measured RTO
//! and RPO (`lifeboat_failover_*`, docs/failover.md "Metrics"). An
//! unreadable etcd leaves the last values and is counted by the agent's
//! `lifeboat_authority_reachable`.

use std::sync::Arc;
use std::time::Duration;

use lifeboat_region::failover::plan::Kind;

use super::{metrics, pause};
use crate::daemon::Daemon;
use crate::region::failover::authority;

/// How often the records are read.
pub const EVERY: Duration = Duration::from_secs(15);

/// Records read each round: the newest ones (one per epoch, plus aborted
/// attempts); counts are of these.
const RECORDS: usize = 200;

pub async fn run(d: Arc<Daemon>) {
    metrics::describe_changes();
    loop {
        match authority::view(&d.ctx, RECORDS).await {
            Ok(view) => {
                let under_way = view.progress.as_ref().filter(|p| !p.phase.is_terminal());
                metrics::change_under_way(
                    under_way.is_some(),
                    under_way.is_some_and(|p| p.blocked.is_some()),
                );
                for kind in [Kind::Automatic, Kind::Manual, Kind::Switchover] {
                    let of_kind: Vec<_> =
                        view.failovers.iter().filter(|r| r.kind == kind).collect();
                    // Newest first: the first done one is the last success.
                    let last = of_kind.iter().find(|r| r.outcome == "done");
                    metrics::changes_of_kind(kind.as_str(), of_kind.len(), last.copied());
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the failover records from etcd"),
        }
        if pause(&d, EVERY).await {
            return;
        }
    }
}
