//! `docs/exit-codes.md`, row by row (issue 17): the main table is read from
//! the document, and for every row a typical cause is provoked through the
//! real CLI, with `--json`; the process's exit code must be the row's, and
//! (but for 0) the JSON error's `kind` and `exit_code` the row's too. A row
//! added to the document without a case here fails the test.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// (code, kind) of every row of the main table of docs/exit-codes.md.
fn documented_rows() -> Vec<(i32, String)> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/exit-codes.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| code |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Ok(code) = cells[1].parse::<i32>() else {
                continue; // the |---:| line
            };
            rows.push((code, cells[2].trim_matches('`').to_string()));
        }
    }
    assert!(rows.len() >= 13, "table not found in {}", doc.display());
    rows
}

/// Parses stdout as exactly one JSON document.
fn doc(o: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{stdout}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Things some rows share: one PostgreSQL cluster, started on first use.
struct World {
    rt: tokio::runtime::Runtime,
    pg: Option<(lifeboat_postgres::TempCluster, Env)>,
}

impl World {
    fn pg(
        &mut self,
    ) -> (
        &tokio::runtime::Runtime,
        &lifeboat_postgres::TempCluster,
        &Env,
    ) {
        if self.pg.is_none() {
            self.pg = Some(setup(&self.rt));
        }
        let (c, e) = self.pg.as_ref().unwrap();
        (&self.rt, c, e)
    }
}

fn json_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--json"];
    v.extend_from_slice(args);
    v
}

/// A stream snapshot of a few packs' worth of data in a fresh repository.
fn with_stream_snapshot() -> Env {
    let e = Env::init();
    let mut rng = Rng::new(17);
    let mut data = vec![0u8; 6 << 20];
    rng.fill(&mut data);
    e.backup_bytes("data", &data);
    e
}

