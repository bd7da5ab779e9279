//! Secret references (`{env: VAR}`, `{file: PATH}`,
//! `{kubernetes_secret: {name, key, namespace}}`): how they are read from
//! the file (a secret written in place is refused without repeating it),
//! and how they resolve. `env` and `file` references resolve when used;
//! `kubernetes_secret` ones are read from the cluster by [`resolve_all`],
//! given the cluster explicitly, when a command's context is created, so
//! that [`SecretRef::resolve`] stays synchronous for its callers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use lifeboat_kube::client::ClusterOptions;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Config, ConfigError};
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
    /// `{kubernetes_secret: {name: postgresql-credentials, key: password}}`,
    /// as written: not read yet ([`resolve_all`] reads it).
    KubernetesSecret(KubernetesSecretRef),
    /// A `kubernetes_secret` reference after [`resolve_all`] tried to read
    /// it: the reference as written and what the read gave. Never in the
    /// file; serialized as the reference.
    #[serde(rename = "kubernetes_secret", serialize_with = "serialize_read")]
    KubernetesSecretRead(KubernetesSecretRef, ReadSecret),
}

/// What reading a `kubernetes_secret` reference gave: the value, or why it
/// could not be read (a message for the user, reported only where the
/// secret is used, so that a command that does not need it is not stopped
/// by it). `Debug` never shows the value; it is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct ReadSecret(Result<Zeroizing<String>, String>);

impl fmt::Debug for ReadSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(_) => f.write_str("ReadSecret(<hidden>)"),
            Err(e) => f.debug_tuple("ReadSecret").field(&Err::<(), _>(e)).finish(),
        }
    }
}

fn serialize_read<S: serde::Serializer>(
    k: &KubernetesSecretRef,
    _: &ReadSecret,
    s: S,
) -> Result<S::Ok, S::Error> {
    k.serialize(s)
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
    /// Reads the secret. Never log the result.
    pub fn resolve(&self) -> Result<String, ConfigError> {
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
            SecretRef::KubernetesSecret(k) => Err(k.unreadable(
                "kubernetes_secret references are read from the cluster when the command starts \
                 (config::secrets::resolve_all), and this one was not"
                    .into(),
            )),
            SecretRef::KubernetesSecretRead(k, ReadSecret(read)) => match read {
                Ok(value) => Ok(value.to_string()),
                Err(detail) => Err(k.unreadable(detail.clone())),
            },
        }
    }
}

impl KubernetesSecretRef {
    fn unreadable(&self, detail: String) -> ConfigError {
        ConfigError::KubernetesSecret {
            name: self.name.clone(),
            key: self.key.clone(),
            detail,
        }
    }
}

/// Where `kubernetes_secret` references are read from, given explicitly.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// The cluster: flags, else the configuration's `kubernetes:` section,
    /// else what kubectl would infer (`Ctx::cluster_options`).
    pub cluster: ClusterOptions,
}

/// Reads every `kubernetes_secret` reference of `config` from the cluster
/// (each Secret key once), turning it into
/// [`SecretRef::KubernetesSecretRead`], so that [`SecretRef::resolve`]
/// answers without I/O. Connects only when there is such a reference. A
/// failure (no cluster, no such Secret or key, no permission) is kept in
/// the reference and reported, with the message it always had, where the
/// secret is used: a command that does not use it is not stopped by it.
pub async fn resolve_all(config: &mut Config, sources: &SecretSources) {
    let mut refs = config.secret_refs_mut();
    refs.retain(|r| matches!(r, SecretRef::KubernetesSecret(_)));
    if refs.is_empty() {
        return;
    }
    let client = lifeboat_kube::client::connect(&sources.cluster)
        .await
        .map_err(|e| format!("{e:#}"));
    type Key = (Option<String>, String, String);
    let mut read: BTreeMap<Key, Result<Zeroizing<String>, String>> = BTreeMap::new();
    for r in refs {
        let SecretRef::KubernetesSecret(k) = r else {
            continue;
        };
        let k = k.clone();
        let id = (k.namespace.clone(), k.name.clone(), k.key.clone());
        let outcome = match read.get(&id) {
            Some(o) => o.clone(),
            None => {
                let o = match &client {
                    Ok(c) => {
                        lifeboat_kube::secret::read_key(c, k.namespace.as_deref(), &k.name, &k.key)
                            .await
                            .map(Zeroizing::new)
                            .map_err(|e| e.message)
                    }
                    Err(e) => Err(e.clone()),
                };
                read.insert(id, o.clone());
                o
            }
        };
        *r = SecretRef::KubernetesSecretRead(k, ReadSecret(outcome));
    }
}

impl Config {
    /// Every secret reference in the configuration. A new `SecretRef` field
    /// of the model must be added here, or its `kubernetes_secret`
    /// references are never read (the test
    /// `every_kubernetes_secret_reference_is_read` lists them all).
    fn secret_refs_mut(&mut self) -> Vec<&mut SecretRef> {
        let mut refs = Vec::new();
        let repo = &mut self.repository;
        refs.extend(repo.password.as_mut());
        if let Some(s3) = &mut repo.s3 {
            refs.extend(s3.access_key_id.as_mut());
            refs.extend(s3.secret_access_key.as_mut());
        }
        if let Some(serve) = &mut self.serve {
            refs.extend(serve.token.as_mut());
        }
        for s in self.sources.values_mut() {
            if let Some(pg) = &mut s.postgres {
                refs.extend(pg.password.as_mut());
            }
            if let Some(scratch) = s.drill.as_mut().and_then(|d| d.scratch.as_mut()) {
                refs.extend(scratch.password.as_mut());
            }
        }
        refs
    }
}

