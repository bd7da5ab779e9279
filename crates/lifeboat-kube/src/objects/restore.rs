//! Applying records to a cluster, class by class (CRDs — waited for until
//! Established —, Namespaces, Secrets and ConfigMaps, other built-in kinds,
//! custom resources), with namespace mapping, a policy for objects that
//! already exist ([`Existing`]), a dry run that diffs against what the
//! server would make of the write, and a result for every object. Nothing
//! is reported as done that the API server did not confirm.
//!
//! Objects that do not exist are created by server-side apply (field
//! manager `lifeboat`). An existing object is, by default, **replaced**: a
//! PUT of the stored object carrying the live `resourceVersion`, so the
//! result equals the snapshot — keys added since the backup are removed,
//! which server-side apply can never do for fields another manager owns.
//! A 409 Conflict (someone wrote in between) re-reads and tries again. What
//! the backup stripped is kept from the live object rather than removed:
//! `metadata.ownerReferences` and `status` when the stored object has none.
//! `Existing::Update` is the merge (server-side apply with `force`), and
//! `Existing::Skip` leaves existing objects alone.
//!
//! Every request is retried on transient failures ([`crate::retry`]): reads,
//! applies, and PUTs (a PUT that did reach the server before its answer was
//! lost is refused on retry with a 409, which re-reads).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::Value;

use super::diff::{Changes, changes, diff};
use super::select::Selection;
use super::strip::{StripOptions, Stripped, strip};
use super::{Class, Record, Resource};
use crate::error::KubeError;
use crate::retry;

/// Field manager of every apply.
pub const FIELD_MANAGER: &str = "lifeboat";

/// What to do with an object that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Existing {
    /// Make it equal to the snapshot: a PUT with the live resourceVersion
    /// (keys added since the backup are removed).
    #[default]
    Replace,
    /// Merge: server-side apply over it with `force` (the snapshot's fields
    /// win, fields it does not have stay).
    Update,
    /// Leave it as it is.
    Skip,
}

/// Times a replace re-reads an object after a 409 Conflict before it gives
/// up on that object.
const CONFLICT_ATTEMPTS: u32 = 5;

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
            existing: Existing::Replace,
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
    /// An existing object: the keys that are (or, in a dry run, would be)
    /// added, changed and removed, as paths (`data["extra.conf"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
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

/// A `--namespace-map` pair that is not `FROM=TO` of two namespace names,
/// or a namespace mapped twice.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NamespaceMapError(String);