/// Provokes a typical cause of `code`; returns the process's output.
fn provoke(code: i32, w: &mut World) -> Output {
    match code {
        // Success.
        0 => Env::init().run(&json_args(&["snapshots"])),
        // "A local file that cannot be written": restoring into a missing
        // directory.
        1 => {
            let e = with_stream_snapshot();
            let out = e.path("no/such/dir/out");
            e.run(&json_args(&[
                "restore",
                "stream",
                "latest",
                "--name",
                "data",
                "-o",
                out.to_str().unwrap(),
            ]))
        }
        // Usage: a repository URL with an unknown scheme (was 8).
        2 => {
            let e = Env::new();
            let mut c = e.cmd(&["--json", "snapshots"]);
            c.arg("--repo").arg("ftp://example.com/backups");
            c.stdin(Stdio::null()).output().unwrap()
        }
        // Not found: no such snapshot.
        3 => Env::init().run(&json_args(&["restore", "stream", "deadbeef", "-o", "x"])),
        // Integrity: a pack truncated on storage, found by a restore (was 8).
        4 => {
            let e = with_stream_snapshot();
            let pack = biggest_pack(Path::new(&e.repo));
            let len = pack.metadata().unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
            f.set_len(len / 2).unwrap();
            let out = e.path("restored");
            let o = e.run(&json_args(&[
                "restore",
                "stream",
                "latest",
                "--name",
                "data",
                "-o",
                out.to_str().unwrap(),
            ]));
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                stderr.contains("shorter than its index says"),
                "the message names the truncated pack: {stderr}"
            );
            assert!(!out.exists(), "a failed restore left its output file");
            o
        }
        // Locked: another process holds the exclusive lock.
        5 => {
            let e = Env::init();
            let rt = &w.rt;
            let guard = rt.block_on(async {
                let storage =
                    lifeboat_repo::storage::object::open_url(&e.repo, &Default::default()).unwrap();
                let repo = lifeboat_repo::Repository::open(
                    storage,
                    &lifeboat_repo::Secret::Passphrase(PASSWORD.into()),
                )
                .await
                .unwrap();
                lifeboat_repo::lock::acquire(
                    &repo,
                    lifeboat_repo::lock::LockMode::Exclusive,
                    "prune",
                )
                .await
                .unwrap()
            });
            let o = e.run(&json_args(&["check"]));
            rt.block_on(guard.release()).unwrap();
            o
        }
        // Authentication: a wrong passphrase.
        6 => {
            let mut e = Env::init();
            e.envs = vec![("LIFEBOAT_PASSWORD".into(), "wrong".into())];
            e.run(&json_args(&["snapshots"]))
        }
        // Verification failed: a live database that differs from the facts.
        7 => {
            let (rt, cluster, env) = w.pg();
            let url = cluster.url("src");
            env.ok(&["backup", "postgres", "--db", &url]);
            let src = cluster.conn_config("src");
            rt.block_on(async {
                let c = src.connect().await.unwrap();
                c.batch_execute(
                    "DELETE FROM remediation_history WHERE ctid IN (SELECT ctid FROM remediation_history LIMIT 1)",
                )
                .await
                .unwrap();
            });
            env.run(&json_args(&["verify", "latest", "--target", &url]))
        }
        // Storage: the S3 endpoint is unreachable (after retries).
        8 => {
            let e = Env::new();
            let cfg = e.path("s3.yaml");
            std::fs::write(
                &cfg,
                format!(
                    "repository:\n  url: s3://bucket/prefix\n  s3:\n    endpoint: http://127.0.0.1:{}\n    region: us-east-1\n    allow_http: true\n",
                    free_port()
                ),
            )
            .unwrap();
            let mut c = Command::new(bin());
            c.args(["--json", "--config", cfg.to_str().unwrap(), "snapshots"]);
            clean_env(&mut c);
            c.env("LIFEBOAT_PASSWORD", PASSWORD)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .current_dir(e.dir.path());
            c.stdin(Stdio::null()).output().unwrap()
        }
        // Incompatible: a repository written by a newer Lifeboat.
        9 => {
            let e = Env::init();
            let marker = Path::new(&e.repo).join("lifeboat.repo");
            let text = std::fs::read_to_string(&marker)
                .unwrap()
                .replace("\"version\": 1", "\"version\": 2");
            std::fs::write(&marker, text).unwrap();
            e.run(&json_args(&["snapshots"]))
        }
        // At risk: a source backed up but never drilled.
        10 => {
            let (_, cluster, env) = w.pg();
            let cfg = env.path("status.yaml");
            std::fs::write(
                &cfg,
                format!(
                    "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\nsources:\n  db:\n    kind: postgres\n    schedule: \"0 * * * *\"\n    retention:\n      keep_last: 5\n    postgres:\n      url: \"{url}\"\n    covers: [database-corruption]\nobjectives:\n  - {{scenario: database-corruption, rto: 30m, rpo: 1h, priority: P1}}\n",
                    repo = env.repo,
                    url = cluster.url("src"),
                ),
            )
            .unwrap();
            let c = cfg.to_str().unwrap();
            env.ok(&["--config", c, "backup", "postgres", "--source", "db"]);
            let o = env.run(&["--json", "--config", c, "status"]);
            let d = doc(&o);
            assert_eq!(d["verdict"], "at_risk", "{d:#}");
            o
        }
        // Partial target: a snapshot of one table (no functions, no
        // extensions) restored into an empty database: pg_restore fails
        // after it began writing into the target.
        11 => {
            let (_, cluster, env) = w.pg();
            let snap = env.ok(&[
                "--json",
                "backup",
                "postgres",
                "--db",
                &cluster.url("src"),
                "--table",
                "audit_events",
            ]);
            let snap: serde_json::Value = serde_json::from_str(&snap).unwrap();
            let o = env.run(&json_args(&[
                "restore",
                "postgres",
                snap["id"].as_str().unwrap(),
                "--target",
                &cluster.url("fresh_partial"),
                "--no-quiesce",
            ]));
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(stderr.contains("the target is partial"), "{stderr}");
            o
        }
        // Interrupted: SIGINT during a backup (once its lock is taken).
        130 => {
            let e = Env::init();
            let mut child = e
                .cmd(&["--json", "backup", "stream", "--name", "interrupted"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&[7u8; 100_000]).unwrap();
            let locks = Path::new(&e.repo).join("locks");
            poll(Duration::from_secs(60), "the backup's lock", || {
                std::fs::read_dir(&locks)
                    .ok()
                    .and_then(|mut d| d.next())
                    .map(|_| ())
            });
            // SAFETY: kill(2) on our own child.
            assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
            let o = child.wait_with_output().unwrap();
            drop(stdin);
            o
        }
        other => panic!(
            "docs/exit-codes.md documents exit code {other}, and this test has no case that provokes it: add one"
        ),
    }
}

fn clean_env(c: &mut Command) {
    for k in [
        "LIFEBOAT_PASSWORD",
        "LIFEBOAT_REPO",
        "LIFEBOAT_CONFIG",
        "LIFEBOAT_KEY_FILE",
        "LIFEBOAT_PASSWORD_FILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT",
        "AWS_METADATA_ENDPOINT",
    ] {
        c.env_remove(k);
    }
}

