//! The HTTP side: one axum fallback handler with hand-written routing over
//! the API server's paths.

use crate::resources::{self, Builtin, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::state::{Deferred, Key, PatchKind, State, Stored, Target, WriteCtx};
use crate::status::ApiError;
use crate::util::now_rfc3339;
use crate::{Fault, RequestInfo, RequestRecord, ResourceRef};
use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;

/// The real server's request body limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// State plus the runtime the double's timers run on.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub handle: Handle,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock, then schedules the delayed work it queued
    /// (Established conditions, pods following replicas).
    pub fn run<R>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, pending) = {
            let mut st = self.lock();
            let r = f(&mut st);
            (r, std::mem::take(&mut st.pending))
        };
        self.schedule(pending);
        r
    }

    fn schedule(self: &Arc<Self>, pending: Vec<Deferred>) {
        if pending.is_empty() {
            return;
        }
        let (est, pods) = {
            let st = self.lock();
            (st.opts.established_delay, st.opts.pods_delay)
        };
        for d in pending {
            let delay = match d {
                Deferred::Establish(_) => est,
                Deferred::Reconcile(..) => pods,
            };
            let me = self.clone();
            self.handle.spawn(async move {
                tokio::time::sleep(delay).await;
                let more = {
                    let mut st = me.lock();
                    match &d {
                        Deferred::Establish(name) => crate::workloads::establish(&mut st, name),
                        Deferred::Reconcile(kind, ns, name) => {
                            crate::workloads::reconcile(&mut st, *kind, ns, name)
                        }
                    }
                    std::mem::take(&mut st.pending)
                };
                me.schedule(more);
            });
        }
    }
}

/// A request, read whole.
struct Ctx {
    method: Method,
    path: String,
    query: String,
    params: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

impl Ctx {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    }
    fn header(&self, h: header::HeaderName) -> Option<&str> {
        self.headers.get(h).and_then(|v| v.to_str().ok())
    }
    fn content_type(&self) -> Option<&str> {
        self.header(header::CONTENT_TYPE)
    }
    fn media_type(&self) -> String {
        self.content_type()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.param(k), Some("true" | "1"))
    }
}

pub(crate) async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let params = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = parts.uri.path().to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let method = parts.method.clone();
    let response = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => {
            let ctx = Ctx {
                method: parts.method,
                path: path.clone(),
                query: query.clone(),
                params,
                headers: parts.headers,
                body,
            };
            match respond(&shared, &ctx) {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
        Err(_) => error_response(&ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )),
    };
    let record = RequestRecord {
        method: method.to_string(),
        path,
        query,
        content_type,
        accept,
        status: response.status().as_u16(),
    };
    shared.run(|st| {
        let cap = st.opts.request_log_cap;
        if cap > 0 {
            while st.requests.len() >= cap {
                st.requests.pop_front();
            }
            st.requests.push_back(record);
        }
    });
    response
}

