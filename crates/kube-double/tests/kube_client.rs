//! The double driven by the real `kube` client, over HTTP, the way Lifeboat
//! drives a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::discovery::Discovery;
use kube::{Client, Config};
use kube_double::{ApiDouble, Fault, Options};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn client_for(api: &ApiDouble) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    // As Lifeboat connects: kube's own retry layer off, so every answer,
    // 429 and 503 included, reaches the caller.
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

/// `(code, reason, message)` of an API error.
fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn raw_get(client: &Client, uri: &str, accept: Option<&str>) -> Result<Value, kube::Error> {
    let mut req = http::Request::get(uri);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let text = client.request_text(req.body(vec![]).unwrap()).await?;
    Ok(serde_json::from_str(&text).unwrap())
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn cm(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data})
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "remediationrequests.kubernaut.ai"},
        "spec": {
            "group": "kubernaut.ai",
            "names": {"plural": "remediationrequests", "singular": "remediationrequest", "kind": "RemediationRequest", "shortNames": ["rr"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}
            }]
        }
    })
}

fn rr_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kubernaut.ai",
        "v1alpha1",
        "RemediationRequest",
    ))
}

#[tokio::test]
async fn kubeconfig_is_private_and_http_url_works() {
    let api = ApiDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("{}/", api.url()));
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
}

