//! `backup kube`, `restore kube` and `export kube` end to end: the built
//! binary against the Kubernetes API **test double** (`kube-double`, an HTTP
//! server the tests own; no real API server can run here), through the real
//! `kube` client and a real local repository. Issue 4, must-holds 1–4 and 6;
//! issue 16: existing objects replaced (equal to the snapshot) by default,
//! `--existing update|skip`, and transient API errors retried.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use common::{Env, free_port};
use kube_double::{ApiDouble, Fault};
use serde_json::{Value, json};

const NS: &str = "kubernaut-system";
const PG_PASSWORD: &str = "pg-pass-7f3c1e9a2b";
const HMAC_KEY: &str = "hmac-key-d41d8cd98f00b204e9800998ecf8427e";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "remediationrequests.kubernaut.ai"},
        "spec": {
            "group": "kubernaut.ai",
            "scope": "Namespaced",
            "names": {"plural": "remediationrequests", "singular": "remediationrequest",
                      "kind": "RemediationRequest", "listKind": "RemediationRequestList",
                      "shortNames": ["rr"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                              "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

/// The Kubernaut objects of issue 4's first must-hold.
fn kubernaut_fixture(api: &ApiDouble, remediation_requests: usize) {
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"app.kubernetes.io/part-of": "kubernaut"}}}));
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rego-policies", "namespace": NS,
                     "labels": {"app.kubernetes.io/part-of": "kubernaut"}},
        "data": {"approval.rego": "package kubernaut.approval\n\ndefault allow := false\nallow if { input.environment != \"production\" }\n",
                 "remediation.rego": "package kubernaut.remediation\n\nmax_retries := 3\n"}}));
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubernaut-toolset-config", "namespace": NS,
                     "annotations": {"kubernaut.ai/owner": "sre"}},
        "data": {"toolsets.yaml": "kubernetes/core:\n  enabled: true\nprometheus/metrics:\n  enabled: true\n  url: http://prometheus:9090\n"}}));
    api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "postgresql-credentials", "namespace": NS},
        "type": "Opaque", "data": {"password": b64(PG_PASSWORD), "username": b64("kubernaut")}}));
    api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "datastorage-audit-hmac-key", "namespace": NS},
        "type": "Opaque", "data": {"key": b64(HMAC_KEY)}}));
    api.insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "data-storage", "namespace": NS, "labels": {"app": "data-storage"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "data-storage"}},
                 "template": {"metadata": {"labels": {"app": "data-storage"}},
                              "spec": {"containers": [{"name": "data-storage",
                                  "image": "quay.io/kubernaut/data-storage:v1.4.2",
                                  "ports": [{"containerPort": 8080}]}]}}}}));
    let mut crd = crd();
    crd["status"] = json!({"conditions": [
        {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]});
    api.insert(crd);
    for i in 0..remediation_requests {
        api.insert(json!({"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
            "metadata": {"name": format!("rr-{i:03}"), "namespace": NS,
                         "labels": {"kubernaut.ai/signal-type": if i % 2 == 0 { "prometheus" } else { "kubernetes-event" }}},
            "spec": {"signalFingerprint": format!("{:064x}", i * 7919),
                     "signalName": "HighMemoryUsage", "severity": "critical",
                     "targetResource": {"kind": "Deployment", "name": format!("app-{}", i % 10), "namespace": "prod"},
                     "firingTime": "2026-11-24T10:00:00Z"}}));
    }
}

const KINDS: &[&str] = &[
    "--kind",
    "configmaps",
    "--kind",
    "secrets",
    "--kind",
    "deployments",
    "--kind",
    "remediationrequests.kubernaut.ai",
];

/// What must survive a round trip: everything but server-managed fields.
fn essence(o: &Value) -> Value {
    let mut e = json!({});
    for k in ["apiVersion", "kind", "data", "spec", "type", "stringData"] {
        if let Some(v) = o.get(k) {
            e[k] = v.clone();
        }
    }
    for k in ["name", "labels", "annotations"] {
        if let Some(v) = o["metadata"].get(k) {
            e["metadata"][k] = v.clone();
        }
    }
    e
}

/// The fixture's objects in `ns`, by kind/name, as essences.
fn state(api: &ApiDouble, ns: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (av, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("apps/v1", "Deployment"),
        ("kubernaut.ai/v1alpha1", "RemediationRequest"),
    ] {
        for o in api.list(av, kind, Some(ns)) {
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            if name == "kube-root-ca.crt" {
                continue; // made by every cluster itself; not backed up
            }
            out.insert(format!("{kind}/{name}"), essence(&o));
        }
    }
    out
}

/// A fresh environment with an initialised repository, in which transient
/// Kubernetes API errors are retried for 2 s (30 s by default), so a fault
/// that lasts fails quickly.
fn kube_env() -> Env {
    let mut env = Env::init();
    env.envs
        .push(("LIFEBOAT_KUBE_RETRY_BUDGET".into(), "2s".into()));
    env
}

struct Cluster {
    api: ApiDouble,
    kubeconfig: PathBuf,
}

fn cluster(env: &Env, name: &str) -> Cluster {
    let api = ApiDouble::start_in_thread();
    let kubeconfig = env.path(&format!("{name}.kubeconfig"));
    api.write_kubeconfig(&kubeconfig).unwrap();
    Cluster { api, kubeconfig }
}

