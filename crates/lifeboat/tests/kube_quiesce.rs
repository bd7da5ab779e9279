//! Quiescing writers through Kubernetes (issue 4, must-hold 5), end to end:
//! the built `lifeboat` binary restores a real PostgreSQL 15 database
//! (`TempCluster`) while it scales the writer Deployments of the Kubernetes
//! API test double (`kube-double`: an HTTP server that answers the API
//! requests Lifeboat makes, with simulated pods that follow `spec.replicas`
//! after a delay). The binary reaches the double through a kubeconfig, as it
//! would reach a cluster.
//!
//! What is checked: the count is recorded in `lifeboat.io/original-replicas`
//! before the workload is scaled, scaling goes through `/scale`, the restore
//! runs only once the pods are gone, the writers come back to their counts
//! afterwards (and after an interrupted stop), stay down after a failed
//! verification or a restore that failed midway (the target is partial),
//! are brought back by `lifeboat unquiesce` after a SIGKILL, keep their
//! original counts across a second crashed quiesce, and errors
//! (unreachable API, missing Deployment, 403) name the workload and leave
//! nothing scaled down. Transient API errors (issue 16: a `500 etcdserver:
//! leader changed` while scaling back up, a `429` with `Retry-After`) are
//! retried; retries that run out say what to run.

use crate::common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Env, free_port, rt, setup};
use kube_double::{ApiDouble, Fault, Options, RequestRecord};
use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::fixture;
use serde_json::{Value, json};

const NS: &str = "kubernaut-system";
const ANNOTATION: &str = "lifeboat.io/original-replicas";
const WRITERS: [(&str, i64); 2] = [("data-storage", 2), ("context-api", 1)];

/// A PostgreSQL cluster with the tiny Kubernaut fixture in `src`, a
/// repository, the API double with the writer Deployments running, and a
/// configuration tying them together (source `db`).
struct World {
    rt: tokio::runtime::Runtime,
    cluster: TempCluster,
    env: Env,
    api: ApiDouble,
    config: String,
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "kubernaut/app"}]}
            }
        }
    })
}

impl World {
    fn new() -> World {
        let rt = rt();
        let (cluster, mut env) = setup(&rt);
        // Never the machine's cluster: only the kubeconfig the config names.
        env.envs
            .push(("KUBECONFIG".into(), "/nonexistent/kubeconfig".into()));
        // Transient API errors are retried for 2 s here (30 s by default),
        // so an unreachable API fails quickly.
        env.envs
            .push(("LIFEBOAT_KUBE_RETRY_BUDGET".into(), "2s".into()));
        let api = ApiDouble::start_in_thread_with(Options {
            pods_delay: Duration::from_millis(100),
            ..Options::default()
        });
        api.write_kubeconfig(env.path("kubeconfig")).unwrap();
        api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
        for (name, n) in WRITERS {
            api.insert(deployment(name, n));
        }
        let w = World {
            rt,
            cluster,
            env,
            api,
            config: String::new(),
        };
        w.wait("the writers' pods to run", Duration::from_secs(20), |w| {
            WRITERS.iter().all(|(n, r)| w.pods(n) == *r as usize)
        });
        w
    }

    /// `new`, configured to quiesce both writers, with one backup of `db`.
    fn backed_up() -> World {
        let mut w = World::new();
        w.configure(&["data-storage", "context-api"], "");
        w.env.ok(&w.args(&["backup", "postgres", "--source", "db"]));
        w
    }

    /// Writes the configuration: source `db` quiescing `deployments`, with
    /// `extra` lines appended under `quiesce:`.
    fn configure(&mut self, deployments: &[&str], extra: &str) {
        let path = self.env.path("lifeboat.yaml");
        std::fs::write(
            &path,
            format!(
                "repository:\n  url: {repo}\nkubernetes:\n  kubeconfig: {kc}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: {url}\n      verify_queries:\n        - {{name: databases, sql: \"SELECT count(*)::text FROM pg_database\"}}\n    quiesce:\n      namespace: {NS}\n      deployments: [{deps}]\n      timeout: 30s\n{extra}",
                repo = self.env.repo,
                kc = self.env.path("kubeconfig").display(),
                url = self.cluster.url("src"),
                deps = deployments.join(", "),
            ),
        )
        .unwrap();
        self.config = path.display().to_string();
    }

