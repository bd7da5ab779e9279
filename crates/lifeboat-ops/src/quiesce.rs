//! Stopping the writers of a database while it is restored, and bringing them
//! back afterwards.
//!
//! A [`Quiescer`] knows how to stop and resume writers. Implementations here:
//! [`NoQuiesce`] (nothing to stop), [`Commands`] (operator-configured argument
//! vectors, run without a shell), [`Kube`] (Deployments and StatefulSets
//! scaled to zero through the `scale` subresource, their counts recorded in
//! the annotation `lifeboat.io/original-replicas`; the protocol is in
//! `lifeboat_kube::quiesce`) and [`Several`] (both, in order).
//!
//! The trait is async (boxed futures): scaling talks to the Kubernetes API
//! and waits for pods, and a restore must stay cancellable (Ctrl-C) while it
//! waits.
//!
//! [`Quiesced`] is the guard a restore holds while writers are down. It exists
//! from the moment stopping *starts*, so a stop cancelled midway is undone
//! too. Callers resume explicitly on every exit path
//! ([`Quiesced::resume`]); dropping the guard undecided (an error path that
//! forgot, a panic, the future dropped on Ctrl-C) is the last resort and
//! brings the writers back from `Drop`, blocking safely (see
//! [`resume_blocking`]). The one decision that leaves them down is
//! [`Quiesced::leave_down`], used when the restored database failed
//! verification (a wrong database must not take traffic). A `kill -9` of
//! Lifeboat cannot run anything: Kubernetes workloads are then brought back
//! by `lifeboat unquiesce` (the annotation survives the crash), commands by
//! running the `post` commands by hand (the restore prints them before it
//! starts).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use lifeboat_kube::client::ClusterOptions;
use lifeboat_kube::quiesce::{Kind, Notify, ResumeOutcome, Scaler, Workload};

use crate::config::{Quiesce, QuiesceCommand};

/// A boxed future, so that [`Quiescer`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Stops and resumes the writers of one database.
pub trait Quiescer: Send {
    /// One line for messages, e.g. `commands (2 to stop, 1 to resume)`.
    fn describe(&self) -> String;
    /// Stops the writers. On error, or when the future is dropped midway,
    /// some may be stopped already; the caller resumes.
    fn stop(&mut self) -> BoxFuture<'_, Result<()>>;
    /// Brings the writers back. Must be safe to call when `stop` failed
    /// midway, was cancelled, or was never called, and safe to call twice.
    fn resume(&mut self) -> BoxFuture<'_, Result<()>>;
    /// What an operator runs to bring writers back by hand.
    fn manual_resume_hint(&self) -> String;
    /// Whether this stops anything at all (false for [`NoQuiesce`]), so that
    /// messages say "no writers configured" rather than "writers resumed".
    fn stops_writers(&self) -> bool {
        true
    }
}

/// No writers to stop.
pub struct NoQuiesce;

impl Quiescer for NoQuiesce {
    fn describe(&self) -> String {
        "none".into()
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn manual_resume_hint(&self) -> String {
        "nothing to do".into()
    }
    fn stops_writers(&self) -> bool {
        false
    }
}

/// Configured commands: `pre` stop the writers, `post` bring them back. Each is
/// an argument vector run without a shell, with only the environment of
/// [`crate::child`] plus the names its `env:` lists; its stdout and stderr go
/// to Lifeboat's stderr. `post` runs every command even when one fails.
pub struct Commands {
    pub pre: Vec<QuiesceCommand>,
    pub post: Vec<QuiesceCommand>,
}

async fn run(c: &QuiesceCommand) -> Result<()> {
    let Some((prog, args)) = c.argv.split_first() else {
        crate::bail!("an empty quiesce command");
    };
    let shown = c.display();
    let status = crate::child::command(prog, &c.env)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(crate::child::stderr_as_stdout())
        .stderr(std::process::Stdio::inherit())
        .status()
        .await
        .map_err(|e| crate::failure!("starting quiesce command `{shown}`: {e}"))?;
    if !status.success() {
        crate::bail!("quiesce command `{shown}` failed ({status})");
    }
    Ok(())
}

impl Quiescer for Commands {
    fn describe(&self) -> String {
        format!(
            "commands ({} to stop, {} to resume)",
            self.pre.len(),
            self.post.len()
        )
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            for c in &self.pre {
                run(c).await?;
            }
            Ok(())
        })
    }
    fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            for c in &self.post {
                if let Err(e) = run(c).await {
                    errors.push(e.to_string());
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                crate::bail!("{}", errors.join("; "))
            }
        })
    }
    fn manual_resume_hint(&self) -> String {
        let cmds: Vec<String> = self.post.iter().map(QuiesceCommand::display).collect();
        format!("run: {}", cmds.join(" && "))
    }
}

