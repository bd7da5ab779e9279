//! # kube-double: Kubernetes API test double; not a Kubernetes implementation
//!
//! An HTTP server that answers the Kubernetes API requests Lifeboat makes,
//! for Lifeboat's tests and benchmarks: no Kubernetes API server can run on
//! the machines the project builds on. The real `kube` client talks to it
//! over `http://127.0.0.1:PORT` exactly as it talks to a cluster, so the
//! code under test takes a real cluster's path. It is a **test double**:
//! it keeps objects in memory, does no scheduling, runs no containers and
//! enforces no RBAC. Where Lifeboat can observe the wire format, it follows
//! the real API server (v1.33); the simplifications are listed below.
//!
//! ## Use
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use kube_double::{ApiDouble, Fault};
//! let api = ApiDouble::start().await;            // own thread and runtime
//! api.write_kubeconfig("/tmp/kubeconfig")?;     // http://127.0.0.1:PORT, token user
//! api.insert(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "rego-policies", "namespace": "kubernaut-system"},
//!     "data": {"policy.rego": "package x"},
//! }));
//! // Fail one object's server-side apply with 422 Invalid, every time:
//! api.set_fault(|r| (r.verb == "patch" && r.object_name().as_deref() == Some("rr-42"))
//!     .then(|| Fault::invalid()));
//! // A transient error: the next GET of a ConfigMap answers 500 once.
//! api.fail_next(1, |r| r.verb == "get" && r.plural() == Some("configmaps"),
//!     Fault::internal().with_message("etcdserver: leader changed"));
//! # Ok(()) }
//! ```
//! The server always runs on its own thread with its own tokio runtime, so
//! a test may block (e.g. wait for the `lifeboat` binary) without starving
//! it; [`ApiDouble::start`] and [`ApiDouble::start_in_thread`] differ only
//! in being async or not. Dropping the [`ApiDouble`] stops the server.
//!
//! ## What it serves
//! - `GET /version`, `/healthz`; legacy discovery: `/api`, `/api/v1`,
//!   `/apis`, `/apis/{group}`, `/apis/{group}/{version}`. Aggregated
//!   discovery is not served: an `Accept` asking for
//!   `as=APIGroupDiscoveryList` gets the legacy document as plain
//!   `application/json`, as servers before 1.26 do, so
//!   `kube::discovery::Discovery::run` works, while kube's
//!   `run_aggregated` silently finds no groups at all (it does not fail):
//!   a client must use `run`, or fall back to it when aggregated discovery
//!   comes back empty.
//! - Built-in kinds: `v1` configmaps, secrets, namespaces (cluster-scoped),
//!   pods, serviceaccounts, services; `apps/v1` deployments and
//!   statefulsets (with `/scale` and `/status`);
//!   `apiextensions.k8s.io/v1` customresourcedefinitions; `rbac.authorization.k8s.io/v1`
//!   roles, rolebindings, clusterroles, clusterrolebindings. Custom
//!   resources of every served version of each Established CRD, stored
//!   as given (no schema validation, no conversion: one object per name,
//!   served at any served version with `apiVersion` rewritten).
//! - Paths the server has no handler for (unknown group, version or
//!   resource, e.g. a CRD not installed or not yet Established) get what
//!   the real server's Go mux gives: `404` with the plain-text body
//!   `404 page not found`. `kube` turns that into `Error::Api` with
//!   `code: 404` but reason `"Failed to parse error data"`, so check the
//!   code, not the reason. Every other error is a `v1` `Status` with the
//!   server's `code`, `reason`, `message` and `details`.
//! - LIST: `labelSelector` (`=`, `==`, `!=`, exists, `!`, `in`, `notin`,
//!   `>`, `<`, comma = AND), `fieldSelector` (`metadata.name`,
//!   `metadata.namespace`; anything else 400), `limit` + `continue`
//!   (opaque token in the real encoding; order by namespace then name;
//!   a malformed token is 400; a token older than
//!   [`ApiDouble::expire_continue_tokens`] is 410 `Expired` with a fresh
//!   token in `metadata.continue`), `metadata.resourceVersion`,
//!   `remainingItemCount`, `kind: XxxList`. Items of built-in kinds carry
//!   **no** `apiVersion`/`kind` (typed lists on a real server); items of
//!   custom resources do (unstructured lists on a real server). Clients
//!   must not rely on either. `Accept: …;as=PartialObjectMetadataList`
//!   (kube's `list_metadata`) is honoured.
//! - WATCH (`?watch=true`), see the `watch` module's notes.
//! - Writes: POST (201; 409 AlreadyExists; `generateName`), PUT (404 when
//!   absent; custom resources need `metadata.resourceVersion`, like the
//!   real server), DELETE (a Namespace takes its objects with it and a CRD
//!   its custom resources, at once; `preconditions` honoured), DELETE on a
//!   collection, and PATCH as server-side apply
//!   (`application/apply-patch+yaml`, YAML or JSON), merge patch (RFC
//!   7386), JSON patch (RFC 6902) and strategic merge patch (treated as a
//!   merge patch; 415 for custom resources, like the real server).
//!   `dryRun=All` validates without storing. `metadata.resourceVersion`
//!   and `metadata.uid` in a body are preconditions (409 Conflict).
//!   Writes that change nothing (an identical re-apply) keep the
//!   resourceVersion.
//! - Validation that answers 400: body not an object, `apiVersion`/`kind`
//!   missing or not the path's, `metadata.name` not the path's, body
//!   namespace not the path's, values that do not decode into the kind's
//!   type (Secret data not base64, ConfigMap data not strings). 422
//!   Invalid: names (DNS-1123 subdomain; label for Namespaces; DNS-1035
//!   for Services; `plural.group` for CRDs), label keys and values,
//!   ConfigMap/Secret keys and 1 MiB size, workload selector required and
//!   matching the template labels (and immutable), replicas ≥ 0, CRD
//!   shape (group, names, scope, exactly one storage version), a missing
//!   `fieldManager` on apply, `force` on a non-apply patch, a `dryRun`
//!   other than `All`. 404 `namespaces "x" not found` for a namespaced
//!   write into a namespace that does not exist.
//! - Server-set fields: `metadata.uid`, `resourceVersion` (one global
//!   counter), `creationTimestamp`, `generation` (Deployments,
//!   StatefulSets, CRDs and custom resources: 1 on create, +1 when
//!   anything outside metadata and status changes), `managedFields`.
//!   Secrets: `stringData` folded into base64 `data`, `type` defaulted to
//!   `Opaque`. Workloads: `spec.replicas` defaulted to 1. Writes to the
//!   main resource of a kind with a status subresource leave `status` alone.
//! - Server-side apply, simplified: a field is a leaf path through maps
//!   (lists and scalars are owned whole). Maps merge, lists and scalars
//!   are replaced; fields this manager applied before and omits now are
//!   removed unless another manager also owns them; a field owned by
//!   another manager with a different value is a 409 Conflict (with the
//!   server's message and `FieldManagerConflict` causes) unless
//!   `force=true`, which takes it over. Update-type writes (POST, PUT,
//!   merge/JSON patch, scale) take ownership of the fields they change.
//!   Apply to `/status` behaves as a merge of the body's `status`.
//! - Simulated controllers: after [`Options::pods_delay`], each Deployment
//!   and StatefulSet has `spec.replicas` Running, Ready pods (labels from
//!   the pod template plus `pod-template-hash`, or the StatefulSet's
//!   `statefulset.kubernetes.io/pod-name`; names `{deploy}-{hash}-{xxxxx}`
//!   and `{sts}-{ordinal}`; a deleted pod is replaced) and its status
//!   counts follow (zero counts omitted, as on the wire). The scale
//!   subresource (`autoscaling/v1` `Scale`, `status.selector` as a string)
//!   reads and sets `spec.replicas`. After [`Options::established_delay`],
//!   a CRD gets `NamesAccepted` and `Established` conditions,
//!   `acceptedNames` and `storedVersions`, and only then is it in discovery
//!   and are its resource paths served. Every namespace gets the
//!   `kube-root-ca.crt` ConfigMap (this double's own fake CA bundle,
//!   different per instance, as between clusters) and the `default`
//!   ServiceAccount; `default`, `kube-system`, `kube-public` and
//!   `kube-node-lease` exist from the start (turn off with
//!   [`Options::system_objects`]).
//! - Not simulated: finalizers and graceful deletion (deletes are
//!   immediate), ReplicaSets, rolling updates, admission, RBAC, watch
//!   bookmarks other than the initial-events one, consistent snapshots for
//!   continued lists (a continued page reflects the store at the time it is
//!   read), protobuf, tables.
//! - Auth: any bearer token, or none, is accepted unless
//!   [`Options::required_token`] is set; then anything else gets 401.
//!
//! ## Injected faults (a test double's feature, not the API server's)
//! - [`ApiDouble::set_fault`]: a predicate that answers every request it
//!   selects with a [`Fault`] (a permanent refusal: 403, 422, …).
//! - [`ApiDouble::fail_next`]: the next N requests a predicate selects
//!   (method, path, query, body: see [`RequestInfo`]) get a [`Fault`], then
//!   requests are served again (a transient error: `500` with the message
//!   `etcdserver: leader changed`, `503`, `429` with `Retry-After`).
//! - A fault is a `v1` `Status` with the fault's code, reason and message;
//!   [`Fault::retry_after`] is sent both as the `Retry-After` header and as
//!   `details.retryAfterSeconds`, as the real server does for 429s.
//! - PUT (a replace) follows the real server where Lifeboat can see it:
//!   `metadata.resourceVersion` in the body is a precondition (409
//!   Conflict when stale), absent fields are removed (other managers'
//!   fields included), `status` is kept for kinds with a status
//!   subresource, `dryRun=All` answers the object that would be stored,
//!   and a PUT that changes nothing keeps the resourceVersion.

