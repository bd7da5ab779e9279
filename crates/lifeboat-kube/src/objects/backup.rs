//! Listing the selected objects page by page and writing them as records.
//! Memory stays flat with the object count: one page (`limit`) at a time,
//! lines handed to the sink in batches.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::select::Selection;
use super::strip::{StripOptions, Stripped, strip};
use super::{Class, Header, Record, Resource, line};
use crate::error::{ErrorKind, KubeError};
use crate::retry;

/// Objects listed per request.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Bytes of lines gathered before they go to the sink.
const BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub selection: Selection,
    pub strip: StripOptions,
    pub page_size: u32,
}

/// What a backup stored; kept in the snapshot's facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupSummary {
    pub objects: u64,
    /// Objects per kind (`configmaps`, `remediationrequests.kubernaut.ai`).
    pub counts: BTreeMap<String, u64>,
    pub namespaces: Vec<String>,
    /// Kinds that were listed (qualified plurals), even when empty.
    pub kinds: Vec<String>,
    /// CRDs stored for the custom resources' kinds.
    pub crds: Vec<String>,
    /// Server-managed fields removed, by path.
    pub stripped: Stripped,
    /// Objects left out on purpose, by reason.
    pub skipped: BTreeMap<String, u64>,
    pub strip_options: StripOptions,
    pub label_selector: Option<String>,
    pub names: Vec<String>,
    /// Things an operator should know (e.g. a Namespace object that could
    /// not be read).
    pub warnings: Vec<String>,
}

/// Why a backup stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The cluster refused or could not be reached, or the selection names
    /// something it does not have.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The receiver of the lines went away: the repository side failed and
    /// its own error says why.
    #[error("the repository stopped taking the objects")]
    SinkClosed,
}

/// Objects every cluster makes by itself; restoring them fights a controller.
fn auto_created_reason(r: &Resource, obj: &Value) -> Option<&'static str> {
    match (r.group.as_str(), r.plural.as_str()) {
        ("", "configmaps")
            if obj.pointer("/metadata/name").and_then(|v| v.as_str())
                == Some("kube-root-ca.crt") =>
        {
            Some("configmap kube-root-ca.crt (published by the cluster in every namespace)")
        }
        ("", "serviceaccounts")
            if obj.pointer("/metadata/name").and_then(|v| v.as_str()) == Some("default") =>
        {
            Some("serviceaccount default (made by the cluster in every namespace)")
        }
        ("", "secrets")
            if obj.pointer("/type").and_then(|v| v.as_str())
                == Some("kubernetes.io/service-account-token") =>
        {
            Some("service account token secrets (issued by the cluster)")
        }
        _ => None,
    }
}

/// Resolves kind specs against the API server's discovery. No specs: the
/// defaults, ConfigMaps, Secrets and every kind a CRD defines.
pub async fn resolve_kinds(
    client: &kube::Client,
    specs: &[String],
) -> Result<Vec<Resource>, KubeError> {
    let what = "discovering the API server's kinds";
    let discovery = retry::call(what, || Discovery::new(client.clone()).run())
        .await
        .map_err(|e| KubeError::from_failed(&e, what))?;
    let mut all: Vec<Resource> = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.operations.iter().any(|o| o == "list") {
                continue;
            }
            all.push(Resource::from_api(&ar, caps.scope == Scope::Namespaced));
        }
    }
    let mut out = BTreeSet::new();
    if specs.is_empty() {
        for r in &all {
            let default = matches!(
                (r.group.as_str(), r.plural.as_str()),
                ("", "configmaps" | "secrets")
            ) || r.class() == Class::Custom;
            if default {
                out.insert(r.clone());
            }
        }
    }
    for spec in specs {
        let found: Vec<&Resource> = all.iter().filter(|r| r.matches_spec(spec)).collect();
        let chosen = match found.as_slice() {
            [] => {
                let mut known: Vec<String> = all.iter().map(|r| r.qualified_plural()).collect();
                known.sort();
                return Err(KubeError::new(
                    ErrorKind::NotFound,
                    format!(
                        "the cluster serves no kind {spec:?} (is its CRD installed?); known kinds: {}",
                        known.join(", ")
                    ),
                ));
            }
            [one] => (*one).clone(),
            many => match many.iter().find(|r| r.group.is_empty()) {
                Some(core) => (*core).clone(),
                None => {
                    let names: Vec<String> = many.iter().map(|r| r.qualified_plural()).collect();
                    return Err(KubeError::new(
                        ErrorKind::Invalid,
                        format!(
                            "kind {spec:?} is ambiguous: {}; name one with its group",
                            names.join(", ")
                        ),
                    ));
                }
            },
        };
        if matches!(
            chosen.class(),
            Class::CustomResourceDefinition | Class::Namespace
        ) {
            return Err(KubeError::new(
                ErrorKind::Invalid,
                format!(
                    "{spec:?}: CRDs and Namespaces are stored with the objects that need them; select the objects' kinds instead"
                ),
            ));
        }
        out.insert(chosen);
    }
    let mut v: Vec<Resource> = out.into_iter().collect();
    v.sort_by_key(|r| (r.class(), r.qualified_plural()));
    Ok(v)
}

