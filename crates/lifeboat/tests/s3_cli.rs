//! The binary against a real S3-compatible server (moto, started on
//! loopback by `scripts/test.sh`): byte-identical round trips of empty,
//! one-byte and multi-pack (multipart) streams (issue 2, must-hold 1).

use crate::common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;

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

/// `PUT /bucket` on moto (it accepts unsigned requests).
fn create_bucket(endpoint: &str, bucket: &str) {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(hostport).expect("connect to the S3 test server");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(
        response.lines().next().unwrap_or("").contains(" 200"),
        "creating bucket failed: {response}"
    );
}

#[test]
fn s3_round_trips_through_the_cli() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let e = Env::new();
    let bucket = format!("lifeboat-cli-{}", std::process::id());
    create_bucket(&endpoint, &bucket);
    // Settings through the config file; credentials by reference.
    let cfg = e.path("lifeboat.yaml");
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: s3://{bucket}/backups/kubernaut\n  password: {{env: LB_S3_PASS}}\n  s3:\n    endpoint: {endpoint}\n    region: us-east-1\n    allow_http: true\n    access_key_id: {{env: LB_S3_KEY}}\n    secret_access_key: {{env: LB_S3_SECRET}}\n"
        ),
    )
    .unwrap();
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(bin());
        c.arg("--config").arg(&cfg).args(args);
        c.env_remove("LIFEBOAT_PASSWORD")
            .env_remove("LIFEBOAT_REPO")
            .env("LB_S3_PASS", "s3 passphrase")
            .env("LB_S3_KEY", "lifeboat-test")
            .env("LB_S3_SECRET", "lifeboat-test-secret");
        c
    };
    let ok = |c: &mut std::process::Command| {
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    ok(&mut cmd(&["init"]));

    let big = shared_input(80 << 20, 21);
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one", vec![7u8]),
        ("big", std::fs::read(&big).unwrap()),
    ];
    for (name, data) in &inputs {
        let mut c = cmd(&["--json", "backup", "stream", "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let data2 = data.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&data2));
        let o = c.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            o.status.success(),
            "backup {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if *name == "big" {
            assert!(
                v["stats"]["packs"].as_u64().unwrap() >= 3,
                "expected several packs: {v}"
            );
        }
    }
    for (name, data) in &inputs {
        let out = ok(&mut cmd(&["restore", "stream", "latest", "--name", name]));
        assert!(out == *data, "{name} restored differently from S3");
    }
    let check = ok(&mut cmd(&["check", "--read-data"]));
    assert!(String::from_utf8_lossy(&check).contains("no errors found"));
    // A wrong passphrase on S3 is refused like anywhere else.
    let o = cmd(&["snapshots"])
        .env("LB_S3_PASS", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(6));
    // A missing bucket is a storage error that says so.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&bucket, "no-such-bucket-lifeboat"),
    )
    .unwrap();
    let o = cmd(&["snapshots"]).output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bucket"), "{err}");
}

/// `PUT /bucket` with Object Lock enabled (moto accepts it unsigned).
fn create_locked_bucket(endpoint: &str, bucket: &str) {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(hostport).expect("connect to the S3 test server");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nx-amz-bucket-object-lock-enabled: true\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(
        response.lines().next().unwrap_or("").contains(" 200"),
        "creating bucket failed: {response}"
    );
}

/// Append-only mode and Object Lock through the CLI (docs/append-only.md):
/// the daemon-style configuration backs up and restores but `forget` and
/// `prune` exit 2 naming the administrator's configuration; the
/// administrator's configuration forgets, and its prune keeps the packs
/// Object Lock retains, saying so.
#[test]
fn append_only_and_object_lock_through_the_cli() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let e = Env::new();
    let bucket = format!("lifeboat-ao-{}", std::process::id());
    create_locked_bucket(&endpoint, &bucket);
    let base = format!(
        "repository:\n  url: s3://{bucket}/r\n  password: {{env: LB_S3_PASS}}\n  s3:\n    endpoint: {endpoint}\n    region: us-east-1\n    allow_http: true\n    access_key_id: {{env: LB_S3_KEY}}\n    secret_access_key: {{env: LB_S3_SECRET}}\n  object_lock: {{mode: governance, days: 2}}\n"
    );
    let admin_cfg = e.path("admin.yaml");
    std::fs::write(&admin_cfg, &base).unwrap();
    let backup_cfg = e.path("backup.yaml");
    std::fs::write(&backup_cfg, format!("{base}  append_only: true\n")).unwrap();
    let cmd = |cfg: &std::path::Path, args: &[&str]| {
        let mut c = std::process::Command::new(bin());
        c.arg("--config").arg(cfg).args(args);
        c.env_remove("LIFEBOAT_PASSWORD")
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_APPEND_ONLY")
            .env("LB_S3_PASS", "s3 passphrase")
            .env("LB_S3_KEY", "lifeboat-test")
            .env("LB_S3_SECRET", "lifeboat-test-secret");
        c
    };
    let run = |c: &mut std::process::Command, input: &[u8]| {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run(&mut cmd(&admin_cfg, &["init"]), b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in 0..2u8 {
        let o = run(
            &mut cmd(&backup_cfg, &["backup", "stream", "--name", "db"]),
            &vec![n; 300_000],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = run(
        &mut cmd(
            &backup_cfg,
            &["restore", "stream", "latest", "--name", "db"],
        ),
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout == vec![1u8; 300_000]);

    for args in [&["forget", "--keep-last", "1"][..], &["prune"][..]] {
        let o = run(&mut cmd(&backup_cfg, args), b"");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("append-only") && err.contains("admin"),
            "{args:?}: {err}"
        );
    }
    // Nothing was forgotten.
    let o = run(&mut cmd(&admin_cfg, &["--json", "snapshots"]), b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");

    // The administrator forgets one; prune keeps its retained pack.
    let o = run(&mut cmd(&admin_cfg, &["forget", "--keep-last", "1"]), b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &mut cmd(&admin_cfg, &["--json", "prune", "--grace", "0s"]),
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["deleted_packs"], 0, "{r}");
    assert!(r["retained"].as_u64().unwrap() >= 1, "{r}");
    let o = run(&mut cmd(&admin_cfg, &["check", "--read-data"]), b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