mod apply;
mod resources;
mod selector;
mod server;
mod state;
mod status;
mod util;
mod validate;
mod watch;
mod workloads;

use serde_json::Value;
use server::Shared;
use state::{Key, State};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Knobs of a double, fixed at start (most can be changed later with the
/// `set_*` methods).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen. Default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// Time from a CRD's creation to its `Established` condition (and to
    /// its resources being served). Default 200 ms.
    pub established_delay: Duration,
    /// Time from a replica change to the pods and workload status
    /// following it. Default 200 ms.
    pub pods_delay: Duration,
    /// When set, a LIST with `limit` returns at most this many items per
    /// page (the API lets a server return fewer than asked). Default none.
    pub page_size_cap: Option<usize>,
    /// When set, requests without `Authorization: Bearer <token>` get 401.
    pub required_token: Option<String>,
    /// Create the namespaces, `kube-root-ca.crt` ConfigMaps and `default`
    /// ServiceAccounts a real cluster has. Default true.
    pub system_objects: bool,
    /// How many requests [`ApiDouble::requests`] keeps (oldest dropped).
    /// Default 200,000.
    pub request_log_cap: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            established_delay: Duration::from_millis(200),
            pods_delay: Duration::from_millis(200),
            page_size_cap: None,
            required_token: None,
            system_objects: true,
            request_log_cap: 200_000,
        }
    }
}

