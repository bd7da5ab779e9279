//! Applying records to a cluster: server-side apply with field manager
//! `lifeboat`, class by class (CRDs — waited for until Established —,
//! Namespaces, Secrets and ConfigMaps, other built-in kinds, custom
//! resources), with namespace mapping, skip-or-update of existing objects,
//! a dry run that diffs against what the server would make of the apply,
//! and a result for every object. Nothing is reported as done that the API
//! server did not confirm.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::diff::diff;
use super::select::Selection;
use super::strip::{StripOptions, Stripped, strip};
use super::{Class, Record, Resource};
use crate::error::KubeError;

/// Field manager of every apply.
pub const FIELD_MANAGER: &str = "lifeboat";

/// What to do with an object that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Existing {
    /// Server-side apply over it (fields owned by others stay).
    #[default]
    Update,
    /// Leave it as it is.
    Skip,
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub selection: Selection,
    /// Source namespace → target namespace.
    pub namespace_map: BTreeMap<String, String>,
    pub existing: Existing,
    pub dry_run: bool,
    /// Applies in flight within a class.
    pub concurrency: usize,
    /// How long to wait for a CRD to become Established.
    pub crd_timeout: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            selection: Selection::default(),
            namespace_map: BTreeMap::new(),
            existing: Existing::Update,
            dry_run: false,
            concurrency: 8,
            crd_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Skipped,
    WouldCreate,
    WouldChange,
    WouldNotChange,
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped (exists)",
            Action::WouldCreate => "would create",
            Action::WouldChange => "would change",
            Action::WouldNotChange => "would not change",
            Action::Failed => "FAILED",
        }
    }
}

/// The outcome for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    pub kind: String,
    pub group: String,
    /// Namespace it was restored into (after mapping).
    pub namespace: Option<String>,
    pub name: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Dry run: what would change (Secret values masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The object's resource, for acting on it afterwards (a drill deletes
    /// what it created); `kind` and `group` above are its report form.
    #[serde(skip)]
    pub resource: Resource,
}

impl ObjectResult {
    pub fn display_ref(&self) -> String {
        let kind = self.kind.to_lowercase();
        match &self.namespace {
            Some(ns) => format!("{kind} {ns}/{}", self.name),
            None => format!("{kind} {}", self.name),
        }
    }
}

/// Every object's result, in restore order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub results: Vec<ObjectResult>,
    pub counts: BTreeMap<String, u64>,
    pub dry_run: bool,
}

impl RestoreReport {
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.action == Action::Failed)
            .count()
    }
}

/// Parses `FROM=TO` pairs.
pub fn parse_namespace_map(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for p in pairs {
        let Some((from, to)) = p.split_once('=') else {
            anyhow::bail!(
                "--namespace-map {p:?}: expected FROM=TO, e.g. kubernaut-system=kubernaut-test"
            );
        };
        let (from, to) = (from.trim(), to.trim());
        for n in [from, to] {
            if !valid_dns_label(n) {
                anyhow::bail!("--namespace-map {p:?}: {n:?} is not a valid namespace name");
            }
        }
        if map.insert(from.to_string(), to.to_string()).is_some() {
            anyhow::bail!("--namespace-map maps {from} twice");
        }
    }
    Ok(map)
}

fn valid_dns_label(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// Applies the namespace map to a record (its namespace, or a Namespace's
/// name).
fn map_namespace(r: &mut Record, map: &BTreeMap<String, String>) {
    if r.resource == Resource::namespace() {
        if let Some(to) = map.get(r.name()).cloned()
            && let Some(m) = r.object.pointer_mut("/metadata")
        {
            m["name"] = Value::String(to);
        }
    } else if let Some(ns) = r.namespace()
        && let Some(to) = map.get(ns).cloned()
        && let Some(m) = r.object.pointer_mut("/metadata")
    {
        m["namespace"] = Value::String(to);
    }
}

fn api_for(client: &kube::Client, r: &Record) -> Api<DynamicObject> {
    let ar = r.resource.api_resource();
    match (r.resource.namespaced, r.namespace()) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (true, None) => Api::default_namespaced_with(client.clone(), &ar),
        (false, _) => Api::all_with(client.clone(), &ar),
    }
}

fn to_dynamic(v: &Value) -> Result<DynamicObject, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("not a valid object: {e}"))
}

fn resource_version(o: &DynamicObject) -> Option<&str> {
    o.metadata.resource_version.as_deref()
}

/// The object as a comparable value: server fields stripped.
fn comparable(o: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    strip(
        &mut v,
        StripOptions {
            keep_owner_references: true,
            keep_status: false,
        },
        &mut Stripped::new(),
    );
    v
}

