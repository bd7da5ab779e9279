//! Secret references (`{env: VAR}`, `{file: PATH}`,
//! `{kubernetes_secret: {name, key, namespace}}`): how they are read from
//! the file (a secret written in place is refused without repeating it),
//! and how they resolve: every kind when, and only when, its secret is
//! used, afresh at each use ([`SecretRef::resolve`]), so that a command
//! that does not use a `kubernetes_secret` reference never contacts the
//! cluster for it, and the daemon takes a rotated Secret at its next use.
//! `kubernetes_secret` references are read through a [`SecretResolver`]
//! (owned by the command's context) that names the cluster and keeps the
//! connection, never a value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeboat_kube::client::ClusterOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::ConfigError;
/// A reference to a secret: exactly one of `env`, `file` or
/// `kubernetes_secret`. `Debug` shows the reference, never the value. A
/// secret written in place of a reference is refused without repeating it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// `{env: LIFEBOAT_PASSWORD}`
    Env(String),
    /// `{file: /etc/lifeboat/password}`: mode 0600 or stricter; one trailing
    /// newline is not part of the secret.
    File(PathBuf),
    /// `{kubernetes_secret: {name: postgresql-credentials, key: password}}`:
    /// read through the API at each use ([`SecretResolver`]).
    KubernetesSecret(KubernetesSecretRef),
}

/// A key of a Kubernetes Secret; the namespace defaults to the one Lifeboat
/// runs in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSecretRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Errors whose source line may hold a secret: shown without a snippet.
pub(super) const SECRET_IN_PLACE: &str = "secrets are not written in the configuration";
pub(super) const PASSWORD_IN_URL: &str = "carries a password";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        const VARIANTS: &[&str] = &["env", "file", "kubernetes_secret"];
        struct V;
        fn inline<E: Error>() -> E {
            E::custom(format!(
                "{SECRET_IN_PLACE}, only referenced: {{env: VAR}}, {{file: PATH}} or \
                 {{kubernetes_secret: {{name: N, key: K}}}}"
            ))
        }
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a secret reference: {env: VAR}, {file: PATH} or {kubernetes_secret: {name: N, key: K}}",
                )
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_i64<E: Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_u64<E: Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_bool<E: Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(inline())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(
                        "an empty secret reference; give one of env, file or kubernetes_secret",
                    ));
                };
                let r = match key.as_str() {
                    "env" => {
                        let var: String = map.next_value()?;
                        if var.trim().is_empty() {
                            return Err(A::Error::custom("env: names no environment variable"));
                        }
                        SecretRef::Env(var)
                    }
                    "file" => SecretRef::File(map.next_value()?),
                    "kubernetes_secret" => SecretRef::KubernetesSecret(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, VARIANTS)),
                };
                if let Some(more) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "a secret reference has exactly one of env, file or kubernetes_secret, not both {key} and {more}"
                    )));
                }
                Ok(r)
            }
        }
        d.deserialize_any(V)
    }
}

impl SecretRef {
    /// Reads the secret, afresh at each call (nothing is cached: a changed
    /// file, variable or Secret is taken at the next use); a
    /// `kubernetes_secret` reference is read from the cluster `resolver`
    /// names. Never log the result.
    pub async fn resolve(&self, resolver: &SecretResolver) -> Result<String, ConfigError> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) | Err(std::env::VarError::NotPresent) => {
                    Err(ConfigError::SecretEnvMissing { var: var.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(ConfigError::SecretEnvNotUnicode { var: var.clone() })
                }
            },
            SecretRef::File(path) => read_secret_file(path),
            SecretRef::KubernetesSecret(k) => {
                resolver
                    .read(k)
                    .await
                    .map_err(|detail| ConfigError::KubernetesSecret {
                        name: k.name.clone(),
                        key: k.key.clone(),
                        detail,
                    })
            }
        }
    }
}

/// Reads `kubernetes_secret` references from one cluster, given explicitly
/// (flags, else the configuration's `kubernetes:` section, else what
/// kubectl would infer: `Ctx::cluster_options`). It connects at the first
/// read, not before, and keeps the client for later reads (a failed
/// connection is tried again at the next read); it never keeps a Secret's
/// value. Clones share the client.
#[derive(Clone)]
pub struct SecretResolver {
    cluster: ClusterOptions,
    client: Arc<OnceCell<lifeboat_kube::Client>>,
}

impl fmt::Debug for SecretResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretResolver")
            .field("cluster", &self.cluster)
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl SecretResolver {
    /// A resolver for `cluster`; nothing is contacted until a read.
    pub fn new(cluster: ClusterOptions) -> Self {
        Self {
            cluster,
            client: Arc::new(OnceCell::new()),
        }
    }

    /// The value of `k` now. Err is a message for the user (no cluster, no
    /// such Secret or key, no permission), never holding a value.
    async fn read(&self, k: &KubernetesSecretRef) -> Result<String, String> {
        let client = self
            .client
            .get_or_try_init(|| lifeboat_kube::client::connect(&self.cluster))
            .await
            .map_err(|e| format!("{e:#}"))?;
        lifeboat_kube::secret::read_key(client, k.namespace.as_deref(), &k.name, &k.key)
            .await
            .map_err(|e| e.message)
    }
}

