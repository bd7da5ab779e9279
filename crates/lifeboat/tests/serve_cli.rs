//! `lifeboat serve` through the built binary, against real PostgreSQL 15
//! clusters (`TempCluster`, the tiny Kubernaut fixture) and a local
//! repository. The must-holds of the daemon issue, one test each:
//! 1. per-second schedule, keep-last-2, /metrics matches `snapshots --json`;
//! 2. a database that is down: failure with a reason, recovery by itself;
//! 3. the API's bearer token;
//! 4. SIGTERM during a backup: finished within the grace period, or
//!    abandoned without a partial snapshot; exit 0; `check --read-data` clean;
//! 5. two daemons on one repository: one active, takeover after a kill;
//!
//! and a kube source scheduled in an IANA time zone (printing nothing on
//! stdout), and an unknown time zone refused at start with its position.
//!
//! Nothing here asserts a timing except as a generous timeout; every wait
//! is a poll.

use crate::common;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Env, TOKEN, free_port, poll, rt, setup, write_token};
use lifeboat_postgres::TempCluster;

/// Writes the configuration: one postgres source `db` and a serve: section.
fn write_config(
    env: &Env,
    name: &str,
    db_url: &str,
    source_extra: &str,
    serve_extra: &str,
) -> PathBuf {
    let token = write_token(env);
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
  prune_grace: 0s
sources:
  db:
    kind: postgres
    postgres:
      url: \"{db_url}\"
{source_extra}
serve:
  token: {{file: {token}}}
{serve_extra}
",
        repo = env.repo,
        token = token.display()
    );
    let path = env.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon's /metrics, parsed (`Daemon` is common's; its Prometheus
/// parsing is this file's).
impl Daemon {
    fn metrics(&self) -> Metrics {
        let (code, body) = self.get("/metrics", None);
        assert_eq!(code, 200, "{body}");
        Metrics::parse(&body)
    }
}

/// Prometheus text: series (name with sorted labels) → value.
#[derive(Debug, Clone, PartialEq)]
struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut ls: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    ls.sort();
                    format!("{name}{{{}}}", ls.join(","))
                }
                None => series.to_string(),
            };
            m.insert(key, value.parse().expect("sample value"));
        }
        Metrics(m)
    }

    fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    fn val(&self, series: &str) -> f64 {
        self.get(series).unwrap_or(0.0)
    }

    /// Sum of a metric's series whose labels contain `label`.
    fn sum(&self, name: &str, label: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(label))
            .map(|(_, v)| v)
            .sum()
    }
}

fn snapshots_of(env: &Env, source: &str) -> Vec<serde_json::Value> {
    env.snapshots()
        .into_iter()
        .filter(|s| s["source"] == source)
        .collect()
}

