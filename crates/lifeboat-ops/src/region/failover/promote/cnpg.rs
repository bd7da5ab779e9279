//! Promoting a `manager: cnpg` region: its `Cluster` is a replica cluster;
//! the merge patch [`cnpg::promote_patch`] (`spec.replica.enabled: false`
//! for the form `region replicate` writes, `spec.replica.primary` set to the
//! cluster itself in CloudNativePG's distributed topology) makes the
//! operator promote its designated primary. Then the `Cluster` is read,
//! bounded, until its status reports the promotion
//! ([`cnpg::promoted_per_status`]), and the epoch's row is committed
//! through the region's `postgres.url` (the `-rw` service), which proves
//! the server writable. Tested against the Kubernetes API test double, with
//! the test playing the operator: no CloudNativePG operator runs in this
//! project's tests.

use std::time::{Duration, Instant};

use lifeboat_kube::custom;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::managers::cnpg;
use lifeboat_region::promotion::Promoted;

use super::{Failure, record_epoch};
use crate::config::RegionConfig;
use crate::context::Ctx;
use crate::region::cnpg::{client_of, cluster_kind, config_of};

const POLL: Duration = Duration::from_secs(1);

pub(super) async fn promote(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    conn: &ConnConfig,
    epoch: u64,
    timeout: Duration,
) -> Result<(Promoted, String), Failure> {
    let c = config_of(name, r).map_err(|e| (false, e.to_string()))?;
    let client = client_of(ctx, c).await.map_err(|e| (true, e.to_string()))?;
    let kind = cluster_kind();
    let at = format!("Cluster {} in namespace {}", c.cluster, c.namespace);
    let api_failure = |e: lifeboat_kube::error::KubeError| (true, format!("{at}: {e}"));
    let started = Instant::now();
    let Some(cluster) = custom::get(&client, &kind, &c.namespace, &c.cluster)
        .await
        .map_err(api_failure)?
    else {
        return Err((
            false,
            format!("there is no {at} to promote: check regions.{name}.postgres.cnpg"),
        ));
    };
    let patch = cnpg::promote_patch(&cluster);
    if let Some(p) = &patch {
        tracing::info!(region = name, cluster = %c.cluster, namespace = %c.namespace, patch = %p,
            "promoting the replica cluster (merge patch of spec.replica)");
        custom::merge_patch(&client, &kind, &c.namespace, &c.cluster, p)
            .await
            .map_err(api_failure)?;
    }
    let primary = loop {
        let now = custom::get(&client, &kind, &c.namespace, &c.cluster)
            .await
            .map_err(api_failure)?
            .ok_or_else(|| (false, format!("the {at} disappeared while it was promoted")))?;
        match cnpg::promoted_per_status(&now) {
            Ok(instance) => break instance,
            Err(why) if started.elapsed() >= timeout => {
                return Err((
                    true,
                    format!(
                        "the {at} does not report its promotion {}s after spec.replica was \
                         patched: {why}; look at `kubectl cnpg status {}` and the operator's log",
                        timeout.as_secs(),
                        c.cluster
                    ),
                ));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    let promoted =
        record_epoch(conn, name, epoch, timeout.saturating_sub(started.elapsed())).await?;
    Ok((
        promoted,
        format!(
            "CloudNativePG: {} the {at}; the operator reports {primary} as its primary",
            match &patch {
                Some(p) => format!("merge patch {p} written to"),
                None => "spec.replica already promoted".to_string(),
            }
        ),
    ))
}
