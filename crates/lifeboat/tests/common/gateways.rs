//! The regions' serving Deployments in the Kubernetes API test double (no
//! real API server can run here): one double stands for every region's
//! cluster, each region a namespace holding a `gateway` Deployment. Used by
//! the failover, fence and rejoin tests (`deployments:` in the config).

use std::path::Path;
use std::time::Duration;

use kube_double::{ApiDouble, Options};
use serde_json::{Value, json};

use super::Env;

/// The annotation a quiesce or a fence records the count in
/// (`lifeboat_kube::quiesce::ORIGINAL_REPLICAS`).
pub const ORIGINAL_REPLICAS: &str = "lifeboat.io/original-replicas";

pub struct Gateways {
    pub api: ApiDouble,
}

impl Gateways {
    /// The double with a `gateway` Deployment of `replicas` in each of
    /// `namespaces`; its kubeconfig at `env.path("kubeconfig")`, and
    /// `KUBECONFIG` pointed nowhere so only the configured one is used.
    pub fn start(env: &mut Env, namespaces: &[&str], replicas: i64) -> Gateways {
        env.envs
            .push(("KUBECONFIG".into(), "/nonexistent/kubeconfig".into()));
        Self::start_at(&env.path("kubeconfig"), namespaces, replicas)
    }

    /// [`Gateways::start`] with the kubeconfig at `kubeconfig`, for a test
    /// whose `Env` is made later (it must point `KUBECONFIG` nowhere itself).
    pub fn start_at(kubeconfig: &Path, namespaces: &[&str], replicas: i64) -> Gateways {
        let api = ApiDouble::start_in_thread_with(Options {
            pods_delay: Duration::from_millis(100),
            ..Options::default()
        });
        api.write_kubeconfig(kubeconfig).unwrap();
        for ns in namespaces {
            api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
            api.insert(Self::deployment(ns, replicas, None));
        }
        Gateways { api }
    }

    fn deployment(ns: &str, replicas: i64, recorded: Option<i64>) -> Value {
        let mut metadata = json!({"name": "gateway", "namespace": ns});
        if let Some(n) = recorded {
            metadata["annotations"] = json!({ ORIGINAL_REPLICAS: n.to_string() });
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "gateway"}},
                "template": {
                    "metadata": {"labels": {"app": "gateway"}},
                    "spec": {"containers": [{"name": "app", "image": "kubernaut/gateway"}]}
                }
            }
        })
    }

    /// The kubeconfig's path as the config's `kubernetes.kubeconfig`.
    pub fn kubeconfig(env: &Env) -> String {
        env.path("kubeconfig").display().to_string()
    }

    /// `ns`'s gateway as a GET answers it.
    pub fn get(&self, ns: &str) -> Value {
        self.api
            .get("apps/v1", "Deployment", Some(ns), "gateway")
            .expect("the gateway Deployment")
    }

    /// `ns`'s gateway's `spec.replicas`.
    pub fn replicas(&self, ns: &str) -> Option<i64> {
        self.get(ns)["spec"]["replicas"].as_i64()
    }

    /// `ns`'s gateway's recorded count, if any.
    pub fn recorded(&self, ns: &str) -> Option<String> {
        self.get(ns)["metadata"]["annotations"][ORIGINAL_REPLICAS]
            .as_str()
            .map(str::to_string)
    }

    /// What a fence leaves (`scale::fence_writers`): `ns`'s gateway at 0,
    /// `recorded` in the annotation. For tests where the fencing agent
    /// does not run (its region was lost whole).
    pub fn as_fenced(&self, ns: &str, recorded: i64) {
        self.api.insert(Self::deployment(ns, 0, Some(recorded)));
    }

    /// PATCHes of `ns`'s gateway through the scale subresource.
    pub fn scale_patches(&self, ns: &str) -> usize {
        let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/gateway/scale");
        self.api
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path == path)
            .count()
    }
}
