//! The object store and every write path (create, apply, patch, replace,
//! delete), shared by the HTTP handlers and the in-process test API.

use crate::apply::{self, ApplyCtx};
use crate::resources::{self, Builtin, ResourceDef};
use crate::status::{ApiError, success_status};
use crate::util::{metadata_mut, new_uid, now_rfc3339, str_at};
use crate::validate;
use crate::{FaultFn, Options, RequestRecord};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Where an object lives. Ordered by resource, then namespace, then name:
/// a list is a range scan and its order is the pagination order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(def: &ResourceDef, namespace: Option<&str>, name: &str) -> Key {
        Key {
            group: def.group.clone(),
            plural: def.plural.clone(),
            namespace: if def.namespaced {
                namespace.unwrap_or_default().to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// A stored object: compact JSON plus its labels for selector matching
/// without parsing. Clones share the bytes.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    bytes: Arc<[u8]>,
    labels: Arc<[(Box<str>, Box<str>)]>,
}

impl Stored {
    pub fn new(v: &Value) -> Stored {
        let labels: Vec<(Box<str>, Box<str>)> = v
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().unwrap_or_default().into()))
                    .collect()
            })
            .unwrap_or_default();
        Stored {
            bytes: serde_json::to_vec(v).unwrap_or_default().into(),
            labels: labels.into(),
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(lk, _)| &**lk == k)
            .map(|(_, v)| &**v)
    }
}

/// A change, for watches.
#[derive(Debug)]
pub(crate) struct Event {
    pub etype: &'static str,
    pub key: Key,
    pub rv: u64,
    pub stored: Stored,
}

/// Work to run after a delay, outside the lock.
#[derive(Debug, Clone)]
pub(crate) enum Deferred {
    Establish(String),
    Reconcile(Builtin, String, String),
}

/// What a write is told by the request.
pub(crate) struct WriteCtx {
    pub version: String,
    pub namespace: Option<String>,
    pub dry_run: bool,
    pub manager: String,
    pub now: String,
}

/// Which part of the object a write addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    Main,
    Status,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
}

const HISTORY: usize = 1000;

pub(crate) struct State {
    pub objects: BTreeMap<Key, Stored>,
    pub rv: u64,
    /// Continue tokens issued before this resourceVersion are expired.
    pub compacted_rv: u64,
    pub builtins: Vec<ResourceDef>,
    /// One def per stored CRD, Established or not.
    pub crds: Vec<ResourceDef>,
    pub opts: Options,
    pub fault: Option<FaultFn>,
    /// Counted faults ([`crate::ApiDouble::fail_next`]), checked in order
    /// before `fault`; a rule is dropped once it has answered its count.
    pub fault_rules: Vec<crate::FaultRule>,
    pub requests: VecDeque<RequestRecord>,
    pub pending: Vec<Deferred>,
    pub events: broadcast::Sender<Arc<Event>>,
    pub history: VecDeque<Arc<Event>>,
    pub cluster_ca: String,
}

