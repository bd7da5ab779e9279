//! The object restore's requests, checked one by one against a `tower-test`
//! mock of the Kubernetes API (a tiny in-test fake). End-to-end tests of the
//! binary against the HTTP API test double are in
//! `crates/lifeboat/tests/kube_cli.rs`.

use std::pin::pin;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use lifeboat_kube::objects::restore::{Action, Existing, RestoreOptions, restore};
use lifeboat_kube::objects::{Record, Resource};
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<(Method, String, Option<String>, String)>>>;

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn not_found(what: &str) -> Response<Body> {
    respond(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}

/// A fake where nothing exists yet, every apply succeeds except for the
/// object named `bad` (422), and the namespace `ks` exists.
fn client(log: Log) -> kube::Client {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let mut h = pin!(handle);
        while let Some((req, send)) = h.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let path = parts.uri.path_and_query().unwrap().to_string();
            let ct = parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let body = String::from_utf8_lossy(&bytes).into_owned();
            log.lock()
                .unwrap()
                .push((parts.method.clone(), path.clone(), ct, body.clone()));
            let resp = match (parts.method, path.as_str()) {
                (Method::GET, "/version") => respond(
                    200,
                    &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"}),
                ),
                (Method::GET, "/api/v1/namespaces/ks") => respond(
                    200,
                    &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ks"}}),
                ),
                (Method::GET, p) => not_found(p),
                (Method::PATCH, p) if p.contains("/bad?") => respond(
                    422,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "ConfigMap \"bad\" is invalid: data: Too long", "reason": "Invalid", "code": 422}),
                ),
                (Method::PATCH, _) => {
                    let mut o: Value = serde_json::from_str(&body).unwrap();
                    o["metadata"]["resourceVersion"] = json!("1");
                    respond(200, &o)
                }
                _ => respond(405, &json!({})),
            };
            send.send_response(resp);
        }
    });
    kube::Client::new(svc, "default")
}

fn configmap(name: &str) -> Record {
    Record {
        resource: Resource {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
        },
        object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": "ks"}, "data": {"k": "v"}}),
    }
}

#[tokio::test]
async fn applies_with_field_manager_force_and_reports_each_object() {
    let log: Log = Arc::default();
    let c = client(Arc::clone(&log));
    let opts = RestoreOptions {
        concurrency: 1,
        ..Default::default()
    };
    let report = restore(&c, vec![configmap("good"), configmap("bad")], &opts, |_| {})
        .await
        .unwrap();
    let by_name = |n: &str| report.results.iter().find(|r| r.name == n).unwrap();
    assert_eq!(by_name("good").action, Action::Created);
    assert_eq!(by_name("bad").action, Action::Failed);
    assert!(by_name("bad").error.as_ref().unwrap().contains("422"));
    assert_eq!(report.failed(), 1);

    let log = log.lock().unwrap();
    let patches: Vec<_> = log.iter().filter(|(m, ..)| *m == Method::PATCH).collect();
    assert_eq!(patches.len(), 2);
    for (_, path, ct, body) in &patches {
        assert!(
            path.starts_with("/api/v1/namespaces/ks/configmaps/"),
            "{path}"
        );
        assert!(
            path.contains("fieldManager=lifeboat") && path.contains("force=true"),
            "{path}"
        );
        assert_eq!(ct.as_deref(), Some("application/apply-patch+yaml"));
        let o: Value = serde_json::from_str(body).unwrap();
        assert_eq!(o["data"]["k"], "v");
    }
    // Every object is read before it is applied (created vs configured).
    let good_get = log
        .iter()
        .position(|(m, p, ..)| *m == Method::GET && p.ends_with("/configmaps/good"));
    let good_patch = log
        .iter()
        .position(|(m, p, ..)| *m == Method::PATCH && p.contains("/configmaps/good?"));
    assert!(good_get.unwrap() < good_patch.unwrap());
}

#[tokio::test]
async fn dry_run_and_skip_send_no_writes() {
    let log: Log = Arc::default();
    let c = client(Arc::clone(&log));
    let opts = RestoreOptions {
        dry_run: true,
        ..Default::default()
    };
    let report = restore(&c, vec![configmap("good")], &opts, |_| {})
        .await
        .unwrap();
    assert_eq!(report.results[0].action, Action::WouldCreate);
    let log = log.lock().unwrap();
    let patches: Vec<_> = log.iter().filter(|(m, ..)| *m == Method::PATCH).collect();
    assert_eq!(patches.len(), 1);
    assert!(patches[0].1.contains("dryRun=All"), "{}", patches[0].1);
    drop(log);

    let _ = Existing::Skip;
}