fn json_response(code: u16, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    if e.plain_text {
        let mut r = Response::new(Body::from("404 page not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut().insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        return r;
    }
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Syntactic routes.
enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    Resource(ResourceRef),
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    Some(match s.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz"] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::ResourceList(String::new(), v.to_string()),
        ["api", v, rest @ ..] => Route::Resource(resource_ref("", v, rest)?),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => Route::Resource(resource_ref(g, v, rest)?),
        _ => return None,
    })
}

fn resource_ref(group: &str, version: &str, rest: &[&str]) -> Option<ResourceRef> {
    let mk = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| ResourceRef {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(match rest {
        [p] => mk(p, None, None, None),
        [p, n] => mk(p, None, Some(n), None),
        ["namespaces", n, sub @ ("status" | "finalize")] if group.is_empty() => {
            mk("namespaces", None, Some(n), Some(sub))
        }
        ["namespaces", ns, p] => mk(p, Some(ns), None, None),
        [p, n, sub] => mk(p, None, Some(n), Some(sub)),
        ["namespaces", ns, p, n] => mk(p, Some(ns), Some(n), None),
        ["namespaces", ns, p, n, sub] => mk(p, Some(ns), Some(n), Some(sub)),
        _ => return None,
    })
}

fn verb(method: &Method, r: &ResourceRef, watch: bool) -> &'static str {
    match (method.as_str(), r.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        _ => "unknown",
    }
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn parse_yaml_or_json(body: &[u8]) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// The body best-effort parsed for a fault predicate.
fn body_for_info(ctx: &Ctx) -> Option<Value> {
    if ctx.body.is_empty() {
        return None;
    }
    parse_yaml_or_json(&ctx.body).ok()
}

fn respond(shared: &Arc<Shared>, ctx: &Ctx) -> Result<Response, ApiError> {
    let required = shared.lock().opts.required_token.clone();
    if let Some(token) = required {
        let expected = format!("Bearer {token}");
        if ctx.header(header::AUTHORIZATION) != Some(expected.as_str()) {
            return Err(ApiError::unauthorized());
        }
    }
    let route = route(&ctx.path).ok_or_else(ApiError::no_route)?;
    let resource = match &route {
        Route::Resource(r) => Some(r.clone()),
        _ => None,
    };
    let watch = ctx.flag("watch");
    let info = RequestInfo {
        method: ctx.method.to_string(),
        path: ctx.path.clone(),
        query: ctx.query.clone(),
        verb: resource
            .as_ref()
            .map(|r| verb(&ctx.method, r, watch))
            .unwrap_or(if ctx.method == Method::GET {
                "get"
            } else {
                "unknown"
            })
            .to_string(),
        resource,
        content_type: ctx.content_type().map(str::to_string),
        body: body_for_info(ctx),
    };
    let counted = {
        let mut st = shared.lock();
        let hit = st.fault_rules.iter().position(|r| (r.matches)(&info));
        hit.map(|i| {
            let rule = &mut st.fault_rules[i];
            rule.remaining -= 1;
            let fault = rule.fault.clone();
            if rule.remaining == 0 {
                st.fault_rules.remove(i);
            }
            fault
        })
    };
    if let Some(fault) = counted {
        return Err(fault_error(&fault, &info));
    }
    let fault = shared.lock().fault.clone();
    if let Some(f) = fault
        && let Some(fault) = f(&info)
    {
        return Err(fault_error(&fault, &info));
    }
    match route {
        Route::Version => get_only(ctx, || {
            json!({
                "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
                "minCompatibilityMajor": "1", "minCompatibilityMinor": "32",
                "gitVersion": "v1.33.0-kube-double", "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z",
                "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64",
            })
        }),
        Route::Health => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(r)
        }
        Route::CoreVersions => get_only(ctx, || {
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
            })
        }),
        Route::Groups => {
            let st = shared.lock();
            get_only(
                ctx,
                || json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": resources::api_groups(&st.served_defs())}),
            )
        }
        Route::Group(g) => {
            let st = shared.lock();
            let group = resources::api_groups(&st.served_defs())
                .into_iter()
                .find(|x| x["name"] == json!(g))
                .ok_or_else(ApiError::no_route)?;
            get_only(ctx, || {
                let mut v = group.clone();
                v["kind"] = json!("APIGroup");
                v["apiVersion"] = json!("v1");
                v
            })
        }
        Route::ResourceList(g, v) => {
            let st = shared.lock();
            let defs = st.served_defs();
            if !defs.iter().any(|d| d.group == g && d.serves(&v)) {
                return Err(ApiError::no_route());
            }
            get_only(ctx, || resources::resource_list(&defs, &g, &v))
        }
        Route::Resource(r) => resource_request(shared, ctx, &r, &info),
    }
}

fn get_only(ctx: &Ctx, f: impl FnOnce() -> Value) -> Result<Response, ApiError> {
    if ctx.method != Method::GET && ctx.method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    Ok(json_response(200, &f()))
}

fn fault_error(f: &Fault, info: &RequestInfo) -> ApiError {
    let name = info.object_name().unwrap_or_default();
    let (group, plural) = info
        .resource
        .as_ref()
        .map(|r| (r.group.clone(), r.plural.clone()))
        .unwrap_or_default();
    let message = f.message.clone().unwrap_or_else(|| {
        if name.is_empty() {
            format!("injected fault: {}", f.reason)
        } else {
            format!(
                "{} \"{name}\": injected fault: {}",
                crate::status::qualified(&group, &plural),
                f.reason
            )
        }
    });
    let mut details = json!({"kind": plural});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    if f.code == 422 {
        details["causes"] =
            json!([{"reason": "FieldValueInvalid", "message": message, "field": "metadata"}]);
    }
    let mut e = ApiError::new(f.code, &f.reason, message).with_details(details);
    e.retry_after = f.retry_after;
    e
}

/// Resolves a syntactic resource path against what is served.
fn resolve(st: &State, r: &ResourceRef) -> Result<ResourceDef, ApiError> {
    let def = st
        .resolve(&r.group, &r.version, &r.plural)
        .ok_or_else(ApiError::no_route)?;
    if !def.namespaced && r.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    if def.namespaced && r.namespace.is_none() && r.name.is_some() {
        return Err(ApiError::no_route());
    }
    match r.subresource.as_deref() {
        None => {}
        Some("status") if def.status_subresource(&r.version) => {}
        Some("scale") if def.scale => {}
        Some("finalize") if def.builtin == Builtin::Namespace => {}
        Some(_) => return Err(ApiError::no_route()),
    }
    Ok(def)
}

