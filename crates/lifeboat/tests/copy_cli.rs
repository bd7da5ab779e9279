//! `lifeboat copy` and `init --copy-params-from` through the built binary,
//! on real repositories (local directories, and moto's S3 on loopback when
//! `scripts/test.sh` started it), and the complete-outage run: a real
//! PostgreSQL database and Kubernetes objects (the API test double) backed
//! up, copied, the first repository, its key and its configuration deleted,
//! and everything restored from the copy alone with an offline key file and
//! the configuration the copy holds. Issue 19, "The repository in the
//! second region". (The kill-and-resume test drives the library at a pause
//! point: `crates/lifeboat-repo/tests/copy.rs`.)

use crate::common;

use std::path::Path;

use common::pg::{chain_ok, hashes};
use common::*;
use serde_json::{Value, json};

/// A second environment (its own directory and repository path) for the
/// copy target; commands get the target's passphrase as LIFEBOAT_PASSWORD.
fn target_env() -> Env {
    let mut t = Env::new();
    t.envs
        .push(("LIFEBOAT_FROM_PASSWORD".into(), PASSWORD.into()));
    t
}

/// The source environment, whose copy commands find the target's
/// passphrase in LIFEBOAT_TO_PASSWORD.
fn source_env() -> Env {
    let mut e = Env::init();
    e.envs
        .push(("LIFEBOAT_TO_PASSWORD".into(), PASSWORD.into()));
    e
}

fn copy(e: &Env, to: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "copy", "--to", to];
    args.extend_from_slice(extra);
    e.ok_json(&args)
}

/// Every file under `dir` with its size (to show nothing was written).
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| (p.display().to_string(), p.metadata().unwrap().len()))
        .collect();
    v.sort();
    v
}

/// The copy's snapshots show the originals' times, sources and facts, and
/// each restores the same bytes as its original.
fn assert_same_snapshots(src: &Env, dst: &Env) {
    let a = src.snapshots();
    let b = dst.snapshots();
    assert_eq!(a.len(), b.len());
    for o in &a {
        let c = b
            .iter()
            .find(|c| c["time"] == o["time"])
            .unwrap_or_else(|| panic!("no copy of {} at its time", o["id"]));
        for k in ["source", "kind", "hostname", "size", "stats", "scope"] {
            assert_eq!(c[k], o[k], "{k}");
        }
        let (code, from_src, err) = src.restore_to_file(o["id"].as_str().unwrap());
        assert_eq!(code, Some(0), "{err}");
        let (code, from_dst, err) = dst.restore_to_file(c["id"].as_str().unwrap());
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(hash_file(&from_src), hash_file(&from_dst));
    }
}

