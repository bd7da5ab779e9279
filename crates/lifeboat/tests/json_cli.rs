//! `--json` everywhere (issue 17): every command and subcommand, once in
//! success and once in a failure case, prints exactly one JSON document on
//! stdout (parsed whole); on failure it carries `error` {kind, message,
//! hint, exit_code} with `exit_code` equal to the process's exit code.
//! Real components: local repositories, a throwaway PostgreSQL, the
//! Kubernetes API test double.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use kube_double::ApiDouble;
use serde_json::{Value, json};

const NS: &str = "kubernaut-system";

/// The commands covered, as `Command`'s names (checked against `--help`).
const COVERED: &[&str] = &[
    "init",
    "key",
    "backup",
    "restore",
    "export",
    "unquiesce",
    "snapshots",
    "check",
    "forget",
    "prune",
    "unlock",
    "repair",
    "verify",
    "demo",
    "serve",
    "drill",
    "drills",
    "status",
    "readiness",
    "copy",
    "region",
    "wal",
    // Its success (and more failures) with --json: physical_recover.rs.
    "recover",
];

/// Parses stdout as exactly one JSON document and checks the error member
/// against the exit code. Returns (document, exit code).
fn parse(what: &str, o: &Output) -> (Value, i32) {
    let code = o.status.code().expect("exited");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{what}: stdout is not exactly one JSON document ({e}):\n{stdout}\nstderr: {stderr}")
    });
    if code == 0 {
        assert!(
            doc.get("error").is_none(),
            "{what}: success with an error: {doc:#}"
        );
    } else {
        let e = &doc["error"];
        assert_eq!(e["exit_code"], code, "{what}: {doc:#}\nstderr: {stderr}");
        for k in ["kind", "message", "hint"] {
            assert!(
                e[k].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: error.{k} missing: {doc:#}"
            );
        }
    }
    (doc, code)
}

