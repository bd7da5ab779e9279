//! `deploy/`: every manifest deserialises into its Kubernetes type without
//! losing a field (k8s-openapi types; the Prometheus Operator's CRDs through
//! the structs below, which refuse unknown fields), the objects refer to
//! each other correctly, the ConfigMap carries `examples/kubernaut.yaml`
//! exactly, and every metric the alerts and the dashboard use is one the
//! daemon exports.

use crate::common;

use common::typed;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// The Prometheus Operator's CRDs: the fields the manifests use, nothing else.

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    match_names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    port: String,
    path: String,
    interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scrape_timeout: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: PrometheusRuleSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusRuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[derive(Default)]
struct Manifests {
    deployment: Option<Deployment>,
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    service_accounts: Vec<ServiceAccount>,
    service_monitors: Vec<ServiceMonitor>,
    rules: Vec<PrometheusRule>,
    roles: usize,
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy"))
        .expect("deploy/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs =
            serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!docs.is_empty(), "{file} holds no document");
        for d in &docs {
            match (d["apiVersion"].as_str(), d["kind"].as_str()) {
                (Some("apps/v1"), Some("Deployment")) => {
                    assert!(m.deployment.is_none(), "two Deployments");
                    m.deployment = Some(typed(d, &file));
                }
                (Some("v1"), Some("ConfigMap")) => m.config_maps.push(typed(d, &file)),
                (Some("v1"), Some("Service")) => m.services.push(typed(d, &file)),
                (Some("v1"), Some("ServiceAccount")) => m.service_accounts.push(typed(d, &file)),
                (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => {
                    typed::<Role>(d, &file);
                    m.roles += 1;
                }
                (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
                    typed::<RoleBinding>(d, &file);
                }
                (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                    typed::<ClusterRole>(d, &file);
                }
                (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                    typed::<ClusterRoleBinding>(d, &file);
                }
                (Some("monitoring.coreos.com/v1"), Some("ServiceMonitor")) => {
                    m.service_monitors.push(typed(d, &file))
                }
                (Some("monitoring.coreos.com/v1"), Some("PrometheusRule")) => {
                    m.rules.push(typed(d, &file))
                }
                other => panic!("{file}: unexpected document {other:?}"),
            }
        }
    }
    m
}

/// The metric names the daemon's metric modules define:
/// `crates/lifeboat-ops/src/daemon/metrics.rs`, for the region tasks
/// `crates/lifeboat-ops/src/daemon/regions/metrics.rs`, for WAL streaming
/// `crates/lifeboat-ops/src/daemon/wal/metrics.rs`.
fn exported_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in [
        "crates/lifeboat-ops/src/daemon/metrics.rs",
        "crates/lifeboat-ops/src/daemon/regions/metrics.rs",
        "crates/lifeboat-ops/src/daemon/wal/metrics.rs",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        names.extend(
            text.split('"')
                .filter(|s| {
                    s.starts_with("lifeboat_")
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(str::to_string),
        );
    }
    assert!(names.len() >= 15, "{names:?}");
    names
}

/// `lifeboat_…` identifiers in a PromQL expression.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("lifeboat_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn assert_exported(expr: &str, exported: &BTreeSet<String>, what: &str) {
    let found = metrics_in(expr);
    assert!(!found.is_empty(), "{what}: no lifeboat metric in {expr}");
    for name in found {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| exported.contains(*b)))
            .unwrap_or(&name);
        assert!(
            exported.contains(base),
            "{what}: {name} is not a metric the daemon exports"
        );
    }
}