fn dry_run(ctx: &Ctx, options_kind: &str) -> Result<bool, ApiError> {
    let values: Vec<&str> = ctx
        .params
        .iter()
        .filter(|(k, _)| k == "dryRun")
        .map(|(_, v)| v.as_str())
        .collect();
    for v in &values {
        if *v != "All" {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                options_kind,
                "",
                &[(
                    "dryRun".into(),
                    format!("Unsupported value: \"{v}\": supported values: \"All\""),
                )],
            ));
        }
    }
    Ok(!values.is_empty())
}

fn manager(ctx: &Ctx) -> String {
    if let Some(m) = ctx.param("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    // The server's default: the user agent up to the first '/'.
    ctx.header(header::USER_AGENT)
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn body_json(ctx: &Ctx) -> Result<Value, ApiError> {
    match ctx.media_type().as_str() {
        "" | "application/json" => parse_json(&ctx.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" => parse_yaml_or_json(&ctx.body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )),
    }
}

fn resource_request(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    r: &ResourceRef,
    info: &RequestInfo,
) -> Result<Response, ApiError> {
    let def = resolve(&shared.lock(), r)?;
    let ns = r.namespace.clone();
    let name = r.name.clone();
    let sub = r.subresource.as_deref();
    let metadata_only = ctx
        .header(header::ACCEPT)
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let write_ctx = |options_kind: &str| -> Result<WriteCtx, ApiError> {
        Ok(WriteCtx {
            version: r.version.clone(),
            namespace: ns.clone(),
            dry_run: dry_run(ctx, options_kind)?,
            manager: manager(ctx),
            now: now_rfc3339(),
        })
    };
    match (&ctx.method, name.as_deref(), sub) {
        // ----- collections -----
        (m, None, _) if *m == Method::GET => {
            if info.verb == "watch" {
                return crate::watch::watch(
                    shared,
                    ctx_params(ctx),
                    &def,
                    &r.version,
                    ns.as_deref(),
                    metadata_only,
                );
            }
            let st = shared.lock();
            let list = list(&st, &def, &r.version, ns.as_deref(), ctx, metadata_only)?;
            Ok(json_response(200, &list))
        }
        (m, None, _) if *m == Method::POST => {
            if def.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let body = body_json(ctx)?;
            let wctx = write_ctx("CreateOptions")?;
            let (code, v) = shared.run(|st| st.create(&def, body, &wctx))?;
            Ok(json_response(code, &v))
        }
        (m, None, _) if *m == Method::DELETE => {
            if def.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let dry = dry_run(ctx, "DeleteOptions")?;
            let labels = label_selector(ctx)?;
            let fields = field_selector(ctx)?;
            let items = shared.run(|st| {
                let keys: Vec<Key> = scan(st, &def, ns.as_deref())
                    .filter(|(k, s)| matches(k, s, &labels, &fields))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter()
                    .filter_map(|k| {
                        let v = if dry { st.get_value(k) } else { st.remove(k) };
                        v.map(|v| State::present(&def, &r.version, v))
                    })
                    .collect::<Vec<_>>()
            });
            let rv = shared.lock().rv;
            Ok(json_response(
                200,
                &json!({
                    "kind": def.list_kind(),
                    "apiVersion": def.api_version(&r.version),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": items,
                }),
            ))
        }
        (_, None, _) => Err(ApiError::method_not_allowed()),

        // ----- scale -----
        (m, Some(name), Some("scale")) => {
            if *m == Method::GET {
                let st = shared.lock();
                let key = Key::new(&def, ns.as_deref(), name);
                let w = st
                    .get_value(&key)
                    .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
                return Ok(json_response(200, &crate::workloads::scale_of(&w)));
            }
            let (patch_kind, operation, body) = if *m == Method::PUT {
                (None, "Update", body_json(ctx)?)
            } else if *m == Method::PATCH {
                let (kind, body) = patch_body(ctx, &def)?;
                match kind {
                    None => {
                        require_apply_manager(ctx)?;
                        (None, "Apply", body)
                    }
                    Some(k) => {
                        forbid_force(ctx)?;
                        (Some(k), "Update", body)
                    }
                }
            } else {
                return Err(ApiError::method_not_allowed());
            };
            let wctx = write_ctx(if *m == Method::PUT {
                "UpdateOptions"
            } else {
                "PatchOptions"
            })?;
            let (code, v) =
                shared.run(|st| st.update_scale(&def, name, body, patch_kind, operation, &wctx))?;
            Ok(json_response(code, &v))
        }
        (_, Some(_), Some("finalize")) => Err(ApiError::method_not_allowed()),

        // ----- one object (or its status) -----
        (m, Some(name), sub) => {
            let target = if sub == Some("status") {
                Target::Status
            } else {
                Target::Main
            };
            if *m == Method::GET || *m == Method::HEAD {
                let st = shared.lock();
                let key = Key::new(&def, ns.as_deref(), name);
                let v = st
                    .get_value(&key)
                    .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
                let v = State::present(&def, &r.version, v);
                return Ok(json_response(
                    200,
                    &if metadata_only { partial(&v) } else { v },
                ));
            }
            if *m == Method::PUT {
                let body = body_json(ctx)?;
                let wctx = write_ctx("UpdateOptions")?;
                let (code, v) = shared.run(|st| st.replace(&def, name, body, target, &wctx))?;
                return Ok(json_response(code, &v));
            }
            if *m == Method::PATCH {
                let (kind, body) = patch_body(ctx, &def)?;
                let wctx = write_ctx("PatchOptions")?;
                let (code, v) = match kind {
                    None => {
                        require_apply_manager(ctx)?;
                        let force = ctx.flag("force");
                        shared.run(|st| st.apply(&def, name, body, force, target, &wctx))?
                    }
                    Some(k) => {
                        forbid_force(ctx)?;
                        shared.run(|st| st.patch(&def, name, body, k, target, &wctx))?
                    }
                };
                return Ok(json_response(code, &v));
            }
            if *m == Method::DELETE && target == Target::Main {
                let dry = dry_run(ctx, "DeleteOptions")?;
                let options = if ctx.body.is_empty() {
                    json!({})
                } else {
                    parse_json(&ctx.body).map_err(|e| {
                        ApiError::bad_request(format!("couldn't decode DeleteOptions: {e}"))
                    })?
                };
                let v = shared
                    .run(|st| st.delete(&def, &r.version, ns.as_deref(), name, &options, dry))?;
                return Ok(json_response(200, &v));
            }
            Err(ApiError::method_not_allowed())
        }
    }
}

/// The patch type and parsed body; `None` kind is server-side apply.
fn patch_body(ctx: &Ctx, def: &ResourceDef) -> Result<(Option<PatchKind>, Value), ApiError> {
    let mt = ctx.media_type();
    let kind = match mt.as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => None,
        "application/merge-patch+json" => Some(PatchKind::Merge),
        "application/strategic-merge-patch+json" => {
            if def.custom || def.builtin == Builtin::Crd {
                return Err(ApiError::unsupported_media_type(
                    &mt,
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ],
                ));
            }
            Some(PatchKind::Strategic)
        }
        "application/json-patch+json" => Some(PatchKind::Json),
        _ => {
            return Err(ApiError::unsupported_media_type(
                &mt,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
    };
    let body = match kind {
        None => parse_yaml_or_json(&ctx.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        Some(_) => parse_json(&ctx.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    Ok((kind, body))
}

fn require_apply_manager(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.param("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[(
                "fieldManager".into(),
                "Required value: is required for apply patch".into(),
            )],
        ));
    }
    Ok(())
}

fn forbid_force(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.param("force").is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[(
                "force".into(),
                "Forbidden: may not be specified for non-apply patch".into(),
            )],
        ));
    }
    Ok(())
}