    /// `lifeboat --config … ARGS`.
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--config", self.config.as_str()];
        v.extend_from_slice(args);
        v
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.env
            .cmd(&self.args(args))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn restore_args() -> [&'static str; 5] {
        ["restore", "postgres", "latest", "--source", "db"]
    }

    fn src(&self) -> ConnConfig {
        self.cluster.conn_config("src")
    }

    fn deploy(&self, name: &str) -> Value {
        self.api
            .get("apps/v1", "Deployment", Some(NS), name)
            .unwrap_or_else(|| panic!("deployment {name} exists"))
    }

    fn replicas(&self, name: &str) -> i64 {
        self.deploy(name)["spec"]["replicas"].as_i64().unwrap_or(0)
    }

    fn annotation(&self, name: &str) -> Option<String> {
        self.deploy(name)["metadata"]["annotations"][ANNOTATION]
            .as_str()
            .map(str::to_string)
    }

    /// Pods of the workload `name` (label app=name).
    fn pods(&self, name: &str) -> usize {
        self.api
            .list("v1", "Pod", Some(NS))
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == name)
            .count()
    }

    fn wait(&self, what: &str, limit: Duration, f: impl Fn(&World) -> bool) {
        let deadline = Instant::now() + limit;
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The writers run at their original counts, unannotated, with their pods.
    fn assert_writers_back(&self) {
        for (n, r) in WRITERS {
            assert_eq!(self.replicas(n), r, "{n} back to {r} replicas");
            assert_eq!(self.annotation(n), None, "{n}: annotation removed");
        }
        self.wait(
            "the writers' pods to come back",
            Duration::from_secs(20),
            |w| WRITERS.iter().all(|(n, r)| w.pods(n) == *r as usize),
        );
    }

    /// The writers are at 0, annotated with their original counts.
    fn assert_writers_down(&self) {
        for (n, r) in WRITERS {
            assert_eq!(self.replicas(n), 0, "{n} scaled to 0");
            assert_eq!(
                self.annotation(n).as_deref(),
                Some(r.to_string().as_str()),
                "{n}: original count recorded"
            );
        }
    }

    /// Holds an ACCESS EXCLUSIVE lock that `pg_restore --clean` must wait for.
    fn lock(&self) -> lifeboat_postgres::Client {
        let locker = self.rt.block_on(self.src().connect()).unwrap();
        self.rt
            .block_on(
                locker.batch_execute(
                    "BEGIN; LOCK TABLE remediation_history IN ACCESS EXCLUSIVE MODE",
                ),
            )
            .unwrap();
        locker
    }

    /// Waits until a backend of `src` waits on a lock (pg_restore is
    /// blocked); returns its pid.
    fn wait_for_blocked_restore(&self, child: &mut Child) -> i32 {
        let watcher = self.rt.block_on(self.src().connect()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self
                .rt
                .block_on(watcher.query(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                    &[],
                ))
                .unwrap();
            if let Some(r) = rows.first() {
                return r.get(0);
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let o = std::mem::replace(child, dummy_child())
                    .wait_with_output()
                    .unwrap();
                panic!(
                    "pg_restore never blocked on the lock: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn requests_since(&self, from: usize) -> Vec<RequestRecord> {
        self.api.requests().into_iter().skip(from).collect()
    }
}

fn dummy_child() -> Child {
    std::process::Command::new("true").spawn().unwrap()
}

fn output(child: Child) -> (Option<i32>, String, String) {
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sigkill(child: &mut Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Index of the first request with this method and path.
fn position(log: &[RequestRecord], method: &str, path: &str) -> Option<usize> {
    log.iter()
        .position(|r| r.method == method && r.path == path)
}

fn deploy_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}")
}

/// Test 1: during the restore both writers are at 0 with no pods, recorded
/// before they were scaled, through `/scale`; afterwards back to 2 and 1.
#[test]
fn restore_quiesces_writers_through_scale_and_brings_them_back() {
    let w = World::backed_up();
    let before = w.rt.block_on(async {
        let c = w.src().connect().await.unwrap();
        let h = fixture::content_hashes(&c).await.unwrap();
        fixture::corrupt(&c).await.unwrap();
        h
    });
    w.api.clear_requests();

    let locker = w.lock();
    let mut child = w.spawn(&World::restore_args());
    w.wait_for_blocked_restore(&mut child);
    // pg_restore is running: the writers are down and their pods gone.
    w.assert_writers_down();
    for (n, _) in WRITERS {
        assert_eq!(w.pods(n), 0, "{n} has no pods during the restore");
    }
    w.rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
    drop(locker);
    let (code, stdout, stderr) = output(child);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    eprintln!("--- restore output:\n{stdout}{stderr}");
    assert!(stdout.contains("every fact verified"), "{stdout}");
    assert!(
        stderr.contains("lifeboat unquiesce --source db"),
        "{stderr}"
    );
    w.assert_writers_back();

    let log = w.requests_since(0);
    for (n, _) in WRITERS {
        let obj = deploy_path(n);
        let scale = format!("{obj}/scale");
        let annotate = position(&log, "PATCH", &obj).expect("annotation patch");
        let down = position(&log, "PATCH", &scale).expect("scale patch");
        assert!(annotate < down, "{n}: recorded before scaled");
        assert_eq!(
            log[annotate].content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        // The replica count changes only through /scale: down, then back.
        let scales: Vec<_> = log
            .iter()
            .filter(|r| r.path == scale && r.method != "GET")
            .collect();
        assert_eq!(scales.len(), 2, "{n}: {scales:?}");
        assert!(
            scales
                .iter()
                .all(|r| r.method == "PATCH" && r.status == 200)
        );
        assert!(
            !log.iter()
                .any(|r| r.path == obj && (r.method == "PUT" || r.method == "POST")),
            "{n} is never replaced"
        );
        // Back up first, then the record removed.
        let last_scale = log
            .iter()
            .rposition(|r| r.path == scale && r.method == "PATCH");
        let last_patch = log
            .iter()
            .rposition(|r| r.path == obj && r.method == "PATCH");
        assert!(
            last_scale < last_patch,
            "{n}: scaled back before forgetting"
        );
    }
    // The pods were waited for with a selector-filtered list.
    assert!(
        log.iter()
            .any(|r| r.path == format!("/api/v1/namespaces/{NS}/pods")
                && r.param("labelSelector").as_deref() == Some("app=data-storage")),
        "pods listed by the workload's selector"
    );
    let after = w.rt.block_on(async {
        let c = w.src().connect().await.unwrap();
        fixture::content_hashes(&c).await.unwrap()
    });
    assert_eq!(after, before, "the database was restored");
}

/// Test 2: SIGKILL while the restore waits for the pods to go; `unquiesce`
/// brings back 2 and 1. A second crashed quiesce keeps the original counts.
#[test]
fn killed_restore_then_unquiesce_restores_original_counts() {
    let w = World::backed_up();

    // Pods take a minute to terminate: the restore sits waiting for them.
    w.api.set_pods_delay(Duration::from_secs(60));
    let mut child = w.spawn(&World::restore_args());
    w.wait("both writers scaled to 0", Duration::from_secs(30), |w| {
        WRITERS.iter().all(|(n, _)| w.replicas(n) == 0)
    });
    assert!(child.try_wait().unwrap().is_none(), "restore still waiting");
    sigkill(&mut child);
    w.assert_writers_down();

    // A second restore, killed the same way, must not record the current
    // zeros over the original counts.
    let mark = w.api.requests().len();
    let mut child = w.spawn(&World::restore_args());
    w.wait(
        "the second restore's scale calls",
        Duration::from_secs(30),
        |w| {
            let log = w.requests_since(mark);
            WRITERS.iter().all(|(n, _)| {
                position(&log, "PATCH", &format!("{}/scale", deploy_path(n))).is_some()
            })
        },
    );
    sigkill(&mut child);
    w.assert_writers_down();
    let log = w.requests_since(mark);
    for (n, _) in WRITERS {
        assert!(
            position(&log, "PATCH", &deploy_path(n)).is_none(),
            "{n}: the earlier record was not rewritten"
        );
    }

    w.api.set_pods_delay(Duration::from_millis(100));
    let out = w.env.ok(&w.args(&["--json", "unquiesce"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["resumed"], 2, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    let entries = v["workloads"].as_array().unwrap();
    for (n, r) in WRITERS {
        let e = entries.iter().find(|e| e["name"] == n).unwrap();
        assert_eq!(
            (e["result"].as_str(), e["from"].as_i64(), e["to"].as_i64()),
            (Some("resumed"), Some(0), Some(r)),
            "{e}"
        );
        assert_eq!(e["kind"], "deployment");
        assert_eq!(e["namespace"], NS);
        assert_eq!(e["source"], "db");
    }
    w.assert_writers_back();

    // Again: nothing is quiesced, nothing changes.
    let out = w.env.ok(&w.args(&["unquiesce", "--source", "db"]));
    assert!(
        out.contains(
            "deployment/data-storage in namespace kubernaut-system (source db): not quiesced"
        ) && out.contains("left at 2 replicas")
            && out.contains("0 brought back, 2 not quiesced, 0 failed"),
        "{out}"
    );
    w.assert_writers_back();
}

/// Interrupted (SIGTERM, then Ctrl-C) while waiting for the pods to go: the
/// stop is abandoned and the writers are brought back before the exit.
#[test]
fn interrupted_while_waiting_for_pods_brings_writers_back() {
    let w = World::backed_up();
    w.api.set_pods_delay(Duration::from_secs(60));
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let child = w.spawn(&World::restore_args());
        w.wait("both writers scaled to 0", Duration::from_secs(30), |w| {
            WRITERS.iter().all(|(n, _)| w.replicas(n) == 0)
        });
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let (code, stdout, stderr) = output(child);
        assert_eq!(code, Some(130), "signal {signal}: {stdout}{stderr}");
        assert!(
            stderr.contains("bringing the writers back")
                && stderr.contains("back from 0 to 2 replicas"),
            "signal {signal}: {stderr}"
        );
        w.assert_writers_back();
    }
}

/// Test 3: a restore that fails after it had begun replacing the database
/// (issue 16) and a failed verification both leave the writers down (exit 11
/// "the target is partial", exit 7), unless resume_on_verify_failure;
/// `unquiesce` brings them back.
#[test]
fn failed_restore_and_failed_verification_leave_writers_down() {
    let mut w = World::backed_up();

    // pg_restore loses its connection midway.
    let locker = w.lock();
    let mut child = w.spawn(&World::restore_args());
    let pid = w.wait_for_blocked_restore(&mut child);
    w.assert_writers_down();
    w.rt.block_on(locker.query_one("SELECT pg_terminate_backend($1)", &[&pid]))
        .unwrap();
    w.rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
    drop(locker);
    let (code, stdout, stderr) = output(child);
    assert_eq!(code, Some(11), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("the target is partial")
            && stderr.contains("THE WRITERS ARE LEFT STOPPED")
            && stderr.contains("lifeboat unquiesce --source db")
            && !stderr.contains("the writers were brought back"),
        "{stderr}"
    );
    w.assert_writers_down();
    w.env.ok(&w.args(&["unquiesce", "--source", "db"]));
    w.assert_writers_back();

    // The facts cannot hold: the cluster now has one database more than at
    // backup (the verify query counts them).
    w.rt.block_on(w.cluster.create_database("another")).unwrap();
    let stderr = w.env.fails(&w.args(&World::restore_args()), 7);
    assert!(
        stderr.contains("THE WRITERS ARE LEFT STOPPED")
            && stderr.contains("lifeboat unquiesce --source db"),
        "{stderr}"
    );
    w.assert_writers_down();
    w.env.ok(&w.args(&["unquiesce", "--source", "db"]));
    w.assert_writers_back();

    w.configure(
        &["data-storage", "context-api"],
        "      resume_on_verify_failure: true\n",
    );
    let stderr = w.env.fails(&w.args(&World::restore_args()), 7);
    assert!(stderr.contains("brought back anyway"), "{stderr}");
    w.assert_writers_back();
}

/// Test 4: an unreachable API, a missing Deployment and a 403 each fail with
/// the workload's name, a non-zero exit, nothing restored, and nothing left
/// scaled down by the run.
#[test]
fn cluster_errors_name_the_workload_and_leave_nothing_down() {
    let mut w = World::backed_up();
    let corrupted = w.rt.block_on(async {
        let c = w.src().connect().await.unwrap();
        fixture::corrupt(&c).await.unwrap();
        fixture::content_hashes(&c).await.unwrap()
    });
    let unchanged = |w: &World| {
        let now = w.rt.block_on(async {
            let c = w.src().connect().await.unwrap();
            fixture::content_hashes(&c).await.unwrap()
        });
        assert_eq!(now, corrupted, "nothing was restored");
    };

    // Unreachable: a kubeconfig whose server is a closed port.
    let closed = free_port();
    let kc = w.api.kubeconfig().replace(
        &format!("127.0.0.1:{}", w.api.addr().port()),
        &format!("127.0.0.1:{closed}"),
    );
    let bad_kc = w.env.path("unreachable-kubeconfig");
    std::fs::write(&bad_kc, kc).unwrap();
    let bad_kc = bad_kc.display().to_string();
    let mut restore = World::restore_args().to_vec();
    restore.extend(["--kubeconfig", bad_kc.as_str()]);
    let stderr = w.env.fails(&w.args(&restore), 1);
    eprintln!("--- restore stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot reach the Kubernetes API")
            && stderr.contains("deployment/data-storage in namespace kubernaut-system")
            && stderr.contains("nothing was restored"),
        "{stderr}"
    );
    unchanged(&w);
    let o = w
        .env
        .run(&w.args(&["unquiesce", "--kubeconfig", bad_kc.as_str()]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "deployment/context-api in namespace kubernaut-system (source db): FAILED: cannot reach"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("2 workload(s) could not be brought back"),
        "{stderr}"
    );
    w.assert_writers_back();

    // A Deployment that does not exist: refused before anything is touched.
    w.configure(&["data-storage", "contxt-api"], "");
    w.api.clear_requests();
    let stderr = w.env.fails(&w.args(&World::restore_args()), 1);
    eprintln!("--- restore stderr:\n{stderr}");
    assert!(
        stderr.contains("deployment/contxt-api in namespace kubernaut-system does not exist"),
        "{stderr}"
    );
    assert!(
        !w.api.requests().iter().any(|r| r.method == "PATCH"),
        "nothing was written"
    );
    w.assert_writers_back();
    unchanged(&w);

    // 403 on context-api's scale: data-storage, already down, comes back;
    // context-api's record is removed again.
    w.configure(&["data-storage", "context-api"], "");
    w.api.set_fault(|r| {
        (r.method == "PATCH" && r.path == format!("{}/scale", deploy_path("context-api")))
            .then(Fault::forbidden)
    });
    w.api.clear_requests();
    let stderr = w.env.fails(&w.args(&World::restore_args()), 1);
    eprintln!("--- restore stderr:\n{stderr}");
    assert!(
        stderr.contains("scale deployment/context-api in namespace kubernaut-system")
            && stderr.contains("403")
            && stderr.contains("deploy/rbac.yaml"),
        "{stderr}"
    );
    let log = w.api.requests();
    assert!(
        position(
            &log,
            "PATCH",
            &format!("{}/scale", deploy_path("data-storage"))
        )
        .is_some(),
        "data-storage was scaled down by this run"
    );
    w.api.clear_faults();
    w.assert_writers_back();
    unchanged(&w);

    // unquiesce with a 403 on one workload: that one fails by name, the
    // exit is non-zero, the other is handled.
    w.api.set_fault(|r| {
        (r.method == "GET" && r.path == deploy_path("data-storage")).then(Fault::forbidden)
    });
    let o = w.env.run(&w.args(&["unquiesce"]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    eprintln!("--- unquiesce stdout:\n{stdout}");
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .contains("deployment/data-storage in namespace kubernaut-system (source db): FAILED")
            && stdout.contains("403")
            && stdout
                .contains("context-api in namespace kubernaut-system (source db): not quiesced"),
        "{stdout}"
    );
    w.api.clear_faults();
}

/// The `fail_next` predicate for a scale of `name` to a non-zero count (the
/// way back up), not the scale to 0.
fn scale_up_of(name: &'static str) -> impl Fn(&kube_double::RequestInfo) -> bool + Send + Sync {
    move |r| {
        r.method == "PATCH"
            && r.path == format!("{}/scale", deploy_path(name))
            && r.body
                .as_ref()
                .is_some_and(|b| b["spec"]["replicas"].as_i64() != Some(0))
    }
}

/// Issue 16, the reproduction: one `500 etcdserver: leader changed` while
/// a writer is scaled back up used to end the restore with exit 1 and the
/// writer at 0 replicas. It is retried: the restore succeeds and both
/// writers are back at their counts. A `429` with `Retry-After` on the way
/// down is waited out for the time the server asked.
#[test]
fn a_transient_api_error_while_scaling_is_retried() {
    let w = World::backed_up();
    w.api.fail_next(
        1,
        scale_up_of("data-storage"),
        Fault::internal().with_message("etcdserver: leader changed"),
    );
    w.api.fail_next(
        1,
        |r| {
            r.method == "PATCH"
                && r.path == format!("{}/scale", deploy_path("context-api"))
                && r.body
                    .as_ref()
                    .is_some_and(|b| b["spec"]["replicas"].as_i64() == Some(0))
        },
        Fault::too_many_requests(),
    );
    w.api.clear_requests();
    let o = w.env.run(&w.args(&World::restore_args()));
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("--- restore stderr:\n{stderr}");
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(w.api.pending_faults(), 0, "both faults were answered");
    w.assert_writers_back();
    assert!(
        stderr.contains("etcdserver: leader changed") && stderr.contains("retrying"),
        "the retry is logged: {stderr}"
    );
    // Retry-After: 1 was honoured (the delay is the server's, no jitter).
    assert!(stderr.contains("retrying in 1000 ms"), "{stderr}");
    let log = w.requests_since(0);
    for name in ["data-storage", "context-api"] {
        let scale = format!("{}/scale", deploy_path(name));
        let statuses: Vec<u16> = log
            .iter()
            .filter(|r| r.method == "PATCH" && r.path == scale)
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses.len(), 3, "{name}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            2,
            "{name}: {statuses:?}"
        );
    }
}

/// Issue 16: when the API keeps failing past the retry budget, the restore
/// fails, the writer stays at 0 (it cannot be scaled), and the error says
/// the retries ran out and what to run; that command then brings it back.
#[test]
fn exhausted_retries_say_what_to_run() {
    let w = World::backed_up();
    w.api.fail_next(
        usize::MAX,
        scale_up_of("data-storage"),
        Fault::unavailable().with_message("etcdserver: request timed out"),
    );
    let o = w.env.run(&w.args(&World::restore_args()));
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("--- restore stderr:\n{stderr}");
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("still failing after"))
        .unwrap_or_else(|| panic!("no line says the retries ran out: {stderr}"));
    assert!(
        line.contains("scale deployment/data-storage in namespace kubernaut-system")
            && line.contains("503")
            && line.contains("lifeboat unquiesce --source db")
            && line
                .contains("kubectl -n kubernaut-system scale deployment/data-storage --replicas=2"),
        "{line}"
    );
    // context-api came back; data-storage is still down, its record kept.
    assert_eq!(w.replicas("context-api"), 1);
    assert_eq!(w.annotation("context-api"), None);
    assert_eq!(w.replicas("data-storage"), 0);
    assert_eq!(w.annotation("data-storage").as_deref(), Some("2"));

    w.api.clear_faults();
    w.env.ok(&w.args(&["unquiesce", "--source", "db"]));
    w.assert_writers_back();
}
