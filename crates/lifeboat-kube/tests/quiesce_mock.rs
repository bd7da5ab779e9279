//! The quiescing protocol's requests, checked one by one against a
//! `tower-test` mock of the Kubernetes API (a tiny in-test fake that answers
//! get/patch on Deployments and StatefulSets, their `scale` subresource and
//! the pod list). End-to-end tests of the binary against the HTTP API test
//! double are in `crates/lifeboat/tests/kube_quiesce.rs`.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use lifeboat_kube::quiesce::{
    Kind, Notify, ORIGINAL_REPLICAS, QuiesceError, ResumeOutcome, Scaler, Workload, resume_one,
};
use serde_json::{Value, json};

const NS: &str = "kubernaut-system";

/// One workload of the fake: the object, and how many of its pods exist.
struct Fake {
    kind: &'static str,
    object: Value,
    pods: usize,
}

#[derive(Default)]
struct State {
    workloads: BTreeMap<String, Fake>,
    /// (method, path with query, body) of every request, in order.
    log: Vec<(Method, String, String)>,
    /// Requests answered with this status: (method, path prefix, code).
    faults: Vec<(Method, String, u16)>,
    /// Pods never go away (a stuck finalizer).
    stuck_pods: bool,
}

type Shared = Arc<Mutex<State>>;

fn workload(kind: &'static str, name: &str, replicas: i32, annotation: Option<&str>) -> Fake {
    let mut meta = json!({"name": name, "namespace": NS});
    if let Some(a) = annotation {
        meta["annotations"] = json!({ORIGINAL_REPLICAS: a});
    }
    let k = if kind == "deployments" {
        "Deployment"
    } else {
        "StatefulSet"
    };
    Fake {
        kind,
        object: json!({
            "apiVersion": "apps/v1",
            "kind": k,
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}
            }
        }),
        pods: replicas as usize,
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": code, "reason": reason, "message": message});
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(v: &Value) -> Response<Body> {
    Response::new(Body::from(serde_json::to_vec(v).unwrap()))
}

fn scale_of(name: &str, obj: &Value) -> Value {
    let r = obj["spec"]["replicas"].as_i64().unwrap_or(0);
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": name, "namespace": NS},
        "spec": if r == 0 { json!({}) } else { json!({"replicas": r}) },
        "status": {"replicas": r}})
}

fn handle(st: &mut State, method: Method, path: &str, body: &str) -> Response<Body> {
    st.log
        .push((method.clone(), path.to_string(), body.to_string()));
    for (m, p, code) in &st.faults {
        if *m == method && path.starts_with(p.as_str()) {
            return status(*code, "Forbidden", "injected fault");
        }
    }
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let parts: Vec<&str> = path_only.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", "apps", "v1", "namespaces", _, kind, name, rest @ ..] => {
            let Some(w) = st.workloads.get_mut(*name).filter(|w| w.kind == *kind) else {
                return status(404, "NotFound", &format!("{kind} \"{name}\" not found"));
            };
            match (method, rest) {
                (Method::GET, []) => ok(&w.object),
                (Method::PATCH, []) => {
                    merge(&mut w.object, &serde_json::from_str(body).unwrap());
                    ok(&w.object)
                }
                (Method::GET, ["scale"]) => ok(&scale_of(name, &w.object)),
                (Method::PATCH, ["scale"]) => {
                    let p: Value = serde_json::from_str(body).unwrap();
                    let r = p["spec"]["replicas"].as_i64().unwrap();
                    w.object["spec"]["replicas"] = json!(r);
                    if r > 0 {
                        w.pods = r as usize;
                    }
                    ok(&scale_of(name, &w.object))
                }
                _ => status(405, "MethodNotAllowed", "no"),
            }
        }
        ["api", "v1", "namespaces", _, "pods"] => {
            let sel = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(|s| s.replace("%3D", "="))
                .unwrap_or_default();
            let app = sel.strip_prefix("app=").unwrap_or("").to_string();
            let stuck = st.stuck_pods;
            let mut items = Vec::new();
            if let Some(w) = st.workloads.get_mut(&app) {
                let replicas = w.object["spec"]["replicas"].as_i64().unwrap_or(0) as usize;
                for i in 0..w.pods {
                    let mut meta = json!({"name": format!("{app}-{i}"), "namespace": NS,
                        "labels": {"app": app}});
                    if i >= replicas {
                        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    }
                    items.push(json!({"metadata": meta, "status": {"phase": "Running"}}));
                }
                // Each look sees one pod fewer, down to the replica count.
                if w.pods > replicas && !stuck {
                    w.pods -= 1;
                }
            }
            ok(&json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}))
        }
        _ => status(404, "NotFound", "no such path"),
    }
}