fn ctx_params(ctx: &Ctx) -> Vec<(String, String)> {
    ctx.params.clone()
}

fn label_selector(ctx: &Ctx) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(ctx.param("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)
}

fn field_selector(ctx: &Ctx) -> Result<FieldSelector, ApiError> {
    FieldSelector::parse(ctx.param("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)
}

/// The objects of a resource, in key order, in one namespace or all.
pub(crate) fn scan<'a>(
    st: &'a State,
    def: &ResourceDef,
    ns: Option<&str>,
) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
    scan_after(st, def, ns, None)
}

/// [`scan`] starting after `(namespace, name)`.
fn scan_after<'a>(
    st: &'a State,
    def: &ResourceDef,
    ns: Option<&str>,
    after: Option<(&str, &str)>,
) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
    use std::ops::Bound;
    let (group, plural) = (def.group.clone(), def.plural.clone());
    let start = match after {
        Some((ans, aname)) => Bound::Excluded(Key {
            group: group.clone(),
            plural: plural.clone(),
            namespace: ans.to_string(),
            name: aname.to_string(),
        }),
        None => Bound::Included(Key {
            group: group.clone(),
            plural: plural.clone(),
            namespace: ns.unwrap_or_default().to_string(),
            name: String::new(),
        }),
    };
    let ns = ns.map(str::to_string);
    st.objects
        .range((start, Bound::Unbounded))
        .take_while(move |(k, _)| k.group == group && k.plural == plural)
        .filter(move |(k, _)| ns.as_ref().is_none_or(|n| *n == k.namespace))
}