impl fmt::Display for SecretRef {
    /// `env LIFEBOAT_PASSWORD`, `file /etc/x`, `kubernetes secret ns/name key k`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env {v}"),
            SecretRef::File(p) => write!(f, "file {}", p.display()),
            SecretRef::KubernetesSecret(k) => match &k.namespace {
                Some(ns) => write!(f, "kubernetes secret {ns}/{} key {}", k.name, k.key),
                None => write!(f, "kubernetes secret {} key {}", k.name, k.key),
            },
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    use crate::secrets::{SecretFileError, read_secret_text};
    let shown = path.display().to_string();
    read_secret_text(path).map_err(|e| match e {
        SecretFileError::TooOpen { mode, .. } => {
            ConfigError::SecretFileTooOpen { path: shown, mode }
        }
        other => ConfigError::SecretFile {
            path: shown,
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;
    use crate::config::*;

    #[test]
    fn secrets_only_by_reference() {
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://kubernaut:hunter2@db/kubernaut\"}\n",
        );
        assert_eq!(location(&e).0, 5, "{e}");
        assert!(e.to_string().contains("carries a password"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        for url in ["postgresql://u@h/d?password=x", "host=h user=u password=x"] {
            assert!(PgUrl::parse(url).is_err(), "{url}");
        }
        for url in [
            "postgresql://u@h:5432/d",
            "postgresql:///d?host=/run/postgresql",
            "host=h user=u dbname=d",
        ] {
            PgUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        // A plain string is not a secret reference.
        for value in ["hunter2", "12345", "\"quoted secret\""] {
            let e = parse_err(&format!("repository: {{url: /r, password: {value}}}\n"));
            assert_eq!(location(&e).0, 1, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("only referenced"), "{msg}");
            assert!(!msg.contains(value.trim_matches('"')), "{msg}");
        }
        let e = parse_err("repository:\n  url: /r\n  password: {env: \"\"}\n");
        assert_eq!(location(&e).0, 3, "{e}");
        // Exactly one kind of reference.
        let e = parse_err("repository:\n  url: /r\n  password: {env: A, file: /b}\n");
        assert_eq!(location(&e).0, 3, "{e}");
        assert!(e.to_string().contains("exactly one"), "{e}");
        let e = parse_err("repository:\n  url: /r\n  password: {vault: x}\n");
        assert_eq!(location(&e).0, 3, "{e}");
        assert!(e.to_string().contains("vault"), "{e}");
        let e = parse_err(
            "repository:\n  url: /r\n  password:\n    kubernetes_secret: {name: n, key: k, nmespace: x}\n",
        );
        assert_eq!(location(&e), (4, 42), "{e}");
    }

    #[test]
    fn secret_references_parse() {
        let c = parse(
            "repository:\n  url: s3://bucket/prefix\n  password: {file: /etc/lifeboat/pw}\n  s3:\n    endpoint: http://127.0.0.1:9000\n    region: us-east-1\n    allow_http: true\n    access_key_id: {env: AWS_ACCESS_KEY_ID}\n    secret_access_key: {kubernetes_secret: {name: s3, key: secret}}\n",
            "<string>",
        )
        .unwrap();
        assert_eq!(
            c.repository.password,
            Some(SecretRef::File("/etc/lifeboat/pw".into()))
        );
        let s3 = c.repository.s3.unwrap();
        assert!(s3.allow_http);
        assert_eq!(
            s3.access_key_id,
            Some(SecretRef::Env("AWS_ACCESS_KEY_ID".into()))
        );
        assert_eq!(
            s3.secret_access_key.unwrap().to_string(),
            "kubernetes secret s3 key secret"
        );
    }

    /// A resolver for tests that read no `kubernetes_secret` reference (or
    /// that want one to fail): its kubeconfig does not exist.
    fn no_cluster() -> SecretResolver {
        SecretResolver::new(lifeboat_kube::client::ClusterOptions {
            kubeconfig: Some("/nonexistent/lifeboat-test-kubeconfig".into()),
            context: None,
        })
    }

    #[tokio::test]
    async fn secret_file_must_be_private() {
        let none = no_cluster();
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = SecretRef::File(path.clone());
        let e = r.resolve(&none).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        assert!(msg.contains("644"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(r.resolve(&none).await.unwrap(), "s3cret");
        // Only one trailing newline is stripped.
        std::fs::write(&path, "a b\n\n").unwrap();
        assert_eq!(r.resolve(&none).await.unwrap(), "a b\n");
        std::fs::write(&path, "").unwrap();
        assert!(
            r.resolve(&none)
                .await
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = SecretRef::File(dir.path().join("nope"));
        assert!(
            missing
                .resolve(&none)
                .await
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }

    #[tokio::test]
    async fn secret_env_and_kubernetes() {
        let none = no_cluster();
        let var = "LIFEBOAT_CONFIG_TEST_SECRET_THAT_IS_NOT_SET";
        let e = SecretRef::Env(var.into()).resolve(&none).await.unwrap_err();
        assert!(e.to_string().contains(var), "{e}");
        // PATH is always set; it stands in for a set variable.
        assert!(SecretRef::Env("PATH".into()).resolve(&none).await.is_ok());
        let e = SecretRef::KubernetesSecret(KubernetesSecretRef {
            name: "postgresql-credentials".into(),
            key: "password".into(),
            namespace: None,
        })
        .resolve(&none)
        .await
        .unwrap_err();
        // Without a cluster it cannot be read, and says which reference;
        // reading through the API is tested below and end to end in
        // tests/kube_cli.rs.
        let msg = e.to_string();
        assert!(
            msg.contains("postgresql-credentials") && msg.contains("cannot be read"),
            "{e}"
        );
    }

    /// A `kubernetes_secret` reference is read from the cluster the
    /// resolver names when, and each time, it is resolved: nothing before
    /// (making the resolver contacts nothing), a rotated Secret's new value
    /// at the next use, one connection for all reads; a missing key fails
    /// with the message (and the Secret's keys, never their values) that a
    /// command prints. Every reference site of the model resolves this way.
    #[tokio::test(flavor = "multi_thread")]
    async fn kubernetes_secret_references_are_read_at_each_use() {
        let api = kube_double::ApiDouble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        api.insert(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ns"}}));
        let secret = |a: &str| {
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "ns"},
                "stringData": {"a": a, "b": "value-b"}})
        };
        api.insert(secret("value-a\n"));
        api.clear_requests();
        let secret_gets = || {
            api.requests()
                .iter()
                .filter(|r| r.method == "GET" && r.path.contains("/secrets/"))
                .count()
        };
        let k =
            |key: &str| format!("{{kubernetes_secret: {{name: s, key: {key}, namespace: ns}}}}");
        let text = format!(
            "repository:\n  url: s3://b/p\n  password: {a}\n  s3:\n    access_key_id: {a}\n    secret_access_key: {b}\nserve:\n  token: {b}\nkubernetes:\n  kubeconfig: {kc}\nsources:\n  db:\n    kind: postgres\n    postgres: {{url: \"postgresql://u@h/d\", password: {a}}}\n    drill: {{scratch: {{url: \"postgresql://u@s/d\", password: {c}}}}}\n",
            a = k("a"),
            b = k("b"),
            c = k("c"),
            kc = kubeconfig.display(),
        );
        let c = parse(&text, "test.yaml").unwrap();
        // The context's resolver: the cluster of the `kubernetes:` section.
        let ctx = crate::context::Ctx::with_config(
            Default::default(),
            std::sync::Arc::new(crate::report::Log),
            Some(c.clone()),
        );
        let resolver = &ctx.secrets;
        assert_eq!(secret_gets(), 0, "nothing is read before a use");
        let repo = &c.repository;
        let s3 = repo.s3.as_ref().unwrap();
        let db = &c.sources["db"];
        let sites = [
            (&repo.password, "value-a"),
            (&s3.access_key_id, "value-a"),
            (&s3.secret_access_key, "value-b"),
            (&c.serve.as_ref().unwrap().token, "value-b"),
            (&db.postgres.as_ref().unwrap().password, "value-a"),
        ];
        for (n, (r, want)) in sites.iter().enumerate() {
            let r = r.as_ref().unwrap();
            assert_eq!(r.resolve(resolver).await.unwrap(), *want, "{r}");
            assert_eq!(secret_gets(), n + 1, "one read per use ({r})");
            assert!(
                !format!("{r:?}").contains(want),
                "Debug shows the value: {r:?}"
            );
        }
        assert!(!format!("{resolver:?}").contains("value-"), "{resolver:?}");

        // Rotated: the same reference through the same resolver gives the
        // new value at its next use.
        api.insert(secret("rotated-a"));
        let password = repo.password.as_ref().unwrap();
        assert_eq!(password.resolve(resolver).await.unwrap(), "rotated-a");
        // And through the context's own call site, twice, rotating between.
        let key_id = || async { ctx.s3_settings().await.unwrap().access_key_id.unwrap() };
        assert_eq!(key_id().await, "rotated-a");
        api.insert(secret("rotated-again"));
        assert_eq!(key_id().await, "rotated-again");

        let scratch = db.drill.as_ref().unwrap().scratch.as_ref().unwrap();
        let r = scratch.password.as_ref().unwrap();
        assert_eq!(r.to_string(), "kubernetes secret ns/s key c");
        let e = r.resolve(resolver).await.unwrap_err().to_string();
        assert!(
            e.contains("kubernetes_secret {name: s, key: c} cannot be read")
                && e.contains("its keys: a, b")
                && !e.contains("value-")
                && !e.contains("rotated-"),
            "{e}"
        );

        // No cluster: the reference says why, where it is used.
        let nowhere = SecretResolver::new(lifeboat_kube::client::ClusterOptions {
            kubeconfig: Some(dir.path().join("no-such-kubeconfig")),
            context: None,
        });
        let e = password.resolve(&nowhere).await.unwrap_err();
        assert!(e.to_string().contains("no-such-kubeconfig"), "{e}");
    }
}