/// `lifeboat --json snapshots` opened with a key file, filtered by source.
fn snapshots_fast(env: &Env, key: &Path, source: &str) -> Vec<serde_json::Value> {
    let out = env
        .cmd(&["--key-file", key.to_str().unwrap(), "--json", "snapshots"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .filter(|s| s["source"] == source)
        .collect()
}

fn unix_seconds(time: &serde_json::Value) -> f64 {
    let t: chrono::DateTime<chrono::Utc> = serde_json::from_value(time.clone()).unwrap();
    t.timestamp_micros() as f64 / 1e6
}

/// Must hold 1.
#[test]
fn per_second_schedule_keeps_last_two_and_metrics_match_snapshots() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let config = write_config(
        &env,
        "serve.yaml",
        &cluster.url("src"),
        "    schedule: \"* * * * * *\"\n    retention: {keep_last: 2}",
        "  lease: 3s\n  prune_interval: 0s",
    );
    // `snapshots` opens the repository with a key file (no Argon2id), so
    // that a listing fits between two per-second backups.
    let key = env.path("fast.key");
    env.ok(&["key", "add", "--new-key-file", key.to_str().unwrap()]);
    let mut d = Daemon::start(&env, &config, "one");
    poll(Duration::from_secs(240), "three backups", || {
        (d.metrics().val("lifeboat_backups_total{source=\"db\"}") >= 3.0).then_some(())
    });
    // Compare in a quiet moment: no backup running and no count changing
    // around the listing.
    let (m, snaps) = poll(Duration::from_secs(120), "a moment between backups", || {
        let before = d.metrics();
        let snaps = snapshots_fast(&env, &key, "db");
        let after = d.metrics();
        // rpo_seconds moves with the clock; these move only with runs.
        let steady = [
            "lifeboat_backups_total{source=\"db\"}",
            "lifeboat_retention_forgotten_total{source=\"db\"}",
            "lifeboat_snapshots{source=\"db\"}",
            "lifeboat_backup_last_success_timestamp_seconds{source=\"db\"}",
            "lifeboat_backup_running{source=\"db\"}",
        ];
        let quiet = steady.iter().all(|k| before.get(k) == after.get(k))
            && after.val("lifeboat_backup_running{source=\"db\"}") == 0.0;
        quiet.then_some((after, snaps))
    });
    assert_eq!(snaps.len(), 2, "keep-last-2: {snaps:#?}");
    let backups = m.val("lifeboat_backups_total{source=\"db\"}");
    let forgotten = m.val("lifeboat_retention_forgotten_total{source=\"db\"}");
    assert!(backups >= 3.0, "{m:?}");
    assert_eq!(backups - forgotten, snaps.len() as f64, "{m:?}");
    assert_eq!(m.val("lifeboat_snapshots{source=\"db\"}"), 2.0, "{m:?}");
    let newest = snaps
        .iter()
        .map(|s| unix_seconds(&s["time"]))
        .fold(0.0, f64::max);
    let last = m
        .get("lifeboat_backup_last_success_timestamp_seconds{source=\"db\"}")
        .expect("last success gauge");
    assert!(
        (last - newest).abs() < 0.001,
        "metric {last} vs newest snapshot {newest}"
    );
    assert_eq!(
        m.sum("lifeboat_backup_failures_total", "source=\"db\""),
        0.0,
        "{m:?}"
    );
    assert!(
        m.val("lifeboat_backup_duration_seconds_count{source=\"db\"}") >= 3.0,
        "{m:?}"
    );
    assert!(m.val("lifeboat_backup_bytes_read_total{source=\"db\"}") > 0.0);
    assert!(m.val("lifeboat_repository_size_bytes") > 0.0);
    assert!(m.get("lifeboat_rpo_seconds{source=\"db\"}").is_some());
    // The API's view agrees.
    let (code, body) = d.get("/api/v1/snapshots?source=db", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let api: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(api.len() >= 2, "{body}");
    // Structured logs: each success names the source, snapshot and duration.
    let ok: Vec<_> = d
        .log_lines()
        .into_iter()
        .filter(|l| l["fields"]["message"] == "backup succeeded")
        .collect();
    assert!(ok.len() >= 3, "{}", d.log_text());
    for l in &ok {
        assert_eq!(l["fields"]["source"], "db", "{l}");
        assert!(
            l["fields"]["snapshot"]
                .as_str()
                .is_some_and(|s| s.len() == 64),
            "{l}"
        );
        assert!(l["fields"]["duration_seconds"].as_f64().is_some(), "{l}");
    }
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait(Duration::from_secs(120)),
        Some(0),
        "{}",
        d.log_text()
    );
    let out = env.ok(&["check", "--read-data"]);
    assert!(out.contains("no errors found"), "{out}");
}

/// A TCP forwarder the test turns on and off: the database "goes down" and
/// "comes back" for the daemon while the real server keeps running.
struct Gate {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Gate {
    /// Down at first: nothing listens on the port.
    fn new(target: u16) -> Gate {
        let port = free_port();
        Gate {
            port,
            up: Arc::new(AtomicBool::new(false)),
        }
        .with_target(target)
    }

    fn with_target(self, target: u16) -> Gate {
        let up = Arc::clone(&self.up);
        let port = self.port;
        std::thread::spawn(move || {
            // Wait until the test opens the gate, then listen and forward.
            while !up.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let l = TcpListener::bind(("127.0.0.1", port)).expect("rebind the gate's port");
            for conn in l.incoming() {
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        self
    }

    fn open(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Must hold 2.
#[test]
fn database_down_is_a_failure_with_a_reason_and_recovers_by_itself() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let gate = Gate::new(cluster.port());
    let url = format!(
        "postgresql://{}@127.0.0.1:{}/src",
        cluster.superuser(),
        gate.port
    );
    let config = write_config(
        &env,
        "serve.yaml",
        &url,
        "    schedule: \"* * * * * *\"\n    retention: {keep_last: 3}",
        "  lease: 3s",
    );
    let d = Daemon::start(&env, &config, "down");
    let failure = "lifeboat_backup_failures_total{reason=\"unreachable\",source=\"db\"}";
    poll(
        Duration::from_secs(120),
        "a failure with reason unreachable",
        || (d.metrics().val(failure) >= 2.0).then_some(()),
    );
    let m = d.metrics();
    assert_eq!(m.val("lifeboat_backups_total{source=\"db\"}"), 0.0, "{m:?}");
    assert!(
        m.get("lifeboat_backup_last_failure_timestamp_seconds{source=\"db\"}")
            .is_some()
    );
    let logged = d.log_lines().into_iter().any(|l| {
        l["level"] == "ERROR"
            && l["fields"]["message"] == "backup failed"
            && l["fields"]["source"] == "db"
            && l["fields"]["reason"] == "unreachable"
            && l["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot reach PostgreSQL"))
    });
    assert!(logged, "no failure log line:\n{}", d.log_text());
    let (code, body) = d.get("/api/v1/status", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["sources"][0]["last_failure"]["reason"], "unreachable",
        "{body}"
    );
    assert!(snapshots_of(&env, "db").is_empty());

    // The database comes back: the next slots succeed without anyone acting.
    gate.open();
    poll(
        Duration::from_secs(120),
        "a backup after the database returned",
        || (d.metrics().val("lifeboat_backups_total{source=\"db\"}") >= 1.0).then_some(()),
    );
    let m = d.metrics();
    assert!(
        m.val("lifeboat_backup_last_success_timestamp_seconds{source=\"db\"}")
            > m.val("lifeboat_backup_last_failure_timestamp_seconds{source=\"db\"}"),
        "{m:?}"
    );
    assert!(!snapshots_of(&env, "db").is_empty());
}

/// Must hold 3.
#[test]
fn api_backup_needs_the_bearer_token() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, env) = setup(&rt);
    // No schedule: only the API backs this source up.
    let config = write_config(&env, "serve.yaml", &cluster.url("src"), "", "  lease: 3s");
    let d = Daemon::start_active(&env, &config, "api");
    for token in [None, Some("wrong-token-wrong-token-wrong-tok")] {
        let (code, body) = d.post("/api/v1/sources/db/backup?wait=true", token);
        assert_eq!(code, 401, "{body}");
        assert!(!body.contains(TOKEN), "{body}");
        assert_eq!(d.get("/api/v1/status", token).0, 401);
        assert_eq!(d.get("/api/v1/snapshots", token).0, 401);
    }
    assert!(
        snapshots_of(&env, "db").is_empty(),
        "a refused request made a snapshot"
    );
    // Health and metrics are open.
    assert_eq!(d.get("/healthz", None).0, 200);
    assert_eq!(d.get("/metrics", None).0, 200);
    assert_eq!(d.post("/api/v1/sources/nope/backup", Some(TOKEN)).0, 404);

    let (code, body) = d.post("/api/v1/sources/db/backup?wait=true", Some(TOKEN));
    assert_eq!(code, 201, "{body}\n{}", d.log_text());
    let out: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["result"], "succeeded", "{body}");
    let id = out["snapshot"].as_str().unwrap();
    let snaps = snapshots_of(&env, "db");
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    assert_eq!(snaps[0]["id"], id);
    assert!(
        snaps[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "lifeboat-serve:api"),
        "{snaps:#?}"
    );
    // Without waiting: 202, and the snapshot appears.
    let (code, body) = d.post("/api/v1/sources/db/backup", Some(TOKEN));
    assert_eq!(code, 202, "{body}");
    poll(Duration::from_secs(120), "the second API backup", || {
        (snapshots_of(&env, "db").len() == 2).then_some(())
    });
}

/// Holds an ACCESS EXCLUSIVE lock on audit_events in an open transaction:
/// pg_dump (and the row counts) wait for it, so a backup is in progress for
/// as long as the test wants.
fn block_dumps(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> lifeboat_postgres::Client {
    rt.block_on(async {
        let c = cluster.conn_config("src").connect().await.unwrap();
        c.batch_execute("BEGIN; LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        c
    })
}

fn waiting_locks(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> i64 {
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .await
            .unwrap()
            .get(0)
    })
}

/// Waits until the daemon's backup of `db` runs and waits on a lock.
fn wait_for_held_backup(d: &Daemon, rt: &tokio::runtime::Runtime, cluster: &TempCluster) {
    poll(
        Duration::from_secs(60),
        "a backup waiting on the table lock",
        || {
            (d.metrics().val("lifeboat_backup_running{source=\"db\"}") == 1.0
                && waiting_locks(rt, cluster) > 0)
                .then_some(())
        },
    );
}

/// Must hold 4.
#[test]
fn sigterm_during_a_backup_exits_0_without_a_partial_snapshot() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, env) = setup(&rt);
    // A yearly schedule whose slot has passed and no snapshot: the daemon
    // backs up once at start (missed slot), and that backup is held.
    let source = "    schedule: \"0 0 1 1 *\"";

    // a) The grace period runs out: the backup is abandoned.
    let config = write_config(
        &env,
        "short.yaml",
        &cluster.url("src"),
        source,
        "  lease: 3s\n  grace_period: 2s",
    );
    let blocker = block_dumps(&rt, &cluster);
    let mut d = Daemon::start(&env, &config, "abandon");
    wait_for_held_backup(&d, &rt, &cluster);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(60)), Some(0), "{}", d.log_text());
    assert!(
        d.log_text().contains("backup abandoned"),
        "{}",
        d.log_text()
    );
    assert!(
        snapshots_of(&env, "db").is_empty(),
        "a partial snapshot was written"
    );
    env.ok(&["check", "--read-data"]);
    drop(blocker);

    // b) The backup finishes within the grace period: a whole snapshot.
    let config = write_config(
        &env,
        "long.yaml",
        &cluster.url("src"),
        source,
        "  lease: 3s\n  grace_period: 5m",
    );
    let blocker = block_dumps(&rt, &cluster);
    let mut d = Daemon::start(&env, &config, "finish");
    wait_for_held_backup(&d, &rt, &cluster);
    d.signal(libc::SIGTERM);
    // Taking no new work: not ready any more.
    poll(
        Duration::from_secs(30),
        "readyz to say shutting down",
        || {
            let (code, v) = d.role();
            (code == 503 && v["shutting_down"] == true).then_some(())
        },
    );
    drop(blocker);
    assert_eq!(
        d.wait(Duration::from_secs(120)),
        Some(0),
        "{}",
        d.log_text()
    );
    let snaps = snapshots_of(&env, "db");
    assert_eq!(snaps.len(), 1, "{snaps:#?}\n{}", d.log_text());
    env.ok(&["check", "--read-data"]);
    // The finished snapshot restores.
    let out = env.ok(&[
        "restore",
        "postgres",
        snaps[0]["id"].as_str().unwrap(),
        "--target",
        &cluster.url("copy"),
    ]);
    assert!(out.contains("every fact verified"), "{out}");
}

