//! The serving Deployments of a change of primary (docs/failover.md, "A
//! change of primary, step by step"), from `regions.NAME.deployments`,
//! through the region's kubeconfig context (`deployments.context`, else
//! `kubernetes:`'s):
//!
//! - a switchover **quiesces** the old primary region's Deployments before
//!   the old primary stops (scaled to 0 once their count is recorded in the
//!   `lifeboat.io/original-replicas` annotation, as `restore --quiesce`
//!   does; waits until their pods are gone) and **brings them back** after
//!   the change, or when the change is rolled back, to the recorded count:
//!   a daemon that resumes the change brings back the same counts;
//! - a failover scales the new primary region's Deployments to their
//!   `failover_replicas` (the seed's "scale up secondary region capacity");
//! - a **fence** (the agent, `daemon/regions/agent.rs`) scales the fenced
//!   region's Deployments to 0 the same way, after the server is fenced,
//!   and never brings them back: its writers stop retrying a server that
//!   will not take their writes (a switchover back, or a rejoin, brings
//!   them back to the recorded counts);
//! - a **rejoin** (`rejoin.rs`) brings the rejoined region's Deployments
//!   back to the counts a fence recorded and, once no region is left out
//!   (active-active again, the seed's step 6), scales the primary region's
//!   from their failover counts back to `replicas`.
//!
//! Every call is idempotent and retried (`lifeboat_kube::retry`). An error
//! says whether retrying the step may help (`(transient, detail)`): an
//! unreachable API or a failed call may; a missing Deployment, a refusal
//! (RBAC) or a bad annotation will not.

use std::sync::Arc;
use std::time::Duration;

use lifeboat_kube::quiesce::{self, Kind, QuiesceError, ResumeOutcome, Scaler, Workload};

use crate::config::{Config, DeploymentItem, RegionDeployments};
use crate::context::Ctx;

/// A step's note, or why it failed and whether a retry may help.
pub type ScaleResult = std::result::Result<String, (bool, String)>;

fn transient(e: &QuiesceError) -> bool {
    matches!(
        e,
        QuiesceError::Unreachable { .. }
            | QuiesceError::Api { .. }
            | QuiesceError::PodsRemain { .. }
    )
}

fn failed(e: QuiesceError) -> (bool, String) {
    (transient(&e), e.to_string())
}

fn workloads(d: &RegionDeployments) -> Vec<Workload> {
    d.items
        .iter()
        .map(|i| Workload::new(Kind::Deployment, d.namespace.clone(), i.name.clone()))
        .collect()
}

/// The region's Deployments and a client for its cluster; `None` when it
/// configures none.
async fn region_deployments<'c>(
    ctx: &Ctx,
    config: &'c Config,
    region: &str,
) -> std::result::Result<Option<(&'c RegionDeployments, lifeboat_kube::Client)>, (bool, String)> {
    let Some(d) = config
        .region(region)
        .ok()
        .and_then(|r| r.deployments.as_ref())
    else {
        return Ok(None);
    };
    let opts = ctx.cluster_options(None, d.context.as_deref());
    let client = lifeboat_kube::client::connect(&opts).await.map_err(|e| {
        (
            e.kind == lifeboat_kube::error::ErrorKind::Unreachable,
            format!(
                "connecting to {region}'s Kubernetes cluster ({}): {e:#}",
                cluster_label(&opts)
            ),
        )
    })?;
    Ok(Some((d, client)))
}

/// Which cluster a region's Deployments are in, for messages: the
/// kubeconfig context (or its current one) and the kubeconfig file.
fn cluster_label(opts: &lifeboat_kube::client::ClusterOptions) -> String {
    let context = match &opts.context {
        Some(c) => format!("context {c}"),
        None => "the kubeconfig's current context".to_string(),
    };
    match &opts.kubeconfig {
        Some(k) => format!("{context} of {}", k.display()),
        None => context,
    }
}

/// A failed call of `region`'s scaling, naming the region and its cluster.
fn failed_in(ctx: &Ctx, region: &str, d: &RegionDeployments, e: QuiesceError) -> (bool, String) {
    let opts = ctx.cluster_options(None, d.context.as_deref());
    (
        transient(&e),
        format!(
            "{region}'s Kubernetes cluster ({}): {e}",
            cluster_label(&opts)
        ),
    )
}