/// `dead.kubeconfig`: `api`'s kubeconfig with its server moved to a
/// closed port.
fn dead_kubeconfig(env: &Env, api: &ApiDouble) -> PathBuf {
    let dead = env.path("dead.kubeconfig");
    let port = free_port();
    std::fs::write(
        &dead,
        api.kubeconfig()
            .replace(&api.url(), &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    dead
}

fn with_cluster<'a>(c: &'a Cluster, args: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = args.to_vec();
    v.push("--kubeconfig");
    v.push(c.kubeconfig.to_str().unwrap());
    v
}

fn backup(env: &Env, c: &Cluster) -> Value {
    let mut args = vec!["--json", "backup", "kube", "--namespace", NS];
    args.extend_from_slice(KINDS);
    let out = env.ok(&with_cluster(c, &args));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn kubernaut_objects_round_trip_into_an_empty_cluster_and_into_a_mapped_namespace() {
    let env = kube_env();
    let src = cluster(&env, "src");
    kubernaut_fixture(&src.api, 100);
    let snap = backup(&env, &src);
    assert_eq!(snap["kube"]["objects"], 2 + 2 + 1 + 100 + 1 + 1, "{snap}"); // + CRD + Namespace
    assert_eq!(
        snap["kube"]["counts"]["remediationrequests.kubernaut.ai"],
        100
    );
    assert!(snap["kube"]["stripped"]["metadata.uid"].as_u64().unwrap() >= 106);
    assert!(
        snap["kube"]["skipped"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("kube-root-ca.crt")),
        "{snap}"
    );
    let want = state(&src.api, NS);
    assert_eq!(want.len(), 105);

    // Into an empty cluster: the CRD comes first and is waited for, so its
    // custom resources restore in the same run (must-hold 3).
    let dst = cluster(&env, "dst");
    assert!(
        dst.api
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "remediationrequests.kubernaut.ai"
            )
            .is_none()
    );
    let out = env.ok(&with_cluster(&dst, &["restore", "kube", "latest"]));
    assert!(out.contains("created"), "{out}");
    assert_eq!(state(&dst.api, NS), want);
    let crd = dst
        .api
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "remediationrequests.kubernaut.ai",
        )
        .unwrap();
    assert_eq!(
        crd["spec"],
        src.api
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "remediationrequests.kubernaut.ai"
            )
            .unwrap()["spec"]
    );
    // Every write was a server-side apply by field manager lifeboat.
    let writes: Vec<_> = dst
        .api
        .requests()
        .into_iter()
        .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"))
        .collect();
    assert!(!writes.is_empty());
    for w in &writes {
        assert_eq!(w.method, "PATCH", "{w:?}");
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{w:?}"
        );
        assert_eq!(
            w.param("fieldManager").as_deref(),
            Some("lifeboat"),
            "{w:?}"
        );
    }

    // Again into the same cluster: nothing changes (pods, which the double's
    // simulated controller makes for the Deployment, aside).
    let versions = |api: &ApiDouble| -> Vec<(String, Value)> {
        api.objects()
            .into_iter()
            .filter(|o| o["kind"] != "Pod")
            .map(|o| {
                let key = format!(
                    "{}/{}/{}",
                    o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]
                );
                (key, o["metadata"]["resourceVersion"].clone())
            })
            .collect()
    };
    // Let the double's simulated Deployment controller settle (pods, status).
    std::thread::sleep(std::time::Duration::from_secs(1));
    let before = versions(&dst.api);
    let out = env.ok(&with_cluster(&dst, &["restore", "kube", "latest"]));
    assert!(
        !out.contains("configured") && !out.contains("created"),
        "{out}"
    );
    assert_eq!(
        versions(&dst.api),
        before,
        "a re-restore changed objects:\n{out}"
    );

    // Drill into kubernaut-test: lands there, kubernaut-system untouched.
    let before: Vec<Value> = dst
        .api
        .objects()
        .into_iter()
        .filter(|o| o["metadata"]["namespace"] == NS)
        .collect();
    env.ok(&with_cluster(
        &dst,
        &[
            "restore",
            "kube",
            "latest",
            "--namespace-map",
            "kubernaut-system=kubernaut-test",
        ],
    ));
    let after: Vec<Value> = dst
        .api
        .objects()
        .into_iter()
        .filter(|o| o["metadata"]["namespace"] == NS)
        .collect();
    assert_eq!(
        before, after,
        "kubernaut-system changed during a mapped restore"
    );
    let mapped = state(&dst.api, "kubernaut-test");
    assert_eq!(mapped, want);
    let ns = dst
        .api
        .get("v1", "Namespace", None, "kubernaut-test")
        .unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "kubernaut"
    );
    // The server-set name label of the source namespace is not carried over.
    assert_ne!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "kubernaut-system"
    );
}