struct Applier<'a> {
    client: &'a kube::Client,
    opts: &'a RestoreOptions,
    /// Custom kinds (`plural.group`) whose CRD this dry run would create:
    /// their objects cannot be dry-run on the server yet.
    pending_crds: BTreeSet<String>,
    /// Namespaces this dry run would create: the server cannot dry-run
    /// objects into them.
    pending_namespaces: BTreeSet<String>,
}

impl Applier<'_> {
    async fn apply(&self, r: &Record) -> ObjectResult {
        let mut res = ObjectResult {
            kind: r.resource.kind.clone(),
            group: r.resource.group.clone(),
            namespace: r.namespace().map(str::to_string),
            name: r.name().to_string(),
            action: Action::Failed,
            error: None,
            diff: None,
            resource: r.resource.clone(),
        };
        match self.apply_inner(r, &mut res).await {
            Ok(action) => res.action = action,
            Err(e) => {
                res.action = Action::Failed;
                res.error = Some(e);
            }
        }
        res
    }

    async fn apply_inner(&self, r: &Record, res: &mut ObjectResult) -> Result<Action, String> {
        let name = r.name();
        if name.is_empty() {
            return Err("the stored object has no metadata.name".into());
        }
        let obj = to_dynamic(&r.object)?;
        let api = api_for(self.client, r);
        let what = super::display_ref(&r.resource, r.namespace(), name);
        let pending = (r.resource.class() == Class::Custom
            && self.pending_crds.contains(&r.resource.qualified_plural()))
            || r.namespace()
                .is_some_and(|ns| self.pending_namespaces.contains(ns));
        if self.opts.dry_run && pending {
            res.diff = Some(diff(None, &r.object, &what));
            return Ok(Action::WouldCreate);
        }
        let before = api
            .get_opt(name)
            .await
            .map_err(|e| KubeError::from_kube(&e, &format!("reading {what}")).message)?;
        if before.is_some() && self.opts.existing == Existing::Skip {
            return Ok(Action::Skipped);
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if self.opts.dry_run {
            params = params.dry_run();
        }
        let after = api
            .patch(name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| KubeError::from_kube(&e, &format!("applying {what}")).message)?;
        if self.opts.dry_run {
            let before_v = before.as_ref().map(comparable);
            let d = diff(before_v.as_ref(), &comparable(&after), &what);
            let action = match (&before, d.is_empty()) {
                (None, _) => Action::WouldCreate,
                (Some(_), true) => Action::WouldNotChange,
                (Some(_), false) => Action::WouldChange,
            };
            if !d.is_empty() {
                res.diff = Some(d);
            }
            return Ok(action);
        }
        Ok(match before {
            None => Action::Created,
            Some(b) if resource_version(&b) == resource_version(&after) => Action::Unchanged,
            Some(_) => Action::Configured,
        })
    }

    /// Waits until every CRD in `names` reports Established.
    async fn wait_established(&self, names: &[String]) -> Vec<(String, String)> {
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &Resource::crd().api_resource());
        let deadline = Instant::now() + self.opts.crd_timeout;
        let mut waiting: Vec<String> = names.to_vec();
        let mut failures = Vec::new();
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for n in waiting {
                match api.get_opt(&n).await {
                    Ok(Some(o)) if established(&o) => {}
                    Ok(_) => still.push(n),
                    Err(e) => failures.push((
                        n.clone(),
                        KubeError::from_kube(&e, &format!("reading CRD {n}")).message,
                    )),
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for n in waiting {
                    failures.push((
                        n.clone(),
                        format!(
                            "CRD {n} was not Established within {} s; its objects cannot be created (kubectl describe crd {n})",
                            self.opts.crd_timeout.as_secs()
                        ),
                    ));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        failures
    }
}

fn established(o: &DynamicObject) -> bool {
    o.data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|conds| {
            conds.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some("Established")
                    && c.get("status").and_then(|s| s.as_str()) == Some("True")
            })
        })
}