/// A client whose requests the fake in `st` answers.
fn client(st: Shared) -> kube::Client {
    let (svc, handle_) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let mut h = pin!(handle_);
        while let Some((req, send)) = h.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let resp = handle(
                &mut st.lock().unwrap(),
                parts.method,
                &path,
                &String::from_utf8_lossy(&bytes),
            );
            send.send_response(resp);
        }
    });
    kube::Client::new(svc, NS)
}

fn state(ws: Vec<Fake>) -> Shared {
    let mut st = State::default();
    for w in ws {
        let name = w.object["metadata"]["name"].as_str().unwrap().to_string();
        st.workloads.insert(name, w);
    }
    Arc::new(Mutex::new(st))
}

fn deploy(name: &str) -> Workload {
    Workload::new(Kind::Deployment, NS, name)
}

fn quiet() -> Notify {
    Arc::new(|_| {})
}

fn replicas(st: &Shared, name: &str) -> i64 {
    st.lock().unwrap().workloads[name].object["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn annotation_of(st: &Shared, name: &str) -> Option<String> {
    st.lock().unwrap().workloads[name].object["metadata"]["annotations"][ORIGINAL_REPLICAS]
        .as_str()
        .map(str::to_string)
}

/// (method, path) of the writes in the log, in order.
fn writes(st: &Shared) -> Vec<(String, String, String)> {
    st.lock()
        .unwrap()
        .log
        .iter()
        .filter(|(m, _, _)| *m == Method::PATCH)
        .map(|(m, p, b)| {
            (
                m.to_string(),
                p.split('?').next().unwrap().to_string(),
                b.clone(),
            )
        })
        .collect()
}

fn scaler(st: &Shared, ws: Vec<Workload>) -> Scaler {
    Scaler::new(client(st.clone()), ws)
        .poll_interval(Duration::from_millis(10))
        .notify(quiet())
}

#[tokio::test]
async fn records_then_scales_through_scale_waits_and_resumes() {
    let st = state(vec![
        workload("deployments", "data-storage", 2, None),
        workload("deployments", "context-api", 1, None),
    ]);
    let messages = Arc::new(Mutex::new(Vec::<String>::new()));
    let m = messages.clone();
    let mut s = scaler(&st, vec![deploy("data-storage"), deploy("context-api")])
        .notify(Arc::new(move |x| m.lock().unwrap().push(x.to_string())));
    let stopped = s.stop().await.unwrap();
    assert_eq!(
        stopped
            .iter()
            .map(|s| (s.workload.name.as_str(), s.original_replicas))
            .collect::<Vec<_>>(),
        [("data-storage", 2), ("context-api", 1)]
    );
    assert_eq!(replicas(&st, "data-storage"), 0);
    assert_eq!(replicas(&st, "context-api"), 0);
    assert_eq!(annotation_of(&st, "data-storage").as_deref(), Some("2"));
    assert_eq!(annotation_of(&st, "context-api").as_deref(), Some("1"));
    {
        let g = st.lock().unwrap();
        assert!(g.workloads.values().all(|w| w.pods == 0), "pods gone");
    }
    let base = format!("/apis/apps/v1/namespaces/{NS}/deployments");
    let w = writes(&st);
    assert_eq!(
        w.iter().map(|(_, p, _)| p.as_str()).collect::<Vec<_>>(),
        [
            format!("{base}/data-storage"),
            format!("{base}/data-storage/scale"),
            format!("{base}/context-api"),
            format!("{base}/context-api/scale"),
        ],
        "the annotation is written before each scale, and scaling goes through /scale"
    );
    assert!(w[0].2.contains(ORIGINAL_REPLICAS) && w[0].2.contains("\"2\""));
    assert!(w[1].2.contains("\"replicas\":0"));
    assert!(
        messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("waiting for the writers' pods")),
        "progress while waiting"
    );

    st.lock().unwrap().log.clear();
    let report = s.resume().await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        report
            .results
            .iter()
            .map(|(w, r)| (w.name.clone(), r.as_ref().unwrap().clone()))
            .collect::<Vec<_>>(),
        [
            (
                "data-storage".to_string(),
                ResumeOutcome::Resumed { from: 0, to: 2 }
            ),
            (
                "context-api".to_string(),
                ResumeOutcome::Resumed { from: 0, to: 1 }
            ),
        ]
    );
    assert_eq!(replicas(&st, "data-storage"), 2);
    assert_eq!(replicas(&st, "context-api"), 1);
    assert_eq!(annotation_of(&st, "data-storage"), None);
    assert_eq!(annotation_of(&st, "context-api"), None);
    // Scale back first, then forget the record.
    let w = writes(&st);
    assert!(w[0].1.ends_with("/context-api/scale"), "{w:?}");
    assert!(w[1].1.ends_with("/context-api") && w[1].2.contains("null"));
    // A second resume has nothing left to do.
    assert!(s.resume().await.results.is_empty());
}