#[test]
fn no_secret_value_is_stored_or_printed_in_plaintext() {
    let env = kube_env();
    let src = cluster(&env, "src");
    kubernaut_fixture(&src.api, 3);
    let mut args = vec!["backup", "kube", "--namespace", NS];
    args.extend_from_slice(KINDS);
    let o = env.run(&with_cluster(&src, &args));
    assert!(o.status.success());
    let markers = [
        PG_PASSWORD.to_string(),
        HMAC_KEY.to_string(),
        b64(PG_PASSWORD),
        b64(HMAC_KEY),
    ];
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for f in env.repo_files() {
        let bytes = std::fs::read(&f).unwrap();
        for m in &markers {
            assert!(
                !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                "{m} in plaintext in {}",
                f.display()
            );
        }
    }
    // A dry run into a cluster whose Secret differs shows that it changes, never the value.
    let dst = cluster(&env, "dst");
    kubernaut_fixture(&dst.api, 0);
    dst.api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "postgresql-credentials", "namespace": NS},
        "type": "Opaque", "data": {"password": b64("rotated-since"), "username": b64("kubernaut")}}));
    let o = env.run(&with_cluster(
        &dst,
        &[
            "restore",
            "kube",
            "latest",
            "--dry-run",
            "--kind",
            "secrets",
        ],
    ));
    let dry = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{dry}");
    assert!(
        dry.contains("would change") && dry.contains("postgresql-credentials"),
        "{dry}"
    );
    for m in markers.iter().chain([b64("rotated-since")].iter()) {
        assert!(!printed.contains(m.as_str()), "backup printed {m}");
        assert!(!dry.contains(m.as_str()), "dry run printed {m}:\n{dry}");
    }
}

#[test]
fn one_refused_object_of_a_hundred_is_named_and_the_rest_are_applied() {
    let env = kube_env();
    let src = cluster(&env, "src");
    kubernaut_fixture(&src.api, 100);
    backup(&env, &src);
    let dst = cluster(&env, "dst");
    dst.api.set_fault(|r| {
        (r.verb == "patch" && r.object_name().as_deref() == Some("rr-042"))
            .then(|| Fault::invalid().with_message("spec.severity: Unsupported value"))
    });
    let o = env.run(&with_cluster(&dst, &["restore", "kube", "latest"]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("1 of") && stderr.contains("rr-042"),
        "{stderr}"
    );
    assert!(
        stdout.contains("FAILED") && stdout.contains("422"),
        "{stdout}"
    );
    let rrs = dst
        .api
        .list("kubernaut.ai/v1alpha1", "RemediationRequest", Some(NS));
    assert_eq!(rrs.len(), 99);
    assert!(rrs.iter().all(|o| o["metadata"]["name"] != "rr-042"));
    assert_eq!(state(&dst.api, NS).len(), 104);

    // --json reports every object, the failure with its reason.
    let o = env.run(&with_cluster(
        &dst,
        &["--json", "restore", "kube", "latest"],
    ));
    assert_eq!(o.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], "rr-042");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("Unsupported value")
    );
}