#[tokio::test]
async fn discovery_finds_builtins_and_crds_only_once_established() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    let d = Discovery::new(client.clone()).run().await.unwrap();
    for (g, v, k) in [
        ("", "v1", "ConfigMap"),
        ("", "v1", "Secret"),
        ("", "v1", "Namespace"),
        ("apps", "v1", "Deployment"),
        ("apps", "v1", "StatefulSet"),
    ] {
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(),
            "{k}"
        );
    }
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(ar.plural, "deployments");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "scale"));
    let (_, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .unwrap();
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);

    // Aggregated discovery is answered with the legacy document.
    let raw = raw_get(
        &client,
        "/apis",
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ),
    )
    .await
    .unwrap();
    assert_eq!(raw["kind"], "APIGroupList");
    // kube's aggregated discovery does not fail against such a server: it
    // silently finds nothing. Lifeboat must use `Discovery::run`.
    let agg = Discovery::new(client.clone()).run_aggregated().await;
    assert!(agg.is_err() || agg.unwrap().groups().next().is_none());

    api.set_established_delay(Duration::from_millis(300));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .patch(
            "remediationrequests.kubernaut.ai",
            &PatchParams::apply("lifeboat").force(),
            &Patch::Apply(crd()),
        )
        .await
        .unwrap();
    assert!(
        created
            .status
            .is_none_or(|s| s.conditions.unwrap_or_default().is_empty())
    );
    let gvk = GroupVersionKind::gvk("kubernaut.ai", "v1alpha1", "RemediationRequest");
    let d = Discovery::new(client.clone()).run().await.unwrap();
    assert!(d.resolve_gvk(&gvk).is_none(), "served before Established");
    // Its resource path is not served yet: the server's plain 404.
    let rrs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &rr_resource());
    let (code, _, message) = api_error(rrs.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, message.as_str()), (404, "404 page not found"));
    // ... which kube's `get_opt` does not take for "absent": its
    // `is_not_found` wants reason NotFound, and a plain-text 404 has none.
    let (code, reason, _) = api_error(rrs.get_opt("rr-1").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "Failed to parse error data"));

    eventually("Established", || {
        let crds = crds.clone();
        async move {
            crds.get("remediationrequests.kubernaut.ai")
                .await
                .unwrap()
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        }
    })
    .await;
    let crd = crds.get("remediationrequests.kubernaut.ai").await.unwrap();
    let status = crd.status.unwrap();
    assert_eq!(status.accepted_names.unwrap().kind, "RemediationRequest");
    assert_eq!(status.stored_versions.unwrap(), ["v1alpha1"]);
    let d = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = d.resolve_gvk(&gvk).unwrap();
    assert_eq!(ar.plural, "remediationrequests");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        rrs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn paginated_list_returns_everything_in_pages() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    for i in 0..120 {
        api.insert(cm(
            "pages",
            &format!("cm-{i:03}"),
            json!({"i": i.to_string()}),
        ));
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "pages");
    let mut names = Vec::new();
    let mut tokens = Vec::new();
    let mut lp = ListParams::default().limit(50);
    loop {
        let page = cms.list(&lp).await.unwrap();
        assert!(page.items.len() <= 50);
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => {
                tokens.push(c.clone());
                lp = lp.continue_token(&c);
            }
            None => break,
        }
    }
    // 120 plus the namespace's kube-root-ca.crt: three pages.
    assert_eq!(tokens.len(), 2);
    assert_eq!(names.len(), 121);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "stable order by name");
    assert!(names.contains(&"kube-root-ca.crt".to_string()));
    let lists: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/pages/configmaps")
        .collect();
    assert_eq!(lists.len(), 3);
    assert!(
        lists
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("50"))
    );
    assert_eq!(
        lists[1].param("continue").as_deref(),
        Some(tokens[0].as_str())
    );

    // Raw wire format: typed-list items carry no apiVersion/kind.
    let raw = raw_get(&client, "/api/v1/namespaces/pages/configmaps?limit=5", None)
        .await
        .unwrap();
    assert_eq!(raw["kind"], "ConfigMapList");
    assert_eq!(raw["apiVersion"], "v1");
    assert_eq!(raw["metadata"]["remainingItemCount"], 116);
    for item in raw["items"].as_array().unwrap() {
        assert!(
            item.get("apiVersion").is_none() && item.get("kind").is_none(),
            "{item}"
        );
    }

    // Selectors.
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "labelled", "namespace": "pages", "labels": {"app": "kubernaut", "tier": "db"}}}));
    let l = cms
        .list(&ListParams::default().labels("app in (kubernaut,x),tier!=cache"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let l = cms
        .list(&ListParams::default().fields("metadata.name=cm-007"))
        .await
        .unwrap();
    assert_eq!(l.items[0].metadata.name.as_deref(), Some("cm-007"));
    let (code, reason, _) = api_error(
        cms.list(&ListParams::default().labels("app in ("))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    let all: Api<ConfigMap> = Api::all(client.clone());
    assert!(all.list(&ListParams::default()).await.unwrap().items.len() >= 122 + 4);

    // Bad and expired continue tokens.
    let (code, _, _) = api_error(
        cms.list(&ListParams::default().limit(5).continue_token("not-a-token"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    api.expire_continue_tokens();
    let (code, reason, _) = api_error(
        cms.list(&ListParams::default().limit(50).continue_token(&tokens[0]))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (410, "Expired"));

    // Metadata-only lists.
    let meta = cms
        .list_metadata(&ListParams::default().limit(3))
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 3);
    assert!(meta.metadata.continue_.is_some());
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_validates() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    api.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubernaut-system"}}),
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kubernaut-system");
    let pp = PatchParams::apply("lifeboat").force();
    let a = cms
        .patch(
            "rego-policies",
            &pp,
            &Patch::Apply(cm(
                "kubernaut-system",
                "rego-policies",
                json!({"a": "1", "b": "2"}),
            )),
        )
        .await
        .unwrap();
    let md = &a.metadata;
    assert!(md.uid.is_some() && md.creation_timestamp.is_some());
    let mf = md.managed_fields.clone().unwrap();
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("lifeboat"), Some("Apply"))
    );
    let rv1: u64 = md.resource_version.clone().unwrap().parse().unwrap();
    // Update: b dropped by the only manager that set it.
    let b = cms
        .patch(
            "rego-policies",
            &pp,
            &Patch::Apply(cm("kubernaut-system", "rego-policies", json!({"a": "3"}))),
        )
        .await
        .unwrap();
    assert_eq!(b.data.unwrap(), [("a".to_string(), "3".to_string())].into());
    let rv2: u64 = b
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(b.metadata.uid, a.metadata.uid);
    // Same again: no write.
    let c = cms
        .patch(
            "rego-policies",
            &pp,
            &Patch::Apply(cm("kubernaut-system", "rego-policies", json!({"a": "3"}))),
        )
        .await
        .unwrap();
    assert_eq!(c.metadata.resource_version, b.metadata.resource_version);
    let rec = api
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        rec.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(rec.param("fieldManager").as_deref(), Some("lifeboat"));
    assert_eq!(rec.param("force").as_deref(), Some("true"));

    // Another manager with a different value: 409 unless forced.
    let (code, reason, message) = api_error(
        cms.patch(
            "rego-policies",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(cm("kubernaut-system", "rego-policies", json!({"a": "4"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("conflict with \"lifeboat\"") && message.contains(".data.a"),
        "{message}"
    );

    // Namespace that does not exist.
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let (code, reason, message) = api_error(
        missing
            .patch("x", &pp, &Patch::Apply(cm("nope", "x", json!({}))))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "namespaces \"nope\" not found")
    );
    // Bad name, mismatched name, wrong kind.
    let (code, reason, message) = api_error(
        cms.patch(
            "Bad_Name",
            &pp,
            &Patch::Apply(cm("kubernaut-system", "Bad_Name", json!({}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name"),
        "{message}"
    );
    let (code, _, _) = api_error(
        cms.patch(
            "x",
            &pp,
            &Patch::Apply(cm("kubernaut-system", "y", json!({}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 400);
    let secret_body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, _, _) = api_error(
        cms.patch("x", &pp, &Patch::Apply(secret_body))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    // Dry run stores nothing.
    let dry = PatchParams::apply("lifeboat").force().dry_run();
    cms.patch(
        "dry",
        &dry,
        &Patch::Apply(cm("kubernaut-system", "dry", json!({"k": "v"}))),
    )
    .await
    .unwrap();
    assert!(
        api.get("v1", "ConfigMap", Some("kubernaut-system"), "dry")
            .is_none()
    );

    // Secrets: stringData folded into base64 data.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kubernaut-system");
    let s = secrets
        .patch("postgresql-credentials", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "postgresql-credentials"}, "stringData": {"password": "hunter2"}})))
        .await
        .unwrap();
    assert_eq!(s.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let raw = api
        .get(
            "v1",
            "secrets",
            Some("kubernaut-system"),
            "postgresql-credentials",
        )
        .unwrap();
    assert_eq!(raw["data"]["password"], "aHVudGVyMg==");
    assert!(raw.get("stringData").is_none());
}

#[tokio::test]
async fn injected_faults_fail_exactly_the_chosen_requests() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "f"}}));
    api.set_fault(|r| {
        (r.verb == "patch" && r.object_name().as_deref() == Some("cm-042")).then(Fault::invalid)
    });
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "f");
    let pp = PatchParams::apply("lifeboat").force();
    let mut failed = Vec::new();
    for i in 0..100 {
        let name = format!("cm-{i:03}");
        if let Err(e) = cms
            .patch(&name, &pp, &Patch::Apply(cm("f", &name, json!({"i": "x"}))))
            .await
        {
            let (code, reason, message) = api_error(e);
            assert_eq!((code, reason.as_str()), (422, "Invalid"));
            assert!(message.contains("cm-042"), "{message}");
            failed.push(name);
        }
    }
    assert_eq!(failed, ["cm-042"]);
    assert_eq!(api.list("v1", "configmaps", Some("f")).len(), 99 + 1);

    api.set_fault(|r| (r.plural() == Some("configmaps") && r.verb == "get").then(Fault::internal));
    let (code, reason, _) = api_error(cms.get("cm-001").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    api.set_fault(|r| (r.verb == "create").then(|| Fault::conflict().with_message("try again")));
    let (code, _, message) = api_error(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(cm("f", "new", json!({}))).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, message.as_str()), (409, "try again"));
    api.clear_faults();
    cms.get("cm-001").await.unwrap();
}

#[tokio::test]
async fn get_404_merge_patch_create_replace_delete() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (code, reason, message) = api_error(cms.get("x").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "configmaps \"x\" not found")
    );
    let raw = client
        .request_text(
            http::Request::get("/api/v1/namespaces/default/configmaps/x")
                .body(vec![])
                .unwrap(),
        )
        .await;
    assert!(raw.is_err());

    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm("default", "x", json!({"k": "v"}))).unwrap(),
        )
        .await
        .unwrap();
    let (code, reason, _) = api_error(
        cms.create(&PostParams::default(), &created)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let patched = cms
        .patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"lifeboat.io/original-replicas": "3"}}, "data": {"k": null, "n": "1"}})))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.annotations.unwrap()["lifeboat.io/original-replicas"],
        "3"
    );
    assert_eq!(
        patched.data.clone().unwrap(),
        [("n".to_string(), "1".to_string())].into()
    );
    let (code, _, _) = api_error(
        cms.patch(
            "absent",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 404);
    let sm = cms
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"s": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(sm.data.unwrap().len(), 2);

    let mut replaced = cms.get("x").await.unwrap();
    replaced.data = Some([("only".to_string(), "this".to_string())].into());
    let r = cms
        .replace("x", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(r.data.unwrap().len(), 1);
    // Stale resourceVersion: conflict.
    let (code, reason, _) = api_error(
        cms.replace("x", &PostParams::default(), &replaced)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    let gone = cms.delete("x", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_right(), "a ConfigMap delete answers a Status");
    assert!(cms.get_opt("x").await.unwrap().is_none());

    // Deleting a namespace takes its objects.
    api.insert(cm("doomed", "a", json!({})));
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    assert!(ns.is_left());
    assert!(api.list("v1", "ConfigMap", Some("doomed")).is_empty());
}

#[tokio::test]
async fn scale_subresource_and_pods_follow_replicas() {
    let api = ApiDouble::start_with(Options {
        pods_delay: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    let client = client_for(&api).await;
    api.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubernaut-system"}}),
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "kubernaut-system");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kubernaut-system");
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "data-storage"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "data-storage"}},
            "template": {"metadata": {"labels": {"app": "data-storage"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        }
    });
    let created = deploys
        .patch(
            "data-storage",
            &PatchParams::apply("lifeboat").force(),
            &Patch::Apply(d),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let lp = ListParams::default().labels("app=data-storage");
    eventually("3 pods", || {
        let pods = pods.clone();
        let lp = lp.clone();
        async move { pods.list(&lp).await.unwrap().items.len() == 3 }
    })
    .await;
    let pod_names: Vec<String> = pods
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert!(
        pod_names.iter().all(|n| n.starts_with("data-storage-")),
        "{pod_names:?}"
    );
    eventually("status", || {
        let deploys = deploys.clone();
        async move {
            deploys
                .get("data-storage")
                .await
                .unwrap()
                .status
                .and_then(|s| s.ready_replicas)
                == Some(3)
        }
    })
    .await;

    let scale = deploys.get_scale("data-storage").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    let st = scale.status.unwrap();
    assert_eq!(
        (st.replicas, st.selector.as_deref()),
        (3, Some("app=data-storage"))
    );

    let s = deploys
        .patch_scale(
            "data-storage",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(0));
    assert_eq!(
        deploys
            .get("data-storage")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );
    eventually("no pods", || {
        let pods = pods.clone();
        let lp = lp.clone();
        async move { pods.list(&lp).await.unwrap().items.is_empty() }
    })
    .await;
    eventually("status at 0", || {
        let deploys = deploys.clone();
        async move {
            deploys
                .get("data-storage")
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.replicas.is_none())
        }
    })
    .await;
    let d = deploys.get("data-storage").await.unwrap();
    assert_eq!(d.metadata.generation, Some(2));

    let scale_apply = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "data-storage"}, "spec": {"replicas": 2}});
    deploys
        .patch_scale(
            "data-storage",
            &PatchParams::apply("lifeboat").force(),
            &Patch::Apply(scale_apply),
        )
        .await
        .unwrap();
    eventually("2 pods", || {
        let pods = pods.clone();
        let lp = lp.clone();
        async move { pods.list(&lp).await.unwrap().items.len() == 2 }
    })
    .await;
    let (code, reason, _) = api_error(
        deploys
            .patch_scale(
                "data-storage",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": -1}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let (code, _, _) = api_error(deploys.get_scale("absent").await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn custom_resources_after_establishment() {
    let api = ApiDouble::start_with(Options {
        established_delay: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let client = client_for(&api).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "remediationrequests.kubernaut.ai",
        &PatchParams::apply("lifeboat").force(),
        &Patch::Apply(crd()),
    )
    .await
    .unwrap();
    let ar = rr_resource();
    let rrs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    eventually("served", || {
        let rrs = rrs.clone();
        async move { rrs.list(&ListParams::default()).await.is_ok() }
    })
    .await;
    let obj = json!({"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest", "metadata": {"name": "rr-1"}, "spec": {"signal": "x", "n": 1}, "status": {"phase": "ignored"}});
    let created = rrs
        .patch(
            "rr-1",
            &PatchParams::apply("lifeboat").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"], json!({"signal": "x", "n": 1}));
    assert!(
        created.data.get("status").is_none(),
        "status goes through /status"
    );
    assert_eq!(created.metadata.generation, Some(1));
    // Unstructured lists keep apiVersion/kind on items.
    let raw = raw_get(
        &client,
        "/apis/kubernaut.ai/v1alpha1/namespaces/default/remediationrequests",
        None,
    )
    .await
    .unwrap();
    assert_eq!(raw["kind"], "RemediationRequestList");
    assert_eq!(raw["items"][0]["kind"], "RemediationRequest");
    // Strategic merge patch is refused for custom resources.
    let (code, _, _) = api_error(
        rrs.patch(
            "rr-1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 415);
    // Wrong apiVersion in the body.
    let bad = json!({"apiVersion": "kubernaut.ai/v9", "kind": "RemediationRequest", "metadata": {"name": "rr-2"}});
    let (code, _, _) = api_error(
        rrs.patch("rr-2", &PatchParams::apply("lifeboat"), &Patch::Apply(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    // Deleting the CRD removes its custom resources.
    crds.delete("remediationrequests.kubernaut.ai", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        api.objects()
            .iter()
            .all(|o| o["kind"] != "RemediationRequest")
    );
}

#[tokio::test]
async fn required_token_gives_401_to_others() {
    let api = ApiDouble::start_with(Options {
        required_token: Some("s3cret".into()),
        ..Options::default()
    })
    .await;
    let good = client_for(&api).await;
    good.apiserver_version().await.unwrap();
    let mut config = Config::new(api.url().parse().unwrap());
    config.auth_info.token = Some("wrong".to_string().into());
    let bad = Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(bad, "default");
    let (code, reason, _) = api_error(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn watch_streams_changes() {
    use futures::{StreamExt, TryStreamExt};
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = cms
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap();
    let mut stream = stream.boxed();
    api.insert(cm("default", "watched", json!({"a": "1"})));
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("watched")),
        other => panic!("{other:?}"),
    }
    api.delete("v1", "ConfigMap", Some("default"), "watched");
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
}

#[test]
fn serves_while_a_plain_test_blocks() {
    use std::io::{Read, Write};
    let api = ApiDouble::start_in_thread();
    api.insert(cm("blocking", "a", json!({"x": "y"})));
    let mut s = std::net::TcpStream::connect(api.addr()).unwrap();
    write!(s, "GET /api/v1/namespaces/blocking/configmaps/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"x\":\"y\""));
    // YAML apply over the raw wire.
    let body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: v\n";
    let mut s = std::net::TcpStream::connect(api.addr()).unwrap();
    write!(
        s,
        "PATCH /api/v1/namespaces/blocking/configmaps/b?fieldManager=t HTTP/1.1\r\nHost: x\r\nContent-Type: application/apply-patch+yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert_eq!(
        api.get("v1", "configmaps", Some("blocking"), "b").unwrap()["data"]["k"],
        "v"
    );
}

/// `fail_next`: exactly the next N matching requests fail, with the
/// fault's code, message and Retry-After (also as
/// `details.retryAfterSeconds`); then they are served again.
#[tokio::test]
async fn counted_faults_fail_the_next_n_matching_requests_only() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    api.insert(cm("default", "a", json!({"k": "v"})));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.fail_next(
        2,
        |r| r.verb == "get" && r.object_name().as_deref() == Some("a"),
        Fault::internal().with_message("etcdserver: leader changed"),
    );
    api.fail_next(1, |r| r.verb == "list", Fault::too_many_requests());
    assert_eq!(api.pending_faults(), 3);
    for _ in 0..2 {
        let (code, reason, message) = api_error(cms.get("a").await.unwrap_err());
        assert_eq!(
            (code, reason.as_str(), message.as_str()),
            (500, "InternalError", "etcdserver: leader changed")
        );
    }
    cms.get("a").await.unwrap();
    match cms.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 429);
            assert_eq!(s.details.unwrap().retry_after_seconds, 1);
        }
        other => panic!("{other:?}"),
    }
    let log = api.requests();
    let last = log.last().unwrap();
    assert_eq!(last.status, 429);
    cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(api.pending_faults(), 0);

    api.fail_next(usize::MAX, |r| r.verb == "get", Fault::unavailable());
    assert!(cms.get("a").await.is_err());
    api.clear_faults();
    assert_eq!(api.pending_faults(), 0);
    cms.get("a").await.unwrap();
}

/// PUT replaces the whole object — keys another manager added are gone —
/// with the body's resourceVersion as a precondition; a dry run answers
/// what would be stored without storing it; an identical PUT keeps the
/// resourceVersion.
#[tokio::test]
async fn put_replaces_whole_objects_with_preconditions_and_dry_runs() {
    let api = ApiDouble::start().await;
    let client = client_for(&api).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.patch(
        "x",
        &PatchParams::apply("lifeboat"),
        &Patch::Apply(cm("default", "x", json!({"k": "v"}))),
    )
    .await
    .unwrap();
    // Another manager adds a key.
    let live = cms
        .patch(
            "x",
            &PatchParams::apply("kubectl-edit"),
            &Patch::Apply(cm("default", "x", json!({"added": "later"}))),
        )
        .await
        .unwrap();
    assert_eq!(live.data.as_ref().unwrap().len(), 2);
    let rv = live.metadata.resource_version.clone().unwrap();

    let mut body: ConfigMap =
        serde_json::from_value(cm("default", "x", json!({"k": "v"}))).unwrap();
    body.metadata.resource_version = Some(rv.clone());
    let dry = cms
        .replace(
            "x",
            &PostParams {
                dry_run: true,
                field_manager: Some("lifeboat".into()),
            },
            &body,
        )
        .await
        .unwrap();
    assert_eq!(dry.data.unwrap().len(), 1);
    assert_eq!(
        cms.get("x").await.unwrap().metadata.resource_version,
        Some(rv.clone()),
        "a dry run stores nothing"
    );
    let put = cms
        .replace("x", &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(
        put.data.clone().unwrap(),
        [("k".to_string(), "v".to_string())].into()
    );
    assert_ne!(put.metadata.resource_version, Some(rv.clone()));
    // The old resourceVersion is stale now.
    let (code, _, _) = api_error(
        cms.replace("x", &PostParams::default(), &body)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    // The same content again: no new resourceVersion.
    body.metadata.resource_version = put.metadata.resource_version.clone();
    let same = cms
        .replace("x", &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        put.metadata.resource_version
    );
}