/// Deployments and StatefulSets of one namespace, scaled to zero through
/// Kubernetes (see `lifeboat_kube::quiesce` for the protocol). Connects when
/// stopping; resumes only what this run touched.
pub struct Kube {
    /// The configured source, for `lifeboat unquiesce --source` in hints.
    pub source: String,
    pub cluster: ClusterOptions,
    /// Unset: the kubeconfig context's namespace (in a pod: its own).
    pub namespace: Option<String>,
    pub workloads: Vec<(Kind, String)>,
    pub timeout: Duration,
    pub notify: Notify,
    scaler: Option<Scaler>,
}

impl Kube {
    pub fn new(source: &str, cluster: ClusterOptions, q: &Quiesce, notify: Notify) -> Result<Self> {
        let timeout = match q.timeout {
            Some(t) => t
                .to_std()
                .map_err(|_| crate::failure!("quiesce.timeout must be positive"))?,
            None => lifeboat_kube::quiesce::DEFAULT_TIMEOUT,
        };
        Ok(Kube {
            source: source.to_string(),
            cluster,
            namespace: q.namespace.clone(),
            workloads: q
                .workloads()
                .into_iter()
                .map(|(k, n)| (k, n.to_string()))
                .collect(),
            timeout,
            notify,
            scaler: None,
        })
    }

    fn names(&self) -> String {
        self.workloads
            .iter()
            .map(|(k, n)| format!("{}/{n}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Quiescer for Kube {
    fn describe(&self) -> String {
        format!(
            "Kubernetes {} in namespace {} scaled to 0",
            self.names(),
            self.namespace.as_deref().unwrap_or("(the context's)")
        )
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let client = lifeboat_kube::client::connect(&self.cluster)
                .await
                .map_err(|e| {
                    crate::failure!(
                        "connecting to Kubernetes to quiesce {}: {e:#}",
                        self.names()
                    )
                })?;
            let ns = self
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string());
            let workloads = self
                .workloads
                .iter()
                .map(|(k, n)| Workload::new(*k, ns.clone(), n.clone()))
                .collect();
            let scaler = self.scaler.insert(
                Scaler::new(client, workloads)
                    .timeout(self.timeout)
                    .notify(self.notify.clone()),
            );
            scaler.stop().await?;
            Ok(())
        })
    }

    fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some(scaler) = self.scaler.as_mut() else {
                return Ok(());
            };
            let report = scaler.resume().await;
            for (w, r) in &report.results {
                if let Ok(ResumeOutcome::NotQuiesced { .. }) = r {
                    tracing::info!("{w} was not scaled down; left alone");
                }
            }
            let failures: Vec<String> = report.failures().map(|e| e.to_string()).collect();
            if failures.is_empty() {
                Ok(())
            } else {
                // Transient errors were retried already: what is left needs
                // the operator, so say what to run.
                crate::bail!(
                    "{}; to bring them back, {}",
                    failures.join("; "),
                    self.manual_resume_hint()
                )
            }
        })
    }

    fn manual_resume_hint(&self) -> String {
        let by_hand = self
            .scaler
            .as_ref()
            .map(|s| s.kubectl_hint())
            .filter(|h| !h.is_empty());
        let mut hint = format!(
            "run `lifeboat unquiesce --source {}` with the same --config and cluster flags",
            self.source
        );
        if let Some(h) = by_hand {
            hint.push_str(&format!("; by hand: {h}"));
        }
        hint
    }
}