#[tokio::test]
async fn an_earlier_record_is_never_overwritten() {
    // A crashed restore left data-storage at 0 with its real count recorded.
    let st = state(vec![workload("deployments", "data-storage", 0, Some("2"))]);
    let mut s = scaler(&st, vec![deploy("data-storage")]);
    let stopped = s.stop().await.unwrap();
    assert_eq!(stopped[0].original_replicas, 2);
    assert!(stopped[0].kept_earlier_record);
    let w = writes(&st);
    assert_eq!(w.len(), 1, "only the scale, no annotation write: {w:?}");
    assert!(w[0].1.ends_with("/scale"));
    assert_eq!(annotation_of(&st, "data-storage").as_deref(), Some("2"));
    s.resume().await;
    assert_eq!(replicas(&st, "data-storage"), 2);
}

#[tokio::test]
async fn statefulsets_use_their_own_scale_subresource() {
    let st = state(vec![workload("statefulsets", "writer", 3, None)]);
    let mut s = scaler(&st, vec![Workload::new(Kind::StatefulSet, NS, "writer")]);
    s.stop().await.unwrap();
    assert_eq!(replicas(&st, "writer"), 0);
    let w = writes(&st);
    assert_eq!(
        w[1].1,
        format!("/apis/apps/v1/namespaces/{NS}/statefulsets/writer/scale")
    );
    s.resume().await;
    assert_eq!(replicas(&st, "writer"), 3);
}