#[test]
fn export_then_restore_from_dir_equals_a_direct_restore() {
    let env = kube_env();
    let src = cluster(&env, "src");
    kubernaut_fixture(&src.api, 20);
    backup(&env, &src);
    let direct = cluster(&env, "direct");
    env.ok(&with_cluster(&direct, &["restore", "kube", "latest"]));

    let dir = env.path("export");
    let out = env.ok(&[
        "export",
        "kube",
        "latest",
        "--dir",
        dir.to_str().unwrap(),
        "--include-secrets",
    ]);
    assert!(out.contains("exported"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let secret = dir
        .join(NS)
        .join("secrets")
        .join("postgresql-credentials.yaml");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(dir.join(NS).join("configmaps").join("rego-policies.yaml"))
        .unwrap();
    assert!(
        text.starts_with("apiVersion: v1\nkind: ConfigMap\n"),
        "{text}"
    );

    let from_dir = cluster(&env, "fromdir");
    env.ok(&with_cluster(
        &from_dir,
        &["restore", "kube", "--from-dir", dir.to_str().unwrap()],
    ));
    assert_eq!(state(&from_dir.api, NS), state(&direct.api, NS));
    assert_eq!(state(&direct.api, NS), state(&src.api, NS));

    // Without --include-secrets no Secret is written.
    let dir2 = env.path("export-nosecrets");
    let out = env.ok(&["export", "kube", "latest", "--dir", dir2.to_str().unwrap()]);
    assert!(out.contains("2 Secrets left out"), "{out}");
    assert!(!dir2.join(NS).join("secrets").exists());
    // Never into a non-empty directory.
    env.fails(
        &["export", "kube", "latest", "--dir", dir2.to_str().unwrap()],
        2,
    );
}

#[test]
fn dry_run_changes_nothing_and_skip_leaves_existing_objects() {
    let env = kube_env();
    let src = cluster(&env, "src");
    kubernaut_fixture(&src.api, 5);
    backup(&env, &src);
    let dst = cluster(&env, "dst");
    dst.api
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    dst.api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rego-policies", "namespace": NS}, "data": {"approval.rego": "edited by hand"}}));
    let rv = dst.api.resource_version();
    let out = env.ok(&with_cluster(
        &dst,
        &["restore", "kube", "latest", "--dry-run"],
    ));
    assert_eq!(
        dst.api.resource_version(),
        rv,
        "the dry run changed the cluster"
    );
    assert!(
        out.contains("would change") && out.contains("-  approval.rego: edited by hand"),
        "{out}"
    );
    assert!(
        out.contains("would create") && out.contains("rr-004"),
        "{out}"
    );

    let out = env.ok(&with_cluster(
        &dst,
        &["restore", "kube", "latest", "--existing", "skip"],
    ));
    assert!(out.contains("skipped"), "{out}");
    let cm = dst
        .api
        .get("v1", "ConfigMap", Some(NS), "rego-policies")
        .unwrap();
    assert_eq!(cm["data"]["approval.rego"], "edited by hand");
    assert!(
        dst.api
            .get("v1", "ConfigMap", Some(NS), "kubernaut-toolset-config")
            .is_some()
    );
    env.ok(&with_cluster(
        &dst,
        &[
            "restore",
            "kube",
            "latest",
            "--kind",
            "configmap",
            "--name",
            "rego-policies",
        ],
    ));
    let cm = dst
        .api
        .get("v1", "ConfigMap", Some(NS), "rego-policies")
        .unwrap();
    assert_ne!(cm["data"]["approval.rego"], "edited by hand");
}

#[test]
fn single_object_backup_pagination_and_bad_input() {
    let env = kube_env();
    let src = cluster(&env, "src");
    kubernaut_fixture(&src.api, 0);
    for i in 0..1234 {
        src.api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("bulk-{i:05}"), "namespace": NS}, "data": {"i": i.to_string()}}));
    }
    // The seed's "back up one ConfigMap".
    let out = env.ok(&with_cluster(
        &src,
        &[
            "--json",
            "backup",
            "kube",
            "-n",
            NS,
            "--kind",
            "configmap",
            "--name",
            "rego-policies",
        ],
    ));
    let snap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(snap["kube"]["counts"]["configmaps"], 1, "{snap}");

    // All of them, in pages.
    src.api.clear_requests();
    let out = env.ok(&with_cluster(
        &src,
        &["--json", "backup", "kube", "-n", NS, "--kind", "configmaps"],
    ));
    let snap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(snap["kube"]["counts"]["configmaps"], 1236, "{snap}");
    let lists: Vec<_> = src
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/configmaps"))
        .collect();
    assert!(lists.len() >= 3, "{lists:?}");
    assert!(lists.iter().all(|r| r.param("limit").is_some()));
    assert!(lists.iter().skip(1).all(|r| r.param("continue").is_some()));

    // Bad input: clear errors, right exit codes, no snapshot.
    let n = env.snapshots().len();
    let err = env.fails(
        &with_cluster(&src, &["backup", "kube", "-n", NS, "--kind", "widgets"]),
        3,
    );
    assert!(err.contains("widgets"), "{err}");
    let err = env.fails(
        &with_cluster(
            &src,
            &[
                "backup",
                "kube",
                "-n",
                NS,
                "--kind",
                "configmap",
                "--name",
                "no-such-map",
            ],
        ),
        3,
    );
    assert!(err.contains("no-such-map"), "{err}");
    let err = env.fails(
        &with_cluster(&src, &["backup", "kube", "-n", "no-such-ns"]),
        3,
    );
    assert!(err.contains("no-such-ns"), "{err}");
    let err = env.fails(
        &with_cluster(&src, &["backup", "kube", "-n", NS, "-l", "a b=c"]),
        2,
    );
    assert!(err.contains("label selector"), "{err}");
    src.api
        .set_fault(|r| (r.verb == "list" && r.plural() == Some("secrets")).then(Fault::forbidden));
    let err = env.fails(&with_cluster(&src, &["backup", "kube", "-n", NS]), 6);
    assert!(err.contains("403") && err.contains("rbac"), "{err}");
    src.api
        .set_fault(|r| (r.verb == "list" && r.param("continue").is_some()).then(Fault::internal));
    env.fails(
        &with_cluster(&src, &["backup", "kube", "-n", NS, "--kind", "configmaps"]),
        1,
    );
    assert_eq!(env.snapshots().len(), n, "a failed backup left a snapshot");
    env.ok(&["check"]);

    // An unreachable cluster.
    let dead = dead_kubeconfig(&env, &src.api);
    let o = env.run(&[
        "backup",
        "kube",
        "-n",
        NS,
        "--kubeconfig",
        dead.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("cannot reach"), "{err}");
    // And a restore of a non-kube snapshot is refused.
    let stream = env.backup_bytes("stream", b"not objects");
    let id = stream["id"].as_str().unwrap();
    env.fails(&with_cluster(&src, &["restore", "kube", id]), 2);
}

#[test]
fn repository_password_from_a_kubernetes_secret_reference() {
    let mut env = Env::new();
    env.envs.clear(); // no LIFEBOAT_PASSWORD: the config's reference must be used
    env.envs
        .push(("LIFEBOAT_KUBE_RETRY_BUDGET".into(), "2s".into()));
    let c = cluster(&env, "c");
    c.api
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    c.api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lifeboat-repository", "namespace": NS},
        "data": {"password": b64("from-the-cluster\n")}}));
    let write_config = |key: &str| {
        let cfg = env.path("repo-secret.yaml");
        std::fs::write(
            &cfg,
            format!(
                "repository:\n  url: {}\n  password:\n    kubernetes_secret: {{name: lifeboat-repository, key: {key}, namespace: {NS}}}\nkubernetes:\n  kubeconfig: {}\n",
                env.repo,
                c.kubeconfig.display()
            ),
        )
        .unwrap();
    };
    let cfg = env.path("repo-secret.yaml");
    let cfg = cfg.to_str().unwrap();
    write_config("password");
    env.ok(&["--config", cfg, "init"]);
    env.ok(&["--config", cfg, "snapshots"]);
    // The same passphrase opens it from the environment: the trailing newline was dropped.
    let o = env
        .cmd(&["snapshots"])
        .env("LIFEBOAT_PASSWORD", "from-the-cluster")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    write_config("no-such-key");
    let err = env.fails(&["--config", cfg, "snapshots"], 2);
    assert!(
        err.contains("no-such-key") && err.contains("its keys: password"),
        "{err}"
    );
    assert!(!err.contains("from-the-cluster"), "{err}");
}

