//! What every flow needs: where the repository is, how to open it, the
//! configuration, and whom to tell about progress. Flags win over the
//! environment, which wins over the configuration file.

use std::sync::Arc;

use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::object::{S3Settings, open_url, open_url_create};
use lifeboat_repo::storage::retry::{RetryPolicy, Retrying};
use lifeboat_repo::{Repository, Secret};

use crate::config::{self, Config};
use crate::error::{Result, usage};
use crate::report::Reporter;
use crate::secrets;

/// Where the configuration file is looked for when none is given.
pub const DEFAULT_CONFIG: &str = "lifeboat.yaml";

/// The options every command takes, as the CLI's flags and environment
/// gave them (the daemon and tests fill them in themselves).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Configuration file [default: ./lifeboat.yaml when it exists].
    pub config: Option<std::path::PathBuf>,
    /// Repository URL, winning over the configuration's.
    pub repo: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// `--json`: exactly one JSON document on standard output.
    pub json: bool,
    /// No progress output.
    pub quiet: bool,
    /// `--retry-lock DURATION`, unparsed.
    pub retry_lock: Option<String>,
}

pub struct Ctx {
    pub global: Options,
    /// Where flows narrate and show progress.
    pub reporter: Arc<dyn Reporter>,
    /// The configuration file, when one was given or `./lifeboat.yaml` exists.
    pub config: Option<Config>,
    /// Reads the configuration's secret references where they are used,
    /// from the cluster [`Ctx::cluster_options`] names (`(None, None)`:
    /// the configuration's `kubernetes:` section, else what kubectl would
    /// infer). Connects only when a `kubernetes_secret` reference is used.
    pub secrets: config::SecretResolver,
}

impl Ctx {
    /// Loads the configuration (when there is one). No secret is read
    /// here: each is read where it is used ([`Ctx::resolve`]).
    pub async fn new(global: Options, reporter: Arc<dyn Reporter>) -> Result<Self> {
        let path = match &global.config {
            Some(p) => Some(p.clone()),
            None => {
                let p = std::path::PathBuf::from(DEFAULT_CONFIG);
                p.exists().then_some(p)
            }
        };
        let config = match path {
            Some(p) => Some(config::load(&p).map_err(|e| usage(e.to_string()))?),
            None => None,
        };
        let ctx = Self::with_config(global, reporter, config);
        if ctx.global.config.is_none()
            && let Some(c) = &ctx.config
        {
            eprintln!("{}", ctx.implicit_config_note(c));
        }
        Ok(ctx)
    }

    /// A context for a configuration already loaded (or none), with a
    /// secret resolver for the cluster it names.
    pub fn with_config(
        global: Options,
        reporter: Arc<dyn Reporter>,
        config: Option<Config>,
    ) -> Self {
        let secrets = config::SecretResolver::new(cluster_of(config.as_ref(), None, None));
        Self {
            global,
            reporter,
            config,
            secrets,
        }
    }

    /// Reads the secret `r` refers to, now (afresh at each call), as a
    /// usage error when it cannot be read. Never log the result.
    pub async fn resolve(&self, r: &config::SecretRef) -> Result<String> {
        r.resolve(&self.secrets)
            .await
            .map_err(|e| usage(e.to_string()))
    }

    /// Names a `./lifeboat.yaml` that was picked up without --config or
    /// LIFEBOAT_CONFIG, and the repository this command therefore uses, so
    /// that a command run in the wrong directory does not touch a repository
    /// the user did not mean. Printed on stderr once per command, also with
    /// --quiet and --json (it is a safety notice, not progress; stdout stays
    /// clean).
    fn implicit_config_note(&self, c: &Config) -> String {
        let file = std::fs::canonicalize(DEFAULT_CONFIG)
            .unwrap_or_else(|_| std::path::PathBuf::from(DEFAULT_CONFIG));
        let repo = match &self.global.repo {
            Some(r) => format!(
                "repository {r} (from --repo or LIFEBOAT_REPO; the file's repository.url {} is not used)",
                c.repository.url
            ),
            None => format!("repository {}", c.repository.url),
        };
        format!(
            "lifeboat: using the configuration file {} found in the current directory (no --config or LIFEBOAT_CONFIG given): {repo}",
            file.display()
        )
    }

