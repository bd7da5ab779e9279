//! What the cluster's controllers would do, simulated: pods that follow a
//! Deployment's or StatefulSet's `spec.replicas` (with status to match),
//! the scale subresource, and CRDs becoming Established.

use crate::apply;
use crate::resources::{Builtin, ResourceDef};
use crate::state::{Key, PatchKind, State, WriteCtx};
use crate::status::ApiError;
use crate::util::{name_suffix, now_rfc3339, stable_suffix, str_at};
use serde_json::{Map, Value, json};

const NODE: &str = "kube-double-node";

/// The workload a pod belongs to, from its controller owner reference
/// (a Deployment's pods are owned by its ReplicaSet `{deployment}-{hash}`).
pub(crate) fn pod_owner(pod: &Value) -> Option<(Builtin, String)> {
    let owners = pod.get("metadata")?.get("ownerReferences")?.as_array()?;
    let owner = owners
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?;
    let name = owner.get("name")?.as_str()?;
    match owner.get("kind")?.as_str()? {
        "ReplicaSet" => Some((Builtin::Deployment, name.rsplit_once('-')?.0.to_string())),
        "StatefulSet" => Some((Builtin::StatefulSet, name.to_string())),
        _ => None,
    }
}

fn desired_replicas(w: &Value) -> usize {
    w.get("spec")
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0) as usize
}

/// Brings the pods of a workload to its `spec.replicas` (all of them
/// gone when the workload is) and writes the workload's status.
pub(crate) fn reconcile(st: &mut State, kind: Builtin, ns: &str, name: &str) {
    let def = st.builtin(kind);
    let pod_def = st.builtin(Builtin::Pod);
    let key = Key::new(&def, Some(ns), name);
    let start = Key {
        group: String::new(),
        plural: "pods".into(),
        namespace: ns.to_string(),
        name: String::new(),
    };
    let mut pods: Vec<(Key, Value)> = st
        .objects
        .range(start.clone()..)
        .take_while(|(k, _)| k.group.is_empty() && k.plural == "pods" && k.namespace == ns)
        .filter_map(|(k, s)| {
            let v = s.value();
            (pod_owner(&v) == Some((kind, name.to_string()))).then(|| (k.clone(), v))
        })
        .collect();
    let Some(w) = st.get_value(&key) else {
        for (k, _) in pods {
            st.remove_with(&k, false);
        }
        return;
    };
    let desired = desired_replicas(&w);
    let uid = str_at(&w, &["metadata", "uid"])
        .unwrap_or_default()
        .to_string();
    let hash = stable_suffix(&uid, 10);
    match kind {
        Builtin::StatefulSet => {
            for (k, _) in &pods {
                let ordinal = k
                    .name
                    .strip_prefix(&format!("{name}-"))
                    .and_then(|o| o.parse::<usize>().ok());
                if ordinal.is_none_or(|o| o >= desired) {
                    st.remove_with(k, false);
                }
            }
            for i in 0..desired {
                let pod_name = format!("{name}-{i}");
                if !pods.iter().any(|(k, _)| k.name == pod_name) {
                    let pod = new_pod(&w, kind, ns, &pod_name, &hash, Some(i));
                    st.internal_create(&pod_def, pod, "kube-controller-manager");
                }
            }
        }
        _ => {
            pods.sort_by(|a, b| {
                let ta = str_at(&a.1, &["metadata", "creationTimestamp"]).unwrap_or_default();
                let tb = str_at(&b.1, &["metadata", "creationTimestamp"]).unwrap_or_default();
                ta.cmp(tb).then_with(|| a.0.name.cmp(&b.0.name))
            });
            while pods.len() > desired {
                if let Some((k, _)) = pods.pop() {
                    st.remove_with(&k, false);
                }
            }
            for _ in pods.len()..desired {
                let pod_name = format!("{name}-{hash}-{}", name_suffix(5));
                let pod = new_pod(&w, kind, ns, &pod_name, &hash, None);
                st.internal_create(&pod_def, pod, "kube-controller-manager");
            }
        }
    }
    write_status(st, &def, key, &w, desired, &hash);
}

