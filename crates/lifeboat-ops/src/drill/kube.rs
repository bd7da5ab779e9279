//! The Kubernetes part of a drill: the snapshot's namespaced objects are
//! restored into the drill namespaces (`drill.namespace_map`, e.g.
//! kubernaut-system → kubernaut-test), never into the namespaces they came
//! from. Afterwards the drill deletes what it created: the objects whose
//! restore created them (objects that existed before are left alone), then
//! the drill namespaces it created; a cleanup failure (e.g. 403) is reported
//! in the cleanup step and does not fail the drill. With no cluster
//! reachable, the objects are decoded, mapped and checked offline instead.

use std::collections::BTreeMap;
use std::time::Instant;

use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::objects::Record;
use lifeboat_kube::objects::delete::{Deleted, delete};
use lifeboat_kube::objects::resource::Resource;
use lifeboat_kube::objects::restore::{self as kube_restore, Action, RestoreOptions};
use lifeboat_repo::Repository;
use lifeboat_repo::snapshot::SnapshotRef;

use super::{Outcome, step};
use crate::error::Result;

pub async fn drill(
    repo: &Repository,
    snap: &SnapshotRef,
    map: &BTreeMap<String, String>,
    cluster: &ClusterOptions,
    out: &mut Outcome,
) -> Result<()> {
    let t = Instant::now();
    let records = crate::kube::read_records(repo, snap).await?;
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
        crate::bail!(
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
        Ok(c) => match lifeboat_kube::client::reachable(&c).await {
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
            return Err(e.into());
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
        format!(
            "applied new objects, replaced existing ones: {}",
            counts.join(", ")
        ),
    ));
    out.rto_seconds = Some(out.started.elapsed().as_secs_f64());

    let t = Instant::now();
    let (cleaned, detail) = cleanup(&client, &report, &targets).await;
    out.steps.push(step("cleanup", cleaned, t, detail));
    if failed.is_empty() {
        Ok(())
    } else {
        crate::bail!(
            "{} of {} objects failed to restore: {}",
            failed.len(),
            report.results.len(),
            failed.join("; ")
        )
    }
}

/// Deletes what the drill created: its objects (in the reverse of restore
/// order), then the drill namespaces it created. Objects that existed before
/// the drill (configured, unchanged) and namespaces that existed are left
/// alone. Returns whether everything was deleted, and what was done; a
/// failure names the object and does not fail the drill (the data was
/// already proven restorable).
async fn cleanup(
    client: &lifeboat_kube::Client,
    report: &kube_restore::RestoreReport,
    targets: &[String],
) -> (bool, String) {
    let is_namespace = |r: &kube_restore::ObjectResult| {
        r.kind == "Namespace" && r.group.is_empty() && r.namespace.is_none()
    };
    let mut deleted: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = 0usize;
    let mut problems = Vec::new();
    for res in report.results.iter().rev().filter(|r| !is_namespace(r)) {
        match res.action {
            Action::Created => {}
            Action::Configured | Action::Unchanged | Action::Skipped => {
                kept += 1;
                continue;
            }
            _ => continue,
        }
        let resource = &res.resource;
        let Some(ns) = res.namespace.as_deref() else {
            continue; // only namespaced objects are drilled
        };
        let what = format!("could not delete {}", res.display_ref());
        match delete(client, resource, Some(ns), &res.name, &what).await {
            // Already gone (deleted by someone else): nothing left behind.
            Ok(Deleted::Deleted | Deleted::AlreadyGone) => {
                *deleted.entry(resource.qualified_plural()).or_default() += 1
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut notes = Vec::new();
    let n: usize = deleted.values().sum();
    notes.push(if n == 0 {
        "no objects created by the drill to delete".to_string()
    } else {
        format!(
            "deleted the {n} objects the drill created ({})",
            deleted
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    if kept > 0 {
        notes.push(format!(
            "left alone {kept} objects that existed before the drill"
        ));
    }
    let created_namespaces: Vec<&str> = report
        .results
        .iter()
        .filter(|r| is_namespace(r) && r.action == Action::Created)
        .map(|r| r.name.as_str())
        .collect();
    for ns in &created_namespaces {
        let what = format!("could not delete namespace {ns}");
        match delete(client, &Resource::namespace(), None, ns, &what).await {
            Ok(Deleted::Deleted) => {
                notes.push(format!("deleted namespace {ns}, which the drill created"))
            }
            Ok(Deleted::AlreadyGone) => notes.push(format!("namespace {ns} was already gone")),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let kept_namespaces: Vec<&str> = targets
        .iter()
        .map(String::as_str)
        .filter(|t| !created_namespaces.contains(t))
        .collect();
    if !kept_namespaces.is_empty() {
        notes.push(format!(
            "namespace(s) {} existed before the drill and are kept",
            kept_namespaces.join(", ")
        ));
    }
    let ok = problems.is_empty();
    notes.extend(problems);
    (ok, notes.join("; "))
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
        crate::bail!("objects without a kind or name: {}", bad.join(", "))
    }
}