/// Collects lines and hands them to the sink in batches.
struct Writer<'a> {
    sink: &'a mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Writer<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BackupError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.buf);
        self.sink
            .send(b)
            .await
            .map_err(|_| BackupError::SinkClosed)?;
        Ok(())
    }
}

/// Reads one cluster-scoped object (a CRD or Namespace); `None` when absent.
async fn get_cluster_object(
    client: &kube::Client,
    resource: &Resource,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource.api_resource());
    let what = format!("reading {} {name}", resource.singular());
    match retry::call(&what, || api.get_opt(name)).await {
        Ok(Some(o)) => Ok(Some(to_value(o, resource))),
        Ok(None) => Ok(None),
        Err(e) => Err(KubeError::from_failed(&e, &what)),
    }
}

fn to_value(o: DynamicObject, resource: &Resource) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        // List items carry no apiVersion/kind; fill them in for every object.
        m.insert("apiVersion".into(), Value::String(resource.api_version()));
        m.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    v
}

/// Checks that the API server answers (its version), retrying transient
/// failures.
pub async fn connected(client: &kube::Client) -> Result<(), KubeError> {
    let what = "connecting to the Kubernetes API";
    retry::call(what, || client.apiserver_version())
        .await
        .map(|_| ())
        .map_err(|e| KubeError::from_failed(&e, what))
}

/// Lists every selected object and writes the header and records to `sink`.
/// `on_object` is called after each object (progress).
///
/// In order: the CRDs of the custom kinds, the Namespace objects, then the
/// objects by class, namespace and kind (the server's order within).
pub async fn backup(
    client: &kube::Client,
    opts: &BackupOptions,
    sink: &mpsc::Sender<Vec<u8>>,
    on_object: impl FnMut(&Record),
) -> Result<BackupSummary, BackupError> {
    connected(client).await?;
    let sel = &opts.selection;
    let resources = resolve_kinds(client, &sel.kinds).await?;
    let namespaces: Vec<String> = if sel.namespaces.is_empty() {
        vec![client.default_namespace().to_string()]
    } else {
        let mut n = sel.namespaces.clone();
        n.sort();
        n.dedup();
        n
    };
    let mut lister = Lister {
        client,
        opts,
        w: Writer {
            sink,
            buf: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
        },
        summary: BackupSummary {
            namespaces: namespaces.clone(),
            kinds: resources.iter().map(|r| r.qualified_plural()).collect(),
            strip_options: opts.strip,
            label_selector: sel.labels.as_ref().map(|l| l.text.clone()),
            names: sel.names.clone(),
            ..Default::default()
        },
        on_object,
    };
    lister.w.write(&line(&Header::default())).await?;
    lister.store_crds(&resources).await?;
    lister.store_namespaces(&namespaces).await?;
    let found_names = lister.list_objects(&resources, &namespaces).await?;
    let missing: Vec<&String> = sel
        .names
        .iter()
        .filter(|n| !found_names.contains(*n))
        .collect();
    if !missing.is_empty() {
        return Err(KubeError::new(
            ErrorKind::NotFound,
            format!(
                "no object named {} among the selected kinds ({}) in {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                lister.summary.kinds.join(", "),
                namespaces.join(", ")
            ),
        )
        .into());
    }
    lister.w.flush().await?;
    Ok(lister.summary)
}

/// One backup's state: where lines go, what was stored so far.
struct Lister<'a, F> {
    client: &'a kube::Client,
    opts: &'a BackupOptions,
    w: Writer<'a>,
    summary: BackupSummary,
    on_object: F,
}