/// Runs `args` (with `--json` first) in `env`; expects exit `code`.
fn run(env: &Env, args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = env.run(&all);
    let (doc, got) = parse(&format!("{args:?}"), &o);
    assert_eq!(
        got,
        code,
        "{args:?}: {doc:#}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    doc
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

/// Every command of `lifeboat --help` is in [`COVERED`].
#[test]
fn every_command_is_covered() {
    let o = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    let listed: BTreeSet<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .collect();
    let covered: BTreeSet<&str> = COVERED.iter().copied().collect();
    assert_eq!(listed, covered, "a command without a --json test case");
}

/// Repository commands, stream backup and restore, keys.
#[test]
fn repository_commands_print_one_document() {
    // init: success, then failure (already a repository).
    let e = Env::new();
    let d = run(&e, &["init"], 0);
    assert!(d.is_object(), "{d}");
    let d = run(&e, &["init"], 2);
    assert_eq!(d["error"]["kind"], "usage");

    // backup stream.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let snap = e.backup_bytes("data", &data);
    let id = snap["id"].as_str().unwrap().to_string();
    run(&e, &["backup", "stream", "--name", ""], 2);

    // restore stream: -o prints the result; without -o it is refused.
    let out = e.path("restored");
    let d = run(
        &e,
        &["restore", "stream", &id, "-o", out.to_str().unwrap()],
        0,
    );
    assert_eq!(d["bytes"], data.len() as u64, "{d:#}");
    assert_eq!(d["id"], id.as_str());
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let d = run(&e, &["restore", "stream", &id], 2);
    assert!(
        d["error"]["message"].as_str().unwrap().contains("--output"),
        "{d:#}"
    );
    run(&e, &["restore", "stream", "0000ffff", "-o", "x"], 3);

    // snapshots: a list on success; no repository: not found.
    let d = run(&e, &["snapshots"], 0);
    assert_eq!(d.as_array().unwrap().len(), 1);
    let missing = Env::new();
    let d = run(&missing, &["snapshots"], 3);
    assert_eq!(d.as_object().unwrap().len(), 1, "error alone: {d:#}");

    // wal: the listing on success; fetch of a name not archived: not found
    // (exit 3); push of a file PostgreSQL never archives: usage (exit 2).
    let d = run(&e, &["wal", "list"], 0);
    assert!(d.is_object(), "{d:#}");
    let dest = e.path("segment");
    let d = run(
        &e,
        &[
            "wal",
            "fetch",
            "000000010000000000000001",
            dest.to_str().unwrap(),
        ],
        3,
    );
    assert!(d["error"]["message"].is_string(), "{d:#}");
    assert!(!dest.exists());
    let junk = e.path("not-a-segment");
    std::fs::write(&junk, b"x").unwrap();
    run(&e, &["wal", "push", junk.to_str().unwrap()], 2);

    // recover postgres: a moment that does not parse, and a source without
    // a configuration file: usage (exit 2). Its success with --json is
    // physical_recover.rs's.
    let d = run(
        &e,
        &["recover", "postgres", "--source", "db", "--before", "10:47"],
        2,
    );
    assert!(
        d["error"]["message"].as_str().unwrap().contains("RFC 3339"),
        "{d:#}"
    );
    run(
        &e,
        &[
            "recover",
            "postgres",
            "--source",
            "db",
            "--before",
            "2026-01-01T00:00:00Z",
        ],
        2,
    );

    // keys: add, list, remove; failures: no such key, wrong passphrase.
    let key = e.path("extra.key");
    let d = run(
        &e,
        &["key", "add", "--new-key-file", key.to_str().unwrap()],
        0,
    );
    let key_id = d["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{d:#}"))
        .to_string();
    let d = run(&e, &["key", "list"], 0);
    assert_eq!(d.as_array().unwrap().len(), 2, "{d:#}");
    run(&e, &["key", "remove", &key_id], 0);
    run(&e, &["key", "remove", "0123abcd"], 3);
    let mut wrong = Env::new();
    wrong.repo = e.repo.clone();
    wrong.envs = vec![("LIFEBOAT_PASSWORD".into(), "wrong".into())];
    let d = run(&wrong, &["key", "list"], 6);
    assert_eq!(d["error"]["kind"], "auth");

    // forget, prune, unlock, repair index.
    let d = run(&e, &["forget", "--keep-last", "1"], 0);
    assert!(d["groups"].is_array(), "{d:#}");
    let d = run(&e, &["forget", "--source", "nope", "--keep-last", "1"], 3);
    assert_eq!(d["error"]["kind"], "not_found");
    run(&e, &["prune"], 0);
    run(&wrong, &["prune"], 6);
    let d = run(&e, &["unlock"], 0);
    assert!(d.is_array(), "{d:#}");
    run(&missing, &["unlock"], 3);
    run(&e, &["repair", "index"], 0);
    run(&missing, &["repair", "index"], 3);

    // copy: into a second repository; failure: a target that is not one.
    let target = Env::new();
    run(&target, &["init"], 0);
    let mut to = Env::new();
    to.repo = e.repo.clone();
    to.envs
        .push(("LIFEBOAT_TO_PASSWORD".into(), PASSWORD.into()));
    let d = run(&to, &["copy", "--to", &target.repo], 0);
    assert!(d.is_object(), "{d:#}");
    let d = run(&target, &["snapshots"], 0);
    assert_eq!(d.as_array().unwrap().len(), 1, "the copy: {d:#}");
    let nowhere = e.path("not-a-repository");
    run(&to, &["copy", "--to", nowhere.to_str().unwrap()], 3);

    // check: success; a truncated pack: the report with the error merged in.
    let d = run(&e, &["check", "--read-data"], 0);
    assert!(d["errors"].as_array().unwrap().is_empty(), "{d:#}");
    let pack = walk(&Path::new(&e.repo).join("data"))
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let len = pack.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let d = run(&e, &["check", "--read-data"], 4);
    assert!(!d["errors"].as_array().unwrap().is_empty(), "{d:#}");
    assert_eq!(d["error"]["kind"], "integrity");

    // A command line that does not parse still answers with a document.
    let d = run(&e, &["snapshots", "--no-such-flag"], 2);
    assert_eq!(d["error"]["kind"], "usage");
}

fn write_config(env: &Env, cluster: &lifeboat_postgres::TempCluster, kubeconfig: &Path) -> String {
    let token = write_token(env);
    let path = env.path("lifeboat.yaml");
    std::fs::write(
        &path,
        format!(
            "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
kubernetes:
  kubeconfig: {kc}
sources:
  db:
    kind: postgres
    schedule: \"0 0 1 1 *\"
    retention:
      keep_last: 5
    postgres:
      url: \"{url}\"
    quiesce:
      namespace: {NS}
      deployments: [writer]
      timeout: 30s
    covers: [database-corruption]
    drill:
      schedule: \"0 4 1 * *\"
objectives:
  - {{scenario: database-corruption, rto: 30m, rpo: 1h, priority: P1}}
serve:
  token: {{file: {token}}}
readiness:
  attestations:
    on-call: {{by: Jane Roe, date: 2026-11-01}}
",
            repo = env.repo,
            kc = kubeconfig.display(),
            url = cluster.url("src"),
            token = token.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// GET `path` on 127.0.0.1:`port`; the status code, if it answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    r.split_whitespace().nth(1)?.parse().ok()
}

/// PostgreSQL and Kubernetes commands, the daemon, drills, status,
/// readiness and the demo.
#[test]
fn postgres_kube_daemon_and_assessment_commands_print_one_document() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let api = ApiDouble::start_in_thread();
    let kubeconfig = env.path("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": NS}, "data": {"a": "b"}}));
    api.insert(deployment("writer", 2));
    let cfg = write_config(&env, &cluster, &kubeconfig);
    let c = cfg.as_str();
    let kc = kubeconfig.to_str().unwrap();

    // backup postgres: success; failure: a database that does not exist.
    let snap = run(
        &env,
        &["--config", c, "backup", "postgres", "--source", "db"],
        0,
    );
    let snap_id = snap["id"].as_str().unwrap().to_string();
    run(
        &env,
        &["backup", "postgres", "--db", &cluster.url("no_such_db")],
        3,
    );

    // verify: success; failure: differences (the result with the error).
    let d = run(
        &env,
        &[
            "--config",
            c,
            "verify",
            "latest",
            "--source",
            "db",
            "--target",
            &cluster.url("src"),
        ],
        0,
    );
    assert!(d.is_object(), "{d:#}");
    rt.block_on(async {
        let cl = cluster.conn_config("src").connect().await.unwrap();
        cl.batch_execute("CREATE TABLE json_cli_extra (x int)")
            .await
            .unwrap();
    });
    let d = run(
        &env,
        &[
            "--config",
            c,
            "verify",
            "latest",
            "--source",
            "db",
            "--target",
            &cluster.url("src"),
        ],
        7,
    );
    assert_eq!(d["error"]["kind"], "verify_failed", "{d:#}");
    rt.block_on(async {
        let cl = cluster.conn_config("src").connect().await.unwrap();
        cl.batch_execute("DROP TABLE json_cli_extra").await.unwrap();
    });

    // restore postgres: into a new database; failure: no such snapshot.
    let d = run(
        &env,
        &[
            "restore",
            "postgres",
            &snap_id,
            "--target",
            &cluster.url("copy"),
            "--no-quiesce",
        ],
        0,
    );
    assert_eq!(d["snapshot"], snap_id.as_str(), "{d:#}");
    run(
        &env,
        &[
            "restore",
            "postgres",
            "abcd0000",
            "--target",
            &cluster.url("copy2"),
            "--no-quiesce",
        ],
        3,
    );

    // backup kube, restore kube (dry run), export kube; failures.
    let k = run(
        &env,
        &[
            "backup",
            "kube",
            "--namespace",
            NS,
            "--kind",
            "configmaps",
            "--kubeconfig",
            kc,
        ],
        0,
    );
    let kube_id = k["id"].as_str().unwrap().to_string();
    let dead = env.path("dead.kubeconfig");
    std::fs::write(
        &dead,
        api.kubeconfig()
            .replace(&api.url(), &format!("http://127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let mut dead_env = Env::new();
    dead_env.repo = env.repo.clone();
    dead_env
        .envs
        .push(("LIFEBOAT_KUBE_RETRY_BUDGET".into(), "1s".into()));
    let d = parse(
        "backup kube, dead cluster",
        &dead_env.run(&[
            "--json",
            "backup",
            "kube",
            "--namespace",
            NS,
            "--kind",
            "configmaps",
            "--kubeconfig",
            dead.to_str().unwrap(),
        ]),
    );
    assert_ne!(d.1, 0, "{:#}", d.0);
    run(
        &env,
        &["restore", "kube", &kube_id, "--dry-run", "--kubeconfig", kc],
        0,
    );
    run(
        &env,
        &[
            "restore",
            "kube",
            "abcd0000",
            "--dry-run",
            "--kubeconfig",
            kc,
        ],
        3,
    );
    let dir = env.path("export");
    run(
        &env,
        &["export", "kube", &kube_id, "--dir", dir.to_str().unwrap()],
        0,
    );
    run(
        &env,
        &["export", "kube", "abcd0000", "--dir", dir.to_str().unwrap()],
        3,
    );

    // unquiesce: nothing quiesced; failure: an unknown source.
    let d = run(&env, &["--config", c, "unquiesce", "--source", "db"], 0);
    assert_eq!(d["not_quiesced"], 1, "{d:#}");
    run(&env, &["--config", c, "unquiesce", "--source", "nope"], 2);

    // check (evidence for readiness), the daemon holding the lease, a drill.
    run(&env, &["--config", c, "check", "--read-data"], 0);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = env
        .cmd(&["--json", "--config", c, "serve", "--listen", &listen])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path("serve.log")).unwrap())
        .spawn()
        .unwrap();
    poll(Duration::from_secs(60), "the daemon to be active", || {
        (http_status(port, "/readyz") == Some(200)).then_some(())
    });
    let d = run(&env, &["--config", c, "drill", "--source", "db"], 0);
    assert_eq!(d["ok"], true, "{d:#}");
    let d = run(&env, &["--config", c, "drills"], 0);
    assert!(d.is_array(), "{d:#}");
    run(&missing_repo(), &["drills"], 3);
    let empty = Env::init();
    run(&empty, &["drill", "--db", &cluster.url("src")], 3);

    // status and readiness: whatever they judge, one document whose error
    // (if any) carries the exit code; failures: no configuration.
    let (st, _) = parse("status", &env.run(&["--json", "--config", c, "status"]));
    assert!(st["verdict"].is_string(), "{st:#}");
    let (r, _) = parse(
        "readiness",
        &env.run(&["--json", "--config", c, "readiness"]),
    );
    assert!(r["items"].is_array(), "{r:#}");
    run(&empty, &["status"], 2);
    run(&empty, &["readiness"], 2);
    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(3)).to_rfc3339();
    let d = run(&env, &["--config", c, "status", "--as-of", &later], 10);
    assert_eq!(d["verdict"], "at_risk", "{d:#}");

    // serve: stops on SIGTERM with its result; a startup failure: the error.
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) }, 0);
    let mut out = String::new();
    daemon
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("serve: {e}: {out}"));
    assert_eq!(d, json!({"stopped": true}));
    let d = run(&empty, &["serve"], 2);
    assert_eq!(d["error"]["kind"], "usage");

    // region status: one primary region (healthy); a standby that does not
    // answer: degraded, the report with the error merged in.
    let region_cfg = |standby: bool| {
        let mut yaml = format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\n\
             objectives:\n  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}}\n\
             regions:\n  us-east:\n    postgres:\n      url: postgresql://{user}@127.0.0.1:{port}/postgres\n\
             \x20     password: {{env: REGION_PG_PASSWORD}}\n      role: primary\n",
            repo = env.repo,
            user = cluster.superuser(),
            port = cluster.port(),
        );
        if standby {
            yaml.push_str(&format!(
                "  eu-west:\n    postgres:\n      url: postgresql://{user}@127.0.0.1:{port}/postgres\n\
                 \x20     password: {{env: REGION_PG_PASSWORD}}\n      role: standby\n\
                 \x20     replicates_from: us-east\n",
                user = cluster.superuser(),
                port = free_port(),
            ));
        }
        let path = env.path(if standby { "two.yaml" } else { "one.yaml" });
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    };
    let mut regional = Env::new();
    regional.repo = env.repo.clone();
    regional.envs = env.envs.clone();
    regional.envs.push((
        "REGION_PG_PASSWORD".into(),
        cluster.password().expose().to_string(),
    ));
    let one = region_cfg(false);
    let d = run(&regional, &["--config", &one, "region", "status"], 0);
    assert_eq!(d["regions"].as_array().unwrap().len(), 1, "{d:#}");
    let two = region_cfg(true);
    let d = run(&regional, &["--config", &two, "region", "status"], 10);
    assert_eq!(d["regions"].as_array().unwrap().len(), 2, "{d:#}");
    // No `traffic:` section: a usage error that says so.
    run(
        &regional,
        &["--config", &one, "region", "traffic", "status"],
        2,
    );

    // demo: the whole loop; a failure: no place for its temporary files.
    let d = run(&env, &["demo"], 0);
    assert_eq!(d["restored_and_verified"], true, "{d:#}");
    let mut no_tmp = Env::new();
    no_tmp
        .envs
        .push(("TMPDIR".into(), "/nonexistent/tmp".into()));
    let d = run(&no_tmp, &["demo"], 1);
    assert_eq!(d["error"]["kind"], "failure");
}

fn missing_repo() -> Env {
    Env::new()
}