#[test]
fn a_target_made_with_copy_params_from_receives_only_missing_blobs() {
    let e = source_env();
    let input = e.path("big");
    write_mixed(&input, 12 << 20, 41);
    e.backup_file("data", &input);
    let t = target_env();
    let init = t.ok_json(&["--json", "init", "--copy-params-from", &e.repo]);
    assert!(init["params_from"].is_string(), "{init}");

    let first = copy(&e, &t.repo, &[]);
    assert_eq!(first["mode"], "same-ids", "{first}");
    assert_eq!(first["copied"], 1);
    let full = first["blobs_sent"].as_u64().unwrap();
    assert!(full > 50, "{first}");
    assert!(first["objects_verified"].as_u64().unwrap() >= 3, "{first}");

    // A second backup: the same data with a small change.
    let changed = e.path("changed");
    mutate_copy(&input, &changed, 0.01, 3, 42);
    e.backup_file("data", &changed);
    let second = copy(&e, &t.repo, &[]);
    assert_eq!(second["copied"], 1, "{second}");
    assert_eq!(second["skipped"], 1, "{second}");
    let sent = second["blobs_sent"].as_u64().unwrap();
    assert!(
        sent > 0 && sent * 5 < full,
        "sent {sent} of {full}: {second}"
    );
    assert_same_snapshots(&e, &t);
    let check = t.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors found"), "{check}");
    // Nothing left to send.
    let third = copy(&e, &t.repo, &[]);
    assert_eq!(
        (third["copied"].as_u64(), third["blobs_sent"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn any_other_target_gets_rechunked_copies_that_restore_identical_data() {
    let e = source_env();
    let input = e.path("big");
    write_mixed(&input, 6 << 20, 43);
    e.backup_file("data", &input);
    e.backup_bytes("small", b"hello, other region");
    let t = target_env();
    t.ok(&["init", "--zstd-level", "3"]);
    let r = copy(&e, &t.repo, &["--source", "data"]);
    assert_eq!(r["mode"], "rechunk", "{r}");
    assert_eq!(r["copied"], 1, "the filter chose one snapshot: {r}");
    let r = copy(&e, &t.repo, &[]);
    assert_eq!(
        (r["copied"].as_u64(), r["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_same_snapshots(&e, &t);
    let check = t.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors found"), "{check}");
}

#[test]
fn a_target_holding_another_sources_copies_or_its_own_backups_is_refused_with_nothing_written() {
    let e = source_env();
    e.backup_bytes("a", b"first repository");
    let other = source_env();
    other.backup_bytes("b", b"second repository");
    let t = target_env();
    t.ok(&["init"]);
    copy(&other, &t.repo, &[]);

    let before = listing(Path::new(&t.repo));
    let err = e.fails(&["copy", "--to", &t.repo], 2);
    assert!(err.contains("receives copies from repository"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(listing(Path::new(&t.repo)), before);

    // A repository with backups of its own.
    let before = listing(Path::new(&other.repo));
    let err = e.fails(&["copy", "--to", &other.repo], 2);
    assert!(err.contains("of its own"), "{err}");
    assert_eq!(listing(Path::new(&other.repo)), before);
}

#[test]
fn a_target_that_is_not_a_repository_is_refused_with_nothing_written() {
    let e = source_env();
    e.backup_bytes("a", b"data");
    let dir = e.path("not-a-repo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "someone's files").unwrap();
    let before = listing(&dir);
    let err = e.fails(&["copy", "--to", dir.to_str().unwrap()], 3);
    assert!(err.contains("not a Lifeboat repository"), "{err}");
    assert_eq!(listing(&dir), before);
    let missing = e.path("nothing-here");
    let err = e.fails(&["copy", "--to", missing.to_str().unwrap()], 3);
    assert!(err.contains("no repository here"), "{err}");
    assert!(!missing.exists());
    // No secret for the target: a usage error, not a flag value.
    let mut bare = Env::init();
    bare.envs.retain(|(k, _)| k != "LIFEBOAT_TO_PASSWORD");
    let t = target_env();
    t.ok(&["init"]);
    let err = bare.fails(&["copy", "--to", &t.repo], 2);
    assert!(err.contains("LIFEBOAT_TO_PASSWORD"), "{err}");
}

fn s3_endpoint() -> Option<String> {
    match std::env::var("LIFEBOAT_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert_eq!(
                std::env::var("LIFEBOAT_TEST_SKIP_S3").as_deref(),
                Ok("1"),
                "LIFEBOAT_TEST_S3_ENDPOINT is not set: run the tests with scripts/test.sh (or set LIFEBOAT_TEST_SKIP_S3=1 to skip S3 deliberately)"
            );
            None
        }
    }
}

fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(hostport).expect("connect to the S3 test server");
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(
        response.lines().next().unwrap_or("").contains(" 200"),
        "{response}"
    );
}

/// A repository on moto's S3 copied to S3 targets, in both modes: restores equal,
/// a second copy of a changed backup sends only the missing blobs.
#[test]
fn copies_to_s3_in_both_modes() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    // The source is on S3 as well: the configuration's `repository.s3`
    // belongs to an s3:// repository, and the targets use the same settings.
    let mut e = Env::new();
    e.envs
        .push(("LIFEBOAT_TO_PASSWORD".into(), PASSWORD.into()));
    let bucket = format!("lifeboat-copy-{}", rand_suffix());
    create_bucket(&endpoint, &bucket);
    e.repo = format!("s3://{bucket}/source");
    let cfg = e.path("lifeboat.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: {}\n  s3:\n    endpoint: {endpoint}\n    region: us-east-1\n    allow_http: true\n    access_key_id: {{env: LB_S3_KEY}}\n    secret_access_key: {{env: LB_S3_SECRET}}\n",
            e.repo
        ),
    )
    .unwrap();
    e.envs
        .push(("LIFEBOAT_CONFIG".into(), cfg.display().to_string()));
    e.envs.push(("LB_S3_KEY".into(), "lifeboat-test".into()));
    e.envs
        .push(("LB_S3_SECRET".into(), "lifeboat-test-secret".into()));
    e.ok(&["init"]);
    let input = e.path("big");
    write_mixed(&input, 8 << 20, 44);
    e.backup_file("data", &input);
    let mut first_sent = 0;
    for (prefix, params) in [("same", true), ("own", false)] {
        let url = format!("s3://{bucket}/{prefix}");
        let mut t = Env::new();
        t.repo = url.clone();
        t.envs = e.envs.clone();
        t.envs
            .push(("LIFEBOAT_FROM_PASSWORD".into(), PASSWORD.into()));
        if params {
            t.ok(&["init", "--copy-params-from", &e.repo]);
        } else {
            t.ok(&["init"]);
        }
        let r = copy(&e, &url, &[]);
        assert_eq!(
            r["mode"],
            if params { "same-ids" } else { "rechunk" },
            "{r}"
        );
        assert_eq!(r["copied"], 1, "{r}");
        if params {
            first_sent = r["blobs_sent"].as_u64().unwrap();
        }
        assert_same_snapshots(&e, &t);
    }
    let changed = e.path("changed");
    mutate_copy(&input, &changed, 0.01, 2, 45);
    e.backup_file("data", &changed);
    let r = copy(&e, &format!("s3://{bucket}/same"), &[]);
    assert_eq!(
        (r["copied"].as_u64(), r["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let sent = r["blobs_sent"].as_u64().unwrap();
    assert!(
        sent > 0 && sent * 5 < first_sent,
        "sent {sent} of {first_sent}: {r}"
    );
    let r = copy(&e, &format!("s3://{bucket}/own"), &["--latest", "1"]);
    assert_eq!(
        (r["copied"].as_u64(), r["skipped"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
}

const NS: &str = "kubernaut-system";
const PG_PASSWORD_IN_SECRET: &str = "pg-pass-7f3c1e9a2b";

fn kube_fixture(api: &kube_double::ApiDouble) {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS}}));
    api.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rego-policies", "namespace": NS},
        "data": {"approval.rego": "package kubernaut.approval\n\ndefault allow := false\n"}}));
    api.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "postgresql-credentials", "namespace": NS},
        "type": "Opaque", "data": {"password": b64(PG_PASSWORD_IN_SECRET)}}));
}