#[test]
fn every_manifest_parses_into_its_type_and_they_fit_together() {
    let m = load();
    let dep = m.deployment.expect("a Deployment");
    let spec = dep.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();

    // The ServiceAccount is rbac.yaml's, not a copy.
    let sa = pod
        .service_account_name
        .as_deref()
        .expect("serviceAccountName");
    let sas: Vec<_> = m
        .service_accounts
        .iter()
        .filter(|s| s.metadata.name.as_deref() == Some(sa))
        .collect();
    assert_eq!(sas.len(), 1, "ServiceAccount {sa} defined once in deploy/");
    assert!(m.roles >= 1);
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "a standby is never Ready: a rolling update would wait forever"
    );

    // Non-root, read-only root filesystem, sized.
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u != 0));
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let res = c.resources.as_ref().unwrap();
    for which in [&res.requests, &res.limits] {
        let w = which.as_ref().expect("requests and limits");
        assert!(w.contains_key("cpu") && w.contains_key("memory"), "{w:?}");
    }
    assert_eq!(c.args.as_ref().unwrap()[0], "serve");

    // The config file comes from the ConfigMap, which is the example.
    let args = c.args.clone().unwrap();
    let config_path = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| config_path.starts_with(&format!("{}/", v.mount_path)))
        .expect("the config file's volume is mounted");
    let vol = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    let cm_name = vol.config_map.as_ref().unwrap().name.clone();
    let cm = m
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(cm_name.as_str()))
        .expect("the ConfigMap the Deployment mounts");
    let key = config_path.rsplit('/').next().unwrap();
    let config = &cm.data.as_ref().unwrap()[key];
    let example = std::fs::read_to_string(root().join("examples/kubernaut.yaml")).unwrap();
    assert_eq!(
        config, &example,
        "deploy/configmap.yaml must hold examples/kubernaut.yaml exactly"
    );

    // Every {env: VAR} of the configuration is set from a Secret.
    let env: BTreeMap<String, bool> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            let from_secret = e
                .value_from
                .as_ref()
                .is_some_and(|v| v.secret_key_ref.is_some());
            (e.name.clone(), from_secret)
        })
        .collect();
    let mut refs = 0;
    for line in config.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(i) = rest.find("{env: ") {
            let var = rest[i + 6..].split('}').next().unwrap().trim();
            assert_eq!(env.get(var), Some(&true), "{var} is not set from a Secret");
            refs += 1;
            rest = &rest[i + 6..];
        }
    }
    assert!(refs >= 4, "{refs}");

    // Longer than serve.grace_period, so the lease is released in time.
    let grace = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("grace_period: "))
        .and_then(|v| v.strip_suffix('m'))
        .and_then(|m| m.parse::<i64>().ok())
        .expect("serve.grace_period in minutes");
    assert!(pod.termination_grace_period_seconds.unwrap() > grace * 60);

    // Probes and ports: the Service and the ServiceMonitor reach them.
    let port = &c.ports.as_ref().unwrap()[0];
    let port_name = port.name.clone().unwrap();
    assert_eq!(port.container_port, 8080);
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
    }
    let svc = m.services.first().expect("a Service");
    let svc_spec = svc.spec.as_ref().unwrap();
    for (k, v) in svc_spec.selector.as_ref().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k}");
    }
    let svc_port = svc_spec.ports.as_ref().unwrap()[0].name.clone().unwrap();
    let sm = m.service_monitors.first().expect("a ServiceMonitor");
    assert_eq!(sm.spec.endpoints[0].port, svc_port);
    assert_eq!(sm.spec.endpoints[0].path, "/metrics");
    let svc_labels = svc.metadata.labels.as_ref().unwrap();
    for (k, v) in sm.spec.selector.match_labels.as_ref().unwrap() {
        assert_eq!(svc_labels.get(k), Some(v), "ServiceMonitor selector {k}");
    }
    assert_eq!(svc_port, port_name);

    // Alerts: RPO over objective, failures, drill overdue; real metric names.
    let exported = exported_metrics();
    let rules: Vec<&Rule> = m
        .rules
        .iter()
        .flat_map(|r| &r.spec.groups)
        .flat_map(|g| &g.rules)
        .collect();
    for needed in [
        "lifeboat_rpo_seconds",
        "lifeboat_backup_failures_total",
        "lifeboat_drill_last_success_timestamp_seconds",
    ] {
        assert!(
            rules.iter().any(|r| r.expr.contains(needed)),
            "no alert on {needed}"
        );
    }
    for r in &rules {
        assert_exported(&r.expr, &exported, &r.alert);
        assert!(r.labels.contains_key("severity"), "{}", r.alert);
        assert!(r.annotations.contains_key("summary"), "{}", r.alert);
    }
}

