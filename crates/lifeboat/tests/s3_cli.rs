//! The binary against a real S3-compatible server (moto, started on
//! loopback by `scripts/test.sh`): byte-identical round trips of empty,
//! one-byte and multi-pack (multipart) streams (issue 2, must-hold 1).

mod common;

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