fn kube_state(api: &kube_double::ApiDouble) -> Vec<Value> {
    let mut out = Vec::new();
    for (av, kind) in [("v1", "ConfigMap"), ("v1", "Secret")] {
        for o in api.list(av, kind, Some(NS)) {
            if o["metadata"]["name"] == "kube-root-ca.crt" {
                continue;
            }
            out.push(json!({"kind": kind, "name": o["metadata"]["name"], "data": o["data"]}));
        }
    }
    out.sort_by_key(|v| v.to_string());
    out
}

/// The complete outage: the first region's repository, its key and its
/// configuration are gone; the copy, an offline key file and the
/// configuration stored in the copy rebuild the database and the objects.
#[test]
fn after_a_complete_outage_the_copy_alone_restores_everything() {
    let rt = rt();
    let (cluster, mut e) = setup(&rt);
    e.envs
        .push(("LIFEBOAT_TO_PASSWORD".into(), PASSWORD.into()));
    let src = cluster.conn_config("src");
    let before = hashes(&rt, &src);
    let chain = chain_ok(&rt, &src);

    // The first region: a configuration with references only.
    let cfg = e.path("lifeboat.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: {url}\n",
            repo = e.repo,
            url = cluster.url("src"),
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let pg = e.ok_json(&[
        "--config", &cfg_s, "--json", "backup", "postgres", "--source", "db",
    ]);
    let api = kube_double::ApiDouble::start_in_thread();
    let kubeconfig = e.path("src.kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    kube_fixture(&api);
    let want_objects = kube_state(&api);
    let kube = e.ok_json(&[
        "--config",
        &cfg_s,
        "--json",
        "backup",
        "kube",
        "--namespace",
        NS,
        "--kind",
        "configmaps",
        "--kind",
        "secrets",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);

    // The second region's repository, and its offline key file (escrowed
    // apart from everything else).
    let t = target_env();
    t.ok(&["init", "--copy-params-from", &e.repo]);
    let offline = t.path("offline.key");
    t.ok(&[
        "key",
        "add",
        "--new-key-file",
        offline.to_str().unwrap(),
        "--label",
        "escrow",
    ]);
    let copied = copy(&e, &t.repo, &[]);
    assert_eq!(copied["copied"], 2, "{copied}");
    let target_of = |source_id: &Value| -> String {
        copied["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["source_id"] == source_id)
            .unwrap()["target_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let kube_copy = target_of(&kube["id"]);
    assert!(!target_of(&pg["id"]).is_empty());

    // The outage: the first repository, its secret and its configuration are gone.
    std::fs::remove_dir_all(&e.repo).unwrap();
    std::fs::remove_file(&cfg).unwrap();
    let dr = Env {
        dir: tempfile::tempdir().unwrap(),
        repo: t.repo.clone(),
        envs: vec![("PGPASSWORD".into(), cluster.password().expose().to_string())],
    };
    let key = ["--key-file", offline.to_str().unwrap()];
    let restored_cfg = dr.path("lifeboat.yaml");
    let mut args = key.to_vec();
    args.extend([
        "restore",
        "config",
        "latest",
        "--source",
        "db",
        "--output",
        restored_cfg.to_str().unwrap(),
    ]);
    dr.ok(&args);
    let text = std::fs::read_to_string(&restored_cfg).unwrap();
    assert!(
        text.contains("password: {env: LIFEBOAT_PASSWORD}"),
        "{text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "a secret value in the stored configuration"
    );
    assert!(
        !text.contains(cluster.password().expose()),
        "a secret value in the stored configuration"
    );
    let rc = restored_cfg.to_str().unwrap();

    // PostgreSQL, into a new database of the second region's server.
    let target_url = cluster.url("rebuilt");
    let mut args = key.to_vec();
    args.extend([
        "--config",
        rc,
        "--json",
        "restore",
        "postgres",
        "latest",
        "--source",
        "db",
        "--target",
        &target_url,
    ]);
    let out = dr.ok_json(&args);
    assert_eq!(out["verified"], true, "{out}");
    let rebuilt = cluster.conn_config("rebuilt");
    assert_eq!(hashes(&rt, &rebuilt), before);
    assert_eq!(chain_ok(&rt, &rebuilt), chain);
    let mut args = key.to_vec();
    args.extend([
        "--config",
        rc,
        "verify",
        "latest",
        "--source",
        "db",
        "--target",
        &target_url,
    ]);
    let out = dr.ok(&args);
    assert!(out.contains("matches snapshot"), "{out}");

    // The Kubernetes objects, into the second region's (empty) cluster.
    let api2 = kube_double::ApiDouble::start_in_thread();
    let kubeconfig2 = dr.path("dst.kubeconfig");
    api2.write_kubeconfig(&kubeconfig2).unwrap();
    let mut args = key.to_vec();
    args.extend([
        "--config",
        rc,
        "restore",
        "kube",
        &kube_copy,
        "--kubeconfig",
        kubeconfig2.to_str().unwrap(),
    ]);
    dr.ok(&args);
    assert_eq!(kube_state(&api2), want_objects);
}