    /// The configured prune grace period, if any.
    pub fn prune_grace(&self) -> Option<std::time::Duration> {
        self.config
            .as_ref()
            .and_then(|c| c.repository.prune_grace)
            .and_then(|d| d.to_std().ok())
    }

    /// Which Kubernetes cluster: flags first, then the config's `kubernetes:`
    /// section, then what kubectl would infer.
    pub fn cluster_options(
        &self,
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> lifeboat_kube::client::ClusterOptions {
        cluster_of(self.config.as_ref(), kubeconfig, context)
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    /// Where flows narrate and show progress.
    pub fn reporter(&self) -> &dyn Reporter {
        self.reporter.as_ref()
    }

    pub fn repo_url(&self) -> Result<String> {
        if let Some(r) = &self.global.repo {
            return Ok(r.clone());
        }
        if let Some(c) = &self.config {
            return Ok(c.repository.url.as_str().to_string());
        }
        Err({
            usage(
                "no repository given: pass --repo URL, set LIFEBOAT_REPO, or set repository.url in the config file",
            )
        })
    }

    /// S3 settings from the config; unset values fall back to the standard
    /// AWS environment variables inside the storage layer.
    pub async fn s3_settings(&self) -> Result<S3Settings> {
        self.resolve_s3(self.config.as_ref().and_then(|c| c.repository.s3.as_ref()))
            .await
    }

    /// S3 settings from a configuration's `s3:` section (the repository's,
    /// or a region's copy), its credential references read now; unset: the
    /// standard AWS environment.
    pub async fn resolve_s3(&self, s3: Option<&config::S3Config>) -> Result<S3Settings> {
        let Some(s3) = s3 else {
            return Ok(S3Settings::default());
        };
        let access_key_id = match &s3.access_key_id {
            Some(r) => Some(self.resolve(r).await?),
            None => None,
        };
        let secret_access_key = match &s3.secret_access_key {
            Some(r) => Some(self.resolve(r).await?),
            None => None,
        };
        Ok(S3Settings {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            access_key_id,
            secret_access_key,
            allow_http: s3.allow_http,
        })
    }

    /// The repository secret, from the first of: --key-file, --password-file,
    /// LIFEBOAT_PASSWORD, the config's `repository.key_file`, the config's
    /// `repository.password` reference.
    pub async fn secret(&self) -> Result<Secret> {
        if let Some(p) = &self.global.key_file {
            return secrets::key_from_file(p);
        }
        if let Some(p) = &self.global.password_file {
            return secrets::passphrase_from_file(p);
        }
        if let Some(s) = secrets::passphrase_from_env("LIFEBOAT_PASSWORD") {
            return Ok(s);
        }
        if let Some(repo) = self.config.as_ref().map(|c| &c.repository) {
            if let Some(p) = &repo.key_file {
                return secrets::key_from_file(p);
            }
            if let Some(r) = &repo.password {
                let p = self.resolve(r).await?;
                return Ok(Secret::Passphrase(p));
            }
        }
        Err(usage(
            "no repository secret: set LIFEBOAT_PASSWORD, or pass --password-file FILE or --key-file FILE",
        ))
    }

    pub async fn storage(&self, create: bool) -> Result<Arc<dyn Storage>> {
        let url = self.repo_url()?;
        let s3 = self.s3_settings().await?;
        let inner = if create {
            open_url_create(&url, &s3).map_err(crate::Error::from)
        } else {
            open_url(&url, &s3).map_err(not_found_as_repo)
        }?;
        Ok(Retrying::wrap(inner, RetryPolicy::default()))
    }

    pub async fn open(&self) -> Result<Repository> {
        let storage = self.storage(false).await?;
        let secret = self.secret().await?;
        let lock_options = lifeboat_repo::lock::LockOptions {
            retry: self.retry_lock()?,
            ..Default::default()
        };
        let object_lock = self.object_lock().await?;
        Ok(Repository::open(storage, &secret)
            .await?
            .with_lock_options(lock_options)
            .with_append_only(self.append_only())
            .with_object_lock(object_lock)
            .with_stored_config(self.config.as_ref().map(|c| c.text.clone())))
    }

    /// Append-only mode: `repository.append_only` in the config, or
    /// `LIFEBOAT_APPEND_ONLY=1` (docs/append-only.md).
    pub fn append_only(&self) -> bool {
        let env = std::env::var("LIFEBOAT_APPEND_ONLY")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        env || self
            .config
            .as_ref()
            .is_some_and(|c| c.repository.append_only)
    }

    /// S3 Object Lock, when the repository's bucket has it enabled
    /// (GetObjectLockConfiguration): the retention to set comes from
    /// `repository.object_lock`, else the bucket's default rule, else
    /// GOVERNANCE for 35 days. A bucket whose configuration cannot be read
    /// is an error only when `repository.object_lock` asks for retention.
    async fn object_lock(&self) -> Result<Option<lifeboat_repo::retain::ObjectLock>> {
        use lifeboat_repo::storage::object::RepoLocation;
        use lifeboat_repo::storage::object_lock::{ObjectLockClient, RetentionPolicy};
        let Ok(RepoLocation::S3 { bucket, prefix }) = RepoLocation::parse(&self.repo_url()?) else {
            return Ok(None);
        };
        let wanted = self
            .config
            .as_ref()
            .and_then(|c| c.repository.object_lock.clone());
        let client = ObjectLockClient::new(&bucket, &prefix, &self.s3_settings().await?)?;
        let bucket_rule = match client.bucket_lock().await {
            Ok(Some(rule)) => rule,
            Ok(None) => {
                if wanted.is_some() {
                    tracing::warn!(
                        "repository.object_lock is set but bucket {bucket} does not have Object Lock enabled: no retention is set (Object Lock can only be enabled on the bucket)"
                    );
                }
                return Ok(None);
            }
            Err(e) if wanted.is_some() => {
                return Err(crate::Error::from(e).context(
                    "repository.object_lock is set but the bucket's Object Lock configuration cannot be read",
                ));
            }
            Err(e) => {
                // Most often a bucket without Object Lock on a store that
                // does not know the call; but on a locked bucket this backup
                // would go unretained, so say it where an operator looks.
                tracing::warn!(error = %e, "Object Lock not applied: the bucket's Object Lock configuration cannot be read (set repository.object_lock to make this an error)");
                return Ok(None);
            }
        };
        let default = bucket_rule.map_or(RetentionPolicy::DEFAULT, |(mode, days)| {
            RetentionPolicy { mode, days }
        });
        let policy = match wanted {
            Some(w) => RetentionPolicy {
                mode: w.mode.unwrap_or(default.mode),
                days: w.days,
            },
            None => default,
        };
        Ok(Some(lifeboat_repo::retain::ObjectLock { client, policy }))
    }

    /// `--retry-lock`: how long to wait for a conflicting lock (zero: not at all).
    pub fn retry_lock(&self) -> Result<std::time::Duration> {
        let Some(s) = &self.global.retry_lock else {
            return Ok(std::time::Duration::ZERO);
        };
        lifeboat_repo::retention::parse_duration(s)
            .map_err(|e| usage(format!("--retry-lock: {e}")))?
            .to_std()
            .map_err(|_| usage("--retry-lock must not be negative"))
    }
}

/// [`Ctx::cluster_options`] for a configuration not yet in a context.
fn cluster_of(
    config: Option<&Config>,
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> lifeboat_kube::client::ClusterOptions {
    let conf = config.and_then(|c| c.kubernetes.as_ref());
    lifeboat_kube::client::ClusterOptions {
        kubeconfig: kubeconfig
            .map(|p| p.to_path_buf())
            .or_else(|| conf.and_then(|k| k.kubeconfig.clone())),
        context: context
            .map(str::to_string)
            .or_else(|| conf.and_then(|k| k.context.clone())),
    }
}

/// A missing local directory is "no repository here", said plainly.
fn not_found_as_repo(s: lifeboat_repo::storage::StorageError) -> crate::Error {
    if s.is_not_found() {
        return lifeboat_repo::RepoError::NotARepository {
            location: s.key.clone(),
            detail: "no repository here (the location does not exist). Check the --repo URL, or create one with `lifeboat init`".into(),
        }
        .into();
    }
    s.into()
}