impl fmt::Display for SecretRef {
    /// `env LIFEBOAT_PASSWORD`, `file /etc/x`, `kubernetes secret ns/name key k`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env {v}"),
            SecretRef::File(p) => write!(f, "file {}", p.display()),
            SecretRef::KubernetesSecret(k) | SecretRef::KubernetesSecretRead(k, _) => {
                match &k.namespace {
                    Some(ns) => write!(f, "kubernetes secret {ns}/{} key {}", k.name, k.key),
                    None => write!(f, "kubernetes secret {} key {}", k.name, k.key),
                }
            }
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

    #[test]
    fn secret_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = SecretRef::File(path.clone());
        let e = r.resolve().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        assert!(msg.contains("644"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(r.resolve().unwrap(), "s3cret");
        // Only one trailing newline is stripped.
        std::fs::write(&path, "a b\n\n").unwrap();
        assert_eq!(r.resolve().unwrap(), "a b\n");
        std::fs::write(&path, "").unwrap();
        assert!(r.resolve().unwrap_err().to_string().contains("empty"));
        let missing = SecretRef::File(dir.path().join("nope"));
        assert!(missing.resolve().unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn secret_env_and_kubernetes() {
        let var = "LIFEBOAT_CONFIG_TEST_SECRET_THAT_IS_NOT_SET";
        let e = SecretRef::Env(var.into()).resolve().unwrap_err();
        assert!(e.to_string().contains(var), "{e}");
        // PATH is always set; it stands in for a set variable.
        assert!(SecretRef::Env("PATH".into()).resolve().is_ok());
        let e = SecretRef::KubernetesSecret(KubernetesSecretRef {
            name: "postgresql-credentials".into(),
            key: "password".into(),
            namespace: None,
        })
        .resolve()
        .unwrap_err();
        // Outside a running program (no runtime) it cannot be read, and says
        // which reference; reading through the API is tested end to end in
        // tests/kube_cli.rs.
        let msg = e.to_string();
        assert!(
            msg.contains("postgresql-credentials") && msg.contains("cannot be read"),
            "{e}"
        );
    }

    /// Every secret reference of the model is read from the cluster it is
    /// given, each Secret key once; a missing key fails where it is used,
    /// with the message (and the Secret's keys, never their values) that a
    /// command prints.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_kubernetes_secret_reference_is_read() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let api = kube_double::ApiDouble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        api.insert(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ns"}}));
        api.insert(serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns"},
            "stringData": {"a": "value-a\n", "b": "value-b"}}));
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        api.set_fault(move |r| {
            if r.resource
                .as_ref()
                .is_some_and(|_| r.path.contains("/secrets/"))
            {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            None
        });
        let k =
            |key: &str| format!("{{kubernetes_secret: {{name: s, key: {key}, namespace: ns}}}}");
        let text = format!(
            "repository:\n  url: s3://b/p\n  password: {a}\n  s3:\n    access_key_id: {a}\n    secret_access_key: {b}\nserve:\n  token: {b}\nsources:\n  db:\n    kind: postgres\n    postgres: {{url: \"postgresql://u@h/d\", password: {a}}}\n    drill: {{scratch: {{url: \"postgresql://u@s/d\", password: {c}}}}}\n",
            a = k("a"),
            b = k("b"),
            c = k("c"),
        );
        let mut c = parse(&text, "test.yaml").unwrap();
        let unread = c.clone();
        let sources = SecretSources {
            cluster: lifeboat_kube::client::ClusterOptions {
                kubeconfig: Some(kubeconfig),
                context: None,
            },
        };
        resolve_all(&mut c, &sources).await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            3,
            "each Secret key is read once"
        );
        let repo = &c.repository;
        let s3 = repo.s3.as_ref().unwrap();
        let db = &c.sources["db"];
        for (r, want) in [
            (&repo.password, "value-a"),
            (&s3.access_key_id, "value-a"),
            (&s3.secret_access_key, "value-b"),
            (&c.serve.as_ref().unwrap().token, "value-b"),
            (&db.postgres.as_ref().unwrap().password, "value-a"),
        ] {
            let r = r.as_ref().unwrap();
            assert_eq!(r.resolve().unwrap(), want, "{r}");
            assert!(
                !format!("{r:?}").contains(want),
                "Debug shows the value: {r:?}"
            );
        }
        let scratch = db.drill.as_ref().unwrap().scratch.as_ref().unwrap();
        let r = scratch.password.as_ref().unwrap();
        assert_eq!(r.to_string(), "kubernetes secret ns/s key c");
        let e = r.resolve().unwrap_err().to_string();
        assert!(
            e.contains("kubernetes_secret {name: s, key: c} cannot be read")
                && e.contains("its keys: a, b")
                && !e.contains("value-"),
            "{e}"
        );

        // No cluster: the reference says why, where it is used.
        let mut c = unread;
        let nowhere = SecretSources {
            cluster: lifeboat_kube::client::ClusterOptions {
                kubeconfig: Some(dir.path().join("no-such-kubeconfig")),
                context: None,
            },
        };
        resolve_all(&mut c, &nowhere).await;
        let e = c
            .repository
            .password
            .as_ref()
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("no-such-kubeconfig"), "{e}");
    }
}
