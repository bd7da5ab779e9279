//! Quiescing writers through Kubernetes: Deployments and StatefulSets scaled to
//! zero through the `scale` subresource while a database is restored, then
//! back to the replica counts they had.
//!
//! The protocol, per workload (see [`Scaler`]):
//! 1. **Preflight**: every configured workload is read first; a missing one,
//!    a 403 or an unreachable API fails the quiesce before anything is
//!    touched.
//! 2. **Record**: the current count (from `GET …/scale`) is written into the
//!    annotation [`ORIGINAL_REPLICAS`] on the workload (a JSON merge patch)
//!    *before* it is scaled. An annotation that is already there was left by
//!    a restore that did not finish; it holds the real original count, and is
//!    never overwritten with the current (zero) count.
//! 3. **Scale**: `PATCH …/scale` with `spec.replicas: 0`.
//! 4. **Wait** until no pod selected by the workload's `spec.selector` is left
//!    (pods that already Succeeded/Failed do not count: they cannot write),
//!    with a timeout and progress messages.
//!
//! Resuming ([`resume_one`]) reads the annotation, scales back to it through
//! `scale`, then removes the annotation. It is driven by the annotation alone,
//! so it is idempotent and works after a crash (`lifeboat unquiesce`): a
//! workload without the annotation is left alone.
//!
//! Every request is idempotent (reads, and merge patches that set absolute
//! values) and is retried on transient failures by [`crate::retry::call`].
//!
//! Every call goes through `kube::Client`, so tests against a `tower-test`
//! mock or the API test double take the code path of a real cluster. The
//! verbs used are exactly those granted by `deploy/rbac.yaml`: get/patch on
//! deployments and statefulsets, get/patch on their `scale` subresource, list
//! on pods.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Serialize;

use crate::retry::{self, Failed};

/// The annotation holding a quiesced workload's replica count from before
/// the quiesce. Its presence means "scaled down by Lifeboat, not yet brought
/// back".
pub const ORIGINAL_REPLICAS: &str = "lifeboat.io/original-replicas";

/// The annotation a failover puts on the new primary region's serving
/// workloads before it scales them to their failover counts (its value:
/// the normal count they go back to). Its presence means "at the failover count, not yet
/// scaled back to normal": a rejoin removes it once they are back, so
/// whether that is still to be done can be read after a restart.
pub const FAILOVER_SCALED: &str = "lifeboat.io/failover-scaled";

/// How long to wait for a quiesced workload's pods to be gone, unless
/// configured (`quiesce.timeout`). Kubernetes' default grace period is 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The field manager named on every write.
pub const FIELD_MANAGER: &str = "lifeboat";

/// The kinds of workload that can be quiesced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Deployment,
    StatefulSet,
}

impl Kind {
    /// The name kubectl takes (`deployment`, `statefulset`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
        }
    }
}

/// One workload to quiesce: a Deployment or a StatefulSet in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Workload {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Workload {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// `deployment/data-storage`, as kubectl writes it.
    pub fn short(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

impl fmt::Display for Workload {
    /// `deployment/data-storage in namespace kubernaut-system`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} in namespace {}",
            self.kind.as_str(),
            self.name,
            self.namespace
        )
    }
}

/// What failed, always naming the workload and saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum QuiesceError {
    #[error(
        "{workload} does not exist (404 while trying to {action}); check the name and namespace in the source's quiesce settings (kubectl -n {ns} get {kind})",
        ns = .workload.namespace, kind = .workload.kind.as_str()
    )]
    NotFound {
        workload: Workload,
        action: &'static str,
    },
    #[error(
        "the Kubernetes API refused to let Lifeboat {action} {workload} ({code} {reason}: {message}); grant its identity the rules of deploy/rbac.yaml (kubectl auth can-i --list -n {ns})",
        ns = .workload.namespace
    )]
    Forbidden {
        workload: Workload,
        action: &'static str,
        code: u16,
        reason: String,
        message: String,
    },
    #[error(
        "cannot reach the Kubernetes API to {action} {workload}: {detail}; check the kubeconfig / --kube-context (or the in-cluster service account) and that the API server is reachable"
    )]
    Unreachable {
        workload: Workload,
        action: &'static str,
        detail: String,
    },
    #[error("the Kubernetes API failed to {action} {workload}: {detail}")]
    Api {
        workload: Workload,
        action: &'static str,
        detail: String,
    },
    #[error(
        "{workload} carries the annotation {ORIGINAL_REPLICAS}={value:?}, which is not a replica count; set it to the count it should run with (kubectl -n {ns} annotate {short} {ORIGINAL_REPLICAS}=N --overwrite), or scale it by hand and remove the annotation ({ORIGINAL_REPLICAS}-)",
        ns = .workload.namespace, short = .workload.short()
    )]
    BadAnnotation { workload: Workload, value: String },
    #[error(
        "{workload} has no label selector, so Lifeboat cannot tell when its pods are gone; give it spec.selector.matchLabels"
    )]
    NoSelector { workload: Workload },
    #[error(
        "the pods of {workload} were still there {secs} s after it was scaled to 0: {pods}; find out why they do not stop (kubectl -n {ns} describe pod …), or raise quiesce.timeout",
        secs = .waited.as_secs(), ns = .workload.namespace
    )]
    PodsRemain {
        workload: Workload,
        waited: Duration,
        pods: String,
    },
}

