//! The Kubernetes part of a drill: the snapshot's namespaced objects are
//! restored into the drill namespaces (`drill.namespace_map`, e.g.
//! kubernaut-system → kubernaut-test), never into the namespaces they came
//! from; namespaces the drill created are deleted afterwards. With no cluster
//! reachable, the objects are decoded, mapped and checked offline instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::objects::Record;
use lifeboat_kube::objects::resource::Resource;
use lifeboat_kube::objects::restore::{self as kube_restore, Action, RestoreOptions};
use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::snapshot::SnapshotRef;

use super::{Outcome, step};

/// The stored item of a kube snapshot (as `backup kube` writes it).
const ITEM: &str = "kube-objects.jsonl";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("buffer lock poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn drill(
    repo: &Repository,
    snap: &SnapshotRef,
    map: &BTreeMap<String, String>,
    cluster: &ClusterOptions,
    out: &mut Outcome,
) -> Result<()> {
    let t = Instant::now();
    let buf = Buf::default();
    restore_item(
        repo,
        snap,
        Some(ITEM),
        buf.clone(),
        Arc::new(Progress::default()),
    )
    .await?;
    let bytes = std::mem::take(
        &mut *buf
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?,
    );
    let records = lifeboat_kube::objects::parse_item(&bytes)
        .with_context(|| format!("decoding the objects of snapshot {}", snap.short_id()))?;
    let total = records.len();
    // Only namespaced objects of mapped namespaces: a drill never writes into
    // the namespaces it protects, nor cluster-wide objects (CRDs).
    let (drilled, left): (Vec<Record>, Vec<Record>) = records
        .into_iter()
        .partition(|r| r.namespace().is_some_and(|ns| map.contains_key(ns)));
    let unmapped: std::collections::BTreeSet<String> = left
        .iter()
        .filter_map(|r| r.namespace().map(str::to_string))
        .collect();
    if !unmapped.is_empty() {
        anyhow::bail!(
            "snapshot {} holds objects of namespace(s) {} that drill.namespace_map does not map \
             to a drill namespace; a drill never restores into the namespaces it protects: add \
             them to the source's drill.namespace_map",
            snap.short_id(),
            unmapped.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let targets: Vec<String> = map.values().cloned().collect();
    out.steps.push(step(
        "read objects",
        true,
        t,
        format!(
            "{total} objects in snapshot {}; {} namespaced objects to restore into {} ({} cluster-scoped left out)",
            snap.short_id(),
            drilled.len(),
            targets.join(", "),
            left.len()
        ),
    ));

    let t = Instant::now();
    let client = match lifeboat_kube::client::connect(cluster).await {
        Ok(c) => match c.apiserver_version().await {
            Ok(_) => Some(c),
            Err(e) => {
                out.target = format!("offline check (no cluster reachable: {e})");
                None
            }
        },
        Err(e) => {
            out.target = format!("offline check (no cluster reachable: {e:#})");
            None
        }
    };
    let Some(client) = client else {
        return offline(drilled, map, t, out);
    };
    out.target = format!("namespace(s) {}", targets.join(", "));
    let opts = RestoreOptions {
        namespace_map: map.clone(),
        ..RestoreOptions::default()
    };
    let restored = kube_restore::restore(&client, drilled, &opts, |_| {}).await;
    let report = match restored {
        Ok(r) => r,
        Err(e) => {
            out.steps.push(step("restore", false, t, format!("{e:#}")));
            return Err(e);
        }
    };
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.action == Action::Failed)
        .map(|r| {
            format!(
                "{}: {}",
                r.display_ref(),
                r.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    out.steps.push(step(
        "restore",
        failed.is_empty(),
        t,
        format!("server-side apply: {}", counts.join(", ")),
    ));
    out.rto_seconds = Some(out.started.elapsed().as_secs_f64());

    let t = Instant::now();
    let created_namespaces: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.kind == "Namespace" && r.action == Action::Created)
        .map(|r| r.name.clone())
        .collect();
    let ar = Resource::namespace().api_resource();
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client, &ar);
    let mut notes = Vec::new();
    for ns in &created_namespaces {
        match api.delete(ns, &Default::default()).await {
            Ok(_) => notes.push(format!("deleted namespace {ns}")),
            Err(e) => notes.push(format!("could not delete namespace {ns}: {e}")),
        }
    }
    if created_namespaces.is_empty() {
        notes.push(format!(
            "{} existed before the drill and keep the restored objects",
            targets.join(", ")
        ));
    }
    out.steps.push(step("cleanup", true, t, notes.join("; ")));
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} objects failed to restore: {}",
            failed.len(),
            report.results.len(),
            failed.join("; ")
        )
    }
}

/// No cluster: every object must decode, carry a kind and a name, and map
/// into a drill namespace.
fn offline(
    records: Vec<Record>,
    map: &BTreeMap<String, String>,
    t: Instant,
    out: &mut Outcome,
) -> Result<()> {
    let mut bad = Vec::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        let kind = r.object.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind.is_empty() || r.name().is_empty() {
            bad.push(r.display());
            continue;
        }
        *kinds.entry(r.resource.qualified_plural()).or_default() += 1;
    }
    let detail = format!(
        "dry run without a cluster: {} objects decoded and mapped ({}) into {}",
        records.len(),
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        map.values().cloned().collect::<Vec<_>>().join(", ")
    );
    out.steps.push(step("dry run", bad.is_empty(), t, detail));
    out.rto_seconds = Some(out.started.elapsed().as_secs_f64());
    if bad.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("objects without a kind or name: {}", bad.join(", "))
    }
}