#[test]
fn grafana_dashboard_queries_exported_metrics() {
    let text = std::fs::read_to_string(root().join("deploy/grafana-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON");
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let exported = exported_metrics();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    let mut used = BTreeSet::new();
    for p in panels {
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{} has no targets", p["title"]));
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert_exported(expr, &exported, p["title"].as_str().unwrap());
            used.extend(metrics_in(expr));
        }
    }
    for m in [
        "lifeboat_rpo_seconds",
        "lifeboat_backups_total",
        "lifeboat_backup_failures_total",
        "lifeboat_repository_size_bytes",
    ] {
        assert!(used.contains(m), "the dashboard does not show {m}");
    }
}

/// Every Secret the Deployment mounts as files is mode 0400 (`defaultMode`
/// and every item's `mode`), and the daemon's user can read such a file: a
/// pod `fsGroup` turns 0400 into 0440, which Lifeboat refuses as
/// group-readable, and without it the files belong to root (uid 0). Today
/// the Deployment mounts no Secret (they come in by secretKeyRef and
/// kubernetes_secret references), which this also pins: mounting one is a
/// decision to take with these constraints in view (deploy/deployment.yaml).
#[test]
fn secrets_mounted_as_files_are_0400_and_readable_by_the_daemon() {
    let m = load();
    let dep = m.deployment.expect("a Deployment");
    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let mut secret_volumes = Vec::new();
    for v in pod.volumes.as_deref().unwrap_or_default() {
        let mut modes = Vec::new();
        if let Some(s) = &v.secret {
            modes.push(s.default_mode);
            modes.extend(s.items.iter().flatten().map(|i| i.mode));
        }
        if let Some(p) = &v.projected {
            for src in p.sources.iter().flatten() {
                if let Some(s) = &src.secret {
                    modes.push(p.default_mode);
                    modes.extend(s.items.iter().flatten().map(|i| i.mode));
                }
            }
        }
        if modes.is_empty() {
            continue;
        }
        secret_volumes.push(v.name.clone());
        for mode in modes.into_iter().flatten() {
            assert_eq!(mode, 0o400, "volume {}: mode {mode:o}", v.name);
        }
        let explicit = v
            .secret
            .as_ref()
            .and_then(|s| s.default_mode)
            .or(v.projected.as_ref().and_then(|p| p.default_mode));
        assert_eq!(
            explicit,
            Some(0o400),
            "volume {} must set defaultMode: 0400 (Kubernetes' default is 0644)",
            v.name
        );
    }
    let sc = pod.security_context.as_ref();
    if !secret_volumes.is_empty() {
        assert!(
            sc.and_then(|s| s.fs_group).is_none(),
            "{secret_volumes:?}: with fsGroup the kubelet makes Secret files 0440, refused as group-readable"
        );
        let uid = pod
            .containers
            .iter()
            .filter_map(|c| c.security_context.as_ref().and_then(|s| s.run_as_user))
            .chain(sc.and_then(|s| s.run_as_user))
            .next();
        assert_eq!(
            uid,
            Some(0),
            "{secret_volumes:?}: Secret files belong to root; a 0400 one is unreadable by uid {uid:?}"
        );
    }
    assert!(
        secret_volumes.is_empty(),
        "the Deployment passes secrets by secretKeyRef and kubernetes_secret references; \
         update this test and deploy/deployment.yaml's comment if that changes: {secret_volumes:?}"
    );
}
