//! Bad requests get `Status` answers (or the mux's plain 404), never a
//! panic or a hung connection.

use kube_double::ApiDouble;
use serde_json::Value;
use std::io::{Read, Write};

fn raw(
    api: &ApiDouble,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(api.addr()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// (method, path, content type, body, expected code)
type Case = (&'static str, String, Option<&'static str>, Vec<u8>, u16);

const APPLY: Option<&str> = Some("application/apply-patch+yaml");
const MERGE: Option<&str> = Some("application/merge-patch+json");
const JSONP: Option<&str> = Some("application/json-patch+json");
const JSON: Option<&str> = Some("application/json");

#[test]
fn bad_requests_get_status_answers() {
    let api = ApiDouble::start_in_thread();
    api.insert(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}, "data": {"a": "b"}}));
    api.insert(serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}}}}));
    let cm = "/api/v1/namespaces/default/configmaps/x";
    let cases: Vec<Case> = vec![
        ("GET", "/nope".into(), None, vec![], 404),
        ("GET", "/api/v2".into(), None, vec![], 404),
        ("GET", "/apis/example.com/v1/widgets".into(), None, vec![], 404),
        ("GET", "/api/v1/namespaces//configmaps".into(), None, vec![], 404),
        ("GET", "/api/v1/configmaps/x".into(), None, vec![], 404),
        ("GET", "/api/v1/namespaces/default/namespaces".into(), None, vec![], 404),
        ("GET", "/api/v1/namespaces/default/configmaps/x/bogus".into(), None, vec![], 404),
        ("GET", "/api/v1/namespaces/default/configmaps?limit=abc".into(), None, vec![], 400),
        ("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in".into(), None, vec![], 400),
        ("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3D1".into(), None, vec![], 400),
        ("GET", "/api/v1/namespaces/default/configmaps?limit=1&continue=%25%25".into(), None, vec![], 400),
        ("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=abc".into(), None, vec![], 400),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, b"not json".to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, b"[1,2]".to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#.to_vec(), 422),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},"data":{"k":1}}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n","labels":{"a":1}}}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n","labels":{"a b":"c"}}}"#.to_vec(), 422),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"s"}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/secrets".into(), JSON, br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"%%%"}}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/configmaps".into(), Some("application/vnd.kubernetes.protobuf"), b"\x00\xff".to_vec(), 415),
        ("POST", "/api/v1/configmaps".into(), JSON, b"{}".to_vec(), 405),
        ("POST", cm.into(), JSON, b"{}".to_vec(), 405),
        ("PATCH", cm.into(), APPLY, b"\xff\xfe".to_vec(), 400),
        ("PATCH", cm.into(), APPLY, b"a: [".to_vec(), 400),
        ("PATCH", cm.into(), APPLY, b"- 1\n- 2\n".to_vec(), 422),
        ("PATCH", format!("{cm}?fieldManager=m"), APPLY, b"- 1\n- 2\n".to_vec(), 400),
        ("PATCH", format!("{cm}?fieldManager=m"), APPLY, b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: 5\n".to_vec(), 400),
        ("PATCH", format!("{cm}?fieldManager=m&dryRun=Some"), APPLY, b"{}".to_vec(), 422),
        ("PATCH", format!("{cm}?force=true"), MERGE, b"{}".to_vec(), 422),
        ("PATCH", cm.into(), MERGE, b"[1]".to_vec(), 400),
        ("PATCH", cm.into(), MERGE, br#"{"metadata":{"name":"other"}}"#.to_vec(), 400),
        ("PATCH", cm.into(), MERGE, br#"{"kind":"Secret"}"#.to_vec(), 400),
        ("PATCH", cm.into(), MERGE, br#"{"metadata":null}"#.to_vec(), 400),
        ("PATCH", cm.into(), JSONP, br#"[{"op":"replace","path":"","value":7}]"#.to_vec(), 422),
        ("PATCH", cm.into(), JSONP, br#"[{"op":"remove","path":"/data/zz"}]"#.to_vec(), 422),
        ("PATCH", cm.into(), JSONP, br#"{"op":"x"}"#.to_vec(), 422),
        ("PATCH", cm.into(), Some("text/plain"), b"x".to_vec(), 415),
        ("PATCH", cm.into(), None, b"{}".to_vec(), 415),
        ("PUT", cm.into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","resourceVersion":"1"}}"#.to_vec(), 409),
        ("PUT", cm.into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y"}}"#.to_vec(), 400),
        ("PUT", "/api/v1/namespaces/default/configmaps/absent".into(), JSON, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"absent"}}"#.to_vec(), 404),
        ("DELETE", cm.into(), JSON, b"{nope".to_vec(), 400),
        ("DELETE", cm.into(), JSON, br#"{"preconditions":{"uid":"other"}}"#.to_vec(), 409),
        ("DELETE", "/api/v1/namespaces/default/configmaps/absent".into(), None, vec![], 404),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=m&force=true".into(), APPLY,
            br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":"3"}}"#.to_vec(), 422),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/d".into(), MERGE,
            br#"{"spec":{"selector":{"matchLabels":{"a":"c"}}}}"#.to_vec(), 422),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale".into(), MERGE, br#"{"spec":{"replicas":"x"}}"#.to_vec(), 422),
        ("PUT", "/apis/apps/v1/namespaces/default/deployments/d/scale".into(), JSON, br#"{"apiVersion":"v1","kind":"Scale"}"#.to_vec(), 400),
        ("PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.b?fieldManager=m".into(), APPLY,
            br#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"a.b"},"spec":{}}"#.to_vec(), 422),
        ("PATCH", "/api/v1/namespaces/a.b?fieldManager=m".into(), APPLY, br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a.b"}}"#.to_vec(), 422),
    ];
    for (method, path, ct, body, want) in cases {
        let (code, text) = raw(&api, method, &path, ct, &body);
        assert_eq!(
            code,
            want,
            "{method} {path} {:?}: {text}",
            String::from_utf8_lossy(&body)
        );
        if text != "404 page not found\n" {
            let status: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
            assert_eq!(status["kind"], "Status", "{text}");
            assert_eq!(status["code"], want, "{text}");
            assert!(
                status["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{text}"
            );
        }
    }
    // Still serving, and nothing was changed by the refused writes.
    let (code, text) = raw(&api, "GET", cm, None, &[]);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"], serde_json::json!({"a": "b"}));
    // A body over the server's 3 MiB limit.
    let (code, _) = raw(
        &api,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        JSON,
        &vec![b' '; 3 * 1024 * 1024 + 10],
    );
    assert_eq!(code, 413);
}