/// Switchover, before the old primary stops: `region`'s Deployments to 0,
/// their counts recorded, their pods gone (bounded by `timeout`).
pub async fn quiesce(ctx: &Ctx, config: &Config, region: &str, timeout: Duration) -> ScaleResult {
    let Some((d, client)) = region_deployments(ctx, config, region).await? else {
        return Ok(format!(
            "{region}: no writers to quiesce (no Deployments configured)"
        ));
    };
    let region_name = region.to_string();
    let mut scaler = Scaler::new(client, workloads(d))
        .timeout(timeout)
        .notify(Arc::new(
            move |m| tracing::info!(region = %region_name, "{m}"),
        ));
    match scaler.stop().await {
        Ok(stopped) => Ok(format!(
            "{region}: {} scaled to 0, their pods gone (counts recorded: {})",
            stopped.len(),
            scaler
                .recorded()
                .iter()
                .map(|(w, n)| format!("{} {n}", w.short()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => {
            // Bring back what was scaled down before the failure: the
            // switchover has not stopped the old primary yet.
            let back = scaler.resume().await;
            let mut detail = e.to_string();
            if !back.is_ok() {
                detail.push_str("; bringing the others back failed too: ");
                detail.push_str(
                    &back
                        .failures()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            Err((transient(&e), detail))
        }
    }
}

/// A fenced primary's region: its Deployments to 0, their counts recorded
/// (bounded by `timeout`). Unlike [`quiesce`], a failure brings nothing
/// back: whatever was scaled down stays down.
pub async fn fence_writers(
    ctx: &Ctx,
    config: &Config,
    region: &str,
    timeout: Duration,
) -> ScaleResult {
    let Some((d, client)) = region_deployments(ctx, config, region).await? else {
        return Ok(format!(
            "{region}: no writers to scale down (no Deployments configured)"
        ));
    };
    let mut scaler = Scaler::new(client, workloads(d)).timeout(timeout);
    match scaler.stop().await {
        Ok(stopped) => Ok(format!(
            "{region}: {} scaled to 0 (counts recorded: {})",
            stopped.len(),
            scaler
                .recorded()
                .iter()
                .map(|(w, n)| format!("{} {n}", w.short()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => Err(failed(e)),
    }
}

/// Switchover done or rolled back: `region`'s Deployments back to the
/// counts recorded by [`quiesce`] (a Deployment without a record is left
/// as it is).
pub async fn bring_back(ctx: &Ctx, config: &Config, region: &str) -> ScaleResult {
    let Some((d, client)) = region_deployments(ctx, config, region).await? else {
        return Ok(format!(
            "{region}: no writers to bring back (no Deployments configured)"
        ));
    };
    let region_name = region.to_string();
    let notify: quiesce::Notify = Arc::new(move |m| tracing::info!(region = %region_name, "{m}"));
    let mut notes = Vec::new();
    for w in workloads(d) {
        match quiesce::resume_one(&client, &w, &notify)
            .await
            .map_err(|e| failed_in(ctx, region, d, e))?
        {
            ResumeOutcome::Resumed { from, to } => {
                notes.push(format!("{} {from} → {to}", w.short()))
            }
            ResumeOutcome::NotQuiesced { replicas } => {
                notes.push(format!("{} left at {replicas} (not quiesced)", w.short()))
            }
        }
    }
    Ok(format!("{region}: writers back: {}", notes.join(", ")))
}

/// `region`'s Deployments that still carry the count a fence or a quiesce
/// recorded (`lifeboat.io/original-replicas`), as `deployment/NAME`:
/// held down by Lifeboat, not brought back yet (empty: none, or no
/// Deployments configured). Reads only.
pub async fn held_down(
    ctx: &Ctx,
    config: &Config,
    region: &str,
) -> std::result::Result<Vec<String>, (bool, String)> {
    carrying(ctx, config, region, |client, w| async move {
        quiesce::record_of(&client, &w).await
    })
    .await
}

/// `region`'s Deployments for which `read` finds an annotation (one read
/// each), as `deployment/NAME`.
async fn carrying<F, Fut>(
    ctx: &Ctx,
    config: &Config,
    region: &str,
    read: F,
) -> std::result::Result<Vec<String>, (bool, String)>
where
    F: Fn(lifeboat_kube::Client, Workload) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<String>, QuiesceError>>,
{
    let Some((d, client)) = region_deployments(ctx, config, region).await? else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for w in workloads(d) {
        let short = w.short();
        if read(client.clone(), w)
            .await
            .map_err(|e| failed_in(ctx, region, d, e))?
            .is_some()
        {
            found.push(short);
        }
    }
    Ok(found)
}

/// `region`'s Deployments that a source's `quiesce:` names too (the same
/// name, in the same namespace or in one it leaves to the kubeconfig), as
/// `deployment/NAME` (pure): a restore of that source records its
/// counts in the same annotation and may hold them down on purpose (a
/// restore that failed verification leaves its writers down), so only an
/// operator may bring those back.
pub fn shared_with_restores(config: &Config, region: &str) -> Vec<String> {
    let Some(d) = config
        .region(region)
        .ok()
        .and_then(|r| r.deployments.as_ref())
    else {
        return Vec::new();
    };
    let quiesces: Vec<&crate::config::Quiesce> = config
        .sources
        .values()
        .filter_map(|s| s.quiesce.as_ref())
        .collect();
    workloads(d)
        .into_iter()
        .filter(|w| {
            quiesces.iter().any(|q| {
                q.namespace.as_deref().is_none_or(|ns| ns == w.namespace)
                    && q.deployments.contains(&w.name)
            })
        })
        .map(|w| w.short())
        .collect()
}

/// Failover: the new primary region's Deployments to their
/// `failover_replicas`. Each whose failover count differs from its normal
/// one is marked first ([`quiesce::FAILOVER_SCALED`], with its normal
/// count), then scaled: a crash in between leaves a mark on a Deployment
/// still at its count, which [`scale_to_normal`] removes harmlessly; never
/// a Deployment at its failover count without the mark.
pub async fn scale_for_failover(ctx: &Ctx, config: &Config, region: &str) -> ScaleResult {
    scale_each(
        ctx,
        config,
        region,
        Mark::Put,
        DeploymentItem::failover_replicas,
        "scaled for the failover",
    )
    .await
}

/// Active-active again (a rejoin): `region`'s Deployments to their normal
/// `replicas`, from the failover counts [`scale_for_failover`] set; each
/// one's failover mark removed once it is there.
pub async fn scale_to_normal(ctx: &Ctx, config: &Config, region: &str) -> ScaleResult {
    scale_each(
        ctx,
        config,
        region,
        Mark::Remove,
        |i| i.replicas,
        "back to its normal counts",
    )
    .await
}

/// `region`'s Deployments that still carry a failover's mark, as
/// `deployment/NAME`: at their failover counts, not scaled back to normal
/// yet (empty: none, or no Deployments configured). Reads only.
pub async fn at_failover_counts(
    ctx: &Ctx,
    config: &Config,
    region: &str,
) -> std::result::Result<Vec<String>, (bool, String)> {
    carrying(ctx, config, region, |client, w| async move {
        quiesce::failover_mark_of(&client, &w).await
    })
    .await
}

/// What [`scale_each`] does with a Deployment's failover mark.
#[derive(Clone, Copy)]
enum Mark {
    /// Put it before scaling, when the failover count differs from the
    /// normal one.
    Put,
    /// Remove it after scaling.
    Remove,
}

/// Each of `region`'s Deployments to `count(item)`, with its failover mark
/// put or removed (`mark`); `done` says what that was in the note.
async fn scale_each(
    ctx: &Ctx,
    config: &Config,
    region: &str,
    mark: Mark,
    count: impl Fn(&DeploymentItem) -> u32,
    done: &str,
) -> ScaleResult {
    let Some((d, client)) = region_deployments(ctx, config, region).await? else {
        return Ok(format!("{region}: no Deployments configured to scale"));
    };
    let mut notes = Vec::new();
    for (item, w) in d.items.iter().zip(workloads(d)) {
        let to = i32::try_from(count(item)).unwrap_or(i32::MAX);
        let failed = |e| failed_in(ctx, region, d, e);
        if let Mark::Put = mark
            && item.failover_replicas() != item.replicas
        {
            let normal = i32::try_from(item.replicas).unwrap_or(i32::MAX);
            quiesce::mark_failover_scaled(&client, &w, Some(normal))
                .await
                .map_err(failed)?;
        }
        let from = quiesce::scale_to(&client, &w, to).await.map_err(failed)?;
        if let Mark::Remove = mark {
            quiesce::mark_failover_scaled(&client, &w, None)
                .await
                .map_err(failed)?;
        }
        notes.push(if from == to {
            format!("{} already at {to}", w.short())
        } else {
            format!("{} {from} → {to}", w.short())
        });
    }
    Ok(format!("{region}: {done}: {}", notes.join(", ")))
}

/// Whether any region configures Deployments (a rejoin reports capacity
/// only then).
pub fn any_deployments(config: &Config) -> bool {
    config
        .regions_in_file_order()
        .iter()
        .any(|(_, r)| r.deployments.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(quiesce: &str) -> Config {
        let yaml = format!(
            r#"repository:
  url: /tmp/r
sources:
  db:
    kind: postgres
    postgres: {{url: "postgresql://u@h/d"}}
{quiesce}  other:
    kind: postgres
    postgres: {{url: "postgresql://u@h/e"}}
regions:
  us-east:
    postgres: {{url: "postgresql://a@127.0.0.1:1/p", role: primary}}
    deployments: {{namespace: shop, items: [{{name: gateway, replicas: 2}}, {{name: api, replicas: 1}}]}}
  eu-west:
    postgres: {{url: "postgresql://a@127.0.0.1:1/p", role: standby, replicates_from: us-east}}
"#
        );
        crate::config::parse(&yaml, "test.yaml").unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    #[test]
    fn a_regions_writers_that_a_restore_quiesces_too_are_named() {
        // (the source's quiesce: section, us-east's writers it names too)
        for (quiesce, want) in [
            ("", vec![]),
            (
                "    quiesce: {deployments: [gateway]}\n",
                vec!["deployment/gateway"],
            ),
            (
                "    quiesce: {deployments: [gateway, api], namespace: shop}\n",
                vec!["deployment/gateway", "deployment/api"],
            ),
            (
                "    quiesce: {deployments: [gateway], namespace: other}\n",
                vec![],
            ),
            ("    quiesce: {deployments: [worker]}\n", vec![]),
            ("    quiesce: {statefulsets: [gateway]}\n", vec![]),
        ] {
            let c = config(quiesce);
            assert_eq!(shared_with_restores(&c, "us-east"), want, "{quiesce}");
            assert!(
                shared_with_restores(&c, "eu-west").is_empty(),
                "no deployments: configured"
            );
        }
    }
}