fn new_pod(
    w: &Value,
    kind: Builtin,
    ns: &str,
    pod_name: &str,
    hash: &str,
    ordinal: Option<usize>,
) -> Value {
    let name = str_at(w, &["metadata", "name"]).unwrap_or_default();
    let template = w
        .get("spec")
        .and_then(|s| s.get("template"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut labels = template
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let owner = match kind {
        Builtin::StatefulSet => {
            labels.insert(
                "controller-revision-hash".into(),
                json!(format!("{name}-{hash}")),
            );
            labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
            if let Some(i) = ordinal {
                labels.insert("apps.kubernetes.io/pod-index".into(), json!(i.to_string()));
            }
            json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                "uid": str_at(w, &["metadata", "uid"]).unwrap_or_default(),
                "controller": true, "blockOwnerDeletion": true,
            })
        }
        _ => {
            labels.insert("pod-template-hash".into(), json!(hash));
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-{hash}"),
                "uid": crate::util::new_uid(),
                "controller": true, "blockOwnerDeletion": true,
            })
        }
    };
    let mut spec = template
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    spec.insert("nodeName".into(), json!(NODE));
    let now = now_rfc3339();
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(pod_name));
    metadata.insert("namespace".into(), json!(ns));
    metadata.insert("labels".into(), Value::Object(labels));
    metadata.insert("ownerReferences".into(), json!([owner]));
    if kind == Builtin::Deployment {
        metadata.insert("generateName".into(), json!(format!("{name}-{hash}-")));
    }
    if let Some(a) = template.get("metadata").and_then(|m| m.get("annotations")) {
        metadata.insert("annotations".into(), a.clone());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "hostIP": "10.0.0.1",
            "podIP": format!("10.244.{}.{}", crate::util::random_u64() % 250, crate::util::random_u64() % 250 + 2),
            "startTime": now,
        },
    })
}

/// The workload's status as its controller would write it (zero counts
/// omitted, as Go's `omitempty` does on the wire).
fn write_status(st: &mut State, def: &ResourceDef, key: Key, w: &Value, n: usize, hash: &str) {
    let name = &key.name;
    let generation = w["metadata"]["generation"].as_i64().unwrap_or(1);
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation));
    let counts: &[&str] = if def.builtin == Builtin::StatefulSet {
        &[
            "replicas",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
        ]
    } else {
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
    };
    if n > 0 {
        for c in counts {
            status.insert((*c).into(), json!(n));
        }
    }
    if def.builtin == Builtin::StatefulSet {
        status.insert("currentRevision".into(), json!(format!("{name}-{hash}")));
        status.insert("updateRevision".into(), json!(format!("{name}-{hash}")));
        status.insert("collisionCount".into(), json!(0));
    } else {
        let old_conditions = w
            .get("status")
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let now = now_rfc3339();
        let cond = |t: &str, reason: &str, message: String| {
            let kept = old_conditions
                .iter()
                .find(|c| c["type"] == json!(t) && c["reason"] == json!(reason));
            let time = kept
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now));
            json!({"type": t, "status": "True", "lastUpdateTime": time, "lastTransitionTime": time, "reason": reason, "message": message})
        };
        status.insert(
            "conditions".into(),
            json!([
                cond(
                    "Available",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".into()
                ),
                cond(
                    "Progressing",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{name}-{hash}\" has successfully progressed.")
                ),
            ]),
        );
    }
    let status = Value::Object(status);
    if w.get("status") == Some(&status) {
        return;
    }
    let mut new = w.clone();
    new["status"] = status;
    let av = def.api_version("v1");
    apply::record_update(
        Some(w),
        &mut new,
        "kube-controller-manager",
        &av,
        &now_rfc3339(),
        "status",
        false,
    );
    st.commit(def, key, new, false);
}

/// Marks a CRD NamesAccepted and Established, as the apiextensions
/// controllers do; its resources are served from then on.
pub(crate) fn establish(st: &mut State, crd_name: &str) {
    let def = st.builtin(Builtin::Crd);
    let key = Key::new(&def, None, crd_name);
    let Some(old) = st.get_value(&key) else {
        return;
    };
    let Some(names) = old.get("spec").and_then(|s| s.get("names")).cloned() else {
        return;
    };
    let mut accepted = names.clone();
    let kind = str_at(&names, &["kind"]).unwrap_or_default().to_string();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let storage: Vec<Value> = old
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored_versions = old
        .get("status")
        .and_then(|s| s.get("storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored_versions.contains(&v) {
            stored_versions.push(v);
        }
    }
    let now = now_rfc3339();
    let mut new = old.clone();
    new["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored_versions,
    });
    apply::record_update(
        Some(&old),
        &mut new,
        "kube-apiserver",
        "apiextensions.k8s.io/v1",
        &now,
        "status",
        false,
    );
    st.commit(&def, key, new, true);
}