/// A `kubernetes_secret` reference is read where it is used, not when a
/// command starts: a command that does not use one (the repository secret
/// comes from LIFEBOAT_PASSWORD, the source is not touched) sends no request
/// for its Secret, and succeeds with the cluster unreachable; the same
/// command with the reference used reads the Secret, once per use.
#[test]
fn an_unused_kubernetes_secret_reference_is_not_read() {
    let env = Env::init(); // LIFEBOAT_PASSWORD set: it wins over repository.password
    let c = cluster(&env, "c");
    c.api
        .insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    c.api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lifeboat-repository", "namespace": NS},
        "data": {"password": b64(common::PASSWORD)}}));
    let write_config = |name: &str, kubeconfig: &std::path::Path| {
        let cfg = env.path(name);
        std::fs::write(
            &cfg,
            format!(
                "repository:
  url: {repo}
  password:
    kubernetes_secret: {{name: lifeboat-repository, key: password, namespace: {NS}}}
kubernetes:
  kubeconfig: {kc}
sources:
  db:
    kind: postgres
    postgres:
      url: \"postgresql://kubernaut@127.0.0.1:1/kubernaut\"
      password:
        kubernetes_secret: {{name: postgresql-credentials, key: password, namespace: {NS}}}
",
                repo = env.repo,
                kc = kubeconfig.display()
            ),
        )
        .unwrap();
        cfg
    };
    let secret_requests = || {
        c.api
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/secrets"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    };
    let cfg = write_config("unused.yaml", &c.kubeconfig);
    let cfg = cfg.to_str().unwrap();
    env.ok(&["--config", cfg, "snapshots"]);
    env.ok(&["--config", cfg, "check"]);
    assert_eq!(secret_requests(), Vec::<String>::new());

    // Unreachable: a command that does not use the references is not held
    // up by it, and does not fail.
    let dead = dead_kubeconfig(&env, &c.api);
    let dead_cfg = write_config("dead.yaml", &dead);
    env.ok(&["--config", dead_cfg.to_str().unwrap(), "snapshots"]);

    // Used (no LIFEBOAT_PASSWORD): read, once per use.
    let snapshots = |args: &[&str]| {
        let o = env
            .cmd(args)
            .env_remove("LIFEBOAT_PASSWORD")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    snapshots(&["--config", cfg, "snapshots"]);
    let read = format!("GET /api/v1/namespaces/{NS}/secrets/lifeboat-repository");
    assert_eq!(secret_requests(), std::slice::from_ref(&read));
    snapshots(&["--config", cfg, "snapshots"]);
    assert_eq!(secret_requests(), [read.clone(), read]);
}

// ---- drills of a kube source (`lifeboat drill --source NAME`) ----

const DRILL_NS: &str = "kubernaut-test";

/// A config with one kube source `cfg` backing up ConfigMaps and Secrets of
/// `namespaces`, drilled from kubernaut-system into kubernaut-test.
fn drill_config(env: &Env, c: &Cluster, namespaces: &[&str]) -> PathBuf {
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
kubernetes:
  kubeconfig: {kc}
sources:
  cfg:
    kind: kube
    kube: {{namespaces: [{ns}], kinds: [configmaps, secrets]}}
    drill:
      namespace_map: {{{NS}: {DRILL_NS}}}
",
        repo = env.repo,
        kc = c.kubeconfig.display(),
        ns = namespaces.join(", ")
    );
    let path = env.path("drill.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `lifeboat --config CFG ARGS…` expecting exit `code`; (stdout, stderr).
fn run_cfg(env: &Env, cfg: &std::path::Path, args: &[&str], code: i32) -> (String, String) {
    let mut a = vec!["--config", cfg.to_str().unwrap()];
    a.extend_from_slice(args);
    env.exits_with(&a, code)
}

/// A repository and a cluster holding the Kubernaut objects (without
/// RemediationRequests) and `extra`; the drill config for `namespaces`,
/// backed up once.
fn drill_setup(extra: Vec<Value>, namespaces: &[&str]) -> (Env, Cluster, PathBuf) {
    let env = kube_env();
    let c = cluster(&env, "c");
    kubernaut_fixture(&c.api, 0);
    for o in extra {
        c.api.insert(o);
    }
    let cfg = drill_config(&env, &c, namespaces);
    run_cfg(&env, &cfg, &["backup", "kube", "--source", "cfg"], 0);
    (env, c, cfg)
}

fn drill_json(env: &Env, cfg: &std::path::Path, extra: &[&str], code: i32) -> Value {
    let mut a = vec!["--json", "drill", "--source", "cfg"];
    a.extend_from_slice(extra);
    let (stdout, stderr) = run_cfg(env, cfg, &a, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn drill_step<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {d:#}"))
}

/// Every object of `ns` with its resourceVersion: any change shows.
fn raw(api: &ApiDouble, ns: &str) -> Vec<Value> {
    api.objects()
        .into_iter()
        .filter(|o| o["metadata"]["namespace"] == ns)
        .collect()
}

/// Names of the ConfigMaps and Secrets in `ns` (the cluster's own
/// kube-root-ca.crt aside).
fn config_names(api: &ApiDouble, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = ["ConfigMap", "Secret"]
        .iter()
        .flat_map(|k| api.list("v1", k, Some(ns)))
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    v.sort();
    v
}

fn deletes(api: &ApiDouble) -> Vec<String> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect()
}

#[test]
fn kube_drill_restores_into_the_drill_namespace_and_deletes_only_what_it_created() {
    // The drill namespace exists already (operators create it once, see
    // deploy/rbac.yaml), with an object of its own and an older copy of one
    // the snapshot holds.
    let (env, c, cfg) = drill_setup(
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DRILL_NS}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "unrelated", "namespace": DRILL_NS}, "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "rego-policies", "namespace": DRILL_NS}, "data": {"approval.rego": "old"}}),
        ],
        &[NS],
    );
    let system_before = raw(&c.api, NS);
    let system_state = state(&c.api, NS);
    assert_eq!(system_state.len(), 5, "{system_state:#?}"); // 2 ConfigMaps, 2 Secrets, the Deployment

    c.api.clear_requests();
    let d = drill_json(&env, &cfg, &[], 0);
    assert_eq!(d["ok"], true, "{d:#}");
    assert_eq!(d["source"], "cfg");
    assert_eq!(d["kind"], "kube");
    assert!(d["failure"].is_null(), "{d:#}");
    assert!(
        d["target"].as_str().unwrap().contains(DRILL_NS),
        "{}",
        d["target"]
    );
    let rto = d["rto_seconds"].as_f64().unwrap();
    let rpo = d["rpo_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 300.0, "rto {rto}");
    assert!((0.0..300.0).contains(&rpo), "rpo {rpo}");
    assert_eq!(drill_step(&d, "read objects")["ok"], true, "{d:#}");
    let restore = drill_step(&d, "restore");
    assert_eq!(restore["ok"], true, "{d:#}");
    assert!(
        restore["detail"].as_str().unwrap().contains("3 created"),
        "{restore}"
    );
    let cleanup = drill_step(&d, "cleanup");
    assert_eq!(cleanup["ok"], true, "{d:#}");
    let detail = cleanup["detail"].as_str().unwrap();
    assert!(
        detail.contains("deleted the 3 objects the drill created")
            && detail.contains("left alone 1")
            && detail.contains(&format!("{DRILL_NS} existed before the drill")),
        "{detail}"
    );
    // What the drill created is gone again; what was there before stays
    // (the older copy now holds the restored data: it was configured, not created).
    assert_eq!(
        config_names(&c.api, DRILL_NS),
        vec!["rego-policies".to_string(), "unrelated".to_string()]
    );
    assert!(c.api.get("v1", "Namespace", None, DRILL_NS).is_some());
    let mut del = deletes(&c.api);
    del.sort();
    assert_eq!(
        del,
        vec![
            format!("/api/v1/namespaces/{DRILL_NS}/configmaps/kubernaut-toolset-config"),
            format!("/api/v1/namespaces/{DRILL_NS}/secrets/datastorage-audit-hmac-key"),
            format!("/api/v1/namespaces/{DRILL_NS}/secrets/postgresql-credentials"),
        ]
    );
    // kubernaut-system untouched: every object, resourceVersion included.
    assert_eq!(raw(&c.api, NS), system_before);
    assert_eq!(state(&c.api, NS), system_state);

    // Without the drill namespace: the drill creates it, and deletes its
    // objects and then the namespace.
    c.api.delete("v1", "Namespace", None, DRILL_NS).unwrap();
    c.api.clear_requests();
    let d2 = drill_json(&env, &cfg, &[], 0);
    assert_eq!(d2["ok"], true, "{d2:#}");
    let detail = drill_step(&d2, "cleanup")["detail"].as_str().unwrap();
    assert_eq!(drill_step(&d2, "cleanup")["ok"], true, "{d2:#}");
    assert!(
        detail.contains("deleted the 4 objects the drill created")
            && detail.contains(&format!("deleted namespace {DRILL_NS}")),
        "{detail}"
    );
    let del = deletes(&c.api);
    assert_eq!(del.len(), 5, "{del:?}");
    assert_eq!(
        del.last().unwrap(),
        &format!("/api/v1/namespaces/{DRILL_NS}"),
        "objects first, then the namespace: {del:?}"
    );
    assert!(c.api.get("v1", "Namespace", None, DRILL_NS).is_none());
    assert!(config_names(&c.api, DRILL_NS).is_empty());
    assert_eq!(raw(&c.api, NS), system_before);

    // Both are recorded in the repository.
    let (out, _) = run_cfg(&env, &cfg, &["--json", "drills"], 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed:#}");
    for d in [&d, &d2] {
        assert!(ids.contains(&d["id"].as_str().unwrap()), "{listed:#}");
    }
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true && r["source"] == "cfg")
    );
}

