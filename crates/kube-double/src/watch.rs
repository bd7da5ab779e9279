//! `?watch=true`: newline-delimited `WatchEvent`s over a chunked response.
//!
//! Without `resourceVersion` (or with `0`) the watch starts with a
//! synthetic ADDED per existing object, as the real server does; with a
//! resourceVersion it replays the last changes the double remembers (1000)
//! and answers an ERROR event with a 410 `Expired` Status when that is too
//! old. `sendInitialEvents=true` ends the initial events with the
//! `k8s.io/initial-events-end` BOOKMARK. Objects that stop matching a label
//! selector are not turned into DELETED events (simplification).

use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{DEFAULT_WATCH, Shared, event_line, list_item, partial, scan};
use crate::state::{Event, State};
use crate::status::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

struct Filter {
    group: String,
    plural: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    def: ResourceDef,
    version: String,
    metadata_only: bool,
}

impl Filter {
    fn line(&self, ev: &Event) -> Option<Bytes> {
        let k = &ev.key;
        if k.group != self.group
            || k.plural != self.plural
            || self.namespace.as_ref().is_some_and(|n| *n != k.namespace)
            || !self.labels.matches(|l| ev.stored.label(l))
            || !self.fields.matches(&k.namespace, &k.name)
        {
            return None;
        }
        Some(event_line(ev.etype, &self.object(ev.stored.value())))
    }

    fn object(&self, v: Value) -> Value {
        let v = State::present(&self.def, &self.version, v);
        if self.metadata_only { partial(&v) } else { v }
    }
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(pk, _)| pk == k)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn watch(
    shared: &Arc<Shared>,
    params: Vec<(String, String)>,
    def: &ResourceDef,
    version: &str,
    ns: Option<&str>,
    metadata_only: bool,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(param(&params, "labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(param(&params, "fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let timeout = match param(&params, "timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")))?,
        ),
        None => DEFAULT_WATCH,
    };
    let rv_param = param(&params, "resourceVersion")
        .unwrap_or_default()
        .to_string();
    let send_initial = param(&params, "sendInitialEvents") == Some("true");
    let bookmarks = param(&params, "allowWatchBookmarks") == Some("true");
    let filter = Filter {
        group: def.group.clone(),
        plural: def.plural.clone(),
        namespace: ns.map(str::to_string),
        labels,
        fields,
        def: def.clone(),
        version: version.to_string(),
        metadata_only,
    };

    let st = shared.lock();
    let rx = st.events.subscribe();
    let mut initial: VecDeque<Bytes> = VecDeque::new();
    if rv_param.is_empty() || rv_param == "0" || send_initial {
        for (k, s) in scan(&st, def, ns) {
            if crate::server::matches(k, s, &filter.labels, &filter.fields) {
                let v = list_item(def, version, s.value(), false);
                initial.push_back(crate::server::event_line("ADDED", &filter.object(v)));
            }
        }
        if send_initial && bookmarks {
            let mut bm = json!({
                "kind": def.kind,
                "apiVersion": def.api_version(version),
                "metadata": {"resourceVersion": st.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
            });
            if metadata_only {
                bm["kind"] = json!("PartialObjectMetadata");
                bm["apiVersion"] = json!("meta.k8s.io/v1");
            }
            initial.push_back(event_line("BOOKMARK", &bm));
        }
    } else {
        let from: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
        })?;
        let oldest = st.history.front().map(|e| e.rv).unwrap_or(st.rv + 1);
        if from < st.rv && from + 1 < oldest {
            let status = ApiError::new(
                410,
                "Expired",
                format!(
                    "too old resource version: {from} ({})",
                    oldest.saturating_sub(1)
                ),
            )
            .to_status();
            initial.push_back(event_line("ERROR", &status));
            drop(st);
            return Ok(stream_response(initial, None, timeout, filter));
        }
        for ev in st.history.iter().filter(|e| e.rv > from) {
            if let Some(line) = filter.line(ev) {
                initial.push_back(line);
            }
        }
    }
    drop(st);
    Ok(stream_response(initial, Some(rx), timeout, filter))
}

fn stream_response(
    initial: VecDeque<Bytes>,
    rx: Option<tokio::sync::broadcast::Receiver<Arc<Event>>>,
    timeout: Duration,
    filter: Filter,
) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    let state = (initial, rx, Arc::new(filter), false);
    let stream = futures::stream::unfold(
        state,
        move |(mut initial, mut rx, filter, done)| async move {
            if let Some(line) = initial.pop_front() {
                return Some((Ok::<Bytes, Infallible>(line), (initial, rx, filter, done)));
            }
            if done {
                return None;
            }
            let r = rx.as_mut()?;
            loop {
                match tokio::time::timeout_at(deadline, r.recv()).await {
                    Err(_) | Ok(Err(RecvError::Closed)) => return None,
                    Ok(Ok(ev)) => {
                        if let Some(line) = filter.line(&ev) {
                            return Some((Ok(line), (initial, rx, filter, false)));
                        }
                    }
                    Ok(Err(RecvError::Lagged(_))) => {
                        let status =
                            ApiError::new(410, "Expired", "the watch fell behind; start again")
                                .to_status();
                        return Some((
                            Ok(event_line("ERROR", &status)),
                            (initial, rx, filter, true),
                        ));
                    }
                }
            }
        },
    );
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
