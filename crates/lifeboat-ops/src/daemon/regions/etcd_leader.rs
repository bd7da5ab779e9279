//! `failover.etcd.leader`: every daemon with `failover:` keeps etcd's raft
//! leader on the named member (the witness's, typically), through
//! [`LeaderKeeper`] (`lifeboat-region`, which says why: a new etcd leader
//! extends every lease by a full TTL, so a primary region that took etcd's
//! leader down with it delays its own failover).
//!
//! Every [`CHECK_EVERY`] it asks the members who leads and, when another
//! member does and the wanted one answers, asks the leader to hand over.
//! Several daemons may ask at once: the first transfer wins, the others
//! are refused by a member that no longer leads, which is logged only when
//! it persists. A hand-over is itself a leader change, after which etcd
//! extends every lease: it is deferred while the authority's primary holds
//! no lease or a change of primary is under way (a failure being handled).

use std::sync::Arc;
use std::time::Duration;

use lifeboat_region::authority::{AuthorityStore, LeaderKeeper, Placement};
use lifeboat_region::failover::machine::Progress;
use tokio::task::JoinHandle;

use super::pause;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::region::failover::authority as auth;

/// How often the leader's place is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Failures in a row before one is logged as a warning.
const QUIET_FAILURES: u32 = 3;

/// Starts the keeper when `failover.etcd.leader` is set.
pub fn spawn(d: &Arc<Daemon>, config: &Config) -> Option<JoinHandle<()>> {
    let wanted = config.failover.as_ref()?.etcd.leader.clone()?;
    Some(tokio::spawn(run(Arc::clone(d), wanted)))
}

async fn run(d: Arc<Daemon>, wanted: String) {
    let Some(fo) = d.ctx.config.as_ref().and_then(|c| c.failover.clone()) else {
        return;
    };
    let settings = match auth::settings(&d.ctx, &fo).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "failover.etcd.leader: the etcd settings cannot be used; etcd's leader is left where it is");
            return;
        }
    };
    tracing::info!(member = %wanted, "keeping etcd's leader on this member (failover.etcd.leader)");
    let mut keeper = LeaderKeeper::new(settings.clone(), wanted.clone());
    let mut store: Option<AuthorityStore> = None;
    let mut failures = 0u32;
    let mut told_not_a_member = false;
    // The last lasting refusal logged (a wrong password, TLS), so that it
    // is said at once but not every CHECK_EVERY.
    let mut told_refused: Option<String> = None;
    loop {
        if store.is_none() {
            store = AuthorityStore::connect(settings.clone()).await.ok();
        }
        let calm = match &store {
            Some(s) => calm(s).await,
            None => false,
        };
        match keeper.check(calm).await {
            Ok(Placement::Moved { from }) => {
                failures = 0;
                tracing::info!(from = %from, to = %wanted, "etcd's leadership handed to the configured member");
            }
            Ok(Placement::NotAMember { members, .. }) => {
                if !told_not_a_member {
                    told_not_a_member = true;
                    tracing::error!(member = %wanted, members = %members.join(","),
                        "failover.etcd.leader names no member of the etcd cluster (its --name): fix the configuration");
                }
            }
            Ok(p) => {
                failures = 0;
                told_refused = None;
                tracing::debug!(placement = ?p, "etcd's leader");
            }
            Err(e) if !e.is_transient() => {
                let text = e.to_string();
                if told_refused.as_deref() != Some(text.as_str()) {
                    tracing::error!(error = %e, member = %wanted,
                        "failover.etcd.leader: etcd refuses this daemon, so etcd's leader is left where it is; fix the etcd credentials or TLS settings");
                    told_refused = Some(text);
                }
            }
            Err(e) => {
                failures += 1;
                if failures == QUIET_FAILURES {
                    tracing::warn!(error = %e, member = %wanted, "handing etcd's leadership to the configured member keeps failing");
                } else {
                    tracing::debug!(error = %e, "handing etcd's leadership over failed");
                }
            }
        }
        if pause(&d, CHECK_EVERY).await {
            return;
        }
    }
}

/// Whether a hand-over may happen now: the authority's primary holds its
/// lease and no change of primary is under way. Unknown (etcd not read):
/// not now.
async fn calm(store: &AuthorityStore) -> bool {
    let Ok(Some(authority)) = store.authority().await else {
        return false;
    };
    let (lease, progress) = tokio::join!(
        store.lease_of(&authority.value.primary),
        store.progress::<Progress>()
    );
    let running = match progress {
        Ok(p) => p.is_some_and(|p| !p.value.phase.is_terminal()),
        Err(_) => return false,
    };
    matches!(lease, Ok(Some(_))) && !running
}