/// The resource a request addresses, parsed from its path (before the
/// double knows whether it serves it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status`, `scale`, …
    pub subresource: Option<String>,
}

/// What a fault predicate sees of a request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete,
    /// deletecollection; `get` for discovery GETs.
    pub verb: String,
    /// `None` for discovery and other non-resource paths.
    pub resource: Option<ResourceRef>,
    pub content_type: Option<String>,
    /// The body parsed as JSON or YAML, when it is either.
    pub body: Option<Value>,
}

impl RequestInfo {
    /// A query parameter, decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        query_param(&self.query, key)
    }

    /// The object's name: from the path, or for a POST from the body.
    pub fn object_name(&self) -> Option<String> {
        self.resource
            .as_ref()
            .and_then(|r| r.name.clone())
            .or_else(|| {
                self.body
                    .as_ref()
                    .and_then(|b| util::str_at(b, &["metadata", "name"]))
                    .map(str::to_string)
            })
    }

    /// The resource's plural (`configmaps`), if a resource path.
    pub fn plural(&self) -> Option<&str> {
        self.resource.as_ref().map(|r| r.plural.as_str())
    }
}

/// An injected error answer: a `Status` with this code and reason.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: u16,
    pub reason: String,
    /// Default: `{resource} "{name}": injected fault: {reason}`.
    pub message: Option<String>,
    /// Sent as `Retry-After` and `details.retryAfterSeconds` (for 429/503).
    pub retry_after: Option<u32>,
}

