//! A change of primary under `failover.etcd_lost: keep_if_peers_agree`:
//! once the old primary's lease is gone, every other daemon is told to
//! vouch no more for it, and the change waits until a lease TTL and the
//! safety margin have passed since the newest vouch any of them gave
//! (lifeboat_region::failsafe says why that fences a primary kept by the
//! failsafe before anything is promoted).

use std::time::Duration;

use lifeboat_postgres::Secret;
use lifeboat_region::failsafe::{FreezeRequest, peers, wait_after_freeze};

use lifeboat_region::failsafe::peers::Peer;

use crate::config::{Config, EtcdLost, FailoverConfig};
use crate::context::Ctx;

/// How long each daemon gets to answer a freeze (retried within it).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Every other daemon of `failover.etcd_lost.keep_if_peers_agree.peers`
/// (all but `except`); `None` in `fence` mode.
pub fn peers_except(config: &Config, except: &str) -> Option<Vec<Peer>> {
    match &config.failover.as_ref()?.etcd_lost {
        EtcdLost::Fence => None,
        EtcdLost::KeepIfPeersAgree { peers } => Some(
            peers
                .iter()
                .filter(|(name, _)| name.as_str() != except)
                .map(|(name, url)| Peer {
                    name: name.clone(),
                    url: url.clone(),
                })
                .collect(),
        ),
    }
}

/// `Ok(None)` in `fence` mode; else every daemon but `old_primary`'s
/// frozen for it at `epoch`, and how long to wait before the bump. `Err`
/// (retry may help, what happened) when a daemon could not be told: the
/// old primary may still be kept by it.
pub async fn freeze_others(
    ctx: &Ctx,
    config: &Config,
    failover: &FailoverConfig,
    old_primary: &str,
    epoch: u64,
) -> Result<Option<Duration>, (bool, String)> {
    let Some(others) = peers_except(config, old_primary) else {
        return Ok(None);
    };
    let Some(token_ref) = config.serve.as_ref().and_then(|s| s.token.as_ref()) else {
        return Err((
            false,
            "failover.etcd_lost is keep_if_peers_agree but serve.token is not set: the daemons cannot be told to stop vouching for the old primary; set serve.token (the same for every daemon)".to_string(),
        ));
    };
    let token = ctx
        .resolve(token_ref)
        .await
        .map(Secret::new)
        .map_err(|e| (false, format!("serve.token: {e}")))?;
    let req = FreezeRequest {
        region: old_primary.to_string(),
        epoch,
    };
    let answers = peers::freeze(&others, &token, &req, FREEZE_TIMEOUT).await;
    let mut frozen = Vec::new();
    let mut missing = Vec::new();
    for (name, a) in answers {
        match a {
            Ok(a) => frozen.push(a),
            Err(e) => missing.push(format!("{name}: {e}")),
        }
    }
    if !missing.is_empty() {
        return Err((
            true,
            format!(
                "failover.etcd_lost is keep_if_peers_agree: these daemons could not be told to stop vouching for {old_primary}, which they may keep serving without etcd: {}. Retrying; if a daemon is gone for good, stop {old_primary}'s PostgreSQL by hand first",
                missing.join("; ")
            ),
        ));
    }
    Ok(Some(wait_after_freeze(
        &frozen,
        failover.lease_ttl(),
        failover.safety_margin(),
    )))
}