fn biggest_pack(repo: &Path) -> PathBuf {
    walk(&repo.join("data"))
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .expect("a pack")
}

#[test]
fn every_row_of_docs_exit_codes_is_provoked_through_the_cli() {
    let mut w = World { rt: rt(), pg: None };
    for (code, kind) in documented_rows() {
        let o = provoke(code, &mut w);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(code),
            "row {code} ({kind}): stdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&o.stdout)
        );
        let d = doc(&o);
        if code == 0 {
            assert!(d.get("error").is_none(), "{d:#}");
            continue;
        }
        let e = &d["error"];
        assert_eq!(e["exit_code"], code, "row {code}: {d:#}");
        assert_eq!(e["kind"], kind.as_str(), "row {code}: {d:#}");
        assert!(
            !e["message"].as_str().unwrap_or("").is_empty()
                && !e["hint"].as_str().unwrap_or("").is_empty(),
            "row {code}: {d:#}"
        );
    }
}

/// S3 with no credential source configured: the instance metadata service
/// fails, and the message says "no AWS credentials found" and what to set,
/// at once (not retried), instead of the metadata service's answer alone.
#[test]
fn s3_without_credentials_says_so() {
    let e = Env::new();
    let cfg = e.path("s3.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: s3://bucket/prefix\n  s3:\n    endpoint: http://127.0.0.1:{}\n    region: us-east-1\n    allow_http: true\n",
            free_port()
        ),
    )
    .unwrap();
    let mut c = Command::new(bin());
    c.args(["--config", cfg.to_str().unwrap(), "snapshots"]);
    clean_env(&mut c);
    let started = std::time::Instant::now();
    let o = c
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env(
            "AWS_METADATA_ENDPOINT",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .current_dir(e.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("no AWS credentials found")
            && stderr.contains("AWS_ACCESS_KEY_ID")
            && stderr.contains("IAM role"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retried a missing credential: {:?}",
        started.elapsed()
    );
}

/// An ambiguous snapshot id prefix lists the candidates (id, time, source).
/// Ids are digests of sealed documents: tiny snapshots are made in process
/// until two share the 4 hex digits the CLI needs (~300 expected; the
/// chance of none among 5000 is below 1e-80).
#[test]
fn an_ambiguous_snapshot_prefix_lists_the_candidates() {
    use lifeboat_repo::backup::{BackupSession, Progress, SnapshotMeta};
    use std::collections::HashMap;
    use std::sync::Arc;
    let e = Env::init();
    let rt = rt();
    let pair = rt.block_on(async {
        let storage =
            lifeboat_repo::storage::object::open_url(&e.repo, &Default::default()).unwrap();
        let repo = lifeboat_repo::Repository::open(
            storage,
            &lifeboat_repo::Secret::Passphrase(PASSWORD.into()),
        )
        .await
        .unwrap();
        let mut seen: HashMap<String, String> = HashMap::new();
        for i in 0..5000 {
            let mut s = BackupSession::start(&repo, Arc::new(Progress::default()))
                .await
                .unwrap();
            s.add_stream("stdin", std::io::Cursor::new(vec![1u8; 8]))
                .await
                .unwrap();
            let id = s
                .commit(SnapshotMeta {
                    source: format!("src-{i}"),
                    kind: "stream".into(),
                    tags: vec![],
                    facts: serde_json::Value::Null,
                })
                .await
                .unwrap()
                .id;
            if let Some(other) = seen.insert(id[..4].to_string(), id.clone()) {
                return (other, id);
            }
        }
        panic!("no two of 5000 snapshot ids share 4 hex digits");
    });
    let err = e.fails(&["restore", "stream", &pair.0[..4], "-o", "x"], 2);
    assert!(
        err.contains("is ambiguous") && err.contains("Candidates"),
        "{err}"
    );
    for id in [&pair.0, &pair.1] {
        let line = err
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("candidate {id} not listed: {err}"));
        assert!(line.contains("UTC") && line.contains("src-"), "{line}");
    }
}

/// `forget --source` naming a source without snapshots is "not found" (3),
/// not a silent success.
#[test]
fn forget_for_a_source_without_snapshots_is_not_found() {
    let e = Env::init();
    e.backup_bytes("real", b"data");
    let err = e.fails(&["forget", "--source", "nope", "--keep-last", "1"], 3);
    assert!(
        err.contains("source nope has no snapshots") && err.contains("real"),
        "{err}"
    );
    assert_eq!(e.snapshots().len(), 1);
}