impl Fault {
    pub fn new(code: u16, reason: &str) -> Fault {
        Fault {
            code,
            reason: reason.to_string(),
            message: None,
            retry_after: None,
        }
    }
    /// 422 Invalid.
    pub fn invalid() -> Fault {
        Fault::new(422, "Invalid")
    }
    /// 500 InternalError.
    pub fn internal() -> Fault {
        Fault::new(500, "InternalError")
    }
    /// 409 Conflict.
    pub fn conflict() -> Fault {
        Fault::new(409, "Conflict")
    }
    /// 403 Forbidden.
    pub fn forbidden() -> Fault {
        Fault::new(403, "Forbidden")
    }
    /// 429 TooManyRequests with `Retry-After: 1`.
    pub fn too_many_requests() -> Fault {
        Fault {
            retry_after: Some(1),
            ..Fault::new(429, "TooManyRequests")
        }
    }
    /// 503 ServiceUnavailable.
    pub fn unavailable() -> Fault {
        Fault::new(503, "ServiceUnavailable")
    }
    pub fn with_message(mut self, message: impl Into<String>) -> Fault {
        self.message = Some(message.into());
        self
    }
}

pub(crate) type FaultFn = Arc<dyn Fn(&RequestInfo) -> Option<Fault> + Send + Sync>;

/// A counted fault: the next `remaining` requests that `matches` selects
/// get `fault` ([`ApiDouble::fail_next`]).
pub(crate) struct FaultRule {
    pub remaining: usize,
    pub matches: Arc<dyn Fn(&RequestInfo) -> bool + Send + Sync>,
    pub fault: Fault,
}

/// One request the double answered.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
}