/// Must hold 5.
#[test]
fn two_daemons_one_active_and_takeover_after_a_kill() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let lease = Duration::from_secs(4);
    let config = write_config(
        &env,
        "serve.yaml",
        &cluster.url("src"),
        "    schedule: \"*/2 * * * * *\"\n    retention: {keep_last: 3}",
        "  lease: 4s",
    );
    let a = Daemon::start_active(&env, &config, "a");
    let b = Daemon::start(&env, &config, "b");
    poll(Duration::from_secs(60), "b to stand by", || {
        let (code, v) = b.role();
        (code == 503 && v["role"] == "standby").then_some(())
    });
    // While a is alive, only a backs up.
    let start = a.metrics().val("lifeboat_backups_total{source=\"db\"}");
    poll(
        Duration::from_secs(120),
        "a to run two more backups",
        || (a.metrics().val("lifeboat_backups_total{source=\"db\"}") >= start + 2.0).then_some(()),
    );
    let mb = b.metrics();
    assert_eq!(
        mb.val("lifeboat_backups_total{source=\"db\"}"),
        0.0,
        "{mb:?}"
    );
    assert_eq!(mb.val("lifeboat_backup_running{source=\"db\"}"), 0.0);
    assert_eq!(mb.val("lifeboat_lease_active"), 0.0);
    assert_eq!(a.metrics().val("lifeboat_lease_active"), 1.0);
    assert_eq!(
        b.role().1["holder"]
            .as_str()
            .map(|h| h.contains(&format!("/{}/", a.pid()))),
        Some(true)
    );
    // The standby refuses API backups and says who is active.
    let (code, body) = b.post("/api/v1/sources/db/backup", Some(TOKEN));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("standby"), "{body}");

    a.signal(libc::SIGKILL);
    let killed = Instant::now();
    poll(Duration::from_secs(60), "b to take over", || {
        (b.role().0 == 200).then_some(())
    });
    let took = killed.elapsed();
    // The lease plus one read interval and the settle pause, with room for
    // a loaded machine.
    assert!(
        took < lease * 4,
        "takeover took {took:?} with a {lease:?} lease"
    );
    poll(Duration::from_secs(120), "b to back up", || {
        (b.metrics().val("lifeboat_backups_total{source=\"db\"}") >= 1.0).then_some(())
    });
    assert!(
        b.log_lines()
            .iter()
            .any(|l| l["fields"]["role"] == "active"),
        "{}",
        b.log_text()
    );
    drop(a);
}