impl State {
    pub fn new(opts: Options) -> State {
        let (events, _) = broadcast::channel(4096);
        let ca_body = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("kube-double test CA, not a certificate: {}", new_uid()),
        );
        let mut st = State {
            objects: BTreeMap::new(),
            rv: 100,
            compacted_rv: 0,
            builtins: resources::builtins(),
            crds: Vec::new(),
            opts,
            fault: None,
            fault_rules: Vec::new(),
            requests: VecDeque::new(),
            pending: Vec::new(),
            events,
            history: VecDeque::new(),
            cluster_ca: format!(
                "-----BEGIN CERTIFICATE-----\n{ca_body}\n-----END CERTIFICATE-----\n"
            ),
        };
        if st.opts.system_objects {
            for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
                st.ensure_namespace(ns);
            }
        }
        st
    }

    // ----- registry -----

    /// The def served over HTTP at `group`/`version`/`plural`: built-ins,
    /// and custom resources of Established CRDs at a served version.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.served_defs()
            .into_iter()
            .find(|d| d.group == group && d.plural == plural && d.serves(version))
            .cloned()
    }

    pub fn served_defs(&self) -> Vec<&ResourceDef> {
        self.builtins
            .iter()
            .chain(self.crds.iter().filter(|d| d.established))
            .collect()
    }

    /// For the test API: by `apiVersion` and kind or plural (any case),
    /// including CRDs not yet Established.
    pub fn find_def(
        &self,
        api_version: &str,
        kind_or_plural: &str,
    ) -> Option<(ResourceDef, String)> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.builtins
            .iter()
            .chain(self.crds.iter())
            .find(|d| {
                d.group == group
                    && d.serves(version)
                    && (d.kind.eq_ignore_ascii_case(kind_or_plural)
                        || d.plural.eq_ignore_ascii_case(kind_or_plural))
            })
            .map(|d| (d.clone(), version.to_string()))
    }

    pub fn def_for_key(&self, key: &Key) -> Option<&ResourceDef> {
        self.builtins
            .iter()
            .chain(self.crds.iter())
            .find(|d| d.group == key.group && d.plural == key.plural)
    }

    fn rebuild_crds(&mut self) {
        let crd = Key {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: String::new(),
        };
        self.crds = self
            .objects
            .range(crd.clone()..)
            .take_while(|(k, _)| k.group == crd.group && k.plural == crd.plural)
            .filter_map(|(_, s)| resources::from_crd(&s.value()))
            .collect();
    }

    // ----- reading -----

    pub fn get_value(&self, key: &Key) -> Option<Value> {
        self.objects.get(key).map(Stored::value)
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.objects.contains_key(&Key {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        })
    }

    /// The object as served at `version`: `apiVersion` and `kind` set.
    pub fn present(def: &ResourceDef, version: &str, mut v: Value) -> Value {
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), json!(def.api_version(version)));
            m.insert("kind".into(), json!(def.kind));
        }
        v
    }

    // ----- committing -----

    fn emit(&mut self, etype: &'static str, key: Key, stored: Stored) {
        let ev = Arc::new(Event {
            etype,
            key,
            rv: self.rv,
            stored,
        });
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(ev.clone());
        }
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev);
    }

    /// Stores `obj` under a new resourceVersion and runs the kind's hooks.
    pub fn commit(&mut self, def: &ResourceDef, key: Key, mut obj: Value, hooks: bool) -> Value {
        self.rv += 1;
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let stored = Stored::new(&obj);
        let existed = self.objects.insert(key.clone(), stored.clone()).is_some();
        self.emit(
            if existed { "MODIFIED" } else { "ADDED" },
            key.clone(),
            stored,
        );
        if hooks {
            self.after_write(def, &key, existed);
        }
        obj
    }

    fn after_write(&mut self, def: &ResourceDef, key: &Key, existed: bool) {
        match def.builtin {
            Builtin::Crd => {
                self.rebuild_crds();
                if !self
                    .crds
                    .iter()
                    .any(|d| d.crd_name == key.name && d.established)
                {
                    self.pending.push(Deferred::Establish(key.name.clone()));
                }
            }
            Builtin::Deployment | Builtin::StatefulSet => {
                self.pending.push(Deferred::Reconcile(
                    def.builtin,
                    key.namespace.clone(),
                    key.name.clone(),
                ));
            }
            Builtin::Namespace if !existed && self.opts.system_objects => {
                let ns = key.name.clone();
                self.namespace_defaults(&ns);
            }
            _ => {}
        }
    }

    /// Removes an object and what the real cluster would remove with it
    /// (a Namespace's objects, a CRD's custom resources, a workload's pods).
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        self.remove_with(key, true)
    }

    /// `hooks: false` is the controllers' own removal (no cascade, no
    /// reconcile of the owner).
    pub fn remove_with(&mut self, key: &Key, hooks: bool) -> Option<Value> {
        let stored = self.objects.remove(key)?;
        self.rv += 1;
        let mut v = stored.value();
        metadata_mut(&mut v).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.emit("DELETED", key.clone(), Stored::new(&v));
        if !hooks {
            return Some(v);
        }
        match (key.group.as_str(), key.plural.as_str()) {
            ("", "namespaces") => {
                let inside: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.namespace == key.name)
                    .cloned()
                    .collect();
                for k in inside {
                    self.remove(&k);
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                if let Some(def) = self.crds.iter().find(|d| d.crd_name == key.name).cloned() {
                    let crs: Vec<Key> = self
                        .objects
                        .keys()
                        .filter(|k| k.group == def.group && k.plural == def.plural)
                        .cloned()
                        .collect();
                    for k in crs {
                        self.remove(&k);
                    }
                }
                self.rebuild_crds();
            }
            ("apps", "deployments") => self.pending.push(Deferred::Reconcile(
                Builtin::Deployment,
                key.namespace.clone(),
                key.name.clone(),
            )),
            ("apps", "statefulsets") => self.pending.push(Deferred::Reconcile(
                Builtin::StatefulSet,
                key.namespace.clone(),
                key.name.clone(),
            )),
            ("", "pods") => {
                if let Some((kind, owner)) = crate::workloads::pod_owner(&v) {
                    self.pending
                        .push(Deferred::Reconcile(kind, key.namespace.clone(), owner));
                }
            }
            _ => {}
        }
        Some(v)
    }

    /// Creates an object as a controller would: no validation, manager
    /// `manager`, operation Update.
    pub fn internal_create(&mut self, def: &ResourceDef, mut obj: Value, manager: &str) -> Value {
        let now = now_rfc3339();
        let name = str_at(&obj, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let ns = str_at(&obj, &["metadata", "namespace"]).map(str::to_string);
        {
            let md = metadata_mut(&mut obj);
            md.insert("uid".into(), json!(new_uid()));
            md.insert("creationTimestamp".into(), json!(now));
            if def.generation {
                md.insert("generation".into(), json!(1));
            }
        }
        let av = def.api_version(def.preferred_version());
        apply::record_update(None, &mut obj, manager, &av, &now, "", false);
        let key = Key::new(def, ns.as_deref(), &name);
        self.commit(def, key, obj, true)
    }

    pub fn ensure_namespace(&mut self, ns: &str) {
        if self.namespace_exists(ns) {
            return;
        }
        let def = self.builtin(Builtin::Namespace);
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        validate::normalise(&def, &mut obj);
        self.internal_create(&def, obj, "kube-double");
    }

    /// What the cluster's controllers put into every new namespace: the
    /// `kube-root-ca.crt` ConfigMap (this double's own fake CA bundle) and
    /// the `default` ServiceAccount.
    fn namespace_defaults(&mut self, ns: &str) {
        let cm = self.builtin(Builtin::ConfigMap);
        let ca = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "kube-root-ca.crt", "namespace": ns,
                "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}
            },
            "data": {"ca.crt": self.cluster_ca},
        });
        self.internal_create(&cm, ca, "kube-controller-manager");
        let sa = self.builtin(Builtin::ServiceAccount);
        let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        self.internal_create(&sa, obj, "kube-controller-manager");
    }

    pub fn builtin(&self, b: Builtin) -> ResourceDef {
        self.builtins
            .iter()
            .find(|d| d.builtin == b)
            .cloned()
            .unwrap_or_else(|| unreachable!("every Builtin has a def"))
    }

    // ----- write paths -----

    fn require_namespace(&self, def: &ResourceDef, ns: Option<&str>) -> Result<(), ApiError> {
        if def.namespaced {
            let ns = ns.unwrap_or_default();
            if !self.namespace_exists(ns) {
                return Err(ApiError::namespace_not_found(ns));
            }
        }
        Ok(())
    }

    /// POST to a collection.
    pub fn create(
        &mut self,
        def: &ResourceDef,
        body: Value,
        ctx: &WriteCtx,
    ) -> Result<(u16, Value), ApiError> {
        check_body(
            def,
            &ctx.version,
            ctx.namespace.as_deref(),
            None,
            &body,
            true,
        )?;
        let mut obj = body;
        let mut name = str_at(&obj, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            match str_at(&obj, &["metadata", "generateName"]) {
                Some(prefix) if !prefix.is_empty() => {
                    name = format!("{prefix}{}", crate::util::name_suffix(5));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        &[(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        if let Some(e) = validate::name_error(def, &name) {
            return Err(e);
        }
        self.require_namespace(def, ctx.namespace.as_deref())?;
        let key = Key::new(def, ctx.namespace.as_deref(), &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        let skip_status = def.status_subresource(&ctx.version);
        obj = apply::settable(&obj, skip_status);
        prepare_new(def, &mut obj, &name, ctx);
        validate::normalise(def, &mut obj);
        validate::validate(def, &obj, None)?;
        apply::record_update(
            None,
            &mut obj,
            &ctx.manager,
            &def.api_version(&ctx.version),
            &ctx.now,
            "",
            skip_status,
        );
        let obj = State::present(def, &ctx.version, obj);
        if ctx.dry_run {
            return Ok((201, obj));
        }
        Ok((201, self.commit(def, key, obj, true)))
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    pub fn apply(
        &mut self,
        def: &ResourceDef,
        name: &str,
        body: Value,
        force: bool,
        target: Target,
        ctx: &WriteCtx,
    ) -> Result<(u16, Value), ApiError> {
        check_body(
            def,
            &ctx.version,
            ctx.namespace.as_deref(),
            Some(name),
            &body,
            true,
        )?;
        if let Some(e) = validate::name_error(def, name) {
            return Err(e);
        }
        let key = Key::new(def, ctx.namespace.as_deref(), name);
        let old = self.get_value(&key);
        let mut body = body;
        validate::fold_string_data(def, &mut body);
        if target == Target::Status {
            let Some(old) = old else {
                return Err(ApiError::not_found(&def.group, &def.plural, name));
            };
            let mut patch = json!({});
            if let Some(s) = body.get("status") {
                patch["status"] = s.clone();
            }
            return self.finish_update(
                def,
                &key,
                old,
                patch,
                PatchKind::Merge,
                target,
                ctx,
                "Apply",
            );
        }
        if let Some(old) = &old {
            check_preconditions(def, name, old, &body)?;
        } else {
            self.require_namespace(def, ctx.namespace.as_deref())?;
        }
        let skip_status = def.status_subresource(&ctx.version);
        let api_version = def.api_version(&ctx.version);
        let actx = ApplyCtx {
            manager: &ctx.manager,
            force,
            skip_status,
            api_version: &api_version,
            now: &ctx.now,
            subresource: "",
        };
        let mut obj = apply::apply(old.as_ref(), &body, &actx)
            .map_err(|conflicts| conflict_error(def, name, &conflicts))?;
        match old {
            None => {
                prepare_new(def, &mut obj, name, ctx);
                validate::normalise(def, &mut obj);
                validate::validate(def, &obj, None)?;
                let obj = State::present(def, &ctx.version, obj);
                if ctx.dry_run {
                    return Ok((201, obj));
                }
                Ok((201, self.commit(def, key, obj, true)))
            }
            Some(old) => {
                keep_server_fields(&old, &mut obj);
                validate::normalise(def, &mut obj);
                validate::validate(def, &obj, Some(&old))?;
                self.store_update(def, key, &old, obj, ctx)
            }
        }
    }

    /// Merge, strategic-merge (as merge) and JSON patches.
    pub fn patch(
        &mut self,
        def: &ResourceDef,
        name: &str,
        patch: Value,
        kind: PatchKind,
        target: Target,
        ctx: &WriteCtx,
    ) -> Result<(u16, Value), ApiError> {
        let key = Key::new(def, ctx.namespace.as_deref(), name);
        let Some(old) = self.get_value(&key) else {
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        self.finish_update(def, &key, old, patch, kind, target, ctx, "Update")
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_update(
        &mut self,
        def: &ResourceDef,
        key: &Key,
        old: Value,
        patch: Value,
        kind: PatchKind,
        target: Target,
        ctx: &WriteCtx,
        operation: &str,
    ) -> Result<(u16, Value), ApiError> {
        let name = key.name.clone();
        let mut new = State::present(def, &ctx.version, old.clone());
        match kind {
            PatchKind::Merge | PatchKind::Strategic => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "json: cannot unmarshal non-object into Go value of type map[string]interface {}",
                    ));
                }
                apply::merge_patch(&mut new, &patch);
            }
            PatchKind::Json => {
                apply::json_patch(&mut new, &patch).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
            }
        }
        if !new.is_object() {
            return Err(ApiError::bad_request("the patched object is not an object"));
        }
        check_body(
            def,
            &ctx.version,
            ctx.namespace.as_deref(),
            Some(&name),
            &new,
            true,
        )?;
        check_preconditions(def, &name, &old, &new)?;
        if target == Target::Status {
            let status = new.get("status").cloned();
            new = State::present(def, &ctx.version, old.clone());
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else if def.status_subresource(&ctx.version) {
            restore_status(&old, &mut new);
        }
        validate::decode_errors(def, &new)?;
        keep_server_fields(&old, &mut new);
        validate::normalise(def, &mut new);
        validate::validate(def, &new, Some(&old))?;
        let sub = if target == Target::Status {
            "status"
        } else {
            ""
        };
        let skip_status = target == Target::Main && def.status_subresource(&ctx.version);
        let av = def.api_version(&ctx.version);
        if operation == "Apply" {
            // Status apply: recorded as the manager's Apply on `status`.
            apply::record_update(
                Some(&old),
                &mut new,
                &ctx.manager,
                &av,
                &ctx.now,
                sub,
                skip_status,
            );
            if let Some(mf) = new["metadata"]["managedFields"].as_array_mut() {
                for e in mf.iter_mut() {
                    if e["manager"] == json!(ctx.manager)
                        && e.get("subresource") == Some(&json!("status"))
                    {
                        e["operation"] = json!("Apply");
                    }
                }
            }
        } else {
            apply::record_update(
                Some(&old),
                &mut new,
                &ctx.manager,
                &av,
                &ctx.now,
                sub,
                skip_status,
            );
        }
        self.store_update(def, key.clone(), &old, new, ctx)
    }

    /// PUT.
    pub fn replace(
        &mut self,
        def: &ResourceDef,
        name: &str,
        body: Value,
        target: Target,
        ctx: &WriteCtx,
    ) -> Result<(u16, Value), ApiError> {
        check_body(
            def,
            &ctx.version,
            ctx.namespace.as_deref(),
            Some(name),
            &body,
            true,
        )?;
        let key = Key::new(def, ctx.namespace.as_deref(), name);
        let Some(old) = self.get_value(&key) else {
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        check_preconditions(def, name, &old, &body)?;
        if def.custom && str_at(&body, &["metadata", "resourceVersion"]).is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                name,
                &[(
                    "metadata.resourceVersion".into(),
                    "Invalid value: 0x0: must be specified for an update".into(),
                )],
            ));
        }
        let mut new = body;
        if target == Target::Status {
            let status = new.get("status").cloned();
            new = State::present(def, &ctx.version, old.clone());
            if let Some(s) = status {
                new["status"] = s;
            }
        } else if def.status_subresource(&ctx.version) {
            restore_status(&old, &mut new);
        }
        validate::decode_errors(def, &new)?;
        keep_server_fields(&old, &mut new);
        if let Some(ns) = &ctx.namespace
            && def.namespaced
        {
            metadata_mut(&mut new).insert("namespace".into(), json!(ns));
        }
        validate::normalise(def, &mut new);
        validate::validate(def, &new, Some(&old))?;
        let sub = if target == Target::Status {
            "status"
        } else {
            ""
        };
        let skip_status = target == Target::Main && def.status_subresource(&ctx.version);
        apply::record_update(
            Some(&old),
            &mut new,
            &ctx.manager,
            &def.api_version(&ctx.version),
            &ctx.now,
            sub,
            skip_status,
        );
        self.store_update(def, key, &old, new, ctx)
    }

    /// Bumps `generation` when something outside metadata and status
    /// changed; skips the write (no new resourceVersion) when nothing but
    /// managedFields timestamps changed, as the real server does.
    fn store_update(
        &mut self,
        def: &ResourceDef,
        key: Key,
        old: &Value,
        mut new: Value,
        ctx: &WriteCtx,
    ) -> Result<(u16, Value), ApiError> {
        if unchanged(old, &new) {
            return Ok((200, State::present(def, &ctx.version, old.clone())));
        }
        if def.generation && spec_changed(old, &new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            metadata_mut(&mut new).insert("generation".into(), json!(g));
        }
        let new = State::present(def, &ctx.version, new);
        if ctx.dry_run {
            return Ok((200, new));
        }
        Ok((200, self.commit(def, key, new, true)))
    }

    /// DELETE of one object. Answers like the server: the object for pods,
    /// namespaces, CRDs and custom resources (which go through graceful or
    /// finalizer paths on a real cluster), a `Success` Status otherwise.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        version: &str,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Key::new(def, namespace, name);
        let Some(old) = self.get_value(&key) else {
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        if let Some(pre) = options.get("preconditions") {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str)
                && Some(uid) != str_at(&old, &["metadata", "uid"])
            {
                return Err(ApiError::conflict(
                    &def.group,
                    &def.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        str_at(&old, &["metadata", "uid"]).unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str)
                && Some(rv) != str_at(&old, &["metadata", "resourceVersion"])
            {
                return Err(ApiError::conflict(
                    &def.group,
                    &def.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        let uid = str_at(&old, &["metadata", "uid"])
            .unwrap_or_default()
            .to_string();
        let gone = if dry_run {
            old
        } else {
            self.remove(&key).unwrap_or(old)
        };
        let returns_object = def.custom
            || matches!(
                def.builtin,
                Builtin::Pod | Builtin::Namespace | Builtin::Crd
            );
        if returns_object {
            let mut v = State::present(def, version, gone);
            if def.builtin == Builtin::Namespace {
                v["status"]["phase"] = json!("Terminating");
            }
            Ok(v)
        } else {
            Ok(success_status(&def.group, &def.plural, name, &uid))
        }
    }
}

/// The 409 of an apply conflict, worded like the server's.
fn conflict_error(def: &ResourceDef, name: &str, conflicts: &[apply::Conflict]) -> ApiError {
    let n = conflicts.len();
    let message = if n == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            conflicts[0].manager, conflicts[0].api_version, conflicts[0].field
        )
    } else {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "- conflict with \"{}\" using {}: {}",
                    c.manager, c.api_version, c.field
                )
            })
            .collect();
        format!("Apply failed with {n} conflicts: \n{}", lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                "field": c.field,
            })
        })
        .collect();
    let mut d = json!({"name": name, "kind": def.plural, "causes": causes});
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    ApiError::new(409, "Conflict", message).with_details(d)
}

/// Identity checks on a request body: an object, of the path's
/// apiVersion and kind, named as the path names it, in the path's
/// namespace.
fn check_body(
    def: &ResourceDef,
    version: &str,
    namespace: Option<&str>,
    path_name: Option<&str>,
    body: &Value,
    require_type: bool,
) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON or YAML object",
        ));
    }
    let expected = def.api_version(version);
    match body.get("apiVersion").and_then(Value::as_str) {
        Some(av) if av != expected => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected})"
            )));
        }
        None if require_type => {
            return Err(ApiError::bad_request(format!(
                "Object 'apiVersion' is missing in '{}'",
                short(body)
            )));
        }
        _ => {}
    }
    match body.get("kind").and_then(Value::as_str) {
        Some(k) if k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"{version}\" cannot be handled as a {}: the kind in the data ({k}) does not match the expected kind ({})",
                def.kind, def.kind
            )));
        }
        None if require_type => {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}'",
                short(body)
            )));
        }
        _ => {}
    }
    validate::decode_errors(def, body)?;
    if let Some(path_name) = path_name {
        let body_name = str_at(body, &["metadata", "name"]).unwrap_or_default();
        if body_name != path_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({path_name})"
            )));
        }
    }
    if def.namespaced
        && let Some(body_ns) = str_at(body, &["metadata", "namespace"])
        && !body_ns.is_empty()
        && Some(body_ns) != namespace
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// `metadata.uid` and `metadata.resourceVersion` in a body are
/// preconditions.
fn check_preconditions(
    def: &ResourceDef,
    name: &str,
    old: &Value,
    body: &Value,
) -> Result<(), ApiError> {
    if let Some(uid) = str_at(body, &["metadata", "uid"]).filter(|s| !s.is_empty())
        && Some(uid) != str_at(old, &["metadata", "uid"])
    {
        return Err(ApiError::conflict(
            &def.group,
            &def.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                str_at(old, &["metadata", "uid"]).unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = str_at(body, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty())
        && Some(rv) != str_at(old, &["metadata", "resourceVersion"])
    {
        return Err(ApiError::conflict(
            &def.group,
            &def.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}

/// Server metadata of a new object.
fn prepare_new(def: &ResourceDef, obj: &mut Value, name: &str, ctx: &WriteCtx) {
    let md = metadata_mut(obj);
    md.insert("name".into(), json!(name));
    if def.namespaced {
        md.insert(
            "namespace".into(),
            json!(ctx.namespace.clone().unwrap_or_default()),
        );
    } else {
        md.remove("namespace");
    }
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        md.remove(f);
    }
    md.insert("uid".into(), json!(new_uid()));
    md.insert("creationTimestamp".into(), json!(ctx.now));
    if def.generation {
        md.insert("generation".into(), json!(1));
    } else {
        md.remove("generation");
    }
}

/// Carries the server-owned metadata of `old` over to `new`.
fn keep_server_fields(old: &Value, new: &mut Value) {
    let md = metadata_mut(new);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "resourceVersion",
    ] {
        match old.get("metadata").and_then(|m| m.get(f)) {
            Some(v) => {
                md.insert(f.into(), v.clone());
            }
            None => {
                md.remove(f);
            }
        }
    }
}

fn restore_status(old: &Value, new: &mut Value) {
    let Some(m) = new.as_object_mut() else { return };
    match old.get("status") {
        Some(s) => {
            m.insert("status".into(), s.clone());
        }
        None => {
            m.remove("status");
        }
    }
}

/// Equal apart from managedFields times and the type fields.
fn unchanged(old: &Value, new: &Value) -> bool {
    fn norm(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        if let Some(mf) = v
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
            .and_then(Value::as_array_mut)
        {
            for e in mf.iter_mut() {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                    e.remove("apiVersion");
                }
            }
        }
        v
    }
    norm(old) == norm(new)
}

/// Something outside metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            for k in ["metadata", "status", "apiVersion", "kind"] {
                m.remove(k);
            }
        }
        v
    }
    strip(old) != strip(new)
}