/// Parses `FROM=TO` pairs.
pub fn parse_namespace_map(
    pairs: &[String],
) -> Result<BTreeMap<String, String>, NamespaceMapError> {
    let bad = |m: String| Err(NamespaceMapError(m));
    let mut map = BTreeMap::new();
    for p in pairs {
        let Some((from, to)) = p.split_once('=') else {
            return bad(format!(
                "--namespace-map {p:?}: expected FROM=TO, e.g. kubernaut-system=kubernaut-test"
            ));
        };
        let (from, to) = (from.trim(), to.trim());
        for n in [from, to] {
            if !valid_dns_label(n) {
                return bad(format!(
                    "--namespace-map {p:?}: {n:?} is not a valid namespace name"
                ));
            }
        }
        if map.insert(from.to_string(), to.to_string()).is_some() {
            return bad(format!("--namespace-map maps {from} twice"));
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
            changes: None,
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
        let before = get(&api, name, &what).await?;
        match (&before, self.opts.existing) {
            (Some(_), Existing::Skip) => Ok(Action::Skipped),
            (Some(live), Existing::Replace) => {
                self.replace(&api, r, live.clone(), &what, res).await
            }
            _ => self.apply_ssa(&api, &obj, before, &what, res).await,
        }
    }

    /// Server-side apply with `force`: creates, or merges into `before`.
    async fn apply_ssa(
        &self,
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
        before: Option<DynamicObject>,
        what: &str,
        res: &mut ObjectResult,
    ) -> Result<Action, String> {
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if self.opts.dry_run {
            params = params.dry_run();
        }
        let doing = format!("applying {what}");
        let patch = Patch::Apply(obj);
        let after = retry::call(&doing, || api.patch(name, &params, &patch))
            .await
            .map_err(|e| KubeError::from_failed(&e, &doing).message)?;
        Ok(self.outcome(before.as_ref(), &after, what, res))
    }

    /// Makes the live object equal to the stored one: a PUT carrying the
    /// live resourceVersion (a dry run asks the server what it would
    /// store). A 409 Conflict means it changed in between: read it again
    /// and retry; gone in between: create it.
    async fn replace(
        &self,
        api: &Api<DynamicObject>,
        r: &Record,
        mut live: DynamicObject,
        what: &str,
        res: &mut ObjectResult,
    ) -> Result<Action, String> {
        let name = r.name();
        let params = PostParams {
            dry_run: self.opts.dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let doing = format!("replacing {what}");
        for _ in 0..CONFLICT_ATTEMPTS {
            let body = to_dynamic(&replacement(&r.object, &live))?;
            match retry::call(&doing, || api.replace(name, &params, &body)).await {
                Ok(after) => return Ok(self.outcome(Some(&live), &after, what, res)),
                Err(f) if matches!(KubeError::status_code(&f.error), Some(409 | 404)) => {
                    match get(api, name, what).await? {
                        Some(l) => live = l,
                        None => {
                            let obj = to_dynamic(&r.object)?;
                            return self.apply_ssa(api, &obj, None, what, res).await;
                        }
                    }
                }
                Err(f) => {
                    let mut m = KubeError::from_failed(&f, &doing).message;
                    if KubeError::status_code(&f.error) == Some(405) {
                        m.push_str(
                            "; this kind cannot be replaced: restore it with --existing update",
                        );
                    }
                    return Err(m);
                }
            }
        }
        Err(format!(
            "{doing}: it was changed by someone else {CONFLICT_ATTEMPTS} times while Lifeboat \
             replaced it (409 Conflict each time); run the restore again"
        ))
    }

    /// The action for a write whose result is `after`, and (dry run) the
    /// diff; the changed keys of an object that existed.
    fn outcome(
        &self,
        before: Option<&DynamicObject>,
        after: &DynamicObject,
        what: &str,
        res: &mut ObjectResult,
    ) -> Action {
        let before_v = before.map(comparable);
        let after_v = comparable(after);
        if let Some(b) = &before_v {
            let c = changes(b, &after_v);
            if !c.is_empty() {
                res.changes = Some(c);
            }
        }
        if self.opts.dry_run {
            let d = diff(before_v.as_ref(), &after_v, what);
            let action = match (&before_v, d.is_empty()) {
                (None, _) => Action::WouldCreate,
                (Some(_), true) => Action::WouldNotChange,
                (Some(_), false) => Action::WouldChange,
            };
            if !d.is_empty() {
                res.diff = Some(d);
            }
            return action;
        }
        match before {
            None => Action::Created,
            Some(b) if resource_version(b) == resource_version(after) => Action::Unchanged,
            Some(_) => Action::Configured,
        }
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
                match get(&api, &n, &format!("CRD {n}")).await {
                    Ok(Some(o)) if established(&o) => {}
                    Ok(_) => still.push(n),
                    Err(e) => failures.push((n.clone(), e)),
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

/// Reads one object (`None`: absent), retrying transient failures.
async fn get(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
) -> Result<Option<DynamicObject>, String> {
    let doing = format!("reading {what}");
    retry::call(&doing, || api.get_opt(name))
        .await
        .map_err(|e| KubeError::from_failed(&e, &doing).message)
}

/// The body of a replace: the stored object with the live
/// `resourceVersion` (the precondition), keeping from the live object what
/// the backup strips when the stored object has none of it
/// (`metadata.ownerReferences`, `status`).
fn replacement(stored: &Value, live: &DynamicObject) -> Value {
    let mut body = stored.clone();
    let live_v = serde_json::to_value(live).unwrap_or(Value::Null);
    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(rv) = &live.metadata.resource_version {
            m.insert("resourceVersion".into(), Value::String(rv.clone()));
        }
        if !m.contains_key("ownerReferences")
            && let Some(o) = live_v.pointer("/metadata/ownerReferences")
        {
            m.insert("ownerReferences".into(), o.clone());
        }
    }
    if let Some(m) = body.as_object_mut()
        && !m.contains_key("status")
        && let Some(st) = live_v.get("status")
    {
        m.insert("status".into(), st.clone());
    }
    body
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
///
/// Class by class (records sorted by [`Class`]): before the first class
/// after Namespaces, the namespaces the objects need and the snapshot does
/// not create ([`Applier::ensure_namespaces`]); then the class's objects,
/// `concurrency` at a time; after the CRDs, the wait until they are
/// Established ([`Applier::settle_crds`]).
pub async fn restore(
    client: &kube::Client,
    records: Vec<Record>,
    opts: &RestoreOptions,
    mut on_result: impl FnMut(&ObjectResult),
) -> Result<RestoreReport, KubeError> {
    super::backup::connected(client).await?;
    let selected = select_and_map(records, opts);
    let needed = needed_namespaces(&selected);
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
    let mut classes: Vec<Class> = selected.iter().map(|r| r.resource.class()).collect();
    classes.dedup();
    let mut namespaces_ensured = false;
    for class in classes {
        if class > Class::Namespace && !namespaces_ensured {
            namespaces_ensured = true;
            applier
                .ensure_namespaces(&needed, &mut report, &mut on_result)
                .await;
        }
        let batch: Vec<&Record> = selected
            .iter()
            .filter(|r| r.resource.class() == class)
            .collect();
        let results = applier.apply_all(&batch, &mut on_result).await;
        match class {
            Class::CustomResourceDefinition => {
                applier
                    .settle_crds(&batch, results, &mut report, &mut on_result)
                    .await
            }
            Class::Namespace => {
                for res in &results {
                    if res.action == Action::WouldCreate {
                        applier.pending_namespaces.insert(res.name.clone());
                    }
                }
                report.results.extend(results);
            }
            _ => report.results.extend(results),
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

/// The records the selection picks, their namespaces mapped, sorted by
/// class (stable: the stored order within a class).
fn select_and_map(records: Vec<Record>, opts: &RestoreOptions) -> Vec<Record> {
    let mut selected: Vec<Record> = records
        .into_iter()
        .filter(|r| opts.selection.matches(r))
        .collect();
    for r in &mut selected {
        map_namespace(r, &opts.namespace_map);
    }
    selected.sort_by_key(|r| r.resource.class());
    selected
}

/// Namespaces the objects go into that the snapshot does not create.
fn needed_namespaces(selected: &[Record]) -> BTreeSet<String> {
    let declared: BTreeSet<&str> = selected
        .iter()
        .filter(|r| r.resource == Resource::namespace())
        .map(|r| r.name())
        .collect();
    selected
        .iter()
        .filter_map(|r| r.namespace())
        .filter(|ns| !declared.contains(ns))
        .map(str::to_string)
        .collect()
}

impl Applier<'_> {
    /// Creates each namespace of `needed` that does not exist (a dry run
    /// notes it as pending). An existing namespace is the normal case and
    /// is not reported.
    async fn ensure_namespaces(
        &mut self,
        needed: &BTreeSet<String>,
        report: &mut RestoreReport,
        on_result: &mut impl FnMut(&ObjectResult),
    ) {
        let existing_mode = RestoreOptions {
            existing: Existing::Skip,
            ..self.opts.clone()
        };
        let a = Applier {
            client: self.client,
            opts: &existing_mode,
            pending_crds: BTreeSet::new(),
            pending_namespaces: BTreeSet::new(),
        };
        for ns in needed {
            let rec = Record {
                resource: Resource::namespace(),
                object: serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            };
            let res = a.apply(&rec).await;
            if res.action == Action::WouldCreate {
                self.pending_namespaces.insert(ns.clone());
            }
            if res.action != Action::Skipped {
                on_result(&res);
                report.results.push(res);
            }
        }
    }

    /// Applies `batch` (one class), `concurrency` at a time, results in the
    /// batch's order.
    async fn apply_all(
        &self,
        batch: &[&Record],
        on_result: &mut impl FnMut(&ObjectResult),
    ) -> Vec<ObjectResult> {
        // The futures are made first (they are lazy): a closure inside the
        // stream would make the whole restore future impossible to prove
        // Send, and the daemon runs drills on spawned tasks.
        let mut pending = Vec::with_capacity(batch.len());
        for r in batch.iter().copied() {
            pending.push(self.apply(r));
        }
        futures::stream::iter(pending)
            .buffered(self.opts.concurrency.max(1))
            .inspect(|res| on_result(res))
            .collect()
            .await
    }

    /// After the CRDs' batch: notes the kinds whose CRD a dry run would
    /// create, adds the results to the report, then (not a dry run) waits
    /// for the applied CRDs to be Established, failing those that are not.
    async fn settle_crds(
        &mut self,
        batch: &[&Record],
        results: Vec<ObjectResult>,
        report: &mut RestoreReport,
        on_result: &mut impl FnMut(&ObjectResult),
    ) {
        let mut applied = Vec::new();
        for (r, res) in batch.iter().zip(&results) {
            match res.action {
                Action::WouldCreate => {
                    self.pending_crds.insert(crd_kind(r));
                }
                Action::Created | Action::Configured | Action::Unchanged => {
                    applied.push(res.name.clone())
                }
                _ => {}
            }
        }
        report.results.extend(results);
        if self.opts.dry_run || applied.is_empty() {
            return;
        }
        for (crd, why) in self.wait_established(&applied).await {
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
}

/// The kind a stored CRD defines, `plural.group` (empty when the record
/// does not say).
fn crd_kind(r: &Record) -> String {
    let spec = r.object.pointer("/spec");
    spec.and_then(|s| {
        Some(format!(
            "{}.{}",
            s.pointer("/names/plural")?.as_str()?,
            s.get("group")?.as_str()?
        ))
    })
    .unwrap_or_default()
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