impl QuiesceError {
    /// The workload this error is about.
    pub fn workload(&self) -> &Workload {
        match self {
            QuiesceError::NotFound { workload, .. }
            | QuiesceError::Forbidden { workload, .. }
            | QuiesceError::Unreachable { workload, .. }
            | QuiesceError::Api { workload, .. }
            | QuiesceError::BadAnnotation { workload, .. }
            | QuiesceError::NoSelector { workload }
            | QuiesceError::PodsRemain { workload, .. } => workload,
        }
    }

    /// Classifies a client error for `action` on `workload`; a transient
    /// one that outlasted the retry budget says so.
    fn from_failed(workload: &Workload, action: &'static str, f: Failed) -> Self {
        let note = f.note();
        let mut e = Self::from_kube(workload, action, f.error);
        match &mut e {
            QuiesceError::Unreachable { detail, .. } | QuiesceError::Api { detail, .. } => {
                detail.push_str(&note)
            }
            _ => {}
        }
        e
    }

    /// Classifies a client error for `action` on `workload`.
    fn from_kube(workload: &Workload, action: &'static str, e: kube::Error) -> Self {
        let workload = workload.clone();
        match e {
            kube::Error::Api(s) if s.code == 404 => QuiesceError::NotFound { workload, action },
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => QuiesceError::Forbidden {
                workload,
                action,
                code: s.code,
                reason: if s.reason.is_empty() {
                    if s.code == 401 {
                        "Unauthorized".into()
                    } else {
                        "Forbidden".into()
                    }
                } else {
                    s.reason.clone()
                },
                message: s.message.clone(),
            },
            kube::Error::Api(s) => QuiesceError::Api {
                workload,
                action,
                detail: format!(
                    "{} {}: {}",
                    s.code,
                    if s.reason.is_empty() {
                        "error"
                    } else {
                        &s.reason
                    },
                    s.message
                ),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => QuiesceError::Unreachable {
                workload,
                action,
                detail: chain(&e),
            },
            other => QuiesceError::Api {
                workload,
                action,
                detail: chain(&other),
            },
        }
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Receives progress messages (one line each, no trailing newline).
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// What stopping did to one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    pub workload: Workload,
    /// The count recorded in the annotation (and restored by resume).
    pub original_replicas: i32,
    /// True when the annotation was already there (an unfinished earlier
    /// restore) and was kept.
    pub kept_earlier_record: bool,
}

/// What resuming did to one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ResumeOutcome {
    /// Scaled from `from` back to the recorded `to`; the annotation removed.
    Resumed { from: i32, to: i32 },
    /// No annotation: not quiesced by Lifeboat (or already brought back);
    /// left at its current count.
    NotQuiesced { replicas: i32 },
}

/// Everything `resume` tried, and whether it all worked.
#[derive(Debug)]
pub struct ResumeReport {
    pub results: Vec<(Workload, Result<ResumeOutcome, QuiesceError>)>,
}

impl ResumeReport {
    pub fn failures(&self) -> impl Iterator<Item = &QuiesceError> {
        self.results.iter().filter_map(|(_, r)| r.as_ref().err())
    }

    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// The facts of a workload that quiescing needs.
struct Observed {
    annotation: Option<String>,
    failover_scaled: Option<String>,
    selector: Option<LabelSelector>,
    spec_replicas: Option<i32>,
}

fn annotation(meta: &ObjectMeta) -> Option<String> {
    annotation_named(meta, ORIGINAL_REPLICAS)
}

fn annotation_named(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).cloned()
}

fn parse_annotation(w: &Workload, value: &str) -> Result<i32, QuiesceError> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| QuiesceError::BadAnnotation {
            workload: w.clone(),
            value: value.to_string(),
        })
}