impl RequestRecord {
    /// A query parameter, decoded (`fieldManager`, `limit`, `continue`, …).
    pub fn param(&self, key: &str) -> Option<String> {
        query_param(&self.query, key)
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Why [`ApiDouble::try_insert`] refused an object: the `Status` the API
/// would have answered.
#[derive(Debug, Clone)]
pub struct InsertError {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for InsertError {}

impl From<status::ApiError> for InsertError {
    fn from(e: status::ApiError) -> Self {
        InsertError {
            code: e.code,
            reason: e.reason.clone(),
            message: e.message.clone(),
        }
    }
}

/// A running double. Dropping it stops the server.
pub struct ApiDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiDouble {
    /// Starts a double with default [`Options`] (from async code).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> ApiDouble {
        Self::start_in_thread_with(Options::default())
    }

    /// Starts a double with `opts` (from async code).
    pub async fn start_with(opts: Options) -> ApiDouble {
        Self::start_in_thread_with(opts)
    }

    /// Starts a double with default [`Options`] (from sync code, e.g. a
    /// plain `#[test]` that runs the `lifeboat` binary).
    pub fn start_in_thread() -> ApiDouble {
        Self::start_in_thread_with(Options::default())
    }

    /// Starts a double with `opts` from sync code.
    ///
    /// # Panics
    /// When `opts.listen` cannot be bound.
    pub fn start_in_thread_with(opts: Options) -> ApiDouble {
        match Self::try_start(opts) {
            Ok(d) => d,
            Err(e) => panic!("kube-double: cannot start: {e}"),
        }
    }

    /// Starts a double; the error is the bind's or the runtime's.
    pub fn try_start(opts: Options) -> std::io::Result<ApiDouble> {
        let listener = std::net::TcpListener::bind(opts.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-double")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(opts)),
            handle: rt.handle().clone(),
        });
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("kube-double-main".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        r = axum::serve(listener, app) => {
                            if let Err(e) = r {
                                eprintln!("kube-double: server stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(ApiDouble {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context points at this double with a
    /// token user (the required token, if one is set).
    pub fn kubeconfig(&self) -> String {
        let token = self
            .shared
            .lock()
            .opts
            .required_token
            .clone()
            .unwrap_or_else(|| "kube-double-token".into());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-double\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-double\n  context:\n    cluster: kube-double\n    user: kube-double\n    namespace: default\ncurrent-context: kube-double\nusers:\n- name: kube-double\n  user:\n    token: {token}\npreferences: {{}}\n",
            url = self.url(),
            token = serde_json::to_string(&token).unwrap_or_default(),
        )
    }

    /// Writes [`ApiDouble::kubeconfig`] to `path` with mode 0600. The file
    /// appears whole (written beside it, then renamed), so a script may
    /// wait for it to be non-empty.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        use std::io::Write;
        let path = path.as_ref();
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(self.kubeconfig().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    // ----- state -----

    /// Stores `obj` (any served kind, including custom resources of a CRD
    /// that is not yet Established) as if created or replaced through the
    /// API, with the same server-set fields and the same validation, except
    /// that a missing namespace is created and `status` is kept as given
    /// (so a CRD inserted with an `Established` condition is served at
    /// once). Namespaced objects without a namespace go to `default`.
    /// Returns the stored object.
    ///
    /// # Panics
    /// When the object is refused; see [`ApiDouble::try_insert`].
    pub fn insert(&self, obj: Value) -> Value {
        match self.try_insert(obj) {
            Ok(v) => v,
            Err(e) => panic!("kube-double: insert refused: {e}"),
        }
    }

    /// [`ApiDouble::insert`], returning the refusal instead of panicking.
    pub fn try_insert(&self, obj: Value) -> Result<Value, InsertError> {
        self.shared.run(|st| insert(st, obj))
    }

    /// One object as a GET would answer it, by `apiVersion`
    /// (`v1`, `apps/v1`, `example.com/v1`) and kind or plural (any case).
    pub fn get(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.lock();
        let (def, version) = st.find_def(api_version, kind_or_plural)?;
        let v = st.get_value(&Key::new(&def, namespace, name))?;
        Some(State::present(&def, &version, v))
    }

    /// All objects of a kind (in one namespace, or all with `None`),
    /// ordered by namespace and name, each with `apiVersion` and `kind`.
    pub fn list(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let st = self.shared.lock();
        let Some((def, version)) = st.find_def(api_version, kind_or_plural) else {
            return Vec::new();
        };
        server::scan(&st, &def, if def.namespaced { namespace } else { None })
            .map(|(_, s)| State::present(&def, &version, s.value()))
            .collect()
    }

    /// Every stored object, each with `apiVersion` and `kind`.
    pub fn objects(&self) -> Vec<Value> {
        let st = self.shared.lock();
        st.objects
            .iter()
            .filter_map(|(k, s)| {
                let def = st.def_for_key(k)?;
                Some(State::present(def, def.preferred_version(), s.value()))
            })
            .collect()
    }

    /// Deletes an object as a DELETE would (a Namespace takes its objects,
    /// a CRD its custom resources). Returns what was deleted.
    pub fn delete(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.shared.run(|st| {
            let (def, version) = st.find_def(api_version, kind_or_plural)?;
            let v = st.remove(&Key::new(&def, namespace, name))?;
            Some(State::present(&def, &version, v))
        })
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    // ----- faults and the request log -----

    /// Answers every request for which `f` returns a fault with that fault
    /// instead (checked after authentication, before anything else).
    /// Replaces any earlier predicate.
    pub fn set_fault(&self, f: impl Fn(&RequestInfo) -> Option<Fault> + Send + Sync + 'static) {
        self.shared.lock().fault = Some(Arc::new(f));
    }

    /// Answers the next `times` requests that `matches` selects with
    /// `fault` instead, then serves them normally again: a transient error
    /// such as `500 etcdserver: leader changed` or a `429` with
    /// `Retry-After`. Counted rules are checked in the order they were
    /// added, after authentication and before the [`ApiDouble::set_fault`]
    /// predicate; the request log records the faulted answers. Counting
    /// happens under the double's lock, so concurrent requests never share
    /// one failure.
    ///
    /// ```no_run
    /// # fn f(api: &kube_double::ApiDouble) {
    /// use kube_double::Fault;
    /// // The next scale-up of deployment data-storage fails once.
    /// api.fail_next(
    ///     1,
    ///     |r| r.method == "PATCH" && r.path.ends_with("/deployments/data-storage/scale")
    ///         && r.body.as_ref().is_some_and(|b| b["spec"]["replicas"] != 0),
    ///     Fault::internal().with_message("etcdserver: leader changed"),
    /// );
    /// # }
    /// ```
    pub fn fail_next(
        &self,
        times: usize,
        matches: impl Fn(&RequestInfo) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) {
        if times == 0 {
            return;
        }
        self.shared.lock().fault_rules.push(FaultRule {
            remaining: times,
            matches: Arc::new(matches),
            fault,
        });
    }

    /// How many failures the [`ApiDouble::fail_next`] rules still have to
    /// answer, in all.
    pub fn pending_faults(&self) -> usize {
        self.shared
            .lock()
            .fault_rules
            .iter()
            .map(|r| r.remaining)
            .sum()
    }

    /// Removes the [`ApiDouble::set_fault`] predicate and every
    /// [`ApiDouble::fail_next`] rule.
    pub fn clear_faults(&self) {
        let mut st = self.shared.lock();
        st.fault = None;
        st.fault_rules.clear();
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Makes every continue token issued so far answer 410 `Expired`, as
    /// after an etcd compaction.
    pub fn expire_continue_tokens(&self) {
        let mut st = self.shared.lock();
        st.compacted_rv = st.rv + 1;
    }

    // ----- knobs -----

    pub fn set_established_delay(&self, d: Duration) {
        self.shared.lock().opts.established_delay = d;
    }

    pub fn set_pods_delay(&self, d: Duration) {
        self.shared.lock().opts.pods_delay = d;
    }

    pub fn set_page_size_cap(&self, cap: Option<usize>) {
        self.shared.lock().opts.page_size_cap = cap;
    }

    pub fn set_required_token(&self, token: Option<String>) {
        self.shared.lock().opts.required_token = token;
    }

    /// Stops the server and waits for its thread (also done on drop).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ApiDouble {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn insert(st: &mut State, obj: Value) -> Result<Value, InsertError> {
    use status::ApiError;
    let api_version = util::str_at(&obj, &["apiVersion"])
        .unwrap_or_default()
        .to_string();
    let kind = util::str_at(&obj, &["kind"])
        .unwrap_or_default()
        .to_string();
    let (def, version) = st.find_def(&api_version, &kind).ok_or_else(|| {
        ApiError::bad_request(format!("no kind {kind:?} is served at {api_version:?}"))
    })?;
    validate::decode_errors(&def, &obj)?;
    let name = util::str_at(&obj, &["metadata", "name"])
        .unwrap_or_default()
        .to_string();
    if let Some(e) = validate::name_error(&def, &name) {
        return Err(e.into());
    }
    let ns = if def.namespaced {
        Some(
            util::str_at(&obj, &["metadata", "namespace"])
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string(),
        )
    } else {
        None
    };
    if let Some(ns) = &ns {
        st.ensure_namespace(ns);
    }
    let key = Key::new(&def, ns.as_deref(), &name);
    let old = st.get_value(&key);
    let mut obj = State::present(&def, &version, obj);
    let now = util::now_rfc3339();
    {
        let md = util::metadata_mut(&mut obj);
        match &ns {
            Some(ns) => md.insert("namespace".into(), Value::String(ns.clone())),
            None => md.remove("namespace"),
        };
        for f in ["uid", "creationTimestamp"] {
            if !md.contains_key(f) {
                let v = match (f, &old) {
                    (_, Some(o)) => o["metadata"][f].clone(),
                    ("uid", None) => Value::String(util::new_uid()),
                    _ => Value::String(now.clone()),
                };
                md.insert(f.into(), v);
            }
        }
        if def.generation && !md.contains_key("generation") {
            md.insert("generation".into(), serde_json::json!(1));
        }
    }
    validate::normalise(&def, &mut obj);
    validate::validate(&def, &obj, None)?;
    if obj["metadata"].get("managedFields").is_none() {
        apply::record_update(
            old.as_ref(),
            &mut obj,
            "kube-double",
            &def.api_version(&version),
            &now,
            "",
            false,
        );
    }
    Ok(st.commit(&def, key, obj, true))
}