/// Several quiescers: stopped in order, resumed in reverse order (each one
/// that was started, all of them even when one fails).
pub struct Several {
    parts: Vec<Box<dyn Quiescer>>,
    /// How many parts `stop` has started; only those are resumed.
    started: usize,
}

impl Several {
    pub fn new(parts: Vec<Box<dyn Quiescer>>) -> Self {
        Several { parts, started: 0 }
    }
}

impl Quiescer for Several {
    fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.describe())
            .collect::<Vec<_>>()
            .join(", then ")
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            for i in 0..self.parts.len() {
                self.started = self.started.max(i + 1);
                self.parts[i].stop().await?;
            }
            Ok(())
        })
    }
    fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            for p in self.parts[..self.started].iter_mut().rev() {
                if let Err(e) = p.resume().await {
                    errors.push(format!("{e:#}"));
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                crate::bail!("{}", errors.join("; "))
            }
        })
    }
    fn manual_resume_hint(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.manual_resume_hint())
            .collect::<Vec<_>>()
            .join("; and ")
    }
}

/// Progress lines on stderr, unless `quiet`.
pub fn stderr_notify(quiet: bool) -> Notify {
    Arc::new(move |m: &str| {
        if quiet {
            tracing::info!("{m}");
        } else {
            eprintln!("{m}");
        }
    })
}

/// Builds the quiescer a source's configuration asks for: its workloads
/// through Kubernetes (`cluster` says which cluster), then its commands.
pub fn from_config(
    q: Option<&Quiesce>,
    source: &str,
    cluster: ClusterOptions,
    notify: Notify,
) -> Result<Box<dyn Quiescer>> {
    let Some(q) = q else {
        return Ok(Box::new(NoQuiesce));
    };
    let mut parts: Vec<Box<dyn Quiescer>> = Vec::new();
    if !q.workloads().is_empty() {
        parts.push(Box::new(Kube::new(source, cluster, q, notify)?));
    }
    if let Some(c) = q
        .commands
        .as_ref()
        .filter(|c| !c.pre.is_empty() || !c.post.is_empty())
    {
        parts.push(Box::new(Commands {
            pre: c.pre.clone(),
            post: c.post.clone(),
        }));
    }
    Ok(match parts.len() {
        0 => Box::new(NoQuiesce),
        1 => parts.remove(0),
        _ => Box::new(Several::new(parts)),
    })
}

/// How long `Drop` waits for the writers to come back before giving up with
/// the manual hint.
const DROP_RESUME_LIMIT: Duration = Duration::from_secs(120);

/// Writers are down while this lives. Dropped undecided, it brings them back.
pub struct Quiesced {
    /// Always `Some` until `Drop` takes it.
    q: Option<Box<dyn Quiescer>>,
    /// True from the start of `stop` until the writers were resumed or left
    /// down on purpose.
    active: bool,
}

impl Quiesced {
    fn quiescer(&mut self) -> &mut Box<dyn Quiescer> {
        self.q.as_mut().expect("the quiescer is only taken by Drop")
    }

    /// Stops the writers. When stopping fails, whatever was stopped is
    /// resumed and the error returned. When this future is dropped midway
    /// (Ctrl-C while waiting for pods), the guard's `Drop` resumes.
    pub async fn stop(q: Box<dyn Quiescer>) -> Result<Self> {
        let mut guard = Quiesced {
            q: Some(q),
            active: true,
        };
        if let Err(e) = guard.quiescer().stop().await {
            if let Err(r) = guard.quiescer().resume().await {
                eprintln!(
                    "warning: bringing the writers back after a failed stop also failed: {r:#}; {}",
                    guard.quiescer().manual_resume_hint()
                );
            }
            guard.active = false;
            return Err(e.context("stopping the writers before the restore (nothing was restored)"));
        }
        Ok(guard)
    }

    /// Brings the writers back. Dropped midway, the guard tries again from
    /// `Drop` (resuming is idempotent).
    pub async fn resume(mut self) -> Result<()> {
        let r = self.quiescer().resume().await;
        self.active = false;
        r
    }

    /// Leaves the writers stopped on purpose; returns how to bring them back.
    pub fn leave_down(mut self) -> String {
        self.active = false;
        self.quiescer().manual_resume_hint()
    }
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        if let Some(q) = self.q.take() {
            eprintln!("restore did not finish: bringing the writers back");
            resume_blocking(q);
        }
    }
}