#[tokio::test]
async fn a_missing_workload_fails_before_anything_is_touched() {
    let st = state(vec![workload("deployments", "data-storage", 2, None)]);
    let mut s = scaler(&st, vec![deploy("data-storage"), deploy("contxt-api")]);
    let e = s.stop().await.unwrap_err();
    assert!(matches!(e, QuiesceError::NotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("deployment/contxt-api in namespace kubernaut-system does not exist"),
        "{msg}"
    );
    assert!(writes(&st).is_empty(), "nothing written");
    assert!(s.resume().await.results.is_empty());
    assert_eq!(replicas(&st, "data-storage"), 2);
}

#[tokio::test]
async fn a_forbidden_scale_names_the_workload_and_resume_undoes_the_rest() {
    let st = state(vec![
        workload("deployments", "data-storage", 2, None),
        workload("deployments", "context-api", 1, None),
    ]);
    st.lock().unwrap().faults.push((
        Method::PATCH,
        format!("/apis/apps/v1/namespaces/{NS}/deployments/context-api/scale"),
        403,
    ));
    let mut s = scaler(&st, vec![deploy("data-storage"), deploy("context-api")]);
    let e = s.stop().await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("scale deployment/context-api in namespace kubernaut-system")
            && msg.contains("403")
            && msg.contains("deploy/rbac.yaml"),
        "{msg}"
    );
    assert_eq!(replicas(&st, "data-storage"), 0);
    // Still forbidden: context-api never went down, so resuming it only
    // removes its record and needs no scale.
    let report = s.resume().await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(replicas(&st, "data-storage"), 2);
    assert_eq!(replicas(&st, "context-api"), 1);
    assert_eq!(annotation_of(&st, "data-storage"), None);
    assert_eq!(annotation_of(&st, "context-api"), None);
}

#[tokio::test]
async fn pods_that_do_not_go_time_out_with_their_names() {
    let st = state(vec![workload("deployments", "data-storage", 2, None)]);
    st.lock().unwrap().stuck_pods = true;
    let mut s = scaler(&st, vec![deploy("data-storage")]).timeout(Duration::from_millis(200));
    let e = s.stop().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, QuiesceError::PodsRemain { .. }), "{e:?}");
    assert!(
        msg.contains("data-storage-0 (terminating), data-storage-1 (terminating)")
            && msg.contains("quiesce.timeout"),
        "{msg}"
    );
    s.resume().await;
    assert_eq!(replicas(&st, "data-storage"), 2);
}

#[tokio::test]
async fn a_cancelled_stop_is_undone_by_resume() {
    let st = state(vec![
        workload("deployments", "data-storage", 2, None),
        workload("deployments", "context-api", 1, None),
    ]);
    st.lock().unwrap().stuck_pods = true;
    let mut s = scaler(&st, vec![deploy("data-storage"), deploy("context-api")]);
    // Dropped while waiting for the pods, as on Ctrl-C.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), s.stop())
            .await
            .is_err()
    );
    assert_eq!(replicas(&st, "data-storage"), 0);
    assert!(s.resume().await.is_ok());
    assert_eq!(replicas(&st, "data-storage"), 2);
    assert_eq!(replicas(&st, "context-api"), 1);
}

#[tokio::test]
async fn resume_one_leaves_unmarked_workloads_alone_and_refuses_bad_records() {
    let st = state(vec![
        workload("deployments", "data-storage", 2, None),
        workload("deployments", "context-api", 0, Some("lots")),
    ]);
    let c = client(st.clone());
    let r = resume_one(&c, &deploy("data-storage"), &quiet())
        .await
        .unwrap();
    assert_eq!(r, ResumeOutcome::NotQuiesced { replicas: 2 });
    let e = resume_one(&c, &deploy("context-api"), &quiet())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("\"lots\"") && e.to_string().contains("context-api"),
        "{e}"
    );
    assert!(writes(&st).is_empty());
    let e = resume_one(&c, &deploy("gone"), &quiet()).await.unwrap_err();
    assert!(matches!(e, QuiesceError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn a_bad_record_stops_the_quiesce_before_anything_is_touched() {
    let st = state(vec![
        workload("deployments", "data-storage", 2, None),
        workload("deployments", "context-api", 0, Some("-3")),
    ]);
    let mut s = scaler(&st, vec![deploy("data-storage"), deploy("context-api")]);
    let e = s.stop().await.unwrap_err();
    assert!(matches!(e, QuiesceError::BadAnnotation { .. }), "{e:?}");
    assert!(writes(&st).is_empty());
}