pub(crate) fn matches(k: &Key, s: &Stored, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(|l| s.label(l)) && fields.matches(&k.namespace, &k.name)
}

/// The `PartialObjectMetadata` form of an object.
pub(crate) fn partial(v: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": v.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// A list item as the server writes it: built-in kinds are typed lists
/// whose items carry no `apiVersion`/`kind`; custom resources are
/// unstructured and keep them.
pub(crate) fn list_item(def: &ResourceDef, version: &str, v: Value, metadata_only: bool) -> Value {
    if metadata_only {
        return partial(&v);
    }
    if def.custom {
        return State::present(def, version, v);
    }
    let mut v = v;
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn encode_continue(rv: u64, k: &Key) -> String {
    let t = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{}/{}\u{0}", k.namespace, k.name),
    };
    B64.encode(serde_json::to_vec(&t).unwrap_or_default())
}

/// `(namespace, name)` after which a continued list starts.
fn decode_continue(st: &State, token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = B64
        .decode(token)
        .map_err(|_| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let t: ContinueToken = serde_json::from_slice(&bytes)
        .map_err(|_| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    if t.v != "meta.k8s.io/v1" {
        return Err(bad("server does not recognize this encoded key"));
    }
    if t.rv > st.rv {
        return Err(bad("the resource version is newer than the server's"));
    }
    let start = t
        .start
        .strip_suffix('\u{0}')
        .ok_or_else(|| bad("the key is not a continuation key"))?;
    let (ns, name) = start
        .split_once('/')
        .ok_or_else(|| bad("the key is not a continuation key"))?;
    Ok((t.rv, ns.to_string(), name.to_string()))
}

fn list(
    st: &State,
    def: &ResourceDef,
    version: &str,
    ns: Option<&str>,
    ctx: &Ctx,
    metadata_only: bool,
) -> Result<Value, ApiError> {
    let labels = label_selector(ctx)?;
    let fields = field_selector(ctx)?;
    let mut limit = match ctx.param("limit").filter(|s| !s.is_empty()) {
        Some(l) => {
            let n: i64 = l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?;
            if n > 0 { Some(n as usize) } else { None }
        }
        None => None,
    };
    if let (Some(l), Some(cap)) = (limit, st.opts.page_size_cap) {
        limit = Some(l.min(cap.max(1)));
    }
    let mut after: Option<(String, String)> = None;
    if let Some(token) = ctx.param("continue").filter(|s| !s.is_empty()) {
        let (rv, tns, tname) = decode_continue(st, token)?;
        if rv < st.compacted_rv {
            // As after an etcd compaction: 410 with a token to go on
            // inconsistently.
            let mut e = ApiError::new(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            );
            let k = Key {
                group: def.group.clone(),
                plural: def.plural.clone(),
                namespace: tns,
                name: tname,
            };
            e.metadata = Some(json!({"continue": encode_continue(st.rv, &k)}));
            return Err(e);
        }
        after = Some((tns, tname));
    }
    let mut items = Vec::new();
    let mut last: Option<Key> = None;
    let mut more = false;
    let mut remaining = 0usize;
    let selecting = !labels.is_empty() || !fields.is_empty();
    let after = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
    for (k, s) in scan_after(st, def, ns, after) {
        if !matches(k, s, &labels, &fields) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            if selecting {
                break;
            }
            remaining += 1;
            continue;
        }
        items.push(list_item(def, version, s.value(), metadata_only));
        last = Some(k.clone());
    }
    let mut metadata = json!({"resourceVersion": st.rv.to_string()});
    if more && let Some(last) = &last {
        metadata["continue"] = json!(encode_continue(st.rv, last));
        if !selecting {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let (kind, api_version) = if metadata_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (def.list_kind(), def.api_version(version))
    };
    Ok(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "items": items,
    }))
}

/// How long a watch stays open without `timeoutSeconds`.
pub(crate) const DEFAULT_WATCH: Duration = Duration::from_secs(1800);

/// The body of a 2xx object answer, for the watch module.
pub(crate) fn event_line(etype: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": etype, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