/// A Kubernetes source (the seed's daily ConfigMaps and Secrets) scheduled
/// by the daemon, in an IANA time zone, against the Kubernetes API test
/// double, with the API token read from a Kubernetes Secret reference. The
/// backups print nothing on the daemon's stdout (the CLI's report is the
/// CLI's).
#[test]
fn kube_source_on_schedule_and_token_from_a_kubernetes_secret() {
    let _alone = crate::alone::alone(module_path!());
    use base64::Engine;
    let ns = "kubernaut-system";
    let api = kube_double::ApiDouble::start_in_thread();
    let env = Env::init();
    let kubeconfig = env.path("double.kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    api.insert(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    );
    api.insert(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rego-policies", "namespace": ns},
        "data": {"approval.rego": "package kubernaut.approval\n"}}));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    api.insert(serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lifeboat-api-token", "namespace": ns},
        "type": "Opaque", "data": {"token": b64(TOKEN)}}));
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
kubernetes:
  kubeconfig: {kc}
sources:
  cfg:
    kind: kube
    schedule: \"* * * * * *\"
    timezone: Europe/Berlin
    retention: {{keep_last: 2}}
    kube: {{namespaces: [{ns}], kinds: [configmaps, secrets]}}
serve:
  lease: 3s
  token:
    kubernetes_secret: {{name: lifeboat-api-token, key: token, namespace: {ns}}}