/// Restores `records` (as stored: unmapped, any order) into the cluster.
/// `on_result` sees each result as it comes (progress, streaming output).
pub async fn restore(
    client: &kube::Client,
    records: Vec<Record>,
    opts: &RestoreOptions,
    mut on_result: impl FnMut(&ObjectResult),
) -> Result<RestoreReport> {
    client
        .apiserver_version()
        .await
        .map_err(|e| KubeError::from_kube(&e, "connecting to the Kubernetes API"))?;
    let mut selected: Vec<Record> = records
        .into_iter()
        .filter(|r| opts.selection.matches(r))
        .collect();
    for r in &mut selected {
        map_namespace(r, &opts.namespace_map);
    }
    selected.sort_by_key(|r| r.resource.class());
    // Namespaces the objects go into that the snapshot does not create.
    let declared: BTreeSet<String> = selected
        .iter()
        .filter(|r| r.resource == Resource::namespace())
        .map(|r| r.name().to_string())
        .collect();
    let needed: BTreeSet<String> = selected
        .iter()
        .filter_map(|r| r.namespace().map(str::to_string))
        .filter(|ns| !declared.contains(ns))
        .collect();

    let mut applier = Applier {
        client,
        opts,
        pending_crds: BTreeSet::new(),
        pending_namespaces: BTreeSet::new(),
    };
    let mut report = RestoreReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let classes: Vec<Class> = {
        let mut c: Vec<Class> = selected.iter().map(|r| r.resource.class()).collect();
        c.dedup();
        c
    };
    let mut namespaces_ensured = false;
    for class in classes {
        if class > Class::Namespace && !namespaces_ensured {
            namespaces_ensured = true;
            for ns in &needed {
                let rec = Record {
                    resource: Resource::namespace(),
                    object: serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                };
                let existing_mode = RestoreOptions {
                    existing: Existing::Skip,
                    ..opts.clone()
                };
                let a = Applier {
                    client,
                    opts: &existing_mode,
                    pending_crds: BTreeSet::new(),
                    pending_namespaces: BTreeSet::new(),
                };
                let res = a.apply(&rec).await;
                if res.action == Action::WouldCreate {
                    applier.pending_namespaces.insert(ns.clone());
                }
                // An existing namespace is the normal case: not reported.
                if res.action != Action::Skipped {
                    on_result(&res);
                    report.results.push(res);
                }
            }
        }
        let batch: Vec<&Record> = selected
            .iter()
            .filter(|r| r.resource.class() == class)
            .collect();
        // The futures are made first (they are lazy): a closure inside the
        // stream would make the whole restore future impossible to prove
        // Send, and the daemon runs drills on spawned tasks.
        let mut pending = Vec::with_capacity(batch.len());
        for r in batch.iter().copied() {
            pending.push(applier.apply(r));
        }
        let results: Vec<ObjectResult> = futures::stream::iter(pending)
            .buffered(opts.concurrency.max(1))
            .inspect(|res| on_result(res))
            .collect()
            .await;
        if class == Class::CustomResourceDefinition {
            let mut applied = Vec::new();
            for (r, res) in batch.iter().zip(&results) {
                let spec = r.object.pointer("/spec");
                let key = spec
                    .and_then(|s| {
                        Some(format!(
                            "{}.{}",
                            s.pointer("/names/plural")?.as_str()?,
                            s.get("group")?.as_str()?
                        ))
                    })
                    .unwrap_or_default();
                match res.action {
                    Action::WouldCreate => {
                        applier.pending_crds.insert(key);
                    }
                    Action::Created | Action::Configured | Action::Unchanged => {
                        applied.push(res.name.clone())
                    }
                    _ => {}
                }
            }
            report.results.extend(results);
            if !opts.dry_run && !applied.is_empty() {
                for (crd, why) in applier.wait_established(&applied).await {
                    if let Some(res) = report
                        .results
                        .iter_mut()
                        .find(|r| r.kind == "CustomResourceDefinition" && r.name == crd)
                    {
                        res.action = Action::Failed;
                        res.error = Some(why);
                        on_result(res);
                    }
                }
            }
        } else {
            if class == Class::Namespace {
                for res in &results {
                    if res.action == Action::WouldCreate {
                        applier.pending_namespaces.insert(res.name.clone());
                    }
                }
            }
            report.results.extend(results);
        }
    }
    for r in &report.results {
        *report
            .counts
            .entry(r.action.as_str().to_string())
            .or_default() += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_map_parsing() {
        let m = parse_namespace_map(&["kubernaut-system=kubernaut-test".into()]).unwrap();
        assert_eq!(m["kubernaut-system"], "kubernaut-test");
        assert!(parse_namespace_map(&["nope".into()]).is_err());
        assert!(parse_namespace_map(&["a=B".into()]).is_err());
        assert!(parse_namespace_map(&["a=b".into(), "a=c".into()]).is_err());
    }

    #[test]
    fn mapping_moves_objects_and_renames_namespaces() {
        let map = parse_namespace_map(&["src=dst".into()]).unwrap();
        let mut cm = Record {
            resource: Resource {
                group: "".into(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
                namespaced: true,
            },
            object: json!({"metadata": {"name": "a", "namespace": "src"}}),
        };
        map_namespace(&mut cm, &map);
        assert_eq!(cm.namespace(), Some("dst"));
        let mut ns = Record {
            resource: Resource::namespace(),
            object: json!({"metadata": {"name": "src"}}),
        };
        map_namespace(&mut ns, &map);
        assert_eq!(ns.name(), "dst");
        let mut other = Record {
            resource: Resource::namespace(),
            object: json!({"metadata": {"name": "other"}}),
        };
        map_namespace(&mut other, &map);
        assert_eq!(other.name(), "other");
    }
}