/// `spec.selector` as the Scale's `status.selector` string.
pub(crate) fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in me {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.sort();
    parts.join(",")
}

/// The `autoscaling/v1` `Scale` of a workload.
pub(crate) fn scale_of(w: &Value) -> Value {
    let md = w.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = md.get(f) {
            metadata.insert(f.into(), v.clone());
        }
    }
    let mut status = Map::new();
    status.insert(
        "replicas".into(),
        json!(w["status"]["replicas"].as_i64().unwrap_or(0)),
    );
    if let Some(sel) = w.get("spec").and_then(|s| s.get("selector")) {
        status.insert("selector".into(), json!(selector_string(sel)));
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": w["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": status,
    })
}

impl State {
    /// A write to `…/scale`: `body` is a Scale (PUT, apply) or a patch
    /// over the current Scale. Only `spec.replicas` reaches the workload.
    #[allow(clippy::too_many_arguments)]
    pub fn update_scale(
        &mut self,
        def: &ResourceDef,
        name: &str,
        body: Value,
        patch: Option<PatchKind>,
        operation: &str,
        ctx: &WriteCtx,
    ) -> Result<(u16, Value), ApiError> {
        let key = Key::new(def, ctx.namespace.as_deref(), name);
        let Some(old) = self.get_value(&key) else {
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        let current = scale_of(&old);
        let scale = match patch {
            Some(PatchKind::Json) => {
                let mut s = current.clone();
                apply::json_patch(&mut s, &body).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
                s
            }
            Some(_) => {
                let mut s = current.clone();
                apply::merge_patch(&mut s, &body);
                s
            }
            None => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "the body of the request was not a JSON or YAML object",
                    ));
                }
                for (field, want) in [("apiVersion", "autoscaling/v1"), ("kind", "Scale")] {
                    if let Some(got) = body.get(field).and_then(Value::as_str)
                        && got != want
                    {
                        return Err(ApiError::bad_request(format!(
                            "the {field} in the data ({got}) does not match the expected {field} ({want})"
                        )));
                    }
                }
                let mut s = current.clone();
                apply::merge_patch(
                    &mut s,
                    &json!({"spec": body.get("spec").cloned().unwrap_or(json!({}))}),
                );
                if let Some(md) = body.get("metadata") {
                    s["metadata"]["resourceVersion"] =
                        md.get("resourceVersion").cloned().unwrap_or(Value::Null);
                }
                s
            }
        };
        if let Some(rv) = str_at(&scale, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty())
            && Some(rv) != str_at(&old, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let replicas = scale.get("spec").and_then(|s| s.get("replicas"));
        let n = match replicas.and_then(Value::as_i64) {
            Some(n) if n >= 0 => n,
            _ => {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    &[(
                        "spec.replicas".into(),
                        format!(
                            "Invalid value: {}: must be greater than or equal to 0",
                            replicas.cloned().unwrap_or(Value::Null)
                        ),
                    )],
                ));
            }
        };
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(n);
        if new == old {
            return Ok((200, current));
        }
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
        let av = def.api_version(&ctx.version);
        apply::record_update(
            Some(&old),
            &mut new,
            &ctx.manager,
            &av,
            &ctx.now,
            "scale",
            true,
        );
        if operation == "Apply"
            && let Some(mf) = new["metadata"]["managedFields"].as_array_mut()
        {
            for e in mf.iter_mut() {
                if e["manager"] == json!(ctx.manager)
                    && e.get("subresource") == Some(&json!("scale"))
                {
                    e["operation"] = json!("Apply");
                }
            }
        }
        if ctx.dry_run {
            return Ok((200, scale_of(&new)));
        }
        let stored = self.commit(def, key, new, true);
        Ok((200, scale_of(&stored)))
    }
}
