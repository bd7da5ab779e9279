//! Promoting a `manager: patroni` region: its cluster is a standby cluster
//! (`region replicate` wrote `standby_cluster` into its dynamic
//! configuration); `PATCH /config` with `{"standby_cluster": null}` makes
//! Patroni promote its standby leader to a regular leader (Patroni's
//! documented way to promote a standby cluster). Then `GET /cluster` is
//! polled, bounded, until a regular leader runs
//! ([`patroni::promotion_state`]), and the epoch's row is committed through
//! the region's `postgres.url`, which proves the server writable.

use std::time::{Duration, Instant};

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::managers::patroni::{self, PatroniError, PromotionState};
use lifeboat_region::promotion::Promoted;

use super::{Failure, record_epoch};
use crate::config::RegionConfig;
use crate::context::Ctx;
use crate::region::patroni::api_of;

const POLL: Duration = Duration::from_millis(500);

fn failure(name: &str, e: PatroniError) -> Failure {
    let transient = matches!(
        e,
        PatroniError::Unreachable { .. } | PatroniError::NotApplied(_)
    );
    (transient, format!("promoting {name} through Patroni: {e}"))
}

pub(super) async fn promote(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    conn: &ConnConfig,
    epoch: u64,
    timeout: Duration,
) -> Result<(Promoted, String), Failure> {
    let api = api_of(ctx, name, r)
        .await
        .map_err(|e| (false, e.to_string()))?;
    let started = Instant::now();
    let (changed, _) = api.leave_standby().await.map_err(|e| failure(name, e))?;
    let leader = loop {
        let view = api.cluster().await.map_err(|e| failure(name, e))?;
        match patroni::promotion_state(&view) {
            PromotionState::Promoted { leader } => break leader,
            PromotionState::Paused => {
                return Err((
                    false,
                    format!(
                        "{name}'s Patroni cluster is paused (maintenance mode): it does not act on \
                         the removed standby_cluster. Resume it (`patronictl resume`) and run the \
                         same command again"
                    ),
                ));
            }
            other if started.elapsed() >= timeout => {
                return Err((
                    true,
                    format!(
                        "{name}'s Patroni cluster has no running regular leader {}s after \
                         standby_cluster was removed ({}); look at Patroni's log on its members",
                        timeout.as_secs(),
                        describe(&other)
                    ),
                ));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    };
    let promoted =
        record_epoch(conn, name, epoch, timeout.saturating_sub(started.elapsed())).await?;
    Ok((
        promoted,
        format!(
            "Patroni at {}: standby_cluster {}, {leader} leads",
            api.url(),
            if changed {
                "removed from /config"
            } else {
                "was removed already"
            }
        ),
    ))
}

fn describe(s: &PromotionState) -> String {
    match s {
        PromotionState::Promoted { leader } => format!("{leader} leads"),
        PromotionState::StillStandby { standby_leader } => {
            format!("{standby_leader} is still its standby leader")
        }
        PromotionState::LeaderNotRunning { leader, state } => {
            format!("leader {leader} is {state}")
        }
        PromotionState::NoLeader => "no leader".into(),
        PromotionState::Paused => "paused".into(),
    }
}