#[test]
fn kube_drill_cleanup_refused_is_named_and_does_not_fail_the_drill() {
    let (env, c, cfg) = drill_setup(
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DRILL_NS}})],
        &[NS],
    );
    c.api.set_fault(|r| {
        (r.verb == "delete"
            && r.plural() == Some("secrets")
            && r.object_name().as_deref() == Some("postgresql-credentials"))
        .then(Fault::forbidden)
    });
    let d = drill_json(&env, &cfg, &[], 0);
    assert_eq!(d["ok"], true, "{d:#}");
    assert_eq!(drill_step(&d, "restore")["ok"], true, "{d:#}");
    let cleanup = drill_step(&d, "cleanup");
    assert_eq!(cleanup["ok"], false, "{d:#}");
    let detail = cleanup["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("secret {DRILL_NS}/postgresql-credentials"))
            && detail.contains("403")
            && detail.contains("deleted the 3 objects the drill created"),
        "{detail}"
    );
    assert_eq!(
        config_names(&c.api, DRILL_NS),
        vec!["postgresql-credentials".to_string()]
    );
}

#[test]
fn kube_drill_without_a_cluster_is_an_offline_dry_run() {
    let (env, c, cfg) = drill_setup(vec![], &[NS]);
    let dead = dead_kubeconfig(&env, &c.api);
    c.api.clear_requests();
    let d = drill_json(&env, &cfg, &["--kubeconfig", dead.to_str().unwrap()], 0);
    assert_eq!(d["ok"], true, "{d:#}");
    let target = d["target"].as_str().unwrap();
    assert!(
        target.contains("offline check") && target.contains("no cluster reachable"),
        "{target}"
    );
    let dry = drill_step(&d, "dry run");
    assert_eq!(dry["ok"], true, "{d:#}");
    let detail = dry["detail"].as_str().unwrap();
    assert!(
        detail.contains("dry run without a cluster")
            && detail.contains("4 objects")
            && detail.contains(DRILL_NS),
        "{detail}"
    );
    assert!(
        d["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "restore" && s["name"] != "cleanup"),
        "{d:#}"
    );
    assert!(d["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(d["rpo_seconds"].as_f64().unwrap() >= 0.0);
    assert!(
        c.api.requests().is_empty(),
        "the offline drill reached the cluster"
    );
    let (out, _) = run_cfg(&env, &cfg, &["drills"], 0);
    assert!(out.contains(&d["id"].as_str().unwrap()[..8]), "{out}");
}

#[test]
fn kube_drill_of_a_namespace_without_a_drill_namespace_fails_clearly() {
    let (env, c, cfg) = drill_setup(
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubernaut-apps"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app-settings", "namespace": "kubernaut-apps"}, "data": {"k": "v"}}),
        ],
        &[NS, "kubernaut-apps"],
    );
    let before: Vec<Value> = c.api.objects();
    c.api.clear_requests();
    let (stdout, stderr) = run_cfg(&env, &cfg, &["--json", "drill", "--source", "cfg"], 7);
    let d: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["ok"], false, "{d:#}");
    let failure = d["failure"].as_str().unwrap();
    for s in [failure, &*stderr] {
        assert!(
            s.contains("kubernaut-apps") && s.contains("drill.namespace_map"),
            "{s}"
        );
    }
    assert!(!failure.contains(&format!("{NS},")), "{failure}");
    // Nothing was written to the cluster.
    assert!(
        c.api
            .requests()
            .iter()
            .all(|r| matches!(r.method.as_str(), "GET" | "HEAD")),
        "{:?}",
        c.api.requests()
    );
    assert_eq!(c.api.objects(), before);
    // The failed drill is recorded too.
    let (out, _) = run_cfg(&env, &cfg, &["--json", "drills"], 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["ok"], false, "{listed:#}");
}