/// The Kubernetes requests of the protocol, one workload at a time.
#[derive(Clone)]
struct Calls {
    client: kube::Client,
}

impl Calls {
    fn params() -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        }
    }

    async fn observe(&self, w: &Workload) -> Result<Observed, QuiesceError> {
        let err = |e| QuiesceError::from_failed(w, "read", e);
        let what = format!("reading {w}");
        Ok(match w.kind {
            Kind::Deployment => {
                let api = Api::<Deployment>::namespaced(self.client.clone(), &w.namespace);
                let d = retry::call(&what, || api.get(&w.name)).await.map_err(err)?;
                Observed {
                    annotation: annotation(&d.metadata),
                    failover_scaled: annotation_named(&d.metadata, FAILOVER_SCALED),
                    spec_replicas: d.spec.as_ref().and_then(|s| s.replicas),
                    selector: d.spec.map(|s| s.selector),
                }
            }
            Kind::StatefulSet => {
                let api = Api::<StatefulSet>::namespaced(self.client.clone(), &w.namespace);
                let s = retry::call(&what, || api.get(&w.name)).await.map_err(err)?;
                Observed {
                    annotation: annotation(&s.metadata),
                    failover_scaled: annotation_named(&s.metadata, FAILOVER_SCALED),
                    spec_replicas: s.spec.as_ref().and_then(|s| s.replicas),
                    selector: s.spec.map(|s| s.selector),
                }
            }
        })
    }

    /// Sets (`Some`) or removes (`None`) the [`ORIGINAL_REPLICAS`]
    /// annotation, by merge patch.
    async fn annotate(&self, w: &Workload, value: Option<i32>) -> Result<(), QuiesceError> {
        let action = if value.is_some() {
            "record the replica count on"
        } else {
            "remove the annotation from"
        };
        self.annotate_key(w, ORIGINAL_REPLICAS, value.map(|n| n.to_string()), action)
            .await
    }

    /// Sets (`Some`) or removes (`None`) the annotation `key`, by merge
    /// patch; `action` names it in errors.
    async fn annotate_key(
        &self,
        w: &Workload,
        key: &str,
        value: Option<String>,
        action: &'static str,
    ) -> Result<(), QuiesceError> {
        let v = match value {
            Some(n) => serde_json::Value::String(n),
            None => serde_json::Value::Null,
        };
        let patch = Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {key: v}}
        }));
        // A merge patch that sets (or removes) one absolute value:
        // repeating it is harmless, so it is retried like a read.
        let err = |e| QuiesceError::from_failed(w, action, e);
        let what = format!("trying to {action} {w}");
        let params = Self::params();
        match w.kind {
            Kind::Deployment => {
                let api = Api::<Deployment>::namespaced(self.client.clone(), &w.namespace);
                retry::call(&what, || api.patch(&w.name, &params, &patch))
                    .await
                    .map_err(err)?;
            }
            Kind::StatefulSet => {
                let api = Api::<StatefulSet>::namespaced(self.client.clone(), &w.namespace);
                retry::call(&what, || api.patch(&w.name, &params, &patch))
                    .await
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// The replica count the scale subresource reports (`spec.replicas`,
    /// omitted when 0).
    async fn replicas(&self, w: &Workload) -> Result<i32, QuiesceError> {
        let err = |e| QuiesceError::from_failed(w, "read the scale of", e);
        let what = format!("reading the scale of {w}");
        let s = match w.kind {
            Kind::Deployment => {
                let api = Api::<Deployment>::namespaced(self.client.clone(), &w.namespace);
                retry::call(&what, || api.get_scale(&w.name)).await
            }
            Kind::StatefulSet => {
                let api = Api::<StatefulSet>::namespaced(self.client.clone(), &w.namespace);
                retry::call(&what, || api.get_scale(&w.name)).await
            }
        }
        .map_err(err)?;
        Ok(s.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    /// Sets the replica count through the scale subresource.
    async fn scale(&self, w: &Workload, replicas: i32) -> Result<(), QuiesceError> {
        let err = |e| QuiesceError::from_failed(w, "scale", e);
        let what = format!("scaling {w} to {replicas}");
        let patch = Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}}));
        let params = Self::params();
        match w.kind {
            Kind::Deployment => {
                let api = Api::<Deployment>::namespaced(self.client.clone(), &w.namespace);
                retry::call(&what, || api.patch_scale(&w.name, &params, &patch)).await
            }
            Kind::StatefulSet => {
                let api = Api::<StatefulSet>::namespaced(self.client.clone(), &w.namespace);
                retry::call(&what, || api.patch_scale(&w.name, &params, &patch)).await
            }
        }
        .map_err(err)?;
        Ok(())
    }

    /// Names (and phases) of the pods `selector` selects that may still run.
    async fn live_pods(&self, w: &Workload, selector: &str) -> Result<Vec<String>, QuiesceError> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &w.namespace);
        let params = ListParams::default().labels(selector);
        let pods = retry::call(&format!("listing the pods of {w}"), || api.list(&params))
            .await
            .map_err(|e| QuiesceError::from_failed(w, "list the pods of", e))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded") | Some("Failed"))
            })
            .map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                if p.metadata.deletion_timestamp.is_some() {
                    format!("{name} (terminating)")
                } else {
                    name
                }
            })
            .collect())
    }
}

