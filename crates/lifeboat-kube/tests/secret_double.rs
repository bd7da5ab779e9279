//! `secret::read_keys` against the API test double (`crates/kube-double`),
//! through a kubeconfig as the binary connects: several references in one
//! call, each Secret read once, a failure naming its reference without
//! failing the others, and the client's namespace for references without
//! one.

use kube_double::{ApiDouble, Fault};
use lifeboat_kube::client::{ClusterOptions, connect};
use lifeboat_kube::error::ErrorKind;
use lifeboat_kube::secret::{SecretKeyRef, read_key, read_keys};
use serde_json::json;

fn key(ns: Option<&str>, name: &str, key: &str) -> SecretKeyRef {
    SecretKeyRef {
        namespace: ns.map(str::to_string),
        name: name.into(),
        key: key.into(),
    }
}

async fn client_for(api: &ApiDouble, dir: &tempfile::TempDir) -> lifeboat_kube::Client {
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path).unwrap();
    connect(&ClusterOptions {
        kubeconfig: Some(path),
        context: None,
    })
    .await
    .unwrap()
}

fn secret(ns: &str, name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": ns}, "stringData": data})
}

#[tokio::test(flavor = "multi_thread")]
async fn several_references_one_call_each_secret_read_once() {
    let api = ApiDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lb"}}));
    api.insert(secret(
        "lb",
        "repo",
        json!({"password": "s3cret\n", "access-key": "AKIA"}),
    ));
    api.insert(secret("default", "local", json!({"token": "t0k"})));
    let client = client_for(&api, &dir).await;
    api.clear_requests();

    let refs = [
        key(Some("lb"), "repo", "password"),
        key(None, "local", "token"),
        key(Some("lb"), "repo", "access-key"),
        key(Some("lb"), "repo", "missing"),
        key(Some("lb"), "absent", "x"),
    ];
    let got = read_keys(&client, &refs).await;
    assert_eq!(got.len(), refs.len());
    assert_eq!(
        got[0].as_deref().unwrap(),
        "s3cret",
        "one trailing newline removed"
    );
    assert_eq!(
        got[1].as_deref().unwrap(),
        "t0k",
        "no namespace: the client's"
    );
    assert_eq!(got[2].as_deref().unwrap(), "AKIA");
    let missing = got[3].as_ref().unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    assert_eq!(
        missing.message,
        "reading Secret lb/repo: it has no key \"missing\" (its keys: access-key, password)"
    );
    let absent = got[4].as_ref().unwrap_err();
    assert_eq!(absent.kind, ErrorKind::NotFound);
    assert_eq!(
        absent.message,
        "reading Secret lb/absent: there is no Secret absent in namespace lb"
    );

    // Three Secrets named, three reads: lb/repo once for its three keys.
    let reads: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/secrets/"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        reads,
        [
            "/api/v1/namespaces/lb/secrets/repo",
            "/api/v1/namespaces/default/secrets/local",
            "/api/v1/namespaces/lb/secrets/absent",
        ],
        "each Secret read once"
    );

    // The same answers as one reference at a time.
    for (r, want) in refs.iter().zip(&got) {
        let one = read_key(&client, r.namespace.as_deref(), &r.name, &r.key).await;
        match (one, want) {
            (Ok(a), Ok(b)) => assert_eq!(&a, b),
            (Err(a), Err(b)) => assert_eq!((a.kind, a.message), (b.kind, b.message.clone())),
            (a, b) => panic!("read_key {a:?} but read_keys {b:?} for {r:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_secret_fails_each_of_its_references_only() {
    let api = ApiDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    api.insert(secret("default", "open", json!({"k": "v"})));
    api.insert(secret("default", "closed", json!({"a": "1", "b": "2"})));
    let client = client_for(&api, &dir).await;
    api.set_fault(|r| r.path.ends_with("/secrets/closed").then(Fault::forbidden));

    let got = read_keys(
        &client,
        &[
            key(None, "closed", "a"),
            key(None, "open", "k"),
            key(None, "closed", "b"),
        ],
    )
    .await;
    assert_eq!(got[1].as_deref().unwrap(), "v");
    for e in [&got[0], &got[2]] {
        let e = e.as_ref().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Denied);
        assert!(
            e.message.starts_with("reading Secret default/closed: 403")
                && e.message.contains("deploy/rbac.yaml"),
            "{}",
            e.message
        );
    }
    assert!(read_keys(&client, &[]).await.is_empty());
}