",
        repo = env.repo,
        kc = kubeconfig.display()
    );
    let config = env.path("kube.yaml");
    std::fs::write(&config, text).unwrap();
    let d = Daemon::start(&env, &config, "kube");
    poll(Duration::from_secs(120), "two kube backups", || {
        (d.metrics().val("lifeboat_backups_total{source=\"cfg\"}") >= 2.0).then_some(())
    });
    let snaps = snapshots_of(&env, "cfg");
    assert!(!snaps.is_empty() && snaps.len() <= 3, "{snaps:#?}");
    assert!(snaps.iter().all(|s| s["kind"] == "kube"), "{snaps:#?}");
    // The token from the Secret opens the API; nothing else does.
    assert_eq!(d.get("/api/v1/status", None).0, 401);
    let (code, body) = d.get("/api/v1/status", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cfg = &status["sources"][0];
    assert_eq!(cfg["name"], "cfg", "{status:#}");
    assert_eq!(cfg["timezone"], "Europe/Berlin", "{status:#}");
    assert!(cfg["next_run"].is_string(), "{status:#}");
    assert!(!d.log_text().contains(TOKEN), "the token reached the logs");
    let out = std::fs::read_to_string(&d.out).unwrap();
    assert!(out.is_empty(), "the daemon printed on stdout:\n{out}");
}

/// An unknown time zone name is a configuration error at start (exit 2),
/// located like every other one.
#[test]
fn unknown_time_zone_is_refused_at_start_with_its_position() {
    let _alone = crate::alone::alone(module_path!());
    let env = Env::init();
    let config = write_config(
        &env,
        "tz.yaml",
        "postgresql://kubernaut@127.0.0.1:1/kubernaut",
        "    schedule: \"0 2 * * *\"\n    timezone: Europe/Atlantis",
        "",
    );
    let o = env.run(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:11:15: ", config.display())),
        "{err}"
    );
    assert!(
        err.contains("unknown time zone \"Europe/Atlantis\""),
        "{err}"
    );
}