/// A label selector as the `labelSelector` query parameter. `None` for an
/// empty selector, which would select every pod of the namespace.
pub fn selector_string(s: &LabelSelector) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(m) = &s.match_labels {
        for (k, v) in m {
            parts.push(format!("{k}={v}"));
        }
    }
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Quiesces a set of workloads and brings back the ones it touched.
///
/// `stop` may be cancelled (its future dropped) at any await point: every
/// workload is added to the touched set *before* its annotation is written,
/// so `resume` afterwards brings back whatever was scaled down. Resuming a
/// touched workload that was never annotated is a no-op.
pub struct Scaler {
    calls: Calls,
    workloads: Vec<Workload>,
    timeout: Duration,
    poll: Duration,
    notify: Notify,
    touched: Vec<Workload>,
    recorded: Vec<(Workload, i32)>,
}

impl Scaler {
    /// Workloads to quiesce through `client`; a 5-minute pod timeout, polls
    /// every second, progress to the `tracing` log until [`Scaler::notify`].
    pub fn new(client: kube::Client, workloads: Vec<Workload>) -> Self {
        Scaler {
            calls: Calls { client },
            workloads,
            timeout: DEFAULT_TIMEOUT,
            poll: Duration::from_secs(1),
            notify: Arc::new(|m| tracing::info!("{m}")),
            touched: Vec::new(),
            recorded: Vec::new(),
        }
    }

    /// How long to wait for the pods to be gone.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// How often to look at the pods while waiting.
    pub fn poll_interval(mut self, p: Duration) -> Self {
        self.poll = p.max(Duration::from_millis(10));
        self
    }

    /// Where progress messages go.
    pub fn notify(mut self, n: Notify) -> Self {
        self.notify = n;
        self
    }

    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// The counts recorded so far (by this run, or kept from an earlier one).
    pub fn recorded(&self) -> &[(Workload, i32)] {
        &self.recorded
    }

    /// Scales every workload to 0 after recording its count, then waits for
    /// their pods to be gone. On error, the caller calls [`Scaler::resume`]:
    /// some workloads may be down already.
    pub async fn stop(&mut self) -> Result<Vec<Stopped>, QuiesceError> {
        // Preflight: read everything before touching anything.
        let mut observed = Vec::with_capacity(self.workloads.len());
        for w in &self.workloads {
            let o = self.calls.observe(w).await?;
            let Some(sel) = o.selector.as_ref().and_then(selector_string) else {
                return Err(QuiesceError::NoSelector {
                    workload: w.clone(),
                });
            };
            let earlier = match &o.annotation {
                Some(v) => Some(parse_annotation(w, v)?),
                None => None,
            };
            observed.push((w.clone(), sel, earlier));
        }

        let mut stopped = Vec::new();
        for (w, _, earlier) in &observed {
            // Touched first: a cancellation right after the annotation write
            // must still lead to a resume.
            if !self.touched.contains(w) {
                self.touched.push(w.clone());
            }
            let (original, kept) = match earlier {
                Some(n) => {
                    (self.notify)(&format!(
                        "{} is already marked as quiesced by an earlier restore that did not finish; \
                         keeping its recorded count of {n} replicas",
                        w.short()
                    ));
                    (*n, true)
                }
                None => {
                    let n = self.calls.replicas(w).await?;
                    self.calls.annotate(w, Some(n)).await?;
                    (n, false)
                }
            };
            self.recorded.retain(|(r, _)| r != w);
            self.recorded.push((w.clone(), original));
            self.calls.scale(w, 0).await?;
            (self.notify)(&format!(
                "scaled {} to 0 replicas (recorded {original} in {ORIGINAL_REPLICAS})",
                w
            ));
            stopped.push(Stopped {
                workload: w.clone(),
                original_replicas: original,
                kept_earlier_record: kept,
            });
        }

        self.wait_for_pods(&observed).await?;
        Ok(stopped)
    }