/// Issue 16: a key added to a ConfigMap (and a Secret) after the backup is
/// removed by the restore, which makes the objects equal to the snapshot;
/// the dry run says so, naming the keys. `--existing update` is the merge,
/// which keeps it. A 409 Conflict on the replace re-reads and retries.
#[test]
fn restore_replaces_existing_objects_and_update_merges() {
    let env = kube_env();
    let c = cluster(&env, "c");
    kubernaut_fixture(&c.api, 2);
    // The double's simulated controller makes the Deployment's pods and
    // status shortly after: wait until it has, so that the resourceVersion
    // below moves only when Lifeboat writes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c
        .api
        .get("apps/v1", "Deployment", Some(NS), "data-storage")
        .unwrap()["status"]["readyReplicas"]
        != 2
        || c.api.list("v1", "Pod", Some(NS)).len() != 2
    {
        assert!(std::time::Instant::now() < deadline, "the pods never came");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    backup(&env, &c);
    let want = state(&c.api, NS);

    // After the backup: another manager adds a key and a label to the
    // ConfigMap, changes one of its keys, and adds a key to a Secret.
    let mut cm = c
        .api
        .get("v1", "ConfigMap", Some(NS), "rego-policies")
        .unwrap();
    cm["data"]["extra.rego"] = json!("package added.later\n");
    cm["data"]["remediation.rego"] = json!("package kubernaut.remediation\n\nmax_retries := 9\n");
    cm["metadata"]["labels"]["edited-by"] = json!("hand");
    c.api.insert(cm);
    let mut secret = c
        .api
        .get("v1", "Secret", Some(NS), "postgresql-credentials")
        .unwrap();
    secret["data"]["added-later"] = json!(b64("later-secret-value-4b1d"));
    c.api.insert(secret);
    assert_ne!(state(&c.api, NS), want);

    // The dry run names what would be removed and changed, and changes nothing.
    let rv = c.api.resource_version();
    let dry = env.ok(&with_cluster(
        &c,
        &["restore", "kube", "latest", "--dry-run"],
    ));
    eprintln!("--- dry run:\n{dry}");
    assert_eq!(
        c.api.resource_version(),
        rv,
        "the dry run changed the cluster"
    );
    let block = |name: &str| -> String {
        let start = dry
            .find(&format!("/{name}\n"))
            .unwrap_or_else(|| panic!("{name} in the dry run: {dry}"));
        let line_start = dry[..start].rfind('\n').map_or(0, |i| i + 1);
        dry[line_start..]
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let rego = block("rego-policies");
    assert!(rego.starts_with("would change"), "{rego}");
    assert!(
        rego.contains(r#"changed data["remediation.rego"]"#)
            && rego.contains(r#"removed data["extra.rego"], metadata.labels.edited-by"#),
        "{rego}"
    );
    let pg = block("postgresql-credentials");
    assert!(
        pg.starts_with("would change") && pg.contains("removed data.added-later"),
        "{pg}"
    );
    assert!(
        !dry.contains("later-secret-value-4b1d") && !dry.contains(&b64("later-secret-value-4b1d"))
    );
    assert!(
        dry.contains("would not change") && dry.contains("datastorage-audit-hmac-key"),
        "{dry}"
    );

    // --existing update: the merge, which keeps what was added.
    let merged = env.ok(&with_cluster(
        &c,
        &[
            "restore",
            "kube",
            "latest",
            "--existing",
            "update",
            "--dry-run",
        ],
    ));
    assert!(
        merged.contains(r#"changed data["remediation.rego"]"#) && !merged.contains("removed"),
        "{merged}"
    );
    env.ok(&with_cluster(
        &c,
        &["restore", "kube", "latest", "--existing", "update"],
    ));
    let cm = c
        .api
        .get("v1", "ConfigMap", Some(NS), "rego-policies")
        .unwrap();
    assert_eq!(cm["data"]["extra.rego"], "package added.later\n");
    assert_eq!(cm["metadata"]["labels"]["edited-by"], "hand");
    assert_ne!(state(&c.api, NS), want);

    // The default, replace: equal to the snapshot, through a PUT carrying
    // the live resourceVersion; one 409 Conflict is re-read and retried.
    c.api.fail_next(
        1,
        |r| r.method == "PUT" && r.object_name().as_deref() == Some("rego-policies"),
        Fault::conflict(),
    );
    c.api.clear_requests();
    let out = env.ok(&with_cluster(&c, &["--json", "restore", "kube", "latest"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c.api.pending_faults(), 0);
    assert_eq!(state(&c.api, NS), want, "the objects equal the snapshot");
    let result = |name: &str| -> &Value {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
    };
    assert_eq!(
        result("rego-policies")["action"],
        "configured",
        "{report:#}"
    );
    assert_eq!(
        result("rego-policies")["changes"]["removed"],
        json!([r#"data["extra.rego"]"#, "metadata.labels.edited-by"]),
        "{report:#}"
    );
    assert_eq!(result("postgresql-credentials")["action"], "configured");
    assert_eq!(result("kubernaut-toolset-config")["action"], "unchanged");
    let puts: Vec<_> = c
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/configmaps/rego-policies"))
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, vec![409, 200], "re-read after the conflict");

    // Once equal, a restore changes nothing.
    let rv = c.api.resource_version();
    let again = env.ok(&with_cluster(&c, &["restore", "kube", "latest"]));
    assert!(
        !again.contains("configured") && !again.contains("created"),
        "{again}"
    );
    assert_eq!(c.api.resource_version(), rv, "{again}");
}

/// Issue 16: transient API errors during `backup kube` and `restore kube`
/// are retried: a 429 with Retry-After (waited for as asked) and a 500 on a
/// list page, a 503 on a replace. Lasting ones fail with what happened.
#[test]
fn transient_api_errors_are_retried_by_backup_and_restore() {
    let env = kube_env();
    let c = cluster(&env, "c");
    kubernaut_fixture(&c.api, 3);
    c.api.set_page_size_cap(Some(2));
    c.api.fail_next(
        1,
        |r| r.verb == "list" && r.plural() == Some("configmaps"),
        Fault::too_many_requests(),
    );
    c.api.fail_next(
        1,
        |r| r.verb == "list" && r.param("continue").is_some(),
        Fault::internal().with_message("etcdserver: leader changed"),
    );
    let mut args = vec!["backup", "kube", "--namespace", NS];
    args.extend_from_slice(KINDS);
    let o = env.run(&with_cluster(&c, &args));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(c.api.pending_faults(), 0);
    assert!(
        stderr.contains("retrying in 1000 ms"),
        "Retry-After honoured: {stderr}"
    );
    assert!(stderr.contains("etcdserver: leader changed"), "{stderr}");
    let want = state(&c.api, NS);

    let mut cm = c
        .api
        .get("v1", "ConfigMap", Some(NS), "rego-policies")
        .unwrap();
    cm["data"]["extra"] = json!("x");
    c.api.insert(cm);
    c.api
        .fail_next(2, |r| r.method == "PUT", Fault::unavailable());
    env.ok(&with_cluster(&c, &["restore", "kube", "latest"]));
    assert_eq!(c.api.pending_faults(), 0);
    assert_eq!(state(&c.api, NS), want);

    // A lasting failure: the object is named with the retries that ran out.
    let mut cm = c
        .api
        .get("v1", "ConfigMap", Some(NS), "rego-policies")
        .unwrap();
    cm["data"]["extra"] = json!("x");
    c.api.insert(cm);
    c.api.fail_next(
        usize::MAX,
        |r| r.method == "PUT" && r.object_name().as_deref() == Some("rego-policies"),
        Fault::unavailable(),
    );
    let (stdout, stderr) = env.exits_with(&with_cluster(&c, &["restore", "kube", "latest"]), 1);
    assert!(
        stdout.contains("FAILED")
            && stdout.contains("rego-policies")
            && stdout.contains("503")
            && stdout.contains("still failing after"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 of") && stderr.contains("failed"),
        "{stderr}"
    );
}