/// Issue 16: a local repository moved away under a running daemon. The API
/// backup fails with reason `repository` (it answered 201 and wrote a
/// snapshot into a fresh directory without marker, keys or config),
/// `/readyz` is not ready, the page answers 502, and nothing is created at
/// the old path.
#[test]
fn a_repository_moved_away_fails_runs_and_is_not_created_again() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, env) = setup(&rt);
    // A long lease: the daemon stays active while the test looks.
    let config = write_config(&env, "serve.yaml", &cluster.url("src"), "", "  lease: 120s");
    let d = Daemon::start_active(&env, &config, "moved");
    let repo = PathBuf::from(&env.repo);
    let moved = env.path("repo-moved-away");
    std::fs::rename(&repo, &moved).unwrap();

    let (code, body) = d.post("/api/v1/sources/db/backup?wait=true", Some(TOKEN));
    assert_eq!(code, 500, "{body}\n{}", d.log_text());
    let out: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["result"], "failed", "{body}");
    assert_eq!(out["reason"], "repository", "{body}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("no repository here"),
        "{body}"
    );
    let (code, ready) = d.role();
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["ready"], false, "{ready}");
    assert!(ready["repository_error"].is_string(), "{ready}");
    let (code, page) = d.get("/", None);
    assert_eq!(code, 502, "{page}");
    assert!(
        !repo.exists(),
        "the daemon created the repository root again"
    );

    // Moved back: ready again, and the next backup succeeds.
    std::fs::rename(&moved, &repo).unwrap();
    d.wait_active();
    let (code, body) = d.post("/api/v1/sources/db/backup?wait=true", Some(TOKEN));
    assert_eq!(code, 201, "{body}\n{}", d.log_text());
    assert_eq!(snapshots_of(&env, "db").len(), 1);
}

/// A source's password from a `kubernetes_secret` reference is read at each
/// run, not once when the daemon starts: with a wrong password in the Secret
/// the backup fails; the Secret rotated to the right password, the next
/// run succeeds without a restart.
#[test]
fn a_rotated_kubernetes_secret_is_taken_at_the_next_run() {
    let _alone = crate::alone::alone(module_path!());
    use base64::Engine;
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let ns = "kubernaut-system";
    let api = kube_double::ApiDouble::start_in_thread();
    let kubeconfig = env.path("double.kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    api.insert(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    );
    let secret = |password: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(password);
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "postgresql-credentials", "namespace": ns},
            "type": "Opaque", "data": {"password": b64}})
    };
    let wrong = "not-the-password-7f3c1e9a";
    api.insert(secret(wrong));
    let config = write_config(
        &env,
        "rotate.yaml",
        &cluster.url("src"),
        &format!(
            "      password:\n        kubernetes_secret: {{name: postgresql-credentials, key: password, namespace: {ns}}}"
        ),
        &format!(
            "  lease: 120s\nkubernetes:\n  kubeconfig: {}",
            kubeconfig.display()
        ),
    );
    let d = Daemon::start_active(&env, &config, "rotate");
    let reads = || {
        api.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/secrets/postgresql-credentials"))
            .count()
    };
    assert_eq!(reads(), 0, "read before a run used it");

    let (code, body) = d.post("/api/v1/sources/db/backup?wait=true", Some(TOKEN));
    assert_eq!(code, 500, "{body}\n{}", d.log_text());
    let out: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["result"], "failed", "{body}");
    assert!(!body.contains(wrong), "{body}");
    assert!(reads() >= 1, "the run did not read the Secret");
    assert!(snapshots_of(&env, "db").is_empty());

    // Rotated: the next run takes the new value.
    let before = reads();
    api.insert(secret(cluster.password().expose()));
    let (code, body) = d.post("/api/v1/sources/db/backup?wait=true", Some(TOKEN));
    assert_eq!(code, 201, "{body}\n{}", d.log_text());
    assert!(
        reads() > before,
        "the second run did not read the Secret again"
    );
    assert_eq!(snapshots_of(&env, "db").len(), 1);
    assert!(
        !d.log_text().contains(wrong),
        "the password reached the logs"
    );
}