    async fn wait_for_pods(
        &self,
        observed: &[(Workload, String, Option<i32>)],
    ) -> Result<(), QuiesceError> {
        let started = Instant::now();
        let mut last_report: Option<Instant> = None;
        let mut pending: Vec<&(Workload, String, Option<i32>)> = observed.iter().collect();
        loop {
            let mut still = Vec::new();
            let mut names = Vec::new();
            for o in pending {
                let pods = self.calls.live_pods(&o.0, &o.1).await?;
                if !pods.is_empty() {
                    names.push((o.0.clone(), pods));
                    still.push(o);
                }
            }
            if still.is_empty() {
                if last_report.is_some() {
                    (self.notify)(&format!(
                        "the writers' pods are gone after {:.0} s",
                        started.elapsed().as_secs_f64()
                    ));
                }
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                let (w, pods) = names.swap_remove(0);
                return Err(QuiesceError::PodsRemain {
                    workload: w,
                    waited,
                    pods: summarize(&pods),
                });
            }
            if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                let list: Vec<String> = names
                    .iter()
                    .map(|(w, p)| format!("{}: {}", w.short(), summarize(p)))
                    .collect();
                (self.notify)(&format!(
                    "waiting for the writers' pods to stop ({:.0} s of {} s): {}",
                    waited.as_secs_f64(),
                    self.timeout.as_secs(),
                    list.join("; ")
                ));
                last_report = Some(Instant::now());
            }
            pending = still;
            tokio::time::sleep(self.poll.min(self.timeout.saturating_sub(waited))).await;
        }
    }

    /// Brings back every workload this scaler touched, each to its recorded
    /// count; tries them all even when one fails.
    pub async fn resume(&mut self) -> ResumeReport {
        let mut results = Vec::new();
        for w in self.touched.iter().rev() {
            let r = resume_one_with(&self.calls, w, &self.notify).await;
            results.push((w.clone(), r));
        }
        let done: Vec<Workload> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(w, _)| w.clone())
            .collect();
        self.touched.retain(|w| !done.contains(w));
        results.reverse();
        ResumeReport { results }
    }

    /// kubectl commands that bring back what this scaler recorded, for when
    /// Lifeboat itself cannot (the API is unreachable).
    pub fn kubectl_hint(&self) -> String {
        let cmds: Vec<String> = self
            .recorded
            .iter()
            .map(|(w, n)| {
                format!(
                    "kubectl -n {ns} scale {s} --replicas={n} && kubectl -n {ns} annotate {s} {ORIGINAL_REPLICAS}-",
                    ns = w.namespace,
                    s = w.short()
                )
            })
            .collect();
        cmds.join("; ")
    }
}

/// Sets `w`'s replica count to `replicas` through the scale subresource,
/// unless it has that count already (idempotent: a failover step resumed
/// by another daemon repeats it harmlessly). Returns the count it had.
/// Unlike a quiesce nothing is recorded: the caller knows the counts
/// (`regions.NAME.deployments`, docs/failover.md).
pub async fn scale_to(
    client: &kube::Client,
    w: &Workload,
    replicas: i32,
) -> Result<i32, QuiesceError> {
    let calls = Calls {
        client: client.clone(),
    };
    let from = calls.observe(w).await?.spec_replicas.unwrap_or(0);
    if from != replicas {
        calls.scale(w, replicas).await?;
    }
    Ok(from)
}