/// Runs `q.resume()` to completion from synchronous code (`Drop`).
///
/// * On the multi-thread runtime (the binary's): `block_in_place`, then
///   `block_on` on the same runtime, so the Kubernetes client's background
///   tasks keep running on the other workers.
/// * On a current-thread runtime, blocking would stop the very tasks the
///   resume needs: it is spawned onto that runtime instead (it runs when the
///   runtime is polled again) and a warning says so.
/// * Outside any runtime: a small runtime of its own.
fn resume_blocking(mut q: Box<dyn Quiescer>) {
    let hint = q.manual_resume_hint();
    let report = move |r: Result<()>| {
        if let Err(e) = r {
            eprintln!("error: bringing the writers back failed: {e:#}; {hint}");
        }
    };
    let limited = async move {
        match tokio::time::timeout(DROP_RESUME_LIMIT, q.resume()).await {
            Ok(r) => r,
            Err(_) => Err(crate::failure!(
                "no answer within {} s",
                DROP_RESUME_LIMIT.as_secs()
            )),
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            report(tokio::task::block_in_place(|| h.block_on(limited)));
        }
        Ok(h) => {
            eprintln!(
                "warning: bringing the writers back in the background (single-threaded runtime)"
            );
            h.spawn(async move { report(limited.await) });
        }
        Err(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => report(rt.block_on(limited)),
            Err(e) => report(Err(crate::failure!("cannot start a runtime: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> QuiesceCommand {
        vec!["sh".into(), "-c".into(), s.into()].into()
    }

    fn logging(l: &str) -> Commands {
        Commands {
            pre: vec![sh(&format!("echo pre >> {l}"))],
            post: vec![sh(&format!("echo post >> {l}"))],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_stop_resumes_and_drop_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let l = log.display().to_string();
        let q = Commands {
            pre: vec![sh(&format!("echo pre >> {l}")), vec!["false".into()].into()],
            post: vec![sh(&format!("echo post >> {l}"))],
        };
        assert!(Quiesced::stop(Box::new(q)).await.is_err());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");

        // Dropped undecided inside the multi-thread runtime: block_in_place.
        std::fs::remove_file(&log).unwrap();
        drop(Quiesced::stop(Box::new(logging(&l))).await.unwrap());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");

        std::fs::remove_file(&log).unwrap();
        let hint = Quiesced::stop(Box::new(logging(&l)))
            .await
            .unwrap()
            .leave_down();
        assert!(hint.contains("echo post"), "{hint}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\n");

        std::fs::remove_file(&log).unwrap();
        let g = Quiesced::stop(Box::new(logging(&l))).await.unwrap();
        g.resume().await.unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    }

    #[test]
    fn drop_outside_a_runtime_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let l = log.display().to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let g = rt.block_on(Quiesced::stop(Box::new(logging(&l)))).unwrap();
        drop(rt);
        drop(g);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    }

    /// A quiescer whose stop never finishes, like a wait for pods that do not
    /// go; counts resumes.
    struct Hangs(Arc<std::sync::atomic::AtomicUsize>);

    impl Quiescer for Hangs {
        fn describe(&self) -> String {
            "hangs".into()
        }
        fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
            Box::pin(std::future::pending())
        }
        fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn manual_resume_hint(&self) -> String {
            String::new()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_stop_resumes() {
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            Quiesced::stop(Box::new(Hangs(n.clone()))),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_resume_only_what_was_started_in_reverse() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let l = log.display().to_string();
        let part = |name: &str, fail: bool| -> Box<dyn Quiescer> {
            Box::new(Commands {
                pre: vec![if fail {
                    vec!["false".into()].into()
                } else {
                    sh(&format!("echo {name}-pre >> {l}"))
                }],
                post: vec![sh(&format!("echo {name}-post >> {l}"))],
            })
        };
        let q = Several::new(vec![part("a", false), part("b", true), part("c", false)]);
        assert!(Quiesced::stop(Box::new(q)).await.is_err());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "a-pre\nb-post\na-post\n"
        );
    }
}