impl<F: FnMut(&Record)> Lister<'_, F> {
    /// Strips `obj`, counts it, tells `on_object` and writes its line.
    async fn emit(&mut self, mut obj: Value, resource: &Resource) -> Result<(), BackupError> {
        strip(&mut obj, self.opts.strip, &mut self.summary.stripped);
        let rec = Record {
            resource: resource.clone(),
            object: obj,
        };
        self.summary.objects += 1;
        *self
            .summary
            .counts
            .entry(resource.qualified_plural())
            .or_default() += 1;
        (self.on_object)(&rec);
        self.w.write(&line(&rec)).await
    }

    /// The CRD of each custom kind. One that is missing or may not be read
    /// is a warning: its objects are stored without it.
    async fn store_crds(&mut self, resources: &[Resource]) -> Result<(), BackupError> {
        for r in resources.iter().filter(|r| r.class() == Class::Custom) {
            let name = format!("{}.{}", r.plural, r.group);
            match get_cluster_object(self.client, &Resource::crd(), &name).await {
                Ok(Some(v)) => {
                    self.summary.crds.push(name);
                    self.emit(v, &Resource::crd()).await?;
                }
                Ok(None) => self.summary.warnings.push(format!(
                    "kind {} has no CustomResourceDefinition {name}; its objects are stored without it",
                    r.qualified_plural()
                )),
                Err(e) if e.kind == ErrorKind::Denied => self.summary.warnings.push(format!(
                    "{e} — the CRD is not stored; a restore into a cluster without it will fail for these objects"
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The Namespace objects: a namespace that does not exist fails the
    /// backup; one that may not be read is a warning.
    async fn store_namespaces(&mut self, namespaces: &[String]) -> Result<(), BackupError> {
        for ns in namespaces {
            match get_cluster_object(self.client, &Resource::namespace(), ns).await {
                Ok(Some(v)) => self.emit(v, &Resource::namespace()).await?,
                Ok(None) => {
                    return Err(KubeError::new(
                        ErrorKind::NotFound,
                        format!("namespace {ns} does not exist in the cluster"),
                    )
                    .into());
                }
                Err(e) if e.kind == ErrorKind::Denied => self.summary.warnings.push(format!(
                    "{e} — the Namespace object is not stored (its labels and annotations); a restore creates it bare"
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The objects: by class, namespace, kind; the server's order within.
    /// Returns the names of the objects stored.
    async fn list_objects(
        &mut self,
        resources: &[Resource],
        namespaces: &[String],
    ) -> Result<BTreeSet<String>, BackupError> {
        let mut found_names: BTreeSet<String> = BTreeSet::new();
        let mut plan: Vec<(Class, Option<&str>, &Resource)> = Vec::new();
        for r in resources {
            if r.namespaced {
                for ns in namespaces {
                    plan.push((r.class(), Some(ns.as_str()), r));
                }
            } else {
                plan.push((r.class(), None, r));
            }
        }
        plan.sort_by_key(|(c, ns, r)| (*c, ns.map(str::to_string), r.qualified_plural()));
        for (_, ns, resource) in plan {
            self.list_kind(ns, resource, &mut found_names).await?;
        }
        Ok(found_names)
    }

    /// Lists one kind (in one namespace, or cluster-wide) page by page,
    /// storing what the selection picks and adding the names to `found`.
    async fn list_kind(
        &mut self,
        ns: Option<&str>,
        resource: &Resource,
        found: &mut BTreeSet<String>,
    ) -> Result<(), BackupError> {
        let opts = self.opts;
        let sel = &opts.selection;
        let ar = resource.api_resource();
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let mut lp = ListParams::default().limit(opts.page_size.max(1));
        if let Some(l) = &sel.labels {
            lp = lp.labels(&l.text);
        }
        let field = (sel.names.len() == 1).then(|| format!("metadata.name={}", sel.names[0]));
        if let Some(f) = &field {
            lp = lp.fields(f);
        }
        let what = match ns {
            Some(ns) => format!("listing {} in {ns}", resource.qualified_plural()),
            None => format!("listing {}", resource.qualified_plural()),
        };
        let mut token: Option<String> = None;
        loop {
            let mut page_params = lp.clone();
            if let Some(t) = &token {
                page_params = page_params.continue_token(t);
            }
            // A page is read again with the same continue token.
            let page = retry::call(&what, || api.list(&page_params))
                .await
                .map_err(|e| KubeError::from_failed(&e, &what))?;
            for o in page.items {
                let v = to_value(o, resource);
                let name = v
                    .pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_string();
                if !sel.names.is_empty() && !sel.names.contains(&name) {
                    continue;
                }
                if let Some(reason) = auto_created_reason(resource, &v) {
                    *self.summary.skipped.entry(reason.to_string()).or_default() += 1;
                    continue;
                }
                found.insert(name);
                self.emit(v, resource).await?;
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(());
            }
        }
    }
}