/// Puts (`Some(normal count)`) or removes (`None`) `w`'s
/// [`FAILOVER_SCALED`] mark, unless it is already so (one read; the write
/// is an idempotent merge patch, retried like a read).
pub async fn mark_failover_scaled(
    client: &kube::Client,
    w: &Workload,
    normal: Option<i32>,
) -> Result<(), QuiesceError> {
    let calls = Calls {
        client: client.clone(),
    };
    let has = calls.observe(w).await?.failover_scaled.is_some();
    if has == normal.is_some() {
        return Ok(());
    }
    let action = if normal.is_some() {
        "mark as scaled for a failover"
    } else {
        "remove the failover mark from"
    };
    calls
        .annotate_key(w, FAILOVER_SCALED, normal.map(|n| n.to_string()), action)
        .await
}

/// `w`'s [`FAILOVER_SCALED`] mark as written (`None`: not at a failover
/// count Lifeboat set): one read, retried like every read.
pub async fn failover_mark_of(
    client: &kube::Client,
    w: &Workload,
) -> Result<Option<String>, QuiesceError> {
    let calls = Calls {
        client: client.clone(),
    };
    Ok(calls.observe(w).await?.failover_scaled)
}

/// The count recorded in `w`'s [`ORIGINAL_REPLICAS`] annotation, as
/// written (`None`: no annotation, so not held down by Lifeboat): one read,
/// retried like every read. A value that is not a count is returned as it
/// is; [`resume_one`] refuses it.
pub async fn record_of(
    client: &kube::Client,
    w: &Workload,
) -> Result<Option<String>, QuiesceError> {
    let calls = Calls {
        client: client.clone(),
    };
    Ok(calls.observe(w).await?.annotation)
}

/// Brings one workload back to the count in its annotation, then removes the
/// annotation. Without the annotation it is left alone.
pub async fn resume_one(
    client: &kube::Client,
    w: &Workload,
    notify: &Notify,
) -> Result<ResumeOutcome, QuiesceError> {
    resume_one_with(
        &Calls {
            client: client.clone(),
        },
        w,
        notify,
    )
    .await
}

async fn resume_one_with(
    calls: &Calls,
    w: &Workload,
    notify: &Notify,
) -> Result<ResumeOutcome, QuiesceError> {
    let o = calls.observe(w).await?;
    let Some(v) = o.annotation else {
        return Ok(ResumeOutcome::NotQuiesced {
            replicas: o.spec_replicas.unwrap_or(0),
        });
    };
    let to = parse_annotation(w, &v)?;
    let from = o.spec_replicas.unwrap_or(0);
    // Scale first, then forget the record: a crash in between repeats a
    // harmless scale on the next resume. Already at the count (its scale to
    // 0 never happened, or someone scaled it back): only forget the record.
    if from != to {
        calls.scale(w, to).await?;
    }
    calls.annotate(w, None).await?;
    if from == to {
        notify(&format!(
            "{w} is already at its recorded {to} replicas; removed {ORIGINAL_REPLICAS}"
        ));
    } else {
        notify(&format!("scaled {w} back from {from} to {to} replicas"));
    }
    Ok(ResumeOutcome::Resumed { from, to })
}

/// Pod names for a message: the first five and how many more.
fn summarize(pods: &[String]) -> String {
    let mut s = pods.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if pods.len() > 5 {
        s.push_str(&format!(" and {} more", pods.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    #[test]
    fn selectors() {
        let s = LabelSelector {
            match_labels: Some(BTreeMap::from([
                ("app".to_string(), "data-storage".to_string()),
                ("tier".to_string(), "db".to_string()),
            ])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["y".into()]),
                },
                LabelSelectorRequirement {
                    key: "owner".into(),
                    operator: "Exists".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_string(&s).unwrap(),
            "app=data-storage,tier=db,env in (a,b),!canary,x notin (y),owner"
        );
        assert_eq!(selector_string(&LabelSelector::default()), None);
    }

    #[test]
    fn annotations_parse_strictly() {
        let w = Workload::new(Kind::Deployment, "ns", "d");
        assert_eq!(parse_annotation(&w, "2").unwrap(), 2);
        assert_eq!(parse_annotation(&w, " 0 ").unwrap(), 0);
        for bad in ["", "-1", "two", "1.5"] {
            let e = parse_annotation(&w, bad).unwrap_err().to_string();
            assert!(e.contains("deployment/d in namespace ns"), "{e}");
            assert!(e.contains("--overwrite"), "{e}");
        }
    }

    #[test]
    fn summaries_are_short() {
        let pods: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
        assert_eq!(summarize(&pods), "p0, p1, p2, p3, p4 and 3 more");
    }
}
